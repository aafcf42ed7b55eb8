//! The dashboard's state, the [`Action`]s that change it and [`update`]. Nothing here does I/O:
//! `update` returns [`Effect`]s that the runtime carries out (on `zoo-ops`), and what they
//! produce comes back as actions. Keys become actions in [`crate::keys`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use zoo_eval::votes::VoteTally;
use zoo_ops::JobEvent;
use zoo_ops::catalog::{ModelDetail, Overview};
use zoo_ops::view::Doc;
use zoo_progress::{Event, Unit};
use zoo_registry::model::ModelRecord;

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Models,
    Chat,
    Results,
    Evaluate,
    Vote,
    Jobs,
}

impl Tab {
    pub const ALL: [Tab; 6] = [Tab::Models, Tab::Chat, Tab::Results, Tab::Evaluate, Tab::Vote, Tab::Jobs];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Models => "Models",
            Tab::Chat => "Chat",
            Tab::Results => "Results",
            Tab::Evaluate => "Evaluate",
            Tab::Vote => "Vote",
            Tab::Jobs => "Jobs",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    fn step(self, by: isize) -> Tab {
        let n = Tab::ALL.len() as isize;
        Tab::ALL[((self.index() as isize + by).rem_euclid(n)) as usize]
    }
}

/// The models table's columns; `s` cycles the sort through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortCol {
    Name,
    Family,
    Arch,
    Params,
    Kind,
    Local,
    Verified,
}

impl SortCol {
    const ALL: [SortCol; 7] = [
        SortCol::Name,
        SortCol::Family,
        SortCol::Arch,
        SortCol::Params,
        SortCol::Kind,
        SortCol::Local,
        SortCol::Verified,
    ];

    pub fn title(self) -> &'static str {
        match self {
            SortCol::Name => "name",
            SortCol::Family => "family",
            SortCol::Arch => "arch",
            SortCol::Params => "params",
            SortCol::Kind => "kind",
            SortCol::Local => "local",
            SortCol::Verified => "verified",
        }
    }
}

/// A facet of the models table; its key cycles through the values present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facet {
    Family,
    Arch,
    Kind,
    Lang,
    Local,
}

impl Facet {
    pub const ALL: [Facet; 5] = [Facet::Family, Facet::Arch, Facet::Kind, Facet::Lang, Facet::Local];

    pub fn title(self) -> &'static str {
        match self {
            Facet::Family => "family",
            Facet::Arch => "arch",
            Facet::Kind => "kind",
            Facet::Lang => "lang",
            Facet::Local => "local",
        }
    }

    fn values_of(self, m: &ModelRecord) -> Vec<String> {
        match self {
            Facet::Family => vec![m.family.clone()],
            Facet::Arch => m.arch.iter().cloned().collect(),
            Facet::Kind => vec![m.kind.clone()],
            Facet::Lang => m.languages.clone(),
            Facet::Local => vec![if m.local == Some(true) { "yes".into() } else { "no".into() }],
        }
    }
}

/// What the background work of a job is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSpec {
    Pull {
        model: String,
    },
    /// Pull a delta release and apply it to its base: `base` (a folder, registry name or repo
    /// id), else the catalog's.
    ApplyDelta {
        model: String,
        base: Option<String>,
    },
    Verify {
        model: String,
    },
    Quantize {
        model: String,
        ggml_type: String,
    },
    Delete {
        model: String,
    },
    Eval(EvalSpec),
    /// Loading a model for the chat pane (pulling the default model on first use).
    ChatLoad {
        model: String,
    },
    /// Generating the answers of a vote session's local contestants, then loading its ballots.
    VotePrepare(VoteSpec),
}

impl JobSpec {
    pub fn title(&self) -> String {
        match self {
            JobSpec::Pull { model } => format!("pull {model}"),
            JobSpec::ApplyDelta { model, base: None } => format!("apply delta {model}"),
            JobSpec::ApplyDelta { model, base: Some(b) } => format!("apply delta {model} to {b}"),
            JobSpec::Verify { model } => format!("verify {model}"),
            JobSpec::Quantize { model, ggml_type } => format!("quantize {model} to {ggml_type}"),
            JobSpec::Delete { model } => format!("delete {model}"),
            JobSpec::Eval(e) => format!("eval {} on {}", e.model, e.questions),
            JobSpec::ChatLoad { model } => format!("load {model} for chat"),
            JobSpec::VotePrepare(v) => format!("vote {} vs {}", v.a, v.b),
        }
    }

    /// Whether the registry may have changed when it ends (the models table is read again).
    fn changes_registry(&self) -> bool {
        !matches!(self, JobSpec::ChatLoad { .. })
    }
}

/// An MCQ evaluation as the Evaluate form has it.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSpec {
    pub model: String,
    pub questions: String,
    /// Comma-separated subsets (sources, subjects or named sets); empty: all.
    pub subsets: String,
    /// `loglik` or `generate`.
    pub mode: String,
    pub limit: Option<usize>,
    /// The registry benchmark to record the result under; `None`: the named set's (only for a
    /// whole named set).
    pub benchmark: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VoteSpec {
    pub questions: String,
    pub a: String,
    pub b: String,
    pub voter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Cancelling,
    Done,
    Failed,
    Cancelled,
}

/// One task of a job (a file downloaded, tensors quantized, questions scored).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub name: String,
    pub total: Option<u64>,
    pub done: u64,
    pub unit: Unit,
    pub finished: bool,
    pub metrics: Vec<(String, f64)>,
}

#[derive(Debug, Clone)]
pub struct JobView {
    pub id: usize,
    pub spec: JobSpec,
    pub state: JobState,
    pub started: Instant,
    pub ended: Option<Instant>,
    pub tasks: Vec<TaskView>,
    /// Notes as they came, then the report (or the error).
    pub log: Vec<String>,
    pub report: Option<Doc>,
}

impl JobView {
    pub fn elapsed(&self, now: Instant) -> Duration {
        self.ended.unwrap_or(now).saturating_duration_since(self.started)
    }

    /// The task shown in one-line summaries: the last unfinished one, else the last.
    pub fn current_task(&self) -> Option<&TaskView> {
        self.tasks.iter().rev().find(|t| !t.finished).or(self.tasks.last())
    }

    fn apply(&mut self, ev: Event) {
        match ev {
            Event::Start { task, total, unit } => {
                self.tasks.retain(|t| t.name != task);
                self.tasks.push(TaskView { name: task, total, done: 0, unit, finished: false, metrics: Vec::new() });
            }
            Event::Advance { task, delta } => {
                if let Some(t) = self.tasks.iter_mut().find(|t| t.name == task) {
                    t.done = t.done.saturating_add(delta);
                }
            }
            Event::Finish { task } => {
                if let Some(t) = self.tasks.iter_mut().find(|t| t.name == task) {
                    t.finished = true;
                    if let Some(total) = t.total {
                        t.done = t.done.max(total);
                    }
                }
            }
            Event::Metric { task, name, value } => {
                if let Some(t) = self.tasks.iter_mut().find(|t| t.name == task) {
                    match t.metrics.iter_mut().find(|(n, _)| *n == name) {
                        Some(m) => m.1 = value,
                        None => t.metrics.push((name, value)),
                    }
                }
            }
            Event::Note { message } => self.push_log(message),
        }
    }

    fn push_log(&mut self, line: String) {
        const KEEP: usize = 500;
        self.log.push(line);
        if self.log.len() > KEEP {
            self.log.drain(..self.log.len() - KEEP);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// zoo's own lines (model loaded, reset, errors).
    Info,
}

#[derive(Debug, Clone, Default)]
pub struct ChatView {
    /// The model loaded (its label) and its prompt format.
    pub model: Option<String>,
    pub format: Option<String>,
    pub context: Option<usize>,
    /// The chat-load job, while the model loads.
    pub loading: Option<usize>,
    pub messages: Vec<(Role, String)>,
    pub input: String,
    /// A reply is being generated.
    pub streaming: bool,
    pub stream_started: Option<Instant>,
    /// The last reply's speed line (`[12 tokens, 40.1 tok/s; …]`).
    pub speed: Option<String>,
    /// Lines scrolled up from the bottom.
    pub scroll: u16,
}

/// A form of labelled text fields (Evaluate, Vote).
#[derive(Debug, Clone)]
pub struct Form {
    pub fields: Vec<(&'static str, String)>,
    pub selected: usize,
    pub editing: bool,
}

impl Form {
    fn new(fields: &[(&'static str, &str)]) -> Form {
        Form { fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect(), selected: 0, editing: false }
    }

    pub fn get(&self, key: &str) -> &str {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    fn set(&mut self, key: &str, value: String) {
        if let Some(f) = self.fields.iter_mut().find(|(k, _)| *k == key) {
            f.1 = value;
        }
    }
}

/// One ballot as the Vote screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BallotView {
    pub question: String,
    pub category: Option<String>,
    pub left: String,
    pub right: String,
}

#[derive(Debug, Clone)]
pub struct VoteView {
    pub form: Form,
    /// The session: its ballots left, how many were cast, the tallies.
    pub ballots: Vec<BallotView>,
    pub current: usize,
    pub cast: usize,
    pub total: usize,
    pub already: usize,
    pub active: bool,
    pub tallies: Vec<VoteTally>,
    pub status: Option<String>,
}

/// A question put to the user before something irreversible (or quitting with jobs running).
#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    /// Delete what the plan lists (`summary`) of `model`.
    Delete {
        model: String,
        summary: Vec<String>,
        freed: u64,
    },
    Quit {
        running: usize,
    },
}

/// A one-line question with a text answer (the quantization type).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub question: String,
    pub answer: String,
    pub then: PromptThen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptThen {
    Quantize,
    ApplyDelta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Info,
    Good,
    Bad,
}

/// Everything on screen.
pub struct App {
    pub tab: Tab,
    pub overview: Overview,
    pub loaded: bool,
    /// Rows of the models table: indices into `overview.models`, filtered and sorted.
    pub rows: Vec<usize>,
    pub selected: usize,
    pub filter: String,
    pub filtering: bool,
    pub facets: Vec<(Facet, Option<String>)>,
    pub sort: SortCol,
    pub sort_desc: bool,
    /// The detail pane of the selected model is open, with what was read for it.
    pub detail_open: bool,
    pub detail: Option<ModelDetail>,
    pub detail_scroll: u16,
    pub jobs: Vec<JobView>,
    pub job_selected: usize,
    pub chat: ChatView,
    pub eval: Form,
    /// The evaluation whose running accuracy the Evaluate screen follows.
    pub eval_job: Option<usize>,
    pub vote: VoteView,
    /// Results screen: which benchmark and which of its columns the bars show.
    pub bench: usize,
    /// `None`: the benchmark's first aggregate column (an average), else its first.
    pub bench_col: Option<usize>,
    pub confirm: Option<Confirm>,
    pub prompt: Option<Prompt>,
    pub help: bool,
    pub message: Option<(Tone, String)>,
    /// Mouse targets of the last frame: the tab bar's cells and the table's first row.
    pub hit: HitMap,
    /// Colours on (off under `NO_COLOR`: only bold, dim and reverse are used).
    pub color: bool,
    pub quit: bool,
    next_job: usize,
}

/// Where the last frame put clickable things (set by `draw`, read by the mouse mapping).
#[derive(Debug, Clone, Default)]
pub struct HitMap {
    /// (x start, x end, tab) on the tab bar's row.
    pub tabs: Vec<(u16, u16, Tab)>,
    pub tab_row: u16,
    /// The models table's first body row and its height, and the first row index shown.
    pub table_top: u16,
    pub table_height: u16,
    pub table_offset: usize,
}

/// Everything that changes the state: from keys and mouse, and from the runtime.
#[derive(Debug, Clone)]
pub enum Action {
    // Movement and screens.
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Left,
    Right,
    NextTab,
    PrevTab,
    GoTab(Tab),
    /// Select a row of the models table (a click).
    SelectRow(usize),
    ToggleHelp,
    /// Esc: close what is open, stop what streams.
    Back,
    /// `q`: quit, asking first when a job runs.
    Quit,
    // Typing (filter, chat, forms, prompts).
    Type(char),
    Backspace,
    Submit,
    // Models.
    StartFilter,
    ClearFilter,
    CycleFacet(Facet),
    ClearFacets,
    CycleSort,
    ReverseSort,
    ToggleDetail,
    Pull,
    ApplyDelta,
    Verify,
    Quantize,
    Delete,
    ChatWithSelected,
    EvaluateSelected,
    Refresh,
    // Confirmation.
    Yes,
    No,
    // Jobs.
    CancelJob,
    // Chat.
    ChatReset,
    // Vote: a ballot key (`1`/`←`, `2`/`→`, `t`), or skip.
    VoteKey(char),
    VoteSkip,
    // From the runtime.
    Loaded(Box<Overview>),
    DetailLoaded(Box<ModelDetail>),
    LoadFailed(String),
    JobStarted {
        id: usize,
        spec: JobSpec,
    },
    Job {
        id: usize,
        event: JobEvent,
    },
    JobDone {
        id: usize,
        result: Result<Doc, String>,
        cancelled: bool,
    },
    DeletePlanned {
        model: String,
        summary: Vec<String>,
        freed: u64,
    },
    ChatReady {
        label: String,
        format: String,
        context: usize,
    },
    ChatReplied {
        speed: String,
        finish: String,
        error: Option<String>,
    },
    VoteReady {
        ballots: Vec<BallotView>,
        total: usize,
        already: usize,
    },
    VoteCast {
        tallies: Vec<VoteTally>,
    },
    Tallies(Vec<VoteTally>),
    Note(String),
    Tick,
}

/// What `update` asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read the overview (models, copies, results, free memory) again.
    Refresh,
    LoadDetail(String),
    /// Start a background job; the runtime answers with [`Action::JobStarted`].
    Start(JobSpec),
    /// Plan a delete (the runtime answers with [`Action::DeletePlanned`]).
    PlanDelete(String),
    Cancel(usize),
    ChatSend(String),
    ChatCancel,
    ChatReset,
    /// Cast the current ballot's vote (the key, as `zoo_eval::votes::Vote::from_key` reads it).
    Vote {
        ballot: usize,
        key: char,
    },
    Quit,
}

/// The Evaluate form's fields.
pub const EVAL_FIELDS: &[(&str, &str)] =
    &[("model", ""), ("questions", ""), ("subsets", ""), ("mode", "loglik"), ("limit", ""), ("benchmark", "")];
/// The Vote form's fields.
pub const VOTE_FIELDS: &[(&str, &str)] = &[("questions", ""), ("model A", ""), ("model B", ""), ("voter", "")];

/// The quantization types the quantize prompt accepts (as `zoo quantize --type`).
pub const QUANT_TYPES: &[&str] = &["q4_0", "q4_1", "q8_0", "q4_k", "q6_k"];

impl App {
    pub fn new() -> App {
        App {
            tab: Tab::Models,
            overview: Overview::default(),
            loaded: false,
            rows: Vec::new(),
            selected: 0,
            filter: String::new(),
            filtering: false,
            facets: Facet::ALL.iter().map(|f| (*f, None)).collect(),
            sort: SortCol::Name,
            sort_desc: false,
            detail_open: false,
            detail: None,
            detail_scroll: 0,
            jobs: Vec::new(),
            job_selected: 0,
            chat: ChatView::default(),
            eval: Form::new(EVAL_FIELDS),
            eval_job: None,
            vote: VoteView {
                form: Form::new(VOTE_FIELDS),
                ballots: Vec::new(),
                current: 0,
                cast: 0,
                total: 0,
                already: 0,
                active: false,
                tallies: Vec::new(),
                status: None,
            },
            bench: 0,
            bench_col: None,
            confirm: None,
            prompt: None,
            help: false,
            message: None,
            hit: HitMap::default(),
            color: true,
            quit: false,
            next_job: 1,
        }
    }

    /// The column the Results bars show (see [`App::bench_col`]).
    pub fn results_column(&self) -> Option<usize> {
        let t = self.overview.results.get(self.bench)?;
        let n = t.benchmark.columns.len();
        match self.bench_col {
            Some(c) if c < n => Some(c),
            _ => t.benchmark.columns.iter().position(|c| c.aggregate).or((n > 0).then_some(0)),
        }
    }

    /// Fills the Vote form's voter (the user's name).
    pub fn set_voter(&mut self, voter: &str) {
        self.vote.form.set("voter", voter.to_string());
    }

    pub fn selected_model(&self) -> Option<&ModelRecord> {
        self.rows.get(self.selected).and_then(|&i| self.overview.models.get(i))
    }

    pub fn running_jobs(&self) -> usize {
        self.jobs.iter().filter(|j| matches!(j.state, JobState::Running | JobState::Cancelling)).count()
            + usize::from(self.chat.streaming)
    }

    /// The id the next job gets (the runtime asks for it so events carry it from the start).
    pub fn take_job_id(&mut self) -> usize {
        let id = self.next_job;
        self.next_job += 1;
        id
    }

    /// Whether keys go to a text field (then letters are typed, not commands).
    pub fn typing(&self) -> bool {
        self.prompt.is_some()
            || (self.tab == Tab::Models && self.filtering)
            || (self.tab == Tab::Chat && self.confirm.is_none())
            || (self.tab == Tab::Evaluate && self.eval.editing)
            || (self.tab == Tab::Vote && self.vote.form.editing)
    }

    /// The values present for `facet` among all models, sorted.
    pub fn facet_values(&self, facet: Facet) -> Vec<String> {
        let set: BTreeSet<String> = self.overview.models.iter().flat_map(|m| facet.values_of(m)).collect();
        set.into_iter().collect()
    }

    /// Recomputes the table's rows from the filter, facets and sort, keeping the selection on
    /// the same model when it is still there.
    pub fn refilter(&mut self) {
        let keep = self.selected_model().map(|m| m.name.clone());
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<usize> = (0..self.overview.models.len())
            .filter(|&i| {
                let m = &self.overview.models[i];
                let text_ok = needle.is_empty() || haystack(m).contains(&needle);
                text_ok
                    && self.facets.iter().all(|(f, v)| match v {
                        None => true,
                        Some(v) => f.values_of(m).iter().any(|x| x == v),
                    })
            })
            .collect();
        let ms = &self.overview.models;
        let ov = &self.overview;
        rows.sort_by(|&a, &b| {
            let (x, y) = (&ms[a], &ms[b]);
            let o = match self.sort {
                SortCol::Name => std::cmp::Ordering::Equal,
                SortCol::Family => x.family.cmp(&y.family),
                SortCol::Arch => x.arch.cmp(&y.arch),
                SortCol::Params => x.params.partial_cmp(&y.params).unwrap_or(std::cmp::Ordering::Equal),
                SortCol::Kind => x.kind.cmp(&y.kind),
                SortCol::Local => x.local.cmp(&y.local),
                SortCol::Verified => ov.verified_at(&x.name).cmp(&ov.verified_at(&y.name)),
            };
            let o = o.then_with(|| x.name.cmp(&y.name));
            if self.sort_desc { o.reverse() } else { o }
        });
        self.rows = rows;
        self.selected = keep
            .and_then(|k| self.rows.iter().position(|&i| self.overview.models[i].name == k))
            .unwrap_or(0)
            .min(self.rows.len().saturating_sub(1));
    }

    fn set_message(&mut self, tone: Tone, text: impl Into<String>) {
        self.message = Some((tone, text.into()));
    }

    fn job_mut(&mut self, id: usize) -> Option<&mut JobView> {
        self.jobs.iter_mut().find(|j| j.id == id)
    }

    fn detail_effect(&self) -> Vec<Effect> {
        match (self.detail_open, self.selected_model()) {
            (true, Some(m)) => vec![Effect::LoadDetail(m.name.clone())],
            _ => Vec::new(),
        }
    }

    /// The selected model, or a message saying there is none.
    fn need_model(&mut self) -> Option<String> {
        match self.selected_model() {
            Some(m) => Some(m.name.clone()),
            None => {
                self.set_message(Tone::Bad, "no model selected");
                None
            }
        }
    }

    fn move_selection(&mut self, by: isize) -> Vec<Effect> {
        match self.tab {
            Tab::Models if self.detail_open => {
                self.detail_scroll = (self.detail_scroll as isize + by).max(0) as u16;
                Vec::new()
            }
            Tab::Models => {
                let n = self.rows.len() as isize;
                if n > 0 {
                    self.selected = (self.selected as isize + by).clamp(0, n - 1) as usize;
                }
                Vec::new()
            }
            Tab::Jobs => {
                let n = self.jobs.len() as isize;
                if n > 0 {
                    self.job_selected = (self.job_selected as isize + by).clamp(0, n - 1) as usize;
                }
                Vec::new()
            }
            Tab::Chat => {
                self.chat.scroll = (self.chat.scroll as isize - by).max(0) as u16;
                Vec::new()
            }
            Tab::Results => {
                let n = self.overview.results.len() as isize;
                if n > 0 {
                    self.bench = (self.bench as isize + by.signum()).rem_euclid(n) as usize;
                    self.bench_col = None;
                }
                Vec::new()
            }
            Tab::Evaluate => {
                let n = self.eval.fields.len() as isize + 1; // + the start button
                self.eval.selected = (self.eval.selected as isize + by.signum()).rem_euclid(n) as usize;
                Vec::new()
            }
            Tab::Vote if !self.vote.active => {
                let n = self.vote.form.fields.len() as isize + 1;
                self.vote.form.selected = (self.vote.form.selected as isize + by.signum()).rem_euclid(n) as usize;
                Vec::new()
            }
            Tab::Vote => Vec::new(),
        }
    }

    fn start(&mut self, spec: JobSpec) -> Vec<Effect> {
        self.set_message(Tone::Info, format!("started: {}", spec.title()));
        vec![Effect::Start(spec)]
    }

    fn eval_spec(&self) -> Result<EvalSpec, String> {
        let f = &self.eval;
        let model = f.get("model").trim().to_string();
        let questions = f.get("questions").trim().to_string();
        if model.is_empty() {
            return Err("name a model (select one on Models and press e, or type it)".into());
        }
        if questions.is_empty() {
            return Err("name a questions file (XMedBench JSON, MMLU JSON lines or zoo JSONL)".into());
        }
        let mode = f.get("mode").trim().to_lowercase();
        if mode != "loglik" && mode != "generate" {
            return Err(format!("mode is loglik or generate, not {mode:?}"));
        }
        let limit = match f.get("limit").trim() {
            "" => None,
            s => Some(s.parse::<usize>().map_err(|_| format!("limit is a number of questions, not {s:?}"))?),
        };
        let benchmark = Some(f.get("benchmark").trim().to_string()).filter(|b| !b.is_empty());
        Ok(EvalSpec { model, questions, subsets: f.get("subsets").trim().to_string(), mode, limit, benchmark })
    }

    fn vote_spec(&self) -> Result<VoteSpec, String> {
        let f = &self.vote.form;
        let spec = VoteSpec {
            questions: f.get("questions").trim().to_string(),
            a: f.get("model A").trim().to_string(),
            b: f.get("model B").trim().to_string(),
            voter: f.get("voter").trim().to_string(),
        };
        if spec.questions.is_empty() || spec.a.is_empty() || spec.b.is_empty() {
            return Err("fill in the questions file and both models (a MODEL, or NAME=answers.jsonl)".into());
        }
        if spec.voter.is_empty() {
            return Err("fill in who votes".into());
        }
        Ok(spec)
    }

    /// Text typed into whatever field has the focus.
    fn field(&mut self) -> Option<&mut String> {
        if let Some(p) = &mut self.prompt {
            return Some(&mut p.answer);
        }
        match self.tab {
            Tab::Models if self.filtering => Some(&mut self.filter),
            Tab::Chat => Some(&mut self.chat.input),
            Tab::Evaluate if self.eval.editing => self.eval.fields.get_mut(self.eval.selected).map(|f| &mut f.1),
            Tab::Vote if self.vote.form.editing => {
                let i = self.vote.form.selected;
                self.vote.form.fields.get_mut(i).map(|f| &mut f.1)
            }
            _ => None,
        }
    }
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

/// What `/` matches: name, display name, family, architecture, backbone, repo, languages.
fn haystack(m: &ModelRecord) -> String {
    let mut s = m.name.to_lowercase();
    for v in [&m.display_name, &m.arch, &m.backbone, &m.hf_repo].into_iter().flatten() {
        s.push(' ');
        s.push_str(&v.to_lowercase());
    }
    s.push(' ');
    s.push_str(&m.family.to_lowercase());
    for l in &m.languages {
        s.push(' ');
        s.push_str(&l.to_lowercase());
    }
    s
}

/// Changes the state by one action; returns what the runtime must do.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    use Action as A;
    match action {
        A::Up => app.move_selection(-1),
        A::Down => app.move_selection(1),
        A::PageUp => app.move_selection(-10),
        A::PageDown => app.move_selection(10),
        A::Top => app.move_selection(-1_000_000),
        A::Bottom => app.move_selection(1_000_000),
        A::Left | A::Right => {
            let by = if matches!(action, A::Left) { -1 } else { 1 };
            match app.tab {
                Tab::Results => {
                    let n = app.overview.results.get(app.bench).map(|t| t.benchmark.columns.len()).unwrap_or(0);
                    if n > 0 {
                        let cur = app.results_column().unwrap_or(0);
                        app.bench_col = Some((cur as isize + by).rem_euclid(n as isize) as usize);
                    }
                }
                Tab::Vote if app.vote.active => {
                    return update(app, A::VoteKey(if by < 0 { '←' } else { '→' }));
                }
                _ => app.tab = app.tab.step(by),
            }
            Vec::new()
        }
        A::NextTab => {
            app.tab = app.tab.step(1);
            Vec::new()
        }
        A::PrevTab => {
            app.tab = app.tab.step(-1);
            Vec::new()
        }
        A::GoTab(t) => {
            app.tab = t;
            Vec::new()
        }
        A::SelectRow(i) => {
            if i < app.rows.len() {
                app.selected = i;
            }
            app.detail_effect()
        }
        A::ToggleHelp => {
            app.help = !app.help;
            Vec::new()
        }
        A::Back => {
            if app.help {
                app.help = false;
            } else if app.prompt.is_some() {
                app.prompt = None;
            } else if app.confirm.is_some() {
                app.confirm = None;
            } else if app.tab == Tab::Chat && app.chat.streaming {
                return vec![Effect::ChatCancel];
            } else if app.tab == Tab::Models && app.filtering {
                app.filtering = false;
            } else if app.tab == Tab::Models && app.detail_open {
                app.detail_open = false;
            } else if app.tab == Tab::Evaluate && app.eval.editing {
                app.eval.editing = false;
            } else if app.tab == Tab::Vote && app.vote.form.editing {
                app.vote.form.editing = false;
            } else if app.tab == Tab::Vote && app.vote.active {
                app.vote.active = false;
            } else if app.tab != Tab::Models {
                app.tab = Tab::Models;
            }
            Vec::new()
        }
        A::Quit => {
            let running = app.running_jobs();
            if running > 0 {
                app.confirm = Some(Confirm::Quit { running });
                Vec::new()
            } else {
                app.quit = true;
                vec![Effect::Quit]
            }
        }
        A::Type(c) => {
            if let Some(f) = app.field() {
                f.push(c);
            }
            if app.tab == Tab::Models && app.filtering && app.prompt.is_none() {
                app.refilter();
            }
            Vec::new()
        }
        A::Backspace => {
            if let Some(f) = app.field() {
                f.pop();
            }
            if app.tab == Tab::Models && app.filtering && app.prompt.is_none() {
                app.refilter();
            }
            Vec::new()
        }
        A::Submit => submit(app),
        A::StartFilter => {
            app.tab = Tab::Models;
            app.detail_open = false;
            app.filtering = true;
            Vec::new()
        }
        A::ClearFilter => {
            app.filter.clear();
            app.filtering = false;
            app.refilter();
            Vec::new()
        }
        A::CycleFacet(f) => {
            let values = app.facet_values(f);
            if let Some(slot) = app.facets.iter_mut().find(|(x, _)| *x == f) {
                slot.1 = match &slot.1 {
                    None => values.first().cloned(),
                    Some(v) => values.iter().position(|x| x == v).and_then(|i| values.get(i + 1)).cloned(),
                };
            }
            app.refilter();
            Vec::new()
        }
        A::ClearFacets => {
            app.facets.iter_mut().for_each(|f| f.1 = None);
            app.refilter();
            Vec::new()
        }
        A::CycleSort => {
            let i = SortCol::ALL.iter().position(|s| *s == app.sort).unwrap_or(0);
            app.sort = SortCol::ALL[(i + 1) % SortCol::ALL.len()];
            app.refilter();
            Vec::new()
        }
        A::ReverseSort => {
            app.sort_desc = !app.sort_desc;
            app.refilter();
            Vec::new()
        }
        A::ToggleDetail => {
            app.detail_open = !app.detail_open && app.selected_model().is_some();
            app.detail_scroll = 0;
            app.detail_effect()
        }
        A::Pull => match app.need_model() {
            Some(model) => {
                let delta = app.selected_model().map(|m| m.kind == "delta").unwrap_or(false);
                app.start(if delta { JobSpec::ApplyDelta { model, base: None } } else { JobSpec::Pull { model } })
            }
            None => Vec::new(),
        },
        A::ApplyDelta => match app.need_model() {
            Some(model) => {
                if app.selected_model().map(|m| m.kind != "delta").unwrap_or(true) {
                    app.set_message(Tone::Bad, format!("{model} is not a delta release (kind delta)"));
                    return Vec::new();
                }
                let base = app.selected_model().and_then(|m| m.base.clone()).unwrap_or_default();
                app.prompt = Some(Prompt {
                    question: format!("apply {model} to the base (a folder, registry name or repo id):"),
                    answer: base,
                    then: PromptThen::ApplyDelta,
                });
                Vec::new()
            }
            None => Vec::new(),
        },
        A::Verify => match app.need_model() {
            Some(model) => app.start(JobSpec::Verify { model }),
            None => Vec::new(),
        },
        A::Quantize => {
            if let Some(model) = app.need_model() {
                app.prompt = Some(Prompt {
                    question: format!("quantize {model} to ({}):", QUANT_TYPES.join(", ")),
                    answer: "q4_0".into(),
                    then: PromptThen::Quantize,
                });
            }
            Vec::new()
        }
        A::Delete => match app.need_model() {
            Some(model) => vec![Effect::PlanDelete(model)],
            None => Vec::new(),
        },
        A::ChatWithSelected => match app.need_model() {
            Some(model) => {
                app.tab = Tab::Chat;
                if app.chat.model.as_deref() == Some(model.as_str()) {
                    return Vec::new();
                }
                app.chat.model = None;
                app.chat.messages.push((Role::Info, format!("loading {model} …")));
                app.start(JobSpec::ChatLoad { model })
            }
            None => Vec::new(),
        },
        A::EvaluateSelected => {
            if let Some(model) = app.need_model() {
                app.eval.set("model", model);
                app.eval.selected = 1;
                app.tab = Tab::Evaluate;
            }
            Vec::new()
        }
        A::Refresh => vec![Effect::Refresh],
        A::Yes => match app.confirm.take() {
            Some(Confirm::Delete { model, .. }) => app.start(JobSpec::Delete { model }),
            Some(Confirm::Quit { .. }) => {
                app.quit = true;
                vec![Effect::Quit]
            }
            None => Vec::new(),
        },
        A::No => {
            app.confirm = None;
            Vec::new()
        }
        A::CancelJob => {
            let Some(job) = app.jobs.get_mut(app.job_selected) else { return Vec::new() };
            if job.state == JobState::Running {
                job.state = JobState::Cancelling;
                vec![Effect::Cancel(job.id)]
            } else {
                Vec::new()
            }
        }
        A::ChatReset => {
            if app.chat.streaming {
                return Vec::new();
            }
            app.chat.messages.clear();
            app.chat.speed = None;
            app.chat.scroll = 0;
            if app.chat.model.is_some() {
                app.chat.messages.push((Role::Info, "conversation reset".into()));
            }
            vec![Effect::ChatReset]
        }
        A::VoteKey(c) => {
            if !app.vote.active || app.vote.current >= app.vote.ballots.len() {
                return Vec::new();
            }
            if zoo_eval::votes::Vote::from_key(c, true).is_none() {
                return Vec::new();
            }
            let ballot = app.vote.current;
            app.vote.current += 1;
            app.vote.cast += 1;
            vec![Effect::Vote { ballot, key: c }]
        }
        A::VoteSkip => {
            if app.vote.active && app.vote.current < app.vote.ballots.len() {
                app.vote.current += 1;
            }
            Vec::new()
        }
        A::Loaded(ov) => {
            app.overview = *ov;
            app.loaded = true;
            app.bench = app.bench.min(app.overview.results.len().saturating_sub(1));
            app.refilter();
            app.detail_effect()
        }
        A::DetailLoaded(d) => {
            if app.selected_model().map(|m| m.name == d.model.name).unwrap_or(false) {
                app.detail = Some(*d);
            }
            Vec::new()
        }
        A::LoadFailed(e) => {
            app.set_message(Tone::Bad, e);
            Vec::new()
        }
        A::JobStarted { id, spec } => {
            if let JobSpec::ChatLoad { .. } = &spec {
                app.chat.loading = Some(id);
            }
            if let JobSpec::Eval(_) = &spec {
                app.eval_job = Some(id);
            }
            app.jobs.push(JobView {
                id,
                spec,
                state: JobState::Running,
                started: Instant::now(),
                ended: None,
                tasks: Vec::new(),
                log: Vec::new(),
                report: None,
            });
            Vec::new()
        }
        A::Job { id, event } => {
            match event {
                JobEvent::Progress(ev) => {
                    if let Some(j) = app.job_mut(id) {
                        j.apply(ev);
                    }
                }
                JobEvent::Text(piece) => match app.chat.messages.last_mut() {
                    Some((Role::Assistant, text)) => text.push_str(&piece),
                    _ => app.chat.messages.push((Role::Assistant, piece)),
                },
            }
            Vec::new()
        }
        A::JobDone { id, result, cancelled } => {
            let Some(j) = app.job_mut(id) else { return Vec::new() };
            j.ended = Some(Instant::now());
            let title = j.spec.title();
            let changes = j.spec.changes_registry();
            let is_chat = matches!(j.spec, JobSpec::ChatLoad { .. });
            let (tone, text) = match result {
                Ok(doc) => {
                    j.state = JobState::Done;
                    for l in doc.plain_text().lines() {
                        j.push_log(l.to_string());
                    }
                    j.report = Some(doc);
                    (Tone::Good, format!("done: {title}"))
                }
                Err(_) if cancelled => {
                    j.state = JobState::Cancelled;
                    j.push_log("cancelled".into());
                    (Tone::Info, format!("cancelled: {title}"))
                }
                Err(e) => {
                    j.state = JobState::Failed;
                    j.push_log(format!("error: {e}"));
                    (Tone::Bad, format!("failed: {title}: {e}"))
                }
            };
            if is_chat && app.chat.loading == Some(id) {
                app.chat.loading = None;
                if tone == Tone::Bad {
                    app.chat.messages.push((Role::Info, text.clone()));
                }
            }
            app.set_message(tone, text);
            if changes { vec![Effect::Refresh] } else { Vec::new() }
        }
        A::DeletePlanned { model, summary, freed } => {
            if summary.is_empty() {
                app.set_message(Tone::Info, format!("{model}: nothing of it is in the cache"));
            } else {
                app.confirm = Some(Confirm::Delete { model, summary, freed });
            }
            Vec::new()
        }
        A::ChatReady { label, format, context } => {
            app.chat.model = Some(label.clone());
            app.chat.format = Some(format.clone());
            app.chat.context = Some(context);
            app.chat.messages.push((Role::Info, format!("{label} loaded ({format} format, {context} context)")));
            Vec::new()
        }
        A::ChatReplied { speed, finish, error } => {
            app.chat.streaming = false;
            app.chat.stream_started = None;
            match error {
                Some(e) => app.chat.messages.push((Role::Info, format!("error: {e}"))),
                None => {
                    if !matches!(app.chat.messages.last(), Some((Role::Assistant, _))) {
                        app.chat.messages.push((Role::Assistant, String::new()));
                    }
                    if finish != "stop" {
                        app.chat.messages.push((Role::Info, format!("({finish})")));
                    }
                    app.chat.speed = Some(speed);
                }
            }
            Vec::new()
        }
        A::VoteReady { ballots, total, already } => {
            app.vote.ballots = ballots;
            app.vote.total = total;
            app.vote.already = already;
            app.vote.current = 0;
            app.vote.cast = 0;
            app.vote.active = true;
            app.vote.status =
                Some(format!("{} to vote on ({already} of {total} voted before)", app.vote.ballots.len()));
            Vec::new()
        }
        A::VoteCast { tallies } | A::Tallies(tallies) => {
            app.vote.tallies = tallies;
            Vec::new()
        }
        A::Note(m) => {
            app.set_message(Tone::Info, m);
            Vec::new()
        }
        A::Tick => Vec::new(),
    }
}

fn submit(app: &mut App) -> Vec<Effect> {
    if let Some(p) = app.prompt.take() {
        return match p.then {
            PromptThen::Quantize => {
                let t = p.answer.trim().to_lowercase();
                if !QUANT_TYPES.contains(&t.as_str()) {
                    app.set_message(Tone::Bad, format!("{t:?} is not one of {}", QUANT_TYPES.join(", ")));
                    return Vec::new();
                }
                match app.need_model() {
                    Some(model) => app.start(JobSpec::Quantize { model, ggml_type: t }),
                    None => Vec::new(),
                }
            }
            PromptThen::ApplyDelta => {
                let base = p.answer.trim();
                let base = (!base.is_empty()).then(|| base.to_string());
                match app.need_model() {
                    Some(model) => app.start(JobSpec::ApplyDelta { model, base }),
                    None => Vec::new(),
                }
            }
        };
    }
    match app.tab {
        Tab::Models if app.filtering => {
            app.filtering = false;
            Vec::new()
        }
        Tab::Models => update(app, Action::ToggleDetail),
        Tab::Chat => {
            let text = app.chat.input.trim().to_string();
            if text.is_empty() || app.chat.streaming {
                return Vec::new();
            }
            if app.chat.model.is_none() {
                app.set_message(Tone::Bad, "no model loaded: select one on Models and press c");
                return Vec::new();
            }
            app.chat.input.clear();
            app.chat.messages.push((Role::User, text.clone()));
            app.chat.streaming = true;
            app.chat.stream_started = Some(Instant::now());
            app.chat.scroll = 0;
            vec![Effect::ChatSend(text)]
        }
        Tab::Evaluate => {
            if app.eval.selected < app.eval.fields.len() {
                if app.eval.fields[app.eval.selected].0 == "mode" && !app.eval.editing {
                    let m = if app.eval.get("mode") == "loglik" { "generate" } else { "loglik" };
                    app.eval.set("mode", m.into());
                } else {
                    app.eval.editing = !app.eval.editing;
                }
                return Vec::new();
            }
            match app.eval_spec() {
                Ok(spec) => app.start(JobSpec::Eval(spec)),
                Err(e) => {
                    app.set_message(Tone::Bad, e);
                    Vec::new()
                }
            }
        }
        Tab::Vote if !app.vote.active => {
            if app.vote.form.selected < app.vote.form.fields.len() {
                app.vote.form.editing = !app.vote.form.editing;
                return Vec::new();
            }
            match app.vote_spec() {
                Ok(spec) => {
                    app.vote.status = Some("preparing the ballots (generating missing answers) …".into());
                    app.start(JobSpec::VotePrepare(spec))
                }
                Err(e) => {
                    app.set_message(Tone::Bad, e);
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, family: &str, kind: &str, langs: &[&str]) -> ModelRecord {
        ModelRecord {
            name: name.into(),
            family: family.into(),
            kind: kind.into(),
            arch: Some("llama".into()),
            params: Some(7.0),
            languages: langs.iter().map(|s| s.to_string()).collect(),
            origin: "catalog".into(),
            local: Some(false),
            ..Default::default()
        }
    }

    fn app_with(models: Vec<ModelRecord>) -> App {
        let mut app = App::new();
        update(&mut app, Action::Loaded(Box::new(Overview { models, ..Default::default() })));
        app
    }

    #[test]
    fn filter_facets_and_sort_narrow_and_order_the_table() {
        let mut app = app_with(vec![
            model("phoenix-chat-7b", "phoenix", "full", &["en", "zh"]),
            model("chimera-chat-7b", "chimera", "delta", &["en"]),
            model("huatuo-7b", "huatuo", "full", &["zh"]),
        ]);
        let names = |a: &App| a.rows.iter().map(|&i| a.overview.models[i].name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&app), ["chimera-chat-7b", "huatuo-7b", "phoenix-chat-7b"]);
        update(&mut app, Action::StartFilter);
        for c in "chat".chars() {
            update(&mut app, Action::Type(c));
        }
        assert_eq!(names(&app), ["chimera-chat-7b", "phoenix-chat-7b"]);
        update(&mut app, Action::ClearFilter);
        update(&mut app, Action::CycleFacet(Facet::Lang)); // en
        assert_eq!(names(&app), ["chimera-chat-7b", "phoenix-chat-7b"]);
        update(&mut app, Action::CycleFacet(Facet::Lang)); // zh
        assert_eq!(names(&app), ["huatuo-7b", "phoenix-chat-7b"]);
        update(&mut app, Action::CycleFacet(Facet::Lang)); // none
        update(&mut app, Action::ReverseSort);
        assert_eq!(names(&app), ["phoenix-chat-7b", "huatuo-7b", "chimera-chat-7b"]);
    }

    #[test]
    fn pull_of_a_delta_applies_it_and_delete_asks_first() {
        let mut app = app_with(vec![model("chimera-chat-7b", "chimera", "delta", &["en"])]);
        assert_eq!(
            update(&mut app, Action::Pull),
            [Effect::Start(JobSpec::ApplyDelta { model: "chimera-chat-7b".into(), base: None })]
        );
        // `A` asks for the base, the catalog's offered.
        let mut with_base = model("chimera-chat-13b", "chimera", "delta", &["en"]);
        with_base.base = Some("llama-13b".into());
        let mut app2 = app_with(vec![with_base]);
        assert_eq!(update(&mut app2, Action::ApplyDelta), []);
        assert_eq!(app2.prompt.as_ref().map(|p| p.answer.as_str()), Some("llama-13b"));
        update(&mut app2, Action::Backspace);
        for c in "b-local".chars() {
            update(&mut app2, Action::Type(c));
        }
        assert_eq!(
            update(&mut app2, Action::Submit),
            [Effect::Start(JobSpec::ApplyDelta {
                model: "chimera-chat-13b".into(),
                base: Some("llama-13b-local".into())
            })]
        );
        assert_eq!(update(&mut app, Action::Delete), [Effect::PlanDelete("chimera-chat-7b".into())]);
        update(
            &mut app,
            Action::DeletePlanned { model: "chimera-chat-7b".into(), summary: vec!["x".into()], freed: 9 },
        );
        assert!(matches!(app.confirm, Some(Confirm::Delete { .. })));
        assert_eq!(update(&mut app, Action::No), []);
        assert!(app.confirm.is_none());
    }

    #[test]
    fn quit_asks_only_while_a_job_runs() {
        let mut app = app_with(vec![model("m", "f", "full", &[])]);
        update(&mut app, Action::JobStarted { id: 1, spec: JobSpec::Verify { model: "m".into() } });
        assert_eq!(update(&mut app, Action::Quit), []);
        assert_eq!(app.confirm, Some(Confirm::Quit { running: 1 }));
        update(&mut app, Action::No);
        update(&mut app, Action::JobDone { id: 1, result: Ok(Doc::new()), cancelled: false });
        assert_eq!(update(&mut app, Action::Quit), [Effect::Quit]);
        assert!(app.quit);
    }

    #[test]
    fn job_events_fill_tasks_metrics_and_log() {
        let mut app = App::new();
        update(&mut app, Action::JobStarted { id: 3, spec: JobSpec::Verify { model: "m".into() } });
        let ev = |e| Action::Job { id: 3, event: JobEvent::Progress(e) };
        update(&mut app, ev(Event::Start { task: "t".into(), total: Some(10), unit: Unit::Items }));
        update(&mut app, ev(Event::Advance { task: "t".into(), delta: 4 }));
        update(&mut app, ev(Event::Metric { task: "t".into(), name: "accuracy".into(), value: 0.5 }));
        update(&mut app, ev(Event::Metric { task: "t".into(), name: "accuracy".into(), value: 0.75 }));
        update(&mut app, ev(Event::Note { message: "hello".into() }));
        let j = &app.jobs[0];
        assert_eq!((j.tasks[0].done, j.tasks[0].metrics.clone()), (4, vec![("accuracy".to_string(), 0.75)]));
        assert_eq!(j.log, ["hello"]);
    }

    #[test]
    fn vote_keys_advance_only_on_a_real_vote() {
        let mut app = App::new();
        app.tab = Tab::Vote;
        let b = BallotView { question: "q".into(), category: None, left: "l".into(), right: "r".into() };
        update(&mut app, Action::VoteReady { ballots: vec![b.clone(), b], total: 2, already: 0 });
        assert_eq!(update(&mut app, Action::VoteKey(' ')), []);
        assert_eq!(update(&mut app, Action::VoteKey('t')), [Effect::Vote { ballot: 0, key: 't' }]);
        assert_eq!(update(&mut app, Action::Left), [Effect::Vote { ballot: 1, key: '←' }]);
        assert_eq!(update(&mut app, Action::VoteKey('1')), []);
    }
}

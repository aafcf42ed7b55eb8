//! The event loop and the effects. One loop merges terminal input (read on its own thread),
//! ticks and job events into one channel; each message becomes [`Action`]s for [`update`], whose
//! [`Effect`]s start `zoo-ops` jobs here. Work never runs on the loop: jobs run on the tokio
//! runtime (their heavy parts on blocking threads), so a key is drawn while they run.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossterm::event::Event as TermEvent;
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use zoo_ops::cache::{CacheInfo, DeletePlan};
use zoo_ops::chat::{ChatOptions, ChatSession};
use zoo_ops::eval::{GenerateSettings, McqRequest, Mode};
use zoo_ops::judge::Contestant;
use zoo_ops::view::{self, Doc, Span as VSpan, Tone as VTone};
use zoo_ops::vote::{VoteRequest, VoteSession};
use zoo_ops::{Job, JobEvent, Zoo};
use zoo_progress::{CancelToken, Event, Progress};

use crate::app::{Action, App, BallotView, Effect, EvalSpec, JobSpec, VoteSpec, update};

/// What the dashboard is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Threads for verify, quantize, chat and evaluation; `None`: the machine's.
    pub threads: Option<usize>,
    /// Most tokens of a chat answer.
    pub max_tokens: usize,
    /// The Vote form's voter.
    pub voter: String,
    /// Colours (off under `NO_COLOR`).
    pub color: bool,
    /// Mouse capture (clicks and the wheel; off lets the terminal select text).
    pub mouse: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { threads: None, max_tokens: 512, voter: "me".into(), color: true, mouse: true }
    }
}

/// One message to the loop.
#[derive(Debug)]
pub enum Msg {
    /// A terminal event and when it was read (for the key-to-frame latency).
    Input(TermEvent, Instant),
    Action(Action),
}

/// Key-to-frame latencies: when each key was read, and the time from then to the flushed frame
/// that shows it.
#[derive(Debug, Default, Clone)]
pub struct Latencies(pub Vec<(Instant, Duration)>);

/// Notes that belong to no job (a catalog sync) go to the status line.
struct NoteSink(UnboundedSender<Msg>);

impl Progress for NoteSink {
    fn event(&self, event: Event) {
        if let Event::Note { message } = event {
            let _ = self.0.send(Msg::Action(Action::Note(message)));
        }
    }
}

/// Carries out effects: owns the `Zoo`, the chat and vote sessions, the cancel tokens.
pub struct Runtime {
    zoo: Zoo,
    opts: Options,
    tx: UnboundedSender<Msg>,
    cancels: HashMap<usize, CancelToken>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    chat: Arc<Mutex<Option<ChatSession>>>,
    chat_cancel: Option<CancelToken>,
    vote: Arc<tokio::sync::Mutex<Option<VoteSession>>>,
    /// Delete plans shown for confirmation, by model.
    plans: Arc<Mutex<HashMap<String, (CacheInfo, DeletePlan)>>>,
}

impl Runtime {
    /// A runtime for `zoo`; its notes go to the status line through `tx`.
    pub fn new(mut zoo: Zoo, opts: Options, tx: UnboundedSender<Msg>) -> Runtime {
        zoo.notes = Arc::new(NoteSink(tx.clone()));
        Runtime {
            zoo,
            opts,
            tx,
            cancels: HashMap::new(),
            tasks: Vec::new(),
            chat: Arc::new(Mutex::new(None)),
            chat_cancel: None,
            vote: Arc::new(tokio::sync::Mutex::new(None)),
            plans: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn send(tx: &UnboundedSender<Msg>, a: Action) {
        let _ = tx.send(Msg::Action(a));
    }

    fn threads(&self) -> usize {
        zoo_ops::default_threads(self.opts.threads)
    }

    /// Carries out one effect; returns actions to apply now.
    pub fn run(&mut self, effect: Effect, app: &mut App) -> Vec<Action> {
        let tx = self.tx.clone();
        let zoo = self.zoo.clone();
        match effect {
            Effect::Refresh => {
                self.tasks.push(tokio::spawn(async move {
                    let a = match zoo_ops::catalog::overview(&zoo).await {
                        Ok(ov) => Action::Loaded(Box::new(ov)),
                        Err(e) => Action::LoadFailed(format!("reading the registry: {}", chain(&e))),
                    };
                    Self::send(&tx, a);
                    if let Ok(t) = zoo_ops::vote::tally(&zoo, None).await {
                        Self::send(&tx, Action::Tallies(t));
                    }
                }));
                Vec::new()
            }
            Effect::LoadDetail(name) => {
                tokio::spawn(async move {
                    let a = match zoo_ops::catalog::detail(&zoo, &name).await {
                        Ok(d) => Action::DetailLoaded(Box::new(d)),
                        Err(e) => Action::LoadFailed(chain(&e)),
                    };
                    Self::send(&tx, a);
                });
                Vec::new()
            }
            Effect::PlanDelete(model) => {
                let plans = self.plans.clone();
                tokio::spawn(async move {
                    let a =
                        match zoo_ops::cache::plan_rm(&zoo, std::slice::from_ref(&model), &zoo_ops::Control::silent())
                            .await
                        {
                            Ok((info, plan)) => {
                                let summary = view::delete_plan(&plan).plain_text().lines().map(String::from).collect();
                                let freed = plan.freed_bytes;
                                let empty = plan.paths.is_empty();
                                if let Ok(mut p) = plans.lock() {
                                    p.insert(model.clone(), (info, plan));
                                }
                                Action::DeletePlanned {
                                    model,
                                    summary: if empty { Vec::new() } else { summary },
                                    freed,
                                }
                            }
                            Err(e) => Action::LoadFailed(format!("delete {model}: {}", chain(&e))),
                        };
                    Self::send(&tx, a);
                });
                Vec::new()
            }
            Effect::Start(spec) => {
                let id = app.take_job_id();
                let started = Action::JobStarted { id, spec: spec.clone() };
                self.start(id, spec);
                vec![started]
            }
            Effect::Cancel(id) => {
                if let Some(c) = self.cancels.get(&id) {
                    c.cancel();
                }
                Vec::new()
            }
            Effect::ChatSend(text) => {
                self.chat_send(text);
                Vec::new()
            }
            Effect::ChatCancel => {
                if let Some(c) = &self.chat_cancel {
                    c.cancel();
                }
                Vec::new()
            }
            Effect::ChatReset => {
                if let Ok(mut g) = self.chat.lock()
                    && let Some(s) = g.take()
                {
                    *g = Some(ChatSession::new(s.model, zoo_chat::Conversation::new()));
                }
                Vec::new()
            }
            Effect::Vote { ballot, key } => {
                let vote = self.vote.clone();
                tokio::spawn(async move {
                    let g = vote.lock().await;
                    let Some(s) = g.as_ref() else { return };
                    let Some(b) = s.ballots.get(ballot) else { return };
                    let Some(v) = zoo_eval::votes::Vote::from_key(key, b.a_shown_left) else { return };
                    let a = match s.cast(b, v).await {
                        Ok(()) => match zoo_ops::vote::tally(&zoo, Some(&s.questions_sha256)).await {
                            Ok(t) => Action::VoteCast { tallies: t },
                            Err(e) => Action::LoadFailed(chain(&e)),
                        },
                        Err(e) => Action::LoadFailed(format!("the vote was not stored: {}", chain(&e))),
                    };
                    Self::send(&tx, a);
                });
                Vec::new()
            }
            Effect::Quit => {
                for c in self.cancels.values() {
                    c.cancel();
                }
                if let Some(c) = &self.chat_cancel {
                    c.cancel();
                }
                Vec::new()
            }
        }
    }

    /// Starts the job `id`: its events and its end come back as actions.
    fn start(&mut self, id: usize, spec: JobSpec) {
        let zoo = self.zoo.clone();
        let threads = self.threads();
        let tx = self.tx.clone();
        match spec {
            JobSpec::Pull { model } => self.pull(id, model, None),
            JobSpec::ApplyDelta { model, base } => self.pull(id, model, base),
            JobSpec::Verify { model } => {
                let job = Job::spawn(move |cx| async move {
                    let req = zoo_ops::verify::VerifyRequest { target: Some(model), threads };
                    let r = zoo_ops::verify::verify(&zoo, &req, &cx.control).await?;
                    Ok((view::verify(&r), r.problems))
                });
                self.forward(id, job, |r| match r {
                    Ok((doc, 0)) => Ok(doc),
                    Ok((doc, n)) => Err(format!("{n} problem(s)\n{}", doc.plain_text().trim_end())),
                    Err(e) => Err(e),
                });
            }
            JobSpec::Quantize { model, ggml_type } => {
                let job = Job::spawn(move |cx| async move {
                    let r = zoo_ops::convert::quantize_model(&zoo, &model, &ggml_type, threads, &cx.control).await?;
                    Ok(view::quantize(&r, false))
                });
                self.forward(id, job, |r| r);
            }
            JobSpec::Delete { model } => {
                let plans = self.plans.clone();
                let job = Job::spawn(move |cx| async move {
                    let planned = plans.lock().ok().and_then(|mut p| p.remove(&model));
                    let (info, plan) = match planned {
                        Some(p) => p,
                        None => zoo_ops::cache::plan_rm(&zoo, std::slice::from_ref(&model), &cx.control).await?,
                    };
                    cx.control.check()?;
                    Ok(view::removal(&zoo_ops::cache::remove(&zoo, &info, plan).await?))
                });
                self.forward(id, job, |r| r);
            }
            JobSpec::Eval(spec) => {
                let req = mcq_request(&spec, self.opts.threads);
                let job = Job::spawn(move |cx| async move {
                    let r = zoo_ops::eval::mcq(&zoo, &req, &cx.control).await?;
                    let mut doc = view::mcq(&r);
                    if let Some(b) = &r.benchmark {
                        doc.spans(vec![VSpan::new(format!("recorded under {b}: see Results"), VTone::Good)]);
                    }
                    Ok(doc)
                });
                self.forward(id, job, |r| r);
            }
            JobSpec::ChatLoad { model } => {
                let chat = self.chat.clone();
                let opts = ChatOptions { model: Some(model), threads: self.opts.threads, ..Default::default() };
                let job = Job::spawn(move |cx| async move {
                    let m = zoo_ops::chat::load(&zoo, &opts, &cx.control).await?;
                    let s = ChatSession::new(m, zoo_chat::Conversation::new());
                    let ready = Action::ChatReady {
                        label: s.model.label.clone(),
                        format: s.model.format.name().to_string(),
                        context: s.model.model.config.context_length,
                    };
                    let mut doc = Doc::new();
                    doc.line(format!("{} loaded", s.model.label));
                    if let Ok(mut g) = chat.lock() {
                        *g = Some(s);
                    }
                    Self::send(&tx, ready);
                    Ok(doc)
                });
                self.forward(id, job, |r| r);
            }
            JobSpec::VotePrepare(spec) => {
                let vote = self.vote.clone();
                let req = vote_request(&spec, self.opts.threads, self.opts.max_tokens);
                let job = Job::spawn(move |cx| async move {
                    let s = zoo_ops::vote::prepare(&zoo, &req, &cx.control).await?;
                    let ballots = s
                        .ballots
                        .iter()
                        .map(|b| BallotView {
                            question: b.question.text.clone(),
                            category: b.question.category.clone(),
                            left: b.left.clone(),
                            right: b.right.clone(),
                        })
                        .collect();
                    let ready = Action::VoteReady { ballots, total: s.total, already: s.already };
                    let mut doc = Doc::new();
                    doc.line(format!("{} vs {}: {} ballots", s.model_a, s.model_b, s.ballots.len()));
                    let tallies = zoo_ops::vote::tally(&zoo, Some(&s.questions_sha256)).await?;
                    if let Some(old) = vote.lock().await.replace(s) {
                        old.finish().await.ok();
                    }
                    Self::send(&tx, Action::Tallies(tallies));
                    Self::send(&tx, ready);
                    Ok(doc)
                });
                self.forward(id, job, |r| r);
            }
        }
    }

    /// `zoo pull MODEL [--base BASE]`: a delta release is applied to its base too.
    fn pull(&mut self, id: usize, model: String, base: Option<String>) {
        let zoo = self.zoo.clone();
        let job = Job::spawn(move |cx| async move {
            let req = zoo_ops::pull::PullRequest { model, base, ..Default::default() };
            let r = zoo_ops::pull::pull(&zoo, &req, &cx.control).await?;
            let mut doc = view::pull_plan(&r.plan, false);
            doc.line(format!("downloaded {}", view::human_bytes(r.downloaded_bytes)));
            if let Some(a) = &r.applied {
                doc.line(format!("applied ({}) into {}", a.algorithm, a.path.display()));
            }
            doc.line(format!("at {}", r.path().display()));
            Ok(doc)
        });
        self.forward(id, job, |r| r);
    }

    /// Forwards a job's events as actions and ends with [`Action::JobDone`].
    fn forward<T: Send + 'static>(
        &mut self,
        id: usize,
        mut job: Job<T>,
        report: impl FnOnce(Result<T, String>) -> Result<Doc, String> + Send + 'static,
    ) {
        self.cancels.insert(id, job.cancel_token());
        let tx = self.tx.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(event) = job.next_event().await {
                Self::send(&tx, Action::Job { id, event });
            }
            let r = job.join().await;
            let cancelled = matches!(&r, Err(e) if e.is_cancelled());
            let result = report(r.map_err(|e| chain(&e)));
            Self::send(&tx, Action::JobDone { id, result, cancelled });
        }));
    }

    fn chat_send(&mut self, text: String) {
        let chat = self.chat.clone();
        let max_tokens = self.opts.max_tokens;
        let mut job = Job::spawn(move |cx| async move {
            let cancel = cx.control.cancel.clone();
            tokio::task::spawn_blocking(move || {
                let mut g = chat.lock().map_err(|_| zoo_ops::OpsError::Worker("the chat session was lost".into()))?;
                let s = g.as_mut().ok_or_else(|| zoo_ops::OpsError::Invalid("no model loaded".into()))?;
                s.send(text, max_tokens, &cancel, |piece| cx.text(piece))
            })
            .await
            .map_err(|e| zoo_ops::OpsError::Worker(e.to_string()))?
        });
        self.chat_cancel = Some(job.cancel_token());
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(event) = job.next_event().await {
                if let JobEvent::Text(_) = &event {
                    Self::send(&tx, Action::Job { id: 0, event });
                }
            }
            let a = match job.join().await {
                Ok(t) => Action::ChatReplied {
                    speed: t.reply.speed_line(),
                    finish: t.reply.finish_reason.clone(),
                    error: None,
                },
                Err(e) => Action::ChatReplied { speed: String::new(), finish: String::new(), error: Some(chain(&e)) },
            };
            Self::send(&tx, a);
        });
    }

    /// Cancels what runs and waits (at most `grace`) for it to stop, so that nothing is left
    /// half-written behind the terminal.
    pub async fn shutdown(&mut self, grace: Duration) {
        for c in self.cancels.values() {
            c.cancel();
        }
        if let Some(c) = &self.chat_cancel {
            c.cancel();
        }
        let tasks = std::mem::take(&mut self.tasks);
        let _ = tokio::time::timeout(grace, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
        if let Some(s) = self.vote.lock().await.take() {
            let _ = s.finish().await;
        }
    }
}

/// An error with its causes, on one line.
fn chain(e: &zoo_ops::OpsError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

fn mcq_request(s: &EvalSpec, threads: Option<usize>) -> McqRequest {
    let generate = s.mode == "generate";
    McqRequest {
        model: Some(s.model.clone()),
        questions: s.questions.clone().into(),
        selection: zoo_eval::Selection {
            subsets: s.subsets.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
            languages: Vec::new(),
            limit: s.limit,
        },
        prompt: if generate { zoo_eval::McqPrompt::Apollo } else { zoo_eval::McqPrompt::MmluClassic },
        mode: if generate { Mode::Generate } else { Mode::Loglik },
        batch: 8,
        threads,
        restart: false,
        benchmark: s.benchmark.clone(),
        generate: GenerateSettings { shots: 3, seed: 0, max_tokens: 16 },
        endpoint: None,
        eos: None,
    }
}

fn vote_request(s: &VoteSpec, threads: Option<usize>, max_tokens: usize) -> VoteRequest {
    VoteRequest {
        questions: s.questions.clone().into(),
        a: Contestant::parse(&s.a),
        b: Contestant::parse(&s.b),
        voter: s.voter.clone(),
        seed: 0,
        limit: None,
        max_tokens,
        threads,
    }
}

/// Applies `first` and everything it leads to: effects run, their immediate actions applied.
pub fn dispatch(app: &mut App, rt: &mut Runtime, first: Action) {
    let mut queue = VecDeque::from([first]);
    while let Some(a) = queue.pop_front() {
        for e in update(app, a) {
            queue.extend(rt.run(e, app));
        }
    }
}

/// The loop: draw, wait for a message, apply it and all that are waiting, draw again. Ends
/// when the app quits or the channel closes. `latencies`, when given, gets the time from each
/// key read to the flushed frame after it.
pub async fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    rt: &mut Runtime,
    rx: &mut UnboundedReceiver<Msg>,
    mut latencies: Option<&mut Latencies>,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pending: Vec<Instant> = Vec::new();
    loop {
        let mut hit = Default::default();
        terminal.draw(|f| hit = crate::ui::draw(app, f)).context("drawing")?;
        app.hit = hit;
        if let Some(l) = latencies.as_deref_mut() {
            let now = Instant::now();
            l.0.extend(pending.drain(..).map(|t| (t, now.saturating_duration_since(t))));
        }
        pending.clear();
        if app.quit {
            return Ok(());
        }
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
            _ = tick.tick() => Msg::Action(Action::Tick),
        };
        // Everything waiting is applied before the next frame (progress events come in bursts),
        // up to a bound so a flood cannot hold a frame back.
        let mut msg = Some(first);
        let mut n = 0;
        while let Some(m) = msg {
            match m {
                Msg::Input(ev, at) => {
                    pending.push(at);
                    if let Some(a) = crate::keys::action(app, &ev) {
                        dispatch(app, rt, a);
                    }
                }
                Msg::Action(a) => dispatch(app, rt, a),
            }
            n += 1;
            msg = if n < 4096 && !app.quit { rx.try_recv().ok() } else { None };
        }
    }
}

/// Restores the terminal: raw mode off, main screen back, mouse released, cursor shown.
pub fn restore_terminal() {
    let mut out = std::io::stdout();
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        out,
        crossterm::event::DisableMouseCapture,
        crossterm::event::DisableBracketedPaste,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = out.flush();
}

/// Runs the dashboard on this terminal until `q`.
pub async fn run(zoo: Zoo, opts: Options) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("zoo tui needs a terminal (stdin and stdout); for scripts use zoo ls --json");
    }
    // The terminal comes back on a panic too, before the message is printed.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    crossterm::terminal::enable_raw_mode().context("switching the terminal to raw mode")?;
    let mut out = std::io::stdout();
    let setup =
        crossterm::execute!(out, crossterm::terminal::EnterAlternateScreen, crossterm::event::EnableBracketedPaste)
            .and_then(
                |_| if opts.mouse { crossterm::execute!(out, crossterm::event::EnableMouseCapture) } else { Ok(()) },
            );
    if let Err(e) = setup {
        restore_terminal();
        return Err(e).context("setting up the terminal");
    }
    let result = run_in_terminal(zoo, opts).await;
    restore_terminal();
    result
}

async fn run_in_terminal(zoo: Zoo, opts: Options) -> anyhow::Result<()> {
    let mut terminal = Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let (tx, mut rx) = unbounded_channel();
    // Input on its own thread, polled so that it stops when the loop does.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (tx, stop) = (tx.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match crossterm::event::poll(Duration::from_millis(50)) {
                    Ok(true) => match crossterm::event::read() {
                        Ok(ev) => {
                            if tx.send(Msg::Input(ev, Instant::now())).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
        })
    };
    // SIGTERM and SIGHUP quit as `q` with `y` would: jobs cancelled, the terminal restored.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        for kind in [SignalKind::terminate(), SignalKind::hangup()] {
            if let Ok(mut s) = signal(kind) {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if s.recv().await.is_some() {
                        let _ = tx.send(Msg::Action(Action::Yes));
                        let _ = tx.send(Msg::Action(Action::Quit));
                        let _ = tx.send(Msg::Action(Action::Yes));
                    }
                });
            }
        }
    }
    let mut app = App::new();
    app.color = opts.color;
    app.set_voter(&opts.voter);
    let mut rt = Runtime::new(zoo, opts, tx);
    dispatch(&mut app, &mut rt, Action::Refresh);
    let r = event_loop(&mut terminal, &mut app, &mut rt, &mut rx, None).await;
    stop.store(true, Ordering::Relaxed);
    rt.shutdown(Duration::from_secs(5)).await;
    let _ = reader.join();
    r
}

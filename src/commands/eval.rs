//! `zoo eval`: multiple-choice benchmarks, judge comparisons, human votes and reports; the
//! work is `zoo_ops::eval`, `zoo_ops::judge` and `zoo_ops::report`, this file maps flags to
//! requests and reports to output.

use std::io::Write;

use zoo_eval::Selection;
use zoo_ops::endpoint::EndpointConfig;
use zoo_ops::eval::{EndpointApi, EndpointRequest, GenerateSettings, McqRequest, Mode};
use zoo_ops::judge::{Contestant, JudgeMethod, JudgeRequest};
use zoo_ops::view;
use zoo_ops::vote::VoteRequest;

use super::{Ctx, drive};
use crate::cli::{
    EndpointApiArg, EndpointArgs, EvalCommand, EvalMode, JudgeArgs, JudgeMethodArg, McqArgs, PlotFormatArg, ReportArgs,
    ReportFormat, VoteArgs,
};
use crate::output::{print, report, write_json};
use crate::{EXIT_NOT_FOUND, EXIT_OK};

pub async fn eval(ctx: &Ctx, out: &mut dyn Write, cmd: EvalCommand) -> anyhow::Result<u8> {
    match cmd {
        EvalCommand::Mcq(a) => mcq(ctx, out, a).await,
        EvalCommand::Judge(a) => judge(ctx, out, a).await,
        EvalCommand::Vote(a) => vote(ctx, out, a).await,
        EvalCommand::Report(a) => eval_report(ctx, out, a).await,
    }
}

async fn mcq(ctx: &Ctx, out: &mut dyn Write, a: McqArgs) -> anyhow::Result<u8> {
    let req = McqRequest {
        model: a.model.clone(),
        questions: a.questions.clone(),
        selection: Selection { subsets: a.subsets.clone(), languages: a.languages.clone(), limit: a.limit },
        prompt: a.prompt.unwrap_or(match a.mode {
            EvalMode::Loglik => zoo_eval::McqPrompt::MmluClassic,
            EvalMode::Generate => zoo_eval::McqPrompt::Apollo,
        }),
        mode: match a.mode {
            EvalMode::Loglik => Mode::Loglik,
            EvalMode::Generate => Mode::Generate,
        },
        generate: GenerateSettings { shots: a.shots, seed: a.seed, max_tokens: a.max_tokens },
        batch: a.batch,
        threads: a.threads,
        restart: a.restart,
        benchmark: a.benchmark.clone(),
        endpoint: endpoint_request(&a.endpoint),
        eos: a.eos.clone(),
    };
    let zoo = ctx.zoo.clone();
    let note = "the questions scored so far are kept; run the same command again to continue";
    let r = drive(a.emit.progress, note, move |cx| async move { zoo_ops::eval::mcq(&zoo, &req, &cx.control).await })
        .await?;
    if let Some(p) = &a.predictions {
        zoo_ops::eval::write_predictions(p, &r.predictions)?;
    }
    report(out, ctx.style, a.emit.json, &r, view::mcq)?;
    // Questions an endpoint failed on leave the numbers incomplete.
    Ok(if r.failed.is_empty() { EXIT_OK } else { EXIT_NOT_FOUND })
}

/// `--endpoint` and its settings; the key from the flag, `ZOO_ENDPOINT_KEY` or `OPENAI_API_KEY`.
fn endpoint_request(a: &EndpointArgs) -> Option<EndpointRequest> {
    let url = a.endpoint.clone()?;
    let mut config = EndpointConfig::new(url);
    config.model = a.endpoint_model.clone();
    config.key = a.endpoint_key.clone().or_else(openai_key);
    config.timeout = std::time::Duration::from_secs(a.endpoint_timeout.max(1));
    config.retries = a.endpoint_retries;
    let api = match a.endpoint_api {
        EndpointApiArg::Chat => EndpointApi::Chat,
        EndpointApiArg::Completions => EndpointApi::Completions,
    };
    Some(EndpointRequest { config, api })
}

async fn judge(ctx: &Ctx, out: &mut dyn Write, a: JudgeArgs) -> anyhow::Result<u8> {
    let mut config = EndpointConfig::new(a.judge.clone());
    config.model = a.judge_model.clone();
    config.key = a.judge_key.clone().or_else(openai_key);
    config.timeout = std::time::Duration::from_secs(a.judge_timeout.max(1));
    config.retries = a.judge_retries;
    let req = JudgeRequest {
        questions: a.questions.clone(),
        contestants: a.models.iter().map(|m| Contestant::parse(m)).collect(),
        reference: a.reference.clone(),
        method: match a.method {
            JudgeMethodArg::LlmzooOrder => JudgeMethod::Order,
            JudgeMethodArg::MtBenchPair => JudgeMethod::Pair,
        },
        judge: config,
        max_tokens: a.max_tokens,
        judge_max_tokens: a.judge_max_tokens,
        threads: a.threads,
        limit: a.limit,
        concurrency: a.concurrency,
        benchmark: a.benchmark.clone(),
        restart: a.restart,
    };
    let zoo = ctx.zoo.clone();
    let note = "the answers and verdicts so far are kept; run the same command again to continue";
    let r = drive(a.emit.progress, note, move |cx| async move { zoo_ops::judge::judge(&zoo, &req, &cx.control).await })
        .await?;
    report(out, ctx.style, a.emit.json, &r, view::judge)?;
    Ok(if r.failed.is_empty() { EXIT_OK } else { EXIT_NOT_FOUND })
}

/// `OPENAI_API_KEY`, the key OpenAI clients read, when set.
fn openai_key() -> Option<String> {
    std::env::var("OPENAI_API_KEY").ok().filter(|k| !k.is_empty())
}

async fn eval_report(ctx: &Ctx, out: &mut dyn Write, a: ReportArgs) -> anyhow::Result<u8> {
    let req = zoo_ops::report::ReportRequest {
        benchmarks: a.benchmarks.clone(),
        models: a.models.clone(),
        measured_only: a.measured,
        title: a.title.clone(),
    };
    let r = zoo_ops::report::build(&ctx.zoo, &req).await?;
    if let Some(path) = &a.html {
        zoo_atomic_write::write(path, zoo_report::html(&r).as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &a.plots {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let format = match a.plot_format {
            PlotFormatArg::Svg => zoo_report::PlotFormat::Svg,
            PlotFormatArg::Png => zoo_report::PlotFormat::Png,
        };
        let files = zoo_report::write_plots(&r, dir, format)?;
        eprintln!("wrote {} plots into {}", files.len(), dir.display());
    }
    match if a.json { ReportFormat::Json } else { a.format } {
        ReportFormat::Json => write_json(out, &r)?,
        ReportFormat::Markdown => out.write_all(zoo_report::markdown(&r).as_bytes())?,
        ReportFormat::Table => print(out, &view::report(&r), ctx.style)?,
    }
    Ok(EXIT_OK)
}

async fn vote(ctx: &Ctx, out: &mut dyn Write, a: VoteArgs) -> anyhow::Result<u8> {
    if a.tally {
        let sha = match &a.questions {
            Some(q) => Some(zoo_ops::judge::read_questions(q).await?.1),
            None => None,
        };
        let t = zoo_ops::vote::tally(&ctx.zoo, sha.as_deref()).await?;
        report(out, ctx.style, a.emit.json, &t, |t| view::vote_tally(t))?;
        return Ok(EXIT_OK);
    }
    let [m_a, m_b] = a.models.as_slice() else {
        anyhow::bail!("--models takes exactly two contestants, A,B (got {})", a.models.len());
    };
    let req = VoteRequest {
        questions: a.questions.clone().unwrap_or_default(),
        a: Contestant::parse(m_a),
        b: Contestant::parse(m_b),
        voter: a.voter.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_default(),
        seed: a.seed,
        limit: a.limit,
        max_tokens: a.max_tokens,
        threads: a.threads,
    };
    let zoo = ctx.zoo.clone();
    let note = "the answers generated so far are kept";
    let session =
        drive(a.emit.progress, note, move |cx| async move { zoo_ops::vote::prepare(&zoo, &req, &cx.control).await })
            .await?;
    let n = session.ballots.len();
    writeln!(
        out,
        "{} questions, {} voted already by {:?}; {} to go. The two answers are shown in random order, names hidden.",
        session.total, session.already, session.voter, n
    )?;
    let mut keys = crate::keys::Keys::new();
    let mut cast = 0;
    'ballots: for (i, b) in session.ballots.iter().enumerate() {
        crate::keys::show_ballot(out, ctx.style, i + 1, n, b)?;
        loop {
            write!(
                out,
                "{}",
                ctx.style.dim("[1/←] left better  [2/→] right better  [t/=] tie  [s] skip  [q] quit > ")
            )?;
            out.flush()?;
            let Some(k) = keys.next()? else { break 'ballots };
            writeln!(out)?;
            match k {
                'q' | 'Q' => break 'ballots,
                's' | 'S' => break,
                c => {
                    if let Some(v) = zoo_eval::votes::Vote::from_key(c, b.a_shown_left) {
                        session.cast(b, v).await?;
                        cast += 1;
                        break;
                    }
                }
            }
        }
    }
    drop(keys);
    writeln!(out, "{cast} votes stored.")?;
    let t = session.finish().await?;
    print(out, &view::vote_tally(&t), ctx.style)?;
    Ok(EXIT_OK)
}

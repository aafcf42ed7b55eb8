//! The operation commands: build the request from the flags, run it through [`drive`] (progress
//! on stderr, Ctrl-C → cancel), print the report's view or its JSON. `cache rm|prune` ask
//! before removing.

use std::io::{BufRead, IsTerminal, Write};

use zoo_ops::cache::{CacheInfo, DeletePlan};
use zoo_ops::convert::{self, DequantizeRequest, QuantizeRequest, QuantizeTarget};
use zoo_ops::delta::{self, ApplyRequest, MakeRequest};
use zoo_ops::pull::{self, PullRequest};
use zoo_ops::view::{self, human_bytes};
use zoo_ops::{Control, add::AddRequest, verify::VerifyRequest};
use zoo_weights::{Algorithm, DeltaOptions, Dtype, WriteOptions};

use super::{Ctx, drive};
use crate::cli::{
    AddArgs, CacheCommand, DeltaAlgorithm, DeltaCommand, DenseDtype, DequantizeArgs, InspectArgs, PullArgs,
    QuantTarget, QuantizeArgs, RemovalFlags, VerifyArgs, WriteArgs,
};
use crate::output::{print, report, write_json};
use crate::progress::{ProgressMode, StderrProgress};
use crate::{EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK};

const REMOVING: &str = "removing the unfinished output";
const RESUMABLE: &str = "the unfinished download stays as .incomplete; pull again to resume";

pub async fn pull(ctx: &Ctx, out: &mut dyn Write, a: PullArgs) -> anyhow::Result<u8> {
    let mut zoo = ctx.zoo.clone();
    if let Some(h) = zoo.hub.as_mut() {
        h.offline |= a.offline;
    }
    let req = PullRequest {
        model: a.model.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        base: a.base.clone(),
        out: a.out.clone(),
        overwrite: a.overwrite,
    };
    let plan = pull::plan(&zoo, &req).await?;
    print(&mut std::io::stderr(), &view::pull_plan(&plan, a.dry_run), ctx.style)?;
    if a.dry_run {
        if a.emit.json {
            write_json(out, &plan)?;
        }
        return Ok(EXIT_OK);
    }
    let r =
        drive(a.emit.progress, RESUMABLE, move |cx| async move { pull::execute(&zoo, plan, &req, &cx.control).await })
            .await?;
    if a.emit.json {
        write_json(out, &r)?;
    } else {
        writeln!(out, "{}", r.path().display())?;
    }
    Ok(EXIT_OK)
}

pub async fn verify(ctx: &Ctx, out: &mut dyn Write, a: VerifyArgs) -> anyhow::Result<u8> {
    let threads = zoo_ops::default_threads(a.threads);
    let (zoo, req) = (ctx.zoo.clone(), VerifyRequest { target: a.target.clone(), threads });
    let r =
        drive(
            a.emit.progress,
            "stopping",
            move |cx| async move { zoo_ops::verify::verify(&zoo, &req, &cx.control).await },
        )
        .await?;
    report(out, ctx.style, a.emit.json, &r, view::verify)?;
    Ok(if r.problems == 0 { EXIT_OK } else { EXIT_NOT_FOUND })
}

pub async fn add(ctx: &Ctx, out: &mut dyn Write, a: AddArgs) -> anyhow::Result<u8> {
    let req = AddRequest {
        path: a.path.clone(),
        name: a.name.clone(),
        family: a.family.clone(),
        template: a.template.clone(),
        replace: a.replace,
        threads: zoo_ops::default_threads(a.threads),
    };
    let zoo = ctx.zoo.clone();
    let r =
        drive(a.emit.progress, "stopping", move |cx| async move { zoo_ops::add::add(&zoo, &req, &cx.control).await })
            .await?;
    report(out, ctx.style, a.emit.json, &r, view::add)?;
    Ok(EXIT_OK)
}

/// Notes (scan warnings) on stderr; nothing in `cache` runs long enough to cancel.
fn quick() -> Control {
    Control::new(std::sync::Arc::new(StderrProgress::new(ProgressMode::Off)), zoo_progress::CancelToken::new())
}

pub async fn cache(ctx: &Ctx, out: &mut dyn Write, c: CacheCommand) -> anyhow::Result<u8> {
    let (info, plan, flags) = match c {
        CacheCommand::Ls(a) => {
            let info = zoo_ops::cache::ls(&ctx.zoo, &quick())?;
            report(out, ctx.style, a.json, &info, |i| view::cache(i, a.revisions))?;
            return Ok(EXIT_OK);
        }
        CacheCommand::Rm(a) => {
            let (info, plan) = zoo_ops::cache::plan_rm(&ctx.zoo, &a.targets, &quick()).await?;
            (info, plan, a.removal)
        }
        CacheCommand::Prune(a) => {
            let (info, plan) = zoo_ops::cache::plan_prune(&ctx.zoo, &quick())?;
            (info, plan, a.removal)
        }
    };
    carry_out(ctx, out, &info, plan, flags).await
}

/// Show a plan, ask (or require --yes), run it, and print what was freed.
async fn carry_out(
    ctx: &Ctx,
    out: &mut dyn Write,
    info: &CacheInfo,
    plan: DeletePlan,
    f: RemovalFlags,
) -> anyhow::Result<u8> {
    if !f.json {
        print(out, &view::delete_plan(&plan), ctx.style)?;
    }
    if plan.paths.is_empty() || f.dry_run {
        report(out, ctx.style, f.json, &zoo_ops::cache::not_removed(plan, f.dry_run), view::removal)?;
        return Ok(EXIT_OK);
    }
    if !f.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("error: not removing anything without confirmation: pass --yes (or --dry-run to look first)");
            return Ok(EXIT_ERROR);
        }
        out.flush()?;
        eprint!("remove these, freeing {}? [y/N] ", human_bytes(plan.freed_bytes));
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing removed");
            return Ok(EXIT_ERROR);
        }
    }
    let r = zoo_ops::cache::remove(&ctx.zoo, info, plan).await?;
    report(out, ctx.style, f.json, &r, view::removal)?;
    Ok(EXIT_OK)
}

pub async fn delta(ctx: &Ctx, out: &mut dyn Write, cmd: DeltaCommand) -> anyhow::Result<u8> {
    let options = |w: &WriteArgs| DeltaOptions {
        write: WriteOptions { max_shard_size: w.max_shard_size, overwrite: w.overwrite },
        ..DeltaOptions::default()
    };
    let (r, w, verb) = match cmd {
        DeltaCommand::Apply(a) => {
            let algorithm = match a.algorithm {
                DeltaAlgorithm::Fastchat => Algorithm::Fastchat,
                DeltaAlgorithm::Llmzoo => Algorithm::Llmzoo,
                DeltaAlgorithm::Huatuo => Algorithm::Huatuo,
                DeltaAlgorithm::Auto => Algorithm::Auto,
            };
            let (base, delta, out) = (a.base.clone(), a.delta.clone(), a.write.out.clone());
            let req = ApplyRequest { base, delta, algorithm, out, options: options(&a.write) };
            let zoo = ctx.zoo.clone();
            let op = move |cx: zoo_ops::job::JobContext| async move { delta::apply(&zoo, &req, &cx.control).await };
            (drive(a.write.emit.progress, REMOVING, op).await?, a.write, "applied")
        }
        DeltaCommand::Make(a) => {
            let (base, target, out) = (a.base.clone(), a.target.clone(), a.write.out.clone());
            let req = MakeRequest { base, target, out, options: options(&a.write) };
            let op = move |cx: zoo_ops::job::JobContext| async move { delta::make(&req, &cx.control).await };
            (drive(a.write.emit.progress, REMOVING, op).await?, a.write, "made")
        }
    };
    report(out, ctx.style, w.emit.json, &r, |r| view::delta(r, verb))?;
    Ok(EXIT_OK)
}

pub async fn quantize(ctx: &Ctx, out: &mut dyn Write, a: QuantizeArgs) -> anyhow::Result<u8> {
    let req = QuantizeRequest {
        input: a.input.clone(),
        out: a.out.clone(),
        target: match a.out_type {
            QuantTarget::Gguf(t) => QuantizeTarget::Gguf(t),
            QuantTarget::GptqInt4 => QuantizeTarget::GptqInt4,
        },
        raw: a.raw,
        threads: a.threads,
        overwrite: a.overwrite,
        measure: a.report,
        perplexity: a.perplexity.clone().map(|p| (p, a.perplexity_tokens)),
    };
    let r =
        drive(a.emit.progress, REMOVING, move |cx| async move { convert::quantize(&req, &cx.control).await }).await?;
    report(out, ctx.style, a.emit.json, &r, |r| view::quantize(r, a.report))?;
    Ok(EXIT_OK)
}

pub async fn dequantize(ctx: &Ctx, out: &mut dyn Write, a: DequantizeArgs) -> anyhow::Result<u8> {
    let dtype = match a.dtype {
        DenseDtype::F32 => Dtype::F32,
        DenseDtype::F16 => Dtype::F16,
        DenseDtype::Bf16 => Dtype::BF16,
    };
    let req = DequantizeRequest { input: a.input.clone(), out: a.out.clone(), dtype, overwrite: a.overwrite };
    let r =
        drive(a.emit.progress, REMOVING, move |cx| async move { convert::dequantize(&req, &cx.control).await }).await?;
    report(out, ctx.style, a.emit.json, &r, view::folder)?;
    Ok(EXIT_OK)
}

pub fn inspect(ctx: &Ctx, out: &mut dyn Write, a: InspectArgs) -> anyhow::Result<u8> {
    let r = zoo_ops::inspect::inspect(&a.path)?;
    report(out, ctx.style, a.json, &r, |r| view::inspect(r, &a.path.display().to_string()))?;
    Ok(EXIT_OK)
}

//! `zoo data validate|stats|convert|sample|split|dedup|render`: flags → a `zoo_data` call (or
//! `zoo_ops::data` for the commands that need a model's tokenizer), the report's view or its
//! JSON.

use std::io::Write;

use zoo_data::{Format, ScanOptions};
use zoo_ops::data::{RenderRequest, StatsRequest};
use zoo_ops::view::data as view;

use super::{Ctx, drive};
use crate::cli::{
    DataArgs, DataCommand, DataConvertArgs, DataDedupArgs, DataInput, DataRenderArgs, DataSampleArgs, DataSplitArgs,
    DataStatsArgs,
};
use crate::output::report;
use crate::progress::ProgressMode;
use crate::{EXIT_NOT_FOUND, EXIT_OK};

pub async fn data(ctx: &Ctx, out: &mut dyn Write, c: DataCommand) -> anyhow::Result<u8> {
    match c {
        DataCommand::Validate(a) => {
            let (file, format, max_problems) = (a.file.clone(), format(&a.format)?, a.max_problems);
            let r = watched(move |watch| {
                let opts = ScanOptions { format, max_problems, threads: cores(), watch, ..ScanOptions::default() };
                zoo_data::scan(&file, &opts)
            })
            .await?;
            report(out, ctx.style, a.json, &r, |r| view::scan(r, true))?;
            Ok(if r.stats.problems > 0 { EXIT_NOT_FOUND } else { EXIT_OK })
        }
        DataCommand::Stats(a) => stats(ctx, out, a).await,
        DataCommand::Convert(a) => convert(ctx, out, a).await,
        DataCommand::Render(a) => render(ctx, out, a).await,
        DataCommand::Sample(a) => sample(ctx, out, a).await,
        DataCommand::Split(a) => split(ctx, out, a).await,
        DataCommand::Dedup(a) => dedup(ctx, out, a).await,
    }
}

fn format(name: &Option<String>) -> anyhow::Result<Option<Format>> {
    name.as_deref().map(format_arg).transpose()
}

fn format_arg(name: &str) -> anyhow::Result<Format> {
    Format::from_name(name)
        .ok_or_else(|| anyhow::anyhow!("unknown format `{name}`; known: {}", Format::NAMES.join(", ")))
}

/// A model-free command on a worker thread with a progress bar; Ctrl-C stops it and nothing is
/// written (`validate` writes nothing anyway).
async fn watched<T: Send + 'static>(
    work: impl FnOnce(zoo_data::Watch) -> zoo_data::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    drive(ProgressMode::Auto, "stopping: the output is not written", move |cx| async move {
        zoo_ops::data::watched(&cx.control, work).await
    })
    .await
}

async fn sample(ctx: &Ctx, out: &mut dyn Write, a: DataSampleArgs) -> anyhow::Result<u8> {
    let size = match (a.count, a.fraction) {
        (Some(n), _) => zoo_data::SampleSize::Count(n),
        (None, Some(f)) => zoo_data::SampleSize::Fraction(f),
        (None, None) => anyhow::bail!("give --count N or --fraction F"),
    };
    let (file, format, seed, dest) = (a.input.file.clone(), input_format(&a.input)?, a.input.seed, a.out.clone());
    let r = watched(move |w| zoo_data::sample(&file, format, size, seed, &dest, w)).await?;
    report(out, ctx.style, a.input.json, &r, view::sample)?;
    Ok(EXIT_OK)
}

fn input_format(i: &DataInput) -> anyhow::Result<Option<Format>> {
    format(&i.format)
}

async fn split(ctx: &Ctx, out: &mut dyn Write, a: DataSplitArgs) -> anyhow::Result<u8> {
    let mut parts = Vec::new();
    for p in &a.parts {
        let (path, weight) = p
            .rsplit_once('=')
            .ok_or_else(|| anyhow::anyhow!("--part {p}: expected OUT=WEIGHT, e.g. train.jsonl=0.9"))?;
        let weight: f64 =
            weight.trim().parse().map_err(|_| anyhow::anyhow!("--part {p}: the weight `{weight}` is not a number"))?;
        parts.push((std::path::PathBuf::from(path), weight));
    }
    let (file, format, seed) = (a.input.file.clone(), input_format(&a.input)?, a.input.seed);
    let r = watched(move |w| zoo_data::split(&file, format, &parts, seed, w)).await?;
    report(out, ctx.style, a.input.json, &r, view::split)?;
    Ok(EXIT_OK)
}

async fn dedup(ctx: &Ctx, out: &mut dyn Write, a: DataDedupArgs) -> anyhow::Result<u8> {
    let opts = zoo_data::DedupOptions { near: a.near, seed: a.input.seed, shingle: a.shingle, perms: a.perms };
    let (file, format, dest) = (a.input.file.clone(), input_format(&a.input)?, a.out.clone());
    let r = watched(move |w| zoo_data::dedup(&file, format, opts, &dest, w)).await?;
    report(out, ctx.style, a.input.json, &r, view::dedup)?;
    Ok(EXIT_OK)
}

async fn convert(ctx: &Ctx, out: &mut dyn Write, a: DataConvertArgs) -> anyhow::Result<u8> {
    let (file, from, to, dest, skip) =
        (a.file.clone(), format(&a.format)?, format_arg(&a.to)?, a.out.clone(), a.skip_invalid);
    let r = watched(move |w| zoo_data::convert(&file, from, to, &dest, skip, w)).await?;
    report(out, ctx.style, a.json, &r, view::convert)?;
    Ok(EXIT_OK)
}

/// The worker threads of `validate`, `stats` and `render`: every core the process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What Ctrl-C leaves: the model is found (or pulled) first, then the file is read.
const MODEL_NOTE: &str = "stopping (an unfinished model download stays as .incomplete and resumes next time)";
const RENDER_NOTE: &str = "stopping: the output is not written (an unfinished model download stays as .incomplete)";

async fn stats(ctx: &Ctx, out: &mut dyn Write, a: DataStatsArgs) -> anyhow::Result<u8> {
    let c: &DataArgs = &a.common;
    let req = StatsRequest {
        file: c.file.clone(),
        format: format(&c.format)?,
        max_problems: c.max_problems,
        threads: a.threads.map_or_else(cores, |n| n as usize),
        tokenizer: a.tokenizer.clone(),
        template: a.template.clone(),
        context: a.context,
        plot: a.plot.clone(),
    };
    let zoo = ctx.zoo.clone();
    let r =
        drive(
            ProgressMode::Auto,
            MODEL_NOTE,
            move |cx| async move { zoo_ops::data::stats(&zoo, &req, &cx.control).await },
        )
        .await?;
    report(out, ctx.style, c.json, &r, view::stats)?;
    Ok(if r.scan.error.is_some() { EXIT_NOT_FOUND } else { EXIT_OK })
}

async fn render(ctx: &Ctx, out: &mut dyn Write, a: DataRenderArgs) -> anyhow::Result<u8> {
    let req = RenderRequest {
        file: a.file.clone(),
        format: format(&a.format)?,
        model: a.model.clone(),
        max_length: a.max_length as usize,
        with_text: a.text,
        normalize_roles: a.normalize_roles,
        threads: cores(),
        out: a.out.clone(),
    };
    let zoo = ctx.zoo.clone();
    let r = drive(ProgressMode::Auto, RENDER_NOTE, move |cx| async move {
        zoo_ops::data::render(&zoo, &req, &cx.control).await
    })
    .await?;
    report(out, ctx.style, a.json, &r, view::render)?;
    Ok(EXIT_OK)
}

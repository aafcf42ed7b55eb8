//! `zoo data validate|stats|convert|render`: training data files read as a stream (zoo-data):
//! their problems and counts (tokens with a model's tokenizer), conversions and the LLM Zoo
//! training rendering, as text or JSON.

use std::io::Write;

use zoo_data::{Format, ScanOptions, ScanReport, StatsReport, TokenizedBy, Turn, scan};
use zoo_ops::view::{Doc, Table};

use super::{Ctx, drive};
use crate::cli::{
    DataArgs, DataCommand, DataConvertArgs, DataDedupArgs, DataInput, DataRenderArgs, DataSampleArgs, DataSplitArgs,
    DataStatsArgs,
};
use crate::output::{print, write_json};
use crate::progress::ProgressMode;
use crate::{EXIT_NOT_FOUND, EXIT_OK};

pub async fn data(ctx: &Ctx, out: &mut dyn Write, c: DataCommand) -> anyhow::Result<u8> {
    match c {
        DataCommand::Validate(a) => {
            let r = scan(&a.file, &ScanOptions { max_problems: a.max_problems, ..scan_options(&a)? })?;
            show(ctx, out, &a, &r, true)
        }
        DataCommand::Stats(a) => stats(ctx, out, a).await,
        DataCommand::Convert(a) => convert(ctx, out, a),
        DataCommand::Render(a) => render(ctx, out, a).await,
        DataCommand::Sample(a) => sample(ctx, out, a),
        DataCommand::Split(a) => split(ctx, out, a),
        DataCommand::Dedup(a) => dedup(ctx, out, a),
    }
}

fn input_format(i: &DataInput) -> anyhow::Result<Option<Format>> {
    i.format.as_deref().map(format_arg).transpose()
}

/// The JSON report with `--json`, else one line.
fn done<T: serde::Serialize>(ctx: &Ctx, out: &mut dyn Write, json: bool, r: &T, line: String) -> anyhow::Result<u8> {
    if json {
        write_json(out, r)?;
    } else {
        let mut d = Doc::new();
        d.line(line);
        print(out, &d, ctx.style)?;
    }
    Ok(EXIT_OK)
}

fn sample(ctx: &Ctx, out: &mut dyn Write, a: DataSampleArgs) -> anyhow::Result<u8> {
    let size = match (a.count, a.fraction) {
        (Some(n), _) => zoo_data::SampleSize::Count(n),
        (None, Some(f)) => zoo_data::SampleSize::Fraction(f),
        (None, None) => anyhow::bail!("give --count N or --fraction F"),
    };
    let r = zoo_data::sample(&a.input.file, input_format(&a.input)?, size, a.input.seed, &a.out)?;
    let line = format!(
        "{} → {}: {} of {} records sampled (seed {})",
        r.input, r.output, r.records_written, r.records_read, r.seed
    );
    done(ctx, out, a.input.json, &r, line)
}

fn split(ctx: &Ctx, out: &mut dyn Write, a: DataSplitArgs) -> anyhow::Result<u8> {
    let mut parts = Vec::new();
    for p in &a.parts {
        let (path, weight) = p
            .rsplit_once('=')
            .ok_or_else(|| anyhow::anyhow!("--part {p}: expected OUT=WEIGHT, e.g. train.jsonl=0.9"))?;
        let weight: f64 =
            weight.trim().parse().map_err(|_| anyhow::anyhow!("--part {p}: the weight `{weight}` is not a number"))?;
        parts.push((std::path::PathBuf::from(path), weight));
    }
    let r = zoo_data::split(&a.input.file, input_format(&a.input)?, &parts, a.input.seed)?;
    let sizes: Vec<String> = r.parts.iter().map(|p| format!("{} {}", p.output, p.records)).collect();
    let line = format!("{}: {} records split (seed {}): {}", r.input, r.records_read, r.seed, sizes.join(", "));
    done(ctx, out, a.input.json, &r, line)
}

fn dedup(ctx: &Ctx, out: &mut dyn Write, a: DataDedupArgs) -> anyhow::Result<u8> {
    let opts = zoo_data::DedupOptions { near: a.near, seed: a.input.seed, shingle: a.shingle, perms: a.perms };
    let r = zoo_data::dedup(&a.input.file, input_format(&a.input)?, opts, &a.out)?;
    let near = if a.near.is_some() { format!(", {} near", r.near_duplicates) } else { String::new() };
    let line = format!(
        "{} → {}: {} of {} records kept; duplicates: {} exact{near}",
        r.input, r.output, r.records_written, r.records_read, r.exact_duplicates
    );
    done(ctx, out, a.input.json, &r, line)
}

/// The worker threads of `stats` and `render`: every core the process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn scan_options(a: &DataArgs) -> anyhow::Result<ScanOptions<'static>> {
    let format = a.format.as_deref().map(format_arg).transpose()?;
    Ok(ScanOptions { format, max_problems: a.max_problems, threads: cores(), ..ScanOptions::default() })
}

/// The text side of MODEL (tokenizer and prompt format), read with progress and Ctrl-C.
async fn text_model(ctx: &Ctx, model: &str, template: Option<String>) -> anyhow::Result<zoo_ops::chat::TextModel> {
    let (zoo, model) = (ctx.zoo.clone(), model.to_string());
    let note = "the unfinished download stays as .incomplete; run again to resume";
    drive(ProgressMode::Auto, note, move |cx| async move {
        zoo_ops::chat::load_text(&zoo, Some(&model), template.as_deref(), &cx.control).await
    })
    .await
}

fn messages(turns: &[Turn]) -> Vec<zoo_chat::Message> {
    turns.iter().map(|t| zoo_chat::Message::new(t.role, t.text.clone())).collect()
}

async fn stats(ctx: &Ctx, out: &mut dyn Write, a: DataStatsArgs) -> anyhow::Result<u8> {
    if let Some(p) = &a.plot {
        zoo_report::PlotFormat::from_path(p)?;
    }
    let mut o = scan_options(&a.common)?;
    if let Some(n) = a.threads {
        o.threads = n as usize;
    }
    o.languages = true;
    let tm = match &a.tokenizer {
        Some(m) => Some(text_model(ctx, m, a.template.clone()).await?),
        None => None,
    };
    let count = |turns: &[Turn]| match &tm {
        Some(tm) => tm.count(&messages(turns)).map_err(|e| e.to_string()),
        None => Ok(0),
    };
    if let Some(tm) = &tm {
        o.tokens = Some(&count);
        o.context = a.context.or(tm.context_length);
    }
    let tokenizer = tm.as_ref().map(|tm| TokenizedBy { model: tm.label.clone(), format: tm.format.name().to_string() });
    let mut r = StatsReport { scan: scan(&a.common.file, &o)?, tokenizer, plot: a.plot.clone() };
    if let Some(path) = &r.plot {
        zoo_report::write_histogram(&histogram(&r), path)?;
    }
    if a.common.json {
        write_json(out, &r)?;
    } else {
        let (r, by) = (&mut r.scan, &r.tokenizer);
        r.problem_list.truncate(a.common.max_problems);
        show(ctx, out, &a.common, r, false)?;
        let mut d = Doc::new();
        if let (Some(t), Some(by)) = (&r.tokens, by) {
            tokens_view(&mut d, t, by);
        }
        if !r.languages.is_empty() {
            let top: Vec<String> =
                r.languages.iter().take(8).map(|l| format!("{} {:.1}%", l.name, 100.0 * l.share)).collect();
            let more = if r.languages.len() > 8 { format!(", {} more", r.languages.len() - 8) } else { String::new() };
            d.line(format!("languages: {}{more}", top.join(", ")));
        }
        if let Some(p) = &a.plot {
            d.line(format!("histogram saved to {}", p.display()));
        }
        print(out, &d, ctx.style)?;
    }
    Ok(if r.scan.error.is_some() { EXIT_NOT_FOUND } else { EXIT_OK })
}

fn tokens_view(d: &mut Doc, t: &zoo_data::TokenStats, by: &TokenizedBy) {
    d.line(format!(
        "tokens ({}, {} format): {} in all, {:.0} per record on average, p50 {}, p90 {}, p99 {}, longest {}",
        by.model, by.format, t.total, t.mean, t.p50, t.p90, t.p99, t.max
    ));
    d.table(bars("tokens up to", &t.histogram));
    if t.untokenized > 0 {
        d.line(format!(
            "{} records could not be rendered in the format and are not counted (see the problems)",
            t.untokenized
        ));
    }
    if let Some(c) = t.context {
        d.line(format!(
            "{} records ({:.2}%) are longer than the context, {c} tokens",
            t.over_context,
            100.0 * t.over_context_share
        ));
    }
}

/// A histogram table with bars drawn in the terminal.
fn bars(label: &str, h: &[(u64, usize)]) -> Table {
    let most = h.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let mut t = Table::new([label, "records", ""]);
    for (bound, n) in h {
        t.push(vec![bound.to_string(), n.to_string(), "█".repeat((n * 40).div_ceil(most))]);
    }
    t
}

/// The chart of `--plot`: tokens when counted, else characters.
fn histogram(s: &StatsReport) -> zoo_report::Histogram {
    let r = &s.scan;
    let (unit, h) = match (&r.tokens, &s.tokenizer) {
        (Some(t), Some(by)) => (format!("tokens ({}, {} format)", by.model, by.format), &t.histogram),
        _ => ("characters".to_string(), &r.stats.length_histogram),
    };
    let name = std::path::Path::new(&r.file).file_name().map_or(r.file.clone(), |n| n.to_string_lossy().into_owned());
    zoo_report::Histogram {
        title: format!("{name}: {} records by length", r.stats.records),
        x_desc: format!("{unit} per record, up to"),
        y_desc: "records".to_string(),
        bins: h.iter().map(|(b, n)| (b.to_string(), *n as u64)).collect(),
    }
}

async fn render(ctx: &Ctx, out: &mut dyn Write, a: DataRenderArgs) -> anyhow::Result<u8> {
    let format = a.format.as_deref().map(format_arg).transpose()?;
    let tm = text_model(ctx, &a.model, None).await?;
    let max = a.max_length as usize;
    // The tokenizer as LLM Zoo's training prepared it: `<pad>` added when it has no pad token,
    // then `</s>`, `<s>`, `<unk>` made its special tokens (added where the vocabulary lacks them).
    let mut extra = Vec::new();
    if tm.tokenizer.pad_token.is_none() {
        extra.push("<pad>");
    }
    extra.extend(["</s>", "<s>", "<unk>"]);
    let tok = tm.tokenizer.with_special_tokens(&extra)?.truncating(max)?;
    let encode = |text: &str| tok.encode(text, true).map_err(|e| e.to_string());
    let threads = cores();
    let opts =
        zoo_data::RenderOptions { max_length: max, with_text: a.text, normalize_roles: a.normalize_roles, threads };
    let r = zoo_data::render_file(&a.file, format, &encode, opts, &a.out)?;
    if a.json {
        write_json(out, &r)?;
    } else {
        let mut d = Doc::new();
        let empty = if r.empty > 0 { format!(", {} with no turns left out", r.empty) } else { String::new() };
        d.line(format!(
            "{} → {}: {} of {} records rendered with {}'s tokenizer{empty}; {} tokens, {} of them trained on; {} cut at {max} tokens",
            r.input, r.output, r.records_written, r.records_read, tm.label, r.tokens, r.trained_tokens, r.cut
        ));
        print(out, &d, ctx.style)?;
    }
    Ok(EXIT_OK)
}

fn format_arg(name: &str) -> anyhow::Result<Format> {
    Format::from_name(name)
        .ok_or_else(|| anyhow::anyhow!("unknown format `{name}`; known: {}", Format::NAMES.join(", ")))
}

fn convert(ctx: &Ctx, out: &mut dyn Write, a: DataConvertArgs) -> anyhow::Result<u8> {
    let from = a.format.as_deref().map(format_arg).transpose()?;
    let to = format_arg(&a.to)?;
    let r = zoo_data::convert(&a.file, from, to, &a.out, a.skip_invalid)?;
    if a.json {
        write_json(out, &r)?;
    } else {
        let left_out = if r.skipped > 0 { format!(", {} left out (--skip-invalid)", r.skipped) } else { String::new() };
        let mut d = Doc::new();
        d.line(format!(
            "{} → {}: {} of {} records written as {}{left_out}",
            r.input,
            r.output,
            r.records_written,
            r.records_read,
            r.to.name()
        ));
        print(out, &d, ctx.style)?;
    }
    Ok(EXIT_OK)
}

fn show(ctx: &Ctx, out: &mut dyn Write, a: &DataArgs, r: &ScanReport, validate: bool) -> anyhow::Result<u8> {
    if validate && a.json {
        write_json(out, r)?;
    } else if !a.json {
        print(out, &view(r, validate), ctx.style)?;
    }
    Ok(if validate && r.stats.problems > 0 { EXIT_NOT_FOUND } else { EXIT_OK })
}

fn view(r: &ScanReport, validate: bool) -> Doc {
    let s = &r.stats;
    let mut d = Doc::new();
    d.line(format!(
        "{}: {} records ({}), {} turns, {} characters",
        r.file,
        s.records,
        s.format.map_or("no format", Format::name),
        s.turns,
        s.chars
    ));
    let roles: Vec<String> = s.turns_by_role.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if !roles.is_empty() {
        d.line(format!("turns by role: {}", roles.join(", ")));
    }
    if !validate && !s.length_histogram.is_empty() {
        d.table(bars("characters up to", &s.length_histogram));
        d.line(format!("longest record: {} characters", s.max_record_chars));
    }
    if let Some(e) = &r.error {
        d.line(format!("the file stops being readable at {e}: the counts are of the records before it"));
    }
    if s.problems == 0 {
        d.line("no problems");
    } else {
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        d.line(format!(
            "{} in {}",
            plural(s.problems, "problem", "problems"),
            plural(s.records_with_problems, "record", "records")
        ));
        let mut t = Table::new(["record", "path", "problem"]);
        for p in &r.problem_list {
            t.push(vec![p.record.to_string(), p.path.clone(), p.message.clone()]);
        }
        d.table(t);
        if r.problem_list.len() < s.problems {
            d.line(format!("(the first {} shown; --max-problems N for more)", r.problem_list.len()));
        }
    }
    d
}

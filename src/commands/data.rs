//! `zoo data validate|stats`: a training data file read as a stream (zoo-data), its problems
//! and counts as text or JSON.

use std::io::Write;

use serde::Serialize;
use zoo_data::{Format, Problem, Stats, check_record, read_records};
use zoo_ops::view::{Doc, Table};

use super::Ctx;
use crate::cli::{DataArgs, DataCommand, DataConvertArgs};
use crate::output::{print, write_json};
use crate::{EXIT_NOT_FOUND, EXIT_OK};

/// What both commands report: the counts and the first problems.
#[derive(Debug, Serialize)]
struct DataReport {
    file: String,
    #[serde(flatten)]
    stats: Stats,
    /// The first `--max-problems` problems (all are counted in `problems`).
    problem_list: Vec<Problem>,
}

pub fn data(ctx: &Ctx, out: &mut dyn Write, c: DataCommand) -> anyhow::Result<u8> {
    let (a, validate) = match c {
        DataCommand::Validate(a) => (a, true),
        DataCommand::Stats(a) => (a, false),
        DataCommand::Convert(a) => return convert(ctx, out, a),
    };
    let r = scan(&a)?;
    if a.json {
        write_json(out, &r)?;
    } else {
        print(out, &view(&r, validate), ctx.style)?;
    }
    Ok(if validate && r.stats.problems > 0 { EXIT_NOT_FOUND } else { EXIT_OK })
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

fn scan(a: &DataArgs) -> anyhow::Result<DataReport> {
    let format = a.format.as_deref().map(format_arg).transpose()?;
    let mut stats = Stats::default();
    let mut problem_list = Vec::new();
    let (format, _) = read_records(&a.file, format, |fmt, rec| {
        let (turns, problems) = check_record(fmt, &rec);
        stats.add(&turns, problems.len());
        let room = a.max_problems.saturating_sub(problem_list.len());
        problem_list.extend(problems.into_iter().take(room));
    })?;
    stats.format = format;
    Ok(DataReport { file: a.file.display().to_string(), stats, problem_list })
}

fn view(r: &DataReport, validate: bool) -> Doc {
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
        let most = s.length_histogram.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
        let mut t = Table::new(["characters up to", "records", ""]);
        for (bound, n) in &s.length_histogram {
            let bar = "█".repeat((n * 40).div_ceil(most));
            t.push(vec![bound.to_string(), n.to_string(), bar]);
        }
        d.table(t);
        d.line(format!("longest record: {} characters", s.max_record_chars));
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

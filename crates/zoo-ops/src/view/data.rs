//! Views of the `zoo data` reports.

use zoo_data::{
    ConvertReport, DedupReport, Format, SampleReport, ScanReport, SplitReport, StatsReport, TokenStats, TokenizedBy,
};

use super::{Doc, Table};
use crate::data::RenderOutput;

/// `validate` (`validate`: true) or the counting part of `stats`: records, turns, roles, the
/// length histogram (for stats), where the file stops being readable, and the problems listed.
pub fn scan(r: &ScanReport, validate: bool) -> Doc {
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

/// `stats`: the scan, then tokens (histogram, percentiles, records over the context),
/// languages (the 8 most common) and where the chart went.
pub fn stats(r: &StatsReport) -> Doc {
    let mut d = scan(&r.scan, false);
    if let (Some(t), Some(by)) = (&r.scan.tokens, &r.tokenizer) {
        tokens(&mut d, t, by);
    }
    let langs = &r.scan.languages;
    if !langs.is_empty() {
        let top: Vec<String> = langs.iter().take(8).map(|l| format!("{} {:.1}%", l.name, 100.0 * l.share)).collect();
        let more = if langs.len() > 8 { format!(", {} more", langs.len() - 8) } else { String::new() };
        d.line(format!("languages: {}{more}", top.join(", ")));
    }
    if let Some(p) = &r.plot {
        d.line(format!("histogram saved to {}", p.display()));
    }
    d
}

fn tokens(d: &mut Doc, t: &TokenStats, by: &TokenizedBy) {
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

/// A histogram table with a bar per row, 40 cells for the largest count.
fn bars(label: &str, h: &[(u64, usize)]) -> Table {
    let most = h.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let mut t = Table::new([label, "records", ""]);
    for (bound, n) in h {
        t.push(vec![bound.to_string(), n.to_string(), "█".repeat((n * 40).div_ceil(most))]);
    }
    t
}

fn one_line(line: String) -> Doc {
    let mut d = Doc::new();
    d.line(line);
    d
}

pub fn convert(r: &ConvertReport) -> Doc {
    let left_out = if r.skipped > 0 { format!(", {} left out (--skip-invalid)", r.skipped) } else { String::new() };
    one_line(format!(
        "{} → {}: {} of {} records written as {}{left_out}",
        r.input,
        r.output,
        r.records_written,
        r.records_read,
        r.to.name()
    ))
}

pub fn sample(r: &SampleReport) -> Doc {
    one_line(format!(
        "{} → {}: {} of {} records sampled (seed {})",
        r.input, r.output, r.records_written, r.records_read, r.seed
    ))
}

pub fn split(r: &SplitReport) -> Doc {
    let sizes: Vec<String> = r.parts.iter().map(|p| format!("{} {}", p.output, p.records)).collect();
    one_line(format!("{}: {} records split (seed {}): {}", r.input, r.records_read, r.seed, sizes.join(", ")))
}

pub fn dedup(r: &DedupReport) -> Doc {
    let near = if r.options.near.is_some() { format!(", {} near", r.near_duplicates) } else { String::new() };
    one_line(format!(
        "{} → {}: {} of {} records kept; duplicates: {} exact{near}",
        r.input, r.output, r.records_written, r.records_read, r.exact_duplicates
    ))
}

pub fn render(o: &RenderOutput) -> Doc {
    let r = &o.report;
    let empty = if r.empty > 0 { format!(", {} with no turns left out", r.empty) } else { String::new() };
    one_line(format!(
        "{} → {}: {} of {} records rendered with {}'s tokenizer{empty}; {} tokens, {} of them trained on; {} cut at {} tokens",
        r.input, r.output, r.records_written, r.records_read, o.model, r.tokens, r.trained_tokens, r.cut, o.max_length
    ))
}

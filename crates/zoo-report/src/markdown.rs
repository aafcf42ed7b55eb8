//! The Markdown rendering: one heading and one table per section, for READMEs and terminals.

use std::fmt::Write as _;

use crate::model::{BenchmarkSection, JudgeSection, Report, ResultRow, VoteSection};
use crate::text::{self, num};

/// Renders the whole report as Markdown (CommonMark tables, as GitHub renders them).
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", text::markdown(&report.title));
    let _ = writeln!(
        out,
        "Generated at {} by zoo {}.",
        text::markdown(&report.generated_at),
        text::markdown(&report.zoo_version)
    );
    for b in &report.benchmarks {
        benchmark(&mut out, b);
    }
    for j in &report.judges {
        judge(&mut out, j);
    }
    for v in &report.votes {
        votes(&mut out, v);
    }
    out
}

/// The header label of a column; its key when the label is empty.
pub(crate) fn column_label(c: &crate::model::Column) -> &str {
    if c.label.trim().is_empty() { &c.key } else { &c.label }
}

/// The "Source / provenance" text of a row: where a published number comes from and how a
/// measured one was made, whichever are given.
pub(crate) fn source_text(r: &ResultRow) -> String {
    [r.source.as_deref(), r.provenance.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn table_head(out: &mut String, cols: &[(&str, bool)]) {
    out.push('|');
    for (label, _) in cols {
        let _ = write!(out, " {} |", text::markdown(label));
    }
    out.push_str("\n|");
    for (_, numeric) in cols {
        out.push_str(if *numeric { " ---: |" } else { " --- |" });
    }
    out.push('\n');
}

fn table_row(out: &mut String, cells: &[String]) {
    out.push('|');
    for c in cells {
        let _ = write!(out, " {c} |");
    }
    out.push('\n');
}

fn benchmark(out: &mut String, b: &BenchmarkSection) {
    let _ = writeln!(out, "\n## {}\n", text::markdown(&b.title));
    let _ = writeln!(out, "Metric: {}, in percent.\n", text::markdown(&b.metric));
    if b.rows.is_empty() {
        out.push_str("No results.\n");
        return;
    }
    let mut head: Vec<(&str, bool)> = vec![("Model", false), ("Origin", false)];
    head.extend(b.columns.iter().map(|c| (column_label(c), true)));
    head.push(("Source / provenance", false));
    table_head(out, &head);
    for r in b.display_order().into_iter().filter_map(|i| b.rows.get(i)) {
        let mut cells = vec![text::markdown(&r.model), r.origin.to_string()];
        cells.extend(b.columns.iter().map(|c| num(r.value(&c.key))));
        cells.push(text::markdown(&source_text(r)));
        table_row(out, &cells);
    }
}

fn judge(out: &mut String, j: &JudgeSection) {
    let _ = writeln!(out, "\n## Judge: {}\n", text::markdown(&j.name));
    let _ =
        writeln!(out, "Reference: {}. Ratio: score as a percent of the reference's.\n", text::markdown(&j.reference));
    if j.rows.is_empty() {
        out.push_str("No results.\n");
        return;
    }
    table_head(
        out,
        &[
            ("Model", false),
            ("Ratio (%)", true),
            ("Win", true),
            ("Tie", true),
            ("Lose", true),
            ("Unparsable", true),
            ("Avg rank", true),
        ],
    );
    for r in &j.rows {
        table_row(
            out,
            &[
                text::markdown(&r.model),
                num(r.ratio),
                r.count_text(0),
                r.count_text(1),
                r.count_text(2),
                r.count_text(3),
                num(r.avg_rank),
            ],
        );
    }
}

fn votes(out: &mut String, v: &VoteSection) {
    let _ = writeln!(out, "\n## Votes: {}\n", text::markdown(&v.title));
    if v.rows.is_empty() {
        out.push_str("No results.\n");
        return;
    }
    table_head(out, &[("Model A", false), ("Model B", false), ("A wins", true), ("Ties", true), ("B wins", true)]);
    for r in &v.rows {
        table_row(
            out,
            &[
                text::markdown(&r.model_a),
                text::markdown(&r.model_b),
                r.win.to_string(),
                r.tie.to_string(),
                r.lose.to_string(),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Column, JudgeRow, Origin, VoteRow};

    fn small() -> Report {
        let col = |key: &str, label: &str, lang: Option<&str>, aggregate| Column {
            key: key.into(),
            label: label.into(),
            lang: lang.map(Into::into),
            aggregate,
        };
        let row = |model: &str, origin, vals: &[(&str, f64)], source: Option<&str>, prov: Option<&str>| ResultRow {
            model: model.into(),
            origin,
            values: vals.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            source: source.map(Into::into),
            provenance: prov.map(Into::into),
        };
        Report {
            title: "Zoo report".into(),
            generated_at: "2024-05-01T12:00:00Z".into(),
            zoo_version: "0.1.0".into(),
            benchmarks: vec![BenchmarkSection {
                name: "xmedbench".into(),
                title: "XMedBench".into(),
                metric: "accuracy".into(),
                columns: vec![
                    col("en", "en", Some("en"), false),
                    col("zh", "zh", Some("zh"), false),
                    col("avg", "Avg", None, true),
                ],
                rows: vec![
                    row(
                        "Apollo-7B",
                        Origin::Measured,
                        &[("en", 60.126), ("zh", f64::NAN), ("avg", 60.126)],
                        None,
                        Some("mode loglik, zoo 0.1.0"),
                    ),
                    row("Phoenix_7b", Origin::Published, &[("en", 40.0), ("avg", 40.0)], Some("LLM Zoo paper"), None),
                    row(
                        "Apollo-7B",
                        Origin::Published,
                        &[("en", 58.8), ("zh", 70.0), ("avg", 64.4)],
                        Some("Apollo paper"),
                        None,
                    ),
                ],
            }],
            judges: vec![JudgeSection {
                name: "llmzoo-order".into(),
                reference: "chatgpt".into(),
                rows: vec![JudgeRow {
                    model: "Phoenix".into(),
                    ratio: Some(85.2),
                    win: 10,
                    tie: 2,
                    lose: 3,
                    unparsable: 1,
                    avg_rank: None,
                }],
            }],
            votes: vec![
                VoteSection {
                    title: "Human votes".into(),
                    rows: vec![VoteRow {
                        model_a: "Phoenix".into(),
                        model_b: "ChatGPT".into(),
                        win: 4,
                        tie: 1,
                        lose: 5,
                    }],
                },
                VoteSection { title: "Empty".into(), rows: vec![] },
            ],
        }
    }

    #[test]
    fn a_small_report_renders_to_the_expected_markdown() {
        let expected = "\
# Zoo report

Generated at 2024-05-01T12:00:00Z by zoo 0.1.0.

## XMedBench

Metric: accuracy, in percent.

| Model | Origin | en | zh | Avg | Source / provenance |
| --- | --- | ---: | ---: | ---: | --- |
| Apollo-7B | published | 58.80 | 70.00 | 64.40 | Apollo paper |
| Apollo-7B | measured | 60.13 | – | 60.13 | mode loglik, zoo 0.1.0 |
| Phoenix\\_7b | published | 40.00 | – | 40.00 | LLM Zoo paper |

## Judge: llmzoo-order

Reference: chatgpt. Ratio: score as a percent of the reference's.

| Model | Ratio (%) | Win | Tie | Lose | Unparsable | Avg rank |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| Phoenix | 85.20 | 10 | 2 | 3 | 1 | – |

## Votes: Human votes

| Model A | Model B | A wins | Ties | B wins |
| --- | --- | ---: | ---: | ---: |
| Phoenix | ChatGPT | 4 | 1 | 5 |

## Votes: Empty

No results.
";
        assert_eq!(markdown(&small()), expected);
    }

    #[test]
    fn pipes_in_names_do_not_break_the_table() {
        let mut r = small();
        if let Some(row) = r.benchmarks.get_mut(0).and_then(|b| b.rows.get_mut(0)) {
            row.model = "a|b\nc".into();
        }
        assert!(markdown(&r).contains("| a\\|b c | measured |"));
    }
}

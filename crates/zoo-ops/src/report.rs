//! `zoo eval report`: the registry's evaluation results gathered into one `zoo_report::Report`:
//! every benchmark table with published and measured rows side by side, the judge comparisons
//! (results against an opponent: LLM Zoo's ratio, MT-bench's win/tie/lose) and the human votes
//! (published tables and zoo's own tallies from `eval_votes`). The renderers (table, Markdown,
//! HTML with charts, SVG/PNG plots) are `zoo_report`'s and the front end's.

use std::collections::BTreeMap;

use zoo_registry::model::{Provenance, ResultRecord};
use zoo_report::{BenchmarkSection, Column, JudgeRow, JudgeSection, Origin, Report, ResultRow, VoteRow, VoteSection};

use crate::{OpsError, Result, Zoo, provenance};

/// What goes into the report.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    /// Only these benchmarks (empty: every benchmark with results).
    pub benchmarks: Vec<String>,
    /// Only rows of these models (as the model or the opponent; empty: all).
    pub models: Vec<String>,
    /// Only benchmarks with at least one measured result.
    pub measured_only: bool,
    pub title: Option<String>,
}

/// One line of how a measured number was made.
fn provenance_line(p: &Provenance) -> String {
    let mut parts = Vec::new();
    if let Some(op) = &p.operation {
        parts.push(op.clone());
    }
    if let Some(m) = &p.mode {
        parts.push(format!("mode {m}"));
    }
    if let Some(f) = &p.prompt_format {
        parts.push(format!("prompt {f}"));
    }
    if let Some(s) = p.seed {
        parts.push(format!("seed {s}"));
    }
    if let Some(v) = &p.zoo_version {
        parts.push(format!("zoo {v}"));
    }
    if let Some(h) = &p.model_hash {
        parts.push(format!("model sha256 {}", h.chars().take(12).collect::<String>()));
    }
    if let Some(n) = &p.notes {
        parts.push(n.clone());
    }
    parts.join(", ")
}

fn origin(r: &ResultRecord) -> Origin {
    if r.origin == "measured" { Origin::Measured } else { Origin::Published }
}

/// Whether a benchmark's numbers are win/tie/lose counts (a vote-style table).
fn is_tally(columns: &[zoo_registry::model::BenchmarkColumn]) -> bool {
    let keys: Vec<&str> = columns.iter().map(|c| c.key.as_str()).collect();
    ["win", "tie", "lose"].iter().all(|k| keys.contains(k))
}

/// Builds the report from the registry.
pub async fn build(zoo: &Zoo, req: &ReportRequest) -> Result<Report> {
    let reg = zoo.registry().await?;
    let known: Vec<String> = reg.benchmarks().await?.into_iter().map(|b| b.name).collect();
    for b in &req.benchmarks {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(b)) {
            reg.close().await;
            return Err(OpsError::not_found(format!("no benchmark named {b:?}; known: {}", known.join(", "))));
        }
    }
    let tables = reg.results(None, None).await?;
    let tallies = crate::vote::tally_in(&reg, None).await;
    reg.close().await;
    let tallies = tallies?;

    let wanted_model = |r: &ResultRecord| {
        req.models.is_empty()
            || req.models.iter().any(|m| {
                r.model.eq_ignore_ascii_case(m) || r.opponent.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(m))
            })
    };
    let mut report = Report {
        title: req.title.clone().unwrap_or_else(|| "zoo evaluation report".into()),
        generated_at: crate::now_rfc3339(),
        zoo_version: provenance::ZOO_VERSION.into(),
        ..Default::default()
    };
    for t in tables {
        let b = &t.benchmark;
        if !req.benchmarks.is_empty() && !req.benchmarks.iter().any(|x| x.eq_ignore_ascii_case(&b.name)) {
            continue;
        }
        let rows: Vec<&ResultRecord> = t.rows.iter().filter(|r| wanted_model(r)).collect();
        if rows.is_empty() || (req.measured_only && !rows.iter().any(|r| r.origin == "measured")) {
            continue;
        }
        let with_opponent = rows.iter().all(|r| r.opponent.is_some());
        if with_opponent && is_tally(&b.columns) && !b.columns.iter().any(|c| c.key == "win_rate") {
            // Human-vote tables (LLM Zoo's human evaluation, HuatuoGPT-II's expert evaluation).
            report.votes.push(VoteSection {
                title: b.title.clone(),
                rows: rows
                    .iter()
                    .map(|r| VoteRow {
                        model_a: format!("{} ({})", r.model, origin(r)),
                        model_b: r.opponent.clone().unwrap_or_default(),
                        win: r.scores.get("win").copied().unwrap_or(0.0).max(0.0) as u32,
                        tie: r.scores.get("tie").copied().unwrap_or(0.0).max(0.0) as u32,
                        lose: r.scores.get("lose").copied().unwrap_or(0.0).max(0.0) as u32,
                    })
                    .collect(),
            });
        } else if with_opponent {
            // Judge comparisons, one section per opponent.
            let mut by_opponent: BTreeMap<String, Vec<&ResultRecord>> = BTreeMap::new();
            for r in &rows {
                by_opponent.entry(r.opponent.clone().unwrap_or_default()).or_default().push(r);
            }
            for (opp, rs) in by_opponent {
                report.judges.push(JudgeSection {
                    name: format!("{} (against {opp})", b.title),
                    reference: opp,
                    rows: rs
                        .iter()
                        .map(|r| {
                            let count = |k: &str| r.scores.get(k).copied().unwrap_or(0.0).max(0.0) as u32;
                            JudgeRow {
                                model: format!("{} ({})", r.model, origin(r)),
                                ratio: r.scores.get("ratio").or_else(|| r.scores.get("win_rate")).copied(),
                                win: count("win"),
                                tie: count("tie"),
                                lose: count("lose"),
                                unparsable: 0,
                                avg_rank: None,
                            }
                        })
                        .collect(),
                });
            }
        } else {
            report.benchmarks.push(BenchmarkSection {
                name: b.name.clone(),
                title: b.title.clone(),
                metric: b.metric.clone(),
                columns: b
                    .columns
                    .iter()
                    .map(|c| Column {
                        key: c.key.clone(),
                        label: c.label.clone(),
                        lang: c.lang.clone(),
                        aggregate: c.aggregate,
                    })
                    .collect(),
                rows: rows
                    .iter()
                    .map(|r| ResultRow {
                        model: match &r.opponent {
                            Some(o) => format!("{} vs {o}", r.model),
                            None => r.model.clone(),
                        },
                        origin: origin(r),
                        values: r.scores.clone(),
                        source: r.source.clone(),
                        provenance: r.provenance.as_ref().map(provenance_line),
                    })
                    .collect(),
            });
        }
    }
    // zoo's own human votes, tallied per pair.
    let wanted_vote = |a: &str, b: &str| {
        req.models.is_empty() || req.models.iter().any(|m| a.eq_ignore_ascii_case(m) || b.eq_ignore_ascii_case(m))
    };
    let tallies: Vec<_> = tallies.into_iter().filter(|t| wanted_vote(&t.model_a, &t.model_b)).collect();
    if !tallies.is_empty() && req.benchmarks.is_empty() {
        report.votes.push(VoteSection {
            title: "Human votes recorded with zoo eval vote".into(),
            rows: tallies
                .into_iter()
                .map(|t| VoteRow {
                    model_a: format!("{} (measured)", t.model_a),
                    model_b: t.model_b,
                    win: t.win as u32,
                    tie: t.tie as u32,
                    lose: t.lose as u32,
                })
                .collect(),
        });
    }
    Ok(report)
}

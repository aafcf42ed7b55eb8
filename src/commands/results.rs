//! `zoo results [NAME] [--benchmark B]`: published and measured numbers side by side, one
//! table per benchmark in the benchmark's own column order, sources as footnotes.

use std::io::Write;

use zoo_registry::ResultTable;

use super::Ctx;
use crate::cli::{Format, ResultsArgs};
use crate::output::{Table, write_json};
use crate::{EXIT_NOT_FOUND, EXIT_OK};
use zoo_ops::did_you_mean;

pub async fn results(ctx: &Ctx, out: &mut dyn Write, a: ResultsArgs) -> anyhow::Result<u8> {
    let reg = ctx.registry().await?;
    if let Some(b) = &a.benchmark {
        let benches = reg.benchmarks().await?;
        if !benches.iter().any(|x| x.name.eq_ignore_ascii_case(b)) {
            let names: Vec<String> = benches.into_iter().map(|x| x.name).collect();
            eprintln!("no benchmark named {b:?}; known: {}", names.join(", "));
            return Ok(EXIT_NOT_FOUND);
        }
    }
    if let Some(n) = &a.name {
        let names = reg.model_names().await?;
        if !names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            eprintln!("no model named {n:?}");
            let s = did_you_mean(n, &names);
            if !s.is_empty() {
                eprintln!("did you mean: {}?", s.join(", "));
            }
            return Ok(EXIT_NOT_FOUND);
        }
    }
    let tables = reg.results(a.name.as_deref(), a.benchmark.as_deref()).await?;
    reg.close().await;
    let format = if a.json { Format::Json } else { a.format };
    if format == Format::Json {
        write_json(out, &tables)?;
    } else {
        for (i, t) in tables.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write_table(ctx, out, t, format)?;
        }
    }
    if tables.is_empty() {
        eprintln!("no results match");
        return Ok(EXIT_NOT_FOUND);
    }
    Ok(EXIT_OK)
}

fn write_table(ctx: &Ctx, out: &mut dyn Write, t: &ResultTable, format: Format) -> anyhow::Result<()> {
    let b = &t.benchmark;
    let pairwise = t.rows.iter().any(|r| r.opponent.is_some());
    let mut header = vec!["MODEL".to_string()];
    if pairwise {
        header.push("VS".into());
    }
    header.push("ORIGIN".into());
    let first_score = header.len();
    header.extend(b.columns.iter().map(|c| c.label.clone()));
    header.push("SRC".into());
    let mut table = Table::new(header).right_align(&(first_score..first_score + b.columns.len()).collect::<Vec<_>>());
    let mut sources: Vec<String> = Vec::new();
    // Counts (win/tie/lose) print as integers; everything else with the 2 decimals papers use.
    let integers = t.rows.iter().flat_map(|r| r.scores.values()).all(|v| v.fract() == 0.0);
    let fmt = |v: f64| if integers { format!("{v:.0}") } else { format!("{v:.2}") };
    for r in &t.rows {
        let mut row = vec![r.model.clone()];
        if pairwise {
            row.push(r.opponent.clone().unwrap_or_else(|| "-".into()));
        }
        row.push(r.origin.clone());
        row.extend(b.columns.iter().map(|c| r.scores.get(&c.key).map(|v| fmt(*v)).unwrap_or_else(|| "-".into())));
        let src = match (&r.source, &r.provenance) {
            (Some(s), _) => s.clone(),
            (None, Some(p)) => format!("measured by zoo {}", p.zoo_version.clone().unwrap_or_default()),
            (None, None) => "unknown".into(),
        };
        let n = match sources.iter().position(|s| *s == src) {
            Some(i) => i + 1,
            None => {
                sources.push(src);
                sources.len()
            }
        };
        row.push(format!("[{n}]"));
        table.push(row);
    }
    match format {
        Format::Csv => {
            writeln!(out, "# {} ({}) — {}", b.title, b.name, b.metric)?;
            table.write_csv(out)?;
        }
        Format::Markdown => {
            writeln!(out, "### {} (`{}`), {}\n", b.title, b.name, b.metric)?;
            table.write_markdown(out)?;
            writeln!(out)?;
        }
        _ => {
            writeln!(out, "{} {}", ctx.style.bold(&b.title), ctx.style.dim(&format!("({}; {})", b.name, b.metric)))?;
            table.write_text(out, ctx.style)?;
        }
    }
    for (i, s) in sources.iter().enumerate() {
        let prefix = if format == Format::Csv { "# " } else { "" };
        writeln!(out, "{prefix}[{}] {s}", i + 1)?;
    }
    Ok(())
}

//! `zoo list` and `zoo registry query`: the same filters, different output choices.

use std::io::Write;

use zoo_registry::{ModelFilter, SortKey};

use super::Ctx;
use crate::cli::{FilterArgs, Format, ListArgs, QueryArgs, Sort};
use crate::output::{Table, fmt_params, write_json};
use crate::{EXIT_NOT_FOUND, EXIT_OK};

fn to_filter(f: &FilterArgs) -> ModelFilter {
    ModelFilter {
        family: f.family.clone(),
        arch: f.arch.clone(),
        lang: f.lang.clone(),
        kind: f.kind.map(|k| k.as_str().to_string()),
        base: f.base.clone(),
        search: f.search.clone(),
        local_only: f.local,
        sort: match f.sort {
            Sort::Name => SortKey::Name,
            Sort::Family => SortKey::Family,
            Sort::Params => SortKey::Params,
            Sort::Release => SortKey::Release,
            Sort::Context => SortKey::Context,
            Sort::Kind => SortKey::Kind,
        },
        descending: f.reverse,
        limit: f.limit,
    }
}

async fn fetch(ctx: &Ctx, f: &FilterArgs) -> anyhow::Result<Vec<zoo_registry::model::ModelRecord>> {
    let reg = ctx.registry().await?;
    let cached = ctx.cached_repos();
    let models = reg.models(&to_filter(f), Some(&cached)).await?;
    reg.close().await;
    Ok(models)
}

fn languages_cell(langs: &[String]) -> String {
    match langs.len() {
        0 => "-".into(),
        n if n <= 4 => langs.join(","),
        n => format!("{},+{}", langs[..3].join(","), n - 3),
    }
}

pub async fn list(ctx: &Ctx, out: &mut dyn Write, a: ListArgs) -> anyhow::Result<u8> {
    let models = fetch(ctx, &a.filter).await?;
    if a.json {
        write_json(out, &models)?;
    } else if !models.is_empty() {
        let mut t =
            Table::new(["NAME", "FAMILY", "KIND", "ARCH", "PARAMS", "LANGUAGES", "BASE", "LOCAL"]).right_align(&[4]);
        for m in &models {
            t.push(vec![
                m.name.clone(),
                m.family.clone(),
                m.kind.clone(),
                m.arch.clone().unwrap_or_else(|| "-".into()),
                fmt_params(m.params),
                languages_cell(&m.languages),
                m.base.clone().unwrap_or_else(|| "-".into()),
                if m.local == Some(true) { "yes".into() } else { "-".into() },
            ]);
        }
        t.write_text(out, ctx.style)?;
    }
    if models.is_empty() {
        eprintln!("no models match");
        return Ok(EXIT_NOT_FOUND);
    }
    Ok(EXIT_OK)
}

/// Default columns of `registry query` for table, csv and markdown output.
const QUERY_COLUMNS: &[&str] =
    &["name", "family", "kind", "arch", "params", "hf_repo", "base", "delta_algorithm", "languages", "context_length"];

pub async fn query(ctx: &Ctx, out: &mut dyn Write, a: QueryArgs) -> anyhow::Result<u8> {
    let models = fetch(ctx, &a.filter).await?;
    let format = if a.json { Format::Json } else { a.format };
    if format == Format::Json {
        write_json(out, &models)?;
    } else {
        let cols: Vec<String> = if a.columns.is_empty() {
            QUERY_COLUMNS.iter().map(|s| s.to_string()).collect()
        } else {
            a.columns.clone()
        };
        let objects: Vec<serde_json::Value> = models.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
        if let Some(first) = objects.first()
            && let Some(bad) = cols.iter().find(|c| first.get(c.as_str()).is_none())
        {
            let keys: Vec<&str> = first.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
            anyhow::bail!("unknown column {bad:?}; model objects have: {}", keys.join(", "));
        }
        let mut t = Table::new(cols.iter().map(|c| c.to_uppercase()));
        if format != Format::Table {
            t.header = cols.clone();
        }
        for o in &objects {
            t.push(
                cols.iter()
                    .map(|c| match (format, c.as_str()) {
                        // Exact counts (6.738415616) read as in `zoo list` (6.74B); csv and markdown keep them.
                        (Format::Table, "params") => fmt_params(o.get("params").and_then(serde_json::Value::as_f64)),
                        _ => cell(o.get(c.as_str()), format),
                    })
                    .collect(),
            );
        }
        match format {
            Format::Csv => t.write_csv(out)?,
            Format::Markdown => t.write_markdown(out)?,
            _ => {
                if !models.is_empty() {
                    t.write_text(out, ctx.style)?
                }
            }
        }
    }
    if models.is_empty() {
        eprintln!("no models match");
        return Ok(EXIT_NOT_FOUND);
    }
    Ok(EXIT_OK)
}

fn cell(v: Option<&serde_json::Value>, format: Format) -> String {
    use serde_json::Value;
    let empty = if format == Format::Table { "-" } else { "" };
    match v {
        None | Some(Value::Null) => empty.into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

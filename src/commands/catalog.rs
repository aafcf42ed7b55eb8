//! The catalog and registry commands: `list`, `show`, `results`, `env` and `registry ...`.
//! Queries and views come from `zoo_ops::{catalog, view}`; this module picks the format.

use std::io::{Read, Write};

use anyhow::Context as _;
use clap::ValueEnum as _;
use serde::Serialize;
use zoo_ops::{catalog, view};
use zoo_registry::{Catalog, ModelFilter, SortKey};

use super::Ctx;
use crate::cli::{
    CheckArgs, FilterArgs, Format, ImportArgs, JsonArg, ListArgs, QueryArgs, ResultsArgs, Sort, SyncArgs,
};
use crate::output::{self, print, report, write_csv, write_json, write_markdown};
use crate::{EXIT_NOT_FOUND, EXIT_OK, paths};

fn filter(f: &FilterArgs) -> ModelFilter {
    ModelFilter {
        family: f.family.clone(),
        arch: f.arch.clone(),
        lang: f.lang.clone(),
        kind: f.kind.and_then(|k| k.to_possible_value()).map(|v| v.get_name().to_string()),
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

/// Exit 1 with a note on stderr when a listing came back empty.
fn found(n: usize, what: &str) -> u8 {
    if n == 0 {
        eprintln!("no {what} match");
        return EXIT_NOT_FOUND;
    }
    EXIT_OK
}

pub async fn list(ctx: &Ctx, out: &mut dyn Write, a: ListArgs) -> anyhow::Result<u8> {
    let models = catalog::models(&ctx.zoo, &filter(&a.filter)).await?;
    if a.json || !models.is_empty() {
        report(out, ctx.style, a.json, &models, |m| output::table(view::models(m)))?;
    }
    Ok(found(models.len(), "models"))
}

pub async fn query(ctx: &Ctx, out: &mut dyn Write, a: QueryArgs) -> anyhow::Result<u8> {
    let models = catalog::models(&ctx.zoo, &filter(&a.filter)).await?;
    let format = if a.json { Format::Json } else { a.format };
    let table = || view::columns(&models, &a.columns, format == Format::Table).map_err(anyhow::Error::msg);
    match format {
        Format::Json => write_json(out, &models)?,
        Format::Csv => write_csv(&table()?, out)?,
        Format::Markdown => write_markdown(&table()?, out)?,
        Format::Table if !models.is_empty() => output::write_text(&table()?, out, ctx.style)?,
        Format::Table => {}
    }
    Ok(found(models.len(), "models"))
}

pub async fn show(ctx: &Ctx, out: &mut dyn Write, a: crate::cli::ShowArgs) -> anyhow::Result<u8> {
    let d = catalog::detail(&ctx.zoo, &a.name).await?;
    report(out, ctx.style, a.json, &d, view::model_detail)?;
    Ok(EXIT_OK)
}

pub async fn results(ctx: &Ctx, out: &mut dyn Write, a: ResultsArgs) -> anyhow::Result<u8> {
    let tables = catalog::results(&ctx.zoo, a.name.as_deref(), a.benchmark.as_deref()).await?;
    let format = if a.json { Format::Json } else { a.format };
    if format == Format::Json {
        write_json(out, &tables)?;
    }
    for (i, t) in tables.iter().enumerate().filter(|_| format != Format::Json) {
        let v = view::results(t);
        let b = v.benchmark;
        let prefix = if format == Format::Csv { "# " } else { "" };
        if i > 0 {
            writeln!(out)?;
        }
        match format {
            Format::Csv => {
                writeln!(out, "# {} ({}) — {}", b.title, b.name, b.metric)?;
                write_csv(&v.table, out)?;
            }
            Format::Markdown => {
                writeln!(out, "### {} (`{}`), {}\n", b.title, b.name, b.metric)?;
                write_markdown(&v.table, out)?;
                writeln!(out)?;
            }
            _ => {
                let note = ctx.style.dim(&format!("({}; {})", b.name, b.metric));
                writeln!(out, "{} {note}", ctx.style.bold(&b.title))?;
                output::write_text(&v.table, out, ctx.style)?;
            }
        }
        for (i, s) in v.sources.iter().enumerate() {
            writeln!(out, "{prefix}[{}] {s}", i + 1)?;
        }
    }
    Ok(found(tables.len(), "results"))
}

pub fn check(ctx: &Ctx, out: &mut dyn Write, a: CheckArgs) -> anyhow::Result<u8> {
    let cat = match &a.dir {
        Some(d) => Catalog::from_dir(d)?,
        None => ctx.zoo.load_catalog()?,
    };
    let problems = zoo_registry::check(&cat);
    report(out, ctx.style, a.json, &problems, |p| view::problems(p))?;
    let what = format!("{} files, {} models, {} results", cat.files.len(), cat.models.len(), cat.results.len());
    if problems.is_empty() {
        eprintln!("catalog {}: ok ({what})", cat.origin);
        Ok(EXIT_OK)
    } else {
        eprintln!("catalog {}: {} problem(s) ({what})", cat.origin, problems.len());
        Ok(EXIT_NOT_FOUND)
    }
}

pub async fn sync(ctx: &Ctx, out: &mut dyn Write, a: SyncArgs) -> anyhow::Result<u8> {
    let reg = zoo_registry::Registry::open(&ctx.db.value).await?;
    let r = reg.sync(&ctx.zoo.load_catalog()?, a.force).await?;
    reg.close().await;
    report(out, ctx.style, a.json, &r, |r| view::sync(r, &ctx.db.value.display().to_string()))?;
    Ok(EXIT_OK)
}

pub async fn import_results(ctx: &Ctx, out: &mut dyn Write, a: ImportArgs) -> anyhow::Result<u8> {
    let text = if a.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading results from stdin")?;
        s
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?
    };
    let items = zoo_ops::results::parse(&text, &a.file.display().to_string())?;
    let r = zoo_ops::results::import(&ctx.zoo, items).await?;
    if a.json {
        write_json(out, &r)?;
    } else {
        writeln!(out, "recorded {} measured result(s)", r.recorded.len())?;
    }
    Ok(EXIT_OK)
}

/// `registry benchmarks|datasets|families`: a list as a table or JSON (exit 1 when empty).
pub async fn listing(ctx: &Ctx, out: &mut dyn Write, what: &str, a: JsonArg) -> anyhow::Result<u8> {
    let n = match what {
        "benchmarks" => emit(ctx, out, a.json, &catalog::benchmarks(&ctx.zoo).await?, view::benchmarks)?,
        "datasets" => emit(ctx, out, a.json, &catalog::datasets(&ctx.zoo).await?, view::datasets)?,
        _ => emit(ctx, out, a.json, &catalog::families(&ctx.zoo).await?, view::families)?,
    };
    Ok(if n == 0 { EXIT_NOT_FOUND } else { EXIT_OK })
}

fn emit<T: Serialize>(
    ctx: &Ctx,
    out: &mut dyn Write,
    json: bool,
    v: &[T],
    table: fn(&[T]) -> view::Table,
) -> anyhow::Result<usize> {
    report(out, ctx.style, json, &v, |v| output::table(table(v)))?;
    Ok(v.len())
}

/// `zoo env`: every resolved path and setting, and where it came from.
pub async fn env(ctx: &Ctx, out: &mut dyn Write, a: JsonArg) -> anyhow::Result<u8> {
    #[derive(Serialize)]
    struct Row {
        name: &'static str,
        value: String,
        source: String,
    }
    let row = |name, value: String, source: String| Row { name, value, source };
    let schema = if ctx.db.value.exists() {
        // Read-only look: `env` must work even when the database is broken.
        match zoo_registry::Registry::open(&ctx.db.value).await {
            Ok(r) => {
                let v = r.schema_version().await.map(|v| v.to_string()).unwrap_or_else(|e| format!("unreadable: {e}"));
                r.close().await;
                v
            }
            Err(e) => format!("unusable: {e}"),
        }
    } else {
        "not created yet".into()
    };
    let hf = paths::hf_cache();
    let from_env = |var: &str, other: &str| {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) { var.to_string() } else { other.to_string() }
    };
    let rows = vec![
        row("zoo_version", env!("CARGO_PKG_VERSION").into(), "build".into()),
        row("database", ctx.db.value.display().to_string(), ctx.db.source.clone()),
        row("database_schema", schema, format!("this zoo knows up to {}", zoo_registry::known_schema_version())),
        row(
            "catalog",
            ctx.catalog.value.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in".into()),
            ctx.catalog.source.clone(),
        ),
        row("hf_cache", hf.value.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()), hf.source),
        row("hf_offline", paths::hf_offline().to_string(), from_env("HF_HUB_OFFLINE", "default")),
        row("color", ctx.style.color.to_string(), from_env("NO_COLOR", "--color / ZOO_COLOR / terminal")),
    ];
    if a.json {
        write_json(out, &rows)?;
    } else {
        let mut t = view::Table::new(["SETTING", "VALUE", "FROM"]);
        rows.into_iter().for_each(|r| t.push(vec![r.name.to_string(), r.value, r.source]));
        print(out, &output::table(t), ctx.style)?;
    }
    Ok(EXIT_OK)
}

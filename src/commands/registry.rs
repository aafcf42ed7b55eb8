//! `zoo registry check|sync|import-results|benchmarks|datasets|families`.

use std::io::{Read, Write};

use anyhow::Context as _;
use zoo_registry::{Catalog, check as lint};

use super::Ctx;
use crate::cli::{CheckArgs, ImportArgs, JsonArg, SyncArgs};
use crate::output::{Table, write_json};
use crate::{EXIT_NOT_FOUND, EXIT_OK};

pub fn check(ctx: &Ctx, out: &mut dyn Write, a: CheckArgs) -> anyhow::Result<u8> {
    let cat = match &a.dir {
        Some(d) => Catalog::from_dir(d)?,
        None => ctx.load_catalog()?,
    };
    let problems = lint(&cat);
    if a.json {
        write_json(out, &problems)?;
    } else {
        for p in &problems {
            writeln!(out, "{}:{}: {} {}", p.file, p.line, p.message, ctx.style.dim(&format!("[{}]", p.code)))?;
        }
    }
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
    let cat = ctx.load_catalog()?;
    let report = reg.sync(&cat, a.force).await?;
    reg.close().await;
    if a.json {
        write_json(out, &report)?;
    } else if !report.ran {
        writeln!(out, "registry {} already holds this catalog; nothing to do", ctx.db.value.display())?;
    } else {
        writeln!(
            out,
            "synced {} into {}: {} added, {} updated, {} removed, {} unchanged ({} models, {} published results)",
            report.catalog,
            ctx.db.value.display(),
            report.added,
            report.updated,
            report.removed,
            report.unchanged,
            report.models,
            report.results
        )?;
    }
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
    let ids = zoo_ops::results::import(&ctx.zoo, items).await?;
    if a.json {
        write_json(out, &ids)?;
    } else {
        writeln!(out, "recorded {} measured result(s)", ids.len())?;
    }
    Ok(EXIT_OK)
}

pub async fn benchmarks(ctx: &Ctx, out: &mut dyn Write, a: JsonArg) -> anyhow::Result<u8> {
    let reg = ctx.registry().await?;
    let v = reg.benchmarks().await?;
    reg.close().await;
    if a.json {
        write_json(out, &v)?;
    } else {
        let mut t = Table::new(["NAME", "TITLE", "METRIC", "COLUMNS"]);
        for b in &v {
            t.push(vec![
                b.name.clone(),
                b.title.clone(),
                b.metric.clone(),
                b.columns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(","),
            ]);
        }
        t.write_text(out, ctx.style)?;
    }
    Ok(if v.is_empty() { EXIT_NOT_FOUND } else { EXIT_OK })
}

pub async fn datasets(ctx: &Ctx, out: &mut dyn Write, a: JsonArg) -> anyhow::Result<u8> {
    let reg = ctx.registry().await?;
    let v = reg.datasets().await?;
    reg.close().await;
    if a.json {
        write_json(out, &v)?;
    } else {
        let mut t = Table::new(["NAME", "KIND", "LANGUAGES", "HF REPO"]);
        for d in &v {
            t.push(vec![
                d.name.clone(),
                d.kind.clone().unwrap_or_else(|| "-".into()),
                if d.languages.is_empty() { "-".into() } else { d.languages.join(",") },
                d.hf_repo.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        t.write_text(out, ctx.style)?;
    }
    Ok(if v.is_empty() { EXIT_NOT_FOUND } else { EXIT_OK })
}

pub async fn families(ctx: &Ctx, out: &mut dyn Write, a: JsonArg) -> anyhow::Result<u8> {
    let reg = ctx.registry().await?;
    let v = reg.families().await?;
    reg.close().await;
    if a.json {
        write_json(out, &v)?;
    } else {
        let mut t = Table::new(["NAME", "TITLE", "ORGANIZATION"]);
        for f in &v {
            t.push(vec![f.name.clone(), f.title.clone(), f.organization.clone().unwrap_or_else(|| "-".into())]);
        }
        t.write_text(out, ctx.style)?;
    }
    Ok(if v.is_empty() { EXIT_NOT_FOUND } else { EXIT_OK })
}

//! `zoo verify`, `zoo cache ls|rm|prune` and `zoo add`: run `zoo_ops::{verify, cache, add}`,
//! ask before removing, and print tables or the reports.

use std::io::{BufRead, IsTerminal, Write};

use zoo_hub::hash::CheckStatus;
use zoo_ops::cache::{CacheInfo, DeletePlan};
use zoo_ops::{Control, add::AddRequest, verify::VerifyRequest};

use super::{Ctx, drive};
use crate::cli::{AddArgs, CacheCommand, CacheLsArgs, RemovalFlags, VerifyArgs};
use crate::output::write_json;
use crate::progress::{ProgressMode, StderrProgress, human_bytes};
use crate::{EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK};

/// Notes (scan warnings) on stderr; nothing here runs long enough to cancel.
fn quick() -> Control {
    Control::new(std::sync::Arc::new(StderrProgress::new(ProgressMode::Off)), zoo_progress::CancelToken::new())
}

pub async fn verify(ctx: &Ctx, out: &mut dyn Write, a: VerifyArgs) -> anyhow::Result<u8> {
    let (zoo, req) =
        (ctx.zoo.clone(), VerifyRequest { target: a.target.clone(), threads: zoo_ops::default_threads(a.threads) });
    let report =
        drive(a.progress, "stopping", move |cx| async move { zoo_ops::verify::verify(&zoo, &req, &cx.control).await })
            .await?;
    if a.json {
        write_json(out, &report)?;
    } else {
        for r in &report.files {
            let (word, detail) = match &r.status {
                CheckStatus::Ok => ("ok", String::new()),
                CheckStatus::Missing => ("MISSING", String::new()),
                CheckStatus::Corrupt { expected, actual } => {
                    ("CORRUPT", format!("  expected {expected}, got {actual}"))
                }
                CheckStatus::SizeMismatch { expected, actual } => {
                    ("CORRUPT", format!("  expected {expected} bytes, found {actual}"))
                }
                CheckStatus::Unreadable(e) => ("UNREADABLE", format!("  {e}")),
            };
            let word = if word == "ok" { ctx.style.green(word) } else { ctx.style.red(word) };
            let size = r.size.map(human_bytes).unwrap_or_default();
            writeln!(out, "{word:<10} {size:>10}  {}  {}{detail}", r.owner, r.file)?;
        }
        writeln!(
            out,
            "{} files, {} in {:.1}s ({}/s): {} ok, {} with problems",
            report.files.len(),
            human_bytes(report.bytes),
            report.seconds,
            human_bytes((report.bytes as f64 / report.seconds.max(1e-9)) as u64),
            report.ok,
            report.problems
        )?;
    }
    Ok(if report.problems == 0 { EXIT_OK } else { EXIT_NOT_FOUND })
}

pub async fn cache(ctx: &Ctx, out: &mut dyn Write, c: CacheCommand) -> anyhow::Result<u8> {
    let (info, plan, flags) = match c {
        CacheCommand::Ls(a) => return ls(out, &zoo_ops::cache::ls(&ctx.zoo, &quick())?, a),
        CacheCommand::Rm(a) => {
            let (info, plan) = zoo_ops::cache::plan_rm(&ctx.zoo, &a.targets, &quick()).await?;
            (info, plan, a.removal)
        }
        CacheCommand::Prune(a) => {
            let (info, plan) = zoo_ops::cache::plan_prune(&ctx.zoo, &quick())?;
            (info, plan, a.removal)
        }
    };
    carry_out(ctx, out, &info, plan, flags).await
}

fn age(unix: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let d = now.saturating_sub(unix);
    match d {
        _ if unix == 0 => "-".into(),
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", d / 60),
        3600..86_400 => format!("{} h ago", d / 3600),
        _ => format!("{} days ago", d / 86_400),
    }
}

fn ls(out: &mut dyn Write, info: &CacheInfo, a: CacheLsArgs) -> anyhow::Result<u8> {
    if a.json {
        write_json(out, info)?;
        return Ok(EXIT_OK);
    }
    if a.revisions {
        writeln!(out, "{:<48} {:<40} {:>10} {:>6} {:<16} REFS", "ID", "REVISION", "SIZE", "FILES", "LAST_MODIFIED")?;
        for r in &info.repos {
            for v in &r.revisions {
                let id = format!("{}/{}", r.repo_type, r.repo_id);
                let (size, age) = (human_bytes(v.size_on_disk), age(v.last_modified));
                writeln!(
                    out,
                    "{id:<48} {:<40} {size:>10} {:>6} {age:<16} {}",
                    v.commit,
                    v.files.len(),
                    v.refs.join(",")
                )?;
            }
        }
    } else {
        writeln!(
            out,
            "{:<48} {:>10} {:>6} {:<16} {:<16} REFS",
            "ID", "SIZE", "FILES", "LAST_ACCESSED", "LAST_MODIFIED"
        )?;
        for r in &info.repos {
            let id = format!("{}/{}", r.repo_type, r.repo_id);
            let (size, acc, modi) = (human_bytes(r.size_on_disk), age(r.last_accessed), age(r.last_modified));
            let refs = r.refs.keys().cloned().collect::<Vec<_>>().join(",");
            writeln!(out, "{id:<48} {size:>10} {:>6} {acc:<16} {modi:<16} {refs}", r.nb_files)?;
        }
    }
    writeln!(out, "{} repos, {} in {}", info.repos.len(), human_bytes(info.size_on_disk), info.root.display())?;
    Ok(EXIT_OK)
}

/// Show a plan, ask (or require --yes), run it, and print what was freed.
async fn carry_out(
    ctx: &Ctx,
    out: &mut dyn Write,
    info: &CacheInfo,
    plan: DeletePlan,
    f: RemovalFlags,
) -> anyhow::Result<u8> {
    if !f.json {
        for r in &plan.repos {
            writeln!(out, "remove repo      {r}")?;
        }
        for r in &plan.revisions {
            writeln!(out, "remove revision  {r}")?;
        }
        for p in &plan.paths {
            writeln!(out, "  {}", p.display())?;
        }
    }
    if plan.paths.is_empty() || f.dry_run {
        let (n, freed) = (plan.paths.len(), plan.freed_bytes);
        if f.json {
            write_json(out, &zoo_ops::cache::not_removed(plan, f.dry_run))?;
        } else if n == 0 {
            writeln!(out, "nothing to remove; freed 0 B")?;
        } else {
            writeln!(out, "dry run: would free {} ({n} paths)", human_bytes(freed))?;
        }
        return Ok(EXIT_OK);
    }
    if !f.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("error: not removing anything without confirmation: pass --yes (or --dry-run to look first)");
            return Ok(EXIT_ERROR);
        }
        out.flush()?;
        eprint!("remove these, freeing {}? [y/N] ", human_bytes(plan.freed_bytes));
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing removed");
            return Ok(EXIT_ERROR);
        }
    }
    let n = plan.paths.len();
    let r = zoo_ops::cache::remove(&ctx.zoo, info, plan).await?;
    if f.json {
        write_json(out, &r)?;
    } else {
        writeln!(out, "freed {} ({n} paths removed)", human_bytes(r.freed_bytes))?;
    }
    Ok(EXIT_OK)
}

pub async fn add(ctx: &Ctx, out: &mut dyn Write, a: AddArgs) -> anyhow::Result<u8> {
    let req = AddRequest {
        path: a.path.clone(),
        name: a.name.clone(),
        family: a.family.clone(),
        template: a.template.clone(),
        replace: a.replace,
        threads: zoo_ops::default_threads(a.threads),
    };
    let zoo = ctx.zoo.clone();
    let r = drive(a.progress, "stopping", move |cx| async move { zoo_ops::add::add(&zoo, &req, &cx.control).await })
        .await?;
    if a.json {
        write_json(out, &r)?;
    } else {
        writeln!(
            out,
            "added {} ({} {}, {} files, {}) from {}; manifest sha256 {}",
            r.model.name,
            r.model.kind,
            r.model.arch.as_deref().unwrap_or("?"),
            r.copy.files.len(),
            human_bytes(r.copy.size.unwrap_or(0) as u64),
            r.copy.path,
            r.copy.sha256.as_deref().unwrap_or("")
        )?;
    }
    Ok(EXIT_OK)
}

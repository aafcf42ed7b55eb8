//! `zoo verify`, `zoo cache ls|rm|prune` and `zoo add`: the Hugging Face cache as
//! `zoo_hub::scan` reads it, files re-hashed by `zoo_hub::hash`, and the registry's copies.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;
use zoo_hub::hash::{CheckStatus, Expected, FileToCheck};
use zoo_hub::scan::{CacheInfo, DeletePlan};
use zoo_progress::CancelToken;
use zoo_registry::model::{FileRecord, ModelRecord};
use zoo_registry::{LocalCopy, manifest_sha256};

use super::{Ctx, ModelNotFound};
use crate::cli::{AddArgs, CacheCommand, CacheLsArgs, CachePruneArgs, CacheRmArgs, RemovalFlags, VerifyArgs};
use crate::progress::{StderrProgress, human_bytes};
use crate::{EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK};

fn cache_root() -> anyhow::Result<PathBuf> {
    crate::paths::hf_cache()
        .value
        .context("cannot place the Hugging Face cache: set HF_HUB_CACHE or HF_HOME (no HOME either)")
}

fn scan() -> anyhow::Result<CacheInfo> {
    let root = cache_root()?;
    if !root.exists() {
        // No cache yet is an empty cache.
        return Ok(CacheInfo { root, repos: Vec::new(), size_on_disk: 0, warnings: Vec::new() });
    }
    let info = zoo_hub::scan::scan(&root).with_context(|| format!("reading the cache at {}", root.display()))?;
    for w in &info.warnings {
        eprintln!("warning: {w}");
    }
    Ok(info)
}

fn threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
}

// ---------- verify ----------

#[derive(Debug, Serialize)]
struct VerifiedFile {
    /// What the file belongs to: `org/name@commit` or a registry model name.
    owner: String,
    file: String,
    path: PathBuf,
    size: Option<u64>,
    #[serde(flatten)]
    status: CheckStatus,
}

#[derive(Debug, Serialize)]
struct VerifyReport {
    files: Vec<VerifiedFile>,
    ok: usize,
    problems: usize,
    bytes: u64,
    seconds: f64,
}

/// Files of every revision of the cached repos that match `filter`, expected digests from the
/// blob names plus the registry's sha256 for the repo's catalog model.
fn cache_checks(
    info: &CacheInfo,
    repo: Option<&str>,
    rev: Option<&str>,
    registry: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<(String, FileToCheck)> {
    let mut out = Vec::new();
    for r in &info.repos {
        if repo.is_some_and(|want| !want.eq_ignore_ascii_case(&r.repo_id)) {
            continue;
        }
        for v in &r.revisions {
            if let Some(want) = rev
                && v.commit != want
                && !v.refs.iter().any(|x| x == want)
            {
                continue;
            }
            let owner = format!("{}@{}", r.repo_id, &v.commit[..12.min(v.commit.len())]);
            for f in &v.files {
                let mut expected: Vec<Expected> =
                    f.blob_name.as_deref().and_then(zoo_hub::hash::expected_from_blob_name).into_iter().collect();
                if let Some(sha) = registry.get(&r.repo_id.to_lowercase()).and_then(|m| m.get(&f.rel_path)) {
                    expected.push(Expected::Sha256(sha.clone()));
                }
                let path = f.blob_path.clone().unwrap_or_else(|| f.file_path.clone());
                out.push((
                    owner.clone(),
                    FileToCheck { label: f.rel_path.clone(), path, expected, size: Some(f.size).filter(|s| *s > 0) },
                ));
            }
        }
    }
    out
}

fn copy_checks(c: &LocalCopy) -> Vec<(String, FileToCheck)> {
    let root = PathBuf::from(&c.path);
    c.files
        .iter()
        .map(|f| {
            let path = if root.is_file() && root.file_name().is_some_and(|n| n.to_string_lossy() == f.path) {
                root.clone()
            } else {
                root.join(&f.path)
            };
            (
                c.model.clone(),
                FileToCheck {
                    label: f.path.clone(),
                    path,
                    expected: f.sha256.clone().map(Expected::Sha256).into_iter().collect(),
                    size: f.size.map(|s| s as u64),
                },
            )
        })
        .collect()
}

pub async fn verify(ctx: &Ctx, out: &mut dyn Write, a: VerifyArgs) -> anyhow::Result<u8> {
    let info = scan()?;
    let reg = ctx.registry().await?;
    // The registry's sha256 per repo (lowercase id) and path.
    let mut registry: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let names: Vec<String> = reg.model_names().await?;
    let mut copies = reg.local_copies(None).await?;
    let mut checks: Vec<(String, FileToCheck)> = Vec::new();
    let mut copy_ids: Vec<i64> = Vec::new();
    let mut fill_registry = async |repo: &str| -> anyhow::Result<()> {
        for name in reg.models_by_repo(repo).await? {
            if let Some(m) = reg.model(&name, &[]).await? {
                let e = registry.entry(repo.to_lowercase()).or_default();
                for f in m.files.unwrap_or_default() {
                    if let Some(s) = f.sha256 {
                        e.insert(f.path, s.to_lowercase());
                    }
                }
            }
        }
        Ok(())
    };
    match a.target.as_deref() {
        None => {
            for r in &info.repos {
                fill_registry(&r.repo_id).await?;
            }
            checks.extend(cache_checks(&info, None, None, &registry));
            // Copies inside the cache are covered by the blob names already.
            copies.retain(|c| !Path::new(&c.path).starts_with(&info.root));
            for c in &copies {
                checks.extend(copy_checks(c));
                copy_ids.extend(c.id);
            }
        }
        Some(t) => {
            let p = Path::new(t);
            let (id, rev) = match t.split_once('@') {
                Some((i, r)) => (i, Some(r)),
                None => (t, None),
            };
            let record = reg.model(id, &[]).await?;
            if p.exists() {
                let abs = std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
                let mine: Vec<&LocalCopy> =
                    copies.iter().filter(|c| std::fs::canonicalize(&c.path).is_ok_and(|cp| cp == abs)).collect();
                for c in &mine {
                    checks.extend(copy_checks(c));
                    copy_ids.extend(c.id);
                }
                if mine.is_empty() {
                    // A snapshot folder of the cache.
                    let hit = info.repos.iter().find_map(|r| {
                        r.revisions.iter().find(|v| r.path.join("snapshots").join(&v.commit) == abs).map(|v| (r, v))
                    });
                    match hit {
                        Some((r, v)) => {
                            fill_registry(&r.repo_id).await?;
                            checks.extend(cache_checks(&info, Some(&r.repo_id), Some(&v.commit), &registry));
                        }
                        None => bail!(ModelNotFound(format!(
                            "{t}: neither a registered copy (`zoo add` it) nor a snapshot of the cache at {}: nothing to check it against",
                            info.root.display()
                        ))),
                    }
                }
            } else if let Some(m) = record {
                for c in copies.iter().filter(|c| c.model.eq_ignore_ascii_case(&m.name)) {
                    if Path::new(&c.path).starts_with(&info.root) {
                        continue;
                    }
                    checks.extend(copy_checks(c));
                    copy_ids.extend(c.id);
                }
                if let Some(repo) = &m.hf_repo {
                    fill_registry(repo).await?;
                    checks.extend(cache_checks(&info, Some(repo), rev.or(m.revision.as_deref()), &registry));
                }
                if checks.is_empty() {
                    bail!(ModelNotFound(format!("{}: no copy on this machine (`zoo pull {}`)", m.name, m.name)));
                }
            } else if id.contains('/') {
                if zoo_hub::repo_folder_name(id).is_none() {
                    bail!(ModelNotFound(format!("{id:?} is not a repo id (ORG/NAME)")));
                }
                fill_registry(id).await?;
                checks.extend(cache_checks(&info, Some(id), rev, &registry));
                if checks.is_empty() {
                    bail!(ModelNotFound(format!("{t} is not in the Hugging Face cache at {}", info.root.display())));
                }
            } else {
                let near = super::did_you_mean(id, &names);
                let near = if near.is_empty() { String::new() } else { format!("; did you mean {}?", near.join(", ")) };
                bail!(ModelNotFound(format!("no model, repo or path {t:?}{near}")));
            }
        }
    }
    let files: Vec<FileToCheck> = checks.iter().map(|(_, f)| f.clone()).collect();
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(&f.path).ok().map(|m| m.len())).sum();
    let progress = Arc::new(StderrProgress::new(a.progress));
    let n = threads(a.threads);
    let started = std::time::Instant::now();
    let statuses = {
        let cancel = CancelToken::new();
        let c2 = cancel.clone();
        let p2 = progress.clone();
        let mut job = tokio::task::spawn_blocking(move || zoo_hub::hash::check_files(&files, n, p2.as_ref(), &c2));
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        tokio::select! {
            r = &mut job => r?,
            _ = interrupt.recv() => { cancel.cancel(); job.await?; bail!("interrupted"); }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let results: Vec<VerifiedFile> = checks
        .into_iter()
        .zip(statuses)
        .map(|((owner, f), status)| VerifiedFile { owner, file: f.label, path: f.path, size: f.size, status })
        .collect();
    let problems = results.iter().filter(|r| !matches!(r.status, CheckStatus::Ok)).count();
    if problems == 0 {
        for id in copy_ids {
            reg.mark_verified(id).await?;
        }
    }
    reg.close().await;
    let report = VerifyReport { ok: results.len() - problems, problems, bytes: total, seconds, files: results };
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
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
            writeln!(
                out,
                "{word:<10} {:>10}  {}  {}{detail}",
                r.size.map(human_bytes).unwrap_or_default(),
                r.owner,
                r.file
            )?;
        }
        writeln!(
            out,
            "{} files, {} in {:.1}s ({}/s): {} ok, {} with problems",
            report.files.len(),
            human_bytes(report.bytes),
            seconds,
            human_bytes((report.bytes as f64 / seconds.max(1e-9)) as u64),
            report.ok,
            report.problems
        )?;
    }
    Ok(if problems == 0 { EXIT_OK } else { EXIT_NOT_FOUND })
}

// ---------- cache ls / rm / prune ----------

pub async fn cache(ctx: &Ctx, out: &mut dyn Write, c: CacheCommand) -> anyhow::Result<u8> {
    match c {
        CacheCommand::Ls(a) => ls(ctx, out, a),
        CacheCommand::Rm(a) => rm(ctx, out, a).await,
        CacheCommand::Prune(a) => prune(ctx, out, a).await,
    }
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

fn ls(_ctx: &Ctx, out: &mut dyn Write, a: CacheLsArgs) -> anyhow::Result<u8> {
    let info = scan()?;
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &info)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    if a.revisions {
        writeln!(out, "{:<48} {:<40} {:>10} {:>6} {:<16} REFS", "ID", "REVISION", "SIZE", "FILES", "LAST_MODIFIED")?;
        for r in &info.repos {
            for v in &r.revisions {
                writeln!(
                    out,
                    "{:<48} {:<40} {:>10} {:>6} {:<16} {}",
                    format!("{}/{}", r.repo_type, r.repo_id),
                    v.commit,
                    human_bytes(v.size_on_disk),
                    v.files.len(),
                    age(v.last_modified),
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
            writeln!(
                out,
                "{:<48} {:>10} {:>6} {:<16} {:<16} {}",
                format!("{}/{}", r.repo_type, r.repo_id),
                human_bytes(r.size_on_disk),
                r.nb_files,
                age(r.last_accessed),
                age(r.last_modified),
                r.refs.keys().cloned().collect::<Vec<_>>().join(",")
            )?;
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
    flags: RemovalFlags,
) -> anyhow::Result<u8> {
    let RemovalFlags { dry_run, yes, json } = flags;
    if !json {
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
    if plan.paths.is_empty() {
        if json {
            serde_json::to_writer_pretty(
                &mut *out,
                &serde_json::json!({"plan": plan, "freed_bytes": 0, "dry_run": dry_run}),
            )?;
            writeln!(out)?;
        } else {
            writeln!(out, "nothing to remove; freed 0 B")?;
        }
        return Ok(EXIT_OK);
    }
    if dry_run {
        if json {
            serde_json::to_writer_pretty(
                &mut *out,
                &serde_json::json!({"plan": plan, "freed_bytes": 0, "dry_run": true}),
            )?;
            writeln!(out)?;
        } else {
            writeln!(out, "dry run: would free {} ({} paths)", human_bytes(plan.freed_bytes), plan.paths.len())?;
        }
        return Ok(EXIT_OK);
    }
    if !yes {
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
    let freed = zoo_hub::scan::execute(&plan, &info.root)?;
    // Registered copies that lived in what was removed are forgotten.
    let reg = ctx.registry().await?;
    let mut forgotten = 0;
    for p in &plan.paths {
        forgotten += reg.forget_copies_under(&p.display().to_string()).await?;
    }
    reg.close().await;
    if json {
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({"plan": plan, "freed_bytes": freed, "dry_run": false, "forgotten_copies": forgotten}),
        )?;
        writeln!(out)?;
    } else {
        writeln!(out, "freed {} ({} paths removed)", human_bytes(freed), plan.paths.len())?;
    }
    Ok(EXIT_OK)
}

async fn rm(ctx: &Ctx, out: &mut dyn Write, a: CacheRmArgs) -> anyhow::Result<u8> {
    let info = scan()?;
    let reg = ctx.registry().await?;
    let mut plans: Vec<DeletePlan> = Vec::new();
    // Revisions are planned per repo in one call, so blobs shared only by removed revisions
    // are freed too.
    let mut revisions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &a.targets {
        let (id, rev) = match t.split_once('@') {
            Some((i, r)) => (i.to_string(), Some(r.to_string())),
            None => (t.clone(), None),
        };
        // A registry name means its repo.
        let id = match reg.model(&id, &[]).await? {
            Some(m) => m.hf_repo.unwrap_or(id),
            None => id,
        };
        let is_commit = id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if is_commit {
            let owner = info.repos.iter().find(|r| r.revisions.iter().any(|v| v.commit == id));
            match owner {
                Some(r) => revisions.entry(r.repo_id.clone()).or_default().push(id.clone()),
                None => bail!(ModelNotFound(format!("no cached revision {id}"))),
            }
            continue;
        }
        if zoo_hub::repo_folder_name(&id).is_none() {
            bail!(ModelNotFound(format!("{t:?} is not a repo id (ORG/NAME), a registry name or a commit id")));
        }
        let Some(repo) = info.repos.iter().find(|r| r.repo_id.eq_ignore_ascii_case(&id)) else {
            bail!(ModelNotFound(format!("{id} is not in the cache at {}", info.root.display())));
        };
        match rev {
            Some(rev) => {
                let commit = repo.refs.get(&rev).cloned().unwrap_or(rev.clone());
                if !repo.revisions.iter().any(|v| v.commit == commit) {
                    bail!(ModelNotFound(format!("{id} has no cached revision {rev}")));
                }
                revisions.entry(repo.repo_id.clone()).or_default().push(commit);
            }
            None => plans.extend(info.plan_remove_repo(&repo.repo_id)),
        }
    }
    reg.close().await;
    for (repo, mut commits) in revisions {
        if plans.iter().any(|p| p.repos.contains(&repo)) {
            continue; // the whole repo goes anyway
        }
        commits.sort();
        commits.dedup();
        plans.push(info.plan_remove_revisions(&repo, &commits));
    }
    let mut plan = DeletePlan::default();
    for p in plans {
        plan.freed_bytes += p.freed_bytes;
        plan.paths.extend(p.paths);
        plan.revisions.extend(p.revisions);
        plan.repos.extend(p.repos);
    }
    carry_out(ctx, out, &info, plan, a.removal).await
}

async fn prune(ctx: &Ctx, out: &mut dyn Write, a: CachePruneArgs) -> anyhow::Result<u8> {
    let info = scan()?;
    let plan = info.plan_prune();
    carry_out(ctx, out, &info, plan, a.removal).await
}

// ---------- add ----------

/// Every regular file under `dir` (not following links out, skipping hidden folders).
fn files_under(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let ft = e.file_type()?;
        if ft.is_dir() {
            if !name.starts_with('.') {
                files_under(&path, &r, out)?;
            }
        } else if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            out.push((r, path));
        }
    }
    Ok(())
}

pub async fn add(ctx: &Ctx, out: &mut dyn Write, a: AddArgs) -> anyhow::Result<u8> {
    let path = std::fs::canonicalize(&a.path).with_context(|| format!("{}: not found", a.path.display()))?;
    if a.name.trim().is_empty() || a.name.contains(['/', '@']) || a.name.chars().any(char::is_whitespace) {
        bail!("--name {:?}: a registry name has no spaces, '/' or '@'", a.name);
    }
    // It must be a model zoo can read: the checkpoint opens and the architecture is known.
    let ckpt = zoo_weights::Checkpoint::open(&path)?;
    let is_gguf = ckpt.gguf().is_some();
    let config = match ckpt.gguf() {
        Some(g) => zoo_infer::ModelConfig::from_gguf(g)?,
        None => {
            let cfg = path.join("config.json");
            let text = std::fs::read_to_string(&cfg).with_context(|| format!("{}: cannot read", cfg.display()))?;
            zoo_infer::ModelConfig::from_hf_json(&cfg, &text)?
        }
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if path.is_file() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        files.push((name, path.clone()));
    } else {
        files_under(&path, "", &mut files)?;
    }
    files.sort();
    let progress = Arc::new(StderrProgress::new(a.progress));
    let n = threads(a.threads);
    let paths: Vec<(String, PathBuf)> = files.clone();
    let p2 = progress.clone();
    let digests = tokio::task::spawn_blocking(move || hash_all(&paths, n, p2.as_ref())).await??;
    let records: Vec<FileRecord> = files
        .iter()
        .zip(&digests)
        .map(|((rel, p), sha)| FileRecord {
            path: rel.clone(),
            size: std::fs::metadata(p).ok().map(|m| m.len() as i64),
            sha256: Some(sha.clone()),
        })
        .collect();
    let manifest = manifest_sha256(&records);
    let size: i64 = records.iter().filter_map(|f| f.size).sum();
    let rec = ModelRecord {
        name: a.name.clone(),
        family: a.family.clone().unwrap_or_else(|| "local".into()),
        kind: if is_gguf { "quantized".into() } else { "full".into() },
        arch: Some(config.arch.name().to_string()),
        hf_architecture: (!is_gguf).then(|| config.arch_name.clone()),
        chat_template: a.template.clone(),
        context_length: Some(config.context_length as i64),
        description: Some(format!("added with `zoo add` from {}", path.display())),
        source: Some(path.display().to_string()),
        origin: "local".into(),
        files: Some(records.clone()),
        ..Default::default()
    };
    let copy = LocalCopy {
        id: None,
        model: a.name.clone(),
        path: path.display().to_string(),
        revision: None,
        sha256: Some(manifest.clone()),
        size: Some(size),
        derived_from: Some(
            serde_json::json!({"added": path.display().to_string(), "zoo_version": env!("CARGO_PKG_VERSION")}),
        ),
        verified_at: Some(super::now_rfc3339()),
        files: records,
    };
    let reg = ctx.registry().await?;
    let added = reg.add_local_model(&rec, &copy, a.replace).await;
    reg.close().await;
    if let Err(e @ zoo_registry::Error::NameTaken { .. }) = added {
        bail!(ModelNotFound(e.to_string()));
    }
    added?;
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &serde_json::json!({"model": rec, "copy": copy}))?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "added {} ({} {}, {} files, {}) from {}; manifest sha256 {}",
            a.name,
            rec.kind,
            rec.arch.as_deref().unwrap_or("?"),
            copy.files.len(),
            human_bytes(size as u64),
            path.display(),
            manifest
        )?;
    }
    Ok(EXIT_OK)
}

/// sha256 of each file, in parallel over files.
fn hash_all(
    files: &[(String, PathBuf)],
    threads: usize,
    progress: &dyn zoo_progress::Progress,
) -> anyhow::Result<Vec<String>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let cancel = CancelToken::new();
    let results: Vec<std::sync::Mutex<Option<zoo_hub::Result<String>>>> =
        files.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(files.len()).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((rel, p)) = files.get(i) else { break };
                    let r = zoo_hub::hash::sha256_file(p, progress, rel, &cancel);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().ok().flatten().context("hashing stopped")?.map_err(anyhow::Error::from))
        .collect()
}

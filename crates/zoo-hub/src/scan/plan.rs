//! Removal plans from a scan: a whole repo, chosen revisions, or what `prune` takes. A
//! [`DeletePlan`] lists exact paths and the bytes they free, each blob counted once however
//! many files point at it, so that a caller can preview it before [`super::execute`].

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CacheInfo, CachedRepo};

/// Paths to remove and what removing them frees; built by the `plan_*` methods of
/// [`CacheInfo`], carried out by [`execute`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeletePlan {
    /// Files, links and folders to remove, sorted, without duplicates.
    pub paths: Vec<PathBuf>,
    /// Bytes freed, each blob counted once however many files point at it.
    pub freed_bytes: u64,
    /// Commits of the revisions removed (all of them for a whole repo).
    pub revisions: Vec<String>,
    /// Ids of the repos removed whole.
    pub repos: Vec<String>,
}

impl DeletePlan {
    /// True when the plan removes nothing.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

impl CacheInfo {
    /// Removing the whole folder of repo `id` (see [`CacheInfo::repo`]); `None` when absent.
    /// Frees every file in it: blobs, partial downloads, plain copies, refs.
    pub fn plan_remove_repo(&self, id: &str) -> Option<DeletePlan> {
        let repo = self.repo(id)?;
        Some(DeletePlan {
            paths: vec![repo.path.clone()],
            freed_bytes: repo.folder_bytes,
            revisions: repo.revisions.iter().map(|r| r.commit.clone()).collect(),
            repos: vec![repo.repo_id.clone()],
        })
    }

    /// Removing the revisions `commits` (full ids; unknown ones are ignored, see
    /// `DeletePlan::revisions`) of repo `id`: their snapshot and `.no_exist` folders, the refs
    /// pointing at them, and the blobs no remaining revision uses.
    pub fn plan_remove_revisions(&self, id: &str, commits: &[String]) -> DeletePlan {
        let mut plan = PlanBuilder::default();
        if let Some(repo) = self.repo(id) {
            let wanted: BTreeSet<&str> = commits.iter().map(String::as_str).collect();
            repo.plan_revisions(&wanted, &mut plan);
        }
        plan.finish()
    }

    /// What `prune` removes in every repo: detached revisions (no ref points at them) with the
    /// blobs only they use, unreferenced blobs, and partial downloads.
    ///
    /// A partial download may belong to a download still running; callers that cannot rule that
    /// out should not prune while one runs.
    pub fn plan_prune(&self) -> DeletePlan {
        let mut plan = PlanBuilder::default();
        for repo in &self.repos {
            let detached: BTreeSet<&str> =
                repo.revisions.iter().filter(|r| r.refs.is_empty()).map(|r| r.commit.as_str()).collect();
            repo.plan_revisions(&detached, &mut plan);
            for path in repo.unreferenced_blobs.iter().chain(&repo.incomplete) {
                plan.blob(path, repo.blob_sizes.get(path).copied().unwrap_or(0));
            }
        }
        plan.finish()
    }
}

impl CachedRepo {
    /// Adds to `plan` the removal of this repo's revisions named in `commits`.
    fn plan_revisions(&self, commits: &BTreeSet<&str>, plan: &mut PlanBuilder) {
        let (removed, kept): (Vec<_>, Vec<_>) =
            self.revisions.iter().partition(|r| commits.contains(r.commit.as_str()));
        if removed.is_empty() {
            return;
        }
        let kept_blobs: HashSet<&Path> =
            kept.iter().flat_map(|r| &r.files).filter_map(|f| f.blob_path.as_deref()).collect();
        for rev in &removed {
            plan.revisions.push(rev.commit.clone());
            plan.paths.insert(self.path.join("snapshots").join(&rev.commit));
            if let Some(&bytes) = self.no_exist.get(&rev.commit) {
                plan.paths.insert(self.path.join(".no_exist").join(&rev.commit));
                plan.freed_bytes += bytes;
            }
            for file in &rev.files {
                match &file.blob_path {
                    None => plan.freed_bytes += file.size,
                    Some(blob) if !kept_blobs.contains(blob.as_path()) => {
                        // A link whose blob is missing plans nothing beyond its snapshot folder.
                        if let Some(&size) = self.blob_sizes.get(blob) {
                            plan.blob(blob, size);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        for (name, commit) in &self.refs {
            if commits.contains(commit.as_str()) {
                plan.paths.insert(self.path.join("refs").join(name));
                plan.freed_bytes += self.ref_sizes.get(name).copied().unwrap_or(0);
            }
        }
    }
}

/// Collects a [`DeletePlan`], counting each blob once.
#[derive(Default)]
struct PlanBuilder {
    paths: BTreeSet<PathBuf>,
    freed_bytes: u64,
    revisions: Vec<String>,
}

impl PlanBuilder {
    fn blob(&mut self, path: &Path, size: u64) {
        if self.paths.insert(path.to_path_buf()) {
            self.freed_bytes += size;
        }
    }

    fn finish(self) -> DeletePlan {
        DeletePlan {
            paths: self.paths.into_iter().collect(),
            freed_bytes: self.freed_bytes,
            revisions: self.revisions,
            repos: Vec::new(),
        }
    }
}

//! The standard Hugging Face cache (`models--org--name/{blobs,snapshots,refs}`), shared with
//! Python's `huggingface_hub`: where a repo lives in it ([`HfCache`]), pulling into it with
//! resume and sha256 checks ([`download`]), hashing files ([`hash`]), and listing, removing and
//! pruning what it holds ([`scan`]).

use std::path::{Path, PathBuf};

pub mod download;
pub mod error;
pub mod hash;
pub mod pypi;
pub mod scan;
pub mod select;

pub use error::{HubError, Result};

/// A Hugging Face hub cache folder (what `HF_HUB_CACHE` points at).
#[derive(Debug, Clone)]
pub struct HfCache {
    root: PathBuf,
}

impl HfCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a model repo: `models--{org}--{name}`. Returns `None` for ids that could
    /// escape the cache (`..`, absolute paths, empty parts).
    pub fn repo_dir(&self, repo_id: &str) -> Option<PathBuf> {
        repo_folder_name(repo_id).map(|n| self.root.join(n))
    }

    /// True when at least one snapshot of `repo_id` holds at least one file.
    pub fn has_snapshot(&self, repo_id: &str) -> bool {
        let Some(dir) = self.repo_dir(repo_id) else { return false };
        let Ok(snaps) = std::fs::read_dir(dir.join("snapshots")) else { return false };
        snaps.flatten().any(|s| std::fs::read_dir(s.path()).map(|mut it| it.next().is_some()).unwrap_or(false))
    }

    /// The snapshot folder of `repo_id` at `revision` (a branch or tag under `refs/`, or a
    /// commit hash); without a revision `main`, else the most recently modified snapshot.
    pub fn snapshot_dir(&self, repo_id: &str, revision: Option<&str>) -> Option<PathBuf> {
        let dir = self.repo_dir(repo_id)?;
        let snaps = dir.join("snapshots");
        let safe =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let by_ref = |r: &str| -> Option<PathBuf> {
            let commit = std::fs::read_to_string(dir.join("refs").join(r)).ok()?;
            let commit = commit.trim();
            safe(commit).then(|| snaps.join(commit)).filter(|p| p.is_dir())
        };
        match revision {
            Some(rev) if safe(rev) => by_ref(rev).or_else(|| Some(snaps.join(rev)).filter(|p| p.is_dir())),
            Some(_) => None,
            None => by_ref("main").or_else(|| {
                std::fs::read_dir(&snaps)
                    .ok()?
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
                    .map(|e| e.path())
            }),
        }
    }

    /// Repo ids (`org/name`) of every model repo in the cache, sorted.
    pub fn model_repos(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Vec::new() };
        let mut out: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter_map(|n| n.strip_prefix("models--").map(|r| r.replacen("--", "/", 1)))
            .collect();
        out.sort();
        out
    }
}

/// `org/name` → `models--org--name`, refusing ids that are not a plain `org/name` or `name`.
pub fn repo_folder_name(repo_id: &str) -> Option<String> {
    let parts: Vec<&str> = repo_id.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match parts.as_slice() {
        [name] if ok(name) => Some(format!("models--{name}")),
        [org, name] if ok(org) && ok(name) => Some(format!("models--{org}--{name}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_follow_the_hub_layout() {
        assert_eq!(repo_folder_name("org/name").as_deref(), Some("models--org--name"));
        assert_eq!(repo_folder_name("gpt2").as_deref(), Some("models--gpt2"));
        for bad in ["", "../x", "a/../b", "/abs", "a/b/c", "a//b", "a/.."] {
            assert_eq!(repo_folder_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn snapshot_presence_is_read_from_disk() {
        let dir = std::env::temp_dir().join(format!("zoo-hub-test-{}", std::process::id()));
        let cache = HfCache::new(&dir);
        assert!(!cache.has_snapshot("org/name"));
        let snap = dir.join("models--org--name/snapshots/abc");
        std::fs::create_dir_all(&snap).unwrap();
        assert!(!cache.has_snapshot("org/name"), "empty snapshot is not a copy");
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        assert!(cache.has_snapshot("org/name"));
        assert_eq!(cache.model_repos(), vec!["org/name".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

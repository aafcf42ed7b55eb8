//! Scanning the cache: repos, revisions, files and sizes; removing and pruning.
//!
//! [`scan`] reads a Hugging Face cache the way Python's `scan_cache_dir` does
//! (`models--org--name/{blobs,snapshots,refs,.no_exist}`, also `datasets--` and `spaces--`), and
//! [`CacheInfo`] plans removals like `hf cache rm` / `hf cache prune`: a [`DeletePlan`] lists
//! exact paths and the bytes they free, so a caller can preview it before [`execute`].
//!
//! Invariant: nothing a scan finds is followed out of its repo. A snapshot entry must be a plain
//! file or a link of the form `../…/blobs/<name>` that lands in the same repo's real `blobs/`
//! folder; anything else (absolute targets, `..` escapes, links into another repo, links in
//! `blobs/`, refs that are not commit ids, odd names) becomes a warning naming the path and is
//! neither counted nor planned for deletion. Every decision uses `symlink_metadata`, and
//! [`execute`] removes links as links and refuses paths not strictly inside the cache root.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{HubError, Result};

/// What kind of Hub repo a cache folder holds; serialized as `model`, `dataset`, `space`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    Model,
    Dataset,
    Space,
}

impl RepoType {
    /// `model`, `dataset` or `space`.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
            RepoType::Space => "space",
        }
    }

    fn from_folder_prefix(prefix: &str) -> Option<Self> {
        match prefix {
            "models" => Some(RepoType::Model),
            "datasets" => Some(RepoType::Dataset),
            "spaces" => Some(RepoType::Space),
            _ => None,
        }
    }
}

impl std::fmt::Display for RepoType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a scan found in one cache folder.
#[derive(Debug, Clone, Serialize)]
pub struct CacheInfo {
    /// The cache folder scanned (as given).
    pub root: PathBuf,
    /// Repos sorted by type, then id.
    pub repos: Vec<CachedRepo>,
    /// Sum of the repos' `size_on_disk`.
    pub size_on_disk: u64,
    /// Entries skipped, each naming its path and why (hostile links, odd names, broken links).
    pub warnings: Vec<String>,
}

/// One `models--org--name` (or `datasets--`, `spaces--`) folder.
#[derive(Debug, Clone, Serialize)]
pub struct CachedRepo {
    /// `org/name` (or `name` for repos without an org).
    pub repo_id: String,
    pub repo_type: RepoType,
    /// The repo folder.
    pub path: PathBuf,
    /// Bytes of the distinct blobs (and plain copies) that snapshots use, each counted once.
    /// Unreferenced blobs and partial downloads are not included (as in Python's scan).
    pub size_on_disk: u64,
    /// How many distinct blobs (and plain copies) the snapshots use.
    pub nb_files: usize,
    /// Revisions sorted by commit.
    pub revisions: Vec<CachedRevision>,
    /// Ref name (`main`, `pr/1`, relative to `refs/`) → commit.
    pub refs: BTreeMap<String, String>,
    /// Newest modification time of the files used, unix seconds (the folder's when empty).
    pub last_modified: u64,
    /// Newest access time of the files used, unix seconds (the folder's when empty).
    pub last_accessed: u64,
    /// Partial downloads left in `blobs/`: `*.incomplete` (Python), `*.part` / `*.sync.part`
    /// (hf-hub crate), `*.zoo-tmp*` (ours).
    pub incomplete: Vec<PathBuf>,
    /// Complete blobs that no snapshot entry points at.
    pub unreferenced_blobs: Vec<PathBuf>,
    /// Size of every regular file in `blobs/` (complete or partial), by path: what plans free.
    #[serde(skip)]
    blob_sizes: BTreeMap<PathBuf, u64>,
    /// Size of each ref file in `refs`, by ref name.
    #[serde(skip)]
    ref_sizes: BTreeMap<String, u64>,
    /// Commits with a `.no_exist/<commit>` folder (the negative cache of that revision) and the
    /// bytes of the files in it (usually empty markers).
    #[serde(skip)]
    no_exist: BTreeMap<String, u64>,
    /// Bytes of every regular file under the repo folder, each counted once: what removing the
    /// whole repo frees.
    #[serde(skip)]
    folder_bytes: u64,
}

/// One `snapshots/<commit>` folder.
#[derive(Debug, Clone, Serialize)]
pub struct CachedRevision {
    /// The commit id (40 lowercase hex digits).
    pub commit: String,
    /// Ref names that point at this commit, sorted; empty for a detached revision.
    pub refs: Vec<String>,
    /// Files sorted by `rel_path`.
    pub files: Vec<CachedFile>,
    /// Bytes of the distinct blobs (and plain copies) this revision uses.
    pub size_on_disk: u64,
    /// Modification time of the snapshot folder, unix seconds.
    pub last_modified: u64,
}

/// One file of a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct CachedFile {
    /// Path inside the repo, `/`-separated (`config.json`, `onnx/model.onnx`).
    pub rel_path: String,
    /// The entry in the snapshot folder (a link, or a plain copy).
    pub file_path: PathBuf,
    /// The blob the link points at; `None` for a plain copy.
    pub blob_path: Option<PathBuf>,
    /// The blob's name (its etag: a sha256 or git sha1 for Hub files); `None` for a plain copy.
    pub blob_name: Option<String>,
    /// Bytes of the content; 0 when the link's blob is missing (a warning says so).
    pub size: u64,
}

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

/// Scans every `models--*`, `datasets--*` and `spaces--*` folder of the cache at `root`.
///
/// Hidden entries (`.locks`) and plain files at the top are skipped silently; other folders,
/// links and anything hostile inside a repo become `warnings`. Fails only when `root` itself
/// cannot be listed (a missing cache is an error; the caller may treat it as empty).
pub fn scan(root: &Path) -> Result<CacheInfo> {
    let mut warnings = Vec::new();
    let mut repos = Vec::new();
    for (name, path) in list_dir(root).map_err(HubError::io(root, "read dir"))? {
        let Some(name) = name.to_str() else {
            warnings.push(format!("{}: name is not UTF-8; skipped", path.display()));
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Some(meta) = meta_or_warn(&path, &mut warnings) else { continue };
        if meta.is_symlink() {
            warnings.push(format!("{}: is a link; not followed", path.display()));
            continue;
        }
        if !meta.is_dir() {
            continue;
        }
        let Some((repo_type, repo_id)) = parse_repo_folder(name) else {
            warnings.push(format!("{}: not a models--, datasets-- or spaces-- folder; skipped", path.display()));
            continue;
        };
        repos.push(scan_repo(&path, &meta, repo_type, repo_id, &mut warnings));
    }
    repos.sort_by(|a, b| (a.repo_type, &a.repo_id).cmp(&(b.repo_type, &b.repo_id)));
    let size_on_disk = repos.iter().map(|r| r.size_on_disk).sum();
    Ok(CacheInfo { root: root.to_path_buf(), repos, size_on_disk, warnings })
}

impl CacheInfo {
    /// The repo named `id`: a repo folder name (`datasets--org--name`), else the model
    /// `org/name`, else the only dataset or space with that id.
    pub fn repo(&self, id: &str) -> Option<&CachedRepo> {
        let by_folder = self.repos.iter().find(|r| r.path.file_name() == Some(OsStr::new(id)));
        let by_model = || self.repos.iter().find(|r| r.repo_type == RepoType::Model && r.repo_id == id);
        let by_other = || {
            let mut others = self.repos.iter().filter(|r| r.repo_id == id);
            match (others.next(), others.next()) {
                (Some(r), None) => Some(r),
                _ => None,
            }
        };
        by_folder.or_else(by_model).or_else(by_other)
    }

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

/// Carries out `plan` inside the cache at `root` and returns the bytes of the regular files
/// removed (a file with several names inside the removed set counted once).
///
/// Every path is checked before anything is removed: it must lie strictly inside `root`
/// (compared lexically, `..` refused) and no folder between `root` and it may be a link;
/// otherwise nothing is removed and the error is [`HubError::Hostile`]. Links are removed as
/// links, folders with their content (never following links), paths already gone are skipped.
/// Folders left empty by the removals are removed too, up to the repo folder.
pub fn execute(plan: &DeletePlan, root: &Path) -> Result<u64> {
    let abs_root = std::path::absolute(root).map_err(HubError::io(root, "resolve"))?;
    let mut checked = Vec::with_capacity(plan.paths.len());
    for path in &plan.paths {
        let rel = inside_root(&abs_root, path)?;
        parents_are_real_dirs(&abs_root, &rel)?;
        checked.push(rel);
    }
    let mut seen = HashSet::new();
    let mut freed = 0;
    for rel in &checked {
        // Again: an earlier removal may have emptied the way (then the path is gone too).
        if parents_are_real_dirs(&abs_root, rel)? {
            freed += remove_tree(&abs_root.join(rel), &mut seen)?;
        }
    }
    for rel in &checked {
        remove_empty_parents(&abs_root, rel);
    }
    Ok(freed)
}

/// `path` relative to `abs_root`, when it is strictly inside it with only plain components.
fn inside_root(abs_root: &Path, path: &Path) -> Result<PathBuf> {
    let refuse = |reason: &str| HubError::Hostile { what: path.display().to_string(), reason: reason.to_string() };
    let abs = std::path::absolute(path).map_err(HubError::io(path, "resolve"))?;
    let rel = abs.strip_prefix(abs_root).map_err(|_| refuse("not inside the cache"))?;
    if rel.as_os_str().is_empty() {
        return Err(refuse("is the cache itself"));
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refuse("has `..` or other non-plain components"));
    }
    Ok(rel.to_path_buf())
}

/// True when every folder between `abs_root` and `rel` exists and is a real folder; false when
/// one is missing (the path is already gone); a link or a file there is refused.
fn parents_are_real_dirs(abs_root: &Path, rel: &Path) -> Result<bool> {
    let mut dir = abs_root.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        dir.push(c);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(HubError::Hostile {
                    what: abs_root.join(rel).display().to_string(),
                    reason: format!("{} is a link or a file, not a folder", dir.display()),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(HubError::Io { path: dir, op: "stat", source: e }),
        }
    }
    Ok(true)
}

/// Removes `path` (a link as a link, a folder with its content, never following links) and
/// returns the bytes of the regular files removed that were not `seen` before.
fn remove_tree(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(HubError::Io { path: path.to_path_buf(), op: "stat", source: e }),
    };
    if meta.is_dir() {
        let mut freed = 0;
        for (_, child) in list_dir(path).map_err(HubError::io(path, "read dir"))? {
            freed += remove_tree(&child, seen)?;
        }
        std::fs::remove_dir(path).map_err(HubError::io(path, "remove dir"))?;
        return Ok(freed);
    }
    std::fs::remove_file(path).map_err(HubError::io(path, "remove"))?;
    let counted = meta.is_file() && file_key(&meta).is_none_or(|k| seen.insert(k));
    Ok(if counted { meta.len() } else { 0 })
}

/// Bytes of the regular files under `path` (itself included), never following links, each
/// file counted once (`seen`); unreadable parts count 0.
fn tree_bytes(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.is_dir() {
        let children = list_dir(path).unwrap_or_default();
        return children.iter().map(|(_, child)| tree_bytes(child, seen)).sum();
    }
    let counted = meta.is_file() && file_key(&meta).is_none_or(|k| seen.insert(k));
    if counted { meta.len() } else { 0 }
}

/// Removes the folders above `rel` that are now empty, stopping below `abs_root`.
fn remove_empty_parents(abs_root: &Path, rel: &Path) {
    let mut parent = rel.parent();
    while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
        // Fails (and stops the climb) when the folder still holds something or is gone.
        if std::fs::remove_dir(abs_root.join(p)).is_err() {
            break;
        }
        parent = p.parent();
    }
}

/// Identity of a file for counting hard links once; `None` where the platform has none.
#[cfg(unix)]
fn file_key(meta: &Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_key(_meta: &Metadata) -> Option<(u64, u64)> {
    None
}

/// `models--org--name` → (model, `org/name`); `None` for other prefixes or names with parts
/// that are empty, `.`/`..`, or hold characters the Hub does not allow.
fn parse_repo_folder(name: &str) -> Option<(RepoType, String)> {
    let (prefix, rest) = name.split_once("--")?;
    let repo_type = RepoType::from_folder_prefix(prefix)?;
    let parts: Vec<&str> = rest.split("--").collect();
    if parts.len() > 2 || !parts.iter().all(|p| valid_name(p)) {
        return None;
    }
    Some((repo_type, parts.join("/")))
}

/// A plain name: not empty, not `.`/`..`, only ASCII letters, digits, `-`, `_`, `.`.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A git commit id: 40 lowercase hex digits.
fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A partial download: `*.incomplete` (Python), `*.part` and `*.sync.part` (hf-hub), `*.zoo-tmp*`.
fn is_partial(name: &str) -> bool {
    name.ends_with(".incomplete") || name.ends_with(".part") || name.contains(".zoo-tmp")
}

/// A folder's entries (name, path), sorted by name.
fn list_dir(dir: &Path) -> std::io::Result<Vec<(std::ffi::OsString, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        out.push((entry.file_name(), entry.path()));
    }
    out.sort();
    Ok(out)
}

fn unix_secs(t: std::io::Result<SystemTime>) -> u64 {
    t.ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
}

/// A complete blob found in `blobs/`.
struct Blob {
    size: u64,
    modified: u64,
    accessed: u64,
}

/// What `blobs/` held.
#[derive(Default)]
struct BlobsDir {
    /// Complete blobs by name.
    complete: BTreeMap<String, Blob>,
    incomplete: Vec<PathBuf>,
    sizes: BTreeMap<PathBuf, u64>,
    /// `blobs/` is a real folder (or absent): a link to a name not in it is a missing blob,
    /// not a hostile one.
    trusted: bool,
}

/// Where to put what a scan of one repo finds.
struct RepoScan<'a> {
    repo_dir: &'a Path,
    blobs: &'a BlobsDir,
    warnings: &'a mut Vec<String>,
}

fn scan_repo(
    dir: &Path,
    dir_meta: &Metadata,
    repo_type: RepoType,
    repo_id: String,
    warnings: &mut Vec<String>,
) -> CachedRepo {
    let blobs = scan_blobs(&dir.join("blobs"), warnings);
    let (refs, ref_sizes) = scan_refs(dir, warnings);

    let mut revisions = Vec::new();
    let snapshots = dir.join("snapshots");
    let mut ctx = RepoScan { repo_dir: dir, blobs: &blobs, warnings };
    for (path, meta, commit) in commit_folders(&snapshots, ctx.warnings) {
        let mut files = Vec::new();
        scan_snapshot_dir(&mut ctx, &path, &mut vec![commit.clone()], &mut files);
        files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        let size_on_disk = distinct_size(&files);
        let refs = refs.iter().filter(|(_, c)| **c == commit).map(|(n, _)| n.clone()).collect();
        revisions.push(CachedRevision { commit, refs, files, size_on_disk, last_modified: unix_secs(meta.modified()) });
    }
    let commits: BTreeSet<&str> = revisions.iter().map(|r| r.commit.as_str()).collect();
    for (name, commit) in &refs {
        if !commits.contains(commit.as_str()) {
            ctx.warnings
                .push(format!("{}: points at {commit}, which has no snapshot", dir.join("refs").join(name).display()));
        }
    }
    let no_exist = commit_folders(&dir.join(".no_exist"), ctx.warnings)
        .into_iter()
        .map(|(path, _, c)| (c, tree_bytes(&path, &mut HashSet::new())))
        .collect();

    let all_files: Vec<CachedFile> = revisions.iter().flat_map(|r| r.files.iter().cloned()).collect();
    let used: BTreeSet<&str> = all_files.iter().filter_map(|f| f.blob_name.as_deref()).collect();
    let unreferenced_blobs =
        blobs.complete.keys().filter(|n| !used.contains(n.as_str())).map(|n| dir.join("blobs").join(n)).collect();
    let mut nb_files = all_files.iter().filter(|f| f.blob_name.is_none()).count();
    let (mut last_modified, mut last_accessed) = (0, 0);
    for name in &used {
        if let Some(b) = blobs.complete.get(*name) {
            nb_files += 1;
            last_modified = last_modified.max(b.modified);
            last_accessed = last_accessed.max(b.accessed);
        }
    }
    for f in all_files.iter().filter(|f| f.blob_name.is_none()) {
        if let Ok(m) = std::fs::symlink_metadata(&f.file_path) {
            last_modified = last_modified.max(unix_secs(m.modified()));
            last_accessed = last_accessed.max(unix_secs(m.accessed()));
        }
    }
    if nb_files == 0 {
        last_modified = unix_secs(dir_meta.modified());
        last_accessed = unix_secs(dir_meta.accessed());
    }
    CachedRepo {
        repo_id,
        repo_type,
        path: dir.to_path_buf(),
        size_on_disk: distinct_size(&all_files),
        nb_files,
        revisions,
        refs,
        last_modified,
        last_accessed,
        incomplete: blobs.incomplete.clone(),
        unreferenced_blobs,
        blob_sizes: blobs.sizes.clone(),
        ref_sizes,
        no_exist,
        folder_bytes: tree_bytes(dir, &mut HashSet::new()),
    }
}

/// Bytes of `files` counting each blob once (plain copies are distinct files).
fn distinct_size(files: &[CachedFile]) -> u64 {
    let mut seen = HashSet::new();
    files.iter().filter(|f| f.blob_name.as_ref().is_none_or(|n| seen.insert(n.as_str()))).map(|f| f.size).sum()
}

/// Regular files in `blobs/`, split into complete blobs and partial downloads.
fn scan_blobs(blobs_dir: &Path, warnings: &mut Vec<String>) -> BlobsDir {
    let mut out = BlobsDir { trusted: true, ..BlobsDir::default() };
    match std::fs::symlink_metadata(blobs_dir) {
        Ok(m) if m.is_dir() => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return out,
        Ok(_) => {
            warnings.push(format!("{}: not a folder (a link?); its blobs are not used", blobs_dir.display()));
            out.trusted = false;
            return out;
        }
        Err(e) => {
            warnings.push(format!("{}: {e}", blobs_dir.display()));
            out.trusted = false;
            return out;
        }
    }
    let entries = match list_dir(blobs_dir) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("{}: {e}", blobs_dir.display()));
            out.trusted = false;
            return out;
        }
    };
    for (name, path) in entries {
        let Some(meta) = meta_or_warn(&path, warnings) else { continue };
        if !meta.is_file() {
            let what = if meta.is_symlink() { "a link" } else { "not a regular file" };
            warnings.push(format!("{}: {what} in blobs/; not followed, not counted", path.display()));
            continue;
        }
        let Some(name) = name.to_str() else {
            warnings.push(format!("{}: name is not UTF-8; skipped", path.display()));
            continue;
        };
        out.sizes.insert(path.clone(), meta.len());
        if is_partial(name) {
            out.incomplete.push(path);
        } else {
            let blob =
                Blob { size: meta.len(), modified: unix_secs(meta.modified()), accessed: unix_secs(meta.accessed()) };
            out.complete.insert(name.to_string(), blob);
        }
    }
    out
}

/// Ref name → commit.
type Refs = BTreeMap<String, String>;

/// `refs/**` → ref name (relative, `/`-separated) → commit, and each ref file's size; links,
/// odd names and contents that are not a commit id are warned about and skipped.
fn scan_refs(repo_dir: &Path, warnings: &mut Vec<String>) -> (Refs, BTreeMap<String, u64>) {
    fn walk(
        dir: &Path,
        prefix: &str,
        depth: usize,
        out: &mut (Refs, BTreeMap<String, u64>),
        warnings: &mut Vec<String>,
    ) {
        let entries = match list_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) => {
                warnings.push(format!("{}: {e}", dir.display()));
                return;
            }
        };
        for (name, path) in entries {
            // Names come from the folder listing, so they are single components already; git
            // allows far more than repo names do (`v1+cpu`), and skipping a real ref would make
            // its revision look detached to `prune`. Only hidden files (`.DS_Store`) and
            // control characters are left out.
            let Some(name) = name.to_str() else {
                warnings.push(format!("{}: ref name is not UTF-8; skipped", path.display()));
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if name.chars().any(char::is_control) {
                warnings.push(format!("{}: not a valid ref name; skipped", path.display()));
                continue;
            }
            let ref_name = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() && depth < 4 => walk(&path, &ref_name, depth + 1, out, warnings),
                // A commit id plus a newline is 41 bytes; anything much bigger is not a ref.
                Ok(m) if m.is_file() && m.len() <= 128 => match std::fs::read_to_string(&path) {
                    Ok(text) if is_commit(text.trim()) => {
                        out.1.insert(ref_name.clone(), m.len());
                        out.0.insert(ref_name, text.trim().to_string());
                    }
                    Ok(_) => warnings.push(format!("{}: content is not a commit id; skipped", path.display())),
                    Err(e) => warnings.push(format!("{}: {e}; skipped", path.display())),
                },
                Ok(m) if m.is_symlink() => warnings.push(format!("{}: ref is a link; not followed", path.display())),
                Ok(_) => warnings.push(format!("{}: not a ref file; skipped", path.display())),
                Err(e) => warnings.push(format!("{}: {e}; skipped", path.display())),
            }
        }
    }
    let mut out = (BTreeMap::new(), BTreeMap::new());
    let refs = repo_dir.join("refs");
    match std::fs::symlink_metadata(&refs) {
        Ok(m) if m.is_dir() => walk(&refs, "", 0, &mut out, warnings),
        Ok(_) => warnings.push(format!("{}: not a folder (a link?); refs not read", refs.display())),
        Err(_) => {}
    }
    out
}

/// The real folders named by a commit id directly in `dir` (`snapshots/`, `.no_exist/`).
fn commit_folders(dir: &Path, warnings: &mut Vec<String>) -> Vec<(PathBuf, Metadata, String)> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Vec::new(),
        _ => {
            warnings.push(format!("{}: not a folder (a link?); not read", dir.display()));
            return Vec::new();
        }
    }
    let entries = match list_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("{}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (name, path) in entries {
        let Some(meta) = meta_or_warn(&path, warnings) else { continue };
        match name.to_str() {
            Some(commit) if is_commit(commit) && meta.is_dir() => out.push((path, meta, commit.to_string())),
            Some(commit) if is_commit(commit) => {
                warnings.push(format!("{}: not a folder (a link?); skipped", path.display()))
            }
            _ => warnings.push(format!("{}: name is not a commit id; skipped", path.display())),
        }
    }
    out
}

/// Files under a snapshot folder; `stack` holds the path components from the repo folder
/// (`[<commit>, sub, ...]` below `snapshots/`).
fn scan_snapshot_dir(ctx: &mut RepoScan<'_>, dir: &Path, stack: &mut Vec<String>, files: &mut Vec<CachedFile>) {
    let entries = match list_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            ctx.warnings.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for (name, path) in entries {
        let Some(name) = name.to_str() else {
            ctx.warnings.push(format!("{}: name is not UTF-8; skipped", path.display()));
            continue;
        };
        let Some(meta) = meta_or_warn(&path, ctx.warnings) else { continue };
        let rel_path = stack[1..].iter().map(String::as_str).chain([name]).collect::<Vec<_>>().join("/");
        if meta.is_dir() {
            if stack.len() > 32 {
                ctx.warnings.push(format!("{}: nested too deep; skipped", path.display()));
                continue;
            }
            stack.push(name.to_string());
            scan_snapshot_dir(ctx, &path, stack, files);
            stack.pop();
        } else if meta.is_file() {
            files.push(CachedFile { rel_path, file_path: path, blob_path: None, blob_name: None, size: meta.len() });
        } else if meta.is_symlink() {
            if let Some(file) = snapshot_link(ctx, &path, stack.len() + 1, rel_path) {
                files.push(file);
            }
        } else {
            ctx.warnings.push(format!("{}: not a file, folder or link; skipped", path.display()));
        }
    }
}

/// A snapshot link at `path`, `depth` folders below the repo folder: kept only when its target
/// is exactly `depth` times `..` then `blobs/<name>`, so it lands in this repo's `blobs/`
/// through real folders only (Python and hf-hub write `../../blobs/<etag>`).
fn snapshot_link(ctx: &mut RepoScan<'_>, path: &Path, depth: usize, rel_path: String) -> Option<CachedFile> {
    let target = match std::fs::read_link(path) {
        Ok(t) => t,
        Err(e) => {
            ctx.warnings.push(format!("{}: {e}; skipped", path.display()));
            return None;
        }
    };
    let parts: Vec<Component> = target.components().collect();
    let blob_name = match parts.as_slice() {
        [ups @ .., Component::Normal(blobs), Component::Normal(name)]
            if ups.len() == depth && ups.iter().all(|c| *c == Component::ParentDir) && *blobs == "blobs" =>
        {
            name.to_str()
        }
        _ => None,
    };
    let Some(blob_name) = blob_name else {
        ctx.warnings.push(format!(
            "{}: link to {} does not stay in {}; not followed",
            path.display(),
            target.display(),
            ctx.repo_dir.join("blobs").display()
        ));
        return None;
    };
    let blob_path = ctx.repo_dir.join("blobs").join(blob_name);
    let size = match ctx.blobs.complete.get(blob_name) {
        Some(b) => b.size,
        None => {
            let missing = matches!(std::fs::symlink_metadata(&blob_path), Err(e) if e.kind() == ErrorKind::NotFound);
            if !(missing && ctx.blobs.trusted) {
                ctx.warnings.push(format!(
                    "{}: points at {}, not a complete blob; skipped",
                    path.display(),
                    blob_path.display()
                ));
                return None;
            }
            ctx.warnings.push(format!("{}: broken link, blob {} is missing", path.display(), blob_path.display()));
            0
        }
    };
    Some(CachedFile {
        rel_path,
        file_path: path.to_path_buf(),
        blob_path: Some(blob_path),
        blob_name: Some(blob_name.to_string()),
        size,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::hash::{CheckStatus, FileToCheck, check_files, expected_from_blob_name};
    use sha1::Sha1;
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::symlink;
    use zoo_progress::{CancelToken, Silent};

    const C1: &str = "1111111111111111111111111111111111111111";
    const C2: &str = "2222222222222222222222222222222222222222";
    const D1: &str = "dddddddddddddddddddddddddddddddddddddddd";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    fn sha256(c: &[u8]) -> String {
        hex(&Sha256::digest(c))
    }
    fn git_sha1(c: &[u8]) -> String {
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", c.len()).as_bytes());
        h.update(c);
        hex(&h.finalize())
    }

    /// A hand-made cache under `<tmp>/hub` with `<tmp>/outside-file` next to it.
    struct Fixture {
        tmp: tempfile::TempDir,
        root: PathBuf,
        repo: PathBuf,
        /// Blob names: shared by both revisions, git-sha1 config, only in the detached
        /// revision, unreferenced, and the partial download.
        a: String,
        b: String,
        c: String,
        d: String,
        partial: String,
    }

    const A: &[u8] = &[7u8; 1000];
    const B: &[u8] = b"{\"model_type\": \"llama\"}\n";
    const C: &[u8] = &[9u8; 300];
    const D: &[u8] = &[1u8; 50];
    const E: &[u8] = b"partial";
    const README: &[u8] = b"copy!";

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("hub");
        let repo = root.join("models--org--model");
        let (a, b, c, d) = (sha256(A), git_sha1(B), sha256(C), sha256(D));
        let partial = format!("{}.incomplete", sha256(b"whole file"));
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        for (name, content) in [(&a, A), (&b, B), (&c, C), (&d, D), (&partial, E)] {
            std::fs::write(repo.join("blobs").join(name), content).unwrap();
        }
        let s1 = repo.join("snapshots").join(C1);
        let s2 = repo.join("snapshots").join(C2);
        std::fs::create_dir_all(s1.join("sub")).unwrap();
        std::fs::create_dir_all(&s2).unwrap();
        symlink(format!("../../blobs/{a}"), s1.join("model.bin")).unwrap();
        symlink(format!("../../blobs/{b}"), s1.join("config.json")).unwrap();
        symlink(format!("../../../blobs/{b}"), s1.join("sub/config.json")).unwrap();
        std::fs::write(s1.join("README.md"), README).unwrap();
        symlink(format!("../../blobs/{a}"), s2.join("model.bin")).unwrap();
        symlink(format!("../../blobs/{c}"), s2.join("extra.bin")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), format!("{C1}\n")).unwrap();
        std::fs::create_dir_all(repo.join(".no_exist").join(C2)).unwrap();
        std::fs::write(repo.join(".no_exist").join(C2).join("tokenizer.model"), b"").unwrap();

        // Hostile entries.
        std::fs::write(tmp.path().join("outside-file"), b"keep me").unwrap();
        symlink("/etc/hostname", s1.join("hostname")).unwrap();
        symlink("../../../../outside-file", s1.join("escape")).unwrap();
        symlink(format!("../blobs/{a}"), s1.join("sub/short")).unwrap();
        symlink("../../blobs/../../../outside-file", s1.join("dotdot")).unwrap();
        std::fs::write(repo.join("refs/evil"), "../../x").unwrap();

        // A dataset, a link to another repo's blob, and folders that are not repos.
        let data = root.join("datasets--org--data");
        let data_blob = sha256(b"rows");
        std::fs::create_dir_all(data.join("blobs")).unwrap();
        std::fs::create_dir_all(data.join("snapshots").join(D1)).unwrap();
        std::fs::create_dir_all(data.join("refs/pr")).unwrap();
        std::fs::write(data.join("blobs").join(&data_blob), b"rows").unwrap();
        symlink(format!("../../blobs/{data_blob}"), data.join("snapshots").join(D1).join("rows.csv")).unwrap();
        std::fs::write(data.join("refs/pr/1"), D1).unwrap();
        std::fs::write(data.join("refs/v1+cpu"), D1).unwrap();
        symlink(format!("../../../models--org--model/blobs/{a}"), data.join("snapshots").join(D1).join("stolen"))
            .unwrap();
        std::fs::create_dir_all(root.join("not-a-repo")).unwrap();
        std::fs::create_dir_all(root.join(".locks/models--org--model")).unwrap();
        std::fs::create_dir_all(tmp.path().join("elsewhere/snapshots")).unwrap();
        symlink(tmp.path().join("elsewhere"), root.join("models--evil--link")).unwrap();
        Fixture { tmp, root, repo, a, b, c, d, partial }
    }

    /// Bytes of `refs/main` (a commit id and a newline) and of the hostile `refs/evil`.
    const MAIN_REF: u64 = 41;
    const EVIL_REF: u64 = 7;

    fn sizes() -> (u64, u64, u64, u64, u64, u64) {
        let l = |s: &[u8]| s.len() as u64;
        (l(A), l(B), l(C), l(D), l(E), l(README))
    }

    #[test]
    fn scan_counts_shared_blobs_once_and_lists_leftovers() {
        let f = fixture();
        let info = scan(&f.root).unwrap();
        let (a, b, c, _, _, readme) = sizes();
        assert_eq!(info.repos.len(), 2, "{:?}", info.repos.iter().map(|r| &r.repo_id).collect::<Vec<_>>());
        let repo = info.repo("org/model").unwrap();
        assert_eq!((repo.repo_type, repo.path.as_path()), (RepoType::Model, f.repo.as_path()));
        assert_eq!(repo.size_on_disk, a + b + c + readme);
        assert_eq!(repo.nb_files, 4);
        assert_eq!(repo.refs, BTreeMap::from([("main".to_string(), C1.to_string())]));
        assert_eq!(repo.unreferenced_blobs, vec![f.repo.join("blobs").join(&f.d)]);
        assert_eq!(repo.incomplete, vec![f.repo.join("blobs").join(&f.partial)]);

        let [r1, r2] = repo.revisions.as_slice() else { panic!("two revisions: {:?}", repo.revisions) };
        assert_eq!((r1.commit.as_str(), r1.refs.clone()), (C1, vec!["main".to_string()]));
        let names = |r: &CachedRevision| r.files.iter().map(|f| f.rel_path.clone()).collect::<Vec<_>>();
        assert_eq!(names(r1), ["README.md", "config.json", "model.bin", "sub/config.json"]);
        assert_eq!(r1.size_on_disk, a + b + readme);
        assert_eq!((r2.commit.as_str(), r2.refs.len()), (C2, 0));
        assert_eq!(names(r2), ["extra.bin", "model.bin"]);
        assert_eq!(r2.size_on_disk, a + c);
        let model = &r1.files[2];
        assert_eq!(model.blob_name.as_deref(), Some(f.a.as_str()));
        assert_eq!(model.blob_path.as_deref(), Some(f.repo.join("blobs").join(&f.a).as_path()));
        assert_eq!(model.size, a);
        assert_eq!((r1.files[0].blob_path.as_ref(), r1.files[0].size), (None, readme));

        let data = info.repo("org/data").unwrap();
        assert_eq!((data.repo_type, data.size_on_disk, data.nb_files), (RepoType::Dataset, 4, 1));
        let refs = [("pr/1", D1), ("v1+cpu", D1)].map(|(n, c)| (n.to_string(), c.to_string()));
        assert_eq!(data.refs, BTreeMap::from(refs));
        assert_eq!(data.revisions[0].refs, ["pr/1", "v1+cpu"]);
        assert_eq!(info.repo("datasets--org--data").map(|r| &r.repo_id), Some(&data.repo_id));
        assert_eq!(info.size_on_disk, repo.size_on_disk + 4);

        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["repos"][0]["repo_type"], "model");
        assert_eq!(json["repos"][1]["repo_type"], "dataset");
    }

    #[test]
    fn hostile_entries_are_warned_about_and_skipped() {
        let f = fixture();
        let info = scan(&f.root).unwrap();
        let s1 = f.repo.join("snapshots").join(C1);
        for path in [
            s1.join("hostname"),
            s1.join("escape"),
            s1.join("sub/short"),
            s1.join("dotdot"),
            f.repo.join("refs/evil"),
            f.root.join("datasets--org--data/snapshots").join(D1).join("stolen"),
            f.root.join("not-a-repo"),
            f.root.join("models--evil--link"),
        ] {
            let needle = format!("{}:", path.display());
            assert!(
                info.warnings.iter().any(|w| w.starts_with(&needle)),
                "no warning for {needle}: {:#?}",
                info.warnings
            );
        }
        assert_eq!(info.warnings.len(), 8, "{:#?}", info.warnings);
        assert!(info.repo("evil/link").is_none());
        let files: Vec<&CachedFile> = info.repos.iter().flat_map(|r| &r.revisions).flat_map(|r| &r.files).collect();
        assert!(
            files
                .iter()
                .all(|f| !["hostname", "escape", "sub/short", "dotdot", "stolen"].contains(&f.rel_path.as_str()))
        );
    }

    #[test]
    fn folder_names_and_commit_ids_are_strict() {
        assert_eq!(parse_repo_folder("models--org--name"), Some((RepoType::Model, "org/name".into())));
        assert_eq!(parse_repo_folder("models--gpt2"), Some((RepoType::Model, "gpt2".into())));
        assert_eq!(parse_repo_folder("spaces--a--b.c_d-e"), Some((RepoType::Space, "a/b.c_d-e".into())));
        for bad in ["models--", "models--a--b--c", "models--..--x", "model--a--b", "models--a b--c", "models--a----b"] {
            assert_eq!(parse_repo_folder(bad), None, "{bad}");
        }
        assert!(is_commit(C1));
        for bad in ["../../x", &"A".repeat(40), &C1[1..], "main"] {
            assert!(!is_commit(bad), "{bad}");
        }
    }

    fn plan_paths(plan: &DeletePlan) -> Vec<PathBuf> {
        plan.paths.clone()
    }

    #[test]
    fn plans_list_exact_paths_and_count_shared_blobs_once() {
        let f = fixture();
        let info = scan(&f.root).unwrap();
        let (a, b, c, d, e, readme) = sizes();
        let blob = |n: &str| f.repo.join("blobs").join(n);
        let snap = |c: &str| f.repo.join("snapshots").join(c);

        // The detached revision shares model.bin with main: only its own blob goes.
        let p = info.plan_remove_revisions("org/model", &[C2.to_string()]);
        let mut want = vec![snap(C2), f.repo.join(".no_exist").join(C2), blob(&f.c)];
        want.sort();
        assert_eq!((plan_paths(&p), p.freed_bytes, p.revisions.clone()), (want, c, vec![C2.to_string()]));

        let p = info.plan_remove_revisions("org/model", &[C1.to_string()]);
        let mut want = vec![snap(C1), f.repo.join("refs/main"), blob(&f.b)];
        want.sort();
        assert_eq!((plan_paths(&p), p.freed_bytes), (want, b + readme + MAIN_REF));

        let p = info.plan_remove_revisions("org/model", &[C1.to_string(), C2.to_string(), "f".repeat(40)]);
        let mut want = vec![
            snap(C1),
            snap(C2),
            f.repo.join(".no_exist").join(C2),
            f.repo.join("refs/main"),
            blob(&f.a),
            blob(&f.b),
            blob(&f.c),
        ];
        want.sort();
        assert_eq!((plan_paths(&p), p.freed_bytes), (want, a + b + c + readme + MAIN_REF));
        assert_eq!(p.revisions, [C1, C2]);
        assert!(info.plan_remove_revisions("org/nothing", &[C1.to_string()]).is_empty());

        let p = info.plan_prune();
        let mut want = vec![snap(C2), f.repo.join(".no_exist").join(C2), blob(&f.c), blob(&f.d), blob(&f.partial)];
        want.sort();
        assert_eq!((plan_paths(&p), p.freed_bytes), (want, c + d + e));

        let p = info.plan_remove_repo("org/model").unwrap();
        let all = a + b + c + d + e + readme + MAIN_REF + EVIL_REF;
        assert_eq!((plan_paths(&p), p.freed_bytes), (vec![f.repo.clone()], all));
        assert_eq!((p.repos.clone(), p.revisions.len()), (vec!["org/model".to_string()], 2));
        assert!(info.plan_remove_repo("org/nothing").is_none());
    }

    #[test]
    fn prune_frees_what_it_planned_and_nothing_outside() {
        let f = fixture();
        let info = scan(&f.root).unwrap();
        let plan = info.plan_prune();
        assert_eq!(execute(&plan, &f.root).unwrap(), plan.freed_bytes);
        assert!(f.tmp.path().join("outside-file").exists());
        let after = scan(&f.root).unwrap();
        let repo = after.repo("org/model").unwrap();
        assert_eq!(repo.revisions.iter().map(|r| r.commit.as_str()).collect::<Vec<_>>(), [C1]);
        assert!(repo.unreferenced_blobs.is_empty() && repo.incomplete.is_empty());
        assert!(!f.repo.join(".no_exist").exists(), "emptied .no_exist is removed");
        assert_eq!(repo.size_on_disk, info.repo("org/model").unwrap().revisions[0].size_on_disk);
        assert!(after.plan_prune().is_empty());
    }

    #[test]
    fn removing_every_revision_and_then_the_repo_leaves_the_outside_alone() {
        let f = fixture();
        let info = scan(&f.root).unwrap();
        let plan = info.plan_remove_revisions("org/model", &[C1.to_string(), C2.to_string()]);
        assert_eq!(execute(&plan, &f.root).unwrap(), plan.freed_bytes);
        assert!(!f.repo.join("snapshots").exists(), "an emptied snapshots/ folder is removed");
        assert!(f.repo.join("blobs").join(&f.d).exists(), "unreferenced blob is not part of this plan");

        let info = scan(&f.root).unwrap();
        let plan = info.plan_remove_repo("org/model").unwrap();
        let (_, _, _, d, e, _) = sizes();
        assert_eq!(plan.freed_bytes, d + e + EVIL_REF);
        assert_eq!(execute(&plan, &f.root).unwrap(), d + e + EVIL_REF);
        assert!(!f.repo.exists());
        assert!(f.tmp.path().join("outside-file").exists());
        assert!(f.root.join("datasets--org--data").exists());
        // The dataset's link into the removed repo is now broken and still not followed.
        let info = scan(&f.root).unwrap();
        assert_eq!(info.repos.len(), 1);
    }

    #[test]
    fn removing_a_repo_with_hostile_links_removes_links_not_targets() {
        let f = fixture();
        let info = scan(&f.root).unwrap();
        let plan = info.plan_remove_repo("org/model").unwrap();
        assert_eq!(execute(&plan, &f.root).unwrap(), plan.freed_bytes);
        assert!(!f.repo.exists());
        assert_eq!(std::fs::read(f.tmp.path().join("outside-file")).unwrap(), b"keep me");
    }

    #[test]
    fn execute_refuses_paths_outside_the_root_or_through_links() {
        let f = fixture();
        let outside = f.tmp.path().join("outside-file");
        let elsewhere = f.tmp.path().join("elsewhere/snapshots");
        for path in [
            outside.clone(),
            f.root.join("../outside-file"),
            f.root.join("models--org--model/../../outside-file"),
            f.root.clone(),
            PathBuf::from("/etc/hostname"),
            f.root.join("models--evil--link/snapshots"),
        ] {
            // A good path first: nothing at all may be removed when one path is refused.
            let plan = DeletePlan { paths: vec![f.repo.join("refs/main"), path.clone()], ..DeletePlan::default() };
            let err = execute(&plan, &f.root).unwrap_err();
            assert!(matches!(err, HubError::Hostile { .. }), "{}: {err}", path.display());
            assert!(f.repo.join("refs/main").exists());
        }
        assert!(outside.exists() && elsewhere.exists());

        // A hostile link itself may be removed: as a link.
        let link = f.repo.join("snapshots").join(C1).join("escape");
        let plan = DeletePlan { paths: vec![link.clone()], ..DeletePlan::default() };
        assert_eq!(execute(&plan, &f.root).unwrap(), 0);
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(outside.exists());
        // Paths already gone are skipped.
        assert_eq!(execute(&plan, &f.root).unwrap(), 0);
    }

    #[test]
    fn relative_roots_work_like_absolute_ones() {
        let f = fixture();
        let cwd = std::env::current_dir().unwrap();
        let rel_root = pathdiff(&f.root, &cwd);
        let info = scan(&rel_root).unwrap();
        let plan = info.plan_remove_revisions("org/model", &[C2.to_string()]);
        assert!(plan.paths.iter().all(|p| p.is_relative()));
        assert_eq!(execute(&plan, &rel_root).unwrap(), plan.freed_bytes);
        assert!(!f.repo.join("snapshots").join(C2).exists());
    }

    /// `path` relative to `base` (both absolute), with `..` as needed.
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        let (p, b): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
        let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut out = PathBuf::new();
        for _ in common..b.len() {
            out.push("..");
        }
        for c in &p[common..] {
            out.push(c);
        }
        out
    }

    #[test]
    fn scanned_files_verify_by_blob_name() {
        let f = fixture();
        let info = scan(&f.root).unwrap();
        let rev = &info.repo("org/model").unwrap().revisions[0];
        let to_check = |rev: &CachedRevision| -> Vec<FileToCheck> {
            rev.files
                .iter()
                .map(|file| FileToCheck {
                    label: file.rel_path.clone(),
                    path: file.file_path.clone(),
                    expected: file.blob_name.as_deref().and_then(expected_from_blob_name).into_iter().collect(),
                    size: Some(file.size),
                })
                .collect()
        };
        let files = to_check(rev);
        assert!(check_files(&files, 2, &Silent, &CancelToken::new()).iter().all(CheckStatus::is_ok));

        // Flip one byte of the shared sha256 blob and of the git-sha1 blob.
        for name in [&f.a, &f.b] {
            let path = f.repo.join("blobs").join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[0] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
        std::fs::remove_file(f.repo.join("blobs").join(&f.c)).unwrap();
        let got = check_files(&files, 2, &Silent, &CancelToken::new());
        let names: Vec<(&str, &str)> =
            files.iter().map(|f| f.label.as_str()).zip(got.iter().map(CheckStatus::name)).collect();
        assert_eq!(
            names,
            [("README.md", "ok"), ("config.json", "corrupt"), ("model.bin", "corrupt"), ("sub/config.json", "corrupt")]
        );
        assert_eq!(
            got[1],
            CheckStatus::Corrupt {
                expected: f.b.clone(),
                actual: git_sha1(&{
                    let mut b = B.to_vec();
                    b[0] ^= 1;
                    b
                })
            }
        );

        // The missing blob's link is kept as a broken link, with a warning, and checks Missing.
        let info = scan(&f.root).unwrap();
        let detached = &info.repo("org/model").unwrap().revisions[1];
        let extra = detached.files.iter().find(|x| x.rel_path == "extra.bin").unwrap();
        assert_eq!(extra.size, 0);
        assert!(info.warnings.iter().any(|w| w.contains("broken link")));
        let got = check_files(&to_check(detached), 1, &Silent, &CancelToken::new());
        assert_eq!(got[0], CheckStatus::Missing);
    }
}

/// The entry's own metadata (links not followed), or a warning naming it and `None`.
fn meta_or_warn(path: &Path, warnings: &mut Vec<String>) -> Option<Metadata> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Some(m),
        Err(e) => {
            warnings.push(format!("{}: {e}; skipped", path.display()));
            None
        }
    }
}

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
//!
//! This file scans; `plan.rs` turns a scan into a [`DeletePlan`]; `execute.rs` carries one out.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{HubError, Result};

mod execute;
mod plan;
#[cfg(all(test, unix))]
mod tests;

pub use execute::execute;
pub use plan::DeletePlan;

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
    name.ends_with(".incomplete") || name.ends_with(".part") || zoo_atomic_write::is_temp_name(name)
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

//! The hub's data: repositories, commits, refs, LFS blobs, injected faults and the request log.
//!
//! Everything here is plain synchronous data behind one mutex; the HTTP layer (`server.rs`) only reads it
//! and consumes one-shot faults.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Bytes;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// File name endings that the hub stores in LFS whatever their size (as `.gitattributes` of hub repos do).
const LFS_EXTENSIONS: &[&str] = &[".safetensors", ".bin", ".gguf", ".pt", ".pth", ".h5", ".msgpack", ".model"];

/// Files at least this large are LFS files too.
const LFS_MIN_SIZE: usize = 1 << 20;

/// A fixed time for `lastModified` / `createdAt`: the hub's answers stay byte-for-byte reproducible.
pub(crate) const FIXED_TIME: &str = "2024-01-01T00:00:00.000Z";

/// Whether the hub serves `name` (with `size` bytes) through LFS: a redirect to the CDN, ETag = sha256.
pub(crate) fn is_lfs(name: &str, size: usize) -> bool {
    size >= LFS_MIN_SIZE || LFS_EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// Lower-case hex of a byte slice.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Git's object id of a blob: sha1 of `"blob {len}\0"` followed by the bytes.
pub(crate) fn git_blob_id(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex(&h.finalize())
}

/// Hex sha256 of the bytes.
pub(crate) fn sha256_hex(content: &[u8]) -> String {
    hex(&Sha256::digest(content))
}

/// The git-lfs pointer file that git stores in place of an LFS file.
fn lfs_pointer(sha256: &str, size: usize) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// LFS facts of a file, as the hub reports them.
#[derive(Clone, Debug)]
pub(crate) struct LfsInfo {
    /// Size of the pointer file (the hub's `pointerSize`).
    pub pointer_size: usize,
    /// Git blob id of the pointer file: what git (and the hub's `oid`/`blobId`/`ETag`) calls this file.
    pub pointer_blob_id: String,
}

/// One file of a commit.
#[derive(Clone, Debug)]
pub(crate) struct FileEntry {
    pub content: Bytes,
    /// Git blob id of the content itself (the cache's blob name for plain files).
    pub content_blob_id: String,
    pub sha256: String,
    pub lfs: Option<LfsInfo>,
}

impl FileEntry {
    pub(crate) fn new(name: &str, content: Bytes) -> FileEntry {
        let sha256 = sha256_hex(&content);
        let lfs = is_lfs(name, content.len()).then(|| {
            let pointer = lfs_pointer(&sha256, content.len());
            LfsInfo { pointer_size: pointer.len(), pointer_blob_id: git_blob_id(pointer.as_bytes()) }
        });
        FileEntry { content_blob_id: git_blob_id(&content), sha256, lfs, content }
    }

    /// The git object id of the file: the pointer's id for LFS files, the content's id otherwise.
    /// The hub reports it as `blobId` / tree `oid` and as the `ETag` of `resolve`.
    pub(crate) fn git_oid(&self) -> &str {
        match &self.lfs {
            Some(lfs) => &lfs.pointer_blob_id,
            None => &self.content_blob_id,
        }
    }
}

/// One commit: the complete file set of the repo at that point.
#[derive(Clone, Debug, Default)]
pub(crate) struct Commit {
    pub files: BTreeMap<String, FileEntry>,
}

impl Commit {
    /// Every folder that holds a file, as the tree API lists them (no leading or empty names).
    pub(crate) fn directories(&self) -> BTreeSet<String> {
        let mut dirs = BTreeSet::new();
        for name in self.files.keys() {
            let mut end = 0;
            while let Some(pos) = name[end..].find('/') {
                end += pos;
                if end > 0 {
                    dirs.insert(name[..end].to_string());
                }
                end += 1;
            }
        }
        dirs
    }
}

/// A model repository.
#[derive(Debug, Default)]
pub(crate) struct Repo {
    pub commits: HashMap<String, Commit>,
    /// Branches and tags → commit id.
    pub refs: HashMap<String, String>,
    /// Requests without `Authorization: Bearer <token>` are refused.
    pub token: Option<String>,
}

impl Repo {
    /// A branch, a tag or a full commit id → the commit id.
    pub(crate) fn resolve(&self, revision: &str) -> Option<&str> {
        if let Some(id) = self.refs.get(revision) {
            return self.commits.contains_key(id).then_some(id.as_str());
        }
        self.commits.get_key_value(revision).map(|(id, _)| id.as_str())
    }
}

/// A fault that a test asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// The next content GET with a longer body sends only this many body bytes, then drops the connection.
    FailOnce(u64),
    /// Every content response flips the byte at this offset of the file.
    Corrupt(u64),
}

#[derive(Clone, Debug)]
struct Fault {
    repo: String,
    path: String,
    kind: FaultKind,
}

/// What to do to one content response.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Faults {
    /// Send only this many body bytes, then drop the connection.
    pub truncate_at: Option<u64>,
    /// File offsets whose byte is flipped.
    pub corrupt: Vec<u64>,
}

/// Which file a content response serves, to match faults against.
pub(crate) enum ContentKey<'a> {
    /// A plain file served by `resolve`.
    Path { repo: &'a str, path: &'a str },
    /// An LFS blob served by the CDN: every (repo, path) whose file has this sha256 matches.
    Lfs { sha256: &'a str },
}

/// All mutable state of one hub.
#[derive(Debug, Default)]
pub(crate) struct HubState {
    pub repos: HashMap<String, Repo>,
    /// LFS content by sha256, as the CDN serves it.
    pub lfs_blobs: HashMap<String, Bytes>,
    faults: Vec<Fault>,
    pub log: Vec<String>,
}

impl HubState {
    /// A commit id that depends only on the repo id and the files.
    fn commit_id(repo_id: &str, files: &BTreeMap<String, FileEntry>) -> String {
        let mut h = Sha1::new();
        h.update(b"zoo-testhub commit\0");
        h.update(repo_id.as_bytes());
        for (name, file) in files {
            h.update(b"\0");
            h.update(name.as_bytes());
            h.update(b"\0");
            h.update(file.content_blob_id.as_bytes());
        }
        hex(&h.finalize())
    }

    /// Adds a commit with exactly `files`, moves `main` to it and returns its id.
    pub(crate) fn add_commit(&mut self, repo_id: &str, files: Vec<(String, Vec<u8>)>) -> String {
        let files: BTreeMap<String, FileEntry> = files
            .into_iter()
            .map(|(name, content)| {
                let entry = FileEntry::new(&name, Bytes::from(content));
                (name, entry)
            })
            .collect();
        for file in files.values() {
            if file.lfs.is_some() {
                self.lfs_blobs.insert(file.sha256.clone(), file.content.clone());
            }
        }
        let id = Self::commit_id(repo_id, &files);
        let repo = self.repos.entry(repo_id.to_string()).or_default();
        repo.commits.insert(id.clone(), Commit { files });
        repo.refs.insert("main".to_string(), id.clone());
        id
    }

    /// A wheel of the test PyPI index: a file of the pseudo repo `pypi/{package}`, served from the CDN.
    pub(crate) fn add_pypi_wheel(&mut self, package: &str, filename: &str, wheel: Vec<u8>) {
        let repo_id = format!("pypi/{package}");
        let mut files: Vec<(String, Vec<u8>)> = self
            .repos
            .get(&repo_id)
            .and_then(|r| r.commits.get(r.refs.get("main")?))
            .map(|c| c.files.iter().map(|(n, f)| (n.clone(), f.content.to_vec())).collect())
            .unwrap_or_default();
        let entry = FileEntry::new(filename, Bytes::from(wheel.clone()));
        self.lfs_blobs.insert(entry.sha256.clone(), entry.content.clone());
        files.retain(|(n, _)| n != filename);
        files.push((filename.to_string(), wheel));
        self.add_commit(&repo_id, files);
    }

    /// The wheels of `package` on the test PyPI index: (file name, sha256, size).
    pub(crate) fn pypi_wheels(&self, package: &str) -> Option<Vec<(String, String, usize)>> {
        let repo = self.repos.get(&format!("pypi/{package}"))?;
        let commit = repo.commits.get(repo.refs.get("main")?)?;
        Some(commit.files.iter().map(|(n, f)| (n.clone(), f.sha256.clone(), f.content.len())).collect())
    }

    pub(crate) fn set_ref(&mut self, repo_id: &str, name: &str, commit: &str) {
        self.repos.entry(repo_id.to_string()).or_default().refs.insert(name.to_string(), commit.to_string());
    }

    pub(crate) fn require_token(&mut self, repo_id: &str, token: &str) {
        self.repos.entry(repo_id.to_string()).or_default().token = Some(token.to_string());
    }

    /// Adds `name` to the commit `main` points at, without changing the commit id. Returns false when the
    /// repo has no `main` commit yet.
    pub(crate) fn add_listing_entry(&mut self, repo_id: &str, name: &str, content: Vec<u8>) -> bool {
        let entry = FileEntry::new(name, Bytes::from(content));
        let Some(repo) = self.repos.get_mut(repo_id) else { return false };
        let Some(id) = repo.resolve("main").map(str::to_string) else { return false };
        let Some(commit) = repo.commits.get_mut(&id) else { return false };
        if entry.lfs.is_some() {
            self.lfs_blobs.insert(entry.sha256.clone(), entry.content.clone());
        }
        commit.files.insert(name.to_string(), entry);
        true
    }

    pub(crate) fn add_fault(&mut self, repo_id: &str, path: &str, kind: FaultKind) {
        self.faults.push(Fault { repo: repo_id.to_string(), path: path.to_string(), kind });
    }

    fn fault_matches(&self, fault: &Fault, key: &ContentKey<'_>) -> bool {
        match *key {
            ContentKey::Path { repo, path } => fault.repo == repo && fault.path == path,
            ContentKey::Lfs { sha256 } => self.repos.get(&fault.repo).is_some_and(|repo| {
                repo.commits
                    .values()
                    // Wheels of the test PyPI index are served from the CDN whatever their size.
                    .any(|c| {
                        c.files
                            .get(&fault.path)
                            .is_some_and(|f| (f.lfs.is_some() || fault.repo.starts_with("pypi/")) && f.sha256 == sha256)
                    })
            }),
        }
    }

    /// The faults for a GET whose body would be `body_len` bytes. A `FailOnce` is used up only when it
    /// actually cuts the body short, so a 1-byte metadata probe (`Range: bytes=0-0`) does not consume it.
    pub(crate) fn take_faults(&mut self, key: &ContentKey<'_>, body_len: u64) -> Faults {
        let mut out = Faults::default();
        let mut used = None;
        for (i, fault) in self.faults.iter().enumerate() {
            if !self.fault_matches(fault, key) {
                continue;
            }
            match fault.kind {
                FaultKind::Corrupt(offset) => out.corrupt.push(offset),
                FaultKind::FailOnce(after) if used.is_none() && after < body_len => {
                    out.truncate_at = Some(after);
                    used = Some(i);
                }
                FaultKind::FailOnce(_) => {}
            }
        }
        if let Some(i) = used {
            self.faults.remove(i);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_git_and_sha256sum() {
        // `printf hello | git hash-object --stdin` and `printf hello | sha256sum`.
        assert_eq!(git_blob_id(b"hello"), "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0");
        assert_eq!(sha256_hex(b"hello"), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        // The empty blob every git user has seen.
        assert_eq!(git_blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }

    #[test]
    fn lfs_rule() {
        for (name, size, lfs) in [
            ("model.safetensors", 10, true),
            ("tokenizer.model", 10, true),
            ("pytorch_model.bin", 0, true),
            ("config.json", 10, false),
            ("tokenizer.json", LFS_MIN_SIZE - 1, false),
            ("tokenizer.json", LFS_MIN_SIZE, true),
            ("safetensors", 10, false),
        ] {
            assert_eq!(is_lfs(name, size), lfs, "{name} {size}");
        }
    }

    #[test]
    fn pointer_has_the_size_git_lfs_writes() {
        // A 9-digit size gives the 134-byte pointer seen on most hub LFS files.
        let pointer = lfs_pointer(&"0".repeat(64), 123_456_789);
        assert_eq!(pointer.len(), 134);
    }

    #[test]
    fn commit_ids_are_deterministic_and_move_main() {
        let mut state = HubState::default();
        let a = state.add_commit("org/m", vec![("a.txt".into(), b"1".to_vec())]);
        let b = state.add_commit("org/m", vec![("a.txt".into(), b"2".to_vec())]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 40);
        assert_eq!(state.repos["org/m"].resolve("main"), Some(b.as_str()));
        assert_eq!(state.repos["org/m"].resolve(&a), Some(a.as_str()));
        assert_eq!(state.repos["org/m"].resolve("nope"), None);
        let mut other = HubState::default();
        assert_eq!(other.add_commit("org/m", vec![("a.txt".into(), b"1".to_vec())]), a);
        assert_ne!(other.add_commit("org/n", vec![("a.txt".into(), b"1".to_vec())]), a);
    }

    #[test]
    fn directories_of_nested_and_hostile_names() {
        let mut commit = Commit::default();
        for name in ["a/b/c.txt", "x.txt", "/etc/evil", "../evil.txt"] {
            commit.files.insert(name.into(), FileEntry::new(name, Bytes::from_static(b"")));
        }
        let dirs: Vec<_> = commit.directories().into_iter().collect();
        assert_eq!(dirs, ["..", "/etc", "a", "a/b"]);
    }

    #[test]
    fn fail_once_is_used_only_by_a_longer_body() {
        let mut state = HubState::default();
        state.add_commit("org/m", vec![("w.bin".into(), vec![7; 100])]);
        let sha = sha256_hex(&[7; 100]);
        state.add_fault("org/m", "w.bin", FaultKind::FailOnce(10));
        state.add_fault("org/m", "w.bin", FaultKind::Corrupt(5));
        let key = ContentKey::Lfs { sha256: &sha };
        assert_eq!(state.take_faults(&key, 1), Faults { truncate_at: None, corrupt: vec![5] });
        assert_eq!(state.take_faults(&key, 100), Faults { truncate_at: Some(10), corrupt: vec![5] });
        assert_eq!(state.take_faults(&key, 100), Faults { truncate_at: None, corrupt: vec![5] });
        let by_path = ContentKey::Path { repo: "org/m", path: "w.bin" };
        assert_eq!(state.take_faults(&by_path, 100), Faults { truncate_at: None, corrupt: vec![5] });
        let other_blob = "0".repeat(64);
        assert_eq!(state.take_faults(&ContentKey::Lfs { sha256: &other_blob }, 100), Faults::default());
    }
}

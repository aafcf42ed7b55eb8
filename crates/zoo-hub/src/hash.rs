//! Hashing files: sha256 and git blob sha1, streaming and parallel over files.
//!
//! The cache names a blob by its content: 64 hex digits are a sha256 (LFS files), 40 are a git
//! blob sha1 (`sha1("blob {len}\0" + content)`, small files kept in git). [`check_files`] verifies
//! many files at once, reading each file once whatever digests it needs, biggest files first so
//! that the last thread to finish is not stuck with the largest file alone.
//!
//! Speed: `sha2` and `sha1` pick the SHA-NI instructions at run time when the CPU has them, so one
//! core hashes several times faster than coreutils `sha256sum` (plain C). Reads go through one
//! buffer of [`CHUNK`] bytes per thread; peak memory does not grow with file size.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::ser::{Serialize, SerializeStruct, Serializer};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zoo_progress::{CancelToken, Event, Progress, Unit};

use crate::error::{HubError, Result};

/// Bytes read (and hashed) per step. Measured on a 2-core SHA-NI machine (AMD EPYC) from the
/// page cache, best of 5 over 256 MiB: 64 KiB to 1 MiB reads all hash at ~1.2 GB/s, 2 to 8 MiB
/// 2-5% slower (the buffer outgrows L2, so hashing reads it back from farther away). 1 MiB keeps
/// progress events and cancellation checks (one per chunk) cheap and frequent.
pub const CHUNK: usize = 1 << 20;

/// What a file's content must hash to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// sha256 of the content, lowercase hex (LFS files, the Hub's `lfs.sha256`).
    Sha256(String),
    /// git blob sha1 (`sha1("blob {len}\0" + content)`), lowercase hex (the Hub's `blob_id`).
    GitSha1(String),
}

impl Expected {
    /// The expected digest, lowercase hex.
    pub fn hex(&self) -> &str {
        match self {
            Expected::Sha256(h) | Expected::GitSha1(h) => h,
        }
    }
}

/// What a cache blob's name promises about its content: 64 hex digits are a sha256, 40 a git
/// blob sha1; anything else (an etag of another form, a partial download) promises nothing.
pub fn expected_from_blob_name(name: &str) -> Option<Expected> {
    if !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match name.len() {
        64 => Some(Expected::Sha256(name.to_ascii_lowercase())),
        40 => Some(Expected::GitSha1(name.to_ascii_lowercase())),
        _ => None,
    }
}

/// One file for [`check_files`].
#[derive(Debug, Clone)]
pub struct FileToCheck {
    /// How reports name the file (its path inside the repo, say).
    pub label: String,
    /// Where it is on disk; links are followed (snapshot links point at blobs).
    pub path: PathBuf,
    /// Every digest the content must match: e.g. the blob name AND the registry's sha256.
    /// Empty: only presence (and `size`) is checked, nothing is read.
    pub expected: Vec<Expected>,
    /// The size it must have, when known; checked before any byte is read.
    pub size: Option<u64>,
}

/// The outcome of checking one [`FileToCheck`].
///
/// Serializes flat with a snake_case `status` tag: `{"status":"ok"}`,
/// `{"status":"corrupt","expected":"…","actual":"…"}`, `{"status":"unreadable","error":"…"}`,
/// `{"status":"size_mismatch","expected":1,"actual":2}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    /// Every expected digest (and the size) matched.
    Ok,
    /// There is no file at the path (or the link there points at nothing).
    Missing,
    /// The first expected digest that did not match, and what the content hashes to.
    Corrupt { expected: String, actual: String },
    /// The file exists but could not be read: the I/O error. Also what files not yet checked
    /// when work was cancelled get (`"cancelled"`).
    Unreadable(String),
    /// The file does not have the expected size (nothing was hashed).
    SizeMismatch { expected: u64, actual: u64 },
}

impl CheckStatus {
    /// True for [`CheckStatus::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckStatus::Ok)
    }

    /// The snake_case name used as the `status` tag in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Missing => "missing",
            CheckStatus::Corrupt { .. } => "corrupt",
            CheckStatus::Unreadable(_) => "unreadable",
            CheckStatus::SizeMismatch { .. } => "size_mismatch",
        }
    }
}

// By hand because serde's internally tagged enums cannot hold a bare string (`Unreadable`).
impl Serialize for CheckStatus {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let tag = self.name();
        match self {
            CheckStatus::Ok | CheckStatus::Missing => {
                let mut st = s.serialize_struct("CheckStatus", 1)?;
                st.serialize_field("status", tag)?;
                st.end()
            }
            CheckStatus::Corrupt { expected, actual } => {
                let mut st = s.serialize_struct("CheckStatus", 3)?;
                st.serialize_field("status", tag)?;
                st.serialize_field("expected", expected)?;
                st.serialize_field("actual", actual)?;
                st.end()
            }
            CheckStatus::SizeMismatch { expected, actual } => {
                let mut st = s.serialize_struct("CheckStatus", 3)?;
                st.serialize_field("status", tag)?;
                st.serialize_field("expected", expected)?;
                st.serialize_field("actual", actual)?;
                st.end()
            }
            CheckStatus::Unreadable(error) => {
                let mut st = s.serialize_struct("CheckStatus", 2)?;
                st.serialize_field("status", tag)?;
                st.serialize_field("error", error)?;
                st.end()
            }
        }
    }
}

/// The sha256 of a file's content, lowercase hex. Emits one `Advance { task }` event per chunk
/// read (the caller owns `Start`/`Finish`, so this composes into bigger tasks) and stops with
/// [`HubError::Cancelled`] at the next chunk once `cancel` is set.
pub fn sha256_file(path: &Path, progress: &dyn Progress, task: &str, cancel: &CancelToken) -> Result<String> {
    let d = digest_file(path, true, false, &mut |n| advance(progress, task, n), cancel)?;
    d.sha256.ok_or_else(|| internal(path))
}

/// The git blob sha1 of a file (`sha1("blob {len}\0" + content)`, what `git hash-object`
/// prints), lowercase hex. Progress and cancellation as in [`sha256_file`].
pub fn git_sha1_file(path: &Path, progress: &dyn Progress, task: &str, cancel: &CancelToken) -> Result<String> {
    let d = digest_file(path, false, true, &mut |n| advance(progress, task, n), cancel)?;
    d.git_sha1.ok_or_else(|| internal(path))
}

/// Checks `files` on `threads` threads (at least one) and returns one status per file, in input
/// order. Files are taken from a shared queue biggest first; each is read once, computing
/// sha256 and git-sha1 together when both are expected.
///
/// Progress: one `Start { task: "verify", total: <bytes of the files present> }`, an `Advance`
/// per chunk (files not read, or not read to the end, are advanced past so the total is
/// reached), one `Finish`. After `cancel` is set, files not yet done come back as
/// `Unreadable("cancelled")`.
pub fn check_files(
    files: &[FileToCheck],
    threads: usize,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Vec<CheckStatus> {
    const TASK: &str = "verify";
    // Sizes first: they order the queue and give the progress total. A file that cannot be
    // stat'ed sorts last and gets its status when its turn comes.
    let sizes: Vec<Option<u64>> = files.iter().map(|f| std::fs::metadata(&f.path).ok().map(|m| m.len())).collect();
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i].unwrap_or(0)));
    let total: u64 = sizes.iter().flatten().sum();
    progress.event(Event::Start { task: TASK.into(), total: Some(total), unit: Unit::Bytes });

    let results = in_parallel(&order, threads, |i| {
        let mut done = 0u64;
        let status = if cancel.is_cancelled() {
            cancelled()
        } else {
            check_one(
                &files[i],
                &mut |n| {
                    done += n;
                    advance(progress, TASK, n);
                },
                cancel,
            )
        };
        // Keep the bar honest: whatever was not read of this file is done too.
        let rest = sizes[i].unwrap_or(0).saturating_sub(done);
        if rest > 0 {
            advance(progress, TASK, rest);
        }
        status
    });
    progress.event(Event::Finish { task: TASK.into() });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| CheckStatus::Unreadable("not checked: a worker thread failed".into())))
        .collect()
}

/// sha256 of each file, in parallel over files (`threads` workers); progress per file as task
/// `label`, as [`sha256_file`] gives it.
pub fn sha256_files(
    files: &[(String, PathBuf)],
    threads: usize,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Vec<Result<String>> {
    let order: Vec<usize> = (0..files.len()).collect();
    in_parallel(&order, threads, |i| sha256_file(&files[i].1, progress, &files[i].0, cancel))
        .into_iter()
        .map(|r| r.unwrap_or(Err(HubError::Cancelled)))
        .collect()
}

/// `work(i)` for every index of `order`, taken in that order from a shared queue by up to
/// `threads` scoped workers; results by index (`None` only if a worker died).
fn in_parallel<T: Send>(order: &[usize], threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<Option<T>> {
    let n = order.iter().max().map_or(0, |m| m + 1);
    let results: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, order.len().max(1)) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let r = work(i);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results.into_iter().map(|m| m.into_inner().ok().flatten()).collect()
}

/// Checks one file: presence, size, then every expected digest from one read.
fn check_one(file: &FileToCheck, on_chunk: &mut dyn FnMut(u64), cancel: &CancelToken) -> CheckStatus {
    let meta = match std::fs::metadata(&file.path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return CheckStatus::Missing,
        Err(e) => return CheckStatus::Unreadable(e.to_string()),
    };
    if !meta.is_file() {
        return CheckStatus::Unreadable(format!("{}: not a regular file", file.path.display()));
    }
    if let Some(expected) = file.size
        && meta.len() != expected
    {
        return CheckStatus::SizeMismatch { expected, actual: meta.len() };
    }
    if file.expected.is_empty() {
        return CheckStatus::Ok;
    }
    let want_sha256 = file.expected.iter().any(|e| matches!(e, Expected::Sha256(_)));
    let want_sha1 = file.expected.iter().any(|e| matches!(e, Expected::GitSha1(_)));
    let digests = match digest_file(&file.path, want_sha256, want_sha1, on_chunk, cancel) {
        Ok(d) => d,
        Err(HubError::Cancelled) => return cancelled(),
        Err(HubError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => return CheckStatus::Missing,
        Err(e) => return CheckStatus::Unreadable(e.to_string()),
    };
    if let Some(expected) = file.size
        && digests.len != expected
    {
        return CheckStatus::SizeMismatch { expected, actual: digests.len };
    }
    for e in &file.expected {
        let actual = match e {
            Expected::Sha256(_) => digests.sha256.as_deref(),
            Expected::GitSha1(_) => digests.git_sha1.as_deref(),
        };
        let actual = actual.unwrap_or_default();
        if !actual.eq_ignore_ascii_case(e.hex()) {
            return CheckStatus::Corrupt { expected: e.hex().to_ascii_lowercase(), actual: actual.to_string() };
        }
    }
    CheckStatus::Ok
}

/// The digests asked of [`digest_file`], and how many bytes were hashed.
struct Digests {
    sha256: Option<String>,
    git_sha1: Option<String>,
    len: u64,
}

/// Reads `path` once in [`CHUNK`]s, feeding each hasher asked for, calling `on_chunk` with each
/// chunk's length and stopping at the first chunk boundary after `cancel` is set.
fn digest_file(
    path: &Path,
    want_sha256: bool,
    want_git_sha1: bool,
    on_chunk: &mut dyn FnMut(u64),
    cancel: &CancelToken,
) -> Result<Digests> {
    let mut file = File::open(path).map_err(HubError::io(path, "open"))?;
    // The git header needs the length up front; the length of the open file is what is read
    // (unless it changes meanwhile, which the final check catches).
    let len = file.metadata().map_err(HubError::io(path, "stat"))?.len();
    let mut sha256 = want_sha256.then(Sha256::new);
    let mut sha1 = want_git_sha1.then(|| {
        let mut h = Sha1::new();
        h.update(format!("blob {len}\0").as_bytes());
        h
    });
    let mut buf = vec![0u8; CHUNK];
    let mut read = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(HubError::Cancelled);
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(HubError::Io { path: path.to_path_buf(), op: "read", source: e }),
        };
        let chunk = &buf[..n];
        if let Some(h) = sha256.as_mut() {
            h.update(chunk);
        }
        if let Some(h) = sha1.as_mut() {
            h.update(chunk);
        }
        read += n as u64;
        on_chunk(n as u64);
    }
    if sha1.is_some() && read != len {
        return Err(HubError::Io {
            path: path.to_path_buf(),
            op: "read",
            source: std::io::Error::other(format!("file changed while hashing: {len} bytes at open, {read} read")),
        });
    }
    Ok(Digests { sha256: sha256.map(|h| hex(&h.finalize())), git_sha1: sha1.map(|h| hex(&h.finalize())), len: read })
}

/// What a file not (fully) checked because of cancellation reports.
fn cancelled() -> CheckStatus {
    CheckStatus::Unreadable(HubError::Cancelled.to_string())
}

fn advance(progress: &dyn Progress, task: &str, delta: u64) {
    progress.event(Event::Advance { task: task.to_string(), delta });
}

fn internal(path: &Path) -> HubError {
    HubError::Io { path: path.to_path_buf(), op: "hash", source: std::io::Error::other("digest was not computed") }
}

/// Lowercase hex of a digest.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoo_progress::{Recorder, Silent};

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const HELLO_GIT_SHA1: &str = "3b18e512dba79e4c8300dd08aeb37f8e728b8dad";
    const HELLO_SHA256: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";

    fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn to_check(path: &Path, expected: Vec<Expected>, size: Option<u64>) -> FileToCheck {
        FileToCheck { label: path.display().to_string(), path: path.to_path_buf(), expected, size }
    }

    #[test]
    fn sha256_of_abc_is_the_fips_vector() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "abc", b"abc");
        assert_eq!(sha256_file(&p, &Silent, "t", &CancelToken::new()).unwrap(), ABC_SHA256);
    }

    #[test]
    fn git_sha1_matches_git_hash_object() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "hello", b"hello world\n");
        assert_eq!(git_sha1_file(&p, &Silent, "t", &CancelToken::new()).unwrap(), HELLO_GIT_SHA1);
        let empty = write(dir.path(), "empty", b"");
        // `git hash-object /dev/null`
        assert_eq!(
            git_sha1_file(&empty, &Silent, "t", &CancelToken::new()).unwrap(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn multi_chunk_files_hash_like_one_buffer_and_report_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..(2 * CHUNK + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        let p = write(dir.path(), "big", &content);
        let rec = Recorder::default();
        let got = sha256_file(&p, &rec, "big", &CancelToken::new()).unwrap();
        assert_eq!(got, hex(&Sha256::digest(&content)));
        let advanced: u64 = rec
            .events()
            .iter()
            .map(|e| match e {
                Event::Advance { task, delta } if task == "big" => *delta,
                _ => 0,
            })
            .sum();
        assert_eq!(advanced, content.len() as u64);
    }

    #[test]
    fn cancelled_hash_stops_with_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "abc", b"abc");
        let cancel = CancelToken::new();
        cancel.cancel();
        assert!(matches!(sha256_file(&p, &Silent, "t", &cancel), Err(HubError::Cancelled)));
        let files = [to_check(&p, vec![Expected::Sha256(ABC_SHA256.into())], None)];
        assert_eq!(check_files(&files, 2, &Silent, &cancel), vec![CheckStatus::Unreadable("cancelled".into())]);
    }

    #[test]
    fn blob_names_say_which_digest() {
        assert_eq!(expected_from_blob_name(ABC_SHA256), Some(Expected::Sha256(ABC_SHA256.into())));
        assert_eq!(
            expected_from_blob_name(&HELLO_GIT_SHA1.to_uppercase()),
            Some(Expected::GitSha1(HELLO_GIT_SHA1.into()))
        );
        for bad in ["", "abc", &format!("{ABC_SHA256}.incomplete"), &ABC_SHA256.replace('b', "g"), "../etc"] {
            assert_eq!(expected_from_blob_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn check_files_reports_ok_missing_corrupt_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let abc = write(d, "abc", b"abc");
        let hello = write(d, "hello", b"hello world\n");
        let flipped = write(d, "flipped", b"abd");
        let hello_flipped = write(d, "hello_flipped", b"hello world!");
        let both = write(d, "both", b"hello world\n");
        let files = vec![
            to_check(&abc, vec![Expected::Sha256(ABC_SHA256.into())], Some(3)),
            to_check(&d.join("nope"), vec![Expected::Sha256(ABC_SHA256.into())], None),
            to_check(&flipped, vec![Expected::Sha256(ABC_SHA256.into())], None),
            to_check(&hello, vec![Expected::GitSha1(HELLO_GIT_SHA1.into())], None),
            to_check(&hello_flipped, vec![Expected::GitSha1(HELLO_GIT_SHA1.into())], None),
            to_check(
                &both,
                vec![Expected::GitSha1(HELLO_GIT_SHA1.into()), Expected::Sha256(HELLO_SHA256.into())],
                None,
            ),
            to_check(&both, vec![Expected::GitSha1(HELLO_GIT_SHA1.into()), Expected::Sha256(ABC_SHA256.into())], None),
            to_check(&abc, vec![Expected::Sha256(ABC_SHA256.into())], Some(4)),
            to_check(&abc, vec![], None),
        ];
        // `printf abd | sha256sum`
        let flipped_sha = "a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9".to_string();
        let rec = Recorder::default();
        let got = check_files(&files, 3, &rec, &CancelToken::new());
        assert_eq!(
            got,
            vec![
                CheckStatus::Ok,
                CheckStatus::Missing,
                CheckStatus::Corrupt { expected: ABC_SHA256.into(), actual: flipped_sha },
                CheckStatus::Ok,
                CheckStatus::Corrupt {
                    expected: HELLO_GIT_SHA1.into(),
                    // `printf 'hello world!' | git hash-object --stdin`
                    actual: "bc7774a7b18deb1d7bd0212d34246a9b1260ae17".into(),
                },
                CheckStatus::Ok,
                CheckStatus::Corrupt { expected: ABC_SHA256.into(), actual: HELLO_SHA256.into() },
                CheckStatus::SizeMismatch { expected: 4, actual: 3 },
                CheckStatus::Ok,
            ]
        );
        let events = rec.events();
        let starts: Vec<_> = events.iter().filter(|e| matches!(e, Event::Start { .. })).collect();
        // Every file present, in input order (the missing one counts nothing).
        let present: u64 = 3 + 3 + 12 + 12 + 12 + 12 + 3 + 3;
        assert_eq!(starts, vec![&Event::Start { task: "verify".into(), total: Some(present), unit: Unit::Bytes }]);
        let advanced: u64 = events
            .iter()
            .map(|e| match e {
                Event::Advance { delta, .. } => *delta,
                _ => 0,
            })
            .sum();
        assert_eq!(advanced, present);
        assert_eq!(events.last(), Some(&Event::Finish { task: "verify".into() }));
    }

    #[cfg(unix)]
    #[test]
    fn check_files_follows_links_and_a_dangling_link_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let abc = write(dir.path(), "blob", b"abc");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("blob", &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("gone", &dangling).unwrap();
        let files = [
            to_check(&link, vec![Expected::Sha256(ABC_SHA256.into())], None),
            to_check(&dangling, vec![Expected::Sha256(ABC_SHA256.into())], None),
            to_check(&abc, vec![Expected::Sha256(ABC_SHA256.into())], None),
        ];
        assert_eq!(
            check_files(&files, 0, &Silent, &CancelToken::new()),
            vec![CheckStatus::Ok, CheckStatus::Missing, CheckStatus::Ok]
        );
    }

    #[test]
    fn statuses_serialize_flat_with_a_snake_case_tag() {
        let cases = [
            (CheckStatus::Ok, r#"{"status":"ok"}"#),
            (CheckStatus::Missing, r#"{"status":"missing"}"#),
            (
                CheckStatus::Corrupt { expected: "a".into(), actual: "b".into() },
                r#"{"status":"corrupt","expected":"a","actual":"b"}"#,
            ),
            (CheckStatus::Unreadable("denied".into()), r#"{"status":"unreadable","error":"denied"}"#),
            (
                CheckStatus::SizeMismatch { expected: 1, actual: 2 },
                r#"{"status":"size_mismatch","expected":1,"actual":2}"#,
            ),
        ];
        for (status, json) in cases {
            assert_eq!(serde_json::to_string(&status).unwrap(), json);
        }
        assert_eq!(serde_json::to_string(&Expected::GitSha1("ab".into())).unwrap(), r#"{"git_sha1":"ab"}"#);
        // Callers flatten a status into their own per-file records.
        #[derive(serde::Serialize)]
        struct Row {
            file: &'static str,
            #[serde(flatten)]
            status: CheckStatus,
        }
        let row = Row { file: "a.bin", status: CheckStatus::Unreadable("denied".into()) };
        assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"file":"a.bin","status":"unreadable","error":"denied"}"#);
    }
}

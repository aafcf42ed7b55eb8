//! Pulling files from the hub into the cache.
//!
//! The hf-hub crate (0.5, sync) builds the requests (endpoint, token, user agent) and asks the
//! hub for the repo listing; the transfer itself is ours because neither hf-hub line resumes
//! into the same partial file Python uses nor checks what it wrote. Per file:
//!
//! 1. the expected digest comes from the listing (`lfs.sha256` for LFS files, `blobId`, a git
//!    blob sha1, for the others) and, when the caller knows one, from the registry;
//! 2. bytes go to `blobs/<etag>.incomplete` (Python's name, so either tool resumes the other's
//!    partial file) under the lock file Python uses (`.locks/<repo folder>/<etag>.lock`);
//! 3. an interrupted transfer resumes with `Range` after a backoff; the digest is computed as
//!    bytes arrive (the partial file is hashed first when resuming); a cancelled transfer, or
//!    one whose write failed (a full disk), leaves the partial file for the next pull;
//! 4. a digest or size mismatch deletes the partial file and fails: a corrupt blob never
//!    reaches `blobs/<etag>`; a good one is fsynced and renamed there;
//! 5. `snapshots/<commit>/<path>` becomes a relative link to the blob and `refs/<revision>`
//!    names the commit.
//!
//! Offline (`HF_HUB_OFFLINE=1` or `--offline`) nothing here opens a socket: the listing is
//! read from the cache and a missing file is an error at once.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Repo, RepoType};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zoo_progress::{CancelToken, Event, Progress, Unit};

use crate::error::{HubError, Result};
use crate::{HfCache, repo_folder_name};

/// How to reach the hub and where the cache is.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// `HF_TOKEN`, else the file `HF_TOKEN_PATH`, else `$HF_HOME/token`.
    pub token: Option<String>,
    /// The cache root (what `HF_HUB_CACHE` names).
    pub cache: PathBuf,
    /// No network at all: listings and files come from the cache or not at all.
    pub offline: bool,
    /// Attempts per file after the first, for transient errors (connection lost, 5xx, 429).
    pub retries: u32,
    /// First backoff; doubled per attempt, at most 10 s.
    pub backoff: Duration,
    /// PEM bundle of trusted root certificates (`SSL_CERT_FILE`, else the system bundle), as
    /// curl and pip trust them; `None`: Mozilla's roots built into the TLS stack.
    pub ca_bundle: Option<PathBuf>,
}

/// Where Debian/Ubuntu, Fedora/RHEL and Alpine keep the system's trusted roots.
const SYSTEM_CA_BUNDLES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// The trusted roots of `bundle` (PEM), or the built-in Mozilla roots when it gives none.
fn root_certs(bundle: Option<&Path>) -> ureq::tls::RootCerts {
    let certs: Vec<ureq::tls::Certificate<'static>> = bundle
        .and_then(|p| fs::read(p).ok())
        .map(|pem| {
            ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if certs.is_empty() { ureq::tls::RootCerts::WebPki } else { ureq::tls::RootCerts::new_with_certs(&certs) }
}

impl HubConfig {
    /// Settings from the environment as `huggingface_hub` reads them, for the given cache root.
    pub fn from_env(cache: PathBuf) -> HubConfig {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let endpoint =
            var("HF_ENDPOINT").map(|e| e.trim_end_matches('/').to_string()).unwrap_or("https://huggingface.co".into());
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("token")))
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/token")))?;
            fs::read_to_string(path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        });
        HubConfig {
            endpoint,
            token,
            cache,
            offline: offline_from_env(),
            retries: 5,
            backoff: Duration::from_millis(250),
            ca_bundle: var("SSL_CERT_FILE")
                .map(PathBuf::from)
                .or_else(|| SYSTEM_CA_BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file())),
        }
    }
}

/// `HF_HUB_OFFLINE` as `huggingface_hub` reads it (1, ON, YES, TRUE).
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE"))
        .unwrap_or(false)
}

/// One file of a repo at one commit, as the hub lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteFile {
    pub path: String,
    pub size: Option<u64>,
    /// Git blob sha1 of the content (or of the LFS pointer, for LFS files).
    pub blob_id: Option<String>,
    /// sha256 of the content, for LFS files.
    pub lfs_sha256: Option<String>,
}

impl RemoteFile {
    /// The blob name in the cache: the sha256 for LFS files, else the git blob id.
    pub fn etag(&self) -> Option<&str> {
        self.lfs_sha256.as_deref().or(self.blob_id.as_deref())
    }
}

/// A repo at one commit.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub repo_id: String,
    /// What was asked for (branch, tag or commit).
    pub revision: String,
    pub commit: String,
    pub files: Vec<RemoteFile>,
    /// Listed names that were refused (`..`, absolute paths, ...), with the reason.
    pub refused: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct InfoJson {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<SiblingJson>,
}

#[derive(Deserialize)]
struct SiblingJson {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<LfsJson>,
}

#[derive(Deserialize)]
struct LfsJson {
    sha256: Option<String>,
    size: Option<u64>,
}

/// A file name from a listing, accepted only when it stays inside the snapshot folder.
pub fn check_repo_path(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.starts_with('/') || name.starts_with('\\') || name.contains('\\') {
        return Err("absolute or backslash path".into());
    }
    if name.len() > 1024 {
        return Err("name longer than 1024 bytes".into());
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("control character in name".into());
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!("path component {part:?}"));
        }
        if part.len() >= 2 && part.as_bytes()[1] == b':' {
            return Err("drive-letter path".into());
        }
    }
    Ok(())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A commit id or a ref name safe to use as a folder/file name under the repo folder.
fn check_revision(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 256
        && rev.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
        && rev.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(HubError::Hostile { what: format!("revision {rev:?}"), reason: "not a branch, tag or commit name".into() })
    }
}

/// The hub client: listing through hf-hub, transfers through our resumable downloader.
pub struct Hub {
    cfg: HubConfig,
    api: Option<Api>,
    agent: ureq::Agent,
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Result<Hub> {
        let api = if cfg.offline {
            None
        } else {
            let api = ApiBuilder::new()
                .with_endpoint(cfg.endpoint.clone())
                .with_cache_dir(cfg.cache.clone())
                .with_token(cfg.token.clone())
                .with_progress(false)
                .with_user_agent("zoo", env!("CARGO_PKG_VERSION"))
                .build()
                .map_err(|e| HubError::Http { url: cfg.endpoint.clone(), message: e.to_string() })?;
            Some(api)
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(30)))
            .user_agent(format!("zoo/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(root_certs(cfg.ca_bundle.as_deref())).build())
            .build()
            .into();
        Ok(Hub { cfg, api, agent })
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// The HTTP agent (redirects by hand, statuses as values, timeouts set).
    pub(crate) fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    pub fn cache(&self) -> HfCache {
        HfCache::new(&self.cfg.cache)
    }

    /// The files of `repo_id` at `revision` (default `main`): from the hub, or offline from
    /// the cache's snapshot.
    pub fn list(&self, repo_id: &str, revision: Option<&str>) -> Result<Listing> {
        let revision = revision.unwrap_or("main");
        check_revision(revision)?;
        repo_folder_name(repo_id)
            .ok_or_else(|| HubError::Hostile { what: format!("repo id {repo_id:?}"), reason: "not org/name".into() })?;
        let Some(api) = &self.api else { return self.list_cached(repo_id, revision) };
        let repo = api.repo(Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string()));
        let mut attempt = 0;
        let (status, body) = loop {
            let req = repo.info_request().query("blobs", "true").config().http_status_as_error(false).build();
            let url = format!("{}/api/models/{repo_id}/revision/{revision}", self.cfg.endpoint);
            match req.call() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let code = header(&resp, "x-error-code").unwrap_or_default();
                    if retryable_status(status) && attempt < self.cfg.retries {
                        attempt += 1;
                        std::thread::sleep(backoff(self.cfg.backoff, attempt));
                        continue;
                    }
                    match status {
                        200 => {}
                        401 | 403 => return Err(HubError::Unauthorized { repo: repo_id.into(), status }),
                        404 if code == "RevisionNotFound" => {
                            return Err(HubError::RevisionNotFound { repo: repo_id.into(), revision: revision.into() });
                        }
                        404 => {
                            return Err(HubError::RepoNotFound {
                                repo: repo_id.into(),
                                endpoint: self.cfg.endpoint.clone(),
                            });
                        }
                        s => return Err(HubError::Http { url, message: format!("HTTP {s}") }),
                    }
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(64 << 20)
                        .read_to_string()
                        .map_err(|e| HubError::Http { url: url.clone(), message: e.to_string() })?;
                    break (status, body);
                }
                Err(e) if attempt < self.cfg.retries && transient(&e) => {
                    attempt += 1;
                    std::thread::sleep(backoff(self.cfg.backoff, attempt));
                }
                Err(e) if attempt > 0 => {
                    return Err(HubError::TooManyRetries { url, attempts: attempt + 1, last: e.to_string() });
                }
                Err(e) => return Err(HubError::Http { url, message: e.to_string() }),
            }
        };
        debug_assert_eq!(status, 200);
        parse_listing(repo_id, revision, &body)
    }

    fn list_cached(&self, repo_id: &str, revision: &str) -> Result<Listing> {
        let cache = self.cache();
        let miss = || HubError::OfflineMiss { what: format!("{repo_id}@{revision}"), cache: self.cfg.cache.clone() };
        let snap = cache.snapshot_dir(repo_id, Some(revision)).ok_or_else(miss)?;
        let commit = snap.file_name().and_then(|n| n.to_str()).ok_or_else(miss)?.to_string();
        let mut files = Vec::new();
        collect_snapshot(&snap, &snap, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Listing { repo_id: repo_id.into(), revision: revision.into(), commit, files, refused: Vec::new() })
    }

    /// Download `files` of `listing` into the cache (skipping blobs already there) and link
    /// them into the snapshot. `expected_sha256` holds digests the registry records, by path:
    /// they must agree with the hub's. Returns the snapshot folder.
    pub fn download(
        &self,
        listing: &Listing,
        files: &[RemoteFile],
        expected_sha256: &BTreeMap<String, String>,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<PathBuf> {
        let cache = self.cache();
        let repo_dir = cache.repo_dir(&listing.repo_id).ok_or_else(|| HubError::Hostile {
            what: format!("repo id {:?}", listing.repo_id),
            reason: "not org/name".into(),
        })?;
        check_revision(&listing.commit)?;
        let snap = repo_dir.join("snapshots").join(&listing.commit);
        let todo: Vec<&RemoteFile> = files.iter().collect();
        let total: u64 = todo.iter().filter(|f| !blob_present(&repo_dir, f)).filter_map(|f| f.size).sum();
        progress.event(Event::Start { task: "download".into(), total: Some(total), unit: Unit::Bytes });
        for f in &todo {
            check_repo_path(&f.path)
                .map_err(|reason| HubError::Hostile { what: format!("file name {:?}", f.path), reason })?;
            if self.api.is_none() && snap.join(&f.path).is_file() {
                continue; // offline: the snapshot already has it
            }
            if let (Some(want), Some(lfs)) = (expected_sha256.get(&f.path), f.lfs_sha256.as_deref())
                && !want.eq_ignore_ascii_case(lfs)
            {
                return Err(HubError::ChecksumMismatch {
                    file: format!("{}/{} (the hub's sha256 against the registry's)", listing.repo_id, f.path),
                    expected: want.clone(),
                    actual: lfs.to_string(),
                });
            }
            let etag = f.etag().ok_or_else(|| HubError::BadResponse {
                what: format!("{}/{}", listing.repo_id, f.path),
                reason: "the listing gives neither lfs.sha256 nor blobId".into(),
            })?;
            if !(is_hex(etag, 64) || is_hex(etag, 40)) {
                return Err(HubError::Hostile {
                    what: format!("blob name {etag:?}"),
                    reason: "not a hex digest".into(),
                });
            }
            let blob = repo_dir.join("blobs").join(etag);
            if !blob.is_file() {
                if self.api.is_none() {
                    return Err(HubError::OfflineMiss {
                        what: format!("{}/{}", listing.repo_id, f.path),
                        cache: self.cfg.cache.clone(),
                    });
                }
                self.fetch_blob(listing, f, etag, expected_sha256.get(&f.path), &repo_dir, progress, cancel)?;
            }
            link_snapshot(&snap, &f.path, etag)?;
        }
        if listing.revision != listing.commit && self.api.is_some() {
            write_ref(&repo_dir, &listing.revision, &listing.commit)?;
        }
        progress.event(Event::Finish { task: "download".into() });
        Ok(snap)
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch_blob(
        &self,
        listing: &Listing,
        f: &RemoteFile,
        etag: &str,
        registry_sha: Option<&String>,
        repo_dir: &Path,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<()> {
        let label = format!("{}/{}", listing.repo_id, f.path);
        let blobs = repo_dir.join("blobs");
        fs::create_dir_all(&blobs).map_err(HubError::io(&blobs, "create folder"))?;
        let folder = repo_dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let locks = self.cfg.cache.join(".locks").join(folder);
        fs::create_dir_all(&locks).map_err(HubError::io(&locks, "create folder"))?;
        let lock_path = locks.join(format!("{etag}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(HubError::io(&lock_path, "open lock"))?;
        lock.lock().map_err(HubError::io(&lock_path, "lock"))?;
        let blob = blobs.join(etag);
        if blob.is_file() {
            return Ok(()); // another process finished it while we waited for the lock
        }
        let url =
            format!("{}/{}/resolve/{}/{}", self.cfg.endpoint, listing.repo_id, listing.commit, encode_path(&f.path));
        let fetch = Fetch {
            url,
            label,
            task: f.path.clone(),
            part: blobs.join(format!("{etag}.incomplete")),
            dest: blob,
            file: f,
            pin_sha256: registry_sha,
            send_token: true,
        };
        self.fetch_verified(&fetch, progress, cancel)?;
        drop(lock);
        Ok(())
    }

    /// Downloads `fetch.url` into `fetch.part` (resuming what is there), checks its size and
    /// digest, fsyncs and renames it to `fetch.dest`. Transient failures are retried with
    /// backoff; a cancelled transfer keeps the partial file for the next attempt; a bad digest
    /// discards it. The caller holds whatever lock keeps other processes off `fetch.part`.
    pub(crate) fn fetch_verified(
        &self,
        fetch: &Fetch<'_>,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<()> {
        let Fetch { url, label, task, part, dest, file: f, pin_sha256: registry_sha, send_token } = fetch;
        let (label, part) = (label.clone(), part.as_path());
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(part)
            .map_err(HubError::io(part, "open"))?;
        let mut have = file.metadata().map_err(HubError::io(part, "stat"))?.len();
        if f.size.is_some_and(|s| have > s) {
            have = 0;
        }
        let mut hasher = Hasher::new(f);
        if have > 0 {
            // Resume: the digest must cover the bytes already there.
            file.seek(SeekFrom::Start(0)).map_err(HubError::io(part, "seek"))?;
            let mut r = (&mut file).take(have);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = r.read(&mut buf).map_err(HubError::io(part, "read"))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            progress.event(Event::Note { message: format!("{label}: resuming at byte {have}") });
        }
        file.set_len(have).map_err(HubError::io(part, "truncate"))?;
        file.seek(SeekFrom::Start(have)).map_err(HubError::io(part, "seek"))?;

        progress.event(Event::Start { task: task.clone(), total: f.size, unit: Unit::Bytes });
        if have > 0 {
            progress.event(Event::Advance { task: task.clone(), delta: have });
        }
        let mut attempt = 0u32;
        loop {
            if cancel.is_cancelled() {
                return Err(HubError::Cancelled);
            }
            match self.transfer(
                url,
                task,
                &label,
                &mut file,
                part,
                &mut have,
                &mut hasher,
                f.size,
                *send_token,
                progress,
                cancel,
            ) {
                Ok(()) => break,
                Err(Failure::Fatal(e)) => {
                    // Kept for the next pull to resume: a cancelled transfer, and one whose
                    // write failed (a full disk: free space, pull again, nothing is fetched twice).
                    if matches!(e, HubError::Cancelled | HubError::Io { op: "write", .. }) {
                        return Err(e);
                    }
                    drop(file);
                    let _ = fs::remove_file(part);
                    return Err(e);
                }
                Err(Failure::Transient(msg)) => {
                    attempt += 1;
                    if attempt > self.cfg.retries {
                        return Err(HubError::TooManyRetries { url: url.clone(), attempts: attempt, last: msg });
                    }
                    progress.event(Event::Note {
                        message: format!("{label}: {msg}; retrying from byte {have} (attempt {})", attempt + 1),
                    });
                    std::thread::sleep(backoff(self.cfg.backoff, attempt));
                }
            }
        }
        progress.event(Event::Finish { task: task.clone() });
        let discard = |e: HubError| {
            let _ = fs::remove_file(part);
            e
        };
        if let Some(size) = f.size
            && have != size
        {
            return Err(discard(HubError::SizeMismatch { file: label, expected: size, actual: have }));
        }
        let (kind, actual) = hasher.finish(have);
        let expected = match kind {
            "sha256" => f.lfs_sha256.clone(),
            _ => f.blob_id.clone(),
        }
        .unwrap_or_default();
        if actual != expected {
            return Err(discard(HubError::ChecksumMismatch { file: label, expected, actual }));
        }
        if let Some(want) = registry_sha
            && kind == "sha256"
            && !want.eq_ignore_ascii_case(&actual)
        {
            return Err(discard(HubError::ChecksumMismatch { file: label, expected: (*want).clone(), actual }));
        }
        zoo_atomic_write::publish(file, part, dest)?;
        Ok(())
    }

    /// One GET from byte `have` (following redirects by hand so `Range` and the token go
    /// where they should), appending to `file`.
    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &self,
        url: &str,
        task: &str,
        label: &str,
        file: &mut File,
        part: &Path,
        have: &mut u64,
        hasher: &mut Hasher,
        size: Option<u64>,
        send_token: bool,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> std::result::Result<(), Failure> {
        let fatal = |e: HubError| Failure::Fatal(e);
        let mut target = url.to_string();
        let origin = host_of(url).to_string();
        let mut resp = None;
        for _ in 0..10 {
            let mut req = self.agent.get(&target);
            if *have > 0 {
                req = req.header("Range", &format!("bytes={have}-"));
            }
            if let Some(t) = self.cfg.token.as_ref().filter(|_| send_token)
                && host_of(&target) == origin
            {
                req = req.header("Authorization", &format!("Bearer {t}"));
            }
            let r = req.call().map_err(|e| classify(&e))?;
            let status = r.status().as_u16();
            if (300..400).contains(&status) {
                let loc = header(&r, "location").ok_or_else(|| {
                    fatal(HubError::BadResponse { what: label.into(), reason: "redirect without Location".into() })
                })?;
                target = join_url(&target, &loc);
                continue;
            }
            resp = Some(r);
            break;
        }
        let mut r = resp.ok_or_else(|| {
            fatal(HubError::BadResponse { what: label.into(), reason: "more than 10 redirects".into() })
        })?;
        let status = r.status().as_u16();
        match status {
            200 => {
                if *have > 0 {
                    // The server ignored Range: start over.
                    *have = 0;
                    *hasher = hasher.fresh();
                    file.set_len(0).map_err(|e| fatal(HubError::io(part, "truncate")(e)))?;
                    file.seek(SeekFrom::Start(0)).map_err(|e| fatal(HubError::io(part, "seek")(e)))?;
                }
            }
            206 => {
                let start = header(&r, "content-range").and_then(|v| {
                    v.strip_prefix("bytes ").and_then(|v| v.split('-').next()).and_then(|s| s.parse::<u64>().ok())
                });
                if start != Some(*have) {
                    return Err(fatal(HubError::BadResponse {
                        what: label.into(),
                        reason: format!("asked for bytes from {have}, got Content-Range {start:?}"),
                    }));
                }
            }
            416 if size == Some(*have) => return Ok(()),
            416 => {
                *have = 0;
                *hasher = hasher.fresh();
                file.set_len(0).map_err(|e| fatal(HubError::io(part, "truncate")(e)))?;
                return Err(Failure::Transient("server refused the resume range; starting over".into()));
            }
            401 | 403 => return Err(fatal(HubError::Unauthorized { repo: label.into(), status })),
            404 => {
                return Err(fatal(HubError::BadResponse {
                    what: label.into(),
                    reason: "the hub answered 404 for a listed file".into(),
                }));
            }
            s if retryable_status(s) => return Err(Failure::Transient(format!("HTTP {s}"))),
            s => return Err(fatal(HubError::Http { url: target, message: format!("HTTP {s}") })),
        }
        let mut reader = r.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if cancel.is_cancelled() {
                return Err(fatal(HubError::Cancelled));
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Transient(format!("connection lost after byte {have}: {e}"))),
            };
            if size.is_some_and(|s| *have + n as u64 > s) {
                return Err(fatal(HubError::SizeMismatch {
                    file: label.into(),
                    expected: size.unwrap_or(0),
                    actual: *have + n as u64,
                }));
            }
            file.write_all(&buf[..n]).map_err(|e| fatal(HubError::io(part, "write")(e)))?;
            hasher.update(&buf[..n]);
            *have += n as u64;
            progress.event(Event::Advance { task: "download".into(), delta: n as u64 });
            progress.event(Event::Advance { task: task.to_string(), delta: n as u64 });
        }
        if let Some(s) = size
            && *have < s
        {
            return Err(Failure::Transient(format!("connection closed at byte {have} of {s}")));
        }
        Ok(())
    }
}

enum Failure {
    Transient(String),
    Fatal(HubError),
}

/// One verified download: from `url` into `part`, renamed to `dest` when its size and digest
/// (sha256 when `file.lfs_sha256` is set, else the git blob id) check out.
pub(crate) struct Fetch<'a> {
    pub url: String,
    pub label: String,
    /// The progress task of this file.
    pub task: String,
    pub part: PathBuf,
    pub dest: PathBuf,
    pub file: &'a RemoteFile,
    /// A second sha256 the content must have (the registry's).
    pub pin_sha256: Option<&'a String>,
    /// Send the hub token (only to the URL's own host): never to other indexes.
    pub send_token: bool,
}

fn classify(e: &ureq::Error) -> Failure {
    if transient(e) {
        Failure::Transient(e.to_string())
    } else {
        Failure::Fatal(HubError::Http { url: String::new(), message: e.to_string() })
    }
}

pub(crate) fn transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound
    ) || matches!(e, ureq::Error::StatusCode(s) if retryable_status(*s))
}

pub(crate) fn retryable_status(s: u16) -> bool {
    matches!(s, 408 | 429 | 500 | 502 | 503 | 504)
}

pub(crate) fn backoff(first: Duration, attempt: u32) -> Duration {
    (first * 2u32.saturating_pow(attempt.saturating_sub(1))).min(Duration::from_secs(10))
}

fn header<B>(r: &ureq::http::Response<B>, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    rest.split('/').next().unwrap_or("")
}

/// Resolve a `Location` or an index page's link against the URL it came from (absolute,
/// host-rooted, or relative with `.` and `..` segments).
pub(crate) fn join_url(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let host = rest.split('/').next().unwrap_or("");
    if loc.starts_with('/') {
        return format!("{scheme}://{host}{loc}");
    }
    let path = rest.get(host.len()..).unwrap_or("");
    let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if !path.ends_with('/') {
        segs.pop();
    }
    for s in loc.split('/') {
        match s {
            ".." => {
                segs.pop();
            }
            "." | "" => {}
            s => segs.push(s),
        }
    }
    format!("{scheme}://{host}/{}", segs.join("/"))
}

/// Percent-encode a repo path for a URL, keeping `/`.
fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_listing(repo_id: &str, revision: &str, body: &str) -> Result<Listing> {
    let what = format!("listing of {repo_id}@{revision}");
    let info: InfoJson =
        serde_json::from_str(body).map_err(|e| HubError::BadResponse { what: what.clone(), reason: e.to_string() })?;
    let commit =
        info.sha.ok_or_else(|| HubError::BadResponse { what: what.clone(), reason: "no commit sha".into() })?;
    if !is_hex(&commit, 40) {
        return Err(HubError::Hostile { what: format!("commit {commit:?}"), reason: "not a 40-hex commit id".into() });
    }
    let mut files = Vec::new();
    let mut refused = Vec::new();
    for s in info.siblings {
        if let Err(reason) = check_repo_path(&s.rfilename) {
            refused.push((s.rfilename, reason));
            continue;
        }
        let lfs_sha256 = s.lfs.as_ref().and_then(|l| l.sha256.clone());
        let size = s.lfs.as_ref().and_then(|l| l.size).or(s.size);
        for d in [&lfs_sha256, &s.blob_id].into_iter().flatten() {
            if !(is_hex(d, 64) || is_hex(d, 40)) {
                return Err(HubError::Hostile {
                    what: format!("digest {d:?} of {}", s.rfilename),
                    reason: "not a lowercase hex digest".into(),
                });
            }
        }
        files.push(RemoteFile { path: s.rfilename, size, blob_id: s.blob_id, lfs_sha256 });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Listing { repo_id: repo_id.into(), revision: revision.into(), commit, files, refused })
}

/// Files of a cached snapshot, as a listing (offline). Links that leave the repo's blobs are
/// skipped; blob names give the digests.
fn collect_snapshot(root: &Path, dir: &Path, out: &mut Vec<RemoteFile>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(HubError::io(dir, "read folder"))?;
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            collect_snapshot(root, &path, out)?;
            continue;
        }
        let Some(rel) = path.strip_prefix(root).ok().and_then(|p| p.to_str()).map(|s| s.replace('\\', "/")) else {
            continue;
        };
        let (size, name) = if meta.file_type().is_symlink() {
            let Ok(target) = fs::read_link(&path) else { continue };
            let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            let in_blobs = target.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "blobs")
                && target.is_relative()
                && target.components().all(|c| !matches!(c, std::path::Component::RootDir));
            if !in_blobs {
                continue;
            }
            match fs::metadata(&path) {
                Ok(m) => (Some(m.len()), name),
                Err(_) => continue,
            }
        } else {
            (Some(meta.len()), String::new())
        };
        let (lfs_sha256, blob_id) = if is_hex(&name, 64) {
            (Some(name), None)
        } else if is_hex(&name, 40) {
            (None, Some(name))
        } else {
            (None, None)
        };
        out.push(RemoteFile { path: rel, size, blob_id, lfs_sha256 });
    }
    Ok(())
}

fn blob_present(repo_dir: &Path, f: &RemoteFile) -> bool {
    f.etag().is_some_and(|e| repo_dir.join("blobs").join(e).is_file())
}

/// `snapshots/<commit>/<path>` → `../../blobs/<etag>` (one more `..` per folder in `path`),
/// replaced atomically when it exists.
fn link_snapshot(snap: &Path, rel: &str, etag: &str) -> Result<()> {
    let dest = snap.join(rel);
    let parent = dest.parent().unwrap_or(snap);
    fs::create_dir_all(parent).map_err(HubError::io(parent, "create folder"))?;
    let depth = rel.matches('/').count() + 2;
    let target: PathBuf = std::iter::repeat_n("..", depth).collect::<PathBuf>().join("blobs").join(etag);
    if fs::read_link(&dest).is_ok_and(|t| t == target) {
        return Ok(());
    }
    zoo_atomic_write::symlink(&target, &dest)?;
    Ok(())
}

fn write_ref(repo_dir: &Path, name: &str, commit: &str) -> Result<()> {
    check_revision(name)?;
    let path = repo_dir.join("refs").join(name);
    if fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
        return Ok(());
    }
    zoo_atomic_write::write(&path, commit.as_bytes())?;
    Ok(())
}

/// The digest a file is checked with as its bytes arrive.
enum Hasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1, Option<u64>),
}

impl Hasher {
    fn new(f: &RemoteFile) -> Hasher {
        if f.lfs_sha256.is_some() {
            Hasher::Sha256(sha2::Sha256::new())
        } else {
            let mut h = sha1::Sha1::new();
            if let Some(size) = f.size {
                h.update(format!("blob {size}\0").as_bytes());
            }
            Hasher::GitSha1(h, f.size)
        }
    }

    fn fresh(&self) -> Hasher {
        match self {
            Hasher::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
            Hasher::GitSha1(_, size) => {
                let mut h = sha1::Sha1::new();
                if let Some(size) = size {
                    h.update(format!("blob {size}\0").as_bytes());
                }
                Hasher::GitSha1(h, *size)
            }
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::GitSha1(h, _) => h.update(b),
        }
    }

    /// (`"sha256"` or `"git-sha1"`, lowercase hex). A git digest whose size was unknown up
    /// front cannot be checked and gives an empty string.
    fn finish(self, _len: u64) -> (&'static str, String) {
        match self {
            Hasher::Sha256(h) => ("sha256", hex(&h.finalize())),
            Hasher::GitSha1(h, Some(_)) => ("git-sha1", hex(&h.finalize())),
            Hasher::GitSha1(_, None) => ("git-sha1", String::new()),
        }
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in ["", "../x", "a/../../b", "/etc/passwd", "a//b", "./a", "a\\b", "C:/x", "a/\u{7}"] {
            assert!(check_repo_path(bad).is_err(), "{bad:?}");
        }
        for good in ["config.json", "a/b/model.safetensors", "x..y", ".gitattributes"] {
            assert!(check_repo_path(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn urls_join_and_encode() {
        assert_eq!(join_url("http://h:1/a/b", "/c"), "http://h:1/c");
        assert_eq!(join_url("http://h:1/a/b", "https://x/y"), "https://x/y");
        assert_eq!(encode_path("a b/c+d.json"), "a%20b/c%2Bd.json");
        assert_eq!(host_of("http://127.0.0.1:5/x"), "127.0.0.1:5");
    }

    #[test]
    fn listing_refuses_bad_names_and_digests() {
        let ok = r#"{"sha":"0123456789abcdef0123456789abcdef01234567","siblings":[
            {"rfilename":"config.json","size":2,"blobId":"0123456789abcdef0123456789abcdef01234567"},
            {"rfilename":"../evil","size":2}]}"#;
        let l = parse_listing("o/n", "main", ok).unwrap();
        assert_eq!(l.files.len(), 1);
        assert_eq!(l.refused[0].0, "../evil");
        let bad = r#"{"sha":"../../x","siblings":[]}"#;
        assert!(matches!(parse_listing("o/n", "main", bad), Err(HubError::Hostile { .. })));
        let bad = r#"{"sha":"0123456789abcdef0123456789abcdef01234567","siblings":[{"rfilename":"a","lfs":{"sha256":"../../../etc"}}]}"#;
        assert!(matches!(parse_listing("o/n", "main", bad), Err(HubError::Hostile { .. })));
    }
}

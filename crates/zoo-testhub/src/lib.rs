//! A Hugging Face hub look-alike on loopback, for tests of hub clients (the `hf-hub` crate, our own
//! downloader, Python `huggingface_hub`), with fault injection.
//!
//! [`TestHub::start`] serves two origins from one background thread:
//! - the hub ([`TestHub::endpoint`]): model info (`/api/models/{repo}[/revision/{rev}]`, `?blobs=true`),
//!   `/api/models/{repo}/tree/{rev}[/{path}]`, `POST /api/models/{repo}/paths-info/{rev}`, and
//!   `GET|HEAD /{repo}/resolve/{rev}/{path}` with the hub's headers (`ETag`, `X-Repo-Commit`, Range);
//! - a CDN ([`TestHub::cdn_endpoint`]) serving `GET|HEAD /lfs/{sha256}`, where `resolve` redirects LFS files.
//!   The hub origin serves `/lfs/{sha256}` too.
//!
//! The CDN has its own origin because huggingface_hub follows a redirect that stays on the hub's origin and
//! then wants `X-Repo-Commit` on the final response; on the real hub the LFS redirect leaves for another
//! host, so the client reads the metadata from the redirect itself. See the crate README for what is and is
//! not implemented.
//!
//! ```
//! let hub = zoo_testhub::TestHub::start();
//! let commit = hub.add_commit("org/tiny", vec![("config.json".into(), b"{}".to_vec())]);
//! assert_eq!(commit.len(), 40);
//! assert!(hub.endpoint().starts_with("http://127.0.0.1:"));
//! ```

mod conn;
pub mod openai;
mod server;
mod state;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::conn::{CountingListener, CutSwitch};
use crate::server::Shared;
use crate::state::FaultKind;

/// A running test hub. All methods are synchronous and may be called while clients use the server.
/// Dropping it stops the server and closes every connection.
#[derive(Debug)]
pub struct TestHub {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestHub {
    /// Starts a hub on `127.0.0.1` with an ephemeral port; it accepts connections when this returns.
    ///
    /// # Panics
    /// If no loopback port can be bound or the runtime cannot start: a test cannot go on without its hub.
    pub fn start() -> TestHub {
        match TestHub::start_on(0) {
            Ok(hub) => hub,
            Err(e) => panic!("zoo-testhub: cannot start on 127.0.0.1: {e}"),
        }
    }

    /// Starts a hub on `127.0.0.1:port` (0 for an ephemeral port); the CDN always takes an ephemeral port.
    pub fn start_on(port: u16) -> io::Result<TestHub> {
        let hub_listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let cdn_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        hub_listener.set_nonblocking(true)?;
        cdn_listener.set_nonblocking(true)?;
        let addr = hub_listener.local_addr()?;
        let cdn_addr = cdn_listener.local_addr()?;

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let connections = Arc::new(AtomicU64::new(0));
        let (hub_listener, cdn_listener) = {
            let _guard = runtime.enter();
            (
                CountingListener::new(tokio::net::TcpListener::from_std(hub_listener)?, connections.clone()),
                CountingListener::new(tokio::net::TcpListener::from_std(cdn_listener)?, connections.clone()),
            )
        };
        let shared =
            Arc::new(Shared { state: Default::default(), connections, cdn_endpoint: format!("http://{cdn_addr}") });

        let (shutdown, stopped) = oneshot::channel::<()>();
        let hub_app = server::router(shared.clone(), false).into_make_service_with_connect_info::<CutSwitch>();
        let cdn_app = server::router(shared.clone(), true).into_make_service_with_connect_info::<CutSwitch>();
        let thread = std::thread::Builder::new().name(format!("zoo-testhub-{}", addr.port())).spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = axum::serve(hub_listener, hub_app) => {}
                    _ = axum::serve(cdn_listener, cdn_app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task, so no client keeps the server alive.
            drop(runtime);
        })?;
        Ok(TestHub { shared, addr, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// The hub's base URL, `http://127.0.0.1:PORT` (what `HF_ENDPOINT` should be).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CDN's base URL, where LFS `resolve` redirects point (`{cdn}/lfs/{sha256}`).
    pub fn cdn_endpoint(&self) -> String {
        self.shared.cdn_endpoint.clone()
    }

    /// Adds a commit to `repo_id` (created if new) holding exactly `files` (name, content), moves `main` to it
    /// and returns its 40-hex id. The id depends only on the repo id, the names and the contents.
    pub fn add_commit(&self, repo_id: &str, files: Vec<(String, Vec<u8>)>) -> String {
        self.shared.lock().add_commit(repo_id, files)
    }

    /// [`add_commit`](Self::add_commit) of every regular file under `dir`, recursively, named by its path
    /// relative to `dir` with `/` separators. Symbolic links and other special files are skipped.
    pub fn add_dir(&self, repo_id: &str, dir: &Path) -> io::Result<String> {
        let mut files = Vec::new();
        collect_files(dir, "", &mut files)?;
        Ok(self.add_commit(repo_id, files))
    }

    /// Publishes a wheel on the test PyPI index: `{endpoint}/simple/{package}/` lists it (PEP 691 JSON,
    /// with its sha256 and size) and the CDN serves it at `/lfs/{sha256}`. It is kept as file `filename` of
    /// the pseudo repo `pypi/{package}`, so [`fail_once`](Self::fail_once) and [`corrupt`](Self::corrupt)
    /// on that repo and file hit its downloads.
    pub fn add_pypi_wheel(&self, package: &str, filename: &str, wheel: Vec<u8>) {
        self.shared.lock().add_pypi_wheel(package, filename, wheel);
    }

    /// Points branch or tag `name` of `repo_id` at `commit`. A ref to a commit the repo does not have
    /// answers `RevisionNotFound`.
    pub fn set_ref(&self, repo_id: &str, name: &str, commit: &str) {
        self.shared.lock().set_ref(repo_id, name, commit);
    }

    /// TCP connections accepted so far by the hub and the CDN together, counted at accept before any HTTP
    /// is read.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every request so far, in arrival order, as `"{METHOD} {path?query}"` plus `" range={Range}"` when a
    /// Range header was sent, e.g. `"GET /lfs/<sha256> range=bytes=10-"`. The path is as the client sent it
    /// (percent-encoded).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().log.clone()
    }

    /// The next content GET of `path` in `repo_id` whose body is longer than `after_bytes` sends the headers
    /// (with the full `Content-Length`) and `after_bytes` bytes of body, then drops the connection.
    ///
    /// Content GETs are `resolve` for plain files and `/lfs/{sha256}` for LFS files; an LFS fault follows the
    /// blob, so it also hits another path or repo with the same content. Shorter bodies (a `bytes=0-0` probe)
    /// pass and leave the fault armed.
    pub fn fail_once(&self, repo_id: &str, path: &str, after_bytes: u64) {
        self.shared.lock().add_fault(repo_id, path, FaultKind::FailOnce(after_bytes));
    }

    /// From now on, content responses for `path` in `repo_id` carry the byte at file offset `offset` inverted
    /// (listings, ETags, sizes and sha256 still describe the true content). LFS faults follow the blob as in
    /// [`fail_once`](Self::fail_once).
    pub fn corrupt(&self, repo_id: &str, path: &str, offset: u64) {
        self.shared.lock().add_fault(repo_id, path, FaultKind::Corrupt(offset));
    }

    /// Adds a file named `name` (unchecked: `../evil.txt`, `/etc/evil`, `a/../../b`) to the commit `main`
    /// points at, keeping the commit id: it shows in listings and `resolve` serves it.
    ///
    /// # Panics
    /// If `repo_id` has no `main` commit yet (add one first).
    pub fn add_listing_entry(&self, repo_id: &str, name: &str, content: Vec<u8>) {
        if !self.shared.lock().add_listing_entry(repo_id, name, content) {
            panic!("zoo-testhub: add_listing_entry({repo_id:?}, {name:?}): the repo has no `main` commit yet");
        }
    }

    /// Requests for `repo_id` (API and `resolve`, not the CDN) without `Authorization: Bearer <token>` get
    /// 401 with `X-Error-Code: GatedRepo`; a different token gets 403 `GatedRepo`.
    pub fn require_token(&self, repo_id: &str, token: &str) {
        self.shared.lock().require_token(repo_id, token);
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Appends the regular files under `dir` to `out`, named `{prefix}{relative path}`, in sorted order.
fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file name is not UTF-8: {}", entry.path().display()),
            ));
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), &format!("{prefix}{name}/"), out)?;
        } else if kind.is_file() {
            out.push((format!("{prefix}{name}"), std::fs::read(entry.path())?));
        }
    }
    Ok(())
}

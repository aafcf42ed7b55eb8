//! FastChat's cluster protocol (fschat 0.2.36), client side: what a worker says to a controller
//! (register, heart beats), what a front end asks a controller (models, a worker's address), and
//! what anyone asks a worker (status, the NUL-delimited generation stream). The controller side is
//! `controller.rs`; the exact wire facts are in `crates/zoo-serve/FASTCHAT.md`.
//!
//! Decisions:
//! - Every call is a JSON POST, as in FastChat; a base URL is used without its trailing `/`
//!   (FastChat concatenates strings, so `http://h:21001/` would ask for `//list_models`).
//! - Connecting gives up after 5 s everywhere (FastChat's status and heart-beat timeout). A
//!   generation stream has no total deadline, only an idle one: no bytes for `read_timeout`
//!   (FastChat's `WORKER_API_TIMEOUT`, 100 s) ends it with [`ClusterError::Timeout`].
//! - A stream is cut on `\0` whatever the network reads look like; empty pieces are skipped and
//!   a non-blank tail without a final `\0` still counts as a chunk (Python `requests`'
//!   `iter_lines`, which FastChat's own clients use, does the same).
//! - The heart-beat loop logs one `worker:` line to stderr per failure or (re-)registration: a
//!   worker is a long-running service whose only interface is its log, and the binary cannot see
//!   inside the loop.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt, stream};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

/// FastChat's default controller port (`fastchat.serve.controller --port`).
pub const DEFAULT_CONTROLLER_PORT: u16 = 21001;
/// FastChat's default worker port (`fastchat.serve.model_worker --port`).
pub const DEFAULT_WORKER_PORT: u16 = 21002;
/// `CONTROLLER_HEART_BEAT_EXPIRATION` (env `FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION`).
pub const CONTROLLER_HEART_BEAT_EXPIRATION: Duration = Duration::from_secs(90);
/// `WORKER_HEART_BEAT_INTERVAL` (env `FASTCHAT_WORKER_HEART_BEAT_INTERVAL`).
pub const WORKER_HEART_BEAT_INTERVAL: Duration = Duration::from_secs(45);
/// `WORKER_API_TIMEOUT` (env `FASTCHAT_WORKER_API_TIMEOUT`): how long a generation may stay silent.
pub const WORKER_API_TIMEOUT: Duration = Duration::from_secs(100);
/// How long a `/worker_get_status` or `/receive_heart_beat` call may take (FastChat: 5 s).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait between two tries of a failed register or heart beat (FastChat: 5 s).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// How long opening a TCP connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a plain controller call (list, address, register) may take in all.
const CONTROLLER_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `SERVER_ERROR_MSG` of `fastchat/constants.py`: the `text` of every error chunk a controller or
/// worker sends.
pub const SERVER_ERROR_MSG: &str = "**NETWORK ERROR DUE TO HIGH TRAFFIC. PLEASE REGENERATE OR REFRESH THIS PAGE.**";

/// FastChat's `ErrorCode` (`fastchat/constants.py`): the `error_code` of a stream chunk and the
/// `code` of its OpenAI server's error bodies. `0` means no error.
pub mod error_code {
    pub const OK: i64 = 0;
    pub const VALIDATION_TYPE_ERROR: i64 = 40001;
    pub const INVALID_AUTH_KEY: i64 = 40101;
    pub const INCORRECT_AUTH_KEY: i64 = 40102;
    pub const NO_PERMISSION: i64 = 40103;
    pub const INVALID_MODEL: i64 = 40301;
    pub const PARAM_OUT_OF_RANGE: i64 = 40302;
    pub const CONTEXT_OVERFLOW: i64 = 40303;
    pub const RATE_LIMIT: i64 = 42901;
    pub const QUOTA_EXCEEDED: i64 = 42902;
    pub const ENGINE_OVERLOADED: i64 = 42903;
    pub const INTERNAL_ERROR: i64 = 50001;
    pub const CUDA_OUT_OF_MEMORY: i64 = 50002;
    pub const GRADIO_REQUEST_ERROR: i64 = 50003;
    pub const GRADIO_STREAM_UNKNOWN_ERROR: i64 = 50004;
    pub const CONTROLLER_NO_WORKER: i64 = 50005;
    pub const CONTROLLER_WORKER_TIMEOUT: i64 = 50006;
}

/// Everything that can go wrong talking the cluster protocol; each message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url} sent a reply that is not what FastChat sends: {reason}")]
    BadReply { url: String, reason: String },
    #[error("the stream from {url} broke off: {source}")]
    Read {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} sent nothing for {} s", .after.as_secs_f64())]
    Timeout { url: String, after: Duration },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server on {addr} stopped: {source}")]
    Serve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// What a worker reports about itself (`/worker_get_status`, `worker_status` of
/// `/register_worker`). A controller answers the same shape, summed over its workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub model_names: Vec<String>,
    /// Relative throughput; every FastChat worker says 1. Dispatch divides by it.
    #[serde(default = "one")]
    pub speed: i64,
    /// Requests running or waiting on the worker.
    #[serde(default)]
    pub queue_length: i64,
}

fn one() -> i64 {
    1
}

impl WorkerStatus {
    /// A worker's status with FastChat's constant speed of 1.
    pub fn new(model_names: Vec<String>, queue_length: i64) -> Self {
        Self { model_names, speed: 1, queue_length }
    }
}

/// The base URL without trailing slashes, so `base + "/path"` is one slash.
fn trim_base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// A reply body cut short enough for an error message.
fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A client that gives up connecting after [`CONNECT_TIMEOUT`]. Building one only fails when
/// the TLS or resolver backends cannot start (this crate has no TLS); then reqwest's plain
/// default client is the best there is.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build().unwrap_or_default()
}

/// POST `body` (or nothing) as JSON to `url` and read the whole JSON reply.
async fn post_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<T> {
    let bytes = post_raw(http, url, body, timeout).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ClusterError::BadReply { url: url.to_owned(), reason: format!("{e} in {}", excerpt(&bytes)) })
}

/// POST and read the whole reply body of a 2xx answer.
async fn post_raw(http: &reqwest::Client, url: &str, body: Option<&Value>, timeout: Duration) -> Result<Bytes> {
    let unreachable = |source| ClusterError::Unreachable { url: url.to_owned(), source };
    let mut request = http.post(url).timeout(timeout);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|source| ClusterError::Read { url: url.to_owned(), source })?;
    if !status.is_success() {
        return Err(ClusterError::Status { url: url.to_owned(), status: status.as_u16(), body: excerpt(&bytes) });
    }
    Ok(bytes)
}

/// Talks to a FastChat controller (ours or Python's).
#[derive(Debug, Clone)]
pub struct ControllerClient {
    base: String,
    http: reqwest::Client,
}

impl ControllerClient {
    /// A client for the controller at `base_url` (e.g. `http://localhost:21001`).
    pub fn new(base_url: &str) -> Self {
        Self { base: trim_base(base_url), http: http_client() }
    }

    /// The controller's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/list_models`: the union of every registered worker's model names.
    pub async fn list_models(&self) -> Result<Vec<String>> {
        self.models("/list_models").await
    }

    /// `/list_language_models`: models of workers not registered as multimodal.
    pub async fn list_language_models(&self) -> Result<Vec<String>> {
        self.models("/list_language_models").await
    }

    async fn models(&self, path: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Models {
            models: Vec<String>,
        }
        let url = self.url(path);
        let reply: Models = post_json(&self.http, &url, None, CONTROLLER_CALL_TIMEOUT).await?;
        Ok(reply.models)
    }

    /// `/refresh_all_workers`: the controller asks every worker for its status and drops those
    /// that do not answer (FastChat's `/v1/models` does this before listing).
    pub async fn refresh_all_workers(&self) -> Result<()> {
        let url = self.url("/refresh_all_workers");
        post_raw(&self.http, &url, None, CONTROLLER_CALL_TIMEOUT).await?;
        Ok(())
    }

    /// `/get_worker_address`: the worker the controller picked for `model`, `None` when no
    /// worker serves it (the controller answers `""`).
    pub async fn get_worker_address(&self, model: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Address {
            address: String,
        }
        let url = self.url("/get_worker_address");
        let body = serde_json::json!({ "model": model });
        let reply: Address = post_json(&self.http, &url, Some(&body), CONTROLLER_CALL_TIMEOUT).await?;
        Ok(Some(reply.address).filter(|a| !a.is_empty()))
    }

    /// `/register_worker` with `check_heart_beat: true`, so the controller expires the worker
    /// when its heart beats stop. The controller answers `null` whether or not it registered the
    /// worker; with `status` given it cannot fail.
    pub async fn register_worker(&self, worker_name: &str, status: &WorkerStatus) -> Result<()> {
        let url = self.url("/register_worker");
        let body = serde_json::json!({
            "worker_name": worker_name,
            "check_heart_beat": true,
            "worker_status": status,
            "multimodal": false,
        });
        post_raw(&self.http, &url, Some(&body), CONTROLLER_CALL_TIMEOUT).await?;
        Ok(())
    }

    /// `/receive_heart_beat`: `Ok(false)` when the controller does not know the worker (it
    /// expired or the controller restarted), which means: register again.
    pub async fn heart_beat(&self, worker_name: &str, queue_length: i64) -> Result<bool> {
        #[derive(Deserialize)]
        struct Exist {
            exist: bool,
        }
        let url = self.url("/receive_heart_beat");
        let body = serde_json::json!({ "worker_name": worker_name, "queue_length": queue_length });
        let reply: Exist = post_json(&self.http, &url, Some(&body), STATUS_TIMEOUT).await?;
        Ok(reply.exist)
    }
}

/// Talks to FastChat workers (ours or Python's), or to a controller acting as one.
#[derive(Debug, Clone)]
pub struct WorkerClient {
    http: reqwest::Client,
    read_timeout: Duration,
}

impl WorkerClient {
    /// `read_timeout`: how long a generation stream may stay silent before it fails.
    pub fn new(read_timeout: Duration) -> Self {
        Self { http: http_client(), read_timeout }
    }

    /// `/worker_get_status`, within 5 s.
    pub async fn get_status(&self, worker_url: &str) -> Result<WorkerStatus> {
        let url = format!("{}/worker_get_status", trim_base(worker_url));
        post_json(&self.http, &url, None, STATUS_TIMEOUT).await
    }

    /// `/worker_generate`: the last chunk of a generation, as one JSON object.
    pub async fn generate(&self, worker_url: &str, params: &Value) -> Result<Value> {
        let url = format!("{}/worker_generate", trim_base(worker_url));
        post_json(&self.http, &url, Some(params), self.read_timeout).await
    }

    /// `/worker_get_conv_template`: the `conv` object (FastChat's `Conversation` fields).
    pub async fn conv_template(&self, worker_url: &str, model: &str) -> Result<Value> {
        #[derive(Deserialize)]
        struct Conv {
            conv: Value,
        }
        let url = format!("{}/worker_get_conv_template", trim_base(worker_url));
        let body = serde_json::json!({ "model": model });
        let reply: Conv = post_json(&self.http, &url, Some(&body), self.read_timeout).await?;
        Ok(reply.conv)
    }

    /// `/model_details`: the model's context length in tokens.
    pub async fn context_length(&self, worker_url: &str, model: &str) -> Result<i64> {
        #[derive(Deserialize)]
        struct Details {
            context_length: i64,
        }
        let url = format!("{}/model_details", trim_base(worker_url));
        let body = serde_json::json!({ "model": model });
        let reply: Details = post_json(&self.http, &url, Some(&body), self.read_timeout).await?;
        Ok(reply.context_length)
    }

    /// `/count_token`: how many tokens `prompt` is for the worker's tokenizer.
    pub async fn count_token(&self, worker_url: &str, model: &str, prompt: &str) -> Result<i64> {
        #[derive(Deserialize)]
        struct Count {
            count: i64,
        }
        let url = format!("{}/count_token", trim_base(worker_url));
        let body = serde_json::json!({ "model": model, "prompt": prompt });
        let reply: Count = post_json(&self.http, &url, Some(&body), self.read_timeout).await?;
        Ok(reply.count)
    }

    /// POST `params` to `/worker_generate_stream` and yield its chunks as raw JSON bytes (without
    /// the `\0`). The controller's proxy forwards these; [`WorkerClient::generate_stream`]
    /// parses them.
    pub async fn generate_frames(
        &self,
        worker_url: &str,
        params: &Value,
    ) -> Result<impl Stream<Item = Result<Vec<u8>>> + Send + 'static + use<>> {
        let url = format!("{}/worker_generate_stream", trim_base(worker_url));
        let request = self.http.post(&url).json(params).send();
        let response = match tokio::time::timeout(self.read_timeout, request).await {
            Err(_) => {
                return Err(ClusterError::Timeout { url, after: self.read_timeout });
            }
            Ok(Err(source)) => return Err(ClusterError::Unreachable { url, source }),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(ClusterError::Status { url, status: status.as_u16(), body: excerpt(&body) });
        }
        let body = response.bytes_stream();
        Ok(frames(body, url, self.read_timeout))
    }

    /// POST `params` to `/worker_generate_stream` and yield each chunk parsed
    /// (`{"text", "error_code", "usage"?, "finish_reason"?, ...}`), however the bytes were split.
    pub async fn generate_stream(
        &self,
        worker_url: &str,
        params: &Value,
    ) -> Result<impl Stream<Item = Result<Value>> + Send + 'static + use<>> {
        let url = format!("{}/worker_generate_stream", trim_base(worker_url));
        let frames = self.generate_frames(worker_url, params).await?;
        Ok(frames.map(move |frame| {
            let frame = frame?;
            serde_json::from_slice(&frame).map_err(|e| ClusterError::BadReply {
                url: url.clone(),
                reason: format!("chunk is not JSON ({e}): {}", excerpt(&frame)),
            })
        }))
    }
}

/// [`WorkerClient::generate_stream`] with FastChat's 100 s read timeout.
pub async fn generate_stream(
    worker_url: &str,
    params: Value,
) -> Result<impl Stream<Item = Result<Value>> + Send + 'static + use<>> {
    WorkerClient::new(WORKER_API_TIMEOUT).generate_stream(worker_url, &params).await
}

/// Cuts a byte stream into `\0`-terminated frames, whatever the sizes of the pieces.
#[derive(Debug, Default)]
pub struct NulFramer {
    buf: Vec<u8>,
}

impl NulFramer {
    /// Add received bytes; returns the frames they completed, empty ones left out.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|&b| b == 0) {
            self.buf.extend_from_slice(&rest[..at]);
            let frame = std::mem::take(&mut self.buf);
            if !frame.is_empty() {
                frames.push(frame);
            }
            rest = &rest[at + 1..];
        }
        self.buf.extend_from_slice(rest);
        frames
    }

    /// The end of the stream: what is left after the last `\0`, unless it is blank.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buf);
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The frames of `body`, failing with [`ClusterError::Timeout`] when no bytes come for
/// `read_timeout` and with [`ClusterError::Read`] when the connection breaks; the stream ends
/// after its first error.
fn frames(
    body: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    url: String,
    read_timeout: Duration,
) -> impl Stream<Item = Result<Vec<u8>>> + Send + 'static {
    struct State {
        body: ByteStream,
        framer: NulFramer,
        ready: VecDeque<Vec<u8>>,
        url: String,
        read_timeout: Duration,
        done: bool,
    }
    let state = State {
        body: Box::pin(body),
        framer: NulFramer::default(),
        ready: VecDeque::new(),
        url,
        read_timeout,
        done: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(frame) = st.ready.pop_front() {
                return Some((Ok(frame), st));
            }
            if st.done {
                return None;
            }
            match tokio::time::timeout(st.read_timeout, st.body.next()).await {
                Err(_) => {
                    st.done = true;
                    let err = ClusterError::Timeout { url: st.url.clone(), after: st.read_timeout };
                    return Some((Err(err), st));
                }
                Ok(None) => {
                    st.done = true;
                    st.ready.extend(st.framer.finish());
                }
                Ok(Some(Err(source))) => {
                    st.done = true;
                    let err = ClusterError::Read { url: st.url.clone(), source };
                    return Some((Err(err), st));
                }
                Ok(Some(Ok(bytes))) => {
                    let completed = st.framer.push(&bytes);
                    st.ready.extend(completed);
                }
            }
        }
    })
}

/// Waits until `stop` holds `true` or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: nobody can ask the loop to go on, so stop too.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Runs `work` unless `stop` fires first; `None` when it did.
async fn unless_stopped<T>(stop: &mut watch::Receiver<bool>, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        () = stopped(stop) => None,
        out = work => Some(out),
    }
}

/// A worker's side of the controller protocol; spawn it next to the worker's server.
///
/// It registers `worker_name` (the worker's base URL as others reach it, FastChat's
/// `--worker-address`) serving `model_names`, retrying until the controller answers; then every
/// `interval` ([`WORKER_HEART_BEAT_INTERVAL`] in FastChat; keep it well under the controller's
/// 90 s expiration) it sends a heart beat with `queue_length()`, retrying until one is answered,
/// and registers again when the controller says it does not know the worker (it expired, or the
/// controller restarted). Retries come every 5 s ([`RETRY_INTERVAL`]), or every `interval` when
/// that is shorter: retrying more rarely than beating would only delay the next beat. It
/// returns when `stop` becomes `true` or its sender is dropped.
pub async fn heartbeat_loop(
    controller: ControllerClient,
    worker_name: String,
    model_names: Vec<String>,
    interval: Duration,
    queue_length: impl Fn() -> i64 + Send + Sync,
    mut stop: watch::Receiver<bool>,
) {
    // Zero would spin; the controller cannot tell 1 ms from 0 anyway.
    let interval = interval.max(Duration::from_millis(1));
    let worker = Worker { controller, name: trim_base(&worker_name), model_names, retry: RETRY_INTERVAL.min(interval) };
    if worker.register(&queue_length, &mut stop).await.is_none() {
        return;
    }
    loop {
        if unless_stopped(&mut stop, tokio::time::sleep(interval)).await.is_none() {
            return;
        }
        let exist = loop {
            let beat = worker.controller.heart_beat(&worker.name, queue_length());
            match unless_stopped(&mut stop, beat).await {
                None => return,
                Some(Ok(exist)) => break exist,
                Some(Err(e)) => {
                    eprintln!("worker: heart beat failed: {e}; retrying in {} s", worker.retry.as_secs_f64())
                }
            }
            if unless_stopped(&mut stop, tokio::time::sleep(worker.retry)).await.is_none() {
                return;
            }
        };
        if !exist {
            eprintln!("worker: {} does not know {}; registering again", worker.controller.base_url(), worker.name);
            if worker.register(&queue_length, &mut stop).await.is_none() {
                return;
            }
        }
    }
}

/// The fixed part of a heart-beat loop.
struct Worker {
    controller: ControllerClient,
    name: String,
    model_names: Vec<String>,
    retry: Duration,
}

impl Worker {
    /// Registers until the controller answers; `None` when stopped first.
    async fn register(
        &self,
        queue_length: &(impl Fn() -> i64 + Send + Sync),
        stop: &mut watch::Receiver<bool>,
    ) -> Option<()> {
        loop {
            let status = WorkerStatus::new(self.model_names.clone(), queue_length());
            let call = self.controller.register_worker(&self.name, &status);
            match unless_stopped(stop, call).await? {
                Ok(()) => {
                    eprintln!(
                        "worker: registered {} ({}) with {}",
                        self.name,
                        self.model_names.join(", "),
                        self.controller.base_url()
                    );
                    return Some(());
                }
                Err(e) => eprintln!("worker: cannot register: {e}; retrying in {} s", self.retry.as_secs_f64()),
            }
            unless_stopped(stop, tokio::time::sleep(self.retry)).await?;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::routing::post;
    use std::sync::{Arc, Mutex};

    /// Serves `router` on 127.0.0.1 and returns its base URL.
    pub(crate) async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        format!("http://{addr}")
    }

    /// A URL on which nothing listens.
    pub(crate) async fn closed_url() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        drop(listener);
        format!("http://{addr}")
    }

    fn check_framer(pieces: &[&[u8]], expect: &[&str], tail: Option<&str>) {
        let mut framer = NulFramer::default();
        let mut got = Vec::new();
        for piece in pieces {
            got.extend(framer.push(piece));
        }
        let got: Vec<String> = got.into_iter().map(|f| String::from_utf8(f).expect("utf-8")).collect();
        assert_eq!(got, expect, "pieces {pieces:?}");
        let rest = framer.finish().map(|r| String::from_utf8(r).expect("utf-8"));
        assert_eq!(rest.as_deref(), tail, "tail of {pieces:?}");
    }

    #[test]
    fn framer_cuts_on_nul_wherever_the_reads_end() {
        check_framer(&[b"a\0b\0"], &["a", "b"], None);
        check_framer(&[b"a", b"\0", b"b", b"c\0"], &["a", "bc"], None);
        check_framer(&[b"\0\0a\0\0"], &["a"], None);
        check_framer(&[b"a\0b"], &["a"], Some("b"));
        check_framer(&[b"a\0 \n"], &["a"], None);
        check_framer(&[], &[], None);
        // A multi-byte character cut between two reads.
        check_framer(&[b"\xe4\xbd", b"\xa0\0"], &["你"], None);
    }

    /// The bytes of `chunks` as a worker sends them: JSON + `\0` each.
    fn wire(chunks: &[Value]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for chunk in chunks {
            bytes.extend(serde_json::to_vec(chunk).expect("json"));
            bytes.push(0);
        }
        bytes
    }

    fn sample_chunks() -> Vec<Value> {
        vec![
            serde_json::json!({"text": "你好", "error_code": 0}),
            serde_json::json!({"text": "你好, wor", "error_code": 0, "finish_reason": null}),
            serde_json::json!({"text": "你好, world", "error_code": 0, "finish_reason": "stop",
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
        ]
    }

    /// A worker whose `/worker_generate_stream` sends `bytes` in pieces of 1, 2, 3, ... bytes
    /// with a pause after each.
    async fn dribbling_worker(bytes: Vec<u8>) -> String {
        let router = Router::new().route(
            "/worker_generate_stream",
            post(move || {
                let bytes = bytes.clone();
                async move {
                    let mut pieces = Vec::new();
                    let (mut at, mut size) = (0, 1);
                    while at < bytes.len() {
                        let end = (at + size).min(bytes.len());
                        pieces.push(Bytes::copy_from_slice(&bytes[at..end]));
                        at = end;
                        size = size % 7 + 1;
                    }
                    let body = stream::iter(pieces).then(|piece| async move {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok::<_, std::convert::Infallible>(piece)
                    });
                    Body::from_stream(body)
                }
            }),
        );
        serve(router).await
    }

    #[tokio::test]
    async fn generate_stream_reassembles_chunks_split_in_odd_places() {
        let chunks = sample_chunks();
        let url = dribbling_worker(wire(&chunks)).await;
        let stream =
            generate_stream(&url, serde_json::json!({"model": "m", "prompt": "hi"})).await.expect("stream opens");
        let got: Vec<Value> = stream.map(|c| c.expect("chunk parses")).collect::<Vec<_>>().await;
        assert_eq!(got, chunks);
    }

    #[tokio::test]
    async fn generate_stream_keeps_a_last_chunk_without_its_nul() {
        let chunks = sample_chunks();
        let mut bytes = wire(&chunks);
        bytes.pop();
        let url = dribbling_worker(bytes).await;
        let stream = generate_stream(&url, serde_json::json!({})).await.expect("stream opens");
        let got: Vec<Value> = stream.map(|c| c.expect("chunk")).collect::<Vec<_>>().await;
        assert_eq!(got, chunks);
    }

    #[tokio::test]
    async fn generate_stream_fails_on_a_silent_worker_after_the_read_timeout() {
        let router = Router::new().route(
            "/worker_generate_stream",
            post(|| async {
                let first = stream::once(async {
                    Ok::<_, std::convert::Infallible>(Bytes::from_static(b"{\"text\":\"a\"}\0"))
                });
                let never = stream::pending();
                Body::from_stream(first.chain(never))
            }),
        );
        let url = serve(router).await;
        let client = WorkerClient::new(Duration::from_millis(300));
        let mut stream = Box::pin(client.generate_stream(&url, &serde_json::json!({})).await.expect("stream opens"));
        let first = stream.next().await.expect("a chunk").expect("parses");
        assert_eq!(first, serde_json::json!({"text": "a"}));
        let err = stream.next().await.expect("an error").expect_err("timeout");
        assert!(matches!(err, ClusterError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains(&url), "{err}");
        assert!(stream.next().await.is_none(), "the stream ends after its error");
    }

    #[tokio::test]
    async fn generate_stream_names_the_url_of_a_worker_that_is_down() {
        let url = closed_url().await;
        let err = match generate_stream(&url, serde_json::json!({})).await {
            Ok(_) => panic!("a closed port cannot stream"),
            Err(e) => e,
        };
        assert!(matches!(err, ClusterError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains(&format!("{url}/worker_generate_stream")), "{err}");
    }

    #[tokio::test]
    async fn generate_stream_reports_a_worker_error_status() {
        let router = Router::new()
            .route("/worker_generate_stream", post(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") }));
        let url = serve(router).await;
        let err = match generate_stream(&url, serde_json::json!({})).await {
            Ok(_) => panic!("503 is not a stream"),
            Err(e) => e,
        };
        assert!(matches!(&err, ClusterError::Status { status: 503, body, .. } if body == "busy"), "{err}");
    }

    /// A fake controller that records what it is asked and answers from a script.
    #[derive(Clone, Default)]
    struct Script {
        calls: Arc<Mutex<Vec<(String, Value)>>>,
        /// How many register calls fail with 503 before one succeeds.
        register_failures: Arc<Mutex<u32>>,
        /// The `exist` answers of successive heart beats; `true` once used up.
        exist: Arc<Mutex<VecDeque<bool>>>,
    }

    impl Script {
        fn calls(&self) -> Vec<(String, Value)> {
            self.calls.lock().expect("lock").clone()
        }
        fn paths(&self) -> Vec<String> {
            self.calls().into_iter().map(|(p, _)| p).collect()
        }
    }

    async fn fake_controller(script: Script) -> String {
        async fn register(State(s): State<Script>, body: axum::Json<Value>) -> axum::response::Response {
            use axum::response::IntoResponse;
            s.calls.lock().expect("lock").push(("/register_worker".into(), body.0));
            let mut failures = s.register_failures.lock().expect("lock");
            if *failures > 0 {
                *failures -= 1;
                return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            axum::Json(Value::Null).into_response()
        }
        async fn beat(State(s): State<Script>, body: axum::Json<Value>) -> axum::Json<Value> {
            s.calls.lock().expect("lock").push(("/receive_heart_beat".into(), body.0));
            let exist = s.exist.lock().expect("lock").pop_front().unwrap_or(true);
            axum::Json(serde_json::json!({ "exist": exist }))
        }
        let router = Router::new()
            .route("/register_worker", post(register))
            .route("/receive_heart_beat", post(beat))
            .with_state(script);
        serve(router).await
    }

    /// Polls `done` every 20 ms for up to 10 s.
    pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not within 10 s: {what}");
    }

    #[tokio::test]
    async fn heartbeat_loop_retries_registration_and_registers_again_when_forgotten() {
        let script = Script::default();
        *script.register_failures.lock().expect("lock") = 2;
        script.exist.lock().expect("lock").extend([true, false, true]);
        let url = fake_controller(script.clone()).await;
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(heartbeat_loop(
            ControllerClient::new(&format!("{url}/")),
            "http://127.0.0.1:9/".into(),
            vec!["m".into()],
            Duration::from_millis(30),
            || 3,
            stop_rx,
        ));

        // 3 register tries (2 refused), beats true, false → register, then beats go on.
        let want = [
            "/register_worker",
            "/register_worker",
            "/register_worker",
            "/receive_heart_beat",
            "/receive_heart_beat",
            "/register_worker",
            "/receive_heart_beat",
            "/receive_heart_beat",
        ];
        eventually("the scripted calls", || script.calls().len() >= want.len()).await;
        stop_tx.send(true).expect("the loop listens");
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the loop stops").expect("no panic");
        assert_eq!(script.paths()[..want.len()], want);

        let calls = script.calls();
        assert_eq!(
            calls[0].1,
            serde_json::json!({
                "worker_name": "http://127.0.0.1:9",
                "check_heart_beat": true,
                "worker_status": {"model_names": ["m"], "speed": 1, "queue_length": 3},
                "multimodal": false,
            })
        );
        assert_eq!(calls[3].1, serde_json::json!({"worker_name": "http://127.0.0.1:9", "queue_length": 3}));
    }

    #[tokio::test]
    async fn heartbeat_loop_stops_while_the_controller_is_down() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(heartbeat_loop(
            ControllerClient::new(&closed_url().await),
            "http://127.0.0.1:9".into(),
            vec!["m".into()],
            WORKER_HEART_BEAT_INTERVAL,
            || 0,
            stop_rx,
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stop_tx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("dropping the sender stops the loop in its 5 s retry wait")
            .expect("no panic");
    }

    #[tokio::test]
    async fn controller_client_reads_models_and_an_empty_address_as_none() {
        let router = Router::new()
            .route("/list_models", post(|| async { axum::Json(serde_json::json!({"models": ["a", "b"]})) }))
            .route(
                "/get_worker_address",
                post(|body: axum::Json<Value>| async move {
                    let address = if body.0["model"] == "a" { "http://w" } else { "" };
                    axum::Json(serde_json::json!({ "address": address }))
                }),
            );
        let client = ControllerClient::new(&serve(router).await);
        assert_eq!(client.list_models().await.expect("models"), ["a", "b"]);
        assert_eq!(client.get_worker_address("a").await.expect("address"), Some("http://w".into()));
        assert_eq!(client.get_worker_address("b").await.expect("address"), None);
        let err = client.list_language_models().await.expect_err("the fake has no such route");
        assert!(matches!(err, ClusterError::Status { status: 404, .. }), "{err}");
    }
}

//! FastChat's controller (fschat 0.2.36 `fastchat/serve/controller.py`) as an axum router:
//! workers register and send heart beats, front ends ask which worker serves a model, and the
//! controller proxies generation streams and answers `/worker_get_status` like a worker, so
//! controllers nest. The wire facts are in `crates/zoo-serve/FASTCHAT.md`.
//!
//! **Invariant:** all state sits behind one `std::sync::Mutex`, never held across an `.await`:
//! calls to workers (status on register and refresh, the proxied stream) happen outside it.
//!
//! Decisions where we differ from FastChat on purpose:
//! - Model lists come back sorted (FastChat: set order, i.e. arbitrary).
//! - `/worker_generate_stream` without a worker sends only the 50005 chunk. FastChat 0.2.36 goes
//!   on to POST to `"" + "/worker_generate_stream"`, fails, and appends a 50006 chunk too.
//! - The proxy forwards whole chunks only; when the worker breaks off or stays silent for
//!   `worker_api_timeout`, a 50006 chunk follows the last whole chunk (FastChat could forward a
//!   half chunk before it). A worker answering non-200 is treated like an unreachable one.
//! - A worker whose `speed` is 0 or less is never picked (FastChat's lottery gives it weight 0;
//!   its shortest queue divides by zero and fails the request).
//! - Malformed requests get 400 with `{"detail": "..."}` (FastChat: 500 from a `KeyError`).
//!   Bodies are parsed as JSON whatever their `Content-Type`, as FastChat's `request.json()` does.
//! - Status calls of `/refresh_all_workers` and `/worker_get_status` run in parallel, not one
//!   after the other.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::cluster::{
    CONTROLLER_HEART_BEAT_EXPIRATION, ClusterError, SERVER_ERROR_MSG, WORKER_API_TIMEOUT, WorkerClient, WorkerStatus,
    error_code,
};

/// How `/get_worker_address` picks among the workers of a model (`--dispatch-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dispatch {
    /// The least `queue_length / speed` (first registered on a tie), whose `queue_length` then
    /// grows by one until its next heart beat says the true figure. FastChat's default.
    #[default]
    ShortestQueue,
    /// A random pick weighted by `speed`.
    Lottery,
}

impl Dispatch {
    /// FastChat's spelling: `shortest_queue` or `lottery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dispatch::ShortestQueue => "shortest_queue",
            Dispatch::Lottery => "lottery",
        }
    }
}

impl std::fmt::Display for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Dispatch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shortest_queue" => Ok(Dispatch::ShortestQueue),
            "lottery" => Ok(Dispatch::Lottery),
            other => Err(format!("unknown dispatch method `{other}` (shortest_queue or lottery)")),
        }
    }
}

/// How the controller behaves; `Default` is FastChat's.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub dispatch: Dispatch,
    /// A worker registered with `check_heart_beat` whose last heart beat is older than this is
    /// removed (FastChat: 90 s).
    pub heart_beat_expiration: Duration,
    /// How often expired workers are looked for. FastChat sleeps the expiration itself between
    /// two looks, so a silent worker lingers for up to twice the expiration.
    pub sweep_interval: Duration,
    /// How long a proxied generation may stay silent (FastChat's `WORKER_API_TIMEOUT`, 100 s).
    pub worker_api_timeout: Duration,
    /// The lottery's seed; `None` seeds from the clock.
    pub seed: Option<u64>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            dispatch: Dispatch::ShortestQueue,
            heart_beat_expiration: CONTROLLER_HEART_BEAT_EXPIRATION,
            sweep_interval: CONTROLLER_HEART_BEAT_EXPIRATION,
            worker_api_timeout: WORKER_API_TIMEOUT,
            seed: None,
        }
    }
}

/// What the controller knows of one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    /// The worker's base URL (FastChat's `worker_name`).
    pub name: String,
    pub model_names: Vec<String>,
    pub speed: i64,
    pub queue_length: i64,
    /// Whether the worker expires when its heart beats stop.
    pub check_heart_beat: bool,
    pub last_heart_beat: Instant,
    pub multimodal: bool,
}

/// Which workers' models a list is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    All,
    Language,
    Multimodal,
}

/// The workers in registration order (the order FastChat's dict keeps, which decides ties).
#[derive(Debug)]
struct Registry {
    workers: Vec<WorkerInfo>,
    rng: zoo_eval::SplitMix64,
}

impl Registry {
    fn get_mut(&mut self, name: &str) -> Option<&mut WorkerInfo> {
        self.workers.iter_mut().find(|w| w.name == name)
    }

    /// Inserts or replaces `info`; a re-registered worker keeps its place. `true` when it
    /// replaced an entry.
    fn upsert(&mut self, info: WorkerInfo) -> bool {
        match self.get_mut(&info.name) {
            Some(slot) => {
                *slot = info;
                true
            }
            None => {
                self.workers.push(info);
                false
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    config: ControllerConfig,
    registry: Mutex<Registry>,
    http: WorkerClient,
}

/// The controller's state, shared by its handlers and its expiry task (cheap to clone).
#[derive(Debug, Clone)]
pub struct ControllerState {
    inner: Arc<Inner>,
}

impl ControllerState {
    /// A controller without workers. Expiry only runs once [`ControllerState::spawn_expiry`]
    /// is called ([`run_controller`] does).
    pub fn new(config: ControllerConfig) -> Self {
        let seed = config.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x5EED)
        });
        let http = WorkerClient::new(config.worker_api_timeout);
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry { workers: Vec::new(), rng: zoo_eval::SplitMix64(seed) }),
                config,
                http,
            }),
        }
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.inner.config
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave a half-updated worker list (every update
        // is one assignment or removal), so a poisoned lock is still good to use.
        self.inner.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of every registered worker, in registration order.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.registry().workers.clone()
    }

    /// Registers (or re-registers) a worker. Without `status`, asks the worker's
    /// `/worker_get_status` (5 s); when that fails the worker is not registered and `false`
    /// comes back.
    pub async fn register_worker(
        &self,
        worker_name: &str,
        check_heart_beat: bool,
        status: Option<WorkerStatus>,
        multimodal: bool,
    ) -> bool {
        let status = match status {
            Some(status) => status,
            None => match self.inner.http.get_status(worker_name).await {
                Ok(status) => status,
                Err(e) => {
                    eprintln!("controller: cannot register {worker_name}: {e}");
                    return false;
                }
            },
        };
        let line = format!(
            "{worker_name}: models {}, speed {}, queue {}",
            status.model_names.join(", "),
            status.speed,
            status.queue_length
        );
        let replaced = self.registry().upsert(WorkerInfo {
            name: worker_name.to_owned(),
            model_names: status.model_names,
            speed: status.speed,
            queue_length: status.queue_length,
            check_heart_beat,
            last_heart_beat: Instant::now(),
            multimodal,
        });
        eprintln!("controller: {} {line}", if replaced { "re-registered" } else { "registered" });
        true
    }

    /// Asks every worker for its status again: those that answer are registered anew (fresh
    /// models, queue and heart beat), the others are removed.
    pub async fn refresh_all_workers(&self) {
        let known = self.workers();
        let statuses = futures_util::future::join_all(known.iter().map(|w| self.inner.http.get_status(&w.name))).await;
        let now = Instant::now();
        let mut registry = self.registry();
        for (old, status) in known.into_iter().zip(statuses) {
            match status {
                Ok(status) => {
                    registry.upsert(WorkerInfo {
                        model_names: status.model_names,
                        speed: status.speed,
                        queue_length: status.queue_length,
                        last_heart_beat: now,
                        ..old
                    });
                }
                Err(e) => {
                    eprintln!("controller: removed {} (status failed: {e})", old.name);
                    registry.workers.retain(|w| w.name != old.name);
                }
            }
        }
    }

    /// The sorted union of the models of the workers of `kind`.
    pub fn list_models(&self, kind: ModelKind) -> Vec<String> {
        let registry = self.registry();
        let mut models: Vec<String> = registry
            .workers
            .iter()
            .filter(|w| match kind {
                ModelKind::All => true,
                ModelKind::Language => !w.multimodal,
                ModelKind::Multimodal => w.multimodal,
            })
            .flat_map(|w| w.model_names.iter().cloned())
            .collect();
        models.sort();
        models.dedup();
        models
    }

    /// The worker to send a request for `model` to, by the configured dispatch; `None` when no
    /// worker (of positive speed) serves it. Shortest-queue counts the pick in the worker's
    /// queue length.
    pub fn get_worker_address(&self, model: &str) -> Option<String> {
        let mut registry = self.registry();
        let registry = &mut *registry;
        let serving = |w: &&mut WorkerInfo| w.speed > 0 && w.model_names.iter().any(|m| m == model);
        match self.inner.config.dispatch {
            Dispatch::ShortestQueue => {
                let mut best: Option<&mut WorkerInfo> = None;
                for w in registry.workers.iter_mut().filter(serving) {
                    // Compare queue/speed exactly: a.q/a.s < b.q/b.s  <=>  a.q*b.s < b.q*a.s.
                    let shorter = best.as_ref().is_none_or(|b| {
                        i128::from(w.queue_length) * i128::from(b.speed)
                            < i128::from(b.queue_length) * i128::from(w.speed)
                    });
                    if shorter {
                        best = Some(w);
                    }
                }
                let best = best?;
                best.queue_length = best.queue_length.saturating_add(1);
                Some(best.name.clone())
            }
            Dispatch::Lottery => {
                let candidates: Vec<&mut WorkerInfo> = registry.workers.iter_mut().filter(serving).collect();
                let total: u64 = candidates.iter().map(|w| w.speed as u64).sum();
                if total == 0 {
                    return None;
                }
                let mut ticket = registry.rng.below(total as usize) as u64;
                for w in candidates {
                    let speed = w.speed as u64;
                    if ticket < speed {
                        return Some(w.name.clone());
                    }
                    ticket -= speed;
                }
                None
            }
        }
    }

    /// Records a heart beat; `false` when the worker is unknown (it should register again).
    pub fn receive_heart_beat(&self, worker_name: &str, queue_length: i64) -> bool {
        match self.registry().get_mut(worker_name) {
            Some(w) => {
                w.queue_length = queue_length;
                w.last_heart_beat = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Removes the workers with `check_heart_beat` whose last heart beat is more than the
    /// expiration before `now`; returns their names.
    pub fn remove_expired(&self, now: Instant) -> Vec<String> {
        let expiration = self.inner.config.heart_beat_expiration;
        let mut removed = Vec::new();
        self.registry().workers.retain(|w| {
            let expired = w.check_heart_beat && now.saturating_duration_since(w.last_heart_beat) > expiration;
            if expired {
                removed.push(w.name.clone());
            }
            !expired
        });
        for name in &removed {
            eprintln!("controller: expired {name} (no heart beat for {} s)", expiration.as_secs_f64());
        }
        removed
    }

    /// Starts the task that removes expired workers every `sweep_interval`. It ends by itself
    /// once every clone of this state is gone.
    pub fn spawn_expiry(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        // tokio's interval refuses a zero period.
        let every = self.inner.config.sweep_interval.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                ControllerState { inner }.remove_expired(Instant::now());
            }
        })
    }

    /// The status of the whole cluster as one worker: the sorted union of the models, the sums
    /// of speed and queue length, asked of every worker now (those that fail are left out but
    /// kept registered).
    pub async fn worker_get_status(&self) -> WorkerStatus {
        let names: Vec<String> = self.workers().into_iter().map(|w| w.name).collect();
        let statuses = futures_util::future::join_all(names.iter().map(|name| self.inner.http.get_status(name))).await;
        let mut total = WorkerStatus { model_names: Vec::new(), speed: 0, queue_length: 0 };
        for status in statuses.into_iter().flatten() {
            total.model_names.extend(status.model_names);
            total.speed = total.speed.saturating_add(status.speed);
            total.queue_length = total.queue_length.saturating_add(status.queue_length);
        }
        total.model_names.sort();
        total.model_names.dedup();
        total
    }

    /// Picks a worker for `params.model` and streams its chunks, each ending in `\0`; an error
    /// chunk instead (50005 without a worker, 50006 when the worker fails).
    pub async fn generate_stream(&self, params: Value) -> Body {
        let model = params.get("model").and_then(Value::as_str).unwrap_or("");
        let Some(worker) = self.get_worker_address(model) else {
            eprintln!("controller: no worker for model `{model}`");
            return Body::from(error_chunk(error_code::CONTROLLER_NO_WORKER));
        };
        let frames = match self.inner.http.generate_frames(&worker, &params).await {
            Ok(frames) => frames,
            Err(e) => {
                eprintln!("controller: worker failed: {e}");
                return Body::from(error_chunk(error_code::CONTROLLER_WORKER_TIMEOUT));
            }
        };
        let chunks = frames.map(|frame| {
            Ok::<_, std::convert::Infallible>(match frame {
                Ok(mut frame) => {
                    frame.push(0);
                    Bytes::from(frame)
                }
                Err(e) => {
                    eprintln!("controller: worker failed: {e}");
                    Bytes::from(error_chunk(error_code::CONTROLLER_WORKER_TIMEOUT))
                }
            })
        });
        Body::from_stream(chunks)
    }
}

/// FastChat's error chunk: `{"text": SERVER_ERROR_MSG, "error_code": code}` + `\0`.
fn error_chunk(code: i64) -> Vec<u8> {
    // A struct keeps FastChat's key order, whatever serde_json's map features.
    #[derive(serde::Serialize)]
    struct Chunk {
        text: &'static str,
        error_code: i64,
    }
    let chunk = Chunk { text: SERVER_ERROR_MSG, error_code: code };
    let mut bytes = serde_json::to_vec(&chunk).unwrap_or_default();
    bytes.push(0);
    bytes
}

/// A malformed request: 400 with FastAPI's `{"detail": ...}` shape.
#[derive(Debug)]
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, axum::Json(json!({ "detail": self.0 }))).into_response()
    }
}

fn parse<T: DeserializeOwned>(body: &Bytes, path: &str) -> Result<T, BadRequest> {
    serde_json::from_slice(body).map_err(|e| BadRequest(format!("{path}: {e}")))
}

#[derive(Deserialize)]
struct RegisterRequest {
    worker_name: String,
    check_heart_beat: bool,
    #[serde(default)]
    worker_status: Option<Value>,
    #[serde(default)]
    multimodal: Option<bool>,
}

async fn register_worker(State(state): State<ControllerState>, body: Bytes) -> Result<axum::Json<Value>, BadRequest> {
    let request: RegisterRequest = parse(&body, "/register_worker")?;
    // FastChat tests `if not worker_status`: null and {} both mean "ask the worker".
    let status = match request.worker_status {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) if map.is_empty() => None,
        Some(value) => Some(
            serde_json::from_value::<WorkerStatus>(value)
                .map_err(|e| BadRequest(format!("/register_worker: worker_status: {e}")))?,
        ),
    };
    state
        .register_worker(&request.worker_name, request.check_heart_beat, status, request.multimodal.unwrap_or(false))
        .await;
    // FastChat answers 200 `null` whether or not the worker was registered.
    Ok(axum::Json(Value::Null))
}

async fn refresh_all_workers(State(state): State<ControllerState>) -> axum::Json<Value> {
    state.refresh_all_workers().await;
    axum::Json(Value::Null)
}

async fn list_models(State(state): State<ControllerState>) -> axum::Json<Value> {
    axum::Json(json!({ "models": state.list_models(ModelKind::All) }))
}

async fn list_language_models(State(state): State<ControllerState>) -> axum::Json<Value> {
    axum::Json(json!({ "models": state.list_models(ModelKind::Language) }))
}

async fn list_multimodal_models(State(state): State<ControllerState>) -> axum::Json<Value> {
    axum::Json(json!({ "models": state.list_models(ModelKind::Multimodal) }))
}

async fn get_worker_address(
    State(state): State<ControllerState>,
    body: Bytes,
) -> Result<axum::Json<Value>, BadRequest> {
    #[derive(Deserialize)]
    struct Request {
        model: String,
    }
    let request: Request = parse(&body, "/get_worker_address")?;
    let address = state.get_worker_address(&request.model).unwrap_or_default();
    Ok(axum::Json(json!({ "address": address })))
}

async fn receive_heart_beat(
    State(state): State<ControllerState>,
    body: Bytes,
) -> Result<axum::Json<Value>, BadRequest> {
    #[derive(Deserialize)]
    struct Request {
        worker_name: String,
        queue_length: i64,
    }
    let request: Request = parse(&body, "/receive_heart_beat")?;
    let exist = state.receive_heart_beat(&request.worker_name, request.queue_length);
    Ok(axum::Json(json!({ "exist": exist })))
}

async fn worker_get_status(State(state): State<ControllerState>) -> axum::Json<WorkerStatus> {
    axum::Json(state.worker_get_status().await)
}

async fn worker_generate_stream(State(state): State<ControllerState>, body: Bytes) -> Result<Body, BadRequest> {
    let params: Value = parse(&body, "/worker_generate_stream")?;
    Ok(state.generate_stream(params).await)
}

async fn test_connection() -> axum::Json<&'static str> {
    axum::Json("success")
}

/// The controller's routes: every endpoint of FastChat's controller (all POST with JSON, but
/// `GET /test_connection`).
pub fn router(state: ControllerState) -> Router {
    Router::new()
        .route("/register_worker", post(register_worker))
        .route("/refresh_all_workers", post(refresh_all_workers))
        .route("/list_models", post(list_models))
        .route("/list_language_models", post(list_language_models))
        .route("/list_multimodal_models", post(list_multimodal_models))
        .route("/get_worker_address", post(get_worker_address))
        .route("/receive_heart_beat", post(receive_heart_beat))
        .route("/worker_get_status", post(worker_get_status))
        .route("/worker_generate_stream", post(worker_generate_stream))
        .route("/test_connection", get(test_connection))
        .with_state(state)
}

/// Serves a controller on `listener` until `shutdown` resolves (then lets running streams
/// finish), with the expiry task running meanwhile.
pub async fn serve_controller(
    listener: tokio::net::TcpListener,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ClusterError> {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".to_owned());
    eprintln!(
        "controller: listening on http://{addr} (dispatch {}, expiration {} s)",
        config.dispatch,
        config.heart_beat_expiration.as_secs_f64()
    );
    let state = ControllerState::new(config);
    let expiry = state.spawn_expiry();
    let served = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await;
    expiry.abort();
    served.map_err(|source| ClusterError::Serve { addr, source })
}

/// Binds `host:port` and serves a controller until `shutdown` resolves.
pub async fn run_controller(
    host: &str,
    port: u16,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ClusterError> {
    let addr = format!("{host}:{port}");
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|source| ClusterError::Bind { addr, source })?;
    serve_controller(listener, config, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tests::{closed_url, eventually, serve};
    use crate::cluster::{ControllerClient, heartbeat_loop};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::sync::watch;

    /// A FastChat worker stand-in: `/worker_get_status` (fails while `down` is set) and a
    /// `/worker_generate_stream` of three chunks naming the worker.
    struct FakeWorker {
        url: String,
        down: Arc<AtomicBool>,
        status_calls: Arc<AtomicUsize>,
    }

    fn chunks_of(id: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (i, text) in ["a", "ab", "abc"].iter().enumerate() {
            let mut chunk = json!({ "text": format!("{id}:{text}"), "error_code": 0 });
            if i == 2 {
                chunk["finish_reason"] = json!("stop");
            }
            bytes.extend(chunk.to_string().into_bytes());
            bytes.push(0);
        }
        bytes
    }

    async fn fake_worker(id: &'static str, models: &[&str], queue_length: i64) -> FakeWorker {
        let down = Arc::new(AtomicBool::new(false));
        let status_calls = Arc::new(AtomicUsize::new(0));
        let status = WorkerStatus::new(models.iter().map(|m| m.to_string()).collect(), queue_length);
        let (d, calls) = (Arc::clone(&down), Arc::clone(&status_calls));
        let router = Router::new()
            .route(
                "/worker_get_status",
                post(move || {
                    let (status, d, calls) = (status.clone(), Arc::clone(&d), Arc::clone(&calls));
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        if d.load(Ordering::SeqCst) {
                            StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        } else {
                            axum::Json(status).into_response()
                        }
                    }
                }),
            )
            .route(
                "/worker_generate_stream",
                post(move || async move {
                    // One chunk per read, with a pause, as a real worker streams.
                    let pieces: Vec<Bytes> =
                        chunks_of(id).split_inclusive(|&b| b == 0).map(Bytes::copy_from_slice).collect();
                    let body = futures_util::stream::iter(pieces).then(|piece| async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Ok::<_, std::convert::Infallible>(piece)
                    });
                    Body::from_stream(body)
                }),
            );
        FakeWorker { url: serve(router).await, down, status_calls }
    }

    fn config(dispatch: Dispatch) -> ControllerConfig {
        ControllerConfig { dispatch, seed: Some(7), ..ControllerConfig::default() }
    }

    /// A controller served on 127.0.0.1, its state and a client.
    async fn controller(config: ControllerConfig) -> (ControllerState, ControllerClient, String) {
        let state = ControllerState::new(config);
        let url = serve(router(state.clone())).await;
        (state, ControllerClient::new(&url), url)
    }

    async fn call(url: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(format!("{url}{path}"))
            .json(&body)
            .send()
            .await
            .expect("the controller answers");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        (status, response.json().await.expect("a JSON reply"))
    }

    async fn post_bytes(url: &str, path: &str, body: Value) -> Vec<u8> {
        reqwest::Client::new()
            .post(format!("{url}{path}"))
            .json(&body)
            .send()
            .await
            .expect("the controller answers")
            .bytes()
            .await
            .expect("a body")
            .to_vec()
    }

    async fn register(url: &str, worker: &str, status: Option<Value>, multimodal: bool) -> Value {
        let mut body = json!({ "worker_name": worker, "check_heart_beat": true, "multimodal": multimodal });
        if let Some(status) = status {
            body["worker_status"] = status;
        }
        let (code, reply) = call(url, "/register_worker", body).await;
        assert_eq!(code, StatusCode::OK);
        reply
    }

    #[tokio::test]
    async fn registering_asks_the_status_when_missing_and_lists_the_union_of_models() {
        let a = fake_worker("A", &["vicuna", "phoenix"], 0).await;
        let b = fake_worker("B", &["phoenix", "chimera"], 0).await;
        let v = fake_worker("V", &["llava"], 0).await;
        let (state, client, url) = controller(config(Dispatch::ShortestQueue)).await;

        assert_eq!(register(&url, &a.url, None, false).await, Value::Null);
        assert_eq!(a.status_calls.load(Ordering::SeqCst), 1, "status asked once");
        let status = json!({"model_names": ["phoenix", "chimera"], "speed": 1, "queue_length": 0});
        register(&url, &b.url, Some(status), false).await;
        assert_eq!(b.status_calls.load(Ordering::SeqCst), 0, "status given, not asked");
        // `{}` counts as missing, as FastChat's `if not worker_status`.
        register(&url, &v.url, Some(json!({})), true).await;
        assert_eq!(v.status_calls.load(Ordering::SeqCst), 1);

        assert_eq!(client.list_models().await.expect("models"), ["chimera", "llava", "phoenix", "vicuna"]);
        assert_eq!(client.list_language_models().await.expect("models"), ["chimera", "phoenix", "vicuna"]);
        let (_, multimodal) = call(&url, "/list_multimodal_models", Value::Null).await;
        assert_eq!(multimodal, json!({"models": ["llava"]}));
        let names: Vec<String> = state.workers().into_iter().map(|w| w.name).collect();
        assert_eq!(names, [a.url, b.url, v.url], "registration order");
    }

    #[tokio::test]
    async fn registering_an_unreachable_worker_answers_null_and_registers_nothing() {
        let (state, client, url) = controller(config(Dispatch::ShortestQueue)).await;
        let dead = closed_url().await;
        assert_eq!(register(&url, &dead, None, false).await, Value::Null);
        assert!(state.workers().is_empty());
        assert!(client.list_models().await.expect("models").is_empty());
    }

    #[tokio::test]
    async fn malformed_requests_get_400_with_a_detail() {
        let (_, _, url) = controller(config(Dispatch::ShortestQueue)).await;
        let (code, reply) = call(&url, "/register_worker", json!({"worker_name": "http://w"})).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        let detail = reply["detail"].as_str().expect("a detail");
        assert!(detail.contains("check_heart_beat"), "{detail}");
        let (code, _) = call(&url, "/get_worker_address", json!({})).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        let (code, _) = call(&url, "/receive_heart_beat", json!({"worker_name": "x"})).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn bodies_are_json_whatever_the_content_type() {
        let (_, client, url) = controller(config(Dispatch::ShortestQueue)).await;
        let body = r#"{"worker_name": "http://w", "check_heart_beat": false,
            "worker_status": {"model_names": ["m"], "speed": 1, "queue_length": 0}}"#;
        let response = reqwest::Client::new()
            .post(format!("{url}/register_worker"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(client.list_models().await.expect("models"), ["m"]);
    }

    fn status(models: &[&str], speed: i64, queue_length: i64) -> Option<WorkerStatus> {
        Some(WorkerStatus { model_names: models.iter().map(|m| m.to_string()).collect(), speed, queue_length })
    }

    #[tokio::test]
    async fn shortest_queue_picks_the_shorter_queue_and_counts_the_pick() {
        let (state, client, _) = controller(config(Dispatch::ShortestQueue)).await;
        state.register_worker("http://a", true, status(&["m"], 1, 3), false).await;
        state.register_worker("http://b", true, status(&["m"], 1, 1), false).await;
        state.register_worker("http://c", true, status(&["other"], 1, 0), false).await;
        state.register_worker("http://d", true, status(&["m"], 0, 0), false).await;

        let mut picks = Vec::new();
        for _ in 0..4 {
            picks.push(client.get_worker_address("m").await.expect("answers").expect("a worker"));
        }
        // b: 1 → 2 → 3, then a tie 3/3 goes to the first registered, a: 3 → 4, then b (3 < 4).
        // d has speed 0 and is never picked.
        assert_eq!(picks, ["http://b", "http://b", "http://a", "http://b"]);
        let queues: Vec<i64> = state.workers().iter().map(|w| w.queue_length).collect();
        assert_eq!(queues, [4, 4, 0, 0]);

        // queue/speed, not queue: 6/3 = 2 beats 3/1.
        state.register_worker("http://fast", true, status(&["m"], 3, 6), false).await;
        assert_eq!(state.get_worker_address("m").as_deref(), Some("http://fast"));
        assert_eq!(client.get_worker_address("nope").await.expect("answers"), None);
    }

    #[tokio::test]
    async fn lottery_reaches_every_worker_by_speed_and_repeats_with_its_seed() {
        let draws = |seed| async move {
            let state = ControllerState::new(ControllerConfig { seed: Some(seed), ..config(Dispatch::Lottery) });
            state.register_worker("http://a", true, status(&["m"], 1, 0), false).await;
            state.register_worker("http://b", true, status(&["m"], 3, 0), false).await;
            state.register_worker("http://z", true, status(&["m"], 0, 0), false).await;
            (0..400).map(|_| state.get_worker_address("m").expect("a worker")).collect::<Vec<_>>()
        };
        let first = draws(42).await;
        let a = first.iter().filter(|w| *w == "http://a").count();
        let b = first.iter().filter(|w| *w == "http://b").count();
        assert_eq!(a + b, 400, "speed 0 is never drawn");
        assert!((50..150).contains(&a), "about a quarter goes to speed 1: {a}");
        assert_eq!(draws(42).await, first, "the same seed draws the same");
        assert_ne!(draws(43).await, first, "another seed draws otherwise");

        let (state, client, _) = controller(config(Dispatch::Lottery)).await;
        assert_eq!(client.get_worker_address("m").await.expect("answers"), None);
        state.register_worker("http://z", true, status(&["m"], 0, 0), false).await;
        assert_eq!(state.get_worker_address("m"), None, "total speed 0 → no worker");
    }

    #[tokio::test]
    async fn heart_beats_update_known_workers_and_tell_unknown_ones() {
        let (state, client, _) = controller(config(Dispatch::ShortestQueue)).await;
        assert!(!client.heart_beat("http://ghost", 2).await.expect("answers"));
        state.register_worker("http://a", true, status(&["m"], 1, 0), false).await;
        assert!(client.heart_beat("http://a", 5).await.expect("answers"));
        assert_eq!(state.workers()[0].queue_length, 5);
        assert!(state.workers().iter().all(|w| w.name != "http://ghost"));
    }

    #[tokio::test]
    async fn expiry_removes_only_silent_workers_that_asked_for_it() {
        let expiration = Duration::from_secs(3);
        let state = ControllerState::new(ControllerConfig {
            heart_beat_expiration: expiration,
            ..config(Dispatch::ShortestQueue)
        });
        state.register_worker("http://beating", true, status(&["m"], 1, 0), false).await;
        state.register_worker("http://pinned", false, status(&["m"], 1, 0), false).await;
        let registered = state.workers()[0].last_heart_beat;
        assert!(state.remove_expired(registered + expiration).is_empty(), "not older yet");
        assert_eq!(state.remove_expired(registered + expiration + Duration::from_millis(1)), ["http://beating"]);
        assert_eq!(state.workers()[0].name, "http://pinned");
    }

    #[tokio::test]
    async fn a_worker_that_stops_beating_expires_and_dispatch_routes_to_the_other() {
        let (state, client, url) = controller(ControllerConfig {
            heart_beat_expiration: Duration::from_secs(3),
            sweep_interval: Duration::from_secs(1),
            ..config(Dispatch::ShortestQueue)
        })
        .await;
        let expiry = state.spawn_expiry();
        let silent = fake_worker("S", &["m"], 0).await;
        let alive = fake_worker("L", &["m"], 0).await;
        register(&url, &silent.url, None, false).await;
        // The live one runs the real heart-beat loop, beating every 300 ms.
        let (stop_tx, stop_rx) = watch::channel(false);
        let beats = tokio::spawn(heartbeat_loop(
            ControllerClient::new(&url),
            alive.url.clone(),
            vec!["m".into()],
            Duration::from_millis(300),
            || 0,
            stop_rx,
        ));
        eventually("both registered", || state.workers().len() == 2).await;
        let started = Instant::now();
        eventually("the silent worker expires", || state.workers().len() == 1).await;
        assert!(started.elapsed() >= Duration::from_secs(2), "not before its expiration");
        assert_eq!(state.workers()[0].name, alive.url);
        for _ in 0..5 {
            let address = client.get_worker_address("m").await.expect("answers");
            assert_eq!(address.as_deref(), Some(alive.url.as_str()));
        }
        stop_tx.send(true).expect("the loop listens");
        beats.await.expect("the loop ends");
        drop(state);
        expiry.abort();
    }

    #[tokio::test]
    async fn the_proxy_streams_every_chunk_with_its_nul() {
        let a = fake_worker("A", &["m"], 0).await;
        let (_, _, url) = controller(config(Dispatch::ShortestQueue)).await;
        register(&url, &a.url, None, false).await;
        let bytes = post_bytes(&url, "/worker_generate_stream", json!({"model": "m", "prompt": "x"})).await;
        assert_eq!(bytes, chunks_of("A"));
        assert_eq!(bytes.iter().filter(|&&b| b == 0).count(), 3);
    }

    #[tokio::test]
    async fn the_proxy_without_a_worker_sends_one_50005_chunk() {
        let (_, _, url) = controller(config(Dispatch::ShortestQueue)).await;
        let bytes = post_bytes(&url, "/worker_generate_stream", json!({"model": "m"})).await;
        let want = format!("{{\"text\":\"{SERVER_ERROR_MSG}\",\"error_code\":50005}}\0");
        assert_eq!(String::from_utf8(bytes).expect("utf-8"), want);
    }

    #[tokio::test]
    async fn the_proxy_turns_an_unreachable_worker_into_a_50006_chunk() {
        let (state, _, url) = controller(config(Dispatch::ShortestQueue)).await;
        let dead = closed_url().await;
        state.register_worker(&dead, true, status(&["m"], 1, 0), false).await;
        let bytes = post_bytes(&url, "/worker_generate_stream", json!({"model": "m"})).await;
        let text = String::from_utf8(bytes).expect("utf-8");
        let chunk: Value = serde_json::from_str(text.trim_end_matches('\0')).expect("one chunk");
        assert_eq!(chunk, json!({"text": SERVER_ERROR_MSG, "error_code": 50006}));
        assert!(text.ends_with('\0'));
    }

    #[tokio::test]
    async fn refresh_drops_a_worker_whose_status_fails_and_renews_the_others() {
        let a = fake_worker("A", &["m"], 2).await;
        let b = fake_worker("B", &["n"], 0).await;
        let (state, client, url) = controller(config(Dispatch::ShortestQueue)).await;
        let stale = json!({"model_names": ["old"], "speed": 1, "queue_length": 9});
        register(&url, &a.url, Some(stale), false).await;
        register(&url, &b.url, None, false).await;
        b.down.store(true, Ordering::SeqCst);
        client.refresh_all_workers().await.expect("answers");
        let workers = state.workers();
        assert_eq!(workers.len(), 1);
        assert_eq!(workers[0].name, a.url);
        assert_eq!(workers[0].model_names, ["m"], "fresh status");
        assert_eq!(workers[0].queue_length, 2);
        assert_eq!(client.list_models().await.expect("models"), ["m"]);
    }

    #[tokio::test]
    async fn controllers_nest_a_controller_serves_as_a_worker() {
        let a = fake_worker("A", &["m", "n"], 2).await;
        let b = fake_worker("B", &["n"], 3).await;
        let dead = closed_url().await;
        let (inner, _, inner_url) = controller(config(Dispatch::ShortestQueue)).await;
        register(&inner_url, &a.url, None, false).await;
        register(&inner_url, &b.url, None, false).await;
        inner.register_worker(&dead, true, status(&["x"], 1, 0), false).await;

        let (_, reply) = call(&inner_url, "/worker_get_status", Value::Null).await;
        assert_eq!(reply, json!({"model_names": ["m", "n"], "speed": 2, "queue_length": 5}));

        let (_, outer, outer_url) = controller(config(Dispatch::ShortestQueue)).await;
        register(&outer_url, &inner_url, None, false).await;
        assert_eq!(outer.list_models().await.expect("models"), ["m", "n"]);
        let address = outer.get_worker_address("m").await.expect("answers");
        assert_eq!(address.as_deref(), Some(inner_url.as_str()));
        let bytes = post_bytes(&outer_url, "/worker_generate_stream", json!({"model": "m"})).await;
        assert_eq!(bytes, chunks_of("A"), "streamed through both controllers");
    }

    #[tokio::test]
    async fn test_connection_says_success() {
        let (_, _, url) = controller(config(Dispatch::ShortestQueue)).await;
        let reply = reqwest::get(format!("{url}/test_connection")).await.expect("answers").text().await.expect("text");
        assert_eq!(reply, "\"success\"");
    }

    #[test]
    fn dispatch_reads_fastchat_spellings() {
        assert_eq!("shortest_queue".parse::<Dispatch>(), Ok(Dispatch::ShortestQueue));
        assert_eq!("lottery".parse::<Dispatch>(), Ok(Dispatch::Lottery));
        assert!("random".parse::<Dispatch>().is_err());
        assert_eq!(Dispatch::Lottery.to_string(), "lottery");
    }

    #[tokio::test]
    async fn run_controller_serves_until_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_controller(listener, ControllerConfig::default(), async move {
            let _ = rx.await;
        }));
        let client = ControllerClient::new(&url);
        assert!(client.list_models().await.expect("serving").is_empty());
        tx.send(()).expect("the server waits");
        let served = tokio::time::timeout(Duration::from_secs(5), server).await.expect("stops").expect("no panic");
        assert!(served.is_ok(), "{served:?}");
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let err = run_controller("127.0.0.1", port, ControllerConfig::default(), async {})
            .await
            .expect_err("the port is taken");
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}

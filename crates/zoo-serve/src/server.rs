//! `zoo serve`: the HTTP server. It binds first and loads the models behind it (`/health` says
//! 503 until every model is ready), then answers the OpenAI API from the engines (or, with
//! `--controller`, from a FastChat cluster's workers), the web chat page at `/`, and
//! Prometheus metrics at `/metrics`.
//!
//! **Decisions.** Loopback by default; a key (`--api-key`) guards `/v1/*` only (the page,
//! `/health` and `/metrics` stay open, as llama-server's do). Bodies are read up to
//! `max_body` bytes (413 past it, with OpenAI's error body). `max_tokens` defaults to what the
//! context leaves after the prompt; a prompt that does not fit is 400
//! `context_length_exceeded`, as OpenAI answers. Shutdown (Ctrl-C, SIGTERM) stops accepting,
//! lets running streams finish (up to `grace`), then exits.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use zoo_infer::SamplingParams;
use zoo_ops::chat::{ChatModel, ChatOptions};
use zoo_ops::{Control, Zoo};

use crate::api::{self, ApiError, ChatRequest, Checked, CompletionRequest, PromptInput};
use crate::cluster::ControllerClient;
use crate::engine::{Engine, EngineConfig, Finish, GenEvent, GenRequest, Lifecycle, SubmitError};
use crate::metrics::{self, ModelMetrics, ModelSample};

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    pub api_key: Option<String>,
    /// Largest request body in bytes.
    pub max_body: usize,
    /// Longest a generation may run (queue wait included).
    pub timeout: Duration,
    /// How long shutdown waits for running streams.
    pub grace: Duration,
    pub engine: EngineConfig,
    pub threads: Option<usize>,
    /// A prompt format for every model (else each model's own).
    pub template: Option<String>,
    /// Models to load (MODEL as `zoo chat` takes it).
    pub models: Vec<String>,
    /// The OpenAI front of a FastChat cluster: the controller's URL instead of local models.
    pub controller: Option<String>,
    /// Wait this long before loading (tests see the loading state; `ZOO_SERVE_LOAD_DELAY_MS`).
    pub load_delay: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8000,
            api_key: None,
            max_body: 4 << 20,
            timeout: Duration::from_secs(600),
            grace: Duration::from_secs(30),
            engine: EngineConfig::default(),
            threads: None,
            template: None,
            models: Vec::new(),
            controller: None,
            load_delay: Duration::ZERO,
        }
    }
}

/// Where answers come from.
enum Backend {
    Local(RwLock<Vec<Arc<Engine>>>),
    Cluster(ControllerClient),
}

/// What every handler shares.
pub struct AppState {
    config: ServeConfig,
    backend: Backend,
    lifecycle: Lifecycle,
    /// Names being loaded, so that a request for one gets 503, not 404.
    expected: Vec<String>,
    /// Figures of requests that named no known model, and of the cluster front.
    front_metrics: ModelMetrics,
}

/// The name a MODEL argument is served under: a registry name as given, a path's file stem
/// (a GGUF file) or folder name.
pub fn served_name(spec: &str) -> String {
    let p = std::path::Path::new(spec);
    if p.exists() {
        let stem = if p.is_file() { p.file_stem() } else { p.file_name() };
        if let Some(s) = stem.and_then(|s| s.to_str()) {
            return s.to_string();
        }
    }
    spec.to_string()
}

/// Loads one model for serving.
pub async fn load_model(zoo: &Zoo, spec: &str, config: &ServeConfig, ctl: &Control) -> zoo_ops::Result<ChatModel> {
    let opts = ChatOptions {
        // The default model is pulled on first use, as `zoo chat` does.
        model: (spec != zoo_ops::chat::DEFAULT_MODEL).then(|| spec.to_string()),
        template: config.template.clone(),
        threads: config.threads,
        ..Default::default()
    };
    zoo_ops::chat::load(zoo, &opts, ctl).await
}

/// Binds, then loads the models and serves until `shutdown` resolves. Returns the bound
/// address through `bound` as soon as it listens.
pub async fn serve(
    zoo: Zoo,
    config: ServeConfig,
    ctl: Control,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    bound: impl FnOnce(SocketAddr),
) -> zoo_ops::Result<()> {
    let (listener, local) = bind(&config.host, config.port).await?;
    let backend = match &config.controller {
        Some(url) => Backend::Cluster(ControllerClient::new(url)),
        None => Backend::Local(RwLock::new(Vec::new())),
    };
    let state = Arc::new(AppState {
        expected: config.models.iter().map(|m| served_name(m)).collect(),
        config: config.clone(),
        backend,
        lifecycle: Lifecycle::default(),
        front_metrics: ModelMetrics::default(),
    });
    bound(local);
    // A model that cannot be loaded stops the server with that error (as llama-server exits).
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<zoo_ops::OpsError>();
    let loader = {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            if let Backend::Local(engines) = &state.backend {
                tokio::time::sleep(state.config.load_delay).await;
                for spec in &state.config.models {
                    let name = served_name(spec);
                    ctl.note(format!("loading {spec}"));
                    match load_model(&zoo, spec, &state.config, &ctl).await {
                        Ok(model) => {
                            let engine = Engine::start(
                                name.clone(),
                                model,
                                state.config.engine.clone(),
                                Arc::new(ModelMetrics::default()),
                            );
                            if let Ok(mut e) = engines.write() {
                                e.push(engine);
                            }
                            ctl.note(format!("ready: {name}"));
                        }
                        Err(e) => {
                            state.lifecycle.set_failed(format!("loading {spec} failed: {e}"));
                            let _ = fail_tx.send(e);
                            return;
                        }
                    }
                }
            }
            state.lifecycle.set_ready();
        })
    };
    let app = router(Arc::clone(&state));
    let grace = config.grace;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(());
    });
    let mut server = std::pin::pin!(server.into_future());
    let result = tokio::select! {
        r = &mut server => r,
        _ = async {
            // Shutdown began: give running streams `grace`, then stop waiting for them.
            let _ = stop_rx.await;
            tokio::time::sleep(grace).await;
        } => Ok(()),
        Ok(e) = fail_rx => return Err(e),
    };
    loader.abort();
    result.map_err(|e| zoo_ops::OpsError::Invalid(format!("the server stopped: {e}")))
}

/// Listens on `host:port` (port 0: any free one); returns the listener and its address.
pub(crate) async fn bind(host: &str, port: u16) -> zoo_ops::Result<(tokio::net::TcpListener, SocketAddr)> {
    let addr = format!("{host}:{port}");
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| zoo_ops::OpsError::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| zoo_ops::OpsError::Invalid(format!("{addr}: {e}")))?;
    Ok((listener, local))
}

/// The routes, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

const PAGE: &str = include_str!("../assets/chat.html");

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE).into_response()
}

fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, axum::Json(e.body())).into_response();
    if e.status == 429 || e.status == 503 {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

async fn fallback(req: Request) -> Response {
    error_response(&ApiError::not_found(req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Response {
    error_response(&ApiError::method(req.uri().path()))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    if let Some(msg) = state.lifecycle.failure() {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "error", "error": msg}))).into_response();
    }
    if !state.lifecycle.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "loading"}))).into_response();
    }
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let engines = state.engines();
    let mut samples: Vec<ModelSample<'_>> = engines
        .iter()
        .map(|e| ModelSample {
            model: &e.name,
            metrics: e.metrics(),
            queue_depth: e.queue_depth(),
            active: e.active(),
            batch_size: e.config.batch_size,
        })
        .collect();
    samples.push(ModelSample { model: "", metrics: &state.front_metrics, queue_depth: 0, active: 0, batch_size: 0 });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics::render(&samples)).into_response()
}

impl AppState {
    fn engines(&self) -> Vec<Arc<Engine>> {
        match &self.backend {
            Backend::Local(e) => e.read().map(|e| e.clone()).unwrap_or_default(),
            Backend::Cluster(_) => Vec::new(),
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(key) = &self.config.api_key else { return Ok(()) };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    /// The engine serving `model` (`None`: the only one served).
    fn engine(&self, model: Option<&str>) -> Result<Arc<Engine>, ApiError> {
        if let Some(msg) = self.lifecycle.failure() {
            return Err(ApiError::unavailable(msg));
        }
        let engines = self.engines();
        let found = match model {
            Some(m) => engines.iter().find(|e| e.name == m).cloned(),
            None if self.expected.len() == 1 => engines.first().cloned(),
            None => return Err(ApiError::invalid_param("model", "name the model (`model`): this server has several")),
        };
        match found {
            Some(e) => Ok(e),
            None => {
                let name = model.unwrap_or_default();
                if model.is_none() || self.expected.iter().any(|x| x == name) {
                    Err(ApiError::loading(format!(
                        "{} is still loading; try again shortly",
                        model.unwrap_or("the model")
                    )))
                } else {
                    Err(ApiError::model_not_found(name, &self.expected))
                }
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = state.authorize(&headers) {
        return error_response(&e);
    }
    let names: Vec<(String, Option<usize>)> = match &state.backend {
        Backend::Local(_) => {
            let loaded = state.engines();
            state
                .expected
                .iter()
                .map(|n| (n.clone(), loaded.iter().find(|e| &e.name == n).map(|e| e.context_length())))
                .collect()
        }
        Backend::Cluster(c) => match c.list_models().await {
            Ok(m) => m.into_iter().map(|n| (n, None)).collect(),
            Err(e) => return error_response(&ApiError::unavailable(format!("the controller did not answer: {e}"))),
        },
    };
    let data: Vec<Value> = names
        .into_iter()
        .map(|(id, ctx)| {
            json!({"id": id, "object": "model", "created": 0, "owned_by": "zoo",
                   "meta": {"context_length": ctx, "loaded": ctx.is_some() || matches!(state.backend, Backend::Cluster(_))}})
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Reads the body up to the limit (413 past it).
async fn read_body(state: &AppState, req: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    state.authorize(&parts.headers)?;
    let limit = state.config.max_body;
    if let Some(len) =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(ApiError::too_large(limit));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit")
        {
            ApiError::too_large(limit)
        } else {
            ApiError::malformed(format!("reading the body: {e}"))
        }
    })?;
    Ok((parts.headers, bytes))
}

/// What a request asks the backend for.
enum Input {
    Messages(Vec<zoo_chat::Message>),
    Prompt(PromptInput),
}

/// The events of one generation, and its prompt's length.
struct Started {
    model: String,
    prompt_tokens: usize,
    events: BoxStream<'static, GenEvent>,
}

/// A seed for a request that names none.
pub(crate) fn seed_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0x5eed)
}

async fn start(state: &Arc<AppState>, model: Option<&str>, input: Input, c: &Checked) -> Result<Started, ApiError> {
    if let Backend::Cluster(client) = &state.backend {
        return crate::front::start(client, model, input_json(&input), c).await.map(|(model, events)| Started {
            model,
            prompt_tokens: 0,
            events,
        });
    }
    let engine = state.engine(model)?;
    let m = Arc::clone(&engine.model);
    let ids = tokio::task::spawn_blocking(move || match input {
        Input::Messages(msgs) => m.render_ids(&msgs),
        Input::Prompt(PromptInput::Text(t)) => m.text_ids(&t),
        Input::Prompt(PromptInput::Ids(ids)) => Ok(ids),
    })
    .await
    .map_err(|e| ApiError::internal(format!("rendering the prompt: {e}")))?
    .map_err(|e| ApiError::invalid_param("messages", format!("the prompt could not be made: {e}")))?;
    let context = engine.context_length();
    if ids.is_empty() {
        return Err(ApiError::invalid_param("messages", "the prompt is empty"));
    }
    if ids.len() >= context {
        return Err(ApiError::context_length(format!(
            "this model's context is {context} tokens; the prompt has {} tokens",
            ids.len()
        )));
    }
    if let Some(vocab) = engine.model.model.tokenizer.as_ref().map(|t| t.max_id())
        && let Some(bad) = ids.iter().find(|&&id| id > vocab)
    {
        return Err(ApiError::invalid_param(
            "prompt",
            format!("token id {bad} is outside the vocabulary (largest {vocab})"),
        ));
    }
    let base = &engine.model.params;
    let params = SamplingParams {
        temperature: c.temperature.unwrap_or(base.temperature),
        top_k: c.top_k.or(base.top_k).filter(|&k| k > 0),
        top_p: c.top_p.or(base.top_p),
        repetition_penalty: base.repetition_penalty,
        repeat_last_n: base.repeat_last_n,
        seed: c.seed.unwrap_or_else(seed_now),
    };
    let prompt_tokens = ids.len();
    let req = GenRequest {
        max_tokens: c.max_tokens.unwrap_or(context).min(context - prompt_tokens),
        prompt: ids,
        params,
        stops: c.stop.clone(),
        stop_ids: Vec::new(),
        deadline: Some(Instant::now() + state.config.timeout),
        ignore_eos: c.ignore_eos,
    };
    let rx = engine.submit(req).map_err(|e| match e {
        SubmitError::QueueFull(_) => ApiError::queue_full(e.to_string()),
        SubmitError::Closed => ApiError::unavailable(e.to_string()),
        SubmitError::Invalid(m) => ApiError::invalid_param("messages", m),
    })?;
    let events = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }).boxed();
    Ok(Started { model: engine.name.clone(), prompt_tokens, events })
}

fn input_json(input: &Input) -> Value {
    match input {
        Input::Messages(m) => {
            json!({"messages": m.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})).collect::<Vec<_>>()})
        }
        Input::Prompt(PromptInput::Text(t)) => json!({"prompt": t}),
        Input::Prompt(PromptInput::Ids(ids)) => json!({"prompt_ids": ids}),
    }
}

fn metrics_for<'a>(state: &'a AppState, engines: &'a [Arc<Engine>], model: &str) -> &'a ModelMetrics {
    engines.iter().find(|e| e.name == model).map(|e| e.metrics()).unwrap_or(&state.front_metrics)
}

fn record(state: &AppState, model: Option<&str>, endpoint: &str, status: u16) {
    let engines = state.engines();
    metrics_for(state, &engines, model.unwrap_or_default()).record_request(endpoint, status);
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Completion,
}

async fn chat(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, req, Kind::Chat).await
}

async fn completions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, req, Kind::Completion).await
}

async fn handle(state: Arc<AppState>, req: Request, kind: Kind) -> Response {
    let endpoint = if kind == Kind::Chat { "chat" } else { "completions" };
    let parsed = async {
        let (_, body) = read_body(&state, req).await?;
        let (common, input) = match kind {
            Kind::Chat => {
                let r: ChatRequest = api::parse(&body)?;
                let msgs = r.messages()?;
                (r.common, Input::Messages(msgs))
            }
            Kind::Completion => {
                let r: CompletionRequest = api::parse(&body)?;
                let input = r.input()?;
                (r.common, Input::Prompt(input))
            }
        };
        let checked = common.check()?;
        Ok::<_, ApiError>((common, input, checked))
    }
    .await;
    let (common, input, checked) = match parsed {
        Ok(x) => x,
        Err(e) => {
            record(&state, None, endpoint, e.status);
            return error_response(&e);
        }
    };
    let started = match start(&state, common.model.as_deref(), input, &checked).await {
        Ok(s) => s,
        Err(e) => {
            record(&state, common.model.as_deref(), endpoint, e.status);
            return error_response(&e);
        }
    };
    record(&state, Some(&started.model), endpoint, 200);
    let id = format!("{}-{:x}", if kind == Kind::Chat { "chatcmpl" } else { "cmpl" }, seed_now());
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let meta = Meta { id, created, model: started.model.clone(), kind, prompt_tokens: started.prompt_tokens };
    if common.stream {
        stream_response(meta, started.events, checked.include_usage)
    } else {
        whole_response(meta, started.events).await
    }
}

struct Meta {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
    prompt_tokens: usize,
}

impl Meta {
    fn usage(&self, f: &Finish) -> Value {
        let prompt = if f.prompt_tokens > 0 { f.prompt_tokens } else { self.prompt_tokens };
        json!({"prompt_tokens": prompt, "completion_tokens": f.completion_tokens, "total_tokens": prompt + f.completion_tokens})
    }

    fn chunk(&self, delta: Option<Value>, text: Option<&str>, finish: Option<&str>) -> Value {
        match self.kind {
            Kind::Chat => {
                json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta.unwrap_or_else(|| json!({})), "logprobs": null, "finish_reason": finish}]})
            }
            Kind::Completion => {
                json!({"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish}]})
            }
        }
    }
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn stream_response(meta: Meta, events: BoxStream<'static, GenEvent>, include_usage: bool) -> Response {
    let first = match meta.kind {
        Kind::Chat => Some(sse(&meta.chunk(Some(json!({"role": "assistant", "content": ""})), None, None))),
        Kind::Completion => None,
    };
    let meta = Arc::new(meta);
    let body = {
        let meta = Arc::clone(&meta);
        events.flat_map(move |ev| {
            let out: Vec<Bytes> = match ev {
                GenEvent::Text(t) => vec![sse(&match meta.kind {
                    Kind::Chat => meta.chunk(Some(json!({"content": t})), None, None),
                    Kind::Completion => meta.chunk(None, Some(&t), None),
                })],
                GenEvent::Done(f) => {
                    let usage = meta.usage(&f);
                    let mut last = meta.chunk(None, None, Some(f.reason));
                    // The usage rides on the finishing chunk (as TGI and llama-server do), and
                    // in OpenAI's own usage chunk with no choices when it was asked for.
                    last["usage"] = usage.clone();
                    let mut v = vec![sse(&last)];
                    if include_usage {
                        let mut u = meta.chunk(None, None, None);
                        u["choices"] = json!([]);
                        u["usage"] = usage;
                        v.push(sse(&u));
                    }
                    v.push(Bytes::from_static(b"data: [DONE]\n\n"));
                    v
                }
                GenEvent::Error(m) => vec![
                    sse(&json!({"error": {"message": m, "type": "server_error", "param": null, "code": null}})),
                    Bytes::from_static(b"data: [DONE]\n\n"),
                ],
            };
            stream::iter(out)
        })
    };
    let body = stream::iter(first).chain(body).map(Ok::<_, Infallible>);
    let mut r = Response::new(Body::from_stream(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

async fn whole_response(meta: Meta, mut events: BoxStream<'static, GenEvent>) -> Response {
    let mut text = String::new();
    while let Some(ev) = events.next().await {
        match ev {
            GenEvent::Text(t) => text.push_str(&t),
            GenEvent::Error(m) => return error_response(&ApiError::internal(m)),
            GenEvent::Done(f) => {
                let choice = match meta.kind {
                    Kind::Chat => {
                        json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": f.reason})
                    }
                    Kind::Completion => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": f.reason}),
                };
                let object = if meta.kind == Kind::Chat { "chat.completion" } else { "text_completion" };
                return axum::Json(
                    json!({"id": meta.id, "object": object, "created": meta.created, "model": meta.model,
                    "choices": [choice], "usage": meta.usage(&f)}),
                )
                .into_response();
            }
        }
    }
    error_response(&ApiError::internal("the generation ended without an answer"))
}

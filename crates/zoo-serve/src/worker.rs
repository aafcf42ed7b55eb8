//! `zoo worker MODEL --controller URL`: a FastChat model worker over the batching engine. It
//! registers with the controller, heartbeats its queue length, registers again when the
//! controller has forgotten it, and answers FastChat's worker API: `/worker_generate_stream`
//! (NUL-delimited JSON chunks with the cumulative text), `/worker_generate`,
//! `/worker_get_status`, `/count_token`, `/worker_get_conv_template`, `/model_details`.
//!
//! **Decisions.** Chunks carry the whole text so far, `error_code`, `usage` and
//! `finish_reason` (null until the last), as FastChat 0.2.36's workers send them. A request may
//! give `messages` (OpenAI-style, a zoo extension) instead of `prompt`; the worker then renders
//! them with the model's own format, so `zoo serve --controller` needs no template. The
//! conversation template offered to FastChat's `openai_api_server` is the model's format
//! expressed in FastChat's terms where one exists (ChatML, LLM Zoo's Phoenix); otherwise a
//! raw template, and the prompt is then the messages' text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use futures_util::stream;
use serde_json::{Value, json};
use zoo_chat::Message;
use zoo_infer::SamplingParams;
use zoo_ops::{Control, Zoo};

use crate::cluster::{SERVER_ERROR_MSG, error_code as codes};
use crate::engine::{Engine, GenEvent, GenRequest, SubmitError};
use crate::metrics::ModelMetrics;
use crate::server::{ServeConfig, bind, load_model, seed_now, served_name};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub serve: ServeConfig,
    pub controller: String,
    /// The URL the controller reaches this worker at (default `http://HOST:PORT`).
    pub worker_address: Option<String>,
    /// Names to register under (default: the served name).
    pub model_names: Vec<String>,
    pub heart_beat_interval: Duration,
    /// Do not register with a controller (FastChat's `--no-register`).
    pub no_register: bool,
}

struct WorkerState {
    engine: Arc<Engine>,
    names: Vec<String>,
    timeout: Duration,
}

/// Loads the model, binds, registers and serves until `shutdown` resolves.
pub async fn run_worker(
    zoo: Zoo,
    config: WorkerConfig,
    ctl: Control,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    bound: impl FnOnce(SocketAddr),
) -> zoo_ops::Result<()> {
    let spec =
        config.serve.models.first().cloned().ok_or_else(|| zoo_ops::OpsError::Invalid("no model to serve".into()))?;
    let model = load_model(&zoo, &spec, &config.serve, &ctl).await?;
    let name = served_name(&spec);
    let names = if config.model_names.is_empty() { vec![name.clone()] } else { config.model_names.clone() };
    let engine = Engine::start(name, model, config.serve.engine.clone(), Arc::new(ModelMetrics::default()));
    let (listener, local) = bind(&config.serve.host, config.serve.port).await?;
    let worker_name = config.worker_address.clone().unwrap_or_else(|| format!("http://{local}"));
    bound(local);
    let state =
        Arc::new(WorkerState { engine: Arc::clone(&engine), names: names.clone(), timeout: config.serve.timeout });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let heart = if config.no_register {
        None
    } else {
        let status_engine = Arc::clone(&engine);
        let status = move || (status_engine.queue_depth() + status_engine.active()) as i64;
        Some(tokio::spawn(crate::cluster::heartbeat_loop(
            crate::cluster::ControllerClient::new(&config.controller),
            worker_name.clone(),
            names.clone(),
            config.heart_beat_interval,
            status,
            stop_rx,
        )))
    };
    ctl.note(format!("worker {worker_name} serving {} (controller {})", names.join(", "), config.controller));
    let app = router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await;
    if let Some(h) = heart {
        h.abort();
    }
    served.map_err(|e| zoo_ops::OpsError::Invalid(format!("the worker stopped: {e}")))
}

fn router(state: Arc<WorkerState>) -> Router {
    Router::new()
        .route("/worker_generate_stream", post(generate_stream))
        .route("/worker_generate", post(generate))
        .route("/worker_get_status", post(status))
        .route("/count_token", post(count_token))
        .route("/worker_get_conv_template", post(conv_template))
        .route("/model_details", post(model_details))
        .with_state(state)
}

async fn status(State(s): State<Arc<WorkerState>>) -> Response {
    axum::Json(json!({
        "model_names": s.names,
        "speed": 1,
        "queue_length": s.engine.queue_depth() + s.engine.active(),
    }))
    .into_response()
}

async fn model_details(State(s): State<Arc<WorkerState>>) -> Response {
    axum::Json(json!({"context_length": s.engine.context_length()})).into_response()
}

async fn count_token(State(s): State<Arc<WorkerState>>, body: Bytes) -> Response {
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let prompt = params.get("prompt").and_then(Value::as_str).unwrap_or_default().to_string();
    let m = Arc::clone(&s.engine.model);
    let count = tokio::task::spawn_blocking(move || m.tokenizer().and_then(|t| Ok(t.encode(&prompt, false)?.len())))
        .await
        .ok()
        .and_then(Result::ok);
    match count {
        Some(n) => axum::Json(json!({"count": n, "error_code": 0})).into_response(),
        None => axum::Json(json!({"count": 0, "error_code": codes::INTERNAL_ERROR})).into_response(),
    }
}

/// The model's prompt format as FastChat's `Conversation` fields.
async fn conv_template(State(s): State<Arc<WorkerState>>) -> Response {
    axum::Json(json!({"conv": fastchat_conv(&s.engine.model)})).into_response()
}

/// FastChat `SeparatorStyle` values (fschat 0.2.36, `fastchat/conversation.py`: an `IntEnum`
/// of `auto()` members, counted from 1).
mod sep_style {
    pub const ADD_COLON_SINGLE: i64 = 1;
    pub const NO_COLON_SINGLE: i64 = 4;
    pub const CHATML: i64 = 9;
    pub const PHOENIX: i64 = 13;
}

fn fastchat_conv(model: &zoo_ops::chat::ChatModel) -> Value {
    let conv =
        |name: &str, system_template: &str, system: &str, roles: [&str; 2], style: i64, sep: &str, stop: Value| {
            json!({"name": name, "system_template": system_template, "system_message": system, "roles": roles,
               "messages": [], "offset": 0, "sep_style": style, "sep": sep, "sep2": null,
               "stop_str": stop, "stop_token_ids": model.model.stop_ids})
        };
    // Probe the format: ChatML renders a user turn as `<|im_start|>user\n...<|im_end|>\n`.
    let probe = model.format.render(&[Message::user("X")], true).unwrap_or_default();
    if probe.contains("<|im_start|>user\nX<|im_end|>\n") && probe.ends_with("<|im_start|>assistant\n") {
        // The default system message is what the template writes when none is given.
        let system = probe
            .split("<|im_start|>system\n")
            .nth(1)
            .and_then(|s| s.split("<|im_end|>").next())
            .unwrap_or_default()
            .to_string();
        return conv(
            "zoo-chatml",
            "<|im_start|>system\n{system_message}",
            &system,
            ["<|im_start|>user", "<|im_start|>assistant"],
            sep_style::CHATML,
            "<|im_end|>",
            json!("<|im_end|>"),
        );
    }
    if model.format.name() == "llmzoo" {
        let system = model.format.default_system_prompt().unwrap_or_default();
        return conv(
            "phoenix",
            "{system_message}",
            system,
            ["Human", "Assistant"],
            sep_style::PHOENIX,
            "</s>",
            json!("</s>"),
        );
    }
    // No FastChat equivalent: the prompt is the turns' text, one after another.
    let _ = sep_style::ADD_COLON_SINGLE;
    conv("zoo-raw", "{system_message}", "", ["", ""], sep_style::NO_COLON_SINGLE, "", Value::Null)
}

/// An error chunk as FastChat's workers write it: the server error message, then the detail.
fn error_chunk(detail: &str, code: i64) -> Value {
    chunk(&format!("{SERVER_ERROR_MSG}\n\n({detail})"), code, None, None)
}

/// The chunk FastChat clients read.
fn chunk(text: &str, code: i64, usage: Option<Value>, finish: Option<&str>) -> Value {
    json!({"text": text, "error_code": code, "usage": usage, "logprobs": null, "finish_reason": finish})
}

fn nul(v: &Value) -> Bytes {
    let mut b = v.to_string().into_bytes();
    b.push(0);
    Bytes::from(b)
}

/// Starts a generation from FastChat's parameters; the prompt text echoed, if asked.
async fn begin(
    s: &WorkerState,
    body: &[u8],
) -> Result<(tokio::sync::mpsc::UnboundedReceiver<GenEvent>, String, usize), (String, i64)> {
    let p: Value = serde_json::from_slice(body)
        .map_err(|e| (format!("the body is not JSON: {e}"), codes::VALIDATION_TYPE_ERROR))?;
    let f64_of = |k: &str, d: f64| p.get(k).and_then(Value::as_f64).unwrap_or(d);
    let echo = p.get("echo").and_then(Value::as_bool).unwrap_or(true);
    let m = Arc::clone(&s.engine.model);
    let messages: Option<Vec<Message>> = p.get("messages").and_then(Value::as_array).map(|a| {
        a.iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                let content = m.get("content").and_then(Value::as_str).unwrap_or_default().to_string();
                match role {
                    "system" => Message::system(content),
                    "assistant" => Message::assistant(content),
                    _ => Message::user(content),
                }
            })
            .collect()
    });
    let prompt_text = p.get("prompt").and_then(Value::as_str).map(str::to_string);
    let ids = tokio::task::spawn_blocking(move || match (messages, prompt_text) {
        (Some(msgs), _) => m.render_ids(&msgs).map(|ids| (ids, String::new())),
        (None, Some(t)) => m.text_ids(&t).map(|ids| (ids, t)),
        (None, None) => Err(zoo_ops::OpsError::Invalid("the request has no prompt".into())),
    })
    .await
    .map_err(|e| (e.to_string(), codes::INTERNAL_ERROR))?
    .map_err(|e| (e.to_string(), codes::VALIDATION_TYPE_ERROR))?;
    let (ids, prompt) = ids;
    let context = s.engine.context_length();
    if ids.len() >= context {
        return Err((
            format!("this model's context is {context} tokens; the prompt has {} tokens", ids.len()),
            codes::CONTEXT_OVERFLOW,
        ));
    }
    let max_new = p.get("max_new_tokens").and_then(Value::as_u64).map_or(256, |n| n as usize);
    let mut stops: Vec<String> = match p.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    stops.retain(|s| !s.is_empty());
    let stop_ids = p
        .get("stop_token_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).map(|v| v as u32).collect())
        .unwrap_or_default();
    let top_k = p.get("top_k").and_then(Value::as_i64).filter(|&k| k > 0).map(|k| k as usize);
    let top_p = f64_of("top_p", 1.0);
    let params = SamplingParams {
        temperature: f64_of("temperature", 1.0),
        top_k,
        top_p: (top_p < 1.0).then_some(top_p),
        repetition_penalty: f64_of("repetition_penalty", 1.0) as f32,
        repeat_last_n: 64,
        seed: p.get("seed").and_then(Value::as_u64).unwrap_or_else(seed_now),
    };
    let prompt_tokens = ids.len();
    let req = GenRequest {
        max_tokens: max_new.min(context - prompt_tokens),
        prompt: ids,
        params,
        stops,
        stop_ids,
        deadline: Some(Instant::now() + s.timeout),
        ignore_eos: p.get("ignore_eos").and_then(Value::as_bool).unwrap_or(false),
    };
    let rx = s.engine.submit(req).map_err(|e| {
        let code =
            if matches!(e, SubmitError::QueueFull(_)) { codes::ENGINE_OVERLOADED } else { codes::INTERNAL_ERROR };
        (e.to_string(), code)
    })?;
    Ok((rx, if echo { prompt } else { String::new() }, prompt_tokens))
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

async fn generate_stream(State(s): State<Arc<WorkerState>>, body: Bytes) -> Response {
    let body = match begin(&s, &body).await {
        Ok((rx, echoed, prompt_tokens)) => {
            struct St {
                rx: tokio::sync::mpsc::UnboundedReceiver<GenEvent>,
                text: String,
                pieces: usize,
                prompt_tokens: usize,
                done: bool,
            }
            let st = St { rx, text: echoed, pieces: 0, prompt_tokens, done: false };
            stream::unfold(st, |mut st| async move {
                if st.done {
                    return None;
                }
                let out = match st.rx.recv().await {
                    Some(GenEvent::Text(t)) => {
                        st.text.push_str(&t);
                        st.pieces += 1;
                        chunk(&st.text, 0, Some(usage(st.prompt_tokens, st.pieces)), None)
                    }
                    Some(GenEvent::Done(f)) => {
                        st.done = true;
                        chunk(&st.text, 0, Some(usage(f.prompt_tokens, f.completion_tokens)), Some(f.reason))
                    }
                    Some(GenEvent::Error(m)) => {
                        st.done = true;
                        error_chunk(&m, codes::INTERNAL_ERROR)
                    }
                    None => return None,
                };
                Some((Ok::<_, std::convert::Infallible>(nul(&out)), st))
            })
            .boxed()
        }
        Err((msg, code)) => stream::iter([Ok(nul(&error_chunk(&msg, code)))]).boxed(),
    };
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r
}

async fn generate(State(s): State<Arc<WorkerState>>, body: Bytes) -> Response {
    match begin(&s, &body).await {
        Ok((mut rx, mut text, _)) => {
            while let Some(ev) = rx.recv().await {
                match ev {
                    GenEvent::Text(t) => text.push_str(&t),
                    GenEvent::Done(f) => {
                        return axum::Json(chunk(
                            &text,
                            0,
                            Some(usage(f.prompt_tokens, f.completion_tokens)),
                            Some(f.reason),
                        ))
                        .into_response();
                    }
                    GenEvent::Error(m) => return axum::Json(error_chunk(&m, codes::INTERNAL_ERROR)).into_response(),
                }
            }
            axum::Json(error_chunk("the generation ended without an answer", codes::INTERNAL_ERROR)).into_response()
        }
        Err((msg, code)) => axum::Json(error_chunk(&msg, code)).into_response(),
    }
}

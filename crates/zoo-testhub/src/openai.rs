//! A scripted OpenAI-compatible server on loopback, for tests of clients of such servers (the
//! evaluation's `--endpoint` and judge): each POST to `/v1/chat/completions` or
//! `/v1/completions` is answered by a closure the test gives, which may also answer with an
//! error status, a body that is not JSON, or a delay past the client's timeout. `GET /v1/models`
//! lists one model, `scripted`. Every request body is kept for the test to inspect.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this JSON body.
    Json(Value),
    /// This status with a plain-text body.
    Status(u16, String),
    /// 200 with this body as it is (garbage: not JSON, or JSON of the wrong shape).
    Raw(String),
    /// Waits this long, then answers with the inner reply (past a client's timeout: no answer).
    Delay(Duration, Box<Reply>),
}

type Handler = dyn Fn(&str, &Value) -> Reply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    requests: Mutex<Vec<(String, Value)>>,
}

/// A running scripted server; dropping it stops it.
pub struct ScriptedOpenAi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedOpenAi {
    /// Starts on an ephemeral loopback port; `handler(path, body)` answers each POST (`path` is
    /// `chat/completions` or `completions`).
    ///
    /// # Panics
    /// If no loopback port can be bound: a test cannot go on without its server.
    pub fn start(handler: impl Fn(&str, &Value) -> Reply + Send + Sync + 'static) -> ScriptedOpenAi {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).expect("tokio listener")
        };
        let shared = Arc::new(Shared { handler: Box::new(handler), requests: Mutex::new(Vec::new()) });
        let app = Router::new()
            .route(
                "/v1/models",
                get(|| async {
                    axum::Json(json!({"object": "list", "data": [{"id": "scripted", "object": "model"}]}))
                }),
            )
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completions))
            .with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("scripted-openai-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                drop(runtime);
            })
            .expect("server thread");
        ScriptedOpenAi { shared, addr, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// The base URL as OpenAI clients take it: `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request so far: (path, JSON body), in arrival order.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.shared.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for ScriptedOpenAi {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn chat(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    answer(&s, "chat/completions", &body).await
}

async fn completions(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    answer(&s, "completions", &body).await
}

async fn answer(s: &Shared, path: &str, body: &[u8]) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (StatusCode::BAD_REQUEST, "request body is not JSON").into_response();
    };
    if let Ok(mut r) = s.requests.lock() {
        r.push((path.to_string(), v.clone()));
    }
    let mut reply = (s.handler)(path, &v);
    loop {
        match reply {
            Reply::Json(j) => return axum::Json(j).into_response(),
            Reply::Status(code, text) => {
                return (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), text).into_response();
            }
            Reply::Raw(text) => return ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
        }
    }
}

/// A `/chat/completions` answer whose message is `text`.
pub fn chat_reply(text: &str) -> Value {
    json!({
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    })
}

/// A `/completions` answer of `text`.
pub fn completion_reply(text: &str) -> Value {
    json!({
        "id": "cmpl-scripted",
        "object": "text_completion",
        "model": "scripted",
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}],
    })
}

/// The text of the last user message of a chat request ("" when there is none).
pub fn last_user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|x| x["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

//! Our controller and cluster client against the real FastChat 0.2.36 (installed by
//! `scripts/fastchat.sh` into the target folder's `tmp/py-serve`): FastChat's OpenAI server and the `openai`
//! Python client through our controller to a worker, our client and heart-beat loop against
//! FastChat's controller, and `scripts/fastchat_test_message.py` through our controller.
//!
//! The worker is a stand-in that answers the worker endpoints the way `FASTCHAT.md` says a
//! worker must; it records what it was asked, so the tests also pin down what FastChat sends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use zoo_serve::cluster::{self, ControllerClient, SERVER_ERROR_MSG, heartbeat_loop};
use zoo_serve::controller::{ControllerConfig, serve_controller};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, installed once per run (the script's lock covers parallel tests).
fn python() -> PathBuf {
    static DEST: OnceLock<PathBuf> = OnceLock::new();
    DEST.get_or_init(|| {
        // The same venv as the workspace's serve tests (one install per target folder).
        let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-serve");
        let out = Command::new("bash")
            .arg(root().join("scripts/fastchat.sh"))
            .arg(&dest)
            .output()
            .expect("bash runs scripts/fastchat.sh");
        assert!(
            out.status.success(),
            "scripts/fastchat.sh failed (it needs python3.11+ with venv and pip, and access to PyPI):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().last(), dest.to_str(), "fastchat.sh prints DEST last");
        dest.join("bin/python")
    })
    .clone()
}

/// A child process killed when the test ends, its stderr kept for failure messages.
struct Child {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Child {
    fn spawn(args: &[&str]) -> Child {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("stderr.log");
        let child = Command::new(python())
            .args(args)
            // FastChat writes `<name>.log` into $LOGDIR unless it is empty.
            .env("LOGDIR", "")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("python starts");
        Child { child, log, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Waits up to 60 s for `GET url` to answer 200.
async fn wait_ready(url: &str, child: &Child) {
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not come up within 60 s:\n{}", child.log());
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Our controller on 127.0.0.1; stops when the sender is dropped.
async fn our_controller() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_controller(listener, ControllerConfig::default(), async move {
        let _ = rx.await;
    }));
    (url, tx)
}

const REPLY: [&str; 3] = ["Hello", "Hello there", "Hello there friend"];

/// The chunks of one generation: cumulative texts, then a final chunk with the finish reason,
/// each with usage, as fastchat.serve.model_worker sends them.
fn chunks() -> Vec<Value> {
    let usage = |n: usize| json!({"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n});
    let mut chunks: Vec<Value> = REPLY
        .iter()
        .enumerate()
        .map(|(i, text)| {
            json!({"text": text, "error_code": 0, "usage": usage(i + 1), "finish_reason": null, "logprobs": null})
        })
        .collect();
    chunks
        .push(json!({"text": REPLY[2], "error_code": 0, "usage": usage(3), "finish_reason": "stop", "logprobs": null}));
    chunks
}

type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// A worker of model `fake` with the Phoenix template; returns its URL and its call log.
async fn fake_worker() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let record = |path: &'static str, calls: &Calls| {
        let calls = Arc::clone(calls);
        move |body: Bytes| {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            calls.lock().expect("lock").push((path.to_owned(), body));
        }
    };
    let status = record("/worker_get_status", &calls);
    let conv = record("/worker_get_conv_template", &calls);
    let details = record("/model_details", &calls);
    let count = record("/count_token", &calls);
    let stream = record("/worker_generate_stream", &calls);
    let generate = record("/worker_generate", &calls);
    let router = Router::new()
        .route(
            "/worker_get_status",
            post(move |b: Bytes| async move {
                status(b);
                axum::Json(json!({"model_names": ["fake"], "speed": 1, "queue_length": 0}))
            }),
        )
        .route(
            "/worker_get_conv_template",
            post(move |b: Bytes| async move {
                conv(b);
                axum::Json(json!({"conv": {
                    "name": "phoenix",
                    "system_template": "{system_message}",
                    "system_message": "SYS. ",
                    "roles": ["Human", "Assistant"],
                    "messages": [],
                    "offset": 0,
                    "sep_style": 13,
                    "sep": "</s>",
                    "sep2": null,
                    "stop_str": null,
                    "stop_token_ids": null,
                }}))
            }),
        )
        .route(
            "/model_details",
            post(move |b: Bytes| async move {
                details(b);
                axum::Json(json!({"context_length": 2048}))
            }),
        )
        .route(
            "/count_token",
            post(move |b: Bytes| async move {
                count(b);
                axum::Json(json!({"count": 5, "error_code": 0}))
            }),
        )
        .route(
            "/worker_generate_stream",
            post(move |b: Bytes| async move {
                stream(b);
                let pieces = chunks().into_iter().map(|c| {
                    let mut bytes = c.to_string().into_bytes();
                    bytes.push(0);
                    Ok::<_, std::convert::Infallible>(Bytes::from(bytes))
                });
                Body::from_stream(futures_util::stream::iter(pieces))
            }),
        )
        .route(
            "/worker_generate",
            post(move |b: Bytes| async move {
                generate(b);
                axum::Json(chunks().pop().unwrap_or_default())
            }),
        );
    (serve(router).await, calls)
}

fn calls_to(calls: &Calls, path: &str) -> Vec<Value> {
    calls.lock().expect("lock").iter().filter(|(p, _)| p == path).map(|(_, b)| b.clone()).collect()
}

/// Runs `python -c code args...` to its end; its stdout.
async fn run_python(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(python()).args(&args).env("LOGDIR", "").output().expect("python runs");
        assert!(
            out.status.success(),
            "python {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("no panic")
}

const OPENAI_CLIENT: &str = r#"
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="none", max_retries=0)
out = {"models": [m.id for m in c.models.list().data]}
out["chat"] = c.chat.completions.create(model="fake", max_tokens=16, messages=[
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]).model_dump()
out["chat_stream"] = [x.model_dump() for x in c.chat.completions.create(model="fake",
    stream=True, messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"},
    {"role": "user", "content": "Again"}])]
out["completion"] = c.completions.create(model="fake", prompt="Once", max_tokens=8).model_dump()
try:
    c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
except openai.BadRequestError as e:
    out["bad_model"] = {"status": e.status_code, "body": e.body}
print(json.dumps(out))
"#;

/// Runs the real heartbeat loop for `worker` (serving model `fake`) against `controller` until
/// the returned sender is dropped.
fn beat(controller: &str, worker: &str, interval: Duration, queue_length: i64) -> watch::Sender<bool> {
    let (tx, stop) = watch::channel(false);
    tokio::spawn(heartbeat_loop(
        ControllerClient::new(controller),
        worker.to_string(),
        vec!["fake".into()],
        interval,
        move || queue_length,
        stop,
    ));
    tx
}

#[tokio::test(flavor = "multi_thread")]
async fn fastchat_openai_server_reaches_a_worker_through_our_controller() {
    let (controller, _stop_controller) = our_controller().await;
    let (worker, calls) = fake_worker().await;
    let _stop_beats = beat(&controller, &worker, Duration::from_secs(1), 0);
    let port = free_port().to_string();
    let api = Child::spawn(&[
        "-m",
        "fastchat.serve.openai_api_server",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--controller-address",
        &controller,
    ]);
    let api_url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{api_url}/v1/models"), &api).await;

    let out = run_python(vec!["-c".into(), OPENAI_CLIENT.into(), api_url]).await;
    let out: Value = serde_json::from_str(out.trim()).expect("the client prints JSON");

    assert_eq!(out["models"], json!(["fake"]));
    let chat = &out["chat"];
    assert_eq!(chat["choices"][0]["message"]["content"], REPLY[2]);
    assert_eq!(chat["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
               "completion_tokens_details": null, "prompt_tokens_details": null})
    );
    let stream = out["chat_stream"].as_array().expect("chunks");
    assert_eq!(stream[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = stream.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, REPLY[2]);
    let last = stream.last().expect("a last chunk");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(out["completion"]["choices"][0]["text"], REPLY[2]);
    assert_eq!(out["bad_model"]["status"], 400);
    assert_eq!(out["bad_model"]["body"]["code"], 40301);
    assert_eq!(out["bad_model"]["body"]["object"], "error");

    // What FastChat asked the worker, in order.
    let paths: Vec<String> =
        calls.lock().expect("lock").iter().map(|(p, _)| p.clone()).filter(|p| p != "/worker_get_status").collect();
    assert_eq!(
        paths,
        [
            "/worker_get_conv_template", // once per (worker, model), cached after
            "/model_details",
            "/count_token",
            "/worker_generate",
            "/model_details",
            "/count_token",
            "/worker_generate_stream",
            "/model_details",
            "/count_token",
            "/worker_generate",
        ]
    );
    let generate = calls_to(&calls, "/worker_generate");
    assert_eq!(
        generate[0],
        json!({"model": "fake", "prompt": "Be brief.Human: <s>Hi</s>Assistant: <s>",
               "temperature": 0.7, "logprobs": null, "top_p": 1.0, "top_k": -1,
               "presence_penalty": 0.0, "frequency_penalty": 0.0, "max_new_tokens": 16,
               "echo": false, "stop_token_ids": null, "stop": []})
    );
    let streamed = &calls_to(&calls, "/worker_generate_stream")[0];
    assert_eq!(streamed["prompt"], "SYS. Human: <s>Hi</s>Assistant: <s>Yo</s>Human: <s>Again</s>Assistant: <s>");
    assert_eq!(streamed["max_new_tokens"], 2048 - 5, "context_length - count");
    assert_eq!(generate[1]["prompt"], "Once", "completions send the prompt as is");
    assert_eq!(generate[1]["max_new_tokens"], 8);
    assert_eq!(
        calls_to(&calls, "/count_token")[0],
        json!({"model": "fake", "prompt": "Be brief.Human: <s>Hi</s>Assistant: <s>"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn our_client_and_heart_beats_work_with_fastchats_controller() {
    let port = free_port().to_string();
    let ctl = Child::spawn(&["-m", "fastchat.serve.controller", "--host", "127.0.0.1", "--port", &port]);
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/test_connection"), &ctl).await;
    let client = ControllerClient::new(&url);
    let (worker, _calls) = fake_worker().await;
    let _stop_beats = beat(&url, &worker, Duration::from_millis(200), 2);
    for _ in 0..300 {
        if client.list_models().await.expect("lists") == ["fake"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.list_models().await.expect("lists"), ["fake"]);
    assert_eq!(client.list_language_models().await.expect("lists"), ["fake"]);
    assert_eq!(client.get_worker_address("fake").await.expect("answers"), Some(worker.clone()));
    assert_eq!(client.get_worker_address("nope").await.expect("answers"), None);
    assert!(client.heart_beat(&worker, 1).await.expect("answers"));
    assert!(!client.heart_beat("http://127.0.0.1:9", 1).await.expect("answers"));
    client.refresh_all_workers().await.expect("answers");

    // FastChat's controller as a worker: its proxy, read by our stream client.
    let params = json!({"model": "fake", "prompt": "x"});
    let got: Vec<Value> =
        cluster::generate_stream(&url, params).await.expect("streams").map(|c| c.expect("a chunk")).collect().await;
    assert_eq!(got, chunks());
    // Without a worker fschat 0.2.36 sends 50005 and then 50006 (it does not return after the
    // first); our controller sends only the first.
    let got: Vec<Value> = cluster::generate_stream(&url, json!({"model": "nope"}))
        .await
        .expect("streams")
        .map(|c| c.expect("a chunk"))
        .collect()
        .await;
    assert_eq!(
        got,
        [
            json!({"text": SERVER_ERROR_MSG, "error_code": 50005}),
            json!({"text": SERVER_ERROR_MSG, "error_code": 50006}),
        ]
    );
    let status = cluster::WorkerClient::new(Duration::from_secs(10)).get_status(&url).await.expect("status");
    assert_eq!(status, cluster::WorkerStatus::new(vec!["fake".into()], 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_message_script_streams_through_our_controller() {
    let (controller, _stop_controller) = our_controller().await;
    let (worker, calls) = fake_worker().await;
    let _stop_beats = beat(&controller, &worker, Duration::from_secs(1), 0);
    let client = ControllerClient::new(&controller);
    for _ in 0..300 {
        if !client.list_models().await.expect("lists").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let script = root().join("scripts/fastchat_test_message.py");
    let out = run_python(vec![
        script.to_string_lossy().into_owned(),
        "--controller-address".into(),
        controller,
        "--model-name".into(),
        "fake".into(),
        "--message".into(),
        "Hi".into(),
    ])
    .await;
    assert_eq!(out, format!("Models: ['fake']\nworker_addr: {worker}\nHuman: Hi\nAssistant: {}\n", REPLY[2]));
    let sent = &calls_to(&calls, "/worker_generate_stream")[0];
    assert_eq!(
        *sent,
        json!({"model": "fake", "prompt": "SYS. Human: <s>Hi</s>Assistant: <s>",
               "temperature": 0.0, "max_new_tokens": 32, "stop": null,
               "stop_token_ids": null, "echo": false})
    );
}

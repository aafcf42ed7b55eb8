//! `zoo serve` end to end on the real SmolLM2 Q4_1 GGUF: the OpenAI API through the real `openai`
//! Python package, faults through raw sockets (malformed JSON, huge bodies, invalid parameters,
//! a client vanishing mid-stream, a full queue), continuous batching (answers decoded together
//! equal answers decoded alone), `/health` while loading, `/metrics`, graceful shutdown, and
//! the web chat page in headless Chromium (playwright-core).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running `zoo serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
    _home: tempfile::TempDir,
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let home = tempfile::tempdir().unwrap();
        let gguf = common::smollm2_gguf();
        let mut c = common::zoo(home.path());
        c.arg("serve").arg(&gguf).args(["--port", "0", "--threads", "2"]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[zoo serve] {line}");
                if let Some(rest) = line.strip_prefix("listening on http://")
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(rest.split(' ').next().unwrap_or_default().trim_end_matches(':').to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("zoo serve printed no listening line");
        Server { child, addr, _home: home }
    }

    fn wait_ready(&self) {
        let t0 = Instant::now();
        while http(&self.addr, "GET", "/health", &[], b"").0 != 200 {
            assert!(t0.elapsed() < Duration::from_secs(120), "not ready after 120 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, _, body) = http(&self.addr, "GET", "/metrics", &[], b"");
        let text = String::from_utf8(body).unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.contains("model=\"\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use common::http;

fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, b) = http(addr, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes());
    (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// The SSE events of a streamed answer.
fn sse_events(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body).split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
}

fn chat_body(content: &str, max_tokens: usize, stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0, "stream": stream})
}

/// `zoo run` on the same model and prompt, greedy: the answer the server must give.
fn zoo_run_greedy(content: &str, max_tokens: usize) -> String {
    let home = tempfile::tempdir().unwrap();
    let gguf = common::smollm2_gguf();
    let messages = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(messages.path(), json!([{"role": "user", "content": content}]).to_string()).unwrap();
    let out = common::zoo(home.path())
        .arg("run")
        .arg(&gguf)
        .arg("--messages")
        .arg(messages.path())
        .args(["--greedy", "--max-tokens", &max_tokens.to_string(), "--json", "--threads", "2"])
        .output()
        .unwrap();
    let v = common::ok_json(&out);
    v["text"].as_str().unwrap().to_string()
}

const QUESTIONS: [&str; 4] = [
    "What is the capital of France?",
    "Name three colors of the rainbow.",
    "How many legs does a spider have?",
    "Write one sentence about the sea.",
];

#[test]
fn answers_batched_equal_answers_alone_and_match_zoo_run() {
    let server = Server::start(&["--batch-size", "4"], &[]);
    server.wait_ready();
    // Alone, one after another.
    let alone: Vec<String> = QUESTIONS
        .iter()
        .map(|q| {
            let (s, v) = post(&server.addr, "/v1/chat/completions", &chat_body(q, 24, false));
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["object"], "chat.completion");
            assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{v}");
            v["choices"][0]["message"]["content"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(alone[0], zoo_run_greedy(QUESTIONS[0], 24), "the server renders and decodes as `zoo run`");
    // Together: four streams at once, decoded in shared steps.
    let steps_before = server.metric("zoo_batch_sequences_count");
    let single_before = server.metric("zoo_batch_sequences_bucket{model=\"SmolLM2-135M-Instruct.Q4_1\",le=\"1\"}");
    let handles: Vec<_> = QUESTIONS
        .iter()
        .map(|q| {
            let addr = server.addr.clone();
            let body = chat_body(q, 24, true);
            std::thread::spawn(move || {
                let (s, head, b) = http(
                    &addr,
                    "POST",
                    "/v1/chat/completions",
                    &[("Content-Type", "application/json")],
                    body.to_string().as_bytes(),
                );
                assert_eq!(s, 200);
                assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
                let events = sse_events(&b);
                assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
                let mut text = String::new();
                let mut usage = Value::Null;
                for e in &events[..events.len() - 1] {
                    let v: Value = serde_json::from_str(e).unwrap();
                    if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                        text.push_str(c);
                    }
                    if !v["usage"].is_null() {
                        usage = v["usage"].clone();
                    }
                }
                assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "usage in the final chunk: {events:?}");
                text
            })
        })
        .collect();
    let together: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(together, alone, "a sequence decoded in a batch gives the tokens it gives alone");
    let steps = server.metric("zoo_batch_sequences_count") - steps_before;
    let single =
        server.metric("zoo_batch_sequences_bucket{model=\"SmolLM2-135M-Instruct.Q4_1\",le=\"1\"}") - single_before;
    assert!(steps > 0.0 && single < steps, "some steps decoded several sequences ({single} of {steps} had one)");
    // The four prompts share the chat template's system prompt: it ran once, not four times.
    assert!(server.metric("zoo_prompt_tokens_cached_total") >= 3.0 * 8.0, "shared prompt prefixes are not run again");
    // Completions: raw text, the same engine.
    let (s, v) = post(
        &server.addr,
        "/v1/completions",
        &json!({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert!(!v["choices"][0]["text"].as_str().unwrap().is_empty());
    // A stop string ends the answer before it and is not shown.
    let (s, v) = post(
        &server.addr,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": QUESTIONS[3]}], "max_tokens": 24, "temperature": 0, "stop": [" "]}),
    );
    assert_eq!(s, 200);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(!v["choices"][0]["message"]["content"].as_str().unwrap().contains(' '), "{v}");
}

#[test]
fn bad_requests_get_openai_errors_and_leave_the_server_clean() {
    let server = Server::start(
        &["--batch-size", "1", "--queue", "1", "--max-body", "65536"],
        &[("ZOO_SERVE_LOAD_DELAY_MS", "1500")],
    );
    // Loading: /health and the API say 503.
    let (s, _, b) = http(&server.addr, "GET", "/health", &[], b"");
    assert_eq!(s, 503, "{}", String::from_utf8_lossy(&b));
    let (s, v) = post(&server.addr, "/v1/chat/completions", &chat_body("hi", 4, false));
    assert_eq!((s, v["error"]["code"].as_str()), (503, Some("model_loading")), "{v}");
    server.wait_ready();
    let addr = &server.addr;
    let err = |status: u16, body: &[u8]| -> Value {
        let (s, _, b) = http(addr, "POST", "/v1/chat/completions", &[("Content-Type", "application/json")], body);
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        assert_eq!(s, status, "{}", String::from_utf8_lossy(&b));
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "OpenAI error body: {v}");
        v
    };
    err(400, b"{\"messages\": [");
    err(400, b"[]");
    err(413, &vec![b' '; 100_000]);
    let v = err(422, json!({"messages": [{"role": "user", "content": "x"}], "temperature": 7}).to_string().as_bytes());
    assert_eq!(v["error"]["param"], "temperature");
    err(422, json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}).to_string().as_bytes());
    let v = err(404, json!({"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]}).to_string().as_bytes());
    assert_eq!(v["error"]["code"], "model_not_found");
    let long = "word ".repeat(9000);
    let v = err(400, json!({"messages": [{"role": "user", "content": long}]}).to_string().as_bytes());
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(http(addr, "GET", "/v2/nothing", &[], b"").0, 404);

    // A client that vanishes mid-stream frees its slot: the next request is served at once.
    let mut s = TcpStream::connect(addr).unwrap();
    let mut body = chat_body("Tell me a long story about a dragon.", 2000, true);
    body["ignore_eos"] = json!(true);
    let body = body.to_string();
    write!(s, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("200"), "the stream started");
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    let t0 = Instant::now();
    loop {
        if server.metric("zoo_active_sequences") == 0.0 && server.metric("zoo_queue_depth") == 0.0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "the vanished client's sequence still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.metric("zoo_requests_cancelled_total") >= 1.0);

    // A full queue: batch 1 and queue 1 hold two requests; the third is refused with 429.
    let long_req = |addr: String| {
        std::thread::spawn(move || {
            let mut body = chat_body("Count from one to one hundred.", 150, false);
            body["ignore_eos"] = json!(true);
            let (s, v) = post(&addr, "/v1/chat/completions", &body);
            assert_eq!(v["usage"]["completion_tokens"], 150, "ignore_eos: {v}");
            s
        })
    };
    let a = long_req(addr.clone());
    std::thread::sleep(Duration::from_millis(400));
    let b = long_req(addr.clone());
    std::thread::sleep(Duration::from_millis(400));
    let (s, v) = post(addr, "/v1/chat/completions", &chat_body("hi", 4, false));
    assert_eq!((s, v["error"]["code"].as_str()), (429, Some("queue_full")), "{v}");
    assert_eq!((a.join().unwrap(), b.join().unwrap()), (200, 200));
    assert_eq!(server.metric("zoo_queue_depth"), 0.0);
    assert_eq!(server.metric("zoo_active_sequences"), 0.0);
    // Still up and answering.
    assert_eq!(post(addr, "/v1/chat/completions", &chat_body("hi", 4, false)).0, 200);
    let text = String::from_utf8(http(addr, "GET", "/metrics", &[], b"").2).unwrap();
    for name in [
        "zoo_requests_total",
        "zoo_time_to_first_token_seconds_bucket",
        "zoo_time_per_output_token_seconds_bucket",
        "zoo_completion_tokens_total",
    ] {
        assert!(text.contains(name), "{name} in /metrics");
    }
    assert!(text.contains("status=\"429\"} 1") && text.contains("status=\"422\""), "{text}");
}

#[test]
fn shutdown_lets_a_running_stream_finish() {
    let server = Server::start(&[], &[]);
    server.wait_ready();
    let addr = server.addr.clone();
    let h = std::thread::spawn(move || {
        http(
            &addr,
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            chat_body("Tell me about the moon.", 64, true).to_string().as_bytes(),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let (status, _, body) = h.join().unwrap();
    assert_eq!(status, 200);
    let events = sse_events(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "the stream finished after SIGTERM: {events:?}");
    let mut server = server;
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "zoo serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}");
    // Nothing listens any more.
    assert!(TcpStream::connect(&server.addr).is_err());
}

#[test]
fn the_openai_python_package_lists_chats_streams_and_gets_errors() {
    let python = common::fastchat_venv().join("bin/python");
    let server = Server::start(&["--api-key", "sekret", "--batch-size", "4"], &[]);
    server.wait_ready();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/openai_client.py");
    let out = Command::new(&python).arg(&script).arg(format!("{}/v1", server.url())).arg("sekret").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["models"], json!(["SmolLM2-135M-Instruct.Q4_1"]));
    assert!(v["stream_chunks"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["stream_text"], v["chat_text"], "streamed and whole greedy answers agree: {v}");
    assert_eq!(v["unknown_model_status"], 404);
    assert_eq!(v["wrong_key_status"], 401);
}

#[test]
fn the_chat_page_streams_and_stops_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = Command::new("bash").arg(root.join("scripts/chromium.sh")).output().unwrap();
    assert!(chromium.status.success(), "scripts/chromium.sh: {}", String::from_utf8_lossy(&chromium.stderr));
    let chromium = String::from_utf8_lossy(&chromium.stdout).lines().last().unwrap().to_string();
    let pw = Path::new(env!("CARGO_TARGET_TMPDIR")).join("playwright");
    let out = Command::new("bash").arg(root.join("scripts/playwright.sh")).arg(&pw).output().unwrap();
    assert!(out.status.success(), "scripts/playwright.sh: {}", String::from_utf8_lossy(&out.stderr));
    let server = Server::start(&["--batch-size", "2"], &[]);
    server.wait_ready();
    let out = Command::new("node")
        .arg(root.join("tests/web/chat_page.mjs"))
        .arg(server.url())
        .env("PLAYWRIGHT_DIR", &pw)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["stream"]["distinct_states"].as_u64().unwrap() >= 2, "{v}");
    // The stopped answer freed its slot.
    assert_eq!(server.metric("zoo_active_sequences"), 0.0);
}

#[test]
fn a_request_past_its_timeout_ends_with_length() {
    let server = Server::start(&["--timeout", "1"], &[]);
    server.wait_ready();
    let mut body = chat_body("Tell me a long story.", 5000, false);
    body["ignore_eos"] = json!(true);
    let t0 = Instant::now();
    let (s, v) = post(&server.addr, "/v1/chat/completions", &body);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let n = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(n > 0 && n < 5000, "stopped by the deadline after {n} tokens");
    assert!(t0.elapsed() < Duration::from_secs(20));
}

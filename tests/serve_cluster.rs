//! The FastChat / LLM Zoo cluster protocol end to end, on the real SmolLM2 Q4_1 GGUF:
//! - zoo's controller, two zoo workers and zoo's OpenAI front, driven by the `openai` package;
//!   one worker killed: the controller drops it after the expiration and routes to the other;
//! - our worker under FastChat's own controller and OpenAI server (PyPI `fschat` 0.2.36);
//! - FastChat's tooling against our controller: its OpenAI server and a test message.
//!
//! FastChat runs from the venv of `scripts/fastchat.sh` (no torch: its controller and OpenAI
//! server do not need it).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A process whose stderr and stdout lines are kept, killed on drop.
struct Proc {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(name: &str, mut c: Command) -> Proc {
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers: Vec<Box<dyn std::io::Read + Send>> =
            vec![Box::new(child.stderr.take().unwrap()), Box::new(child.stdout.take().unwrap())];
        for r in readers {
            let (lines, name) = (Arc::clone(&lines), name.to_string());
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    eprintln!("[{name}] {line}");
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Proc { name: name.to_string(), child, lines }
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_line(&mut self, needle: &str, secs: u64) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before printing {needle:?}", self.name);
            }
            assert!(t0.elapsed() < Duration::from_secs(secs), "{} printed no {needle:?} in {secs} s", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `http://host:port` a "... listening on http://..." line names.
    fn listening(&mut self) -> String {
        let line = self.wait_line("listening on http://", 120);
        let rest = line.split("listening on http://").nth(1).unwrap();
        format!("http://{}", rest.split([' ', ',']).next().unwrap().trim_end_matches(':'))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn python(venv: &Path) -> Command {
    let mut c = Command::new(venv.join("bin/python"));
    // FastChat writes `<name>.log` into LOGDIR unless it is empty.
    c.env("LOGDIR", "").env("NO_PROXY", "*").env_remove("http_proxy").env_remove("HTTP_PROXY");
    c
}

fn zoo(home: &Path, args: &[&str]) -> Command {
    let mut c = common::zoo(home);
    c.args(args);
    c
}

fn worker(home: &Path, controller: &str, extra: &[&str]) -> Proc {
    let gguf = common::smollm2_gguf();
    let mut c = zoo(home, &["worker"]);
    c.arg(&gguf).args([
        "--controller",
        controller,
        "--port",
        "0",
        "--threads",
        "1",
        "--model-names",
        "smol",
        "--heart-beat-interval",
        "1",
    ]);
    c.args(extra);
    Proc::spawn("zoo worker", c)
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

fn wait_http(url: &str) {
    let t0 = Instant::now();
    let (addr, path) = split_url(url);
    while common::http(addr, "GET", path, &[], b"").0 != 200 {
        assert!(t0.elapsed() < Duration::from_secs(60), "{url} did not answer in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post_raw(url: &str, body: &str) -> Vec<u8> {
    let (addr, path) = split_url(url);
    common::http(addr, "POST", path, &[("Content-Type", "application/json")], body.as_bytes()).2
}

fn post_json(url: &str, body: &str) -> Value {
    serde_json::from_slice(&post_raw(url, body)).unwrap_or(Value::Null)
}

fn openai_cluster(venv: &Path, base: &str, rounds: usize) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/openai_cluster.py");
    let out = python(venv).arg(script).arg(base).arg("smol").arg(rounds.to_string()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai_cluster.py against {base}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// FastChat's `openai_api_server` in front of `controller`: the process and its `/v1` URL.
fn fastchat_openai_server(venv: &Path, controller: &str) -> (Proc, String) {
    let port = free_port().to_string();
    let mut o = python(venv);
    o.args(["-m", "fastchat.serve.openai_api_server", "--host", "127.0.0.1", "--port", &port]);
    o.args(["--controller-address", controller]);
    let p = Proc::spawn("fastchat openai_api_server", o);
    wait_http(&format!("http://127.0.0.1:{port}/v1/models"));
    (p, format!("http://127.0.0.1:{port}/v1"))
}

/// The same question answered by `zoo serve` directly (greedy, 24 tokens).
fn direct_answer(home: &Path) -> String {
    let gguf = common::smollm2_gguf();
    let mut c = zoo(home, &["serve"]);
    c.arg(&gguf).args(["--port", "0", "--threads", "1"]);
    let mut p = Proc::spawn("zoo serve (direct)", c);
    let url = p.listening();
    wait_http(&format!("{url}/health"));
    let v = post_json(
        &format!("{url}/v1/chat/completions"),
        r#"{"messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":24,"temperature":0}"#,
    );
    v["choices"][0]["message"]["content"].as_str().unwrap().to_string()
}

#[test]
fn zoo_cluster_routes_around_a_dead_worker() {
    let venv = common::fastchat_venv();
    let home = tempfile::tempdir().unwrap();
    let expected = direct_answer(home.path());
    let mut ctl =
        Proc::spawn("zoo controller", zoo(home.path(), &["controller", "--port", "0", "--heart-beat-expiration", "3"]));
    let controller = ctl.listening();
    let mut w1 = worker(home.path(), &controller, &[]);
    let mut w2 = worker(home.path(), &controller, &[]);
    let (a1, a2) = (w1.listening(), w2.listening());
    ctl.wait_line(&format!("registered {a1}"), 60);
    ctl.wait_line(&format!("registered {a2}"), 60);
    let mut front_cmd = zoo(home.path(), &["serve", "--controller", &controller, "--port", "0"]);
    front_cmd.env("NO_PROXY", "*");
    let mut front = Proc::spawn("zoo serve --controller", front_cmd);
    let base = format!("{}/v1", front.listening());
    wait_http(&format!("{}/health", base.trim_end_matches("/v1")));

    let v = openai_cluster(&venv, &base, 4);
    assert_eq!(v["models"], serde_json::json!(["smol"]));
    assert_eq!(v["chat_text"], expected.as_str(), "the cluster answers as zoo serve does: {v}");
    assert_eq!(v["stream_text"], expected.as_str());
    assert!(v["stream_chunks"].as_u64().unwrap() >= 2);
    // Both workers served: the controller's shortest-queue dispatch spreads the requests.
    let status = post_json(&format!("{controller}/worker_get_status"), "{}");
    assert_eq!(status["model_names"], serde_json::json!(["smol"]), "{status}");

    // Kill one worker: after the expiration the controller forgets it, and every request goes
    // to the other.
    w1.kill();
    ctl.wait_line(&format!("expired {a1}"), 20);
    for _ in 0..3 {
        let addr = post_json(&format!("{controller}/get_worker_address"), r#"{"model":"smol"}"#);
        assert_eq!(addr["address"].as_str(), Some(a2.as_str()), "{addr}");
    }
    let v = openai_cluster(&venv, &base, 3);
    assert_eq!(v["chat_text"], expected.as_str());
    assert_eq!(v["rounds"].as_array().unwrap().len(), 3);
    // A worker the controller forgot registers again at its next heartbeat.
    let out = post_json(
        &format!("{controller}/receive_heart_beat"),
        &format!(r#"{{"worker_name":"{a1}","queue_length":0}}"#),
    );
    assert_eq!(out["exist"], false);
    drop(front);
    drop(w2);
}

#[test]
fn our_worker_serves_under_fastchats_controller_and_openai_server() {
    let venv = common::fastchat_venv();
    let home = tempfile::tempdir().unwrap();
    let expected = direct_answer(home.path());
    let cport = free_port();
    let mut c = python(&venv);
    c.args(["-m", "fastchat.serve.controller", "--host", "127.0.0.1", "--port", &cport.to_string()]);
    let _fc = Proc::spawn("fastchat controller", c);
    let controller = format!("http://127.0.0.1:{cport}");
    wait_http(&format!("{controller}/test_connection"));
    let mut w = worker(home.path(), &controller, &[]);
    let _addr = w.listening();
    let t0 = Instant::now();
    while !post_json(&format!("{controller}/list_models"), "{}")["models"].to_string().contains("smol") {
        assert!(t0.elapsed() < Duration::from_secs(60), "FastChat's controller never listed our worker's model");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_fo, base) = fastchat_openai_server(&venv, &controller);
    let v = openai_cluster(&venv, &base, 0);
    assert_eq!(v["models"], serde_json::json!(["smol"]));
    // FastChat renders the chat with the template our worker describes (ChatML with SmolLM2's
    // system message): the same prompt, so the same greedy answer as zoo serve.
    assert_eq!(v["chat_text"], expected.as_str(), "{v}");
    assert_eq!(v["stream_text"], expected.as_str(), "{v}");
    assert!(v["stream_chunks"].as_u64().unwrap() >= 2);
}

#[test]
fn fastchats_tooling_works_against_our_controller() {
    let venv = common::fastchat_venv();
    let home = tempfile::tempdir().unwrap();
    let mut ctl = Proc::spawn("zoo controller", zoo(home.path(), &["controller", "--port", "0"]));
    let controller = ctl.listening();
    let mut w = worker(home.path(), &controller, &[]);
    let a = w.listening();
    ctl.wait_line(&format!("registered {a}"), 60);
    // A test message the way `fastchat.serve.test_message` sends it (its module imports torch).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fastchat_test_message.py");
    let out =
        python(&venv).arg(script).args(["--model-name", "smol", "--controller-address", &controller]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&a), "test_message found our worker through our controller: {stdout}");
    // FastChat's OpenAI server in front of our controller.
    let (_fo, base) = fastchat_openai_server(&venv, &controller);
    let v = openai_cluster(&venv, &base, 2);
    assert_eq!(v["models"], serde_json::json!(["smol"]));
    assert!(!v["chat_text"].as_str().unwrap().is_empty());
    assert!(v["stream_chunks"].as_u64().unwrap() >= 2);
    // Our controller proxies a generation to the worker: NUL-delimited chunks.
    let raw = post_raw(
        &format!("{controller}/worker_generate_stream"),
        r#"{"model":"smol","prompt":"Hello","max_new_tokens":8,"temperature":0,"echo":false}"#,
    );
    let chunks: Vec<Value> =
        raw.split(|&b| b == 0).filter(|c| !c.is_empty()).map(|c| serde_json::from_slice(c).unwrap()).collect();
    assert!(chunks.len() >= 2, "{chunks:?}");
    assert!(chunks.iter().all(|c| c["error_code"] == 0));
    assert!(chunks.last().unwrap()["finish_reason"].is_string());
}

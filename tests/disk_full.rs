//! A write that fails part way, as on a full disk: every command that writes a model or a data
//! file exits 2 (the machine's failure, not the input's), names the file and the OS error, and
//! leaves neither its output nor a temp file behind. The disk is "filled" with a file size
//! limit (`ulimit -f`, with SIGXFSZ ignored so the write fails with EFBIG instead of killing the
//! process): the writes take the same error paths as ENOSPC, with no special file system and
//! no root.

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// Every file and folder under `dir`, relative.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push(e.strip_prefix(dir).unwrap().display().to_string());
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// `zoo ARGS` with files limited to `kib` KiB, in the environment of `common::zoo(home)`.
fn limited(home: &Path, kib: u64, args: &[&str]) -> Output {
    limited_env(home, kib, &[], args)
}

fn limited_env(home: &Path, kib: u64, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut zoo = common::zoo(home);
    zoo.envs(env.iter().copied());
    let mut c = Command::new("bash");
    c.env_clear();
    for (k, v) in zoo.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.args(["-c", "trap '' XFSZ; ulimit -f \"$1\"; shift; exec \"$@\"", "bash", &kib.to_string()])
        .arg(zoo.get_program())
        .args(args)
        .stdin(std::process::Stdio::null());
    c.output().unwrap()
}

fn fails_cleanly(o: &Output, out_dir: &Path, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(err.contains("File too large"), "{what}: the OS error is named: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(tree(out_dir), Vec::<String>::new(), "{what}: nothing left behind");
}

#[test]
fn writes_that_fail_part_way_leave_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let tiny = common::fixture("tiny-llama");
    let gguf = h.join("tiny.gguf");
    let o = common::run_zoo(
        h,
        &["quantize", "--in", tiny.to_str().unwrap(), "--out", gguf.to_str().unwrap(), "--type", "f32"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::metadata(&gguf).unwrap().len() > 200 << 10, "the outputs below pass the limit");
    let out = h.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let p = |name: &str| out.join(name).to_str().unwrap().to_string();

    // GGUF, safetensors folders (one shard and sharded), a delta applied.
    let o = limited(h, 100, &["quantize", "--in", tiny.to_str().unwrap(), "--out", &p("q.gguf"), "--type", "q8_0"]);
    fails_cleanly(&o, &out, "quantize");
    let o = limited(h, 100, &["dequantize", gguf.to_str().unwrap(), "--out", &p("deq"), "--dtype", "f32"]);
    fails_cleanly(&o, &out, "dequantize");
    let (base, delta) = (common::fixture("delta/base"), common::fixture("delta/delta"));
    let args = ["delta", "apply", "--algorithm", "llmzoo", "--base", base.to_str().unwrap()];
    let o = limited(h, 100, &[&args[..], &["--delta", delta.to_str().unwrap(), "--out", &p("applied")]].concat());
    fails_cleanly(&o, &out, "delta apply");

    // Training data: a conversion and LLM Zoo's rendering of a 1 MB file.
    let rec = r#"{"conversations":[{"from":"human","value":"What is a fever?"},{"from":"gpt","value":"A raised body temperature."}]}"#;
    let data = h.join("data.jsonl");
    std::fs::write(&data, (0..8_000).map(|_| format!("{rec}\n")).collect::<String>()).unwrap();
    let d = data.to_str().unwrap();
    let o = limited(h, 100, &["data", "convert", d, "--to", "openai", "-o", &p("c.jsonl")]);
    fails_cleanly(&o, &out, "data convert");
    let smol = common::fixture("smollm2");
    let o = limited(h, 100, &["data", "render", d, "--model", smol.to_str().unwrap(), "-o", &p("r.jsonl")]);
    fails_cleanly(&o, &out, "data render");

    // The same commands with room to write succeed (the limit was what failed them).
    let o = limited(h, 1 << 20, &["data", "convert", d, "--to", "openai", "-o", &p("c.jsonl")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = limited(h, 1 << 20, &["quantize", "--in", tiny.to_str().unwrap(), "--out", &p("q.gguf"), "--type", "q8_0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(tree(&out), ["c.jsonl", "q.gguf"]);

    // A download: no snapshot file appears, and what was fetched stays as `.incomplete`, which
    // the next pull (with room) resumes.
    assert!(common::run_zoo(h, &["list"]).status.success(), "the registry exists before the limit");
    let hub = zoo_testhub::TestHub::start();
    let commit = hub.add_dir("zoo-test/tiny-llama", &tiny).unwrap();
    let cache = h.join("hub");
    let (endpoint, cache_s) = (hub.endpoint(), cache.to_str().unwrap().to_string());
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HUB_CACHE", cache_s.as_str())];
    let o = limited_env(h, 100, &env, &["pull", "zoo-test/tiny-llama"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("File too large") && !err.contains("panicked"), "{err}");
    let repo = cache.join("models--zoo-test--tiny-llama");
    assert!(!repo.join("snapshots").join(&commit).join("model.safetensors").exists());
    let partial: Vec<String> = tree(&repo.join("blobs")).into_iter().filter(|f| f.ends_with(".incomplete")).collect();
    assert!(!partial.is_empty(), "the part fetched is kept to resume: {:?}", tree(&repo));
    let o = limited_env(h, 1 << 20, &env, &["pull", "zoo-test/tiny-llama"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(hub.requests().iter().any(|l| l.contains("range=bytes=")), "resumed: {:?}", hub.requests());
    let got = std::fs::read(repo.join("snapshots").join(&commit).join("model.safetensors")).unwrap();
    assert_eq!(got, std::fs::read(tiny.join("model.safetensors")).unwrap());

    // The registry: a transaction whose write fails is rolled back whole, and the database
    // stays usable (SQLite's journal; 3,000 results of 2 KB each outgrow the limit).
    let many: Vec<String> = (0..3000)
        .map(|i| {
            format!(
                r#"{{"model":"apollo-0.5b","benchmark":"xmedbench","scores":{{"avg":{i}}},"source":"{}"}}"#,
                "x".repeat(2000)
            )
        })
        .collect();
    let results = h.join("results.json");
    std::fs::write(&results, format!("[{}]", many.join(","))).unwrap();
    let db_len = std::fs::metadata(h.join("registry.db")).unwrap().len();
    let o = limited(h, db_len / 1024 + 100, &["registry", "import-results", results.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("none was recorded"), "{err}");
    let o = common::run_zoo(h, &["results", "apollo-0.5b", "--json"]);
    let v = common::ok_json(&o);
    let measured = v[0]["rows"].as_array().unwrap().iter().filter(|r| r["origin"] == "measured").count();
    assert_eq!(measured, 0, "nothing recorded, and the database still answers");
}

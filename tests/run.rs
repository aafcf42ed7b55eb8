//! `zoo run` and `zoo chat` end to end: the real binary on tiny reference models and on the real
//! SmolLM2 GGUF; scripted output (--json, --dump-logits), streaming with stop strings, the chat
//! commands, and one clear error for each kind of bad input.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use candle_core::{Device, Tensor};
use common::{fixture, smollm2_gguf, zoo};
use serde_json::Value;

fn run(home: &Path, args: &[&str]) -> Output {
    zoo(home).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "zoo failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn reference(name: &str) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("reference.safetensors"), &Device::Cpu).unwrap()
}

fn csv(t: &Tensor) -> String {
    t.to_vec1::<i64>().unwrap().iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One error line (plus at most a hint) naming `needle`, exit code `code`, nothing on stdout.
fn fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "stderr should name {needle:?}: {err}");
    assert!(err.lines().count() <= 2, "one error line and at most a hint: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn token_ids_give_the_reference_greedy_continuation_and_logits() {
    let home = tempfile::tempdir().unwrap();
    for name in ["tiny-llama", "tiny-bloom"] {
        let r = reference(name);
        let dir = fixture(name);
        let dump = home.path().join(format!("{name}-logits.safetensors"));
        let o = run(
            home.path(),
            &["run", s(&dir), "--token-ids", &csv(&r["input_ids"]), "--greedy", "--max-tokens", "16", "--json"],
        );
        let v = json(&o);
        assert_eq!(
            ids(&v["prompt_ids"]),
            ids(&serde_json::to_value(r["input_ids"].to_vec1::<i64>().unwrap()).unwrap())
        );
        assert_eq!(
            ids(&v["token_ids"]),
            r["greedy_ids"].to_vec1::<i64>().unwrap().iter().map(|&x| x as u32).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(v["finish_reason"], "length");
        assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0 && v["prompt_tokens_per_s"].as_f64().unwrap() > 0.0);

        let o = run(
            home.path(),
            &["run", s(&dir), "--token-ids", &csv(&r["input_ids"]), "--max-tokens", "1", "--dump-logits", s(&dump)],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let got = candle_core::safetensors::load(&dump, &Device::Cpu).unwrap();
        let logits = &got["logits"];
        assert_eq!(logits.dims(), r["logits"].dims(), "{name}: [prompt_len, vocab]");
        let d: f32 = logits
            .sub(&r["logits"])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-4, "{name}: dumped logits differ by {d}");
    }
}

#[test]
fn messages_are_rendered_with_the_models_template() {
    let home = tempfile::tempdir().unwrap();
    let refj: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("smollm2/reference.json")).unwrap()).unwrap();
    let gguf = smollm2_gguf();
    for case in refj["cases"].as_array().unwrap() {
        let msgs = home.path().join("messages.json");
        std::fs::write(&msgs, case["messages"].to_string()).unwrap();
        let v = json(&run(
            home.path(),
            &["run", s(&gguf), "--messages", s(&msgs), "--greedy", "--max-tokens", "12", "--json"],
        ));
        assert_eq!(ids(&v["prompt_ids"]), ids(&case["prompt_ids"]));
        let text = v["text"].as_str().unwrap();
        assert!(!text.is_empty() && !text.contains("<|im_end|>"), "{text:?}");
        let toks = ids(&v["token_ids"]);
        assert!(
            v["finish_reason"] == "length" && toks.len() == 12
                || v["finish_reason"] == "stop" && toks.last() == Some(&2),
            "{v}"
        );
    }
}

#[test]
fn stop_strings_cut_the_reply_and_are_never_printed() {
    let home = tempfile::tempdir().unwrap();
    let gguf = smollm2_gguf();
    let prompt = "Write one sentence about the sea.";
    let full = json(&run(home.path(), &["run", s(&gguf), prompt, "--greedy", "--max-tokens", "24", "--json"]));
    let text = full["text"].as_str().unwrap().to_string();
    // A stop string from the middle of the greedy reply: everything before it, nothing after.
    let words: Vec<&str> = text.split(' ').collect();
    assert!(words.len() > 4, "{text:?}");
    let stop = format!(" {} {}", words[2], words[3]);
    let cut = json(&run(
        home.path(),
        &["run", s(&gguf), prompt, "--greedy", "--max-tokens", "24", "--json", "--stop", &stop],
    ));
    let want = &text[..text.find(&stop).unwrap()];
    assert_eq!(cut["text"], want);
    assert_eq!(cut["finish_reason"], "stop");
    // The streamed text (without --json) is the same.
    let o = run(home.path(), &["run", s(&gguf), prompt, "--greedy", "--max-tokens", "24", "--stop", &stop]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{want}\n"));
}

/// `zoo chat GGUF --greedy --max-tokens N` with every stream piped.
fn spawn_chat(home: &Path, gguf: &Path, max_tokens: &str) -> std::process::Child {
    zoo(home)
        .args(["chat", s(gguf), "--greedy", "--max-tokens", max_tokens])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn chat_into_a_closed_pipe_stops_quietly() {
    // `zoo chat | head -c 0`: the reader is gone before the first reply. The reply stops at its
    // first write, no second message is answered, and zoo exits 0 without a panic.
    let home = tempfile::tempdir().unwrap();
    let gguf = smollm2_gguf();
    let mut child = spawn_chat(home.path(), &gguf, "64");
    drop(child.stdout.take());
    child.stdin.take().unwrap().write_all(b"Hi!\nTell me a fun fact.\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("tok/s")).count(), 0, "no reply finished: {err}");
}

#[test]
fn chat_keeps_history_and_saves_and_loads_it() {
    let home = tempfile::tempdir().unwrap();
    let gguf = smollm2_gguf();
    let saved = home.path().join("conv.json");
    let mut child = spawn_chat(home.path(), &gguf, "16");
    let script = format!("Hi!\n/regen\nTell me a fun fact \\\nabout the ocean.\n/save {}\n/exit\n", saved.display());
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let conv: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let msgs = conv["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    // /regen replaced the first reply instead of adding a turn; the continued line is one message.
    assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{conv}");
    assert_eq!(msgs[2]["content"], "Tell me a fun fact \nabout the ocean.");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(msgs[3]["content"].as_str().unwrap()), "{stdout}");
    assert_eq!(
        stderr(&o).lines().filter(|l| l.starts_with('[') && l.contains("tok/s")).count(),
        3,
        "a speed line per reply: {}",
        stderr(&o)
    );

    // --load continues the saved conversation: the next prompt holds all four messages.
    let o = zoo(home.path())
        .args(["chat", s(&gguf), "--greedy", "--max-tokens", "4", "--load", s(&saved)])
        .stdin(Stdio::piped())
        .output();
    let o = o.unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A copy of tiny-llama, optionally with config edits and extra files.
fn tiny_copy(home: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let dir = home.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("tiny-llama/model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny-llama/config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

#[test]
fn bad_input_gets_one_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let dir = tiny_copy(h, |c| c["architectures"] = serde_json::json!(["MambaForCausalLM"]));
    fails(&run(h, &["run", s(&dir), "--token-ids", "1,2"]), 1, "MambaForCausalLM");
    assert!(
        stderr(&run(h, &["run", s(&dir), "--token-ids", "1,2"])).contains("BloomForCausalLM"),
        "lists the supported ones"
    );

    let dir = tiny_copy(h, |c| c["intermediate_size"] = serde_json::json!(200));
    fails(&run(h, &["run", s(&dir), "--token-ids", "1,2"]), 1, "shape");

    let dir = tiny_copy(h, |_| {});
    fails(&run(h, &["run", s(&dir), "hello"]), 2, "--token-ids");
    let long: Vec<String> = (0..200).map(|i| (i % 500).to_string()).collect();
    fails(&run(h, &["run", s(&dir), "--token-ids", &long.join(",")]), 1, "context");
    fails(&run(h, &["run", s(&dir), "--token-ids", "1,9999"]), 1, "9999");

    // A tokenizer with ids far beyond the model's 512 rows belongs to another model.
    std::fs::copy(fixture("smollm2/tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    fails(&run(h, &["run", s(&dir), "hello"]), 1, "tokenizer");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();

    let bytes = std::fs::read(fixture("tiny-llama/model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    fails(&run(h, &["run", s(&dir), "--token-ids", "1,2"]), 1, "model.safetensors");

    assert!(run(h, &["registry", "sync"]).status.success(), "the first registry use prints a sync note");
    fails(&run(h, &["run", "no-such-model", "hi"]), 1, "no model");
    fails(&run(h, &["run", "chimera-inst-chat-7b", "hi"]), 1, "delta");
    fails(&run(h, &["run", "phoenix-inst-chat-7b", "hi"]), 1, "not in the Hugging Face cache");
}

/// Puts `files` into a Hugging Face cache at `hub` as repo `repo`, revision `main`.
fn cache_repo(hub: &Path, repo: &str, files: &[(&str, PathBuf)]) {
    let dir = hub.join(format!("models--{}", repo.replace('/', "--")));
    let snap = dir.join("snapshots").join("0123456789abcdef0123456789abcdef01234567");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs/main"), "0123456789abcdef0123456789abcdef01234567").unwrap();
    for (name, src) in files {
        std::os::unix::fs::symlink(src, snap.join(name)).unwrap();
    }
}

#[test]
fn models_are_found_by_registry_name_and_by_cached_repo_id() {
    let home = tempfile::tempdir().unwrap();
    let hub = home.path().join("hf/hub");
    // A GGUF repo in the cache, run by its repo id.
    cache_repo(&hub, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", &[("smollm2.Q4_1.gguf", smollm2_gguf())]);
    // The registry's phoenix-inst-chat-7b repo, holding (for the test) the tiny BLOOM.
    let tiny = fixture("tiny-bloom");
    cache_repo(
        &hub,
        "FreedomIntelligence/phoenix-inst-chat-7b",
        &[("config.json", tiny.join("config.json")), ("model.safetensors", tiny.join("model.safetensors"))],
    );
    let run_in = |args: &[&str]| zoo(home.path()).env("HF_HOME", home.path().join("hf")).args(args).output().unwrap();
    let v = json(&run_in(&[
        "run",
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        "Hi",
        "--greedy",
        "--max-tokens",
        "3",
        "--json",
    ]));
    assert_eq!(v["token_ids"].as_array().unwrap().len(), 3);
    let r = reference("tiny-bloom");
    let v = json(&run_in(&[
        "run",
        "phoenix-inst-chat-7b",
        "--token-ids",
        &csv(&r["input_ids"]),
        "--greedy",
        "--max-tokens",
        "16",
        "--json",
    ]));
    assert_eq!(v["model"], "phoenix-inst-chat-7b");
    assert_eq!(
        ids(&v["token_ids"]),
        r["greedy_ids"].to_vec1::<i64>().unwrap().iter().map(|&x| x as u32).collect::<Vec<_>>()
    );
}

/// Ctrl-C stops the reply, keeps what was printed, and exits cleanly with the speed line.
#[test]
fn interrupt_ends_the_reply_cleanly() {
    use std::io::Read;
    let home = tempfile::tempdir().unwrap();
    let gguf = smollm2_gguf();
    let mut child = zoo(home.path())
        .args(["run", s(&gguf), "Tell me a long story about a dragon.", "--max-tokens", "100000", "--ignore-eos"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for streamed text: generation (and the Ctrl-C handler) is running.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));
    assert!(stderr(&o).contains("tok/s"), "{}", stderr(&o));
    assert!(rest.ends_with(b"\n"), "the reply ends with a newline");
}

/// The default model's catalog recommendation (its model card's sampling) applies where neither
/// the flags nor a generation config (its GGUF has none) name a setting, field by field; the
/// chat banner says what is used.
#[test]
fn chat_takes_the_catalogs_sampling_for_the_default_model() {
    smollm2_gguf();
    // Where the model was pulled and registered (tests/common).
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smollm2-home");
    let banner = |extra: &[&str]| -> String {
        let mut child = zoo(&home)
            .env("HF_HUB_OFFLINE", "1")
            .args(["chat", "--max-tokens", "2"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"Hi\n").unwrap();
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        err.lines().next().unwrap_or_default().to_string()
    };
    let b = banner(&[]);
    assert!(
        b.starts_with("zoo: smollm2-135m-instruct") && b.contains("; temperature 0.2, top-p 0.9, top-k 50)"),
        "{b}"
    );
    let b = banner(&["--temperature", "0.5", "--top-p", "1"]);
    assert!(b.contains("; temperature 0.5, top-k 50)"), "{b}");
    let b = banner(&["--greedy"]);
    assert!(b.contains("; greedy)"), "{b}");
}

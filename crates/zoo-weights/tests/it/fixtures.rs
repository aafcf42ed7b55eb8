//! The reference delta fixture (`tests/fixtures/reference/delta/`): f16 sharded safetensors base,
//! f16 sharded PyTorch `.bin` delta with one extra vocabulary row, torch-made expected target.

use std::path::Path;

use sha2::Digest;
use zoo_progress::{CancelToken, Event, Recorder, Silent};
use zoo_weights::delta::{self, Algorithm, DeltaOptions};
use zoo_weights::{Checkpoint, Dtype, Format};

use crate::util::{assert_same_tensors, entries, shared_fixtures};

#[test]
fn reads_both_sides_of_the_fixture() {
    let root = shared_fixtures().join("delta");
    let base = Checkpoint::open(&root.join("base")).unwrap();
    let delta = Checkpoint::open(&root.join("delta")).unwrap();
    assert_eq!(base.format(), Format::SafetensorsSharded);
    assert_eq!(delta.format(), Format::TorchSharded);
    assert_eq!(base.tensors().len(), 21);
    assert_eq!(delta.tensors().len(), 21);
    assert_eq!(base.files().len(), 2);
    let embed = delta.get("model.embed_tokens.weight").unwrap();
    assert_eq!((embed.dtype, embed.shape.as_slice()), (Dtype::F16, &[513u64, 64][..]));
    assert_eq!(base.get("model.embed_tokens.weight").unwrap().shape, [512, 64]);
    // Index JSON totals agree with what the headers say.
    assert_eq!(base.total_bytes(), 332_416);
    assert_eq!(delta.total_bytes(), 332_672);
    // Opening a shard file directly works too.
    let one = Checkpoint::open(&root.join("delta/pytorch_model-00002-of-00002.bin")).unwrap();
    assert_eq!(one.format(), Format::Torch);
    assert!(one.get("lm_head.weight").is_some());
}

fn apply_to(root: &Path, algorithm: Algorithm, out: &Path) -> delta::DeltaReport {
    delta::apply(
        &root.join("base"),
        &root.join("delta"),
        algorithm,
        out,
        &DeltaOptions::default(),
        &Silent,
        &CancelToken::new(),
    )
    .unwrap()
}

#[test]
fn fastchat_apply_is_bit_identical_to_expected() {
    let root = shared_fixtures().join("delta");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("target");
    let report = apply_to(&root, Algorithm::Fastchat, &out);
    assert_same_tensors(&out, &root.join("expected/model.safetensors"));
    assert_eq!(report.copied_files, ["config.json"]);
    assert_eq!(std::fs::read(out.join("config.json")).unwrap(), std::fs::read(root.join("delta/config.json")).unwrap());
    assert_eq!(entries(dir.path()), ["target"]);
    // The manifest lists every file with its real size and SHA-256.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("zoo-manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        let bytes = std::fs::read(out.join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(f["size"].as_u64().unwrap(), bytes.len() as u64);
        let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(f["sha256"].as_str().unwrap(), hex);
    }
    // The output is a plain single-file safetensors with `format: pt`.
    let ck = Checkpoint::open(&out).unwrap();
    assert_eq!(ck.format(), Format::Safetensors);
    assert_eq!(ck.metadata(), [("format".to_string(), "pt".to_string())]);
}

#[test]
fn llmzoo_apply_equals_fastchat_and_expected() {
    let root = shared_fixtures().join("delta");
    let dir = tempfile::tempdir().unwrap();
    apply_to(&root, Algorithm::Llmzoo, &dir.path().join("llmzoo"));
    apply_to(&root, Algorithm::Fastchat, &dir.path().join("fastchat"));
    assert_same_tensors(&dir.path().join("llmzoo"), &root.join("expected/model.safetensors"));
    assert_same_tensors(&dir.path().join("llmzoo"), &dir.path().join("fastchat"));
}

#[test]
fn auto_picks_fastchat_and_says_why() {
    let root = shared_fixtures().join("delta");
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let out = dir.path().join("t");
    let report = delta::apply(
        &root.join("base"),
        &root.join("delta"),
        Algorithm::Auto,
        &out,
        &DeltaOptions::default(),
        &rec,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(report.algorithm, Algorithm::Fastchat);
    let events = rec.events();
    assert!(events.iter().any(|e| matches!(e, Event::Note { message } if message.contains("fastchat"))));
    let advanced: u64 = events.iter().map(|e| if let Event::Advance { delta, .. } = e { *delta } else { 0 }).sum();
    assert_eq!(advanced, 332_672);
    assert!(matches!(events.last(), Some(Event::Finish { .. })));
    assert_same_tensors(&out, &root.join("expected/model.safetensors"));
}

#[test]
fn make_then_apply_round_trips() {
    let root = shared_fixtures().join("delta");
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("made");
    let opts = DeltaOptions { chunk_size: 4096, ..DeltaOptions::default() };
    delta::make(&root.join("base"), &root.join("expected"), &made, &opts, &Silent, &CancelToken::new()).unwrap();
    let again = dir.path().join("again");
    delta::apply(&root.join("base"), &made, Algorithm::Fastchat, &again, &opts, &Silent, &CancelToken::new()).unwrap();
    assert_same_tensors(&again, &root.join("expected/model.safetensors"));
}

#[test]
fn small_chunks_and_small_shards_give_the_same_tensors() {
    let root = shared_fixtures().join("delta");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    let mut opts = DeltaOptions { chunk_size: 4096, threads: 3, ..DeltaOptions::default() };
    opts.write.max_shard_size = 50_000;
    let report = delta::apply(
        &root.join("base"),
        &root.join("delta"),
        Algorithm::Fastchat,
        &out,
        &opts,
        &Silent,
        &CancelToken::new(),
    )
    .unwrap();
    assert!(report.write.shards > 2, "{}", report.write.shards);
    assert_eq!(Checkpoint::open(&out).unwrap().format(), Format::SafetensorsSharded);
    assert_same_tensors(&out, &root.join("expected/model.safetensors"));
}

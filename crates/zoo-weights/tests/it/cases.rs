//! The torch-made delta cases of `tests/fixtures/delta-cases/` (bf16, `.bin` base with a
//! safetensors delta, HuatuoGPT with a bigger vocabulary, f32 single `.bin`), each compared
//! bit for bit with the case's `expected/` (and `made-delta/` for `make`).

use std::path::Path;

use zoo_progress::{CancelToken, Event, Recorder, Silent};
use zoo_weights::delta::{self, Algorithm, DeltaOptions};
use zoo_weights::{Checkpoint, Format};

use crate::util::{assert_same_tensors, assert_same_tensors_but_zero_signs, delta_cases};

fn apply_case(case: &str, algorithm: Algorithm, out: &Path) -> (delta::DeltaReport, Vec<Event>) {
    let root = delta_cases().join(case);
    let rec = Recorder::default();
    // Small chunks so that every tensor spans several of them.
    let opts = DeltaOptions { chunk_size: 4096, ..DeltaOptions::default() };
    let report =
        delta::apply(&root.join("base"), &root.join("delta"), algorithm, out, &opts, &rec, &CancelToken::new())
            .unwrap_or_else(|e| panic!("{case} {algorithm:?}: {e}"));
    (report, rec.events())
}

fn check_case(case: &str, algorithm: Algorithm) -> (delta::DeltaReport, Vec<Event>) {
    let root = delta_cases().join(case);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (report, events) = apply_case(case, algorithm, &out);
    assert_same_tensors(&out, &root.join("expected/model.safetensors"));
    for side in ["config.json", "generation_config.json"] {
        assert_eq!(
            std::fs::read(out.join(side)).unwrap(),
            std::fs::read(root.join("delta").join(side)).unwrap(),
            "{case}: {side}"
        );
    }
    (report, events)
}

#[test]
fn bf16_fastchat_and_llmzoo() {
    let (report, _) = check_case("bf16-fastchat", Algorithm::Fastchat);
    assert!(report.dropped.is_empty());
    check_case("bf16-fastchat", Algorithm::Llmzoo);
    assert_eq!(check_case("bf16-fastchat", Algorithm::Auto).0.algorithm, Algorithm::Fastchat);
}

#[test]
fn bin_base_with_safetensors_delta() {
    let root = delta_cases().join("bin-base-st-delta");
    assert_eq!(Checkpoint::open(&root.join("base")).unwrap().format(), Format::TorchSharded);
    check_case("bin-base-st-delta", Algorithm::Fastchat);
    check_case("bin-base-st-delta", Algorithm::Llmzoo);
    assert_eq!(check_case("bin-base-st-delta", Algorithm::Auto).0.algorithm, Algorithm::Fastchat);
}

#[test]
fn make_matches_torch_made_delta() {
    let root = delta_cases().join("bin-base-st-delta");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("made");
    let opts = DeltaOptions { chunk_size: 4096, ..DeltaOptions::default() };
    delta::make(&root.join("base"), &root.join("expected"), &out, &opts, &Silent, &CancelToken::new()).unwrap();
    assert_same_tensors(&out, &root.join("made-delta/model.safetensors"));
    assert_eq!(
        std::fs::read(out.join("config.json")).unwrap(),
        std::fs::read(root.join("made-delta/config.json")).unwrap()
    );
    // Applying what we made gives the target back, bit for bit but for one element: the
    // hand-set `-0.0 + -0.0 = -0.0` of `model.norm.weight`, whose difference is `+0.0`.
    let again = dir.path().join("again");
    delta::apply(&root.join("base"), &out, Algorithm::Fastchat, &again, &opts, &Silent, &CancelToken::new()).unwrap();
    let zeros = assert_same_tensors_but_zero_signs(&again, &root.join("expected/model.safetensors"));
    assert_eq!(zeros, 1);
}

#[test]
fn huatuo_bigger_vocab_drops_delta_only_inv_freq() {
    let (report, events) = check_case("huatuo-bigger-vocab", Algorithm::Huatuo);
    let mut dropped = report.dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        ["model.layers.0.self_attn.rotary_emb.inv_freq", "model.layers.1.self_attn.rotary_emb.inv_freq"]
    );
    let notes = events.iter().filter(|e| matches!(e, Event::Note { message } if message.contains("inv_freq"))).count();
    assert_eq!(notes, 2);
    assert_eq!(check_case("huatuo-bigger-vocab", Algorithm::Auto).0.algorithm, Algorithm::Huatuo);
}

#[test]
fn huatuo_delta_under_fastchat_is_refused_or_differs() {
    // FastChat's rule on a HuatuoGPT delta runs (the vocabulary only grows) but must not
    // reproduce HuatuoGPT's target: the embeddings are whole weights, not differences.
    let root = delta_cases().join("huatuo-bigger-vocab");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    apply_case("huatuo-bigger-vocab", Algorithm::Fastchat, &out);
    let got = Checkpoint::open(&out).unwrap();
    let want = Checkpoint::open(&root.join("expected/model.safetensors")).unwrap();
    let name = "model.embed_tokens.weight";
    let (g, w) = (got.get(name).unwrap(), want.get(name).unwrap());
    assert_ne!(got.read_to_vec(g, 1 << 24).unwrap(), want.read_to_vec(w, 1 << 24).unwrap());
}

#[test]
fn f32_single_bin_drops_base_only_inv_freq() {
    let root = delta_cases().join("f32-single-bin");
    assert_eq!(Checkpoint::open(&root.join("delta")).unwrap().format(), Format::Torch);
    let (report, _) = check_case("f32-single-bin", Algorithm::Fastchat);
    assert_eq!(report.dropped.len(), 2);
    assert_eq!(check_case("f32-single-bin", Algorithm::Auto).0.algorithm, Algorithm::Fastchat);
}

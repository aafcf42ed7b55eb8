//! Conformance with transformers: full-sequence logits, greedy continuations and incremental
//! (KV-cache) step logits of tiny random models, against reference outputs made by
//! transformers (`../shared/fixtures/tiny-*`, `tests/fixtures/infer/*`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

const TOL: f32 = 1e-4;

fn shared(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures").join(name);
    assert!(p.exists(), "{} is missing: the tests need ../shared/fixtures", p.display());
    p
}

fn local(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/infer").join(name);
    assert!(p.exists(), "{} is missing: run tests/fixtures/infer/make_infer_cases.py", p.display());
    p
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    a.sub(b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn ids_of(t: &Tensor) -> Vec<u32> {
    t.to_vec1::<i64>().unwrap().into_iter().map(|x| x as u32).collect()
}

/// Loads `dir` and checks it against `dir/reference.safetensors`.
fn check(dir: &Path) {
    let reference = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let input = ids_of(&reference["input_ids"]);
    let mut m = zoo_infer::load(dir).unwrap();
    let s = &mut m.session;

    let logits = s.logits(&input).unwrap();
    let d = max_diff(&logits, &reference["logits"]);
    assert!(d < TOL, "{}: full-sequence logits differ by {d}", dir.display());

    let want_ids = ids_of(&reference["greedy_ids"]);
    let step_logits = &reference["greedy_step_logits"];
    let mut last = s.step(&input).unwrap();
    for (i, &want) in want_ids.iter().enumerate() {
        let want_logits = step_logits.get(i).unwrap();
        let d = max_diff(&last, &want_logits);
        assert!(d < TOL, "{}: step {i} logits differ by {d}", dir.display());
        let got = last.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        assert_eq!(got, want, "{}: greedy token {i}", dir.display());
        last = s.step(&[got]).unwrap();
    }

    // The decode loop itself gives the same ids.
    s.reset();
    let g = s.generate(&input, want_ids.len(), &zoo_infer::SamplingParams::greedy(), &[], |_| Ok(zoo_infer::Step::Continue)).unwrap();
    assert_eq!(g.token_ids, want_ids, "{}: generate()", dir.display());
}

#[test]
fn tiny_llama() {
    check(&shared("tiny-llama"));
}

#[test]
fn tiny_bloom() {
    check(&shared("tiny-bloom"));
}

#[test]
fn tiny_llama_transformers4_config() {
    check(&local("tiny-llama-tf4"));
}

#[test]
fn tiny_qwen2() {
    check(&local("tiny-qwen2"));
}

#[test]
fn tiny_gemma() {
    check(&local("tiny-gemma"));
}

#[test]
fn tiny_bloom_six_heads() {
    check(&local("tiny-bloom-6h"));
}

#[test]
fn tiny_baichuan_equals_the_llama_it_was_packed_from() {
    check(&local("tiny-baichuan"));
}

#[test]
fn tiny_baichuan2_normalizes_its_head() {
    check(&local("tiny-baichuan2"));
}

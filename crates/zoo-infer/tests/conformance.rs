//! Conformance with transformers: full-sequence logits, greedy continuations and incremental
//! (KV-cache) step logits of tiny random models, against reference outputs made by
//! transformers (`tests/fixtures/reference/tiny-*`, `tests/fixtures/infer/*`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

const TOL: f32 = 1e-4;

fn shared(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference").join(name);
    assert!(p.exists(), "{} is missing: it is part of the repository (tests/fixtures/reference)", p.display());
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

/// `zoo dequantize GGUF --out DEST --dtype f32`.
fn dequantize_f32(gguf: &Path, dest: &Path) {
    zoo_weights::gguf_convert::dequantize(
        gguf,
        dest,
        zoo_weights::Dtype::F32,
        &zoo_weights::WriteOptions::default(),
        &zoo_progress::Silent,
        &zoo_progress::CancelToken::new(),
    )
    .unwrap();
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

    // Greedy logits: the rows that can be the maximum, as the reference has them; a split f32
    // head rules out the rest (-inf) without computing them.
    s.reset();
    let mut last = s.step_as(&input, zoo_infer::Logits::Greedy).unwrap();
    let mut computed = 0;
    for (i, &want) in want_ids.iter().enumerate() {
        let got_row = last.to_vec1::<f32>().unwrap();
        let want_row = step_logits.get(i).unwrap().to_vec1::<f32>().unwrap();
        for (g, w) in got_row.iter().zip(&want_row) {
            assert!(*g == f32::NEG_INFINITY || (g - w).abs() < TOL, "{}: greedy step {i}: {g} vs {w}", dir.display());
        }
        computed += got_row.iter().filter(|g| g.is_finite()).count();
        let got = last.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        assert_eq!(got, want, "{}: greedy-logits token {i}", dir.display());
        last = s.step_as(&[got], zoo_infer::Logits::Greedy).unwrap();
    }
    let vocab = s.model().config().vocab_size;
    eprintln!("{}: {computed} of {} greedy logits computed", dir.display(), vocab * want_ids.len());
    if let zoo_infer::weights::MatrixWeight::Split(_) | zoo_infer::weights::MatrixWeight::Coded(_) = s.model().head() {
        assert!(computed < vocab * want_ids.len() / 4, "{}: a split or coded head pruned nothing", dir.display());
    }

    // The decode loop itself gives the same ids.
    s.reset();
    let g = s
        .generate(&input, want_ids.len(), &zoo_infer::SamplingParams::greedy(), &[], |_| Ok(zoo_infer::Step::Continue))
        .unwrap();
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

/// The model converted to GGUF by `zoo quantize` (llama.cpp names, LLaMA's q/k rows permuted for
/// interleaved rope, BLOOM's QKV regrouped): f32 must still match the reference exactly as the
/// safetensors do. Q8_0 runs on the quantized kernels (activations quantized to 8 bits, as
/// llama.cpp does): it must match the same Q8_0 weights dequantized and run densely to within
/// what the activation rounding costs, so the kernels and GGUF layouts are under test, not the
/// weight quantization.
fn check_gguf(dir: &Path) {
    use zoo_weights::gguf_convert::{OutType, QuantizeOptions, quantize};
    let reference = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let input = ids_of(&reference["input_ids"]);
    let tmp = tempfile::tempdir().unwrap();
    let convert = |ty: OutType| {
        let out = tmp.path().join(format!("{ty:?}.gguf"));
        let opts = QuantizeOptions { out_type: ty, raw: false, threads: 1, overwrite: false, measure: false };
        quantize(dir, &out, &opts, &zoo_progress::Silent, &zoo_progress::CancelToken::new()).unwrap();
        out
    };

    let f32_gguf = convert(OutType::F32);
    let mut m = zoo_infer::load(&f32_gguf).unwrap();
    assert_eq!(m.format, "gguf");
    let d = max_diff(&m.session.logits(&input).unwrap(), &reference["logits"]);
    assert!(d < TOL, "{} as f32 GGUF: logits differ by {d}", dir.display());
    let g = m
        .session
        .generate(&input, 16, &zoo_infer::SamplingParams::greedy(), &[], |_| Ok(zoo_infer::Step::Continue))
        .unwrap();
    assert_eq!(g.token_ids, ids_of(&reference["greedy_ids"]), "{} as GGUF: greedy ids", dir.display());

    // f16 and bf16 matrices stay 16-bit in memory and are widened inside the product: the same
    // values as the dequantized folder run densely, so only the summation order differs.
    for ty in [OutType::F16, OutType::BF16] {
        let gguf = convert(ty);
        let dense_dir = tmp.path().join(format!("{ty:?}-dense"));
        dequantize_f32(&gguf, &dense_dir);
        let (mut dm, mut hm) = (zoo_infer::load(&dense_dir).unwrap(), zoo_infer::load(&gguf).unwrap());
        let dense = dm.session.logits(&input).unwrap();
        let half = hm.session.logits(&input).unwrap();
        let d = max_diff(&half, &dense);
        // AVX512-BF16 hosts round a prompt's activations to bf16 in bf16 products (as llama.cpp
        // and PyTorch's bf16 matmul do; docs/ARCHITECTURE.md, zoo-kernels): each activation
        // off by up to 2⁻⁹ of itself, which through the layers (and the cache the prompt leaves
        // for the decode steps) moves these tiny random models' logits by up to 6% of their
        // largest (Zen 5: 0.015–0.119 of 0.64–10.5; tiny-bloom 0.038 of 0.64). A wrong product
        // is off by the logits' whole size; the kernels' unit tests check the rounding exactly.
        let rounded = ty == OutType::BF16 && zoo_kernels::bf16_dot_products();
        let scale = dense.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let tol = if rounded { 0.1 * scale } else { TOL };
        if rounded {
            eprintln!("{} BF16 with bf16 activations: {d} of {scale}", dir.display());
        }
        assert!(d < tol, "{} {ty:?} kernels vs the same weights dense: {d} (of {scale})", dir.display());
        // Decode steps (the row path: 16-bit and f32 matrix-vector kernels) agree as well.
        let mut dl = dm.session.step(&input).unwrap();
        hm.session.step(&input).unwrap();
        for i in 0..4 {
            let next = dl.argmax(0).unwrap().to_scalar::<u32>().unwrap();
            dl = dm.session.step(&[next]).unwrap();
            let hl = hm.session.step(&[next]).unwrap();
            let d = max_diff(&hl, &dl);
            assert!(d < tol, "{} {ty:?} decode step {i}: {d}", dir.display());
        }
        // Greedy decoding gives the full logits' choices. A bf16 head is coded and computes only
        // the rows that can be the maximum, with the kernel of the full product: those rows
        // are bit for bit the full logits. (An f16 head's prompt step goes through the matrix
        // product, whose sums are in another order than the row kernel's.)
        hm.session.reset();
        let mut full = vec![hm.session.step(&input).unwrap()];
        for _ in 0..6 {
            let next = full.last().unwrap().argmax(0).unwrap().to_scalar::<u32>().unwrap();
            full.push(hm.session.step(&[next]).unwrap());
        }
        hm.session.reset();
        let mut pruned = hm.session.step_as(&input, zoo_infer::Logits::Greedy).unwrap();
        let (mut computed, vocab) = (0, hm.session.model().config().vocab_size);
        for (i, want) in full.iter().enumerate() {
            let next = want.argmax(0).unwrap().to_scalar::<u32>().unwrap();
            assert_eq!(
                pruned.argmax(0).unwrap().to_scalar::<u32>().unwrap(),
                next,
                "{} {ty:?} greedy step {i}",
                dir.display()
            );
            let (p, w) = (pruned.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap());
            let same =
                |p: &f32, w: &f32| if ty == OutType::BF16 { p.to_bits() == w.to_bits() } else { (p - w).abs() < TOL };
            assert!(
                p.iter().zip(&w).all(|(p, w)| *p == f32::NEG_INFINITY || same(p, w)),
                "{} {ty:?} step {i}",
                dir.display()
            );
            computed += p.iter().filter(|v| v.is_finite()).count();
            pruned = hm.session.step_as(&[next], zoo_infer::Logits::Greedy).unwrap();
        }
        if ty == OutType::BF16 {
            let coded = matches!(hm.session.model().head(), zoo_infer::weights::MatrixWeight::Coded(_));
            assert!(coded, "{}: the bf16 head is not coded", dir.display());
            eprintln!("{} bf16: {computed} of {} greedy logits computed", dir.display(), vocab * full.len());
            assert!(computed < vocab * full.len() / 4, "{}: the coded head pruned nothing", dir.display());
        }
    }

    let q8 = convert(OutType::Pure(zoo_weights::quant::QuantType::Q8_0));
    let dense_dir = tmp.path().join("q8-dequantized");
    dequantize_f32(&q8, &dense_dir);
    let dense = zoo_infer::load(&dense_dir).unwrap().session.logits(&input).unwrap();
    let quant = zoo_infer::load(&q8).unwrap().session.logits(&input).unwrap();
    let scale = dense.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let d = max_diff(&quant, &dense);
    // 8-bit activations cost about what 8-bit weights cost (measured: 4-7% of the largest logit
    // on these random models, whose weights are far rougher than trained ones); a layout
    // mistake (q/k order, QKV grouping, a transposed matrix) costs 50-100%.
    assert!(d < 0.15 * scale, "{} Q8_0 kernels vs the same weights dense: {d} (logits up to {scale})", dir.display());
}

#[test]
fn tiny_llama_from_gguf() {
    check_gguf(&shared("tiny-llama"));
}

#[test]
fn tiny_bloom_from_gguf() {
    check_gguf(&shared("tiny-bloom"));
}

#[test]
fn tiny_qwen2_from_gguf() {
    check_gguf(&local("tiny-qwen2"));
}

/// A Q5_K GGUF runs on the quantized kernels. Only tiny BLOOM has rows that fit a 256-value
/// block (`ffn_down`: 4 × 64 = 256 inputs); its other matrices fall back to Q5_1, as
/// llama-quantize does. Logits must match the same weights dequantized and run densely, to
/// within what 8-bit activations cost (as for Q8_0 in `check_gguf`); the kernel itself is held
/// to 1e-4 on synthetic matrices in zoo-kernels' tests.
#[test]
fn tiny_bloom_q5_k_gguf_runs_on_the_kernels() {
    use zoo_weights::gguf_convert::{OutType, QuantizeOptions, quantize};
    use zoo_weights::{Checkpoint, Dtype, GgmlType};
    let dir = shared("tiny-bloom");
    let reference = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let input = ids_of(&reference["input_ids"]);
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("q5_k.gguf");
    let opts = QuantizeOptions {
        out_type: OutType::Pure(zoo_weights::quant::QuantType::Q5K),
        raw: false,
        threads: 1,
        overwrite: false,
        measure: false,
    };
    quantize(&dir, &gguf, &opts, &zoo_progress::Silent, &zoo_progress::CancelToken::new()).unwrap();
    let ck = Checkpoint::open(&gguf).unwrap();
    for l in 0..2 {
        let t = ck.get(&format!("blk.{l}.ffn_down.weight")).unwrap();
        assert_eq!(t.dtype, Dtype::Ggml(GgmlType::Q5_K), "blk.{l}.ffn_down.weight");
    }

    let dense_dir = tmp.path().join("q5_k-dequantized");
    dequantize_f32(&gguf, &dense_dir);
    let dense = zoo_infer::load(&dense_dir).unwrap().session.logits(&input).unwrap();
    let m = zoo_infer::load(&gguf).unwrap();
    let quant = m.session.logits(&input).unwrap();
    let scale = dense.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let d = max_diff(&quant, &dense);
    assert!(d < 0.15 * scale, "Q5_K kernels vs the same weights dense: {d} (logits up to {scale})");
    // And it is still the model: 5-bit weights stay near the f32 reference.
    let d = max_diff(&quant, &reference["logits"]);
    assert!(d < 0.5 * scale, "Q5_K GGUF vs the f32 reference: {d} (logits up to {scale})");
}

/// A GPTQ int4 folder (our `--type gptq-int4` packer, checked elsewhere against an independent
/// torch packer) runs directly: its linears come out of `g_idx` exactly and are requantized to
/// Q8_0; logits must match the same GPTQ weights dequantized to f32 and run densely, to within
/// what 8-bit rounding costs.
#[test]
fn gptq_int4_folder_runs() {
    use zoo_weights::gptq::{GptqModel, dequantize_to_folder, quantize_folder};
    let src = shared("tiny-llama");
    let reference = candle_core::safetensors::load(src.join("reference.safetensors"), &Device::Cpu).unwrap();
    let input = ids_of(&reference["input_ids"]);
    let tmp = tempfile::tempdir().unwrap();
    let gptq = tmp.path().join("gptq");
    quantize_folder(&src, &gptq, Some(32), &zoo_weights::WriteOptions::default()).unwrap();
    let dense = tmp.path().join("dense");
    dequantize_to_folder(&GptqModel::open(&gptq).unwrap(), &dense, zoo_weights::Dtype::F32, &Default::default())
        .unwrap();
    for dir in [&gptq, &dense] {
        if !dir.join("config.json").exists() {
            std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
        }
    }
    let m = zoo_infer::load(&gptq).unwrap();
    assert_eq!(m.format, "gptq-int4");
    let got = m.session.logits(&input).unwrap();
    let want = zoo_infer::load(&dense).unwrap().session.logits(&input).unwrap();
    let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let d = max_diff(&got, &want);
    assert!(d < 0.15 * scale, "GPTQ run vs its dense dequantization: {d} (logits up to {scale})");
    // And int4 is still the same model: the int4 logits stay near the original f32 ones.
    let d = max_diff(&want, &reference["logits"]);
    assert!(d < 0.5 * scale, "int4 vs f32 reference: {d}");
}

/// Perplexity from the runner equals the one computed from transformers' logits.
#[test]
fn perplexity_matches_the_reference_logits() {
    for dir in [shared("tiny-llama"), shared("tiny-bloom")] {
        let reference = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
        let input = ids_of(&reference["input_ids"]);
        let logp = candle_nn::ops::log_softmax(&reference["logits"], candle_core::D::Minus1).unwrap();
        let rows = logp.to_vec2::<f32>().unwrap();
        let nll: f64 = rows.iter().zip(&input[1..]).map(|(r, &next)| -f64::from(r[next as usize])).sum();
        let want = (nll / (input.len() - 1) as f64).exp();
        let m = zoo_infer::load(&dir).unwrap();
        let (got, n) = m.session.perplexity(&input, 512).unwrap();
        assert_eq!(n, input.len() - 1);
        assert!((got / want - 1.0).abs() < 1e-4, "{}: perplexity {got} vs {want}", dir.display());
        // Windows restart the context: two halves score two tokens fewer.
        let (_, n2) = m.session.perplexity(&input, input.len() / 2).unwrap();
        assert_eq!(n2, input.len() - 2);
    }
}

#[test]
fn tiny_gemma_from_gguf() {
    check_gguf(&local("tiny-gemma"));
}

/// Baichuan's W_pack goes into GGUF as q, k, v (q/k permuted, as llama.cpp's converter does)
/// and comes back packed; Baichuan2's head is stored normalized.
#[test]
fn tiny_baichuan_from_gguf() {
    check_gguf(&local("tiny-baichuan"));
    check_gguf(&local("tiny-baichuan2"));
}

//! End-to-end tests of `zoo quantize` and `zoo dequantize`: byte-exact blocks against the
//! ggml/gguf-py reference (`tests/fixtures/reference/quant`), llama.cpp names and metadata for the
//! tiny LLaMA and BLOOM fixtures, and HF → GGUF (f32) → HF giving back every tensor exactly.

mod common;
use common::fixture;
use common::zoo;

use std::path::{Path, PathBuf};
use std::process::Output;

use zoo_weights::gguf::MetaValue;
use zoo_weights::quant::QuantType;
use zoo_weights::{Checkpoint, Dtype, GgmlType};

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run(home: &Path, args: &[&str]) -> Output {
    let mut c = zoo(home);
    c.args(args);
    if args.first().is_some_and(|a| *a != "inspect") {
        c.args(["--progress", "off"]);
    }
    c.output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of a tiny fixture with SmolLM2's tokenizer files next to it.
fn model_dir(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(f), dir.join(f)).unwrap();
    }
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"] {
        std::fs::copy(fixture("smollm2").join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn raw_quantization_gives_the_reference_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("quant/quant-shared.safetensors");
    let reference = Checkpoint::open(&src).unwrap();
    // Q5_K's blocks for the same inputs are in our own fixture (tests/fixtures/quant/make_q5_k.sh).
    let q5_k =
        Checkpoint::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant/q5_k-llama.safetensors"))
            .expect("tests/fixtures/quant/q5_k-llama.safetensors: make it with tests/fixtures/quant/make_q5_k.sh");
    let mut checked = 0;
    for t in QuantType::ALL {
        let out = tmp.path().join(format!("{}.gguf", t.name()));
        ok(&run(tmp.path(), &["quantize", "--raw", "--in", s(&src), "--out", s(&out), "--type", t.name()]));
        let g = Checkpoint::open(&out).unwrap();
        for input in reference.tensors().iter().filter(|x| x.dtype == Dtype::F32) {
            let ref_name = format!("{}.{}", input.name, t.name().to_lowercase());
            let ck = if t == QuantType::Q5K { &q5_k } else { &reference };
            let want = ck.get(&ref_name).unwrap_or_else(|| panic!("{ref_name} missing from the reference"));
            let got = g.get(&input.name).unwrap_or_else(|| panic!("{} missing from {}", input.name, out.display()));
            assert_eq!(got.dtype, Dtype::Ggml(t.ggml_type()), "{}", input.name);
            assert_eq!(got.shape, input.shape, "{}", input.name);
            assert!(
                g.read_to_vec(got, 1 << 26).unwrap() == ck.read_to_vec(want, 1 << 26).unwrap(),
                "{} as {t}: bytes differ from the reference",
                input.name
            );
            checked += 1;
        }
        // The reference byte tensors are uint8, which GGUF cannot hold: left out, not mangled.
        assert!(g.tensors().iter().all(|x| !x.name.contains(".q")));
        assert_eq!(g.gguf().unwrap().get("general.architecture").and_then(MetaValue::as_str), Some("raw"));
    }
    assert_eq!(checked, 3 * QuantType::ALL.len());
}

#[test]
fn llama_f32_round_trip_names_metadata_and_permutation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "tiny-llama");
    let gguf = tmp.path().join("tiny.gguf");
    ok(&run(tmp.path(), &["quantize", "--in", s(&dir), "--out", s(&gguf), "--type", "f32"]));

    let inspect = ok(&run(tmp.path(), &["inspect", s(&gguf)]));
    for needle in [
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.1.ffn_down.weight",
        "output_norm.weight",
        "output.weight",
        "general.architecture",
        "llama.context_length",
        "llama.embedding_length",
        "llama.block_count",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.rope.freq_base",
        "llama.attention.layer_norm_rms_epsilon",
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
        "tokenizer.chat_template",
    ] {
        assert!(inspect.contains(needle), "`zoo inspect` lacks {needle}:\n{inspect}");
    }
    let g = Checkpoint::open(&gguf).unwrap();
    let md = g.gguf().unwrap();
    let u = |k: &str| md.get(k).and_then(MetaValue::as_u64);
    assert_eq!(md.get("general.architecture").and_then(MetaValue::as_str), Some("llama"));
    assert_eq!(
        [u("llama.context_length"), u("llama.embedding_length"), u("llama.block_count")],
        [Some(128), Some(64), Some(2)]
    );
    assert_eq!([u("llama.attention.head_count"), u("llama.attention.head_count_kv")], [Some(4), Some(2)]);
    assert_eq!(md.get("llama.rope.freq_base"), Some(&MetaValue::F32(10000.0)));
    assert_eq!(md.get("llama.attention.layer_norm_rms_epsilon"), Some(&MetaValue::F32(1e-6)));
    assert_eq!(md.get("tokenizer.ggml.model").and_then(MetaValue::as_str), Some("gpt2"));
    // SmolLM2: bos <|im_start|> = 1, eos <|im_end|> = 2, unk <|endoftext|> = 0.
    assert_eq!([u("tokenizer.ggml.bos_token_id"), u("tokenizer.ggml.eos_token_id")], [Some(1), Some(2)]);
    assert_eq!(u("tokenizer.ggml.unknown_token_id"), Some(0));
    assert!(md.get("tokenizer.chat_template").and_then(MetaValue::as_str).unwrap().contains("<|im_start|>"));

    // The q rows are permuted exactly as convert_hf_to_gguf.py's permute(w, n_head=4).
    let hf = Checkpoint::open(&dir).unwrap();
    let f32s = |ck: &Checkpoint, name: &str| -> Vec<f32> {
        let b = ck.read_to_vec(ck.get(name).unwrap(), 1 << 26).unwrap();
        b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    };
    let q = f32s(&hf, "model.layers.0.self_attn.q_proj.weight");
    let gq = f32s(&g, "blk.0.attn_q.weight");
    let (n_head, hd, cols) = (4, 16, 64);
    for h in 0..n_head {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let out_row = h * hd + i * 2 + j;
                let in_row = h * hd + j * (hd / 2) + i;
                assert_eq!(gq[out_row * cols..][..cols], q[in_row * cols..][..cols], "row {out_row}");
            }
        }
    }

    let back = tmp.path().join("back");
    ok(&run(tmp.path(), &["dequantize", s(&gguf), "--out", s(&back)]));
    let b = Checkpoint::open(&back).unwrap();
    assert_eq!(b.tensors().len(), hf.tensors().len());
    for t in hf.tensors() {
        let bt = b.get(&t.name).unwrap_or_else(|| panic!("{} missing after dequantize", t.name));
        assert_eq!((bt.dtype, &bt.shape), (t.dtype, &t.shape), "{}", t.name);
        assert!(b.read_to_vec(bt, 1 << 26).unwrap() == hf.read_to_vec(t, 1 << 26).unwrap(), "{} differs", t.name);
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(back.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["num_key_value_heads"], 2);
    assert_eq!(cfg["model_type"], "llama");
    let tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(back.join("tokenizer.json")).unwrap()).unwrap();
    let orig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("smollm2/tokenizer.json")).unwrap()).unwrap();
    assert_eq!(tok["model"]["vocab"], orig["model"]["vocab"]);
    assert_eq!(tok["model"]["merges"].as_array().unwrap().len(), orig["model"]["merges"].as_array().unwrap().len());
}

#[test]
fn llama_types_and_q4_k_m_mix_with_fallbacks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "tiny-llama");
    for (ty, q_type) in [
        ("f16", GgmlType::F16),
        ("bf16", GgmlType::BF16),
        ("q8_0", GgmlType::Q8_0),
        ("q4_0", GgmlType::Q4_0),
        ("q4_k_m", GgmlType::Q5_0),
    ] {
        let gguf = tmp.path().join(format!("{ty}.gguf"));
        let o =
            ok(&run(tmp.path(), &["quantize", "--in", s(&dir), "--out", s(&gguf), "--type", ty, "--json", "--report"]));
        let report: serde_json::Value = serde_json::from_str(&o).unwrap();
        let g = Checkpoint::open(&gguf).unwrap();
        let dtype = |n: &str| g.get(n).unwrap().dtype;
        assert_eq!(dtype("blk.0.attn_q.weight"), q_type.dense().unwrap_or(Dtype::Ggml(q_type)), "{ty}");
        assert_eq!(dtype("blk.0.attn_norm.weight"), Dtype::F32, "{ty}");
        // Rows of 176 (ffn_down) fit no 32-block: F16 for the block types.
        if ty.starts_with('q') {
            assert_eq!(dtype("blk.0.ffn_down.weight"), Dtype::F16, "{ty}");
            let t =
                report["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "blk.0.ffn_down.weight").unwrap();
            assert!(t["fallback"].as_str().unwrap().contains("176"), "{t}");
        }
        for t in report["tensors"].as_array().unwrap() {
            assert!(t["rmse"].as_f64().unwrap() <= t["max_err"].as_f64().unwrap(), "{t}");
        }
        // Every format dequantizes back to the HF layout.
        let back = tmp.path().join(format!("back-{ty}"));
        ok(&run(tmp.path(), &["dequantize", s(&gguf), "--out", s(&back), "--dtype", "bf16"]));
        assert_eq!(Checkpoint::open(&back).unwrap().get("lm_head.weight").unwrap().dtype, Dtype::BF16);
    }
    // Q4_K_M: output.weight wants Q6_K, whose fallback for rows of 64 is Q8_0.
    let g = Checkpoint::open(&tmp.path().join("q4_k_m.gguf")).unwrap();
    assert_eq!(g.get("output.weight").unwrap().dtype, Dtype::Ggml(GgmlType::Q8_0));
    assert_eq!(g.gguf().unwrap().get("general.file_type"), Some(&MetaValue::U32(15)));
}

#[test]
fn bloom_round_trip_with_fused_qkv_and_embedding_norm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "tiny-bloom");
    let gguf = tmp.path().join("bloom.gguf");
    ok(&run(tmp.path(), &["quantize", "--in", s(&dir), "--out", s(&gguf), "--type", "f32"]));
    let g = Checkpoint::open(&gguf).unwrap();
    for n in
        ["token_embd.weight", "token_embd_norm.bias", "blk.1.attn_qkv.weight", "output_norm.weight", "output.weight"]
    {
        assert!(g.get(n).is_some(), "{n} missing");
    }
    assert_eq!(g.gguf().unwrap().get("bloom.block_count").and_then(MetaValue::as_u64), Some(2));
    let back = tmp.path().join("back");
    ok(&run(tmp.path(), &["dequantize", s(&gguf), "--out", s(&back)]));
    let (hf, b) = (Checkpoint::open(&dir).unwrap(), Checkpoint::open(&back).unwrap());
    for t in hf.tensors() {
        let bt = b.get(&t.name).unwrap_or_else(|| panic!("{} missing after dequantize", t.name));
        assert!(b.read_to_vec(bt, 1 << 26).unwrap() == hf.read_to_vec(t, 1 << 26).unwrap(), "{} differs", t.name);
    }
}

/// `--type q5_k` and `q4_k_m` on BLOOM, whose `ffn_down` rows (4 × 64 = 256) fit a k-quant
/// block: the types llama-quantize picks for the same model (run by hand on the f32 GGUF:
/// `llama-quantize --pure bloom.gguf out.gguf Q5_K_S`, and `... Q4_K_M`), and `general.file_type`.
#[test]
fn bloom_q5_k_and_q4_k_m_types() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "tiny-bloom");
    let types = |ty: &str| {
        let gguf = tmp.path().join(format!("{ty}.gguf"));
        ok(&run(tmp.path(), &["quantize", "--in", s(&dir), "--out", s(&gguf), "--type", ty]));
        let g = Checkpoint::open(&gguf).unwrap();
        let file_type = g.gguf().unwrap().get("general.file_type").cloned();
        let dtype = move |n: &str| match g.get(n).unwrap().dtype {
            Dtype::Ggml(t) => t,
            d => panic!("{n}: {d:?}"),
        };
        (dtype, file_type, gguf)
    };
    // Pure Q5_K: rows of 256 are Q5_K; rows of 64 fall back to Q5_1, as in llama-quantize.
    let (dtype, file_type, gguf) = types("q5_k");
    assert_eq!(file_type, Some(MetaValue::U32(16)), "LLAMA_FTYPE_MOSTLY_Q5_K_S");
    for l in 0..2 {
        assert_eq!(dtype(&format!("blk.{l}.ffn_down.weight")), GgmlType::Q5_K);
        assert_eq!(dtype(&format!("blk.{l}.attn_qkv.weight")), GgmlType::Q5_1);
    }
    assert_eq!(dtype("output.weight"), GgmlType::Q5_1);
    let back = tmp.path().join("back-q5_k");
    ok(&run(tmp.path(), &["dequantize", s(&gguf), "--out", s(&back)]));
    assert!(Checkpoint::open(&back).unwrap().get("transformer.h.0.mlp.dense_4h_to_h.weight").is_some());

    // Q4_K_M: the fused QKV follows attn_v's rule (Q6_K on layer 1 of 2, Q4_K on layer 0), then
    // falls back for rows of 64; ffn_down likewise, with rows that fit.
    let (dtype, file_type, _) = types("q4_k_m");
    assert_eq!(file_type, Some(MetaValue::U32(15)));
    assert_eq!(dtype("blk.0.attn_qkv.weight"), GgmlType::Q5_0);
    assert_eq!(dtype("blk.1.attn_qkv.weight"), GgmlType::Q8_0);
    assert_eq!(dtype("blk.0.ffn_down.weight"), GgmlType::Q4_K);
    assert_eq!(dtype("blk.1.ffn_down.weight"), GgmlType::Q6_K);
}

/// The converter takes exactly the Hugging Face architectures the runner runs, each to the GGUF
/// architecture the runner reads it as, and both know the same GGUF architectures.
#[test]
fn converter_and_runner_accept_the_same_architectures() {
    use std::collections::BTreeSet;
    let converter: BTreeSet<(&str, &str)> = zoo_weights::gguf_convert::HF_ARCHITECTURES.iter().copied().collect();
    let runner: BTreeSet<(&str, &str)> = zoo_infer::config::HF_ARCHITECTURES
        .iter()
        .filter_map(|(hf, _)| Some((*hf, zoo_infer::Arch::from_hf_name(hf)?.name())))
        .collect();
    assert_eq!(converter, runner);
    let converter: BTreeSet<&str> = zoo_weights::gguf_convert::GGUF_ARCHITECTURES.iter().copied().collect();
    let runner: BTreeSet<&str> = zoo_infer::config::GGUF_ARCHITECTURES
        .iter()
        .copied()
        .filter(|g| zoo_infer::Arch::from_gguf_name(g).is_some())
        .collect();
    assert_eq!(converter, runner);
}

#[test]
fn unsupported_architecture_is_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "tiny-llama");
    let cfg = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"llama\"", "\"mamba\"")
        .replace("LlamaForCausalLM", "MambaForCausalLM");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let gguf = tmp.path().join("x.gguf");
    let o = run(tmp.path(), &["quantize", "--in", s(&dir), "--out", s(&gguf)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("MambaForCausalLM") && err.contains("not supported") && err.contains("llama, qwen2, gemma, bloom"),
        "{err}"
    );
    assert_eq!(o.status.code(), Some(1), "a refused input exits 1");
    assert!(!gguf.exists());
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().contains("zoo-tmp")), "{names:?}");
}

#[test]
fn existing_output_is_refused_unless_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "tiny-llama");
    let gguf = tmp.path().join("x.gguf");
    std::fs::write(&gguf, b"keep me").unwrap();
    let o = run(tmp.path(), &["quantize", "--in", s(&dir), "--out", s(&gguf), "--type", "q8_0"]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&gguf).unwrap(), b"keep me");
    ok(&run(tmp.path(), &["quantize", "--in", s(&dir), "--out", s(&gguf), "--type", "q8_0", "--overwrite"]));
    assert_eq!(Checkpoint::open(&gguf).unwrap().get("blk.0.attn_q.weight").unwrap().dtype, Dtype::Ggml(GgmlType::Q8_0));
}

#[test]
fn qwen2_round_trip_without_permutation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "tiny-llama");
    let cfg = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"llama\"", "\"qwen2\"")
        .replace("LlamaForCausalLM", "Qwen2ForCausalLM");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let gguf = tmp.path().join("q.gguf");
    ok(&run(tmp.path(), &["quantize", "--in", s(&dir), "--out", s(&gguf), "--type", "f32"]));
    let (hf, g) = (Checkpoint::open(&dir).unwrap(), Checkpoint::open(&gguf).unwrap());
    assert_eq!(g.gguf().unwrap().get("qwen2.block_count").and_then(MetaValue::as_u64), Some(2));
    let q = |ck: &Checkpoint, n: &str| ck.read_to_vec(ck.get(n).unwrap(), 1 << 26).unwrap();
    assert!(
        q(&g, "blk.0.attn_q.weight") == q(&hf, "model.layers.0.self_attn.q_proj.weight"),
        "qwen2 q is not permuted"
    );
    let back = tmp.path().join("back");
    ok(&run(tmp.path(), &["dequantize", s(&gguf), "--out", s(&back)]));
    let b = Checkpoint::open(&back).unwrap();
    for t in hf.tensors() {
        assert!(q(&b, &t.name) == q(&hf, &t.name), "{} differs", t.name);
    }
}

/// GPTQ both ways through the CLI: tiny-llama → AutoGPTQ int4 folder → GGUF (f32) → HF folder
/// equals the GPTQ folder dequantized directly, and stays within a 4-bit step of the original.
#[test]
fn gptq_release_to_gguf_and_back() {
    let tiny = fixture("tiny-llama");
    let tmp = tempfile::tempdir().unwrap();
    let zoo = |args: &[std::ffi::OsString]| {
        let o = zoo(tmp.path()).args(args).output().unwrap();
        assert!(o.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&o.stderr));
    };
    let p = |x: &std::path::Path| x.as_os_str().to_owned();
    let s = |x: &str| std::ffi::OsString::from(x);
    let gptq = tmp.path().join("gptq");
    zoo(&[s("quantize"), s("--type"), s("gptq-int4"), s("--in"), p(&tiny), s("--out"), p(&gptq)]);
    assert!(gptq.join("quantize_config.json").is_file());
    let gguf = tmp.path().join("m.gguf");
    // A staging folder left by a killed run (no such process) is swept; nothing is left behind.
    let stale = tmp.path().join(".m.gguf.gptq-staging.zoo-tmp-999999999");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"half-written").unwrap();
    zoo(&[s("quantize"), s("--type"), s("f32"), s("--in"), p(&gptq), s("--out"), p(&gguf)]);
    assert!(!stale.exists(), "stale staging folder swept");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    let via_gguf = tmp.path().join("via-gguf");
    zoo(&[s("dequantize"), p(&gguf), s("--out"), p(&via_gguf)]);
    let direct = tmp.path().join("direct");
    zoo(&[s("dequantize"), p(&gptq), s("--out"), p(&direct)]);
    let (a, b, orig) = (
        zoo_weights::Checkpoint::open(&via_gguf).unwrap(),
        zoo_weights::Checkpoint::open(&direct).unwrap(),
        zoo_weights::Checkpoint::open(&tiny).unwrap(),
    );
    let f32s = |ck: &zoo_weights::Checkpoint, name: &str| -> Vec<f32> {
        let t = ck.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(t.dtype, zoo_weights::Dtype::F32, "{name}");
        ck.read_to_vec(t, 1 << 30)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let name = "model.layers.0.self_attn.q_proj.weight";
    let (x, y, o) = (f32s(&a, name), f32s(&b, name), f32s(&orig, name));
    assert_eq!(x, y, "GGUF path and direct dequantization agree exactly");
    let range = o.iter().fold(0f32, |m, v| m.max(v.abs())) * 2.0;
    let worst = o.iter().zip(&x).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(worst <= range / 15.0, "error {worst} larger than one 4-bit step of the weight range {range}");
    assert_ne!(x, o, "the weights really went through 4 bits");
}

//! GPTQ (AutoGPTQ layout): dequantization and RTN packing against the independent torch/numpy
//! packer of `tests/fixtures/make_gptq_cases.py`, round trips, and hostile checkpoints.

use std::path::{Path, PathBuf};

use half::f16;
use zoo_weights::gptq::{self, GptqModel};
use zoo_weights::safetensors::{TensorSpec, encode_header};
use zoo_weights::{Checkpoint, Dtype, WeightsError, WriteOptions};

/// `tests/fixtures/gptq-cases` of the workspace; a missing folder fails with a hint.
fn cases() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/gptq-cases"));
    assert!(
        p.is_dir(),
        "GPTQ reference cases missing at {}: regenerate them with tests/fixtures/make_gptq_cases.py",
        p.display()
    );
    p
}

fn tensor_bytes(ck: &Checkpoint, name: &str) -> Vec<u8> {
    let t = ck.get(name).unwrap_or_else(|| panic!("{}: no tensor `{name}`", ck.folder().display()));
    ck.read_to_vec(t, u64::MAX).unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Every module of a case dequantizes to exactly the f32 bits torch computed.
fn check_case(case: &str, modules: usize) {
    let dir = cases().join(case);
    let model = GptqModel::open(&dir).unwrap();
    let expected = Checkpoint::open(&dir.join("expected.safetensors")).unwrap();
    assert_eq!(model.modules().len(), modules, "{case}: module count");
    assert_eq!(expected.tensors().len(), modules, "{case}: expected tensors");
    for m in model.modules() {
        let want_info = expected.get(&format!("{}.weight", m.name)).unwrap();
        assert_eq!(want_info.shape, vec![m.out_features, m.in_features], "{case}: {}", m.name);
        let want = f32s(&tensor_bytes(&expected, &want_info.name));
        let got = model.dequantize_linear(m).unwrap();
        assert_eq!(got.len(), want.len());
        let diff = got.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(diff, None, "{case}: {} differs at element {diff:?}", m.name);
    }
}

#[test]
fn dequantize_rtn_group128_matches_torch() {
    check_case("rtn-g128", 2);
}

#[test]
fn dequantize_act_order_matches_torch() {
    let model = GptqModel::open(&cases().join("act-order-g128")).unwrap();
    assert!(model.config().desc_act);
    check_case("act-order-g128", 1);
}

#[test]
fn dequantize_one_group_matches_torch() {
    let model = GptqModel::open(&cases().join("group-all")).unwrap();
    assert_eq!(model.config().group_size, None);
    check_case("group-all", 1);
}

#[test]
fn dequantize_group32_matches_torch() {
    check_case("g32", 1);
}

#[test]
fn dequantize_phoenix_like_pickle_matches_torch() {
    let model = GptqModel::open(&cases().join("phoenix-pickle")).unwrap();
    assert_eq!(model.checkpoint().format(), zoo_weights::Format::Torch);
    assert_eq!(model.config().bits, 4);
    assert_eq!(model.config().group_size, Some(128));
    check_case("phoenix-pickle", 2);
}

#[test]
fn pack_rtn_bytes_match_python_packer() {
    let dir = cases().join("rtn-g128");
    let original = Checkpoint::open(&dir.join("original.safetensors")).unwrap();
    let packed = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    for module in ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"] {
        let t = original.get(&format!("{module}.weight")).unwrap();
        let w = f32s(&tensor_bytes(&original, &t.name));
        let p = gptq::pack_rtn(&w, t.shape[0] as usize, t.shape[1] as usize, Some(128)).unwrap();
        let [qweight, qzeros, scales, g_idx] = p.tensor_bytes();
        for (suffix, got) in [("qweight", qweight), ("qzeros", qzeros), ("scales", scales), ("g_idx", g_idx)] {
            assert_eq!(got, tensor_bytes(&packed, &format!("{module}.{suffix}")), "{module}.{suffix}");
        }
    }
}

#[test]
fn quantize_folder_matches_python_packer_and_reopens() {
    let dir = cases().join("rtn-g128");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    gptq::quantize_folder(&dir.join("hf"), &out, Some(128), &WriteOptions::default()).unwrap();
    let got = Checkpoint::open(&out.join("model.safetensors")).unwrap();
    let want = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    let mut got_names: Vec<&str> = got.tensors().iter().map(|t| t.name.as_str()).collect();
    let mut want_names: Vec<&str> = want.tensors().iter().map(|t| t.name.as_str()).collect();
    got_names.sort_unstable();
    want_names.sort_unstable();
    assert_eq!(got_names, want_names);
    for t in want.tensors() {
        let g = got.get(&t.name).unwrap();
        assert_eq!((g.dtype, &g.shape), (t.dtype, &t.shape), "{}", t.name);
        assert_eq!(tensor_bytes(&got, &t.name), tensor_bytes(&want, &t.name), "{}", t.name);
    }
    assert!(out.join("config.json").is_file());
    let model = GptqModel::open(&out).unwrap();
    assert_eq!(model.config().bits, 4);
    assert!(!model.config().desc_act);
    assert_eq!(model.modules().len(), 2);
}

#[test]
fn dequantize_to_folder_writes_hf_layout() {
    let dir = cases().join("phoenix-pickle");
    let model = GptqModel::open(&dir).unwrap();
    let expected = Checkpoint::open(&dir.join("expected.safetensors")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for dtype in [Dtype::F32, Dtype::F16] {
        let out = tmp.path().join(format!("hf-{dtype}"));
        gptq::dequantize_to_folder(&model, &out, dtype, &WriteOptions::default()).unwrap();
        let got = Checkpoint::open(&out).unwrap();
        let names: Vec<&str> = got.tensors().iter().map(|t| t.name.as_str()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".qweight") && !n.ends_with(".g_idx")), "{names:?}");
        assert_eq!(names.len(), 4, "{names:?}");
        for t in expected.tensors() {
            let want = f32s(&tensor_bytes(&expected, &t.name));
            let bytes = tensor_bytes(&got, &t.name);
            assert_eq!(got.get(&t.name).unwrap().shape, t.shape);
            let want_bytes: Vec<u8> = match dtype {
                Dtype::F16 => want.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
                _ => want.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            assert_eq!(bytes, want_bytes, "{} as {dtype}", t.name);
        }
        for name in ["transformer.word_embeddings.weight", "transformer.h.0.self_attention.query_key_value.bias"] {
            assert_eq!(tensor_bytes(&got, name), tensor_bytes(model.checkpoint(), name), "{name}");
        }
        assert!(!out.join("quantize_config.json").exists());
    }
}

/// Deterministic pseudo-random weights (xorshift), roughly N(0, 0.05)-sized, plus edge rows.
fn weights(out: usize, inp: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    let mut w: Vec<f32> = (0..out * inp)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect();
    w[..inp].fill(0.0);
    for v in &mut w[inp..2 * inp] {
        *v = v.abs();
    }
    for v in &mut w[2 * inp..3 * inp] {
        *v = -v.abs();
    }
    w[3 * inp + 7] = 3.0;
    w
}

#[test]
fn pack_then_dequantize_is_within_half_a_step() {
    for (out, inp, group) in [(16, 256, Some(128)), (24, 96, Some(32)), (8, 64, None), (8, 200, Some(128))] {
        let w = weights(out, inp, (out * inp) as u64);
        let p = gptq::pack_rtn(&w, out, inp, group).unwrap();
        let back = p.dequantize().unwrap();
        let g = group.unwrap_or(inp);
        for o in 0..out {
            for k in 0..inp {
                let s = p.scales[(k / g) * out + o].to_f32();
                let err = (back[o * inp + k] - w[o * inp + k]).abs();
                // Half a step, plus what rounding the scale to f16 can add over 15 steps.
                assert!(
                    err <= 0.5 * s * (1.0 + 15.0 / 1024.0),
                    "[{out},{inp}] g {group:?} at ({o},{k}): err {err} step {s}"
                );
            }
        }
        // The all-zero row comes back exactly.
        assert!(back[..inp].iter().all(|&v| v == 0.0));
    }
}

#[test]
fn pack_rtn_refuses_bad_shapes() {
    let e = gptq::pack_rtn(&[0.0; 12 * 8], 12, 8, Some(128)).unwrap_err();
    assert!(e.to_string().contains("[12, 8]"), "{e}");
    let e = gptq::pack_rtn(&[0.0; 10], 8, 8, Some(128)).unwrap_err();
    assert!(e.to_string().contains("10 values"), "{e}");
    let e = gptq::pack_rtn(&[f32::NAN; 64], 8, 8, None).unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
}

// ---- hostile checkpoints ----

/// A safetensors file of raw little-endian tensors.
fn safetensors(tensors: &[(&str, Dtype, &[u64])]) -> Vec<u8> {
    let specs: Vec<TensorSpec> =
        tensors.iter().map(|(n, d, s)| TensorSpec { name: (*n).into(), dtype: *d, shape: s.to_vec() }).collect();
    let mut out = encode_header(&specs, &[]).unwrap();
    for s in &specs {
        out.resize(out.len() + s.byte_len().unwrap() as usize, 0);
    }
    out
}

const M: &str = "model.layers.0.self_attn.q_proj";

fn folder(config: &str, tensors: &[(&str, Dtype, &[u64])]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("quantize_config.json"), config).unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), safetensors(tensors)).unwrap();
    tmp
}

const CONFIG: &str = r#"{"bits": 4, "group_size": 128, "damp_percent": 0.01, "desc_act": true}"#;

fn open_err(config: &str, tensors: &[(&str, Dtype, &[u64])]) -> WeightsError {
    let tmp = folder(config, tensors);
    GptqModel::open(tmp.path()).unwrap_err()
}

fn names(suffixes: [&str; 4]) -> [String; 4] {
    suffixes.map(|s| format!("{M}.{s}"))
}

#[test]
fn well_formed_hostile_base_opens() {
    let [qw, qz, sc, gi] = names(["qweight", "qzeros", "scales", "g_idx"]);
    let tmp = folder(
        CONFIG,
        &[
            (&qw, Dtype::I32, &[32, 64]),
            (&qz, Dtype::I32, &[2, 8]),
            (&sc, Dtype::F16, &[2, 64]),
            (&gi, Dtype::I32, &[256]),
        ],
    );
    let model = GptqModel::open(tmp.path()).unwrap();
    let m = &model.modules()[0];
    assert_eq!((m.in_features, m.out_features, m.groups), (256, 64, 2));
    // Zero scales everywhere: all zeros, and g_idx all 0 is valid.
    assert!(model.dequantize_linear(m).unwrap().iter().all(|&v| v == 0.0));
}

#[test]
fn qweight_not_matching_g_idx_length() {
    let [qw, qz, sc, gi] = names(["qweight", "qzeros", "scales", "g_idx"]);
    let e = open_err(
        CONFIG,
        &[
            (&qw, Dtype::I32, &[32, 64]),
            (&qz, Dtype::I32, &[2, 8]),
            (&sc, Dtype::F16, &[2, 64]),
            (&gi, Dtype::I32, &[200]),
        ],
    );
    let msg = e.to_string();
    assert!(matches!(e, WeightsError::GptqModule { .. }), "{e:?}");
    assert!(msg.contains(M) && msg.contains("[200]") && msg.contains("[32, 64]") && msg.contains("256"), "{msg}");
}

#[test]
fn qzeros_with_the_wrong_width() {
    let [qw, qz, sc, gi] = names(["qweight", "qzeros", "scales", "g_idx"]);
    let e = open_err(
        CONFIG,
        &[
            (&qw, Dtype::I32, &[32, 64]),
            (&qz, Dtype::I32, &[2, 64]),
            (&sc, Dtype::F16, &[2, 64]),
            (&gi, Dtype::I32, &[256]),
        ],
    );
    let msg = e.to_string();
    assert!(msg.contains(M) && msg.contains("qzeros") && msg.contains("[2, 64]") && msg.contains("[2, 8]"), "{msg}");
}

#[test]
fn scales_with_the_wrong_group_count() {
    let [qw, qz, sc, gi] = names(["qweight", "qzeros", "scales", "g_idx"]);
    let e = open_err(
        CONFIG,
        &[
            (&qw, Dtype::I32, &[32, 64]),
            (&qz, Dtype::I32, &[2, 8]),
            (&sc, Dtype::F16, &[3, 64]),
            (&gi, Dtype::I32, &[256]),
        ],
    );
    assert!(e.to_string().contains("scales is F16 [3, 64], expected float16 [2, 64]"), "{e}");
}

#[test]
fn bits_3_in_config() {
    let [qw, qz, sc, gi] = names(["qweight", "qzeros", "scales", "g_idx"]);
    let e = open_err(
        r#"{"bits": 3, "group_size": 128, "desc_act": false}"#,
        &[
            (&qw, Dtype::I32, &[32, 64]),
            (&qz, Dtype::I32, &[2, 8]),
            (&sc, Dtype::F16, &[2, 64]),
            (&gi, Dtype::I32, &[256]),
        ],
    );
    assert!(matches!(e, WeightsError::GptqBits { bits: 3, .. }), "{e:?}");
    assert!(e.to_string().contains("3 bits is not supported"), "{e}");
}

#[test]
fn missing_scales() {
    let [qw, qz, _, gi] = names(["qweight", "qzeros", "scales", "g_idx"]);
    let e = open_err(CONFIG, &[(&qw, Dtype::I32, &[32, 64]), (&qz, Dtype::I32, &[2, 8]), (&gi, Dtype::I32, &[256])]);
    assert!(matches!(&e, WeightsError::GptqMissingTensor { tensor, .. } if tensor == &format!("{M}.scales")), "{e:?}");
    assert!(e.to_string().contains("is missing"), "{e}");
}

#[test]
fn missing_g_idx_with_act_order() {
    let [qw, qz, sc, _] = names(["qweight", "qzeros", "scales", "g_idx"]);
    let e = open_err(CONFIG, &[(&qw, Dtype::I32, &[32, 64]), (&qz, Dtype::I32, &[2, 8]), (&sc, Dtype::F16, &[2, 64])]);
    assert!(e.to_string().contains("g_idx (desc_act is true)"), "{e}");
}

#[test]
fn g_idx_pointing_past_the_groups() {
    let [qw, qz, sc, gi] = names(["qweight", "qzeros", "scales", "g_idx"]);
    let tmp = folder(
        CONFIG,
        &[
            (&qw, Dtype::I32, &[32, 64]),
            (&qz, Dtype::I32, &[2, 8]),
            (&sc, Dtype::F16, &[2, 64]),
            (&gi, Dtype::I32, &[256]),
        ],
    );
    // Set g_idx[255] = 7 in place (g_idx is the last tensor of the file).
    let path = tmp.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&7i32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let model = GptqModel::open(tmp.path()).unwrap();
    let e = model.dequantize_linear(&model.modules()[0]).unwrap_err();
    assert!(e.to_string().contains("g_idx[255] = 7, but there are only 2 groups"), "{e}");
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let p = Path::new("quantize_config.json");
    for (text, want) in [
        ("[]", "not a JSON object"),
        (r#"{"group_size": 128}"#, "`bits` is missing"),
        (r#"{"bits": 4, "group_size": 0}"#, "`group_size` is 0"),
        (r#"{"bits": 4, "group_size": 128, "desc_act": "yes"}"#, "`desc_act`"),
        (r#"{"bits": 16, "group_size": 128}"#, "16 bits"),
    ] {
        let e = gptq::GptqConfig::parse(p, text).unwrap_err();
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
    let c =
        gptq::GptqConfig::parse(p, r#"{"bits": 4, "group_size": -1, "damp_percent": 0.01, "desc_act": true}"#).unwrap();
    assert_eq!((c.bits, c.group_size, c.desc_act), (4, None, true));
}

#[test]
fn no_quantized_modules() {
    let e = open_err(CONFIG, &[("model.norm.weight", Dtype::F32, &[8])]);
    assert!(matches!(e, WeightsError::GptqNoModules { .. }), "{e:?}");
}

//! The architectures the converter knows: which Hugging Face `config.json` names them, the
//! GGUF architecture each becomes, tensor names both ways, and hyper-parameters both ways
//! (`config.json` → `<arch>.*` metadata, and back).

use std::path::Path;

use serde_json::{Value, json};

use crate::checkpoint::Checkpoint;
use crate::dtype::Dtype;
use crate::error::{Result, WeightsError};
use crate::gguf::MetaValue;

/// Every `architectures[0]` of a Hugging Face `config.json` the converter takes, with the GGUF
/// architecture (`general.architecture`) it becomes. Aliases map to the same GGUF architecture:
/// Yi is LLaMA-shaped, Baichuan-13B spells itself `BaiChuan`. **Invariant:** the runner accepts
/// exactly these names (`tests/quantize.rs` at the workspace root compares the two lists).
pub const HF_ARCHITECTURES: &[(&str, &str)] = &[
    ("LlamaForCausalLM", "llama"),
    ("YiForCausalLM", "llama"),
    ("Qwen2ForCausalLM", "qwen2"),
    ("GemmaForCausalLM", "gemma"),
    ("BaichuanForCausalLM", "baichuan"),
    ("BaiChuanForCausalLM", "baichuan"),
    ("BloomForCausalLM", "bloom"),
];

/// The GGUF architectures the converter writes and maps back to Hugging Face names.
pub const GGUF_ARCHITECTURES: &[&str] = &["llama", "qwen2", "gemma", "bloom", "baichuan"];

/// An architecture this module knows: HF names ↔ GGUF names, hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arch {
    Llama,
    Qwen2,
    /// Gemma 1 (Apollo-2B/7B): LLaMA's names, no q/k permutation, and llama.cpp's converter
    /// stores the RMSNorm weights with Gemma's `+1` added.
    Gemma,
    Bloom,
    /// Baichuan / Baichuan2 (HuatuoGPT-7B, HuatuoGPT2): LLaMA's names, the packed `W_pack`
    /// split into q, k, v (q and k permuted), Baichuan2's head stored normalized.
    Baichuan,
}

impl Arch {
    const ALL: [Arch; 5] = [Arch::Llama, Arch::Qwen2, Arch::Gemma, Arch::Bloom, Arch::Baichuan];

    pub(super) fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma => "gemma",
            Arch::Bloom => "bloom",
            Arch::Baichuan => "baichuan",
        }
    }

    /// The architecture of a `config.json`: `architectures[0]` through [`HF_ARCHITECTURES`],
    /// else a `model_type` that is a GGUF architecture name (`llama`, ...).
    pub(super) fn from_config(cfg: &Value, folder: &Path) -> Result<Arch> {
        let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or_default();
        let arch0 = cfg.pointer("/architectures/0").and_then(Value::as_str).unwrap_or_default();
        let by_class = HF_ARCHITECTURES.iter().find(|(hf, _)| *hf == arch0).and_then(|(_, g)| Arch::from_gguf(g));
        by_class.or_else(|| Arch::from_gguf(model_type)).ok_or_else(|| WeightsError::UnsupportedArchitecture {
            path: folder.join("config.json"),
            arch: format!("{} (model_type `{model_type}`)", if arch0.is_empty() { "?" } else { arch0 }),
            supported: SUPPORTED,
        })
    }

    pub(super) fn from_gguf(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The `architectures[0]` written into a dequantized folder's `config.json`.
    fn hf_class(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Gemma => "GemmaForCausalLM",
            Arch::Bloom => "BloomForCausalLM",
            Arch::Baichuan => "BaichuanForCausalLM",
        }
    }
}

/// [`GGUF_ARCHITECTURES`] for messages.
const SUPPORTED: &str = "llama, qwen2, gemma, bloom, baichuan";

/// HF name part → GGUF name part.
type NameTable = &'static [(&'static str, &'static str)];

/// Per-layer HF suffix → GGUF suffix.
const LLAMA_LAYER: &[(&str, &str)] = &[
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
];
const LLAMA_GLOBAL: &[(&str, &str)] =
    &[("model.embed_tokens", "token_embd"), ("model.norm", "output_norm"), ("lm_head", "output")];
const BLOOM_LAYER: &[(&str, &str)] = &[
    ("input_layernorm", "attn_norm"),
    ("self_attention.query_key_value", "attn_qkv"),
    ("self_attention.dense", "attn_output"),
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.dense_h_to_4h", "ffn_up"),
    ("mlp.dense_4h_to_h", "ffn_down"),
];
const BLOOM_GLOBAL: &[(&str, &str)] = &[
    ("transformer.word_embeddings", "token_embd"),
    ("transformer.word_embeddings_layernorm", "token_embd_norm"),
    ("transformer.ln_f", "output_norm"),
    ("lm_head", "output"),
];

impl Arch {
    fn tables(self) -> (&'static str, NameTable, NameTable) {
        match self {
            Arch::Llama | Arch::Qwen2 | Arch::Gemma | Arch::Baichuan => ("model.layers.", LLAMA_LAYER, LLAMA_GLOBAL),
            Arch::Bloom => ("transformer.h.", BLOOM_LAYER, BLOOM_GLOBAL),
        }
    }

    /// The GGUF name of an HF tensor, `None` for tensors llama.cpp does not keep.
    pub(super) fn to_gguf(self, hf: &str) -> Option<String> {
        let (layers, per_layer, global) = self.tables();
        // BLOOM checkpoints exist with and without the `transformer.` prefix.
        let hf = if self == Arch::Bloom && !hf.starts_with("transformer.") && !hf.starts_with("lm_head") {
            format!("transformer.{hf}")
        } else {
            hf.to_string()
        };
        let (stem, suffix) = hf.rsplit_once('.')?;
        if suffix != "weight" && suffix != "bias" {
            return None;
        }
        if let Some(rest) = stem.strip_prefix(layers) {
            let (i, part) = rest.split_once('.')?;
            let i: usize = i.parse().ok()?;
            let g = per_layer.iter().find(|(h, _)| *h == part)?.1;
            return Some(format!("blk.{i}.{g}.{suffix}"));
        }
        let g = global.iter().find(|(h, _)| *h == stem)?.1;
        Some(format!("{g}.{suffix}"))
    }

    /// The HF name of a GGUF tensor.
    pub(super) fn to_hf(self, gguf: &str) -> Option<String> {
        let (layers, per_layer, global) = self.tables();
        let (stem, suffix) = gguf.rsplit_once('.')?;
        if let Some(rest) = stem.strip_prefix("blk.") {
            let (i, part) = rest.split_once('.')?;
            let h = per_layer.iter().find(|(_, g)| *g == part)?.0;
            return Some(format!("{layers}{i}.{h}.{suffix}"));
        }
        let h = global.iter().find(|(_, g)| *g == stem)?.0;
        Some(format!("{h}.{suffix}"))
    }
}

pub(super) fn cfg_u64(cfg: &Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| cfg.get(*k).and_then(Value::as_u64))
}

fn cfg_f64(cfg: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| cfg.pointer(k).or_else(|| cfg.get(*k)).and_then(Value::as_f64))
}

pub(super) fn arch_metadata(arch: Arch, cfg: &Value) -> Vec<(String, MetaValue)> {
    let a = arch.name();
    let mut md = Vec::new();
    let u32_key = |md: &mut Vec<(String, MetaValue)>, key: &str, v: Option<u64>| {
        if let Some(v) = v.and_then(|v| u32::try_from(v).ok()) {
            md.push((format!("{a}.{key}"), MetaValue::U32(v)));
        }
    };
    let hidden = cfg_u64(cfg, &["hidden_size", "n_embed"]);
    let n_head = cfg_u64(cfg, &["num_attention_heads", "n_head"]);
    match arch {
        Arch::Llama | Arch::Qwen2 | Arch::Gemma | Arch::Baichuan => {
            // Baichuan-13B names its context `model_max_length`.
            u32_key(&mut md, "context_length", cfg_u64(cfg, &["max_position_embeddings", "model_max_length"]));
            u32_key(&mut md, "embedding_length", hidden);
            u32_key(&mut md, "block_count", cfg_u64(cfg, &["num_hidden_layers"]));
            u32_key(&mut md, "feed_forward_length", cfg_u64(cfg, &["intermediate_size"]));
            u32_key(&mut md, "attention.head_count", n_head);
            u32_key(&mut md, "attention.head_count_kv", cfg_u64(cfg, &["num_key_value_heads"]).or(n_head));
            let head_dim = cfg_u64(cfg, &["head_dim"]).or_else(|| Some(hidden? / n_head?));
            u32_key(&mut md, "rope.dimension_count", head_dim);
            if cfg.get("head_dim").is_some() {
                u32_key(&mut md, "attention.key_length", head_dim);
                u32_key(&mut md, "attention.value_length", head_dim);
            }
            let theta = cfg_f64(cfg, &["/rope_parameters/rope_theta", "rope_theta"]).unwrap_or(10000.0);
            md.push((format!("{a}.rope.freq_base"), MetaValue::F32(theta as f32)));
            let eps = cfg_f64(cfg, &["rms_norm_eps"]).unwrap_or(1e-6);
            md.push((format!("{a}.attention.layer_norm_rms_epsilon"), MetaValue::F32(eps as f32)));
        }
        Arch::Bloom => {
            u32_key(&mut md, "context_length", cfg_u64(cfg, &["seq_length"]).or(hidden));
            u32_key(&mut md, "embedding_length", hidden);
            u32_key(&mut md, "feed_forward_length", hidden.map(|h| 4 * h));
            u32_key(&mut md, "block_count", cfg_u64(cfg, &["n_layer", "num_hidden_layers"]));
            u32_key(&mut md, "attention.head_count", n_head);
            u32_key(&mut md, "attention.head_count_kv", n_head);
            let eps = cfg_f64(cfg, &["layer_norm_epsilon"]).unwrap_or(1e-5);
            md.push((format!("{a}.attention.layer_norm_epsilon"), MetaValue::F32(eps as f32)));
        }
    }
    u32_key(&mut md, "vocab_size", cfg_u64(cfg, &["vocab_size"]));
    md
}

pub(super) fn meta_u64(ck: &Checkpoint, key: &str) -> Option<u64> {
    ck.gguf()?.get(key)?.as_u64()
}

fn meta_f32(ck: &Checkpoint, key: &str) -> Option<f64> {
    match ck.gguf()?.get(key)? {
        MetaValue::F32(v) => Some(f64::from(*v)),
        MetaValue::F64(v) => Some(*v),
        _ => None,
    }
}

/// `config.json` for a known architecture, from the GGUF hyper-parameters.
pub(super) fn hf_config(arch: Arch, ck: &Checkpoint, dtype: Dtype) -> Value {
    let a = arch.name();
    let k = |key: &str| meta_u64(ck, &format!("{a}.{key}"));
    let vocab = k("vocab_size").or_else(|| {
        ck.gguf()?.get("tokenizer.ggml.tokens").and_then(|v| match v {
            MetaValue::Array(t) => Some(t.len() as u64),
            _ => None,
        })
    });
    let torch_dtype = match dtype {
        Dtype::F16 => "float16",
        Dtype::BF16 => "bfloat16",
        _ => "float32",
    };
    let bos = meta_u64(ck, "tokenizer.ggml.bos_token_id");
    let eos = meta_u64(ck, "tokenizer.ggml.eos_token_id");
    match arch {
        Arch::Baichuan => json!({
            "architectures": [arch.hf_class()],
            "model_type": "baichuan",
            "hidden_size": k("embedding_length"),
            "intermediate_size": k("feed_forward_length"),
            "num_hidden_layers": k("block_count"),
            "num_attention_heads": k("attention.head_count"),
            "max_position_embeddings": k("context_length"),
            "model_max_length": k("context_length"),
            "rms_norm_eps": meta_f32(ck, "baichuan.attention.layer_norm_rms_epsilon"),
            "vocab_size": vocab,
            "hidden_act": "silu",
            "tie_word_embeddings": false,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "torch_dtype": torch_dtype,
        }),
        Arch::Llama | Arch::Qwen2 | Arch::Gemma => {
            let tied = ck.get("output.weight").is_none();
            let mut c = json!({
                "architectures": [arch.hf_class()],
                "model_type": a,
                "hidden_size": k("embedding_length"),
                "intermediate_size": k("feed_forward_length"),
                "num_hidden_layers": k("block_count"),
                "num_attention_heads": k("attention.head_count"),
                "num_key_value_heads": k("attention.head_count_kv"),
                "max_position_embeddings": k("context_length"),
                "rms_norm_eps": meta_f32(ck, &format!("{a}.attention.layer_norm_rms_epsilon")),
                "rope_theta": meta_f32(ck, &format!("{a}.rope.freq_base")).unwrap_or(10000.0),
                "vocab_size": vocab,
                "hidden_act": if arch == Arch::Gemma { "gelu_pytorch_tanh" } else { "silu" },
                "tie_word_embeddings": tied,
                "bos_token_id": bos,
                "eos_token_id": eos,
                "torch_dtype": torch_dtype,
            });
            if let Some(h) = k("attention.key_length")
                && let Some(o) = c.as_object_mut()
            {
                o.insert("head_dim".into(), json!(h));
            }
            c
        }
        Arch::Bloom => json!({
            "architectures": [arch.hf_class()],
            "model_type": "bloom",
            "hidden_size": k("embedding_length"),
            "n_layer": k("block_count"),
            "n_head": k("attention.head_count"),
            "layer_norm_epsilon": meta_f32(ck, "bloom.attention.layer_norm_epsilon"),
            "vocab_size": vocab,
            "tie_word_embeddings": true,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "torch_dtype": torch_dtype,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public tables, the converter's architectures and its messages say the same thing:
    /// every HF name converts to its GGUF architecture, every architecture has an HF name, and
    /// what `dequantize` writes as `architectures[0]` converts back to the same architecture.
    #[test]
    fn architecture_tables_agree() {
        let folder = Path::new("m");
        for (hf, gguf) in HF_ARCHITECTURES {
            let cfg = json!({ "architectures": [hf], "model_type": "something-else" });
            let arch = Arch::from_config(&cfg, folder).unwrap_or_else(|e| panic!("{hf}: {e}"));
            assert_eq!(arch.name(), *gguf, "{hf}");
        }
        let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names, GGUF_ARCHITECTURES);
        assert_eq!(SUPPORTED, GGUF_ARCHITECTURES.join(", "));
        for a in Arch::ALL {
            assert!(HF_ARCHITECTURES.iter().any(|(_, g)| *g == a.name()), "{a:?} has no HF name");
            let cfg = json!({ "architectures": [a.hf_class()] });
            assert_eq!(Arch::from_config(&cfg, folder).ok(), Some(a), "{a:?}");
            // A config with only `model_type` still converts.
            assert_eq!(Arch::from_config(&json!({ "model_type": a.name() }), folder).ok(), Some(a));
        }
        let mut hf: Vec<&str> = HF_ARCHITECTURES.iter().map(|(n, _)| *n).collect();
        hf.sort_unstable();
        hf.dedup();
        assert_eq!(hf.len(), HF_ARCHITECTURES.len(), "an HF name is listed twice");
        let err = Arch::from_config(&json!({ "architectures": ["MambaForCausalLM"] }), folder).unwrap_err();
        assert!(err.to_string().contains("MambaForCausalLM") && err.to_string().contains(SUPPORTED), "{err}");
    }

    /// The tiny-LLaMA shape of a Yi checkpoint converts as LLaMA (names and permutation).
    #[test]
    fn yi_is_llama_shaped() {
        let cfg = json!({ "architectures": ["YiForCausalLM"], "model_type": "Yi" });
        assert_eq!(Arch::from_config(&cfg, Path::new("yi")).ok(), Some(Arch::Llama));
        assert_eq!(
            Arch::Llama.to_gguf("model.layers.0.self_attn.q_proj.weight").as_deref(),
            Some("blk.0.attn_q.weight")
        );
    }

    #[test]
    fn names_map_both_ways() {
        for (arch, hf, g) in [
            (Arch::Llama, "model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight"),
            (Arch::Llama, "model.embed_tokens.weight", "token_embd.weight"),
            (Arch::Llama, "lm_head.weight", "output.weight"),
            (Arch::Qwen2, "model.layers.0.self_attn.k_proj.bias", "blk.0.attn_k.bias"),
            (Arch::Bloom, "transformer.h.1.self_attention.query_key_value.bias", "blk.1.attn_qkv.bias"),
            (Arch::Bloom, "transformer.word_embeddings_layernorm.weight", "token_embd_norm.weight"),
        ] {
            assert_eq!(arch.to_gguf(hf).as_deref(), Some(g));
            assert_eq!(arch.to_hf(g).as_deref(), Some(hf));
        }
        assert_eq!(Arch::Llama.to_gguf("model.layers.0.self_attn.rotary_emb.inv_freq"), None);
        assert_eq!(Arch::Bloom.to_gguf("h.0.mlp.dense_4h_to_h.weight").as_deref(), Some("blk.0.ffn_down.weight"));
    }
}

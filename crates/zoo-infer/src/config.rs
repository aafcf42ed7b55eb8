//! One normalized model description, read from a Hugging Face `config.json` (transformers 4 or 5
//! style) or from GGUF metadata; the architecture comes from `architectures[0]` or
//! `general.architecture`.

use std::path::Path;

use serde_json::Value;
use zoo_weights::gguf::{Gguf, MetaValue};

use crate::error::{InferError, Result};

/// The architectures the runner implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// LLaMA and its exact relatives: Chimera, Ziya, Yi, SmolLM2.
    Llama,
    /// Qwen2 / Qwen1.5: LLaMA with q/k/v biases (Apollo-0.5B/1.8B/7B, Apollo2).
    Qwen2,
    /// Gemma 1: `1 + weight` RMSNorm, scaled embeddings, tanh GELU (Apollo-2B/7B).
    Gemma,
    /// Baichuan and Baichuan2: LLaMA with a packed `W_pack` (HuatuoGPT-7B, HuatuoGPT2).
    Baichuan,
    /// BLOOM: ALiBi, fused per-head QKV, LayerNorms with biases (Phoenix).
    Bloom,
}

/// `architectures[0]` values accepted, mapped to GGUF architecture names: the converter's
/// table, so the runner and the converter accept the same models.
pub use zoo_weights::gguf_convert::{GGUF_ARCHITECTURES, HF_ARCHITECTURES};

impl Arch {
    /// The architecture of a GGUF name (`llama`, `qwen2`, `gemma`, `baichuan`, `bloom`).
    pub fn from_gguf_name(name: &str) -> Option<Arch> {
        [Arch::Llama, Arch::Qwen2, Arch::Gemma, Arch::Baichuan, Arch::Bloom].into_iter().find(|a| a.name() == name)
    }

    /// The architecture of an `architectures[0]` value.
    pub fn from_hf_name(name: &str) -> Option<Arch> {
        HF_ARCHITECTURES.iter().find(|(n, _)| *n == name).and_then(|(_, g)| Arch::from_gguf_name(g))
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma => "gemma",
            Arch::Baichuan => "baichuan",
            Arch::Bloom => "bloom",
        }
    }

    fn supported_hf() -> String {
        HF_ARCHITECTURES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }
}

/// The feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// The tanh approximation (`gelu_pytorch_tanh`, BLOOM's `bloom_gelu`).
    GeluTanh,
    /// The exact erf GELU.
    Gelu,
}

/// Where the positions come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Positions {
    /// Rotary embeddings. `interleaved`: pairs are adjacent (GGUF LLaMA/Baichuan files, whose q/k
    /// rows llama.cpp's converter permuted) instead of split in halves (Hugging Face layout).
    /// `scale` divides positions (linear rope scaling).
    Rope { theta: f32, interleaved: bool, scale: f32 },
    /// ALiBi biases (BLOOM, Baichuan-13B and Baichuan2-13B).
    Alibi,
}

/// Everything the model code needs to know, whatever file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    /// The name as found (`architectures[0]` or `general.architecture`).
    pub arch_name: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub norm_eps: f64,
    pub positions: Positions,
    pub context_length: usize,
    pub tie_word_embeddings: bool,
    pub activation: Activation,
    /// q/k/v projections have biases (Qwen2).
    pub qkv_bias: bool,
    /// Baichuan2's "NormHead": lm_head rows are L2-normalized before use.
    pub norm_head: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// `torch_dtype` / `dtype` of the checkpoint, when stated.
    pub dtype: Option<String>,
}

/// BLOOM, and Baichuan-13B / Baichuan2-13B (40 layers), use ALiBi; the 7B Baichuans use RoPE.
/// This is how llama.cpp tells them apart too: their configs name no position scheme.
fn uses_alibi(arch: Arch, num_layers: usize) -> bool {
    arch == Arch::Bloom || (arch == Arch::Baichuan && num_layers == 40)
}

fn get<'a>(cfg: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| cfg.get(*k).filter(|v| !v.is_null()))
}

fn get_usize(cfg: &Value, keys: &[&str]) -> Option<usize> {
    get(cfg, keys).and_then(Value::as_u64).and_then(|v| usize::try_from(v).ok())
}

fn get_f64(cfg: &Value, keys: &[&str]) -> Option<f64> {
    get(cfg, keys).and_then(Value::as_f64)
}

/// Token ids given as one integer or a list (`eos_token_id`).
pub(crate) fn ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().and_then(|x| u32::try_from(x).ok()).into_iter().collect(),
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok())).collect(),
        _ => Vec::new(),
    }
}

impl ModelConfig {
    /// Reads `config.json` text (the path is for messages).
    pub fn from_hf_json(path: &Path, text: &str) -> Result<ModelConfig> {
        let cfg: Value = serde_json::from_str(text).map_err(|e| InferError::config(path, format!("not JSON: {e}")))?;
        if !cfg.is_object() {
            return Err(InferError::config(path, "not a JSON object"));
        }
        let arch_name = match cfg.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str) {
            Some(a) => a.to_string(),
            None => {
                return Err(InferError::config(
                    path,
                    format!("no \"architectures\" list; supported: {}", Arch::supported_hf()),
                ));
            }
        };
        let arch = Arch::from_hf_name(&arch_name)
            .ok_or_else(|| InferError::UnsupportedArch { name: arch_name.clone(), supported: Arch::supported_hf() })?;
        let need = |keys: &[&str]| {
            get_usize(&cfg, keys).filter(|&v| v > 0).ok_or_else(|| {
                InferError::config(path, format!("{} is missing or not a positive integer", keys.join(" / ")))
            })
        };
        let hidden_size = need(&["hidden_size", "n_embed", "d_model"])?;
        let num_layers = need(&["num_hidden_layers", "n_layer", "num_layers"])?;
        let num_heads = need(&["num_attention_heads", "n_head"])?;
        let vocab_size = need(&["vocab_size"])?;
        let num_kv_heads = get_usize(&cfg, &["num_key_value_heads", "multi_query_group_num"]).unwrap_or(num_heads);
        let head_dim = match get_usize(&cfg, &["head_dim"]) {
            Some(d) => d,
            None if hidden_size % num_heads == 0 => hidden_size / num_heads,
            None => {
                return Err(InferError::config(
                    path,
                    format!("hidden_size {hidden_size} is not a multiple of {num_heads} heads"),
                ));
            }
        };
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(InferError::config(
                path,
                format!("{num_heads} attention heads cannot share {num_kv_heads} key/value heads"),
            ));
        }
        let intermediate_size = match arch {
            Arch::Bloom => get_usize(&cfg, &["intermediate_size", "n_inner"]).unwrap_or(4 * hidden_size),
            _ => need(&["intermediate_size"])?,
        };
        let norm_eps = get_f64(&cfg, &["rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"]).unwrap_or(match arch {
            Arch::Bloom => 1e-5,
            _ => 1e-6,
        });
        let positions = if uses_alibi(arch, num_layers) {
            Positions::Alibi
        } else {
            let params = cfg.get("rope_parameters");
            let theta = get_f64(&cfg, &["rope_theta"])
                .or_else(|| params.and_then(|p| get_f64(p, &["rope_theta"])))
                .unwrap_or(10000.0);
            let scaling = get(&cfg, &["rope_scaling"]).or(params);
            let scale = rope_scale(path, scaling)?;
            Positions::Rope { theta: theta as f32, interleaved: false, scale }
        };
        let context_length = get_usize(
            &cfg,
            &["max_position_embeddings", "model_max_length", "max_sequence_length", "seq_length", "n_positions"],
        )
        .unwrap_or(2048);
        let tie_default = matches!(arch, Arch::Gemma | Arch::Bloom);
        let tie_word_embeddings = cfg.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(tie_default);
        let act = get(&cfg, &["hidden_activation", "hidden_act"]).and_then(Value::as_str);
        let activation = match (arch, act) {
            (Arch::Bloom, _) => Activation::GeluTanh,
            // Gemma 1 configs say "gelu" but transformers runs the tanh approximation for them.
            (Arch::Gemma, _) => Activation::GeluTanh,
            (_, None | Some("silu") | Some("swish")) => Activation::Silu,
            (_, Some("gelu_pytorch_tanh") | Some("gelu_new") | Some("gelu_fast")) => Activation::GeluTanh,
            (_, Some("gelu")) => Activation::Gelu,
            (_, Some(other)) => {
                return Err(InferError::config(path, format!("activation {other:?} is not supported")));
            }
        };
        let qkv_bias = match arch {
            Arch::Qwen2 => true,
            Arch::Llama => cfg.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
            _ => false,
        };
        // Baichuan2 (its configs carry `z_loss_weight`; vocabulary 125696) normalizes the head.
        let norm_head = arch == Arch::Baichuan && (cfg.get("z_loss_weight").is_some() || vocab_size == 125_696);
        let dtype = get(&cfg, &["torch_dtype", "dtype"]).and_then(Value::as_str).map(str::to_string);
        Ok(ModelConfig {
            arch,
            arch_name,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            norm_eps,
            positions,
            context_length,
            tie_word_embeddings,
            activation,
            qkv_bias,
            norm_head,
            bos_token_id: ids(cfg.get("bos_token_id")).first().copied(),
            eos_token_ids: ids(cfg.get("eos_token_id")),
            dtype,
        })
    }

    /// Reads GGUF metadata (`general.architecture`, `<arch>.*`, `tokenizer.ggml.*` ids).
    pub fn from_gguf(g: &Gguf) -> Result<ModelConfig> {
        let path = g.path.as_path();
        let supported = || GGUF_ARCHITECTURES.join(", ");
        let arch_name = g
            .get("general.architecture")
            .and_then(MetaValue::as_str)
            .ok_or_else(|| InferError::config(path, "general.architecture is missing"))?
            .to_string();
        let arch = Arch::from_gguf_name(&arch_name)
            .ok_or_else(|| InferError::UnsupportedArch { name: arch_name.clone(), supported: supported() })?;
        let prefix = arch_name.clone();
        let key = |k: &str| format!("{prefix}.{k}");
        let uint = |k: &str| g.get(&key(k)).and_then(MetaValue::as_u64).and_then(|v| usize::try_from(v).ok());
        let float = |k: &str| match g.get(&key(k)) {
            Some(MetaValue::F32(v)) => Some(f64::from(*v)),
            Some(MetaValue::F64(v)) => Some(*v),
            _ => None,
        };
        let need = |k: &str| {
            uint(k).filter(|&v| v > 0).ok_or_else(|| InferError::config(path, format!("{} is missing", key(k))))
        };
        let hidden_size = need("embedding_length")?;
        let num_layers = need("block_count")?;
        let num_heads = need("attention.head_count")?;
        let num_kv_heads = uint("attention.head_count_kv").unwrap_or(num_heads);
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(InferError::config(path, format!("{num_heads} heads cannot share {num_kv_heads} kv heads")));
        }
        let head_dim = uint("attention.key_length")
            .or_else(|| uint("rope.dimension_count").filter(|_| arch != Arch::Gemma))
            .unwrap_or(hidden_size / num_heads.max(1));
        let intermediate_size = uint("feed_forward_length").unwrap_or(4 * hidden_size);
        let vocab_size = match uint("vocab_size") {
            Some(v) => v,
            None => match g.get("tokenizer.ggml.tokens") {
                Some(MetaValue::Array(a)) => a.len(),
                _ => g
                    .tensors
                    .iter()
                    .find(|t| t.name == "token_embd.weight")
                    .and_then(|t| t.dims.get(1))
                    .and_then(|&v| usize::try_from(v).ok())
                    .ok_or_else(|| InferError::config(path, "the vocabulary size is unknown"))?,
            },
        };
        let norm_eps =
            float("attention.layer_norm_rms_epsilon").or_else(|| float("attention.layer_norm_epsilon")).unwrap_or(1e-5);
        let positions = if uses_alibi(arch, num_layers) {
            Positions::Alibi
        } else {
            // llama.cpp's converter permutes q/k rows of LLaMA and Baichuan for its interleaved
            // ("normal") rope; Qwen2 and Gemma keep the Hugging Face halves ("neox").
            let interleaved = matches!(arch, Arch::Llama | Arch::Baichuan);
            let scale = match g.get(&key("rope.scaling.type")).and_then(MetaValue::as_str) {
                None | Some("none") => 1.0,
                Some("linear") => float("rope.scaling.factor").unwrap_or(1.0) as f32,
                Some(other) => {
                    return Err(InferError::config(path, format!("rope scaling {other:?} is not supported")));
                }
            };
            Positions::Rope { theta: float("rope.freq_base").unwrap_or(10000.0) as f32, interleaved, scale }
        };
        let token_id = |k: &str| {
            g.get(&format!("tokenizer.ggml.{k}")).and_then(MetaValue::as_u64).and_then(|v| u32::try_from(v).ok())
        };
        let has_output = g.tensors.iter().any(|t| t.name == "output.weight");
        Ok(ModelConfig {
            arch,
            arch_name,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            norm_eps,
            positions,
            context_length: uint("context_length").unwrap_or(2048),
            tie_word_embeddings: !has_output,
            activation: match arch {
                Arch::Bloom | Arch::Gemma => Activation::GeluTanh,
                _ => Activation::Silu,
            },
            qkv_bias: g.tensors.iter().any(|t| t.name == "blk.0.attn_q.bias"),
            // llama.cpp's converter stores Baichuan2's head already normalized; normalizing
            // again is harmless, so GGUF files are treated the same way.
            norm_head: arch == Arch::Baichuan && vocab_size == 125_696,
            bos_token_id: token_id("bos_token_id"),
            eos_token_ids: token_id("eos_token_id").into_iter().collect(),
            dtype: None,
        })
    }
}

/// The position divisor of a `rope_scaling` / `rope_parameters` object.
fn rope_scale(path: &Path, scaling: Option<&Value>) -> Result<f32> {
    let Some(s) = scaling.filter(|s| s.is_object()) else {
        return Ok(1.0);
    };
    let kind = get(s, &["rope_type", "type"]).and_then(Value::as_str).unwrap_or("default");
    match kind {
        "default" => Ok(1.0),
        "linear" => Ok(get_f64(s, &["factor"]).unwrap_or(1.0) as f32),
        other => Err(InferError::config(path, format!("rope scaling {other:?} is not supported (default, linear)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelConfig> {
        ModelConfig::from_hf_json(Path::new("config.json"), text)
    }

    #[test]
    fn transformers_4_and_5_rope_keys() {
        let base = r#""architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 8"#;
        let v4 = parse(&format!("{{{base}, \"rope_theta\": 100000.0, \"torch_dtype\": \"bfloat16\"}}")).unwrap();
        let v5 = parse(&format!(
            "{{{base}, \"rope_parameters\": {{\"rope_theta\": 100000.0, \"rope_type\": \"default\"}}, \"dtype\": \"bfloat16\"}}"
        ))
        .unwrap();
        assert_eq!(v4, v5);
        assert_eq!(v4.positions, Positions::Rope { theta: 100000.0, interleaved: false, scale: 1.0 });
        assert_eq!(v4.dtype.as_deref(), Some("bfloat16"));
    }

    #[test]
    fn unknown_architecture_lists_supported() {
        let err = parse(r#"{"architectures": ["MambaForCausalLM"]}"#).unwrap_err().to_string();
        assert!(err.contains("MambaForCausalLM") && err.contains("BloomForCausalLM"), "{err}");
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(parse("[1]").is_err());
        assert!(parse("{").is_err());
        let e = parse(r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}"#).unwrap_err().to_string();
        assert!(e.contains("num_hidden_layers"), "{e}");
        let e = parse(
            r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 8, "intermediate_size": 8}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("key/value heads"), "{e}");
        let e = parse(
            r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 4, "vocab_size": 8, "intermediate_size": 8,
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("yarn"), "{e}");
    }
}

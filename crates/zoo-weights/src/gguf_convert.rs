//! Hugging Face checkpoints to llama.cpp-compatible GGUF files (quantized or not), and any GGUF
//! back to a Hugging Face folder. One tensor is in memory at a time.
//!
//! Tensor names, hyper-parameter keys, LLaMA's q/k row permutation and BLOOM's fused-QKV
//! reordering follow llama.cpp's `convert_hf_to_gguf.py`; the type of each tensor follows
//! `llama-quantize` (see `docs/QUANTIZATION.md` for the mix and the fallbacks).

use std::path::{Path, PathBuf};

use half::f16;
use serde_json::{Value, json};
use zoo_progress::{CancelToken, Event, Progress, Unit};

use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::dtype::{Dtype, GgmlType};
use crate::error::{Result, WeightsError, io_err};
use crate::gguf::MetaValue;
use crate::gguf_write::{GgufTensorSpec, GgufWriteReport, GgufWriter};
use crate::kernels;
use crate::quant::{self, QuantType};
use crate::safetensors::TensorSpec;
use crate::writer::{SafetensorsWriter, WriteOptions, WriteReport};

/// Largest single tensor converted (it is held in memory as f32).
const MAX_TENSOR_BYTES: u64 = 16 << 30;

/// What `--type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutType {
    F32,
    F16,
    BF16,
    /// Every 2-D tensor in one block type.
    Pure(QuantType),
    /// llama.cpp's Q4_K_M mix.
    Q4KM,
}

impl OutType {
    /// Every accepted name, for help texts.
    pub const NAMES: [&str; 12] =
        ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k", "q4_k_m"];

    /// Parses `f16`, `q4_0`, `q4_k_m`, ... in any case.
    pub fn from_name(name: &str) -> Option<OutType> {
        match name.to_ascii_lowercase().as_str() {
            "f32" => Some(OutType::F32),
            "f16" => Some(OutType::F16),
            "bf16" => Some(OutType::BF16),
            "q4_k_m" => Some(OutType::Q4KM),
            other => QuantType::from_name(other).map(OutType::Pure),
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::BF16 => 32,
            OutType::Pure(QuantType::Q4_0) => 2,
            OutType::Pure(QuantType::Q4_1) => 3,
            OutType::Pure(QuantType::Q8_0) => 7,
            OutType::Pure(QuantType::Q5_0) => 8,
            OutType::Pure(QuantType::Q5_1) => 9,
            OutType::Pure(QuantType::Q4K) => 14, // Q4_K_S
            OutType::Q4KM => 15,
            OutType::Pure(QuantType::Q5K) => 16, // Q5_K_S
            OutType::Pure(QuantType::Q6K) => 18,
        }
    }
}

/// llama.cpp's name for the Hugging Face tensor `hf` of a model whose GGUF architecture is
/// `arch` (`bloom` and `qwen2` have tables of their own; `llama`, `gemma`, `baichuan` use LLaMA's
/// names), `None` for tensors llama.cpp does not keep. The runner reads GGUF files with it.
pub fn gguf_tensor_name(arch: &str, hf: &str) -> Option<String> {
    let a = match arch {
        "bloom" => Arch::Bloom,
        "qwen2" => Arch::Qwen2,
        _ => Arch::Llama,
    };
    a.to_gguf(hf)
}

/// How [`quantize`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizeOptions {
    pub out_type: OutType,
    /// Any safetensors file, names kept, no architecture metadata.
    pub raw: bool,
    /// Threads for rows of one tensor.
    pub threads: usize,
    pub overwrite: bool,
    /// Measure RMSE and max error of every tensor against its source.
    pub measure: bool,
}

/// One tensor of the output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub source: String,
    pub ggml_type: GgmlType,
    /// Row-major shape.
    pub shape: Vec<u64>,
    /// Why the type differs from the one asked for, if it does because of the row length.
    pub fallback: Option<String>,
    pub rmse: Option<f64>,
    pub max_err: Option<f64>,
}

/// What [`quantize`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeReport {
    pub arch: Option<String>,
    pub write: GgufWriteReport,
    pub tensors: Vec<TensorReport>,
    pub skipped: Vec<String>,
}

/// An architecture this module knows: HF names ↔ GGUF names, hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
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
    fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma => "gemma",
            Arch::Bloom => "bloom",
            Arch::Baichuan => "baichuan",
        }
    }

    fn from_config(cfg: &Value, folder: &Path) -> Result<Arch> {
        let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or_default();
        let arch0 = cfg.pointer("/architectures/0").and_then(Value::as_str).unwrap_or_default();
        match (model_type, arch0) {
            ("llama", _) | (_, "LlamaForCausalLM") => Ok(Arch::Llama),
            ("qwen2", _) | (_, "Qwen2ForCausalLM") => Ok(Arch::Qwen2),
            ("gemma", _) | (_, "GemmaForCausalLM") => Ok(Arch::Gemma),
            ("bloom", _) | (_, "BloomForCausalLM") => Ok(Arch::Bloom),
            ("baichuan", _) | (_, "BaichuanForCausalLM" | "BaiChuanForCausalLM") => Ok(Arch::Baichuan),
            _ => Err(WeightsError::UnsupportedArchitecture {
                path: folder.join("config.json"),
                arch: format!("{} (model_type `{model_type}`)", if arch0.is_empty() { "?" } else { arch0 }),
                supported: "llama, qwen2, gemma, bloom, baichuan",
            }),
        }
    }

    fn from_gguf(name: &str) -> Option<Arch> {
        [Arch::Llama, Arch::Qwen2, Arch::Gemma, Arch::Bloom, Arch::Baichuan].into_iter().find(|a| a.name() == name)
    }
}

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
    fn to_gguf(self, hf: &str) -> Option<String> {
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
    fn to_hf(self, gguf: &str) -> Option<String> {
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

/// How rows of a tensor are reordered on the way into GGUF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reorder {
    None,
    /// llama.cpp's `permute(w, n_head)`: rows `(h, 2, half)` → `(h, half, 2)`.
    Rope {
        n_head: usize,
    },
    /// BLOOM's fused QKV: rows `(n_head, 3, head_dim)` → `(3, n_head, head_dim)`.
    BloomQkv {
        n_head: usize,
    },
    /// Not a reordering: Gemma's norm weights get `+1` on the way in (`-1` on the way out).
    AddOne,
    /// Not a reordering: every row divided by its L2 norm (Baichuan2's NormHead, applied once
    /// at conversion as llama.cpp expects; the way out keeps the normalized rows, which the
    /// NormHead normalizes again to the same values).
    NormRows,
}

impl Reorder {
    /// What the GGUF tensor `gguf` (a llama.cpp name) of `arch` needs.
    fn of(arch: Arch, gguf: &str, n_head: usize, n_kv: usize) -> Reorder {
        match (arch, gguf.rsplit('.').nth(1)) {
            (Arch::Llama | Arch::Baichuan, Some("attn_q")) => Reorder::Rope { n_head },
            (Arch::Llama | Arch::Baichuan, Some("attn_k")) => Reorder::Rope { n_head: n_kv },
            (Arch::Bloom, Some("attn_qkv")) => Reorder::BloomQkv { n_head },
            (Arch::Gemma, Some(part)) if part.ends_with("_norm") && gguf.ends_with(".weight") => Reorder::AddOne,
            _ => Reorder::None,
        }
    }

    /// For output row `r` of `rows`, the input row it comes from (`inverse`: the other way).
    fn source_row(self, r: usize, rows: usize, inverse: bool) -> usize {
        let (a, b, c, swap): (usize, usize, usize, bool) = match self {
            Reorder::None | Reorder::AddOne | Reorder::NormRows => return r,
            Reorder::Rope { n_head } => {
                let per = rows / n_head.max(1);
                (n_head, 2, per / 2, true)
            }
            Reorder::BloomQkv { n_head } => (n_head, 3, rows / n_head.max(1) / 3, false),
        };
        if a * b * c != rows || c == 0 {
            return r;
        }
        if swap {
            // Input (h, j, i) over (a, b, c); output (h, i, j) over (a, c, b).
            if inverse {
                let (h, j, i) = (r / (b * c), (r / c) % b, r % c);
                h * b * c + i * b + j
            } else {
                let (h, i, j) = (r / (b * c), (r / b) % c, r % b);
                h * b * c + j * c + i
            }
        } else {
            // Input (h, k, d) over (a, b, c); output (k, h, d) over (b, a, c).
            if inverse {
                let (h, k, d) = (r / (b * c), (r / c) % b, r % c);
                k * a * c + h * c + d
            } else {
                let (k, h, d) = (r / (a * c), (r / c) % a, r % c);
                h * b * c + k * c + d
            }
        }
    }

    fn apply(self, x: Vec<f32>, rows: usize, inverse: bool) -> Vec<f32> {
        if self == Reorder::None || rows == 0 {
            return x;
        }
        if self == Reorder::AddOne {
            let d = if inverse { -1.0 } else { 1.0 };
            return x.into_iter().map(|v| v + d).collect();
        }
        if self == Reorder::NormRows {
            if inverse {
                return x;
            }
            let cols = x.len() / rows;
            let mut x = x;
            for row in x.chunks_mut(cols.max(1)) {
                // torch.nn.functional.normalize: v / max(||v||, 1e-12), the norm in f32.
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
            }
            return x;
        }
        let cols = x.len() / rows;
        let mut out = Vec::with_capacity(x.len());
        for r in 0..rows {
            let s = self.source_row(r, rows, inverse);
            out.extend_from_slice(x.get(s * cols..(s + 1) * cols).unwrap_or_default());
        }
        out
    }
}

fn cfg_u64(cfg: &Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| cfg.get(*k).and_then(Value::as_u64))
}

fn cfg_f64(cfg: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| cfg.pointer(k).or_else(|| cfg.get(*k)).and_then(Value::as_f64))
}

fn arch_metadata(arch: Arch, cfg: &Value) -> Vec<(String, MetaValue)> {
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

/// llama.cpp's `use_more_bits(i, n)`: the first and last eighth of layers and every third one
/// in between.
fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type of one tensor and, when the row length forced a change, why.
fn pick_type(out: OutType, name: &str, shape: &[u64], n_layer: usize) -> (GgmlType, Option<String>) {
    let row = shape.last().copied().unwrap_or(1);
    if shape.len() < 2 {
        return (GgmlType::F32, None);
    }
    let wanted = match out {
        OutType::F32 => return (GgmlType::F32, None),
        OutType::F16 => return (GgmlType::F16, None),
        OutType::BF16 => return (GgmlType::BF16, None),
        OutType::Pure(q) => q,
        OutType::Q4KM => {
            let layer = name.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|i| i.parse().ok());
            let more = layer.is_some_and(|i| use_more_bits(i, n_layer));
            // llama.cpp files BLOOM's fused `attn_qkv` under attn_v (`category_is_attn_v`), and
            // that branch comes first: its Q5_K branch for `attn_qkv` is never reached.
            let attn_v = name.ends_with(".attn_v.weight") || name.ends_with(".attn_qkv.weight");
            if name == "output.weight" || (more && (attn_v || name.ends_with(".ffn_down.weight"))) {
                QuantType::Q6K
            } else {
                QuantType::Q4K
            }
        }
    };
    if row.is_multiple_of(wanted.block_size() as u64) {
        return (wanted.ggml_type(), None);
    }
    // llama-quantize's fallbacks for k-quants; anything that still does not fit becomes F16.
    let second = match wanted {
        QuantType::Q4K => Some(QuantType::Q5_0),
        QuantType::Q5K => Some(QuantType::Q5_1),
        QuantType::Q6K => Some(QuantType::Q8_0),
        _ => None,
    };
    let (ty, to) = match second {
        Some(s) if row.is_multiple_of(s.block_size() as u64) => (s.ggml_type(), s.name()),
        _ => (GgmlType::F16, "F16"),
    };
    (ty, Some(format!("row of {row} is not a multiple of {wanted}'s block of {}: {to}", wanted.block_size())))
}

/// Reads a float tensor of any width into f32.
fn read_f32(ck: &Checkpoint, t: &TensorInfo) -> Result<Vec<f32>> {
    if !matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64) {
        return Err(WeightsError::UnsupportedDtype { tensor: t.name.clone(), dtype: t.dtype, op: "quantize" });
    }
    if t.byte_len > MAX_TENSOR_BYTES {
        return Err(WeightsError::TensorTooLarge {
            tensor: t.name.clone(),
            byte_len: t.byte_len,
            limit: MAX_TENSOR_BYTES,
        });
    }
    let n = crate::dtype::numel(&t.shape).unwrap_or(0) as usize;
    let width = t.dtype.size().unwrap_or(4).max(1) as usize;
    // Read in 4 MiB pieces straight into the f32 buffer: no tensor-sized byte copy to allocate,
    // fault in and free for every tensor.
    let mut out = vec![0f32; n];
    let mut buf = vec![0u8; (4 << 20) / width * width];
    let (mut offset, mut done) = (0u64, 0usize);
    while done < n {
        let got = ck.read_chunk(t, offset, &mut buf)?;
        if got == 0 {
            break;
        }
        let dst = out.get_mut(done..).unwrap_or_default();
        let converted = kernels::to_f32(t.dtype, buf.get(..got).unwrap_or_default(), dst);
        done += converted;
        offset += got as u64;
    }
    if done != n {
        return Err(WeightsError::InvalidOutput { reason: format!("tensor `{}`: read {done} of {n} values", t.name) });
    }
    Ok(out)
}

/// f32 values in a dense or block ggml type.
fn encode(ty: GgmlType, x: &[f32], row: usize, threads: usize) -> Result<Vec<u8>> {
    Ok(match ty {
        GgmlType::F32 => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => x.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
        GgmlType::BF16 => x.iter().flat_map(|v| kernels::f32_to_bf16(*v).to_le_bytes()).collect(),
        other => {
            let Some(q) = QuantType::from_ggml(other) else {
                return Err(WeightsError::InvalidOutput { reason: format!("cannot write {other}") });
            };
            let rows = x.len().checked_div(row).unwrap_or(0);
            let mut out = vec![0u8; rows * q.row_bytes(row).map_err(quant_err)?];
            quant::quantize_rows_parallel(q, x, row, &mut out, threads).map_err(quant_err)?;
            out
        }
    })
}

/// Bytes of a dense or block ggml type back to f32.
fn decode(name: &str, ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n];
    if let Some(d) = ty.dense().filter(|d| matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)) {
        kernels::to_f32(d, bytes, &mut out);
        return Ok(out);
    }
    let Some(q) = QuantType::from_ggml(ty) else {
        return Err(WeightsError::UnsupportedDtype { tensor: name.into(), dtype: Dtype::Ggml(ty), op: "dequantize" });
    };
    quant::dequantize_row(q, bytes, &mut out).map_err(quant_err)?;
    Ok(out)
}

fn quant_err(e: quant::QuantError) -> WeightsError {
    WeightsError::InvalidOutput { reason: e.to_string() }
}

/// One tensor to convert.
struct Item {
    gguf: String,
    source: TensorInfo,
    /// `Some((k, n))`: only the k-th of n equal row blocks of `source` (Baichuan's `W_pack`).
    part: Option<(usize, usize)>,
    reorder: Reorder,
    ty: GgmlType,
    fallback: Option<String>,
}

fn read_config(dir: &Path) -> Result<Value> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(io_err(&p, "read"))?;
    serde_json::from_str(&text)
        .map_err(|e| WeightsError::BadModelFile { path: p, reason: format!("not valid JSON: {e}") })
}

/// Converts `input` (an HF folder, or with `raw` any safetensors/.bin file) into the GGUF file
/// `dest`.
pub fn quantize(
    input: &Path,
    dest: &Path,
    opts: &QuantizeOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<QuantizeReport> {
    let ck = Checkpoint::open(input)?;
    let mut md: Vec<(String, MetaValue)> = Vec::new();
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    let arch = if opts.raw {
        md.push(("general.architecture".into(), MetaValue::String("raw".into())));
        for t in ck.tensors() {
            // GGUF has no unsigned or boolean tensor types; such tensors are left out, named.
            if !matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64) {
                skipped.push(t.name.clone());
                continue;
            }
            let (mut ty, mut fallback) = pick_type(opts.out_type, &t.name, &t.shape, 0);
            // Raw mode promises "quantized as it is, or f32": no second-choice block type.
            if fallback.is_some() {
                ty = GgmlType::F32;
                fallback = fallback.map(|f| format!("{}: F32 (--raw)", f.rsplit_once(':').map_or(f.as_str(), |x| x.0)));
            }
            items.push(Item {
                gguf: t.name.clone(),
                source: t.clone(),
                part: None,
                reorder: Reorder::None,
                ty,
                fallback,
            });
        }
        None
    } else {
        let dir: PathBuf = if input.is_dir() { input.into() } else { ck.folder().into() };
        let cfg = read_config(&dir)?;
        let arch = Arch::from_config(&cfg, &dir)?;
        let n_layer = cfg_u64(&cfg, &["num_hidden_layers", "n_layer"]).unwrap_or(0) as usize;
        let n_head = cfg_u64(&cfg, &["num_attention_heads", "n_head"]).unwrap_or(1) as usize;
        let n_kv = cfg_u64(&cfg, &["num_key_value_heads"]).unwrap_or(n_head as u64) as usize;
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("model").to_string();
        md.push(("general.architecture".into(), MetaValue::String(arch.name().into())));
        md.push(("general.name".into(), MetaValue::String(name)));
        md.extend(arch_metadata(arch, &cfg));
        md.push(("general.file_type".into(), MetaValue::U32(opts.out_type.file_type())));
        md.push(("general.quantization_version".into(), MetaValue::U32(2)));
        md.extend(crate::gguf_vocab::metadata_from_folder(&dir, &cfg)?);
        // Baichuan2's NormHead (its configs carry `z_loss_weight`; vocabulary 125696), as the
        // runner detects it.
        let norm_head = arch == Arch::Baichuan
            && (cfg.get("z_loss_weight").is_some() || cfg_u64(&cfg, &["vocab_size"]) == Some(125_696));
        for t in ck.tensors() {
            // Baichuan's W_pack is [Q; K; V] by rows: three GGUF tensors, as llama.cpp's
            // converter writes them.
            if arch == Arch::Baichuan
                && let Some(layer) =
                    t.name.strip_prefix("model.layers.").and_then(|r| r.strip_suffix(".self_attn.W_pack.weight"))
                && layer.parse::<usize>().is_ok()
            {
                let (rows, cols) = match t.shape.as_slice() {
                    [r, c] => (*r, *c),
                    _ => (0, 0),
                };
                if rows == 0 || rows % 3 != 0 {
                    return Err(WeightsError::InvalidOutput {
                        reason: format!("`{}`: shape {:?} is not [3 x hidden, hidden]", t.name, t.shape),
                    });
                }
                for (k, part) in ["attn_q", "attn_k", "attn_v"].iter().enumerate() {
                    let g = format!("blk.{layer}.{part}.weight");
                    let mut src = t.clone();
                    src.shape = vec![rows / 3, cols];
                    let reorder = Reorder::of(arch, &g, n_head, n_kv);
                    let (ty, fallback) = pick_type(opts.out_type, &g, &src.shape, n_layer);
                    items.push(Item { gguf: g, source: src, part: Some((k, 3)), reorder, ty, fallback });
                }
                continue;
            }
            let Some(g) = arch.to_gguf(&t.name) else {
                skipped.push(t.name.clone());
                continue;
            };
            let reorder =
                if norm_head && g == "output.weight" { Reorder::NormRows } else { Reorder::of(arch, &g, n_head, n_kv) };
            let (ty, fallback) = pick_type(opts.out_type, &g, &t.shape, n_layer);
            items.push(Item { gguf: g, source: t.clone(), part: None, reorder, ty, fallback });
        }
        // BLOOM ties the output to the embeddings; llama.cpp stores the copy.
        if arch == Arch::Bloom
            && !items.iter().any(|i| i.gguf == "output.weight")
            && let Some(e) = items.iter().find(|i| i.gguf == "token_embd.weight")
        {
            let (ty, fallback) = pick_type(opts.out_type, "output.weight", &e.source.shape, n_layer);
            items.push(Item {
                gguf: "output.weight".into(),
                source: e.source.clone(),
                part: None,
                reorder: Reorder::None,
                ty,
                fallback,
            });
        }
        Some(arch.name().to_string())
    };
    let mut specs = Vec::with_capacity(items.len());
    for it in &items {
        let dims: Vec<u64> = it.source.shape.iter().rev().copied().collect();
        let byte_len = Dtype::Ggml(it.ty).byte_size(&it.source.shape).ok_or_else(|| WeightsError::InvalidOutput {
            reason: format!("tensor `{}`: shape {:?} does not fit {}", it.gguf, it.source.shape, it.ty),
        })?;
        specs.push(GgufTensorSpec { name: it.gguf.clone(), dims, ggml_type: it.ty, byte_len });
    }
    let mut w = GgufWriter::create(dest, &md, specs, opts.overwrite)?;
    let task = "quantize";
    progress.event(Event::Start { task: task.into(), total: Some(items.len() as u64), unit: Unit::Items });
    let mut reports = Vec::with_capacity(items.len());
    // A reader thread prepares the next tensor (read, convert to f32, reorder) while this one
    // is quantized and written: reading is serial, quantizing is parallel over rows, and
    // overlapping them keeps both cores busy. At most one tensor waits in the channel, so peak
    // memory stays at about three tensors.
    let prepare = |it: &Item| -> Result<Vec<f32>> {
        let x = match it.part {
            None => read_f32(&ck, &it.source)?,
            Some((k, n)) => {
                // The source's shape was narrowed to one part; read the whole tensor, keep it.
                let whole = ck.get(&it.source.name).unwrap_or(&it.source);
                let all = read_f32(&ck, whole)?;
                let len = all.len() / n.max(1);
                all.get(k * len..(k + 1) * len).map(<[f32]>::to_vec).unwrap_or_default()
            }
        };
        let rows = it.source.shape.first().copied().unwrap_or(1) as usize;
        Ok(it.reorder.apply(x, rows.max(1), false))
    };
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<f32>>>(1);
        let items_ref = &items;
        let prepare = &prepare;
        scope.spawn(move || {
            for it in items_ref {
                if cancel.is_cancelled() {
                    break;
                }
                let r = prepare(it);
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    break;
                }
            }
        });
        for it in &items {
            if cancel.is_cancelled() {
                return Err(WeightsError::Cancelled);
            }
            let x = match rx.recv() {
                Ok(r) => r?,
                Err(_) => return Err(WeightsError::Cancelled),
            };
            let row = it.source.shape.last().copied().unwrap_or(1).max(1) as usize;
            let bytes = encode(it.ty, &x, row, opts.threads)?;
            let (mut rmse, mut max_err) = (None, None);
            if opts.measure {
                let back = decode(&it.gguf, it.ty, &bytes, x.len())?;
                let (mut sq, mut mx) = (0f64, 0f64);
                for (a, b) in x.iter().zip(&back) {
                    let d = (f64::from(*a) - f64::from(*b)).abs();
                    sq += d * d;
                    mx = mx.max(d);
                }
                rmse = Some((sq / x.len().max(1) as f64).sqrt());
                max_err = Some(mx);
            }
            w.write(&bytes)?;
            progress.event(Event::Advance { task: task.into(), delta: 1 });
            reports.push(TensorReport {
                name: it.gguf.clone(),
                source: it.source.name.clone(),
                ggml_type: it.ty,
                shape: it.source.shape.clone(),
                fallback: it.fallback.clone(),
                rmse,
                max_err,
            });
        }
        Ok(())
    })?;
    let write = w.finish()?;
    progress.event(Event::Finish { task: task.into() });
    Ok(QuantizeReport { arch, write, tensors: reports, skipped })
}

fn meta_u64(ck: &Checkpoint, key: &str) -> Option<u64> {
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
fn hf_config(arch: Arch, ck: &Checkpoint, dtype: Dtype) -> Value {
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
            "architectures": ["BaichuanForCausalLM"],
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
            let class = match arch {
                Arch::Qwen2 => "Qwen2ForCausalLM",
                Arch::Gemma => "GemmaForCausalLM",
                _ => "LlamaForCausalLM",
            };
            let mut c = json!({
                "architectures": [class],
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
            "architectures": ["BloomForCausalLM"],
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

/// Writes the GGUF file `input` as a Hugging Face folder `dest` with tensors in `dtype`
/// (`F32`, `F16` or `BF16`): names, q/k permutation and fused QKV undone for known
/// architectures, `config.json` from the hyper-parameters, `tokenizer.json` for `gpt2` vocabularies.
pub fn dequantize(
    input: &Path,
    dest: &Path,
    dtype: Dtype,
    options: &WriteOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<WriteReport> {
    if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
        return Err(WeightsError::UnsupportedDtype { tensor: "*".into(), dtype, op: "dequantize output" });
    }
    let ck = Checkpoint::open(input)?;
    let Some(g) = ck.gguf() else {
        return Err(WeightsError::UnknownFormat { path: input.into(), reason: "not a GGUF file".into() });
    };
    let arch_name = g.get("general.architecture").and_then(MetaValue::as_str).unwrap_or_default().to_string();
    let arch = Arch::from_gguf(&arch_name);
    let heads = |key: &str| meta_u64(&ck, &format!("{arch_name}.{key}")).unwrap_or(1) as usize;
    let (n_head, n_kv) = (heads("attention.head_count"), heads("attention.head_count_kv"));
    // Each output tensor: its HF name and the GGUF tensors stacked by rows to make it (one,
    // except Baichuan's W_pack = [q; k; v]).
    type Planned = (String, Vec<u64>, Vec<(TensorInfo, Reorder)>);
    let mut plan: Vec<Planned> = Vec::new();
    for t in ck.tensors() {
        let (name, reorder) = match arch {
            None => (t.name.clone(), Reorder::None),
            // A tied BLOOM output is the embedding again.
            Some(Arch::Bloom) if t.name == "output.weight" => continue,
            Some(Arch::Baichuan) if t.name.starts_with("blk.") && t.name.ends_with(".attn_q.weight") => {
                let stem = t.name.trim_end_matches(".attn_q.weight");
                let (Some(k), Some(v)) =
                    (ck.get(&format!("{stem}.attn_k.weight")), ck.get(&format!("{stem}.attn_v.weight")))
                else {
                    return Err(WeightsError::InvalidOutput {
                        reason: format!("`{}` without its attn_k/attn_v", t.name),
                    });
                };
                let layer = stem.trim_start_matches("blk.");
                let mut shape = t.shape.clone();
                if let (Some(r), Some(kr), Some(vr)) = (shape.first_mut(), k.shape.first(), v.shape.first()) {
                    *r += kr + vr;
                }
                plan.push((
                    format!("model.layers.{layer}.self_attn.W_pack.weight"),
                    shape,
                    vec![
                        (t.clone(), Reorder::Rope { n_head }),
                        (k.clone(), Reorder::Rope { n_head: n_kv }),
                        (v.clone(), Reorder::None),
                    ],
                ));
                continue;
            }
            Some(Arch::Baichuan) if t.name.ends_with(".attn_k.weight") || t.name.ends_with(".attn_v.weight") => {
                continue;
            }
            Some(a) => {
                // Tensors llama.cpp adds (e.g. `rope_freqs.weight`) keep their GGUF name.
                let Some(h) = a.to_hf(&t.name) else {
                    progress.event(Event::Note {
                        message: format!("`{}` has no Hugging Face name for {}; kept as it is", t.name, a.name()),
                    });
                    plan.push((t.name.clone(), t.shape.clone(), vec![(t.clone(), Reorder::None)]));
                    continue;
                };
                let r = Reorder::of(a, &t.name, n_head, n_kv);
                (h, r)
            }
        };
        plan.push((name, t.shape.clone(), vec![(t.clone(), reorder)]));
    }
    let specs = plan.iter().map(|(n, shape, _)| TensorSpec { name: n.clone(), dtype, shape: shape.clone() }).collect();
    let mut w = SafetensorsWriter::create(dest, specs, options)?;
    let task = "dequantize";
    progress.event(Event::Start { task: task.into(), total: Some(plan.len() as u64), unit: Unit::Items });
    for (_, _, sources) in &plan {
        if cancel.is_cancelled() {
            return Err(WeightsError::Cancelled);
        }
        let mut out = Vec::new();
        for (t, reorder) in sources {
            let bytes = ck.read_to_vec(t, MAX_TENSOR_BYTES)?;
            let n = crate::dtype::numel(&t.shape).unwrap_or(0) as usize;
            let ty = match t.dtype {
                Dtype::Ggml(g) => g,
                Dtype::F32 => GgmlType::F32,
                Dtype::F16 => GgmlType::F16,
                Dtype::BF16 => GgmlType::BF16,
                other => {
                    return Err(WeightsError::UnsupportedDtype {
                        tensor: t.name.clone(),
                        dtype: other,
                        op: "dequantize",
                    });
                }
            };
            let x = decode(&t.name, ty, &bytes, n)?;
            let rows = t.shape.first().copied().unwrap_or(1).max(1) as usize;
            let x = reorder.apply(x, rows, true);
            let ggml = match dtype {
                Dtype::F16 => GgmlType::F16,
                Dtype::BF16 => GgmlType::BF16,
                _ => GgmlType::F32,
            };
            out.extend(encode(ggml, &x, 1, 1)?);
        }
        w.write(&out)?;
        progress.event(Event::Advance { task: task.into(), delta: 1 });
    }
    if let Some(a) = arch {
        let cfg = hf_config(a, &ck, dtype);
        w.add_bytes("config.json", &serde_json::to_vec_pretty(&cfg).unwrap_or_default())?;
    }
    if let Some((tok, tcfg)) = crate::gguf_vocab::tokenizer_json_from_metadata(&g.metadata) {
        w.add_bytes("tokenizer.json", &serde_json::to_vec(&tok).unwrap_or_default())?;
        w.add_bytes("tokenizer_config.json", &serde_json::to_vec_pretty(&tcfg).unwrap_or_default())?;
    }
    let report = w.finish()?;
    progress.event(Event::Finish { task: task.into() });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_permutation_matches_llama_cpp_and_inverts() {
        // numpy: np.arange(8).reshape(2, 2, 2).swapaxes(1, 2).reshape(8) = [0, 2, 1, 3, 4, 6, 5, 7]
        let r = Reorder::Rope { n_head: 2 };
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let y = r.apply(x.clone(), 8, false);
        assert_eq!(y, [0., 2., 1., 3., 4., 6., 5., 7.]);
        // head_dim 6: (1, 2, 3) → (1, 3, 2): [0, 3, 1, 4, 2, 5]
        let x6: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(Reorder::Rope { n_head: 1 }.apply(x6.clone(), 6, false), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(
            Reorder::Rope { n_head: 1 }.apply(Reorder::Rope { n_head: 1 }.apply(x6.clone(), 6, false), 6, true),
            x6
        );
        // BLOOM: (2 heads, 3, 1) → (3, 2, 1): [q0, k0, v0, q1, k1, v1] → [q0, q1, k0, k1, v0, v1]
        let b = Reorder::BloomQkv { n_head: 2 };
        assert_eq!(b.apply(x6.clone(), 6, false), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(b.apply(b.apply(x6.clone(), 6, false), 6, true), x6);
    }

    #[test]
    fn q4_k_m_mix_and_fallbacks() {
        let t = |name: &str, shape: &[u64]| pick_type(OutType::Q4KM, name, shape, 32).0;
        assert_eq!(t("output.weight", &[100, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.0.attn_v.weight", &[256, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.6.attn_v.weight", &[256, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.5.attn_v.weight", &[256, 256]), GgmlType::Q4_K);
        assert_eq!(t("blk.4.attn_v.weight", &[256, 256]), GgmlType::Q4_K);
        assert_eq!(t("blk.31.ffn_down.weight", &[256, 512]), GgmlType::Q6_K);
        assert_eq!(t("blk.4.attn_q.weight", &[256, 256]), GgmlType::Q4_K);
        assert_eq!(t("blk.4.attn_q.weight", &[64, 64]), GgmlType::Q5_0);
        assert_eq!(t("output.weight", &[64, 64]), GgmlType::Q8_0);
        assert_eq!(t("blk.4.ffn_down.weight", &[64, 176]), GgmlType::F16);
        assert_eq!(t("blk.4.attn_norm.weight", &[64]), GgmlType::F32);
        // BLOOM's fused QKV follows attn_v's rule, as llama-quantize does (checked on tiny-bloom).
        assert_eq!(t("blk.0.attn_qkv.weight", &[768, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.6.attn_qkv.weight", &[768, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.5.attn_qkv.weight", &[768, 256]), GgmlType::Q4_K);
        assert_eq!(t("blk.5.attn_qkv.weight", &[192, 64]), GgmlType::Q5_0);
        assert_eq!(t("blk.6.attn_qkv.weight", &[192, 64]), GgmlType::Q8_0);
        assert_eq!(pick_type(OutType::Pure(QuantType::Q4_0), "w", &[2, 48], 0).0, GgmlType::F16);
        // Pure Q5_K falls back as llama-quantize does: Q5_1, then F16.
        let q5 = |shape: &[u64]| pick_type(OutType::Pure(QuantType::Q5K), "blk.0.ffn_down.weight", shape, 2).0;
        assert_eq!(q5(&[64, 256]), GgmlType::Q5_K);
        assert_eq!(q5(&[576, 576]), GgmlType::Q5_1);
        assert_eq!(q5(&[64, 176]), GgmlType::F16);
        assert_eq!(OutType::from_name("Q5_K").map(OutType::file_type), Some(16));
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

//! Hugging Face checkpoints to llama.cpp-compatible GGUF files (quantized or not), and any GGUF
//! back to a Hugging Face folder. One tensor is in memory at a time.
//!
//! Tensor names, hyper-parameter keys, LLaMA's q/k row permutation and BLOOM's fused-QKV
//! reordering follow llama.cpp's `convert_hf_to_gguf.py`; the type of each tensor follows
//! `llama-quantize` (see `docs/QUANTIZATION.md` for the mix and the fallbacks).

//!
//! The parts: `arch.rs` (which architectures, their name tables and hyper-parameters, both
//! ways), `reorder.rs` (row permutations and the other per-tensor transforms, with their
//! inverses), `quantize.rs` (HF → GGUF and the type policy), `dequantize.rs` (GGUF → HF). This
//! file holds the options and reports, and f32 ↔ GGML bytes, which both directions use.

mod arch;
mod dequantize;
mod quantize;
mod reorder;

use half::f16;

use self::arch::Arch;
use crate::dtype::{Dtype, GgmlType};
use crate::error::{Result, WeightsError};
use crate::gguf_write::GgufWriteReport;
use crate::kernels;
use crate::quant::{self, QuantType};

pub use arch::{GGUF_ARCHITECTURES, HF_ARCHITECTURES};
pub use dequantize::dequantize;
pub use quantize::quantize;

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
    /// llama.cpp's Q5_K_M mix (Q5_K where Q4_K_M has Q4_K; the same Q6_K tensors).
    Q5KM,
}

impl OutType {
    /// Every accepted name, for help texts.
    pub const NAMES: [&str; 13] =
        ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m"];

    /// Parses `f16`, `q4_0`, `q4_k_m`, ... in any case.
    pub fn from_name(name: &str) -> Option<OutType> {
        match name.to_ascii_lowercase().as_str() {
            "f32" => Some(OutType::F32),
            "f16" => Some(OutType::F16),
            "bf16" => Some(OutType::BF16),
            "q4_k_m" => Some(OutType::Q4KM),
            "q5_k_m" => Some(OutType::Q5KM),
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
            OutType::Q5KM => 17,
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

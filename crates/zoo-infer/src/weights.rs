//! Named tensors for the model code, whatever file they live in: Hugging Face safetensors or
//! PyTorch `.bin` checkpoints (names as transformers writes them) and GGUF files (llama.cpp
//! names, translated here). Dense weights become f32 candle tensors; GGML block-quantized
//! weights stay as their block bytes for the quantized kernels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use half::{bf16, f16};
use zoo_kernels::{Half, QuantType};
use zoo_weights::gptq::{GptqLinear, GptqModel};
use zoo_weights::{Checkpoint, Dtype, TensorInfo};

use crate::config::Arch;
use crate::error::{InferError, Result};

/// The largest single tensor read (a 250880 × 4096 f32 embedding is 3.8 GiB).
const MAX_TENSOR_BYTES: u64 = 16 << 30;

/// A block-quantized matrix: `rows` output features of `cols` inputs, GGML block bytes.
#[derive(Debug)]
pub struct QWeight {
    pub name: String,
    pub qtype: QuantType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: Vec<u8>,
}

/// A 16-bit float matrix (f16 or bf16) kept as stored: half the memory and half the bytes read
/// per token of an f32 copy.
#[derive(Debug)]
pub struct HalfWeight {
    pub name: String,
    pub kind: Half,
    pub rows: usize,
    pub cols: usize,
    pub bytes: Vec<u8>,
}

/// A weight matrix as the model will multiply with it.
#[derive(Debug, Clone)]
pub enum MatrixWeight {
    /// f32, shape (rows, cols).
    Dense(Tensor),
    Half(Arc<HalfWeight>),
    Quant(Arc<QWeight>),
}

impl MatrixWeight {
    pub fn rows(&self) -> Result<usize> {
        Ok(match self {
            MatrixWeight::Dense(w) => w.dim(0)?,
            MatrixWeight::Half(h) => h.rows,
            MatrixWeight::Quant(q) => q.rows,
        })
    }

    /// The matrix as f32 (for the few places that transform weights at load).
    pub fn to_dense(&self) -> Result<Tensor> {
        Ok(match self {
            MatrixWeight::Dense(w) => w.clone(),
            MatrixWeight::Half(h) => {
                let mut v = vec![0f32; h.rows * h.cols];
                zoo_kernels::dense16::widen(h.kind, zoo_kernels::Backend::detect(), &h.bytes, &mut v);
                Tensor::from_vec(v, (h.rows, h.cols), &Device::Cpu)?
            }
            MatrixWeight::Quant(q) => {
                let mut v = vec![0f32; q.rows * q.cols];
                zoo_kernels::dequantize_row(q.qtype, &q.bytes, &mut v)?;
                Tensor::from_vec(v, (q.rows, q.cols), &Device::Cpu)?
            }
        })
    }
}

/// Where the tensors come from and how names are spelled there.
pub struct WeightSource {
    store: Store,
    arch: Arch,
    gguf: bool,
    device: Device,
}

enum Store {
    Plain(Checkpoint),
    /// An AutoGPTQ int4 folder: quantized linears come from `GptqModel`, the rest (embeddings,
    /// norms, biases) from its checkpoint.
    Gptq(GptqModel),
}

impl WeightSource {
    pub fn new(ck: Checkpoint, arch: Arch) -> WeightSource {
        let gguf = ck.gguf().is_some();
        WeightSource { store: Store::Plain(ck), arch, gguf, device: Device::Cpu }
    }

    /// A GPTQ int4 checkpoint. Its linears are dequantized exactly (through `g_idx`) and
    /// requantized to Q8_0 for the kernels: 8.5 bits per weight, error far below GPTQ's own.
    pub fn gptq(model: GptqModel, arch: Arch) -> WeightSource {
        WeightSource { store: Store::Gptq(model), arch, gguf: false, device: Device::Cpu }
    }

    fn ck(&self) -> &Checkpoint {
        match &self.store {
            Store::Plain(ck) => ck,
            Store::Gptq(g) => g.checkpoint(),
        }
    }

    /// The GPTQ module stored for `name` (`….weight`), if any.
    fn gptq_module(&self, name: &str) -> Option<(&GptqModel, &GptqLinear)> {
        let Store::Gptq(g) = &self.store else { return None };
        let stem = name.strip_suffix(".weight")?;
        let alt = match stem.strip_prefix("transformer.") {
            Some(rest) => rest.to_string(),
            None => format!("transformer.{stem}"),
        };
        g.module(stem).or_else(|| g.module(&alt)).map(|m| (g, m))
    }

    /// Whether names and layouts are llama.cpp's (q/k rows permuted, BLOOM QKV blocked,
    /// Gemma norms with the `+1` folded in).
    pub fn is_gguf(&self) -> bool {
        self.gguf
    }

    pub fn path(&self) -> PathBuf {
        self.ck().files().first().cloned().unwrap_or_else(|| self.ck().folder().to_path_buf())
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        self.ck()
    }

    /// The stored name of the canonical (Hugging Face) `name`, if present.
    fn find(&self, name: &str) -> Option<&TensorInfo> {
        if self.gguf {
            return self.ck().get(&gguf_name(self.arch, name)?);
        }
        if let Some(t) = self.ck().get(name) {
            return Some(t);
        }
        // BLOOM checkpoints appear with and without the `transformer.` prefix.
        match name.strip_prefix("transformer.") {
            Some(rest) => self.ck().get(rest),
            None => self.ck().get(&format!("transformer.{name}")),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some() || self.gptq_module(name).is_some()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.find(name).ok_or_else(|| InferError::MissingTensor {
            path: self.path(),
            name: if self.gguf { gguf_name(self.arch, name).unwrap_or_else(|| name.to_string()) } else { name.into() },
            arch: self.arch.name(),
        })
    }

    fn check_shape(&self, t: &TensorInfo, want: &[usize]) -> Result<()> {
        let got: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        if got != want {
            return Err(InferError::Shape { path: t.file.clone(), name: t.name.clone(), got, want: want.to_vec() });
        }
        Ok(())
    }

    /// A tensor of the given shape as f32 values (dense types converted, quantized ones
    /// dequantized).
    pub fn f32_values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.info(name)?;
        self.check_shape(t, shape)?;
        let bytes = self.ck().read_to_vec(t, MAX_TENSOR_BYTES)?;
        to_f32(t, &bytes)
    }

    /// A dense f32 tensor of the given shape.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let v = self.f32_values(name, shape)?;
        Ok(Tensor::from_vec(v, shape, &self.device)?)
    }

    /// Like [`WeightSource::tensor`], `None` when absent.
    pub fn optional(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.has(name) { self.tensor(name, shape).map(Some) } else { Ok(None) }
    }

    /// A `rows × cols` matrix: quantized GGML blocks stay quantized, anything else is f32.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<MatrixWeight> {
        if let Some((g, m)) = self.gptq_module(name) {
            return gptq_matrix(g, m, rows, cols);
        }
        let t = self.info(name)?;
        self.check_shape(t, &[rows, cols])?;
        if let Dtype::Ggml(g) = t.dtype
            && g.dense().is_none()
        {
            let qtype = QuantType::from_ggml(g).ok_or_else(|| InferError::Dtype {
                path: t.file.clone(),
                name: t.name.clone(),
                dtype: g.name().to_string(),
            })?;
            let bytes = self.ck().read_to_vec(t, MAX_TENSOR_BYTES)?;
            return Ok(MatrixWeight::Quant(Arc::new(QWeight { name: t.name.clone(), qtype, rows, cols, bytes })));
        }
        let bytes = self.ck().read_to_vec(t, MAX_TENSOR_BYTES)?;
        let kind = match t.dtype {
            Dtype::F16 => Some(Half::F16),
            Dtype::BF16 => Some(Half::Bf16),
            Dtype::Ggml(g) if g.dense() == Some(Dtype::F16) => Some(Half::F16),
            Dtype::Ggml(g) if g.dense() == Some(Dtype::BF16) => Some(Half::Bf16),
            _ => None,
        };
        if let Some(kind) = kind {
            return Ok(MatrixWeight::Half(Arc::new(HalfWeight { name: t.name.clone(), kind, rows, cols, bytes })));
        }
        let v = to_f32(t, &bytes)?;
        Ok(MatrixWeight::Dense(Tensor::from_vec(v, (rows, cols), &self.device)?))
    }
}

fn gptq_matrix(g: &GptqModel, m: &GptqLinear, rows: usize, cols: usize) -> Result<MatrixWeight> {
    let path = g.folder().to_path_buf();
    if (m.out_features, m.in_features) != (rows as u64, cols as u64) {
        return Err(InferError::Shape {
            path,
            name: m.name.clone(),
            got: vec![m.out_features as usize, m.in_features as usize],
            want: vec![rows, cols],
        });
    }
    let w = g.dequantize_linear(m).map_err(|e| InferError::Gptq(Box::new(e)))?;
    if !cols.is_multiple_of(32) {
        return Ok(MatrixWeight::Dense(Tensor::from_vec(w, (rows, cols), &Device::Cpu)?));
    }
    let qtype = QuantType::Q8_0;
    let row_bytes = cols / 32 * qtype.type_size();
    let mut bytes = vec![0u8; rows * row_bytes];
    for (src, dst) in w.chunks_exact(cols).zip(bytes.chunks_exact_mut(row_bytes)) {
        zoo_weights::quant::quantize_row(qtype, src, dst)
            .map_err(|e| InferError::Invalid(format!("{}: {}: {e}", path.display(), m.name)))?;
    }
    Ok(MatrixWeight::Quant(Arc::new(QWeight { name: m.name.clone(), qtype, rows, cols, bytes })))
}

/// Converts stored bytes to f32 values.
fn to_f32(t: &TensorInfo, bytes: &[u8]) -> Result<Vec<f32>> {
    let bad = || InferError::Dtype { path: t.file.clone(), name: t.name.clone(), dtype: format!("{:?}", t.dtype) };
    let dense = match t.dtype {
        Dtype::Ggml(g) => match g.dense() {
            Some(d) => d,
            None => {
                let qtype = QuantType::from_ggml(g).ok_or_else(bad)?;
                let n: usize = t.shape.iter().map(|&d| d as usize).product();
                let mut out = vec![0f32; n];
                zoo_weights::quant::dequantize_row(qtype, bytes, &mut out)
                    .map_err(|e| InferError::Invalid(format!("{}: tensor {}: {e}", t.file.display(), t.name)))?;
                return Ok(out);
            }
        },
        d => d,
    };
    Ok(match dense {
        Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        _ => return Err(bad()),
    })
}

/// llama.cpp's name for a Hugging Face tensor name of `arch` (zoo-weights' converter tables, so
/// reading and writing GGUF files can never disagree).
fn gguf_name(arch: Arch, name: &str) -> Option<String> {
    zoo_weights::gguf_convert::gguf_tensor_name(arch.name(), name)
}

/// Opens the checkpoint at `path` (a folder, an index, a `.safetensors`/`.bin`/`.gguf` file).
pub fn open_checkpoint(path: &Path) -> Result<Checkpoint> {
    Ok(Checkpoint::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names() {
        assert_eq!(gguf_name(Arch::Llama, "model.layers.3.self_attn.q_proj.weight").unwrap(), "blk.3.attn_q.weight");
        assert_eq!(gguf_name(Arch::Qwen2, "model.layers.0.self_attn.k_proj.bias").unwrap(), "blk.0.attn_k.bias");
        assert_eq!(gguf_name(Arch::Llama, "model.embed_tokens.weight").unwrap(), "token_embd.weight");
        assert_eq!(
            gguf_name(Arch::Bloom, "transformer.h.1.self_attention.query_key_value.bias").unwrap(),
            "blk.1.attn_qkv.bias"
        );
        assert_eq!(
            gguf_name(Arch::Bloom, "transformer.word_embeddings_layernorm.weight").unwrap(),
            "token_embd_norm.weight"
        );
        assert_eq!(gguf_name(Arch::Llama, "model.layers.0.self_attn.W_pack.weight"), None);
    }
}

//! Building blocks shared by the model files: linear layers over dense or quantized weights,
//! embeddings, norms, rotary tables, ALiBi slopes, the KV cache and the attention core.
//!
//! Activations are 2-D `(tokens, features)` f32 tensors: the runner serves one sequence at a
//! time, so there is no batch dimension to carry around.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp1, D, DType, Device, Layout, Shape, Tensor};
use zoo_kernels::{QMatrix, ThreadPool};

use crate::config::Activation;
use crate::error::Result;
use crate::weights::{HalfWeight, MatrixWeight, QWeight, WeightSource};

static POOL: OnceLock<ThreadPool> = OnceLock::new();

/// Sets the number of threads of the quantized kernels; only the first call counts.
pub fn set_threads(n: usize) {
    let _ = POOL.set(ThreadPool::new(n.max(1)));
}

fn pool() -> &'static ThreadPool {
    POOL.get_or_init(|| ThreadPool::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

/// `x @ W^T (+ b)` over dense or GGML-quantized weights.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: MatrixWeight,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: MatrixWeight, bias: Option<Tensor>) -> Linear {
        Linear { weight, bias }
    }

    /// Loads `{name}.weight` (rows × cols) and, if `bias`, `{name}.bias`.
    pub fn load(src: &WeightSource, name: &str, rows: usize, cols: usize, bias: bool) -> Result<Linear> {
        let weight = src.matrix(&format!("{name}.weight"), rows, cols)?;
        let bias = if bias { Some(src.tensor(&format!("{name}.bias"), &[rows])?) } else { None };
        Ok(Linear { weight, bias })
    }

    pub fn weight(&self) -> &MatrixWeight {
        &self.weight
    }

    /// One layer computing `parts` side by side (their rows stacked), when they share a weight
    /// type: one matrix product instead of several per token. `None` when they cannot be joined
    /// (a mix of block types, as in Q4_K_M files).
    pub fn fuse(parts: &[&Linear]) -> Result<Option<Linear>> {
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            let b: Vec<&Tensor> = parts.iter().filter_map(|p| p.bias.as_ref()).collect();
            Some(Tensor::cat(&b, 0)?)
        } else if parts.iter().all(|p| p.bias.is_none()) {
            None
        } else {
            return Ok(None);
        };
        let dense: Vec<&Tensor> = parts
            .iter()
            .filter_map(|p| match &p.weight {
                MatrixWeight::Dense(w) => Some(w),
                _ => None,
            })
            .collect();
        if dense.len() == parts.len() {
            return Ok(Some(Linear { weight: MatrixWeight::Dense(Tensor::cat(&dense, 0)?), bias }));
        }
        let halves: Vec<&Arc<HalfWeight>> = parts
            .iter()
            .filter_map(|p| match &p.weight {
                MatrixWeight::Half(h) => Some(h),
                _ => None,
            })
            .collect();
        if let Some(first) = halves.first()
            && halves.len() == parts.len()
        {
            if halves.iter().any(|h| h.kind != first.kind || h.cols != first.cols) {
                return Ok(None);
            }
            let weight = HalfWeight {
                name: halves.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join("+"),
                kind: first.kind,
                rows: halves.iter().map(|h| h.rows).sum(),
                cols: first.cols,
                bytes: halves.iter().flat_map(|h| h.bytes.iter().copied()).collect(),
            };
            return Ok(Some(Linear { weight: MatrixWeight::Half(Arc::new(weight)), bias }));
        }
        let quant: Vec<&Arc<QWeight>> = parts
            .iter()
            .filter_map(|p| match &p.weight {
                MatrixWeight::Quant(q) => Some(q),
                _ => None,
            })
            .collect();
        let Some(first) = quant.first() else { return Ok(None) };
        if quant.len() != parts.len() || quant.iter().any(|q| q.qtype != first.qtype || q.cols != first.cols) {
            return Ok(None);
        }
        let weight = QWeight {
            name: quant.iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join("+"),
            qtype: first.qtype,
            rows: quant.iter().map(|q| q.rows).sum(),
            cols: first.cols,
            bytes: quant.iter().flat_map(|q| q.bytes.iter().copied()).collect(),
        };
        Ok(Some(Linear { weight: MatrixWeight::Quant(Arc::new(weight)), bias }))
    }

    /// `x`: (t, cols) → (t, rows).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            MatrixWeight::Dense(w) => x.matmul(&w.t()?)?,
            MatrixWeight::Quant(q) => x.apply_op1_no_bwd(&QMatMul(q.clone()))?,
            MatrixWeight::Half(h) => x.apply_op1_no_bwd(&HalfMatMul(h.clone()))?,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// The candle op running our quantized kernels.
struct QMatMul(Arc<QWeight>);

impl CustomOp1 for QMatMul {
    fn name(&self) -> &'static str {
        "zoo-qmatmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let q = &self.0;
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: input is not contiguous", q.name)))?;
        let x = storage.as_slice::<f32>()?.get(start..end).unwrap_or_default();
        let dims = layout.shape().dims();
        let k = dims.last().copied().unwrap_or(0);
        if k != q.cols || x.len() % q.cols.max(1) != 0 {
            return Err(candle_core::Error::Msg(format!(
                "{}: input width {k} does not match the {} weight columns",
                q.name, q.cols
            )));
        }
        let m = x.len() / q.cols.max(1);
        let mut out = vec![0f32; m * q.rows];
        let w = QMatrix::new(&q.bytes, q.qtype, q.rows, q.cols).map_err(candle_core::Error::wrap)?;
        zoo_kernels::matmul(pool(), &w, x, m, &mut out).map_err(candle_core::Error::wrap)?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = q.rows;
        }
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

/// The candle op running 16-bit weights without widening them in memory.
struct HalfMatMul(Arc<HalfWeight>);

impl CustomOp1 for HalfMatMul {
    fn name(&self) -> &'static str {
        "zoo-halfmatmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = &self.0;
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: input is not contiguous", h.name)))?;
        let x = storage.as_slice::<f32>()?.get(start..end).unwrap_or_default();
        let dims = layout.shape().dims();
        if dims.last().copied() != Some(h.cols) || x.len() % h.cols.max(1) != 0 {
            return Err(candle_core::Error::Msg(format!("{}: input width does not match {} columns", h.name, h.cols)));
        }
        let m = x.len() / h.cols.max(1);
        let mut out = vec![0f32; m * h.rows];
        zoo_kernels::matmul_half(pool(), h.kind, &h.bytes, h.rows, h.cols, x, m, &mut out)
            .map_err(candle_core::Error::wrap)?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = h.rows;
        }
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

/// Token embeddings: a dense table or quantized rows dequantized on lookup.
#[derive(Debug, Clone)]
pub struct Embedding {
    table: MatrixWeight,
    hidden: usize,
}

impl Embedding {
    pub fn new(table: MatrixWeight, hidden: usize) -> Embedding {
        Embedding { table, hidden }
    }

    pub fn table(&self) -> &MatrixWeight {
        &self.table
    }

    /// (t, hidden) for `ids` (all already checked against the vocabulary).
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        match &self.table {
            MatrixWeight::Dense(w) => {
                let idx = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
                Ok(w.index_select(&idx, 0)?)
            }
            MatrixWeight::Half(h) => {
                let row_bytes = 2 * h.cols;
                let mut out = vec![0f32; ids.len() * self.hidden];
                for (dst, &id) in out.chunks_exact_mut(self.hidden).zip(ids) {
                    let start = id as usize * row_bytes;
                    let src = h.bytes.get(start..start + row_bytes).unwrap_or_default();
                    zoo_kernels::dense16::widen(h.kind, zoo_kernels::Backend::detect(), src, dst);
                }
                Ok(Tensor::from_vec(out, (ids.len(), self.hidden), &Device::Cpu)?)
            }
            MatrixWeight::Quant(q) => {
                let row_bytes = q.bytes.len() / q.rows.max(1);
                let mut out = vec![0f32; ids.len() * self.hidden];
                for (dst, &id) in out.chunks_exact_mut(self.hidden).zip(ids) {
                    let start = id as usize * row_bytes;
                    let src = q.bytes.get(start..start + row_bytes).unwrap_or_default();
                    zoo_kernels::dequantize_row(q.qtype, src, dst)?;
                }
                Ok(Tensor::from_vec(out, (ids.len(), self.hidden), &Device::Cpu)?)
            }
        }
    }
}

/// RMSNorm (LLaMA family) or LayerNorm with bias (BLOOM).
#[derive(Debug, Clone)]
pub enum Norm {
    Rms { weight: Tensor, eps: f32 },
    Layer { weight: Tensor, bias: Tensor, eps: f32 },
}

impl Norm {
    /// RMSNorm `{name}.weight`; `plus_one`: Gemma's `x * (1 + w)`.
    pub fn rms(src: &WeightSource, name: &str, dim: usize, eps: f64, plus_one: bool) -> Result<Norm> {
        let mut weight = src.tensor(&format!("{name}.weight"), &[dim])?;
        if plus_one {
            weight = (weight + 1.0)?;
        }
        Ok(Norm::Rms { weight, eps: eps as f32 })
    }

    pub fn layer(src: &WeightSource, name: &str, dim: usize, eps: f64) -> Result<Norm> {
        Ok(Norm::Layer {
            weight: src.tensor(&format!("{name}.weight"), &[dim])?,
            bias: src.tensor(&format!("{name}.bias"), &[dim])?,
            eps: eps as f32,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Norm::Rms { weight, eps } => candle_nn::ops::rms_norm(x, weight, *eps)?,
            Norm::Layer { weight, bias, eps } => candle_nn::ops::layer_norm(x, weight, bias, *eps)?,
        })
    }
}

pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Silu => candle_nn::ops::silu(x)?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Gelu => x.gelu_erf()?,
    })
}

/// Rotary tables: cos and sin of `position × inv_freq`, (positions, head_dim / 2).
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    interleaved: bool,
}

impl Rope {
    /// Computed in f32 the way transformers computes its default rope, so logits agree to
    /// float rounding.
    pub fn new(head_dim: usize, theta: f32, scale: f32, positions: usize, interleaved: bool) -> Result<Rope> {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv {
                let a = (p as f32 / scale) * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok(Rope {
            cos: Tensor::from_vec(cos, (positions, half), &Device::Cpu)?,
            sin: Tensor::from_vec(sin, (positions, half), &Device::Cpu)?,
            interleaved,
        })
    }

    /// `x`: (heads, t, head_dim) at positions `pos..pos + t`.
    pub fn apply(&self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let t = x.dim(1)?;
        let cos = self.cos.narrow(0, pos, t)?;
        let sin = self.sin.narrow(0, pos, t)?;
        let x4 = x.unsqueeze(0)?;
        let y = if self.interleaved {
            candle_nn::rotary_emb::rope_i(&x4, &cos, &sin)?
        } else {
            candle_nn::rotary_emb::rope(&x4, &cos, &sin)?
        };
        Ok(y.squeeze(0)?)
    }
}

/// ALiBi slopes for `heads` heads (BLOOM's and Baichuan-13B's formula, also for head counts
/// that are not a power of two).
pub fn alibi_slopes(heads: usize) -> Vec<f32> {
    let p = if heads == 0 { 0 } else { 1usize << (usize::BITS - 1 - heads.leading_zeros()) };
    let base = 2f64.powf(-(2f64.powf(-((p as f64).log2() - 3.0))));
    let mut slopes: Vec<f32> = (1..=p).map(|i| base.powi(i as i32) as f32).collect();
    if p < heads {
        let extra_base = 2f64.powf(-(2f64.powf(-((2.0 * p as f64).log2() - 3.0))));
        let extra = heads - p;
        slopes.extend((0..extra.min(p)).map(|j| extra_base.powi((1 + 2 * j) as i32) as f32));
    }
    slopes
}

/// Keys and values of past positions, preallocated for the context (pages are touched only
/// as they fill, so resident memory grows with the conversation, not the context size).
#[derive(Debug, Clone)]
pub struct KvCache {
    inner: candle_nn::kv_cache::KvCache,
}

impl KvCache {
    pub fn new(context: usize) -> KvCache {
        KvCache { inner: candle_nn::kv_cache::KvCache::new(1, context) }
    }

    /// Appends (kv_heads, t, head_dim) keys and values; returns all of them so far.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(self.inner.append(k, v)?)
    }

    pub fn len(&self) -> usize {
        self.inner.current_seq_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

/// How scores get their position information besides rotary embeddings.
pub enum Bias<'a> {
    None,
    /// Per-head slopes times the key position.
    Alibi(&'a Tensor),
}

/// Scaled dot-product attention with grouped key/value heads and a causal mask.
///
/// `q`: (heads, t, d) at positions `pos..pos + t`; `k`, `v`: (kv_heads, n, d) for positions
/// `0..n` with `n = pos + t`. Returns (t, heads × d).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, pos: usize, scale: f64, bias: Bias) -> Result<Tensor> {
    let (heads, t, d) = q.dims3()?;
    let (kv_heads, n, _) = k.dims3()?;
    let group = heads / kv_heads.max(1);
    // Heads sharing a key/value head are adjacent, so the query rows of a group stack into one
    // matrix product with that head's keys: no copies of the cache per head.
    let qg = q.reshape((kv_heads, group * t, d))?;
    let mut scores = (qg.matmul(&k.t()?)? * scale)?.reshape((heads, t, n))?;
    if let Bias::Alibi(slopes) = bias {
        let positions = Tensor::arange(0u32, n as u32, &Device::Cpu)?.to_dtype(DType::F32)?.reshape((1, 1, n))?;
        scores = scores.broadcast_add(&slopes.reshape((heads, 1, 1))?.broadcast_mul(&positions)?)?;
    }
    if t > 1 {
        let mask: Vec<f32> =
            (0..t).flat_map(|i| (0..n).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_vec(mask, (1, t, n), &Device::Cpu)?;
        scores = scores.broadcast_add(&mask)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.reshape((kv_heads, group * t, n))?;
    let ctx = probs.matmul(v)?.reshape((heads, t, d))?;
    Ok(ctx.transpose(0, 1)?.contiguous()?.reshape((t, heads * d))?)
}

/// (t, heads × d) → (heads, t, d).
pub fn split_heads(x: &Tensor, heads: usize, d: usize) -> Result<Tensor> {
    let t = x.dim(0)?;
    Ok(x.reshape((t, heads, d))?.transpose(0, 1)?.contiguous()?)
}

/// Row-wise L2 normalization (Baichuan2's head).
pub fn normalize_rows(w: &Tensor) -> Result<Tensor> {
    let norm = w.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(w.broadcast_div(&norm)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alibi_slopes_match_the_bloom_formula() {
        // 8 heads: 2^-1 .. 2^-8.
        let s = alibi_slopes(8);
        let want: Vec<f32> = (1..=8).map(|i| 2f32.powi(-i)).collect();
        assert_eq!(s, want);
        // 6 heads: p = 4 gives 2^-2, 2^-4, 2^-6, 2^-8, then from 8: 2^-1, 2^-3.
        let s = alibi_slopes(6);
        let want = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        assert_eq!(s, want);
        assert_eq!(alibi_slopes(32).len(), 32);
        assert!((alibi_slopes(32)[0] - 2f32.powf(-0.25)).abs() < 1e-7);
    }
}

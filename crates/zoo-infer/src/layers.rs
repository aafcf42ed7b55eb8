//! Building blocks shared by the model files: linear layers over dense or quantized weights,
//! embeddings, norms, rotary tables, ALiBi slopes, the KV cache and the attention core.
//!
//! Activations are 2-D `(tokens, features)` f32 tensors: the runner serves one sequence at a
//! time, so there is no batch dimension to carry around.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp1, D, DType, Device, Layout, Shape, Tensor};
use zoo_kernels::{DenseRows, QMatrix, ThreadPool};

use crate::config::Activation;
use crate::error::{InferError, Result};
use crate::models::Logits;
use crate::weights::{CodedWeight, HalfWeight, MatrixWeight, QWeight, SplitWeight, WeightSource};

static POOL: OnceLock<ThreadPool> = OnceLock::new();

/// Sets the number of threads of the quantized kernels; only the first call counts.
pub fn set_threads(n: usize) {
    let _ = POOL.set(ThreadPool::new(n.max(1)));
}

pub(crate) fn pool() -> &'static ThreadPool {
    POOL.get_or_init(|| ThreadPool::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

/// `x @ W^T (+ b)` over dense or GGML-quantized weights.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: MatrixWeight,
    bias: Option<Tensor>,
    /// The bias as plain values, for the decode path (read every token).
    bias_row: Option<Vec<f32>>,
}

impl Linear {
    pub fn new(weight: MatrixWeight, bias: Option<Tensor>) -> Linear {
        let bias_row = bias.as_ref().and_then(|b| b.flatten_all().and_then(|b| b.to_vec1::<f32>()).ok());
        Linear { weight, bias, bias_row }
    }

    /// Loads `{name}.weight` (rows × cols) and, if `bias`, `{name}.bias`.
    pub fn load(src: &WeightSource, name: &str, rows: usize, cols: usize, bias: bool) -> Result<Linear> {
        let weight = src.matrix(&format!("{name}.weight"), rows, cols)?;
        let bias = if bias { Some(src.tensor(&format!("{name}.bias"), &[rows])?) } else { None };
        Ok(Linear::new(weight, bias))
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
            return Ok(Some(Linear::new(MatrixWeight::Dense(Tensor::cat(&dense, 0)?), bias)));
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
                bytes: joined(halves.iter().map(|h| &*h.bytes)),
            };
            return Ok(Some(Linear::new(MatrixWeight::Half(Arc::new(weight)), bias)));
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
            bytes: joined(quant.iter().map(|q| &*q.bytes)),
        };
        Ok(Some(Linear::new(MatrixWeight::Quant(Arc::new(weight)), bias)))
    }

    /// `x`: (t, cols) → (t, rows).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            MatrixWeight::Dense(w) => x.matmul(&w.t()?)?,
            MatrixWeight::Quant(q) => x.apply_op1_no_bwd(&QMatMul(q.clone()))?,
            MatrixWeight::Half(h) => x.apply_op1_no_bwd(&HalfMatMul(h.clone()))?,
            MatrixWeight::Split(w) => split_matmul(w, x)?,
            MatrixWeight::Coded(w) => coded_matmul(w, x)?,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

impl Linear {
    /// One row: `x` (cols) → `out` (rows), without candle tensors (the decode path): the
    /// quantized kernels, or `zoo_kernels::gemv` for f32 and 16-bit weights, read in place.
    pub fn forward_row(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        match &self.weight {
            MatrixWeight::Quant(q) => {
                let w = QMatrix::new(&q.bytes, q.qtype, q.rows, q.cols)?;
                zoo_kernels::matmul(pool(), &w, x, 1, out)?;
            }
            MatrixWeight::Half(h) => {
                zoo_kernels::gemv(pool(), DenseRows::Half(h.kind, &h.bytes), h.rows, h.cols, x, out)?;
            }
            MatrixWeight::Split(w) => zoo_kernels::gemv(pool(), w.rows(), w.rows, w.cols, x, out)?,
            MatrixWeight::Coded(w) => zoo_kernels::gemv(pool(), w.rows(), w.rows, w.cols, x, out)?,
            MatrixWeight::Dense(w) => {
                let (rows, cols) = w.dims2()?;
                let done = with_f32(w, |v| zoo_kernels::gemv(pool(), DenseRows::F32(v), rows, cols, x, out));
                match done {
                    Some(r) => r?,
                    None => {
                        // Not a contiguous f32 CPU tensor: candle's product.
                        let xt = Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?;
                        let y = xt.matmul(&w.t()?)?.flatten_all()?.to_vec1::<f32>()?;
                        if y.len() != out.len() {
                            return Err(InferError::Invalid("dense product of the wrong width".into()));
                        }
                        out.copy_from_slice(&y);
                    }
                }
            }
        }
        match (&self.bias_row, &self.bias) {
            (Some(b), _) => out.iter_mut().zip(b).for_each(|(o, b)| *o += b),
            (None, Some(b)) => out.iter_mut().zip(&b.to_vec1::<f32>()?).for_each(|(o, b)| *o += b),
            (None, None) => {}
        }
        Ok(())
    }

    /// [`Linear::forward_row`] for greedy decoding: rows that cannot be the maximum may come
    /// back as `-inf` (a split f32 or coded bf16 head without bias computes only the few that
    /// can; see `zoo_kernels::greedy`), the others exactly. Returns how many rows were computed.
    pub fn forward_row_greedy(&self, x: &[f32], out: &mut [f32]) -> Result<usize> {
        match (&self.weight, &self.bias) {
            (MatrixWeight::Split(w), None) => return Ok(zoo_kernels::gemv_greedy(pool(), w.greedy_head(), x, out)?),
            (MatrixWeight::Coded(w), None) => {
                return Ok(zoo_kernels::gemv_greedy(pool(), w.greedy_head(), x, out)?);
            }
            _ => {}
        }
        self.forward_row(x, out)?;
        Ok(out.len())
    }

    /// Output width.
    pub fn rows(&self) -> Result<usize> {
        self.weight.rows()
    }
}

/// The output head on one normalized row (the decode path): `(1, vocab)` logits, as `logits`
/// asks (all exact, or for [`Logits::Greedy`] the possible maxima).
pub fn head_row(head: &Linear, x: &[f32], vocab: usize, logits: Logits) -> Result<Tensor> {
    let mut out = vec![0f32; vocab];
    if logits == Logits::Greedy {
        head.forward_row_greedy(x, &mut out)?;
    } else {
        head.forward_row(x, &mut out)?;
    }
    Ok(Tensor::from_vec(out, (1, vocab), &Device::Cpu)?)
}

/// The output head on normalized rows `x` (t, hidden) → (t, vocab).
pub fn head(head: &Linear, x: &Tensor, logits: Logits) -> Result<Tensor> {
    if logits == Logits::Greedy && x.dim(0)? == 1 {
        let row = x.flatten_all()?.to_vec1::<f32>()?;
        return head_row(head, &row, head.rows()?, logits);
    }
    head.forward(x)
}

/// Rows of a split or coded head's product computed per slice of the head.
const SPLIT_SLICE_ROWS: usize = 4096;

/// `x @ W^T` for a split f32 matrix and several rows of `x` (prompts, `--dump-logits`): one
/// row goes through `gemv`; more join the planes of one slice of rows at a time into f32 (a
/// few MiB, never the whole head) for candle's matrix product.
fn split_matmul(w: &SplitWeight, x: &Tensor) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    if k != w.cols {
        return Err(InferError::Invalid(format!("{}: input width {k} does not match {} columns", w.name, w.cols)));
    }
    if m == 1 {
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; w.rows];
        zoo_kernels::gemv(pool(), w.rows(), w.rows, w.cols, &xs, &mut out)?;
        return Ok(Tensor::from_vec(out, (1, w.rows), &Device::Cpu)?);
    }
    let mut parts = Vec::with_capacity(w.rows.div_ceil(SPLIT_SLICE_ROWS));
    let mut slice = vec![0f32; SPLIT_SLICE_ROWS * w.cols];
    for r0 in (0..w.rows).step_by(SPLIT_SLICE_ROWS) {
        let n = SPLIT_SLICE_ROWS.min(w.rows - r0);
        for (i, dst) in slice.chunks_exact_mut(w.cols.max(1)).take(n).enumerate() {
            w.row_into(r0 + i, dst);
        }
        let part = Tensor::from_slice(slice.get(..n * w.cols).unwrap_or_default(), (n, w.cols), &Device::Cpu)?;
        parts.push(x.matmul(&part.t()?)?);
    }
    Ok(Tensor::cat(&parts, 1)?)
}

/// `x @ W^T` for a coded bf16 matrix and several rows of `x` (prompts, `--dump-logits`): one
/// row goes through `gemv`; more decode one slice of rows at a time into bf16 (a few MiB,
/// never the whole head) for the 16-bit matrix product.
fn coded_matmul(w: &CodedWeight, x: &Tensor) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    if k != w.cols {
        return Err(InferError::Invalid(format!("{}: input width {k} does not match {} columns", w.name, w.cols)));
    }
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; m * w.rows];
    if m == 1 {
        zoo_kernels::gemv(pool(), w.rows(), w.rows, w.cols, &xs, &mut out)?;
        return Ok(Tensor::from_vec(out, (1, w.rows), &Device::Cpu)?);
    }
    let mut slice = vec![0u8; 2 * SPLIT_SLICE_ROWS * w.cols];
    let mut part = vec![0f32; m * SPLIT_SLICE_ROWS];
    for r0 in (0..w.rows).step_by(SPLIT_SLICE_ROWS) {
        let n = SPLIT_SLICE_ROWS.min(w.rows - r0);
        let (bytes, part) =
            (slice.get_mut(..2 * n * w.cols).unwrap_or_default(), part.get_mut(..m * n).unwrap_or_default());
        w.decode_rows(r0, bytes);
        zoo_kernels::matmul_half(pool(), zoo_kernels::Half::Bf16, bytes, n, w.cols, &xs, m, part)?;
        for (dst, src) in out.chunks_exact_mut(w.rows).zip(part.chunks_exact(n)) {
            if let Some(d) = dst.get_mut(r0..r0 + n) {
                d.copy_from_slice(src);
            }
        }
    }
    Ok(Tensor::from_vec(out, (m, w.rows), &Device::Cpu)?)
}

/// The byte slices one after another, in a buffer for resident weights.
fn joined<'a>(parts: impl Iterator<Item = &'a [u8]> + Clone) -> zoo_weights::mem::HugeBytes {
    let mut out = zoo_weights::mem::HugeBytes::zeroed(parts.clone().map(<[u8]>::len).sum());
    let mut at = 0;
    for p in parts {
        if let Some(dst) = out.get_mut(at..at + p.len()) {
            dst.copy_from_slice(p);
        }
        at += p.len();
    }
    out
}

/// `f` on the values of a contiguous f32 CPU tensor, in place; `None` for any other tensor.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else { return None };
    let (start, end) = layout.contiguous_offsets()?;
    Some(f(cpu.as_slice::<f32>().ok()?.get(start..end)?))
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

    /// The row of `id` (already checked against the vocabulary) into `dst` (hidden).
    pub fn row_into(&self, id: u32, dst: &mut [f32]) -> Result<()> {
        match &self.table {
            MatrixWeight::Dense(w) => dst.copy_from_slice(&w.get(id as usize)?.to_vec1::<f32>()?),
            MatrixWeight::Split(w) => w.row_into(id as usize, dst),
            MatrixWeight::Coded(w) => w.row_into(id as usize, dst),
            MatrixWeight::Half(h) => {
                let row_bytes = 2 * h.cols;
                let start = id as usize * row_bytes;
                let src = h.bytes.get(start..start + row_bytes).unwrap_or_default();
                zoo_kernels::dense16::widen(h.kind, zoo_kernels::Backend::detect(), src, dst);
            }
            MatrixWeight::Quant(q) => {
                let row_bytes = q.bytes.len() / q.rows.max(1);
                let start = id as usize * row_bytes;
                let src = q.bytes.get(start..start + row_bytes).unwrap_or_default();
                zoo_kernels::dequantize_row(q.qtype, src, dst)?;
            }
        }
        Ok(())
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
            MatrixWeight::Split(_) | MatrixWeight::Coded(_) => {
                let mut out = vec![0f32; ids.len() * self.hidden];
                for (dst, &id) in out.chunks_exact_mut(self.hidden).zip(ids) {
                    self.row_into(id, dst)?;
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

/// RMSNorm (LLaMA family) or LayerNorm with bias (BLOOM). The weights are kept both as
/// tensors (prefill) and as plain values (the decode path's [`Norm::forward_row`]).
#[derive(Debug, Clone)]
pub enum Norm {
    Rms { weight: Tensor, w: Vec<f32>, eps: f32 },
    Layer { weight: Tensor, bias: Tensor, w: Vec<f32>, b: Vec<f32>, eps: f32 },
}

impl Norm {
    /// RMSNorm `{name}.weight`; `plus_one`: Gemma's `x * (1 + w)`.
    pub fn rms(src: &WeightSource, name: &str, dim: usize, eps: f64, plus_one: bool) -> Result<Norm> {
        let mut weight = src.tensor(&format!("{name}.weight"), &[dim])?;
        if plus_one {
            weight = (weight + 1.0)?;
        }
        let w = weight.to_vec1::<f32>()?;
        Ok(Norm::Rms { weight, w, eps: eps as f32 })
    }

    pub fn layer(src: &WeightSource, name: &str, dim: usize, eps: f64) -> Result<Norm> {
        let weight = src.tensor(&format!("{name}.weight"), &[dim])?;
        let bias = src.tensor(&format!("{name}.bias"), &[dim])?;
        let (w, b) = (weight.to_vec1::<f32>()?, bias.to_vec1::<f32>()?);
        Ok(Norm::Layer { weight, bias, w, b, eps: eps as f32 })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Norm::Rms { weight, eps, .. } => candle_nn::ops::rms_norm(x, weight, *eps)?,
            Norm::Layer { weight, bias, eps, .. } => candle_nn::ops::layer_norm(x, weight, bias, *eps)?,
        })
    }

    /// One row, `x` → `out`, computed as candle's CPU kernels do (f32 sums).
    pub fn forward_row(&self, x: &[f32], out: &mut [f32]) {
        let n = x.len().max(1) as f32;
        match self {
            Norm::Rms { w, eps, .. } => {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / n;
                let r = (ms + eps).sqrt();
                for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
                    *o = v / r * w;
                }
            }
            Norm::Layer { w, b, eps, .. } => {
                let mean = x.iter().sum::<f32>() / n;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                let r = (var + eps).sqrt();
                for (((o, v), w), b) in out.iter_mut().zip(x).zip(w).zip(b) {
                    *o = (v - mean) / r * w + b;
                }
            }
        }
    }
}

/// The activation of `act` on every value, in place (the decode path), spread over the
/// kernels' pool. The exact GELU goes through candle's `gelu_erf`; SiLU and tanh GELU are
/// computed here by the same formulas.
pub fn activate_in_place(x: &mut [f32], act: Activation) -> Result<()> {
    if act == Activation::Gelu {
        let y = Tensor::from_slice(x, x.len(), &Device::Cpu)?.gelu_erf()?.to_vec1::<f32>()?;
        x.copy_from_slice(&y);
        return Ok(());
    }
    let one = |v: &mut f32| {
        let u = *v;
        *v = match act {
            Activation::GeluTanh => {
                // 0.5 u (1 + tanh(y)) = u (1 - 1 / (1 + e^(2y))): one exp instead of tanhf.
                let y = (2.0 / std::f32::consts::PI).sqrt() * (u + 0.044715 * u * u * u);
                u * (1.0 - 1.0 / (1.0 + (2.0 * y).exp()))
            }
            _ => u / (1.0 + (-u).exp()),
        };
    };
    let chunk = x.len().div_ceil(pool().threads()).max(512);
    let parts: Vec<std::sync::Mutex<&mut [f32]>> = x.chunks_mut(chunk).map(std::sync::Mutex::new).collect();
    pool().run(parts.len(), &|i| {
        if let Some(p) = parts.get(i) {
            p.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter_mut().for_each(one);
        }
    });
    Ok(())
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
    /// The same tables as plain values, for [`Rope::apply_row`].
    cos_v: Vec<f32>,
    sin_v: Vec<f32>,
    half: usize,
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
            cos: Tensor::from_slice(&cos, (positions, half), &Device::Cpu)?,
            sin: Tensor::from_slice(&sin, (positions, half), &Device::Cpu)?,
            cos_v: cos,
            sin_v: sin,
            half,
            interleaved,
        })
    }

    /// Rotates one position in place: `x` is (heads × head_dim), computed as candle's `rope`
    /// (halves) or `rope_i` (adjacent pairs) kernels do.
    pub fn apply_row(&self, x: &mut [f32], pos: usize) -> Result<()> {
        let half = self.half;
        let range = pos * half..(pos + 1) * half;
        let (Some(cos), Some(sin)) = (self.cos_v.get(range.clone()), self.sin_v.get(range)) else {
            return Err(InferError::Invalid(format!("rotary tables end before position {pos}")));
        };
        for head in x.chunks_exact_mut(2 * half) {
            if self.interleaved {
                for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * cos[i] - b * sin[i];
                    pair[1] = a * sin[i] + b * cos[i];
                }
            } else {
                let (lo, hi) = head.split_at_mut(half);
                for i in 0..half {
                    let (a, b) = (lo[i], hi[i]);
                    lo[i] = a * cos[i] - b * sin[i];
                    hi[i] = b * cos[i] + a * sin[i];
                }
            }
        }
        Ok(())
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

/// Keys and values of past positions, preallocated for the context as `(kv_heads, context,
/// head_dim)` f32 rows (zeroed pages are only touched as they fill, so resident memory grows
/// with the conversation, not the context size). The prefill path appends and reads tensors;
/// the decode path ([`KvCache::push_row`], [`KvCache::attend`]) works on the rows in place.
#[derive(Debug, Clone)]
pub struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    heads: usize,
    dim: usize,
    cap: usize,
    len: usize,
}

impl KvCache {
    pub fn new(context: usize) -> KvCache {
        KvCache { k: Vec::new(), v: Vec::new(), heads: 0, dim: 0, cap: context, len: 0 }
    }

    /// Allocates on first use, when the head shape is known; refuses a different shape later.
    fn ensure(&mut self, heads: usize, dim: usize) -> Result<()> {
        if self.k.is_empty() {
            let n = heads
                .checked_mul(self.cap)
                .and_then(|x| x.checked_mul(dim))
                .ok_or_else(|| InferError::Invalid("KV cache size overflows".into()))?;
            self.k = vec![0f32; n];
            self.v = vec![0f32; n];
            self.heads = heads;
            self.dim = dim;
        } else if (heads, dim) != (self.heads, self.dim) {
            return Err(InferError::Invalid(format!(
                "KV cache holds {} heads of {}, got {heads} of {dim}",
                self.heads, self.dim
            )));
        }
        Ok(())
    }

    fn room(&self, t: usize) -> Result<()> {
        if self.len + t > self.cap {
            return Err(InferError::ContextOverflow { prompt: self.len + t, context: self.cap });
        }
        Ok(())
    }

    /// Appends (kv_heads, t, head_dim) keys and values; returns all of them so far,
    /// (kv_heads, len, head_dim) each.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (heads, t, dim) = k.dims3()?;
        self.ensure(heads, dim)?;
        self.room(t)?;
        let (ks, vs) = (k.flatten_all()?.to_vec1::<f32>()?, v.flatten_all()?.to_vec1::<f32>()?);
        let n = self.len + t;
        let mut kout = Vec::with_capacity(heads * n * dim);
        let mut vout = Vec::with_capacity(heads * n * dim);
        for h in 0..heads {
            let base = h * self.cap * dim;
            let at = base + self.len * dim;
            let new = h * t * dim..(h + 1) * t * dim;
            self.k[at..at + t * dim].copy_from_slice(&ks[new.clone()]);
            self.v[at..at + t * dim].copy_from_slice(&vs[new]);
            kout.extend_from_slice(&self.k[base..base + n * dim]);
            vout.extend_from_slice(&self.v[base..base + n * dim]);
        }
        self.len = n;
        Ok((
            Tensor::from_vec(kout, (heads, n, dim), &Device::Cpu)?,
            Tensor::from_vec(vout, (heads, n, dim), &Device::Cpu)?,
        ))
    }

    /// Appends one position: `k` and `v` are (kv_heads × head_dim) rows.
    pub fn push_row(&mut self, heads: usize, dim: usize, k: &[f32], v: &[f32]) -> Result<()> {
        self.ensure(heads, dim)?;
        self.room(1)?;
        if k.len() != heads * dim || v.len() != heads * dim {
            return Err(InferError::Invalid("KV row of the wrong width".into()));
        }
        for h in 0..heads {
            let at = (h * self.cap + self.len) * dim;
            self.k[at..at + dim].copy_from_slice(&k[h * dim..(h + 1) * dim]);
            self.v[at..at + dim].copy_from_slice(&v[h * dim..(h + 1) * dim]);
        }
        self.len += 1;
        Ok(())
    }

    /// Attention of one query position (the newest) over every cached position: `q` is
    /// (heads × head_dim) with `heads` a multiple of the cached kv heads, `out` the same size.
    /// `slopes`: ALiBi, adding `slope × key position` to the scores.
    pub fn attend(&self, q: &[f32], heads: usize, scale: f32, slopes: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
        let (d, n) = (self.dim, self.len);
        if self.heads == 0 || !heads.is_multiple_of(self.heads) || q.len() != heads * d || out.len() != heads * d {
            return Err(InferError::Invalid("attention: query and cache shapes disagree".into()));
        }
        let group = heads / self.heads;
        // One task per head on the kernels' pool; each head's output is its own chunk.
        let outs: Vec<std::sync::Mutex<&mut [f32]>> = out.chunks_mut(d).map(std::sync::Mutex::new).collect();
        pool().run(heads, &|h| {
            let base = (h / group) * self.cap * d;
            let (Some(qh), Some(cell)) = (q.get(h * d..(h + 1) * d), outs.get(h)) else { return };
            let slope = slopes.and_then(|s| s.get(h).copied()).unwrap_or(0.0);
            let mut oh = cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (keys, values) = (&self.k[base..base + n * d], &self.v[base..base + n * d]);
            zoo_kernels::attn::attend_one(qh, keys, values, scale, slope, &mut Vec::new(), &mut oh);
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn reset(&mut self) {
        self.len = 0;
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

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// The decode path's row operations compute what the tensor path computes: a prefill
    /// through `append` + `attention`, then one more position through `push_row` + `attend`,
    /// with grouped kv heads, with and without ALiBi.
    #[test]
    fn row_attention_equals_the_tensor_path() {
        let (heads, kv_heads, d, t) = (6, 2, 8, 5);
        let slopes = alibi_slopes(heads);
        let slopes_t = Tensor::from_slice(&slopes, heads, &Device::Cpu).unwrap();
        for alibi in [false, true] {
            let mut cache = KvCache::new(16);
            let k = Tensor::from_vec(values(kv_heads * t * d, 1), (kv_heads, t, d), &Device::Cpu).unwrap();
            let v = Tensor::from_vec(values(kv_heads * t * d, 2), (kv_heads, t, d), &Device::Cpu).unwrap();
            cache.append(&k, &v).unwrap();
            // The new position, as rows and as (heads, 1, d) tensors.
            let (q1, k1, v1) = (values(heads * d, 3), values(kv_heads * d, 4), values(kv_heads * d, 5));
            let mut reference = cache.clone();
            let kt = Tensor::from_slice(&k1, (kv_heads, 1, d), &Device::Cpu).unwrap();
            let vt = Tensor::from_slice(&v1, (kv_heads, 1, d), &Device::Cpu).unwrap();
            let (ka, va) = reference.append(&kt, &vt).unwrap();
            let qt = Tensor::from_slice(&q1, (heads, 1, d), &Device::Cpu).unwrap();
            let bias = if alibi { Bias::Alibi(&slopes_t) } else { Bias::None };
            let want = attention(&qt, &ka, &va, t, 0.3, bias).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            cache.push_row(kv_heads, d, &k1, &v1).unwrap();
            assert_eq!(cache.len(), t + 1);
            let mut got = vec![0f32; heads * d];
            cache.attend(&q1, heads, 0.3, alibi.then_some(slopes.as_slice()), &mut got).unwrap();
            assert!(max_diff(&got, &want) < 1e-6, "alibi {alibi}: {}", max_diff(&got, &want));
        }
        // Shapes that disagree are errors, not panics.
        let mut c = KvCache::new(2);
        c.push_row(2, 4, &[0.0; 8], &[0.0; 8]).unwrap();
        assert!(c.push_row(3, 4, &[0.0; 12], &[0.0; 12]).is_err());
        assert!(c.attend(&[0.0; 12], 3, 1.0, None, &mut [0.0; 12]).is_err());
        c.push_row(2, 4, &[0.0; 8], &[0.0; 8]).unwrap();
        assert!(matches!(c.push_row(2, 4, &[0.0; 8], &[0.0; 8]), Err(InferError::ContextOverflow { .. })));
    }

    #[test]
    fn row_norms_rope_and_activations_equal_candle() {
        let dim = 16;
        let x = values(dim, 7);
        let xt = Tensor::from_slice(&x, (1, dim), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(values(dim, 8), dim, &Device::Cpu).unwrap();
        let b = Tensor::from_vec(values(dim, 9), dim, &Device::Cpu).unwrap();
        let rms = Norm::Rms { w: w.to_vec1().unwrap(), weight: w.clone(), eps: 1e-5 };
        let ln = Norm::Layer { w: w.to_vec1().unwrap(), b: b.to_vec1().unwrap(), weight: w, bias: b, eps: 1e-5 };
        for norm in [rms, ln] {
            let want = norm.forward(&xt).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut got = vec![0f32; dim];
            norm.forward_row(&x, &mut got);
            assert!(max_diff(&got, &want) < 1e-6);
        }
        for interleaved in [false, true] {
            let rope = Rope::new(8, 10000.0, 1.0, 12, interleaved).unwrap();
            let pos = 9;
            let heads = Tensor::from_slice(&x, (2, 1, 8), &Device::Cpu).unwrap();
            let want = rope.apply(&heads, pos).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut got = x.clone();
            rope.apply_row(&mut got, pos).unwrap();
            assert!(max_diff(&got, &want) < 1e-6, "interleaved {interleaved}");
            assert!(rope.apply_row(&mut got, 12).is_err(), "past the table");
        }
        for act in [Activation::Silu, Activation::GeluTanh, Activation::Gelu] {
            let x3: Vec<f32> = x.iter().map(|v| v * 3.0).collect();
            let want = activate(&Tensor::from_slice(&x3, dim, &Device::Cpu).unwrap(), act).unwrap().to_vec1().unwrap();
            let mut got = x3;
            activate_in_place(&mut got, act).unwrap();
            assert!(max_diff(&got, &want) < 1e-5, "{act:?}");
        }
    }

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

//! `Linear`: `x @ W^T (+ b)` over every weight form the runner holds (f32, 16-bit, GGML
//! blocks, split f32 and coded bf16 heads), for many rows (a candle tensor: prompts and
//! batches) or one row (plain slices: the decode path), on the kernels' thread pool.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use zoo_kernels::{DenseRows, ThreadPool};

use crate::error::{InferError, Result};
use crate::models::Logits;
use crate::weights::{CodedWeight, HalfWeight, MatrixWeight, QWeight, SplitWeight, WeightSource};

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
        if quant.len() != parts.len()
            || quant
                .iter()
                .any(|q| q.qtype != first.qtype || q.cols != first.cols || q.layout != zoo_kernels::Layout::Rows)
        {
            return Ok(None);
        }
        let weight = QWeight::new(
            quant.iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join("+"),
            first.qtype,
            quant.iter().map(|q| q.rows).sum(),
            first.cols,
            joined(quant.iter().map(|q| &*q.bytes)),
        );
        Ok(Some(Linear::new(MatrixWeight::Quant(Arc::new(weight)), bias)))
    }

    /// The layer with its quantized weights re-laid for the kernels where their type has a
    /// packed layout ([`QWeight::pack`]). Weights shared with another holder (an output head
    /// tied to the embedding table, which is read by rows) stay as they are.
    pub fn packed(mut self, pool: &ThreadPool) -> Result<Linear> {
        if let MatrixWeight::Quant(q) = &mut self.weight
            && let Some(q) = Arc::get_mut(q)
        {
            q.pack(pool)?;
        }
        Ok(self)
    }

    /// `x`: (t, cols) → (t, rows).
    pub fn forward(&self, pool: &ThreadPool, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            MatrixWeight::Dense(w) => match with_f32(w, |_| ()) {
                Some(()) => x.apply_op1_no_bwd(&DenseMatMul { w: DenseWeight::F32(w), pool })?,
                // Not a contiguous f32 CPU tensor: candle's product.
                None => x.matmul(&w.t()?)?,
            },
            MatrixWeight::Quant(q) => x.apply_op1_no_bwd(&QMatMul { w: q, pool })?,
            MatrixWeight::Half(h) => x.apply_op1_no_bwd(&DenseMatMul { w: DenseWeight::Half(h), pool })?,
            MatrixWeight::Split(w) => split_matmul(pool, w, x)?,
            MatrixWeight::Coded(w) => coded_matmul(pool, w, x)?,
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
    pub fn forward_row(&self, pool: &ThreadPool, x: &[f32], out: &mut [f32]) -> Result<()> {
        match &self.weight {
            MatrixWeight::Quant(q) => {
                zoo_kernels::matmul(pool, &q.matrix()?, x, 1, out)?;
            }
            MatrixWeight::Half(h) => {
                zoo_kernels::gemv(pool, DenseRows::Half(h.kind, &h.bytes), h.rows, h.cols, x, out)?;
            }
            MatrixWeight::Split(w) => zoo_kernels::gemv(pool, w.rows(), w.rows, w.cols, x, out)?,
            MatrixWeight::Coded(w) => zoo_kernels::gemv(pool, w.rows(), w.rows, w.cols, x, out)?,
            MatrixWeight::Dense(w) => {
                let (rows, cols) = w.dims2()?;
                let done = with_f32(w, |v| zoo_kernels::gemv(pool, DenseRows::F32(v), rows, cols, x, out));
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
    pub fn forward_row_greedy(&self, pool: &ThreadPool, x: &[f32], out: &mut [f32]) -> Result<usize> {
        match (&self.weight, &self.bias) {
            (MatrixWeight::Split(w), None) => return Ok(zoo_kernels::gemv_greedy(pool, w.greedy_head(), x, out)?),
            (MatrixWeight::Coded(w), None) => {
                return Ok(zoo_kernels::gemv_greedy(pool, w.greedy_head(), x, out)?);
            }
            _ => {}
        }
        self.forward_row(pool, x, out)?;
        Ok(out.len())
    }

    /// Whether [`Linear::forward_row_greedy`] computes fewer than all rows (a split f32 or
    /// coded bf16 head without bias); other layers compute every row either way.
    pub fn prunes_greedy(&self) -> bool {
        self.bias.is_none() && matches!(self.weight, MatrixWeight::Split(_) | MatrixWeight::Coded(_))
    }

    /// Output width.
    pub fn rows(&self) -> Result<usize> {
        self.weight.rows()
    }
}

/// The output head on one normalized row (the decode path): `(1, vocab)` logits, as `logits`
/// asks (all exact, or for [`Logits::Greedy`] the possible maxima).
pub fn head_row(pool: &ThreadPool, head: &Linear, x: &[f32], vocab: usize, logits: Logits) -> Result<Tensor> {
    let mut out = vec![0f32; vocab];
    if logits == Logits::Greedy {
        head.forward_row_greedy(pool, x, &mut out)?;
    } else {
        head.forward_row(pool, x, &mut out)?;
    }
    Ok(Tensor::from_vec(out, (1, vocab), &Device::Cpu)?)
}

/// Activation rows per call of the quantized kernels (see `QMatMul`). With 4096 rows per call
/// (32 SmolLM2 prompts of 128) prefill ran at 0.46× the speed of one prompt on the 2-core
/// Xeon; in slices of 256 rows, at about 1× (measured on a loaded machine: a rough figure).
const MAX_ROWS_PER_CALL: usize = 256;

/// Rows of a split or coded head's product computed per slice of the head.
const SPLIT_SLICE_ROWS: usize = 4096;

/// `x @ W^T` for a split f32 matrix and several rows of `x` (prompts, `--dump-logits`): one
/// row goes through `gemv`; more join the planes of one slice of rows at a time into f32 (a
/// few MiB, never the whole head) for candle's matrix product.
fn split_matmul(pool: &ThreadPool, w: &SplitWeight, x: &Tensor) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    if k != w.cols {
        return Err(InferError::Invalid(format!("{}: input width {k} does not match {} columns", w.name, w.cols)));
    }
    if m == 1 {
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; w.rows];
        zoo_kernels::gemv(pool, w.rows(), w.rows, w.cols, &xs, &mut out)?;
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
fn coded_matmul(pool: &ThreadPool, w: &CodedWeight, x: &Tensor) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    if k != w.cols {
        return Err(InferError::Invalid(format!("{}: input width {k} does not match {} columns", w.name, w.cols)));
    }
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; m * w.rows];
    if m == 1 {
        zoo_kernels::gemv(pool, w.rows(), w.rows, w.cols, &xs, &mut out)?;
        return Ok(Tensor::from_vec(out, (1, w.rows), &Device::Cpu)?);
    }
    let mut slice = vec![0u8; 2 * SPLIT_SLICE_ROWS * w.cols];
    let mut part = vec![0f32; m * SPLIT_SLICE_ROWS];
    for r0 in (0..w.rows).step_by(SPLIT_SLICE_ROWS) {
        let n = SPLIT_SLICE_ROWS.min(w.rows - r0);
        let (bytes, part) =
            (slice.get_mut(..2 * n * w.cols).unwrap_or_default(), part.get_mut(..m * n).unwrap_or_default());
        w.decode_rows(r0, bytes);
        zoo_kernels::matmul_half(pool, zoo_kernels::Half::Bf16, bytes, n, w.cols, &xs, m, part)?;
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
struct QMatMul<'a> {
    w: &'a QWeight,
    pool: &'a ThreadPool,
}

impl CustomOp1 for QMatMul<'_> {
    fn name(&self) -> &'static str {
        "zoo-qmatmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let q = self.w;
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
        let w = q.matrix().map_err(candle_core::Error::wrap)?;
        // The kernel runs every activation row against each tile of weight rows; a batch of
        // many sequences goes through in slices whose quantized activations stay in cache.
        for (xs, os) in
            x.chunks(MAX_ROWS_PER_CALL * q.cols.max(1)).zip(out.chunks_mut(MAX_ROWS_PER_CALL * q.rows.max(1)))
        {
            let rows = xs.len() / q.cols.max(1);
            zoo_kernels::matmul(self.pool, &w, xs, rows, os).map_err(candle_core::Error::wrap)?;
        }
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = q.rows;
        }
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

/// The dense weights [`DenseMatMul`] multiplies: an f32 tensor (contiguous on the CPU) or
/// 16-bit bytes, which stay 16-bit in memory.
enum DenseWeight<'a> {
    F32(&'a Tensor),
    Half(&'a HalfWeight),
}

/// The candle op running dense weights through the kernels' `matmul_dense` on this model's pool
/// (candle's own product would run on a second thread pool, and widen 16-bit weights).
struct DenseMatMul<'a> {
    w: DenseWeight<'a>,
    pool: &'a ThreadPool,
}

impl CustomOp1 for DenseMatMul<'_> {
    fn name(&self) -> &'static str {
        "zoo-densematmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (name, rows, cols) = match &self.w {
            DenseWeight::F32(w) => {
                let (rows, cols) = w.dims2()?;
                ("f32 weight", rows, cols)
            }
            DenseWeight::Half(h) => (h.name.as_str(), h.rows, h.cols),
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg(format!("{name}: input is not contiguous")))?;
        let x = storage.as_slice::<f32>()?.get(start..end).unwrap_or_default();
        let dims = layout.shape().dims();
        if dims.last().copied() != Some(cols) || x.len() % cols.max(1) != 0 {
            return Err(candle_core::Error::Msg(format!("{name}: input width does not match {cols} columns")));
        }
        let m = x.len() / cols.max(1);
        let mut out = vec![0f32; m * rows];
        let run = |w: DenseRows<'_>, out: &mut [f32]| zoo_kernels::matmul_dense(self.pool, w, rows, cols, x, m, out);
        match &self.w {
            DenseWeight::F32(w) => with_f32(w, |v| run(DenseRows::F32(v), &mut out))
                .ok_or_else(|| candle_core::Error::Msg(format!("{name}: not a contiguous f32 tensor")))?,
            DenseWeight::Half(h) => run(DenseRows::Half(h.kind, &h.bytes), &mut out),
        }
        .map_err(candle_core::Error::wrap)?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = rows;
        }
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::tests::values;

    /// A quantized product over more rows than one kernel call takes (sliced) gives each row
    /// what the one-row decode kernel gives it.
    #[test]
    fn sliced_quantized_product_equals_rows() {
        let (rows, cols, m) = (8, 64, 2 * MAX_ROWS_PER_CALL + 37);
        // Q8_0: per 32 values an f16 scale and 32 signed bytes.
        let mut bytes = zoo_weights::mem::HugeBytes::zeroed(rows * cols / 32 * 34);
        for (i, block) in bytes.chunks_exact_mut(34).enumerate() {
            block[..2].copy_from_slice(&half::f16::from_f32(0.01 * (1 + i % 5) as f32).to_le_bytes());
            for (j, b) in block[2..].iter_mut().enumerate() {
                *b = ((i * 31 + j * 17) % 255) as u8;
            }
        }
        let q = QWeight::new("w".into(), zoo_kernels::QuantType::Q8_0, rows, cols, bytes);
        let plain = Linear::new(MatrixWeight::Quant(Arc::new(q)), None);
        let dense = plain.weight().to_dense().unwrap();
        // The same layer with its weights packed for the kernels (a second, unshared copy).
        let packed = Linear::new(MatrixWeight::Dense(dense.clone()), None);
        let MatrixWeight::Quant(q) = plain.weight() else { unreachable!() };
        let copy = QWeight::new("w".into(), q.qtype, q.rows, q.cols, zoo_weights::mem::HugeBytes::copy_of(&q.bytes));
        let pool = ThreadPool::new(2);
        let packed = Linear { weight: MatrixWeight::Quant(Arc::new(copy)), ..packed }.packed(&pool).unwrap();
        let MatrixWeight::Quant(pq) = packed.weight() else { unreachable!() };
        assert_eq!(pq.layout, zoo_kernels::Layout::Packed8);
        // Dequantizing the packed weights gives the matrix back.
        assert_eq!(packed.weight().to_dense().unwrap().to_vec2::<f32>().unwrap(), dense.to_vec2::<f32>().unwrap());
        let x = values(m * cols, 11);
        for lin in [&plain, &packed] {
            let y = lin.forward(&pool, &Tensor::from_slice(&x, (m, cols), &Device::Cpu).unwrap()).unwrap();
            let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut row = vec![0f32; rows];
            for (i, xr) in x.chunks_exact(cols).enumerate() {
                lin.forward_row(&pool, xr, &mut row).unwrap();
                assert_eq!(&y[i * rows..(i + 1) * rows], row.as_slice(), "row {i}");
            }
        }
    }

    /// A head tied to the embedding table shares its weights: packing leaves both in the
    /// file's row layout, which the embedding reads by rows.
    #[test]
    fn shared_weights_are_not_packed() {
        let bytes = zoo_weights::mem::HugeBytes::zeroed(8 * 64 / 32 * 18);
        let q = Arc::new(QWeight::new("w".into(), zoo_kernels::QuantType::Q4_0, 8, 64, bytes));
        let table = MatrixWeight::Quant(Arc::clone(&q));
        let head = Linear::new(MatrixWeight::Quant(q), None).packed(&ThreadPool::new(1)).unwrap();
        for w in [&table, head.weight()] {
            let MatrixWeight::Quant(q) = w else { unreachable!() };
            assert_eq!(q.layout, zoo_kernels::Layout::Rows);
        }
    }
}

//! Named tensors for the model code, whatever file they live in: Hugging Face safetensors or
//! PyTorch `.bin` checkpoints (names as transformers writes them) and GGUF files (llama.cpp
//! names, translated here). Dense weights become f32 candle tensors; GGML block-quantized
//! weights stay as their block bytes for the quantized kernels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use half::{bf16, f16};
use zoo_kernels::{Half, Layout, QMatrix, QuantType, ThreadPool, packed};
use zoo_weights::gptq::{GptqLinear, GptqModel};
use zoo_weights::mem::HugeBytes;
use zoo_weights::{Checkpoint, Dtype, TensorInfo};

use crate::config::Arch;
use crate::error::{InferError, Result};

/// The largest single tensor read (a 250880 × 4096 f32 embedding is 3.8 GiB).
const MAX_TENSOR_BYTES: u64 = 16 << 30;

/// A block-quantized matrix: `rows` output features of `cols` inputs, GGML block bytes, in the
/// file's row-major layout or re-laid for the kernels (see [`QWeight::pack`]).
#[derive(Debug)]
pub struct QWeight {
    pub name: String,
    pub qtype: QuantType,
    pub rows: usize,
    pub cols: usize,
    pub bytes: HugeBytes,
    pub layout: Layout,
}

impl QWeight {
    /// A row-major matrix as read from a file.
    pub fn new(name: String, qtype: QuantType, rows: usize, cols: usize, bytes: HugeBytes) -> QWeight {
        QWeight { name, qtype, rows, cols, bytes, layout: Layout::Rows }
    }

    /// The kernels' view of it.
    pub fn matrix(&self) -> std::result::Result<QMatrix<'_>, zoo_kernels::KernelError> {
        match self.layout {
            Layout::Rows => QMatrix::new(&self.bytes, self.qtype, self.rows, self.cols),
            Layout::Packed8 => QMatrix::packed(&self.bytes, self.qtype, self.rows, self.cols),
        }
    }

    /// Re-lays the matrix into groups of 8 interleaved rows (`zoo_kernels::packed`, as
    /// llama.cpp's CPU repack) when its row count allows (a multiple of 8): the faster kernels
    /// for prompts and decode. Legacy types and Q6_K keep their size and are re-laid in place,
    /// one group at a time; Q4_K and Q5_K go into a new buffer 2–3% larger (their scales
    /// unpacked) and the old one is freed. Returns whether it did.
    pub fn pack(&mut self, pool: &ThreadPool) -> Result<bool> {
        if self.layout != Layout::Rows {
            return Ok(false);
        }
        let Some(len) = packed::packed_len(self.qtype, self.rows, self.cols) else { return Ok(false) };
        let wrap = |e: zoo_kernels::KernelError| InferError::Invalid(format!("{}: {e}", self.name));
        if len == self.bytes.len() {
            packed::pack_in_place(pool, self.qtype, &mut self.bytes, self.rows, self.cols).map_err(wrap)?;
        } else {
            let mut bytes = HugeBytes::zeroed(len);
            packed::pack_parallel(pool, self.qtype, &self.bytes, self.rows, self.cols, &mut bytes).map_err(wrap)?;
            self.bytes = bytes;
        }
        self.layout = Layout::Packed8;
        Ok(true)
    }

    /// Row `r` as f32 into `dst` (`cols` values), whatever the layout.
    pub fn dequantize_row(&self, r: usize, dst: &mut [f32]) -> Result<()> {
        let row_bytes =
            self.qtype.row_bytes(self.cols).map_err(|e| InferError::Invalid(format!("{}: {e}", self.name)))?;
        let src = match self.layout {
            Layout::Rows => self.bytes.get(r * row_bytes..(r + 1) * row_bytes).map(std::borrow::Cow::Borrowed),
            Layout::Packed8 => {
                let group = self.bytes.len() / (self.rows / packed::GROUP).max(1);
                let g = r / packed::GROUP;
                self.bytes.get(g * group..(g + 1) * group).map(|src| {
                    let mut plain = vec![0u8; packed::GROUP * row_bytes];
                    packed::unpack_group(self.qtype, src, &mut plain);
                    let j = r % packed::GROUP;
                    std::borrow::Cow::Owned(plain.get(j * row_bytes..(j + 1) * row_bytes).unwrap_or_default().to_vec())
                })
            }
        };
        let src = src.ok_or_else(|| InferError::Invalid(format!("{}: row {r} out of range", self.name)))?;
        zoo_kernels::dequantize_row(self.qtype, &src, dst)?;
        Ok(())
    }
}

/// A 16-bit float matrix (f16 or bf16) kept as stored: half the memory and half the bytes read
/// per token of an f32 copy.
#[derive(Debug)]
pub struct HalfWeight {
    pub name: String,
    pub kind: Half,
    pub rows: usize,
    pub cols: usize,
    pub bytes: HugeBytes,
}

/// An f32 matrix held as two planes of 16-bit halves (`zoo_kernels::DenseRows::Split`): the
/// form of f32 output heads, whose upper plane alone lets greedy decoding skip the lower plane
/// of nearly every row (`zoo_kernels::greedy`). Same memory as plain f32.
#[derive(Debug)]
pub struct SplitWeight {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    /// The upper 16 bits of every value (little-endian): the matrix truncated to bf16.
    pub hi: HugeBytes,
    /// The lower 16 bits of every value (little-endian).
    pub lo: HugeBytes,
    /// Upper bounds of the 2-norms of the rows of `hi` (`zoo_kernels::greedy::row_norms`).
    pub norms: Vec<f32>,
}

impl SplitWeight {
    /// Builds the planes from f32 values (tests, and weights made in memory).
    pub fn from_f32(name: &str, values: &[f32], rows: usize, cols: usize) -> Result<SplitWeight> {
        let mut hi = HugeBytes::zeroed(2 * values.len());
        let mut lo = HugeBytes::zeroed(2 * values.len());
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        split_bytes(&bytes, &mut hi, &mut lo);
        SplitWeight::from_planes(name, hi, lo, rows, cols)
    }

    fn from_planes(name: &str, hi: HugeBytes, lo: HugeBytes, rows: usize, cols: usize) -> Result<SplitWeight> {
        let norms = zoo_kernels::greedy::row_norms(&hi, rows, cols)?;
        if lo.len() != hi.len() {
            return Err(InferError::Invalid(format!("{name}: split planes of different sizes")));
        }
        Ok(SplitWeight { name: name.to_string(), rows, cols, hi, lo, norms })
    }

    /// Row `r` as f32 values into `dst` (`cols` long); rows past the end leave `dst` as it is.
    pub fn row_into(&self, r: usize, dst: &mut [f32]) {
        let span = 2 * r * self.cols..2 * (r + 1) * self.cols;
        let (Some(hi), Some(lo)) = (self.hi.get(span.clone()), self.lo.get(span)) else { return };
        for ((d, h), l) in dst.iter_mut().zip(hi.chunks_exact(2)).zip(lo.chunks_exact(2)) {
            if let ([h0, h1], [l0, l1]) = (h, l) {
                *d = f32::from_le_bytes([*l0, *l1, *h0, *h1]);
            }
        }
    }

    pub fn rows(&self) -> zoo_kernels::DenseRows<'_> {
        zoo_kernels::DenseRows::Split { hi: &self.hi, lo: &self.lo }
    }

    /// The planes and norms as `zoo_kernels::gemv_greedy` reads them.
    pub fn greedy_head(&self) -> zoo_kernels::SplitHead<'_> {
        zoo_kernels::SplitHead { hi: &self.hi, lo: &self.lo, norms: &self.norms, rows: self.rows, cols: self.cols }
    }
}

/// A bf16 matrix coded as two byte planes (`zoo_kernels::coded`): exactly the bf16 values in
/// the same memory, with the code plane alone an approximation that bounds every row's product,
/// so greedy decoding reads about half of it per token (`zoo_kernels::gemv_greedy`). The
/// form of bf16 output heads.
#[derive(Debug)]
pub struct CodedWeight {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub code: HugeBytes,
    pub rest: HugeBytes,
    pub info: Vec<zoo_kernels::coded::CodedRow>,
}

impl CodedWeight {
    /// Codes little-endian bf16 bytes (`rows × cols` values; tests and weights made in memory).
    pub fn from_bf16(pool: &ThreadPool, name: &str, bytes: &[u8], rows: usize, cols: usize) -> Result<CodedWeight> {
        if bytes.len() != 2 * rows * cols {
            return Err(InferError::Invalid(format!(
                "{name}: {} bytes are not {rows} x {cols} bf16 values",
                bytes.len()
            )));
        }
        let mut w = CodedWeight::empty(name, rows, cols);
        zoo_kernels::coded::encode_rows(pool, bytes, cols, &mut w.code, &mut w.rest, &mut w.info)?;
        Ok(w)
    }

    fn empty(name: &str, rows: usize, cols: usize) -> CodedWeight {
        CodedWeight {
            name: name.to_string(),
            rows,
            cols,
            code: HugeBytes::zeroed(rows * cols),
            rest: HugeBytes::zeroed(rows * cols),
            info: vec![zoo_kernels::coded::CodedRow::default(); rows],
        }
    }

    /// Rows `r0 ..` decoded into little-endian bf16 bytes (`dst`, whole rows; rows past the
    /// end leave it as it is).
    pub fn decode_rows(&self, r0: usize, dst: &mut [u8]) {
        let cols = self.cols.max(1);
        for (i, d) in dst.chunks_exact_mut(2 * cols).enumerate() {
            let r = r0 + i;
            let span = r * self.cols..(r + 1) * self.cols;
            if let (Some(code), Some(rest), Some(info)) =
                (self.code.get(span.clone()), self.rest.get(span), self.info.get(r))
            {
                zoo_kernels::coded::decode_row(code, rest, info.base, d);
            }
        }
    }

    /// Row `r` as f32 values into `dst` (`cols` long); rows past the end leave `dst` as it is.
    pub fn row_into(&self, r: usize, dst: &mut [f32]) {
        if r >= self.rows {
            return;
        }
        let mut bytes = vec![0u8; 2 * self.cols];
        self.decode_rows(r, &mut bytes);
        zoo_kernels::dense16::widen(Half::Bf16, zoo_kernels::Backend::detect(), &bytes, dst);
    }

    pub fn rows(&self) -> zoo_kernels::DenseRows<'_> {
        zoo_kernels::DenseRows::Coded { code: &self.code, rest: &self.rest, info: &self.info }
    }

    /// The planes and row facts as `zoo_kernels::gemv_greedy` reads them.
    pub fn greedy_head(&self) -> zoo_kernels::CodedHead<'_> {
        zoo_kernels::CodedHead {
            code: &self.code,
            rest: &self.rest,
            info: &self.info,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// Writes the halves of little-endian f32 values (`bytes`, whole values) to the start of the
/// planes (each half as long as `bytes`; values past their end are dropped).
fn split_bytes(bytes: &[u8], hi: &mut [u8], lo: &mut [u8]) {
    for ((v, h), l) in bytes.chunks_exact(4).zip(hi.chunks_exact_mut(2)).zip(lo.chunks_exact_mut(2)) {
        if let ([b0, b1, b2, b3], [h0, h1], [l0, l1]) = (v, h, l) {
            (*l0, *l1, *h0, *h1) = (*b0, *b1, *b2, *b3);
        }
    }
}

/// A weight matrix as the model will multiply with it.
#[derive(Debug, Clone)]
pub enum MatrixWeight {
    /// f32, shape (rows, cols).
    Dense(Tensor),
    Half(Arc<HalfWeight>),
    Quant(Arc<QWeight>),
    /// f32 in two planes (output heads).
    Split(Arc<SplitWeight>),
    /// bf16 coded as two byte planes (output heads).
    Coded(Arc<CodedWeight>),
}

impl MatrixWeight {
    pub fn rows(&self) -> Result<usize> {
        Ok(match self {
            MatrixWeight::Dense(w) => w.dim(0)?,
            MatrixWeight::Half(h) => h.rows,
            MatrixWeight::Quant(q) => q.rows,
            MatrixWeight::Split(w) => w.rows,
            MatrixWeight::Coded(w) => w.rows,
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
                match q.layout {
                    Layout::Rows => zoo_kernels::dequantize_row(q.qtype, &q.bytes, &mut v)?,
                    Layout::Packed8 => {
                        for (r, dst) in v.chunks_exact_mut(q.cols.max(1)).enumerate() {
                            q.dequantize_row(r, dst)?;
                        }
                    }
                }
                Tensor::from_vec(v, (q.rows, q.cols), &Device::Cpu)?
            }
            MatrixWeight::Split(w) => {
                let mut v = vec![0f32; w.rows * w.cols];
                for (r, dst) in v.chunks_exact_mut(w.cols.max(1)).enumerate() {
                    w.row_into(r, dst);
                }
                Tensor::from_vec(v, (w.rows, w.cols), &Device::Cpu)?
            }
            MatrixWeight::Coded(w) => {
                let mut bytes = vec![0u8; 2 * w.rows * w.cols];
                w.decode_rows(0, &mut bytes);
                let mut v = vec![0f32; w.rows * w.cols];
                zoo_kernels::dense16::widen(Half::Bf16, zoo_kernels::Backend::detect(), &bytes, &mut v);
                Tensor::from_vec(v, (w.rows, w.cols), &Device::Cpu)?
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
    /// Where output heads are coded at load.
    pool: Arc<ThreadPool>,
}

enum Store {
    Plain(Checkpoint),
    /// An AutoGPTQ int4 folder: quantized linears come from `GptqModel`, the rest (embeddings,
    /// norms, biases) from its checkpoint.
    Gptq(GptqModel),
}

impl WeightSource {
    pub fn new(ck: Checkpoint, arch: Arch, pool: Arc<ThreadPool>) -> WeightSource {
        let gguf = ck.gguf().is_some();
        WeightSource { store: Store::Plain(ck), arch, gguf, device: Device::Cpu, pool }
    }

    /// A GPTQ int4 checkpoint. Its linears are dequantized exactly (through `g_idx`) and
    /// requantized to Q8_0 for the kernels: 8.5 bits per weight, error far below GPTQ's own.
    pub fn gptq(model: GptqModel, arch: Arch, pool: Arc<ThreadPool>) -> WeightSource {
        WeightSource { store: Store::Gptq(model), arch, gguf: false, device: Device::Cpu, pool }
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
        self.read_f32(t)
    }

    /// The bytes of `t` as stored, in a buffer on huge pages: weights the model keeps and reads
    /// every token (see `zoo_weights::mem`).
    fn read_resident(&self, t: &TensorInfo) -> Result<HugeBytes> {
        check_size(t)?;
        let mut buf = HugeBytes::zeroed(t.byte_len as usize);
        self.ck().read_chunk(t, 0, &mut buf)?;
        Ok(buf)
    }

    /// The values of `t` as f32. Dense types are converted chunk by chunk into the result, so
    /// loading never holds a second, byte copy of a large tensor.
    fn read_f32(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let dense = match t.dtype {
            Dtype::Ggml(g) => g.dense(),
            d => Some(d),
        };
        let Some((dense, width)) = dense.and_then(|d| Some((d, dense_width(d)?))) else {
            let bytes = self.ck().read_to_vec(t, MAX_TENSOR_BYTES)?;
            return dequantized(t, &bytes);
        };
        check_size(t)?;
        let mut out = Vec::with_capacity((t.byte_len / width) as usize);
        zoo_weights::mem::advise_huge_pages(out.spare_capacity_mut());
        // A multiple of every width, so no value straddles two chunks.
        let mut buf = vec![0u8; 1 << 20];
        let mut converted = true;
        self.ck().for_each_chunk(t, &mut buf, |_, chunk| {
            converted &= extend_dense(dense, chunk, &mut out);
            Ok(())
        })?;
        if !converted || out.len() as u64 * width != t.byte_len {
            return Err(InferError::Invalid(format!(
                "{}: tensor {}: {} bytes are not whole {:?} values",
                t.file.display(),
                t.name,
                t.byte_len,
                t.dtype
            )));
        }
        Ok(out)
    }

    /// An output head (`rows` = vocabulary): like [`WeightSource::matrix`], except that f32
    /// values are read straight into the two planes of a [`SplitWeight`], and bf16 values
    /// coded into those of a [`CodedWeight`] (same memory, and greedy decoding reads about half
    /// of it per token).
    pub fn head_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<MatrixWeight> {
        if self.gptq_module(name).is_some() {
            return self.matrix(name, rows, cols);
        }
        let t = self.info(name)?;
        let bf16_stored = match t.dtype {
            Dtype::BF16 => true,
            Dtype::Ggml(g) => g.dense() == Some(Dtype::BF16),
            _ => false,
        };
        if bf16_stored {
            return self.coded_head(t, rows, cols);
        }
        let f32_stored = match t.dtype {
            Dtype::F32 => true,
            Dtype::Ggml(g) => g.dense() == Some(Dtype::F32),
            _ => false,
        };
        if !f32_stored {
            return self.matrix(name, rows, cols);
        }
        self.check_shape(t, &[rows, cols])?;
        check_size(t)?;
        if t.byte_len % 4 != 0 {
            return Err(InferError::Invalid(format!(
                "{}: tensor {}: {} bytes are not whole f32 values",
                t.file.display(),
                t.name,
                t.byte_len
            )));
        }
        let half_len = (t.byte_len / 2) as usize;
        let (mut hi, mut lo) = (HugeBytes::zeroed(half_len), HugeBytes::zeroed(half_len));
        // A multiple of 4, so chunks hold whole values.
        let mut buf = vec![0u8; 1 << 20];
        let mut filled = 0;
        self.ck().for_each_chunk(t, &mut buf, |offset, chunk| {
            let at = (offset / 2) as usize;
            let (Some(h), Some(l)) = (hi.get_mut(at..), lo.get_mut(at..)) else { return Ok(()) };
            split_bytes(chunk, h, l);
            filled += chunk.len() / 2;
            Ok(())
        })?;
        if filled != half_len {
            return Err(InferError::Invalid(format!(
                "{}: tensor {}: {} bytes are not whole f32 values",
                t.file.display(),
                t.name,
                t.byte_len
            )));
        }
        Ok(MatrixWeight::Split(Arc::new(SplitWeight::from_planes(&t.name, hi, lo, rows, cols)?)))
    }

    /// A bf16 head coded row by row as it is read (never held whole as bf16 as well).
    fn coded_head(&self, t: &TensorInfo, rows: usize, cols: usize) -> Result<MatrixWeight> {
        self.check_shape(t, &[rows, cols])?;
        check_size(t)?;
        let row_bytes = 2 * cols;
        if row_bytes == 0 {
            return self.matrix(&t.name, rows, cols);
        }
        if t.byte_len != (rows * row_bytes) as u64 {
            return Err(InferError::Invalid(format!(
                "{}: tensor {}: {} bytes are not {rows} x {cols} bf16 values",
                t.file.display(),
                t.name,
                t.byte_len
            )));
        }
        let mut w = CodedWeight::empty(&t.name, rows, cols);
        // Whole rows are gathered in `stage` (rows may straddle read chunks) and coded a batch
        // at a time on the thread pool.
        let batch = (4 << 20) / row_bytes + 1;
        let mut stage: Vec<u8> = Vec::with_capacity(batch * row_bytes);
        let mut next = 0usize;
        let mut flush = |stage: &mut Vec<u8>, next: &mut usize| -> Result<()> {
            let n = stage.len() / row_bytes;
            let span = *next * cols..(*next + n) * cols;
            let (Some(code), Some(rest), Some(info)) =
                (w.code.get_mut(span.clone()), w.rest.get_mut(span), w.info.get_mut(*next..*next + n))
            else {
                return Err(InferError::Invalid(format!(
                    "{}: tensor {}: more rows than its shape",
                    t.file.display(),
                    t.name
                )));
            };
            let whole = stage.get(..n * row_bytes).unwrap_or_default();
            zoo_kernels::coded::encode_rows(&self.pool, whole, cols, code, rest, info)?;
            stage.drain(..n * row_bytes);
            *next += n;
            Ok(())
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut failed = None;
        self.ck().for_each_chunk(t, &mut buf, |_, chunk| {
            stage.extend_from_slice(chunk);
            if failed.is_none() && stage.len() >= (batch - 1) * row_bytes {
                failed = flush(&mut stage, &mut next).err();
            }
            Ok(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        flush(&mut stage, &mut next)?;
        if next != rows || !stage.is_empty() {
            return Err(InferError::Invalid(format!("{}: tensor {}: short read", t.file.display(), t.name)));
        }
        Ok(MatrixWeight::Coded(Arc::new(w)))
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
            let bytes = self.read_resident(t)?;
            return Ok(MatrixWeight::Quant(Arc::new(QWeight::new(t.name.clone(), qtype, rows, cols, bytes))));
        }
        let kind = match t.dtype {
            Dtype::F16 => Some(Half::F16),
            Dtype::BF16 => Some(Half::Bf16),
            Dtype::Ggml(g) if g.dense() == Some(Dtype::F16) => Some(Half::F16),
            Dtype::Ggml(g) if g.dense() == Some(Dtype::BF16) => Some(Half::Bf16),
            _ => None,
        };
        if let Some(kind) = kind {
            let bytes = self.read_resident(t)?;
            return Ok(MatrixWeight::Half(Arc::new(HalfWeight { name: t.name.clone(), kind, rows, cols, bytes })));
        }
        let v = self.read_f32(t)?;
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
    let mut bytes = HugeBytes::zeroed(rows * row_bytes);
    for (src, dst) in w.chunks_exact(cols).zip(bytes.chunks_exact_mut(row_bytes)) {
        zoo_weights::quant::quantize_row(qtype, src, dst)
            .map_err(|e| InferError::Invalid(format!("{}: {}: {e}", path.display(), m.name)))?;
    }
    Ok(MatrixWeight::Quant(Arc::new(QWeight::new(m.name.clone(), qtype, rows, cols, bytes))))
}

/// Refuses tensors over [`MAX_TENSOR_BYTES`] before anything is allocated for them.
fn check_size(t: &TensorInfo) -> Result<()> {
    if t.byte_len > MAX_TENSOR_BYTES {
        return Err(zoo_weights::WeightsError::TensorTooLarge {
            tensor: t.name.clone(),
            byte_len: t.byte_len,
            limit: MAX_TENSOR_BYTES,
        }
        .into());
    }
    Ok(())
}

/// Bytes per value of a dense dtype that [`extend_dense`] converts.
fn dense_width(d: Dtype) -> Option<u64> {
    match d {
        Dtype::F32 => Some(4),
        Dtype::F16 | Dtype::BF16 => Some(2),
        Dtype::F64 => Some(8),
        _ => None,
    }
}

/// Dequantizes a GGML block-quantized tensor to f32 values (dense dtypes go through
/// [`extend_dense`]; anything else is an error).
fn dequantized(t: &TensorInfo, bytes: &[u8]) -> Result<Vec<f32>> {
    let bad = || InferError::Dtype { path: t.file.clone(), name: t.name.clone(), dtype: format!("{:?}", t.dtype) };
    let Dtype::Ggml(g) = t.dtype else { return Err(bad()) };
    let qtype = QuantType::from_ggml(g).ok_or_else(bad)?;
    let n: usize = t.shape.iter().map(|&d| d as usize).product();
    let mut out = vec![0f32; n];
    zoo_weights::mem::advise_huge_pages(&mut out);
    zoo_weights::quant::dequantize_row(qtype, bytes, &mut out)
        .map_err(|e| InferError::Invalid(format!("{}: tensor {}: {e}", t.file.display(), t.name)))?;
    Ok(out)
}

/// Appends the values of `bytes` (little-endian `d`) to `out` as f32; false for a dtype
/// without a [`dense_width`].
fn extend_dense(d: Dtype, bytes: &[u8], out: &mut Vec<f32>) -> bool {
    match d {
        Dtype::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        Dtype::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
        Dtype::BF16 => out.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())),
        Dtype::F64 => out.extend(
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32),
        ),
        _ => return false,
    }
    true
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

    /// Dense tensors larger than the 1 MiB read chunk convert to the same f32 values as
    /// stored, in every dense dtype, through `f32_values` and `matrix`.
    #[test]
    fn dense_tensors_convert_across_read_chunks() {
        let n32 = 300_001; // 1.2 MB of f32: two chunks and a partial one
        let n16 = 700_003;
        let v32: Vec<f32> = (0..n32).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        let v16: Vec<f32> = (0..n16).map(|i| bf16::from_f32((i as f32 * 0.11).cos()).to_f32()).collect();
        let vh: Vec<f32> = (0..n16).map(|i| f16::from_f32((i % 977) as f32 / 977.0).to_f32()).collect();
        let v64 = [1.5f64, -2.25, 1e-3];
        let mut data = Vec::new();
        let mut header = serde_json::Map::new();
        let mut put = |name: &str, dtype: &str, shape: Vec<usize>, bytes: Vec<u8>| {
            let at = data.len();
            data.extend(bytes);
            header.insert(
                name.into(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [at, data.len()]}),
            );
        };
        put("a", "F32", vec![n32], v32.iter().flat_map(|v| v.to_le_bytes()).collect());
        put("m", "F32", vec![1, n32], v32.iter().flat_map(|v| v.to_le_bytes()).collect());
        put("b", "BF16", vec![n16], v16.iter().flat_map(|v| bf16::from_f32(*v).to_le_bytes()).collect());
        put("mb", "BF16", vec![1, n16], v16.iter().flat_map(|v| bf16::from_f32(*v).to_le_bytes()).collect());
        put("h", "F16", vec![n16], vh.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect());
        // 699 rows of 2002 bytes: rows straddle the 1 MiB read chunks.
        let (hr, hc) = (699, 1001);
        put("hb", "BF16", vec![hr, hc], v16[..hr * hc].iter().flat_map(|v| bf16::from_f32(*v).to_le_bytes()).collect());
        put("d", "F64", vec![3], v64.iter().flat_map(|v| v.to_le_bytes()).collect());
        let mut json = serde_json::to_vec(&header).unwrap();
        json.resize(json.len().next_multiple_of(8), b' ');
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let mut file = (json.len() as u64).to_le_bytes().to_vec();
        file.extend(json);
        file.extend(data);
        std::fs::write(&path, file).unwrap();

        let src = WeightSource::new(open_checkpoint(&path).unwrap(), Arch::Llama, Arc::new(ThreadPool::new(1)));
        assert_eq!(src.f32_values("a", &[n32]).unwrap(), v32);
        assert_eq!(src.f32_values("b", &[n16]).unwrap(), v16);
        assert_eq!(src.f32_values("h", &[n16]).unwrap(), vh);
        assert_eq!(src.f32_values("d", &[3]).unwrap(), vec![1.5f32, -2.25, 1e-3]);
        let MatrixWeight::Dense(m) = src.matrix("m", 1, n32).unwrap() else { panic!("f32 matrix not dense") };
        assert_eq!(m.flatten_all().unwrap().to_vec1::<f32>().unwrap(), v32);
        assert!(matches!(src.f32_values("a", &[n32 - 1]), Err(InferError::Shape { .. })));
        // An f32 head is read into split planes across the same chunks; others as `matrix`.
        let MatrixWeight::Split(head) = src.head_matrix("m", 1, n32).unwrap() else { panic!("f32 head not split") };
        let mut row = vec![0f32; n32];
        head.row_into(0, &mut row);
        assert_eq!(row, v32);
        assert_eq!(MatrixWeight::Split(head).to_dense().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), v32);
        // A bf16 head is coded row by row as it is read, rows straddling chunks included.
        let MatrixWeight::Coded(coded) = src.head_matrix("hb", hr, hc).unwrap() else { panic!("bf16 head not coded") };
        let mut row = vec![0f32; hc];
        for r in 0..hr {
            coded.row_into(r, &mut row);
            assert_eq!(row, v16[r * hc..(r + 1) * hc], "row {r}");
        }
        let dense = MatrixWeight::Coded(coded).to_dense().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(dense, v16[..hr * hc]);
        assert!(matches!(src.head_matrix("mb", 1, n16).unwrap(), MatrixWeight::Coded(_)));
        assert!(matches!(src.head_matrix("h", n16, 1), Err(InferError::Shape { .. })));
        assert!(matches!(src.head_matrix("m", 2, n32 / 2), Err(InferError::Shape { .. })));
    }

    #[test]
    fn coded_weights_decode_exactly() {
        let v = [1.0f32, -0.0, 1e-40, -3.0e38, 1e-30, f32::NAN, 0.5, -2.5e-3, 7.0];
        let bytes: Vec<u8> = v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect();
        let w = CodedWeight::from_bf16(&ThreadPool::new(2), "t", &bytes, 3, 3).unwrap();
        assert!(w.info[1].tiny, "1e-30 is more than 2^37 under 3e38");
        for r in 0..3 {
            let mut row = [0f32; 3];
            w.row_into(r, &mut row);
            let want: Vec<u32> = v[3 * r..3 * r + 3].iter().map(|x| bf16::from_f32(*x).to_f32().to_bits()).collect();
            assert_eq!(row.map(f32::to_bits).to_vec(), want, "row {r}");
        }
        assert!(CodedWeight::from_bf16(&ThreadPool::new(2), "t", &bytes, 4, 3).is_err());
    }

    #[test]
    fn split_weights_join_back_exactly() {
        let v = [1.0f32, -0.0, f32::MIN_POSITIVE / 3.0, 3.4e38, -1.2345678e-5, f32::INFINITY];
        let w = SplitWeight::from_f32("t", &v, 2, 3).unwrap();
        let mut row = [0f32; 3];
        w.row_into(1, &mut row);
        assert_eq!(row.map(f32::to_bits), [v[3], v[4], v[5]].map(f32::to_bits));
        assert_eq!(w.norms.len(), 2);
        assert!(SplitWeight::from_f32("t", &v, 4, 3).is_err());
    }
}

//! GGML block quantization: f32 rows to the block bytes that llama.cpp writes into GGUF, and back.
//!
//! The quantizers are byte-exact ports of ggml's reference code (`quantize_row_*_ref` in
//! `ggml-quants.c`, which `ggml_quantize_chunk` runs when there is no importance matrix, and which
//! gguf-py's numpy quantizers reproduce). Exactness rests on three habits of this port:
//! the same float operations in the same order in plain f32 (Rust never fuses `a * b + c`, and
//! neither does ggml's reference code any more), the same rounding (`as` truncation where C
//! casts, `f32::round` where C calls `roundf`, [`nearest_int`]'s ties-to-even trick where ggml
//! uses it), and scales rounded to f16 to nearest-even before they are used again.
//!
//! Blocks run along a row (ggml `ne[0]`); a block never spans two rows, and every block is
//! quantized on its own, so any number of whole blocks can be passed at once.
//!
//! Entry points: [`quantize_row`], [`dequantize_row`], [`quantize_rows_parallel`].

mod k;

pub use k::{pack_scale_min_k4, unpack_scale_min_k4};
mod legacy;

use std::fmt;

use half::f16;

use crate::dtype::GgmlType;

/// A GGML block type this module can quantize and dequantize.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// 32 values: f16 scale, 4-bit values `(q - 8) * d`.
    Q4_0,
    /// 32 values: f16 scale and minimum, 4-bit values `q * d + m`.
    Q4_1,
    /// 32 values: f16 scale, 5-bit values `(q - 16) * d`.
    Q5_0,
    /// 32 values: f16 scale and minimum, 5-bit values `q * d + m`.
    Q5_1,
    /// 32 values: f16 scale, 8-bit values `q * d`.
    Q8_0,
    /// 256 values: f16 super-scales, 6-bit scale and minimum per 32, 4-bit values.
    Q4K,
    /// 256 values: as Q4_K, with 5-bit values (the fifth bits in a 32-byte array of their own).
    Q5K,
    /// 256 values: f16 super-scale, 8-bit scale per 16, 6-bit values.
    Q6K,
}

impl QuantType {
    /// Every type, in ggml id order.
    pub const ALL: [QuantType; 8] = [
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
        QuantType::Q4K,
        QuantType::Q5K,
        QuantType::Q6K,
    ];

    /// Values per block.
    pub fn block_size(self) -> usize {
        match self {
            QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1 | QuantType::Q8_0 => 32,
            QuantType::Q4K | QuantType::Q5K | QuantType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            QuantType::Q4_0 => legacy::Q4_0_BYTES,
            QuantType::Q4_1 => legacy::Q4_1_BYTES,
            QuantType::Q5_0 => legacy::Q5_0_BYTES,
            QuantType::Q5_1 => legacy::Q5_1_BYTES,
            QuantType::Q8_0 => legacy::Q8_0_BYTES,
            QuantType::Q4K => k::Q4_K_BYTES,
            QuantType::Q5K => k::Q5_K_BYTES,
            QuantType::Q6K => k::Q6_K_BYTES,
        }
    }

    /// The GGUF tensor type.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            QuantType::Q4_0 => GgmlType::Q4_0,
            QuantType::Q4_1 => GgmlType::Q4_1,
            QuantType::Q5_0 => GgmlType::Q5_0,
            QuantType::Q5_1 => GgmlType::Q5_1,
            QuantType::Q8_0 => GgmlType::Q8_0,
            QuantType::Q4K => GgmlType::Q4_K,
            QuantType::Q5K => GgmlType::Q5_K,
            QuantType::Q6K => GgmlType::Q6_K,
        }
    }

    /// The type for a GGUF tensor type, if this module handles it.
    pub fn from_ggml(t: GgmlType) -> Option<QuantType> {
        QuantType::ALL.into_iter().find(|q| q.ggml_type() == t)
    }

    /// ggml's name: `Q4_0`, ..., `Q4_K`, `Q5_K`, `Q6_K`.
    pub fn name(self) -> &'static str {
        self.ggml_type().name()
    }

    /// Parses ggml's name, in any case (`Q4_K`, `q4_k`).
    pub fn from_name(name: &str) -> Option<QuantType> {
        QuantType::ALL.into_iter().find(|q| q.name().eq_ignore_ascii_case(name))
    }

    /// Bytes taken by `n` values, which must be a whole number of blocks.
    pub fn row_bytes(self, n: usize) -> Result<usize, QuantError> {
        if !n.is_multiple_of(self.block_size()) {
            return Err(QuantError::RowLength { ty: self, len: n, block_size: self.block_size() });
        }
        Ok(n / self.block_size() * self.type_size())
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What can go wrong in this module: only wrong lengths, and a thread that would not start.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("{ty}: a row of {len} values is not a whole number of {block_size}-value blocks")]
    RowLength { ty: QuantType, len: usize, block_size: usize },

    #[error("{ty}: {len} bytes are not a whole number of {type_size}-byte blocks")]
    ByteLength { ty: QuantType, len: usize, type_size: usize },

    #[error("{ty}: {len} values are not a whole number of rows of {per_row}")]
    RowCount { ty: QuantType, len: usize, per_row: usize },

    #[error("{ty}: output has room for {got} {unit}, the input needs exactly {expected}")]
    OutputLength { ty: QuantType, expected: usize, got: usize, unit: &'static str },

    #[error("could not start a quantization thread: {0}")]
    Thread(#[source] std::io::Error),

    #[error("a quantization thread stopped without finishing")]
    ThreadLost,
}

/// Quantizes `src` (a whole number of blocks, e.g. one row) into `dst`, which must hold exactly
/// `t.row_bytes(src.len())` bytes. Byte-identical to ggml's reference quantizers.
///
/// NaN and infinite inputs do not panic; they give whatever bytes the arithmetic gives (ggml
/// leaves them undefined, so do not expect a match there).
pub fn quantize_row(t: QuantType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    let expected = t.row_bytes(src.len())?;
    if dst.len() != expected {
        return Err(QuantError::OutputLength { ty: t, expected, got: dst.len(), unit: "bytes" });
    }
    match t {
        QuantType::Q4_0 => each_block(src, dst, legacy::quantize_q4_0),
        QuantType::Q4_1 => each_block(src, dst, legacy::quantize_q4_1),
        QuantType::Q5_0 => each_block(src, dst, legacy::quantize_q5_0),
        QuantType::Q5_1 => each_block(src, dst, legacy::quantize_q5_1),
        QuantType::Q8_0 => each_block(src, dst, legacy::quantize_q8_0),
        QuantType::Q4K => each_block(src, dst, k::quantize_q4_k),
        QuantType::Q5K => each_block(src, dst, k::quantize_q5_k),
        QuantType::Q6K => each_block(src, dst, k::quantize_q6_k),
    }
    Ok(())
}

/// Expands the blocks in `src` into `dst`, which must hold exactly one value per quantized
/// value. Computes what ggml's `dequantize_row_*` computes.
pub fn dequantize_row(t: QuantType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    if !src.len().is_multiple_of(t.type_size()) {
        return Err(QuantError::ByteLength { ty: t, len: src.len(), type_size: t.type_size() });
    }
    let expected = src.len() / t.type_size() * t.block_size();
    if dst.len() != expected {
        return Err(QuantError::OutputLength { ty: t, expected, got: dst.len(), unit: "values" });
    }
    match t {
        QuantType::Q4_0 => each_block(src, dst, legacy::dequantize_q4_0),
        QuantType::Q4_1 => each_block(src, dst, legacy::dequantize_q4_1),
        QuantType::Q5_0 => each_block(src, dst, legacy::dequantize_q5_0),
        QuantType::Q5_1 => each_block(src, dst, legacy::dequantize_q5_1),
        QuantType::Q8_0 => each_block(src, dst, legacy::dequantize_q8_0),
        QuantType::Q4K => each_block(src, dst, k::dequantize_q4_k),
        QuantType::Q5K => each_block(src, dst, k::dequantize_q5_k),
        QuantType::Q6K => each_block(src, dst, k::dequantize_q6_k),
    }
    Ok(())
}

/// Quantizes rows of `n_per_row` values on up to `threads` threads (0 and 1 mean the calling
/// thread). The bytes are the same as [`quantize_row`] over all of `src`.
pub fn quantize_rows_parallel(
    t: QuantType,
    src: &[f32],
    n_per_row: usize,
    dst: &mut [u8],
    threads: usize,
) -> Result<(), QuantError> {
    let row_bytes = t.row_bytes(n_per_row)?;
    if n_per_row == 0 || !src.len().is_multiple_of(n_per_row) {
        return Err(QuantError::RowCount { ty: t, len: src.len(), per_row: n_per_row });
    }
    let rows = src.len() / n_per_row;
    let threads = threads.clamp(1, rows.max(1));
    if threads == 1 {
        return quantize_row(t, src, dst);
    }
    let expected = rows * row_bytes;
    if dst.len() != expected {
        return Err(QuantError::OutputLength { ty: t, expected, got: dst.len(), unit: "bytes" });
    }
    // Chunks handed out on demand (about 8 per thread), not one fixed share per thread: a
    // thread that loses its core for a while (the converter reads the next tensor meanwhile)
    // does not leave the others waiting at the end.
    let rows_per_chunk = rows.div_ceil(threads * 8).max(1);
    let jobs: Vec<(&[f32], &mut [u8])> =
        src.chunks(rows_per_chunk * n_per_row).zip(dst.chunks_mut(rows_per_chunk * row_bytes)).collect();
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let next = || queue.lock().ok().and_then(|mut q| q.next());
    std::thread::scope(|scope| {
        let work = || -> Result<(), QuantError> {
            while let Some((x, y)) = next() {
                quantize_row(t, x, y)?;
            }
            Ok(())
        };
        let spawned: Vec<_> = (0..threads).map(|_| std::thread::Builder::new().spawn_scoped(scope, work)).collect();
        // Join every thread before reporting the first failure, so none outlives its error.
        let mut result = Ok(());
        for handle in spawned {
            let outcome = match handle {
                Ok(h) => h.join().unwrap_or(Err(QuantError::ThreadLost)),
                Err(e) => Err(QuantError::Thread(e)),
            };
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    })
}

/// Calls `f` on each pair of input and output blocks. Lengths are checked by the caller; a
/// partial trailing block on either side is ignored.
fn each_block<A, B, const N: usize, const M: usize>(src: &[A], dst: &mut [B], f: impl Fn(&[A; N], &mut [B; M])) {
    let (inputs, _) = src.as_chunks::<N>();
    let (outputs, _) = dst.as_chunks_mut::<M>();
    for (x, y) in inputs.iter().zip(outputs) {
        f(x, y);
    }
}

/// ggml's `nearest_int`: rounds to nearest, ties to even, by adding 1.5 * 2^23 and reading the
/// mantissa. Only meaningful for |x| < 2^22, as in ggml; other inputs give garbage, not a panic.
#[inline]
fn nearest_int(x: f32) -> i32 {
    let val = x + 12_582_912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// An f32 rounded to f16 (to nearest, ties to even, as ggml's `GGML_FP32_TO_FP16`), as bytes.
#[inline]
fn f16_bytes(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

/// The f32 value of little-endian f16 bytes.
#[inline]
fn f16_value(b: [u8; 2]) -> f32 {
    f16::from_le_bytes(b).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        let cases = [(0.5, 0), (1.5, 2), (2.5, 2), (-0.5, 0), (-1.5, -2), (0.49, 0), (3.7, 4), (-3.7, -4), (15.0, 15)];
        for (x, want) in cases {
            assert_eq!(nearest_int(x), want, "{x}");
        }
        // Out of range or NaN: garbage, but no panic.
        for x in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30] {
            let _ = nearest_int(x);
        }
    }

    #[test]
    fn sizes_agree_with_ggml_table() {
        for t in QuantType::ALL {
            let g = t.ggml_type();
            assert_eq!((t.block_size() as u64, t.type_size() as u64), (g.block_size(), g.type_size()), "{t}");
            assert_eq!(QuantType::from_ggml(g), Some(t));
            assert_eq!(QuantType::from_name(&t.name().to_lowercase()), Some(t));
        }
        assert_eq!(QuantType::Q4K.name(), "Q4_K");
        assert_eq!(QuantType::from_ggml(GgmlType::F16), None);
        assert_eq!(QuantType::from_name("q3_k"), None);
    }

    #[test]
    fn all_zero_blocks_are_what_ggml_writes() {
        // From reading ggml: Q4_0 and Q5_0 store d = 0 / -8 = -0.0 and q = 8 (0x88 pairs) or
        // q = 16 (every high bit set); everything else is all zero bytes.
        for t in QuantType::ALL {
            let x = vec![0.0f32; t.block_size()];
            let mut y = vec![0xAAu8; t.type_size()];
            quantize_row(t, &x, &mut y).unwrap();
            let mut want = vec![0u8; t.type_size()];
            match t {
                QuantType::Q4_0 => {
                    want[1] = 0x80;
                    want[2..].fill(0x88);
                }
                QuantType::Q5_0 => {
                    want[1] = 0x80;
                    want[2..6].fill(0xFF);
                }
                _ => {}
            }
            assert_eq!(y, want, "{t}");
            let mut back = vec![1.0f32; t.block_size()];
            dequantize_row(t, &y, &mut back).unwrap();
            assert!(back.iter().all(|&v| v == 0.0), "{t}: {back:?}");
        }
    }
}

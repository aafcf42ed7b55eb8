//! Matrix products of 16-bit float weights (f16 or bf16, as checkpoints store them) with f32
//! activations, accumulating in f32. Weights stay 16-bit in memory, so a decode step reads half
//! the bytes of an f32 copy and a 7B f16 model needs 14 GB, not 28.
//!
//! Work is split over weight rows. For each block of rows, the rows are widened to f32 once into
//! a small per-task buffer (it stays in L1/L2) and dotted with every activation row, so a prompt
//! of m tokens reads the weights once, not m times.

use crate::{Backend, KernelError, ThreadPool};

/// Which 16-bit format the weight bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    F16,
    Bf16,
}

/// Weight rows widened per task; 16 rows of 4096 f32 = 256 KiB.
const ROWS_PER_TASK: usize = 16;

#[allow(clippy::too_many_arguments)]
/// `out[i][j] = dot(w_row_j, x_i)` for 16-bit weights `w` (`rows × cols`, little-endian bytes),
/// `x` (`m × cols` f32) and `out` (`m × rows` f32).
pub fn matmul_half(
    pool: &ThreadPool,
    kind: Half,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let need = |a: usize, b: usize| a.checked_mul(b).ok_or(KernelError::Overflow);
    let wlen = need(need(rows, cols)?, 2)?;
    if w.len() != wlen {
        return Err(KernelError::InputLength { expected: wlen, got: w.len() });
    }
    let xlen = need(m, cols)?;
    if x.len() != xlen {
        return Err(KernelError::InputLength { expected: xlen, got: x.len() });
    }
    let olen = need(m, rows)?;
    if out.len() != olen {
        return Err(KernelError::OutputLength { expected: olen, got: out.len() });
    }
    if rows == 0 || m == 0 {
        return Ok(());
    }
    let backend = Backend::detect();
    let tasks = rows.div_ceil(ROWS_PER_TASK);
    // Each task writes a disjoint set of output columns; rows of `out` are interleaved, so the
    // writes go through a shared pointer (see SAFETY below).
    let out_ptr = SendPtr(out.as_mut_ptr());
    let run = |t: usize| {
        let r0 = t * ROWS_PER_TASK;
        let r1 = (r0 + ROWS_PER_TASK).min(rows);
        let mut buf = vec![0f32; (r1 - r0) * cols];
        for (r, dst) in (r0..r1).zip(buf.chunks_exact_mut(cols.max(1))) {
            let src = w.get(r * cols * 2..(r + 1) * cols * 2).unwrap_or_default();
            widen(kind, backend, src, dst);
        }
        for i in 0..m {
            let xi = x.get(i * cols..(i + 1) * cols).unwrap_or_default();
            for (k, wr) in buf.chunks_exact(cols.max(1)).enumerate() {
                let v = crate::attn::dot(backend, wr, xi);
                // SAFETY: index i*rows + r0 + k < m*rows = out.len(); tasks own disjoint r ranges,
                // so no two threads write the same element, and `out` outlives `pool.run`.
                unsafe { *out_ptr.get().add(i * rows + r0 + k) = v };
            }
        }
    };
    pool.run(tasks, &run);
    Ok(())
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the pointer is only used for disjoint writes while the owning slice is borrowed.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// 16-bit values (little-endian bytes) to f32.
pub fn widen(kind: Half, backend: Backend, src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if backend.is_x86() {
        // SAFETY: Avx2 is only detected when the CPU has AVX2, FMA and F16C.
        unsafe { avx2::widen(kind, src, dst) };
        return;
    }
    let _ = backend;
    widen_scalar(kind, src, dst);
}

fn widen_scalar(kind: Half, src: &[u8], dst: &mut [f32]) {
    for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = crate::gemv::widen_one(kind, c);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Half;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen(kind: Half, src: &[u8], dst: &mut [f32]) {
        let n = dst.len().min(src.len() / 2);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n elements are in bounds of both slices (2 bytes per element in src).
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
                let f = match kind {
                    Half::F16 => _mm256_cvtph_ps(h),
                    Half::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)),
                };
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), f);
            }
            i += 8;
        }
        super::widen_scalar(kind, src.get(2 * i..).unwrap_or_default(), dst.get_mut(i..).unwrap_or_default());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// f32 values as little-endian 16-bit bytes.
    pub(crate) fn bytes(kind: Half, v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|&x| match kind {
                Half::F16 => half::f16::from_f32(x).to_le_bytes(),
                Half::Bf16 => half::bf16::from_f32(x).to_le_bytes(),
            })
            .collect()
    }

    #[test]
    fn matches_a_plain_product_of_the_widened_weights() {
        let pool = ThreadPool::new(3);
        for kind in [Half::F16, Half::Bf16] {
            for (rows, cols, m) in [(37, 70, 1), (5, 8, 3), (40, 33, 17), (1, 1, 1)] {
                let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0).collect();
                let x: Vec<f32> = (0..m * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 8.0).collect();
                let wb = bytes(kind, &w);
                let mut wide = vec![0f32; rows * cols];
                widen(kind, Backend::Scalar, &wb, &mut wide);
                let mut out = vec![0f32; m * rows];
                matmul_half(&pool, kind, &wb, rows, cols, &x, m, &mut out).unwrap();
                for i in 0..m {
                    for r in 0..rows {
                        let want: f64 =
                            (0..cols).map(|k| f64::from(wide[r * cols + k]) * f64::from(x[i * cols + k])).sum();
                        let got = out[i * rows + r];
                        assert!((f64::from(got) - want).abs() < 1e-3, "{kind:?} {rows}x{cols} m={m}: {got} vs {want}");
                    }
                }
                // AVX2 and scalar widening agree bit for bit.
                let mut a = vec![0f32; rows * cols];
                widen(kind, Backend::detect(), &wb, &mut a);
                assert_eq!(a, wide);
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let pool = ThreadPool::new(1);
        let mut out = vec![0f32; 2];
        assert!(matmul_half(&pool, Half::F16, &[0; 7], 2, 2, &[0.0; 2], 1, &mut out).is_err());
        assert!(matmul_half(&pool, Half::F16, &[0; 8], 2, 2, &[0.0; 3], 1, &mut out).is_err());
        assert!(matmul_half(&pool, Half::F16, &[0; 8], 2, 2, &[0.0; 2], 1, &mut [0f32; 3]).is_err());
    }
}

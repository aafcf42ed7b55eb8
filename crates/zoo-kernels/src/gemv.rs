//! Matrix-vector products of dense weights (f32, or f16/bf16 as checkpoints store them) with one
//! f32 activation row: the decode step's products, which read every weight once and are bound
//! by memory bandwidth, not arithmetic.
//!
//! Each task takes a band of rows sized to about 128 KiB of weights and walks it one row at a
//! time, so a band is one linear stream for the hardware prefetcher; the activation row stays in
//! L1 and 16-bit values are widened in registers (never written back to memory). f32 sums in
//! eight-lane accumulators, added up at the end of the row.
//!
//! Measured on the 2-core AMD EPYC VM: a 1 KiB software prefetch streamed about 5% slower than
//! the hardware prefetcher alone in back-to-back rounds of the f32 250880 × 1024 head, and made
//! no difference beyond this VM's noise in whole decode runs (f32, and bf16 in 15 paired runs);
//! 16 KiB bands were slower than 64–256 KiB ones, and 512 KiB bands no better than 128 KiB in 14
//! paired bf16 decode runs. The weights themselves should sit on huge pages
//! (`zoo_weights::mem::HugeBytes`, one TLB miss per 2 MiB rather than per 4 KiB): that was worth
//! 5–8% of BLOOM-560m f32 decode.

use crate::matmul::Disjoint;
use crate::{Backend, Half, KernelError, ThreadPool};

/// Borrowed dense weights, `rows × cols`, row after row.
#[derive(Debug, Clone, Copy)]
pub enum DenseRows<'a> {
    F32(&'a [f32]),
    /// Little-endian 16-bit values, 2 bytes each.
    Half(Half, &'a [u8]),
    /// f32 values split into two planes of little-endian 16-bit halves: `hi` holds the upper
    /// half of each value's bits (the value truncated to bf16), `lo` the lower half. Same bytes
    /// as f32, but the `hi` plane alone is a bf16 matrix that bounds every product to 2^-7
    /// (see [`crate::greedy`]).
    Split {
        hi: &'a [u8],
        lo: &'a [u8],
    },
}

impl DenseRows<'_> {
    fn elem_bytes(&self) -> usize {
        match self {
            DenseRows::F32(_) | DenseRows::Split { .. } => 4,
            DenseRows::Half(..) => 2,
        }
    }

    fn len(&self) -> usize {
        match self {
            DenseRows::F32(v) => v.len(),
            DenseRows::Half(_, b) => b.len() / 2,
            DenseRows::Split { hi, .. } => hi.len() / 2,
        }
    }

    /// Whether the byte lengths are whole values (and both planes of a split matrix agree).
    fn well_formed(&self) -> bool {
        match self {
            DenseRows::F32(_) => true,
            DenseRows::Half(_, b) => b.len() % 2 == 0,
            DenseRows::Split { hi, lo } => hi.len() % 2 == 0 && hi.len() == lo.len(),
        }
    }

    /// Value `i` (element index) as f32; 0 out of bounds.
    fn value(&self, i: usize) -> f32 {
        let half = |b: &[u8]| match b.get(2 * i..2 * i + 2) {
            Some(&[l, h]) => u16::from_le_bytes([l, h]),
            _ => 0,
        };
        match *self {
            DenseRows::F32(v) => v.get(i).copied().unwrap_or(0.0),
            DenseRows::Half(kind, b) => widen_one(kind, b.get(2 * i..2 * i + 2).unwrap_or_default()),
            DenseRows::Split { hi, lo } => f32::from_bits(u32::from(half(hi)) << 16 | u32::from(half(lo))),
        }
    }
}

/// Weight bytes per task (a band of rows).
const TASK_BYTES: usize = 128 * 1024;

/// `out[r] = dot(w_row_r, x)` for every row `r`, spread over the pool.
pub fn gemv(
    pool: &ThreadPool,
    w: DenseRows<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    gemv_with(pool, w, rows, cols, x, out, Backend::detect())
}

/// [`gemv`] on a given backend (one the CPU lacks falls back to [`Backend::Scalar`]).
pub fn gemv_with(
    pool: &ThreadPool,
    w: DenseRows<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    out: &mut [f32],
    backend: Backend,
) -> Result<(), KernelError> {
    let need = rows.checked_mul(cols).ok_or(KernelError::Overflow)?;
    if w.len() != need || !w.well_formed() {
        return Err(KernelError::InputLength { expected: need, got: w.len() });
    }
    if x.len() != cols {
        return Err(KernelError::InputLength { expected: cols, got: x.len() });
    }
    if out.len() != rows {
        return Err(KernelError::OutputLength { expected: rows, got: out.len() });
    }
    if rows == 0 {
        return Ok(());
    }
    let backend = if backend.is_available() { backend } else { Backend::Scalar };
    let row_bytes = cols.max(1) * w.elem_bytes();
    // Big bands stream best; the last rows go in bands an eighth the size, so the threads
    // finish together instead of one waiting out the other's last big band.
    let band = (TASK_BYTES / row_bytes).clamp(4, 256) / 4 * 4;
    let small = (band / 8).max(4);
    let big_rows = rows.saturating_sub(pool.threads() * band) / band * band;
    let big_tasks = big_rows / band;
    let tasks = big_tasks + (rows - big_rows).div_ceil(small);
    // bf16 on AVX2 reads 16 values per load and widens them without shuffles: shifting each
    // 32-bit lane left by 16 gives the even values as f32, masking off its low half the odd
    // ones. The activations are laid out to match once: per 16 values, evens then odds.
    let x_split: Vec<f32> = match w {
        DenseRows::Half(Half::Bf16, _) if backend == Backend::Avx2 => {
            let mut v = x.to_vec();
            for (dst, src) in v.chunks_exact_mut(16).zip(x.chunks_exact(16)) {
                let (even, odd) = dst.split_at_mut(8);
                for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(src.chunks_exact(2)) {
                    if let [a, b] = *pair {
                        (*e, *o) = (a, b);
                    }
                }
            }
            v
        }
        _ => Vec::new(),
    };
    let xk = if x_split.is_empty() { x } else { &x_split };
    let dst = Disjoint::new(out);
    let run = |t: usize| {
        let (r0, len) = if t < big_tasks { (t * band, band) } else { (big_rows + (t - big_tasks) * small, small) };
        let r1 = (r0 + len).min(rows);
        // SAFETY: tasks own disjoint bands r0..r1 of the output.
        if let Some(o) = unsafe { dst.slice(r0, r1 - r0) } {
            band_rows(backend, w, cols, r0..r1, xk, o);
        }
    };
    pool.run(tasks, &run);
    Ok(())
}

/// Rows `r` of `w` dotted with `x` into `dst` (`r.len()` values). For bf16 on AVX2, `x` is in
/// the even/odd order `gemv_with` makes (a last partial block of 16 stays in order).
pub(crate) fn band_rows(
    backend: Backend,
    w: DenseRows<'_>,
    cols: usize,
    r: std::ops::Range<usize>,
    x: &[f32],
    dst: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Avx2 {
        // SAFETY: Avx2 is only chosen when the CPU has AVX2, FMA and F16C; `gemv_with` checked
        // that `w` holds rows × cols values, so rows r of `cols` values are in bounds.
        unsafe { avx2::band(w, cols, r, x, dst) };
        return;
    }
    let _ = backend;
    for (d, row) in dst.iter_mut().zip(r) {
        let span = row * cols..(row + 1) * cols;
        *d = match w {
            DenseRows::F32(v) => dot8(v.get(span).unwrap_or_default().iter().copied(), x),
            DenseRows::Half(kind, b) => {
                let bytes = b.get(2 * span.start..2 * span.end).unwrap_or_default();
                dot8(bytes.chunks_exact(2).map(|c| widen_one(kind, c)), x)
            }
            DenseRows::Split { .. } => dot8(span.map(|i| w.value(i)), x),
        };
    }
}

/// One little-endian 16-bit value (2 bytes; anything else reads as 0) as f32.
pub(crate) fn widen_one(kind: Half, c: &[u8]) -> f32 {
    let bits = match *c {
        [lo, hi] => u16::from_le_bytes([lo, hi]),
        _ => 0,
    };
    match kind {
        Half::F16 => half::f16::from_bits(bits).to_f32(),
        Half::Bf16 => half::bf16::from_bits(bits).to_f32(),
    }
}

/// Dot product in eight lanes (the order the AVX2 path sums in, so both agree closely).
fn dot8(w: impl Iterator<Item = f32>, x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (i, (a, b)) in w.zip(x).enumerate() {
        if let Some(s) = acc.get_mut(i % 8) {
            *s += a * b;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{DenseRows, Half};

    /// Eight values of row data at `p` (element index), widened to f32.
    #[inline(always)]
    unsafe fn load8(w: DenseRows<'_>, p: usize) -> __m256 {
        // SAFETY: the caller keeps p + 8 within the weights.
        unsafe {
            match w {
                DenseRows::F32(v) => _mm256_loadu_ps(v.as_ptr().add(p)),
                DenseRows::Half(Half::F16, b) => _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(2 * p).cast())),
                DenseRows::Half(Half::Bf16, b) => _mm256_castsi256_ps(_mm256_slli_epi32(
                    _mm256_cvtepu16_epi32(_mm_loadu_si128(b.as_ptr().add(2 * p).cast())),
                    16,
                )),
                // The halves joined back into the f32 bits: the same values, so the same sums
                // as `F32` in the same order.
                DenseRows::Split { hi, lo } => _mm256_castsi256_ps(_mm256_or_si256(
                    _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(hi.as_ptr().add(2 * p).cast())), 16),
                    _mm256_cvtepu16_epi32(_mm_loadu_si128(lo.as_ptr().add(2 * p).cast())),
                )),
            }
        }
    }

    #[inline(always)]
    fn hsum(v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        // SAFETY: lanes holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        lanes.iter().sum()
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` holds at least `rows.end * cols` values; `x` holds
    /// `cols` values and `dst` `rows.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn band(w: DenseRows<'_>, cols: usize, rows: Range<usize>, x: &[f32], dst: &mut [f32]) {
        if let DenseRows::Half(Half::Bf16, b) = w {
            // SAFETY: forwarded from the caller.
            unsafe { band_bf16(b, cols, rows, x, dst) };
            return;
        }
        let body = cols / 8 * 8;
        // One row at a time, as for bf16: one linear stream per band.
        for (o, row) in dst.iter_mut().zip(rows) {
            let base = row * cols;
            let (mut a0, mut a1, mut a2, mut a3) =
                (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
            let mut c = 0;
            while c + 32 <= body {
                // SAFETY: c + 32 <= body <= cols values of x and of row `row` (in bounds, see above).
                unsafe {
                    let xp = x.as_ptr().add(c);
                    a0 = _mm256_fmadd_ps(load8(w, base + c), _mm256_loadu_ps(xp), a0);
                    a1 = _mm256_fmadd_ps(load8(w, base + c + 8), _mm256_loadu_ps(xp.add(8)), a1);
                    a2 = _mm256_fmadd_ps(load8(w, base + c + 16), _mm256_loadu_ps(xp.add(16)), a2);
                    a3 = _mm256_fmadd_ps(load8(w, base + c + 24), _mm256_loadu_ps(xp.add(24)), a3);
                }
                c += 32;
            }
            while c < body {
                // SAFETY: c + 8 <= body.
                unsafe { a0 = _mm256_fmadd_ps(load8(w, base + c), _mm256_loadu_ps(x.as_ptr().add(c)), a0) };
                c += 8;
            }
            let sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
            let rest: f32 = (body..cols).map(|c| w.value(base + c) * x.get(c).copied().unwrap_or(0.0)).sum();
            *o = sum + rest;
        }
    }

    /// 16 bf16 weights at byte offset `p` times `xe`/`xo` (the activations' even and odd
    /// values), summed into two independent accumulators.
    #[inline(always)]
    unsafe fn fma16(b: &[u8], p: usize, xe: __m256, xo: __m256, acc: &mut (__m256, __m256)) {
        // SAFETY: the caller keeps p + 32 within `b`.
        unsafe {
            let v = _mm256_loadu_si256(b.as_ptr().add(p).cast());
            let even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
            let odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(-65536)));
            acc.0 = _mm256_fmadd_ps(even, xe, acc.0);
            acc.1 = _mm256_fmadd_ps(odd, xo, acc.1);
        }
    }

    /// [`band`] for bf16 weights; `x` in the even/odd order of `gemv_with`.
    ///
    /// # Safety
    /// As [`band`].
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn band_bf16(b: &[u8], cols: usize, rows: Range<usize>, x: &[f32], dst: &mut [f32]) {
        let body = cols / 16 * 16;
        // The last partial block of x is in natural order.
        let tail = |row: usize, acc: f32| -> f32 {
            let rest: f32 = (body..cols)
                .map(|c| {
                    let at = 2 * (row * cols + c);
                    super::widen_one(Half::Bf16, b.get(at..at + 2).unwrap_or_default())
                        * x.get(c).copied().unwrap_or(0.0)
                })
                .sum();
            acc + rest
        };
        // One row at a time: the band is then one linear stream for the prefetcher (2 KiB
        // rows of four interleaved streams share pages, which the L2 streamer tracks badly);
        // the activations come from L1.
        for (o, row) in dst.iter_mut().zip(rows) {
            let zero = (_mm256_setzero_ps(), _mm256_setzero_ps());
            // Eight independent FMA chains per 64 values: with fewer, the chains' latency (not
            // memory) bounded the loop at high bandwidth.
            let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
            let p = 2 * row * cols;
            let mut c = 0;
            while c + 64 <= body {
                // SAFETY: c + 64 <= body <= cols values of x and of the row.
                unsafe {
                    let xp = x.as_ptr().add(c);
                    fma16(b, p + 2 * c, _mm256_loadu_ps(xp), _mm256_loadu_ps(xp.add(8)), &mut a0);
                    fma16(b, p + 2 * c + 32, _mm256_loadu_ps(xp.add(16)), _mm256_loadu_ps(xp.add(24)), &mut a1);
                    fma16(b, p + 2 * c + 64, _mm256_loadu_ps(xp.add(32)), _mm256_loadu_ps(xp.add(40)), &mut a2);
                    fma16(b, p + 2 * c + 96, _mm256_loadu_ps(xp.add(48)), _mm256_loadu_ps(xp.add(56)), &mut a3);
                }
                c += 64;
            }
            while c + 16 <= body {
                // SAFETY: c + 16 <= body.
                unsafe {
                    let (xe, xo) = (_mm256_loadu_ps(x.as_ptr().add(c)), _mm256_loadu_ps(x.as_ptr().add(c + 8)));
                    fma16(b, p + 2 * c, xe, xo, &mut a0);
                }
                c += 16;
            }
            let (s0, s1) = (_mm256_add_ps(a0.0, a0.1), _mm256_add_ps(a1.0, a1.1));
            let (s2, s3) = (_mm256_add_ps(a2.0, a2.1), _mm256_add_ps(a3.0, a3.1));
            *o = tail(row, hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every format, both backends, shapes with row and column remainders: equal to an f64
    /// product of the (widened) weights.
    #[test]
    fn equals_a_plain_product() {
        let pool = ThreadPool::new(3);
        for (rows, cols) in [(37, 70), (4, 8), (1, 1), (300, 1024), (9, 3), (1031, 33)] {
            let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0).collect();
            let x: Vec<f32> = (0..cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 8.0).collect();
            for kind in [None, Some(Half::F16), Some(Half::Bf16)] {
                let bytes = kind.map(|k| crate::dense16::tests::bytes(k, &w));
                let (dw, wide): (DenseRows<'_>, Vec<f32>) = match (kind, &bytes) {
                    (Some(k), Some(b)) => (DenseRows::Half(k, b), b.chunks_exact(2).map(|c| widen_one(k, c)).collect()),
                    _ => (DenseRows::F32(&w), w.clone()),
                };
                for backend in [Backend::Scalar, Backend::detect()] {
                    let mut out = vec![f32::NAN; rows];
                    gemv_with(&pool, dw, rows, cols, &x, &mut out, backend).unwrap();
                    for (r, got) in out.iter().enumerate() {
                        let want: f64 = (0..cols).map(|c| f64::from(wide[r * cols + c]) * f64::from(x[c])).sum();
                        assert!(
                            (f64::from(*got) - want).abs() < 1e-3,
                            "{kind:?} {backend:?} {rows}x{cols} row {r}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let pool = ThreadPool::new(1);
        let mut out = vec![0f32; 2];
        assert!(gemv(&pool, DenseRows::F32(&[0.0; 3]), 2, 2, &[0.0; 2], &mut out).is_err());
        assert!(gemv(&pool, DenseRows::F32(&[0.0; 4]), 2, 2, &[0.0; 3], &mut out).is_err());
        assert!(gemv(&pool, DenseRows::F32(&[0.0; 4]), 2, 2, &[0.0; 2], &mut [0f32; 3]).is_err());
        assert!(gemv(&pool, DenseRows::Half(Half::Bf16, &[0; 7]), 2, 2, &[0.0; 2], &mut out).is_err());
        assert!(gemv(&pool, DenseRows::F32(&[]), usize::MAX, 2, &[0.0; 2], &mut out).is_err());
    }
}

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
//! (`zoo_ggml::mem::HugeBytes`, one TLB miss per 2 MiB rather than per 4 KiB): that was worth
//! 5–8% of BLOOM-560m f32 decode.

use std::borrow::Cow;

use crate::coded::{self, CodedRow};
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
    /// A bf16 matrix coded as two byte planes ([`crate::coded`]): exactly the bf16 values,
    /// `info` one entry per row.
    Coded {
        code: &'a [u8],
        rest: &'a [u8],
        info: &'a [CodedRow],
    },
    /// The code plane of a coded matrix alone: every value as its [`coded::approx`]imation
    /// (one byte each, a quarter of f32's bytes).
    CodeApprox {
        code: &'a [u8],
        info: &'a [CodedRow],
    },
}

impl DenseRows<'_> {
    fn elem_bytes(&self) -> usize {
        match self {
            DenseRows::F32(_) | DenseRows::Split { .. } => 4,
            DenseRows::Half(..) | DenseRows::Coded { .. } => 2,
            DenseRows::CodeApprox { .. } => 1,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            DenseRows::F32(v) => v.len(),
            DenseRows::Half(_, b) => b.len() / 2,
            DenseRows::Split { hi, .. } => hi.len() / 2,
            DenseRows::Coded { code, .. } | DenseRows::CodeApprox { code, .. } => code.len(),
        }
    }

    /// Whether the byte lengths are whole values (and both planes of a split or coded matrix
    /// agree, and a coded one has facts for each of its `rows`).
    pub(crate) fn well_formed(&self, rows: usize) -> bool {
        match self {
            DenseRows::F32(_) => true,
            DenseRows::Half(_, b) => b.len() % 2 == 0,
            DenseRows::Split { hi, lo } => hi.len() % 2 == 0 && hi.len() == lo.len(),
            DenseRows::Coded { code, rest, info } => code.len() == rest.len() && info.len() == rows,
            DenseRows::CodeApprox { info, .. } => info.len() == rows,
        }
    }

    /// The base of the row holding element `i` of a coded matrix (0 otherwise).
    fn base_at(&self, i: usize) -> u8 {
        match *self {
            DenseRows::Coded { code, info, .. } | DenseRows::CodeApprox { code, info } => {
                let cols = code.len() / info.len().max(1);
                info.get(i / cols.max(1)).map_or(0, |r| r.base)
            }
            _ => 0,
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
            DenseRows::Coded { code, rest, .. } => match (code.get(i), rest.get(i)) {
                (Some(&c), Some(&r)) => half::bf16::from_bits(coded::decode_value(c, r, self.base_at(i))).to_f32(),
                _ => 0.0,
            },
            DenseRows::CodeApprox { code, .. } => code.get(i).map_or(0.0, |&c| coded::approx(c, self.base_at(i))),
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
    if w.len() != need || !w.well_formed(rows) {
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
    let xk = arrange_x(w, backend, x);
    let dst = Disjoint::new(out);
    let run = |t: usize| {
        let (r0, len) = if t < big_tasks { (t * band, band) } else { (big_rows + (t - big_tasks) * small, small) };
        let r1 = (r0 + len).min(rows);
        // SAFETY: tasks own disjoint bands r0..r1 of the output.
        if let Some(o) = unsafe { dst.slice(r0, r1 - r0) } {
            band_rows(backend, w, cols, r0..r1, &xk, o);
        }
    };
    pool.run(tasks, &run);
    Ok(())
}

/// The activations in the order the kernels for `w` on `backend` read them, made once per
/// product ([`band_rows`] takes them so).
///
/// bf16 (plain or coded, or the codes alone) on AVX2 reads 16 values per load and widens them
/// without shuffles:
/// shifting each 32-bit lane left by 16 gives the even values as f32, masking off its low half
/// the odd ones; per 16 values, `x` holds the evens then the odds (a last partial block stays
/// in natural order). Everything else reads `x` as it is.
pub(crate) fn arrange_x<'x>(w: DenseRows<'_>, backend: Backend, x: &'x [f32]) -> Cow<'x, [f32]> {
    if !backend.is_x86() {
        return Cow::Borrowed(x);
    }
    if !matches!(w, DenseRows::Half(Half::Bf16, _) | DenseRows::Coded { .. } | DenseRows::CodeApprox { .. }) {
        return Cow::Borrowed(x);
    }
    let mut v = x.to_vec();
    for (dst, src) in v.chunks_exact_mut(16).zip(x.chunks_exact(16)) {
        let (even, odd) = dst.split_at_mut(8);
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(src.chunks_exact(2)) {
            if let [a, b] = *pair {
                (*e, *o) = (a, b);
            }
        }
    }
    Cow::Owned(v)
}

/// Rows `r` of `w` dotted with `x` into `dst` (`r.len()` values); `x` as [`arrange_x`] gives
/// it for `w` and `backend`.
pub(crate) fn band_rows(
    backend: Backend,
    w: DenseRows<'_>,
    cols: usize,
    r: std::ops::Range<usize>,
    x: &[f32],
    dst: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if backend.is_x86() {
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
            DenseRows::Split { .. } | DenseRows::Coded { .. } | DenseRows::CodeApprox { .. } => {
                dot8(span.map(|i| w.value(i)), x)
            }
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

    use super::{CodedRow, DenseRows, Half, coded};

    /// The weight forms the generic row loop of [`band`] reads 8 values at a time (coded
    /// matrices and bf16 have loops of their own). A type of its own, not `DenseRows`: with the
    /// coded forms' (never taken) arms in this loop's `match`, the compiler stopped hoisting it
    /// out of the loop and f32 streamed at 16.6 instead of 31 GB/s (`gemv_bench`, 2026-11-26).
    #[derive(Clone, Copy)]
    enum Eight<'a> {
        F32(&'a [f32]),
        F16(&'a [u8]),
        Split { hi: &'a [u8], lo: &'a [u8] },
    }

    impl<'a> Eight<'a> {
        fn of(w: DenseRows<'a>) -> Option<Eight<'a>> {
            match w {
                DenseRows::F32(v) => Some(Eight::F32(v)),
                DenseRows::Half(Half::F16, b) => Some(Eight::F16(b)),
                DenseRows::Split { hi, lo } => Some(Eight::Split { hi, lo }),
                _ => None,
            }
        }

        fn rows(self) -> DenseRows<'a> {
            match self {
                Eight::F32(v) => DenseRows::F32(v),
                Eight::F16(b) => DenseRows::Half(Half::F16, b),
                Eight::Split { hi, lo } => DenseRows::Split { hi, lo },
            }
        }
    }

    /// Eight values of row data at `p` (element index), widened to f32.
    #[inline(always)]
    unsafe fn load8(w: Eight<'_>, p: usize) -> __m256 {
        // SAFETY: the caller keeps p + 8 within the weights.
        unsafe {
            match w {
                Eight::F32(v) => _mm256_loadu_ps(v.as_ptr().add(p)),
                Eight::F16(b) => _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(2 * p).cast())),
                // The halves joined back into the f32 bits: the same values, so the same sums
                // as `F32` in the same order.
                Eight::Split { hi, lo } => _mm256_castsi256_ps(_mm256_or_si256(
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

    /// Independent FMA chains of the f32/f16 row loop.
    const CHAINS: usize = 8;

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` holds at least `rows.end * cols` values (and a
    /// coded matrix facts for each row); `x` holds `cols` values and `dst` `rows.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn band(w: DenseRows<'_>, cols: usize, rows: Range<usize>, x: &[f32], dst: &mut [f32]) {
        match w {
            // SAFETY (all three): forwarded from the caller.
            DenseRows::Half(Half::Bf16, b) => return unsafe { band_bf16(b, cols, rows, x, dst) },
            DenseRows::Coded { code, rest, info } => {
                return unsafe { band_coded(code, rest, info, cols, rows, x, dst) };
            }
            DenseRows::CodeApprox { code, info } => return unsafe { band_approx(code, info, cols, rows, x, dst) },
            _ => {}
        }
        let Some(w) = Eight::of(w) else { return };
        let body = cols / 8 * 8;
        // One row at a time, as for bf16: one linear stream per band.
        for (o, row) in dst.iter_mut().zip(rows) {
            let base = row * cols;
            // CHAINS independent FMA chains per CHAINS × 8 values (see `dot_bf16`).
            let mut acc = [_mm256_setzero_ps(); CHAINS];
            let mut c = 0;
            while c + 8 * CHAINS <= body {
                // SAFETY: c + 8 * CHAINS <= body <= cols values of x and of row `row` (in bounds,
                // see above).
                unsafe {
                    let xp = x.as_ptr().add(c);
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(load8(w, base + c + 8 * j), _mm256_loadu_ps(xp.add(8 * j)), *a);
                    }
                }
                c += 8 * CHAINS;
            }
            while c < body {
                // SAFETY: c + 8 <= body.
                unsafe { acc[0] = _mm256_fmadd_ps(load8(w, base + c), _mm256_loadu_ps(x.as_ptr().add(c)), acc[0]) };
                c += 8;
            }
            let sum = hsum(acc.iter().fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a)));
            let rest: f32 = (body..cols).map(|c| w.rows().value(base + c) * x.get(c).copied().unwrap_or(0.0)).sum();
            *o = sum + rest;
        }
    }

    /// One row of bf16 values, 16 or 32 at a time.
    trait Bf16Row {
        /// The 32 bytes of little-endian bf16 bits of values `p .. p + 16`.
        ///
        /// # Safety
        /// AVX2 is available and `p + 16` values are in the row.
        unsafe fn load16(&self, p: usize) -> __m256i;
        /// Values `p .. p + 32` as two [`Bf16Row::load16`]s.
        ///
        /// # Safety
        /// AVX2 is available and `p + 32` values are in the row.
        #[inline(always)]
        unsafe fn load32(&self, p: usize) -> (__m256i, __m256i) {
            // SAFETY: forwarded from the caller.
            unsafe { (self.load16(p), self.load16(p + 16)) }
        }
        /// Value `c` as f32 (the last partial block).
        fn value(&self, c: usize) -> f32;
    }

    /// A row of plain bf16 bytes.
    struct Plain<'a>(&'a [u8]);

    impl Bf16Row for Plain<'_> {
        #[inline(always)]
        unsafe fn load16(&self, p: usize) -> __m256i {
            // SAFETY: the caller keeps p + 16 values within the row.
            unsafe { _mm256_loadu_si256(self.0.as_ptr().add(2 * p).cast()) }
        }

        fn value(&self, c: usize) -> f32 {
            super::widen_one(Half::Bf16, self.0.get(2 * c..2 * c + 2).unwrap_or_default())
        }
    }

    /// A coded row without exceptions, decoded 16 values at a time in registers.
    struct Coded<'a> {
        code: &'a [u8],
        rest: &'a [u8],
        base: u8,
    }

    impl Coded<'_> {
        /// Sixteen 16-bit lanes holding `code << 8 | rest` decoded to bf16 bits (the first two
        /// value classes of `crate::coded`). In the window, `(w >> 5) & 0x83FF` (an arithmetic
        /// shift: the sign stays at bit 15) plus `B << 7`; in slot 0, `w & 0x8FFF` (sign and
        /// `n`) as is when `f = 0` (exponent 0), else plus `(B - 31) << 7`.
        #[inline(always)]
        unsafe fn decode(&self, w: __m256i) -> __m256i {
            // SAFETY: register operations (AVX2 is enabled in every caller).
            unsafe {
                let b = i16::from(self.base);
                let window = _mm256_add_epi16(
                    _mm256_and_si256(_mm256_srai_epi16(w, 5), _mm256_set1_epi16(0x83FF_u16 as i16)),
                    _mm256_set1_epi16(b << 7),
                );
                let f_set = _mm256_cmpgt_epi16(_mm256_and_si256(w, _mm256_set1_epi16(0x0F80)), _mm256_setzero_si256());
                let small = _mm256_add_epi16(
                    _mm256_and_si256(w, _mm256_set1_epi16(0x8FFF_u16 as i16)),
                    _mm256_and_si256(f_set, _mm256_set1_epi16((b - 31).wrapping_shl(7))),
                );
                let slot0 = _mm256_cmpeq_epi16(_mm256_and_si256(w, _mm256_set1_epi16(0x7000)), _mm256_setzero_si256());
                _mm256_blendv_epi8(window, small, slot0)
            }
        }
    }

    impl Bf16Row for Coded<'_> {
        #[inline(always)]
        unsafe fn load16(&self, p: usize) -> __m256i {
            // SAFETY: the caller keeps p + 16 values within the row.
            unsafe {
                let c = _mm256_cvtepu8_epi16(_mm_loadu_si128(self.code.as_ptr().add(p).cast()));
                let r = _mm256_cvtepu8_epi16(_mm_loadu_si128(self.rest.as_ptr().add(p).cast()));
                self.decode(_mm256_or_si256(_mm256_slli_epi16(c, 8), r))
            }
        }

        /// 32 codes and rests in one load each, interleaved into 16-bit lanes: the 64-bit
        /// quarters are reordered first (0, 2, 1, 3) so that the in-lane unpacks give values
        /// `p .. p + 16` and `p + 16 .. p + 32` in order.
        #[inline(always)]
        unsafe fn load32(&self, p: usize) -> (__m256i, __m256i) {
            // SAFETY: the caller keeps p + 32 values within the row.
            unsafe {
                let c = _mm256_permute4x64_epi64(_mm256_loadu_si256(self.code.as_ptr().add(p).cast()), 0xD8);
                let r = _mm256_permute4x64_epi64(_mm256_loadu_si256(self.rest.as_ptr().add(p).cast()), 0xD8);
                (self.decode(_mm256_unpacklo_epi8(r, c)), self.decode(_mm256_unpackhi_epi8(r, c)))
            }
        }

        fn value(&self, c: usize) -> f32 {
            match (self.code.get(c), self.rest.get(c)) {
                (Some(&k), Some(&r)) => half::bf16::from_bits(coded::decode_value(k, r, self.base)).to_f32(),
                _ => 0.0,
            }
        }
    }

    /// 16 bf16 values (`v`, as loaded) times `xe`/`xo` (the activations' even and odd values),
    /// summed into two independent accumulators.
    #[inline(always)]
    unsafe fn fma16(v: __m256i, xe: __m256, xo: __m256, acc: &mut (__m256, __m256)) {
        // SAFETY: register operations only (AVX2 and FMA are enabled in every caller).
        unsafe {
            let even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
            let odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(-65536)));
            acc.0 = _mm256_fmadd_ps(even, xe, acc.0);
            acc.1 = _mm256_fmadd_ps(odd, xo, acc.1);
        }
    }

    /// One bf16 row dotted with `x` (in the even/odd order of `arrange_x`). Plain and coded
    /// rows go through this same code, so their sums are bit for bit the same.
    ///
    /// # Safety
    /// AVX2 and FMA are enabled in the caller; the row holds `cols` values, `x` as many.
    #[inline(always)]
    unsafe fn dot_bf16(row: &impl Bf16Row, cols: usize, x: &[f32]) -> f32 {
        let body = cols / 16 * 16;
        // SAFETY: register operations (AVX is enabled in every caller).
        let zero = unsafe { (_mm256_setzero_ps(), _mm256_setzero_ps()) };
        // Eight independent FMA chains per 64 values: with fewer, the chains' latency (not
        // memory) bounded the loop at high bandwidth.
        let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
        let mut c = 0;
        while c + 64 <= body {
            // SAFETY: c + 64 <= body <= cols values of x and of the row.
            unsafe {
                let xp = x.as_ptr().add(c);
                let ((v0, v1), (v2, v3)) = (row.load32(c), row.load32(c + 32));
                fma16(v0, _mm256_loadu_ps(xp), _mm256_loadu_ps(xp.add(8)), &mut a0);
                fma16(v1, _mm256_loadu_ps(xp.add(16)), _mm256_loadu_ps(xp.add(24)), &mut a1);
                fma16(v2, _mm256_loadu_ps(xp.add(32)), _mm256_loadu_ps(xp.add(40)), &mut a2);
                fma16(v3, _mm256_loadu_ps(xp.add(48)), _mm256_loadu_ps(xp.add(56)), &mut a3);
            }
            c += 64;
        }
        while c + 16 <= body {
            // SAFETY: c + 16 <= body.
            unsafe {
                let (xe, xo) = (_mm256_loadu_ps(x.as_ptr().add(c)), _mm256_loadu_ps(x.as_ptr().add(c + 8)));
                fma16(row.load16(c), xe, xo, &mut a0);
            }
            c += 16;
        }
        // The last partial block of x is in natural order.
        let rest: f32 = (body..cols).map(|c| row.value(c) * x.get(c).copied().unwrap_or(0.0)).sum();
        // SAFETY: register operations.
        let sum = unsafe {
            let (s0, s1) = (_mm256_add_ps(a0.0, a0.1), _mm256_add_ps(a1.0, a1.1));
            let (s2, s3) = (_mm256_add_ps(a2.0, a2.1), _mm256_add_ps(a3.0, a3.1));
            _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))
        };
        hsum(sum) + rest
    }

    /// [`band`] for bf16 weights; `x` in the even/odd order of `arrange_x`.
    ///
    /// # Safety
    /// As [`band`].
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn band_bf16(b: &[u8], cols: usize, rows: Range<usize>, x: &[f32], dst: &mut [f32]) {
        // One row at a time: the band is then one linear stream for the prefetcher (2 KiB
        // rows of four interleaved streams share pages, which the L2 streamer tracks badly);
        // the activations come from L1.
        for (o, row) in dst.iter_mut().zip(rows) {
            let bytes = b.get(2 * row * cols..2 * (row + 1) * cols).unwrap_or_default();
            // SAFETY: the row holds `cols` values (checked by the caller, and by `get`).
            *o = unsafe { dot_bf16(&Plain(bytes), cols, x) };
        }
    }

    /// [`band`] for a coded bf16 matrix: the same sums as [`band_bf16`] on the decoded values.
    /// Rows with exception values are decoded by the scalar decoder first.
    ///
    /// # Safety
    /// As [`band`].
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn band_coded(
        code: &[u8],
        rest: &[u8],
        info: &[CodedRow],
        cols: usize,
        rows: Range<usize>,
        x: &[f32],
        dst: &mut [f32],
    ) {
        let mut decoded = Vec::new();
        for (o, row) in dst.iter_mut().zip(rows) {
            let span = row * cols..(row + 1) * cols;
            let (code, rest) = (code.get(span.clone()).unwrap_or_default(), rest.get(span).unwrap_or_default());
            let fact = info.get(row).copied().unwrap_or_default();
            if code.len() != cols || rest.len() != cols {
                continue;
            }
            // SAFETY (both): the row holds `cols` values (checked just above).
            *o = if fact.tiny {
                decoded.resize(2 * cols, 0);
                coded::decode_row(code, rest, fact.base, &mut decoded);
                unsafe { dot_bf16(&Plain(&decoded), cols, x) }
            } else {
                unsafe { dot_bf16(&Coded { code, rest, base: fact.base }, cols, x) }
            };
        }
    }

    /// [`band`] for the code plane alone (the approximations), `x` in the even/odd order of
    /// `arrange_x`. Sixteen codes sign-extended to 16-bit lanes make eight 32-bit lanes of
    /// two codes each; shifting them left by 19 (the even code) or 3 (the odd one) puts sign,
    /// slot and 4 mantissa bits at bits 31, 25..23 and 22..19; the mask clears the sign's
    /// copies at bits 30..26 and the other code's bits; adding `B << 23 | 1 << 18` gives
    /// `coded::approx`.
    ///
    /// # Safety
    /// As [`band`].
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn band_approx(code: &[u8], info: &[CodedRow], cols: usize, rows: Range<usize>, x: &[f32], dst: &mut [f32]) {
        let body = cols / 32 * 32;
        let mask = _mm256_set1_epi32(0x83F8_0000_u32 as i32);
        for (o, row) in dst.iter_mut().zip(rows) {
            let Some(codes) = code.get(row * cols..(row + 1) * cols) else { continue };
            let base = info.get(row).map_or(0, |r| r.base);
            let add = _mm256_set1_epi32(i32::from(base) << 23 | 1 << 18);
            // SAFETY (the closure's load): the callers below keep p + 16 codes within the row.
            let widen = |p: usize| unsafe {
                let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(codes.as_ptr().add(p).cast()));
                let even = _mm256_add_epi32(_mm256_and_si256(_mm256_slli_epi32(v, 19), mask), add);
                let odd = _mm256_add_epi32(_mm256_and_si256(_mm256_slli_epi32(v, 3), mask), add);
                (_mm256_castsi256_ps(even), _mm256_castsi256_ps(odd))
            };
            let (mut a0, mut a1, mut a2, mut a3) =
                (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
            let mut c = 0;
            while c + 32 <= body {
                // SAFETY: c + 32 <= body <= cols codes of the row and values of x.
                unsafe {
                    let xp = x.as_ptr().add(c);
                    let ((e0, o0), (e1, o1)) = (widen(c), widen(c + 16));
                    a0 = _mm256_fmadd_ps(e0, _mm256_loadu_ps(xp), a0);
                    a1 = _mm256_fmadd_ps(o0, _mm256_loadu_ps(xp.add(8)), a1);
                    a2 = _mm256_fmadd_ps(e1, _mm256_loadu_ps(xp.add(16)), a2);
                    a3 = _mm256_fmadd_ps(o1, _mm256_loadu_ps(xp.add(24)), a3);
                }
                c += 32;
            }
            // The last partial block of 32 (x in natural order past `cols / 16 * 16`; a whole
            // block of 16 in it is in even/odd order).
            let mut rest = 0f32;
            for c in body..cols {
                let at = if c < cols / 16 * 16 {
                    let i = c - body;
                    body + if i.is_multiple_of(2) { i / 2 } else { 8 + i / 2 }
                } else {
                    c
                };
                rest += coded::approx(codes.get(c).copied().unwrap_or(0), base) * x.get(at).copied().unwrap_or(0.0);
            }
            *o = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + rest;
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
        for (rows, cols) in [(37, 70), (4, 8), (1, 1), (300, 1024), (9, 3), (1031, 33), (5, 100)] {
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

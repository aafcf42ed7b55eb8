//! Dense prompts of a few rows on AVX2 (#18; `panel.rs` takes many): register tiles of [`TR`]
//! weight rows × [`TC`] activation rows taken as dot products along `k`, straight from the
//! weights as the file stores them (f32, f16 or bf16 rows; no packing).
//!
//! A tile's 12 accumulators are f32x8 vectors of partial dot products; per 8 columns it loads
//! (and widens, for 16-bit weights) 3 weight vectors and 4 activation vectors and does 12 FMAs,
//! so 16 registers hold the tile. Columns go in blocks of [`KC`]: a block of 4 activation rows
//! (16 KiB of f32) stays in L1 while the task's band of weight rows (about [`BAND_BYTES`] per
//! block) streams from L2, once per 4 activation rows; the accumulators are summed across their
//! lanes once per block and added into the output. A task owns a band of whole weight rows, so
//! no two tasks write the same output. f16 bands with more than one activation tile are widened
//! block by block first (`vcvtph2ps` is slow on Zen 2; bf16 widens with a shift and is not).
//!
//! Measured alternatives that did not pay (kbench, Zen 2): 4 × 3 tiles with the 4 rows' sums
//! reduced and stored as one vector (bf16 −12%, f32 equal); 2 × 6 tiles for f32 (−15%);
//! copying each activation tile to rows a cache line apart against L1 set aliasing (−5 to −15%).
//!
//! Safety model as in `crate::avx2`: every `unsafe fn` needs AVX2 + FMA + F16C ([`matmul`]
//! checks) and pointers valid for what it reads and writes ([`matmul`] checks the lengths).

// Register tiles index fixed-size arrays with loop counters below their constant lengths.
#![allow(clippy::indexing_slicing, clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::cell::RefCell;

use crate::ThreadPool;
use crate::dense16::Half;
use crate::gemv::DenseRows;
use crate::matmul::Disjoint;

/// Weight rows per register tile.
const TR: usize = 3;
/// Activation rows per register tile.
const TC: usize = 4;
/// Columns per block: [`TC`] activation rows of 1,024 f32 are 16 KiB.
const KC: usize = 1024;
/// Weight bytes of one band's column block (as f32 where f16 is widened first): kept in L2
/// while the activation tiles pass.
const BAND_BYTES: usize = 192 * 1024;

thread_local! {
    /// A band's column block of f16 weights widened to f32.
    static BLOCK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// How a weight element is stored (the const parameter of the kernels).
pub(super) const F32: u8 = 0;
pub(super) const F16: u8 = 1;
pub(super) const BF16: u8 = 2;

pub(super) const fn elem_bytes(k: u8) -> usize {
    if k == F32 { 4 } else { 2 }
}

/// `out[i * rows + r] = dot(w_row_r, x_i)` for f32, f16 or bf16 weights; false (nothing done)
/// for other forms, a CPU without AVX2/FMA/F16C or lengths that do not fit.
pub(super) fn matmul(
    pool: &ThreadPool,
    w: DenseRows<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> bool {
    let Some(kind) = kind_of(w, rows, cols, x, m, out) else { return false };
    let threads = pool.threads().max(1);
    let stored = if kind == F16 && m > TC { 4 } else { elem_bytes(kind) };
    let by_bytes = (BAND_BYTES / (KC.min(cols) * stored)).max(TR) / TR * TR;
    let by_threads = rows.div_ceil(2 * threads).next_multiple_of(TR);
    let band = by_bytes.min(by_threads).max(TR);
    let tasks = rows.div_ceil(band);
    let dst = Disjoint::new(out);
    pool.run(tasks, &|t| {
        let r0 = (t * band).min(rows);
        let r1 = (r0 + band).min(rows);
        let (wp, xp, op) = (w_ptr(w), x.as_ptr(), dst.ptr_at(0));
        // SAFETY: features checked above; `w` holds `rows × cols` elements, `x` `m × cols`,
        // `out` `m × rows` (checked above); this task reads weight rows `r0..r1` and writes
        // output columns `r0..r1` of each activation row, which no other task writes.
        unsafe {
            match kind {
                F32 => band_product::<F32>(wp, cols, xp, m, op, rows, r0, r1),
                F16 => band_product::<F16>(wp, cols, xp, m, op, rows, r0, r1),
                _ => band_product::<BF16>(wp, cols, xp, m, op, rows, r0, r1),
            }
        }
    });
    true
}

/// The element kind of `w` (`F32`, `F16`, `BF16`) if the AVX2 kernels can take this product:
/// a dense form, lengths that hold `rows × cols` weights, `m × cols` activations and `m × rows`
/// outputs, no empty dimension, and a CPU with AVX2/FMA/F16C.
pub(super) fn kind_of(w: DenseRows<'_>, rows: usize, cols: usize, x: &[f32], m: usize, out: &[f32]) -> Option<u8> {
    let (kind, wlen) = match w {
        DenseRows::F32(v) => (F32, v.len()),
        DenseRows::Half(Half::F16, b) => (F16, b.len() / 2),
        DenseRows::Half(Half::Bf16, b) => (BF16, b.len() / 2),
        _ => return None,
    };
    let fits = rows.checked_mul(cols).is_some_and(|n| n <= wlen)
        && m.checked_mul(cols).is_some_and(|n| n <= x.len())
        && m.checked_mul(rows).is_some_and(|n| n <= out.len());
    (fits && cols > 0 && rows > 0 && m > 0 && crate::avx2::available()).then_some(kind)
}

pub(super) fn w_ptr(w: DenseRows<'_>) -> *const u8 {
    match w {
        DenseRows::F32(v) => v.as_ptr().cast(),
        DenseRows::Half(_, b) => b.as_ptr(),
        _ => std::ptr::null(),
    }
}

/// Weight rows `r0..r1` against every activation row, column block by column block. With f16
/// weights and more than one activation tile, each block of the band is first widened to f32
/// (into a per-thread buffer that stays in L2): `vcvtph2ps` is slow on some cores (Zen 2: the
/// tiles ran 20% below bf16's), and widened once the block serves every activation tile.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn band_product<const K: u8>(
    w: *const u8,
    cols: usize,
    x: *const f32,
    m: usize,
    out: *mut f32,
    n: usize,
    r0: usize,
    r1: usize,
) {
    let (eb, wstride, nr) = (elem_bytes(K), cols * elem_bytes(K), r1 - r0);
    let widen = K == F16 && m > TC;
    let mut k0 = 0;
    while k0 < cols {
        let kc = KC.min(cols - k0);
        let add = k0 > 0;
        // SAFETY (both arms): `k0 + kc <= cols` and rows `r0..r1` are in the caller's bounds;
        // the widened block holds `nr × kc` values, row after row.
        if widen {
            crate::matmul::with_scratch(&BLOCK, nr * kc, 0.0, |buf| unsafe {
                for (j, dst) in buf.chunks_exact_mut(kc).enumerate() {
                    let src = std::slice::from_raw_parts(w.add((r0 + j) * wstride + k0 * eb), 2 * kc);
                    super::avx2::widen(Half::F16, src, dst);
                }
                block::<F32>(buf.as_ptr().cast(), 4 * kc, x.add(k0), cols, m, out.add(r0), n, nr, kc, add);
            });
        } else {
            unsafe {
                block::<K>(w.add(r0 * wstride + k0 * eb), wstride, x.add(k0), cols, m, out.add(r0), n, nr, kc, add)
            };
        }
        k0 += kc;
    }
}

/// `nr` weight rows (`wstride` bytes apart) × `m` activation rows (`xstride` values apart),
/// `kc` columns: `out[i * n + j]` (+)= the partial dot products, tile by tile.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block<const K: u8>(
    w: *const u8,
    wstride: usize,
    x: *const f32,
    xstride: usize,
    m: usize,
    out: *mut f32,
    n: usize,
    nr: usize,
    kc: usize,
    add: bool,
) {
    let mut a = 0;
    while a < m {
        let c = TC.min(m - a);
        // SAFETY (all below): `a < m`, `r < nr`; the tile reads rows `r..r + R` of `w` and
        // `a..a + c` of `x`, `kc` columns, and writes `out[(a + i) * n + r + j]`, all inside
        // the caller's bounds.
        let (xa, oa) = unsafe { (x.add(a * xstride), out.add(a * n)) };
        let mut r = 0;
        while r < nr {
            let (wr, o) = unsafe { (w.add(r * wstride), oa.add(r)) };
            macro_rules! tile {
                ($r:literal) => {
                    unsafe {
                        match c {
                            4 => tile::<K, $r, 4>(wr, wstride, xa, xstride, kc, o, n, add),
                            3 => tile::<K, $r, 3>(wr, wstride, xa, xstride, kc, o, n, add),
                            2 => tile::<K, $r, 2>(wr, wstride, xa, xstride, kc, o, n, add),
                            _ => tile::<K, $r, 1>(wr, wstride, xa, xstride, kc, o, n, add),
                        }
                    }
                };
            }
            if r + TR <= nr {
                tile!(3);
                r += TR;
            } else {
                tile!(1);
                r += 1;
            }
        }
        a += TC;
    }
}

/// `out[i * ostride + j] (+)= Σ_{k < kc} w[j][k] · x[i][k]` for `j < R`, `i < C`, with weight
/// rows `wstride` bytes apart and activation rows `xstride` values apart.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const K: u8, const R: usize, const C: usize>(
    w: *const u8,
    wstride: usize,
    x: *const f32,
    xstride: usize,
    kc: usize,
    out: *mut f32,
    ostride: usize,
    add: bool,
) {
    let eb = elem_bytes(K);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let k8 = kc & !7;
    let mut k = 0;
    while k < k8 {
        // SAFETY: `k + 8 <= kc` values of every weight and activation row are in bounds
        // (caller). The weight vectors first: 3 of them, 12 accumulators and one activation
        // vector at a time fill the 16 registers.
        let wv: [__m256; R] = std::array::from_fn(|j| unsafe { load8::<K>(w.add(j * wstride + k * eb)) });
        for i in 0..C {
            let xv = unsafe { _mm256_loadu_ps(x.add(i * xstride + k)) };
            for j in 0..R {
                acc[j][i] = _mm256_fmadd_ps(wv[j], xv, acc[j][i]);
            }
        }
        k += 8;
    }
    // The columns past the last multiple of 8, one by one.
    let tail = |j: usize, i: usize| {
        (k8..kc).fold(0.0, |s, kk| {
            // SAFETY: `kk < kc`, in bounds as above.
            s + unsafe { load1::<K>(w.add(j * wstride + kk * eb)) * *x.add(i * xstride + kk) }
        })
    };
    for (j, accs) in acc.iter().enumerate() {
        for (i, &v) in accs.iter().enumerate() {
            let s = crate::avx2::hsum(v) + tail(j, i);
            // SAFETY: the caller owns this output element.
            unsafe {
                let o = out.add(i * ostride + j);
                *o = if add { *o + s } else { s };
            }
        }
    }
}

/// 8 weights from `p` as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load8<const K: u8>(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 8 elements at `p`.
    unsafe {
        match K {
            F32 => _mm256_loadu_ps(p.cast()),
            F16 => _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
            _ => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())))),
        }
    }
}

/// One weight at `p` as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load1<const K: u8>(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees one element at `p`.
    unsafe {
        match K {
            F32 => p.cast::<f32>().read_unaligned(),
            F16 => _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(p.cast::<u16>().read_unaligned())))),
            _ => f32::from_bits(u32::from(p.cast::<u16>().read_unaligned()) << 16),
        }
    }
}

//! Dense prompts of many rows on AVX2 (#18): a blocked GEMM of outer products, as BLIS and
//! OpenBLAS lay out their Haswell/Zen kernels, for f32, f16 and bf16 weights.
//!
//! A task owns a band of at most [`BAND_MAX`] whole weight rows. Column block by column block
//! ([`KC`] columns), it packs its band into panels of [`NR`] rows stored column-major (for each
//! column the 16 rows' weights side by side, one cache line; 16-bit weights widened on the
//! way, so f16 pays `vcvtph2ps` once per weight, not once per activation tile). Then, [`MR`]
//! activation rows at a time, a register tile of `MR × NR` sums runs over the block for every
//! panel: per column 2 weight vectors loaded, `MR` activation values broadcast straight from
//! the caller's rows, `2·MR` FMAs into 12 accumulators. Each loaded weight vector serves 6
//! activation rows (the dot-product tiles of `tile.rs`: 4), the output tile is 16 consecutive
//! values of an output row (no horizontal sums), and each weight is read from memory once per
//! product. Few activation rows do not amortize the packing: [`min_rows`] decides (the
//! callers use `tile.rs` below it).
//!
//! Measured (kbench, 7B shapes, Zen 2, 2 threads; `tile.rs` in brackets): f32 at 128 rows
//! 174–176 GFLOP/s (150–163), at 512 rows 185–191 (143–165); bf16 and f16 alike. Tried and
//! dropped on the way (m = 128): column blocks of 256 (−12 to −19% against 2,048: the
//! packing's reads of short row segments miss in every cache) or 1,024 (−2 to −3%), copying
//! each activation group next to each other first (−3 to −9%), software prefetch of the next
//! block (−5 to −8%; spread one line per 16 columns inside the tile instead, no gain), the
//! panel loop outside the activation groups with 96 activation rows kept in L2 (−5 to −10%),
//! and no packing at all: the activations transposed once into panels of 16 rows and 6 weight
//! rows broadcast straight from memory (f32 11008×4096 at m = 128: 170 against 177–179; the
//! 4096-row shapes 73–80). What the packing still costs (`perf`: ~9% of an f32 product of 128
//! rows, its loads stalled on memory) is the price of reading each weight once.
//!
//! Safety model as in `crate::avx2`: every `unsafe fn` needs AVX2 + FMA + F16C ([`matmul`]
//! checks) and pointers valid for what it reads and writes ([`matmul`] checks the lengths).

// Register tiles index fixed-size arrays with loop counters below their constant lengths.
#![allow(clippy::indexing_slicing, clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::cell::RefCell;

use super::tile::{BF16, F16, F32, elem_bytes, load1, load8};
use crate::ThreadPool;
use crate::dense16::Half;
use crate::gemv::DenseRows;
use crate::matmul::Disjoint;

/// Activation rows per register tile (broadcast).
const MR: usize = 6;
/// Weight rows per panel (two f32x8 vectors).
const NR: usize = 16;
/// Columns per block: a band's packed block is `band × KC` f32, at most 1 MiB (L2 and L3);
/// each panel (128 KiB) is read once per activation group.
const KC: usize = 2048;
/// Most weight rows per task.
const BAND_MAX: usize = 128;
/// Activation rows from which this path pays for its packing (`tile.rs` below): measured
/// crossovers on 7B shapes (kbench, Zen 2), f16 earlier as `tile.rs` widens it slowly.
pub(super) fn min_rows(w: DenseRows<'_>) -> usize {
    match w {
        DenseRows::Half(Half::F16, _) => 24,
        _ => 48,
    }
}

thread_local! {
    /// The packed panels of a band's column block.
    static PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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
    let Some(kind) = super::tile::kind_of(w, rows, cols, x, m, out) else { return false };
    // Bands of whole panels, at most BAND_MAX rows, at least two per thread where the matrix
    // allows, and as many as a multiple of the threads (896 rows in 7 bands of 128 kept one of
    // 2 threads idle for a seventh of the product: 8 of 112).
    let threads = pool.threads().max(1);
    let want = rows.div_ceil(BAND_MAX).max(2 * threads).next_multiple_of(threads);
    let band = rows.div_ceil(want).next_multiple_of(NR).clamp(NR, BAND_MAX);
    let tasks = rows.div_ceil(band);
    let dst = Disjoint::new(out);
    pool.run(tasks, &|t| {
        let wp = super::tile::w_ptr(w);
        let r0 = (t * band).min(rows);
        let r1 = (r0 + band).min(rows);
        let panels = (r1 - r0).div_ceil(NR);
        crate::matmul::with_scratch(&PACK, panels * NR * KC.min(cols), 0.0, |bp| {
            let args = Band { x: x.as_ptr(), cols, m, out: dst.ptr_at(0), n: rows, r0, r1 };
            // SAFETY: features checked above; `w` holds `rows × cols` elements, `x` `m × cols`,
            // `out` `m × rows` (checked above); this task reads weight rows `r0..r1` and writes
            // output columns `r0..r1` of each activation row, which no other task writes; `bp`
            // holds `panels × NR × min(KC, cols)` values.
            unsafe {
                match kind {
                    F32 => run_band::<F32>(wp, &args, bp.as_mut_ptr()),
                    F16 => run_band::<F16>(wp, &args, bp.as_mut_ptr()),
                    _ => run_band::<BF16>(wp, &args, bp.as_mut_ptr()),
                }
            }
        });
    });
    true
}

/// One task's share: activations `x` (`m × cols`), output `out` (`m × n`), weight rows `r0..r1`.
struct Band {
    x: *const f32,
    cols: usize,
    m: usize,
    out: *mut f32,
    n: usize,
    r0: usize,
    r1: usize,
}

/// How many activation rows the tile starting at row `a` takes: [`MR`], except that the last
/// 7 or 8 rows go as 4 + 3 or 4 + 4 (a tile of 1 or 2 rows has too few sums to keep both FMA
/// units busy).
fn group(m: usize, a: usize) -> usize {
    match m - a {
        7 | 8 => 4,
        left => left.min(MR),
    }
}

/// Weight rows `r0..r1` against every activation row, column block by column block: pack the
/// band's block, then every activation group against every panel.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_band<const K: u8>(w: *const u8, b: &Band, bp: *mut f32) {
    let (eb, wstride) = (elem_bytes(K), b.cols * elem_bytes(K));
    let nr = b.r1 - b.r0;
    let panels = nr.div_ceil(NR);
    let mut k0 = 0;
    while k0 < b.cols {
        let kc = KC.min(b.cols - k0);
        let add = k0 > 0;
        // SAFETY (all below): rows `r0..r1` and columns `k0..k0 + kc` are inside `w`; `bp` holds
        // `panels × NR × kc` values (panel `p` at `p × NR × kc`, so a narrow block's panels
        // lie next to each other); activation rows `a..a + c` of `x` (columns `k0..k0 + kc`) and
        // the output columns `r0..r1` of those rows are the caller's.
        unsafe {
            for p in 0..panels {
                let rows_here = NR.min(nr - p * NR);
                pack::<K>(w.add((b.r0 + p * NR) * wstride + k0 * eb), wstride, rows_here, kc, bp.add(p * NR * kc));
            }
            let mut a = 0;
            while a < b.m {
                let c = group(b.m, a);
                let (xa, o) = (b.x.add(a * b.cols + k0), b.out.add(a * b.n + b.r0));
                for p in 0..panels {
                    let rows_here = NR.min(nr - p * NR);
                    let (bpp, op) = (bp.add(p * NR * kc), o.add(p * NR));
                    macro_rules! tile {
                        ($c:literal) => {
                            tile::<$c>(xa, b.cols, bpp, kc, op, b.n, rows_here, add)
                        };
                    }
                    match c {
                        6 => tile!(6),
                        5 => tile!(5),
                        4 => tile!(4),
                        3 => tile!(3),
                        2 => tile!(2),
                        _ => tile!(1),
                    }
                }
                a += c;
            }
        }
        k0 += kc;
    }
}

/// `rows_here ≤ NR` weight rows (`wstride` bytes apart), `kc` columns, into one panel: for each
/// column, the rows' values side by side (zeros past `rows_here`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack<const K: u8>(w: *const u8, wstride: usize, rows_here: usize, kc: usize, dst: *mut f32) {
    let eb = elem_bytes(K);
    // Whole panels go 8 columns at a time through 8 × 8 transposes; the columns past the last
    // multiple of 8, and every column of a partial panel, one value at a time.
    let by_value_from = if rows_here == NR { kc & !7 } else { 0 };
    // SAFETY (all below): rows `< rows_here` and columns `< kc` are in the caller's bounds; `dst`
    // holds `kc × NR` values.
    unsafe {
        for half in 0..2 {
            let mut k = 0;
            while k < by_value_from {
                let v: [__m256; 8] = std::array::from_fn(|j| load8::<K>(w.add((half * 8 + j) * wstride + k * eb)));
                for (c, tv) in transpose8(v).iter().enumerate() {
                    _mm256_storeu_ps(dst.add((k + c) * NR + half * 8), *tv);
                }
                k += 8;
            }
        }
        for k in by_value_from..kc {
            for j in 0..NR {
                *dst.add(k * NR + j) = if j < rows_here { load1::<K>(w.add(j * wstride + k * eb)) } else { 0.0 };
            }
        }
    }
}

/// The 8 × 8 transpose: `out[c]` lane `j` = `v[j]` lane `c`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose8(v: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(v[0], v[1]);
    let t1 = _mm256_unpackhi_ps(v[0], v[1]);
    let t2 = _mm256_unpacklo_ps(v[2], v[3]);
    let t3 = _mm256_unpackhi_ps(v[2], v[3]);
    let t4 = _mm256_unpacklo_ps(v[4], v[5]);
    let t5 = _mm256_unpackhi_ps(v[4], v[5]);
    let t6 = _mm256_unpacklo_ps(v[6], v[7]);
    let t7 = _mm256_unpackhi_ps(v[6], v[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// `out[i * ostride + j] (+)= Σ_{k < kc} a[i][k] · panel[k][j]` for `i < C`, `j < cols_here`:
/// activation rows `astride` values apart in `a` (broadcast straight from the caller's rows),
/// the panel `NR` values per column.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const C: usize>(
    a: *const f32,
    astride: usize,
    panel: *const f32,
    kc: usize,
    out: *mut f32,
    ostride: usize,
    cols_here: usize,
    add: bool,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; C];
    // SAFETY (all below): `k < kc` columns of the panel and of each of the `C` activation rows
    // are in bounds; the output tile is the caller's.
    unsafe {
        for k in 0..kc {
            let b0 = _mm256_loadu_ps(panel.add(k * NR));
            let b1 = _mm256_loadu_ps(panel.add(k * NR + 8));
            for i in 0..C {
                let av = _mm256_broadcast_ss(&*a.add(i * astride + k));
                acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
            }
        }
        for i in 0..C {
            let o = out.add(i * ostride);
            if cols_here == NR {
                let (mut v0, mut v1) = (acc[i][0], acc[i][1]);
                if add {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(o));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(o.add(8)));
                }
                _mm256_storeu_ps(o, v0);
                _mm256_storeu_ps(o.add(8), v1);
            } else {
                let mut s = [0f32; NR];
                _mm256_storeu_ps(s.as_mut_ptr(), acc[i][0]);
                _mm256_storeu_ps(s.as_mut_ptr().add(8), acc[i][1]);
                for j in 0..cols_here {
                    let oj = o.add(j);
                    *oj = if add { *oj + s[j] } else { s[j] };
                }
            }
        }
    }
}

//! Dense prompts of many rows on x86 (#18): a blocked GEMM of outer products, as BLIS and
//! OpenBLAS lay out their Haswell/Zen and Skylake-X kernels, for f32, f16 and bf16 weights, in
//! 256-bit tiles (AVX2, [`Width::Avx2`], described below) or 512-bit ones ([`Width::Avx512`]:
//! 32-row panels, 12 activation rows, 24 of the 32 registers; [`Width::Avx512Bf16`]: the same
//! with bf16 weights multiplied in pairs by `vdpbf16ps`, the activations rounded to bf16).
//!
//! A task owns a band of at most [`BAND_MAX`] whole weight rows. Column block by column block
//! ([`KC`] columns; 512-bit: [`KC512`]), it packs its band into panels of [`NR`] rows stored column-major (for each
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
//! On AVX-512 (Zen 5, 2 threads, 7B shapes): the 512-bit tiles 340–376 GFLOP/s at 128 rows and
//! 380–422 at 512 (f32/f16/bf16; the 256-bit ones 201–217 and 219–231 there), the bf16 pairs
//! 712–785 and 823–921; the crossovers with `tile.rs` are near 12 rows (f16 8, bf16 pairs 4).
//!
//! Safety model as in `crate::avx2`: every `unsafe fn` needs AVX2 + FMA + F16C, and AVX-512F
//! (and AVX512-BF16) for the 512-bit ones ([`matmul`] checks `Width::available`), and pointers
//! valid for what it reads and writes ([`matmul`] checks the lengths).

// Register tiles index fixed-size arrays with loop counters below their constant lengths.
#![allow(clippy::indexing_slicing, clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::cell::RefCell;

use super::tile::{BF16, F16, F32, elem_bytes, load1, load8};
use crate::ThreadPool;
use crate::dense16::Half;
use crate::gemv::DenseRows;
use crate::matmul::Disjoint;

/// Activation rows per register tile (broadcast): AVX2 (16 registers: 12 accumulators).
const MR: usize = 6;
/// Weight rows per panel (two f32x8 vectors).
const NR: usize = 16;
/// The same on AVX-512 (32 registers: 24 accumulators of two f32x16 vectors of a 32-row panel).
const MR512: usize = 12;
const NR512: usize = 32;
/// Columns per block: a band's packed block is `band × KC` f32, at most 1 MiB (L2 and L3);
/// each panel (128 KiB) is read once per activation group.
const KC: usize = 2048;
/// The same for the 512-bit tiles: a 32-row panel of 1,024 columns is 128 KiB, the 12
/// activation rows' block 48 KiB (Zen 5, kbench: +7–14% at 128 rows against 2,048, +4–8% at
/// 512; 512 columns lost 0–12%).
const KC512: usize = 1024;
/// Most weight rows per task.
const BAND_MAX: usize = 128;
/// Activation rows from which this path pays for its packing (`tile.rs` below): measured
/// crossovers on 7B shapes (kbench, 2 threads; AVX2 on Zen 2, AVX-512 on Zen 5), f16 earlier
/// as `tile.rs` widens it slowly.
pub(super) fn min_rows(w: DenseRows<'_>, width: Width) -> usize {
    match (width, w) {
        (Width::Avx2, DenseRows::Half(Half::F16, _)) => 24,
        (Width::Avx2, _) => 48,
        (Width::Avx512Bf16 | Width::AmxBf16, DenseRows::Half(Half::Bf16, _)) => 4,
        (_, DenseRows::Half(Half::F16, _)) => 8,
        (_, _) => 12,
    }
}

thread_local! {
    /// The packed panels of a band's column block.
    static PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The activations rounded to bf16, two per 32-bit value (`Width::Avx512Bf16`).
    static XB: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Which register tiles a product runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Width {
    /// f32x8 vectors, 16-row panels, tiles of 6 activation rows (AVX2 + FMA + F16C).
    Avx2,
    /// f32x16 vectors, 32-row panels, tiles of 12 activation rows (and AVX-512F).
    Avx512,
    /// As `Avx512`, but bf16 weights (with an even number of columns) multiply in pairs of
    /// bf16 values with `vdpbf16ps` (AVX512-BF16), the activations rounded to bf16 (to
    /// nearest even) once per call, as llama.cpp and PyTorch's bf16 matmul do: twice the
    /// products per instruction, each activation off by at most 2⁻⁹ of itself.
    Avx512Bf16,
    /// As `Avx512Bf16`, with tiles of 16 or 32 activation rows × 32-row panels through Intel
    /// AMX-BF16 (`tdpbf16ps`) where the panels and blocks are whole (see [`run_band_bf16`]).
    AmxBf16,
}

impl Width {
    /// Columns per block.
    const fn kc(self) -> usize {
        match self {
            Width::Avx2 => KC,
            Width::Avx512 | Width::Avx512Bf16 | Width::AmxBf16 => KC512,
        }
    }

    /// Weight rows per panel.
    const fn nr(self) -> usize {
        match self {
            Width::Avx2 => NR,
            Width::Avx512 | Width::Avx512Bf16 | Width::AmxBf16 => NR512,
        }
    }

    /// True if this CPU runs these tiles.
    pub(super) fn available(self) -> bool {
        match self {
            Width::Avx2 => crate::avx2::available(),
            Width::Avx512 => crate::avx2::available() && std::arch::is_x86_feature_detected!("avx512f"),
            Width::Avx512Bf16 => Width::Avx512.available() && std::arch::is_x86_feature_detected!("avx512bf16"),
            Width::AmxBf16 => Width::Avx512Bf16.available() && crate::packed::amx::bf16_available(),
        }
    }
}

/// `out[i * rows + r] = dot(w_row_r, x_i)` for f32, f16 or bf16 weights in `width`'s tiles;
/// false (nothing done) for other forms, a CPU without the tiles' instructions or lengths that
/// do not fit.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    pool: &ThreadPool,
    w: DenseRows<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    width: Width,
) -> bool {
    let Some(kind) = super::tile::kind_of(w, rows, cols, x, m, out) else { return false };
    if !width.available() {
        return false;
    }
    let (nr, kc) = (width.nr(), width.kc());
    // Bands of whole panels, at most BAND_MAX rows, at least two per thread where the matrix
    // allows, and as many as a multiple of the threads (896 rows in 7 bands of 128 kept one of
    // 2 threads idle for a seventh of the product: 8 of 112).
    let threads = pool.threads().max(1);
    let want = rows.div_ceil(BAND_MAX).max(2 * threads).next_multiple_of(threads);
    let band = rows.div_ceil(want).next_multiple_of(nr).clamp(nr, BAND_MAX);
    let tasks = rows.div_ceil(band);
    let dst = Disjoint::new(out);
    if matches!(width, Width::Avx512Bf16 | Width::AmxBf16) && kind == BF16 && cols.is_multiple_of(2) {
        let amx = width == Width::AmxBf16;
        return crate::matmul::with_scratch(&XB, m * cols / 2, 0, |xb| {
            // SAFETY: AVX512-BF16 checked above (`width.available()`); `x` holds `m × cols`
            // values and `xb` half as many.
            unsafe { to_bf16_pairs(x.as_ptr(), m * cols, xb.as_mut_ptr()) };
            let xb: &[u32] = xb;
            pool.run(tasks, &|t| {
                let r0 = (t * band).min(rows);
                let r1 = (r0 + band).min(rows);
                let need = (r1 - r0).div_ceil(nr) * nr * kc.min(cols) / 2;
                with_panels(need, |bp| {
                    let args = Band { x: x.as_ptr(), cols, m, out: dst.ptr_at(0), n: rows, r0, r1 };
                    // SAFETY: as below, with `xb` holding `m × cols / 2` pairs and `bp`
                    // `panels × nr × min(KC, cols) / 2` of them.
                    unsafe { run_band_bf16(super::tile::w_ptr(w), &args, xb.as_ptr(), bp, amx) }
                });
            });
            true
        });
    }
    pool.run(tasks, &|t| {
        let wp = super::tile::w_ptr(w);
        let r0 = (t * band).min(rows);
        let r1 = (r0 + band).min(rows);
        let need = (r1 - r0).div_ceil(nr) * nr * kc.min(cols);
        with_panels(need, |bp| {
            let args = Band { x: x.as_ptr(), cols, m, out: dst.ptr_at(0), n: rows, r0, r1 };
            // SAFETY: features checked above (`width.available()`); `w` holds `rows × cols`
            // elements, `x` `m × cols`, `out` `m × rows` (checked above); this task reads weight
            // rows `r0..r1` and writes output columns `r0..r1` of each activation row, which no
            // other task writes; `bp` holds `panels × nr × min(KC, cols)` values.
            unsafe {
                match (width, kind) {
                    (Width::Avx2, F32) => run_band::<F32>(wp, &args, bp),
                    (Width::Avx2, F16) => run_band::<F16>(wp, &args, bp),
                    (Width::Avx2, _) => run_band::<BF16>(wp, &args, bp),
                    (_, F32) => run_band512::<F32>(wp, &args, bp),
                    (_, F16) => run_band512::<F16>(wp, &args, bp),
                    (_, _) => run_band512::<BF16>(wp, &args, bp),
                }
            }
        });
    });
    true
}

/// Runs `f` on this thread's panel buffer of `need` values, starting on a cache line (15
/// values more are kept for that: vector loads that cross lines cost a second access).
fn with_panels(need: usize, f: impl FnOnce(*mut f32)) {
    crate::matmul::with_scratch(&PACK, need + 15, 0.0, |buf| {
        let off = buf.as_ptr().align_offset(64).min(15);
        if let Some(bp) = buf.get_mut(off..off + need) {
            f(bp.as_mut_ptr());
        }
    });
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

/// How many activation rows the tile starting at row `a` takes: `mr`, except that the last
/// `mr + 1` or `mr + 2` rows go as two tiles of about half (for `mr` = 6, 4 + 3 or 4 + 4: a
/// tile of 1 or 2 rows has too few sums to keep both FMA units busy).
fn group(m: usize, a: usize, mr: usize) -> usize {
    let left = m - a;
    if left > mr && left <= mr + 2 { left.div_ceil(2) } else { left.min(mr) }
}

/// `$name`: weight rows `r0..r1` against every activation row, column block (`$kc` columns) by
/// column block: pack the band's block into panels of `$nr` rows, then every activation group (at most
/// `$mr` rows, `$tile::<C>` for each `C` listed) against every panel. Stamped out once per
/// [`Width`].
macro_rules! run_band {
    ($name:ident, $feat:literal, $kc:expr, $nr:expr, $mr:expr, $tile:ident, [$($c:literal)*]) => {
        #[target_feature(enable = $feat)]
        unsafe fn $name<const K: u8>(w: *const u8, b: &Band, bp: *mut f32) {
            let (eb, wstride) = (elem_bytes(K), b.cols * elem_bytes(K));
            let nr = b.r1 - b.r0;
            let panels = nr.div_ceil($nr);
            let mut k0 = 0;
            while k0 < b.cols {
                let kc = ($kc).min(b.cols - k0);
                let add = k0 > 0;
                // SAFETY (all below): rows `r0..r1` and columns `k0..k0 + kc` are inside `w`;
                // `bp` holds `panels × $nr × kc` values (panel `p` at `p × $nr × kc`, so a
                // narrow block's panels lie next to each other); activation rows `a..a + c` of
                // `x` (columns `k0..k0 + kc`) and the output columns `r0..r1` of those rows are
                // the caller's.
                unsafe {
                    for p in 0..panels {
                        let rows_here = ($nr).min(nr - p * $nr);
                        let src = w.add((b.r0 + p * $nr) * wstride + k0 * eb);
                        pack::<K, { $nr }>(src, wstride, rows_here, kc, bp.add(p * $nr * kc));
                    }
                    let mut a = 0;
                    while a < b.m {
                        let c = group(b.m, a, $mr);
                        let (xa, o) = (b.x.add(a * b.cols + k0), b.out.add(a * b.n + b.r0));
                        for p in 0..panels {
                            let rows_here = ($nr).min(nr - p * $nr);
                            let (bpp, op) = (bp.add(p * $nr * kc), o.add(p * $nr));
                            match c {
                                $($c => $tile::<$c>(xa, b.cols, bpp, kc, op, b.n, rows_here, add),)*
                                _ => $tile::<1>(xa, b.cols, bpp, kc, op, b.n, rows_here, add),
                            }
                        }
                        a += c;
                    }
                }
                k0 += kc;
            }
        }
    };
}
run_band!(run_band, "avx2,fma,f16c", KC, NR, MR, tile, [6 5 4 3 2]);
run_band!(run_band512, "avx2,fma,f16c,avx512f", KC512, NR512, MR512, tile512, [12 11 10 9 8 7 6 5 4 3 2]);

/// `rows_here ≤ P` weight rows (`wstride` bytes apart), `kc` columns, into one panel of `P`
/// rows (a multiple of 8): for each column, the rows' values side by side (zeros past
/// `rows_here`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack<const K: u8, const P: usize>(w: *const u8, wstride: usize, rows_here: usize, kc: usize, dst: *mut f32) {
    let eb = elem_bytes(K);
    // Whole panels go 8 columns at a time through 8 × 8 transposes; the columns past the last
    // multiple of 8, and every column of a partial panel, one value at a time.
    let by_value_from = if rows_here == P { kc & !7 } else { 0 };
    // SAFETY (all below): rows `< rows_here` and columns `< kc` are in the caller's bounds; `dst`
    // holds `kc × P` values.
    unsafe {
        for eighth in 0..P / 8 {
            let mut k = 0;
            while k < by_value_from {
                let v: [__m256; 8] = std::array::from_fn(|j| load8::<K>(w.add((eighth * 8 + j) * wstride + k * eb)));
                for (c, tv) in transpose8(v).iter().enumerate() {
                    _mm256_storeu_ps(dst.add((k + c) * P + eighth * 8), *tv);
                }
                k += 8;
            }
        }
        for k in by_value_from..kc {
            for j in 0..P {
                *dst.add(k * P + j) = if j < rows_here { load1::<K>(w.add(j * wstride + k * eb)) } else { 0.0 };
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

/// `$tile::<C>`: `out[i * ostride + j] (+)= Σ_{k < kc} a[i][k] · panel[k][j]` for `i < C`,
/// `j < cols_here`: activation rows `astride` values apart in `a` (broadcast straight from the
/// caller's rows), the panel `$nr` values per column (two vectors of `$lanes`), `2·C`
/// accumulators; `$store` writes (or, with `add`, adds) a tile's sums, row `i`'s first
/// `cols_here` values at `out + i * ostride`. Stamped out once per vector width (`$v`).
macro_rules! panel_tile {
    ($tile:ident, $store:ident, $feat:literal, $nr:expr, $lanes:literal, $v:ty,
     $zero:ident, $load:ident, $set1:ident, $fma:ident, $add:ident, $storeu:ident) => {
        #[allow(clippy::too_many_arguments)]
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $tile<const C: usize>(
            a: *const f32,
            astride: usize,
            panel: *const f32,
            kc: usize,
            out: *mut f32,
            ostride: usize,
            cols_here: usize,
            add: bool,
        ) {
            let mut acc = [[$zero(); 2]; C];
            // SAFETY (all below): `k < kc` columns of the panel and of each of the `C`
            // activation rows are in bounds; the output tile is the caller's.
            unsafe {
                for k in 0..kc {
                    let b0 = $load(panel.add(k * $nr));
                    let b1 = $load(panel.add(k * $nr + $lanes));
                    for i in 0..C {
                        let av = $set1(*a.add(i * astride + k));
                        acc[i][0] = $fma(av, b0, acc[i][0]);
                        acc[i][1] = $fma(av, b1, acc[i][1]);
                    }
                }
                $store(&acc, out, ostride, cols_here, add);
            }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn $store<const C: usize>(
            acc: &[[$v; 2]; C],
            out: *mut f32,
            ostride: usize,
            cols_here: usize,
            add: bool,
        ) {
            // SAFETY: the output tile (`C` rows of `cols_here` values) is the caller's.
            unsafe {
                for i in 0..C {
                    let o = out.add(i * ostride);
                    if cols_here == $nr {
                        let (mut v0, mut v1) = (acc[i][0], acc[i][1]);
                        if add {
                            v0 = $add(v0, $load(o));
                            v1 = $add(v1, $load(o.add($lanes)));
                        }
                        $storeu(o, v0);
                        $storeu(o.add($lanes), v1);
                    } else {
                        let mut s = [0f32; $nr];
                        $storeu(s.as_mut_ptr(), acc[i][0]);
                        $storeu(s.as_mut_ptr().add($lanes), acc[i][1]);
                        for j in 0..cols_here {
                            let oj = o.add(j);
                            *oj = if add { *oj + s[j] } else { s[j] };
                        }
                    }
                }
            }
        }
    };
}
panel_tile!(
    tile,
    store256,
    "avx2,fma,f16c",
    NR,
    8,
    __m256,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps,
    _mm256_storeu_ps
);
panel_tile!(
    tile512,
    store512,
    "avx2,fma,f16c,avx512f",
    NR512,
    16,
    __m512,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps,
    _mm512_storeu_ps
);

/// `n` activations at `x` rounded to bf16 (to nearest even, as `half::bf16::from_f32`), two
/// per 32-bit value at `dst` (`n` even): the lower half holds the even column.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bf16")]
unsafe fn to_bf16_pairs(x: *const f32, n: usize, dst: *mut u32) {
    let mut i = 0;
    // SAFETY: `x` holds `n` values and `dst` `n / 2`.
    unsafe {
        while i + 16 <= n {
            let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x.add(i)));
            _mm256_storeu_si256(dst.add(i / 2).cast(), std::mem::transmute::<__m256bh, __m256i>(h));
            i += 16;
        }
        while i + 2 <= n {
            let (lo, hi) = (half::bf16::from_f32(*x.add(i)), half::bf16::from_f32(*x.add(i + 1)));
            *dst.add(i / 2) = u32::from(lo.to_bits()) | u32::from(hi.to_bits()) << 16;
            i += 2;
        }
    }
}

/// [`run_band512`] for bf16 weights as pairs: each row's `cols / 2` 32-bit pairs packed into
/// 32-row panels (the f32 transpose moves them unchanged), `xb` the activations' pairs. With
/// `amx` ([`Width::AmxBf16`]), where every panel of the band is whole and the block's pairs a
/// multiple of 16, activation rows go in AMX tiles of 32 (then 16) first: a panel's pairs are
/// already AMX's `B` layout (a pair of 16 rows per 64 bytes, 128 bytes apart), so
/// `packed::amx::bf16_tile` multiplies them in place; the rows left take the vector tiles.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bf16")]
unsafe fn run_band_bf16(w: *const u8, b: &Band, xb: *const u32, bp: *mut f32, amx: bool) {
    let (wstride, pairs) = (b.cols * 2, b.cols / 2);
    let nr = b.r1 - b.r0;
    let panels = nr.div_ceil(NR512);
    let mut k0 = 0;
    while k0 < b.cols {
        let kp = KC512.min(b.cols - k0) / 2;
        let add = k0 > 0;
        // SAFETY (all below): as in `run_band`, in pairs: rows `r0..r1` and pairs
        // `k0 / 2..k0 / 2 + kp` are inside `w`; `bp` holds `panels × NR512 × kp` pairs;
        // activation rows `a..a + c` of `xb` and the output columns `r0..r1` are the caller's.
        unsafe {
            for p in 0..panels {
                let rows_here = NR512.min(nr - p * NR512);
                let src = w.add((b.r0 + p * NR512) * wstride + k0 * 2);
                pack::<F32, NR512>(src, wstride, rows_here, kp, bp.add(p * NR512 * kp));
            }
            let mut a = 0;
            if amx && nr.is_multiple_of(NR512) && kp.is_multiple_of(16) && b.m >= 16 {
                let _tiles = crate::packed::amx::Tiles::square();
                while a + 16 <= b.m {
                    let two = a + 32 <= b.m;
                    let (xa, o) = (xb.add(a * pairs + k0 / 2), b.out.add(a * b.n + b.r0));
                    for p in 0..panels {
                        let bpp = bp.add(p * NR512 * kp).cast::<u32>();
                        crate::packed::amx::bf16_tile(xa, pairs, bpp, kp, o.add(p * NR512), b.n, two, add);
                    }
                    a += if two { 32 } else { 16 };
                }
            }
            while a < b.m {
                let c = group(b.m, a, MR512);
                let (xa, o) = (xb.add(a * pairs + k0 / 2), b.out.add(a * b.n + b.r0));
                for p in 0..panels {
                    let rows_here = NR512.min(nr - p * NR512);
                    let (bpp, op) = (bp.add(p * NR512 * kp).cast::<u32>(), o.add(p * NR512));
                    macro_rules! tile {
                        ($($c:literal)*) => {
                            match c {
                                $($c => tile_bf16::<$c>(xa, pairs, bpp, kp, op, b.n, rows_here, add),)*
                                _ => tile_bf16::<1>(xa, pairs, bpp, kp, op, b.n, rows_here, add),
                            }
                        };
                    }
                    tile!(12 11 10 9 8 7 6 5 4 3 2);
                }
                a += c;
            }
        }
        k0 += 2 * kp;
    }
}

/// [`tile512`] on pairs: `out[i * ostride + j] (+)= Σ_{p < kp} dot(a[i][p], panel[p][j])`, each
/// term two bf16 products (`vdpbf16ps`), `a` the activation pairs `astride` apart.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bf16")]
unsafe fn tile_bf16<const C: usize>(
    a: *const u32,
    astride: usize,
    panel: *const u32,
    kp: usize,
    out: *mut f32,
    ostride: usize,
    cols_here: usize,
    add: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; C];
    // SAFETY (all below): `p < kp` pairs of the panel and of each of the `C` activation rows
    // are in bounds; the output tile is the caller's. `__m512i` and `__m512bh` are both 64
    // bytes of plain bits.
    unsafe {
        for p in 0..kp {
            let b0 = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(panel.add(p * NR512).cast()));
            let b1 = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(panel.add(p * NR512 + 16).cast()));
            for i in 0..C {
                let av = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*a.add(i * astride + p) as i32));
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
            }
        }
        store512(&acc, out, ostride, cols_here, add);
    }
}

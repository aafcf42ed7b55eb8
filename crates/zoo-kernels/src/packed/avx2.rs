//! AVX2 kernels (and their AVX-VNNI and AVX512-VNNI copies) over packed groups of 8 rows
//! (layout in the parent module): a tile is one group × `C` activation rows, and each of its
//! `C` accumulators is one f32x8 holding the 8 rows' results, stored with one instruction.
//!
//! Per 32 quants of a group the work is 4 loads of weights, their nibbles split once, then per
//! activation row 8 broadcasts of 4 activation bytes and 8 `maddubs` summed in 16 bits (at
//! most 8 × 2 × 15 × 127 = 30,480: no overflow) and one `madd` to 32 bits; AVX-VNNI and
//! AVX512-VNNI fold the two into `vpdpbusd`.
//!
//! Safety model as in `crate::avx2`: every `unsafe fn` needs AVX2 + FMA + F16C (the entry
//! points check) and pointers valid for the blocks passed (the entry points check lengths).

#![allow(clippy::indexing_slicing)]

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::{BlockQ8, BlockQ8K};
use crate::matmul::Disjoint;
use crate::packed::{Acts, GROUP, in_bounds, store_tile};
use crate::{Backend, QuantType};

/// Bytes ahead of the current block that decode prefetches.
const PREFETCH: usize = 2048;

/// Runs the copy of the kernels in `$module` on type `$t` (an `unsafe` call: see [`groups`]).
macro_rules! run {
    ($module:ident, $t:expr, $w:expr, $acts:expr, $m:expr, $nb:expr, $rows:expr, $n:expr, $out:expr) => {
        match $acts {
            Acts::Q8(a) => match $t {
                QuantType::Q4_1 => $module::legacy::<Q4_1>($w, a, $m, $nb, $rows, $n, $out),
                QuantType::Q5_0 => $module::legacy::<Q5_0>($w, a, $m, $nb, $rows, $n, $out),
                QuantType::Q5_1 => $module::legacy::<Q5_1>($w, a, $m, $nb, $rows, $n, $out),
                QuantType::Q8_0 => $module::q8_0($w, a, $m, $nb, $rows, $n, $out),
                _ => $module::legacy::<Q4_0>($w, a, $m, $nb, $rows, $n, $out),
            },
            Acts::Q8K(a) if $t == QuantType::Q6K => $module::q6k($w, a, $m, $nb, $rows, $n, $out),
            Acts::Q8K(a) if $t == QuantType::Q5K => $module::q4k::<true>($w, a, $m, $nb, $rows, $n, $out),
            Acts::Q8K(a) => $module::q4k::<false>($w, a, $m, $nb, $rows, $n, $out),
        }
    };
}

/// Computes `out[i * n + r]` for the weight rows `r` in `rows` (whole groups) and activation
/// rows `i < m` of a packed matrix `w` (`nb` blocks per row): Q4_0 against Q8 activations or
/// Q4_K against Q8_K ones (`acts`). Returns false, doing nothing, if the CPU lacks AVX2, the
/// type has no kernel here or the lengths do not fit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn groups(
    backend: Backend,
    t: QuantType,
    w: &[u8],
    acts: Acts<'_>,
    m: usize,
    nb: usize,
    rows: Range<usize>,
    n: usize,
    out: &Disjoint<'_, f32>,
) -> bool {
    if !in_bounds(t, w, acts, m, nb, &rows, n, out.len()) || !crate::avx2::available() {
        return false;
    }
    // SAFETY: `is_available` checked the features each copy was compiled for (and `available`
    // the AVX2 base); `w` holds `rows.end / 8` groups of `nb` packed blocks and `acts` `m` rows
    // of `nb` blocks, so every pointer the kernels form stays inside them; outputs are
    // `< m * n <= out.len()`, in this task's own rows.
    unsafe { by_backend!(backend, run, t, w, acts, m, nb, rows, n, out) }
    true
}

/// A legacy type's packed block (see `packed::pack_legacy`).
trait Legacy {
    /// Bytes of one block index of a group.
    const BYTES: usize;
    /// The stored offsets `m[8]` follow the scales (Q4_1, Q5_1).
    const PAIRED: bool = false;
    /// The offset as a multiple of the scale when none is stored (Q4_0: -8, Q5_0: -16).
    const IMPLIED: f32 = 0.0;
    /// A fifth-bit plane follows (Q5_0, Q5_1).
    const FIFTH: bool = false;
    /// Where the quants start.
    const QUANTS: usize = 16 + if Self::PAIRED { 16 } else { 0 } + if Self::FIFTH { 32 } else { 0 };
}

struct Q4_0;
struct Q4_1;
struct Q5_0;
struct Q5_1;
struct Q8_0;

impl Legacy for Q4_0 {
    const BYTES: usize = 144;
    const IMPLIED: f32 = -8.0;
}
impl Legacy for Q4_1 {
    const BYTES: usize = 160;
    const PAIRED: bool = true;
}
impl Legacy for Q5_0 {
    const BYTES: usize = 176;
    const IMPLIED: f32 = -16.0;
    const FIFTH: bool = true;
}
impl Legacy for Q5_1 {
    const BYTES: usize = 192;
    const PAIRED: bool = true;
    const FIFTH: bool = true;
}
impl Legacy for Q8_0 {
    const BYTES: usize = 272;
}

/// Bit `e` of every byte of `h`, moved to bit 4 (the fifth bit of a 5-bit value).
///
/// 16-bit shifts by at most 4: the bit that lands on bit 4 of a byte comes from the same byte,
/// so the mask keeps exactly it. The shift count goes through a register rather than a `match`
/// on `e`: in a loop the compiler does not unroll, a `match` became a jump table (an indirect
/// jump per weight vector in the Q5_K kernel); with a constant `e` both fold to one immediate
/// shift.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fifth(h: __m256i, e: usize) -> __m256i {
    let m = _mm256_set1_epi8(0x10);
    let shifted = if e < 4 {
        _mm256_sll_epi16(h, _mm_cvtsi32_si128((4 - e) as i32))
    } else {
        _mm256_srl_epi16(h, _mm_cvtsi32_si128((e - 4) as i32))
    };
    _mm256_and_si256(shifted, m)
}

/// Q4_K's `Σ_s min_s × (block sum s)` for the 8 rows of the packed super-block at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_mins(p: *const u8, y: &BlockQ8K) -> __m256i {
    // SAFETY: `bsums` is 16 i16s; the sums of its pairs are the 8 sub-blocks'.
    let bs = unsafe {
        _mm_hadd_epi16(_mm_loadu_si128(y.bsums.as_ptr().cast()), _mm_loadu_si128(y.bsums.as_ptr().add(8).cast()))
    };
    let bs = _mm256_castsi128_si256(bs);
    let mut msum = _mm256_setzero_si256();
    for pi in 0..4 {
        // SAFETY: the caller's block holds 16 bytes of mins (sub-blocks 2pi, 2pi + 1 of each
        // row) at 96 + 16 pi.
        let mins = _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(p.add(96 + 16 * pi).cast()) });
        let pair = _mm256_permutevar8x32_epi32(bs, _mm256_set1_epi32(pi as i32));
        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mins, pair));
    }
    msum
}

/// 32 bytes at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The 4 bytes at `p` in every 32-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bcast4(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 4 readable bytes.
    _mm256_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() })
}

/// The 8 f16 values at `p` as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn halves8(p: *const u8) -> __m256 {
    // SAFETY: caller guarantees 16 readable bytes.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
}

/// Decode streams weights from DRAM: keep more misses in flight than the hardware prefetcher
/// alone. Every line of the block of `bytes` at `PREFETCH` past `p`, wherever it starts;
/// prefetches never fault.
#[inline(always)]
fn prefetch_block(p: *const u8, bytes: usize) {
    let mut o = 0;
    while o < bytes + 64 {
        // SAFETY: a prefetch reads nothing architecturally and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + o).cast()) };
        o += 64;
    }
}

/// Stores the tile's results: lane `r` of `res[c]` is `out[(i0 + c) * n + r0 + r]`.
#[inline(always)]
unsafe fn store8<const C: usize>(out: &Disjoint<'_, f32>, res: &[__m256; C], r0: usize, i0: usize, n: usize) {
    // SAFETY: this task owns weight rows `r0..r0 + 8` of every output row; the store writes
    // exactly 8 floats.
    unsafe { store_tile(out, res, (r0, i0, n, GROUP), |p, v| _mm256_storeu_ps(p, v)) }
}

/// AVX2: `s + maddubs(u, v)` in 16-bit lanes (the sums stay in range, see the module docs).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn acc_avx2(s: __m256i, u: __m256i, v: __m256i) -> __m256i {
    _mm256_add_epi16(s, _mm256_maddubs_epi16(u, v))
}

/// AVX2: `s + Σ` of the 4 byte products of each lane, in 32 bits (Q8_0's products are too
/// large to add in 16 bits).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn acc32_avx2(s: __m256i, u: __m256i, v: __m256i) -> __m256i {
    _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(u, v), _mm256_set1_epi16(1)))
}

/// AVX2: the 16-bit pair sums of each lane added into one i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fin_avx2(s: __m256i) -> __m256i {
    _mm256_madd_epi16(s, _mm256_set1_epi16(1))
}

/// AVX2: the 16-bit pair sums of lane `r`, added, times the byte `sc` of lane `r`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_avx2(s: __m256i, sc: __m256i) -> __m256i {
    _mm256_madd_epi16(s, _mm256_or_si256(sc, _mm256_slli_epi32::<16>(sc)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn acc_vnni512(s: __m256i, u: __m256i, v: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(s, u, v)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn acc_avxvnni(s: __m256i, u: __m256i, v: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(s, u, v)
}

/// AVX2: 16-bit pair sums of each lane times the lane's (scale, scale) 16-bit pair.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pairscale_avx2(s: __m256i, sc: __m256i) -> __m256i {
    _mm256_madd_epi16(s, sc)
}

/// VNNI: 32-bit sums times the scale of a (scale, scale) 16-bit pair.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pairscale_vnni(s: __m256i, sc: __m256i) -> __m256i {
    _mm256_mullo_epi32(s, _mm256_srai_epi32::<16>(sc))
}

/// VNNI: the sums are already 32-bit.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fin_vnni(s: __m256i) -> __m256i {
    s
}

/// VNNI: 32-bit sums times the byte `sc` of each lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_vnni(s: __m256i, sc: __m256i) -> __m256i {
    _mm256_mullo_epi32(s, sc)
}

/// The kernels, stamped out once per instruction set: `$feat` is the feature list, `$c0`, `$ck`
/// and `$c6` the activation rows per legacy-type (Q4_0 … Q8_0), Q4_K/Q5_K and Q6_K tile,
/// `$acc`/`$fin`/`$scale` the integer accumulation (see the functions above).
macro_rules! packed_kernels {
    ($module:ident, $feat:literal, $c0:expr, $ck:expr, $c6:expr, $acc:ident, $acc32:ident, $fin:ident, $scale:ident, $pairscale:ident) => {
        mod $module {
            use super::*;

            /// Every group of `rows` against every activation row, `C` at a time.
            #[allow(clippy::too_many_arguments)]
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn each<A, const C: usize>(
                acts: &[A],
                m: usize,
                nb: usize,
                rows: &Range<usize>,
                n: usize,
                out: &Disjoint<'_, f32>,
                tile: impl Fn(usize, &[*const A]) -> [__m256; C],
                one: impl Fn(usize, *const A) -> [__m256; 1],
            ) {
                let ap = |i: usize| acts.as_ptr().wrapping_add(i * nb);
                for g in rows.start / GROUP..rows.end / GROUP {
                    let mut i = 0;
                    while i + C <= m {
                        let a: [*const A; C] = std::array::from_fn(|c| ap(i + c));
                        // SAFETY: the caller's bounds (see `groups`).
                        unsafe { store8(out, &tile(g, &a), g * GROUP, i, n) };
                        i += C;
                    }
                    while i < m {
                        unsafe { store8(out, &one(g, ap(i)), g * GROUP, i, n) };
                        i += 1;
                    }
                }
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn legacy<B: Legacy>(
                w: &[u8],
                acts: &[BlockQ8],
                m: usize,
                nb: usize,
                rows: Range<usize>,
                n: usize,
                out: &Disjoint<'_, f32>,
            ) {
                let gp = |g: usize| w.as_ptr().wrapping_add(g * nb * B::BYTES);
                // SAFETY: the caller's bounds (see `groups`).
                let tile = |g, a: &[_]| unsafe { legacy_tile::<B, { $c0 }>(gp(g), std::array::from_fn(|c| a[c]), nb) };
                let one = |g, a| unsafe { legacy_tile::<B, 1>(gp(g), [a], nb) };
                unsafe { each::<BlockQ8, { $c0 }>(acts, m, nb, &rows, n, out, tile, one) }
            }

            /// One 4- or 5-bit legacy-type group × `C` activation rows (Q8_0: `q8_0_tile`).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn legacy_tile<B: Legacy, const C: usize>(
                g: *const u8,
                a: [*const BlockQ8; C],
                nb: usize,
            ) -> [__m256; C] {
                let mask = _mm256_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); C];
                for b in 0..nb {
                    // SAFETY: block index `b < nb` of a group of `nb`.
                    let p = unsafe { g.add(b * B::BYTES) };
                    if C == 1 {
                        prefetch_block(p, B::BYTES);
                    }
                    let d8 = unsafe { halves8(p) };
                    let q = unsafe { p.add(B::QUANTS) };
                    // 8 vectors of weights, lane r = 4 values of row r: the low nibbles (values
                    // 4k..) then the high ones (16 + 4k..).
                    let mut wv = [_mm256_setzero_si256(); 8];
                    let h = if B::FIFTH { unsafe { load32(p.add(B::QUANTS - 32)) } } else { mask };
                    for k in 0..4 {
                        let v = unsafe { load32(q.add(32 * k)) };
                        wv[k] = _mm256_and_si256(v, mask);
                        wv[k + 4] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
                        if B::FIFTH {
                            wv[k] = _mm256_or_si256(wv[k], fifth(h, k));
                            wv[k + 4] = _mm256_or_si256(wv[k + 4], fifth(h, k + 4));
                        }
                    }
                    for c in 0..C {
                        // SAFETY: block `b` of an activation row of `nb` blocks.
                        let y = unsafe { &*a[c].add(b) };
                        let yq = y.qs.as_ptr().cast::<u8>();
                        // Activation bytes for weight vector k: values 4k.. (k < 4: low
                        // nibbles) or 16 + 4(k - 4).. (high nibbles).
                        let yb = |k: usize| unsafe { bcast4(yq.add(4 * k)) };
                        let z = _mm256_setzero_si256();
                        let s = if B::FIFTH {
                            // 5-bit products: 16-bit sums of 4 vectors at most (4 × 7,874).
                            let lo = $acc($acc($acc($acc(z, wv[0], yb(0)), wv[1], yb(1)), wv[2], yb(2)), wv[3], yb(3));
                            let hi = $acc($acc($acc($acc(z, wv[4], yb(4)), wv[5], yb(5)), wv[6], yb(6)), wv[7], yb(7));
                            _mm256_add_epi32($fin(lo), $fin(hi))
                        } else {
                            let mut s = z;
                            for k in 0..8 {
                                s = $acc(s, wv[k], yb(k));
                            }
                            $fin(s)
                        };
                        let sf = _mm256_cvtepi32_ps(s);
                        if B::PAIRED {
                            let m8 = unsafe { halves8(p.add(16)) };
                            acc[c] = _mm256_fmadd_ps(d8, _mm256_mul_ps(sf, _mm256_set1_ps(y.d)), acc[c]);
                            acc[c] = _mm256_fmadd_ps(m8, _mm256_set1_ps(y.s), acc[c]);
                        } else {
                            // d_w (d_a Σ q q_a + IMPLIED s_a): the offset from the activation sum.
                            let t = _mm256_fmadd_ps(sf, _mm256_set1_ps(y.d), _mm256_set1_ps(B::IMPLIED * y.s));
                            acc[c] = _mm256_fmadd_ps(d8, t, acc[c]);
                        }
                    }
                }
                acc
            }

            /// Q8_0 (signed 8-bit quants: a tile of its own, see `q8_0_tile`).
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn q8_0(
                w: &[u8],
                acts: &[BlockQ8],
                m: usize,
                nb: usize,
                rows: Range<usize>,
                n: usize,
                out: &Disjoint<'_, f32>,
            ) {
                let gp = |g: usize| w.as_ptr().wrapping_add(g * nb * Q8_0::BYTES);
                // SAFETY: the caller's bounds (see `groups`).
                let tile = |g, a: &[_]| unsafe { q8_0_tile::<{ $c0 }>(gp(g), std::array::from_fn(|c| a[c]), nb) };
                let one = |g, a| unsafe { q8_0_tile::<1>(gp(g), [a], nb) };
                unsafe { each::<BlockQ8, { $c0 }>(acts, m, nb, &rows, n, out, tile, one) }
            }

            /// One Q8_0 group × `C` activation rows, weight vector by weight vector: each of
            /// the 8 vectors is loaded, its absolute values taken once, and its signs moved onto
            /// each row's 4 broadcast activation bytes; `C` 32-bit sums live in registers (the
            /// 8 vectors' weights and signs held for the whole block would need all 16).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q8_0_tile<const C: usize>(g: *const u8, a: [*const BlockQ8; C], nb: usize) -> [__m256; C] {
                let mut acc = [_mm256_setzero_ps(); C];
                for b in 0..nb {
                    // SAFETY: block index `b < nb` of a group of `nb` (272 bytes: 8 f16 scales,
                    // 8 vectors of 32 quants).
                    let p = unsafe { g.add(b * Q8_0::BYTES) };
                    if C == 1 {
                        prefetch_block(p, Q8_0::BYTES);
                    }
                    let q = unsafe { p.add(Q8_0::QUANTS) };
                    // SAFETY: block `b` of each activation row of `nb` blocks.
                    let y: [&BlockQ8; C] = std::array::from_fn(|c| unsafe { &*a[c].add(b) });
                    let mut s = [_mm256_setzero_si256(); C];
                    for k in 0..8 {
                        let sx = unsafe { load32(q.add(32 * k)) };
                        let wv = _mm256_sign_epi8(sx, sx);
                        for c in 0..C {
                            let yb = unsafe { bcast4(y[c].qs.as_ptr().cast::<u8>().add(4 * k)) };
                            s[c] = $acc32(s[c], wv, _mm256_sign_epi8(yb, sx));
                        }
                    }
                    let d8 = unsafe { halves8(p) };
                    for c in 0..C {
                        let t = _mm256_mul_ps(_mm256_cvtepi32_ps(s[c]), _mm256_set1_ps(y[c].d));
                        acc[c] = _mm256_fmadd_ps(d8, t, acc[c]);
                    }
                }
                acc
            }

            /// Q4_K, or with `FIVE` Q5_K (the same block plus a plane of fifth bits).
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn q4k<const FIVE: bool>(
                w: &[u8],
                acts: &[BlockQ8K],
                m: usize,
                nb: usize,
                rows: Range<usize>,
                n: usize,
                out: &Disjoint<'_, f32>,
            ) {
                let bytes = if FIVE { 1440 } else { 1184 };
                let gp = |g: usize| w.as_ptr().wrapping_add(g * nb * bytes);
                // SAFETY: the caller's bounds (see `groups`).
                let tile = |g, a: &[_]| unsafe { q4k_tile::<FIVE, { $ck }>(gp(g), std::array::from_fn(|c| a[c]), nb) };
                let one = |g, a| unsafe { q4k_tile::<FIVE, 1>(gp(g), [a], nb) };
                unsafe { each::<BlockQ8K, { $ck }>(acts, m, nb, &rows, n, out, tile, one) }
            }

            /// One Q4_K (Q5_K) group × `C` activation rows: per pair of sub-blocks, 8 loads of
            /// weights whose low nibbles are sub-block `2j` and high nibbles `2j + 1` (with
            /// Q5_K, their fifth bits from two more loads); the sub-block sums times their
            /// 6-bit scales in 32 bits, the mins from the activations' block sums.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q4k_tile<const FIVE: bool, const C: usize>(
                g: *const u8,
                a: [*const BlockQ8K; C],
                nb: usize,
            ) -> [__m256; C] {
                let bytes = if FIVE { 1440 } else { 1184 };
                let mask = _mm256_set1_epi8(0x0F);
                let mut acc = [_mm256_setzero_ps(); C];
                for b in 0..nb {
                    // SAFETY: super-block index `b < nb` of a group of `nb`.
                    let p = unsafe { g.add(b * bytes) };
                    let ys: [&BlockQ8K; C] = std::array::from_fn(|c| unsafe { &*a[c].add(b) });
                    let mut isum = [_mm256_setzero_si256(); C];
                    for j in 0..4 {
                        // SAFETY: the 8 scale bytes of sub-blocks 2j and 2j + 1.
                        let sc = |s: usize| _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(p.add(32 + 8 * s).cast()) });
                        let (sc_lo, sc_hi) = (sc(2 * j), sc(2 * j + 1));
                        let (h0, h1) = if FIVE {
                            unsafe { (load32(p.add(1184 + 64 * j)), load32(p.add(1184 + 64 * j + 32))) }
                        } else {
                            (mask, mask)
                        };
                        let mut slo = [_mm256_setzero_si256(); C];
                        let mut shi = [_mm256_setzero_si256(); C];
                        for k in 0..8 {
                            let wp = unsafe { p.add(160 + 256 * j + 32 * k) };
                            if C == 1 && k % 2 == 0 {
                                _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(PREFETCH).cast());
                                if FIVE && k == 0 {
                                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + 1184 + 64 * j).cast());
                                }
                            }
                            let v = unsafe { load32(wp) };
                            let mut lo = _mm256_and_si256(v, mask);
                            let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
                            if FIVE {
                                lo = _mm256_or_si256(lo, fifth(h0, k));
                                hi = _mm256_or_si256(hi, fifth(h1, k));
                            }
                            for c in 0..C {
                                let q = ys[c].qs.as_ptr().cast::<u8>();
                                slo[c] = $acc(slo[c], lo, unsafe { bcast4(q.add(64 * j + 4 * k)) });
                                shi[c] = $acc(shi[c], hi, unsafe { bcast4(q.add(64 * j + 32 + 4 * k)) });
                            }
                            // 5-bit products: 16-bit sums of 4 vectors at most (4 × 7,874).
                            if k == 7 || (FIVE && k == 3) {
                                for c in 0..C {
                                    let both = _mm256_add_epi32($scale(slo[c], sc_lo), $scale(shi[c], sc_hi));
                                    isum[c] = _mm256_add_epi32(isum[c], both);
                                    slo[c] = _mm256_setzero_si256();
                                    shi[c] = _mm256_setzero_si256();
                                }
                            }
                        }
                    }
                    let d8 = unsafe { halves8(p) };
                    let dm8 = unsafe { halves8(p.add(16)) };
                    for c in 0..C {
                        let y = ys[c];
                        let msum = unsafe { q4k_mins(p, y) };
                        let yd = _mm256_set1_ps(y.d);
                        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(d8, yd), acc[c]);
                        acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dm8, yd), acc[c]);
                    }
                }
                acc
            }

            #[target_feature(enable = $feat)]
            pub(super) unsafe fn q6k(
                w: &[u8],
                acts: &[BlockQ8K],
                m: usize,
                nb: usize,
                rows: Range<usize>,
                n: usize,
                out: &Disjoint<'_, f32>,
            ) {
                let gp = |g: usize| w.as_ptr().wrapping_add(g * nb * 1680);
                // SAFETY: the caller's bounds (see `groups`).
                let tile = |g, a: &[_]| unsafe { q6k_tile::<{ $c6 }>(gp(g), std::array::from_fn(|c| a[c]), nb) };
                let one = |g, a| unsafe { q6k_tile::<1>(gp(g), [a], nb) };
                unsafe { each::<BlockQ8K, { $c6 }>(acts, m, nb, &rows, n, out, tile, one) }
            }

            /// One Q6_K group × `C` activation rows, 32 values (two 16-value sub-blocks) at a
            /// time: 4 loads of nibbles and 2 of high bits make the 8 vectors of 6-bit values;
            /// each sub-block's sums times its 8 rows' scales; the `-32` offset from the
            /// activations' block sums times the same scales.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q6k_tile<const C: usize>(g: *const u8, a: [*const BlockQ8K; C], nb: usize) -> [__m256; C] {
                let m4 = _mm256_set1_epi8(0x0F);
                let m30 = _mm256_set1_epi8(0x30);
                let mut acc = [_mm256_setzero_ps(); C];
                for b in 0..nb {
                    // SAFETY: super-block index `b < nb` of a group of `nb`.
                    let p = unsafe { g.add(b * 1680) };
                    let ys: [&BlockQ8K; C] = std::array::from_fn(|c| unsafe { &*a[c].add(b) });
                    let mut isum = [_mm256_setzero_si256(); C];
                    for t in 0..8 {
                        let q = unsafe { p.add(144 + 192 * t) };
                        if C == 1 {
                            _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(PREFETCH).cast());
                            _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(PREFETCH + 64).cast());
                            _mm_prefetch::<_MM_HINT_T0>(q.wrapping_add(PREFETCH + 128).cast());
                        }
                        // SAFETY: 16 scale bytes of sub-blocks 2t and 2t + 1, lane r = row r.
                        let pair = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(p.add(16 + 16 * t).cast()) });
                        // Sub-block 2t from the low nibbles and the first high-bit load, then
                        // 2t + 1 from the high nibbles and the second: 4 weight vectors live.
                        for half in 0..2 {
                            let h = unsafe { load32(q.add(128 + 32 * half)) };
                            let sc = if half == 0 {
                                _mm256_shufflehi_epi16::<0xA0>(_mm256_shufflelo_epi16::<0xA0>(pair))
                            } else {
                                _mm256_shufflehi_epi16::<0xF5>(_mm256_shufflelo_epi16::<0xF5>(pair))
                            };
                            let w: [__m256i; 4] = std::array::from_fn(|i| {
                                let v = unsafe { load32(q.add(32 * i)) };
                                let nib = if half == 0 { v } else { _mm256_srli_epi16::<4>(v) };
                                // The top 2 bits of vector `i` moved to bits 4..6 of each byte
                                // (a shift count in a register, as in `fifth`).
                                let top = if i < 2 {
                                    _mm256_sll_epi16(h, _mm_cvtsi32_si128((4 - 2 * i) as i32))
                                } else {
                                    _mm256_srl_epi16(h, _mm_cvtsi32_si128((2 * i - 4) as i32))
                                };
                                _mm256_or_si256(_mm256_and_si256(nib, m4), _mm256_and_si256(top, m30))
                            });
                            for c in 0..C {
                                let y = unsafe { ys[c].qs.as_ptr().cast::<u8>().add(32 * t + 16 * half) };
                                let yb = |o: usize| unsafe { bcast4(y.add(o)) };
                                let z = _mm256_setzero_si256();
                                let s0 = $acc($acc(z, w[0], yb(0)), w[1], yb(4));
                                let s1 = $acc($acc(z, w[2], yb(8)), w[3], yb(12));
                                let x = _mm256_add_epi32($pairscale(s0, sc), $pairscale(s1, sc));
                                isum[c] = _mm256_add_epi32(isum[c], x);
                            }
                        }
                    }
                    let d8 = unsafe { halves8(p) };
                    for c in 0..C {
                        // The `-32` of every value: 32 Σ_s scale_s × (block sum s).
                        let mut msum = _mm256_setzero_si256();
                        for t in 0..8 {
                            // SAFETY: as above; block sums 2t and 2t + 1 (of 16).
                            let pair = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(p.add(16 + 16 * t).cast()) });
                            let bs = unsafe { bcast4(ys[c].bsums.as_ptr().add(2 * t).cast()) };
                            msum = _mm256_add_epi32(msum, _mm256_madd_epi16(pair, bs));
                        }
                        let sum = _mm256_sub_epi32(isum[c], _mm256_slli_epi32::<5>(msum));
                        let scale = _mm256_mul_ps(d8, _mm256_set1_ps(ys[c].d));
                        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[c]);
                    }
                }
                acc
            }
        }
    };
}

packed_kernels!(plain, "avx2,fma,f16c", 4, 4, 4, acc_avx2, acc32_avx2, fin_avx2, scale_avx2, pairscale_avx2);
packed_kernels!(
    avxvnni,
    "avx2,fma,f16c,avxvnni",
    4,
    4,
    4,
    acc_avxvnni,
    acc_avxvnni,
    fin_vnni,
    scale_vnni,
    pairscale_vnni
);
packed_kernels!(
    vnni512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    8,
    8,
    8,
    acc_vnni512,
    acc_vnni512,
    fin_vnni,
    scale_vnni,
    pairscale_vnni
);

/// [`acc_vnni512`] on the emulated `vpdpbusd` (tests only; see `crate::avx2::dpbusd_avx2`).
#[cfg(test)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn acc_emulated(s: __m256i, u: __m256i, v: __m256i) -> __m256i {
    crate::avx2::dpbusd_avx2(s, u, v)
}

// The two VNNI copies again, on AVX2 with the emulated instruction: their 32-bit sums,
// scales and tile widths run in the tests on every AVX2 machine.
#[cfg(test)]
packed_kernels!(
    avxvnni_emulated,
    "avx2,fma,f16c",
    4,
    4,
    4,
    acc_emulated,
    acc_emulated,
    fin_vnni,
    scale_vnni,
    pairscale_vnni
);
#[cfg(test)]
packed_kernels!(
    vnni512_emulated,
    "avx2,fma,f16c",
    8,
    8,
    8,
    acc_emulated,
    acc_emulated,
    fin_vnni,
    scale_vnni,
    pairscale_vnni
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act;
    use crate::packed::{pack, packed_len};

    /// Packed weights of type `t` (`n` rows × `k`), and activations quantized for it.
    fn case(t: QuantType, n: usize, k: usize, m: usize, seed: u64) -> (Vec<u8>, Vec<BlockQ8>, Vec<BlockQ8K>) {
        let mut next = crate::xorshift(seed);
        let w: Vec<f32> = (0..n * k).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
        let a: Vec<f32> = (0..m * k).map(|_| (next() % 2001) as f32 / 500.0 - 2.0).collect();
        let mut plain = vec![0u8; n * t.row_bytes(k).unwrap()];
        zoo_ggml::quant::quantize_row(t, &w, &mut plain).unwrap();
        let mut packed = vec![0u8; packed_len(t, n, k).unwrap()];
        pack(t, &plain, n, k, &mut packed).unwrap();
        let mut q8 = vec![BlockQ8::ZERO; m * k / 32];
        act::quantize_q8(&a, &mut q8);
        let mut q8k = vec![BlockQ8K::ZERO; m * k / 256];
        act::quantize_q8k(&a, &mut q8k);
        (packed, q8, q8k)
    }

    /// The AVX-VNNI and AVX512-VNNI copies' arithmetic (32-bit sums, their scaling, the 8-row
    /// tiles of the AVX-512 copy), run on the emulated instruction: the same outputs as the
    /// AVX2 copy for every packed type, for decode and for prompts of every ragged tile edge.
    /// (On CPUs with VNNI the matrix tests also run the real copies against the reference.)
    #[test]
    fn the_vnni_copies_compute_what_the_avx2_copy_does() {
        if !crate::avx2::available() {
            return;
        }
        let k = 512;
        for t in QuantType::ALL {
            if packed_len(t, 8, k).is_none() {
                continue;
            }
            for (n, m) in [(8, 1), (16, 3), (8, 8), (24, 9), (16, 17)] {
                let (w, q8, q8k) = case(t, n, k, m, 0x5eed + n as u64 * 31 + m as u64);
                let acts = if matches!(t, QuantType::Q4K | QuantType::Q5K | QuantType::Q6K) {
                    Acts::Q8K(&q8k)
                } else {
                    Acts::Q8(&q8)
                };
                let nb = k / t.block_size();
                let outputs: Vec<Vec<f32>> = (0..3)
                    .map(|copy| {
                        let mut out = vec![f32::NAN; m * n];
                        let d = Disjoint::new(&mut out);
                        // SAFETY: AVX2 checked above (the emulated copies need nothing more);
                        // `w` holds `n / 8` groups of `nb` blocks, the activations `m` rows of
                        // `nb` blocks, `out` `m × n` values.
                        unsafe {
                            match copy {
                                0 => run!(plain, t, &w, acts, m, nb, 0..n, n, &d),
                                1 => run!(avxvnni_emulated, t, &w, acts, m, nb, 0..n, n, &d),
                                _ => run!(vnni512_emulated, t, &w, acts, m, nb, 0..n, n, &d),
                            }
                        }
                        out
                    })
                    .collect();
                let avx2 = &outputs[0];
                assert!(avx2.iter().all(|v| v.is_finite()), "{t} {n}×{m}: AVX2 left outputs unwritten");
                for (name, other) in [("AVX-VNNI", &outputs[1]), ("AVX512-VNNI", &outputs[2])] {
                    for (i, (a, b)) in avx2.iter().zip(other).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                            "{t} {n}×{m} output {i}: AVX2 {a}, {name} {b}"
                        );
                    }
                }
            }
        }
    }

    /// The SIMD kernels take every packed type (the matrix tests would also pass on the
    /// portable fallback, so this checks that the fast path is the one that ran).
    #[test]
    fn every_packed_type_has_a_kernel_on_every_backend() {
        let (n, k, m) = (16, 512, 3);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let mut q8 = vec![BlockQ8::ZERO; m * k / 32];
        act::quantize_q8(&x, &mut q8);
        let mut q8k = vec![BlockQ8K::ZERO; m * k / 256];
        act::quantize_q8k(&x, &mut q8k);
        for t in QuantType::ALL {
            let Some(len) = packed_len(t, n, k) else { continue };
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 997) as f32 / 997.0 - 0.5).collect();
            let mut plain = vec![0u8; n * t.row_bytes(k).unwrap()];
            zoo_ggml::quant::quantize_row(t, &w, &mut plain).unwrap();
            let mut packed = vec![0u8; len];
            pack(t, &plain, n, k, &mut packed).unwrap();
            let acts = if matches!(t, QuantType::Q4K | QuantType::Q5K | QuantType::Q6K) {
                Acts::Q8K(&q8k)
            } else {
                Acts::Q8(&q8)
            };
            let nb = k / t.block_size();
            for backend in Backend::ALL.into_iter().filter(|b| b.is_x86() && b.is_available()) {
                let mut out = vec![f32::NAN; m * n];
                let ran = groups(backend, t, &packed, acts, m, nb, 0..n, n, &Disjoint::new(&mut out));
                assert!(ran, "{t} {backend:?}: no SIMD kernel ran");
                assert!(out.iter().all(|v| v.is_finite()), "{t} {backend:?}: outputs left unwritten");
            }
        }
    }
}

//! 512-bit prompt kernels for every packed type on AVX512-VNNI CPUs (and the bands that
//! [`super::amx`] multiplies on AMX CPUs).
//!
//! The 256-bit kernels in [`super::avx2`] split nibbles and fifth or sixth bits inside the
//! tile, again for every 4 or 8 activation rows; on a Q5_K or Q6_K matrix that is more
//! instructions than the products themselves. Here a prompt's product goes in two passes per
//! band of [`BAND`] (16) weight rows, the two packed groups side by side in the two halves of
//! a 512-bit vector:
//!
//! 1. **unpack** the band's super-blocks once per call into a thread-local buffer (a set of
//!    bands of about [`SET_BYTES`] at a time, in L2), one byte per weight (0..16, 0..32 or 0..64, unsigned), in the order `[4 values]
//!    [16 rows]` so that one aligned 64-byte load holds 4 consecutive values of each of the 16
//!    rows; with them, per super-block, each sub-block's scales as 16 `i32`s, the terms the
//!    activations' 16 block sums multiply (Q4_K/Q5_K: the sub-block's min, twice; Q6_K:
//!    `32 × scale`, for the `-32` of every value) as `i16` pairs, and the rows' `d` and `dmin`
//!    as `f32`;
//! 2. **multiply** tiles of [`TILE`] (8) activation rows against the band: per 4 values, one
//!    load of weights and one `vpdpbusd` per activation row with its 4 bytes broadcast (an
//!    embedded broadcast from memory); each sub-block's 32-bit sums times its scales
//!    (`vpmulld`), the block sums' term by `vpmaddwd`, and one f32 update per super-block.
//!
//! The integer sums are exactly those of [`super::avx2`] and the reference (`crate::scalar`);
//! only the order of the final f32 operations differs. Used from [`super::WIDE_MIN_ROWS`] activation rows
//! on (below, the tile kernels' in-register unpacking costs less than the buffer).
//!
//! Safety model as in [`super::avx2`]: the `unsafe fn`s need AVX-512 F/BW/VL and VNNI (the
//! entry point checks) and pointers valid for what they read (the entry point checks lengths).

#![allow(clippy::indexing_slicing)]

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;

use crate::act::{BlockQ8, BlockQ8K};
use crate::matmul::{Disjoint, with_scratch};
use crate::packed::{Acts, GROUP, group_block_bytes, in_bounds, store_tile};
use crate::{Backend, QuantType};

/// Weight rows per band: two packed groups, one per 256-bit half.
pub(crate) const BAND: usize = 2 * GROUP;
/// Activation rows per tile: 8 × 3 accumulators (sub-block, super-block, f32) of 32 registers.
const TILE: usize = 8;
/// Bytes of unpacked bands to hold at once (in L2, with one tile's activation rows): each
/// band is unpacked once per call, and each tile's rows are read once per set of bands.
const SET_BYTES: usize = 384 * 1024;

/// One 64-byte line of the unpacked band (aligned, so each load is one line).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line([u8; 64]);

thread_local! {
    /// The activations' 32-value sums in `i16` pairs, for [`super::amx::kquant`].
    static BSUM_PAIRS: RefCell<Vec<[i32; 4]>> = const { RefCell::new(Vec::new()) };
    /// The unpacked band of the current call.
    static BAND_LINES: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Lines of one unpacked block of `t`: a k-quant super-block has 64 of weights, one of scales
/// per sub-block (8, or 16 for Q6_K), 8 of block-sum terms (one `i16` pair per row for each two
/// 16-value halves), `d` and `dmin`; a legacy block 8 of weights, `d` and the offset term.
fn lines(t: QuantType) -> usize {
    match t {
        QuantType::Q6K => k_lines(16),
        QuantType::Q4K | QuantType::Q5K => k_lines(8),
        _ => 8 + 2,
    }
}

/// Lines of an unpacked k-quant super-block of `nsub` sub-blocks: 64 of weights, `nsub` of
/// scales, 8 of block-sum terms, `d` and `dmin`.
pub(crate) const fn k_lines(nsub: usize) -> usize {
    64 + nsub + 8 + 2
}

/// Lines per k-quant super-block of the folded weights (`fold`): 64 of low parts, 64 of high,
/// and (Q4_K, Q5_K) 4 of minimums as `i16` pairs of sub-blocks `2q`, `2q + 1`.
pub(crate) const FOLDED_LINES: usize = 132;

/// For [`super::amx`]: writes, after a band's `nb` unpacked k-quant super-blocks at `band`,
/// each weight times its sub-block's scale less `off` times it (Q6_K's `−32`), `w = 128 h + l`
/// split into `l` in 0..128 and a signed `h` (`|w| < 2^13`, so both are bytes): line `i` of a
/// super-block's 128 folded lines holds the `l` of its weight line `i`, line `64 + i` the `h`.
/// The products `Σ a × l` and `Σ a × h` then sum a whole super-block exactly, with no scaling
/// per sub-block. For 8 sub-blocks (Q4_K, Q5_K), lines `128 + q` hold each row's minimums of
/// sub-blocks `2q` and `2q + 1` as an `i16` pair, for the activations' 32-value sums.
///
/// # Safety
/// `band` holds `nb × (k_lines(NSUB) + FOLDED_LINES)` lines, the first `nb × k_lines(NSUB)`
/// unpacked.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn fold<const NSUB: usize>(band: *mut Line, nb: usize, off: i16) {
    let per_sub = 64 / NSUB;
    let kl = k_lines(NSUB);
    // i16 lane 4r + j takes row r's scale: rows 0..8 for the low 32 bytes, 8..16 for the high.
    let idx_lo = _mm512_set_epi16(
        7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0,
    );
    let idx_hi = _mm512_add_epi16(idx_lo, _mm512_set1_epi16(8));
    let (offv, m127) = (_mm512_set1_epi16(off), _mm512_set1_epi16(127));
    for b in 0..nb {
        // SAFETY: super-block b's lines and its folded lines are in the band (caller).
        unsafe {
            let p = band.add(b * kl).cast::<__m512i>();
            let f = band.add(nb * kl + b * FOLDED_LINES).cast::<__m512i>();
            for s in 0..NSUB {
                let sc = _mm512_castsi256_si512(_mm512_cvtepi32_epi16(_mm512_load_si512(p.add(64 + s))));
                let (s_lo, s_hi) = (_mm512_permutexvar_epi16(idx_lo, sc), _mm512_permutexvar_epi16(idx_hi, sc));
                for l in s * per_sub..(s + 1) * per_sub {
                    let q = _mm512_load_si512(p.add(l));
                    let w0 = _mm512_mullo_epi16(
                        _mm512_sub_epi16(_mm512_cvtepu8_epi16(_mm512_castsi512_si256(q)), offv),
                        s_lo,
                    );
                    let w1 = _mm512_mullo_epi16(
                        _mm512_sub_epi16(_mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(q)), offv),
                        s_hi,
                    );
                    let bytes = |v0: __m512i, v1: __m512i| {
                        _mm512_inserti64x4::<1>(
                            _mm512_castsi256_si512(_mm512_cvtepi16_epi8(v0)),
                            _mm512_cvtepi16_epi8(v1),
                        )
                    };
                    _mm512_store_si512(f.add(l), bytes(_mm512_and_si512(w0, m127), _mm512_and_si512(w1, m127)));
                    _mm512_store_si512(f.add(64 + l), bytes(_mm512_srai_epi16::<7>(w0), _mm512_srai_epi16::<7>(w1)));
                }
            }
            if NSUB == 8 {
                // Lines 64 + 8 + 2q and + 1 hold the minimum of sub-block 2q (2q + 1) twice.
                for q in 0..4 {
                    let (even, odd) = (_mm512_load_si512(p.add(72 + 2 * q)), _mm512_load_si512(p.add(73 + 2 * q)));
                    _mm512_store_si512(f.add(128 + q), _mm512_mask_blend_epi16(0xAAAA_AAAA, even, odd));
                }
            }
        }
    }
}

/// A tile kernel over unpacked bands, for one kind of activation block.
trait Kernel {
    type Act;
    /// One band × `C` activation rows over all `nb` blocks.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL + VNNI; `band` holds `nb` unpacked blocks and each `a[c]` `nb` blocks.
    unsafe fn tile<const C: usize>(band: *const Line, a: [*const Self::Act; C], nb: usize) -> [__m512; C];
}

/// Q4_K and Q5_K (8 sub-blocks) or Q6_K (16).
struct KQuant<const NSUB: usize>;
/// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
struct Legacy;

impl<const NSUB: usize> Kernel for KQuant<NSUB> {
    type Act = BlockQ8K;
    #[inline(always)]
    unsafe fn tile<const C: usize>(band: *const Line, a: [*const BlockQ8K; C], nb: usize) -> [__m512; C] {
        // SAFETY: the caller's (see the trait).
        unsafe { k_tile::<NSUB, C>(band, a, nb) }
    }
}

impl Kernel for Legacy {
    type Act = BlockQ8;
    #[inline(always)]
    unsafe fn tile<const C: usize>(band: *const Line, a: [*const BlockQ8; C], nb: usize) -> [__m512; C] {
        // SAFETY: the caller's (see the trait).
        unsafe { legacy_tile::<C>(band, a, nb) }
    }
}

/// Computes `out[i * n + r]` for the weight rows `r` in `rows` (whole groups) and activation
/// rows `i < m` of a packed matrix `w` of `t` (`nb` blocks per row), against `acts` (Q8_K
/// blocks for the k-quants, Q8 for the rest). Returns false, doing nothing, if the CPU lacks
/// AVX512-VNNI, the activations do not suit `t` or the lengths do not fit; an odd last group
/// goes through [`super::avx2::groups`].
///
/// If `amx` (the caller passes [`super::amx::available`]; tests force either) and there are at
/// least [`super::amx::MIN_ROWS`] activation rows, the rows in whole tiles of 16 go through
/// [`super::amx`] (the k-quants' bands with their folded lines, `fold`), the rest through the
/// tiles here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rows(
    amx: bool,
    t: QuantType,
    w: &[u8],
    acts: Acts<'_>,
    m: usize,
    nb: usize,
    rows: Range<usize>,
    n: usize,
    out: &Disjoint<'_, f32>,
) -> bool {
    let Some(gb) = group_block_bytes(t) else { return false };
    if !in_bounds(t, w, acts, m, nb, &rows, n, out.len()) || nb == 0 || !Backend::Vnni512.is_available() {
        return false;
    }
    let bands = (rows.end - rows.start) / BAND;
    // With AMX, the k-quants' bands also hold their weights times their scales (`fold`).
    let kquant = matches!(t, QuantType::Q4K | QuantType::Q5K | QuantType::Q6K);
    let folded = kquant && amx && m >= super::amx::MIN_ROWS;
    let band_lines = nb * (lines(t) + if folded { FOLDED_LINES } else { 0 });
    // AMX multiplies bands in pairs: an even count per set (a lone band would repeat itself).
    let fit = SET_BYTES / (band_lines * 64);
    let per_set = if amx { fit.max(2).next_multiple_of(2) } else { fit }.clamp(1, bands.max(1));
    // Q4_K/Q5_K through AMX: each activation super-block's 32-value sums as `i16` pairs.
    let pairs_len = if folded && t != QuantType::Q6K { m * nb } else { 0 };
    with_scratch(&BSUM_PAIRS, pairs_len, [0; 4], |pairs| {
        if let Acts::Q8K(a) = acts {
            for (p, y) in pairs.iter_mut().zip(a) {
                *p = std::array::from_fn(|q| {
                    let s = |i: usize| i32::from(y.bsums[i]);
                    (s(4 * q) + s(4 * q + 1)) & 0xFFFF | (s(4 * q + 2) + s(4 * q + 3)) << 16
                });
            }
        }
        let pairs: &[[i32; 4]] = pairs;
        with_scratch(&BAND_LINES, per_set * band_lines, Line([0; 64]), |buf| {
            let mut b0 = 0;
            while b0 < bands {
                let set = per_set.min(bands - b0);
                let r0 = rows.start + b0 * BAND;
                // SAFETY: AVX512-VNNI checked above; the groups of bands `b0..b0 + set` are whole
                // in `w` (`fits`), `buf` holds `set` unpacked bands of `nb` blocks, the
                // activations `m` rows of `nb` blocks, and outputs stay below `m * n`, in this
                // task's rows.
                unsafe {
                    for j in 0..set {
                        let g = w.as_ptr().add((r0 / GROUP + 2 * j) * nb * gb);
                        let dst = buf.as_mut_ptr().add(j * band_lines);
                        match t {
                            QuantType::Q6K => unpack_q6k(g, g.add(nb * gb), nb, dst),
                            QuantType::Q5K => unpack_q4k::<true>(g, g.add(nb * gb), nb, dst),
                            QuantType::Q4K => unpack_q4k::<false>(g, g.add(nb * gb), nb, dst),
                            _ => unpack_legacy(t, g, g.add(nb * gb), nb, dst),
                        }
                        if folded && t == QuantType::Q6K {
                            fold::<16>(dst, nb, 32);
                        } else if folded {
                            fold::<8>(dst, nb, 0);
                        }
                    }
                    let set = Set { lines: buf.as_ptr(), bands: set, band_lines, r0 };
                    let amx_rows = m >= super::amx::MIN_ROWS && amx;
                    match acts {
                        Acts::Q8K(a) if t == QuantType::Q6K => {
                            let i = if folded { super::amx::kquant::<16>(&set, a, &[], m, nb, n, out) } else { 0 };
                            tiles::<KQuant<16>>(&set, a, i, m, nb, n, out)
                        }
                        Acts::Q8K(a) => {
                            let i = if folded { super::amx::kquant::<8>(&set, a, pairs, m, nb, n, out) } else { 0 };
                            tiles::<KQuant<8>>(&set, a, i, m, nb, n, out)
                        }
                        Acts::Q8(a) => {
                            let i = if amx_rows { super::amx::legacy(&set, a, m, nb, n, out) } else { 0 };
                            tiles::<Legacy>(&set, a, i, m, nb, n, out)
                        }
                    }
                }
                b0 += set;
            }
        });
    });
    if (rows.end - rows.start) / GROUP % 2 == 1 {
        let last = rows.end - GROUP..rows.end;
        return super::avx2::groups(Backend::Vnni512, t, w, acts, m, nb, last, n, out);
    }
    true
}

/// Unpacked bands side by side: `bands` of `band_lines` lines from `lines`, for weight rows
/// `r0..r0 + 16 × bands`.
pub(crate) struct Set {
    lines: *const Line,
    pub(crate) bands: usize,
    band_lines: usize,
    pub(crate) r0: usize,
}

impl Set {
    /// The first line of band `j`.
    pub(crate) fn band(&self, j: usize) -> *const Line {
        self.lines.wrapping_add(j * self.band_lines)
    }
}

/// Activation rows `i0..m` against a set of unpacked bands: tiles of 8 rows, then of 4, then
/// single rows, each tile against every band of the set while its rows are in cache.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tiles<K: Kernel>(
    set: &Set,
    acts: &[K::Act],
    i0: usize,
    m: usize,
    nb: usize,
    n: usize,
    out: &Disjoint<'_, f32>,
) {
    let ap = |i: usize| acts.as_ptr().wrapping_add(i * nb);
    let band = |j: usize| set.band(j);
    let mut i = i0;
    // SAFETY (all three): the caller's bounds; `store` checks the output range.
    while i + TILE <= m {
        let a: [_; TILE] = std::array::from_fn(|c| ap(i + c));
        for j in 0..set.bands {
            unsafe { store(out, &K::tile::<TILE>(band(j), a, nb), set.r0 + j * BAND, i, n) };
        }
        i += TILE;
    }
    while i + 4 <= m {
        let a: [_; 4] = std::array::from_fn(|c| ap(i + c));
        for j in 0..set.bands {
            unsafe { store(out, &K::tile::<4>(band(j), a, nb), set.r0 + j * BAND, i, n) };
        }
        i += 4;
    }
    while i < m {
        for j in 0..set.bands {
            unsafe { store(out, &K::tile::<1>(band(j), [ap(i)], nb), set.r0 + j * BAND, i, n) };
        }
        i += 1;
    }
}

/// Stores a tile's results: lane `r` of `res[c]` is `out[(i + c) * n + r0 + r]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn store<const C: usize>(out: &Disjoint<'_, f32>, res: &[__m512; C], r0: usize, i: usize, n: usize) {
    // SAFETY: this task owns weight rows `r0..r0 + 16` of every output row; the store writes
    // exactly 16 floats.
    unsafe { store_tile(out, res, (r0, i, n, BAND), |p, v| _mm512_storeu_ps(p, v)) }
}

/// One k-quant band × `C` activation rows over all `nb` super-blocks (see the module docs).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn k_tile<const NSUB: usize, const C: usize>(
    band: *const Line,
    a: [*const BlockQ8K; C],
    nb: usize,
) -> [__m512; C] {
    let per_sub = 64 / NSUB;
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        // SAFETY: super-block `b < nb` of the band and of each activation row.
        let p = unsafe { band.add(b * k_lines(NSUB)) }.cast::<__m512i>();
        let ys: [&BlockQ8K; C] = std::array::from_fn(|c| unsafe { &*a[c].add(b) });
        let mut itot = [_mm512_setzero_si512(); C];
        for s in 0..NSUB {
            let mut isub = [_mm512_setzero_si512(); C];
            for g in 0..per_sub {
                let kg = s * per_sub + g;
                let wv = unsafe { _mm512_load_si512(p.add(kg)) };
                for c in 0..C {
                    // SAFETY: bytes `4 kg..4 kg + 4` of the block's 256 quants.
                    let x = unsafe { ys[c].qs.as_ptr().add(4 * kg).cast::<i32>().read_unaligned() };
                    isub[c] = _mm512_dpbusd_epi32(isub[c], wv, _mm512_set1_epi32(x));
                }
            }
            let sc = unsafe { _mm512_load_si512(p.add(64 + s)) };
            for c in 0..C {
                itot[c] = _mm512_add_epi32(itot[c], _mm512_mullo_epi32(isub[c], sc));
            }
        }
        // SAFETY: the block's lines.
        let msum: [__m512i; C] = std::array::from_fn(|c| unsafe { block_sum_term::<NSUB>(p, ys[c]) });
        let d = unsafe { _mm512_load_ps(p.add(64 + NSUB + 8).cast()) };
        let dm = unsafe { _mm512_load_ps(p.add(64 + NSUB + 9).cast()) };
        for c in 0..C {
            let f = _mm512_fmsub_ps(_mm512_cvtepi32_ps(itot[c]), d, _mm512_mul_ps(_mm512_cvtepi32_ps(msum[c]), dm));
            acc[c] = _mm512_fmadd_ps(f, _mm512_set1_ps(ys[c].d), acc[c]);
        }
    }
    acc
}

/// The block sums' term of one activation super-block `y` against the unpacked super-block at
/// `p`: line `64 + NSUB + q` holds each row's i16 pair for the 16-value halves 2q and 2q + 1,
/// against `y`'s two block sums of those halves.
///
/// # Safety
/// `p` points at an unpacked super-block of `NSUB` sub-blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn block_sum_term<const NSUB: usize>(p: *const __m512i, y: &BlockQ8K) -> __m512i {
    let mut msum = _mm512_setzero_si512();
    for q in 0..8 {
        // SAFETY: line 64 + NSUB + q of the block (caller); block sums 2q and 2q + 1 of 16.
        unsafe {
            let mn = _mm512_load_si512(p.add(64 + NSUB + q));
            let bs = y.bsums.as_ptr().add(2 * q).cast::<i32>().read_unaligned();
            msum = _mm512_add_epi32(msum, _mm512_madd_epi16(mn, _mm512_set1_epi32(bs)));
        }
    }
    msum
}

/// 32 bytes at `p0` and 32 at `p1`, as the low and high halves of one vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair(p0: *const u8, p1: *const u8) -> __m512i {
    // SAFETY: the caller guarantees 32 readable bytes at each.
    unsafe {
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(_mm256_loadu_si256(p0.cast())), _mm256_loadu_si256(p1.cast()))
    }
}

/// 16 bytes at `p0` then 16 at `p1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair16(p0: *const u8, p1: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at each.
    unsafe {
        _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(_mm_loadu_si128(p0.cast())), _mm_loadu_si128(p1.cast()))
    }
}

/// Bits `from` of each byte of `h` moved to bits `to..` and masked with `mask` (16-bit shifts;
/// the count goes through a register, see `super::avx2::fifth`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn bits(h: __m512i, from: usize, to: usize, mask: i8) -> __m512i {
    let shifted = if from <= to {
        _mm512_sll_epi16(h, _mm_cvtsi32_si128((to - from) as i32))
    } else {
        _mm512_srl_epi16(h, _mm_cvtsi32_si128((from - to) as i32))
    };
    _mm512_and_si512(shifted, _mm512_set1_epi8(mask))
}

/// Asks for the `bytes` at `p` (both groups' same super-block of the next band) to be brought
/// into L2 while this band is multiplied: the unpacking reads weights in bursts, with nothing in
/// flight while the tiles run. Prefetches never fault.
#[inline(always)]
fn prefetch(p: *const u8, bytes: usize) {
    let mut o = 0;
    while o < bytes {
        // SAFETY: a prefetch reads nothing architecturally and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(o).cast()) };
        o += 64;
    }
}

/// Stores `v` as line `i` of `dst`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn put(dst: *mut Line, i: usize, v: __m512i) {
    // SAFETY: the caller guarantees line `i` is in the buffer.
    unsafe { _mm512_store_si512(dst.add(i).cast(), v) }
}

/// The 16 rows' f16 values at `p0` (8) and `p1` (8) as f32, stored as line `i` of `dst`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn put_halves(dst: *mut Line, i: usize, p0: *const u8, p1: *const u8) {
    // SAFETY: 16 bytes at each (caller), line `i` in the buffer.
    unsafe {
        let h = _mm256_inserti128_si256::<1>(
            _mm256_castsi128_si256(_mm_loadu_si128(p0.cast())),
            _mm_loadu_si128(p1.cast()),
        );
        _mm512_store_ps(dst.add(i).cast(), _mm512_cvtph_ps(h));
    }
}

/// Unpacks `nb` packed Q4_K (with `FIVE`, Q5_K) super-blocks of the groups at `g0` and `g1`
/// into `dst` (`nb × lines(8)` lines); layouts in `super::pack_q4k` and `super::pack_q5k`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unpack_q4k<const FIVE: bool>(g0: *const u8, g1: *const u8, nb: usize, dst: *mut Line) {
    let bytes = if FIVE { 1440 } else { 1184 };
    let mask = _mm512_set1_epi8(0x0F);
    for b in 0..nb {
        // SAFETY: super-block `b < nb` of both groups, and of the buffer (caller).
        let (p0, p1, o) = unsafe { (g0.add(b * bytes), g1.add(b * bytes), dst.add(b * lines(QuantType::Q4K))) };
        prefetch(p0.wrapping_add(2 * nb * bytes), bytes);
        prefetch(p1.wrapping_add(2 * nb * bytes), bytes);
        unsafe {
            for j in 0..4 {
                let (h0, h1) = if FIVE {
                    (
                        pair(p0.add(1184 + 64 * j), p1.add(1184 + 64 * j)),
                        pair(p0.add(1216 + 64 * j), p1.add(1216 + 64 * j)),
                    )
                } else {
                    (mask, mask)
                };
                for k in 0..8 {
                    let v = pair(p0.add(160 + 256 * j + 32 * k), p1.add(160 + 256 * j + 32 * k));
                    let mut lo = _mm512_and_si512(v, mask);
                    let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask);
                    if FIVE {
                        lo = _mm512_or_si512(lo, bits(h0, k, 4, 0x10));
                        hi = _mm512_or_si512(hi, bits(h1, k, 4, 0x10));
                    }
                    put(o, 16 * j + k, lo);
                    put(o, 16 * j + 8 + k, hi);
                }
            }
            for s in 0..8 {
                let x = _mm_unpacklo_epi64(
                    _mm_loadl_epi64(p0.add(32 + 8 * s).cast()),
                    _mm_loadl_epi64(p1.add(32 + 8 * s).cast()),
                );
                put(o, 64 + s, _mm512_cvtepu8_epi32(x));
            }
            // Mins of sub-blocks 2q and 2q + 1, (u8, u8) per row, each doubled into the pair
            // of its two 16-value halves.
            for q in 0..4 {
                let x = _mm512_cvtepu8_epi16(pair16(p0.add(96 + 16 * q), p1.add(96 + 16 * q)));
                put(o, 72 + 2 * q, _mm512_shufflehi_epi16::<0xA0>(_mm512_shufflelo_epi16::<0xA0>(x)));
                put(o, 72 + 2 * q + 1, _mm512_shufflehi_epi16::<0xF5>(_mm512_shufflelo_epi16::<0xF5>(x)));
            }
            put_halves(o, 80, p0, p1);
            put_halves(o, 81, p0.add(16), p1.add(16));
        }
    }
}

/// Unpacks `nb` packed Q6_K super-blocks of the groups at `g0` and `g1` into `dst`
/// (`nb × lines(16)` lines); layout in `super::pack_q6k`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unpack_q6k(g0: *const u8, g1: *const u8, nb: usize, dst: *mut Line) {
    let m4 = _mm512_set1_epi8(0x0F);
    for b in 0..nb {
        // SAFETY: super-block `b < nb` of both groups, and of the buffer (caller).
        let (p0, p1, o) = unsafe { (g0.add(b * 1680), g1.add(b * 1680), dst.add(b * lines(QuantType::Q6K))) };
        prefetch(p0.wrapping_add(2 * nb * 1680), 1680);
        prefetch(p1.wrapping_add(2 * nb * 1680), 1680);
        unsafe {
            for t in 0..8 {
                let (q0, q1) = (p0.add(144 + 192 * t), p1.add(144 + 192 * t));
                let h0 = pair(q0.add(128), q1.add(128));
                let h1 = pair(q0.add(160), q1.add(160));
                for i in 0..4 {
                    let v = pair(q0.add(32 * i), q1.add(32 * i));
                    // Bits 2i..2i + 2 of each high-bit byte are the top two bits of vector i.
                    let lo = _mm512_or_si512(_mm512_and_si512(v, m4), bits(h0, 2 * i, 4, 0x30));
                    let hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(v), m4), bits(h1, 2 * i, 4, 0x30));
                    put(o, 8 * t + i, lo);
                    put(o, 8 * t + 4 + i, hi);
                }
                // Scales of sub-blocks 2t and 2t + 1, (i8, i8) per row, as i16 pairs.
                let x = _mm512_cvtepi8_epi16(pair16(p0.add(16 + 16 * t), p1.add(16 + 16 * t)));
                put(o, 64 + 2 * t, _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(x)));
                put(o, 64 + 2 * t + 1, _mm512_srai_epi32::<16>(x));
                put(o, 80 + t, _mm512_slli_epi16::<5>(x));
            }
            put_halves(o, 88, p0, p1);
            put_halves(o, 89, p0, p1);
        }
    }
}

/// One legacy-type band × `C` activation rows over all `nb` blocks of 32: per block 8 loads
/// of weights, `vpdpbusd` per activation row, then `d_w × (d_a × Σ) + m_w × s_a` in f32, where
/// `m_w` is the stored offset (Q4_1, Q5_1) or the implied one (`-8 d_w`, `-16 d_w`, and for
/// Q8_0, whose signed weights are stored plus 128, `-128 d_w`) and `s_a = d_a × Σ q_a`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn legacy_tile<const C: usize>(band: *const Line, a: [*const BlockQ8; C], nb: usize) -> [__m512; C] {
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        // SAFETY: block `b < nb` of the band and of each activation row.
        let p = unsafe { band.add(b * 10) }.cast::<__m512i>();
        let ys: [&BlockQ8; C] = std::array::from_fn(|c| unsafe { &*a[c].add(b) });
        let mut isum = [_mm512_setzero_si512(); C];
        for kg in 0..8 {
            let wv = unsafe { _mm512_load_si512(p.add(kg)) };
            for c in 0..C {
                // SAFETY: bytes `4 kg..4 kg + 4` of the block's 32 quants.
                let x = unsafe { ys[c].qs.as_ptr().add(4 * kg).cast::<i32>().read_unaligned() };
                isum[c] = _mm512_dpbusd_epi32(isum[c], wv, _mm512_set1_epi32(x));
            }
        }
        let d = unsafe { _mm512_load_ps(p.add(8).cast()) };
        let mw = unsafe { _mm512_load_ps(p.add(9).cast()) };
        for c in 0..C {
            let t = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_set1_ps(ys[c].d));
            acc[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(ys[c].s), _mm512_fmadd_ps(d, t, acc[c]));
        }
    }
    acc
}

/// Unpacks `nb` packed blocks of a legacy type `t` of the groups at `g0` and `g1` into `dst`
/// (`nb × 10` lines: 8 of weights as unsigned bytes, `d`, the offset term); layout in
/// `super::pack_legacy`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unpack_legacy(t: QuantType, g0: *const u8, g1: *const u8, nb: usize, dst: *mut Line) {
    let bytes = GROUP * t.type_size();
    let (paired, fifth, implied) = match t {
        QuantType::Q4_1 => (true, false, 0.0),
        QuantType::Q5_0 => (false, true, -16.0),
        QuantType::Q5_1 => (true, true, 0.0),
        QuantType::Q8_0 => (false, false, -128.0),
        _ => (false, false, -8.0),
    };
    let quants = 16 + if paired { 16 } else { 0 } + if fifth { 32 } else { 0 };
    let mask = _mm512_set1_epi8(0x0F);
    for b in 0..nb {
        // SAFETY: block `b < nb` of both groups, and of the buffer (caller).
        let (p0, p1, o) = unsafe { (g0.add(b * bytes), g1.add(b * bytes), dst.add(b * 10)) };
        prefetch(p0.wrapping_add(2 * nb * bytes), bytes);
        prefetch(p1.wrapping_add(2 * nb * bytes), bytes);
        unsafe {
            let (q0, q1) = (p0.add(quants), p1.add(quants));
            if t == QuantType::Q8_0 {
                for k in 0..8 {
                    put(o, k, _mm512_xor_si512(pair(q0.add(32 * k), q1.add(32 * k)), _mm512_set1_epi8(-128)));
                }
            } else {
                let h = if fifth { pair(q0.sub(32), q1.sub(32)) } else { mask };
                for k in 0..4 {
                    let v = pair(q0.add(32 * k), q1.add(32 * k));
                    let mut lo = _mm512_and_si512(v, mask);
                    let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask);
                    if fifth {
                        lo = _mm512_or_si512(lo, bits(h, k, 4, 0x10));
                        hi = _mm512_or_si512(hi, bits(h, k + 4, 4, 0x10));
                    }
                    put(o, k, lo);
                    put(o, 4 + k, hi);
                }
            }
            put_halves(o, 8, p0, p1);
            if paired {
                put_halves(o, 9, p0.add(16), p1.add(16));
            } else {
                let d = _mm512_load_ps(o.add(8).cast());
                _mm512_store_ps(o.add(9).cast(), _mm512_mul_ps(d, _mm512_set1_ps(implied)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act;
    use crate::packed::{pack, packed_len};

    /// On ragged shapes (odd group counts, pairs of 16-row AMX tiles, tiles of 8, 4 and 1 rows, several sets of
    /// bands), the 512-bit path, with and (where the CPU has it) without AMX tiles, gives what
    /// the reference dot product gives for every packed type.
    #[test]
    fn the_wide_path_matches_the_reference_on_every_type() {
        if !Backend::Vnni512.is_available() {
            eprintln!("no AVX512-VNNI here: the 512-bit prompt path is not exercised");
            return;
        }
        let mut next = crate::xorshift(0x77_1de);
        let paths: &[bool] = if super::super::amx::available() { &[false, true] } else { &[false] };
        for (t, &amx) in QuantType::ALL.into_iter().flat_map(|t| paths.iter().map(move |a| (t, a))) {
            for (n, k, m) in [
                (16, 256, 16),
                (24, 512, 23),
                (40, 768, 37),
                (32, 256, 1),
                (8, 512, 19),
                (424, 768, 35),
                (56, 512, 64),
                (24, 256, 50),
            ] {
                let w: Vec<f32> = (0..n * k).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
                let x: Vec<f32> = (0..m * k).map(|_| (next() % 2001) as f32 / 500.0 - 2.0).collect();
                let mut plain = vec![0u8; n * t.row_bytes(k).unwrap()];
                zoo_ggml::quant::quantize_row(t, &w, &mut plain).unwrap();
                let mut packed = vec![0u8; packed_len(t, n, k).unwrap()];
                pack(t, &plain, n, k, &mut packed).unwrap();
                let nb = k / t.block_size();
                let row_bytes = t.row_bytes(k).unwrap();
                let mut out = vec![f32::NAN; m * n];
                let d = Disjoint::new(&mut out);
                let reference: Box<dyn Fn(usize, usize) -> f32> = if t.block_size() == 256 {
                    let mut acts = vec![BlockQ8K::ZERO; m * nb];
                    act::quantize_q8k(&x, &mut acts);
                    assert!(rows(amx, t, &packed, Acts::Q8K(&acts), m, nb, 0..n, n, &d), "{t}: did not run");
                    let plain = plain.clone();
                    Box::new(move |i, r| {
                        crate::scalar::dot_k(t, &plain[r * row_bytes..(r + 1) * row_bytes], &acts[i * nb..(i + 1) * nb])
                    })
                } else {
                    let mut acts = vec![BlockQ8::ZERO; m * nb];
                    act::quantize_q8(&x, &mut acts);
                    assert!(rows(amx, t, &packed, Acts::Q8(&acts), m, nb, 0..n, n, &d), "{t}: did not run");
                    let plain = plain.clone();
                    Box::new(move |i, r| {
                        crate::scalar::dot_legacy(
                            t,
                            &plain[r * row_bytes..(r + 1) * row_bytes],
                            &acts[i * nb..(i + 1) * nb],
                        )
                    })
                };
                for i in 0..m {
                    for r in 0..n {
                        let (got, want) = (out[i * n + r], reference(i, r));
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{t} {n}×{k}, m {m}, amx {amx}: output ({i}, {r}) {got}, reference {want}"
                        );
                    }
                }
            }
        }
    }
}

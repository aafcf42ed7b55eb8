//! AVX2 + FMA + F16C kernels (x86-64), chosen at run time: the same sums as `scalar`, with
//! 32 products per `_mm256_maddubs_epi16`, as in ggml's `ggml_vec_dot_*` AVX2 code.
//!
//! Legacy types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) run through one register-tiled kernel: a tile
//! of `R` weight rows × `C` activation rows keeps `R * C` f32x8 accumulators, so each weight
//! block is unpacked once and used `C` times, and each activation block is loaded once and used
//! `R` times. Decode (one activation row) uses `R` rows × 1, which also gives the memory system
//! `R` independent streams. K-quants (Q4_K, Q5_K, Q6_K) use ggml's per-block arithmetic, one
//! weight row × `C` activation rows.
//!
//! Safety model: every `unsafe fn` here requires (1) a CPU with AVX2, FMA and F16C (the entry
//! points check [`available`] before calling in) and (2) raw pointers valid for the number of
//! blocks passed, which the entry points guarantee by checking slice lengths first.

// Every index in this module is a loop counter `0..R` / `0..C` / `0..8` into a local array of
// exactly that const length, so none can fail; iterator style would hide the tiles' structure.
#![allow(clippy::indexing_slicing)]

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::{BlockQ8, BlockQ8K};
use crate::matmul::Disjoint;
use crate::scalar::q4k_scales;
use crate::{Backend, QuantType};

/// True if this CPU can run these kernels.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// Weight rows per register tile.
const RT: usize = 4;
/// Bytes ahead of the current block that decode prefetches (0: none).
const PREFETCH: usize = 2048;
/// Activation rows per k-quant tile (then 4, then 1 for the rest).
const CK: usize = 8;

/// Runs the copy of the legacy-type kernels in `$module` on type `$t` (an `unsafe` call: see
/// [`legacy_rows`]); a k-quant type makes the caller return false.
macro_rules! run {
    ($module:ident, $t:expr, $w:expr, $acts:expr, $m:expr, $nb:expr, $rows:expr, $n:expr, $out:expr) => {
        match $t {
            QuantType::Q4_0 => $module::rows_impl::<Q4_0>($w, $acts, $m, $nb, $rows, $n, $out),
            QuantType::Q4_1 => $module::rows_impl::<Q4_1>($w, $acts, $m, $nb, $rows, $n, $out),
            QuantType::Q5_0 => $module::rows_impl::<Q5_0>($w, $acts, $m, $nb, $rows, $n, $out),
            QuantType::Q5_1 => $module::rows_impl::<Q5_1>($w, $acts, $m, $nb, $rows, $n, $out),
            QuantType::Q8_0 => $module::rows_impl::<Q8_0>($w, $acts, $m, $nb, $rows, $n, $out),
            QuantType::Q4K | QuantType::Q5K | QuantType::Q6K => return false,
        }
    };
}

/// Computes `out[i * n + r]` for every weight row `r` in `rows` and activation row `i < m` of a
/// legacy-type matrix. `w` holds whole rows of `nb` blocks, `acts` `m` rows of `nb` blocks.
/// `backend` picks the copy of the kernels (one the CPU lacks runs as [`Backend::Avx2`]).
/// Does nothing (returns false) if the CPU lacks AVX2 or the lengths do not fit.
#[allow(clippy::too_many_arguments)]
pub fn legacy_rows(
    backend: Backend,
    t: QuantType,
    w: &[u8],
    acts: &[BlockQ8],
    m: usize,
    nb: usize,
    rows: Range<usize>,
    n: usize,
    out: &Disjoint<'_, f32>,
) -> bool {
    let bytes = t.type_size();
    let fits = rows.end.checked_mul(nb * bytes).is_some_and(|e| e <= w.len())
        && m.checked_mul(nb).is_some_and(|e| e <= acts.len())
        && m.checked_mul(n).is_some_and(|e| e <= out.len())
        && rows.end <= n;
    if !fits || !available() {
        return false;
    }
    // SAFETY: `is_available` checked the features each copy was compiled for (and `available`
    // the AVX2 base); `w` holds `rows.end` rows of `nb` blocks of `t` and `acts` `m` rows of
    // `nb` blocks, so every pointer the kernels form stays inside them; output indices are
    // `< m * n <= out.len()`, and `rows` is this task's own (disjoint) range.
    unsafe { by_backend!(backend, run, t, w, acts, m, nb, rows, n, out) }
    true
}

/// The k-quant version of [`legacy_rows`].
#[allow(clippy::too_many_arguments)]
pub fn k_rows(
    t: QuantType,
    w: &[u8],
    acts: &[BlockQ8K],
    m: usize,
    nb: usize,
    rows: Range<usize>,
    n: usize,
    out: &Disjoint<'_, f32>,
) -> bool {
    let bytes = t.type_size();
    let fits = rows.end.checked_mul(nb * bytes).is_some_and(|e| e <= w.len())
        && m.checked_mul(nb).is_some_and(|e| e <= acts.len())
        && m.checked_mul(n).is_some_and(|e| e <= out.len())
        && rows.end <= n;
    if !fits || !available() {
        return false;
    }
    // SAFETY: as in `legacy_rows`.
    unsafe {
        match t {
            QuantType::Q4K => k_rows_impl::<Q4K>(w, acts, m, nb, rows, n, out),
            QuantType::Q5K => k_rows_impl::<Q5K>(w, acts, m, nb, rows, n, out),
            QuantType::Q6K => k_rows_impl::<Q6K>(w, acts, m, nb, rows, n, out),
            _ => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

/// The f32 value of the little-endian f16 at `p` (F16C).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: caller guarantees 2 readable bytes.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum(x: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// 16 bytes of nibbles to 32 bytes: low nibbles (values 0..16) in the low lane, high nibbles
/// (values 16..32) in the high lane, as ggml's `bytes_from_nibbles_32`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 16 readable bytes.
    let v = unsafe { _mm_loadu_si128(p.cast()) };
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(v), v);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// The 32 bits at `p` as 32 bytes, 0x10 where the bit is set (ggml's `bytes_from_bits_32`,
/// masked to the fifth bit of a Q5 value).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bits(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 4 readable bytes.
    let x = unsafe { p.cast::<i32>().read_unaligned() };
    let shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x), shuf);
    // Each byte j of 8 keeps every bit but bit j set; equal to all-ones iff bit j was set.
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    let set = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// 32 bytes at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

// ---------------------------------------------------------------------------------------------
// Legacy types: a block is 32 values `q` (unsigned, or signed for Q8_0), a scale and an offset
// `m`, and contributes `d_w d_a Σ q q_a + m s_a`.
// ---------------------------------------------------------------------------------------------

trait Legacy {
    const BYTES: usize;
    /// True if `quants` are signed (Q8_0): they go through ggml's sign trick.
    const SIGNED: bool;
    /// True if blocks have an offset.
    const OFFSET: bool;
    /// True if the offset is stored (an f16 after the scale: Q4_1, Q5_1); otherwise it is
    /// `IMPLIED * d` (Q4_0: -8, Q5_0: -16; Q8_0 has none).
    const PAIRED: bool = false;
    const IMPLIED: f32 = 0.0;
    /// The 32 values of the block at `p`.
    unsafe fn quants(p: *const u8) -> __m256i;
    /// (scale, offset) of the block at `p`.
    unsafe fn scales(p: *const u8) -> (f32, f32);
}

struct Q4_0;
struct Q4_1;
struct Q5_0;
struct Q5_1;
struct Q8_0;

impl Legacy for Q4_0 {
    const BYTES: usize = 18;
    const SIGNED: bool = false;
    const OFFSET: bool = true;
    const IMPLIED: f32 = -8.0;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(p: *const u8) -> __m256i {
        unsafe { nibbles(p.add(2)) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        let d = unsafe { f16_at(p) };
        (d, -8.0 * d)
    }
}

impl Legacy for Q4_1 {
    const BYTES: usize = 20;
    const SIGNED: bool = false;
    const OFFSET: bool = true;
    const PAIRED: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(p: *const u8) -> __m256i {
        unsafe { nibbles(p.add(4)) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        unsafe { (f16_at(p), f16_at(p.add(2))) }
    }
}

impl Legacy for Q5_0 {
    const BYTES: usize = 22;
    const SIGNED: bool = false;
    const OFFSET: bool = true;
    const IMPLIED: f32 = -16.0;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(p: *const u8) -> __m256i {
        unsafe { _mm256_or_si256(nibbles(p.add(6)), fifth_bits(p.add(2))) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        let d = unsafe { f16_at(p) };
        (d, -16.0 * d)
    }
}

impl Legacy for Q5_1 {
    const BYTES: usize = 24;
    const SIGNED: bool = false;
    const OFFSET: bool = true;
    const PAIRED: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(p: *const u8) -> __m256i {
        unsafe { _mm256_or_si256(nibbles(p.add(8)), fifth_bits(p.add(4))) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        unsafe { (f16_at(p), f16_at(p.add(2))) }
    }
}

impl Legacy for Q8_0 {
    const BYTES: usize = 34;
    const SIGNED: bool = true;
    const OFFSET: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quants(p: *const u8) -> __m256i {
        unsafe { load32(p.add(2)) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        unsafe { (f16_at(p), 0.0) }
    }
}

/// Given four vectors of 8 i32, returns `[Σ p0[0..4], Σ p1[0..4], Σ p2[0..4], Σ p3[0..4] |
/// Σ p0[4..8], ...]` (each 128-bit half reduced separately), with single-uop unpacks and adds.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose_add(p: [__m256i; 4]) -> __m256i {
    let [p0, p1, p2, p3] = p;
    // [p0_0+p0_2, p1_0+p1_2, p0_1+p0_3, p1_1+p1_3] per half.
    let s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(p0, p1), _mm256_unpackhi_epi32(p0, p1));
    let s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(p2, p3), _mm256_unpackhi_epi32(p2, p3));
    _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23))
}

/// The scales and offsets of 4 blocks (one per weight row of a tile) as two vectors: the four
/// f16 words gathered into one register and converted at once (four scalar converts stored
/// to an array and reloaded as a vector stall on store forwarding).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scales4<B: Legacy>(p: [*const u8; 4]) -> (__m128, __m128) {
    // SAFETY: every block has at least 4 bytes (scale, then offset or values).
    let word = |q: *const u8| unsafe { q.cast::<i32>().read_unaligned() };
    let words = _mm_set_epi32(word(p[3]), word(p[2]), word(p[1]), word(p[0]));
    if B::PAIRED {
        // [d0 m0 d1 m1 d2 m2 d3 m3] → [d0 d1 d2 d3 | m0 m1 m2 m3].
        let v = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(words), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        (_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v))
    } else {
        let packed = _mm_shuffle_epi8(words, _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1));
        let d = _mm_cvtph_ps(packed);
        (d, _mm_mul_ps(d, _mm_set1_ps(B::IMPLIED)))
    }
}

/// Writes a tile's results: `res[r][c]` is `out[(i0 + c) * n + r0 + r]`.
#[inline(always)]
fn store<const R: usize, const C: usize>(out: &Disjoint<'_, f32>, res: &[[f32; C]; R], r0: usize, i0: usize, n: usize) {
    for (r, row) in res.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            // SAFETY: this task owns weight rows `r0 + r` of every output row.
            unsafe { out.set((i0 + c) * n + r0 + r, v) };
        }
    }
}

/// The legacy-type kernels, stamped out once per instruction set: `$feat` is the feature list
/// the copy is compiled for, `$ct` its activation rows per tile and `$dot` its 8 × 4-byte dot
/// product (`maddubs` + `madd` on AVX2, one `vpdpbusd` with VNNI).
macro_rules! legacy_kernels {
    ($module:ident, $feat:literal, $ct:expr, $dot:ident) => {
        mod $module {
            use super::*;

            /// Activation rows per register tile.
            const CT: usize = $ct;

            /// All rows of one task: `RT × CT` tiles, then the ragged edges with narrower tiles.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn rows_impl<B: Legacy>(
                w: &[u8],
                acts: &[BlockQ8],
                m: usize,
                nb: usize,
                rows: Range<usize>,
                n: usize,
                out: &Disjoint<'_, f32>,
            ) {
                let row_bytes = nb * B::BYTES;
                let wp = |r: usize| unsafe { w.as_ptr().add(r * row_bytes) };
                let ap = |i: usize| unsafe { acts.as_ptr().add(i * nb) };
                let mut r = rows.start;
                while r < rows.end {
                    let left = rows.end - r;
                    unsafe {
                        if left >= RT {
                            let w4: [*const u8; RT] = std::array::from_fn(|j| wp(r + j));
                            row_group::<B, RT>(w4, ap, m, nb, r, n, out);
                            r += RT;
                        } else {
                            row_group::<B, 1>([wp(r)], ap, m, nb, r, n, out);
                            r += 1;
                        }
                    }
                }
            }

            /// `R` weight rows against all `m` activation rows.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn row_group<B: Legacy, const R: usize>(
                w: [*const u8; R],
                ap: impl Fn(usize) -> *const BlockQ8,
                m: usize,
                nb: usize,
                r0: usize,
                n: usize,
                out: &Disjoint<'_, f32>,
            ) {
                let mut i = 0;
                if let Ok(w4) = <[*const u8; 4]>::try_from(&w[..]) {
                    while i + CT <= m {
                        let a: [*const BlockQ8; CT] = std::array::from_fn(|c| ap(i + c));
                        let res = unsafe { tile4::<B, CT>(w4, a, nb) };
                        store(out, &res, r0, i, n);
                        i += CT;
                    }
                    while i < m {
                        let res = unsafe { tile4::<B, 1>(w4, [ap(i)], nb) };
                        store(out, &res, r0, i, n);
                        i += 1;
                    }
                    return;
                }
                while i + CT <= m {
                    let a: [*const BlockQ8; CT] = std::array::from_fn(|c| ap(i + c));
                    let res = unsafe { tile::<B, R, CT>(w, a, nb) };
                    store(out, &res, r0, i, n);
                    i += CT;
                }
                while i < m {
                    let res = unsafe { tile::<B, R, 1>(w, [ap(i)], nb) };
                    store(out, &res, r0, i, n);
                    i += 1;
                }
            }

            /// The main register tile: 4 weight rows × `C` activation rows. The four rows' 8-lane integer
            /// sums are transposed and added into one vector `[r0 r1 r2 r3 | r0 r1 r2 r3]` before scaling,
            /// so each activation row needs one f32 accumulator (not four) and one convert, multiply and
            /// FMA per block instead of four: fewer instructions and no register spills.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile4<B: Legacy, const C: usize>(
                w: [*const u8; 4],
                a: [*const BlockQ8; C],
                nb: usize,
            ) -> [[f32; C]; 4] {
                let mut acc = [_mm256_setzero_ps(); C];
                for b in 0..nb {
                    let mut qx = [_mm256_setzero_si256(); 4];
                    // SAFETY: block `b < nb` of a row of `nb` blocks.
                    let ps: [*const u8; 4] = std::array::from_fn(|r| unsafe { w[r].add(b * B::BYTES) });
                    for r in 0..4 {
                        let p = ps[r];
                        if C == 1 && PREFETCH > 0 {
                            // Decode streams weights from DRAM: ask for lines well ahead so one core keeps
                            // more misses in flight than the hardware prefetcher alone does. Rows of a tile
                            // are adjacent, so running past a row's end still prefetches what comes next.
                            // SAFETY: prefetches never fault; `wrapping_add` forms no out-of-bounds offset.
                            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH).cast());
                        }
                        qx[r] = unsafe { B::quants(p) };
                    }
                    // Q8_0: maddubs wants an unsigned first operand, so use |x| and move x's sign onto the
                    // activation (ggml's trick; activations are within ±127, so nothing overflows).
                    let ux: [__m256i; 4] = if B::SIGNED { qx.map(|q| _mm256_sign_epi8(q, q)) } else { qx };
                    let (d4, m4) = unsafe { scales4::<B>(ps) };
                    let d8 = _mm256_set_m128(d4, d4);
                    // The offset term goes into the low half only (the halves are added at the end).
                    let m8 = _mm256_set_m128(_mm_setzero_ps(), m4);
                    for c in 0..C {
                        // SAFETY: block `b` of an activation row of `nb` blocks.
                        let y = unsafe { &*a[c].add(b) };
                        let qy = unsafe { load32(y.qs.as_ptr().cast()) };
                        let p: [__m256i; 4] = std::array::from_fn(|r| {
                            let sy = if B::SIGNED { _mm256_sign_epi8(qy, qx[r]) } else { qy };
                            $dot(ux[r], sy)
                        });
                        let s = transpose_add(p);
                        let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d8, _mm256_set1_ps(y.d)), acc[c]);
                        acc[c] = if B::OFFSET { _mm256_fmadd_ps(m8, _mm256_set1_ps(y.s), t) } else { t };
                    }
                }
                let mut res = [[0.0f32; C]; 4];
                for (c, a) in acc.iter().enumerate() {
                    let v = _mm_add_ps(_mm256_castps256_ps128(*a), _mm256_extractf128_ps::<1>(*a));
                    let mut lanes = [0.0f32; 4];
                    // SAFETY: `lanes` is 4 f32s.
                    unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), v) };
                    for (row, &l) in res.iter_mut().zip(&lanes) {
                        if let Some(slot) = row.get_mut(c) {
                            *slot = l;
                        }
                    }
                }
                res
            }

            /// The register tile: dot products of `R` weight rows with `C` activation rows over `nb`
            /// blocks.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn tile<B: Legacy, const R: usize, const C: usize>(
                w: [*const u8; R],
                a: [*const BlockQ8; C],
                nb: usize,
            ) -> [[f32; C]; R] {
                let mut acc = [[_mm256_setzero_ps(); C]; R];
                // Offsets: lane r of moff[c] accumulates Σ m_w[r] s_a[c].
                let mut moff = [_mm_setzero_ps(); C];
                for b in 0..nb {
                    let mut qx = [_mm256_setzero_si256(); R];
                    let mut ux = [_mm256_setzero_si256(); R];
                    let mut dx = [0.0f32; R];
                    let mut mx = [0.0f32; 4];
                    for r in 0..R {
                        // SAFETY: block `b < nb` of a row of `nb` blocks.
                        let p = unsafe { w[r].add(b * B::BYTES) };
                        qx[r] = unsafe { B::quants(p) };
                        // Q8_0: maddubs wants an unsigned first operand, so use |x| and move x's sign onto
                        // the activation (ggml's trick; activations are within ±127, so no overflow).
                        ux[r] = if B::SIGNED { _mm256_sign_epi8(qx[r], qx[r]) } else { qx[r] };
                        let (d, mm) = unsafe { B::scales(p) };
                        dx[r] = d;
                        if let Some(slot) = mx.get_mut(r) {
                            *slot = mm;
                        }
                    }
                    // SAFETY: `mx` is 4 f32s.
                    let mv = unsafe { _mm_loadu_ps(mx.as_ptr()) };
                    for c in 0..C {
                        // SAFETY: block `b` of an activation row of `nb` blocks.
                        let y = unsafe { &*a[c].add(b) };
                        let qy = unsafe { load32(y.qs.as_ptr().cast()) };
                        for r in 0..R {
                            let sy = if B::SIGNED { _mm256_sign_epi8(qy, qx[r]) } else { qy };
                            let p32 = $dot(ux[r], sy);
                            let dd = _mm256_set1_ps(dx[r] * y.d);
                            acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), dd, acc[r][c]);
                        }
                        if B::OFFSET {
                            moff[c] = _mm_fmadd_ps(mv, _mm_set1_ps(y.s), moff[c]);
                        }
                    }
                }
                let mut res = [[0.0f32; C]; R];
                for c in 0..C {
                    let mut offs = [0.0f32; 4];
                    // SAFETY: `offs` is 4 f32s.
                    unsafe { _mm_storeu_ps(offs.as_mut_ptr(), moff[c]) };
                    for r in 0..R {
                        res[r][c] = hsum(acc[r][c]) + offs.get(r).copied().unwrap_or(0.0);
                    }
                }
                res
            }
        }
    };
}

legacy_kernels!(plain, "avx2,fma,f16c", 4, dot_avx2);
legacy_kernels!(vnni512, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", 8, dot_vnni512);
legacy_kernels!(avxvnni, "avx2,fma,f16c,avxvnni", 4, dot_avxvnni);

/// Eight i32 sums of 4 adjacent `u8 × i8` products (AVX2: `maddubs` then `madd`; no
/// saturation for our operands, which are at most 15 or 127 in magnitude).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_avx2(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// [`dot_avx2`] in one instruction (AVX512-VNNI on 256-bit registers; the copy built with it
/// also has 32 vector registers, hence its wider tile).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_vnni512(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

/// [`dot_avx2`] in one instruction (AVX-VNNI, the VEX form on CPUs without AVX-512).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn dot_avxvnni(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
}

/// `vpdpbusd` in AVX2 instructions, exactly: each i32 lane of `s` plus the 4 products of its
/// `u8` bytes of `u` with the `i8` bytes of `v`, without saturation. Only the tests use it: the
/// VNNI copies of the kernels are stamped out once more on it (`*_emulated`), so their own
/// arithmetic (32-bit sums, the 8-row tiles of the AVX-512 copy) is checked on every AVX2
/// machine, not only on the CPUs that have VNNI (where the tests run the real copies too).
#[cfg(test)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dpbusd_avx2(s: __m256i, u: __m256i, v: __m256i) -> __m256i {
    // Each 16-bit lane holds one byte pair's product: 255 × -128 and 255 × 127 fit in i16.
    let (ue, uo) = (_mm256_and_si256(u, _mm256_set1_epi16(0xFF)), _mm256_srli_epi16::<8>(u));
    let (ve, vo) = (_mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(v)), _mm256_srai_epi16::<8>(v));
    let ones = _mm256_set1_epi16(1);
    let even = _mm256_madd_epi16(_mm256_mullo_epi16(ue, ve), ones);
    let odd = _mm256_madd_epi16(_mm256_mullo_epi16(uo, vo), ones);
    _mm256_add_epi32(s, _mm256_add_epi32(even, odd))
}

/// [`dot_vnni512`] through [`dpbusd_avx2`] (tests only).
#[cfg(test)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_emulated(u: __m256i, s: __m256i) -> __m256i {
    dpbusd_avx2(_mm256_setzero_si256(), u, s)
}

// The AVX512-VNNI copy's 8-row tile on the emulated `vpdpbusd` (see `dpbusd_avx2`).
#[cfg(test)]
legacy_kernels!(vnni512_emulated, "avx2,fma,f16c", 8, dot_emulated);

// ---------------------------------------------------------------------------------------------
// K-quants: one weight row at a time against `CK` activation rows, ggml's block arithmetic.
// ---------------------------------------------------------------------------------------------

trait KQuant {
    const BYTES: usize;
    /// Dot products of one weight block with block `b` of `C` activation rows, added to `acc`
    /// (ggml's AVX2 `ggml_vec_dot_q*_K_q8_K` loop body).
    unsafe fn block<const C: usize>(p: *const u8, a: &[*const BlockQ8K; C], b: usize, acc: &mut [__m256; C]);
}

struct Q4K;
struct Q5K;
struct Q6K;

impl KQuant for Q4K {
    const BYTES: usize = 144;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block<const C: usize>(p: *const u8, a: &[*const BlockQ8K; C], b: usize, acc: &mut [__m256; C]) {
        let m4 = _mm256_set1_epi8(0x0F);
        // Sub-block j (32 values, 0..16): the low nibbles of byte row j/2 for even j, the high
        // ones for odd j; unpacked when used, so few registers stay live.
        let q = |j: usize| {
            let bits = unsafe { load32(p.add(16 + 32 * (j / 2))) };
            if j.is_multiple_of(2) {
                _mm256_and_si256(bits, m4)
            } else {
                _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4)
            }
        };
        unsafe { k4_block::<C>(p, q, a, b, acc) };
    }
}

impl KQuant for Q5K {
    const BYTES: usize = 176;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block<const C: usize>(p: *const u8, a: &[*const BlockQ8K; C], b: usize, acc: &mut [__m256; C]) {
        let m4 = _mm256_set1_epi8(0x0F);
        let sixteen = _mm256_set1_epi8(0x10);
        // Bit j of qh[l] is the fifth bit of value l of sub-block j.
        let hbits = unsafe { load32(p.add(16)) };
        let q = |j: usize| {
            let bits = unsafe { load32(p.add(48 + 32 * (j / 2))) };
            let low = if j.is_multiple_of(2) { bits } else { _mm256_srli_epi16::<4>(bits) };
            let bit = _mm256_set1_epi8((1u8 << j) as i8);
            let fifth = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, bit), bit), sixteen);
            _mm256_or_si256(_mm256_and_si256(low, m4), fifth)
        };
        unsafe { k4_block::<C>(p, q, a, b, acc) };
    }
}

/// The rest of a Q4_K / Q5_K block given `q(j)`, its 32 unsigned values of sub-block `j`
/// (below 32, so `maddubs` pairs stay within i16): one sub-block at a time against all `C`
/// activation rows (integer sums per row, scaled once per block), minimums via the Q8_K
/// 16-value sums (`d`, `dmin` and the packed scales sit at the same offsets in both types).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_block<const C: usize>(
    p: *const u8,
    q: impl Fn(usize) -> __m256i,
    a: &[*const BlockQ8K; C],
    b: usize,
    acc: &mut [__m256; C],
) {
    // SAFETY (all blocks below): `p` is a whole weight block, `a[c].add(b)` a whole activation
    // block (the caller's contract).
    let (d, dmin) = unsafe { (f16_at(p), f16_at(p.add(2))) };
    let (sc, mn) = q4k_scales(unsafe { &*p.add(4).cast::<[u8; 12]>() });
    let y: [&BlockQ8K; C] = std::array::from_fn(|c| unsafe { &*a[c].add(b) });
    let mut sumi = [_mm256_setzero_si256(); C];
    for (j, &scale) in sc.iter().enumerate() {
        let qj = q(j);
        let s = _mm256_set1_epi16(i16::from(scale));
        for c in 0..C {
            let qy = unsafe { load32(y[c].qs.as_ptr().add(32 * j).cast()) };
            sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(s, _mm256_maddubs_epi16(qj, qy)));
        }
    }
    // SAFETY: `mn` is 8 bytes.
    let mins = _mm_cvtepu8_epi16(unsafe { _mm_loadl_epi64(mn.as_ptr().cast()) });
    for c in 0..C {
        // Minimums: Σ_j min_j (bsums[2j] + bsums[2j+1]), folded into the low lanes of the
        // 8-lane sum (the lanes are summed at the end).
        let bs = unsafe { _mm256_loadu_si256(y[c].bsums.as_ptr().cast()) };
        let pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256::<1>(bs));
        let msum = _mm_madd_epi16(mins, pair_sums);
        let mlanes = _mm256_cvtepi32_ps(_mm256_castsi128_si256(msum));
        let mlanes = _mm256_blend_ps::<0x0F>(_mm256_setzero_ps(), mlanes);
        let t = _mm256_fmadd_ps(_mm256_set1_ps(d * y[c].d), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
        acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * y[c].d), mlanes, t);
    }
}

impl KQuant for Q6K {
    const BYTES: usize = 210;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block<const C: usize>(p: *const u8, a: &[*const BlockQ8K; C], b: usize, acc: &mut [__m256; C]) {
        // SAFETY (all blocks below): `p` is a whole weight block, `a[c].add(b)` a whole
        // activation block (the caller's contract).
        let d = unsafe { f16_at(p.add(208)) };
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(3);
        // SAFETY: bytes 192..208 of the block are its 16 i8 scales.
        let sc = unsafe { &*p.add(192).cast::<[i8; 16]>() };
        let y: [&BlockQ8K; C] = std::array::from_fn(|c| unsafe { &*a[c].add(b) });
        // Σ (q - 32) y = Σ q y - 32 Σ y: the second sum per 16 values is the activation
        // block's `bsums`, so the offset costs one `madd` per activation row and block.
        let scales16 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(sc.as_ptr().cast()) });
        let mut sumi = [_mm256_setzero_si256(); C];
        for j in 0..8 {
            // Values 32j..32j+32 (element order), unsigned 6-bit (q + 32): the low 4 bits from
            // `ql` (byte row (j/4)*2 + j%2, high nibbles for j%4 >= 2), the top 2 from `qh`.
            let (h, w) = (j / 4, j % 4);
            let ql = unsafe { load32(p.add(64 * h + 32 * (w % 2))) };
            let qh = unsafe { load32(p.add(128 + 32 * h)) };
            let low = if w < 2 { _mm256_and_si256(ql, m4) } else { _mm256_and_si256(_mm256_srli_epi16::<4>(ql), m4) };
            let shifted = match w {
                0 => qh,
                1 => _mm256_srli_epi16::<2>(qh),
                2 => _mm256_srli_epi16::<4>(qh),
                _ => _mm256_srli_epi16::<6>(qh),
            };
            let qj = _mm256_or_si256(low, _mm256_slli_epi16::<4>(_mm256_and_si256(shifted, m2)));
            // Sub-blocks 2j (low lane) and 2j + 1 (high lane), 16 values each.
            let s = _mm256_set_m128i(_mm_set1_epi16(i16::from(sc[2 * j + 1])), _mm_set1_epi16(i16::from(sc[2 * j])));
            for c in 0..C {
                let qy = unsafe { load32(y[c].qs.as_ptr().add(32 * j).cast()) };
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(s, _mm256_maddubs_epi16(qj, qy)));
            }
        }
        for c in 0..C {
            let bs = unsafe { _mm256_loadu_si256(y[c].bsums.as_ptr().cast()) };
            // 32 Σ_s scale_s bsums_s, as 8 lanes to subtract.
            let off = _mm256_slli_epi32::<5>(_mm256_madd_epi16(scales16, bs));
            let t = _mm256_sub_epi32(sumi[c], off);
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d * y[c].d), _mm256_cvtepi32_ps(t), acc[c]);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_rows_impl<K: KQuant>(
    w: &[u8],
    acts: &[BlockQ8K],
    m: usize,
    nb: usize,
    rows: Range<usize>,
    n: usize,
    out: &Disjoint<'_, f32>,
) {
    let row_bytes = nb * K::BYTES;
    let ap = |i: usize| unsafe { acts.as_ptr().add(i * nb) };
    for r in rows {
        let wp = unsafe { w.as_ptr().add(r * row_bytes) };
        let mut i = 0;
        while i + CK <= m {
            let a: [*const BlockQ8K; CK] = std::array::from_fn(|c| ap(i + c));
            let res = unsafe { k_tile::<K, CK>(wp, &a, nb) };
            store(out, &[res], r, i, n);
            i += CK;
        }
        while i + 4 <= m {
            let a: [*const BlockQ8K; 4] = std::array::from_fn(|c| ap(i + c));
            let res = unsafe { k_tile::<K, 4>(wp, &a, nb) };
            store(out, &[res], r, i, n);
            i += 4;
        }
        while i < m {
            let res = unsafe { k_tile::<K, 1>(wp, &[ap(i)], nb) };
            store(out, &[res], r, i, n);
            i += 1;
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_tile<K: KQuant, const C: usize>(w: *const u8, a: &[*const BlockQ8K; C], nb: usize) -> [f32; C] {
    let mut acc = [_mm256_setzero_ps(); C];
    for b in 0..nb {
        let p = unsafe { w.add(b * K::BYTES) };
        if C == 1 && PREFETCH > 0 {
            // Decode: as in `tile4`, one prefetch per cache line of the block, well ahead.
            for off in (0..K::BYTES).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + off).cast());
            }
        }
        unsafe { K::block::<C>(p, a, b, &mut acc) };
    }
    let mut res = [0.0f32; C];
    for (r, a) in res.iter_mut().zip(acc) {
        *r = hsum(a);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act;

    /// `vpdpbusd`'s definition (Intel SDM), lane by lane, on random and extreme bytes.
    fn dpbusd_reference(s: [i32; 8], u: [u8; 32], v: [u8; 32]) -> [i32; 8] {
        std::array::from_fn(|l| {
            (0..4).fold(s[l], |acc, j| acc.wrapping_add(i32::from(u[4 * l + j]) * i32::from(v[4 * l + j] as i8)))
        })
    }

    #[test]
    fn the_emulated_dpbusd_is_the_instruction() {
        if !available() {
            return;
        }
        let mut next = crate::xorshift(7);
        let extremes = [0u8, 1, 127, 128, 254, 255];
        for case in 0..4000 {
            let mut u = [0u8; 32];
            let mut v = [0u8; 32];
            for (i, (a, b)) in u.iter_mut().zip(v.iter_mut()).enumerate() {
                let r = next();
                (*a, *b) = if case % 2 == 0 {
                    (r as u8, (r >> 8) as u8)
                } else {
                    (extremes[(r as usize + i) % 6], extremes[(r >> 8) as usize % 6])
                };
            }
            let s: [i32; 8] = std::array::from_fn(|_| next() as i32 >> (case % 3 * 8));
            let load = |b: &[u8; 32]| unsafe { _mm256_loadu_si256(b.as_ptr().cast()) };
            let mut got = [0i32; 8];
            // SAFETY: AVX2 checked above; `got` holds 8 i32s.
            unsafe {
                let sv = _mm256_loadu_si256(s.as_ptr().cast());
                _mm256_storeu_si256(got.as_mut_ptr().cast(), dpbusd_avx2(sv, load(&u), load(&v)));
            }
            assert_eq!(got, dpbusd_reference(s, u, v), "case {case}: u {u:?} v {v:?}");
            if Backend::Vnni512.is_available() {
                let mut hw = [0i32; 8];
                // SAFETY: the CPU has AVX512-VNNI (checked); `hw` holds 8 i32s.
                unsafe {
                    let sv = _mm256_loadu_si256(s.as_ptr().cast());
                    _mm256_storeu_si256(hw.as_mut_ptr().cast(), vnni512_dpbusd(sv, load(&u), load(&v)));
                }
                assert_eq!(hw, got, "case {case}: the instruction disagrees with its emulation");
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn vnni512_dpbusd(s: __m256i, u: __m256i, v: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(s, u, v)
    }

    /// The AVX512-VNNI copy's arithmetic and its 8-row tiles, run on the emulated instruction:
    /// the same outputs as the AVX2 copy, on every legacy type, for decode and prompts whose
    /// rows leave every kind of ragged edge (weight rows not a multiple of 4, activation rows
    /// not a multiple of 8).
    #[test]
    fn the_vnni512_copy_computes_what_the_avx2_copy_does() {
        if !available() {
            return;
        }
        let k = 256;
        let nb = k / 32;
        let mut next = crate::xorshift(11);
        for t in [QuantType::Q4_0, QuantType::Q4_1, QuantType::Q5_0, QuantType::Q5_1, QuantType::Q8_0] {
            for (n, m) in [(4, 1), (7, 1), (13, 3), (9, 8), (6, 9), (11, 17)] {
                let w: Vec<f32> = (0..n * k).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
                let x: Vec<f32> = (0..m * k).map(|_| (next() % 2001) as f32 / 500.0 - 2.0).collect();
                let mut wq = vec![0u8; n * t.row_bytes(k).unwrap()];
                zoo_ggml::quant::quantize_row(t, &w, &mut wq).unwrap();
                let mut xq = vec![BlockQ8::ZERO; m * nb];
                act::quantize_q8(&x, &mut xq);
                let product = |emulated: bool| {
                    let mut out = vec![f32::NAN; m * n];
                    let d = Disjoint::new(&mut out);
                    // Returns whether a kernel ran (`run!` returns false for k-quants).
                    let ran = |emulated: bool| -> bool {
                        // SAFETY: AVX2 checked above; `wq` holds `n` rows of `nb` blocks, `xq`
                        // `m` rows, `out` `m × n` values.
                        unsafe {
                            if emulated {
                                run!(vnni512_emulated, t, &wq, &xq, m, nb, 0..n, n, &d)
                            } else {
                                run!(plain, t, &wq, &xq, m, nb, 0..n, n, &d)
                            }
                        }
                        true
                    };
                    assert!(ran(emulated));
                    out
                };
                let (avx2, vnni) = (product(false), product(true));
                assert!(avx2.iter().all(|v| v.is_finite()), "{t} {n}×{m}: AVX2 left outputs unwritten");
                for (i, (a, b)) in avx2.iter().zip(&vnni).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{t} {n}×{m} output {i}: AVX2 {a}, VNNI {b}");
                }
            }
        }
    }
}

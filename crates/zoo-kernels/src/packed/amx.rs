//! Intel AMX prompt tiles: AMX-INT8 over the unpacked bands of [`super::wide`], and AMX-BF16
//! for the bf16 panels of `dense16` ([`bf16_tile`]).
//!
//! A band's unpacked weights are already in AMX's layout for the right-hand tile: a line holds
//! 4 consecutive values of each of 16 weight rows, so 8 lines (32 values) or 16 (64) are a `B`
//! tile with a 64-byte stride. The left-hand `A` tile is 16 activation rows of the same quants,
//! read in place with the activations' row stride.
//!
//! - **Legacy types** ([`legacy`]; blocks of 32, each with its own f32 scale): a step
//!   multiplies two `A` tiles (32 activation rows) by two `B` tiles (two bands, 32 weight rows),
//!   four `tdpbsud` (signed activations × unsigned weights) into `tmm0..tmm3`, stored as
//!   4 × 256 `i32` sums to a thread-local buffer, while AVX-512 scales the previous block's
//!   sums (the other half of the buffer) into f32: `d_w × (d_a × Σ) + m_w × s_a` as in
//!   [`super::wide`]. An odd last band or a last 16 activation rows repeat the other tile of the
//!   pair (its sums are not used).
//! - **k-quants** ([`kquant`]): the sub-blocks' integer scales are folded into the weights
//!   (`super::wide::fold`: `scale × q`, Q6_K `scale × (q − 32)`, as two bytes `128 h + l`), so
//!   a whole super-block sums in the tiles with no step out to AVX-512 per sub-block: per 64
//!   values, two `A` tiles × the `l` and `h` tiles (`tdpbsud`, `tdpbssd`), then per super-block
//!   `d_a × (d × (128 Σh + Σl) − dmin × m)` (`m`: the rows' minimum pairs, folded lines too,
//!   by the activations' 32-value sums in pairs, `vpmaddwd`; Q6_K has none).
//!
//! Rows below [`MIN_ROWS`] and the last rows short of a tile are left to the caller (the
//! 512-bit VNNI tiles). The integer sums are exact; the f32 steps differ from [`super::wide`]'s
//! in order only. Xeon, 7B shapes: legacy types 1.02–1.2× and k-quants 1.25–2× the 512-bit VNNI
//! tiles (docs/BENCHMARKS.md round 9).
//!
//! Tile instructions are `asm!` (the intrinsics are not stable Rust). Linux only: the kernel
//! must grant the process the AMX state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), asked once; a
//! tile configuration is loaded per call and released by a guard. `ZOO_AMX=0` turns the path off
//! (for benchmarks: the 512-bit vector tiles then run).

#![allow(clippy::indexing_slicing)]

use std::arch::asm;
use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::wide::{BAND, FOLDED_LINES, Line, Set, store};
use crate::act::{BlockQ8, BlockQ8K};
use crate::matmul::Disjoint;

/// Activation rows per AMX tile (the `A` tile's rows).
pub(crate) const ROWS: usize = 16;
/// Fewest activation rows for the AMX path: a pair of tiles (with one, the second tile's
/// product is a repeat, and the 512-bit VNNI tiles were faster).
pub(crate) const MIN_ROWS: usize = 2 * ROWS;

/// True when this CPU and kernel run AMX-INT8 tiles and `ZOO_AMX` does not turn them off;
/// checked once.
pub(crate) fn available() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        std::env::var("ZOO_AMX").as_deref() != Ok("0")
            && crate::Backend::Vnni512.is_available()
            && cpu_has_amx_int8()
            && permitted()
    })
}

/// True when this CPU and kernel run AMX-BF16 tiles (as [`available`], with AMX-BF16).
pub(crate) fn bf16_available() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        // CPUID leaf 7, EDX bit 22: AMX-BF16 (asked only where `available` found leaf 7).
        available() && __cpuid_count(7, 0).edx & (1 << 22) != 0
    })
}

/// CPUID leaf 7: AMX-TILE (EDX bit 24) and AMX-INT8 (bit 25).
fn cpu_has_amx_int8() -> bool {
    // CPUID is available on every x86-64 CPU; leaf 7 is asked only if it exists.
    if __get_cpuid_max(0).0 < 7 {
        return false;
    }
    let l = __cpuid_count(7, 0);
    l.edx & (1 << 24) != 0 && l.edx & (1 << 25) != 0
}

/// Asks Linux for the AMX tile data state for this process (needed before any tile
/// instruction, else the kernel kills the process); false where it refuses or elsewhere.
fn permitted() -> bool {
    #[cfg(target_os = "linux")]
    {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with this request only changes the process' permitted xstate.
        unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The 64-byte tile configuration (`ldtilecfg`), palette 1.
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// Tiles for the legacy types' blocks of 32 values (8 lines): `tmm0..tmm3` sums (16 × 16 i32;
/// activation tile `t / 2` × band `t % 2`), `tmm4`/`tmm5` activations (16 rows × 32 bytes),
/// `tmm6`/`tmm7` weights (8 lines); the other 8 entries of palette 1 stay 0.
fn legacy_config() -> Config {
    let mut colsb = [0u16; 16];
    let mut rows = [0u8; 16];
    for (t, (c, r)) in
        [(64, 16), (64, 16), (64, 16), (64, 16), (32, 16), (32, 16), (64, 8), (64, 8)].into_iter().enumerate()
    {
        colsb[t] = c;
        rows[t] = r;
    }
    Config { palette: 1, start_row: 0, reserved: [0; 14], colsb, rows }
}

/// Loads a tile configuration into this thread until the guard drops (`tilerelease`, also on
/// unwinding).
pub(crate) struct Tiles;

impl Tiles {
    /// Every tile 16 rows × 64 bytes, for [`bf16_tile`] and [`kquant`].
    ///
    /// # Safety
    /// [`available`] ([`bf16_available`] for `tdpbf16ps`).
    pub(crate) unsafe fn square() -> Tiles {
        // Palette 1 has 8 tiles; the entries of the other 8 must be 0 (else `ldtilecfg` faults).
        let mut cfg = Config { palette: 1, start_row: 0, reserved: [0; 14], colsb: [0; 16], rows: [0; 16] };
        cfg.colsb[..8].fill(64);
        cfg.rows[..8].fill(16);
        // SAFETY: the caller's.
        unsafe { Tiles::load(&cfg) }
    }

    /// # Safety
    /// AMX available and permitted ([`available`]).
    unsafe fn load(cfg: &Config) -> Tiles {
        // SAFETY: the caller's; `cfg` is a valid palette-1 configuration.
        unsafe { asm!("ldtilecfg [{}]", in(reg) cfg, options(nostack, readonly, preserves_flags)) };
        Tiles
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: a configuration was loaded (`load`), so AMX is usable.
        unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
    }
}

/// One step: activation tiles at `a0`, `a1` (16 rows each, `sa` bytes apart) × weight tiles at
/// `b0`, `b1` (64-byte lines) into the four 256-`i32` buffers at `c` (`a0b0, a0b1, a1b0, a1b1`).
///
/// # Safety
/// [`legacy_config`] is loaded; every tile's bytes are readable and `c` holds
/// 4 KiB.
#[inline(always)]
unsafe fn step(a0: *const u8, a1: *const u8, sa: usize, b0: *const Line, b1: *const Line, c: *mut i32) {
    // SAFETY: the caller's.
    unsafe {
        asm!(
            "tileloadd tmm4, [{a0} + {sa}]",
            "tileloadd tmm6, [{b0} + {s64}]",
            "tilezero tmm0",
            "tdpbsud tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {s64}]",
            "tilezero tmm1",
            "tdpbsud tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {sa}]",
            "tilezero tmm2",
            "tdpbsud tmm2, tmm5, tmm6",
            "tilezero tmm3",
            "tdpbsud tmm3, tmm5, tmm7",
            "tilestored [{c} + {s64}], tmm0",
            "tilestored [{c} + {s64} + 1024], tmm1",
            "tilestored [{c} + {s64} + 2048], tmm2",
            "tilestored [{c} + {s64} + 3072], tmm3",
            a0 = in(reg) a0, a1 = in(reg) a1, sa = in(reg) sa, b0 = in(reg) b0, b1 = in(reg) b1,
            c = in(reg) c, s64 = in(reg) 64usize,
            options(nostack, preserves_flags)
        );
    }
}

/// Asks for `count` lines from `p` into L1: the weight tiles of two steps ahead (tile loads
/// from L2 were where the steps waited). Prefetches never fault.
#[inline(always)]
fn prefetch_lines(p: *const Line, count: usize) {
    for l in 0..count {
        // SAFETY: a prefetch reads nothing architecturally and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(l).cast()) };
    }
}

/// Clears the four sum tiles `tmm0..tmm3`.
///
/// # Safety
/// A tile configuration is loaded.
#[inline(always)]
unsafe fn zero_sums() {
    // SAFETY: the caller's.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem, preserves_flags)
        );
    }
}

/// Thread-local buffers for the stored sums: two steps of four tiles.
#[repr(C, align(64))]
struct Sums([[i32; 1024]; 2]);

thread_local! {
    static SUMS: std::cell::UnsafeCell<Sums> = const { std::cell::UnsafeCell::new(Sums([[0; 1024]; 2])) };
}

/// Four tiles' f32 results: `[activation tile × 2 + band][row]`.
type Acc = [[__m512; ROWS]; 4];

/// A pair of activation tiles and a pair of bands, with how many of each are real.
struct Pair<'a> {
    rows: [&'a [BlockQ8]; 2],
    bands: [*const Line; 2],
    n_rows: usize,
    n_bands: usize,
}

/// The legacy types (blocks of 32, `nb` per row): activation rows in tiles of 16 against every
/// band of `set`; returns the first row not done (fewer than 16 are left).
///
/// # Safety
/// [`available`]; `set` and `acts` as in `super::wide::tiles` (`m` rows of `nb` blocks).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn legacy(
    set: &Set,
    acts: &[BlockQ8],
    m: usize,
    nb: usize,
    n: usize,
    out: &Disjoint<'_, f32>,
) -> usize {
    // SAFETY: the caller's.
    let _tiles = unsafe { Tiles::load(&legacy_config()) };
    let done = m / ROWS * ROWS;
    SUMS.with(|sums| {
        let sums = sums.get().cast::<i32>();
        for i in (0..done).step_by(2 * ROWS) {
            let n_rows = if i + 2 * ROWS <= done { 2 } else { 1 };
            let r0 = &acts[i * nb..(i + ROWS) * nb];
            let r1 = if n_rows == 2 { &acts[(i + ROWS) * nb..(i + 2 * ROWS) * nb] } else { r0 };
            for j in (0..set.bands).step_by(2) {
                let n_bands = if j + 1 < set.bands { 2 } else { 1 };
                let pair = Pair { rows: [r0, r1], bands: [set.band(j), set.band(j + n_bands - 1)], n_rows, n_bands };
                let acc = legacy_pair(&pair, nb, sums);
                for ta in 0..n_rows {
                    for tb in 0..n_bands {
                        // SAFETY: this task owns bands j, j + 1 (weight rows) of every output row.
                        unsafe { store(out, &acc[2 * ta + tb], set.r0 + (j + tb) * BAND, i + ta * ROWS, n) };
                    }
                }
            }
        }
    });
    done
}

/// One pair of activation tiles × one pair of bands over all `nb` blocks (see the module docs).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn legacy_pair(pair: &Pair<'_>, nb: usize, sums: *mut i32) -> Acc {
    let mut acc = [[_mm512_setzero_ps(); ROWS]; 4];
    let stride = nb * size_of::<BlockQ8>();
    let qs = offset_of!(BlockQ8, qs);
    // The sums of block b went to buffer half b % 2; scale them into `acc`.
    let post = |acc: &mut Acc, b: usize| {
        for ta in 0..pair.n_rows {
            for tb in 0..pair.n_bands {
                // SAFETY: block b of the band (10 lines) and of every row; the half was stored.
                unsafe {
                    let p = pair.bands[tb].add(b * 10).cast::<__m512i>();
                    let d = _mm512_load_ps(p.add(8).cast());
                    let mw = _mm512_load_ps(p.add(9).cast());
                    let s = sums.add(1024 * (b % 2) + 256 * (2 * ta + tb)).cast::<__m512i>();
                    for (c, acc) in acc[2 * ta + tb].iter_mut().enumerate() {
                        let y = &pair.rows[ta][c * nb + b];
                        let t = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(s.add(c))), _mm512_set1_ps(y.d));
                        *acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(y.s), _mm512_fmadd_ps(d, t, *acc));
                    }
                }
            }
        }
    };
    for b in 0..nb {
        // SAFETY: block b's quants of 16 rows per tile (`stride` apart, in the slices) and its 8
        // weight lines per band; the buffer half holds 4 × 256 i32.
        unsafe {
            let a = |ta: usize| pair.rows[ta].as_ptr().add(b).cast::<u8>().add(qs);
            let w = |tb: usize| pair.bands[tb].add(b * 10);
            prefetch_lines(w(0).wrapping_add(20), 10);
            prefetch_lines(w(1).wrapping_add(20), 10);
            step(a(0), a(1), stride, w(0), w(1), sums.add(1024 * (b % 2)));
        }
        if b > 0 {
            post(&mut acc, b - 1);
        }
    }
    post(&mut acc, nb - 1);
    acc
}

/// The k-quants (`NSUB` sub-blocks per super-block) from the bands' folded lines
/// (`super::wide::fold`), in tiles of 16 activation rows (pairs) against one band at a time;
/// returns the first row not done (fewer than 16 are left).
///
/// # Safety
/// [`available`]; `set` unpacked with its folded lines, `acts` `m` rows of `nb` Q8_K blocks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn kquant<const NSUB: usize>(
    set: &Set,
    acts: &[BlockQ8K],
    pairs: &[[i32; 4]],
    m: usize,
    nb: usize,
    n: usize,
    out: &Disjoint<'_, f32>,
) -> usize {
    let done = m / ROWS * ROWS;
    if NSUB == 8 && pairs.len() < done * nb {
        return 0;
    }
    // SAFETY: the caller's.
    let _tiles = unsafe { Tiles::square() };
    SUMS.with(|sums| {
        let sums = sums.get().cast::<i32>();
        for i in (0..done).step_by(2 * ROWS) {
            let two = i + 2 * ROWS <= done;
            let r0 = &acts[i * nb..(i + ROWS) * nb];
            let r1 = if two { &acts[(i + ROWS) * nb..(i + 2 * ROWS) * nb] } else { r0 };
            let p = |t: usize| if NSUB == 8 { &pairs[(i + t * ROWS) * nb..(i + (t + 1) * ROWS) * nb] } else { &[] };
            let pr = [p(0), if two { p(1) } else { p(0) }];
            for j in 0..set.bands {
                let acc = k_folded::<NSUB>([r0, r1], pr, two, set.band(j), nb, sums);
                for (ta, acc) in acc.iter().enumerate().take(if two { 2 } else { 1 }) {
                    // SAFETY: this task owns band j (weight rows) of every output row.
                    unsafe { store(out, acc, set.r0 + j * BAND, i + ta * ROWS, n) };
                }
            }
        }
    });
    done
}

/// Two tiles of activation rows (the second a repeat of the first unless `two`) × one band
/// over all `nb` super-blocks: per 64 values, `tdpbsud` of the activations by the folded low
/// parts into `tmm0`/`tmm2` and `tdpbssd` by the high parts into `tmm1`/`tmm3`, summed over the
/// super-block in the tiles, then `d_a × (d × (128 h + l) − dmin × m)` in f32 (Q6_K: no `m`,
/// its offset is in the folded weights) while the next super-block multiplies.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn k_folded<const NSUB: usize>(
    rows: [&[BlockQ8K]; 2],
    pairs: [&[[i32; 4]]; 2],
    two: bool,
    band: *const Line,
    nb: usize,
    sums: *mut i32,
) -> [[__m512; ROWS]; 2] {
    let kl = super::wide::k_lines(NSUB);
    let stride = nb * size_of::<BlockQ8K>();
    let qs = offset_of!(BlockQ8K, qs);
    let mut acc = [[_mm512_setzero_ps(); ROWS]; 2];
    let post = |acc: &mut [[__m512; ROWS]; 2], b: usize| {
        // SAFETY: super-block b's lines; buffer half b % 2 holds its four tiles.
        unsafe {
            let pv = band.add(b * kl).cast::<__m512i>();
            let d = _mm512_load_ps(pv.add(64 + NSUB + 8).cast());
            let dm = _mm512_load_ps(pv.add(64 + NSUB + 9).cast());
            let buf = sums.add(1024 * (b % 2)).cast::<__m512i>();
            let mins = band.add(nb * kl + b * FOLDED_LINES + 128).cast::<__m512i>();
            for (ta, acc) in acc.iter_mut().enumerate().take(if two { 2 } else { 1 }) {
                for (c, acc) in acc.iter_mut().enumerate() {
                    let y = &rows[ta][c * nb + b];
                    let lo = _mm512_load_si512(buf.add(32 * ta + c));
                    let hi = _mm512_load_si512(buf.add(32 * ta + 16 + c));
                    let isum = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_slli_epi32::<7>(hi), lo));
                    let f = if NSUB == 16 {
                        _mm512_mul_ps(isum, d)
                    } else {
                        // The minimum term: each row's minimum pairs by the row's 32-value sums.
                        let pp = &pairs[ta][c * nb + b];
                        let mut ms = _mm512_setzero_si512();
                        for (q, &x) in pp.iter().enumerate() {
                            ms = _mm512_add_epi32(
                                ms,
                                _mm512_madd_epi16(_mm512_load_si512(mins.add(q)), _mm512_set1_epi32(x)),
                            );
                        }
                        _mm512_fmsub_ps(isum, d, _mm512_mul_ps(_mm512_cvtepi32_ps(ms), dm))
                    };
                    *acc = _mm512_fmadd_ps(f, _mm512_set1_ps(y.d), *acc);
                }
            }
        }
    };
    for b in 0..nb {
        // SAFETY: super-block b's 256 quants of 16 rows per tile (`stride` apart, in the
        // slices) and its 128 folded lines; the buffer half holds 4 × 256 i32.
        unsafe {
            let f = band.add(nb * kl + b * FOLDED_LINES);
            let a0 = rows[0].as_ptr().add(b).cast::<u8>().add(qs);
            let a1 = rows[1].as_ptr().add(b).cast::<u8>().add(qs);
            prefetch_lines(band.wrapping_add(nb * kl + (b + 1) * FOLDED_LINES), FOLDED_LINES);
            zero_sums();
            for g in 0..4 {
                asm!(
                    "tileloadd tmm4, [{a0} + {sa}]",
                    "tileloadd tmm6, [{l} + {s64}]",
                    "tileloadd tmm7, [{h} + {s64}]",
                    "tdpbsud tmm0, tmm4, tmm6",
                    "tdpbssd tmm1, tmm4, tmm7",
                    "tileloadd tmm5, [{a1} + {sa}]",
                    "tdpbsud tmm2, tmm5, tmm6",
                    "tdpbssd tmm3, tmm5, tmm7",
                    a0 = in(reg) a0.add(64 * g), a1 = in(reg) a1.add(64 * g), sa = in(reg) stride,
                    l = in(reg) f.add(16 * g), h = in(reg) f.add(64 + 16 * g), s64 = in(reg) 64usize,
                    options(nostack, readonly, preserves_flags)
                );
            }
            let c = sums.add(1024 * (b % 2));
            asm!(
                "tilestored [{c} + {s64}], tmm0",
                "tilestored [{c} + {s64} + 1024], tmm1",
                "tilestored [{c} + {s64} + 2048], tmm2",
                "tilestored [{c} + {s64} + 3072], tmm3",
                c = in(reg) c, s64 = in(reg) 64usize, options(nostack, preserves_flags)
            );
        }
        if b > 0 {
            post(&mut acc, b - 1);
        }
    }
    post(&mut acc, nb - 1);
    acc
}

/// `out[i * ostride + j] (+)= Σ_{p < kp} a[i][p] · panel[p][j]` for 16 activation rows (32 if
/// `two`) × a 32-row panel of bf16 pairs (`panel[p]` holds the 32 rows' pairs of column pair
/// `p`, 128 bytes), `a` the activations' pairs `astride` apart; `tdpbf16ps` sums each pair of
/// bf16 products into f32, as `vdpbf16ps` does. The sums stay in `tmm0..tmm3` over all `kp`
/// pairs (loaded from `out` when `add`) and are stored to `out` once.
///
/// # Safety
/// [`Tiles::bf16`] loaded; `kp` a multiple of 16; `a` holds 16 (32) rows of `kp` pairs, `panel`
/// `kp × 32` pairs, and the output tile (16 or 32 rows × 32 values, `ostride` apart) is the
/// caller's.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn bf16_tile(
    a: *const u32,
    astride: usize,
    panel: *const u32,
    kp: usize,
    out: *mut f32,
    ostride: usize,
    two: bool,
    add: bool,
) {
    let (sa, so) = (astride * 4, ostride * 4);
    // SAFETY (all below): the caller's; each tile reads or writes 16 rows × 64 bytes of them.
    unsafe {
        let out1 = out.add(16 * ostride);
        if add {
            asm!(
                "tileloadd tmm0, [{o} + {so}]",
                "tileloadd tmm1, [{o} + {so} + 64]",
                o = in(reg) out, so = in(reg) so, options(nostack, readonly, preserves_flags)
            );
            if two {
                asm!(
                    "tileloadd tmm2, [{o} + {so}]",
                    "tileloadd tmm3, [{o} + {so} + 64]",
                    o = in(reg) out1, so = in(reg) so, options(nostack, readonly, preserves_flags)
                );
            }
        } else {
            zero_sums();
        }
        for p in (0..kp).step_by(16) {
            let (ap, bp) = (a.add(p), panel.add(p * 32));
            asm!(
                "tileloadd tmm4, [{a} + {sa}]",
                "tileloadd tmm6, [{b} + {s128}]",
                "tileloadd tmm7, [{b} + {s128} + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                a = in(reg) ap, sa = in(reg) sa, b = in(reg) bp, s128 = in(reg) 128usize,
                options(nostack, readonly, preserves_flags)
            );
            if two {
                asm!(
                    "tileloadd tmm5, [{a} + {sa}]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a = in(reg) ap.add(16 * astride), sa = in(reg) sa,
                    options(nostack, readonly, preserves_flags)
                );
            }
        }
        asm!(
            "tilestored [{o} + {so}], tmm0",
            "tilestored [{o} + {so} + 64], tmm1",
            o = in(reg) out, so = in(reg) so, options(nostack, preserves_flags)
        );
        if two {
            asm!(
                "tilestored [{o} + {so}], tmm2",
                "tilestored [{o} + {so} + 64], tmm3",
                o = in(reg) out1, so = in(reg) so, options(nostack, preserves_flags)
            );
        }
    }
}

//! Weights re-laid at load for the kernels: groups of [`GROUP`] (8) rows interleaved block by
//! block, as llama.cpp's CPU "repack" buffers do for Q4_0 and Q4_K (`block_q4_0x8`,
//! `block_q4_Kx8`), here for every GGML block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
//! Q6_K), with a layout of our own chosen for the AVX2 `maddubs` kernels in [`avx2`]:
//!
//! - one 32-bit lane of a 256-bit register holds 4 consecutive quants of one row, and the 8
//!   lanes hold the same 4 positions of the 8 rows of a group; the activation's 4 matching
//!   bytes are broadcast to every lane, so `maddubs` + `madd` leave the 8 rows' partial sums
//!   in 8 lanes: no horizontal sums, no transposes, and the 8 results of a group are stored
//!   with one instruction;
//! - the group's 8 scales (and offsets) sit together (one F16C convert for 8 rows), and the
//!   k-quants' 6-bit scales and mins are unpacked to bytes, in the order the kernel uses them;
//! - high bits (Q5_0, Q5_1, Q5_K: the fifth; Q6_K: the top two) sit in planes of their own,
//!   arranged so that one load and a shift give the bits of several weight vectors.
//!
//! A packed matrix is one contiguous stream per group (one hardware-prefetch stream instead of
//! eight) and reads the same weight bytes as the file's layout: exactly for the legacy types
//! and Q6_K (re-laid in place), 32 bytes more per group of 8 super-blocks for Q4_K (+2.8%)
//! and Q5_K (+2.3%), for the unpacked scales. Only row counts that are a multiple of 8 are
//! packed; other matrices, and embedding tables (looked up by row), keep the file's layout.
//!
//! Legacy types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), per block index `b` of a group (8 blocks'
//! bytes): `d[8]` (f16) | `m[8]` (Q4_1, Q5_1) | the fifth bits (Q5_0, Q5_1) | for `k` in 0..4
//! (Q8_0: 0..8), for row `r` in 0..8: bytes `4k..4k+4` of row `r`'s quant bytes (low nibbles
//! are values `4k..4k+4`, high nibbles values `16+4k..`); see [`pack_legacy`].
//!
//! Q5_K: see [`pack_q5k`]; Q6_K: see [`pack_q6k`].
//!
//! Q4_K, per super-block index `b` of a group (8 × 144 + 32 = 1184 bytes):
//! `d[8]`, `dmin[8]` (f16) | scales `[s][r]` (u8, 64 bytes) | mins `[p][r][2]` (u8: the mins
//! of sub-blocks `2p` and `2p+1` of row `r`, 64 bytes) | for chunk `j` in 0..4, for `k` in
//! 0..8, for `r` in 0..8: bytes `32j+4k..32j+4k+4` of row `r`'s 128 quant bytes (low nibbles:
//! sub-block `2j`, high nibbles: sub-block `2j+1`).

// Within one block, every index is a loop counter over a local array of fixed length (256
// values, 8 scales, 8 rows) bounded by its loop; slices of the caller's bytes go through `get`.
#![allow(clippy::indexing_slicing)]

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod wide;

use zoo_ggml::quant::{pack_scale_min_k4, unpack_scale_min_k4};

use crate::act::{BlockQ8, BlockQ8K};
use crate::{KernelError, QuantType};

/// The activations of a call, quantized for the weight type (Q8 blocks for the legacy types,
/// Q8_K for the k-quants).
#[derive(Clone, Copy)]
pub(crate) enum Acts<'a> {
    Q8(&'a [BlockQ8]),
    Q8K(&'a [BlockQ8K]),
}

impl Acts<'_> {
    /// Blocks held, if they are the kind `t`'s kernels take (Q8_K for the k-quants, Q8 else).
    pub(crate) fn len_for(&self, t: QuantType) -> Option<usize> {
        let k = matches!(t, QuantType::Q4K | QuantType::Q5K | QuantType::Q6K);
        match *self {
            Acts::Q8(a) if !k => Some(a.len()),
            Acts::Q8K(a) if k => Some(a.len()),
            _ => None,
        }
    }
}

/// Whether a product over the packed groups of `rows` (whole groups) of `w` (`nb` blocks of
/// `t` per row), `m` activation rows of `acts` and an output of `m × n` (`out_len`) stays in
/// bounds: the check every packed kernel's entry point makes before its `unsafe` call.
#[allow(clippy::too_many_arguments)]
pub(crate) fn in_bounds(
    t: QuantType,
    w: &[u8],
    acts: Acts<'_>,
    m: usize,
    nb: usize,
    rows: &std::ops::Range<usize>,
    n: usize,
    out_len: usize,
) -> bool {
    let (Some(gb), Some(acts_len)) = (group_block_bytes(t), acts.len_for(t)) else { return false };
    rows.start.is_multiple_of(GROUP)
        && rows.end.is_multiple_of(GROUP)
        && rows.start <= rows.end
        && (rows.end / GROUP).checked_mul(nb * gb).is_some_and(|e| e <= w.len())
        && m.checked_mul(nb).is_some_and(|e| e <= acts_len)
        && m.checked_mul(n).is_some_and(|e| e <= out_len)
        && rows.end <= n
}

/// Writes a tile's results: `res[c]` (`width` floats, for weight rows `r0..r0 + width`) into
/// output row `i0 + c` through `st` (a vector store).
///
/// # Safety
/// The calling task owns weight rows `r0..r0 + width` of every output row; `st` must write
/// exactly `width` floats at the pointer it is given (`slice` checks the bounds).
#[inline(always)]
pub(crate) unsafe fn store_tile<V: Copy, const C: usize>(
    out: &crate::matmul::Disjoint<'_, f32>,
    res: &[V; C],
    (r0, i0, n, width): (usize, usize, usize, usize),
    st: impl Fn(*mut f32, V),
) {
    for (c, v) in res.iter().enumerate() {
        // SAFETY: the caller's; `slice` checks the bounds.
        if let Some(dst) = unsafe { out.slice((i0 + c) * n + r0, width) } {
            st(dst.as_mut_ptr(), *v);
        }
    }
}

/// Fewest activation rows for which the 512-bit prompt kernels (`wide`, AVX512-VNNI) run:
/// below, unpacking a band into a buffer costs more than the 256-bit tiles' in-register
/// unpacking (Zen 5, 7B shapes: 8 rows 1.3–2.1× faster through `wide`, 2 rows slower).
pub(crate) const WIDE_MIN_ROWS: usize = 8;

/// Rows per interleaved group.
pub const GROUP: usize = 8;

/// How a [`crate::QMatrix`]'s bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// As in the file: row after row, each `cols / block_size` blocks.
    #[default]
    Rows,
    /// Groups of [`GROUP`] rows interleaved block by block (see the module docs); made by
    /// [`pack`].
    Packed8,
}

/// Bytes of one packed block index of a group (all [`GROUP`] rows), if `t` can be packed.
pub fn group_block_bytes(t: QuantType) -> Option<usize> {
    match t {
        QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1 | QuantType::Q8_0 => {
            Some(GROUP * t.type_size())
        }
        QuantType::Q4K => Some(GROUP * 144 + 32),
        QuantType::Q5K => Some(GROUP * 144 + 32 + GROUP * 32),
        QuantType::Q6K => Some(GROUP * 210),
    }
}

/// Bytes of the packed form of a `rows × cols` matrix of `t`, or `None` when it is not packed
/// (a type without a packed form, rows not a multiple of [`GROUP`], or cols not whole blocks).
pub fn packed_len(t: QuantType, rows: usize, cols: usize) -> Option<usize> {
    let gb = group_block_bytes(t)?;
    if rows == 0 || !rows.is_multiple_of(GROUP) || !cols.is_multiple_of(t.block_size()) {
        return None;
    }
    (rows / GROUP).checked_mul(cols / t.block_size())?.checked_mul(gb)
}

/// Re-lays `src` (`rows` rows of `cols` values of `t`, the file's layout) into `dst`, which
/// must hold [`packed_len`] bytes.
pub fn pack(t: QuantType, src: &[u8], rows: usize, cols: usize, dst: &mut [u8]) -> Result<(), KernelError> {
    let (gb, nb, row_bytes) = shape(t, rows, cols, src.len(), dst.len())?;
    for (g, out) in src.chunks_exact(GROUP * row_bytes).zip(dst.chunks_exact_mut(nb * gb)) {
        let rows: [&[u8]; GROUP] = std::array::from_fn(|r| g.get(r * row_bytes..(r + 1) * row_bytes).unwrap_or(&[]));
        for (b, o) in out.chunks_exact_mut(gb).enumerate() {
            match t {
                QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1 | QuantType::Q8_0 => {
                    let tb = t.type_size();
                    pack_legacy(t, rows.map(|r| r.get(b * tb..(b + 1) * tb).unwrap_or(&[])), o)
                }
                QuantType::Q6K => pack_q6k(rows.map(|r| r.get(b * 210..(b + 1) * 210).unwrap_or(&[])), o),
                QuantType::Q5K => pack_q5k(rows.map(|r| r.get(b * 176..(b + 1) * 176).unwrap_or(&[])), o),
                _ => pack_q4k(rows.map(|r| r.get(b * 144..(b + 1) * 144).unwrap_or(&[])), o),
            }
        }
    }
    Ok(())
}

/// [`pack`] for matrices whose packed form is the same size, in place: one group at a time
/// through a small buffer, the groups split over `pool`'s threads (no second copy of the
/// matrix, and fresh pages are touched by every thread at once).
pub fn pack_in_place(
    pool: &crate::ThreadPool,
    t: QuantType,
    data: &mut [u8],
    rows: usize,
    cols: usize,
) -> Result<(), KernelError> {
    let (_, _, row_bytes) = shape(t, rows, cols, data.len(), data.len())?;
    let group = GROUP * row_bytes;
    let groups = rows / GROUP;
    let per = groups.div_ceil(4 * pool.threads()).max(1);
    let dst = crate::matmul::Disjoint::new(data);
    let failed = std::sync::atomic::AtomicBool::new(false);
    pool.run(groups.div_ceil(per), &|task| {
        let mut plain = vec![0u8; group];
        for g in task * per..((task + 1) * per).min(groups) {
            // SAFETY: task `task` alone touches groups `task * per..`, disjoint byte ranges.
            let Some(bytes) = (unsafe { dst.slice(g * group, group) }) else { continue };
            plain.copy_from_slice(bytes);
            if pack(t, &plain, GROUP, cols, bytes).is_err() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    if failed.into_inner() { Err(KernelError::Packed { qtype: t, rows }) } else { Ok(()) }
}

/// [`pack`] with the groups split over `pool`'s threads (`dst` must hold [`packed_len`] bytes).
pub fn pack_parallel(
    pool: &crate::ThreadPool,
    t: QuantType,
    src: &[u8],
    rows: usize,
    cols: usize,
    dst: &mut [u8],
) -> Result<(), KernelError> {
    let (gb, nb, row_bytes) = shape(t, rows, cols, src.len(), dst.len())?;
    let (plain, packed) = (GROUP * row_bytes, nb * gb);
    let groups = rows / GROUP;
    let per = groups.div_ceil(4 * pool.threads()).max(1);
    let out = crate::matmul::Disjoint::new(dst);
    let failed = std::sync::atomic::AtomicBool::new(false);
    pool.run(groups.div_ceil(per), &|task| {
        let gs = task * per..((task + 1) * per).min(groups);
        // SAFETY: task `task` alone writes groups `gs`, a byte range of its own.
        let Some(o) = (unsafe { out.slice(gs.start * packed, gs.len() * packed) }) else { return };
        let Some(i) = src.get(gs.start * plain..gs.end * plain) else { return };
        if pack(t, i, gs.len() * GROUP, cols, o).is_err() {
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    if failed.into_inner() { Err(KernelError::Packed { qtype: t, rows }) } else { Ok(()) }
}

/// The inverse of [`pack`] for one group: `group` (`nb` packed block indices) back into 8 rows
/// of the file's layout in `dst` (`8 * row_bytes` bytes).
pub fn unpack_group(t: QuantType, group: &[u8], dst: &mut [u8]) {
    let Some(gb) = group_block_bytes(t) else { return };
    let nb = group.len() / gb;
    let row_bytes = dst.len() / GROUP;
    let tb = t.type_size();
    let mut rows: Vec<&mut [u8]> = dst.chunks_exact_mut(row_bytes.max(1)).collect();
    for (b, p) in group.chunks_exact(gb).enumerate().take(nb) {
        let mut blocks: Vec<&mut [u8]> = rows.iter_mut().filter_map(|r| r.get_mut(b * tb..(b + 1) * tb)).collect();
        if blocks.len() != GROUP {
            return;
        }
        match t {
            QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1 | QuantType::Q8_0 => {
                unpack_legacy(t, p, &mut blocks)
            }
            QuantType::Q6K => unpack_q6k(p, &mut blocks),
            QuantType::Q5K => unpack_q5k(p, &mut blocks),
            _ => unpack_q4k(p, &mut blocks),
        }
    }
}

/// The inverse of [`pack`] for a whole matrix.
pub fn unpack(t: QuantType, src: &[u8], rows: usize, cols: usize, dst: &mut [u8]) -> Result<(), KernelError> {
    let (gb, nb, row_bytes) = shape(t, rows, cols, dst.len(), src.len())?;
    for (g, out) in src.chunks_exact(nb * gb).zip(dst.chunks_exact_mut(GROUP * row_bytes)) {
        unpack_group(t, g, out);
    }
    Ok(())
}

/// (group block bytes, blocks per row, row bytes), after checking both lengths.
fn shape(
    t: QuantType,
    rows: usize,
    cols: usize,
    plain: usize,
    packed: usize,
) -> Result<(usize, usize, usize), KernelError> {
    let row_bytes = t.row_bytes(cols).map_err(|_| KernelError::Cols { qtype: t, cols, block_size: t.block_size() })?;
    let expected = rows.checked_mul(row_bytes).ok_or(KernelError::Overflow)?;
    if plain != expected {
        return Err(KernelError::DataLength { qtype: t, expected, got: plain });
    }
    let want = packed_len(t, rows, cols).ok_or(KernelError::Packed { qtype: t, rows })?;
    if packed != want {
        return Err(KernelError::DataLength { qtype: t, expected: want, got: packed });
    }
    Ok((group_block_bytes(t).unwrap_or(1), cols / t.block_size(), row_bytes))
}

/// Where a legacy block keeps its parts: (offset `m` at, fifth bits at, quants at, quant bytes).
fn legacy_parts(t: QuantType) -> (Option<usize>, Option<usize>, usize, usize) {
    match t {
        QuantType::Q4_1 => (Some(2), None, 4, 16),
        QuantType::Q5_0 => (None, Some(2), 6, 16),
        QuantType::Q5_1 => (Some(2), Some(4), 8, 16),
        QuantType::Q8_0 => (None, None, 2, 32),
        _ => (None, None, 2, 16),
    }
}

/// The value whose fifth bit is bit `e` of byte `b` of a lane of the packed fifth-bit plane:
/// vectors 0..4 are the low nibbles (values `4e + b`), 4..8 the high ones (`16 + 4(e-4) + b`).
fn fifth_value(e: usize, b: usize) -> usize {
    if e < 4 { 4 * e + b } else { 16 + 4 * (e - 4) + b }
}

/// Legacy types, per block index of a group: `d[8]` | `m[8]` (Q4_1, Q5_1) | fifth bits (Q5_0,
/// Q5_1: 32 bytes, lane `r` byte `b` bit `e` for the value [`fifth_value`]`(e, b)` of row `r`)
/// | quants: for `k` in 0..4 (Q8_0: 0..8), for row `r`: quant bytes `4k..4k+4` of row `r`.
fn pack_legacy(t: QuantType, blocks: [&[u8]; GROUP], out: &mut [u8]) {
    let (m_at, h_at, q_at, q_len) = legacy_parts(t);
    let mut off = 16;
    for (r, b) in blocks.iter().enumerate() {
        copy(out, 2 * r, b, 0, 2);
        if let Some(m) = m_at {
            copy(out, 16 + 2 * r, b, m, 2);
        }
    }
    if m_at.is_some() {
        off += 16;
    }
    if let Some(h) = h_at {
        for (r, b) in blocks.iter().enumerate() {
            let qh = b.get(h..h + 4).and_then(|x| x.try_into().ok()).map_or(0, u32::from_le_bytes);
            for by in 0..4 {
                let bits = (0..8).fold(0u8, |acc, e| acc | ((((qh >> fifth_value(e, by)) & 1) as u8) << e));
                set(out, off + 4 * r + by, bits);
            }
        }
        off += 32;
    }
    for (r, b) in blocks.iter().enumerate() {
        for k in 0..q_len / 4 {
            copy(out, off + 32 * k + 4 * r, b, q_at + 4 * k, 4);
        }
    }
}

fn unpack_legacy(t: QuantType, p: &[u8], blocks: &mut [&mut [u8]]) {
    let (m_at, h_at, q_at, q_len) = legacy_parts(t);
    let mut off = 16;
    for (r, b) in blocks.iter_mut().enumerate() {
        copy(b, 0, p, 2 * r, 2);
        if let Some(m) = m_at {
            copy(b, m, p, 16 + 2 * r, 2);
        }
    }
    if m_at.is_some() {
        off += 16;
    }
    if let Some(h) = h_at {
        for (r, b) in blocks.iter_mut().enumerate() {
            let mut qh = 0u32;
            for by in 0..4 {
                let bits = p.get(off + 4 * r + by).copied().unwrap_or(0);
                for e in 0..8 {
                    qh |= u32::from((bits >> e) & 1) << fifth_value(e, by);
                }
            }
            if let Some(dst) = b.get_mut(h..h + 4) {
                dst.copy_from_slice(&qh.to_le_bytes());
            }
        }
        off += 32;
    }
    for (r, b) in blocks.iter_mut().enumerate() {
        for k in 0..q_len / 4 {
            copy(b, q_at + 4 * k, p, off + 32 * k + 4 * r, 4);
        }
    }
}

fn pack_q4k(blocks: [&[u8]; GROUP], out: &mut [u8]) {
    for (r, b) in blocks.iter().enumerate() {
        copy(out, 2 * r, b, 0, 2);
        copy(out, 16 + 2 * r, b, 2, 2);
        let packed: [u8; 12] = b.get(4..16).and_then(|s| s.try_into().ok()).unwrap_or([0; 12]);
        let (sc, mn) = unpack_scale_min_k4(&packed);
        for s in 0..8 {
            set(out, 32 + 8 * s + r, sc[s]);
            set(out, 96 + 16 * (s / 2) + 2 * r + s % 2, mn[s]);
        }
        for j in 0..4 {
            for k in 0..8 {
                copy(out, 160 + 256 * j + 32 * k + 4 * r, b, 16 + 32 * j + 4 * k, 4);
            }
        }
    }
}

fn unpack_q4k(p: &[u8], blocks: &mut [&mut [u8]]) {
    for (r, b) in blocks.iter_mut().enumerate() {
        copy(b, 0, p, 2 * r, 2);
        copy(b, 2, p, 16 + 2 * r, 2);
        let byte = |i: usize| p.get(i).copied().unwrap_or(0);
        let sc: [u8; 8] = std::array::from_fn(|s| byte(32 + 8 * s + r));
        let mn: [u8; 8] = std::array::from_fn(|s| byte(96 + 16 * (s / 2) + 2 * r + s % 2));
        if let Some(dst) = b.get_mut(4..16) {
            dst.copy_from_slice(&pack_scale_min_k4(sc, mn));
        }
        for j in 0..4 {
            for k in 0..8 {
                copy(b, 16 + 32 * j + 4 * k, p, 160 + 256 * j + 32 * k + 4 * r, 4);
            }
        }
    }
}

/// Q5_K, per super-block index of a group (8 × 176 + 32 = 1440 bytes): Q4_K's packed block
/// (1184 bytes: scales, mins and the low 4 bits, with `qh` left out) | the fifth bits: for
/// chunk `j` in 0..4, two 32-byte loads `h` (0: low nibbles, 1: high), lane `r` byte `b` bit
/// `e`: the fifth bit of value `64j + 32h + 4e + b` of row `r`.
fn pack_q5k(blocks: [&[u8]; GROUP], out: &mut [u8]) {
    let as_q4k: [[u8; 144]; GROUP] = blocks.map(|b| {
        let mut k = [0u8; 144];
        copy(&mut k, 0, b, 0, 16);
        copy(&mut k, 16, b, 48, 128);
        k
    });
    pack_q4k(as_q4k.each_ref().map(|k| &k[..]), out);
    for (r, b) in blocks.iter().enumerate() {
        let qh = |i: usize| b.get(16 + i).copied().unwrap_or(0);
        for by in 0..4 {
            // Byte e of `x` is qh[4e + by]; after the transpose, bit e of byte s is its bit s:
            // the fifth bits of plane s = 2j + h, byte `by`.
            let x = transpose8(u64::from_le_bytes(std::array::from_fn(|e| qh(4 * e + by))));
            for (s, bits) in x.to_le_bytes().into_iter().enumerate() {
                set(out, 1184 + 32 * s + 4 * r + by, bits);
            }
        }
    }
}

/// The transpose of an 8 × 8 bit matrix (byte `i`, bit `j` → byte `j`, bit `i`), Hacker's
/// Delight's `transpose8` on one 64-bit word.
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x = x ^ t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x = x ^ t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

fn unpack_q5k(p: &[u8], blocks: &mut [&mut [u8]]) {
    let mut as_q4k = [[0u8; 144]; GROUP];
    {
        let mut parts: Vec<&mut [u8]> = as_q4k.iter_mut().map(|k| &mut k[..]).collect();
        unpack_q4k(p, &mut parts);
    }
    for (r, b) in blocks.iter_mut().enumerate() {
        let k = &as_q4k[r];
        copy(b, 0, k, 0, 16);
        copy(b, 48, k, 16, 128);
        let mut qh = [0u8; 32];
        for by in 0..4 {
            let planes: [u8; 8] = std::array::from_fn(|s| p.get(1184 + 32 * s + 4 * r + by).copied().unwrap_or(0));
            for (e, byte) in transpose8(u64::from_le_bytes(planes)).to_le_bytes().into_iter().enumerate() {
                qh[4 * e + by] = byte;
            }
        }
        copy(b, 16, &qh, 0, 32);
    }
}

/// The 256 six-bit values (0..64, before the `-32`) of a Q6_K block, in value order, written
/// back as `ql` and `qh` (the first 192 bytes of the block; ggml's `dequantize_row_q6_K` reads them).
fn q6k_encode(q: &[u8; 256], b: &mut [u8]) {
    for h in 0..2 {
        for l in 0..32 {
            let v = &q[128 * h..];
            let (v1, v2, v3, v4) = (v[l], v[l + 32], v[l + 64], v[l + 96]);
            set(b, 64 * h + l, (v1 & 0xF) | ((v3 & 0xF) << 4));
            set(b, 64 * h + l + 32, (v2 & 0xF) | ((v4 & 0xF) << 4));
            set(b, 128 + 32 * h + l, (v1 >> 4) | ((v2 >> 4) << 2) | ((v3 >> 4) << 4) | ((v4 >> 4) << 6));
        }
    }
}

/// Q6_K, per super-block index of a group (8 × 210 = 1680 bytes): `d[8]` (f16) | scales
/// `[p][r][2]` (i8: sub-blocks `2p`, `2p + 1` of row `r`, 128 bytes) | for `t` in 0..8 (32
/// values), 192 bytes: 4 × 32 bytes of nibbles (load `i`, lane `r`, byte `b`: low nibble of
/// value `32t + 4i + b`, high nibble of value `32t + 16 + 4i + b`) and 2 × 32 bytes of high
/// bits (load `h`, lane `r`, byte `b`: bits `2e..2e+2` are the top 2 bits of value
/// `32t + 16h + 4e + b`).
fn pack_q6k(blocks: [&[u8]; GROUP], out: &mut [u8]) {
    for (r, b) in blocks.iter().enumerate() {
        copy(out, 2 * r, b, 208, 2);
        for s in 0..16 {
            copy(out, 16 + 16 * (s / 2) + 2 * r + s % 2, b, 192 + s, 1);
        }
        // Four bytes at a time. Value v = 128h' + 32q + l keeps its low nibble in
        // ql[64h' + 32(q % 2) + l] (high nibble of that byte when q >= 2) and its top two bits
        // in bits 2q.. of qh[32h' + l]; the 4 values 32t + 4i + b (b = 0..4) share h' = t / 4,
        // q = t % 4 and consecutive l.
        let word = |at: usize| b.get(at..at + 4).and_then(|x| x.try_into().ok()).map_or(0, u32::from_le_bytes);
        for t in 0..8 {
            let (hq, q) = (t / 4, t % 4);
            let base = 144 + 192 * t + 4 * r;
            for i in 0..4 {
                let at = 64 * hq + 32 * (q % 2) + 4 * i;
                let (lo, hi) = (word(at), word(at + 16));
                let v = if q < 2 {
                    (lo & 0x0F0F_0F0F) | ((hi & 0x0F0F_0F0F) << 4)
                } else {
                    ((lo >> 4) & 0x0F0F_0F0F) | (hi & 0xF0F0_F0F0)
                };
                put(out, base + 32 * i, v);
            }
            for h in 0..2 {
                let v = (0..4).fold(0u32, |acc, e| {
                    acc | (((word(128 + 32 * hq + 16 * h + 4 * e) >> (2 * q)) & 0x0303_0303) << (2 * e))
                });
                put(out, base + 128 + 32 * h, v);
            }
        }
    }
}

/// Writes `v` little-endian at `at` (if it fits).
#[inline]
fn put(dst: &mut [u8], at: usize, v: u32) {
    if let Some(d) = dst.get_mut(at..at + 4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

fn unpack_q6k(p: &[u8], blocks: &mut [&mut [u8]]) {
    let byte = |i: usize| p.get(i).copied().unwrap_or(0);
    for (r, b) in blocks.iter_mut().enumerate() {
        copy(b, 208, p, 2 * r, 2);
        for s in 0..16 {
            copy(b, 192 + s, p, 16 + 16 * (s / 2) + 2 * r + s % 2, 1);
        }
        let mut q = [0u8; 256];
        for t in 0..8 {
            let base = 144 + 192 * t + 4 * r;
            for i in 0..4 {
                for by in 0..4 {
                    let n = byte(base + 32 * i + by);
                    q[32 * t + 4 * i + by] = n & 0xF;
                    q[32 * t + 16 + 4 * i + by] = n >> 4;
                }
            }
            for h in 0..2 {
                for by in 0..4 {
                    let bits = byte(base + 128 + 32 * h + by);
                    for e in 0..4 {
                        q[32 * t + 16 * h + 4 * e + by] |= ((bits >> (2 * e)) & 3) << 4;
                    }
                }
            }
        }
        q6k_encode(&q, b);
    }
}

/// `dst[at..at + len] = src[from..from + len]`, where both exist (the callers' offsets are
/// all in range for blocks of the right size, which `shape` checked).
#[inline]
fn copy(dst: &mut [u8], at: usize, src: &[u8], from: usize, len: usize) {
    if let (Some(d), Some(s)) = (dst.get_mut(at..at + len), src.get(from..from + len)) {
        d.copy_from_slice(s);
    }
}

#[inline]
fn set(dst: &mut [u8], at: usize, v: u8) {
    if let Some(d) = dst.get_mut(at) {
        *d = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack_is_the_identity() {
        for t in QuantType::ALL {
            let (rows, cols) = (16, 512);
            let mut next = crate::xorshift(0x2545_F491_4F6C_DD1D);
            let values: Vec<f32> =
                (0..rows * cols).map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect();
            let mut plain = vec![0u8; rows * t.row_bytes(cols).unwrap()];
            zoo_ggml::quant::quantize_row(t, &values, &mut plain).unwrap();
            let mut packed = vec![0u8; packed_len(t, rows, cols).unwrap()];
            pack(t, &plain, rows, cols, &mut packed).unwrap();
            let mut back = vec![0u8; plain.len()];
            unpack(t, &packed, rows, cols, &mut back).unwrap();
            assert_eq!(back, plain, "{t:?}");
        }
    }

    #[test]
    fn transpose8_moves_bit_j_of_byte_i_to_bit_i_of_byte_j() {
        for (i, j) in [(0, 0), (0, 7), (7, 0), (3, 5), (6, 2), (7, 7)] {
            let x = 1u64 << (8 * i + j);
            assert_eq!(transpose8(x), 1u64 << (8 * j + i), "byte {i} bit {j}");
        }
        let x = 0x0123_4567_89AB_CDEFu64;
        assert_eq!(transpose8(transpose8(x)), x);
    }

    #[test]
    fn only_whole_groups_of_packable_types_pack() {
        assert_eq!(packed_len(QuantType::Q4_0, 8, 64), Some(2 * 144));
        assert_eq!(packed_len(QuantType::Q4K, 16, 256), Some(2 * 1184));
        assert_eq!(packed_len(QuantType::Q4_0, 12, 64), None);
        assert_eq!(packed_len(QuantType::Q4_0, 0, 64), None);
        assert_eq!(packed_len(QuantType::Q5K, 8, 256), Some(1440));
        let mut dst = vec![0u8; 100];
        assert!(pack(QuantType::Q4_0, &[0; 288], 8, 64, &mut dst).is_err());
        assert!(pack(QuantType::Q4_0, &[0; 287], 8, 64, &mut [0; 288]).is_err());
    }
}

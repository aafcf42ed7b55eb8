//! The 256-value "k-quant" super-block types Q4_K, Q5_K and Q6_K: ports of ggml's
//! `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref` (both with `make_qkx2_quants`),
//! `quantize_row_q6_K_ref` (with `make_qx_quants`) and their dequantizers.
//!
//! Levels are kept in nested arrays shaped like the packed layout (`[chunk][part][lane]`), so
//! packing is a walk over matching arrays and flattening gives the sub-blocks in element order.

use std::slice;

use super::{f16_bytes, f16_value, nearest_int};

pub(super) const Q4_K_BYTES: usize = 144;
pub(super) const Q5_K_BYTES: usize = 176;
pub(super) const Q6_K_BYTES: usize = 210;

/// ggml's `GROUP_MAX_EPS`: a sub-block whose largest magnitude is below this is all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// The next `N` bytes of a block (blocks have fixed sizes, so `it` is never short).
fn take<const N: usize>(it: &mut slice::Iter<'_, u8>) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(it) {
        *o = *b;
    }
    out
}

/// Writes `bytes` to the next bytes of a block.
fn put(it: &mut slice::IterMut<'_, u8>, bytes: &[u8]) {
    for (b, o) in bytes.iter().zip(it) {
        *o = *b;
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit (scale, min) pairs for 8 sub-blocks of 32, then
// 128 bytes of nibbles: for chunk c of 64 values, byte 32c + l holds value 64c + l in its low
// nibble and value 64c + 32 + l in its high nibble. x = d * sc_j * q - dmin * m_j.
// ---------------------------------------------------------------------------------------------

/// Packs eight 6-bit scales and mins as ggml's `quantize_row_q4_K_ref` does.
pub fn pack_scale_min_k4(ls: [u8; 8], lm: [u8; 8]) -> [u8; 12] {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = ls;
    let [m0, m1, m2, m3, m4, m5, m6, m7] = lm;
    [
        s0 | ((s4 >> 4) << 6),
        s1 | ((s5 >> 4) << 6),
        s2 | ((s6 >> 4) << 6),
        s3 | ((s7 >> 4) << 6),
        m0 | ((m4 >> 4) << 6),
        m1 | ((m5 >> 4) << 6),
        m2 | ((m6 >> 4) << 6),
        m3 | ((m7 >> 4) << 6),
        (s4 & 0x0F) | ((m4 & 0x0F) << 4),
        (s5 & 0x0F) | ((m5 & 0x0F) << 4),
        (s6 & 0x0F) | ((m6 & 0x0F) << 4),
        (s7 & 0x0F) | ((m7 & 0x0F) << 4),
    ]
}

/// ggml's `get_scale_min_k4` for all eight sub-blocks: (scales, mins). Also used by the
/// quantized dot products of `zoo-kernels`.
#[inline]
pub fn unpack_scale_min_k4(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let [q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11] = *q;
    let scales = [
        q0 & 63,
        q1 & 63,
        q2 & 63,
        q3 & 63,
        (q8 & 0x0F) | ((q0 >> 6) << 4),
        (q9 & 0x0F) | ((q1 >> 6) << 4),
        (q10 & 0x0F) | ((q2 >> 6) << 4),
        (q11 & 0x0F) | ((q3 >> 6) << 4),
    ];
    let mins = [
        q4 & 63,
        q5 & 63,
        q6 & 63,
        q7 & 63,
        (q8 >> 4) | ((q4 >> 6) << 4),
        (q9 >> 4) | ((q5 >> 6) << 4),
        (q10 >> 4) | ((q6 >> 6) << 4),
        (q11 >> 4) | ((q7 >> 6) << 4),
    ];
    (scales, mins)
}

/// ggml's `make_qkx2_quants` (squared error, `use_mad = false`) for one sub-block of 32, as
/// written in ggml: the reference that [`make_qkx2_quants_x8`] is tested against. It
/// fits `x ≈ scale * l - min` with weighted least squares over `nstep + 1` trial scales.
/// Writes the levels and returns `(scale, min)`, `min` as a positive offset (`the_min`).
#[cfg(test)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32; 32],
    weights: &[f32; 32],
    levels: &mut [u8; 32],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&xi, &w) in x.iter().zip(weights).skip(1) {
        if xi < min {
            min = xi;
        }
        if xi > max {
            max = xi;
        }
        sum_w += w;
        sum_x += w * xi;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let nmax_f = nmax as f32;
    let level = |iscale: f32, xi: f32, min: f32| nearest_int(iscale * (xi - min)).clamp(0, nmax);

    let iscale = nmax_f / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for ((l, &xi), &w) in levels.iter_mut().zip(x).zip(weights) {
        let q = level(iscale, xi, min);
        *l = q as u8;
        let diff = scale * q as f32 + min - xi;
        best_error += w * (diff * diff);
    }
    let mut trial = [0u8; 32];
    for is in 0..=nstep {
        // `min` moves to the best fit so far, and the next trials start from it, as in ggml.
        let iscale = (rmin + rdelta * is as f32 + nmax_f) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((l, &xi), &w) in trial.iter_mut().zip(x).zip(weights) {
            let q = level(iscale, xi, min);
            *l = q as u8;
            let lf = q as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * xi;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for ((&l, &xi), &w) in trial.iter().zip(x).zip(weights) {
                let diff = this_scale * f32::from(l) + this_min - xi;
                cur_error += w * (diff * diff);
            }
            if cur_error < best_error {
                *levels = trial;
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// [`make_qkx2_quants`] on eight sub-blocks at once, `x[i][lane]` being value `i` of sub-block
/// `lane`. Every lane does exactly the scalar function's float operations in the same order
/// (branches become selects; a lane's discarded results never reach its outputs), so the
/// results are bit-identical while the lanes run in SIMD registers.
// Fixed-size arrays indexed by loops over exactly their lengths (0..32, 0..8): no index can
// be out of bounds, and plain indexing is what lets the compiler keep the lanes in registers.
#[allow(clippy::needless_range_loop, clippy::indexing_slicing)]
fn make_qkx2_quants_x8(
    nmax: i32,
    x: &[[f32; 8]; 32],
    weights: &[[f32; 8]; 32],
    levels: &mut [[u8; 8]; 32],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> ([f32; 8], [f32; 8]) {
    type L = [f32; 8];
    let mut min: L = x[0];
    let mut max: L = x[0];
    let mut sum_w: L = weights[0];
    let mut sum_x: L = [0.0; 8];
    for k in 0..8 {
        sum_x[k] = sum_w[k] * x[0][k];
    }
    for i in 1..32 {
        for k in 0..8 {
            let (xi, w) = (x[i][k], weights[i][k]);
            if xi < min[k] {
                min[k] = xi;
            }
            if xi > max[k] {
                max[k] = xi;
            }
            sum_w[k] += w;
            sum_x[k] += w * xi;
        }
    }
    let mut flat = [false; 8];
    for k in 0..8 {
        if min[k] > 0.0 {
            min[k] = 0.0;
        }
        flat[k] = max[k] == min[k];
    }
    let flat_min = min;
    let nmax_f = nmax as f32;
    let mut iscale: L = [0.0; 8];
    let mut scale: L = [0.0; 8];
    for k in 0..8 {
        iscale[k] = nmax_f / (max[k] - min[k]);
        scale[k] = 1.0 / iscale[k];
    }
    let mut best_error: L = [0.0; 8];
    for i in 0..32 {
        for k in 0..8 {
            let q = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, nmax);
            levels[i][k] = q as u8;
            let diff = scale[k] * q as f32 + min[k] - x[i][k];
            best_error[k] += weights[i][k] * (diff * diff);
        }
    }
    let mut trial = [[0u8; 8]; 32];
    for is in 0..=nstep {
        let step = rmin + rdelta * is as f32 + nmax_f;
        let mut iscale: L = [0.0; 8];
        for k in 0..8 {
            iscale[k] = step / (max[k] - min[k]);
        }
        let (mut sum_l, mut sum_l2, mut sum_xl): (L, L, L) = ([0.0; 8], [0.0; 8], [0.0; 8]);
        for i in 0..32 {
            for k in 0..8 {
                let q = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, nmax);
                trial[i][k] = q as u8;
                let lf = q as f32;
                let w = weights[i][k];
                sum_l[k] += w * lf;
                sum_l2[k] += w * lf * lf;
                sum_xl[k] += w * lf * x[i][k];
            }
        }
        let mut this_scale: L = [0.0; 8];
        let mut this_min: L = [0.0; 8];
        let mut ok = [false; 8];
        for k in 0..8 {
            let det = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k];
            ok[k] = det > 0.0;
            let s = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / det;
            let m = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / det;
            let clamp = m > 0.0;
            this_min[k] = if clamp { 0.0 } else { m };
            this_scale[k] = if clamp { sum_xl[k] / sum_l2[k] } else { s };
        }
        let mut cur_error: L = [0.0; 8];
        for i in 0..32 {
            for k in 0..8 {
                let diff = this_scale[k] * f32::from(trial[i][k]) + this_min[k] - x[i][k];
                cur_error[k] += weights[i][k] * (diff * diff);
            }
        }
        let mut take = [false; 8];
        for k in 0..8 {
            take[k] = ok[k] && cur_error[k] < best_error[k];
            if take[k] {
                best_error[k] = cur_error[k];
                scale[k] = this_scale[k];
                min[k] = this_min[k];
            }
        }
        for i in 0..32 {
            for k in 0..8 {
                if take[k] {
                    levels[i][k] = trial[i][k];
                }
            }
        }
    }
    let mut out_min: L = [0.0; 8];
    for k in 0..8 {
        if flat[k] {
            scale[k] = 0.0;
            out_min[k] = -flat_min[k];
            for row in levels.iter_mut() {
                row[k] = 0;
            }
        } else {
            out_min[k] = -min[k];
        }
    }
    (scale, out_min)
}

/// Levels of a Q4_K / Q5_K block: `[chunk][half][lane]` is value 64 chunk + 32 half + lane, so
/// flattening once gives the 8 sub-blocks of 32 in element order.
type K4Levels = [[[u8; 32]; 2]; 4];

/// The part ggml's `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref` share: fit every
/// sub-block of 32 with `make_qkx2_quants(nmax, .., rmin, rdelta, nstep)`, quantize the eight
/// scales and minimums to 6 bits against f16 super-scales, then re-quantize every value against
/// the scales as stored. Returns the bytes of `d`, `dmin` and the packed scales; `levels` gets
/// the values in `0..=nmax`.
fn fit_k4_levels(
    x: &[f32; 256],
    nmax: i32,
    (rmin, rdelta, nstep): (f32, f32, i32),
    levels: &mut K4Levels,
) -> ([u8; 2], [u8; 2], [u8; 12]) {
    let (subs, _) = x.as_chunks::<32>();
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    // The eight sub-blocks are fitted side by side, one per lane (see `make_qkx2_quants_x8`).
    let mut xt = [[0.0f32; 8]; 32];
    let mut wt = [[0.0f32; 8]; 32];
    for (lane, xs) in subs.iter().enumerate() {
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for ((xr, wr), &v) in xt.iter_mut().zip(wt.iter_mut()).zip(xs) {
            if let (Some(a), Some(b)) = (xr.get_mut(lane), wr.get_mut(lane)) {
                *a = v;
                *b = av_x + v.abs();
            }
        }
    }
    let mut lt = [[0u8; 8]; 32];
    let (scales, mins) = make_qkx2_quants_x8(nmax, &xt, &wt, &mut lt, rmin, rdelta, nstep);
    for (lane, ls) in levels.as_flattened_mut().iter_mut().enumerate() {
        for (l, row) in ls.iter_mut().zip(&lt) {
            *l = row.get(lane).copied().unwrap_or(0);
        }
    }
    for (scale, min) in scales.iter().zip(&mins) {
        if *scale > max_scale {
            max_scale = *scale;
        }
        if *min > max_min {
            max_min = *min;
        }
    }

    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for (((a, b), &s), &m) in ls.iter_mut().zip(&mut lm).zip(&scales).zip(&mins) {
        // C: `uint8_t ls = nearest_int(..)` keeps the low 8 bits, then MIN(63, ls).
        *a = (nearest_int(inv_scale * s) as u8).min(63);
        *b = (nearest_int(inv_min * m) as u8).min(63);
    }
    let packed = pack_scale_min_k4(ls, lm);
    let d = f16_bytes(max_scale / 63.0);
    let dmin = f16_bytes(max_min / 63.0);

    // Re-quantize every value against the scales as stored (6-bit, times the f16 super-scales).
    let (sc, mn) = unpack_scale_min_k4(&packed);
    let (d_all, dmin_all) = (f16_value(d), f16_value(dmin));
    for (((xs, ls), &sc), &m) in subs.iter().zip(levels.as_flattened_mut()).zip(&sc).zip(&mn) {
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            // ggml keeps make_qkx2_quants' levels for a zero scale.
            continue;
        }
        let dm = dmin_all * f32::from(m);
        for (l, &v) in ls.iter_mut().zip(xs) {
            *l = nearest_int((v + dm) / d).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, packed)
}

pub(super) fn quantize_q4_k(x: &[f32; 256], y: &mut [u8; Q4_K_BYTES]) {
    let mut levels: K4Levels = [[[0u8; 32]; 2]; 4];
    let (d, dmin, packed) = fit_k4_levels(x, 15, (-1.0, 0.1, 20), &mut levels);
    let mut qs = [[0u8; 32]; 4];
    for (q, [lo, hi]) in qs.iter_mut().zip(&levels) {
        for ((q, &a), &b) in q.iter_mut().zip(lo).zip(hi) {
            *q = a | (b << 4);
        }
    }
    let mut out = y.iter_mut();
    put(&mut out, &d);
    put(&mut out, &dmin);
    put(&mut out, &packed);
    put(&mut out, qs.as_flattened());
}

pub(super) fn dequantize_q4_k(y: &[u8; Q4_K_BYTES], x: &mut [f32; 256]) {
    let mut it = y.iter();
    let d = f16_value(take(&mut it));
    let dmin = f16_value(take(&mut it));
    let (sc, mn) = unpack_scale_min_k4(&take(&mut it));
    let qs: [u8; 128] = take(&mut it);
    let mut q = qs.chunks_exact(32).flat_map(|c| c.iter().map(|b| b & 0x0F).chain(c.iter().map(|b| b >> 4)));
    for ((xs, &sc), &m) in x.as_chunks_mut::<32>().0.iter_mut().zip(&sc).zip(&mn) {
        let d1 = d * f32::from(sc);
        let m1 = dmin * f32::from(m);
        for (o, v) in xs.iter_mut().zip(q.by_ref()) {
            *o = d1 * f32::from(v) - m1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q5_K: f16 d, f16 dmin, the 12 scale bytes of Q4_K, qh[32], then qs[128] laid out as Q4_K's
// nibbles (byte 32c + l: value 64c + l low, value 64c + 32 + l high). The fifth bit of value
// 64c + 32h + l is bit 2c + h of qh[l]. x = d * sc_j * q - dmin * m_j, q in 0..32.
// ---------------------------------------------------------------------------------------------

/// ggml's `quantize_row_q5_K_ref`: Q4_K's fit with `nmax = 31` and the trial grid ggml uses for
/// Q5_K (`rmin = -0.5`, `rdelta = 0.1`, `nstep = 15`).
pub(super) fn quantize_q5_k(x: &[f32; 256], y: &mut [u8; Q5_K_BYTES]) {
    let mut levels: K4Levels = [[[0u8; 32]; 2]; 4];
    let (d, dmin, packed) = fit_k4_levels(x, 31, (-0.5, 0.1, 15), &mut levels);
    let mut qh = [0u8; 32];
    let mut qs = [[0u8; 32]; 4];
    for (c, (q, [lo, hi])) in qs.iter_mut().zip(&levels).enumerate() {
        for (((q, h), &a), &b) in q.iter_mut().zip(&mut qh).zip(lo).zip(hi) {
            *q = (a & 0x0F) | ((b & 0x0F) << 4);
            *h |= ((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1));
        }
    }
    let mut out = y.iter_mut();
    put(&mut out, &d);
    put(&mut out, &dmin);
    put(&mut out, &packed);
    put(&mut out, &qh);
    put(&mut out, qs.as_flattened());
}

/// ggml's `dequantize_row_q5_K`.
pub(super) fn dequantize_q5_k(y: &[u8; Q5_K_BYTES], x: &mut [f32; 256]) {
    let mut it = y.iter();
    let d = f16_value(take(&mut it));
    let dmin = f16_value(take(&mut it));
    let (sc, mn) = unpack_scale_min_k4(&take(&mut it));
    let qh: [u8; 32] = take(&mut it);
    let qs: [u8; 128] = take(&mut it);
    // Sub-block j = 2c + h: nibble h of bytes 32c.., fifth bit j of qh.
    let subs = x.as_chunks_mut::<32>().0.iter_mut().zip(&sc).zip(&mn).enumerate();
    for (j, ((xs, &sc), &m)) in subs {
        let d1 = d * f32::from(sc);
        let m1 = dmin * f32::from(m);
        let bytes = qs.chunks_exact(32).nth(j / 2).unwrap_or(&[]);
        for ((o, &b), &h) in xs.iter_mut().zip(bytes).zip(&qh) {
            let q = ((b >> (4 * (j % 2))) & 0x0F) | (((h >> j) & 1) << 4);
            *o = d1 * f32::from(q) - m1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), 16 i8 scales (one per 16 values), f16 d.
// For chunk c of 128 values and lane l < 32, with v_k = value 128c + 32k + l:
// ql[64c + l] = v0 | v2 << 4 (low nibbles), ql[64c + 32 + l] = v1 | v3 << 4,
// qh[32c + l] = the high 2 bits of v0, v1, v2, v3 at shifts 0, 2, 4, 6. x = d * sc * (q - 32).
// ---------------------------------------------------------------------------------------------

/// Levels of a Q6_K block: `[chunk][k][lane]` is value 128 chunk + 32 k + lane, biased by 32.
type Q6Levels = [[[u8; 32]; 4]; 2];

/// The 16 sub-blocks of 16 values, in element order.
fn sixteens(levels: &mut Q6Levels) -> &mut [[u8; 16]] {
    levels.as_flattened_mut().as_flattened_mut().as_chunks_mut::<16>().0
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (weights `x²`):
/// writes levels `l + nmax` for `x ≈ scale * l`, `l` in `-nmax..nmax`, and returns `scale`.
fn make_qx_quants(nmax: i32, x: &[f32; 16], levels: &mut [u8; 16]) -> f32 {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let nmax_f = nmax as f32;
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);

    let iscale = -nmax_f / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (l, &v) in levels.iter_mut().zip(x) {
        let q = level(iscale, v);
        *l = (q + nmax) as u8;
        let (w, qf) = (v * v, q as f32);
        sumlx += w * v * qf;
        suml2 += w * qf * qf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax_f + 0.1 * is as f32) / max;
        let mut sumlx = 0.0f32;
        let mut suml2 = 0.0f32;
        for &v in x {
            let (w, qf) = (v * v, level(iscale, v) as f32);
            sumlx += w * v * qf;
            suml2 += w * qf * qf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l, &v) in levels.iter_mut().zip(x) {
                *l = (nmax + level(iscale, v)) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

pub(super) fn quantize_q6_k(x: &[f32; 256], y: &mut [u8; Q6_K_BYTES]) {
    let (subs, _) = x.as_chunks::<16>();
    let mut levels: Q6Levels = [[[0u8; 32]; 4]; 2];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for ((xs, ls), scale) in subs.iter().zip(sixteens(&mut levels)).zip(&mut scales) {
        *scale = make_qx_quants(32, xs, ls);
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = *scale;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        // An all-zero block (d = +0.0 is zero bytes too).
        y.fill(0);
        return;
    }

    let iscale = -128.0 / max_scale;
    let d = f16_bytes(1.0 / iscale);
    let mut sc = [0u8; 16];
    for (q, &s) in sc.iter_mut().zip(&scales) {
        // C stores MIN(127, nearest_int(..)) into an int8_t: keep the low 8 bits.
        *q = nearest_int(iscale * s).min(127) as i8 as u8;
    }

    let d_all = f16_value(d);
    for ((xs, ls), &q) in subs.iter().zip(sixteens(&mut levels)).zip(&sc) {
        let d = d_all * f32::from(q as i8);
        if d == 0.0 {
            // ggml keeps make_qx_quants' levels for a zero scale.
            continue;
        }
        for (l, &v) in ls.iter_mut().zip(xs) {
            *l = (nearest_int(v / d).clamp(-32, 31) + 32) as u8;
        }
    }

    let mut ql = [[[0u8; 32]; 2]; 2];
    let mut qh = [[0u8; 32]; 2];
    for (([v0, v1, v2, v3], [ql0, ql1]), qh) in levels.iter().zip(&mut ql).zip(&mut qh) {
        let lanes = v0.iter().zip(v1).zip(v2).zip(v3);
        for ((((&a, &b), &c), &e), ((lo, hi), h)) in lanes.zip(ql0.iter_mut().zip(ql1.iter_mut()).zip(qh.iter_mut())) {
            *lo = (a & 0x0F) | ((c & 0x0F) << 4);
            *hi = (b & 0x0F) | ((e & 0x0F) << 4);
            *h = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
        }
    }
    let mut out = y.iter_mut();
    put(&mut out, ql.as_flattened().as_flattened());
    put(&mut out, qh.as_flattened());
    put(&mut out, &sc);
    put(&mut out, &d);
}

pub(super) fn dequantize_q6_k(y: &[u8; Q6_K_BYTES], x: &mut [f32; 256]) {
    let mut it = y.iter();
    let ql: [u8; 128] = take(&mut it);
    let qh: [u8; 64] = take(&mut it);
    let sc: [u8; 16] = take(&mut it);
    let d = f16_value(take(&mut it));

    // Signed levels in element order, as [chunk][k][lane].
    let mut q = [[[0i8; 32]; 4]; 2];
    for (([q0, q1, q2, q3], ql), qh) in q.iter_mut().zip(ql.chunks_exact(64)).zip(qh.chunks_exact(32)) {
        let lanes = q0.iter_mut().zip(q1.iter_mut()).zip(q2.iter_mut()).zip(q3.iter_mut());
        for ((((a, b), c), e), ((&lo, &hi), &h)) in lanes.zip(ql.iter().zip(ql.iter().skip(32)).zip(qh)) {
            *a = ((lo & 0x0F) | ((h & 3) << 4)) as i8 - 32;
            *b = ((hi & 0x0F) | (((h >> 2) & 3) << 4)) as i8 - 32;
            *c = ((lo >> 4) | (((h >> 4) & 3) << 4)) as i8 - 32;
            *e = ((hi >> 4) | (((h >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    let q = q.as_flattened().as_flattened().as_chunks::<16>().0;
    for ((xs, &s), qs) in x.as_chunks_mut::<16>().0.iter_mut().zip(&sc).zip(q) {
        let ds = d * f32::from(s as i8);
        for (o, &q) in xs.iter_mut().zip(qs) {
            *o = ds * f32::from(q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight-lane fit equals the scalar one bit for bit: random sub-blocks of several
    /// scales, all-equal (flat) ones, all-positive ones (min clamped to 0), and tiny ones.
    #[test]
    fn lanes_fit_like_the_scalar_reference() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for case in 0..400 {
            let mut xt = [[0.0f32; 8]; 32];
            let mut wt = [[0.0f32; 8]; 32];
            let mut subs = [[0.0f32; 32]; 8];
            for (lane, sub) in subs.iter_mut().enumerate() {
                let kind = (case + lane) % 5;
                for v in sub.iter_mut() {
                    *v = match kind {
                        0 => rnd() * 10.0,
                        1 => 0.25,
                        2 => rnd().abs() + 0.1,
                        3 => rnd() * 1e-6,
                        _ => rnd() * rnd() * 100.0,
                    };
                }
                let av_x = (sub.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
                for (i, &v) in sub.iter().enumerate() {
                    xt[i][lane] = v;
                    wt[i][lane] = av_x + v.abs();
                }
            }
            for (nmax, rmin, rdelta, nstep) in [(15, -1.0f32, 0.1f32, 20), (31, -0.5, 0.1, 15)] {
                let mut lt = [[0u8; 8]; 32];
                let (scales, mins) = make_qkx2_quants_x8(nmax, &xt, &wt, &mut lt, rmin, rdelta, nstep);
                for (lane, sub) in subs.iter().enumerate() {
                    let w: [f32; 32] = std::array::from_fn(|i| wt[i][lane]);
                    let mut l = [0u8; 32];
                    let (s, m) = make_qkx2_quants(nmax, sub, &w, &mut l, rmin, rdelta, nstep);
                    assert_eq!(
                        (scales[lane].to_bits(), mins[lane].to_bits()),
                        (s.to_bits(), m.to_bits()),
                        "case {case} lane {lane}"
                    );
                    let got: [u8; 32] = std::array::from_fn(|i| lt[i][lane]);
                    assert_eq!(got, l, "case {case} lane {lane}");
                }
            }
        }
    }

    #[test]
    fn scale_min_packing_round_trips() {
        let ls = [0, 1, 62, 63, 17, 32, 48, 63];
        let lm = [63, 5, 0, 33, 63, 0, 16, 47];
        assert_eq!(unpack_scale_min_k4(&pack_scale_min_k4(ls, lm)), (ls, lm));
    }

    #[test]
    fn q5_k_packs_and_unpacks_ggml_layout() {
        // A block whose values are exact on its grid (d = 1, dmin = 0, every scale 1) survives
        // quantization unchanged, and its bytes are placed with ggml's own index arithmetic
        // (quantize_row_q5_K_ref): ql[32c + l] = L[64c + l] | L[64c + 32 + l] << 4 (low 4 bits),
        // fifth bits at bit 2c (resp. 2c + 1) of qh[l].
        let lv: [u8; 256] = std::array::from_fn(|i| ((i * 7 + i / 32) % 32) as u8);
        let x: [f32; 256] = std::array::from_fn(|i| f32::from(lv[i]));
        let mut block = [0u8; Q5_K_BYTES];
        quantize_q5_k(&x, &mut block);
        let mut want = [0u8; Q5_K_BYTES];
        for c in 0..4 {
            for l in 0..32 {
                let (a, b) = (lv[64 * c + l], lv[64 * c + 32 + l]);
                want[48 + 32 * c + l] = (a & 0x0F) | ((b & 0x0F) << 4);
                want[16 + l] |= ((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1));
            }
        }
        assert_eq!(block[16..], want[16..], "qh and qs");
        // Every sub-block has the same range, so every 6-bit scale is 63 and d = f16(1/63).
        let d1 = f16_value([block[0], block[1]]) * 63.0;
        let mut back = [0.0f32; 256];
        dequantize_q5_k(&block, &mut back);
        for (i, (&b, &l)) in back.iter().zip(&lv).enumerate() {
            assert_eq!(b, d1 * f32::from(l), "value {i}");
        }
    }

    #[test]
    fn q6_k_unpacks_ggml_layout() {
        // Levels placed with ggml's own index arithmetic (quantize_row_q6_K_ref), read back
        // in element order.
        let lv: Vec<u8> = (0..256).map(|i| (i * 7 % 64) as u8).collect();
        let mut block = [0u8; Q6_K_BYTES];
        for c in 0..2 {
            let j = 128 * c;
            for l in 0..32 {
                block[64 * c + l] = (lv[j + l] & 0xF) | ((lv[j + l + 64] & 0xF) << 4);
                block[64 * c + l + 32] = (lv[j + l + 32] & 0xF) | ((lv[j + l + 96] & 0xF) << 4);
                block[128 + 32 * c + l] = (lv[j + l] >> 4)
                    | ((lv[j + l + 32] >> 4) << 2)
                    | ((lv[j + l + 64] >> 4) << 4)
                    | ((lv[j + l + 96] >> 4) << 6);
            }
        }
        block[192..208].fill(1);
        block[208..].copy_from_slice(&f16_bytes(1.0));
        let mut x = [0.0f32; 256];
        dequantize_q6_k(&block, &mut x);
        for (i, v) in x.iter().enumerate() {
            assert_eq!(*v, (i * 7 % 64) as f32 - 32.0, "value {i}");
        }
    }
}

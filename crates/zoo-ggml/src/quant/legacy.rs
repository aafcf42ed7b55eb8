//! The 32-value block types Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0: ports of ggml's
//! `quantize_row_q*_ref` and `dequantize_row_q*`.
//!
//! Layout shared by the 4- and 5-bit types: value `j` (0..16) is the low nibble of byte `j`
//! of `qs`, value `j + 16` its high nibble; the 5-bit types keep bit 4 of value `e` in bit `e`
//! of a little-endian u32 `qh`.

use super::{f16_bytes, f16_value};

pub(super) const Q4_0_BYTES: usize = 18;
pub(super) const Q4_1_BYTES: usize = 20;
pub(super) const Q5_0_BYTES: usize = 22;
pub(super) const Q5_1_BYTES: usize = 24;
pub(super) const Q8_0_BYTES: usize = 34;

/// The value of largest magnitude, the first one on ties, sign kept (ggml's `max` in Q4_0/Q5_0).
fn signed_absmax(x: &[f32; 32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Smallest and largest value, starting from `(f32::MAX, -f32::MAX)` as ggml does.
fn min_max(x: &[f32; 32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `1 / d`, or 0 for a zero scale (C's `d ? 1.0f/d : 0.0f`).
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Pairs of (value `j`, value `j + 16`) for `j` in 0..16.
fn halves(x: &[f32; 32]) -> impl Iterator<Item = (f32, f32)> + '_ {
    x.iter().copied().zip(x.iter().copied().skip(16))
}

/// The 32 values of a nibble array in element order: all low nibbles, then all high nibbles.
fn nibbles(qs: &[u8; 16]) -> impl Iterator<Item = u8> + '_ {
    qs.iter().map(|b| b & 0x0F).chain(qs.iter().map(|b| b >> 4))
}

pub(super) fn quantize_q4_0(x: &[f32; 32], y: &mut [u8; Q4_0_BYTES]) {
    let d = signed_absmax(x) / -8.0;
    let id = inverse(d);
    let [d0, d1, qs @ ..] = y;
    [*d0, *d1] = f16_bytes(d);
    for (q, (a, b)) in qs.iter_mut().zip(halves(x)) {
        // C: MIN(15, (int8_t)(x*id + 8.5f)), two f32 roundings, then truncation.
        let q0 = ((a * id + 8.5) as i8).min(15) as u8;
        let q1 = ((b * id + 8.5) as i8).min(15) as u8;
        *q = q0 | (q1 << 4);
    }
}

pub(super) fn quantize_q4_1(x: &[f32; 32], y: &mut [u8; Q4_1_BYTES]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let [d0, d1, m0, m1, qs @ ..] = y;
    [*d0, *d1] = f16_bytes(d);
    [*m0, *m1] = f16_bytes(min);
    for (q, (a, b)) in qs.iter_mut().zip(halves(x)) {
        let q0 = (((a - min) * id + 0.5) as i8).min(15) as u8;
        let q1 = (((b - min) * id + 0.5) as i8).min(15) as u8;
        *q = q0 | (q1 << 4);
    }
}

pub(super) fn quantize_q5_0(x: &[f32; 32], y: &mut [u8; Q5_0_BYTES]) {
    let d = signed_absmax(x) / -16.0;
    let id = inverse(d);
    let [d0, d1, h0, h1, h2, h3, qs @ ..] = y;
    [*d0, *d1] = f16_bytes(d);
    let mut qh = 0u32;
    for (j, (q, (a, b))) in qs.iter_mut().zip(halves(x)).enumerate() {
        let q0 = ((a * id + 16.5) as i8).min(31) as u8;
        let q1 = ((b * id + 16.5) as i8).min(31) as u8;
        *q = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= u32::from((q0 & 0x10) >> 4) << j;
        qh |= u32::from((q1 & 0x10) >> 4) << (j + 16);
    }
    [*h0, *h1, *h2, *h3] = qh.to_le_bytes();
}

pub(super) fn quantize_q5_1(x: &[f32; 32], y: &mut [u8; Q5_1_BYTES]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let [d0, d1, m0, m1, h0, h1, h2, h3, qs @ ..] = y;
    [*d0, *d1] = f16_bytes(d);
    [*m0, *m1] = f16_bytes(min);
    let mut qh = 0u32;
    for (j, (q, (a, b))) in qs.iter_mut().zip(halves(x)).enumerate() {
        // ggml casts straight to uint8_t here (no MIN): the value cannot exceed 31.
        let q0 = ((a - min) * id + 0.5) as u8;
        let q1 = ((b - min) * id + 0.5) as u8;
        *q = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= u32::from((q0 & 0x10) >> 4) << j;
        qh |= u32::from((q1 & 0x10) >> 4) << (j + 16);
    }
    [*h0, *h1, *h2, *h3] = qh.to_le_bytes();
}

pub(super) fn quantize_q8_0(x: &[f32; 32], y: &mut [u8; Q8_0_BYTES]) {
    let mut amax = 0.0f32;
    for &v in x {
        // C's MAX(amax, fabsf(v)), with its NaN behaviour.
        amax = if amax > v.abs() { amax } else { v.abs() };
    }
    let d = amax / 127.0;
    let id = inverse(d);
    let [d0, d1, qs @ ..] = y;
    [*d0, *d1] = f16_bytes(d);
    for (q, &v) in qs.iter_mut().zip(x) {
        // roundf: half away from zero.
        *q = (v * id).round() as i8 as u8;
    }
}

pub(super) fn dequantize_q4_0(y: &[u8; Q4_0_BYTES], x: &mut [f32; 32]) {
    let [d0, d1, qs @ ..] = y;
    let d = f16_value([*d0, *d1]);
    for (o, q) in x.iter_mut().zip(nibbles(qs)) {
        *o = (i32::from(q) - 8) as f32 * d;
    }
}

pub(super) fn dequantize_q4_1(y: &[u8; Q4_1_BYTES], x: &mut [f32; 32]) {
    let [d0, d1, m0, m1, qs @ ..] = y;
    let d = f16_value([*d0, *d1]);
    let m = f16_value([*m0, *m1]);
    for (o, q) in x.iter_mut().zip(nibbles(qs)) {
        *o = f32::from(q) * d + m;
    }
}

/// The 32 five-bit values of a Q5 block in element order.
fn five_bits<'a>(qh: [u8; 4], qs: &'a [u8; 16]) -> impl Iterator<Item = u8> + 'a {
    let qh = u32::from_le_bytes(qh);
    nibbles(qs).zip(0..32u32).map(move |(q, e)| q | ((((qh >> e) & 1) as u8) << 4))
}

pub(super) fn dequantize_q5_0(y: &[u8; Q5_0_BYTES], x: &mut [f32; 32]) {
    let [d0, d1, h0, h1, h2, h3, qs @ ..] = y;
    let d = f16_value([*d0, *d1]);
    for (o, q) in x.iter_mut().zip(five_bits([*h0, *h1, *h2, *h3], qs)) {
        *o = (i32::from(q) - 16) as f32 * d;
    }
}

pub(super) fn dequantize_q5_1(y: &[u8; Q5_1_BYTES], x: &mut [f32; 32]) {
    let [d0, d1, m0, m1, h0, h1, h2, h3, qs @ ..] = y;
    let d = f16_value([*d0, *d1]);
    let m = f16_value([*m0, *m1]);
    for (o, q) in x.iter_mut().zip(five_bits([*h0, *h1, *h2, *h3], qs)) {
        *o = f32::from(q) * d + m;
    }
}

pub(super) fn dequantize_q8_0(y: &[u8; Q8_0_BYTES], x: &mut [f32; 32]) {
    let [d0, d1, qs @ ..] = y;
    let d = f16_value([*d0, *d1]);
    for (o, &q) in x.iter_mut().zip(qs.iter()) {
        *o = f32::from(q as i8) * d;
    }
}

//! Portable dot products of one quantized weight row with one quantized activation row: the
//! reference every SIMD kernel must agree with, and the path for CPUs without AVX2.
//!
//! Each block contributes `d_w * d_a * Σ q_w q_a` (integer sum) plus, for the types with an
//! offset, `m_w * s_a` where `s_a = d_a Σ q_a` (see `act`). Q4_0/Q5_0 are treated as offset
//! types with `m = -8 d` / `-16 d`, so their 4/5-bit values stay unsigned, as in the AVX2 code.

use half::f16;

use crate::QuantType;
use crate::act::{BlockQ8, BlockQ8K};

#[inline(always)]
fn f16_at(b0: u8, b1: u8) -> f32 {
    f16::from_le_bytes([b0, b1]).to_f32()
}

/// `Σ q_w q_a` over 32 values, `q_w` given as a function of the value index.
#[inline(always)]
fn isum(qs: &[i8; 32], w: impl Fn(usize) -> i32) -> i32 {
    qs.iter().enumerate().map(|(i, &q)| w(i) * i32::from(q)).sum()
}

/// Value `i` (0..32) of a 4-bit nibble array: low nibbles are values 0..16, high 16..32.
#[inline(always)]
fn nibble(qs: &[u8; 16], i: usize) -> i32 {
    let b = qs.get(i % 16).copied().unwrap_or(0);
    i32::from(if i < 16 { b & 0x0F } else { b >> 4 })
}

/// Dot product of a legacy-type row (`Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0`) with Q8 blocks.
/// Lengths are the caller's business: blocks pair up until either side runs out. K-quant
/// types give 0 here.
pub fn dot_legacy(t: QuantType, w: &[u8], a: &[BlockQ8]) -> f32 {
    match t {
        QuantType::Q4_0 => dot_blocks::<18>(w, a, |b, y| {
            let [d0, d1, qs @ ..] = b;
            let d = f16_at(*d0, *d1);
            (d * y.d * isum(&y.qs, |i| nibble(qs, i)) as f32, -8.0 * d)
        }),
        QuantType::Q4_1 => dot_blocks::<20>(w, a, |b, y| {
            let [d0, d1, m0, m1, qs @ ..] = b;
            (f16_at(*d0, *d1) * y.d * isum(&y.qs, |i| nibble(qs, i)) as f32, f16_at(*m0, *m1))
        }),
        QuantType::Q5_0 => dot_blocks::<22>(w, a, |b, y| {
            let [d0, d1, h0, h1, h2, h3, qs @ ..] = b;
            let d = f16_at(*d0, *d1);
            let qh = u32::from_le_bytes([*h0, *h1, *h2, *h3]);
            let q = |i: usize| nibble(qs, i) | ((((qh >> i) & 1) as i32) << 4);
            (d * y.d * isum(&y.qs, q) as f32, -16.0 * d)
        }),
        QuantType::Q5_1 => dot_blocks::<24>(w, a, |b, y| {
            let [d0, d1, m0, m1, h0, h1, h2, h3, qs @ ..] = b;
            let qh = u32::from_le_bytes([*h0, *h1, *h2, *h3]);
            let q = |i: usize| nibble(qs, i) | ((((qh >> i) & 1) as i32) << 4);
            (f16_at(*d0, *d1) * y.d * isum(&y.qs, q) as f32, f16_at(*m0, *m1))
        }),
        QuantType::Q8_0 => dot_blocks::<34>(w, a, |b, y| {
            let [d0, d1, qs @ ..] = b;
            let s: i32 = qs.iter().zip(&y.qs).map(|(&x, &q)| i32::from(x as i8) * i32::from(q)).sum();
            (f16_at(*d0, *d1) * y.d * s as f32, 0.0)
        }),
        QuantType::Q4K | QuantType::Q5K | QuantType::Q6K => 0.0,
    }
}

/// Sums `f(block)` = (scaled integer dot, offset) as `Σ dot + Σ offset * s_a`.
#[inline(always)]
fn dot_blocks<const N: usize>(w: &[u8], a: &[BlockQ8], f: impl Fn(&[u8; N], &BlockQ8) -> (f32, f32)) -> f32 {
    let mut acc = 0.0f32;
    let mut offs = 0.0f32;
    for (b, y) in w.as_chunks::<N>().0.iter().zip(a) {
        let (dot, m) = f(b, y);
        acc += dot;
        offs += m * y.s;
    }
    acc + offs
}

pub(crate) use zoo_ggml::quant::unpack_scale_min_k4 as q4k_scales;

/// Splits a 144-byte Q4_K block into (d, dmin, packed scales, nibbles).
#[inline(always)]
pub(crate) fn q4k_parts(b: &[u8; 144]) -> (f32, f32, &[u8; 12], &[u8; 128]) {
    let (head, qs) = b.split_first_chunk::<16>().map_or((&[0u8; 16], &[][..]), |(h, q)| (h, q));
    let [d0, d1, m0, m1, sc @ ..] = head;
    let qs: &[u8; 128] = qs.try_into().unwrap_or(&[0u8; 128]);
    (f16_at(*d0, *d1), f16_at(*m0, *m1), sc, qs)
}

/// Dot product of a k-quant row (`Q4_K`, `Q5_K`, `Q6_K`) with Q8_K blocks (ggml's
/// `ggml_vec_dot_q{4,5,6}_K_q8_K` reference arithmetic). Legacy types give 0 here.
pub fn dot_k(t: QuantType, w: &[u8], a: &[BlockQ8K]) -> f32 {
    match t {
        QuantType::Q4K => w.as_chunks::<144>().0.iter().zip(a).map(|(b, y)| dot_q4k_block(b, y)).sum(),
        QuantType::Q5K => w.as_chunks::<176>().0.iter().zip(a).map(|(b, y)| dot_q5k_block(b, y)).sum(),
        QuantType::Q6K => w.as_chunks::<210>().0.iter().zip(a).map(|(b, y)| dot_q6k_block(b, y)).sum(),
        _ => 0.0,
    }
}

fn dot_q4k_block(b: &[u8; 144], y: &BlockQ8K) -> f32 {
    let (d, dmin, sc, qs) = q4k_parts(b);
    dot_k4_block(d, dmin, sc, qs, &[0; 32], y)
}

/// Splits a 176-byte Q5_K block into (d, dmin, packed scales, fifth bits, nibbles).
#[inline(always)]
fn q5k_parts(b: &[u8; 176]) -> (f32, f32, &[u8; 12], &[u8; 32], &[u8; 128]) {
    let (head, rest) = b.split_first_chunk::<16>().map_or((&[0u8; 16], &[][..]), |(h, r)| (h, r));
    let (qh, qs) = rest.split_first_chunk::<32>().map_or((&[0u8; 32], &[][..]), |(h, q)| (h, q));
    let [d0, d1, m0, m1, sc @ ..] = head;
    let qs: &[u8; 128] = qs.try_into().unwrap_or(&[0u8; 128]);
    (f16_at(*d0, *d1), f16_at(*m0, *m1), sc, qh, qs)
}

fn dot_q5k_block(b: &[u8; 176], y: &BlockQ8K) -> f32 {
    let (d, dmin, sc, qh, qs) = q5k_parts(b);
    dot_k4_block(d, dmin, sc, qs, qh, y)
}

/// One Q4_K / Q5_K block against a Q8_K block: `x = d sc_j q - dmin m_j` for sub-block j.
/// Value l of sub-block j is nibble `j % 2` of byte `32 (j / 2) + l`, plus 16 times bit j of
/// `qh[l]` (all zero for Q4_K).
#[inline(always)]
fn dot_k4_block(d: f32, dmin: f32, sc: &[u8; 12], qs: &[u8; 128], qh: &[u8; 32], y: &BlockQ8K) -> f32 {
    let (scales, mins) = q4k_scales(sc);
    let mut sumi = 0i32;
    for (j, (qy, &s)) in y.qs.as_chunks::<32>().0.iter().zip(&scales).enumerate() {
        let bytes = qs.as_chunks::<32>().0.get(j / 2).copied().unwrap_or([0; 32]);
        let shift = 4 * (j % 2);
        let dot: i32 = bytes
            .iter()
            .zip(qh)
            .zip(qy)
            .map(|((&q, &h), &v)| i32::from(((q >> shift) & 0x0F) | (((h >> j) & 1) << 4)) * i32::from(v))
            .sum();
        sumi += i32::from(s) * dot;
    }
    // Σ min_j * Σ q8 over sub-block j, from the 16-value sums.
    let summ: i32 = y
        .bsums
        .as_chunks::<2>()
        .0
        .iter()
        .zip(&mins)
        .map(|([a, b], &m)| i32::from(m) * (i32::from(*a) + i32::from(*b)))
        .sum();
    y.d * d * sumi as f32 - y.d * dmin * summ as f32
}

/// Unpacks a Q6_K block's 256 signed values (`q - 32`), in element order.
#[inline(always)]
fn q6k_values(b: &[u8; 210]) -> [i8; 256] {
    let mut out = [0i8; 256];
    let (ql, rest) = b.split_at(128);
    let (qh, _) = rest.split_at(64);
    for ((o, ql), qh) in out.as_chunks_mut::<128>().0.iter_mut().zip(ql.chunks_exact(64)).zip(qh.chunks_exact(32)) {
        let (o01, o23) = o.split_at_mut(64);
        let (o0, o1) = o01.split_at_mut(32);
        let (o2, o3) = o23.split_at_mut(32);
        let (lo, hi) = ql.split_at(32);
        let lanes = o0.iter_mut().zip(o1.iter_mut()).zip(o2.iter_mut()).zip(o3.iter_mut());
        for ((((a, bb), c), e), ((&l, &h), &q)) in lanes.zip(lo.iter().zip(hi).zip(qh)) {
            *a = ((l & 0x0F) | ((q & 3) << 4)) as i8 - 32;
            *bb = ((h & 0x0F) | (((q >> 2) & 3) << 4)) as i8 - 32;
            *c = ((l >> 4) | (((q >> 4) & 3) << 4)) as i8 - 32;
            *e = ((h >> 4) | (((q >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    out
}

fn dot_q6k_block(b: &[u8; 210], y: &BlockQ8K) -> f32 {
    let q = q6k_values(b);
    let (_, tail) = b.split_at(192);
    let (scales, d) = tail.split_at(16);
    let d = match d {
        [d0, d1] => f16_at(*d0, *d1),
        _ => 0.0,
    };
    let mut sumi = 0i32;
    for ((qw, qa), &s) in q.as_chunks::<16>().0.iter().zip(y.qs.as_chunks::<16>().0).zip(scales) {
        let dot: i32 = qw.iter().zip(qa).map(|(&x, &v)| i32::from(x) * i32::from(v)).sum();
        sumi += i32::from(s as i8) * dot;
    }
    d * y.d * sumi as f32
}

//! Activation quantization: f32 rows to the 8-bit blocks the integer dot products consume,
//! with the rounding of ggml's reference quantizers (`quantize_row_q8_0_ref`,
//! `quantize_row_q8_1_ref`, `quantize_row_q8_K_ref`).
//!
//! The in-memory blocks are this crate's own layout, tuned for the kernels: scales are kept as
//! f32 (already rounded to f16 where ggml stores f16, so the values are ggml's), and one
//! [`BlockQ8`] serves both Q8_0 and Q8_1 because the two share scale and values; it also
//! carries Q8_1's block sum. That sum is `d * Σq` in f32 with `d` the stored (f16) scale,
//! a little more precise than ggml, which rounds `Σq * d` to f16: the kernels then compute
//! exactly the dot product of the dequantized weights with the dequantized activations, up to
//! f32 summation order. [`q8_0_bytes`] and [`quantize_row_q8_1_ref`] give ggml's bytes.

use half::f16;

/// 32 activations: `x[i] ≈ d * qs[i]`, and `s = d * Σ qs` (for the weight types with an
/// offset: Q4_1 and Q5_1's minimum, and the implied `-8 d` / `-16 d` of Q4_0 / Q5_0).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ8 {
    /// The scale, an f16 value.
    pub d: f32,
    /// `d * Σ qs`.
    pub s: f32,
    pub qs: [i8; 32],
}

impl BlockQ8 {
    pub const ZERO: BlockQ8 = BlockQ8 { d: 0.0, s: 0.0, qs: [0; 32] };
}

/// 256 activations as ggml's `block_q8_K`: `x[i] ≈ d * qs[i]` with an f32 `d`, and the sums
/// of each 16 values (`bsums`), which the k-quant kernels use for minimums and offsets.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; 256],
    pub bsums: [i16; 16],
}

impl BlockQ8K {
    pub const ZERO: BlockQ8K = BlockQ8K { d: 0.0, qs: [0; 256], bsums: [0; 16] };
}

/// The f16 value nearest `x` (ties to even, as `GGML_FP32_TO_FP16`), as f32.
#[inline]
fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// ggml's `nearest_int`: round to nearest, ties to even, valid for |x| < 2^22.
#[inline(always)]
fn nearest_int(x: f32) -> i32 {
    let val = x + 12_582_912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// The Q8_0/Q8_1 scale of a block: `(d, 1/d)` before f16 rounding, as ggml computes them.
#[inline(always)]
fn q8_scale(x: &[f32; 32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    for &v in x {
        // C's MAX(amax, fabsf(v)).
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    let d = amax / 127.0;
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// One Q8 block; `#[inline(always)]` so it is compiled (and vectorized) with the features of
/// whichever quantizer calls it. `f32::round` is C's `roundf` (half away from zero).
#[inline(always)]
fn quantize_q8_block(x: &[f32; 32], y: &mut BlockQ8) {
    let (d, id) = q8_scale(x);
    let mut sum = 0i32;
    for (q, &v) in y.qs.iter_mut().zip(x) {
        let r = (v * id).round() as i8;
        *q = r;
        sum += i32::from(r);
    }
    y.d = f16_round(d);
    y.s = y.d * sum as f32;
}

#[inline(always)]
fn quantize_q8_body(x: &[f32], y: &mut [BlockQ8]) {
    for (xb, yb) in x.as_chunks::<32>().0.iter().zip(y) {
        quantize_q8_block(xb, yb);
    }
}

/// Quantizes `x` (a whole number of 32-value blocks) into `y` (one block per 32 values; extra
/// blocks are left alone, missing ones are not written). Same values as ggml's Q8_0 and Q8_1
/// reference quantizers.
pub fn quantize_q8(x: &[f32], y: &mut [BlockQ8]) {
    #[cfg(target_arch = "x86_64")]
    if crate::Backend::detect().is_x86() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `detect`).
        unsafe { quantize_q8_avx2(x, y) };
        return;
    }
    quantize_q8_body(x, y);
}

/// The same code compiled for AVX2, where `round` vectorizes (the same roundings: Rust never
/// contracts `a * b + c` into an FMA, so the results are bit-identical).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_q8_avx2(x: &[f32], y: &mut [BlockQ8]) {
    quantize_q8_body(x, y);
}

/// Quantizes `x` (a whole number of 256-value blocks) into `y`, as
/// `quantize_row_q8_K_ref` (for an all-zero block ggml leaves `bsums` unset; here they are 0).
pub fn quantize_q8k(x: &[f32], y: &mut [BlockQ8K]) {
    #[cfg(target_arch = "x86_64")]
    if crate::Backend::detect().is_x86() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `detect`).
        unsafe { quantize_q8k_avx2(x, y) };
        return;
    }
    quantize_q8k_body(x, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_q8k_avx2(x: &[f32], y: &mut [BlockQ8K]) {
    quantize_q8k_body(x, y);
}

#[inline(always)]
fn quantize_q8k_body(x: &[f32], y: &mut [BlockQ8K]) {
    for (xb, yb) in x.as_chunks::<256>().0.iter().zip(y) {
        quantize_q8k_block(xb, yb);
    }
}

#[inline(always)]
fn quantize_q8k_block(x: &[f32; 256], y: &mut BlockQ8K) {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax == 0.0 {
        *y = BlockQ8K::ZERO;
        return;
    }
    // ggml uses -127/max rather than -128/max so that no value needs clamping on the low side.
    let iscale = -127.0 / max;
    for (q, &v) in y.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, qs) in y.bsums.iter_mut().zip(y.qs.as_chunks::<16>().0) {
        *s = qs.iter().map(|&q| i16::from(q)).sum();
    }
    y.d = 1.0 / iscale;
}

/// The ggml `block_q8_0` bytes of a block (f16 `d`, then the 32 values).
pub fn q8_0_bytes(b: &BlockQ8) -> [u8; 34] {
    let mut out = [0u8; 34];
    let (d, qs) = out.split_at_mut(2);
    d.copy_from_slice(&f16::from_f32(b.d).to_le_bytes());
    for (o, &q) in qs.iter_mut().zip(&b.qs) {
        *o = q as u8;
    }
    out
}

/// ggml's `quantize_row_q8_1_ref`, to its exact `block_q8_1` bytes (f16 `d`, f16 `s`, 32
/// values), where `s` is `Σq * d` with the f32 `d` before rounding. Writes one 36-byte block
/// per 32 values of `x` into `y` (as many as both have room for).
pub fn quantize_row_q8_1_ref(x: &[f32], y: &mut [u8]) {
    for (xb, yb) in x.as_chunks::<32>().0.iter().zip(y.as_chunks_mut::<36>().0) {
        let (d, id) = q8_scale(xb);
        let mut sum = 0i32;
        let (head, qs) = yb.split_at_mut(4);
        for (q, &v) in qs.iter_mut().zip(xb) {
            let r = (v * id).round() as i8;
            *q = r as u8;
            sum += i32::from(r);
        }
        let (dh, sh) = head.split_at_mut(2);
        dh.copy_from_slice(&f16::from_f32(d).to_le_bytes());
        sh.copy_from_slice(&f16::from_f32(sum as f32 * d).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_block_by_hand() {
        // amax = 127 → d = 1, id = 1: values round half away from zero (C's roundf).
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        x[1] = -63.7;
        x[2] = 0.5; // roundf → 1, where round-to-even would give 0
        x[3] = -1.5; // → -2
        x[4] = 2.5; // → 3
        let mut b = BlockQ8::ZERO;
        quantize_q8_body(&x, std::slice::from_mut(&mut b));
        assert_eq!(&b.qs[..5], &[127, -64, 1, -2, 3]);
        assert!(b.qs[5..].iter().all(|&q| q == 0));
        assert_eq!(b.d, 1.0);
        assert_eq!(b.s, (127 - 64 + 1 - 2 + 3) as f32);
    }

    #[test]
    fn nearest_int_ties_to_even() {
        for (x, want) in [(0.5, 0), (1.5, 2), (2.5, 2), (-0.5, 0), (-2.5, -2), (126.6, 127)] {
            assert_eq!(nearest_int(x), want, "{x}");
        }
    }
}

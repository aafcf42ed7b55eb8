//! Element-wise arithmetic on little-endian tensor bytes, in tight loops the compiler can
//! vectorize: f16/bf16 are widened to f32, combined, and rounded once to nearest-even, which
//! is exactly IEEE f16/bf16 arithmetic and what torch computes on CPU.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use crate::dtype::Dtype;

/// The operation applied element by element: `a = a op b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
}

/// Elements per inner block (on the stack, so the working set stays in L1/L2).
const BLOCK: usize = 2048;

/// True if `combine` supports this dtype.
pub fn supports(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
}

/// `a[i] = a[i] op b[i]` over whole elements of `dtype`; extra trailing bytes are left alone.
/// Splits the work across `threads` threads when the slices are large.
pub fn combine(dtype: Dtype, op: Op, a: &mut [u8], b: &[u8], threads: usize) {
    let esize = dtype.size().unwrap_or(1) as usize;
    let n = a.len().min(b.len()) / esize;
    let threads = threads.clamp(1, 16);
    if threads > 1 && n * esize >= (1 << 18) {
        let per = n.div_ceil(threads) * esize;
        std::thread::scope(|s| {
            for (ac, bc) in a.chunks_mut(per).zip(b.chunks(per)) {
                s.spawn(move || combine_one(dtype, op, ac, bc));
            }
        });
    } else {
        combine_one(dtype, op, a, b);
    }
}

fn combine_one(dtype: Dtype, op: Op, a: &mut [u8], b: &[u8]) {
    match dtype {
        Dtype::F16 => f16_combine(op, a, b),
        Dtype::BF16 => bf16_combine(op, a, b),
        Dtype::F32 => f32_combine(op, a, b),
        Dtype::F64 => f64_combine(op, a, b),
        _ => {}
    }
}

/// `a[i] = a[i] + 0.0`: what padding with zero rows then adding does to the extra rows
/// (turns `-0.0` into `+0.0`, leaves every other value as it is).
pub fn add_zero(dtype: Dtype, a: &mut [u8]) {
    let zeros = [0u8; 4096];
    let esize = dtype.size().unwrap_or(1) as usize;
    let step = zeros.len() / esize * esize;
    for chunk in a.chunks_mut(step.max(1)) {
        let len = chunk.len();
        combine_one(dtype, Op::Add, chunk, zeros.get(..len).unwrap_or_default());
    }
}

#[inline(always)]
fn apply(op: Op, x: f32, y: f32) -> f32 {
    match op {
        Op::Add => x + y,
        Op::Sub => x - y,
    }
}

fn load_u16(dst: &mut [u16], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = u16::from_le_bytes(<[u8; 2]>::try_from(s).unwrap_or_default());
    }
}

fn store_u16(dst: &mut [u8], src: &[u16]) {
    for (d, s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&s.to_le_bytes());
    }
}

fn f16_combine(op: Op, a: &mut [u8], b: &[u8]) {
    let mut ab = [0u16; BLOCK];
    let mut bb = [0u16; BLOCK];
    let mut af = [0f32; BLOCK];
    let mut bf = [0f32; BLOCK];
    for (ac, bc) in a.chunks_mut(BLOCK * 2).zip(b.chunks(BLOCK * 2)) {
        let n = ac.len().min(bc.len()) / 2;
        let (Some(ab), Some(bb), Some(af), Some(bf)) =
            (ab.get_mut(..n), bb.get_mut(..n), af.get_mut(..n), bf.get_mut(..n))
        else {
            return;
        };
        load_u16(ab, ac);
        load_u16(bb, bc);
        // half converts slices with F16C when the CPU has it, rounding to nearest-even.
        ab.reinterpret_cast::<f16>().convert_to_f32_slice(af);
        bb.reinterpret_cast::<f16>().convert_to_f32_slice(bf);
        match op {
            Op::Add => af.iter_mut().zip(bf.iter()).for_each(|(x, y)| *x += *y),
            Op::Sub => af.iter_mut().zip(bf.iter()).for_each(|(x, y)| *x -= *y),
        }
        ab.reinterpret_cast_mut::<f16>().convert_from_f32_slice(af);
        store_u16(ac, ab);
    }
}

#[inline(always)]
pub(crate) fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// Round-to-nearest-even f32 → bf16, quieting NaNs, written without branches so it vectorizes.
#[inline(always)]
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let is_nan = (bits & 0x7fff_ffff) > 0x7f80_0000;
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    let quiet = (bits >> 16) | 0x0040;
    (if is_nan { quiet } else { rounded }) as u16
}

fn bf16_combine(op: Op, a: &mut [u8], b: &[u8]) {
    for (x, y) in a.chunks_exact_mut(2).zip(b.chunks_exact(2)) {
        let xv = bf16_to_f32(u16::from_le_bytes(<[u8; 2]>::try_from(&*x).unwrap_or_default()));
        let yv = bf16_to_f32(u16::from_le_bytes(<[u8; 2]>::try_from(y).unwrap_or_default()));
        x.copy_from_slice(&f32_to_bf16(apply(op, xv, yv)).to_le_bytes());
    }
}

fn f32_combine(op: Op, a: &mut [u8], b: &[u8]) {
    for (x, y) in a.chunks_exact_mut(4).zip(b.chunks_exact(4)) {
        let xv = f32::from_le_bytes(<[u8; 4]>::try_from(&*x).unwrap_or_default());
        let yv = f32::from_le_bytes(<[u8; 4]>::try_from(y).unwrap_or_default());
        x.copy_from_slice(&apply(op, xv, yv).to_le_bytes());
    }
}

fn f64_combine(op: Op, a: &mut [u8], b: &[u8]) {
    for (x, y) in a.chunks_exact_mut(8).zip(b.chunks_exact(8)) {
        let xv = f64::from_le_bytes(<[u8; 8]>::try_from(&*x).unwrap_or_default());
        let yv = f64::from_le_bytes(<[u8; 8]>::try_from(y).unwrap_or_default());
        let r = match op {
            Op::Add => xv + yv,
            Op::Sub => xv - yv,
        };
        x.copy_from_slice(&r.to_le_bytes());
    }
}

/// Widens up to `out.len()` elements of `bytes` (f16, bf16, f32 or f64) to f32; returns how
/// many were written.
pub fn to_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32]) -> usize {
    let mut n = 0;
    match dtype {
        Dtype::F16 => {
            for (o, s) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes(<[u8; 2]>::try_from(s).unwrap_or_default()).to_f32();
                n += 1;
            }
        }
        Dtype::BF16 => {
            for (o, s) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16_to_f32(u16::from_le_bytes(<[u8; 2]>::try_from(s).unwrap_or_default()));
                n += 1;
            }
        }
        Dtype::F32 => {
            for (o, s) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes(<[u8; 4]>::try_from(s).unwrap_or_default());
                n += 1;
            }
        }
        Dtype::F64 => {
            for (o, s) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes(<[u8; 8]>::try_from(s).unwrap_or_default()) as f32;
                n += 1;
            }
        }
        _ => {}
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 32) as u32
    }

    #[test]
    fn bf16_rounding_matches_half() {
        let mut seed = 1u64;
        let specials =
            [0u32, 0x8000_0000, 0x7f80_0000, 0xff80_0000, 0x7f7f_ffff, 0x0000_0001, 0x3f80_8000, 0x3f81_8000];
        for i in 0..2_000_000u32 {
            let bits = specials.get(i as usize).copied().unwrap_or_else(|| lcg(&mut seed));
            let x = f32::from_bits(bits);
            let ours = f32_to_bf16(x);
            let theirs = bf16::from_f32(x).to_bits();
            if x.is_nan() {
                assert!(bf16::from_bits(ours).is_nan());
            } else {
                assert_eq!(ours, theirs, "{bits:#x}");
            }
        }
    }

    #[test]
    fn f16_add_is_ieee_with_edge_cases() {
        // (a, b, a + b) from the delta-cases README.
        let cases: [(f32, f32, f32); 6] = [
            (65504.0, 65504.0, f32::INFINITY),
            (-65504.0, -32.0, f32::NEG_INFINITY),
            (65504.0, 15.992_188, 65504.0),
            (1.0, 2f32.powi(-11), 1.0),
            (2050.0, 1.0, 2052.0),
            (-0.0, 0.0, 0.0),
        ];
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (x, y, _) in cases {
            a.extend_from_slice(&f16::from_f32(x).to_le_bytes());
            b.extend_from_slice(&f16::from_f32(y).to_le_bytes());
        }
        combine(Dtype::F16, Op::Add, &mut a, &b, 1);
        for (i, (_, _, want)) in cases.iter().enumerate() {
            let got = f16::from_le_bytes([a[2 * i], a[2 * i + 1]]);
            assert_eq!(got.to_bits(), f16::from_f32(*want).to_bits(), "case {i}");
        }
    }

    #[test]
    fn threaded_equals_single() {
        let mut seed = 7u64;
        let a: Vec<u8> = (0..(1 << 20)).map(|_| lcg(&mut seed) as u8 & 0x3f).collect();
        let b: Vec<u8> = (0..(1 << 20)).map(|_| lcg(&mut seed) as u8 & 0x3f).collect();
        for dtype in [Dtype::F16, Dtype::BF16, Dtype::F32, Dtype::F64] {
            let mut one = a.clone();
            let mut two = a.clone();
            combine(dtype, Op::Sub, &mut one, &b, 1);
            combine(dtype, Op::Sub, &mut two, &b, 3);
            assert_eq!(one, two, "{dtype}");
        }
        let mut z = f16::from_f32(-0.0).to_le_bytes().to_vec();
        add_zero(Dtype::F16, &mut z);
        assert_eq!(z, [0, 0]);
    }
}

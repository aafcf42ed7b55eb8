//! bf16 matrices coded as two byte planes, so that one plane alone approximates the matrix.
//!
//! A bf16 output head is most of the bytes a greedy decode step reads (BLOOM-560m: 514 of
//! 1118 MB). Greedy decoding needs only the row with the largest product, which a rough
//! approximation of every row plus an exact product of the few rows it cannot rule out gives
//! exactly (see [`crate::greedy`]). This module recodes every bf16 value, losslessly and in
//! the same two bytes, so that the first byte (the *code*) is such an approximation on its own.
//!
//! Per row, with `B` the row's largest biased exponent minus 7 (at least 0):
//!
//! | value class | code (`s` = sign) | rest |
//! |---|---|---|
//! | exponent `E` in `B+1 ..= B+7` | `s`, slot `E-B` (3 bits), top 4 mantissa bits | low 3 mantissa bits `<< 5` |
//! | `E = 0`, or `E` in `B-30 ..= B` | `s`, slot 0, upper 4 bits of `n = f << 7 \| mantissa` | low 8 bits of `n` |
//! | `E` in `1 ..= B-31` (more than 2^37 under the row's largest value) | `s`, slot 1..7, index | index (low 5 bits not 0) |
//!
//! with `f = 0` for `E = 0` and `f = E - (B - 31)` otherwise. Every finite or non-finite bf16
//! value has exactly one coding, so [`decode_value`] restores the bf16 bits exactly. Rows with
//! a value of the last class are marked ([`CodedRow::tiny`]): the vectorized decoder handles
//! the first two classes and leaves such rows to the scalar one.
//!
//! The code alone is read as `±2^(B+slot-127) · (1 + (m4 + 0.5)/16)` ([`approx`]): a float
//! with a 4-bit mantissa (rounded to the middle of its interval) for the seven binades under
//! the row's largest value, which covers nearly all of a weight row's mass; smaller values
//! (slot 0 and the exceptions) are approximated by something under `2^(B+1)` in size, and the
//! exact per-row error bound ([`CodedRow::bound`], computed from the actual differences) pays
//! for whatever they are off by. On AVX2 the approximation of 32 codes costs a load, three
//! shifts and 4 × (shift, and, add, FMA): see `gemv.rs`.

use crate::matmul::Disjoint;

/// Per-row facts of a coded matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CodedRow {
    /// Upper bound, per unit of `|x|` (2-norm), of `|approx product - bf16 product|` for this
    /// row and any activations `x`: `(|w - a| + γ_n (|a| + |w|)) · 1.001` with `w` the row, `a`
    /// its [`approx`] values and `γ_n = n u / (1 - n u)` (`u = 2^-24`) the worst rounding of an
    /// `n`-term f32 dot product in any order (both products are computed in f32). Infinite if
    /// the row holds non-finite values.
    pub bound: f32,
    /// `B`: the row's largest biased exponent minus 7, at least 0.
    pub base: u8,
    /// Whether the row holds a value of the exception class (see the module docs).
    pub tiny: bool,
}

/// Exceptions per slot (16 codes × 248 rest bytes whose low 5 bits are not 0).
const EXC_PER_SLOT: u32 = 16 * 248;

/// The base binade `B` of a row of bf16 bits.
pub fn base_of(row: impl Iterator<Item = u16>) -> u8 {
    let emax = row.map(|b| (b >> 7) & 0xFF).max().unwrap_or(0);
    (emax.max(7) - 7) as u8
}

/// Codes one bf16 value for base `b`: `(code, rest, is_exception)`. Values above the base's
/// window (not possible for the row's own base) code as if in slot 7, like exceptions.
#[inline]
pub fn encode_value(bits: u16, b: u8) -> (u8, u8, bool) {
    let (s, e, m) = (u32::from(bits >> 15), u32::from((bits >> 7) & 0xFF), u32::from(bits & 0x7F));
    let b = u32::from(b);
    if e > b && e <= b + 7 {
        // The common case first.
        let code = s << 7 | (e - b) << 4 | m >> 3;
        return (code as u8, ((m & 7) << 5) as u8, false);
    }
    if e == 0 || (e <= b && e + 30 >= b) {
        let f = if e == 0 { 0 } else { e + 31 - b };
        let n = f << 7 | m;
        return ((s << 7 | n >> 8) as u8, (n & 0xFF) as u8, false);
    }
    // 1 <= e <= b - 31 (values above the window are not coded by `encode_row`).
    let t = (e.saturating_sub(1) * 128 + m).min(7 * EXC_PER_SLOT - 1);
    let (slot, rem) = (1 + t / EXC_PER_SLOT, t % EXC_PER_SLOT);
    let r = rem % 248;
    ((s << 7 | slot << 4 | (rem / 248)) as u8, ((r / 31) << 5 | (r % 31 + 1)) as u8, true)
}

/// The bf16 bits of a coded value (the inverse of [`encode_value`] for the same base).
pub fn decode_value(code: u8, rest: u8, b: u8) -> u16 {
    let (code, rest, b) = (u32::from(code), u32::from(rest), u32::from(b));
    let (s, slot) = (code >> 7, (code >> 4) & 7);
    let (e, m) = if slot == 0 {
        let n = (code & 15) << 8 | rest;
        let f = n >> 7;
        (if f == 0 { 0 } else { (f + b).wrapping_sub(31) }, n & 0x7F)
    } else if rest & 31 == 0 {
        (b + slot, (code & 15) << 3 | rest >> 5)
    } else {
        let r = (rest >> 5) * 31 + (rest & 31) - 1;
        let t = (slot - 1) * EXC_PER_SLOT + (code & 15) * 248 + r;
        (t / 128 + 1, t % 128)
    };
    (s << 15 | (e & 0xFF) << 7 | m) as u16
}

/// The approximation a code stands for in a row of base `b` (see the module docs).
#[inline(always)]
pub fn approx(code: u8, b: u8) -> f32 {
    let code = u32::from(code);
    f32::from_bits((code & 0x80) << 24 | (((code & 0x7F) << 19) + (u32::from(b) << 23) + (1 << 18)))
}

/// Codes one row of little-endian bf16 values (`src`, `2 × cols` bytes) into `code` and `rest`
/// (`cols` bytes each) and returns its [`CodedRow`]. Shorter outputs take what fits.
pub fn encode_row(src: &[u8], code: &mut [u8], rest: &mut [u8]) -> CodedRow {
    #[cfg(target_arch = "x86_64")]
    if crate::Backend::detect().is_x86() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `detect`).
        return unsafe { encode_row_avx2(src, code, rest) };
    }
    encode_row_body(src, code, rest)
}

/// The same code compiled for AVX2, where its loops vectorize (with the same roundings: Rust
/// never contracts `a * b + c` into an FMA).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn encode_row_avx2(src: &[u8], code: &mut [u8], rest: &mut [u8]) -> CodedRow {
    encode_row_body(src, code, rest)
}

#[inline(always)]
fn encode_row_body(src: &[u8], code: &mut [u8], rest: &mut [u8]) -> CodedRow {
    let n = (src.len() / 2).min(code.len()).min(rest.len());
    let (src, code, rest) = (
        src.get(..2 * n).unwrap_or_default(),
        code.get_mut(..n).unwrap_or_default(),
        rest.get_mut(..n).unwrap_or_default(),
    );
    let bits =
        |c: &[u8]| u32::from(u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]));
    let base = base_of(src.chunks_exact(2).map(|c| bits(c) as u16));
    let b = u32::from(base);
    // The first two classes without branches (so the loop vectorizes); exceptions are counted
    // and recoded one by one after.
    let mut exceptions = 0u32;
    for ((c, r), v) in code.iter_mut().zip(rest.iter_mut()).zip(src.chunks_exact(2)) {
        let v = bits(v);
        let (s, e, m) = (v >> 15, (v >> 7) & 0xFF, v & 0x7F);
        // All-ones masks: in the window; exponent not 0.
        let window = 0u32.wrapping_sub(u32::from(e > b));
        let nonzero = 0u32.wrapping_sub(u32::from(e != 0));
        let f = (e + 31).wrapping_sub(b) & 0x1F & nonzero;
        let small = f << 7 | m;
        let wc = (e.wrapping_sub(b) & 7) << 4 | m >> 3;
        *c = (s << 7 | (wc & window) | (small >> 8 & !window)) as u8;
        *r = (((m & 7) << 5) & window | (small & 0xFF & !window)) as u8;
        exceptions += u32::from(e + 31 <= b) & nonzero & 1;
    }
    if exceptions > 0 {
        for ((c, r), v) in code.iter_mut().zip(rest.iter_mut()).zip(src.chunks_exact(2)) {
            (*c, *r, _) = encode_value(bits(v) as u16, base);
        }
    }
    // The squares in f32, eight partial sums each (so they vectorize); each partial sum of
    // non-negative terms is within a factor (1 + γ_n) of exact, which `row_bound` widens by.
    let (mut dd, mut aa, mut ww) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    for (v, c) in src.chunks_exact(16).zip(code.chunks_exact(8)) {
        let (mut w8, mut a8) = ([0f32; 8], [0f32; 8]);
        for ((w, a), (v, &c)) in w8.iter_mut().zip(a8.iter_mut()).zip(v.chunks_exact(2).zip(c)) {
            (*w, *a) = (f32::from_bits(bits(v) << 16), approx(c, base));
        }
        for (((d, s), q), (w, a)) in dd.iter_mut().zip(aa.iter_mut()).zip(ww.iter_mut()).zip(w8.iter().zip(&a8)) {
            *d += (w - a) * (w - a);
            *s += a * a;
            *q += w * w;
        }
    }
    let tail = n / 8 * 8;
    for (v, &c) in src.get(2 * tail..).unwrap_or_default().chunks_exact(2).zip(code.get(tail..).unwrap_or_default()) {
        let (w, a) = (f32::from_bits(bits(v) << 16), approx(c, base));
        if let (Some(d), Some(s), Some(q)) = (dd.first_mut(), aa.first_mut(), ww.first_mut()) {
            (*d, *s, *q) = (*d + (w - a) * (w - a), *s + a * a, *q + w * w);
        }
    }
    let sum = |v: [f32; 8]| v.iter().map(|&x| f64::from(x)).sum::<f64>().sqrt();
    CodedRow { bound: row_bound(sum(dd), sum(aa), sum(ww), n), base, tiny: exceptions > 0 }
}

/// Codes `info.len()` rows of `cols` bf16 values (`src`) into `code` and `rest` in parallel
/// (lengths are checked).
pub fn encode_rows(
    pool: &crate::ThreadPool,
    src: &[u8],
    cols: usize,
    code: &mut [u8],
    rest: &mut [u8],
    info: &mut [CodedRow],
) -> Result<(), crate::KernelError> {
    let n = info.len().checked_mul(cols).ok_or(crate::KernelError::Overflow)?;
    if src.len() != 2 * n || code.len() != n || rest.len() != n {
        return Err(crate::KernelError::InputLength { expected: n, got: src.len() / 2 });
    }
    let rows = info.len();
    let per_task = 64;
    let (code, rest, info) = (Disjoint::new(code), Disjoint::new(rest), Disjoint::new(info));
    pool.run(rows.div_ceil(per_task), &|t| {
        let r0 = t * per_task;
        let r1 = (r0 + per_task).min(rows);
        // SAFETY: task t alone owns rows r0..r1 of every output.
        let outs = unsafe {
            (code.slice(r0 * cols, (r1 - r0) * cols), rest.slice(r0 * cols, (r1 - r0) * cols), info.slice(r0, r1 - r0))
        };
        let (Some(code), Some(rest), Some(info)) = outs else { return };
        let src = src.get(2 * r0 * cols..2 * r1 * cols).unwrap_or_default();
        let rows = src
            .chunks_exact(2 * cols.max(1))
            .zip(code.chunks_exact_mut(cols.max(1)))
            .zip(rest.chunks_exact_mut(cols.max(1)));
        for (((s, c), r), i) in rows.zip(info.iter_mut()) {
            *i = encode_row(s, c, r);
        }
    });
    Ok(())
}

/// [`CodedRow::bound`] from the 2-norms of `w - a`, `a` and `w` of an `n`-value row.
fn row_bound(diff: f64, a: f64, w: f64, n: usize) -> f32 {
    let nu = n as f64 * f64::from(f32::EPSILON) / 2.0;
    if nu >= 0.1 {
        return f32::INFINITY;
    }
    let gamma = nu / (1.0 - nu);
    // The norms come from f32 sums of squares (each within 1 + γ of exact, so their roots
    // within 1 + γ as well).
    let (diff, a, w) = (diff * (1.0 + gamma), a * (1.0 + gamma), w * (1.0 + gamma));
    let b = (diff + gamma * (a + w)) * 1.001;
    // Rounded up: the bound must hold whatever the rounding of the f64 sums.
    if b.is_finite() { ((b * (1.0 + 1e-12)) as f32).next_up() } else { f32::INFINITY }
}

/// Decodes one coded row into little-endian bf16 bytes (`dst`, `2 × cols`).
pub fn decode_row(code: &[u8], rest: &[u8], base: u8, dst: &mut [u8]) {
    for ((d, &c), &r) in dst.chunks_exact_mut(2).zip(code).zip(rest) {
        d.copy_from_slice(&decode_value(c, r, base).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bf16 bit pattern, for every base a row can have, codes and decodes back exactly;
    /// values of the row's window and slot 0 are never exceptions; the approximation of every
    /// value in the window is within a 32nd of its binade.
    #[test]
    fn every_bf16_value_round_trips_for_every_base() {
        for b in 0..=248u8 {
            let mut seen = vec![false; 1 << 16];
            for bits in 0..=u16::MAX {
                let e = (bits >> 7) & 0xFF;
                if e > u16::from(b) + 7 {
                    continue; // above the window: not in a row of this base
                }
                let (c, r, exc) = encode_value(bits, b);
                assert_eq!(decode_value(c, r, b), bits, "base {b}, bits {bits:#06x}");
                let key = usize::from(c) << 8 | usize::from(r);
                assert!(!seen[key], "base {b}: two values share code {c:#04x}/{r:#04x}");
                seen[key] = true;
                let window = e > u16::from(b);
                assert_eq!(exc, !window && e != 0 && e + 30 < u16::from(b), "base {b}, bits {bits:#06x}");
                if window && e < 255 {
                    let (w, a) = (half::bf16::from_bits(bits).to_f32(), approx(c, b));
                    let binade = f32::from_bits(u32::from(e) << 23);
                    assert!((w - a).abs() <= binade / 32.0, "base {b}: {w} ~ {a}");
                }
            }
        }
    }

    #[test]
    fn rows_code_their_base_and_bound() {
        let vals = [0.5f32, -0.25, 1e-3, 0.0, -1e-20, 3.0, 1e-30];
        let src: Vec<u8> = vals.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
        let (mut code, mut rest) = (vec![0u8; vals.len()], vec![0u8; vals.len()]);
        let info = encode_row(&src, &mut code, &mut rest);
        // 3.0 has biased exponent 128.
        assert_eq!(info.base, 121);
        assert!(info.tiny, "1e-20 and 1e-30 are more than 2^37 under 3.0");
        let mut back = vec![0u8; src.len()];
        decode_row(&code, &rest, info.base, &mut back);
        assert_eq!(back, src);
        let diff: f64 = vals
            .iter()
            .zip(&code)
            .map(|(v, c)| (f64::from(half::bf16::from_f32(*v).to_f32()) - f64::from(approx(*c, info.base))).powi(2))
            .sum();
        assert!(f64::from(info.bound) >= diff.sqrt() && f64::from(info.bound) < diff.sqrt() * 1.01 + 1e-3);
        let nan: Vec<u8> = [f32::NAN, 1.0].iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
        let info = encode_row(&nan, &mut code[..2], &mut rest[..2]);
        assert_eq!(info.bound, f32::INFINITY);
        decode_row(&code[..2], &rest[..2], info.base, &mut back[..4]);
        assert_eq!(back[..4], nan[..]);
    }
}

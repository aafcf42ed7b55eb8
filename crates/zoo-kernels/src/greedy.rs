//! The output head for greedy decoding, exact, from about half the bytes of an f32 or bf16
//! head ([`gemv_greedy`] on a [`SplitHead`] or a [`CodedHead`]).
//!
//! Greedy decoding needs one thing from the head: which row has the largest product with the
//! activations. An f32 head held as [`DenseRows::Split`] planes (the upper and lower 16 bits of
//! every value) gives that without reading the lower plane for most rows:
//!
//! 1. The upper plane alone is the head truncated to bf16, `hi`, with `|w - hi| <= 2^-7 |hi|`
//!    for every value (truncation drops 16 of the 24 significant bits). One bf16 product
//!    (half the bytes) gives approximations `a_j` of every logit.
//! 2. Each approximation is off from the exact f32 product by at most
//!    `B_j = c * |hi_j| * |x| + abs`, where `|hi_j|` is the row's 2-norm (precomputed, rounded
//!    up, by [`row_norms`]), `|x|` the activations' 2-norm, `c = 2^-7` plus twice the worst
//!    rounding error of an `n`-term f32 dot product (`n u / (1 - n u)` with `u = 2^-24`, for
//!    any summation order), widened by 0.1%, and `abs` covers bf16 subnormals, where the
//!    relative bound does not hold (`n * 2^-120 * max |x_i|`).
//! 3. With `L = max_j (a_j - B_j)`, every row with `a_j + B_j < L` is below the best row's
//!    exact logit, so it cannot be the argmax. The others (a handful for a language model's
//!    head) are computed exactly from both planes, with the same kernel and summation order as
//!    [`crate::gemv`] uses for `DenseRows::Split`, so their values are bit for bit those of the
//!    full product.
//!
//! A bf16 head is coded instead ([`crate::coded`]): its code plane (one byte per value) is the
//! approximation, and each row's precomputed bound times `|x|` (plus `2 n 2^-149` for products
//! that underflow) is `B_j`; the rest is the same.
//!
//! Rows ruled out come back as `-inf`. Non-finite activations, approximations or bounds fall
//! back to the full product, and so does a candidate set over an eighth of the rows.

use crate::coded::CodedRow;
use crate::gemv::{arrange_x, band_rows, gemv_with};
use crate::{Backend, DenseRows, Half, KernelError, ThreadPool};

/// Share of the rows above which the exact product of all rows is cheaper than picking.
const MAX_CANDIDATE_SHARE: usize = 8;

/// Upper bounds of the 2-norms of the rows of a bf16 plane (`rows × cols` little-endian
/// values): the `|hi_j|` of the bound in the module docs.
pub fn row_norms(hi: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, KernelError> {
    let need = rows.checked_mul(cols).and_then(|n| n.checked_mul(2)).ok_or(KernelError::Overflow)?;
    if hi.len() != need {
        return Err(KernelError::InputLength { expected: need / 2, got: hi.len() / 2 });
    }
    Ok(hi
        .chunks_exact(2 * cols.max(1))
        .take(rows)
        .map(|row| {
            let ss: f64 = row
                .chunks_exact(2)
                .map(|c| match *c {
                    [l, h] => f64::from(f32::from_bits(u32::from(u16::from_le_bytes([l, h])) << 16)).powi(2),
                    _ => 0.0,
                })
                .sum();
            // Rounded up: the bound must hold whatever the rounding of the f64 sum and sqrt.
            ((ss.sqrt() * (1.0 + 1e-12)) as f32).next_up()
        })
        .chain(std::iter::repeat_n(0.0, if cols == 0 { rows } else { 0 }))
        .collect())
}

/// A split f32 head as [`gemv_greedy`] reads it: the two planes of `rows × cols` values
/// ([`DenseRows::Split`]) and the [`row_norms`] of the upper one.
#[derive(Debug, Clone, Copy)]
pub struct SplitHead<'a> {
    pub hi: &'a [u8],
    pub lo: &'a [u8],
    pub norms: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

/// An output head that greedy decoding can read in part: [`SplitHead`] (f32) or [`CodedHead`]
/// (bf16).
pub trait GreedyHead: Copy {
    /// [`gemv_greedy`] for this head, on a given backend.
    fn greedy(self, pool: &ThreadPool, x: &[f32], out: &mut [f32], backend: Backend) -> Result<usize, KernelError>;
}

/// Logits of one activation row for greedy decoding (see the module docs): the rows that could
/// hold the maximum exactly, every other row `-inf`. Returns how many rows were computed
/// exactly.
pub fn gemv_greedy(pool: &ThreadPool, head: impl GreedyHead, x: &[f32], out: &mut [f32]) -> Result<usize, KernelError> {
    head.greedy(pool, x, out, Backend::detect())
}

impl GreedyHead for SplitHead<'_> {
    fn greedy(self, pool: &ThreadPool, x: &[f32], out: &mut [f32], backend: Backend) -> Result<usize, KernelError> {
        let SplitHead { hi, lo, norms, rows, cols } = self;
        let split = DenseRows::Split { hi, lo };
        if hi.len() != lo.len() {
            return Err(KernelError::InputLength { expected: hi.len() / 2, got: lo.len() / 2 });
        }
        if norms.len() != rows {
            return Err(KernelError::InputLength { expected: rows, got: norms.len() });
        }
        let exact_all = |out: &mut [f32]| gemv_with(pool, split, rows, cols, x, out, backend).map(|()| rows);
        // Step 1: the bf16 product of the upper plane (this also checks every length).
        gemv_with(pool, DenseRows::Half(Half::Bf16, hi), rows, cols, x, out, backend)?;
        let n = cols as f64;
        let nu = n * f64::from(f32::EPSILON) / 2.0;
        if nu >= 0.1 {
            return exact_all(out);
        }
        // Step 2: the bound's constants.
        let gamma = nu / (1.0 - nu);
        let c = (2f64.powi(-7) + 2.0 * gamma * (1.0 + 2f64.powi(-7))) * 1.001;
        let (ss, xmax) =
            x.iter().fold((0f64, 0f64), |(s, m), &v| (s + f64::from(v).powi(2), m.max(f64::from(v).abs())));
        let scale = c * ss.sqrt() * (1.0 + 1e-12);
        let abs = n * 2f64.powi(-120) * xmax;
        // Step 3: the rows that can hold the maximum, computed exactly.
        let Some(candidates) = candidates(out, || norms.iter().map(|&m| scale * f64::from(m) + abs)) else {
            return exact_all(out);
        };
        exact_rows(backend, split, cols, &candidates, x, out);
        Ok(candidates.len())
    }
}

/// A bf16 head coded as two byte planes ([`crate::coded`]), as [`gemv_greedy`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct CodedHead<'a> {
    pub code: &'a [u8],
    pub rest: &'a [u8],
    pub info: &'a [CodedRow],
    pub rows: usize,
    pub cols: usize,
}

/// A coded bf16 head: as a split one, with the code plane (one byte per value) as the
/// approximation and each row's [`CodedRow::bound`] times `|x|` as its error bound (plus
/// `2 n 2^-149` for products that underflow). The rows computed exactly are bit for bit those
/// of the full bf16 product.
impl GreedyHead for CodedHead<'_> {
    fn greedy(self, pool: &ThreadPool, x: &[f32], out: &mut [f32], backend: Backend) -> Result<usize, KernelError> {
        let CodedHead { code, rest, info, rows, cols } = self;
        let exact = DenseRows::Coded { code, rest, info };
        if rest.len() != code.len() {
            return Err(KernelError::InputLength { expected: code.len(), got: rest.len() });
        }
        // Step 1: the approximations (this also checks every length).
        gemv_with(pool, DenseRows::CodeApprox { code, info }, rows, cols, x, out, backend)?;
        let ss: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
        let scale = ss.sqrt() * (1.0 + 1e-12);
        let abs = 2.0 * cols as f64 * 2f64.powi(-149);
        let candidates = if scale.is_finite() {
            candidates(out, || info.iter().map(|r| scale * f64::from(r.bound) + abs))
        } else {
            None
        };
        let Some(candidates) = candidates else {
            return gemv_with(pool, exact, rows, cols, x, out, backend).map(|()| rows);
        };
        exact_rows(backend, exact, cols, &candidates, x, out);
        Ok(candidates.len())
    }
}

/// The rows whose approximation `out[j]` plus its error bound (`bounds`, one per row) reaches
/// the best lower bound `max_j (out[j] - bound_j)`; `None` when something is not finite or the
/// rows are too many to be worth picking.
fn candidates<I: Iterator<Item = f64>>(out: &[f32], bounds: impl Fn() -> I) -> Option<Vec<usize>> {
    #[cfg(target_arch = "x86_64")]
    if Backend::detect().is_x86() {
        // SAFETY: the CPU has AVX2 (checked by `detect`).
        return unsafe { candidates_avx2(out, bounds) };
    }
    candidates_body(out, bounds)
}

/// The same code compiled for AVX2 (its passes vectorize; the same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn candidates_avx2<I: Iterator<Item = f64>>(out: &[f32], bounds: impl Fn() -> I) -> Option<Vec<usize>> {
    candidates_body(out, bounds)
}

#[inline(always)]
fn candidates_body<I: Iterator<Item = f64>>(out: &[f32], bounds: impl Fn() -> I) -> Option<Vec<usize>> {
    let (mut lower, mut finite) = (f64::NEG_INFINITY, true);
    for (&a, b) in out.iter().zip(bounds()) {
        let a = f64::from(a);
        let (lo, hi) = (a - b, a + b);
        // Plain comparisons (they vectorize); `hi` is finite unless `a` or `b` is not.
        lower = if lo > lower { lo } else { lower };
        finite &= hi.abs() < f64::INFINITY;
    }
    if !finite || !lower.is_finite() {
        return None;
    }
    let picked: Vec<usize> = out
        .iter()
        .zip(bounds())
        .enumerate()
        .filter(|(_, (a, b))| f64::from(**a) + b >= lower)
        .map(|(j, _)| j)
        .collect();
    (picked.len() <= out.len() / MAX_CANDIDATE_SHARE).then_some(picked)
}

/// Rows `picked` of `w` computed exactly into `out` (as the full product computes them), every
/// other row `-inf`.
fn exact_rows(backend: Backend, w: DenseRows<'_>, cols: usize, picked: &[usize], x: &[f32], out: &mut [f32]) {
    let backend = if backend.is_available() { backend } else { Backend::Scalar };
    let xk = arrange_x(w, backend, x);
    out.fill(f32::NEG_INFINITY);
    for &j in picked {
        if let Some(dst) = out.get_mut(j..j + 1) {
            band_rows(backend, w, cols, j..j + 1, &xk, dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemv;

    fn head<'a>(hi: &'a [u8], lo: &'a [u8], norms: &'a [f32], rows: usize, cols: usize) -> SplitHead<'a> {
        SplitHead { hi, lo, norms, rows, cols }
    }

    /// The two planes of f32 values.
    pub(crate) fn split(w: &[f32]) -> (Vec<u8>, Vec<u8>) {
        let hi = w.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect();
        let lo = w.iter().flat_map(|v| (v.to_bits() as u16).to_le_bytes()).collect();
        (hi, lo)
    }

    /// A small deterministic generator (xorshift), values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn exact(pool: &ThreadPool, w: &[f32], rows: usize, cols: usize, x: &[f32], backend: Backend) -> Vec<f32> {
        let mut out = vec![0f32; rows];
        gemv::gemv_with(pool, DenseRows::F32(w), rows, cols, x, &mut out, backend).unwrap();
        out
    }

    fn check(pool: &ThreadPool, w: &[f32], rows: usize, cols: usize, x: &[f32], backend: Backend) -> usize {
        let (hi, lo) = split(w);
        let norms = row_norms(&hi, rows, cols).unwrap();
        let mut got = vec![f32::NAN; rows];
        let n = head(&hi, &lo, &norms, rows, cols).greedy(pool, x, &mut got, backend).unwrap();
        let want = exact(pool, w, rows, cols, x, backend);
        assert_greedy(&got, &want, n);
        n
    }

    /// Greedy logits `got` against the full product `want`: every row computed is bit for bit
    /// the full one, every maximal row is computed, and at least the rows not `-inf` were
    /// counted (`n`; a fallback computes rows that are `-inf` themselves).
    fn assert_greedy(got: &[f32], want: &[f32], n: usize) {
        let best = want.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(got.iter().zip(want).all(|(g, w)| g.to_bits() == w.to_bits() || *g == f32::NEG_INFINITY));
        let computed = got.iter().filter(|g| **g != f32::NEG_INFINITY).count();
        assert!(n >= computed, "reported {n}, computed {computed}");
        for (g, w) in got.iter().zip(want) {
            if *w == best {
                assert_eq!(g.to_bits(), w.to_bits(), "a maximal row was ruled out");
            }
        }
    }

    #[test]
    fn the_split_product_is_the_f32_product_bit_for_bit() {
        let pool = ThreadPool::new(2);
        for (rows, cols) in [(37, 70), (300, 1024), (9, 3), (1031, 33)] {
            let w = values(rows * cols, 7);
            let x = values(cols, 8);
            let (hi, lo) = split(&w);
            for backend in [Backend::Scalar, Backend::detect()] {
                let mut got = vec![0f32; rows];
                gemv::gemv_with(&pool, DenseRows::Split { hi: &hi, lo: &lo }, rows, cols, &x, &mut got, backend)
                    .unwrap();
                let want = exact(&pool, &w, rows, cols, &x, backend);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn picks_the_exact_argmax_from_few_rows() {
        let pool = ThreadPool::new(2);
        let (rows, cols) = (6000, 96);
        let w = values(rows * cols, 1);
        for backend in [Backend::Scalar, Backend::detect()] {
            let mut total = 0;
            for seed in 0..20 {
                let x = values(cols, 100 + seed);
                total += check(&pool, &w, rows, cols, &x, backend);
            }
            // Random rows: the approximations rule out all but a few per step.
            assert!(total < 20 * rows / 50, "{backend:?}: {total} exact rows in 20 steps");
        }
    }

    /// Near ties the upper plane cannot see: rows 10, 2500 and 3999 share their upper halves
    /// (2500 adds half a bf16 step in its lower halves), and row 1234 has lower upper halves
    /// (so a lower approximation) but nearly a full step in every lower half, which makes it
    /// the exact maximum. A bound 8 times too tight rules 1234 out (tried).
    /// Small random weights (4000 × 64) and positive activations for the near-tie tests.
    fn tie_case(seed: u64) -> (ThreadPool, usize, usize, Vec<f32>, Vec<f32>) {
        let (rows, cols) = (4000, 64);
        let w: Vec<f32> = values(rows * cols, seed).iter().map(|v| v * 0.01).collect();
        let x: Vec<f32> = values(cols, seed + 1).iter().map(|v| v.abs() + 0.5).collect();
        (ThreadPool::new(2), rows, cols, w, x)
    }

    #[test]
    fn near_ties_hidden_in_the_lower_half_are_decided_exactly() {
        let (pool, rows, cols, mut w, x) = tie_case(3);
        let base: Vec<u32> = values(cols, 5).iter().map(|v| (v.abs() + 0.5).to_bits() & !0xFFFF).collect();
        for r in [10usize, 2500, 3999, 1234] {
            for (c, v) in base.iter().enumerate() {
                let bits = match r {
                    2500 => v | 0x4000,
                    1234 if c < 40 => (v - 0x1_0000) | 0xFFFF,
                    1234 => v | 0xFFFF,
                    _ => *v,
                };
                w[r * cols + c] = f32::from_bits(bits);
            }
        }
        for backend in [Backend::Scalar, Backend::detect()] {
            let (hi, lo) = split(&w);
            let mut approx = vec![0f32; rows];
            gemv::gemv_with(&pool, DenseRows::Half(Half::Bf16, &hi), rows, cols, &x, &mut approx, backend).unwrap();
            assert!(
                approx[1234] < approx[2500] && approx[2500] == approx[10],
                "{backend:?}: the case is not a near tie"
            );
            let norms = row_norms(&hi, rows, cols).unwrap();
            let mut got = vec![0f32; rows];
            let n = head(&hi, &lo, &norms, rows, cols).greedy(&pool, &x, &mut got, backend).unwrap();
            let best = (0..rows).max_by(|&a, &b| got[a].total_cmp(&got[b])).unwrap();
            assert_eq!(best, 1234, "{backend:?}: {} {} {} n={n}", got[10], got[1234], got[2500]);
            assert!(
                n >= 4 && got[10].is_finite() && got[2500].is_finite() && got[3999].is_finite(),
                "{backend:?}: {n}"
            );
            check(&pool, &w, rows, cols, &x, backend);
        }
    }

    /// Split f32 and coded bf16 heads alike.
    #[test]
    fn non_finite_inputs_fall_back_to_the_full_product() {
        let pool = ThreadPool::new(2);
        let (rows, cols) = (500, 40);
        let mut w = values(rows * cols, 9);
        let mut x = values(cols, 10);
        x[3] = f32::INFINITY;
        assert_eq!(check(&pool, &w, rows, cols, &x, Backend::detect()), rows);
        assert_eq!(check_coded(&pool, &w, rows, cols, &x, Backend::detect()), rows);
        x[3] = 0.5;
        w[7 * cols + 2] = f32::NAN;
        assert_eq!(check_coded(&pool, &w, rows, cols, &x, Backend::detect()), rows);
        let (hi, lo) = split(&w);
        let norms = row_norms(&hi, rows, cols).unwrap();
        let mut got = vec![0f32; rows];
        assert_eq!(gemv_greedy(&pool, head(&hi, &lo, &norms, rows, cols), &x, &mut got).unwrap(), rows);
        assert!(got[7].is_nan() && got.iter().filter(|v| v.is_finite()).count() == rows - 1);
    }

    #[test]
    fn norms_bound_the_rows_and_lengths_are_checked() {
        let (rows, cols) = (50, 33);
        let w = values(rows * cols, 11);
        let (hi, lo) = split(&w);
        let norms = row_norms(&hi, rows, cols).unwrap();
        for (r, n) in norms.iter().enumerate() {
            let hi_row: f64 = hi[2 * r * cols..2 * (r + 1) * cols]
                .chunks_exact(2)
                .map(|c| f64::from(crate::gemv::widen_one(Half::Bf16, c)).powi(2))
                .sum();
            assert!(f64::from(*n) >= hi_row.sqrt());
        }
        assert!(row_norms(&hi[1..], rows, cols).is_err());
        let pool = ThreadPool::new(1);
        let x = values(cols, 12);
        let mut out = vec![0f32; rows];
        assert!(gemv_greedy(&pool, head(&hi, &lo[2..], &norms, rows, cols), &x, &mut out).is_err());
        assert!(gemv_greedy(&pool, head(&hi, &lo, &norms[1..], rows, cols), &x, &mut out).is_err());
        assert!(gemv_greedy(&pool, head(&hi, &lo, &norms, rows, cols), &x[1..], &mut out).is_err());
        assert!(gemv_greedy(&pool, head(&hi, &lo, &norms, rows, cols), &x, &mut out[1..]).is_err());
    }

    /// A bf16 matrix (values `w`, rounded) coded: `(bf16 bytes, code, rest, info)`.
    fn coded(w: &[f32], rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<CodedRow>) {
        let bytes: Vec<u8> = w.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
        let (mut code, mut rest) = (vec![0u8; rows * cols], vec![0u8; rows * cols]);
        let info = (0..rows)
            .map(|r| {
                let span = r * cols..(r + 1) * cols;
                crate::coded::encode_row(
                    &bytes[2 * r * cols..2 * (r + 1) * cols],
                    &mut code[span.clone()],
                    &mut rest[span],
                )
            })
            .collect();
        (bytes, code, rest, info)
    }

    /// Rows of different scales, with zeros, values far under the row's largest (slot 0) and
    /// exceptions (more than 2^37 under it) in some rows.
    fn rough(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut w = values(rows * cols, seed);
        for (r, row) in w.chunks_mut(cols).enumerate() {
            let scale = [1.0, 0.02, 3e-5, 70.0][r % 4];
            for (c, v) in row.iter_mut().enumerate() {
                *v *= scale;
                match (r + c) % 23 {
                    0 => *v = 0.0,
                    1 => *v *= 1e-4,
                    2 if r % 5 == 0 => *v *= 1e-14,
                    _ => {}
                }
            }
        }
        w
    }

    #[test]
    fn coded_products_are_the_bf16_products_bit_for_bit() {
        let pool = ThreadPool::new(2);
        for (rows, cols) in [(37, 70), (300, 1024), (9, 3), (1031, 33), (64, 100), (20, 50)] {
            let w = rough(rows, cols, 21);
            let x = values(cols, 22);
            let (bytes, code, rest, info) = coded(&w, rows, cols);
            assert!(info.iter().any(|r| r.tiny) || cols < 23, "{rows}x{cols}: no exceptions to test");
            for backend in [Backend::Scalar, Backend::detect()] {
                let run = |w: DenseRows<'_>| {
                    let mut out = vec![0f32; rows];
                    gemv::gemv_with(&pool, w, rows, cols, &x, &mut out, backend).unwrap();
                    out
                };
                let plain = run(DenseRows::Half(Half::Bf16, &bytes));
                let exact = run(DenseRows::Coded { code: &code, rest: &rest, info: &info });
                assert_eq!(
                    exact.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{rows}x{cols} {backend:?}"
                );
                // The approximations are within each row's bound of the exact products, and
                // are the f64 product of the approximated values (to f32 rounding).
                let approx = run(DenseRows::CodeApprox { code: &code, info: &info });
                let xn = x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
                for r in 0..rows {
                    let (a, e) = (f64::from(approx[r]), f64::from(exact[r]));
                    assert!((a - e).abs() <= f64::from(info[r].bound) * xn, "{rows}x{cols} row {r}: {a} vs {e}");
                    let want: f64 = (0..cols)
                        .map(|c| f64::from(crate::coded::approx(code[r * cols + c], info[r].base)) * f64::from(x[c]))
                        .sum();
                    let mag: f64 = (0..cols)
                        .map(|c| {
                            (f64::from(crate::coded::approx(code[r * cols + c], info[r].base)) * f64::from(x[c])).abs()
                        })
                        .sum();
                    assert!((a - want).abs() <= 1e-6 * mag + 1e-30, "{rows}x{cols} {backend:?} row {r}: {a} vs {want}");
                }
            }
        }
    }

    fn check_coded(pool: &ThreadPool, w: &[f32], rows: usize, cols: usize, x: &[f32], backend: Backend) -> usize {
        let (bytes, code, rest, info) = coded(w, rows, cols);
        let mut want = vec![0f32; rows];
        gemv::gemv_with(pool, DenseRows::Half(Half::Bf16, &bytes), rows, cols, x, &mut want, backend).unwrap();
        let mut got = vec![f32::NAN; rows];
        let head = CodedHead { code: &code, rest: &rest, info: &info, rows, cols };
        let n = head.greedy(pool, x, &mut got, backend).unwrap();
        assert_greedy(&got, &want, n);
        n
    }

    #[test]
    fn coded_heads_pick_the_exact_argmax_from_few_rows() {
        let pool = ThreadPool::new(2);
        let (rows, cols) = (6000, 96);
        let w = values(rows * cols, 31);
        let rough_w = rough(rows, cols, 32);
        for backend in [Backend::Scalar, Backend::detect()] {
            let (mut total, mut total_rough) = (0, 0);
            for seed in 0..20 {
                let x = values(cols, 200 + seed);
                total += check_coded(&pool, &w, rows, cols, &x, backend);
                total_rough += check_coded(&pool, &rough_w, rows, cols, &x, backend);
            }
            assert!(total < 20 * rows / 50, "{backend:?}: {total} exact rows in 20 steps");
            assert!(total_rough < 20 * rows / 8, "{backend:?}: {total_rough} exact rows in 20 steps");
        }
    }

    /// Rows 10 and 2500 have the same codes as row 1234 but smaller rests (lower values of the
    /// same 4-bit approximations): only the exact product tells that 1234 is the maximum.
    #[test]
    fn coded_near_ties_are_decided_exactly() {
        let (pool, rows, cols, mut w, x) = tie_case(33);
        let base: Vec<u16> =
            values(cols, 35).iter().map(|v| half::bf16::from_f32(v.abs() + 0.5).to_bits() & !7).collect();
        for (r, low) in [(10usize, 0u16), (2500, 3), (1234, 7)] {
            for (c, v) in base.iter().enumerate() {
                w[r * cols + c] = half::bf16::from_bits(v | low).to_f32();
            }
        }
        for backend in [Backend::Scalar, Backend::detect()] {
            let (_, code, rest, info) = coded(&w, rows, cols);
            assert_eq!(code[10 * cols..11 * cols], code[1234 * cols..1235 * cols]);
            let mut got = vec![0f32; rows];
            let head = CodedHead { code: &code, rest: &rest, info: &info, rows, cols };
            let n = head.greedy(&pool, &x, &mut got, backend).unwrap();
            let best = (0..rows).max_by(|&a, &b| got[a].total_cmp(&got[b])).unwrap();
            assert_eq!(best, 1234, "{backend:?}: n={n}");
            assert!(n >= 3 && got[10].is_finite() && got[2500].is_finite(), "{backend:?}: {n}");
            check_coded(&pool, &w, rows, cols, &x, backend);
        }
    }

    #[test]
    fn coded_head_lengths_are_checked() {
        let pool = ThreadPool::new(2);
        let (rows, cols) = (50, 40);
        let (w, x) = (values(rows * cols, 36), values(cols, 37));
        let (_, code, rest, info) = coded(&w, rows, cols);
        let mut out = vec![0f32; rows];
        let head = CodedHead { code: &code, rest: &rest, info: &info, rows, cols };
        assert!(gemv_greedy(&pool, head, &x, &mut out).is_ok());
        assert!(gemv_greedy(&pool, CodedHead { rest: &rest[1..], ..head }, &x, &mut out).is_err());
        assert!(gemv_greedy(&pool, CodedHead { info: &info[1..], ..head }, &x, &mut out).is_err());
        assert!(gemv_greedy(&pool, head, &x[1..], &mut out).is_err());
        assert!(gemv_greedy(&pool, head, &x, &mut out[1..]).is_err());
    }
}

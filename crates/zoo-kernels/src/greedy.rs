//! The output head for greedy decoding, exact, from about half the bytes of an f32 head.
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
//! Rows ruled out come back as `-inf`. Non-finite activations, approximations or bounds fall
//! back to the full product, and so does a candidate set over an eighth of the rows.

use crate::gemv::{band_rows, gemv_with};
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

/// Logits of one activation row for greedy decoding from a split f32 head (see the module
/// docs): the rows that could hold the maximum exactly, every other row `-inf`. Returns how
/// many rows were computed exactly.
pub fn gemv_greedy(pool: &ThreadPool, head: SplitHead<'_>, x: &[f32], out: &mut [f32]) -> Result<usize, KernelError> {
    gemv_greedy_with(pool, head, x, out, Backend::detect())
}

/// [`gemv_greedy`] on a given backend.
pub fn gemv_greedy_with(
    pool: &ThreadPool,
    head: SplitHead<'_>,
    x: &[f32],
    out: &mut [f32],
    backend: Backend,
) -> Result<usize, KernelError> {
    let SplitHead { hi, lo, norms, rows, cols } = head;
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
    let (ss, xmax) = x.iter().fold((0f64, 0f64), |(s, m), &v| (s + f64::from(v).powi(2), m.max(f64::from(v).abs())));
    let scale = c * ss.sqrt() * (1.0 + 1e-12);
    let abs = n * 2f64.powi(-120) * xmax;
    let bound = |a: f32, norm: f32| (f64::from(a), scale * f64::from(norm) + abs);
    // Step 3: the best lower bound, then the rows whose upper bound reaches it.
    let mut lower = f64::NEG_INFINITY;
    let mut finite = scale.is_finite();
    for (&a, &norm) in out.iter().zip(norms) {
        let (a, b) = bound(a, norm);
        finite &= a.is_finite() && b.is_finite();
        lower = lower.max(a - b);
    }
    if !finite || !lower.is_finite() {
        return exact_all(out);
    }
    let candidates: Vec<usize> = out
        .iter()
        .zip(norms)
        .enumerate()
        .filter(|(_, (a, norm))| {
            let (a, b) = bound(**a, **norm);
            a + b >= lower
        })
        .map(|(j, _)| j)
        .collect();
    if candidates.len() > rows / MAX_CANDIDATE_SHARE {
        return exact_all(out);
    }
    let backend = if backend.is_available() { backend } else { Backend::Scalar };
    out.fill(f32::NEG_INFINITY);
    for &j in &candidates {
        if let Some(dst) = out.get_mut(j..j + 1) {
            band_rows(backend, split, cols, j..j + 1, x, dst);
        }
    }
    Ok(candidates.len())
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
        let n = gemv_greedy_with(pool, head(&hi, &lo, &norms, rows, cols), x, &mut got, backend).unwrap();
        let want = exact(pool, w, rows, cols, x, backend);
        let best = want.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits() || *g == f32::NEG_INFINITY));
        let computed = got.iter().filter(|g| **g != f32::NEG_INFINITY).count();
        assert!(n >= computed, "reported {n}, computed {computed}");
        assert_eq!(got.iter().copied().fold(f32::NEG_INFINITY, f32::max).to_bits(), best.to_bits());
        for (g, w) in got.iter().zip(&want) {
            if *w == best {
                assert_eq!(g.to_bits(), w.to_bits(), "a maximal row was ruled out");
            }
        }
        n
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
    #[test]
    fn near_ties_hidden_in_the_lower_half_are_decided_exactly() {
        let pool = ThreadPool::new(2);
        let (rows, cols) = (4000, 64);
        let mut w: Vec<f32> = values(rows * cols, 3).iter().map(|v| v * 0.01).collect();
        let x: Vec<f32> = values(cols, 4).iter().map(|v| v.abs() + 0.5).collect();
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
            let n = gemv_greedy_with(&pool, head(&hi, &lo, &norms, rows, cols), &x, &mut got, backend).unwrap();
            let best = (0..rows).max_by(|&a, &b| got[a].total_cmp(&got[b])).unwrap();
            assert_eq!(best, 1234, "{backend:?}: {} {} {} n={n}", got[10], got[1234], got[2500]);
            assert!(
                n >= 4 && got[10].is_finite() && got[2500].is_finite() && got[3999].is_finite(),
                "{backend:?}: {n}"
            );
            check(&pool, &w, rows, cols, &x, backend);
        }
    }

    #[test]
    fn non_finite_inputs_fall_back_to_the_full_product() {
        let pool = ThreadPool::new(2);
        let (rows, cols) = (500, 40);
        let mut w = values(rows * cols, 9);
        let mut x = values(cols, 10);
        x[3] = f32::INFINITY;
        assert_eq!(check(&pool, &w, rows, cols, &x, Backend::detect()), rows);
        x[3] = 0.5;
        w[7 * cols + 2] = f32::NAN;
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
}

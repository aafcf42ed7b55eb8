//! Attention of one query row over cached keys and values (one head of a decode step):
//! scores `q·k_j × scale + slope × j`, softmax, then the probability-weighted sum of the value
//! rows. AVX2 + FMA chosen at run time; the scalar path computes the same in eight lanes.

use crate::Backend;

/// One head: `q` (d values), `keys` and `values` (n rows of d values each, `n ≥ 1`), `out`
/// (d values). `scores` is scratch space (resized to n). Returns false, leaving `out` alone,
/// when the lengths disagree.
#[allow(clippy::too_many_arguments)]
pub fn attend_one(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scale: f32,
    slope: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) -> bool {
    let d = q.len();
    if d == 0 || out.len() != d || !keys.len().is_multiple_of(d) || keys.len() != values.len() || keys.is_empty() {
        return false;
    }
    let n = keys.len() / d;
    scores.clear();
    scores.resize(n, 0.0);
    let backend = Backend::detect();
    #[cfg(target_arch = "x86_64")]
    if backend.is_x86() && d.is_multiple_of(avx2::CHUNK) {
        // SAFETY: the backend has AVX2 + FMA; lengths checked above (keys and values hold n
        // rows of d, d a multiple of CHUNK, scores n, out d).
        unsafe { avx2::attend_chunked(q, keys, values, scale, slope, scores, out) };
        return true;
    }
    for (j, (s, k)) in scores.iter_mut().zip(keys.chunks_exact(d)).enumerate() {
        *s = dot(backend, q, k) * scale + slope * j as f32;
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.fill(0.0);
    for (&p, v) in scores.iter().zip(values.chunks_exact(d)) {
        axpy(backend, p * inv, v, out);
    }
    true
}

/// Rows of one head of a prompt: `rows` query rows at consecutive positions `pos..pos + rows`
/// (row `i` at `q[i * q_stride..][..d]`), row `i` attending to the first `pos + i + 1` of
/// `keys` and `values` (rows of `d` values), outputs to `out` (`rows × d`, row after row).
/// Returns false, leaving `out` alone, when the lengths disagree.
///
/// On x86 with `d` a multiple of 16 the rows go in blocks of [`SPAN_ROWS`]: the keys are
/// transposed once per call (into `scratch`), so a block's scores are a register-tiled product
/// (each key read once per block of rows, not once per row), then each row's softmax, then
/// the probabilities times the values as another tiled product; attention over the cache then
/// costs what a matrix product costs instead of one pass over the cache per query row.
/// Elsewhere, row by row through [`attend_one`].
#[allow(clippy::too_many_arguments)]
pub fn attend_span(
    q: &[f32],
    q_stride: usize,
    rows: usize,
    pos: usize,
    keys: &[f32],
    values: &[f32],
    scale: f32,
    slope: f32,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) -> bool {
    let d = out.len().checked_div(rows).unwrap_or(0);
    let seen = pos + rows;
    if d == 0
        || out.len() != rows * d
        || q_stride < d
        || q.len() < (rows - 1) * q_stride + d
        || keys.len() < seen * d
        || values.len() < seen * d
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if Backend::detect().is_x86() && d.is_multiple_of(16) {
        let np = seen.next_multiple_of(16);
        scratch.clear();
        scratch.resize(d * np + SPAN_ROWS * np, 0.0);
        let (kt, s) = scratch.split_at_mut(d * np);
        for (j, k) in keys.chunks_exact(d).take(seen).enumerate() {
            for (col, &x) in kt.chunks_exact_mut(np).zip(k) {
                if let Some(t) = col.get_mut(j) {
                    *t = x;
                }
            }
        }
        // SAFETY: the backend has AVX2 + FMA; `kt` holds d × np transposed keys (zero past
        // `seen`), `s` SPAN_ROWS × np, and the lengths of q, values and out were checked.
        unsafe { avx2::attend_span(q, q_stride, rows, pos, kt, np, values, scale, slope, s, out) };
        return true;
    }
    let _ = scratch;
    let mut scores = Vec::new();
    for (i, o) in out.chunks_exact_mut(d).enumerate() {
        let n = (pos + i + 1) * d;
        let (Some(qi), Some(k), Some(v)) = (q.get(i * q_stride..i * q_stride + d), keys.get(..n), values.get(..n))
        else {
            return false;
        };
        attend_one(qi, k, v, scale, slope, &mut scores, o);
    }
    true
}

/// Query rows per block of [`attend_span`] (6 rows × 16 keys or 16 values: 12 accumulators).
pub const SPAN_ROWS: usize = 6;

/// `a · b` over the shorter length.
pub fn dot(backend: Backend, a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if backend.is_x86() {
        // SAFETY: Avx2 is only detected when the CPU has AVX2 and FMA.
        return unsafe { avx2::dot(a, b) };
    }
    let _ = backend;
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a × x` over the shorter length.
pub fn axpy(backend: Backend, a: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if backend.is_x86() {
        // SAFETY: as above.
        unsafe { avx2::axpy(a, x, y) };
        return;
    }
    let _ = backend;
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Head-dimension chunk the register-resident path works in: 8 vectors of 8 f32.
    pub const CHUNK: usize = 64;

    /// [`super::attend_one`] for `d` a multiple of [`CHUNK`]: for each 64-value chunk of the
    /// head, the query chunk (scores) or the output chunk (values) stays in 8 registers while
    /// the keys or values stream past, so each key costs 8 loads and 8 FMAs instead of loads,
    /// FMAs and stores through memory. Sums are taken in the same order for every `d`.
    ///
    /// # Safety
    /// AVX2 + FMA; `q` and `out` hold `d` values, `keys` and `values` `n * d` for `n` = `scores.len()`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn attend_chunked(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        slope: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let d = q.len();
        let (qp, kp, vp) = (q.as_ptr(), keys.as_ptr(), values.as_ptr());
        scores.fill(0.0);
        for c in (0..d).step_by(CHUNK) {
            // SAFETY: c + CHUNK <= d.
            let qv: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(qp.add(c + 8 * i)) });
            for (j, s) in scores.iter_mut().enumerate() {
                // SAFETY: row j < n of keys, chunk c of d.
                let k = unsafe { kp.add(j * d + c) };
                let (mut a0, mut a1) = unsafe {
                    (_mm256_mul_ps(qv[0], _mm256_loadu_ps(k)), _mm256_mul_ps(qv[1], _mm256_loadu_ps(k.add(8))))
                };
                for (i, pair) in qv.chunks_exact(2).enumerate().skip(1) {
                    if let [x0, x1] = pair {
                        // SAFETY: as above (16 * i + 16 <= CHUNK).
                        unsafe {
                            a0 = _mm256_fmadd_ps(*x0, _mm256_loadu_ps(k.add(16 * i)), a0);
                            a1 = _mm256_fmadd_ps(*x1, _mm256_loadu_ps(k.add(16 * i + 8)), a1);
                        }
                    }
                }
                *s += hsum(_mm256_add_ps(a0, a1));
            }
        }
        let mut max = f32::NEG_INFINITY;
        for (j, s) in scores.iter_mut().enumerate() {
            *s = *s * scale + slope * j as f32;
            max = max.max(*s);
        }
        let (mv, mut sv) = (_mm256_set1_ps(max), _mm256_setzero_ps());
        let mut chunks = scores.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds 8 f32.
            unsafe {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), mv));
                _mm256_storeu_ps(c.as_mut_ptr(), e);
                sv = _mm256_add_ps(sv, e);
            }
        }
        let mut sum = hsum(sv);
        for s in chunks.into_remainder() {
            *s = (*s - max).exp();
            sum += *s;
        }
        let inv = 1.0 / sum;
        let op = out.as_mut_ptr();
        for c in (0..d).step_by(CHUNK) {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (j, &p) in scores.iter().enumerate() {
                let pv = _mm256_set1_ps(p * inv);
                // SAFETY: row j < n of values, chunk c of d.
                let v = unsafe { vp.add(j * d + c) };
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(pv, unsafe { _mm256_loadu_ps(v.add(8 * i)) }, *a);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                // SAFETY: c + CHUNK <= d = out.len().
                unsafe { _mm256_storeu_ps(op.add(c + 8 * i), *a) };
            }
        }
    }

    /// [`super::attend_span`] for `d` a multiple of 16, the keys already transposed: `kt[c *
    /// np + j]` is value `c` of key `j` (zero for `j` past the last row's keys).
    ///
    /// # Safety
    /// AVX2 + FMA; `kt` holds `d × np` values, `s` `SPAN_ROWS × np`, `np` a multiple of 16 and at
    /// least `pos + rows`; `q`, `values` and `out` as `attend_span` checks.
    // Every index is a loop counter over a local array of `R` rows (or its 2 halves).
    #[allow(clippy::too_many_arguments, clippy::indexing_slicing)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn attend_span(
        q: &[f32],
        q_stride: usize,
        rows: usize,
        pos: usize,
        kt: &[f32],
        np: usize,
        values: &[f32],
        scale: f32,
        slope: f32,
        s: &mut [f32],
        out: &mut [f32],
    ) {
        const R: usize = super::SPAN_ROWS;
        let d = out.len() / rows;
        let (kp, vp, sp, op) = (kt.as_ptr(), values.as_ptr(), s.as_mut_ptr(), out.as_mut_ptr());
        for i0 in (0..rows).step_by(R) {
            let rb = R.min(rows - i0);
            // Keys the block's last row sees, and the query rows (the last repeated to fill
            // the tile; its copies are never stored).
            let nb = pos + i0 + rb;
            let qr: [*const f32; R] = std::array::from_fn(|r| q.as_ptr().wrapping_add((i0 + r.min(rb - 1)) * q_stride));
            for j0 in (0..nb).step_by(16) {
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                for c in 0..d {
                    // SAFETY: keys j0..j0 + 16 <= np of row c < d of kt; value c of each query row.
                    let (k0, k1) =
                        unsafe { (_mm256_loadu_ps(kp.add(c * np + j0)), _mm256_loadu_ps(kp.add(c * np + j0 + 8))) };
                    for (a, qr) in acc.iter_mut().zip(&qr) {
                        let x = unsafe { _mm256_broadcast_ss(&*qr.add(c)) };
                        a[0] = _mm256_fmadd_ps(x, k0, a[0]);
                        a[1] = _mm256_fmadd_ps(x, k1, a[1]);
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    // SAFETY: row r < R of s, keys j0..j0 + 16 <= np.
                    unsafe {
                        _mm256_storeu_ps(sp.add(r * np + j0), a[0]);
                        _mm256_storeu_ps(sp.add(r * np + j0 + 8), a[1]);
                    }
                }
            }
            // Each row's softmax over the keys it sees; probabilities of the rest are 0.
            let mut inv = [0f32; R];
            for (r, inv) in inv.iter_mut().enumerate().take(rb) {
                let seen = pos + i0 + r + 1;
                // SAFETY: row r of s holds np >= nb scores.
                let row = unsafe { std::slice::from_raw_parts_mut(sp.add(r * np), nb) };
                let mut max = f32::NEG_INFINITY;
                for (j, x) in row.iter_mut().enumerate().take(seen) {
                    *x = *x * scale + slope * j as f32;
                    max = max.max(*x);
                }
                let (mv, mut sv) = (_mm256_set1_ps(max), _mm256_setzero_ps());
                let mut sum = 0f32;
                let mut chunks = row[..seen].chunks_exact_mut(8);
                for ch in &mut chunks {
                    // SAFETY: `ch` holds 8 f32.
                    unsafe {
                        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(ch.as_ptr()), mv));
                        _mm256_storeu_ps(ch.as_mut_ptr(), e);
                        sv = _mm256_add_ps(sv, e);
                    }
                }
                for x in chunks.into_remainder() {
                    *x = (*x - max).exp();
                    sum += *x;
                }
                row[seen..].fill(0.0);
                *inv = 1.0 / (sum + hsum(sv));
            }
            // The block's outputs: 16 values of the head at a time, every key it sees.
            for c0 in (0..d).step_by(16) {
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                for j in 0..nb {
                    // SAFETY: key j < nb <= seen rows of values, values c0..c0 + 16 <= d.
                    let (v0, v1) =
                        unsafe { (_mm256_loadu_ps(vp.add(j * d + c0)), _mm256_loadu_ps(vp.add(j * d + c0 + 8))) };
                    for (r, a) in acc.iter_mut().enumerate() {
                        // SAFETY: row r < R of s, key j < np.
                        let p = unsafe { _mm256_broadcast_ss(&*sp.add(r.min(rb - 1) * np + j)) };
                        a[0] = _mm256_fmadd_ps(p, v0, a[0]);
                        a[1] = _mm256_fmadd_ps(p, v1, a[1]);
                    }
                }
                for (r, a) in acc.iter().enumerate().take(rb) {
                    let f = _mm256_set1_ps(inv[r]);
                    // SAFETY: output row i0 + r < rows, values c0..c0 + 16 <= d.
                    unsafe {
                        _mm256_storeu_ps(op.add((i0 + r) * d + c0), _mm256_mul_ps(a[0], f));
                        _mm256_storeu_ps(op.add((i0 + r) * d + c0 + 8), _mm256_mul_ps(a[1], f));
                    }
                }
            }
        }
    }

    /// e^x in 8 lanes, for x ≤ 0 (softmax after subtracting the maximum): x = n ln 2 + r with
    /// |r| ≤ ln2/2, e^r by Cephes' degree-6 polynomial for `expf`, times 2^n through the exponent
    /// bits. Relative error under 2e-7 (checked against f64 in the tests); x below −87.3 (where
    /// e^x leaves the normal range) gives e^−87.3 ≈ 1.2e-38, not 0, which no softmax notices.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let x = _mm256_max_ps(x, _mm256_set1_ps(-87.3));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
        ));
        // r = x − n ln 2, with ln 2 split in two so the product is exact to f32.
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
        _mm256_mul_ps(y, _mm256_castsi256_ps(bits))
    }

    /// [`exp8`] for tests.
    #[cfg(test)]
    pub fn exp8_test(x: [f32; 8]) -> [f32; 8] {
        let mut out = [0f32; 8];
        // SAFETY: only called after checking AVX2 + FMA; both arrays hold 8 f32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), exp8(_mm256_loadu_ps(x.as_ptr()))) };
        out
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(x: __m256) -> f32 {
        let h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n values are in bounds of both slices.
            unsafe {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(8)), _mm256_loadu_ps(pb.add(8)), s1);
            }
            i += 16;
        }
        if i + 8 <= n {
            // SAFETY: as above.
            unsafe { s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)), s0) };
            i += 8;
        }
        let mut lanes = [0f32; 8];
        // SAFETY: lanes holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(s0, s1)) };
        lanes.iter().sum::<f32>() + a.iter().zip(b).skip(i).map(|(x, y)| x * y).sum::<f32>()
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n values are in bounds of both slices.
            unsafe {
                let py = y.as_mut_ptr().add(i);
                _mm256_storeu_ps(py, _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(py)));
            }
            i += 8;
        }
        for (y, x) in y.iter_mut().zip(x).skip(i) {
            *y += a * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal to an f64 softmax-weighted sum, on both backends, with and without a slope.
    #[test]
    fn matches_a_plain_softmax_attention() {
        for (n, d) in [(1, 8), (7, 64), (33, 20), (5, 3), (1, 128), (130, 64), (9, 256)] {
            let q: Vec<f32> = (0..d).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
            let k: Vec<f32> = (0..n * d).map(|i| ((i * 13 % 17) as f32 - 8.0) / 6.0).collect();
            let v: Vec<f32> = (0..n * d).map(|i| ((i * 5 % 19) as f32 - 9.0) / 3.0).collect();
            for slope in [0.0, -0.25] {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        let qk: f64 = (0..d).map(|c| f64::from(q[c]) * f64::from(k[j * d + c])).sum();
                        qk * 0.3 + f64::from(slope) * j as f64
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let z: f64 = e.iter().sum();
                let want: Vec<f64> = (0..d).map(|c| (0..n).map(|j| e[j] / z * f64::from(v[j * d + c])).sum()).collect();
                let mut out = vec![f32::NAN; d];
                let mut scratch = Vec::new();
                assert!(attend_one(&q, &k, &v, 0.3, slope, &mut scratch, &mut out));
                for (g, w) in out.iter().zip(&want) {
                    assert!((f64::from(*g) - w).abs() < 1e-5, "n={n} d={d} slope={slope}: {g} vs {w}");
                }
                // Scalar and detected backends agree on the pieces.
                let (a, b) = (dot(Backend::Scalar, &q, &k[..d]), dot(Backend::detect(), &q, &k[..d]));
                assert!((a - b).abs() < 1e-5);
            }
        }
        let mut out = [0f32; 4];
        assert!(!attend_one(&[0.0; 4], &[0.0; 6], &[0.0; 6], 1.0, 0.0, &mut Vec::new(), &mut out));
        assert!(!attend_one(&[0.0; 4], &[], &[], 1.0, 0.0, &mut Vec::new(), &mut out));
    }

    /// A prompt's rows of one head (positions after a cached prefix, every block size, with
    /// and without a slope) equal attention row by row, on head sizes that take the blocked
    /// path and one that does not.
    #[test]
    fn a_span_of_rows_equals_attention_row_by_row() {
        for (rows, pos, d) in [(1, 0, 16), (6, 0, 64), (13, 5, 64), (37, 0, 128), (20, 3, 24), (7, 30, 32)] {
            let stride = 3 * d;
            let q: Vec<f32> = (0..rows * stride).map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0).collect();
            let n = pos + rows;
            let k: Vec<f32> = (0..n * d).map(|i| ((i * 13 % 17) as f32 - 8.0) / 6.0).collect();
            let v: Vec<f32> = (0..n * d).map(|i| ((i * 5 % 19) as f32 - 9.0) / 3.0).collect();
            for slope in [0.0, -0.125] {
                let mut out = vec![f32::NAN; rows * d];
                assert!(attend_span(&q, stride, rows, pos, &k, &v, 0.2, slope, &mut Vec::new(), &mut out));
                for i in 0..rows {
                    let mut want = vec![0f32; d];
                    let seen = (pos + i + 1) * d;
                    let qi = &q[i * stride..i * stride + d];
                    assert!(attend_one(qi, &k[..seen], &v[..seen], 0.2, slope, &mut Vec::new(), &mut want));
                    for (c, (g, w)) in out[i * d..(i + 1) * d].iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() < 1e-5,
                            "rows={rows} pos={pos} d={d} slope={slope} row {i} value {c}: {g} vs {w}"
                        );
                    }
                }
            }
        }
        let mut out = [0f32; 8];
        assert!(!attend_span(&[0.0; 8], 8, 1, 1, &[0.0; 8], &[0.0; 8], 1.0, 0.0, &mut Vec::new(), &mut out));
    }

    /// The vector exp against f64 over the softmax range, including the edges.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_exp_is_within_2e7_relative() {
        if !Backend::detect().is_x86() {
            return;
        }
        let mut worst = 0f64;
        for i in 0..=20_000 {
            let x0 = -87.0 * f64::from(i) / 20_000.0;
            let xs: [f32; 8] = std::array::from_fn(|k| (x0 - 1e-3 * k as f64).max(-87.0) as f32);
            for (x, e) in xs.iter().zip(avx2::exp8_test(xs)) {
                let want = f64::from(*x).exp();
                worst = worst.max((f64::from(e) - want).abs() / want);
            }
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(avx2::exp8_test([0.0; 8]), [1.0; 8]);
        assert!(avx2::exp8_test([-1000.0; 8]).iter().all(|&e| (0.0..1e-37).contains(&e)));
    }
}

//! Matrix products of dense weights (f32, or f16/bf16 as checkpoints store them) with f32
//! activations, accumulating in f32. 16-bit weights stay 16-bit in memory, so a decode step
//! reads half the bytes of an f32 copy and a 7B f16 model needs 14 GB, not 28.
//!
//! Prompts and batches on x86 hosts: from `panel::min_rows` activation rows (AVX2: 48, f16
//! 24; AVX-512: 12, f16 8, bf16 4 as pairs where [`bf16_dot_products`]) a blocked GEMM of outer
//! products on weight panels packed per column block (`panel.rs`; 256-bit tiles on AVX2 hosts,
//! 512-bit tiles on AVX-512 hosts); from 2
//! rows, register tiles of dot products read straight from the stored rows (`tile.rs`). The
//! portable path (and non-x86 CPUs) widen 16 weight rows at a time and take plain dot
//! products; one row goes through [`crate::gemv`].

use crate::gemv::DenseRows;
use crate::matmul::Disjoint;
use crate::{Backend, KernelError, ThreadPool};

#[cfg(target_arch = "x86_64")]
mod panel;
#[cfg(target_arch = "x86_64")]
mod tile;

/// Which 16-bit format the weight bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    F16,
    Bf16,
}

/// Weight rows widened per task on the small-`m` path; 16 rows of 4096 f32 = 256 KiB.
const ROWS_PER_TASK: usize = 16;

/// False when `ZOO_BF16_DOT=0`: bf16 weights then multiply in f32 (the activations not
/// rounded) on AVX512-BF16 CPUs too. Read once.
fn bf16_pairs_allowed() -> bool {
    use std::sync::OnceLock;
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var("ZOO_BF16_DOT").as_deref() != Ok("0"))
}

/// True if prompts on bf16 weights (4 or more activation rows) run as bf16 dot products here,
/// rounding the activations to bf16 (to nearest even) first: the CPU has AVX512-BF16 (and the
/// AVX-512 backend is the one chosen) and `ZOO_BF16_DOT=0` is not set. Each output is then
/// within 2⁻⁸ of Σ|w·x| of the exact product, where the other paths are within 1e-4.
pub fn bf16_dot_products() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        Backend::detect() == Backend::Vnni512 && bf16_pairs_allowed() && panel::Width::Avx512Bf16.available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[i][j] = dot(w_row_j, x_i)` for 16-bit weights `w` (`rows × cols`, little-endian bytes),
/// `x` (`m × cols` f32) and `out` (`m × rows` f32).
#[allow(clippy::too_many_arguments)]
pub fn matmul_half(
    pool: &ThreadPool,
    kind: Half,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    matmul_dense(pool, DenseRows::Half(kind, w), rows, cols, x, m, out)
}

/// `out[i][j] = dot(w_row_j, x_i)` for dense weights (`DenseRows::F32` or `DenseRows::Half`;
/// other forms go row by row through [`crate::gemv`]), `x` (`m × cols` f32) and `out`
/// (`m × rows` f32), on the fastest path this CPU has.
pub fn matmul_dense(
    pool: &ThreadPool,
    w: DenseRows<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    matmul_dense_with(pool, w, rows, cols, x, m, out, Backend::detect())
}

/// [`matmul_dense`] on a given backend: [`Backend::Scalar`] is the portable path (widen, then
/// plain dot products, for any `m`); the x86 backends the register tiles for `m ≥ 2` and the
/// packed panels from `panel::min_rows` (512-bit ones on [`Backend::Vnni512`]).
#[allow(clippy::too_many_arguments)]
pub fn matmul_dense_with(
    pool: &ThreadPool,
    w: DenseRows<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    backend: Backend,
) -> Result<(), KernelError> {
    let need = |a: usize, b: usize| a.checked_mul(b).ok_or(KernelError::Overflow);
    let wlen = need(rows, cols)?;
    if w.len() != wlen || !w.well_formed(rows) {
        return Err(KernelError::InputLength { expected: wlen, got: w.len() });
    }
    let xlen = need(m, cols)?;
    if x.len() != xlen {
        return Err(KernelError::InputLength { expected: xlen, got: x.len() });
    }
    let olen = need(m, rows)?;
    if out.len() != olen {
        return Err(KernelError::OutputLength { expected: olen, got: out.len() });
    }
    if rows == 0 || m == 0 {
        return Ok(());
    }
    if cols == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let backend = if backend.is_available() { backend } else { Backend::Scalar };
    match w {
        DenseRows::F32(_) | DenseRows::Half(..) => {}
        other => {
            // Forms only heads use (split, coded): one gemv per activation row.
            for (xi, oi) in x.chunks_exact(cols).zip(out.chunks_exact_mut(rows)) {
                crate::gemv::gemv_with(pool, other, rows, cols, xi, oi, backend)?;
            }
            return Ok(());
        }
    }
    // x86 hosts: many activation rows go through the packed panels (`panel`, 512-bit on
    // AVX-512 hosts), fewer through register tiles straight from the stored rows (`tile`).
    #[cfg(target_arch = "x86_64")]
    if backend.is_x86() {
        let width = match backend {
            Backend::Vnni512 if bf16_pairs_allowed() && panel::Width::AmxBf16.available() => panel::Width::AmxBf16,
            Backend::Vnni512 if bf16_pairs_allowed() && panel::Width::Avx512Bf16.available() => {
                panel::Width::Avx512Bf16
            }
            Backend::Vnni512 => panel::Width::Avx512,
            _ => panel::Width::Avx2,
        };
        if m >= panel::min_rows(w, width) && panel::matmul(pool, w, rows, cols, x, m, out, width) {
            return Ok(());
        }
        if m >= 2 && tile::matmul(pool, w, rows, cols, x, m, out) {
            return Ok(());
        }
    }
    if m == 1 {
        // One row (a prompt's last position through the output head): the decode product,
        // which streams the stored rows instead of widening them into a buffer first.
        return crate::gemv::gemv_with(pool, w, rows, cols, x, out, backend);
    }
    small_m(pool, w, rows, cols, x, m, out, backend);
    Ok(())
}

/// Weight rows `r0..` of `w` (`cols` values each) as f32 into `dst` (whole rows; what fits).
fn rows_f32(w: DenseRows<'_>, r0: usize, cols: usize, backend: Backend, dst: &mut [f32]) {
    let (start, end) = (r0 * cols, r0 * cols + dst.len());
    match w {
        DenseRows::F32(v) => dst.iter_mut().zip(v.get(start..end).unwrap_or_default()).for_each(|(d, s)| *d = *s),
        DenseRows::Half(kind, b) => widen(kind, backend, b.get(2 * start..2 * end).unwrap_or_default(), dst),
        _ => {}
    }
}

/// Few activation rows (or the portable path): 16 weight rows widened at a time, then a dot
/// product per (weight row, activation row).
#[allow(clippy::too_many_arguments)]
fn small_m(
    pool: &ThreadPool,
    w: DenseRows<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    backend: Backend,
) {
    let tasks = rows.div_ceil(ROWS_PER_TASK);
    let dst = Disjoint::new(out);
    let run = |t: usize| {
        let r0 = t * ROWS_PER_TASK;
        let r1 = (r0 + ROWS_PER_TASK).min(rows);
        let mut buf = vec![0f32; (r1 - r0) * cols];
        rows_f32(w, r0, cols, backend, &mut buf);
        for i in 0..m {
            let xi = x.get(i * cols..(i + 1) * cols).unwrap_or_default();
            for (k, wr) in buf.chunks_exact(cols.max(1)).enumerate() {
                let v = crate::attn::dot(backend, wr, xi);
                // SAFETY: tasks own disjoint weight rows `r0..r1`, so no two write the same element.
                unsafe { dst.set(i * rows + r0 + k, v) };
            }
        }
    };
    pool.run(tasks, &run);
}

/// 16-bit values (little-endian bytes) to f32.
pub fn widen(kind: Half, backend: Backend, src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if backend.is_x86() {
        // SAFETY: Avx2 is only detected when the CPU has AVX2, FMA and F16C.
        unsafe { avx2::widen(kind, src, dst) };
        return;
    }
    let _ = backend;
    widen_scalar(kind, src, dst);
}

fn widen_scalar(kind: Half, src: &[u8], dst: &mut [f32]) {
    for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = crate::gemv::widen_one(kind, c);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Half;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen(kind: Half, src: &[u8], dst: &mut [f32]) {
        let n = dst.len().min(src.len() / 2);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n elements are in bounds of both slices (2 bytes per element in src).
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
                let f = match kind {
                    Half::F16 => _mm256_cvtph_ps(h),
                    Half::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)),
                };
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), f);
            }
            i += 8;
        }
        super::widen_scalar(kind, src.get(2 * i..).unwrap_or_default(), dst.get_mut(i..).unwrap_or_default());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// f32 values as little-endian 16-bit bytes.
    pub(crate) fn bytes(kind: Half, v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|&x| match kind {
                Half::F16 => half::f16::from_f32(x).to_le_bytes(),
                Half::Bf16 => half::bf16::from_f32(x).to_le_bytes(),
            })
            .collect()
    }

    #[test]
    fn matches_a_plain_product_of_the_widened_weights() {
        let pool = ThreadPool::new(3);
        for kind in [Half::F16, Half::Bf16] {
            for (rows, cols, m) in [(37, 70, 1), (5, 8, 3), (40, 33, 17), (1, 1, 1)] {
                let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0).collect();
                let x: Vec<f32> = (0..m * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 8.0).collect();
                let wb = bytes(kind, &w);
                let mut wide = vec![0f32; rows * cols];
                widen(kind, Backend::Scalar, &wb, &mut wide);
                let mut out = vec![0f32; m * rows];
                matmul_half(&pool, kind, &wb, rows, cols, &x, m, &mut out).unwrap();
                for i in 0..m {
                    for r in 0..rows {
                        let want: f64 =
                            (0..cols).map(|k| f64::from(wide[r * cols + k]) * f64::from(x[i * cols + k])).sum();
                        let got = out[i * rows + r];
                        assert!((f64::from(got) - want).abs() < 1e-3, "{kind:?} {rows}x{cols} m={m}: {got} vs {want}");
                    }
                }
                // AVX2 and scalar widening agree bit for bit.
                let mut a = vec![0f32; rows * cols];
                widen(kind, Backend::detect(), &wb, &mut a);
                assert_eq!(a, wide);
            }
        }
    }

    /// The prompt paths a test forces, beside what `matmul_dense_with` picks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Path {
        Dispatch,
        #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
        Panel,
        #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
        Panel512,
        #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
        Panel512Bf16,
        #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
        Tile,
    }

    /// Every path (portable, the AVX2 and AVX-512 panels and the tiles, each
    /// forced whatever `m`), f32 and both 16-bit kinds, ragged shapes (rows not a multiple of
    /// 16, odd columns, more columns than one panel block, bands that do not divide the rows,
    /// activation rows that end in partial groups): within 1e-4 relative to an f64 product of
    /// the same values.
    #[test]
    fn every_path_matches_an_f64_product() {
        let backends: Vec<Backend> = Backend::ALL.into_iter().filter(|b| b.is_available()).collect();
        for threads in [1, 3] {
            let pool = ThreadPool::new(threads);
            let shapes = [
                (37, 70, 8),
                (300, 33, 9),
                (16, 4096, 12),
                (513, 257, 40),
                (40, 33, 3),
                (5, 8, 1),
                (7, 2051, 6),
                (70, 4100, 55),
                (64, 64, 49),
                (45, 300, 26),
            ];
            for (rows, cols, m) in shapes {
                let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0).collect();
                let x: Vec<f32> = (0..m * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 8.0).collect();
                for kind in [None, Some(Half::F16), Some(Half::Bf16)] {
                    let wb = kind.map(|k| bytes(k, &w));
                    let (rows_view, wide) = match (kind, &wb) {
                        (Some(k), Some(b)) => {
                            let mut wide = vec![0f32; rows * cols];
                            widen(k, Backend::Scalar, b, &mut wide);
                            (DenseRows::Half(k, b), wide)
                        }
                        _ => (DenseRows::F32(&w), w.clone()),
                    };
                    // Every backend, then on x86 each AVX2 prompt path whatever `m` would pick
                    // (`Path::Panel`, `Path::Tile`) and, on AVX-512 hosts, the 512-bit panels.
                    let x86 = backends.iter().find(|b| b.is_x86()).copied();
                    let paths = backends
                        .iter()
                        .map(|&b| (b, Path::Dispatch))
                        .chain(x86.into_iter().flat_map(|b| [(b, Path::Panel), (b, Path::Tile)]))
                        .chain(x86.into_iter().flat_map(|b| [(b, Path::Panel512), (b, Path::Panel512Bf16)]));
                    for (backend, path) in paths {
                        let mut out = vec![f32::NAN; m * rows];
                        match path {
                            Path::Dispatch => {
                                matmul_dense_with(&pool, rows_view, rows, cols, &x, m, &mut out, backend).unwrap()
                            }
                            #[cfg(target_arch = "x86_64")]
                            Path::Panel => {
                                assert!(panel::matmul(
                                    &pool,
                                    rows_view,
                                    rows,
                                    cols,
                                    &x,
                                    m,
                                    &mut out,
                                    panel::Width::Avx2
                                ));
                            }
                            #[cfg(target_arch = "x86_64")]
                            Path::Panel512 | Path::Panel512Bf16 => {
                                let width = if path == Path::Panel512 {
                                    panel::Width::Avx512
                                } else {
                                    panel::Width::Avx512Bf16
                                };
                                if !width.available() {
                                    continue;
                                }
                                assert!(panel::matmul(&pool, rows_view, rows, cols, &x, m, &mut out, width));
                            }
                            #[cfg(target_arch = "x86_64")]
                            Path::Tile => assert!(tile::matmul(&pool, rows_view, rows, cols, &x, m, &mut out)),
                            #[cfg(not(target_arch = "x86_64"))]
                            _ => unreachable!(),
                        }
                        for i in 0..m {
                            for r in 0..rows {
                                let (want, mag) = (0..cols).fold((0f64, 0f64), |(s, a), k| {
                                    let p = f64::from(wide[r * cols + k]) * f64::from(x[i * cols + k]);
                                    (s + p, a + p.abs())
                                });
                                let got = f64::from(out[i * rows + r]);
                                assert!(
                                    (got - want).abs() <= 1e-4 * mag.max(1.0),
                                    "{kind:?} {backend:?} {path:?} t={threads} {rows}x{cols} m={m} [{i},{r}]: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The bf16 dot products (`Width::Avx512Bf16`, on CPUs with AVX512-BF16) round the
    /// activations to bf16 (to nearest even) and nothing else: within 1e-5 relative of an f64
    /// product with the rounded activations (which an f32 product of the unrounded ones is
    /// not: the rounding's errors are ~3e-5 of the magnitude here), and within 2⁻⁸ of the
    /// exact product, the bound docs/ARCHITECTURE.md gives.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bf16_dot_products_round_only_the_activations() {
        if !panel::Width::Avx512Bf16.available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let mut next = crate::xorshift(0xBF16);
        let mut unit = move || (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
        let pool = ThreadPool::new(2);
        let widths = [panel::Width::Avx512Bf16, panel::Width::AmxBf16];
        let shapes = [(67, 4096, 13), (40, 2050, 30), (32, 2, 1), (128, 1024, 40), (64, 2048, 16), (96, 160, 33)];
        for (width, (rows, cols, m)) in
            widths.into_iter().filter(|w| w.available()).flat_map(|w| shapes.map(|s| (w, s)))
        {
            let w: Vec<f32> = (0..rows * cols).map(|_| unit() * 0.05).collect();
            let wb = bytes(Half::Bf16, &w);
            let mut wide = vec![0f32; rows * cols];
            widen(Half::Bf16, Backend::Scalar, &wb, &mut wide);
            let x: Vec<f32> = (0..m * cols).map(|_| unit() * 2.0).collect();
            let xr: Vec<f32> = x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
            let mut out = vec![f32::NAN; m * rows];
            let rows_view = DenseRows::Half(Half::Bf16, &wb);
            assert!(panel::matmul(&pool, rows_view, rows, cols, &x, m, &mut out, width));
            let mut worst_unrounded = 0f64;
            for i in 0..m {
                for r in 0..rows {
                    let (mut exact, mut rounded, mut mag) = (0f64, 0f64, 0f64);
                    for k in 0..cols {
                        let wv = f64::from(wide[r * cols + k]);
                        exact += wv * f64::from(x[i * cols + k]);
                        rounded += wv * f64::from(xr[i * cols + k]);
                        mag += (wv * f64::from(x[i * cols + k])).abs();
                    }
                    let got = f64::from(out[i * rows + r]);
                    assert!(
                        (got - rounded).abs() <= 1e-5 * mag,
                        "{width:?} {rows}x{cols} m={m} [{i},{r}]: {got} vs {rounded}"
                    );
                    assert!((got - exact).abs() <= mag / 256.0, "{rows}x{cols} m={m} [{i},{r}]: {got} vs {exact}");
                    worst_unrounded = worst_unrounded.max((exact - rounded).abs() / mag);
                }
            }
            if cols > 2 {
                assert!(worst_unrounded > 1e-5, "{rows}x{cols}: the test data cannot tell rounded from unrounded");
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let pool = ThreadPool::new(1);
        let mut out = vec![0f32; 2];
        assert!(matmul_half(&pool, Half::F16, &[0; 7], 2, 2, &[0.0; 2], 1, &mut out).is_err());
        assert!(matmul_half(&pool, Half::F16, &[0; 8], 2, 2, &[0.0; 3], 1, &mut out).is_err());
        assert!(matmul_half(&pool, Half::F16, &[0; 8], 2, 2, &[0.0; 2], 1, &mut [0f32; 3]).is_err());
    }
}

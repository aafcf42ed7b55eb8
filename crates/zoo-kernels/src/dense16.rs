//! Matrix products of dense weights (f32, or f16/bf16 as checkpoints store them) with f32
//! activations, accumulating in f32. 16-bit weights stay 16-bit in memory, so a decode step
//! reads half the bytes of an f32 copy and a 7B f16 model needs 14 GB, not 28.
//!
//! Prompts and batches on AVX2 hosts: from `panel::min_rows` activation rows (48; f16 24) a
//! blocked GEMM of outer products on weight panels packed per column block (`panel.rs`);
//! from 2 rows, register tiles of dot products read straight from the stored rows
//! (`tile.rs`). On AVX-512 hosts, from [`GEMM_MIN_ROWS`] rows, a packed, cache-blocked GEMM:
//! the weight rows are cut into bands of about [`BAND_BYTES`] of f32, one band per task; a task widens its band to f32 once (into a
//! reused per-thread buffer) and multiplies it with every activation row in the `gemm` crate's
//! register-tiled kernels (AVX-512, chosen at run time by `gemm`), single-threaded inside the
//! task. Fewer rows there (and every `m` on the portable path) widen 16 rows at a time and take
//! plain dot products; one row goes through [`crate::gemv`].

use std::cell::RefCell;

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
/// Activation rows from which the packed GEMM runs.
pub const GEMM_MIN_ROWS: usize = 8;
/// f32 bytes of weights per GEMM task (a band of rows): big enough that `gemm`'s packing of
/// the activations is amortized, small enough for several tasks per thread.
pub const BAND_BYTES: usize = 1 << 20;

thread_local! {
    /// A task's band widened to f32; kept so prompts do not allocate and fault in pages.
    static BAND: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[allow(clippy::too_many_arguments)]
/// `out[i][j] = dot(w_row_j, x_i)` for 16-bit weights `w` (`rows × cols`, little-endian bytes),
/// `x` (`m × cols` f32) and `out` (`m × rows` f32).
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
/// plain dot products, for any `m`); [`Backend::Avx2`] and [`Backend::AvxVnni`] the register
/// tiles for `m ≥ 2`; [`Backend::Vnni512`] the packed GEMM for `m ≥ GEMM_MIN_ROWS`.
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
    // AVX2 hosts: many activation rows go through the packed panels (`panel`), fewer through
    // register tiles straight from the stored rows (`tile`). AVX-512 hosts keep the `gemm`
    // crate's 512-bit kernels on widened bands (the panels and tiles are 256-bit).
    #[cfg(target_arch = "x86_64")]
    if matches!(backend, Backend::Avx2 | Backend::AvxVnni) {
        if m >= panel::min_rows(w) && panel::matmul(pool, w, rows, cols, x, m, out) {
            return Ok(());
        }
        if m >= 2 && tile::matmul(pool, w, rows, cols, x, m, out) {
            return Ok(());
        }
    }
    if backend.is_x86() && m >= GEMM_MIN_ROWS {
        gemm_bands(pool, w, rows, cols, x, m, out, backend);
    } else {
        small_m(pool, w, rows, cols, x, m, out, backend);
    }
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

/// The packed GEMM over bands of weight rows (see the module docs). Lengths are checked.
#[allow(clippy::too_many_arguments)]
fn gemm_bands(
    pool: &ThreadPool,
    w: DenseRows<'_>,
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    backend: Backend,
) {
    let threads = pool.threads().max(1);
    // Bands of whole 16-row groups; at least two per thread when the matrix allows.
    let by_bytes = (BAND_BYTES / (cols * 4)).max(16);
    let by_threads = rows.div_ceil(2 * threads).max(16);
    let band = by_bytes.min(by_threads).next_multiple_of(16);
    let tasks = rows.div_ceil(band);
    let dst = Disjoint::new(out);
    pool.run(tasks, &|t| {
        let r0 = (t * band).min(rows);
        let r1 = (r0 + band).min(rows);
        let nr = r1 - r0;
        if nr == 0 {
            return;
        }
        let product = |wf: &[f32]| {
            if wf.len() < nr * cols || x.len() < m * cols || dst.len() < m * rows {
                return;
            }
            // SAFETY: `dst` holds `m × rows` values and this task alone writes columns
            // `r0..r1` of every row (`dst + r0 + i * rows + j` for `i < m`, `j < nr`); `x` holds
            // `m × cols` values read with row stride `cols`; `wf` holds `nr × cols` values read
            // as the `cols × nr` matrix with column stride `cols`. `gemm` touches nothing else.
            unsafe {
                gemm::gemm(
                    m,
                    nr,
                    cols,
                    dst.ptr_at(r0),
                    1,
                    rows as isize,
                    false,
                    x.as_ptr(),
                    1,
                    cols as isize,
                    wf.as_ptr(),
                    cols as isize,
                    1,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        };
        if let DenseRows::F32(v) = w {
            return product(v.get(r0 * cols..r1 * cols).unwrap_or_default());
        }
        crate::matmul::with_scratch(&BAND, nr * cols, 0.0, |buf| {
            rows_f32(w, r0, cols, backend, buf);
            product(buf);
        });
    });
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
    #[derive(Debug, Clone, Copy)]
    enum Path {
        Dispatch,
        Bands,
        #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
        Panel,
        #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
        Tile,
    }

    /// Every path (portable, the packed GEMM of AVX-512 hosts, the AVX2 panels and tiles, each
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
                    // (`Path::Panel`, `Path::Tile`) and the `gemm` bands (AVX-512 hosts' path).
                    let x86 = backends.iter().find(|b| b.is_x86()).copied();
                    let paths = backends
                        .iter()
                        .map(|&b| (b, Path::Dispatch))
                        .chain(x86.into_iter().flat_map(|b| [(b, Path::Bands), (b, Path::Panel), (b, Path::Tile)]));
                    for (backend, path) in paths {
                        let mut out = vec![f32::NAN; m * rows];
                        match path {
                            Path::Dispatch => {
                                matmul_dense_with(&pool, rows_view, rows, cols, &x, m, &mut out, backend).unwrap()
                            }
                            Path::Bands => gemm_bands(&pool, rows_view, rows, cols, &x, m, &mut out, backend),
                            #[cfg(target_arch = "x86_64")]
                            Path::Panel => {
                                assert!(panel::matmul(&pool, rows_view, rows, cols, &x, m, &mut out));
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

    #[test]
    fn wrong_lengths_are_errors() {
        let pool = ThreadPool::new(1);
        let mut out = vec![0f32; 2];
        assert!(matmul_half(&pool, Half::F16, &[0; 7], 2, 2, &[0.0; 2], 1, &mut out).is_err());
        assert!(matmul_half(&pool, Half::F16, &[0; 8], 2, 2, &[0.0; 3], 1, &mut out).is_err());
        assert!(matmul_half(&pool, Half::F16, &[0; 8], 2, 2, &[0.0; 2], 1, &mut [0f32; 3]).is_err());
    }
}

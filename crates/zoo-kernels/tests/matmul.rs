//! Matrix products against f64 references, for every type, shape class and backend; plus the
//! activation quantizers and bad-input handling.

use half::f16;
use zoo_ggml::quant::{dequantize_row, quantize_row};
use zoo_kernels::act::{self, BlockQ8, BlockQ8K};
use zoo_kernels::{Backend, KernelError, QMatrix, QuantType, ThreadPool, matmul, matmul_with};

/// A small deterministic generator (splitmix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Roughly normal, with occasional outliers (like real activations).
    fn value(&mut self) -> f32 {
        let v = self.uniform() + self.uniform() + self.uniform();
        if self.next_u64().is_multiple_of(97) { v * 8.0 } else { v }
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.value() * scale).collect()
    }
}

fn quantized_matrix(t: QuantType, n: usize, k: usize, rng: &mut Rng) -> Vec<u8> {
    let w = rng.vec(n * k, 0.05);
    let mut bytes = vec![0u8; n * t.row_bytes(k).unwrap()];
    quantize_row(t, &w, &mut bytes).unwrap();
    bytes
}

/// The activations as the kernels see them: quantized, then dequantized.
fn dequantized_acts(t: QuantType, x: &[f32]) -> Vec<f32> {
    match t {
        QuantType::Q4K | QuantType::Q5K | QuantType::Q6K => {
            let mut blocks = vec![BlockQ8K::ZERO; x.len() / 256];
            act::quantize_q8k(x, &mut blocks);
            blocks.iter().flat_map(|b| b.qs.iter().map(move |&q| b.d * f32::from(q))).collect()
        }
        _ => {
            let mut blocks = vec![BlockQ8::ZERO; x.len() / 32];
            act::quantize_q8(x, &mut blocks);
            blocks.iter().flat_map(|b| b.qs.iter().map(move |&q| b.d * f32::from(q))).collect()
        }
    }
}

/// `(value, Σ|w||x|)` in f64 for every output.
fn reference(wd: &[f32], x: &[f32], n: usize, k: usize, m: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        let xi = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wj = &wd[j * k..(j + 1) * k];
            let (mut s, mut a) = (0.0f64, 0.0f64);
            for (&w, &v) in wj.iter().zip(xi) {
                s += f64::from(w) * f64::from(v);
                a += (f64::from(w) * f64::from(v)).abs();
            }
            out.push((s, a));
        }
    }
    out
}

fn check(label: &str, got: &[f32], want: &[(f64, f64)], rel: f64) {
    assert_eq!(got.len(), want.len(), "{label}");
    for (idx, (&g, &(w, mag))) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(err <= rel * mag + 1e-6, "{label}: output {idx}: got {g}, want {w} (err {err:e}, magnitude {mag:e})");
    }
}

fn backends() -> Vec<Backend> {
    Backend::ALL.into_iter().filter(|b| b.is_available()).collect()
}

/// The shapes each type is tested on: `k` must be whole blocks.
fn shapes(t: QuantType) -> Vec<(usize, usize, usize)> {
    // (n, k, m): n never a multiple of the 4-row tile, m covering decode, odd and prefill.
    let all = [
        (37, 576, 1),
        (37, 576, 3),
        (13, 1536, 17),
        (21, 64, 1),
        (21, 64, 17),
        (9, 256, 3),
        (19, 256, 128),
        (6, 1536, 1),
        (5, 576, 128),
        // Cache blocking (`Job::blocked`): at k = 4096 a prompt of 45 rows is two activation
        // chunks (32 + 13: tiles of 8, 4 and 1) and 70 weight rows several sub-bands.
        (70, 4096, 45),
    ];
    all.into_iter().filter(|&(_, k, _)| k % t.block_size() == 0).collect()
}

#[test]
fn every_type_matches_f64_reference() {
    let pools = [ThreadPool::new(1), ThreadPool::new(3)];
    let mut rng = Rng(42);
    for t in QuantType::ALL {
        for (n, k, m) in shapes(t) {
            let bytes = quantized_matrix(t, n, k, &mut rng);
            let w = QMatrix::new(&bytes, t, n, k).unwrap();
            let mut wd = vec![0.0f32; n * k];
            dequantize_row(t, &bytes, &mut wd).unwrap();
            let x = rng.vec(m * k, 1.0);
            let xq = dequantized_acts(t, &x);
            let exact = reference(&wd, &xq, n, k, m);
            let loose = reference(&wd, &x, n, k, m);
            let mut results = Vec::new();
            for pool in &pools {
                for backend in backends() {
                    let label = format!("{t} n={n} k={k} m={m} {backend:?} threads={}", pool.threads());
                    let mut out = vec![f32::NAN; m * n];
                    matmul_with(pool, &w, &x, m, &mut out, backend).unwrap();
                    check(&label, &out, &exact, 1e-4);
                    check(&format!("{label} (vs f32 activations)"), &out, &loose, 2e-2);
                    results.push((label, out));
                }
            }
            // Backends and thread counts agree with each other far more tightly (f32 rounding
            // in a different order: a bound growing with the number of terms).
            let tol = 1e-5 * (k as f32 / 256.0).max(1.0);
            let (first_label, first) = &results[0];
            for (label, out) in &results[1..] {
                for (a, b) in first.iter().zip(out) {
                    assert!((a - b).abs() <= tol * (a.abs() + b.abs()) + tol, "{first_label} vs {label}: {a} vs {b}");
                }
            }
        }
    }
}

/// Weights re-laid into packed groups of 8 rows (`zoo_kernels::packed`): every backend and
/// thread count equals the f64 reference, and the product over the file's layout.
#[test]
fn packed_layouts_match_f64_reference_and_the_row_layout() {
    let pools = [ThreadPool::new(1), ThreadPool::new(3)];
    let mut rng = Rng(1234);
    // (n, k, m): one group and many, decode, odd prompts (every tile width and the one-row
    // remainder), and k = 4096 crossing cache sub-bands and activation chunks.
    let shapes =
        [(8, 256, 1), (16, 512, 1), (40, 256, 3), (24, 1536, 17), (8, 256, 128), (72, 4096, 45), (64, 4096, 1)];
    for t in QuantType::ALL {
        if zoo_kernels::packed::group_block_bytes(t).is_none() {
            continue;
        }
        for (n, k, m) in shapes {
            if k % t.block_size() != 0 {
                continue;
            }
            let bytes = quantized_matrix(t, n, k, &mut rng);
            let mut packed = vec![0u8; zoo_kernels::packed::packed_len(t, n, k).unwrap()];
            zoo_kernels::packed::pack(t, &bytes, n, k, &mut packed).unwrap();
            let rows = QMatrix::new(&bytes, t, n, k).unwrap();
            let w = QMatrix::packed(&packed, t, n, k).unwrap();
            let mut wd = vec![0.0f32; n * k];
            dequantize_row(t, &bytes, &mut wd).unwrap();
            let x = rng.vec(m * k, 1.0);
            let exact = reference(&wd, &dequantized_acts(t, &x), n, k, m);
            let tol = 1e-5 * (k as f32 / 256.0).max(1.0);
            for pool in &pools {
                for backend in backends() {
                    let label = format!("{t} packed n={n} k={k} m={m} {backend:?} threads={}", pool.threads());
                    let mut out = vec![f32::NAN; m * n];
                    matmul_with(pool, &w, &x, m, &mut out, backend).unwrap();
                    check(&label, &out, &exact, 1e-4);
                    let mut plain = vec![f32::NAN; m * n];
                    matmul_with(pool, &rows, &x, m, &mut plain, backend).unwrap();
                    for (a, b) in out.iter().zip(&plain) {
                        assert!((a - b).abs() <= tol * (a.abs() + b.abs()) + tol, "{label}: packed {a}, rows {b}");
                    }
                }
            }
        }
    }
    // A layout that does not exist for the type or the row count is refused, not misread.
    let bytes = quantized_matrix(QuantType::Q4_0, 12, 64, &mut rng);
    assert!(matches!(QMatrix::packed(&bytes, QuantType::Q4_0, 12, 64), Err(KernelError::Packed { .. })));
    let bytes = quantized_matrix(QuantType::Q5K, 4, 256, &mut rng);
    assert!(matches!(QMatrix::packed(&bytes, QuantType::Q5K, 4, 256), Err(KernelError::Packed { .. })));
    let bytes = quantized_matrix(QuantType::Q4_0, 8, 64, &mut rng);
    assert!(matches!(
        QMatrix::packed(&bytes[..bytes.len() - 1], QuantType::Q4_0, 8, 64),
        Err(KernelError::DataLength { .. })
    ));
}

#[test]
fn default_entry_point_uses_a_working_backend() {
    let mut rng = Rng(7);
    let (n, k, m) = (11, 64, 2);
    let bytes = quantized_matrix(QuantType::Q4_1, n, k, &mut rng);
    let w = QMatrix::new(&bytes, QuantType::Q4_1, n, k).unwrap();
    let x = rng.vec(m * k, 1.0);
    let mut a = vec![0.0; m * n];
    let mut b = vec![0.0; m * n];
    let pool = ThreadPool::new(2);
    matmul(&pool, &w, &x, m, &mut a).unwrap();
    matmul_with(&pool, &w, &x, m, &mut b, Backend::Scalar).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * (x.abs() + 1.0));
    }
}

#[test]
fn q8_0_activations_match_zoo_ggml_bytes() {
    let mut rng = Rng(3);
    let mut x = rng.vec(32 * 64, 3.0);
    x[32..64].fill(0.0); // an all-zero block
    x[64] = 1e6; // a block dominated by one value
    x[100] = -7.5;
    let mut want = vec![0u8; 64 * 34];
    quantize_row(QuantType::Q8_0, &x, &mut want).unwrap();
    let mut blocks = vec![BlockQ8::ZERO; 64];
    act::quantize_q8(&x, &mut blocks);
    let got: Vec<u8> = blocks.iter().flat_map(act::q8_0_bytes).collect();
    assert_eq!(got, want);
    // The offset sum is d times the sum of the values.
    for b in &blocks {
        let sum: i32 = b.qs.iter().map(|&q| i32::from(q)).sum();
        assert_eq!(b.s, b.d * sum as f32);
    }
}

#[test]
fn q8_1_reference_bytes_by_hand() {
    // amax = 254 → d = 2 (exact in f16), id = 0.5: 3 → 1.5 → 2 (roundf), -5 → -2.5 → -3.
    let mut x = [0.0f32; 32];
    x[0] = 254.0;
    x[1] = 3.0;
    x[2] = -5.0;
    x[20] = 100.0;
    let mut y = [0u8; 36];
    act::quantize_row_q8_1_ref(&x, &mut y);
    let mut want = [0u8; 36];
    want[0..2].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
    // s = Σq * d = (127 + 2 - 3 + 50) * 2 = 352.
    want[2..4].copy_from_slice(&f16::from_f32(352.0).to_le_bytes());
    want[4] = 127;
    want[5] = 2;
    want[6] = (-3i8) as u8;
    want[4 + 20] = 50;
    assert_eq!(y, want);
    // The kernels' block has the same scale and values, and s = d Σq in f32.
    let mut b = BlockQ8::ZERO;
    act::quantize_q8(&x, std::slice::from_mut(&mut b));
    assert_eq!((b.d, b.s), (2.0, 352.0));
    assert_eq!(b.qs.iter().map(|&q| q as u8).collect::<Vec<_>>(), want[4..].to_vec());
}

#[test]
fn q8_1_sum_is_rounded_like_ggml() {
    // A scale that is not an f16 value: ggml rounds Σq * d (unrounded d) to f16.
    let x: Vec<f32> = (0..32).map(|i| (i as f32 - 3.3) * 0.137).collect();
    let mut y = [0u8; 36];
    act::quantize_row_q8_1_ref(&x, &mut y);
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let sum: i32 = x.iter().map(|v| (v * (1.0 / d)).round() as i32).sum();
    assert_eq!(&y[0..2], &f16::from_f32(d).to_le_bytes());
    assert_eq!(&y[2..4], &f16::from_f32(sum as f32 * d).to_le_bytes());
}

#[test]
fn q8_k_by_hand() {
    // max = -127 (largest magnitude, negative) → iscale = 1, d = 1: values unchanged, ties to even.
    let mut x = [0.0f32; 256];
    x[0] = -127.0;
    x[1] = 2.5; // nearest_int → 2
    x[2] = 3.5; // → 4
    x[17] = 100.0;
    x[255] = -1.0;
    let mut b = BlockQ8K::ZERO;
    act::quantize_q8k(&x, std::slice::from_mut(&mut b));
    assert_eq!(b.d, 1.0);
    assert_eq!(&b.qs[..3], &[-127, 2, 4]);
    assert_eq!(b.qs[17], 100);
    assert_eq!(b.qs[255], -1);
    let mut bsums = [0i16; 16];
    bsums[0] = -127 + 2 + 4;
    bsums[1] = 100;
    bsums[15] = -1;
    assert_eq!(b.bsums, bsums);

    // A positive max: iscale = -127 / max flips signs, d = 1 / iscale is negative.
    let mut x = [0.0f32; 256];
    x[3] = 2.0;
    x[4] = 1.0;
    act::quantize_q8k(&x, std::slice::from_mut(&mut b));
    assert_eq!(b.d, 1.0 / (-127.0 / 2.0));
    assert_eq!(&b.qs[3..5], &[-127, -64]); // -63.5 → -64 (ties to even)
    assert_eq!(b.bsums[0], -191);

    // All zero: d = 0 and everything zero.
    act::quantize_q8k(&[0.0; 256], std::slice::from_mut(&mut b));
    assert_eq!(b, BlockQ8K::ZERO);
}

#[test]
fn bad_inputs_are_errors() {
    let pool = ThreadPool::new(2);
    // Data of the wrong length.
    let data = vec![0u8; 20 * 2 * 4 - 1];
    assert!(matches!(QMatrix::new(&data, QuantType::Q4_1, 4, 64), Err(KernelError::DataLength { .. })));
    // Columns not a whole number of blocks.
    let data = vec![0u8; 1000];
    assert!(matches!(QMatrix::new(&data, QuantType::Q4_1, 4, 48), Err(KernelError::Cols { .. })));
    assert!(matches!(QMatrix::new(&data, QuantType::Q4K, 1, 576), Err(KernelError::Cols { .. })));
    // A hand-built (public fields) bad matrix is caught by matmul too.
    let w = QMatrix { data: &data, qtype: QuantType::Q8_0, rows: 3, cols: 64, layout: zoo_kernels::Layout::Rows };
    let mut out = vec![0.0; 3];
    assert!(matmul(&pool, &w, &[0.0; 64], 1, &mut out).is_err());
    let w = QMatrix { data: &data, qtype: QuantType::Q8_0, rows: 3, cols: 33, layout: zoo_kernels::Layout::Rows };
    assert!(matmul(&pool, &w, &[0.0; 33], 1, &mut out).is_err());
    // Huge shapes overflow instead of wrapping.
    let w =
        QMatrix { data: &data, qtype: QuantType::Q8_0, rows: usize::MAX, cols: 64, layout: zoo_kernels::Layout::Rows };
    assert!(matches!(matmul(&pool, &w, &[0.0; 64], 1, &mut out), Err(KernelError::Overflow)));

    let data = vec![0u8; 3 * 2 * 34];
    let w = QMatrix::new(&data, QuantType::Q8_0, 3, 64).unwrap();
    // Wrong activation and output lengths.
    assert!(matches!(matmul(&pool, &w, &[0.0; 63], 1, &mut out), Err(KernelError::InputLength { .. })));
    assert!(matches!(matmul(&pool, &w, &[0.0; 128], 1, &mut out), Err(KernelError::InputLength { .. })));
    let mut short = vec![0.0; 2];
    assert!(matches!(matmul(&pool, &w, &[0.0; 64], 1, &mut short), Err(KernelError::OutputLength { .. })));
    // m = 0 is fine and touches nothing.
    assert!(matmul(&pool, &w, &[], 0, &mut []).is_ok());
    // Non-finite inputs give non-finite or garbage values, never a panic.
    let mut x = vec![1.0f32; 64];
    x[5] = f32::NAN;
    x[40] = f32::INFINITY;
    for backend in backends() {
        matmul_with(&pool, &w, &x, 1, &mut out, backend).unwrap();
    }
    // Zero columns: all-zero output.
    let w = QMatrix::new(&[], QuantType::Q4_0, 3, 0).unwrap();
    let mut out = vec![1.0; 6];
    matmul(&pool, &w, &[], 2, &mut out).unwrap();
    assert_eq!(out, vec![0.0; 6]);
}

#[test]
fn dequantize_row_forwards() {
    let mut rng = Rng(9);
    let x = rng.vec(256, 1.0);
    let mut q = vec![0u8; 144];
    quantize_row(QuantType::Q4K, &x, &mut q).unwrap();
    let mut a = vec![0.0; 256];
    let mut b = vec![0.0; 256];
    zoo_kernels::dequantize_row(QuantType::Q4K, &q, &mut a).unwrap();
    dequantize_row(QuantType::Q4K, &q, &mut b).unwrap();
    assert_eq!(a, b);
    assert!(zoo_kernels::dequantize_row(QuantType::Q4K, &q[1..], &mut a).is_err());
}

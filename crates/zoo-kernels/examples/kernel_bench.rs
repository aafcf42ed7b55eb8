//! Times `matmul` on SmolLM2-135M shapes (decode m = 1, prefill m = 128; 1 and 2 threads)
//! against a naive "dequantize a row, then f32 dot" baseline, and the thread pool's per-call
//! overhead. Run with `cargo run --release -p zoo-kernels --example kernel_bench [-- types]`,
//! where `types` is a comma-separated list of weight types to time the layer shapes in
//! (default `Q4_1`; the output matrix is always Q8_0). `STEP_ONLY=1` runs only the whole-step
//! figures; `SCALAR=1` forces the portable backend.

use std::hint::black_box;
use std::time::{Duration, Instant};

use zoo_kernels::{Backend, QMatrix, QuantType, ThreadPool, matmul, matmul_with};

fn main() {
    let types: Vec<QuantType> =
        std::env::args().nth(1).unwrap_or_else(|| "Q4_1".into()).split(',').filter_map(QuantType::from_name).collect();
    let scalar = std::env::var_os("SCALAR").is_some();
    let backend = if scalar { Backend::Scalar } else { Backend::detect() };
    println!("backend: {backend:?}");

    for threads in [1, 2] {
        let pool = ThreadPool::new(threads);
        let per_call = time(|| {
            pool.run(threads, &|i| {
                black_box(i);
            })
        });
        println!("threads={threads}: ThreadPool::run overhead {:.2} us/call", per_call * 1e6);
    }

    if std::env::var_os("STEP_ONLY").is_some() {
        // Only the whole-step figures (quicker A/B runs).
        for &t in &types {
            decode_step(t, backend);
        }
        return;
    }
    // (label, n, k, count per decode step)
    let layer = [
        ("attn_q/o", 576, 576, 60),
        ("attn_k/v", 192, 576, 60),
        ("ffn_up/gate", 1536, 576, 60),
        ("ffn_down", 576, 1536, 30),
    ];
    println!();
    println!(
        "{:<6} {:<12} {:>6} {:>5} {:>4} {:>3} | {:>10} {:>8} {:>8} | {:>10} {:>8}",
        "type", "shape", "n", "k", "m", "thr", "us/call", "GB/s", "GFLOP/s", "naive us", "speedup"
    );
    for &t in &types {
        let mut step = [0.0f64; 2];
        let mut shapes: Vec<(&str, usize, usize, usize, QuantType)> =
            layer.iter().map(|&(l, n, k, c)| (l, n, k, c, t)).collect();
        shapes.push(("output", 49152, 576, 1, QuantType::Q8_0));
        for (label, n, k, count, qt) in shapes {
            if k % qt.block_size() != 0 {
                println!("{qt:<6} {label:<12} skipped: k={k} is not whole {}-value blocks", qt.block_size());
                continue;
            }
            let w = random_matrix(qt, n, k);
            let wm = QMatrix::new(&w, qt, n, k).unwrap_or_else(|e| panic!("{e}"));
            for m in [1usize, 128] {
                let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
                let mut out = vec![0.0f32; m * n];
                for (ti, threads) in [1usize, 2].into_iter().enumerate() {
                    let pool = ThreadPool::new(threads);
                    let secs = time(|| matmul_with(&pool, &wm, &x, m, &mut out, backend).unwrap_or(()));
                    let naive = time(|| naive_matmul(&pool, &wm, &x, m, &mut out));
                    let gbs = w.len() as f64 / secs / 1e9;
                    let gflops = 2.0 * (m * n * k) as f64 / secs / 1e9;
                    if m == 1 {
                        step[ti] += secs * count as f64;
                    }
                    println!(
                        "{:<6} {:<12} {:>6} {:>5} {:>4} {:>3} | {:>10.1} {:>8.2} {:>8.1} | {:>10.1} {:>7.1}x",
                        qt.name(),
                        label,
                        n,
                        k,
                        m,
                        threads,
                        secs * 1e6,
                        gbs,
                        gflops,
                        naive * 1e6,
                        naive / secs
                    );
                }
            }
        }
        println!(
            "{t}: sum over one decode step's matmuls, each timed hot in cache: {:.2} ms (1 thread), {:.2} ms (2 threads)",
            step[0] * 1e3,
            step[1] * 1e3
        );
        if 576 % t.block_size() == 0 {
            decode_step(t, backend);
        }
    }
    // Keep `matmul` (the auto-dispatching entry point) exercised too.
    let w = random_matrix(QuantType::Q4_1, 8, 64);
    let wm = QMatrix::new(&w, QuantType::Q4_1, 8, 64).unwrap_or_else(|e| panic!("{e}"));
    let mut out = vec![0.0; 8];
    matmul(&ThreadPool::new(1), &wm, &[0.5; 64], 1, &mut out).unwrap_or(());
}

/// A whole SmolLM2-135M decode step's weight matmuls over distinct matrices (30 layers of
/// type `t` plus the Q8_0 output matrix, ~92 MB for Q4_1), so weights stream from memory as in
/// real decoding rather than sitting in cache; and the same for a 128-token prefill.
fn decode_step(t: QuantType, backend: Backend) {
    let shapes = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)];
    let layers: Vec<Vec<(Vec<u8>, usize, usize)>> =
        (0..30).map(|_| shapes.iter().map(|&(n, k)| (random_matrix(t, n, k), n, k)).collect()).collect();
    let output = random_matrix(QuantType::Q8_0, 49152, 576);
    let bytes: usize = layers.iter().flatten().map(|(w, _, _)| w.len()).sum::<usize>() + output.len();
    for m in [1usize, 128] {
        let x = vec![0.25f32; m * 1536];
        let mut out = vec![0.0f32; m * 49152];
        for threads in [1, 2] {
            let pool = ThreadPool::new(threads);
            let mut step = || {
                for layer in &layers {
                    for (w, n, k) in layer {
                        let wm = QMatrix { data: w, qtype: t, rows: *n, cols: *k, layout: zoo_kernels::Layout::Rows };
                        let _ = matmul_with(&pool, &wm, &x[..m * k], m, &mut out[..m * n], backend);
                    }
                }
                // Prefill only needs the logits of the last token.
                let wm = QMatrix {
                    data: &output,
                    qtype: QuantType::Q8_0,
                    rows: 49152,
                    cols: 576,
                    layout: zoo_kernels::Layout::Rows,
                };
                let _ = matmul_with(&pool, &wm, &x[..576], 1, &mut out[..49152], backend);
            };
            step();
            let start = Instant::now();
            let reps = if m == 1 { 20 } else { 3 };
            for _ in 0..reps {
                step();
            }
            let secs = start.elapsed().as_secs_f64() / reps as f64;
            if m == 1 {
                println!(
                    "{t}: decode step (m=1), all weights streamed: {:.2} ms = {:.0} tok/s (matmuls only), {:.1} GB/s, threads={threads}",
                    secs * 1e3,
                    1.0 / secs,
                    bytes as f64 / secs / 1e9
                );
            } else {
                println!(
                    "{t}: prefill of {m} tokens: {:.1} ms = {:.0} tok/s (matmuls only), threads={threads}",
                    secs * 1e3,
                    m as f64 / secs
                );
            }
        }
    }
}

/// Median seconds per call over a few rounds of ~0.15 s each.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < Duration::from_millis(30) {
        f();
        iters += 1;
    }
    let per = start.elapsed().as_secs_f64() / iters as f64;
    let reps = ((0.15 / per) as u64).max(1);
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn random_matrix(t: QuantType, n: usize, k: usize) -> Vec<u8> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let w: Vec<f32> = (0..n * k)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect();
    let mut bytes = vec![0u8; n * t.row_bytes(k).unwrap_or(0)];
    zoo_ggml::quant::quantize_rows_parallel(t, &w, k, &mut bytes, 2).unwrap_or_else(|e| panic!("{e}"));
    bytes
}

/// The contrast: dequantize each weight row to f32, then plain f32 dot products, rows split
/// over the pool like `matmul` does.
fn naive_matmul(pool: &ThreadPool, w: &QMatrix, x: &[f32], m: usize, out: &mut [f32]) {
    let (n, k) = (w.rows, w.cols);
    let threads = pool.threads();
    let chunk = n.div_ceil(threads);
    let results: Vec<std::sync::Mutex<Vec<f32>>> = (0..threads).map(|_| Default::default()).collect();
    pool.run(threads, &|t| {
        let mut row = vec![0.0f32; k];
        let mut local = vec![0.0f32; m * chunk];
        for j in (t * chunk)..((t + 1) * chunk).min(n) {
            let Some(bytes) = w.row(j) else { continue };
            if zoo_kernels::dequantize_row(w.qtype, bytes, &mut row).is_err() {
                continue;
            }
            for i in 0..m {
                let xi = &x[i * k..(i + 1) * k];
                local[i * chunk + j - t * chunk] = dot_f32(&row, xi);
            }
        }
        if let Ok(mut r) = results[t].lock() {
            *r = local;
        }
    });
    for (t, r) in results.iter().enumerate() {
        if let Ok(r) = r.lock() {
            for i in 0..m {
                for jj in 0..chunk {
                    let j = t * chunk + jj;
                    if j < n {
                        out[i * n + j] = r[i * chunk + jj];
                    }
                }
            }
        }
    }
}

/// An f32 dot product the compiler can vectorize (8 independent partial sums).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum()
}

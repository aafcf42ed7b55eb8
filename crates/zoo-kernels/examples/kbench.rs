//! Kernel timing for development: `cargo run --release -p zoo-kernels --example kbench --
//! [TYPES] [M...]`, e.g. `q4_0,q4_k,f16 1 128 512` (`q4_0+p`, `q4_k+p`: weights packed into
//! groups of 8 rows, as the runner loads them). Prints GFLOP/s (2·m·n·k per call) for the
//! LLaMA-7B matrix shapes (4096×4096, 11008×4096, 4096×11008; `ZOO_SHAPES=NxK,...` others),
//! median of a few calls, on `ZOO_THREADS` (default 2) threads and the backend `ZOO_KERNELS`
//! picks.
//! Not a test and not the benchmark of record (bench/speed-matrix.sh is): a quick look.

use std::time::Instant;

use zoo_kernels::{DenseRows, Half, QMatrix, QuantType, ThreadPool};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let types = args.first().cloned().unwrap_or_else(|| "q4_0,q8_0,q4_k,q6_k,f16".into());
    let ms: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let ms = if ms.is_empty() { vec![1, 128, 512] } else { ms };
    let threads = std::env::var("ZOO_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let pool = ThreadPool::new(threads);
    // `ZOO_SHAPES=NxK,...` (rows × columns of the weight matrix) replaces the 7B shapes.
    let shapes: Vec<(usize, usize)> = std::env::var("ZOO_SHAPES")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|s| s.split_once('x'))
                .filter_map(|(n, k)| Some((n.trim().parse().ok()?, k.trim().parse().ok()?)))
                .collect()
        })
        .unwrap_or_else(|| vec![(4096, 4096), (11008, 4096), (4096, 11008)]);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for ty in types.split(',') {
        for &(n, k) in &shapes {
            let w: Vec<f32> = (0..n * k).map(|_| rnd() * 0.04).collect();
            let (name, pack) = match ty.strip_suffix("+p") {
                Some(name) => (name, true),
                None => (ty, false),
            };
            let (bytes, qt) = match name {
                "f16" | "bf16" | "f32" => (Vec::new(), None),
                name => {
                    let Some(t) = QuantType::from_name(&name.to_uppercase()) else {
                        eprintln!("unknown type {name}");
                        return;
                    };
                    let mut b = vec![0u8; n * t.row_bytes(k).unwrap_or(0)];
                    zoo_ggml::quant::quantize_row(t, &w, &mut b).ok();
                    if pack {
                        let mut p = vec![0u8; zoo_kernels::packed::packed_len(t, n, k).unwrap_or(0)];
                        if let Err(e) = zoo_kernels::packed::pack(t, &b, n, k, &mut p) {
                            eprintln!("{e}");
                            return;
                        }
                        b = p;
                    }
                    (b, Some(t))
                }
            };
            let half: Vec<u8> = match ty {
                "f16" => w.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
                "bf16" => w.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
                _ => Vec::new(),
            };
            for &m in &ms {
                let x: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
                let mut out = vec![0f32; m * n];
                let reps = if m == 1 { 40 } else { 8 };
                let mut times = Vec::new();
                for _ in 0..reps + 1 {
                    let t0 = Instant::now();
                    let r = match (qt, ty) {
                        (Some(t), _) => {
                            let q = if pack { QMatrix::packed(&bytes, t, n, k) } else { QMatrix::new(&bytes, t, n, k) };
                            q.and_then(|q| zoo_kernels::matmul(&pool, &q, &x, m, &mut out))
                        }
                        (None, "f32") => zoo_kernels::matmul_dense(&pool, DenseRows::F32(&w), n, k, &x, m, &mut out),
                        (None, "bf16") => zoo_kernels::matmul_half(&pool, Half::Bf16, &half, n, k, &x, m, &mut out),
                        _ => zoo_kernels::matmul_half(&pool, Half::F16, &half, n, k, &x, m, &mut out),
                    };
                    if let Err(e) = r {
                        eprintln!("{e}");
                        return;
                    }
                    times.push(t0.elapsed().as_secs_f64());
                }
                times.remove(0);
                times.sort_by(f64::total_cmp);
                let t = times[0]; // best of the calls: the least disturbed by neighbours
                let gflops = 2.0 * (m * n * k) as f64 / t / 1e9;
                let wbytes = if qt.is_some() {
                    bytes.len()
                } else if half.is_empty() {
                    4 * n * k
                } else {
                    half.len()
                };
                println!(
                    "{ty:>5} n={n:>5} k={k:>5} m={m:>4}  {:8.3} ms  {gflops:7.1} GFLOP/s  {:6.1} GB/s weights",
                    t * 1e3,
                    wbytes as f64 / t / 1e9
                );
            }
        }
    }
}

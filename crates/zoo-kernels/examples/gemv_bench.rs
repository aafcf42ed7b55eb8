//! Memory bandwidth of the dense decode product (`gemv`) on BLOOM-560m's biggest matrix (the
//! tied 250880 × 1024 head) in f32 and bf16 (plain, coded as two byte planes, its code plane
//! alone and the coded greedy product), 1 and 2 threads, next to `matmul_half` (the
//! widen-then-dot path used for prompts), and BLOOM-560m's 24 blocks in bf16, all on huge pages
//! as the runner holds weights.
//! Compare with the machine's read bandwidth (bench/membw.c).
//! `cargo run --release -p zoo-kernels --example gemv_bench`

use std::hint::black_box;
use std::time::Instant;

use zoo_kernels::coded::CodedRow;
use zoo_kernels::{CodedHead, DenseRows, Half, ThreadPool, gemv, gemv_greedy, matmul_half};

/// `n` values from `it` in a buffer advised onto huge pages before it is filled.
fn huge<T>(n: usize, it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    zoo_ggml::mem::advise_huge_pages(v.spare_capacity_mut());
    v.extend(it);
    v
}

fn main() {
    let (rows, cols) = (250_880, 1024);
    // On huge pages, as the runner holds its weights (zoo_ggml::mem).
    // Random values (xorshift), about the spread of a trained head's.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let w32: Vec<f32> = huge(rows * cols, (0..rows * cols).map(|_| (next() + next() + next()) * 0.04));
    let w16: Vec<u8> = huge(2 * rows * cols, w32.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()));
    let x: Vec<f32> = (0..cols).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect();
    let mut out = vec![0f32; rows];
    // The bf16 head coded as two byte planes (zoo_kernels::coded), as the runner holds bf16 heads.
    let mut code: Vec<u8> = huge(rows * cols, std::iter::repeat_n(0, rows * cols));
    let mut rest: Vec<u8> = huge(rows * cols, std::iter::repeat_n(0, rows * cols));
    let mut info = vec![CodedRow::default(); rows];
    let t = Instant::now();
    zoo_kernels::coded::encode_rows(&ThreadPool::new(2), &w16, cols, &mut code, &mut rest, &mut info).unwrap();
    println!("coding the bf16 head, 2 threads: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let head = CodedHead { code: &code, rest: &rest, info: &info, rows, cols };
    // BLOOM-560m's 24 blocks in bf16: qkv 3072x1024, dense 1024x1024, up 4096x1024, down 1024x4096.
    let shapes = [(3072, 1024), (1024, 1024), (4096, 1024), (1024, 4096)];
    let blocks: Vec<Vec<Vec<u8>>> = (0..24)
        .map(|b| {
            shapes
                .iter()
                .map(|&(r, c)| huge(r * c * 2, (0..r * c * 2).map(|i| ((i * 31 + b) % 251) as u8 & 0x3f)))
                .collect()
        })
        .collect();
    let block_bytes: usize = blocks.iter().flatten().map(|m| m.len()).sum();
    let x4: Vec<f32> = (0..4096).map(|i| (i % 7) as f32 / 7.0).collect();
    let mut out4 = vec![0f32; 4096];
    for threads in [1, 2] {
        let pool = ThreadPool::new(threads);
        let best = |f: &mut dyn FnMut()| {
            f();
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let gb = |bytes: usize, s: f64| bytes as f64 / s / 1e9;
        let s = best(&mut || gemv(&pool, DenseRows::F32(&w32), rows, cols, &x, &mut out).unwrap());
        println!("threads={threads} gemv f32        {:6.2} ms  {:5.1} GB/s", s * 1e3, gb(w32.len() * 4, s));
        let s = best(&mut || gemv(&pool, DenseRows::Half(Half::Bf16, &w16), rows, cols, &x, &mut out).unwrap());
        println!("threads={threads} gemv bf16       {:6.2} ms  {:5.1} GB/s", s * 1e3, gb(w16.len(), s));
        let s = best(&mut || {
            gemv(&pool, DenseRows::Coded { code: &code, rest: &rest, info: &info }, rows, cols, &x, &mut out).unwrap()
        });
        println!("threads={threads} gemv coded bf16 {:6.2} ms  {:5.1} GB/s", s * 1e3, gb(w16.len(), s));
        let s = best(&mut || {
            gemv(&pool, DenseRows::CodeApprox { code: &code, info: &info }, rows, cols, &x, &mut out).unwrap()
        });
        println!("threads={threads} gemv code plane {:6.2} ms  {:5.1} GB/s", s * 1e3, gb(code.len(), s));
        let mut picked = 0;
        let s = best(&mut || picked = gemv_greedy(&pool, head, &x, &mut out).unwrap());
        println!("threads={threads} greedy coded    {:6.2} ms  ({picked} rows exact)", s * 1e3);
        let s = best(&mut || matmul_half(&pool, Half::Bf16, &w16, rows, cols, &x, 1, &mut out).unwrap());
        println!("threads={threads} matmul_half bf16 {:6.2} ms  {:5.1} GB/s", s * 1e3, gb(w16.len(), s));
        let s = best(&mut || {
            for b in &blocks {
                for (m, &(r, c)) in b.iter().zip(&shapes) {
                    gemv(&pool, DenseRows::Half(Half::Bf16, m), r, c, &x4[..c], &mut out4[..r]).unwrap();
                }
            }
        });
        println!("threads={threads} 24 BLOOM blocks bf16 {:6.2} ms  {:5.1} GB/s", s * 1e3, gb(block_bytes, s));
        for (k, &(r, c)) in shapes.iter().enumerate() {
            let s = best(&mut || {
                for b in &blocks {
                    if let Some(m) = b.get(k) {
                        gemv(&pool, DenseRows::Half(Half::Bf16, m), r, c, &x4[..c], &mut out4[..r]).unwrap();
                    }
                }
            });
            println!("threads={threads}   24 x {r}x{c} bf16 {:6.2} ms  {:5.1} GB/s", s * 1e3, gb(24 * r * c * 2, s));
        }
        black_box(&out);
    }
}

//! Benchmark helper for `delta apply`: generates a LLaMA-7B-shaped checkpoint pair, runs the
//! apply, and measures the raw I/O floor (read both inputs, write and fsync the output size).
//!
//! ```text
//! cargo run --release -p zoo-weights --example delta_bench -- gen DIR [LAYERS] [f16|bf16]
//! cargo run --release -p zoo-weights --example delta_bench -- apply BASE DELTA OUT [ALGORITHM]
//! cargo run --release -p zoo-weights --example delta_bench -- raw BASE DELTA OUT
//! ```
//! `gen` writes `DIR/base` (vocab 32000) and `DIR/delta` (vocab 32001, `<pad>` row), f16 or bf16,
//! hidden 4096, intermediate 11008, `LAYERS` layers (default 2: 1.3 GB per side).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use zoo_progress::{CancelToken, Silent};
use zoo_weights::delta::{self, Algorithm, DeltaOptions};
use zoo_weights::{Dtype, SafetensorsWriter, TensorSpec, WriteOptions};

fn specs(vocab: u64, layers: u64, dtype: Dtype) -> Vec<TensorSpec> {
    let (h, i) = (4096u64, 11008u64);
    let t = |name: String, shape: Vec<u64>| TensorSpec { name, dtype, shape };
    let mut v = vec![t("model.embed_tokens.weight".into(), vec![vocab, h])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            v.push(t(format!("{p}.self_attn.{n}.weight"), vec![h, h]));
        }
        v.push(t(format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
        v.push(t(format!("{p}.mlp.up_proj.weight"), vec![i, h]));
        v.push(t(format!("{p}.mlp.down_proj.weight"), vec![h, i]));
        v.push(t(format!("{p}.input_layernorm.weight"), vec![h]));
        v.push(t(format!("{p}.post_attention_layernorm.weight"), vec![h]));
    }
    v.push(t("model.norm.weight".into(), vec![h]));
    v.push(t("lm_head.weight".into(), vec![vocab, h]));
    v
}

/// Writes a checkpoint of pseudo-random f16 values in [2^-8, 2^-4) of either sign.
fn generate(dest: &Path, vocab: u64, layers: u64, dtype: Dtype, seed: u64) {
    let specs = specs(vocab, layers, dtype);
    let total: u64 = specs.iter().filter_map(TensorSpec::byte_len).sum();
    let opts = WriteOptions { max_shard_size: 1 << 30, overwrite: true };
    let mut w = SafetensorsWriter::create(dest, specs, &opts).unwrap();
    let mut state = seed | 1;
    let mut buf = vec![0u8; 8 << 20];
    let mut left = total;
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        for pair in buf[..n].chunks_exact_mut(2) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let r = state as u16;
            let bits = if dtype == Dtype::BF16 {
                (r & 0x8000) | ((119 + ((r >> 7) & 3)) << 7) | (r & 0x007f)
            } else {
                (r & 0x8000) | ((7 + ((r >> 10) & 3)) << 10) | (r & 0x03ff)
            };
            pair.copy_from_slice(&bits.to_le_bytes());
        }
        w.write(&buf[..n]).unwrap();
        left -= n as u64;
    }
    w.add_bytes("config.json", b"{\"architectures\":[\"LlamaForCausalLM\"]}\n").unwrap();
    w.finish().unwrap();
}

fn raw(base: &Path, delta: &Path, out: &Path) {
    let mut buf = vec![0u8; 8 << 20];
    let mut read_all = |dir: &Path| -> u64 {
        let mut total = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "safetensors") {
                let mut f = File::open(&p).unwrap();
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
            }
        }
        total
    };
    let _ = read_all(base);
    let size = read_all(delta);
    let mut f = File::create(out).unwrap();
    let mut left = size;
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| PathBuf::from(args.get(i).cloned().unwrap_or_default());
    let start = Instant::now();
    match args.first().map(String::as_str) {
        Some("gen") => {
            let layers = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
            let dtype = if args.get(3).is_some_and(|d| d == "bf16") { Dtype::BF16 } else { Dtype::F16 };
            generate(&arg(1).join("base"), 32000, layers, dtype, 1);
            generate(&arg(1).join("delta"), 32001, layers, dtype, 2);
        }
        Some("apply") => {
            let algorithm = args.get(4).and_then(|s| Algorithm::from_name(s)).unwrap_or(Algorithm::Fastchat);
            let opts = DeltaOptions {
                write: WriteOptions { overwrite: true, ..WriteOptions::default() },
                ..DeltaOptions::default()
            };
            let r = delta::apply(&arg(1), &arg(2), algorithm, &arg(3), &opts, &Silent, &CancelToken::new()).unwrap();
            eprintln!("{} tensors, {} bytes", r.write.tensors, r.write.tensor_bytes);
        }
        Some("raw") => raw(&arg(1), &arg(2), &arg(3)),
        _ => {
            eprintln!(
                "usage: delta_bench gen DIR [LAYERS] [f16|bf16] | apply BASE DELTA OUT [ALGORITHM] | raw BASE DELTA OUT"
            );
            std::process::exit(2);
        }
    }
    eprintln!("{:.2} s", start.elapsed().as_secs_f64());
}

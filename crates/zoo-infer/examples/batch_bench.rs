//! Aggregate decode speed of batched generation: N sequences with distinct seeded random
//! prompts are prefilled together, then decoded greedily together (end-of-sequence ignored),
//! one `forward_batch` per step. Prints one line per sequence count.
//!
//! `cargo run --release -p zoo-infer --example batch_bench -- MODEL [--seqs 1,8,32]
//!  [--prompt 128] [--decode 64] [--threads N]`

use std::time::Instant;

use zoo_infer::{LoadOptions, Logits, SeqInput, SeqState, Threads};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut model_path = None;
    let (mut seqs, mut prompt, mut decode) = (vec![1usize, 8, 32], 128usize, 64usize);
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seqs" => seqs = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--prompt" => prompt = value()?.parse()?,
            "--decode" => decode = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            _ if model_path.is_none() => model_path = Some(a),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    let path =
        model_path.ok_or("usage: batch_bench MODEL [--seqs 1,8,32] [--prompt 128] [--decode 64] [--threads N]")?;
    let loaded = zoo_infer::load_with(path.as_ref(), &LoadOptions { threads: Threads::new(threads) })?;
    let model = loaded.model;
    let vocab = model.config().vocab_size.min(32000) as u64;
    println!("{path}: {threads} threads, prompt {prompt}, decode {decode}");
    for &n in &seqs {
        // Distinct prompts: xorshift ids below the vocabulary (the first tokens are ordinary).
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
        let prompts: Vec<Vec<u32>> = (0..n)
            .map(|_| {
                (0..prompt)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (100 + x % (vocab - 100)) as u32
                    })
                    .collect()
            })
            .collect();
        let mut states: Vec<SeqState> = (0..n).map(|_| model.new_state()).collect();
        let t0 = Instant::now();
        let mut inputs: Vec<SeqInput> =
            states.iter_mut().zip(&prompts).map(|(s, p)| SeqInput::new(s, p, Logits::Greedy)).collect();
        let mut logits = model.forward_batch(&mut inputs)?;
        drop(inputs);
        let prefill = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        for _ in 1..decode {
            let next: Vec<[u32; 1]> = logits
                .iter()
                .map(|l| Ok::<_, candle_core::Error>([l.flatten_all()?.argmax(0)?.to_scalar::<u32>()?]))
                .collect::<Result<_, _>>()?;
            let mut inputs: Vec<SeqInput> =
                states.iter_mut().zip(&next).map(|(s, id)| SeqInput::new(s, id, Logits::Greedy)).collect();
            logits = model.forward_batch(&mut inputs)?;
        }
        let secs = t1.elapsed().as_secs_f64();
        let tokens = n * decode.saturating_sub(1);
        println!(
            "seqs {n:>3}  prefill {:>8.1} tok/s  decode {:>8.1} tok/s aggregate ({:.1} per sequence)",
            (n * prompt) as f64 / prefill,
            tokens as f64 / secs,
            tokens as f64 / secs / n as f64
        );
    }
    Ok(())
}

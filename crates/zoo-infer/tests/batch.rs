//! The runner as an engine: several sequences over one shared model, advanced together by
//! `forward_batch`, against the same sequences run one at a time and against the transformers
//! reference logits (`tests/fixtures/reference/tiny-*`, `tests/fixtures/infer/*`); prompt
//! prefixes shared through `SeqState::clone_prefix` are computed once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use zoo_infer::{CausalLm, Generator, Logits, Sampler, SamplingParams, SeqInput, SeqState, Step, Threads};

const TOL: f32 = 1e-4;

fn shared(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference").join(name);
    assert!(p.exists(), "{} is missing: it is part of the repository (tests/fixtures/reference)", p.display());
    p
}

fn local(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/infer").join(name);
    assert!(p.exists(), "{} is missing: run tests/fixtures/infer/make_infer_cases.py", p.display());
    p
}

/// Every tiny model of the conformance tests.
fn tiny_models() -> Vec<PathBuf> {
    let mut v = vec![shared("tiny-llama"), shared("tiny-bloom")];
    v.extend(["tiny-bloom-6h", "tiny-qwen2", "tiny-gemma", "tiny-baichuan", "tiny-baichuan2"].map(local));
    v
}

struct Reference {
    input: Vec<u32>,
    /// (t, vocab) full-sequence logits of `input`.
    logits: Vec<Vec<f32>>,
}

fn reference(dir: &Path) -> Reference {
    let r = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let input = r["input_ids"].to_vec1::<i64>().unwrap().into_iter().map(|x| x as u32).collect();
    Reference { input, logits: r["logits"].to_vec2::<f32>().unwrap() }
}

fn load(path: &Path) -> Arc<dyn CausalLm> {
    // Two threads: the pools' task splitting is under test too.
    let opts = zoo_infer::LoadOptions { threads: Threads::new(2) };
    zoo_infer::load_with(path, &opts).unwrap().model
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0 as u32
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Eight prompts of different lengths and contents (rotations of the reference input), and how
/// many tokens each generates: some finish long before the others.
fn cases(input: &[u32]) -> Vec<(Vec<u32>, usize)> {
    let lens = [12, 3, 7, 1, 10, 5, 11, 2];
    let steps = [16, 4, 9, 1, 12, 6, 16, 3];
    (0..8)
        .map(|i| {
            let mut p = input.to_vec();
            p.rotate_left(i);
            p.truncate(lens[i]);
            (p, steps[i])
        })
        .collect()
}

/// Greedy tokens and the logits each was chosen from, one sequence alone: the prompt in one
/// forward, then the single-token decode path.
fn separate(model: &dyn CausalLm, prompt: &[u32], steps: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut st = model.new_state();
    let mut l = rows(&model.forward(&mut st, prompt, Logits::Last).unwrap()).remove(0);
    let (mut ids, mut logits) = (Vec::new(), Vec::new());
    for i in 0..steps {
        let next = argmax(&l);
        ids.push(next);
        logits.push(std::mem::take(&mut l));
        if i + 1 < steps {
            l = rows(&model.forward(&mut st, &[next], Logits::Last).unwrap()).remove(0);
        }
    }
    (ids, logits)
}

/// The same, all sequences in one `forward_batch` per step: the prompts together, then the
/// decode tokens together, each sequence leaving the batch when it has its tokens.
fn batched(model: &dyn CausalLm, cases: &[(Vec<u32>, usize)]) -> Vec<(Vec<u32>, Vec<Vec<f32>>)> {
    let mut states: Vec<SeqState> = cases.iter().map(|_| model.new_state()).collect();
    let mut out: Vec<(Vec<u32>, Vec<Vec<f32>>)> = cases.iter().map(|_| (Vec::new(), Vec::new())).collect();
    let mut pending: Vec<Vec<u32>> = cases.iter().map(|(p, _)| p.clone()).collect();
    loop {
        let live: Vec<usize> = (0..cases.len()).filter(|&i| out[i].0.len() < cases[i].1).collect();
        if live.is_empty() {
            return out;
        }
        let mut inputs: Vec<SeqInput> = Vec::new();
        for (i, (st, ids)) in states.iter_mut().zip(&pending).enumerate() {
            if live.contains(&i) {
                inputs.push(SeqInput::new(st, ids, Logits::Last));
            }
        }
        let logits = model.forward_batch(&mut inputs).unwrap();
        drop(inputs);
        for (&i, l) in live.iter().zip(&logits) {
            assert_eq!(l.dims(), &[1, model.config().vocab_size]);
            let l = rows(l).remove(0);
            let next = argmax(&l);
            out[i].0.push(next);
            out[i].1.push(l);
            pending[i] = vec![next];
        }
    }
}

fn check_batched_equals_separate(dir: &Path, model: &dyn CausalLm, tol: f32) {
    let r = reference(dir);
    let cases = cases(&r.input);
    let together = batched(model, &cases);
    for (i, ((prompt, steps), (ids, logits))) in cases.iter().zip(&together).enumerate() {
        let (want_ids, want_logits) = separate(model, prompt, *steps);
        assert_eq!(ids, &want_ids, "{} sequence {i}: greedy tokens", dir.display());
        for (s, (g, w)) in logits.iter().zip(&want_logits).enumerate() {
            let d = max_diff(g, w);
            // Relative to the largest logit: the two paths sum in different orders (a matrix
            // product against a matrix-vector kernel), and over 16 steps of tiny BLOOM-6h logits
            // up to 9.3 that reaches 1.5e-4 (1.6e-5 relative); each path alone is held to 1e-4
            // of transformers by the conformance tests.
            let scale = w.iter().fold(1f32, |a, b| a.max(b.abs()));
            assert!(d < tol * scale, "{} sequence {i} step {s}: logits differ by {d} (largest {scale})", dir.display());
        }
    }
}

#[test]
fn eight_sequences_together_equal_eight_alone() {
    for dir in tiny_models() {
        let model = load(&dir);
        check_batched_equals_separate(&dir, model.as_ref(), TOL);
    }
}

/// Generators advanced together by `step_batch` (greedy: pruned heads where the head allows)
/// give what `Session::generate` gives alone, and stop at their own limits.
#[test]
fn generators_stepped_together_equal_sessions() {
    for dir in [shared("tiny-llama"), shared("tiny-bloom")] {
        let m = zoo_infer::load_with(&dir, &zoo_infer::LoadOptions { threads: Threads::new(2) }).unwrap();
        let r = reference(&dir);
        let cases = cases(&r.input);
        let params = SamplingParams::greedy();
        let mut gens: Vec<Generator> = cases
            .iter()
            .map(|(p, n)| {
                Generator::new(Arc::clone(&m.model), m.model.new_state(), p, *n, Sampler::new(&params), &[]).unwrap()
            })
            .collect();
        let mut steps = 0;
        while gens.iter().any(|g| !g.is_finished()) {
            let got = zoo_infer::step_batch(m.model.as_ref(), &mut gens).unwrap();
            assert_eq!(got.iter().filter(|t| t.is_some()).count(), cases.iter().filter(|c| c.1 > steps).count());
            steps += 1;
        }
        assert_eq!(steps, 16);
        let mut session = zoo_infer::Session::new(Arc::clone(&m.model));
        for (i, (g, (p, n))) in gens.into_iter().zip(&cases).enumerate() {
            let (generation, state) = g.finish();
            assert_eq!(generation.finish_reason, zoo_infer::FinishReason::Length);
            assert_eq!(state.len(), p.len() + n - 1, "the last token is never run");
            session.reset();
            let alone = session.generate(p, *n, &params, &[], |_| Ok(Step::Continue)).unwrap();
            assert_eq!(generation.token_ids, alone.token_ids, "{} sequence {i}", dir.display());
        }
    }
}

/// `Logits::All` in a batch gives every new position's logits as transformers computes them
/// for the whole sequence, for chunks that start at position 0 or after a cached part, next to
/// sequences that want only their last logits.
#[test]
fn all_logits_in_a_batch_equal_the_reference() {
    for dir in tiny_models() {
        let model = load(&dir);
        let r = reference(&dir);
        let n = r.input.len();
        // (cached before, end): the batch runs input[cached..end].
        let parts = [(0, n), (3, n), (0, 5), (7, 8), (1, n), (4, 9), (0, 1), (11, n)];
        let mut states: Vec<SeqState> = parts.iter().map(|_| model.new_state()).collect();
        // The cached parts, themselves in one batch.
        let mut first: Vec<SeqInput> = Vec::new();
        for (st, &(c, _)) in states.iter_mut().zip(&parts) {
            if c > 0 {
                first.push(SeqInput::new(st, &r.input[..c], Logits::Last));
            }
        }
        model.forward_batch(&mut first).unwrap();
        drop(first);
        let wants = [
            Logits::All,
            Logits::All,
            Logits::Last,
            Logits::All,
            Logits::Greedy,
            Logits::All,
            Logits::All,
            Logits::Last,
        ];
        let mut inputs: Vec<SeqInput> = states
            .iter_mut()
            .zip(&parts)
            .zip(wants)
            .map(|((st, &(c, e)), w)| SeqInput::new(st, &r.input[c..e], w))
            .collect();
        let out = model.forward_batch(&mut inputs).unwrap();
        drop(inputs);
        for (i, ((l, &(c, e)), w)) in out.iter().zip(&parts).zip(wants).enumerate() {
            let got = rows(l);
            let want: &[Vec<f32>] = if w == Logits::All { &r.logits[c..e] } else { &r.logits[e - 1..e] };
            assert_eq!(got.len(), want.len(), "{} sequence {i}: rows", dir.display());
            for (j, (g, w_row)) in got.iter().zip(want).enumerate() {
                if w == Logits::Greedy {
                    assert_eq!(argmax(g), argmax(w_row), "{} sequence {i}: greedy", dir.display());
                    assert!(g.iter().zip(w_row).all(|(g, w)| *g == f32::NEG_INFINITY || (g - w).abs() < TOL));
                    continue;
                }
                let d = max_diff(g, w_row);
                assert!(d < TOL, "{} sequence {i} row {j}: logits differ by {d}", dir.display());
            }
            assert_eq!(states[i].len(), e, "state {i} holds its positions");
            assert_eq!(states[i].tokens(), &r.input[..e]);
        }
    }
}

/// A prompt prefix computed once serves every sequence that starts with it: the model counts
/// the positions it runs, and copies (`clone_prefix`, `fork`) are not runs. The results are
/// still the reference's.
#[test]
fn a_shared_prefix_is_computed_once() {
    for dir in [shared("tiny-llama"), shared("tiny-bloom")] {
        let model = load(&dir);
        let r = reference(&dir);
        let (prefix, n) = (8, r.input.len());
        let before = model.positions_computed();
        let mut base = model.new_state();
        model.forward(&mut base, &r.input[..prefix], Logits::Last).unwrap();
        assert_eq!(model.positions_computed() - before, prefix as u64);

        // Four sequences continue from the prefix, each with the rest of the input.
        let mut states: Vec<SeqState> =
            (0..4).map(|i| if i % 2 == 0 { base.fork() } else { base.clone_prefix(prefix).unwrap() }).collect();
        let before = model.positions_computed();
        let mut inputs: Vec<SeqInput> =
            states.iter_mut().map(|st| SeqInput::new(st, &r.input[prefix..], Logits::All)).collect();
        let out = model.forward_batch(&mut inputs).unwrap();
        drop(inputs);
        assert_eq!(model.positions_computed() - before, (4 * (n - prefix)) as u64, "only the suffixes ran");
        for l in &out {
            for (g, w) in rows(l).iter().zip(&r.logits[prefix..]) {
                assert!(max_diff(g, w) < TOL, "{}: logits after a copied prefix", dir.display());
            }
        }
        // A shorter copy runs from its own end.
        let mut short = base.clone_prefix(3).unwrap();
        let l = model.forward(&mut short, &r.input[3..n], Logits::All).unwrap();
        assert!(max_diff(&rows(&l)[0], &r.logits[3]) < TOL);
        assert!(base.clone_prefix(prefix + 1).is_err(), "cannot copy more than it holds");

        // A generator given a state holding part of its prompt runs only the rest.
        let before = model.positions_computed();
        let mut g =
            Generator::new(Arc::clone(&model), base.fork(), &r.input, 1, Sampler::new(&SamplingParams::greedy()), &[])
                .unwrap();
        g.next_token().unwrap();
        let (generation, _) = g.finish();
        assert_eq!(generation.prompt_tokens_run, n - prefix);
        assert_eq!(model.positions_computed() - before, (n - prefix) as u64);
    }
}

/// A batch that fails (an id outside the vocabulary in one sequence, a state of another shape)
/// changes no state; a state keeps working afterwards.
#[test]
fn a_failed_batch_changes_no_state() {
    let model = load(&shared("tiny-llama"));
    let r = reference(&shared("tiny-llama"));
    let mut a = model.new_state();
    let mut b = model.new_state();
    model.forward(&mut a, &r.input[..4], Logits::Last).unwrap();
    let bad = [model.config().vocab_size as u32];
    let mut inputs = [SeqInput::new(&mut a, &r.input[4..6], Logits::Last), SeqInput::new(&mut b, &bad, Logits::Last)];
    assert!(matches!(model.forward_batch(&mut inputs), Err(zoo_infer::InferError::TokenId { .. })));
    assert_eq!((a.len(), b.len()), (4, 0));
    let mut foreign = SeqState::new(model.config().num_layers + 1, model.config().context_length);
    assert!(model.forward(&mut foreign, &r.input[..2], Logits::Last).is_err(), "a state of another shape");
    assert!(model.forward_batch(&mut []).is_err());
    let l = model.forward(&mut a, &r.input[4..], Logits::All).unwrap();
    for (g, w) in rows(&l).iter().zip(&r.logits[4..]) {
        assert!(max_diff(g, w) < TOL);
    }
}

/// The same through GGUF Q8_0 (the quantized kernels: the row kernel alone, the tiled
/// matrix kernel in a batch): batched and separate runs agree.
#[test]
fn q8_0_gguf_batched_equals_separate() {
    use zoo_weights::gguf_convert::{OutType, QuantizeOptions, quantize};
    for dir in [shared("tiny-llama"), shared("tiny-bloom")] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("q8_0.gguf");
        let opts = QuantizeOptions {
            out_type: OutType::Pure(zoo_weights::quant::QuantType::Q8_0),
            raw: false,
            threads: 1,
            overwrite: false,
            measure: false,
        };
        quantize(&dir, &out, &opts, &zoo_progress::Silent, &zoo_progress::CancelToken::new()).unwrap();
        let model = load(&out);
        check_batched_equals_separate(&dir, model.as_ref(), TOL);
    }
}

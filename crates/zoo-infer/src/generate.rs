//! Token generation over a shared model: sampling settings and the per-sequence [`Sampler`],
//! the step-wise [`Generator`] (one token per call, cancellable between steps, advanced alone
//! or together with others by [`step_batch`]), and [`Session`], one sequence whose KV cache
//! is reused across turns.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::error::{InferError, Result};
use crate::models::{CausalLm, Logits};
use crate::state::{SeqInput, SeqState};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 (or below 1e-4, as FastChat) means greedy.
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// 1.0 disables it.
    pub repetition_penalty: f32,
    /// How many of the last tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl SamplingParams {
    pub fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature < 1e-4
    }
}

/// Picks tokens from logits for one sequence: its own random state (seeded), temperature,
/// top-k/top-p and repetition penalty. Two samplers with the same settings and seed pick the
/// same tokens from the same logits.
pub struct Sampler {
    processor: LogitsProcessor,
    greedy: bool,
    penalty: f32,
    last_n: usize,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").field("greedy", &self.greedy).field("penalty", &self.penalty).finish()
    }
}

impl Sampler {
    /// A sampler seeded with `params.seed`.
    pub fn new(params: &SamplingParams) -> Sampler {
        Sampler::with_seed(params, params.seed)
    }

    /// A sampler with `params`' settings and its own seed (one per sequence of a batch).
    pub fn with_seed(params: &SamplingParams, seed: u64) -> Sampler {
        let t = params.temperature;
        let sampling = if params.is_greedy() {
            Sampling::ArgMax
        } else {
            match (params.top_k, params.top_p.filter(|&p| p > 0.0 && p < 1.0)) {
                (None, None) => Sampling::All { temperature: t },
                (Some(k), None) => Sampling::TopK { k, temperature: t },
                (None, Some(p)) => Sampling::TopP { p, temperature: t },
                (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature: t },
            }
        };
        Sampler {
            processor: LogitsProcessor::from_sampling(seed, sampling),
            greedy: params.is_greedy(),
            penalty: params.repetition_penalty,
            last_n: params.repeat_last_n,
        }
    }

    /// The logits this sampler needs: greedy decoding without a penalty needs only the
    /// largest logit (a penalty can lower the largest below one that was never computed, so
    /// it needs them all).
    pub fn wants(&self) -> Logits {
        if self.greedy && self.penalty == 1.0 { Logits::Greedy } else { Logits::Last }
    }

    /// The next token from `logits` (vocab values, or (1, vocab)); `history`: the sequence so
    /// far, whose last `repeat_last_n` tokens the repetition penalty looks at.
    pub fn sample(&mut self, logits: &Tensor, history: &[u32]) -> Result<u32> {
        let mut logits = logits.flatten_all()?.to_dtype(DType::F32)?;
        if self.penalty != 1.0 {
            let start = history.len().saturating_sub(self.last_n);
            let recent = history.get(start..).unwrap_or_default();
            logits = candle_transformers::utils::apply_repeat_penalty(&logits, self.penalty, recent)?;
        }
        Ok(self.processor.sample(&logits)?)
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// The token limit.
    Length,
}

impl FinishReason {
    /// The OpenAI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// What the per-token callback tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Stop now (a stop string was seen, or the user interrupted).
    Stop,
}

/// The outcome of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    pub token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    /// Prompt tokens that had to be run (the rest came from the KV cache).
    pub prompt_tokens_run: usize,
    pub prompt_secs: f64,
    /// Single-token forward passes after the prompt and their time.
    pub decode_steps: usize,
    pub decode_secs: f64,
}

impl Generation {
    pub fn prompt_tokens_per_s(&self) -> f64 {
        if self.prompt_secs > 0.0 { self.prompt_tokens_run as f64 / self.prompt_secs } else { 0.0 }
    }

    pub fn tokens_per_s(&self) -> f64 {
        if self.decode_secs > 0.0 { self.decode_steps as f64 / self.decode_secs } else { 0.0 }
    }
}

/// One sequence being generated, a token per step. It owns its [`SeqState`] (which may come in
/// holding a prefix of the prompt: only the rest runs) and its [`Sampler`]; the model is
/// shared. A step runs the pending ids (the prompt's rest, then the last token) and samples the
/// next token; nothing runs after the last token, so stopping between steps wastes nothing.
pub struct Generator {
    model: Arc<dyn CausalLm>,
    state: SeqState,
    sampler: Sampler,
    stop_ids: Vec<u32>,
    max_tokens: usize,
    /// The prompt and the tokens generated so far (the repetition penalty's history).
    history: Vec<u32>,
    prompt_len: usize,
    /// Ids the next forward runs.
    pending: Vec<u32>,
    finish: Option<FinishReason>,
    prompt_tokens_run: usize,
    prompt_secs: f64,
    decode_steps: usize,
    decode_secs: f64,
}

impl Generator {
    /// Prepares generating up to `max_tokens` tokens after `prompt` in `state`. The state
    /// keeps the longest prefix it shares with `prompt`, except the prompt's last token, which
    /// must run to give logits; the rest of what it held is dropped.
    pub fn new(
        model: Arc<dyn CausalLm>,
        mut state: SeqState,
        prompt: &[u32],
        max_tokens: usize,
        sampler: Sampler,
        stop_ids: &[u32],
    ) -> Result<Generator> {
        check_prompt(model.as_ref(), prompt)?;
        let context = model.config().context_length;
        let keep = state.common_prefix(prompt).min(prompt.len() - 1);
        state.truncate(keep);
        let pending = prompt.get(keep..).unwrap_or_default().to_vec();
        Ok(Generator {
            max_tokens: max_tokens.min(context - prompt.len()),
            model,
            state,
            sampler,
            stop_ids: stop_ids.to_vec(),
            history: prompt.to_vec(),
            prompt_len: prompt.len(),
            prompt_tokens_run: pending.len(),
            pending,
            finish: if max_tokens == 0 { Some(FinishReason::Length) } else { None },
            prompt_secs: 0.0,
            decode_steps: 0,
            decode_secs: 0.0,
        })
    }

    /// Runs one step and returns the new token, or `None` once finished (a stop id was
    /// generated, the limit reached, or [`Generator::stop`] called). The stop id itself is
    /// returned, so the caller sees why it ended. On error the state is as before the step.
    pub fn next_token(&mut self) -> Result<Option<u32>> {
        let model = Arc::clone(&self.model);
        let Some(mut input) = self.input() else { return Ok(None) };
        let t0 = Instant::now();
        let logits = model.forward_batch(std::slice::from_mut(&mut input))?;
        let logits = logits.into_iter().next().ok_or_else(|| InferError::Invalid("no logits".into()))?;
        let secs = t0.elapsed().as_secs_f64();
        self.accept(&logits, secs).map(Some)
    }

    /// The forward this generator needs next; `None` once finished. Crate-private: whoever
    /// runs it must hand the logits to `accept`, which `next_token` and [`step_batch`] do.
    fn input(&mut self) -> Option<SeqInput<'_>> {
        if self.finish.is_some() || self.pending.is_empty() {
            return None;
        }
        Some(SeqInput::new(&mut self.state, &self.pending, self.sampler.wants()))
    }

    /// Takes the logits of the forward of `input` (which took `secs`), samples
    /// the next token and decides whether generation ends.
    fn accept(&mut self, logits: &Tensor, secs: f64) -> Result<u32> {
        if self.history.len() == self.prompt_len {
            self.prompt_secs += secs;
        } else {
            self.decode_steps += 1;
            self.decode_secs += secs;
        }
        let t0 = Instant::now();
        let next = self.sampler.sample(logits, &self.history)?;
        self.history.push(next);
        self.pending.clear();
        if self.stop_ids.contains(&next) {
            self.finish = Some(FinishReason::Stop);
        } else if self.history.len() - self.prompt_len >= self.max_tokens {
            self.finish = Some(FinishReason::Length);
        } else {
            self.pending.push(next);
        }
        let sampling = t0.elapsed().as_secs_f64();
        if self.decode_steps > 0 {
            self.decode_secs += sampling;
        } else {
            self.prompt_secs += sampling;
        }
        Ok(next)
    }

    /// Ends generation now (a stop string was seen, the user interrupted): the next step
    /// returns `None`, and the finish reason is [`FinishReason::Stop`].
    pub fn stop(&mut self) {
        self.finish = Some(FinishReason::Stop);
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// The tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        self.history.get(self.prompt_len..).unwrap_or_default()
    }

    pub fn state(&self) -> &SeqState {
        &self.state
    }

    /// The record of the generation so far (finish reason `Length` if it has not finished)
    /// and the state, holding the prompt and every generated token but the last.
    pub fn finish(self) -> (Generation, SeqState) {
        let generation = Generation {
            token_ids: self.tokens().to_vec(),
            finish_reason: self.finish.unwrap_or(FinishReason::Length),
            prompt_tokens_run: self.prompt_tokens_run,
            prompt_secs: self.prompt_secs,
            decode_steps: self.decode_steps,
            decode_secs: self.decode_secs,
        };
        (generation, self.state)
    }
}

impl Iterator for Generator {
    type Item = Result<u32>;

    fn next(&mut self) -> Option<Result<u32>> {
        self.next_token().transpose()
    }
}

/// A prompt must have a token to run and leave room for one more in the context.
fn check_prompt(model: &dyn CausalLm, prompt: &[u32]) -> Result<()> {
    if prompt.is_empty() {
        return Err(InferError::Invalid("the prompt is empty".into()));
    }
    let context = model.config().context_length;
    if prompt.len() >= context {
        return Err(InferError::ContextOverflow { prompt: prompt.len(), context });
    }
    Ok(())
}

/// Advances every unfinished generator by one step in one batched forward pass (prompts and
/// decode tokens together); returns each one's new token (`None` for those already finished).
/// The generators must share `model`. On error no generator has changed.
pub fn step_batch(model: &dyn CausalLm, gens: &mut [Generator]) -> Result<Vec<Option<u32>>> {
    let mut inputs: Vec<SeqInput<'_>> = Vec::with_capacity(gens.len());
    let mut running = Vec::with_capacity(gens.len());
    for (i, g) in gens.iter_mut().enumerate() {
        if let Some(input) = g.input() {
            inputs.push(input);
            running.push(i);
        }
    }
    if inputs.is_empty() {
        return Ok(vec![None; gens.len()]);
    }
    let t0 = Instant::now();
    let logits = model.forward_batch(&mut inputs)?;
    drop(inputs);
    let secs = t0.elapsed().as_secs_f64();
    let mut out = vec![None; gens.len()];
    for (i, l) in running.into_iter().zip(logits) {
        if let (Some(g), Some(slot)) = (gens.get_mut(i), out.get_mut(i)) {
            *slot = Some(g.accept(&l, secs)?);
        }
    }
    Ok(out)
}

/// One sequence over a shared model, plus the token ids its KV cache holds, so that a chat
/// turn only runs the new part of the prompt.
pub struct Session {
    model: Arc<dyn CausalLm>,
    state: SeqState,
}

impl Session {
    pub fn new(model: Arc<dyn CausalLm>) -> Session {
        let state = model.new_state();
        Session { model, state }
    }

    pub fn model(&self) -> &dyn CausalLm {
        self.model.as_ref()
    }

    /// The shared model, for more sessions or generators over the same weights.
    pub fn shared_model(&self) -> &Arc<dyn CausalLm> {
        &self.model
    }

    /// What the cache holds.
    pub fn state(&self) -> &SeqState {
        &self.state
    }

    pub fn reset(&mut self) {
        self.state.clear();
    }

    /// Full-sequence logits (t, vocab) of `ids`, run in a state of their own (the session's
    /// cache is left as it is).
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor> {
        self.model.forward(&mut self.model.new_state(), ids, Logits::All)
    }

    /// Perplexity of `ids` (exp of the mean negative log-likelihood of each next token), run in
    /// consecutive windows of at most `window` tokens, each from an empty cache, as
    /// llama.cpp's `llama-perplexity` does; returns (perplexity, tokens scored).
    pub fn perplexity(&self, ids: &[u32], window: usize) -> Result<(f64, usize)> {
        let window = window.clamp(2, self.model.config().context_length.max(2));
        let mut nll = 0f64;
        let mut scored = 0usize;
        for chunk in ids.chunks(window).filter(|c| c.len() >= 2) {
            let logits = self.logits(chunk)?;
            let logp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
            let rows = logp.to_vec2::<f32>()?;
            for (row, &next) in rows.iter().zip(chunk.iter().skip(1)) {
                let lp = row.get(next as usize).copied().unwrap_or(f32::NEG_INFINITY);
                nll -= f64::from(lp);
                scored += 1;
            }
        }
        if scored == 0 {
            return Err(InferError::Invalid("perplexity needs at least 2 tokens".into()));
        }
        Ok(((nll / scored as f64).exp(), scored))
    }

    /// Runs `ids` after what the cache holds, returning the last position's logits.
    pub fn step(&mut self, ids: &[u32]) -> Result<Tensor> {
        self.step_as(ids, Logits::Last)
    }

    /// [`Session::step`] with the logits `logits` asks for ([`Logits::Last`] or
    /// [`Logits::Greedy`]). On error the cache is as it was before.
    pub fn step_as(&mut self, ids: &[u32], logits: Logits) -> Result<Tensor> {
        let l = self.model.forward(&mut self.state, ids, logits)?;
        Ok(l.squeeze(0)?.to_dtype(DType::F32)?)
    }

    /// Generates up to `max_tokens` tokens after `prompt`, calling `on_token` with each one
    /// (stop ids included, so the caller sees why it ended). The cache keeps what it shares
    /// with `prompt` and ends up holding the prompt and the reply.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        params: &SamplingParams,
        stop_ids: &[u32],
        mut on_token: impl FnMut(u32) -> Result<Step>,
    ) -> Result<Generation> {
        // Checked before the generator takes the state, so a refused prompt keeps the cache.
        check_prompt(self.model.as_ref(), prompt)?;
        let state = std::mem::replace(&mut self.state, self.model.new_state());
        let mut g = Generator::new(Arc::clone(&self.model), state, prompt, max_tokens, Sampler::new(params), stop_ids)?;
        let failure = loop {
            match g.next_token() {
                Ok(Some(id)) => match on_token(id) {
                    Ok(Step::Continue) => {}
                    Ok(Step::Stop) => g.stop(),
                    Err(e) => break Some(e),
                },
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let (generation, state) = g.finish();
        self.state = state;
        match failure {
            Some(e) => Err(e),
            None => Ok(generation),
        }
    }
}

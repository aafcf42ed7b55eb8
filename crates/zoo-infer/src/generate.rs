//! Token generation: sampling settings, the decode loop with its KV cache reuse, timing.

use std::time::Instant;

use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::error::{InferError, Result};
use crate::models::{CausalLm, Logits};

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

    fn processor(&self) -> LogitsProcessor {
        let t = self.temperature;
        let sampling = if self.is_greedy() {
            Sampling::ArgMax
        } else {
            match (self.top_k, self.top_p.filter(|&p| p > 0.0 && p < 1.0)) {
                (None, None) => Sampling::All { temperature: t },
                (Some(k), None) => Sampling::TopK { k, temperature: t },
                (None, Some(p)) => Sampling::TopP { p, temperature: t },
                (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature: t },
            }
        };
        LogitsProcessor::from_sampling(self.seed, sampling)
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

/// A model plus the token sequence its KV cache holds, so that a chat turn only runs the new
/// part of the prompt.
pub struct Session {
    model: Box<dyn CausalLm>,
    cached: Vec<u32>,
}

impl Session {
    pub fn new(model: Box<dyn CausalLm>) -> Session {
        Session { model, cached: Vec::new() }
    }

    pub fn model(&self) -> &dyn CausalLm {
        self.model.as_ref()
    }

    pub fn reset(&mut self) {
        self.model.clear_kv_cache();
        self.cached.clear();
    }

    /// Full-sequence logits (t, vocab) of `ids` from an empty cache.
    pub fn logits(&mut self, ids: &[u32]) -> Result<Tensor> {
        self.reset();
        let out = self.model.forward(ids, 0, Logits::All);
        self.reset();
        out
    }

    /// Perplexity of `ids` (exp of the mean negative log-likelihood of each next token), run in
    /// consecutive windows of at most `window` tokens, each from an empty cache, as
    /// llama.cpp's `llama-perplexity` does; returns (perplexity, tokens scored).
    pub fn perplexity(&mut self, ids: &[u32], window: usize) -> Result<(f64, usize)> {
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
    /// [`Logits::Greedy`]).
    pub fn step_as(&mut self, ids: &[u32], logits: Logits) -> Result<Tensor> {
        let pos = self.cached.len();
        let out = self.model.forward(ids, pos, logits);
        match out {
            Ok(l) => {
                self.cached.extend_from_slice(ids);
                Ok(l.squeeze(0)?.to_dtype(DType::F32)?)
            }
            Err(e) => {
                // A failed step may have appended some layers' keys: start clean next time.
                self.reset();
                Err(e)
            }
        }
    }

    /// Runs the part of `prompt` the cache does not hold yet (all of it when the cache holds
    /// something else); returns the logits after `prompt` and how many tokens were run.
    fn prefill(&mut self, prompt: &[u32], logits: Logits) -> Result<(Tensor, usize)> {
        let common = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        // Reuse only a strict prefix: the last prompt token must run to give logits.
        if common < self.cached.len() || common == prompt.len() {
            self.reset();
        }
        let start = self.cached.len();
        let rest = prompt.get(start..).unwrap_or_default();
        Ok((self.step_as(rest, logits)?, rest.len()))
    }

    /// Generates up to `max_tokens` tokens after `prompt`, calling `on_token` with each one
    /// (stop ids included, so the caller sees why it ended).
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        params: &SamplingParams,
        stop_ids: &[u32],
        mut on_token: impl FnMut(u32) -> Result<Step>,
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(InferError::Invalid("the prompt is empty".into()));
        }
        let context = self.model.config().context_length;
        if prompt.len() >= context {
            return Err(InferError::ContextOverflow { prompt: prompt.len(), context });
        }
        let max_tokens = max_tokens.min(context - prompt.len());
        let mut processor = params.processor();
        let t0 = Instant::now();
        // Greedy decoding without a penalty needs only the largest logit (a penalty can lower
        // the largest below one that was never computed, so it needs them all).
        let want = if params.is_greedy() && params.repetition_penalty == 1.0 { Logits::Greedy } else { Logits::Last };
        let (mut logits, run) = self.prefill(prompt, want)?;
        let prompt_secs = t0.elapsed().as_secs_f64();
        let mut out = Vec::new();
        let mut finish = FinishReason::Length;
        let t1 = Instant::now();
        let mut steps = 0;
        while out.len() < max_tokens {
            if params.repetition_penalty != 1.0 {
                let all: Vec<u32> = prompt.iter().chain(out.iter()).copied().collect();
                let start = all.len().saturating_sub(params.repeat_last_n);
                logits = candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    params.repetition_penalty,
                    all.get(start..).unwrap_or_default(),
                )?;
            }
            let next = processor.sample(&logits)?;
            out.push(next);
            let step = on_token(next)?;
            if stop_ids.contains(&next) || step == Step::Stop {
                finish = FinishReason::Stop;
                break;
            }
            if out.len() == max_tokens {
                break;
            }
            logits = self.step_as(&[next], want)?;
            steps += 1;
        }
        Ok(Generation {
            token_ids: out,
            finish_reason: finish,
            prompt_tokens_run: run,
            prompt_secs,
            decode_steps: steps,
            decode_secs: t1.elapsed().as_secs_f64(),
        })
    }
}

//! The model architectures, one file each, behind one trait; and what they share around a
//! batched forward pass (input checks, state commit/rollback, the output head over a batch).

/// The [`CausalLm`] impl every architecture shares: a model type with the fields `cfg`,
/// `computed`, `threads` and `lm_head` and the methods `decode_step` (one token of one
/// sequence: the row fast path) and `forward_rows` (the batched tensor path).
macro_rules! impl_causal_lm {
    ($model:ty) => {
        impl $crate::models::CausalLm for $model {
            fn config(&self) -> &$crate::config::ModelConfig {
                &self.cfg
            }

            fn forward_batch(
                &self,
                seqs: &mut [$crate::state::SeqInput<'_>],
            ) -> $crate::error::Result<Vec<candle_core::Tensor>> {
                $crate::models::guarded(&self.cfg, &self.computed, seqs, |seqs| {
                    if let (Some(id), [s]) = ($crate::models::single_token(seqs), &mut *seqs) {
                        return Ok(vec![self.decode_step(s.state, id, s.logits)?]);
                    }
                    self.threads.install(|| self.forward_rows(seqs))
                })
            }

            fn positions_computed(&self) -> u64 {
                self.computed.load(std::sync::atomic::Ordering::Relaxed)
            }

            fn threads(&self) -> &std::sync::Arc<$crate::threads::Threads> {
                &self.threads
            }

            fn head(&self) -> &$crate::weights::MatrixWeight {
                self.lm_head.weight()
            }
        }
    };
}

pub mod bloom;
pub mod llama;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Device, Tensor};
use zoo_kernels::ThreadPool;

use crate::config::{Arch, ModelConfig};
use crate::error::{InferError, Result};
use crate::layers::{self, Linear, Norm, Span};
use crate::state::{SeqInput, SeqState};
use crate::threads::Threads;
use crate::weights::{MatrixWeight, WeightSource};

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every new position: (t, vocab). For scoring (log-likelihoods, perplexity), checks and
    /// `--dump-logits`.
    All,
    /// The last position only: (1, vocab). For generation.
    Last,
    /// The last position for greedy decoding: (1, vocab), where the logits that could be the
    /// largest are exact and the others may be `-inf`. f32 output heads then read about half
    /// their bytes (`zoo_kernels::greedy`); other heads give [`Logits::Last`].
    Greedy,
}

/// A causal language model: read-only weights shared by any number of sequences, whose
/// state ([`SeqState`]) the caller owns.
pub trait CausalLm: Send + Sync {
    fn config(&self) -> &ModelConfig;

    /// An empty state for one sequence of this model.
    fn new_state(&self) -> SeqState {
        SeqState::new(self.config().num_layers, self.config().context_length)
    }

    /// Advances several sequences together, each by its new ids at its own position, and
    /// returns each one's logits as it asked ((t, vocab) for [`Logits::All`], else
    /// (1, vocab)). The linear layers run as one matrix product over the new rows of all
    /// sequences; attention runs per sequence against its own cache. On error no state has
    /// changed.
    fn forward_batch(&self, seqs: &mut [SeqInput<'_>]) -> Result<Vec<Tensor>>;

    /// One sequence: [`CausalLm::forward_batch`] of one.
    fn forward(&self, state: &mut SeqState, ids: &[u32], logits: Logits) -> Result<Tensor> {
        let mut out = self.forward_batch(&mut [SeqInput::new(state, ids, logits)])?;
        out.pop().ok_or_else(|| InferError::Invalid("the model returned no logits".into()))
    }

    /// Positions run through the model since it was loaded, over all sequences (positions
    /// copied between states are not run, so they do not count).
    fn positions_computed(&self) -> u64;

    /// The threads it computes on.
    fn threads(&self) -> &Arc<Threads>;

    /// The output head's weights, in the form they are held (a split f32 head, 16-bit, ...).
    fn head(&self) -> &MatrixWeight;
}

/// Builds the model of `cfg.arch` from `src`, computing on `threads`.
pub fn load(cfg: &ModelConfig, src: &WeightSource, threads: Arc<Threads>) -> Result<Arc<dyn CausalLm>> {
    Ok(match cfg.arch {
        Arch::Bloom => Arc::new(bloom::Bloom::load(cfg, src, threads)?),
        Arch::Llama | Arch::Qwen2 | Arch::Gemma | Arch::Baichuan => Arc::new(llama::Llama::load(cfg, src, threads)?),
    })
}

/// Ids in the vocabulary, a non-empty chunk, and room in the context.
pub(crate) fn check_ids(cfg: &ModelConfig, ids: &[u32], pos: usize) -> Result<()> {
    if ids.is_empty() {
        return Err(InferError::Invalid("no tokens to run".into()));
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
        return Err(InferError::TokenId { id, vocab: cfg.vocab_size });
    }
    if pos + ids.len() > cfg.context_length {
        return Err(InferError::ContextOverflow { prompt: pos + ids.len(), context: cfg.context_length });
    }
    Ok(())
}

/// The part of a forward pass every model shares: checks each input against the model and its
/// state, runs `run`, then records the new ids in each state (on success) or drops what some
/// layers appended (on failure), and counts the positions run.
pub(crate) fn guarded(
    cfg: &ModelConfig,
    computed: &AtomicU64,
    seqs: &mut [SeqInput<'_>],
    run: impl FnOnce(&mut [SeqInput<'_>]) -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    if seqs.is_empty() {
        return Err(InferError::Invalid("no sequences to run".into()));
    }
    for s in seqs.iter() {
        if s.state.layers.len() != cfg.num_layers || s.state.capacity() != cfg.context_length {
            return Err(InferError::Invalid(format!(
                "a sequence state of {} layers and {} positions given to a model of {} layers and {}",
                s.state.layers.len(),
                s.state.capacity(),
                cfg.num_layers,
                cfg.context_length
            )));
        }
        check_ids(cfg, s.ids, s.state.len())?;
    }
    let out = run(seqs);
    match &out {
        Ok(_) => {
            let n: usize = seqs.iter().map(|s| s.ids.len()).sum();
            computed.fetch_add(n as u64, Ordering::Relaxed);
            seqs.iter_mut().for_each(|s| s.state.commit(s.ids));
        }
        Err(_) => seqs.iter_mut().for_each(|s| s.state.rollback()),
    }
    out
}

/// The single-token fast path applies: one sequence, one new token.
pub(crate) fn single_token(seqs: &[SeqInput<'_>]) -> Option<u32> {
    match seqs {
        [s] => match s.ids {
            [id] => Some(*id),
            _ => None,
        },
        _ => None,
    }
}

/// The logits each sequence asked for, from the final hidden rows `x` (all new rows of the
/// batch, before the final norm). Rows are gathered first, so the head runs once over the
/// wanted rows of all sequences; greedy rows of a head that can prune
/// ([`Linear::prunes_greedy`]) go through the pruning row kernel one by one instead.
pub(crate) fn batch_logits(
    pool: &ThreadPool,
    norm: &Norm,
    head: &Linear,
    vocab: usize,
    x: &Tensor,
    spans: &[Span],
    wants: &[Logits],
) -> Result<Vec<Tensor>> {
    let pruned = |w: Logits| w == Logits::Greedy && head.prunes_greedy();
    // Rows of the product, and where each sequence's rows start in it.
    let mut idx: Vec<u32> = Vec::new();
    let mut at = Vec::with_capacity(spans.len());
    for (s, &w) in spans.iter().zip(wants) {
        at.push(idx.len());
        let last = s.start + s.len.saturating_sub(1);
        match w {
            _ if pruned(w) => {}
            Logits::All => idx.extend((s.start..s.start + s.len).map(|r| r as u32)),
            Logits::Last | Logits::Greedy => idx.push(last as u32),
        }
    }
    let product = if idx.is_empty() {
        None
    } else {
        let n = idx.len();
        let rows = x.index_select(&Tensor::from_vec(idx, n, &Device::Cpu)?, 0)?;
        Some(head.forward(pool, &norm.forward(&rows)?)?)
    };
    let mut out = Vec::with_capacity(spans.len());
    for ((s, &w), &start) in spans.iter().zip(wants).zip(&at) {
        if pruned(w) {
            // The same norm as the product's rows (candle's), so that the rows the pruning
            // kernel computes are bit for bit those of the full product.
            let normed = layers::rows_of(&norm.forward(&x.narrow(0, s.start + s.len.saturating_sub(1), 1)?)?)?;
            out.push(layers::head_row(pool, head, &normed, vocab, w)?);
            continue;
        }
        let n = if w == Logits::All { s.len } else { 1 };
        let p = product.as_ref().ok_or_else(|| InferError::Invalid("no rows for the output head".into()))?;
        out.push(p.narrow(0, start, n)?);
    }
    Ok(out)
}

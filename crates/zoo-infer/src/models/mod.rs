//! The model architectures, one file each, behind one trait.

pub mod bloom;
pub mod llama;

use candle_core::Tensor;

use crate::config::{Arch, ModelConfig};
use crate::error::{InferError, Result};
use crate::weights::WeightSource;

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every position: (t, vocab). For checks and `--dump-logits`.
    All,
    /// The last position only: (1, vocab). For generation.
    Last,
    /// The last position for greedy decoding: (1, vocab), where the logits that could be the
    /// largest are exact and the others may be `-inf`. f32 output heads then read about half
    /// their bytes (`zoo_kernels::greedy`); other heads give [`Logits::Last`].
    Greedy,
}

/// A causal language model with a KV cache.
pub trait CausalLm: Send {
    fn config(&self) -> &ModelConfig;

    /// Runs `ids` at positions `pos..pos + ids.len()`, appending to the KV cache, which must
    /// hold exactly `pos` positions.
    fn forward(&mut self, ids: &[u32], pos: usize, logits: Logits) -> Result<Tensor>;

    fn clear_kv_cache(&mut self);

    /// Positions in the KV cache.
    fn kv_len(&self) -> usize;

    /// The output head's weights, in the form they are held (a split f32 head, 16-bit, ...).
    fn head(&self) -> &crate::weights::MatrixWeight;
}

/// Builds the model of `cfg.arch` from `src`.
pub fn load(cfg: &ModelConfig, src: &WeightSource) -> Result<Box<dyn CausalLm>> {
    Ok(match cfg.arch {
        Arch::Bloom => Box::new(bloom::Bloom::load(cfg, src)?),
        Arch::Llama | Arch::Qwen2 | Arch::Gemma | Arch::Baichuan => Box::new(llama::Llama::load(cfg, src)?),
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

/// A decode step runs at exactly the position after the cached ones.
pub(crate) fn check_decode_pos(cached: usize, pos: usize) -> Result<()> {
    if cached != pos {
        return Err(InferError::Invalid(format!("decode at position {pos} with {cached} cached positions")));
    }
    Ok(())
}

//! Per-sequence state: the KV caches of every layer and the token ids they hold. A model's
//! weights are shared read-only; everything a sequence changes lives here, owned by the caller.

use crate::error::{InferError, Result};
use crate::layers::KvCache;
use crate::models::Logits;

/// What one sequence has run so far: one KV cache per layer and the ids cached. Made by
/// [`crate::CausalLm::new_state`]; advanced by [`crate::CausalLm::forward_batch`].
///
/// **Invariant:** between calls every layer's cache holds exactly `tokens().len()` positions
/// (a failed forward leaves the state as it was before the call).
#[derive(Debug)]
pub struct SeqState {
    pub(crate) layers: Vec<KvCache>,
    tokens: Vec<u32>,
    capacity: usize,
}

impl SeqState {
    /// An empty state for a model of `layers` layers and a context of `context` positions
    /// (allocated when the first position runs, and touched only as positions fill).
    pub fn new(layers: usize, context: usize) -> SeqState {
        SeqState { layers: (0..layers).map(|_| KvCache::new(context)).collect(), tokens: Vec::new(), capacity: context }
    }

    /// The token ids whose keys and values are cached, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Cached positions: the position the next token runs at.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Positions the state has room for (the model's context).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position (the allocation is kept).
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Keeps the first `n` positions: the next token runs at position `n`.
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
        let n = self.tokens.len();
        self.layers.iter_mut().for_each(|l| l.truncate(n));
    }

    /// A new state holding a copy of this one's first `n` positions: a shared prompt prefix
    /// computed once serves every sequence that starts with it. Only those rows are copied.
    pub fn clone_prefix(&self, n: usize) -> Result<SeqState> {
        if n > self.len() {
            return Err(InferError::Invalid(format!("cannot copy {n} positions of a state holding {}", self.len())));
        }
        Ok(SeqState {
            layers: self.layers.iter().map(|l| l.clone_prefix(n)).collect(),
            tokens: self.tokens.get(..n).unwrap_or_default().to_vec(),
            capacity: self.capacity,
        })
    }

    /// A copy of everything this state holds.
    pub fn fork(&self) -> SeqState {
        SeqState {
            layers: self.layers.iter().map(|l| l.clone_prefix(l.len())).collect(),
            tokens: self.tokens.clone(),
            capacity: self.capacity,
        }
    }

    /// How many of `ids`' first tokens this state already holds.
    pub fn common_prefix(&self, ids: &[u32]) -> usize {
        self.tokens.iter().zip(ids).take_while(|(a, b)| a == b).count()
    }

    /// After a successful forward of `ids`.
    pub(crate) fn commit(&mut self, ids: &[u32]) {
        self.tokens.extend_from_slice(ids);
    }

    /// After a failed forward: drops whatever some layers appended.
    pub(crate) fn rollback(&mut self) {
        let n = self.tokens.len();
        self.layers.iter_mut().for_each(|l| l.truncate(n));
    }
}

/// One sequence's part of a batched forward: its state, the new ids (a prompt chunk or one
/// decode token) and which logits it wants.
#[derive(Debug)]
pub struct SeqInput<'a> {
    pub state: &'a mut SeqState,
    pub ids: &'a [u32],
    pub logits: Logits,
}

impl<'a> SeqInput<'a> {
    pub fn new(state: &'a mut SeqState, ids: &'a [u32], logits: Logits) -> SeqInput<'a> {
        SeqInput { state, ids, logits }
    }
}

//! The KV cache of one layer of one sequence: keys and values of the positions run so far.

use crate::error::{InferError, Result};

/// Keys and values of past positions, preallocated for the context as `(kv_heads, context,
/// head_dim)` f32 rows (zeroed pages are only touched as they fill, so resident memory grows
/// with the sequence, not the context size). Rows are appended in place
/// ([`KvCache::push_rows`]) and read in place by the attention (`layers::attention`).
///
/// **Invariant:** positions `0..len` hold valid rows; anything after `len` is stale and never
/// read, so dropping positions ([`KvCache::truncate`]) only moves `len`.
#[derive(Debug)]
pub struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    heads: usize,
    dim: usize,
    cap: usize,
    len: usize,
}

impl KvCache {
    pub fn new(context: usize) -> KvCache {
        KvCache { k: Vec::new(), v: Vec::new(), heads: 0, dim: 0, cap: context, len: 0 }
    }

    /// Allocates on first use, when the head shape is known; refuses a different shape later.
    fn ensure(&mut self, heads: usize, dim: usize) -> Result<()> {
        if self.k.is_empty() {
            let n = heads
                .checked_mul(self.cap)
                .and_then(|x| x.checked_mul(dim))
                .ok_or_else(|| InferError::Invalid("KV cache size overflows".into()))?;
            // `vec![0; n]` is a zeroed allocation: the kernel maps the pages lazily.
            self.k = vec![0f32; n];
            self.v = vec![0f32; n];
            self.heads = heads;
            self.dim = dim;
        } else if (heads, dim) != (self.heads, self.dim) {
            return Err(InferError::Invalid(format!(
                "KV cache holds {} heads of {}, got {heads} of {dim}",
                self.heads, self.dim
            )));
        }
        Ok(())
    }

    /// Appends `t` positions: `k` and `v` are `t` rows of (kv_heads × head_dim) values, as the
    /// projections produce them.
    pub fn push_rows(&mut self, heads: usize, dim: usize, t: usize, k: &[f32], v: &[f32]) -> Result<()> {
        self.ensure(heads, dim)?;
        if self.len + t > self.cap {
            return Err(InferError::ContextOverflow { prompt: self.len + t, context: self.cap });
        }
        let w = heads * dim;
        if k.len() != t * w || v.len() != t * w {
            return Err(InferError::Invalid("KV rows of the wrong width".into()));
        }
        for (j, (kr, vr)) in k.chunks_exact(w.max(1)).zip(v.chunks_exact(w.max(1))).enumerate() {
            for h in 0..heads {
                let at = (h * self.cap + self.len + j) * dim;
                let src = h * dim..(h + 1) * dim;
                if let (Some(dk), Some(dv), Some(sk), Some(sv)) =
                    (self.k.get_mut(at..at + dim), self.v.get_mut(at..at + dim), kr.get(src.clone()), vr.get(src))
                {
                    dk.copy_from_slice(sk);
                    dv.copy_from_slice(sv);
                }
            }
        }
        self.len += t;
        Ok(())
    }

    /// Appends one position: `k` and `v` are (kv_heads × head_dim) rows.
    pub fn push_row(&mut self, heads: usize, dim: usize, k: &[f32], v: &[f32]) -> Result<()> {
        self.push_rows(heads, dim, 1, k, v)
    }

    /// The keys and values of kv head `h` at positions `0..seen` (`seen ≤ len`).
    pub(crate) fn head_rows(&self, h: usize, seen: usize) -> Option<(&[f32], &[f32])> {
        if seen > self.len || h >= self.heads {
            return None;
        }
        let base = h * self.cap * self.dim;
        Some((self.k.get(base..base + seen * self.dim)?, self.v.get(base..base + seen * self.dim)?))
    }

    /// (kv heads, head dim) once the first position is in; (0, 0) before.
    pub fn shape(&self) -> (usize, usize) {
        (self.heads, self.dim)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache has room for.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `n` positions (no-op when it holds fewer).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// A new cache of the same capacity holding a copy of the first `n` positions (at most
    /// `len`). Only those rows are copied: the rest of the new allocation stays untouched.
    pub fn clone_prefix(&self, n: usize) -> KvCache {
        let n = n.min(self.len);
        let mut out = KvCache::new(self.cap);
        if self.k.is_empty() || n == 0 {
            return out;
        }
        if out.ensure(self.heads, self.dim).is_err() {
            return KvCache::new(self.cap);
        }
        for h in 0..self.heads {
            let span = h * self.cap * self.dim..(h * self.cap + n) * self.dim;
            if let (Some(dk), Some(dv), Some(sk), Some(sv)) =
                (out.k.get_mut(span.clone()), out.v.get_mut(span.clone()), self.k.get(span.clone()), self.v.get(span))
            {
                dk.copy_from_slice(sk);
                dv.copy_from_slice(sv);
            }
        }
        out.len = n;
        out
    }
}

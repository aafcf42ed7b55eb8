//! The KV cache of one layer of one sequence: keys and values of the positions run so far.

use crate::error::{InferError, Result};

/// Keys and values of past positions as `(kv_heads, cap, head_dim)` f32 rows, so each head's
/// keys are one contiguous run for the attention kernel. `cap` grows (doubling, up to the
/// context) as positions arrive, copying the rows once per growth. **Decision:** the cache
/// used to be allocated for the whole context and left to the kernel to map lazily; but every
/// head's region starts on its own page, and with transparent huge pages each first touch
/// zeroed 2 MiB: 32 SmolLM2 sequences touched ~11 GB for 128 positions each. Grown buffers
/// cost a copy per doubling and hold at most twice what is used. Rows are appended in place
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
    /// Positions allocated.
    cap: usize,
    /// Positions allowed (the model's context).
    context: usize,
    len: usize,
}

/// Positions allocated at first use.
const FIRST_CAP: usize = 64;

impl KvCache {
    pub fn new(context: usize) -> KvCache {
        KvCache { k: Vec::new(), v: Vec::new(), heads: 0, dim: 0, cap: 0, context, len: 0 }
    }

    /// Makes room for `need` positions of `heads` × `dim` (the shape is fixed by the first use;
    /// a different one later is refused).
    fn ensure(&mut self, heads: usize, dim: usize, need: usize) -> Result<()> {
        if self.cap > 0 && (heads, dim) != (self.heads, self.dim) {
            return Err(InferError::Invalid(format!(
                "KV cache holds {} heads of {}, got {heads} of {dim}",
                self.heads, self.dim
            )));
        }
        if need > self.context {
            return Err(InferError::ContextOverflow { prompt: need, context: self.context });
        }
        if need <= self.cap {
            return Ok(());
        }
        let cap = need.max(2 * self.cap).max(FIRST_CAP).min(self.context);
        let n = heads
            .checked_mul(cap)
            .and_then(|x| x.checked_mul(dim))
            .ok_or_else(|| InferError::Invalid("KV cache size overflows".into()))?;
        let (mut k, mut v) = (vec![0f32; n], vec![0f32; n]);
        for h in 0..self.heads {
            let (from, to) = (h * self.cap * dim, h * cap * dim);
            let rows = self.len * dim;
            if let (Some(dk), Some(dv), Some(sk), Some(sv)) = (
                k.get_mut(to..to + rows),
                v.get_mut(to..to + rows),
                self.k.get(from..from + rows),
                self.v.get(from..from + rows),
            ) {
                dk.copy_from_slice(sk);
                dv.copy_from_slice(sv);
            }
        }
        (self.k, self.v, self.heads, self.dim, self.cap) = (k, v, heads, dim, cap);
        Ok(())
    }

    /// Appends `t` positions: `k` and `v` are `t` rows of (kv_heads × head_dim) values, as the
    /// projections produce them.
    pub fn push_rows(&mut self, heads: usize, dim: usize, t: usize, k: &[f32], v: &[f32]) -> Result<()> {
        self.ensure(heads, dim, self.len + t)?;
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

    /// Positions the cache may hold (the context).
    pub fn capacity(&self) -> usize {
        self.context
    }

    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `n` positions (no-op when it holds fewer).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// A new cache of the same context holding a copy of the first `n` positions (at most
    /// `len`), with room for as many more.
    pub fn clone_prefix(&self, n: usize) -> KvCache {
        let n = n.min(self.len);
        let mut out = KvCache::new(self.context);
        if n == 0 || out.ensure(self.heads, self.dim, (2 * n).min(self.context)).is_err() {
            return out;
        }
        for h in 0..self.heads {
            let (from, to) = (h * self.cap * self.dim, h * out.cap * self.dim);
            let rows = n * self.dim;
            if let (Some(dk), Some(dv), Some(sk), Some(sv)) = (
                out.k.get_mut(to..to + rows),
                out.v.get_mut(to..to + rows),
                self.k.get(from..from + rows),
                self.v.get(from..from + rows),
            ) {
                dk.copy_from_slice(sk);
                dv.copy_from_slice(sv);
            }
        }
        out.len = n;
        out
    }
}

//! Causal self-attention over the KV cache, for the rows of a batch of sequences: each query
//! row attends to its own sequence's cached positions up to and including its own, with grouped
//! key/value heads and optional ALiBi, one (row, head) task per kernel-pool task.

use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

use zoo_kernels::ThreadPool;

use crate::error::{InferError, Result};
use crate::layers::{KvCache, Rope};

/// Where one sequence's new rows sit in a batch: rows `start..start + len`, at positions
/// `pos..pos + len` of that sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
    pub pos: usize,
}

/// Lays out consecutive spans for sequences with `(new rows, cached positions)`.
pub fn spans(seqs: impl IntoIterator<Item = (usize, usize)>) -> Vec<Span> {
    let mut start = 0;
    seqs.into_iter()
        .map(|(len, pos)| {
            let s = Span { start, len, pos };
            start += len;
            s
        })
        .collect()
}

/// Head counts and scale of a model's attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub q: usize,
    pub kv: usize,
    pub dim: usize,
    pub scale: f32,
}

/// The attention step of one layer for a batch: rotates the q/k rows at their positions,
/// appends each sequence's k/v rows to its cache (`caches[i]` for `spans[i]`), and writes
/// every query row's attention output to `out`. `q`, `out`: rows of `heads.q × dim`; `k`, `v`:
/// rows of `heads.kv × dim`, all rows of all spans in order.
#[allow(clippy::too_many_arguments)]
pub fn attend_batch(
    pool: &ThreadPool,
    caches: &mut [&mut KvCache],
    spans: &[Span],
    heads: Heads,
    rope: Option<&Rope>,
    slopes: Option<&[f32]>,
    q: &mut [f32],
    k: &mut [f32],
    v: &[f32],
    out: &mut [f32],
) -> Result<()> {
    let (qw, kw) = (heads.q * heads.dim, heads.kv * heads.dim);
    let rows = spans.iter().map(|s| s.len).sum::<usize>();
    if caches.len() != spans.len() || q.len() != rows * qw || k.len() != rows * kw || v.len() != rows * kw {
        return Err(InferError::Invalid("attention: rows and sequences disagree".into()));
    }
    for (cache, s) in caches.iter_mut().zip(spans) {
        if cache.len() != s.pos {
            return Err(InferError::Invalid(format!("attention at position {} with {} cached", s.pos, cache.len())));
        }
        let (Some(qs), Some(ks), Some(vs)) = (
            q.get_mut(s.start * qw..(s.start + s.len) * qw),
            k.get_mut(s.start * kw..(s.start + s.len) * kw),
            v.get(s.start * kw..(s.start + s.len) * kw),
        ) else {
            return Err(InferError::Invalid("attention: span outside the batch".into()));
        };
        if let Some(rope) = rope {
            for (j, (qr, kr)) in qs.chunks_exact_mut(qw.max(1)).zip(ks.chunks_exact_mut(kw.max(1))).enumerate() {
                rope.apply_row(qr, s.pos + j)?;
                rope.apply_row(kr, s.pos + j)?;
            }
        }
        cache.push_rows(heads.kv, heads.dim, s.len, ks, vs)?;
    }
    // Row r of span s sees positions 0..=pos + j of its own sequence (causal). Spans of a
    // prompt's length go through the blocked kernel, one task per (span, head); the rest (decode
    // rows of many sequences, short chunks) one task per (row, head).
    let mut rows_alone: Vec<(usize, &KvCache, usize)> = Vec::new();
    let mut blocks: Vec<(&KvCache, Span)> = Vec::new();
    for (cache, s) in caches.iter().zip(spans) {
        if s.len >= SPAN_MIN_ROWS {
            blocks.push((&**cache, *s));
        } else {
            rows_alone.extend((0..s.len).map(|j| (s.start + j, &**cache, s.pos + j + 1)));
        }
    }
    attend(pool, &rows_alone, &blocks, q, heads, slopes, out)
}

/// Rows of one sequence from which [`attend_batch`] runs them as a block
/// (`zoo_kernels::attn::attend_span`): below, transposing the keys costs more than it saves.
const SPAN_MIN_ROWS: usize = 8;

thread_local! {
    /// The blocked kernel's transposed keys and scores, and a block's outputs.
    static SPAN_SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Attention of query rows over cached positions: row `r` (`q[r]`, heads.q × dim) attends to
/// the first `jobs[r].1` positions of cache `jobs[r].0`. `slopes`: ALiBi, adding
/// `slope × key position` to the scores.
pub fn attend_rows(
    pool: &ThreadPool,
    jobs: &[(&KvCache, usize)],
    q: &[f32],
    heads: Heads,
    slopes: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let n = jobs.len() * heads.q * heads.dim;
    if q.len() != n || out.len() != n {
        return Err(InferError::Invalid("attention: query and cache shapes disagree".into()));
    }
    let rows: Vec<(usize, &KvCache, usize)> = jobs.iter().enumerate().map(|(r, (c, seen))| (r, *c, *seen)).collect();
    attend(pool, &rows, &[], q, heads, slopes, out)
}

/// The tasks of [`attend_rows`] and [`attend_batch`]: `rows` as (row, cache, positions seen),
/// one task per (row, head); `blocks` as (cache, span), one task per (span, head). `q` and
/// `out` hold every row of the batch.
fn attend(
    pool: &ThreadPool,
    rows: &[(usize, &KvCache, usize)],
    blocks: &[(&KvCache, Span)],
    q: &[f32],
    heads: Heads,
    slopes: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let d = heads.dim;
    let n = out.len() / d.max(1);
    let last = |r: usize| (r + 1) * heads.q <= n;
    if d == 0
        || heads.kv == 0
        || !heads.q.is_multiple_of(heads.kv)
        || q.len() != out.len()
        || !out.len().is_multiple_of(d)
    {
        return Err(InferError::Invalid("attention: query and cache shapes disagree".into()));
    }
    let fits = |c: &KvCache, seen: usize| c.shape() == (heads.kv, d) && seen != 0 && seen <= c.len();
    if rows.iter().any(|(r, c, seen)| !last(*r) || !fits(c, *seen))
        || blocks.iter().any(|(c, s)| s.len == 0 || !last(s.start + s.len - 1) || !fits(c, s.pos + s.len))
    {
        return Err(InferError::Invalid("attention: a cache holds other heads or too few positions".into()));
    }
    let group = heads.q / heads.kv;
    // Each task writes only its own (row, head) chunks of `out`.
    let outs: Vec<Mutex<&mut [f32]>> = out.chunks_mut(d).map(Mutex::new).collect();
    let slope = |h: usize| slopes.and_then(|s| s.get(h).copied()).unwrap_or(0.0);
    let span_tasks = blocks.len() * heads.q;
    pool.run(span_tasks + rows.len() * heads.q, &|task| {
        if task < span_tasks {
            let (Some((cache, s)), h) = (blocks.get(task / heads.q), task % heads.q) else { return };
            let Some((keys, values)) = cache.head_rows(h / group, s.pos + s.len) else { return };
            let Some(qs) = q.get((s.start * heads.q + h) * d..) else { return };
            SPAN_SCRATCH.with(|cell| {
                let Ok(mut guard) = cell.try_borrow_mut() else { return };
                let (scratch, local) = &mut *guard;
                local.clear();
                local.resize(s.len * d, 0.0);
                let stride = heads.q * d;
                if !zoo_kernels::attn::attend_span(
                    qs,
                    stride,
                    s.len,
                    s.pos,
                    keys,
                    values,
                    heads.scale,
                    slope(h),
                    scratch,
                    local,
                ) {
                    return;
                }
                for (j, o) in local.chunks_exact(d).enumerate() {
                    if let Some(cell) = outs.get((s.start + j) * heads.q + h) {
                        cell.lock().unwrap_or_else(PoisonError::into_inner).copy_from_slice(o);
                    }
                }
            });
            return;
        }
        let task = task - span_tasks;
        let (Some((r, cache, seen)), h) = (rows.get(task / heads.q), task % heads.q) else { return };
        let idx = r * heads.q + h;
        let (Some(qh), Some(cell)) = (q.get(idx * d..(idx + 1) * d), outs.get(idx)) else { return };
        let Some((keys, values)) = cache.head_rows(h / group, *seen) else { return };
        let mut oh = cell.lock().unwrap_or_else(PoisonError::into_inner);
        SPAN_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut g) => zoo_kernels::attn::attend_one(qh, keys, values, heads.scale, slope(h), &mut g.0, &mut oh),
            Err(_) => zoo_kernels::attn::attend_one(qh, keys, values, heads.scale, slope(h), &mut Vec::new(), &mut oh),
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use candle_core::{D, DType, Device, Tensor};

    use super::*;
    use crate::layers::alibi_slopes;
    use crate::layers::tests::{max_diff, values};

    /// The reference: candle's scaled dot-product attention with grouped heads, a causal mask
    /// and ALiBi. `q`: (heads, t, d) at positions `pos..pos + t`; `k`, `v`: (kv_heads, n, d).
    fn candle_attention(q: &Tensor, k: &Tensor, v: &Tensor, pos: usize, scale: f64, slopes: Option<&[f32]>) -> Tensor {
        let (heads, t, d) = q.dims3().unwrap();
        let (kv_heads, n, _) = k.dims3().unwrap();
        let group = heads / kv_heads;
        let qg = q.reshape((kv_heads, group * t, d)).unwrap();
        let mut scores = (qg.matmul(&k.t().unwrap()).unwrap() * scale).unwrap().reshape((heads, t, n)).unwrap();
        if let Some(s) = slopes {
            let s = Tensor::from_slice(s, (heads, 1, 1), &Device::Cpu).unwrap();
            let p = Tensor::arange(0u32, n as u32, &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap();
            scores = scores.broadcast_add(&s.broadcast_mul(&p.reshape((1, 1, n)).unwrap()).unwrap()).unwrap();
        }
        let mask: Vec<f32> =
            (0..t).flat_map(|i| (0..n).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })).collect();
        scores = scores.broadcast_add(&Tensor::from_vec(mask, (1, t, n), &Device::Cpu).unwrap()).unwrap();
        let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap().reshape((kv_heads, group * t, n)).unwrap();
        let ctx = probs.matmul(v).unwrap().reshape((heads, t, d)).unwrap();
        ctx.transpose(0, 1).unwrap().contiguous().unwrap().reshape((t, heads * d)).unwrap()
    }

    /// (t, heads × d) rows → (heads, t, d).
    fn heads_of(rows: &[f32], t: usize, heads: usize, d: usize) -> Tensor {
        let x = Tensor::from_slice(rows, (t, heads, d), &Device::Cpu).unwrap();
        x.transpose(0, 1).unwrap().contiguous().unwrap()
    }

    /// Two sequences in one batch (one with a cached prefix, then a prompt chunk and a single
    /// row) attend as candle's masked attention over each sequence alone computes it, with
    /// grouped kv heads, with and without ALiBi.
    #[test]
    fn batched_rows_equal_candle_attention_per_sequence() {
        let pool = ThreadPool::new(2);
        let (hq, hkv, d) = (6, 2, 8);
        let heads = Heads { q: hq, kv: hkv, dim: d, scale: 0.3 };
        for alibi in [false, true] {
            let slopes = alibi.then(|| alibi_slopes(hq));
            let mut a = KvCache::new(16);
            let mut b = KvCache::new(16);
            // Sequence a already holds 3 positions; b is empty.
            let (k0, v0) = (values(3 * hkv * d, 1), values(3 * hkv * d, 2));
            a.push_rows(hkv, d, 3, &k0, &v0).unwrap();
            // New rows: 4 for a (positions 3..7), 1 for b (position 0).
            let sp = spans([(4, 3), (1, 0)]);
            let q = values(5 * hq * d, 3);
            let (mut k, v) = (values(5 * hkv * d, 4), values(5 * hkv * d, 5));
            let mut got = vec![0f32; 5 * hq * d];
            let mut qm = q.clone();
            attend_batch(
                &pool,
                &mut [&mut a, &mut b],
                &sp,
                heads,
                None,
                slopes.as_deref(),
                &mut qm,
                &mut k,
                &v,
                &mut got,
            )
            .unwrap();
            assert_eq!((a.len(), b.len()), (7, 1));
            // a: all 7 keys, the 4 queries at positions 3..7.
            let ka: Vec<f32> = k0.iter().chain(&k[..4 * hkv * d]).copied().collect();
            let va: Vec<f32> = v0.iter().chain(&v[..4 * hkv * d]).copied().collect();
            let want_a = candle_attention(
                &heads_of(&q[..4 * hq * d], 4, hq, d),
                &heads_of(&ka, 7, hkv, d),
                &heads_of(&va, 7, hkv, d),
                3,
                0.3,
                slopes.as_deref(),
            );
            let want_a = want_a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(max_diff(&got[..4 * hq * d], &want_a) < 1e-6, "alibi {alibi}: a");
            let want_b = candle_attention(
                &heads_of(&q[4 * hq * d..], 1, hq, d),
                &heads_of(&k[4 * hkv * d..], 1, hkv, d),
                &heads_of(&v[4 * hkv * d..], 1, hkv, d),
                0,
                0.3,
                slopes.as_deref(),
            );
            let want_b = want_b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(max_diff(&got[4 * hq * d..], &want_b) < 1e-6, "alibi {alibi}: b");
        }
        // Shapes that disagree are errors, not panics.
        let mut c = KvCache::new(2);
        c.push_row(2, 4, &[0.0; 8], &[0.0; 8]).unwrap();
        assert!(c.push_row(3, 4, &[0.0; 12], &[0.0; 12]).is_err());
        let h3 = Heads { q: 3, kv: 3, dim: 4, scale: 1.0 };
        assert!(attend_rows(&pool, &[(&c, 1)], &[0.0; 12], h3, None, &mut [0.0; 12]).is_err());
        let h2 = Heads { q: 2, kv: 2, dim: 4, scale: 1.0 };
        assert!(attend_rows(&pool, &[(&c, 2)], &[0.0; 8], h2, None, &mut [0.0; 8]).is_err(), "past len");
        c.push_row(2, 4, &[0.0; 8], &[0.0; 8]).unwrap();
        assert!(matches!(c.push_row(2, 4, &[0.0; 8], &[0.0; 8]), Err(InferError::ContextOverflow { .. })));
    }

    /// Prompt-length spans (the blocked kernel, head size 32) next to a short one (row by
    /// row) in one batch, one of them after a cached prefix: each equals candle's masked
    /// attention over its sequence alone, with and without ALiBi.
    #[test]
    fn prompt_spans_equal_candle_attention_per_sequence() {
        let pool = ThreadPool::new(2);
        let (hq, hkv, d) = (6, 2, 32);
        let heads = Heads { q: hq, kv: hkv, dim: d, scale: 0.2 };
        // (new rows, cached positions) per sequence.
        let seqs = [(11, 3), (2, 0), (9, 0)];
        for alibi in [false, true] {
            let slopes = alibi.then(|| alibi_slopes(hq));
            let mut caches: Vec<KvCache> = seqs.iter().map(|_| KvCache::new(32)).collect();
            let mut prefix = Vec::new();
            for (i, (c, (_, pos))) in caches.iter_mut().zip(seqs).enumerate() {
                let (k0, v0) = (values(pos * hkv * d, 10 + i as u32), values(pos * hkv * d, 20 + i as u32));
                if pos > 0 {
                    c.push_rows(hkv, d, pos, &k0, &v0).unwrap();
                }
                prefix.push((k0, v0));
            }
            let sp = spans(seqs);
            let rows: usize = seqs.iter().map(|s| s.0).sum();
            let q = values(rows * hq * d, 3);
            let (mut k, v) = (values(rows * hkv * d, 4), values(rows * hkv * d, 5));
            let mut got = vec![0f32; rows * hq * d];
            let mut qm = q.clone();
            let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
            attend_batch(&pool, &mut refs, &sp, heads, None, slopes.as_deref(), &mut qm, &mut k, &v, &mut got).unwrap();
            for (s, (k0, v0)) in sp.iter().zip(&prefix) {
                let n = s.pos + s.len;
                let ks: Vec<f32> =
                    k0.iter().chain(&k[s.start * hkv * d..(s.start + s.len) * hkv * d]).copied().collect();
                let vs: Vec<f32> =
                    v0.iter().chain(&v[s.start * hkv * d..(s.start + s.len) * hkv * d]).copied().collect();
                let want = candle_attention(
                    &heads_of(&q[s.start * hq * d..(s.start + s.len) * hq * d], s.len, hq, d),
                    &heads_of(&ks, n, hkv, d),
                    &heads_of(&vs, n, hkv, d),
                    s.pos,
                    0.2,
                    slopes.as_deref(),
                );
                let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let diff = max_diff(&got[s.start * hq * d..(s.start + s.len) * hq * d], &want);
                assert!(diff < 1e-5, "alibi {alibi}, span {s:?}: {diff}");
            }
        }
    }

    #[test]
    fn clone_prefix_copies_only_the_prefix() {
        let mut c = KvCache::new(8);
        let (k, v) = (values(5 * 2 * 4, 1), values(5 * 2 * 4, 2));
        c.push_rows(2, 4, 5, &k, &v).unwrap();
        let p = c.clone_prefix(3);
        assert_eq!(p.len(), 3);
        for h in 0..2 {
            let (pk, pv) = p.head_rows(h, 3).unwrap();
            let (ck, cv) = c.head_rows(h, 3).unwrap();
            assert_eq!((pk, pv), (ck, cv));
        }
        assert!(p.head_rows(0, 4).is_none());
        assert_eq!(c.clone_prefix(99).len(), 5);
    }
}

//! BLOOM (Phoenix's backbone, BLOOMZ-7b1-mt), in candle's model-file style: a LayerNorm right
//! after the word embeddings, ALiBi instead of rotary positions, one fused `query_key_value`
//! projection laid out per head (`[head][q|k|v][head_dim]` rows in Hugging Face checkpoints;
//! llama.cpp's converter regroups it as `[Q; K; V]`), tanh GELU, and an output head tied to the
//! embeddings. Every linear layer inside the blocks has a bias.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use candle_core::{Device, Tensor};

use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{self, Embedding, Heads, Linear, Norm};
use crate::models::{Logits, batch_logits};
use crate::state::{SeqInput, SeqState};
use crate::threads::Threads;
use crate::weights::WeightSource;

struct Block {
    ln1: Norm,
    qkv: Linear,
    dense: Linear,
    ln2: Norm,
    up: Linear,
    down: Linear,
}

pub struct Bloom {
    cfg: ModelConfig,
    embed: Embedding,
    embed_norm: Norm,
    blocks: Vec<Block>,
    ln_f: Norm,
    lm_head: Linear,
    slopes: Vec<f32>,
    /// GGUF files hold `[Q; K; V]`; Hugging Face checkpoints interleave per head.
    qkv_blocked: bool,
    threads: Arc<Threads>,
    computed: AtomicU64,
}

impl Bloom {
    pub fn load(cfg: &ModelConfig, src: &WeightSource, threads: Arc<Threads>) -> Result<Bloom> {
        let h = cfg.hidden_size;
        let eps = cfg.norm_eps;
        let pool = &**threads.kernels();
        let own_head = !cfg.tie_word_embeddings && src.has("lm_head.weight");
        // A tied table is also the output head: f32 tables load as a split head.
        let embed_w = if own_head {
            src.matrix("transformer.word_embeddings.weight", cfg.vocab_size, h)?
        } else {
            src.head_matrix("transformer.word_embeddings.weight", cfg.vocab_size, h)?
        };
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = format!("transformer.h.{i}");
            blocks.push(Block {
                ln1: Norm::layer(src, &format!("{p}.input_layernorm"), h, eps)?,
                qkv: Linear::load(src, &format!("{p}.self_attention.query_key_value"), 3 * h, h, true)?.packed(pool)?,
                dense: Linear::load(src, &format!("{p}.self_attention.dense"), h, h, true)?.packed(pool)?,
                ln2: Norm::layer(src, &format!("{p}.post_attention_layernorm"), h, eps)?,
                up: Linear::load(src, &format!("{p}.mlp.dense_h_to_4h"), cfg.intermediate_size, h, true)?
                    .packed(pool)?,
                down: Linear::load(src, &format!("{p}.mlp.dense_4h_to_h"), h, cfg.intermediate_size, true)?
                    .packed(pool)?,
            });
        }
        let head_w = if own_head { src.head_matrix("lm_head.weight", cfg.vocab_size, h)? } else { embed_w.clone() };
        Ok(Bloom {
            cfg: cfg.clone(),
            embed: Embedding::new(embed_w, h),
            embed_norm: Norm::layer(src, "transformer.word_embeddings_layernorm", h, eps)?,
            blocks,
            ln_f: Norm::layer(src, "transformer.ln_f", h, eps)?,
            lm_head: Linear::new(head_w, None).packed(pool)?,
            slopes: layers::alibi_slopes(cfg.num_heads),
            qkv_blocked: src.is_gguf(),
            threads,
            computed: AtomicU64::new(0),
        })
    }
}

impl Bloom {
    fn heads(&self) -> Heads {
        let (nh, hd) = (self.cfg.num_heads, self.cfg.head_dim);
        Heads { q: nh, kv: nh, dim: hd, scale: 1.0 / (hd as f32).sqrt() }
    }

    /// Splits fused QKV rows (`rows × 3h`) into q, k and v rows (`rows × h` each).
    fn split_qkv(&self, fused: &[f32], q: &mut [f32], k: &mut [f32], v: &mut [f32]) {
        let (h, hd) = (self.cfg.hidden_size, self.cfg.head_dim);
        let rows =
            fused.chunks_exact(3 * h).zip(q.chunks_exact_mut(h)).zip(k.chunks_exact_mut(h)).zip(v.chunks_exact_mut(h));
        for (((f, q), k), v) in rows {
            if self.qkv_blocked {
                let (fq, rest) = f.split_at(h);
                let (fk, fv) = rest.split_at(h);
                q.copy_from_slice(fq);
                k.copy_from_slice(fk);
                v.copy_from_slice(fv);
            } else {
                for (head, f) in f.chunks_exact(3 * hd).enumerate() {
                    let at = head * hd..(head + 1) * hd;
                    q[at.clone()].copy_from_slice(&f[..hd]);
                    k[at.clone()].copy_from_slice(&f[hd..2 * hd]);
                    v[at].copy_from_slice(&f[2 * hd..]);
                }
            }
        }
    }

    /// One token of one sequence on plain rows: the decode path (see `Llama::decode_step`).
    fn decode_step(&self, state: &mut SeqState, id: u32, logits: Logits) -> Result<Tensor> {
        let cfg = &self.cfg;
        let pool = &**self.threads.kernels();
        let heads = self.heads();
        let (nh, hd, h) = (cfg.num_heads, cfg.head_dim, cfg.hidden_size);
        let pos = state.len();
        let mut e = vec![0f32; h];
        self.embed.row_into(id, &mut e)?;
        let mut x = vec![0f32; h];
        self.embed_norm.forward_row(&e, &mut x);
        let (mut hs, mut proj, mut ctx) = (vec![0f32; h], vec![0f32; h], vec![0f32; h]);
        let (mut fused, mut q, mut k, mut v) = (vec![0f32; 3 * h], vec![0f32; h], vec![0f32; h], vec![0f32; h]);
        let mut up = vec![0f32; cfg.intermediate_size];
        for (b, cache) in self.blocks.iter().zip(state.layers.iter_mut()) {
            b.ln1.forward_row(&x, &mut hs);
            b.qkv.forward_row(pool, &hs, &mut fused)?;
            self.split_qkv(&fused, &mut q, &mut k, &mut v);
            cache.push_row(nh, hd, &k, &v)?;
            layers::attend_rows(pool, &[(&*cache, pos + 1)], &q, heads, Some(&self.slopes), &mut ctx)?;
            b.dense.forward_row(pool, &ctx, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, p)| *a += p);
            b.ln2.forward_row(&x, &mut hs);
            b.up.forward_row(pool, &hs, &mut up)?;
            layers::activate_in_place(pool, &mut up, cfg.activation)?;
            b.down.forward_row(pool, &up, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, p)| *a += p);
        }
        self.ln_f.forward_row(&x, &mut hs);
        layers::head_row(pool, &self.lm_head, &hs, cfg.vocab_size, logits)
    }

    /// The batched path: the new rows of all sequences as one (rows, hidden) activation.
    fn forward_rows(&self, seqs: &mut [SeqInput<'_>]) -> Result<Vec<Tensor>> {
        let cfg = &self.cfg;
        let pool = &**self.threads.kernels();
        let heads = self.heads();
        let h = cfg.hidden_size;
        let spans = layers::spans(seqs.iter().map(|s| (s.ids.len(), s.state.len())));
        let ids: Vec<u32> = seqs.iter().flat_map(|s| s.ids.iter().copied()).collect();
        let rows = ids.len();
        let mut x = self.embed_norm.forward(&self.embed.forward(&ids)?)?;
        let (mut q, mut k, mut v, mut ctx) =
            (vec![0f32; rows * h], vec![0f32; rows * h], vec![0f32; rows * h], vec![0f32; rows * h]);
        for (l, b) in self.blocks.iter().enumerate() {
            let hs = b.ln1.forward(&x)?;
            let fused = layers::rows_of(&b.qkv.forward(pool, &hs)?)?;
            self.split_qkv(&fused, &mut q, &mut k, &mut v);
            let mut caches: Vec<_> = seqs.iter_mut().filter_map(|s| s.state.layers.get_mut(l)).collect();
            layers::attend_batch(
                pool,
                &mut caches,
                &spans,
                heads,
                None,
                Some(&self.slopes),
                &mut q,
                &mut k,
                &v,
                &mut ctx,
            )?;
            let ctx_t = Tensor::from_slice(&ctx, (rows, h), &Device::Cpu)?;
            x = (x + b.dense.forward(pool, &ctx_t)?)?;
            let hs = b.ln2.forward(&x)?;
            let mlp = b.down.forward(pool, &layers::activate(&b.up.forward(pool, &hs)?, cfg.activation)?)?;
            x = (x + mlp)?;
        }
        let wants: Vec<Logits> = seqs.iter().map(|s| s.logits).collect();
        batch_logits(pool, &self.ln_f, &self.lm_head, cfg.vocab_size, &x, &spans, &wants)
    }
}

impl_causal_lm!(Bloom);

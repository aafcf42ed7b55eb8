//! The LLaMA family: LLaMA (Chimera, Ziya, Yi, SmolLM2), Qwen2 (q/k/v biases), Gemma 1 (`1 + w`
//! norms, scaled embeddings, tanh GELU) and Baichuan / Baichuan2 (packed `W_pack`, ALiBi in the
//! 13B models, Baichuan2's normalized head). They differ in a handful of switches read from
//! [`ModelConfig`], so one decoder serves all of them.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use candle_core::{Device, Tensor};
use zoo_kernels::ThreadPool;

use crate::config::{Arch, ModelConfig, Positions};
use crate::error::{InferError, Result};
use crate::layers::{self, Embedding, Heads, Linear, Norm, Rope};
use crate::models::{Logits, batch_logits};
use crate::state::{SeqInput, SeqState};
use crate::threads::Threads;
use crate::weights::{MatrixWeight, WeightSource};

/// q, k and v (or gate and up) as one product when their weights allow it, else apart.
enum Proj {
    Fused(Linear, Vec<usize>),
    Apart(Vec<Linear>),
}

impl Proj {
    fn new(parts: Vec<Linear>, pool: &ThreadPool) -> Result<Proj> {
        let refs: Vec<&Linear> = parts.iter().collect();
        Ok(match Linear::fuse(&refs)? {
            Some(l) => {
                let widths = parts.iter().map(|p| p.weight().rows()).collect::<Result<Vec<usize>>>()?;
                Proj::Fused(l.packed(pool)?, widths)
            }
            None => Proj::Apart(parts.into_iter().map(|p| p.packed(pool)).collect::<Result<_>>()?),
        })
    }

    /// Width of all parts together.
    fn width(&self) -> Result<usize> {
        match self {
            Proj::Fused(_, widths) => Ok(widths.iter().sum()),
            Proj::Apart(parts) => parts.iter().map(|p| p.rows()).sum(),
        }
    }

    /// One row: the parts' outputs side by side in `out`.
    fn forward_row(&self, pool: &ThreadPool, x: &[f32], out: &mut [f32]) -> Result<()> {
        match self {
            Proj::Fused(l, _) => l.forward_row(pool, x, out),
            Proj::Apart(parts) => {
                let mut rest = out;
                for p in parts {
                    let (head, tail) = rest.split_at_mut(p.rows()?.min(rest.len()));
                    p.forward_row(pool, x, head)?;
                    rest = tail;
                }
                Ok(())
            }
        }
    }

    /// The outputs of each part, (t, width_i).
    fn forward(&self, pool: &ThreadPool, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Proj::Apart(parts) => parts.iter().map(|p| p.forward(pool, x)).collect(),
            Proj::Fused(l, widths) => {
                let y = l.forward(pool, x)?;
                let mut out = Vec::with_capacity(widths.len());
                let mut at = 0;
                for &w in widths {
                    out.push(y.narrow(1, at, w)?);
                    at += w;
                }
                Ok(out)
            }
        }
    }
}

struct Layer {
    attn_norm: Norm,
    qkv: Proj,
    o: Linear,
    mlp_norm: Norm,
    gate_up: Proj,
    down: Linear,
}

pub struct Llama {
    cfg: ModelConfig,
    embed: Embedding,
    /// Gemma multiplies embeddings by sqrt(hidden).
    embed_scale: Option<f64>,
    layers: Vec<Layer>,
    norm: Norm,
    lm_head: Linear,
    rope: Option<Rope>,
    /// ALiBi slopes per head (Baichuan 13B).
    alibi: Option<Vec<f32>>,
    threads: Arc<Threads>,
    computed: AtomicU64,
}

impl Llama {
    pub fn load(cfg: &ModelConfig, src: &WeightSource, threads: Arc<Threads>) -> Result<Llama> {
        let h = cfg.hidden_size;
        let (nh, nkv, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let pool = &**threads.kernels();
        // llama.cpp's converter folds Gemma's `+1` into the stored norm weights.
        let plus_one = cfg.arch == Arch::Gemma && !src.is_gguf();
        let rms = |name: &str| Norm::rms(src, name, h, cfg.norm_eps, plus_one);
        let own_head = !cfg.tie_word_embeddings && src.has("lm_head.weight");
        // A tied table is also the output head: f32 tables load as a split head (Baichuan2
        // normalizes its head below, so its table stays dense).
        let embed_w = if own_head || cfg.norm_head {
            src.matrix("model.embed_tokens.weight", cfg.vocab_size, h)?
        } else {
            src.head_matrix("model.embed_tokens.weight", cfg.vocab_size, h)?
        };
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = format!("model.layers.{i}");
            let (q, k, v) = if src.has(&format!("{p}.self_attn.W_pack.weight")) {
                split_w_pack(src, &format!("{p}.self_attn.W_pack.weight"), h)?
            } else {
                (
                    Linear::load(src, &format!("{p}.self_attn.q_proj"), nh * hd, h, cfg.qkv_bias)?,
                    Linear::load(src, &format!("{p}.self_attn.k_proj"), nkv * hd, h, cfg.qkv_bias)?,
                    Linear::load(src, &format!("{p}.self_attn.v_proj"), nkv * hd, h, cfg.qkv_bias)?,
                )
            };
            let gate = Linear::load(src, &format!("{p}.mlp.gate_proj"), cfg.intermediate_size, h, false)?;
            let up = Linear::load(src, &format!("{p}.mlp.up_proj"), cfg.intermediate_size, h, false)?;
            layers.push(Layer {
                attn_norm: rms(&format!("{p}.input_layernorm"))?,
                qkv: Proj::new(vec![q, k, v], pool)?,
                o: Linear::load(src, &format!("{p}.self_attn.o_proj"), h, nh * hd, false)?.packed(pool)?,
                mlp_norm: rms(&format!("{p}.post_attention_layernorm"))?,
                gate_up: Proj::new(vec![gate, up], pool)?,
                down: Linear::load(src, &format!("{p}.mlp.down_proj"), h, cfg.intermediate_size, false)?
                    .packed(pool)?,
            });
        }
        let norm = rms("model.norm")?;
        let head_w = if own_head && !cfg.norm_head {
            src.head_matrix("lm_head.weight", cfg.vocab_size, h)?
        } else if own_head {
            src.matrix("lm_head.weight", cfg.vocab_size, h)?
        } else {
            embed_w.clone()
        };
        // Baichuan2's head is normalized once here (quantized GGUF heads are stored normalized).
        let head_w = match (cfg.norm_head, head_w) {
            (true, w @ (MatrixWeight::Dense(_) | MatrixWeight::Half(_) | MatrixWeight::Coded(_))) => {
                MatrixWeight::Dense(layers::normalize_rows(&w.to_dense()?)?)
            }
            (_, w) => w,
        };
        let (rope, alibi) = match cfg.positions {
            Positions::Rope { theta, interleaved, scale } => {
                (Some(Rope::new(hd, theta, scale, cfg.context_length, interleaved)?), None)
            }
            Positions::Alibi => (None, Some(layers::alibi_slopes(nh))),
        };
        Ok(Llama {
            cfg: cfg.clone(),
            embed: Embedding::new(embed_w, h),
            embed_scale: (cfg.arch == Arch::Gemma).then(|| f64::from((h as f32).sqrt())),
            layers,
            norm,
            // A head tied to the embedding table shares its weights and keeps their layout.
            lm_head: Linear::new(head_w, None).packed(pool)?,
            rope,
            alibi,
            threads,
            computed: AtomicU64::new(0),
        })
    }
}

/// Baichuan's `W_pack` is `[Q; K; V]` stacked by rows.
fn split_w_pack(src: &WeightSource, name: &str, h: usize) -> Result<(Linear, Linear, Linear)> {
    let w = src.tensor(name, &[3 * h, h])?;
    let part = |i: usize| -> Result<Linear> {
        Ok(Linear::new(MatrixWeight::Dense(w.narrow(0, i * h, h)?.contiguous()?), None))
    };
    Ok((part(0)?, part(1)?, part(2)?))
}

impl Llama {
    fn heads(&self) -> Heads {
        let hd = self.cfg.head_dim;
        Heads { q: self.cfg.num_heads, kv: self.cfg.num_kv_heads, dim: hd, scale: 1.0 / (hd as f32).sqrt() }
    }

    /// One token of one sequence through the model on plain rows: the decode path. It
    /// computes what the batched path computes for a one-token chunk, without building candle
    /// tensors per operation (about 20 per layer), which at this size cost more than the
    /// arithmetic.
    fn decode_step(&self, state: &mut SeqState, id: u32, logits: Logits) -> Result<Tensor> {
        let cfg = &self.cfg;
        let pool = &**self.threads.kernels();
        let heads = self.heads();
        let (nh, nkv, hd, h) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.hidden_size);
        let pos = state.len();
        let mut x = vec![0f32; h];
        self.embed.row_into(id, &mut x)?;
        if let Some(s) = self.embed_scale {
            let s = s as f32;
            x.iter_mut().for_each(|v| *v *= s);
        }
        let (qw, kw) = (nh * hd, nkv * hd);
        let mut hs = vec![0f32; h];
        let mut ctx = vec![0f32; qw];
        let mut proj = vec![0f32; h];
        let mut qkv = vec![0f32; qw + 2 * kw];
        let mut gu = vec![0f32; 2 * cfg.intermediate_size];
        for (layer, cache) in self.layers.iter().zip(state.layers.iter_mut()) {
            layer.attn_norm.forward_row(&x, &mut hs);
            qkv.resize(layer.qkv.width()?, 0.0);
            layer.qkv.forward_row(pool, &hs, &mut qkv)?;
            let (q, kv) = qkv.split_at_mut(qw);
            let (k, v) = kv.split_at_mut(kw);
            if let Some(rope) = &self.rope {
                rope.apply_row(q, pos)?;
                rope.apply_row(k, pos)?;
            }
            cache.push_row(nkv, hd, k, v)?;
            layers::attend_rows(pool, &[(&*cache, pos + 1)], q, heads, self.alibi.as_deref(), &mut ctx)?;
            layer.o.forward_row(pool, &ctx, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
            layer.mlp_norm.forward_row(&x, &mut hs);
            gu.resize(layer.gate_up.width()?, 0.0);
            layer.gate_up.forward_row(pool, &hs, &mut gu)?;
            let (gate, up) = gu.split_at_mut(cfg.intermediate_size);
            layers::activate_in_place(pool, gate, cfg.activation)?;
            gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g *= u);
            layer.down.forward_row(pool, gate, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        self.norm.forward_row(&x, &mut hs);
        layers::head_row(pool, &self.lm_head, &hs, cfg.vocab_size, logits)
    }

    /// The batched path: the new rows of all sequences as one (rows, hidden) activation.
    fn forward_rows(&self, seqs: &mut [SeqInput<'_>]) -> Result<Vec<Tensor>> {
        let cfg = &self.cfg;
        let pool = &**self.threads.kernels();
        let heads = self.heads();
        let spans = layers::spans(seqs.iter().map(|s| (s.ids.len(), s.state.len())));
        let ids: Vec<u32> = seqs.iter().flat_map(|s| s.ids.iter().copied()).collect();
        let rows = ids.len();
        let mut x = self.embed.forward(&ids)?;
        if let Some(s) = self.embed_scale {
            x = (x * s)?;
        }
        let mut ctx = vec![0f32; rows * heads.q * heads.dim];
        for (l, layer) in self.layers.iter().enumerate() {
            let hs = layer.attn_norm.forward(&x)?;
            let qkv = layer.qkv.forward(pool, &hs)?;
            let [q, k, v] = qkv.as_slice() else {
                return Err(InferError::Invalid("q/k/v projection lost a part".into()));
            };
            let (mut q, mut k, v) = (layers::rows_of(q)?, layers::rows_of(k)?, layers::rows_of(v)?);
            let mut caches: Vec<_> = seqs.iter_mut().filter_map(|s| s.state.layers.get_mut(l)).collect();
            layers::attend_batch(
                pool,
                &mut caches,
                &spans,
                heads,
                self.rope.as_ref(),
                self.alibi.as_deref(),
                &mut q,
                &mut k,
                &v,
                &mut ctx,
            )?;
            let ctx_t = Tensor::from_slice(&ctx, (rows, heads.q * heads.dim), &Device::Cpu)?;
            x = (x + layer.o.forward(pool, &ctx_t)?)?;
            let hs = layer.mlp_norm.forward(&x)?;
            let gu = layer.gate_up.forward(pool, &hs)?;
            let [gate, up] = gu.as_slice() else {
                return Err(InferError::Invalid("gate/up projection lost a part".into()));
            };
            let mlp = layer.down.forward(pool, &(layers::activate(gate, cfg.activation)? * up)?)?;
            x = (x + mlp)?;
        }
        let wants: Vec<Logits> = seqs.iter().map(|s| s.logits).collect();
        batch_logits(pool, &self.norm, &self.lm_head, cfg.vocab_size, &x, &spans, &wants)
    }
}

impl_causal_lm!(Llama);

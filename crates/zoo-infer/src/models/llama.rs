//! The LLaMA family: LLaMA (Chimera, Ziya, Yi, SmolLM2), Qwen2 (q/k/v biases), Gemma 1 (`1 + w`
//! norms, scaled embeddings, tanh GELU) and Baichuan / Baichuan2 (packed `W_pack`, ALiBi in the
//! 13B models, Baichuan2's normalized head). They differ in a handful of switches read from
//! [`ModelConfig`], so one decoder serves all of them.

use candle_core::{Device, Tensor};

use crate::config::{Arch, ModelConfig, Positions};
use crate::error::Result;
use crate::layers::{self, Bias, Embedding, KvCache, Linear, Norm, Rope};
use crate::models::{CausalLm, Logits, check_decode_pos, check_ids};
use crate::weights::{MatrixWeight, WeightSource};

/// q, k and v (or gate and up) as one product when their weights allow it, else apart.
enum Proj {
    Fused(Linear, Vec<usize>),
    Apart(Vec<Linear>),
}

impl Proj {
    fn new(parts: Vec<Linear>) -> Result<Proj> {
        let refs: Vec<&Linear> = parts.iter().collect();
        Ok(match Linear::fuse(&refs)? {
            Some(l) => {
                let widths = parts.iter().map(|p| p.weight().rows()).collect::<Result<Vec<usize>>>()?;
                Proj::Fused(l, widths)
            }
            None => Proj::Apart(parts),
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
    fn forward_row(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        match self {
            Proj::Fused(l, _) => l.forward_row(x, out),
            Proj::Apart(parts) => {
                let mut rest = out;
                for p in parts {
                    let (head, tail) = rest.split_at_mut(p.rows()?.min(rest.len()));
                    p.forward_row(x, head)?;
                    rest = tail;
                }
                Ok(())
            }
        }
    }

    /// The outputs of each part, (t, width_i).
    fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Proj::Apart(parts) => parts.iter().map(|p| p.forward(x)).collect(),
            Proj::Fused(l, widths) => {
                let y = l.forward(x)?;
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
    kv: KvCache,
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
    alibi: Option<Tensor>,
}

impl Llama {
    pub fn load(cfg: &ModelConfig, src: &WeightSource) -> Result<Llama> {
        let h = cfg.hidden_size;
        let (nh, nkv, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
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
                qkv: Proj::new(vec![q, k, v])?,
                o: Linear::load(src, &format!("{p}.self_attn.o_proj"), h, nh * hd, false)?,
                mlp_norm: rms(&format!("{p}.post_attention_layernorm"))?,
                gate_up: Proj::new(vec![gate, up])?,
                down: Linear::load(src, &format!("{p}.mlp.down_proj"), h, cfg.intermediate_size, false)?,
                kv: KvCache::new(cfg.context_length),
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
            Positions::Alibi => {
                let slopes = layers::alibi_slopes(nh);
                (None, Some(Tensor::from_vec(slopes, nh, &Device::Cpu)?))
            }
        };
        Ok(Llama {
            cfg: cfg.clone(),
            embed: Embedding::new(embed_w, h),
            embed_scale: (cfg.arch == Arch::Gemma).then(|| f64::from((h as f32).sqrt())),
            layers,
            norm,
            lm_head: Linear::new(head_w, None),
            rope,
            alibi,
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
    /// One token through the model on plain rows: the decode path. It computes what
    /// [`CausalLm::forward`] computes for a one-token chunk, without building candle tensors
    /// per operation (about 20 per layer), which at this size cost more than the arithmetic.
    fn decode_step(&mut self, id: u32, pos: usize, logits: Logits) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (nh, nkv, hd, h) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.hidden_size);
        check_decode_pos(self.kv_len(), pos)?;
        let mut x = vec![0f32; h];
        self.embed.row_into(id, &mut x)?;
        if let Some(s) = self.embed_scale {
            let s = s as f32;
            x.iter_mut().for_each(|v| *v *= s);
        }
        let slopes = match &self.alibi {
            Some(t) => Some(t.to_vec1::<f32>()?),
            None => None,
        };
        let scale = 1.0 / (hd as f32).sqrt();
        let (qw, kw) = (nh * hd, nkv * hd);
        let mut hs = vec![0f32; h];
        let mut ctx = vec![0f32; qw];
        let mut proj = vec![0f32; h];
        let mut qkv = vec![0f32; qw + 2 * kw];
        let mut gu = vec![0f32; 2 * cfg.intermediate_size];
        for layer in &mut self.layers {
            layer.attn_norm.forward_row(&x, &mut hs);
            qkv.resize(layer.qkv.width()?, 0.0);
            layer.qkv.forward_row(&hs, &mut qkv)?;
            let (q, kv) = qkv.split_at_mut(qw);
            let (k, v) = kv.split_at_mut(kw);
            if let Some(rope) = &self.rope {
                rope.apply_row(q, pos)?;
                rope.apply_row(k, pos)?;
            }
            layer.kv.push_row(nkv, hd, k, v)?;
            layer.kv.attend(q, nh, scale, slopes.as_deref(), &mut ctx)?;
            layer.o.forward_row(&ctx, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
            layer.mlp_norm.forward_row(&x, &mut hs);
            gu.resize(layer.gate_up.width()?, 0.0);
            layer.gate_up.forward_row(&hs, &mut gu)?;
            let (gate, up) = gu.split_at_mut(cfg.intermediate_size);
            layers::activate_in_place(gate, cfg.activation)?;
            gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g *= u);
            layer.down.forward_row(gate, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        self.norm.forward_row(&x, &mut hs);
        layers::head_row(&self.lm_head, &hs, cfg.vocab_size, logits)
    }
}

impl CausalLm for Llama {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn forward(&mut self, ids: &[u32], pos: usize, logits: Logits) -> Result<Tensor> {
        check_ids(&self.cfg, ids, pos)?;
        if let [id] = ids {
            return self.decode_step(*id, pos, logits);
        }
        let (nh, nkv, hd) = (self.cfg.num_heads, self.cfg.num_kv_heads, self.cfg.head_dim);
        let t = ids.len();
        let mut x = self.embed.forward(ids)?;
        if let Some(s) = self.embed_scale {
            x = (x * s)?;
        }
        let scale = 1.0 / (hd as f64).sqrt();
        for layer in &mut self.layers {
            let hs = layer.attn_norm.forward(&x)?;
            let qkv = layer.qkv.forward(&hs)?;
            let [q, k, v] = qkv.as_slice() else {
                return Err(crate::error::InferError::Invalid("q/k/v projection lost a part".into()));
            };
            let mut q = layers::split_heads(q, nh, hd)?;
            let mut k = layers::split_heads(k, nkv, hd)?;
            let v = layers::split_heads(v, nkv, hd)?;
            if let Some(rope) = &self.rope {
                q = rope.apply(&q, pos)?;
                k = rope.apply(&k, pos)?;
            }
            let (k, v) = layer.kv.append(&k, &v)?;
            let bias = match &self.alibi {
                Some(s) => Bias::Alibi(s),
                None => Bias::None,
            };
            let ctx = layers::attention(&q, &k, &v, pos, scale, bias)?;
            x = (x + layer.o.forward(&ctx)?)?;
            let hs = layer.mlp_norm.forward(&x)?;
            let gu = layer.gate_up.forward(&hs)?;
            let [gate, up] = gu.as_slice() else {
                return Err(crate::error::InferError::Invalid("gate/up projection lost a part".into()));
            };
            let mlp = layer.down.forward(&(layers::activate(gate, self.cfg.activation)? * up)?)?;
            x = (x + mlp)?;
        }
        let x = match logits {
            Logits::All => x,
            Logits::Last | Logits::Greedy => x.narrow(0, t - 1, 1)?,
        };
        layers::head(&self.lm_head, &self.norm.forward(&x)?, logits)
    }

    fn clear_kv_cache(&mut self) {
        for l in &mut self.layers {
            l.kv.reset();
        }
    }

    fn kv_len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.kv.len())
    }

    fn head(&self) -> &crate::weights::MatrixWeight {
        self.lm_head.weight()
    }
}

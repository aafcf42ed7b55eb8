//! BLOOM (Phoenix's backbone, BLOOMZ-7b1-mt), in candle's model-file style: a LayerNorm right
//! after the word embeddings, ALiBi instead of rotary positions, one fused `query_key_value`
//! projection laid out per head (`[head][q|k|v][head_dim]` rows in Hugging Face checkpoints;
//! llama.cpp's converter regroups it as `[Q; K; V]`), tanh GELU, and an output head tied to the
//! embeddings. Every linear layer inside the blocks has a bias.

use candle_core::{Device, Tensor};

use crate::config::ModelConfig;
use crate::error::Result;
use crate::layers::{self, Bias, Embedding, KvCache, Linear, Norm};
use crate::models::{CausalLm, Logits, check_decode_pos, check_ids};
use crate::weights::WeightSource;

struct Block {
    ln1: Norm,
    qkv: Linear,
    dense: Linear,
    ln2: Norm,
    up: Linear,
    down: Linear,
    kv: KvCache,
}

pub struct Bloom {
    cfg: ModelConfig,
    embed: Embedding,
    embed_norm: Norm,
    blocks: Vec<Block>,
    ln_f: Norm,
    lm_head: Linear,
    slopes: Tensor,
    /// GGUF files hold `[Q; K; V]`; Hugging Face checkpoints interleave per head.
    qkv_blocked: bool,
}

impl Bloom {
    pub fn load(cfg: &ModelConfig, src: &WeightSource) -> Result<Bloom> {
        let h = cfg.hidden_size;
        let eps = cfg.norm_eps;
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
                qkv: Linear::load(src, &format!("{p}.self_attention.query_key_value"), 3 * h, h, true)?,
                dense: Linear::load(src, &format!("{p}.self_attention.dense"), h, h, true)?,
                ln2: Norm::layer(src, &format!("{p}.post_attention_layernorm"), h, eps)?,
                up: Linear::load(src, &format!("{p}.mlp.dense_h_to_4h"), cfg.intermediate_size, h, true)?,
                down: Linear::load(src, &format!("{p}.mlp.dense_4h_to_h"), h, cfg.intermediate_size, true)?,
                kv: KvCache::new(cfg.context_length),
            });
        }
        let head_w = if own_head { src.head_matrix("lm_head.weight", cfg.vocab_size, h)? } else { embed_w.clone() };
        Ok(Bloom {
            cfg: cfg.clone(),
            embed: Embedding::new(embed_w, h),
            embed_norm: Norm::layer(src, "transformer.word_embeddings_layernorm", h, eps)?,
            blocks,
            ln_f: Norm::layer(src, "transformer.ln_f", h, eps)?,
            lm_head: Linear::new(head_w, None),
            slopes: Tensor::from_vec(layers::alibi_slopes(cfg.num_heads), cfg.num_heads, &Device::Cpu)?,
            qkv_blocked: src.is_gguf(),
        })
    }
}

impl Bloom {
    /// One token on plain rows: the decode path (see `Llama::decode_step`).
    fn decode_step(&mut self, id: u32, pos: usize, logits: Logits) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (nh, hd, h) = (cfg.num_heads, cfg.head_dim, cfg.hidden_size);
        check_decode_pos(self.kv_len(), pos)?;
        let mut e = vec![0f32; h];
        self.embed.row_into(id, &mut e)?;
        let mut x = vec![0f32; h];
        self.embed_norm.forward_row(&e, &mut x);
        let slopes = self.slopes.to_vec1::<f32>()?;
        let scale = 1.0 / (hd as f32).sqrt();
        let (mut hs, mut proj, mut ctx) = (vec![0f32; h], vec![0f32; h], vec![0f32; h]);
        let (mut fused, mut q, mut k, mut v) = (vec![0f32; 3 * h], vec![0f32; h], vec![0f32; h], vec![0f32; h]);
        let mut up = vec![0f32; cfg.intermediate_size];
        for b in &mut self.blocks {
            b.ln1.forward_row(&x, &mut hs);
            b.qkv.forward_row(&hs, &mut fused)?;
            if self.qkv_blocked {
                let (fq, rest) = fused.split_at(h);
                let (fk, fv) = rest.split_at(h);
                q.copy_from_slice(fq);
                k.copy_from_slice(fk);
                v.copy_from_slice(fv);
            } else {
                for (head, f) in fused.chunks_exact(3 * hd).enumerate() {
                    let at = head * hd..(head + 1) * hd;
                    q[at.clone()].copy_from_slice(&f[..hd]);
                    k[at.clone()].copy_from_slice(&f[hd..2 * hd]);
                    v[at].copy_from_slice(&f[2 * hd..]);
                }
            }
            b.kv.push_row(nh, hd, &k, &v)?;
            b.kv.attend(&q, nh, scale, Some(&slopes), &mut ctx)?;
            b.dense.forward_row(&ctx, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, p)| *a += p);
            b.ln2.forward_row(&x, &mut hs);
            b.up.forward_row(&hs, &mut up)?;
            layers::activate_in_place(&mut up, cfg.activation)?;
            b.down.forward_row(&up, &mut proj)?;
            x.iter_mut().zip(&proj).for_each(|(a, p)| *a += p);
        }
        self.ln_f.forward_row(&x, &mut hs);
        layers::head_row(&self.lm_head, &hs, cfg.vocab_size, logits)
    }
}

impl CausalLm for Bloom {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn forward(&mut self, ids: &[u32], pos: usize, logits: Logits) -> Result<Tensor> {
        check_ids(&self.cfg, ids, pos)?;
        if let [id] = ids {
            return self.decode_step(*id, pos, logits);
        }
        let (nh, hd) = (self.cfg.num_heads, self.cfg.head_dim);
        let t = ids.len();
        let mut x = self.embed_norm.forward(&self.embed.forward(ids)?)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for b in &mut self.blocks {
            let hs = b.ln1.forward(&x)?;
            let fused = b.qkv.forward(&hs)?;
            let (q, k, v) = if self.qkv_blocked {
                // (t, 3, heads, d): Q of all heads, then K, then V.
                let f = fused.reshape((t, 3, nh, hd))?;
                let part = |i: usize| -> Result<Tensor> { Ok(f.narrow(1, i, 1)?.squeeze(1)?.transpose(0, 1)?) };
                (part(0)?, part(1)?, part(2)?)
            } else {
                // (t, heads, 3, d): q, k, v of head 0, then of head 1, ...
                let f = fused.reshape((t, nh, 3, hd))?;
                let part = |i: usize| -> Result<Tensor> { Ok(f.narrow(2, i, 1)?.squeeze(2)?.transpose(0, 1)?) };
                (part(0)?, part(1)?, part(2)?)
            };
            let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
            let (k, v) = b.kv.append(&k, &v)?;
            let ctx = layers::attention(&q, &k, &v, pos, scale, Bias::Alibi(&self.slopes))?;
            x = (x + b.dense.forward(&ctx)?)?;
            let hs = b.ln2.forward(&x)?;
            let mlp = b.down.forward(&layers::activate(&b.up.forward(&hs)?, self.cfg.activation)?)?;
            x = (x + mlp)?;
        }
        let x = match logits {
            Logits::All => x,
            Logits::Last | Logits::Greedy => x.narrow(0, t - 1, 1)?,
        };
        layers::head(&self.lm_head, &self.ln_f.forward(&x)?, logits)
    }

    fn clear_kv_cache(&mut self) {
        for b in &mut self.blocks {
            b.kv.reset();
        }
    }

    fn kv_len(&self) -> usize {
        self.blocks.first().map_or(0, |b| b.kv.len())
    }

    fn head(&self) -> &crate::weights::MatrixWeight {
        self.lm_head.weight()
    }
}

//! Building blocks shared by the model files: linear layers over dense or quantized weights,
//! embeddings, norms, activations, rotary tables and ALiBi slopes, the KV cache and the
//! attention over it.
//!
//! Activations are 2-D `(rows, features)` f32 tensors, where the rows are the new positions of
//! every sequence of a batch one after another (a prompt is one sequence's rows): everything
//! but attention is row-wise, so one matrix product serves all sequences. Attention works on
//! plain rows against each sequence's own cache ([`attention::attend_batch`]). The decode path
//! (one sequence, one token) works on plain rows throughout (`forward_row`s).

mod act;
pub mod attention;
mod embedding;
mod kv;
mod linear;
mod norm;
mod rope;

use candle_core::{D, Tensor};

pub use act::{activate, activate_in_place};
pub use attention::{Heads, Span, attend_batch, attend_rows, spans};
pub use embedding::Embedding;
pub use kv::KvCache;
pub use linear::{Linear, head_row};
pub use norm::Norm;
pub use rope::{Rope, alibi_slopes};

use crate::error::Result;

/// Row-wise L2 normalization (Baichuan2's head).
pub fn normalize_rows(w: &Tensor) -> Result<Tensor> {
    let norm = w.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(w.broadcast_div(&norm)?)
}

/// The values of a tensor of any shape, in order.
pub fn rows_of(x: &Tensor) -> Result<Vec<f32>> {
    Ok(x.flatten_all()?.to_vec1::<f32>()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::{Device, Tensor};
    use zoo_kernels::ThreadPool;

    use super::*;
    use crate::config::Activation;

    /// Deterministic values in [-1, 1).
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    pub(crate) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// candle's rope kernels (halves or adjacent pairs) on (heads, 1, head_dim) at `pos`.
    fn candle_rope(rope: &Rope, x: &Tensor, pos: usize) -> Tensor {
        let h = rope.half;
        let cos = Tensor::from_slice(&rope.cos_v[pos * h..(pos + 1) * h], (1, h), &Device::Cpu).unwrap();
        let sin = Tensor::from_slice(&rope.sin_v[pos * h..(pos + 1) * h], (1, h), &Device::Cpu).unwrap();
        let x4 = x.unsqueeze(0).unwrap();
        let y = if rope.interleaved {
            candle_nn::rotary_emb::rope_i(&x4, &cos, &sin).unwrap()
        } else {
            candle_nn::rotary_emb::rope(&x4, &cos, &sin).unwrap()
        };
        y.squeeze(0).unwrap()
    }

    #[test]
    fn row_norms_rope_and_activations_equal_candle() {
        let dim = 16;
        let x = values(dim, 7);
        let xt = Tensor::from_slice(&x, (1, dim), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(values(dim, 8), dim, &Device::Cpu).unwrap();
        let b = Tensor::from_vec(values(dim, 9), dim, &Device::Cpu).unwrap();
        let rms = Norm::Rms { w: w.to_vec1().unwrap(), weight: w.clone(), eps: 1e-5 };
        let ln = Norm::Layer { w: w.to_vec1().unwrap(), b: b.to_vec1().unwrap(), weight: w, bias: b, eps: 1e-5 };
        for norm in [rms, ln] {
            let want = norm.forward(&xt).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut got = vec![0f32; dim];
            norm.forward_row(&x, &mut got);
            assert!(max_diff(&got, &want) < 1e-6);
        }
        for interleaved in [false, true] {
            let rope = Rope::new(8, 10000.0, 1.0, 12, interleaved).unwrap();
            let pos = 9;
            let heads = Tensor::from_slice(&x, (2, 1, 8), &Device::Cpu).unwrap();
            let want = candle_rope(&rope, &heads, pos).flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut got = x.clone();
            rope.apply_row(&mut got, pos).unwrap();
            assert!(max_diff(&got, &want) < 1e-6, "interleaved {interleaved}");
            assert!(rope.apply_row(&mut got, 12).is_err(), "past the table");
        }
        for act in [Activation::Silu, Activation::GeluTanh, Activation::Gelu] {
            let x3: Vec<f32> = x.iter().map(|v| v * 3.0).collect();
            let want = activate(&Tensor::from_slice(&x3, dim, &Device::Cpu).unwrap(), act).unwrap().to_vec1().unwrap();
            let mut got = x3;
            activate_in_place(&ThreadPool::new(2), &mut got, act).unwrap();
            assert!(max_diff(&got, &want) < 1e-5, "{act:?}");
        }
    }

    #[test]
    fn alibi_slopes_match_the_bloom_formula() {
        // 8 heads: 2^-1 .. 2^-8.
        let s = alibi_slopes(8);
        let want: Vec<f32> = (1..=8).map(|i| 2f32.powi(-i)).collect();
        assert_eq!(s, want);
        // 6 heads: p = 4 gives 2^-2, 2^-4, 2^-6, 2^-8, then from 8: 2^-1, 2^-3.
        let s = alibi_slopes(6);
        let want = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        assert_eq!(s, want);
        assert_eq!(alibi_slopes(32).len(), 32);
        assert!((alibi_slopes(32)[0] - 2f32.powf(-0.25)).abs() < 1e-7);
    }
}

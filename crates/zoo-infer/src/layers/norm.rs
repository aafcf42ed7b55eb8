//! RMSNorm and LayerNorm, over tensors (prompts, batches) and single rows (the decode path).

use candle_core::Tensor;

use crate::error::Result;
use crate::weights::WeightSource;

/// RMSNorm (LLaMA family) or LayerNorm with bias (BLOOM). The weights are kept both as
/// tensors (prefill) and as plain values (the decode path's [`Norm::forward_row`]).
#[derive(Debug, Clone)]
pub enum Norm {
    Rms { weight: Tensor, w: Vec<f32>, eps: f32 },
    Layer { weight: Tensor, bias: Tensor, w: Vec<f32>, b: Vec<f32>, eps: f32 },
}

impl Norm {
    /// RMSNorm `{name}.weight`; `plus_one`: Gemma's `x * (1 + w)`.
    pub fn rms(src: &WeightSource, name: &str, dim: usize, eps: f64, plus_one: bool) -> Result<Norm> {
        let mut weight = src.tensor(&format!("{name}.weight"), &[dim])?;
        if plus_one {
            weight = (weight + 1.0)?;
        }
        let w = weight.to_vec1::<f32>()?;
        Ok(Norm::Rms { weight, w, eps: eps as f32 })
    }

    pub fn layer(src: &WeightSource, name: &str, dim: usize, eps: f64) -> Result<Norm> {
        let weight = src.tensor(&format!("{name}.weight"), &[dim])?;
        let bias = src.tensor(&format!("{name}.bias"), &[dim])?;
        let (w, b) = (weight.to_vec1::<f32>()?, bias.to_vec1::<f32>()?);
        Ok(Norm::Layer { weight, bias, w, b, eps: eps as f32 })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Norm::Rms { weight, eps, .. } => candle_nn::ops::rms_norm(x, weight, *eps)?,
            Norm::Layer { weight, bias, eps, .. } => candle_nn::ops::layer_norm(x, weight, bias, *eps)?,
        })
    }

    /// One row, `x` → `out`, computed as candle's CPU kernels do (f32 sums).
    pub fn forward_row(&self, x: &[f32], out: &mut [f32]) {
        let n = x.len().max(1) as f32;
        match self {
            Norm::Rms { w, eps, .. } => {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / n;
                let r = (ms + eps).sqrt();
                for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
                    *o = v / r * w;
                }
            }
            Norm::Layer { w, b, eps, .. } => {
                let mean = x.iter().sum::<f32>() / n;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                let r = (var + eps).sqrt();
                for (((o, v), w), b) in out.iter_mut().zip(x).zip(w).zip(b) {
                    *o = (v - mean) / r * w + b;
                }
            }
        }
    }
}

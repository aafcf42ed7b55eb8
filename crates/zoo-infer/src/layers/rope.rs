//! Position information: rotary tables (computed in f32 as transformers does, applied to
//! one row of heads at a time) and ALiBi slopes.

use crate::error::{InferError, Result};

/// Rotary tables: cos and sin of `position × inv_freq`, (positions, head_dim / 2).
#[derive(Debug, Clone)]
pub struct Rope {
    pub(super) cos_v: Vec<f32>,
    pub(super) sin_v: Vec<f32>,
    pub(super) half: usize,
    pub(super) interleaved: bool,
}

impl Rope {
    /// Computed in f32 the way transformers computes its default rope, so logits agree to
    /// float rounding.
    pub fn new(head_dim: usize, theta: f32, scale: f32, positions: usize, interleaved: bool) -> Result<Rope> {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv {
                let a = (p as f32 / scale) * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok(Rope { cos_v: cos, sin_v: sin, half, interleaved })
    }

    /// Rotates one position in place: `x` is (heads × head_dim), computed as candle's `rope`
    /// (halves) or `rope_i` (adjacent pairs) kernels do.
    pub fn apply_row(&self, x: &mut [f32], pos: usize) -> Result<()> {
        let half = self.half;
        let range = pos * half..(pos + 1) * half;
        let (Some(cos), Some(sin)) = (self.cos_v.get(range.clone()), self.sin_v.get(range)) else {
            return Err(InferError::Invalid(format!("rotary tables end before position {pos}")));
        };
        for head in x.chunks_exact_mut(2 * half) {
            if self.interleaved {
                for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * cos[i] - b * sin[i];
                    pair[1] = a * sin[i] + b * cos[i];
                }
            } else {
                let (lo, hi) = head.split_at_mut(half);
                for i in 0..half {
                    let (a, b) = (lo[i], hi[i]);
                    lo[i] = a * cos[i] - b * sin[i];
                    hi[i] = b * cos[i] + a * sin[i];
                }
            }
        }
        Ok(())
    }
}

/// ALiBi slopes for `heads` heads (BLOOM's and Baichuan-13B's formula, also for head counts
/// that are not a power of two).
pub fn alibi_slopes(heads: usize) -> Vec<f32> {
    let p = if heads == 0 { 0 } else { 1usize << (usize::BITS - 1 - heads.leading_zeros()) };
    let base = 2f64.powf(-(2f64.powf(-((p as f64).log2() - 3.0))));
    let mut slopes: Vec<f32> = (1..=p).map(|i| base.powi(i as i32) as f32).collect();
    if p < heads {
        let extra_base = 2f64.powf(-(2f64.powf(-((2.0 * p as f64).log2() - 3.0))));
        let extra = heads - p;
        slopes.extend((0..extra.min(p)).map(|j| extra_base.powi((1 + 2 * j) as i32) as f32));
    }
    slopes
}

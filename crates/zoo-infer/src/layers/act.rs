//! The MLP activations (SiLU, tanh GELU, exact GELU) over tensors and, in place, over rows.

use candle_core::{Device, Tensor};
use zoo_kernels::ThreadPool;

use crate::config::Activation;
use crate::error::Result;

/// The activation of `act` on every value, in place (the decode path), spread over the
/// kernels' pool. The exact GELU goes through candle's `gelu_erf`; SiLU and tanh GELU are
/// computed here by the same formulas.
pub fn activate_in_place(pool: &ThreadPool, x: &mut [f32], act: Activation) -> Result<()> {
    if act == Activation::Gelu {
        let y = Tensor::from_slice(x, x.len(), &Device::Cpu)?.gelu_erf()?.to_vec1::<f32>()?;
        x.copy_from_slice(&y);
        return Ok(());
    }
    let one = |v: &mut f32| {
        let u = *v;
        *v = match act {
            Activation::GeluTanh => {
                // 0.5 u (1 + tanh(y)) = u (1 - 1 / (1 + e^(2y))): one exp instead of tanhf.
                let y = (2.0 / std::f32::consts::PI).sqrt() * (u + 0.044715 * u * u * u);
                u * (1.0 - 1.0 / (1.0 + (2.0 * y).exp()))
            }
            _ => u / (1.0 + (-u).exp()),
        };
    };
    let chunk = x.len().div_ceil(pool.threads()).max(512);
    let parts: Vec<std::sync::Mutex<&mut [f32]>> = x.chunks_mut(chunk).map(std::sync::Mutex::new).collect();
    pool.run(parts.len(), &|i| {
        if let Some(p) = parts.get(i) {
            p.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter_mut().for_each(one);
        }
    });
    Ok(())
}

pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Silu => candle_nn::ops::silu(x)?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Gelu => x.gelu_erf()?,
    })
}

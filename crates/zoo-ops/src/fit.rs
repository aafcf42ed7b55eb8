//! Will it fit? The memory a model needs to run in zoo's runner at each precision, against the
//! memory this machine has free, so a person sees what fits before pulling gigabytes.
//!
//! The estimate is `weights + KV cache + overhead`:
//! - weights: parameters × the bytes per weight of the precision as the runner holds it
//!   (f32 4; f16 and bf16 2, kept as stored; GGML blocks at their size: Q8_0 34 bytes per 32
//!   weights, Q4_1 20, Q4_0 18, Q4_K_M about 4.85 bits per weight, its mix of Q4_K and Q6_K);
//! - KV cache: the runner keeps keys and values in f32, `2 × layers × width × 4` bytes per
//!   position, for [`CONTEXT`] positions (or the model's context when shorter). Without the
//!   model's config the shape comes from the parameter count, as in LLaMA-shaped transformers:
//!   `params ≈ 12 × layers × width²` with `layers ≈ width / 128` (7B: 4,211 wide, 33 layers;
//!   LLaMA-7B is 4,096 and 32). Grouped-query attention makes the real cache smaller, so the
//!   estimate errs on the safe side;
//! - overhead: 5% of the weights plus 64 MiB (activations, tokenizer, buffers).

use serde::Serialize;
use zoo_registry::model::ModelRecord;

/// Positions of KV cache counted (a long chat; the runner grows its cache as needed).
pub const CONTEXT: u64 = 4096;

/// The precisions estimated, as the runner holds them.
pub const PRECISIONS: &[Precision] = &[
    Precision { name: "f32", bits_per_weight: 32.0 },
    Precision { name: "bf16", bits_per_weight: 16.0 },
    Precision { name: "q8_0", bits_per_weight: 8.5 },
    Precision { name: "q4_k_m", bits_per_weight: 4.85 },
    Precision { name: "q4_0", bits_per_weight: 4.5 },
];

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Precision {
    pub name: &'static str,
    pub bits_per_weight: f64,
}

/// One precision of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    pub precision: &'static str,
    pub weights_bytes: u64,
    pub kv_bytes: u64,
    /// Weights, KV cache and overhead.
    pub total_bytes: u64,
    /// `None` when the free memory is unknown.
    pub fits: Option<bool>,
}

/// Every precision of a model with `params` parameters; empty when the size is unknown.
pub fn estimate(params: Option<f64>, context_length: Option<i64>, available: Option<u64>) -> Vec<Fit> {
    let Some(p) = params.filter(|p| p.is_finite() && *p > 0.0) else { return Vec::new() };
    let width = (p * 128.0 / 12.0).cbrt();
    let layers = (width / 128.0).max(1.0);
    let positions = context_length.filter(|&c| c > 0).map_or(CONTEXT, |c| (c as u64).min(CONTEXT));
    let kv_bytes = (2.0 * layers * width * 4.0 * positions as f64) as u64;
    PRECISIONS
        .iter()
        .map(|pr| {
            let weights_bytes = (p * pr.bits_per_weight / 8.0) as u64;
            let total_bytes = weights_bytes + kv_bytes + weights_bytes / 20 + (64 << 20);
            Fit { precision: pr.name, weights_bytes, kv_bytes, total_bytes, fits: available.map(|a| total_bytes <= a) }
        })
        .collect()
}

/// [`estimate`] for a catalog model (parameters in billions there).
pub fn for_model(m: &ModelRecord, available: Option<u64>) -> Vec<Fit> {
    let all = estimate(m.params.map(|b| b * 1e9), m.context_length, available);
    match (&m.quantization, m.kind.as_str()) {
        // A GPTQ release runs at its own precision only: its bits plus a scale and zero
        // (16 bits each) per group.
        (Some(q), _) if q.bits > 0 => {
            let group = q.group_size.filter(|&g| g > 0).unwrap_or(128) as f64;
            let bits = q.bits as f64 + 32.0 / group;
            let Some(base) = all.first() else { return Vec::new() };
            let params = m.params.unwrap_or(0.0) * 1e9;
            let weights_bytes = (params * bits / 8.0) as u64;
            let total_bytes = weights_bytes + base.kv_bytes + weights_bytes / 20 + (64 << 20);
            vec![Fit {
                precision: if q.bits == 4 {
                    "int4"
                } else if q.bits == 8 {
                    "int8"
                } else {
                    "quantized"
                },
                weights_bytes,
                kv_bytes: base.kv_bytes,
                total_bytes,
                fits: available.map(|a| total_bytes <= a),
            }]
        }
        // A GGUF release of quantized files: only block types, not full precision.
        (None, "quantized") => all.into_iter().filter(|f| f.precision.starts_with('q')).collect(),
        _ => all,
    }
}

/// The most precise of `fits` that fits, if any fits.
pub fn best(fits: &[Fit]) -> Option<&Fit> {
    fits.iter().find(|f| f.fits == Some(true))
}

/// The memory free for a new process: `MemAvailable` of `/proc/meminfo` (Linux); `None` elsewhere.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LLaMA-7B (6.74e9 parameters, 32 layers × 4096 wide): bf16 weights 13.5 GB and an f32 KV
    /// cache of 2 × 32 × 4096 × 4 = 1 MiB per position, 4 GiB at 4096; the estimate's shape
    /// (33 × 4,180) is within 6% of that.
    #[test]
    fn llama_7b_is_about_right() {
        let fits = estimate(Some(6.74e9), Some(4096), Some(16 << 30));
        let bf16 = fits.iter().find(|f| f.precision == "bf16").unwrap();
        assert_eq!(bf16.weights_bytes, 13_480_000_000);
        let real_kv = 2.0 * 32.0 * 4096.0 * 4.0 * 4096.0;
        assert!((bf16.kv_bytes as f64 / real_kv - 1.0).abs() < 0.06, "{}", bf16.kv_bytes);
        // 13.5 GB + 4.3 GB + overhead does not fit 16 GiB; Q4_0's 3.8 GB + 4.3 GB does.
        assert_eq!(bf16.fits, Some(false));
        assert_eq!(best(&fits).unwrap().precision, "q8_0");
        let q4 = fits.iter().find(|f| f.precision == "q4_0").unwrap();
        assert_eq!(q4.weights_bytes, 3_791_250_000);
    }

    #[test]
    fn short_contexts_unknown_sizes_and_memory() {
        let long = estimate(Some(1e9), None, None);
        let short = estimate(Some(1e9), Some(512), None);
        assert!((short[0].kv_bytes * 8).abs_diff(long[0].kv_bytes) < 8);
        assert!(long.iter().all(|f| f.fits.is_none()));
        assert!(estimate(None, None, Some(1)).is_empty());
        assert!(estimate(Some(f64::NAN), None, Some(1)).is_empty());
        assert!(best(&estimate(Some(7e10), None, Some(1 << 30))).is_none());
    }

    /// Phoenix's GPTQ int4 release (7.07B parameters, group 128): 4.25 bits a weight, 3.76 GB,
    /// and nothing else; a GGUF release only at block types.
    #[test]
    fn quantized_releases_fit_at_their_own_precision() {
        let q = zoo_registry::model::Quantization {
            method: "gptq".into(),
            bits: 4,
            group_size: Some(128),
            desc_act: None,
            damp_percent: None,
            format: None,
        };
        let m =
            ModelRecord { params: Some(7.07), kind: "quantized".into(), quantization: Some(q), ..Default::default() };
        let fits = for_model(&m, Some(8 << 30));
        assert_eq!(fits.len(), 1);
        assert_eq!(fits[0].precision, "int4");
        assert_eq!(fits[0].weights_bytes, (7.07e9 * 4.25 / 8.0) as u64);
        let m = ModelRecord { params: Some(7.0), kind: "quantized".into(), ..Default::default() };
        let names: Vec<_> = for_model(&m, None).iter().map(|f| f.precision).collect();
        assert_eq!(names, ["q8_0", "q4_k_m", "q4_0"]);
    }

    #[test]
    fn reads_mem_available() {
        let text = "MemTotal:       24608768 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_meminfo(text), Some(20_000_000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|b| b > 0));
        }
    }
}

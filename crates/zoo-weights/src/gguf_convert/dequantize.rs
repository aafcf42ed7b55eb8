//! GGUF → Hugging Face folder: names, q/k permutation and fused QKV undone for known
//! architectures (Baichuan's q, k, v stacked back into `W_pack`), `config.json` from the
//! hyper-parameters, `tokenizer.json` for `gpt2` vocabularies.

use std::path::Path;

use zoo_progress::{CancelToken, Event, Progress, Unit};

use super::arch::{Arch, hf_config, meta_u64};
use super::reorder::Reorder;
use super::{MAX_TENSOR_BYTES, decode, encode};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::dtype::{Dtype, GgmlType};
use crate::error::{Result, WeightsError};
use crate::gguf::MetaValue;
use crate::safetensors::TensorSpec;
use crate::writer::{SafetensorsWriter, WriteOptions, WriteReport};

/// Writes the GGUF file `input` as a Hugging Face folder `dest` with tensors in `dtype`
/// (`F32`, `F16` or `BF16`): names, q/k permutation and fused QKV undone for known
/// architectures, `config.json` from the hyper-parameters, `tokenizer.json` for `gpt2` vocabularies.
pub fn dequantize(
    input: &Path,
    dest: &Path,
    dtype: Dtype,
    options: &WriteOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<WriteReport> {
    if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
        return Err(WeightsError::UnsupportedDtype { tensor: "*".into(), dtype, op: "dequantize output" });
    }
    let ck = Checkpoint::open(input)?;
    let Some(g) = ck.gguf() else {
        return Err(WeightsError::UnknownFormat { path: input.into(), reason: "not a GGUF file".into() });
    };
    let arch_name = g.get("general.architecture").and_then(MetaValue::as_str).unwrap_or_default().to_string();
    let arch = Arch::from_gguf(&arch_name);
    let heads = |key: &str| meta_u64(&ck, &format!("{arch_name}.{key}")).unwrap_or(1) as usize;
    let (n_head, n_kv) = (heads("attention.head_count"), heads("attention.head_count_kv"));
    // Each output tensor: its HF name and the GGUF tensors stacked by rows to make it (one,
    // except Baichuan's W_pack = [q; k; v]).
    type Planned = (String, Vec<u64>, Vec<(TensorInfo, Reorder)>);
    let mut plan: Vec<Planned> = Vec::new();
    for t in ck.tensors() {
        let (name, reorder) = match arch {
            None => (t.name.clone(), Reorder::None),
            // A tied BLOOM output is the embedding again.
            Some(Arch::Bloom) if t.name == "output.weight" => continue,
            Some(Arch::Baichuan) if t.name.starts_with("blk.") && t.name.ends_with(".attn_q.weight") => {
                let stem = t.name.trim_end_matches(".attn_q.weight");
                let (Some(k), Some(v)) =
                    (ck.get(&format!("{stem}.attn_k.weight")), ck.get(&format!("{stem}.attn_v.weight")))
                else {
                    return Err(WeightsError::InvalidOutput {
                        reason: format!("`{}` without its attn_k/attn_v", t.name),
                    });
                };
                let layer = stem.trim_start_matches("blk.");
                let mut shape = t.shape.clone();
                if let (Some(r), Some(kr), Some(vr)) = (shape.first_mut(), k.shape.first(), v.shape.first()) {
                    *r += kr + vr;
                }
                plan.push((
                    format!("model.layers.{layer}.self_attn.W_pack.weight"),
                    shape,
                    vec![
                        (t.clone(), Reorder::Rope { n_head }),
                        (k.clone(), Reorder::Rope { n_head: n_kv }),
                        (v.clone(), Reorder::None),
                    ],
                ));
                continue;
            }
            Some(Arch::Baichuan) if t.name.ends_with(".attn_k.weight") || t.name.ends_with(".attn_v.weight") => {
                continue;
            }
            Some(a) => {
                // Tensors llama.cpp adds (e.g. `rope_freqs.weight`) keep their GGUF name.
                let Some(h) = a.to_hf(&t.name) else {
                    progress.event(Event::Note {
                        message: format!("`{}` has no Hugging Face name for {}; kept as it is", t.name, a.name()),
                    });
                    plan.push((t.name.clone(), t.shape.clone(), vec![(t.clone(), Reorder::None)]));
                    continue;
                };
                let r = Reorder::of(a, &t.name, n_head, n_kv);
                (h, r)
            }
        };
        plan.push((name, t.shape.clone(), vec![(t.clone(), reorder)]));
    }
    let specs = plan.iter().map(|(n, shape, _)| TensorSpec { name: n.clone(), dtype, shape: shape.clone() }).collect();
    let mut w = SafetensorsWriter::create(dest, specs, options)?;
    let task = "dequantize";
    progress.event(Event::Start { task: task.into(), total: Some(plan.len() as u64), unit: Unit::Items });
    for (_, _, sources) in &plan {
        if cancel.is_cancelled() {
            return Err(WeightsError::Cancelled);
        }
        let mut out = Vec::new();
        for (t, reorder) in sources {
            let bytes = ck.read_to_vec(t, MAX_TENSOR_BYTES)?;
            let n = crate::dtype::numel(&t.shape).unwrap_or(0) as usize;
            let ty = match t.dtype {
                Dtype::Ggml(g) => g,
                Dtype::F32 => GgmlType::F32,
                Dtype::F16 => GgmlType::F16,
                Dtype::BF16 => GgmlType::BF16,
                other => {
                    return Err(WeightsError::UnsupportedDtype {
                        tensor: t.name.clone(),
                        dtype: other,
                        op: "dequantize",
                    });
                }
            };
            let x = decode(&t.name, ty, &bytes, n)?;
            let rows = t.shape.first().copied().unwrap_or(1).max(1) as usize;
            let x = reorder.apply(x, rows, true);
            let ggml = match dtype {
                Dtype::F16 => GgmlType::F16,
                Dtype::BF16 => GgmlType::BF16,
                _ => GgmlType::F32,
            };
            out.extend(encode(ggml, &x, 1, 1)?);
        }
        w.write(&out)?;
        progress.event(Event::Advance { task: task.into(), delta: 1 });
    }
    if let Some(a) = arch {
        let cfg = hf_config(a, &ck, dtype);
        w.add_bytes("config.json", &serde_json::to_vec_pretty(&cfg).unwrap_or_default())?;
    }
    if let Some((tok, tcfg)) = crate::gguf_vocab::tokenizer_json_from_metadata(&g.metadata) {
        w.add_bytes("tokenizer.json", &serde_json::to_vec(&tok).unwrap_or_default())?;
        w.add_bytes("tokenizer_config.json", &serde_json::to_vec_pretty(&tcfg).unwrap_or_default())?;
    }
    let report = w.finish()?;
    progress.event(Event::Finish { task: task.into() });
    Ok(report)
}

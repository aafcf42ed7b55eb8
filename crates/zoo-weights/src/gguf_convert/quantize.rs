//! Hugging Face folder (or, with `--raw`, any safetensors/`.bin` file) → GGUF: the tensor
//! plan, the type policy ([`pick_type`], llama-quantize's Q4_K_M mix and fallbacks), and the
//! pipeline (a reader thread prepares the next tensor while this one is quantized and written).

use std::path::{Path, PathBuf};

use serde_json::Value;
use zoo_progress::{CancelToken, Event, Progress, Unit};

use super::arch::{Arch, arch_metadata, cfg_u64};
use super::reorder::Reorder;
use super::{MAX_TENSOR_BYTES, OutType, QuantizeOptions, QuantizeReport, TensorReport, decode, encode};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::dtype::{Dtype, GgmlType};
use crate::error::{Result, WeightsError, io_err};
use crate::gguf::MetaValue;
use crate::gguf_write::{GgufTensorSpec, GgufWriter};
use crate::kernels;
use crate::quant::QuantType;

/// llama.cpp's `use_more_bits(i, n)`: the first and last eighth of layers and every third one
/// in between.
fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type of one tensor and, when the row length forced a change, why.
fn pick_type(out: OutType, name: &str, shape: &[u64], n_layer: usize) -> (GgmlType, Option<String>) {
    let row = shape.last().copied().unwrap_or(1);
    if shape.len() < 2 {
        return (GgmlType::F32, None);
    }
    let wanted = match out {
        OutType::F32 => return (GgmlType::F32, None),
        OutType::F16 => return (GgmlType::F16, None),
        OutType::BF16 => return (GgmlType::BF16, None),
        OutType::Pure(q) => q,
        OutType::Q4KM | OutType::Q5KM => {
            let layer = name.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|i| i.parse().ok());
            let more = layer.is_some_and(|i| use_more_bits(i, n_layer));
            // llama.cpp files BLOOM's fused `attn_qkv` under attn_v (`category_is_attn_v`), and
            // that branch comes first: its Q5_K branch for `attn_qkv` is never reached.
            let attn_v = name.ends_with(".attn_v.weight") || name.ends_with(".attn_qkv.weight");
            if name == "output.weight" || (more && (attn_v || name.ends_with(".ffn_down.weight"))) {
                QuantType::Q6K
            } else if out == OutType::Q5KM {
                QuantType::Q5K
            } else {
                QuantType::Q4K
            }
        }
    };
    if row.is_multiple_of(wanted.block_size() as u64) {
        return (wanted.ggml_type(), None);
    }
    // llama-quantize's fallbacks for k-quants; anything that still does not fit becomes F16.
    let second = match wanted {
        QuantType::Q4K => Some(QuantType::Q5_0),
        QuantType::Q5K => Some(QuantType::Q5_1),
        QuantType::Q6K => Some(QuantType::Q8_0),
        _ => None,
    };
    let (ty, to) = match second {
        Some(s) if row.is_multiple_of(s.block_size() as u64) => (s.ggml_type(), s.name()),
        _ => (GgmlType::F16, "F16"),
    };
    (ty, Some(format!("row of {row} is not a multiple of {wanted}'s block of {}: {to}", wanted.block_size())))
}

/// Reads a float tensor of any width into f32.
fn read_f32(ck: &Checkpoint, t: &TensorInfo) -> Result<Vec<f32>> {
    if !matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64) {
        return Err(WeightsError::UnsupportedDtype { tensor: t.name.clone(), dtype: t.dtype, op: "quantize" });
    }
    if t.byte_len > MAX_TENSOR_BYTES {
        return Err(WeightsError::TensorTooLarge {
            tensor: t.name.clone(),
            byte_len: t.byte_len,
            limit: MAX_TENSOR_BYTES,
        });
    }
    let n = crate::dtype::numel(&t.shape).unwrap_or(0) as usize;
    let width = t.dtype.size().unwrap_or(4).max(1) as usize;
    // Read in 4 MiB pieces straight into the f32 buffer: no tensor-sized byte copy to allocate,
    // fault in and free for every tensor.
    let mut out = vec![0f32; n];
    let mut buf = vec![0u8; (4 << 20) / width * width];
    let (mut offset, mut done) = (0u64, 0usize);
    while done < n {
        let got = ck.read_chunk(t, offset, &mut buf)?;
        if got == 0 {
            break;
        }
        let dst = out.get_mut(done..).unwrap_or_default();
        let converted = kernels::to_f32(t.dtype, buf.get(..got).unwrap_or_default(), dst);
        done += converted;
        offset += got as u64;
    }
    if done != n {
        return Err(WeightsError::InvalidOutput { reason: format!("tensor `{}`: read {done} of {n} values", t.name) });
    }
    Ok(out)
}

/// One tensor to convert.
struct Item {
    gguf: String,
    source: TensorInfo,
    /// `Some((k, n))`: only the k-th of n equal row blocks of `source` (Baichuan's `W_pack`).
    part: Option<(usize, usize)>,
    reorder: Reorder,
    ty: GgmlType,
    fallback: Option<String>,
}

fn read_config(dir: &Path) -> Result<Value> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(io_err(&p, "read"))?;
    serde_json::from_str(&text)
        .map_err(|e| WeightsError::BadModelFile { path: p, reason: format!("not valid JSON: {e}") })
}

/// Converts `input` (an HF folder, or with `raw` any safetensors/.bin file) into the GGUF file
/// `dest`.
pub fn quantize(
    input: &Path,
    dest: &Path,
    opts: &QuantizeOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<QuantizeReport> {
    let ck = Checkpoint::open(input)?;
    let mut md: Vec<(String, MetaValue)> = Vec::new();
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    let arch = if opts.raw {
        md.push(("general.architecture".into(), MetaValue::String("raw".into())));
        for t in ck.tensors() {
            // GGUF has no unsigned or boolean tensor types; such tensors are left out, named.
            if !matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64) {
                skipped.push(t.name.clone());
                continue;
            }
            let (mut ty, mut fallback) = pick_type(opts.out_type, &t.name, &t.shape, 0);
            // Raw mode promises "quantized as it is, or f32": no second-choice block type.
            if fallback.is_some() {
                ty = GgmlType::F32;
                fallback = fallback.map(|f| format!("{}: F32 (--raw)", f.rsplit_once(':').map_or(f.as_str(), |x| x.0)));
            }
            items.push(Item {
                gguf: t.name.clone(),
                source: t.clone(),
                part: None,
                reorder: Reorder::None,
                ty,
                fallback,
            });
        }
        None
    } else {
        let dir: PathBuf = if input.is_dir() { input.into() } else { ck.folder().into() };
        let cfg = read_config(&dir)?;
        let arch = Arch::from_config(&cfg, &dir)?;
        let n_layer = cfg_u64(&cfg, &["num_hidden_layers", "n_layer"]).unwrap_or(0) as usize;
        let n_head = cfg_u64(&cfg, &["num_attention_heads", "n_head"]).unwrap_or(1) as usize;
        let n_kv = cfg_u64(&cfg, &["num_key_value_heads"]).unwrap_or(n_head as u64) as usize;
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("model").to_string();
        md.push(("general.architecture".into(), MetaValue::String(arch.name().into())));
        md.push(("general.name".into(), MetaValue::String(name)));
        md.extend(arch_metadata(arch, &cfg));
        md.push(("general.file_type".into(), MetaValue::U32(opts.out_type.file_type())));
        md.push(("general.quantization_version".into(), MetaValue::U32(2)));
        md.extend(crate::gguf_vocab::metadata_from_folder(&dir, &cfg)?);
        // Baichuan2's NormHead (its configs carry `z_loss_weight`; vocabulary 125696), as the
        // runner detects it.
        let norm_head = arch == Arch::Baichuan
            && (cfg.get("z_loss_weight").is_some() || cfg_u64(&cfg, &["vocab_size"]) == Some(125_696));
        for t in ck.tensors() {
            // Baichuan's W_pack is [Q; K; V] by rows: three GGUF tensors, as llama.cpp's
            // converter writes them.
            if arch == Arch::Baichuan
                && let Some(layer) =
                    t.name.strip_prefix("model.layers.").and_then(|r| r.strip_suffix(".self_attn.W_pack.weight"))
                && layer.parse::<usize>().is_ok()
            {
                let (rows, cols) = match t.shape.as_slice() {
                    [r, c] => (*r, *c),
                    _ => (0, 0),
                };
                if rows == 0 || rows % 3 != 0 {
                    return Err(WeightsError::InvalidOutput {
                        reason: format!("`{}`: shape {:?} is not [3 x hidden, hidden]", t.name, t.shape),
                    });
                }
                for (k, part) in ["attn_q", "attn_k", "attn_v"].iter().enumerate() {
                    let g = format!("blk.{layer}.{part}.weight");
                    let mut src = t.clone();
                    src.shape = vec![rows / 3, cols];
                    let reorder = Reorder::of(arch, &g, n_head, n_kv);
                    let (ty, fallback) = pick_type(opts.out_type, &g, &src.shape, n_layer);
                    items.push(Item { gguf: g, source: src, part: Some((k, 3)), reorder, ty, fallback });
                }
                continue;
            }
            let Some(g) = arch.to_gguf(&t.name) else {
                skipped.push(t.name.clone());
                continue;
            };
            let reorder =
                if norm_head && g == "output.weight" { Reorder::NormRows } else { Reorder::of(arch, &g, n_head, n_kv) };
            let (ty, fallback) = pick_type(opts.out_type, &g, &t.shape, n_layer);
            items.push(Item { gguf: g, source: t.clone(), part: None, reorder, ty, fallback });
        }
        // BLOOM ties the output to the embeddings; llama.cpp stores the copy.
        if arch == Arch::Bloom
            && !items.iter().any(|i| i.gguf == "output.weight")
            && let Some(e) = items.iter().find(|i| i.gguf == "token_embd.weight")
        {
            let (ty, fallback) = pick_type(opts.out_type, "output.weight", &e.source.shape, n_layer);
            items.push(Item {
                gguf: "output.weight".into(),
                source: e.source.clone(),
                part: None,
                reorder: Reorder::None,
                ty,
                fallback,
            });
        }
        Some(arch.name().to_string())
    };
    let mut specs = Vec::with_capacity(items.len());
    for it in &items {
        let dims: Vec<u64> = it.source.shape.iter().rev().copied().collect();
        let byte_len = Dtype::Ggml(it.ty).byte_size(&it.source.shape).ok_or_else(|| WeightsError::InvalidOutput {
            reason: format!("tensor `{}`: shape {:?} does not fit {}", it.gguf, it.source.shape, it.ty),
        })?;
        specs.push(GgufTensorSpec { name: it.gguf.clone(), dims, ggml_type: it.ty, byte_len });
    }
    let mut w = GgufWriter::create(dest, &md, specs, opts.overwrite)?;
    let task = "quantize";
    progress.event(Event::Start { task: task.into(), total: Some(items.len() as u64), unit: Unit::Items });
    let mut reports = Vec::with_capacity(items.len());
    // A reader thread prepares the next tensor (read, convert to f32, reorder) while this one
    // is quantized and written: reading is serial, quantizing is parallel over rows, and
    // overlapping them keeps both cores busy. At most one tensor waits in the channel, so peak
    // memory stays at about three tensors.
    let prepare = |it: &Item| -> Result<Vec<f32>> {
        let x = match it.part {
            None => read_f32(&ck, &it.source)?,
            Some((k, n)) => {
                // The source's shape was narrowed to one part; read the whole tensor, keep it.
                let whole = ck.get(&it.source.name).unwrap_or(&it.source);
                let all = read_f32(&ck, whole)?;
                let len = all.len() / n.max(1);
                all.get(k * len..(k + 1) * len).map(<[f32]>::to_vec).unwrap_or_default()
            }
        };
        let rows = it.source.shape.first().copied().unwrap_or(1) as usize;
        Ok(it.reorder.apply(x, rows.max(1), false))
    };
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<f32>>>(1);
        let items_ref = &items;
        let prepare = &prepare;
        scope.spawn(move || {
            for it in items_ref {
                if cancel.is_cancelled() {
                    break;
                }
                let r = prepare(it);
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    break;
                }
            }
        });
        for it in &items {
            if cancel.is_cancelled() {
                return Err(WeightsError::Cancelled);
            }
            let x = match rx.recv() {
                Ok(r) => r?,
                Err(_) => return Err(WeightsError::Cancelled),
            };
            let row = it.source.shape.last().copied().unwrap_or(1).max(1) as usize;
            let bytes = encode(it.ty, &x, row, opts.threads)?;
            let (mut rmse, mut max_err) = (None, None);
            if opts.measure {
                let back = decode(&it.gguf, it.ty, &bytes, x.len())?;
                let (mut sq, mut mx) = (0f64, 0f64);
                for (a, b) in x.iter().zip(&back) {
                    let d = (f64::from(*a) - f64::from(*b)).abs();
                    sq += d * d;
                    mx = mx.max(d);
                }
                rmse = Some((sq / x.len().max(1) as f64).sqrt());
                max_err = Some(mx);
            }
            w.write(&bytes)?;
            progress.event(Event::Advance { task: task.into(), delta: 1 });
            reports.push(TensorReport {
                name: it.gguf.clone(),
                source: it.source.name.clone(),
                ggml_type: it.ty,
                shape: it.source.shape.clone(),
                fallback: it.fallback.clone(),
                rmse,
                max_err,
            });
        }
        Ok(())
    })?;
    let write = w.finish()?;
    progress.event(Event::Finish { task: task.into() });
    Ok(QuantizeReport { arch, write, tensors: reports, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_m_mix_and_fallbacks() {
        let t = |name: &str, shape: &[u64]| pick_type(OutType::Q4KM, name, shape, 32).0;
        assert_eq!(t("output.weight", &[100, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.0.attn_v.weight", &[256, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.6.attn_v.weight", &[256, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.5.attn_v.weight", &[256, 256]), GgmlType::Q4_K);
        assert_eq!(t("blk.4.attn_v.weight", &[256, 256]), GgmlType::Q4_K);
        assert_eq!(t("blk.31.ffn_down.weight", &[256, 512]), GgmlType::Q6_K);
        assert_eq!(t("blk.4.attn_q.weight", &[256, 256]), GgmlType::Q4_K);
        assert_eq!(t("blk.4.attn_q.weight", &[64, 64]), GgmlType::Q5_0);
        assert_eq!(t("output.weight", &[64, 64]), GgmlType::Q8_0);
        assert_eq!(t("blk.4.ffn_down.weight", &[64, 176]), GgmlType::F16);
        assert_eq!(t("blk.4.attn_norm.weight", &[64]), GgmlType::F32);
        // BLOOM's fused QKV follows attn_v's rule, as llama-quantize does (checked on tiny-bloom).
        assert_eq!(t("blk.0.attn_qkv.weight", &[768, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.6.attn_qkv.weight", &[768, 256]), GgmlType::Q6_K);
        assert_eq!(t("blk.5.attn_qkv.weight", &[768, 256]), GgmlType::Q4_K);
        assert_eq!(t("blk.5.attn_qkv.weight", &[192, 64]), GgmlType::Q5_0);
        assert_eq!(t("blk.6.attn_qkv.weight", &[192, 64]), GgmlType::Q8_0);
        assert_eq!(pick_type(OutType::Pure(QuantType::Q4_0), "w", &[2, 48], 0).0, GgmlType::F16);
        // Q5_K_M: the same Q6_K tensors as Q4_K_M, Q5_K instead of Q4_K, the same fallbacks
        // (checked against llama-quantize's Q5_K_M of the 7B-shaped model, bench/speed-matrix.sh).
        let t5 = |name: &str, shape: &[u64]| pick_type(OutType::Q5KM, name, shape, 32).0;
        assert_eq!(t5("output.weight", &[100, 256]), GgmlType::Q6_K);
        assert_eq!(t5("blk.0.attn_v.weight", &[256, 256]), GgmlType::Q6_K);
        assert_eq!(t5("blk.5.attn_v.weight", &[256, 256]), GgmlType::Q5_K);
        assert_eq!(t5("blk.31.ffn_down.weight", &[256, 512]), GgmlType::Q6_K);
        assert_eq!(t5("blk.4.attn_q.weight", &[256, 256]), GgmlType::Q5_K);
        assert_eq!(t5("blk.4.attn_q.weight", &[64, 64]), GgmlType::Q5_1);
        assert_eq!(OutType::from_name("Q5_K_M"), Some(OutType::Q5KM));
        // Pure Q5_K falls back as llama-quantize does: Q5_1, then F16.
        let q5 = |shape: &[u64]| pick_type(OutType::Pure(QuantType::Q5K), "blk.0.ffn_down.weight", shape, 2).0;
        assert_eq!(q5(&[64, 256]), GgmlType::Q5_K);
        assert_eq!(q5(&[576, 576]), GgmlType::Q5_1);
        assert_eq!(q5(&[64, 176]), GgmlType::F16);
        assert_eq!(OutType::from_name("Q5_K").map(OutType::file_type), Some(16));
    }
}

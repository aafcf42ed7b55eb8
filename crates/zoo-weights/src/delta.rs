//! Delta weights: `apply` (target = delta + base) under the FastChat, LLM Zoo and HuatuoGPT
//! rules, and `make` (delta = target − base).
//!
//! Both run in two passes. Planning reads only headers and checks every tensor (names,
//! dtypes, shapes) before anything is written, so a mismatch stops with nothing on disk.
//! Execution then streams each tensor in fixed-size chunks through positioned reads, the
//! arithmetic kernels and the atomic shard writer: peak memory is a few chunk buffers, however
//! large the checkpoint or any one tensor.

use std::path::{Path, PathBuf};

use zoo_progress::{CancelToken, Event, Progress, Unit};

use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::dtype::Dtype;
use crate::error::{Result, WeightsError};
use crate::kernels::{self, Op};
use crate::safetensors::TensorSpec;
use crate::writer::{SafetensorsWriter, WriteOptions, WriteReport};

/// Side files copied from the delta (apply) or target (make) folder when present.
pub const SIDE_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
];

/// How a delta is combined with its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Pick from the checkpoints, see [`detect_algorithm`].
    Auto,
    /// FastChat v1.1 / LLaVA: target = delta + base; where the delta's `embed_tokens` or
    /// `lm_head` has more rows, the base is added into the top rows and the extra rows stay.
    Fastchat,
    /// LLM Zoo `tools/apply_delta.py` (FastChat v0): the base vocabulary is padded with zero
    /// rows, then added. Equal to `Fastchat` except that a `-0.0` in an extra row becomes `+0.0`.
    Llmzoo,
    /// HuatuoGPT: `embed_tokens`, `lm_head.weight` and `rotary_emb.inv_freq` are the delta's
    /// tensors unchanged; every other tensor gets the base added.
    Huatuo,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Auto => "auto",
            Algorithm::Fastchat => "fastchat",
            Algorithm::Llmzoo => "llmzoo",
            Algorithm::Huatuo => "huatuo",
        }
    }

    /// Parses `auto`, `fastchat`, `llmzoo` or `huatuo` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Some(Algorithm::Auto),
            "fastchat" => Some(Algorithm::Fastchat),
            "llmzoo" => Some(Algorithm::Llmzoo),
            "huatuo" => Some(Algorithm::Huatuo),
            _ => None,
        }
    }
}

/// Knobs for [`apply`] and [`make`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaOptions {
    pub write: WriteOptions,
    /// Bytes per streamed chunk (rounded down to a multiple of 8, at least 4 KiB).
    pub chunk_size: usize,
    /// Threads for the arithmetic of one chunk.
    pub threads: usize,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions { write: WriteOptions::default(), chunk_size: 8 << 20, threads: 2 }
    }
}

/// What happens to one output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `primary op other` over the whole tensor (same shapes).
    Combine,
    /// `primary op other` over the first `rows` rows (the other side's rows); the primary's
    /// extra rows are copied, or with `pad_zero` get `+ 0.0` (LLM Zoo's zero padding).
    CombineTopRows { rows: u64, pad_zero: bool },
    /// The primary's tensor unchanged.
    Copy,
}

/// One output tensor of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub action: Action,
}

/// A checked plan: what will be written, and what is dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The algorithm after resolving `Auto` (for `make`, `Fastchat`).
    pub algorithm: Algorithm,
    /// Why `Auto` chose it (empty when the caller chose).
    pub reason: String,
    /// In output order (the primary checkpoint's tensor order).
    pub items: Vec<PlanItem>,
    /// `rotary_emb.inv_freq` buffers present on one side only.
    pub dropped: Vec<String>,
    op: Op,
}

impl Plan {
    /// Bytes of tensor data the plan writes.
    pub fn output_bytes(&self) -> u64 {
        self.items.iter().filter_map(|i| i.dtype.byte_size(&i.shape)).fold(0, u64::saturating_add)
    }
}

/// The outcome of [`apply`] or [`make`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaReport {
    pub algorithm: Algorithm,
    pub reason: String,
    pub dropped: Vec<String>,
    /// Side files copied (config, tokenizer ...).
    pub copied_files: Vec<String>,
    pub write: WriteReport,
}

fn is_inv_freq(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

fn is_vocab_matrix(name: &str) -> bool {
    name.ends_with("embed_tokens.weight") || name.ends_with("lm_head.weight")
}

fn huatuo_takes_delta(name: &str) -> bool {
    name.contains("embed_tokens") || name.contains("lm_head.weight") || name.contains("rotary_emb.inv_freq")
}

fn mismatch(
    name: &str,
    base: &TensorInfo,
    (other_name, other): (&'static str, &TensorInfo),
    reason: &'static str,
) -> WeightsError {
    WeightsError::DeltaMismatch {
        tensor: name.into(),
        base_dtype: base.dtype,
        base_shape: base.shape.clone(),
        other: other_name,
        other_dtype: other.dtype,
        other_shape: other.shape.clone(),
        reason,
    }
}

/// Checks dtypes and shapes of a tensor present on both sides and picks its action.
/// `primary` is the delta (apply) or the target (make); `other` is the base.
fn match_pair(
    name: &str,
    primary_name: &'static str,
    primary: &TensorInfo,
    other: &TensorInfo,
    pad_zero: bool,
) -> Result<Action> {
    if primary.dtype != other.dtype {
        return Err(mismatch(name, other, (primary_name, primary), "dtypes differ"));
    }
    if !kernels::supports(primary.dtype) {
        return Err(WeightsError::UnsupportedDtype {
            tensor: name.into(),
            dtype: primary.dtype,
            op: "delta arithmetic",
        });
    }
    if primary.shape == other.shape {
        return Ok(Action::Combine);
    }
    let grows = match (primary.shape.split_first(), other.shape.split_first()) {
        (Some((pr, prest)), Some((or, orest))) => prest == orest && pr > or,
        _ => false,
    };
    if is_vocab_matrix(name) && grows {
        let rows = other.shape.first().copied().unwrap_or(0);
        return Ok(Action::CombineTopRows { rows, pad_zero });
    }
    Err(mismatch(
        name,
        other,
        (primary_name, primary),
        "no rule explains these shapes (only embed_tokens/lm_head may gain rows)",
    ))
}

/// How [`detect_algorithm`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub algorithm: Algorithm,
    pub reason: String,
}

/// Picks an algorithm from the checkpoints.
///
/// Shapes first: a delta vocabulary smaller than the base's is only explained by HuatuoGPT
/// (whole embeddings). Otherwise the embedding decides: HuatuoGPT ships `embed_tokens` as whole
/// weights, FastChat-style deltas as differences, which are far smaller than the weights they
/// correct. The root-mean-square of the first rows of the delta's embedding is compared with
/// the base's (a bounded sample): at least half the base's means whole weights (`Huatuo`),
/// less means differences (`Fastchat`, which also equals LLM Zoo's rule).
pub fn detect_algorithm(base: &Checkpoint, delta: &Checkpoint) -> Result<Detection> {
    let pick = |algorithm, reason: String| Ok(Detection { algorithm, reason });
    let pairs: Vec<(&TensorInfo, &TensorInfo)> = delta
        .tensors()
        .iter()
        .filter(|d| is_vocab_matrix(&d.name))
        .filter_map(|d| base.get(&d.name).map(|b| (b, d)))
        .collect();
    for (b, d) in &pairs {
        let (br, dr) = (b.shape.first().copied().unwrap_or(0), d.shape.first().copied().unwrap_or(0));
        if dr < br {
            return pick(
                Algorithm::Huatuo,
                format!("`{}` has fewer rows in the delta ({dr}) than in the base ({br})", d.name),
            );
        }
    }
    let Some((b, d)) = pairs.iter().find(|(b, d)| b.dtype == d.dtype && kernels::supports(d.dtype)) else {
        return pick(Algorithm::Fastchat, "no comparable embedding; FastChat's rule (delta + base)".into());
    };
    const SAMPLE: usize = 1 << 20;
    let n = (SAMPLE as u64).min(b.byte_len).min(d.byte_len) as usize;
    let rms = |ck: &Checkpoint, t: &TensorInfo| -> Result<f64> {
        let mut bytes = vec![0u8; n];
        ck.read_chunk(t, 0, &mut bytes)?;
        let mut vals = vec![0f32; n];
        let count = kernels::to_f32(t.dtype, &bytes, &mut vals);
        let sum: f64 = vals.iter().take(count).filter(|v| v.is_finite()).map(|&v| f64::from(v) * f64::from(v)).sum();
        Ok((sum / count.max(1) as f64).sqrt())
    };
    let (rb, rd) = (rms(base, b)?, rms(delta, d)?);
    if rb > 0.0 && rd >= 0.5 * rb {
        pick(
            Algorithm::Huatuo,
            format!("`{}` in the delta looks like whole weights (rms {rd:.3e} vs base {rb:.3e})", d.name),
        )
    } else {
        pick(
            Algorithm::Fastchat,
            format!("`{}` in the delta looks like differences (rms {rd:.3e} vs base {rb:.3e})", d.name),
        )
    }
}

/// Plans `target = delta (+) base` under `algorithm`, checking every tensor.
///
/// `rotary_emb.inv_freq` present on both sides follows the algorithm's own rule: HuatuoGPT
/// copies the delta's, FastChat and LLM Zoo add (their `make_delta` stored zeros there, so the
/// sum is the base's buffer again).
pub fn plan_apply(base: &Checkpoint, delta: &Checkpoint, algorithm: Algorithm) -> Result<Plan> {
    let (algorithm, reason) = match algorithm {
        Algorithm::Auto => {
            let d = detect_algorithm(base, delta)?;
            (d.algorithm, d.reason)
        }
        a => (a, String::new()),
    };
    let mut items = Vec::with_capacity(delta.tensors().len());
    let mut dropped = Vec::new();
    for d in delta.tensors() {
        let action = match base.get(&d.name) {
            None if is_inv_freq(&d.name) => {
                dropped.push(d.name.clone());
                continue;
            }
            None => {
                return Err(WeightsError::DeltaMissingTensor {
                    tensor: d.name.clone(),
                    present: "delta",
                    missing: "base",
                });
            }
            Some(_) if algorithm == Algorithm::Huatuo && huatuo_takes_delta(&d.name) => Action::Copy,
            Some(b) => match_pair(&d.name, "delta", d, b, algorithm == Algorithm::Llmzoo)?,
        };
        items.push(PlanItem { name: d.name.clone(), dtype: d.dtype, shape: d.shape.clone(), action });
    }
    base_only(base, delta, "delta", &mut dropped)?;
    Ok(Plan { algorithm, reason, items, dropped, op: Op::Add })
}

/// Tensors of `base` that `other` lacks: `inv_freq` buffers are dropped, anything else stops.
fn base_only(base: &Checkpoint, other: &Checkpoint, other_name: &'static str, dropped: &mut Vec<String>) -> Result<()> {
    for b in base.tensors().iter().filter(|b| other.get(&b.name).is_none()) {
        if !is_inv_freq(&b.name) {
            return Err(WeightsError::DeltaMissingTensor {
                tensor: b.name.clone(),
                present: "base",
                missing: other_name,
            });
        }
        dropped.push(b.name.clone());
    }
    Ok(())
}

/// Plans `delta = target − base` (the inverse of FastChat's rule), checking every tensor.
pub fn plan_make(base: &Checkpoint, target: &Checkpoint) -> Result<Plan> {
    let mut items = Vec::with_capacity(target.tensors().len());
    let mut dropped = Vec::new();
    for t in target.tensors() {
        let action = match base.get(&t.name) {
            None if is_inv_freq(&t.name) => {
                dropped.push(t.name.clone());
                continue;
            }
            None => {
                return Err(WeightsError::DeltaMissingTensor {
                    tensor: t.name.clone(),
                    present: "target",
                    missing: "base",
                });
            }
            Some(b) => match_pair(&t.name, "target", t, b, false)?,
        };
        items.push(PlanItem { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone(), action });
    }
    base_only(base, target, "target", &mut dropped)?;
    Ok(Plan { algorithm: Algorithm::Fastchat, reason: String::new(), items, dropped, op: Op::Sub })
}

/// Applies `delta` (a file or folder) to `base` and writes the target to `out`.
pub fn apply(
    base: &Path,
    delta: &Path,
    algorithm: Algorithm,
    out: &Path,
    options: &DeltaOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<DeltaReport> {
    let base = Checkpoint::open(base)?;
    let delta = Checkpoint::open(delta)?;
    apply_checkpoints(&base, &delta, algorithm, out, options, progress, cancel)
}

/// [`apply`] on checkpoints already open.
pub fn apply_checkpoints(
    base: &Checkpoint,
    delta: &Checkpoint,
    algorithm: Algorithm,
    out: &Path,
    options: &DeltaOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<DeltaReport> {
    let plan = plan_apply(base, delta, algorithm)?;
    if !plan.reason.is_empty() {
        progress.event(Event::Note { message: format!("algorithm {}: {}", plan.algorithm.name(), plan.reason) });
    }
    execute(&plan, delta, base, out, options, progress, cancel, "delta apply")
}

/// Makes the delta `target − base` and writes it to `out`.
pub fn make(
    base: &Path,
    target: &Path,
    out: &Path,
    options: &DeltaOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<DeltaReport> {
    let base = Checkpoint::open(base)?;
    let target = Checkpoint::open(target)?;
    make_checkpoints(&base, &target, out, options, progress, cancel)
}

/// [`make`] on checkpoints already open.
pub fn make_checkpoints(
    base: &Checkpoint,
    target: &Checkpoint,
    out: &Path,
    options: &DeltaOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<DeltaReport> {
    let plan = plan_make(base, target)?;
    execute(&plan, target, base, out, options, progress, cancel, "delta make")
}

/// The reading half of [`execute`]: fills chunks (primary ⊕ other), sends them to the writer.
#[allow(clippy::too_many_arguments)]
fn produce(
    plan: &Plan,
    primary: &Checkpoint,
    other: &Checkpoint,
    options: &DeltaOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
    task: &str,
    chunk: usize,
    full_tx: &std::sync::mpsc::SyncSender<(Vec<u8>, usize)>,
    empty_rx: &std::sync::mpsc::Receiver<Vec<u8>>,
    pool: &mut usize,
) -> Result<()> {
    let mut obuf = vec![0u8; chunk];
    for item in &plan.items {
        let (Some(p), o) = (primary.get(&item.name), other.get(&item.name)) else {
            return Err(WeightsError::InvalidOutput { reason: format!("planned tensor `{}` vanished", item.name) });
        };
        // Bytes at the start of the tensor that get the other side's values.
        let (overlap, pad_zero) = match item.action {
            Action::Combine => (p.byte_len, false),
            Action::Copy => (0, false),
            Action::CombineTopRows { rows, pad_zero } => {
                let row_elems = item.shape.iter().skip(1).fold(1u64, |a, &d| a.saturating_mul(d));
                let esize = item.dtype.size().unwrap_or(1);
                (rows.saturating_mul(row_elems).saturating_mul(esize).min(p.byte_len), pad_zero)
            }
        };
        let mut off = 0u64;
        while off < p.byte_len {
            if cancel.is_cancelled() {
                return Err(WeightsError::Cancelled);
            }
            let mut pbuf = match empty_rx.try_recv() {
                Ok(b) => b,
                Err(_) if *pool < 4 => {
                    *pool += 1;
                    vec![0u8; chunk]
                }
                Err(_) => empty_rx.recv().map_err(|_| WeightsError::ChannelClosed)?,
            };
            let n = primary.read_chunk(p, off, &mut pbuf)?;
            let data = pbuf.get_mut(..n).unwrap_or_default();
            let both = overlap.saturating_sub(off).min(n as u64) as usize;
            if both > 0
                && let Some(o) = o
            {
                let ob = obuf.get_mut(..both).unwrap_or_default();
                other.read_chunk(o, off, ob)?;
                kernels::combine(item.dtype, plan.op, data.get_mut(..both).unwrap_or_default(), ob, options.threads);
            }
            if pad_zero && both < n {
                kernels::add_zero(item.dtype, data.get_mut(both..).unwrap_or_default());
            }
            full_tx.send((pbuf, n)).map_err(|_| WeightsError::ChannelClosed)?;
            off += n as u64;
            progress.event(Event::Advance { task: task.into(), delta: n as u64 });
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn execute(
    plan: &Plan,
    primary: &Checkpoint,
    other: &Checkpoint,
    out: &Path,
    options: &DeltaOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
    task: &str,
) -> Result<DeltaReport> {
    for name in &plan.dropped {
        progress.event(Event::Note {
            message: format!("dropped `{name}`: present on one side only (recomputed from config.json)"),
        });
    }
    let side: Vec<(String, PathBuf)> =
        SIDE_FILES.iter().map(|n| (n.to_string(), primary.folder().join(n))).filter(|(_, p)| p.is_file()).collect();
    let specs: Vec<TensorSpec> = plan
        .items
        .iter()
        .map(|i| TensorSpec { name: i.name.clone(), dtype: i.dtype, shape: i.shape.clone() })
        .collect();
    let writer = SafetensorsWriter::create(out, specs, &options.write)?;
    let total = plan.output_bytes();
    progress.event(Event::Start { task: task.into(), total: Some(total), unit: Unit::Bytes });
    let chunk = (options.chunk_size / 8 * 8).max(4096);
    // Reading and arithmetic run here while a second thread hashes and writes the previous
    // chunk: the two halves of the work overlap instead of alternating. Buffers circulate
    // between the threads, so memory stays at a few chunks.
    const IN_FLIGHT: usize = 3;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut pool = 0usize;
    let mut writer = std::thread::scope(|scope| -> Result<SafetensorsWriter> {
        let writer_thread = scope.spawn(move || -> Result<SafetensorsWriter> {
            let mut writer = writer;
            for (buf, n) in full_rx {
                writer.write(buf.get(..n).unwrap_or_default())?;
                // The reader may be gone already (error, cancel); the buffer is then just freed.
                let _ = empty_tx.send(buf);
            }
            Ok(writer)
        });
        let produced =
            produce(plan, primary, other, options, progress, cancel, task, chunk, &full_tx, &empty_rx, &mut pool);
        drop(full_tx);
        let written = writer_thread
            .join()
            .map_err(|_| WeightsError::InvalidOutput { reason: "the writer thread panicked".into() })?;
        // A failed write stops the reader through a closed channel; report the write error then.
        match (produced, written) {
            (Err(WeightsError::ChannelClosed), Err(e)) | (Ok(()), Err(e)) | (Err(e), _) => Err(e),
            (Ok(()), Ok(w)) => Ok(w),
        }
    })?;
    if cancel.is_cancelled() {
        return Err(WeightsError::Cancelled);
    }
    let mut copied = Vec::new();
    for (name, path) in &side {
        writer.add_file(name, path)?;
        copied.push(name.clone());
    }
    let report = writer.finish()?;
    progress.event(Event::Finish { task: task.into() });
    Ok(DeltaReport {
        algorithm: plan.algorithm,
        reason: plan.reason.clone(),
        dropped: plan.dropped.clone(),
        copied_files: copied,
        write: report,
    })
}

//! Quantize and dequantize: `zoo_weights::gguf_convert` (HF folder or safetensors → GGUF, GGUF →
//! safetensors) and `zoo_weights::gptq` (AutoGPTQ int4 in and out). A GPTQ release as input is
//! first dequantized into a staging folder named like the writers' temp files, so the staging
//! of a killed run is swept like them and never mistaken for output.

use std::path::{Path, PathBuf};

use serde::Serialize;
use zoo_weights::gguf_convert::{self, OutType, QuantizeOptions};
use zoo_weights::{Dtype, WriteOptions, WriteReport, gptq};

use crate::delta::{WrittenFile, written};
use crate::{Context as _, Control, OpsError, Result, blocking};

/// What to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantizeTarget {
    Gguf(OutType),
    /// AutoGPTQ layout, round-to-nearest, group 128.
    GptqInt4,
}

#[derive(Debug, Clone)]
pub struct QuantizeRequest {
    pub input: PathBuf,
    pub out: PathBuf,
    pub target: QuantizeTarget,
    /// Any safetensors file, names kept, no architecture metadata.
    pub raw: bool,
    pub threads: usize,
    pub overwrite: bool,
    /// Measure the error of every tensor.
    pub measure: bool,
    /// Perplexity of this text under the source and the result (at most `.1` tokens).
    pub perplexity: Option<(PathBuf, usize)>,
}

/// One tensor of a GGUF written.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizedTensor {
    pub name: String,
    pub source: String,
    #[serde(rename = "type")]
    pub ggml_type: String,
    pub shape: Vec<u64>,
    pub fallback: Option<String>,
    pub rmse: Option<f64>,
    pub max_err: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Perplexity {
    pub text: PathBuf,
    pub tokens: usize,
    pub source: f64,
    pub quantized: f64,
}

/// A GGUF written.
#[derive(Debug, Clone, Serialize)]
pub struct GgufOutput {
    pub out: PathBuf,
    pub arch: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub tensors: Vec<QuantizedTensor>,
    pub skipped: Vec<String>,
    pub perplexity: Option<Perplexity>,
}

/// A folder of safetensors written (GPTQ int4, dequantized weights).
#[derive(Debug, Clone, Serialize)]
pub struct FolderOutput {
    pub out: PathBuf,
    pub tensors: usize,
    pub tensor_bytes: u64,
    pub files: Vec<WrittenFile>,
}

impl From<&WriteReport> for FolderOutput {
    fn from(r: &WriteReport) -> Self {
        FolderOutput { out: r.dest.clone(), tensors: r.tensors, tensor_bytes: r.tensor_bytes, files: written(r) }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum QuantizeOutput {
    Gguf(GgufOutput),
    Folder(FolderOutput),
}

/// A GPTQ release folder (AutoGPTQ layout: `quantize_config.json` next to the weights).
pub fn is_gptq_folder(p: &Path) -> bool {
    p.is_dir() && p.join(gptq::QUANTIZE_CONFIG).is_file()
}

pub async fn quantize(req: &QuantizeRequest, ctl: &Control) -> Result<QuantizeOutput> {
    let out_type = match req.target {
        QuantizeTarget::Gguf(t) => t,
        QuantizeTarget::GptqInt4 => {
            let (input, dest) = (req.input.clone(), req.out.clone());
            let opts = WriteOptions { overwrite: req.overwrite, ..WriteOptions::default() };
            ctl.check()?;
            let r = blocking(move || Ok(gptq::quantize_folder(&input, &dest, Some(128), &opts)?))
                .await
                .with_context(|| format!("packing {} as GPTQ int4 into {}", req.input.display(), req.out.display()))?;
            ctl.note("GPTQ int4: round-to-nearest, group 128, AutoGPTQ layout");
            return Ok(QuantizeOutput::Folder(FolderOutput::from(&r)));
        }
    };
    let mut staged: Option<PathBuf> = None;
    let mut input = req.input.clone();
    if is_gptq_folder(&req.input) {
        let name = req.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let staging = req.out.with_file_name(format!("{name}.gptq-staging"));
        zoo_atomic_write::remove_stale(&staging);
        let tmp = zoo_atomic_write::temp_name(&staging, std::process::id())
            .ok_or_else(|| OpsError::Invalid(format!("{} is not a file name", req.out.display())))?;
        let _ = std::fs::remove_dir_all(&tmp);
        ctl.note(format!("dequantizing the GPTQ release {} first", req.input.display()));
        let (src, t2) = (req.input.clone(), tmp.clone());
        let r = blocking(move || {
            let model = gptq::GptqModel::open(&src)?;
            Ok(gptq::dequantize_to_folder(&model, &t2, Dtype::F32, &WriteOptions::default())?)
        })
        .await;
        if let Err(e) = r {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e).with_context(|| format!("dequantizing GPTQ release {}", req.input.display()));
        }
        input = tmp.clone();
        staged = Some(tmp);
    }
    let result = quantize_gguf(req, out_type, input, ctl).await;
    if let Some(tmp) = staged {
        let _ = std::fs::remove_dir_all(tmp);
    }
    result.map(QuantizeOutput::Gguf)
}

async fn quantize_gguf(req: &QuantizeRequest, out_type: OutType, input: PathBuf, ctl: &Control) -> Result<GgufOutput> {
    let opts = QuantizeOptions {
        out_type,
        raw: req.raw,
        threads: req.threads.max(1),
        overwrite: req.overwrite,
        measure: req.measure,
    };
    let (dest, c) = (req.out.clone(), ctl.clone());
    let r = blocking(move || Ok(gguf_convert::quantize(&input, &dest, &opts, c.progress.as_ref(), &c.cancel)?))
        .await
        .with_context(|| format!("quantizing {} into {}", req.input.display(), req.out.display()))?;
    let perplexity = match &req.perplexity {
        Some((text, max)) => Some(perplexity(text, &req.input, &req.out, *max, req.threads, ctl).await?),
        None => None,
    };
    Ok(GgufOutput {
        out: r.write.dest.clone(),
        arch: r.arch.clone(),
        size: r.write.size,
        sha256: r.write.sha256.clone(),
        tensors: r
            .tensors
            .iter()
            .map(|t| QuantizedTensor {
                name: t.name.clone(),
                source: t.source.clone(),
                ggml_type: t.ggml_type.name().to_string(),
                shape: t.shape.clone(),
                fallback: t.fallback.clone(),
                rmse: t.rmse,
                max_err: t.max_err,
            })
            .collect(),
        skipped: r.skipped.clone(),
        perplexity,
    })
}

/// Perplexity of the text under the source checkpoint and the written GGUF, both run by our
/// runner (the GGUF on the quantized kernels), tokenized by the source's tokenizer.
async fn perplexity(
    text: &Path,
    source: &Path,
    gguf: &Path,
    max_tokens: usize,
    threads: usize,
    ctl: &Control,
) -> Result<Perplexity> {
    let (text, source, gguf, c) = (text.to_path_buf(), source.to_path_buf(), gguf.to_path_buf(), ctl.clone());
    // One set of threads for both models: they run one after the other.
    let opts = zoo_infer::LoadOptions { threads: zoo_infer::Threads::new(threads) };
    blocking(move || {
        let body = std::fs::read_to_string(&text).map_err(|e| OpsError::io(&text, e))?;
        let src = zoo_infer::load_with(&source, &opts).with_context(|| format!("loading {}", source.display()))?;
        let tok = src
            .tokenizer
            .as_ref()
            .ok_or_else(|| OpsError::Invalid(format!("{} has no tokenizer.json", source.display())))?;
        let mut ids = tok.encode(&body, true)?;
        ids.truncate(max_tokens);
        c.check()?;
        let (source_ppl, n) = src.session.perplexity(&ids, 512)?;
        c.check()?;
        let q = zoo_infer::load_with(&gguf, &opts).with_context(|| format!("loading {}", gguf.display()))?;
        let (quant_ppl, _) = q.session.perplexity(&ids, 512)?;
        Ok(Perplexity { text, tokens: n, source: source_ppl, quantized: quant_ppl })
    })
    .await
}

#[derive(Debug, Clone)]
pub struct DequantizeRequest {
    pub input: PathBuf,
    pub out: PathBuf,
    pub dtype: Dtype,
    pub overwrite: bool,
}

pub async fn dequantize(req: &DequantizeRequest, ctl: &Control) -> Result<FolderOutput> {
    let opts = WriteOptions { overwrite: req.overwrite, ..WriteOptions::default() };
    let (input, dest, dtype, c) = (req.input.clone(), req.out.clone(), req.dtype, ctl.clone());
    let r = if is_gptq_folder(&input) {
        ctl.check()?;
        blocking(move || Ok(gptq::dequantize_to_folder(&gptq::GptqModel::open(&input)?, &dest, dtype, &opts)?))
            .await
            .with_context(|| format!("dequantizing GPTQ release {} into {}", req.input.display(), req.out.display()))?
    } else {
        blocking(move || Ok(gguf_convert::dequantize(&input, &dest, dtype, &opts, c.progress.as_ref(), &c.cancel)?))
            .await
            .with_context(|| format!("dequantizing {} into {}", req.input.display(), req.out.display()))?
    };
    Ok(FolderOutput::from(&r))
}

/// Quantizes a MODEL (see [`crate::ModelRef`]: its runnable copy) into the models folder as
/// `<label>.<type>.gguf` (the TUI's quantize action); `type` is a `zoo quantize --type` name.
pub async fn quantize_model(
    zoo: &crate::Zoo,
    model: &str,
    type_name: &str,
    threads: usize,
    ctl: &Control,
) -> Result<QuantizeOutput> {
    let out_type = OutType::from_name(type_name)
        .ok_or_else(|| OpsError::Invalid(format!("{type_name:?} is not a quantization type")))?;
    let reg = zoo.registry().await?;
    let target = crate::model_ref::resolve(&reg, model).await;
    reg.close().await;
    let target = target?;
    let input = target.runnable_path(zoo)?;
    let stem: String =
        target.label().chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect();
    let out = zoo.models_dir()?.join(format!("{stem}.{}.gguf", type_name.to_lowercase()));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| OpsError::io(dir, e))?;
    }
    let req = QuantizeRequest {
        input,
        out,
        target: QuantizeTarget::Gguf(out_type),
        raw: false,
        threads,
        overwrite: true,
        measure: false,
        perplexity: None,
    };
    quantize(&req, ctl).await
}

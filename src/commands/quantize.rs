//! `zoo quantize` and `zoo dequantize`: glue between the CLI and `zoo_weights::gguf_convert`,
//! run off the async thread with Ctrl-C wired to the library's cancel token.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use zoo_weights::gguf_convert::{self, QuantizeOptions};
use zoo_weights::{Dtype, WriteOptions, WriteReport, gptq};

use super::Ctx;
use super::delta::run_cancellable;
use crate::EXIT_OK;
use crate::cli::{DenseDtype, DequantizeArgs, QuantTarget, QuantizeArgs};
use crate::progress::StderrProgress;

/// A GPTQ release folder (AutoGPTQ layout: `quantize_config.json` next to the weights).
fn is_gptq_folder(p: &Path) -> bool {
    p.is_dir() && p.join(gptq::QUANTIZE_CONFIG).is_file()
}

/// Run blocking GPTQ work off the async thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> gptq::Result<T> + Send + 'static) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await.context("GPTQ worker stopped")??)
}

pub async fn quantize(ctx: &Ctx, out: &mut dyn Write, a: QuantizeArgs) -> anyhow::Result<u8> {
    let out_type = match a.out_type {
        QuantTarget::Gguf(t) => t,
        QuantTarget::GptqInt4 => {
            let (input, dest) = (a.input.clone(), a.out.clone());
            let opts = WriteOptions { overwrite: a.overwrite, ..WriteOptions::default() };
            let r = blocking(move || gptq::quantize_folder(&input, &dest, Some(128), &opts))
                .await
                .with_context(|| format!("packing {} as GPTQ int4 into {}", a.input.display(), a.out.display()))?;
            eprintln!("GPTQ int4: round-to-nearest, group 128, AutoGPTQ layout");
            return print_folder_report(out, &r, a.json);
        }
    };
    // A GPTQ release is dequantized to a temporary HF folder next to the output first.
    let mut staged: Option<PathBuf> = None;
    let mut input = a.input.clone();
    if is_gptq_folder(&a.input) {
        // `.OUT.gptq-staging.zoo-tmp-PID`: the writers' temp naming, so staging folders of
        // killed runs are swept like their temp files.
        let name = a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let staging = a.out.with_file_name(format!("{name}.gptq-staging"));
        zoo_weights::writer::remove_stale(&staging);
        let tmp = zoo_weights::writer::temp_name(&staging, std::process::id())
            .with_context(|| format!("{} is not a file name", a.out.display()))?;
        let _ = std::fs::remove_dir_all(&tmp);
        let src = a.input.clone();
        let t2 = tmp.clone();
        blocking(move || {
            let model = gptq::GptqModel::open(&src)?;
            gptq::dequantize_to_folder(&model, &t2, Dtype::F32, &WriteOptions::default())
        })
        .await
        .with_context(|| format!("dequantizing GPTQ release {}", a.input.display()))?;
        input = tmp.clone();
        staged = Some(tmp);
    }
    let result = quantize_gguf(ctx, out, &a, out_type, input).await;
    if let Some(tmp) = staged {
        let _ = std::fs::remove_dir_all(tmp);
    }
    result
}

async fn quantize_gguf(
    ctx: &Ctx,
    out: &mut dyn Write,
    a: &QuantizeArgs,
    out_type: zoo_weights::gguf_convert::OutType,
    input: PathBuf,
) -> anyhow::Result<u8> {
    let progress = Arc::new(StderrProgress::new(a.progress));
    let opts =
        QuantizeOptions { out_type, raw: a.raw, threads: a.threads.max(1), overwrite: a.overwrite, measure: a.report };
    let dest = a.out.clone();
    let r = run_cancellable(progress, move |p, c| gguf_convert::quantize(&input, &dest, &opts, p, c))
        .await
        .with_context(|| format!("quantizing {} into {}", a.input.display(), a.out.display()))?;
    let ppl = match &a.perplexity {
        Some(text) => Some(perplexity(text, &a.input, &a.out, a.perplexity_tokens, a.threads).await?),
        None => None,
    };
    if a.json {
        let tensors: Vec<serde_json::Value> = r
            .tensors
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name, "source": t.source, "type": t.ggml_type.name(), "shape": t.shape,
                    "fallback": t.fallback, "rmse": t.rmse, "max_err": t.max_err,
                })
            })
            .collect();
        crate::output::write_json(
            out,
            &serde_json::json!({
                "out": r.write.dest, "arch": r.arch, "size": r.write.size, "sha256": r.write.sha256,
                "tensors": tensors, "skipped": r.skipped,
                "perplexity": ppl.map(|p| serde_json::json!({
                    "text": a.perplexity, "tokens": p.tokens, "source": p.source, "quantized": p.quantized,
                })),
            }),
        )?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "wrote {} tensors ({}), {} → {}  sha256 {}",
        r.write.tensors,
        r.arch.as_deref().unwrap_or("raw"),
        crate::progress::human_bytes(r.write.size),
        r.write.dest.display(),
        r.write.sha256
    )?;
    for s in &r.skipped {
        writeln!(out, "  skipped {s} (llama.cpp does not use it)")?;
    }
    let mut header = vec!["TENSOR", "TYPE", "SHAPE", "NOTE"];
    if a.report {
        header.extend(["RMSE", "MAX_ERR"]);
    }
    let mut t = crate::output::Table::new(header);
    for x in &r.tensors {
        let mut row = vec![
            x.name.clone(),
            x.ggml_type.name().to_string(),
            format!("{:?}", x.shape),
            x.fallback.clone().unwrap_or_default(),
        ];
        if a.report {
            row.push(x.rmse.map(|v| format!("{v:.3e}")).unwrap_or_default());
            row.push(x.max_err.map(|v| format!("{v:.3e}")).unwrap_or_default());
        }
        t.push(row);
    }
    t.write_text(out, ctx.style)?;
    if let Some(p) = ppl {
        writeln!(
            out,
            "perplexity over {} tokens: source {:.4}, quantized {:.4} ({:+.2}%)",
            p.tokens,
            p.source,
            p.quantized,
            (p.quantized / p.source - 1.0) * 100.0
        )?;
    }
    Ok(EXIT_OK)
}

struct Perplexity {
    tokens: usize,
    source: f64,
    quantized: f64,
}

/// Perplexity of the text under the source checkpoint and the written GGUF, both run by our
/// runner (the GGUF on the quantized kernels), tokenized by the source's tokenizer.
async fn perplexity(
    text: &Path,
    source: &Path,
    gguf: &Path,
    max_tokens: usize,
    threads: usize,
) -> anyhow::Result<Perplexity> {
    let (text, source, gguf) = (text.to_path_buf(), source.to_path_buf(), gguf.to_path_buf());
    // One set of threads for both models: they run one after the other.
    let opts = zoo_infer::LoadOptions { threads: zoo_infer::Threads::new(threads) };
    tokio::task::spawn_blocking(move || -> anyhow::Result<Perplexity> {
        let body = std::fs::read_to_string(&text).with_context(|| format!("reading {}", text.display()))?;
        let src = zoo_infer::load_with(&source, &opts).with_context(|| format!("loading {}", source.display()))?;
        let tok = src.tokenizer.as_ref().with_context(|| format!("{} has no tokenizer.json", source.display()))?;
        let mut ids = tok.encode(&body, true)?;
        ids.truncate(max_tokens);
        let (source_ppl, n) = src.session.perplexity(&ids, 512)?;
        let q = zoo_infer::load_with(&gguf, &opts).with_context(|| format!("loading {}", gguf.display()))?;
        let (quant_ppl, _) = q.session.perplexity(&ids, 512)?;
        Ok(Perplexity { tokens: n, source: source_ppl, quantized: quant_ppl })
    })
    .await
    .context("perplexity worker stopped")?
}

pub async fn dequantize(_ctx: &Ctx, out: &mut dyn Write, a: DequantizeArgs) -> anyhow::Result<u8> {
    let progress = Arc::new(StderrProgress::new(a.progress));
    let dtype = match a.dtype {
        DenseDtype::F32 => Dtype::F32,
        DenseDtype::F16 => Dtype::F16,
        DenseDtype::Bf16 => Dtype::BF16,
    };
    let opts = WriteOptions { overwrite: a.overwrite, ..WriteOptions::default() };
    let (input, dest) = (a.input.clone(), a.out.clone());
    let r = if is_gptq_folder(&input) {
        blocking(move || gptq::dequantize_to_folder(&gptq::GptqModel::open(&input)?, &dest, dtype, &opts))
            .await
            .with_context(|| format!("dequantizing GPTQ release {} into {}", a.input.display(), a.out.display()))?
    } else {
        run_cancellable(progress, move |p, c| gguf_convert::dequantize(&input, &dest, dtype, &opts, p, c))
            .await
            .with_context(|| format!("dequantizing {} into {}", a.input.display(), a.out.display()))?
    };
    print_folder_report(out, &r, a.json)
}

/// The report of a written folder: one summary line and every file with size and sha256.
fn print_folder_report(out: &mut dyn Write, r: &WriteReport, json: bool) -> anyhow::Result<u8> {
    if json {
        let files: Vec<serde_json::Value> =
            r.files.iter().map(|f| serde_json::json!({"path": f.path, "size": f.size, "sha256": f.sha256})).collect();
        crate::output::write_json(
            out,
            &serde_json::json!({"out": r.dest, "tensors": r.tensors, "tensor_bytes": r.tensor_bytes, "files": files}),
        )?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "wrote {} tensors, {} → {}",
        r.tensors,
        crate::progress::human_bytes(r.tensor_bytes),
        r.dest.display()
    )?;
    for f in &r.files {
        writeln!(out, "  {}  {}  {}", f.path, f.size, f.sha256)?;
    }
    Ok(EXIT_OK)
}

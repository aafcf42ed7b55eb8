//! `zoo quantize` and `zoo dequantize`: run `zoo_ops::convert` and print what was written.

use std::io::Write;

use zoo_ops::convert::{
    self, DequantizeRequest, FolderOutput, GgufOutput, QuantizeOutput, QuantizeRequest, QuantizeTarget,
};
use zoo_weights::Dtype;

use super::{Ctx, drive};
use crate::EXIT_OK;
use crate::cli::{DenseDtype, DequantizeArgs, QuantTarget, QuantizeArgs};
use crate::output::write_json;
use crate::progress::human_bytes;

const ON_INTERRUPT: &str = "removing the unfinished output";

pub async fn quantize(ctx: &Ctx, out: &mut dyn Write, a: QuantizeArgs) -> anyhow::Result<u8> {
    let req = QuantizeRequest {
        input: a.input.clone(),
        out: a.out.clone(),
        target: match a.out_type {
            QuantTarget::Gguf(t) => QuantizeTarget::Gguf(t),
            QuantTarget::GptqInt4 => QuantizeTarget::GptqInt4,
        },
        raw: a.raw,
        threads: a.threads,
        overwrite: a.overwrite,
        measure: a.report,
        perplexity: a.perplexity.clone().map(|p| (p, a.perplexity_tokens)),
    };
    let r =
        drive(a.progress, ON_INTERRUPT, move |cx| async move { convert::quantize(&req, &cx.control).await }).await?;
    if a.json {
        write_json(out, &r)?;
        return Ok(EXIT_OK);
    }
    match &r {
        QuantizeOutput::Folder(f) => print_folder(out, f)?,
        QuantizeOutput::Gguf(g) => print_gguf(ctx, out, g, a.report)?,
    }
    Ok(EXIT_OK)
}

fn print_gguf(ctx: &Ctx, out: &mut dyn Write, r: &GgufOutput, errors: bool) -> anyhow::Result<()> {
    writeln!(
        out,
        "wrote {} tensors ({}), {} → {}  sha256 {}",
        r.tensors.len(),
        r.arch.as_deref().unwrap_or("raw"),
        human_bytes(r.size),
        r.out.display(),
        r.sha256
    )?;
    for s in &r.skipped {
        writeln!(out, "  skipped {s} (llama.cpp does not use it)")?;
    }
    let mut header = vec!["TENSOR", "TYPE", "SHAPE", "NOTE"];
    if errors {
        header.extend(["RMSE", "MAX_ERR"]);
    }
    let mut t = crate::output::Table::new(header);
    for x in &r.tensors {
        let mut row =
            vec![x.name.clone(), x.ggml_type.clone(), format!("{:?}", x.shape), x.fallback.clone().unwrap_or_default()];
        if errors {
            row.push(x.rmse.map(|v| format!("{v:.3e}")).unwrap_or_default());
            row.push(x.max_err.map(|v| format!("{v:.3e}")).unwrap_or_default());
        }
        t.push(row);
    }
    t.write_text(out, ctx.style)?;
    if let Some(p) = &r.perplexity {
        writeln!(
            out,
            "perplexity over {} tokens: source {:.4}, quantized {:.4} ({:+.2}%)",
            p.tokens,
            p.source,
            p.quantized,
            (p.quantized / p.source - 1.0) * 100.0
        )?;
    }
    Ok(())
}

pub async fn dequantize(_ctx: &Ctx, out: &mut dyn Write, a: DequantizeArgs) -> anyhow::Result<u8> {
    let req = DequantizeRequest {
        input: a.input.clone(),
        out: a.out.clone(),
        dtype: match a.dtype {
            DenseDtype::F32 => Dtype::F32,
            DenseDtype::F16 => Dtype::F16,
            DenseDtype::Bf16 => Dtype::BF16,
        },
        overwrite: a.overwrite,
    };
    let r =
        drive(a.progress, ON_INTERRUPT, move |cx| async move { convert::dequantize(&req, &cx.control).await }).await?;
    if a.json {
        write_json(out, &r)?;
    } else {
        print_folder(out, &r)?;
    }
    Ok(EXIT_OK)
}

/// One summary line and every file with size and sha256.
fn print_folder(out: &mut dyn Write, r: &FolderOutput) -> anyhow::Result<()> {
    writeln!(out, "wrote {} tensors, {} → {}", r.tensors, human_bytes(r.tensor_bytes), r.out.display())?;
    for f in &r.files {
        writeln!(out, "  {}  {}  {}", f.path, f.size, f.sha256)?;
    }
    Ok(())
}

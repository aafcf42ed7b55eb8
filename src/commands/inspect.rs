//! `zoo inspect PATH`: the tensors of any supported checkpoint, and GGUF metadata.

use std::io::Write;

use zoo_weights::Checkpoint;
use zoo_weights::gguf::MetaValue;

use super::Ctx;
use crate::EXIT_OK;
use crate::cli::InspectArgs;
use crate::output::{Table, write_json};

fn meta_json(v: &MetaValue) -> serde_json::Value {
    use serde_json::json;
    match v {
        MetaValue::U8(x) => json!(x),
        MetaValue::I8(x) => json!(x),
        MetaValue::U16(x) => json!(x),
        MetaValue::I16(x) => json!(x),
        MetaValue::U32(x) => json!(x),
        MetaValue::I32(x) => json!(x),
        MetaValue::F32(x) => json!(x),
        MetaValue::Bool(x) => json!(x),
        MetaValue::String(x) => json!(x),
        MetaValue::U64(x) => json!(x),
        MetaValue::I64(x) => json!(x),
        MetaValue::F64(x) => json!(x),
        MetaValue::Array(a) => serde_json::Value::Array(a.iter().map(meta_json).collect()),
    }
}

/// Short text for a metadata value: long arrays (vocabularies) are summarized.
fn meta_text(v: &MetaValue) -> String {
    match v {
        MetaValue::Array(a) if a.len() > 8 => format!("[{} items]", a.len()),
        MetaValue::String(s) if s.chars().count() > 80 => format!("{:?}…", s.chars().take(80).collect::<String>()),
        other => meta_json(other).to_string(),
    }
}

pub fn inspect(ctx: &Ctx, out: &mut dyn Write, a: InspectArgs) -> anyhow::Result<u8> {
    let ck = Checkpoint::open(&a.path)?;
    let folder = ck.folder().to_path_buf();
    let rel = |p: &std::path::Path| p.strip_prefix(&folder).unwrap_or(p).display().to_string();
    if a.json {
        let tensors: Vec<serde_json::Value> = ck
            .tensors()
            .iter()
            .map(|t| {
                serde_json::json!({"name": t.name, "dtype": t.dtype.to_string(), "shape": t.shape,
                    "bytes": t.byte_len, "file": rel(&t.file), "offset": t.offset})
            })
            .collect();
        let metadata: serde_json::Map<String, serde_json::Value> = match ck.gguf() {
            Some(g) => g.metadata.iter().map(|(k, v)| (k.clone(), meta_json(v))).collect(),
            None => ck.metadata().iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect(),
        };
        write_json(
            out,
            &serde_json::json!({
                "path": a.path, "format": ck.format().name(),
                "files": ck.files().iter().map(|f| rel(f)).collect::<Vec<_>>(),
                "tensor_count": ck.tensors().len(), "total_bytes": ck.total_bytes(),
                "metadata": metadata, "tensors": tensors,
            }),
        )?;
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "{} {}: {} tensors, {} in {} file(s)",
        ctx.style.bold(&a.path.display().to_string()),
        ck.format().name(),
        ck.tensors().len(),
        crate::progress::human_bytes(ck.total_bytes()),
        ck.files().len()
    )?;
    if let Some(g) = ck.gguf() {
        writeln!(out, "GGUF v{}, {} metadata keys:", g.version, g.metadata.len())?;
        for (k, v) in &g.metadata {
            writeln!(out, "  {k} = {}", meta_text(v))?;
        }
    }
    let mut t = Table::new(["NAME", "DTYPE", "SHAPE", "BYTES", "FILE"]).right_align(&[3]);
    for x in ck.tensors() {
        t.push(vec![
            x.name.clone(),
            x.dtype.to_string(),
            format!("{:?}", x.shape),
            x.byte_len.to_string(),
            rel(&x.file),
        ]);
    }
    t.write_text(out, ctx.style)?;
    Ok(EXIT_OK)
}

//! `zoo inspect PATH`: the report of `zoo_ops::inspect` as text or JSON.

use std::io::Write;

use serde_json::Value;

use super::Ctx;
use crate::EXIT_OK;
use crate::cli::InspectArgs;
use crate::output::{Table, write_json};

/// Short text for a metadata value: long arrays (vocabularies) are summarized.
fn meta_text(v: &Value) -> String {
    match v {
        Value::Array(a) if a.len() > 8 => format!("[{} items]", a.len()),
        Value::String(s) if s.chars().count() > 80 => format!("{:?}…", s.chars().take(80).collect::<String>()),
        other => other.to_string(),
    }
}

pub fn inspect(ctx: &Ctx, out: &mut dyn Write, a: InspectArgs) -> anyhow::Result<u8> {
    let r = zoo_ops::inspect::inspect(&a.path)?;
    if a.json {
        write_json(out, &r)?;
        return Ok(EXIT_OK);
    }
    let name = ctx.style.bold(&a.path.display().to_string());
    let size = crate::progress::human_bytes(r.total_bytes);
    writeln!(out, "{name} {}: {} tensors, {size} in {} file(s)", r.format, r.tensor_count, r.files.len())?;
    if let Some(v) = r.gguf_version {
        writeln!(out, "GGUF v{v}, {} metadata keys:", r.metadata.len())?;
        for (k, v) in &r.metadata {
            writeln!(out, "  {k} = {}", meta_text(v))?;
        }
    }
    let mut t = Table::new(["NAME", "DTYPE", "SHAPE", "BYTES", "FILE"]).right_align(&[3]);
    for x in &r.tensors {
        t.push(vec![x.name.clone(), x.dtype.clone(), format!("{:?}", x.shape), x.bytes.to_string(), x.file.clone()]);
    }
    t.write_text(out, ctx.style)?;
    Ok(EXIT_OK)
}

//! Inspect: the tensors of any supported checkpoint and its metadata (GGUF key/values or
//! safetensors `__metadata__`), as one report.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use zoo_weights::Checkpoint;
use zoo_weights::gguf::MetaValue;

use crate::Result;

#[derive(Debug, Clone, Serialize)]
pub struct InspectedTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub bytes: u64,
    /// Relative to the checkpoint's folder.
    pub file: String,
    pub offset: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub path: PathBuf,
    pub format: String,
    pub files: Vec<String>,
    pub tensor_count: usize,
    pub total_bytes: u64,
    /// GGUF version, for GGUF files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gguf_version: Option<u32>,
    /// Keys sorted.
    pub metadata: serde_json::Map<String, Value>,
    pub tensors: Vec<InspectedTensor>,
}

/// A GGUF metadata value as JSON.
pub fn meta_json(v: &MetaValue) -> Value {
    match v {
        MetaValue::U8(x) => Value::from(*x),
        MetaValue::I8(x) => Value::from(*x),
        MetaValue::U16(x) => Value::from(*x),
        MetaValue::I16(x) => Value::from(*x),
        MetaValue::U32(x) => Value::from(*x),
        MetaValue::I32(x) => Value::from(*x),
        MetaValue::F32(x) => Value::from(*x),
        MetaValue::Bool(x) => Value::from(*x),
        MetaValue::String(x) => Value::from(x.as_str()),
        MetaValue::U64(x) => Value::from(*x),
        MetaValue::I64(x) => Value::from(*x),
        MetaValue::F64(x) => Value::from(*x),
        MetaValue::Array(a) => Value::Array(a.iter().map(meta_json).collect()),
    }
}

pub fn inspect(path: &Path) -> Result<InspectReport> {
    let ck = Checkpoint::open(path)?;
    let folder = ck.folder().to_path_buf();
    let rel = |p: &Path| p.strip_prefix(&folder).unwrap_or(p).display().to_string();
    let metadata = match ck.gguf() {
        Some(g) => g.metadata.iter().map(|(k, v)| (k.clone(), meta_json(v))).collect(),
        None => ck.metadata().iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect(),
    };
    Ok(InspectReport {
        path: path.to_path_buf(),
        format: ck.format().name().to_string(),
        files: ck.files().iter().map(|f| rel(f)).collect(),
        tensor_count: ck.tensors().len(),
        total_bytes: ck.total_bytes(),
        gguf_version: ck.gguf().map(|g| g.version),
        metadata,
        tensors: ck
            .tensors()
            .iter()
            .map(|t| InspectedTensor {
                name: t.name.clone(),
                dtype: t.dtype.to_string(),
                shape: t.shape.clone(),
                bytes: t.byte_len,
                file: rel(&t.file),
                offset: t.offset,
            })
            .collect(),
    })
}

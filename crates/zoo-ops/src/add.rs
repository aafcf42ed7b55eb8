//! Add: a model folder or GGUF file on this machine becomes a registry model (origin `local`)
//! with a registered copy: every file hashed, the architecture read from it.

use std::path::{Path, PathBuf};

use serde::Serialize;
use zoo_registry::model::{FileRecord, ModelRecord};
use zoo_registry::{LocalCopy, manifest_sha256};

use crate::{Control, OpsError, Result, Zoo, blocking, provenance};

#[derive(Debug, Clone, Default)]
pub struct AddRequest {
    pub path: PathBuf,
    pub name: String,
    pub family: Option<String>,
    /// The prompt format to record.
    pub template: Option<String>,
    /// Replace a local model of the same name.
    pub replace: bool,
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddReport {
    pub model: ModelRecord,
    pub copy: LocalCopy,
}

/// Every regular file under `dir` (not following links out, skipping hidden folders).
fn files_under(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| OpsError::io(dir, e))? {
        let e = e.map_err(|e| OpsError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let ft = e.file_type().map_err(|e| OpsError::io(&path, e))?;
        if ft.is_dir() {
            if !name.starts_with('.') {
                files_under(&path, &r, out)?;
            }
        } else if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            out.push((r, path));
        }
    }
    Ok(())
}

pub async fn add(zoo: &Zoo, req: &AddRequest, ctl: &Control) -> Result<AddReport> {
    let path = std::fs::canonicalize(&req.path).map_err(|e| OpsError::io(&req.path, e))?;
    if req.name.trim().is_empty() || req.name.contains(['/', '@']) || req.name.chars().any(char::is_whitespace) {
        return Err(OpsError::Invalid(format!("--name {:?}: a registry name has no spaces, '/' or '@'", req.name)));
    }
    // It must be a model zoo can read: the checkpoint opens and the architecture is known.
    let ckpt = zoo_weights::Checkpoint::open(&path)?;
    let is_gguf = ckpt.gguf().is_some();
    let config = match ckpt.gguf() {
        Some(g) => zoo_infer::ModelConfig::from_gguf(g)?,
        None => {
            let cfg = path.join("config.json");
            let text = std::fs::read_to_string(&cfg).map_err(|e| OpsError::io(&cfg, e))?;
            zoo_infer::ModelConfig::from_hf_json(&cfg, &text)?
        }
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if path.is_file() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        files.push((name, path.clone()));
    } else {
        files_under(&path, "", &mut files)?;
    }
    files.sort();
    let (n, paths, c) = (req.threads.max(1), files.clone(), ctl.clone());
    let digests = blocking(move || hash_all(&paths, n, &c)).await?;
    let records: Vec<FileRecord> = files
        .iter()
        .zip(&digests)
        .map(|((rel, p), sha)| FileRecord {
            path: rel.clone(),
            size: std::fs::metadata(p).ok().map(|m| m.len() as i64),
            sha256: Some(sha.clone()),
        })
        .collect();
    let manifest = manifest_sha256(&records);
    let rec = ModelRecord {
        name: req.name.clone(),
        family: req.family.clone().unwrap_or_else(|| "local".into()),
        kind: if is_gguf { "quantized".into() } else { "full".into() },
        arch: Some(config.arch.name().to_string()),
        hf_architecture: (!is_gguf).then(|| config.arch_name.clone()),
        chat_template: req.template.clone(),
        context_length: Some(config.context_length as i64),
        description: Some(format!("added with `zoo add` from {}", path.display())),
        source: Some(path.display().to_string()),
        origin: "local".into(),
        files: Some(records.clone()),
        ..Default::default()
    };
    let copy = LocalCopy {
        id: None,
        model: req.name.clone(),
        path: path.display().to_string(),
        revision: None,
        sha256: Some(manifest.clone()),
        size: Some(records.iter().filter_map(|f| f.size).sum()),
        derived_from: Some(provenance::made_by(
            "add",
            vec![provenance::path("source", &path, Some(manifest.clone()))],
            Some(manifest),
        )),
        verified_at: Some(crate::now_rfc3339()),
        files: records,
    };
    ctl.check()?;
    let reg = zoo.registry().await?;
    let added = reg.add_local_model(&rec, &copy, req.replace).await;
    reg.close().await;
    match added {
        Err(e @ zoo_registry::Error::NameTaken { .. }) => Err(OpsError::not_found(e.to_string())),
        Err(e) => Err(e.into()),
        Ok(id) => Ok(AddReport { model: rec, copy: LocalCopy { id: Some(id), ..copy } }),
    }
}

/// sha256 of each file, in parallel over files.
fn hash_all(files: &[(String, PathBuf)], threads: usize, ctl: &Control) -> Result<Vec<String>> {
    zoo_hub::hash::sha256_files(files, threads, ctl.progress.as_ref(), &ctl.cancel)
        .into_iter()
        .map(|r| r.map_err(OpsError::from))
        .collect()
}

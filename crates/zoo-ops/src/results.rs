//! Measured results brought in from elsewhere (`zoo registry import-results`): one JSON object or
//! an array of them, each recorded with its provenance (zoo's version filled in when absent).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zoo_registry::model::{Provenance, ResultRecord};

use crate::{Context as _, OpsError, Result, Zoo};

/// One measured result as users write it in JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedResult {
    pub model: String,
    pub benchmark: String,
    #[serde(default)]
    pub opponent: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    pub scores: BTreeMap<String, f64>,
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Box<ImportedResult>),
    Many(Vec<ImportedResult>),
}

/// Parses `text` (named `label` in errors): one result object or an array of them.
pub fn parse(text: &str, label: &str) -> Result<Vec<ImportedResult>> {
    match serde_json::from_str::<OneOrMany>(text) {
        Ok(OneOrMany::One(r)) => Ok(vec![*r]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => {
            // Re-parse as each form for a precise message.
            let e = serde_json::from_str::<Vec<ImportedResult>>(text)
                .err()
                .or_else(|| serde_json::from_str::<ImportedResult>(text).err());
            Err(OpsError::Invalid(format!(
                "{label} is not a result object or array of them: {}",
                e.map(|e| e.to_string()).unwrap_or_default()
            )))
        }
    }
}

/// One recorded result of [`import`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    /// Its row in the registry's results.
    pub id: i64,
    pub model: String,
    pub benchmark: String,
}

/// What [`import`] recorded: the `--json` of `zoo registry import-results`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    /// In input order.
    pub recorded: Vec<Recorded>,
}

/// Records `items` as measured results, all or none: one unknown model, benchmark or column
/// refuses the whole file before anything is written (a corrected file can then be imported
/// again without doubles).
pub async fn import(zoo: &Zoo, items: Vec<ImportedResult>) -> Result<ImportReport> {
    let now = crate::now_rfc3339();
    let recs: Vec<ResultRecord> = items
        .into_iter()
        .map(|it| {
            let mut prov = it.provenance.unwrap_or_default();
            prov.zoo_version.get_or_insert_with(|| crate::provenance::ZOO_VERSION.to_string());
            ResultRecord {
                model: it.model,
                benchmark: it.benchmark,
                opponent: it.opponent,
                origin: "measured".into(),
                source: it.source,
                scores: it.scores,
                provenance: Some(prov),
                recorded_at: Some(now.clone()),
            }
        })
        .collect();
    let reg = zoo.registry().await?;
    let ids = reg.record_results(&recs).await.context("recording the results (none was recorded)");
    reg.close().await;
    let recorded =
        ids?.into_iter().zip(recs).map(|(id, r)| Recorded { id, model: r.model, benchmark: r.benchmark }).collect();
    Ok(ImportReport { recorded })
}

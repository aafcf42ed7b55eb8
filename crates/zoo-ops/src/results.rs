//! Measured results brought in from elsewhere (`zoo registry import-results`): one JSON object or
//! an array of them, each recorded with its provenance (zoo's version filled in when absent).

use std::collections::BTreeMap;

use serde::Deserialize;
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

/// Records `items` as measured results; returns their run ids.
pub async fn import(zoo: &Zoo, items: Vec<ImportedResult>) -> Result<Vec<i64>> {
    let reg = zoo.registry().await?;
    let now = crate::now_rfc3339();
    let mut ids = Vec::new();
    let mut failure = None;
    for it in items {
        let mut prov = it.provenance.unwrap_or_default();
        prov.zoo_version.get_or_insert_with(|| crate::provenance::ZOO_VERSION.to_string());
        let rec = ResultRecord {
            model: it.model,
            benchmark: it.benchmark,
            opponent: it.opponent,
            origin: "measured".into(),
            source: it.source,
            scores: it.scores,
            provenance: Some(prov),
            recorded_at: Some(now.clone()),
        };
        match reg.record_result(&rec).await.with_context(|| format!("recording {}/{}", rec.model, rec.benchmark)) {
            Ok(id) => ids.push(id),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    reg.close().await;
    match failure {
        Some(e) => Err(e),
        None => Ok(ids),
    }
}

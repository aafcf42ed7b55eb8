//! What users type as MODEL, parsed once and resolved once for every command: a file or folder,
//! a registry name, a Hugging Face repo id (`ORG/NAME`), either with `@REVISION`; resolved
//! against the registry (its record and registered copies) with "did you mean" suggestions.

use std::path::{Path, PathBuf};

use zoo_registry::model::ModelRecord;
use zoo_registry::{LocalCopy, Registry};

use crate::{OpsError, Result, Zoo};

/// MODEL as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// An existing file or folder.
    Path(PathBuf),
    /// A registry name or a repo id, with an optional revision (`NAME@REV`).
    Named { id: String, revision: Option<String> },
}

impl ModelRef {
    /// An existing path wins over a name (`./phoenix` is the folder even if a model has that name).
    pub fn parse(spec: &str) -> ModelRef {
        if Path::new(spec).exists() {
            return ModelRef::Path(PathBuf::from(spec));
        }
        match spec.split_once('@') {
            Some((id, rev)) if !rev.is_empty() => {
                ModelRef::Named { id: id.to_string(), revision: Some(rev.to_string()) }
            }
            Some((id, _)) => ModelRef::Named { id: id.to_string(), revision: None },
            None => ModelRef::Named { id: spec.to_string(), revision: None },
        }
    }
}

/// MODEL resolved.
#[derive(Debug, Clone)]
pub enum Target {
    Path(PathBuf),
    /// A registry model: the revision asked for (else the catalog's pin) and its registered
    /// copies that exist on disk, newest first.
    Model {
        record: Box<ModelRecord>,
        revision: Option<String>,
        copies: Vec<LocalCopy>,
    },
    /// A repo id the registry does not know.
    Repo {
        repo: String,
        revision: Option<String>,
    },
}

/// Resolves `spec`; an unknown name is [`OpsError::NotFound`] with close registry names.
pub async fn resolve(reg: &Registry, spec: &str) -> Result<Target> {
    let (id, revision) = match ModelRef::parse(spec) {
        ModelRef::Path(p) => return Ok(Target::Path(p)),
        ModelRef::Named { id, revision } => (id, revision),
    };
    if let Some(m) = reg.model_by_name_or_repo(&id).await? {
        let copies =
            reg.local_copies(Some(&m.name)).await?.into_iter().filter(|c| Path::new(&c.path).exists()).collect();
        let revision = revision.or_else(|| m.revision.clone());
        return Ok(Target::Model { record: Box::new(m), revision, copies });
    }
    if id.contains('/') {
        if zoo_hub::repo_folder_name(&id).is_none() {
            return Err(OpsError::not_found(format!("{id:?} is not a repo id (ORG/NAME)")));
        }
        return Ok(Target::Repo { repo: id, revision });
    }
    let suggestions = did_you_mean(&id, &reg.model_names().await?);
    let near =
        if suggestions.is_empty() { String::new() } else { format!("; did you mean: {}?", suggestions.join(", ")) };
    Err(OpsError::NotFound {
        message: format!("no model {spec:?}: not a file or folder, a registry name or an ORG/NAME repo id{near}"),
        suggestions,
    })
}

impl Target {
    /// The name to show: the registry name, the repo id, or the path.
    pub fn label(&self) -> String {
        match self {
            Target::Path(p) => p.display().to_string(),
            Target::Model { record, .. } => record.name.clone(),
            Target::Repo { repo, .. } => repo.clone(),
        }
    }

    pub fn record(&self) -> Option<&ModelRecord> {
        match self {
            Target::Model { record, .. } => Some(record),
            _ => None,
        }
    }

    pub fn is_delta(&self) -> bool {
        self.record().is_some_and(|m| m.kind == "delta")
    }

    /// The hub repo and revision to download: an error for paths, API models and models the
    /// registry knows no repo for.
    pub fn hub_repo(&self) -> Result<(String, Option<String>)> {
        match self {
            Target::Path(p) => Err(OpsError::Invalid(format!("{} is a local path, not a hub model", p.display()))),
            Target::Repo { repo, revision } => Ok((repo.clone(), revision.clone())),
            Target::Model { record, revision, .. } => {
                if record.kind == "api" {
                    return Err(OpsError::not_found(format!(
                        "{} is served by an API, not released as weights",
                        record.name
                    )));
                }
                match &record.hf_repo {
                    Some(r) => Ok((r.clone(), revision.clone())),
                    None => Err(OpsError::not_found(format!(
                        "{}: the registry knows no Hugging Face repo for it",
                        record.name
                    ))),
                }
            }
        }
    }

    /// The folder or file to load: the path itself; a registered copy (an applied delta, a model
    /// added with `zoo add`, a mirrored file); else the cached snapshot of its repo.
    pub fn runnable_path(&self, zoo: &Zoo) -> Result<PathBuf> {
        let cache = zoo.hf_cache().map(zoo_hub::HfCache::new);
        let copy = match self {
            Target::Path(p) => return Ok(p.clone()),
            Target::Model { copies, .. } => copies.first().map(|c| PathBuf::from(&c.path)),
            Target::Repo { .. } => None,
        };
        if let (Some(m), Some(path)) = (self.record(), &copy)
            && (m.kind == "delta" || m.origin == "local" || m.hf_repo.is_none())
        {
            return Ok(path.clone());
        }
        if let Some(m) = self.record().filter(|m| m.kind == "delta") {
            return Err(OpsError::not_found(format!(
                "{} is a delta release: it only works added to its base ({}); get a runnable copy with \
                 `zoo pull {} --base PATH|REPO` (or `zoo delta apply`, then run the result)",
                m.name,
                m.base.as_deref().unwrap_or("see `zoo show`"),
                m.name
            )));
        }
        let (repo, rev) = self.hub_repo()?;
        match cache.as_ref().and_then(|c| c.snapshot_dir(&repo, rev.as_deref())).or(copy) {
            Some(path) => Ok(path),
            None => Err(OpsError::not_found(format!(
                "{} ({repo}) is not in the Hugging Face cache{}; download it first (`zoo pull {}`)",
                self.label(),
                cache.map(|c| format!(" at {}", c.root().display())).unwrap_or_default(),
                self.label()
            ))),
        }
    }
}

/// Up to three known names close to `wanted`, best first.
pub fn did_you_mean(wanted: &str, names: &[String]) -> Vec<String> {
    let w = wanted.to_lowercase();
    let mut scored: Vec<(f64, &String)> = names
        .iter()
        .map(|n| {
            let l = n.to_lowercase();
            let mut s = strsim::jaro_winkler(&w, &l);
            if l.contains(&w) || w.contains(&l) {
                s = s.max(0.9);
            }
            (s, n)
        })
        .filter(|(s, _)| *s >= 0.85)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(ModelRef::parse("apollo-7b"), ModelRef::Named { id: "apollo-7b".into(), revision: None });
        assert_eq!(
            ModelRef::parse("FreedomIntelligence/Apollo-7B@v1"),
            ModelRef::Named { id: "FreedomIntelligence/Apollo-7B".into(), revision: Some("v1".into()) }
        );
        assert_eq!(ModelRef::parse("x@"), ModelRef::Named { id: "x".into(), revision: None });
        let dir = std::env::temp_dir();
        assert_eq!(ModelRef::parse(dir.to_str().unwrap()), ModelRef::Path(dir.clone()));
    }

    #[test]
    fn suggestions_for_typos() {
        let names: Vec<String> =
            ["phoenix-inst-chat-7b", "phoenix-chat-7b", "chimera-chat-7b", "apollo-7b"].map(String::from).into();
        assert_eq!(did_you_mean("phenix-inst-chat-7b", &names)[0], "phoenix-inst-chat-7b");
        assert_eq!(did_you_mean("apolo-7b", &names)[0], "apollo-7b");
        assert!(did_you_mean("zzzz", &names).is_empty());
    }
}

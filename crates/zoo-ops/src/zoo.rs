//! [`Zoo`]: where things live for one front end (the registry database, the catalog, the Hugging
//! Face cache and hub settings, zoo's models and cache folders), resolved by the front end from
//! its flags and environment. Opening the registry syncs the catalog into it when it changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zoo_hub::download::HubConfig;
use zoo_progress::{Event, Progress, Silent};
use zoo_registry::{Catalog, Registry};

use crate::{Context as _, OpsError, Result};

#[derive(Clone)]
pub struct Zoo {
    /// The registry database file.
    pub db: PathBuf,
    /// A catalog folder, or `None` for the catalog built into zoo.
    pub catalog: Option<PathBuf>,
    /// Hub settings with the cache folder; `None` when no cache folder could be placed.
    pub hub: Option<HubConfig>,
    /// Where applied deltas and mirrored files go (`$XDG_DATA_HOME/zoo/models`).
    pub models_dir: Option<PathBuf>,
    /// zoo's own download cache (`$XDG_CACHE_HOME/zoo`).
    pub cache_dir: Option<PathBuf>,
    /// The PyPI simple index mirrors come from.
    pub pypi_index: String,
    /// Where notes that belong to no operation go (a catalog sync).
    pub notes: Arc<dyn Progress>,
}

impl Zoo {
    /// A zoo with only a database: no cache, no models folder, the built-in catalog.
    pub fn new(db: impl Into<PathBuf>) -> Zoo {
        Zoo {
            db: db.into(),
            catalog: None,
            hub: None,
            models_dir: None,
            cache_dir: None,
            pypi_index: zoo_hub::pypi::DEFAULT_INDEX.to_string(),
            notes: Arc::new(Silent),
        }
    }

    pub fn load_catalog(&self) -> Result<Catalog> {
        Ok(match &self.catalog {
            None => Catalog::embedded(),
            Some(dir) => Catalog::from_dir(dir)?,
        })
    }

    /// Open the registry and make sure it holds the current catalog.
    pub async fn registry(&self) -> Result<Registry> {
        let reg = Registry::open(&self.db).await?;
        let (origin, files) = match &self.catalog {
            None => ("embedded".to_string(), Catalog::embedded_sources()),
            Some(dir) => (dir.display().to_string(), Catalog::read_dir(dir)?),
        };
        if let Some(r) = reg
            .ensure_synced(&origin, files)
            .await
            .with_context(|| format!("syncing catalog {origin} into the registry"))?
        {
            self.notes.event(Event::Note {
                message: format!(
                    "registry synced from the {} catalog: {} models, {} published results ({} changes)",
                    if self.catalog.is_none() { "built-in" } else { "given" },
                    r.models,
                    r.results,
                    r.changed()
                ),
            });
        }
        Ok(reg)
    }

    pub fn hub_config(&self) -> Result<&HubConfig> {
        self.hub.as_ref().ok_or_else(|| {
            OpsError::Invalid(
                "cannot place the Hugging Face cache: set HF_HUB_CACHE or HF_HOME (no HOME either)".into(),
            )
        })
    }

    /// The Hugging Face cache folder.
    pub fn hf_cache(&self) -> Option<&Path> {
        self.hub.as_ref().map(|h| h.cache.as_path())
    }

    pub fn models_dir(&self) -> Result<PathBuf> {
        self.models_dir.clone().ok_or_else(|| {
            OpsError::Invalid("cannot place models: pass --out DIR (neither XDG_DATA_HOME nor HOME is set)".into())
        })
    }

    /// HF repo ids present in the local Hugging Face cache.
    pub fn cached_repos(&self) -> Vec<String> {
        self.hf_cache().map(|c| zoo_hub::HfCache::new(c).model_repos()).unwrap_or_default()
    }
}

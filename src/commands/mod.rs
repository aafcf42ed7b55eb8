//! One module per command; [`Ctx`] holds what every command shares (resolved paths, style)
//! and opens the registry on demand, syncing the catalog into it when it changed.

mod cache;
mod delta;
mod env;
mod inspect;
mod list;
mod pull;
mod quantize;
mod registry;
mod results;
mod run;

pub use run::ModelNotFound;
mod show;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::ArgMatches;
use zoo_registry::{Catalog, Registry};

use crate::cli::{Cli, Command, RegistryCommand};
use crate::output::Style;
use crate::paths::{self, Resolved};

pub struct Ctx {
    pub db: Resolved<PathBuf>,
    pub catalog: Resolved<Option<PathBuf>>,
    pub style: Style,
}

impl Ctx {
    pub fn load_catalog(&self) -> anyhow::Result<Catalog> {
        match &self.catalog.value {
            None => Ok(Catalog::embedded()),
            Some(dir) => Ok(Catalog::from_dir(dir)?),
        }
    }

    /// Open the registry and make sure it holds the current catalog.
    pub async fn registry(&self) -> anyhow::Result<Registry> {
        let reg = Registry::open(&self.db.value).await?;
        let (origin, files) = match &self.catalog.value {
            None => ("embedded".to_string(), Catalog::embedded_sources()),
            Some(dir) => (dir.display().to_string(), Catalog::read_dir(dir)?),
        };
        if let Some(r) = reg
            .ensure_synced(&origin, files)
            .await
            .with_context(|| format!("syncing catalog {origin} into the registry"))?
        {
            eprintln!(
                "{} registry synced from the {} catalog: {} models, {} published results ({} changes)",
                self.style.dim("zoo:"),
                if self.catalog.value.is_none() { "built-in" } else { "given" },
                r.models,
                r.results,
                r.changed()
            );
        }
        Ok(reg)
    }

    /// HF repo ids present in the local Hugging Face cache.
    pub fn cached_repos(&self) -> Vec<String> {
        match paths::hf_cache().value {
            Some(root) => zoo_hub::HfCache::new(root).model_repos(),
            None => Vec::new(),
        }
    }
}

pub async fn run(cli: Cli, matches: &ArgMatches, style: Style) -> anyhow::Result<u8> {
    let ctx = Ctx {
        db: paths::database(cli.db.as_deref(), matches.value_source("db"))?,
        catalog: paths::catalog(cli.catalog.as_deref(), matches.value_source("catalog")),
        style,
    };
    // Generation streams from a worker thread, so these two must not hold the stdout lock.
    let command = match cli.command {
        Command::Run(a) => return run::run(&ctx, &mut std::io::stdout(), a).await,
        Command::Chat(a) => return run::chat(&ctx, a).await,
        c => c,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match command {
        Command::List(a) => list::list(&ctx, &mut out, a).await?,
        Command::Show(a) => show::show(&ctx, &mut out, a).await?,
        Command::Results(a) => results::results(&ctx, &mut out, a).await?,
        Command::Env(a) => env::env(&ctx, &mut out, a).await?,
        Command::Delta(d) => delta::delta(&ctx, &mut out, d).await?,
        Command::Inspect(a) => inspect::inspect(&ctx, &mut out, a)?,
        Command::Quantize(a) => quantize::quantize(&ctx, &mut out, a).await?,
        Command::Dequantize(a) => quantize::dequantize(&ctx, &mut out, a).await?,
        Command::Pull(a) => pull::pull(&ctx, &mut out, a).await?,
        Command::Verify(a) => cache::verify(&ctx, &mut out, a).await?,
        Command::Cache(c) => cache::cache(&ctx, &mut out, c).await?,
        Command::Add(a) => cache::add(&ctx, &mut out, a).await?,
        Command::Run(_) | Command::Chat(_) => unreachable!("handled above"),
        Command::Registry(rc) => match rc {
            RegistryCommand::Query(a) => list::query(&ctx, &mut out, a).await?,
            RegistryCommand::Check(a) => registry::check(&ctx, &mut out, a)?,
            RegistryCommand::Sync(a) => registry::sync(&ctx, &mut out, a).await?,
            RegistryCommand::ImportResults(a) => registry::import_results(&ctx, &mut out, a).await?,
            RegistryCommand::Benchmarks(a) => registry::benchmarks(&ctx, &mut out, a).await?,
            RegistryCommand::Datasets(a) => registry::datasets(&ctx, &mut out, a).await?,
            RegistryCommand::Families(a) => registry::families(&ctx, &mut out, a).await?,
        },
    };
    out.flush()?;
    Ok(code)
}

/// One hint line for errors a user can fix.
pub fn hint_for(e: &anyhow::Error) -> Option<String> {
    use zoo_registry::Error as R;
    let r = e.chain().find_map(|c| c.downcast_ref::<R>())?;
    Some(match r {
        R::Unwritable { .. } | R::Open { .. } => "pass --db PATH (or set ZOO_DB) to a writable location".into(),
        R::NotADatabase { .. } => {
            "point --db (or ZOO_DB) at a zoo registry, or move this file away to start a new one".into()
        }
        R::NewerSchema { .. } => "upgrade zoo, or use a separate database with --db PATH".into(),
        R::CatalogProblems { .. } => "run `zoo registry check` to see every problem with its file and line".into(),
        R::EmptyCatalog { .. } | R::Io { .. } => {
            "--catalog (or ZOO_CATALOG) must name a folder of *.toml catalog files".into()
        }
        R::UnknownModel { .. } => "see `zoo list` for the model names".into(),
        R::UnknownBenchmark { .. } | R::UnknownColumn { .. } => {
            "see `zoo registry benchmarks` for names and columns".into()
        }
        _ => return None,
    })
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

/// The current time as RFC 3339 UTC to the second (`2026-12-05T17:10:14Z`).
pub(crate) fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// `t` as RFC 3339 UTC to the second; the epoch for years RFC 3339 cannot write (past 9999).
fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggestions_for_typos() {
        let names: Vec<String> =
            ["phoenix-inst-chat-7b", "phoenix-chat-7b", "chimera-chat-7b", "apollo-7b"].map(String::from).into();
        assert_eq!(did_you_mean("phenix-inst-chat-7b", &names)[0], "phoenix-inst-chat-7b");
        assert_eq!(did_you_mean("apolo-7b", &names)[0], "apollo-7b");
        assert!(did_you_mean("zzzz", &names).is_empty());
    }

    #[test]
    fn rfc3339_shape() {
        let s = super::now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }

    /// Against Python: `datetime.fromtimestamp(t, timezone.utc).isoformat()` (`+00:00` written `Z`).
    #[test]
    fn rfc3339_matches_python() {
        for (t, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_786_123, "2000-02-29T01:02:03Z"),
            (1_721_743_509, "2024-07-23T14:05:09Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ] {
            let at = time::OffsetDateTime::from_unix_timestamp(t).unwrap() + time::Duration::milliseconds(999);
            assert_eq!(super::rfc3339(at), want, "{t}");
        }
    }
}

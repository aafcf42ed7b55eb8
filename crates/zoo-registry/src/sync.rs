//! `zoo registry sync`: load a checked catalog into the database as a diff.
//!
//! Every catalog-derived row carries a `record_hash` (sha256 of its JSON form). Sync inserts
//! what is new, rewrites what changed, deletes what left the catalog, and leaves the rest
//! alone, all in one `BEGIN IMMEDIATE` transaction under the registry lock: a second sync of the
//! same catalog changes nothing, and a crash mid-sync leaves the previous state. Rows the user
//! owns (origin `local` models, `measured` results, local copies) are never touched.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::catalog::{Catalog, SourceFile, content_hash, hex};
use crate::check::check;
use crate::db::Registry;
use crate::model::{ModelRecord, ResultRecord};
use crate::{Error, catalog::Records};

/// What a sync did, per kind of entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub catalog: String,
    pub catalog_hash: String,
    /// False when the database already held this exact catalog and nothing was done.
    pub ran: bool,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub models: usize,
    pub results: usize,
}

impl SyncReport {
    pub fn changed(&self) -> usize {
        self.added + self.updated + self.removed
    }
}

fn hash_of<T: Serialize>(v: &T) -> Result<String, Error> {
    let bytes = serde_json::to_vec(v)?;
    Ok(hex(&Sha256::digest(bytes)))
}

fn result_key(r: &ResultRecord) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        r.model.to_lowercase(),
        r.benchmark,
        r.opponent.as_deref().unwrap_or("").to_lowercase()
    )
}

impl Registry {
    /// Sync `cat` unless the database already holds it (by content hash); `force` diffs anyway.
    pub async fn sync(&self, cat: &Catalog, force: bool) -> Result<SyncReport, Error> {
        let problems = check(cat);
        if let Some(first) = problems.first() {
            return Err(Error::CatalogProblems { count: problems.len(), first: first.to_string() });
        }
        let hash = cat.content_hash();
        let mut report = SyncReport { catalog: cat.origin.clone(), catalog_hash: hash.clone(), ..Default::default() };
        if !force && self.meta("catalog_hash").await?.as_deref() == Some(hash.as_str()) {
            return Ok(report);
        }
        let _lock = self.lock()?;
        // Another process may have synced while we waited for the lock.
        if !force && self.meta("catalog_hash").await?.as_deref() == Some(hash.as_str()) {
            return Ok(report);
        }
        let records = cat.records();
        report.models = records.models.len();
        report.results = records.results.len();
        self.apply(&records, &hash, &cat.origin, &mut report).await?;
        report.ran = true;
        Ok(report)
    }

    /// Sync only when the catalog differs from what the database holds. The check costs one
    /// hash of the files; they are parsed only when a sync is needed. Returns the report when
    /// a sync ran.
    pub async fn ensure_synced(&self, origin: &str, files: Vec<SourceFile>) -> Result<Option<SyncReport>, Error> {
        if self.meta("catalog_hash").await?.as_deref() == Some(content_hash(&files).as_str()) {
            return Ok(None);
        }
        let r = self.sync(&Catalog::from_sources(origin.to_string(), files), false).await?;
        Ok(r.ran.then_some(r))
    }

    async fn apply(&self, rec: &Records, hash: &str, origin: &str, report: &mut SyncReport) -> Result<(), Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;

        // Families.
        let old = hashes(&mut tx, "SELECT name, record_hash FROM families").await?;
        let plan = Plan::new(&old, &rec.families, |f| f.name.clone(), report)?;
        delete_keys(&mut tx, "DELETE FROM families WHERE name = ?", &plan.delete).await?;
        for (f, h) in plan.insert {
            sqlx::query("INSERT INTO families (name, title, organization, homepage, description, source_file, record_hash) VALUES (?,?,?,?,?,?,?)")
                .bind(&f.name).bind(&f.title).bind(&f.organization).bind(&f.homepage).bind(&f.description).bind(&f.source_file).bind(&h)
                .execute(&mut *tx).await?;
        }

        // Models: catalog ones only; a local model of the same name yields to the catalog.
        let old = hashes(&mut tx, "SELECT lower(name), record_hash FROM models WHERE origin = 'catalog'").await?;
        let plan = Plan::new(&old, &rec.models, |m| m.name.to_lowercase(), report)?;
        delete_keys(&mut tx, "DELETE FROM models WHERE name = ? AND origin = 'catalog'", &plan.delete).await?;
        for (m, h) in plan.insert {
            sqlx::query("DELETE FROM models WHERE name = ?").bind(&m.name).execute(&mut *tx).await?;
            insert_model(&mut tx, m, &h).await?;
        }

        // Datasets.
        let old = hashes(&mut tx, "SELECT name, record_hash FROM datasets").await?;
        let plan = Plan::new(&old, &rec.datasets, |d| d.name.clone(), report)?;
        delete_keys(&mut tx, "DELETE FROM datasets WHERE name = ?", &plan.delete).await?;
        for (d, h) in plan.insert {
            sqlx::query("INSERT INTO datasets (name, title, hf_repo, kind, languages, license, description, source, record_hash) VALUES (?,?,?,?,?,?,?,?,?)")
                .bind(&d.name).bind(&d.title).bind(&d.hf_repo).bind(&d.kind).bind(serde_json::to_string(&d.languages)?)
                .bind(&d.license).bind(&d.description).bind(&d.source).bind(&h)
                .execute(&mut *tx).await?;
        }

        // Benchmarks.
        let old = hashes(&mut tx, "SELECT name, record_hash FROM benchmarks").await?;
        let plan = Plan::new(&old, &rec.benchmarks, |b| b.name.clone(), report)?;
        delete_keys(&mut tx, "DELETE FROM benchmarks WHERE name = ?", &plan.delete).await?;
        for (b, h) in plan.insert {
            sqlx::query("INSERT INTO benchmarks (name, title, dataset, metric, description, source, columns, record_hash) VALUES (?,?,?,?,?,?,?,?)")
                .bind(&b.name).bind(&b.title).bind(&b.dataset).bind(&b.metric).bind(&b.description).bind(&b.source)
                .bind(serde_json::to_string(&b.columns)?).bind(&h)
                .execute(&mut *tx).await?;
        }

        // Published results, keyed by (model, benchmark, opponent); measured runs are untouched.
        let old = hashes(
            &mut tx,
            "SELECT lower(model) || char(31) || benchmark || char(31) || lower(coalesce(opponent, '')), record_hash \
             FROM eval_runs WHERE origin = 'published'",
        )
        .await?;
        let plan = Plan::new(&old, &rec.results, result_key, report)?;
        delete_keys(
            &mut tx,
            "DELETE FROM eval_runs WHERE origin = 'published' AND \
             lower(model) || char(31) || benchmark || char(31) || lower(coalesce(opponent, '')) = ?",
            &plan.delete,
        )
        .await?;
        for (r, h) in plan.insert {
            insert_run(&mut tx, r, &h).await?;
        }

        for (k, v) in [("catalog_hash", hash), ("catalog_origin", origin), ("zoo_version", env!("CARGO_PKG_VERSION"))] {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What to change in one table: rows whose key is gone or whose hash changed are deleted;
/// new and changed rows are inserted.
struct Plan<'a, T> {
    delete: Vec<String>,
    insert: Vec<(&'a T, String)>,
}

impl<'a, T: Serialize> Plan<'a, T> {
    fn new(
        old: &HashMap<String, String>,
        items: &'a [T],
        key: impl Fn(&T) -> String,
        report: &mut SyncReport,
    ) -> Result<Self, Error> {
        let mut plan = Plan { delete: Vec::new(), insert: Vec::new() };
        let mut seen = std::collections::HashSet::new();
        for item in items {
            let (k, h) = (key(item), hash_of(item)?);
            match old.get(&k) {
                Some(o) if *o == h => report.unchanged += 1,
                Some(_) => {
                    report.updated += 1;
                    plan.delete.push(k.clone());
                    plan.insert.push((item, h));
                }
                None => {
                    report.added += 1;
                    plan.insert.push((item, h));
                }
            }
            seen.insert(k);
        }
        for k in old.keys().filter(|k| !seen.contains(*k)) {
            report.removed += 1;
            plan.delete.push(k.clone());
        }
        Ok(plan)
    }
}

async fn delete_keys(tx: &mut sqlx::SqliteConnection, sql: &'static str, keys: &[String]) -> Result<(), Error> {
    for k in keys {
        sqlx::query(sql).bind(k).execute(&mut *tx).await?;
    }
    Ok(())
}

async fn hashes(tx: &mut sqlx::SqliteConnection, sql: &'static str) -> Result<HashMap<String, String>, Error> {
    let rows = sqlx::query(sql).fetch_all(&mut *tx).await?;
    Ok(rows.iter().map(|r| (r.get::<String, _>(0), r.get::<String, _>(1))).collect())
}

pub(crate) async fn insert_model(tx: &mut sqlx::SqliteConnection, m: &ModelRecord, hash: &str) -> Result<(), Error> {
    let quant = m.quantization.as_ref().map(serde_json::to_string).transpose()?;
    let mirrors = if m.mirrors.is_empty() { None } else { Some(serde_json::to_string(&m.mirrors)?) };
    let sampling = m.sampling.as_ref().map(serde_json::to_string).transpose()?;
    sqlx::query(
        "INSERT INTO models (name, display_name, family, kind, arch, hf_architecture, hf_repo, revision, base, backbone, \
         delta_algorithm, params, params_source, dtype, languages, license, chat_template, context_length, quantization, open_model, \
         open_data, claimed_languages, instruction_data, conversation_data, release_date, description, homepage, paper, \
         source, origin, source_file, source_line, record_hash, mirrors, sampling) \
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )
    .bind(&m.name)
    .bind(&m.display_name)
    .bind(&m.family)
    .bind(&m.kind)
    .bind(&m.arch)
    .bind(&m.hf_architecture)
    .bind(&m.hf_repo)
    .bind(&m.revision)
    .bind(&m.base)
    .bind(&m.backbone)
    .bind(&m.delta_algorithm)
    .bind(m.params)
    .bind(&m.params_source)
    .bind(&m.dtype)
    .bind(serde_json::to_string(&m.languages)?)
    .bind(&m.license)
    .bind(&m.chat_template)
    .bind(m.context_length)
    .bind(quant)
    .bind(m.open_model)
    .bind(m.open_data)
    .bind(&m.claimed_languages)
    .bind(&m.instruction_data)
    .bind(&m.conversation_data)
    .bind(&m.release_date)
    .bind(&m.description)
    .bind(&m.homepage)
    .bind(&m.paper)
    .bind(&m.source)
    .bind(&m.origin)
    .bind(&m.source_file)
    .bind(m.source_line)
    .bind(hash)
    .bind(mirrors)
    .bind(sampling)
    .execute(&mut *tx)
    .await?;
    for l in &m.languages {
        sqlx::query("INSERT OR IGNORE INTO model_languages (model, lang) VALUES (?, ?)")
            .bind(&m.name)
            .bind(l)
            .execute(&mut *tx)
            .await?;
    }
    for f in m.files.iter().flatten() {
        sqlx::query("INSERT INTO model_files (model, path, size, sha256) VALUES (?, ?, ?, ?)")
            .bind(&m.name)
            .bind(&f.path)
            .bind(f.size)
            .bind(&f.sha256)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_run(tx: &mut sqlx::SqliteConnection, r: &ResultRecord, hash: &str) -> Result<i64, Error> {
    let p = r.provenance.clone().unwrap_or_default();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO eval_runs (origin, model, benchmark, opponent, source, model_hash, prompt_format, mode, seed, zoo_version, notes, recorded_at, record_hash, operation, inputs) \
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
    )
    .bind(&r.origin)
    .bind(&r.model)
    .bind(&r.benchmark)
    .bind(&r.opponent)
    .bind(&r.source)
    .bind(&p.model_hash)
    .bind(&p.prompt_format)
    .bind(&p.mode)
    .bind(p.seed)
    .bind(&p.zoo_version)
    .bind(&p.notes)
    .bind(&r.recorded_at)
    .bind(hash)
    .bind(&p.operation)
    .bind(serde_json::to_string(&p.inputs)?)
    .fetch_one(&mut *tx)
    .await?;
    for (k, v) in &r.scores {
        sqlx::query("INSERT INTO scores (run_id, column_key, value) VALUES (?, ?, ?)")
            .bind(id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    Ok(id)
}

//! Reading the registry: filtered and sorted model listings, one model with its files, results
//! (published and measured side by side), benchmarks; and recording measured results.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::Error;
use crate::db::Registry;
use crate::model::{BenchmarkRecord, DatasetRecord, FamilyRecord, FileRecord, ModelRecord, Provenance, ResultRecord};
use crate::sync::insert_run;

/// Sort orders of `zoo list` / `zoo registry query`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Name,
    Family,
    Params,
    Release,
    Context,
    Kind,
}

/// Filters of `zoo list` / `zoo registry query`. All given filters must hold.
#[derive(Debug, Clone, Default)]
pub struct ModelFilter {
    pub family: Option<String>,
    pub arch: Option<String>,
    pub lang: Option<String>,
    pub kind: Option<String>,
    /// Models whose `base` is this model.
    pub base: Option<String>,
    /// Substring of name, display name or description (case-insensitive).
    pub search: Option<String>,
    /// Only models with a local copy (registered, or their repo in the HF cache).
    pub local_only: bool,
    pub sort: SortKey,
    pub descending: bool,
    pub limit: Option<u32>,
}

const MODEL_COLUMNS: &str = "m.name, m.display_name, m.family, m.kind, m.arch, m.hf_architecture, m.hf_repo, m.revision, \
    m.base, m.backbone, m.delta_algorithm, m.params, m.params_source, m.dtype, m.languages, m.license, \
    m.chat_template, m.context_length, m.quantization, m.open_model, m.open_data, m.claimed_languages, \
    m.instruction_data, m.conversation_data, m.release_date, m.description, m.homepage, m.paper, m.source, m.origin, \
    m.source_file, m.source_line, m.mirrors, m.sampling, EXISTS (SELECT 1 FROM local_copies lc WHERE lc.model = m.name) AS has_copy";

fn model_from_row(r: &SqliteRow, cached: Option<&[String]>) -> Result<ModelRecord, Error> {
    let langs: String = r.try_get("languages")?;
    let quant: Option<String> = r.try_get("quantization")?;
    let mirrors: Option<String> = r.try_get("mirrors")?;
    let sampling: Option<String> = r.try_get("sampling")?;
    let hf_repo: Option<String> = r.try_get("hf_repo")?;
    let has_copy: bool = r.try_get("has_copy")?;
    let in_cache = |c: &[String]| hf_repo.as_ref().is_some_and(|h| c.iter().any(|x| x.eq_ignore_ascii_case(h)));
    // Without a cache listing, a registered copy still proves the model is local.
    let local = match cached {
        Some(c) => Some(has_copy || in_cache(c)),
        None => has_copy.then_some(true),
    };
    Ok(ModelRecord {
        name: r.try_get("name")?,
        display_name: r.try_get("display_name")?,
        family: r.try_get("family")?,
        kind: r.try_get("kind")?,
        arch: r.try_get("arch")?,
        hf_architecture: r.try_get("hf_architecture")?,
        hf_repo,
        revision: r.try_get("revision")?,
        base: r.try_get("base")?,
        backbone: r.try_get("backbone")?,
        delta_algorithm: r.try_get("delta_algorithm")?,
        params: r.try_get("params")?,
        params_source: r.try_get("params_source")?,
        dtype: r.try_get("dtype")?,
        languages: serde_json::from_str(&langs)?,
        license: r.try_get("license")?,
        chat_template: r.try_get("chat_template")?,
        context_length: r.try_get("context_length")?,
        quantization: quant.map(|q| serde_json::from_str(&q)).transpose()?,
        open_model: r.try_get("open_model")?,
        open_data: r.try_get("open_data")?,
        claimed_languages: r.try_get("claimed_languages")?,
        instruction_data: r.try_get("instruction_data")?,
        conversation_data: r.try_get("conversation_data")?,
        release_date: r.try_get("release_date")?,
        description: r.try_get("description")?,
        homepage: r.try_get("homepage")?,
        paper: r.try_get("paper")?,
        source: r.try_get("source")?,
        origin: r.try_get("origin")?,
        source_file: r.try_get("source_file")?,
        source_line: r.try_get("source_line")?,
        local,
        files: None,
        mirrors: mirrors.map(|m| serde_json::from_str(&m)).transpose()?.unwrap_or_default(),
        sampling: sampling.map(|s| serde_json::from_str(&s)).transpose()?,
    })
}

/// Per-benchmark results of one query, ready to lay out as a table.
#[derive(Debug, Clone, Serialize)]
pub struct ResultTable {
    pub benchmark: BenchmarkRecord,
    pub rows: Vec<ResultRecord>,
}

impl Registry {
    /// Models matching `f`, sorted and limited in SQL. `cached` lists the HF repo ids present
    /// in the local Hugging Face cache; without it `local` is only known for registered copies.
    pub async fn models(&self, f: &ModelFilter, cached: Option<&[String]>) -> Result<Vec<ModelRecord>, Error> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {MODEL_COLUMNS} FROM models m WHERE 1 = 1"));
        if let Some(v) = &f.family {
            q.push(" AND m.family = ").push_bind(v.to_lowercase());
        }
        if let Some(v) = &f.arch {
            q.push(" AND lower(m.arch) = ").push_bind(v.to_lowercase());
        }
        if let Some(v) = &f.kind {
            q.push(" AND m.kind = ").push_bind(v.to_lowercase());
        }
        if let Some(v) = &f.base {
            q.push(" AND m.base = ").push_bind(v.clone());
        }
        if let Some(v) = &f.lang {
            q.push(" AND m.name IN (SELECT model FROM model_languages WHERE lang = ")
                .push_bind(v.to_lowercase())
                .push(")");
        }
        if let Some(v) = &f.search {
            let pat = format!("%{}%", v.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            q.push(" AND (lower(m.name) LIKE ").push_bind(pat.clone()).push(" ESCAPE '\\'");
            q.push(" OR lower(coalesce(m.display_name, '')) LIKE ").push_bind(pat.clone()).push(" ESCAPE '\\'");
            q.push(" OR lower(coalesce(m.description, '')) LIKE ").push_bind(pat).push(" ESCAPE '\\')");
        }
        if f.local_only {
            let repos = cached.unwrap_or_default();
            q.push(" AND (EXISTS (SELECT 1 FROM local_copies lc WHERE lc.model = m.name) OR lower(m.hf_repo) IN (SELECT lower(value) FROM json_each(")
                .push_bind(serde_json::to_string(repos)?)
                .push(")))");
        }
        let dir = if f.descending { "DESC" } else { "ASC" };
        let order = match f.sort {
            SortKey::Name => format!("m.name {dir}"),
            SortKey::Family => format!("m.family {dir}, m.name"),
            SortKey::Params => format!("m.params IS NULL, m.params {dir}, m.name"),
            SortKey::Release => format!("m.release_date IS NULL, m.release_date {dir}, m.name"),
            SortKey::Context => format!("m.context_length IS NULL, m.context_length {dir}, m.name"),
            SortKey::Kind => format!("m.kind {dir}, m.name"),
        };
        q.push(format!(" ORDER BY {order}"));
        if let Some(n) = f.limit {
            q.push(" LIMIT ").push_bind(i64::from(n));
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(|r| model_from_row(r, cached)).collect()
    }

    /// One model with its files; `cached` are the HF repo ids present in the local cache.
    pub async fn model(&self, name: &str, cached: &[String]) -> Result<Option<ModelRecord>, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {MODEL_COLUMNS} FROM models m WHERE m.name = ?")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut m = model_from_row(&row, Some(cached))?;
        let files = sqlx::query("SELECT path, size, sha256 FROM model_files WHERE model = ? ORDER BY path")
            .bind(&m.name)
            .fetch_all(&self.pool)
            .await?;
        m.files = Some(
            files
                .iter()
                .map(|r| Ok(FileRecord { path: r.try_get(0)?, size: r.try_get(1)?, sha256: r.try_get(2)? }))
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
        );
        Ok(Some(m))
    }

    /// A model named `id`, else the only model whose `hf_repo` is `id` (with its files).
    pub async fn model_by_name_or_repo(&self, id: &str) -> Result<Option<ModelRecord>, Error> {
        if let Some(m) = self.model(id, &[]).await? {
            return Ok(Some(m));
        }
        match self.models_by_repo(id).await?.as_slice() {
            [only] => self.model(only, &[]).await,
            _ => Ok(None),
        }
    }

    /// Every model name, for "did you mean".
    pub async fn model_names(&self) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar("SELECT name FROM models ORDER BY name").fetch_all(&self.pool).await?)
    }

    /// Models whose `hf_repo` is `repo` (case-insensitive).
    pub async fn models_by_repo(&self, repo: &str) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar("SELECT name FROM models WHERE lower(hf_repo) = lower(?) ORDER BY name")
            .bind(repo)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn count_models(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM models").fetch_one(&self.pool).await?)
    }

    pub async fn families(&self) -> Result<Vec<FamilyRecord>, Error> {
        let rows = sqlx::query(
            "SELECT name, title, organization, homepage, description, source_file FROM families ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FamilyRecord {
                    name: r.try_get(0)?,
                    title: r.try_get(1)?,
                    organization: r.try_get(2)?,
                    homepage: r.try_get(3)?,
                    description: r.try_get(4)?,
                    source_file: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn datasets(&self) -> Result<Vec<DatasetRecord>, Error> {
        let rows = sqlx::query(
            "SELECT name, title, hf_repo, kind, languages, license, description, source FROM datasets ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let langs: String = r.try_get(4)?;
                Ok(DatasetRecord {
                    name: r.try_get(0)?,
                    title: r.try_get(1)?,
                    hf_repo: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    languages: serde_json::from_str(&langs)?,
                    license: r.try_get(5)?,
                    description: r.try_get(6)?,
                    source: r.try_get(7)?,
                })
            })
            .collect()
    }

    pub async fn benchmarks(&self) -> Result<Vec<BenchmarkRecord>, Error> {
        let rows = sqlx::query(
            "SELECT name, title, dataset, metric, description, source, columns FROM benchmarks ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let cols: String = r.try_get(6)?;
                Ok(BenchmarkRecord {
                    name: r.try_get(0)?,
                    title: r.try_get(1)?,
                    dataset: r.try_get(2)?,
                    metric: r.try_get(3)?,
                    description: r.try_get(4)?,
                    source: r.try_get(5)?,
                    columns: serde_json::from_str(&cols)?,
                })
            })
            .collect()
    }

    /// Results grouped by benchmark (benchmark order by name; rows published first, then
    /// measured, each by model name). `model` matches the model or the opponent.
    pub async fn results(&self, model: Option<&str>, benchmark: Option<&str>) -> Result<Vec<ResultTable>, Error> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT r.id, r.origin, r.model, r.benchmark, r.opponent, r.source, r.model_hash, r.prompt_format, r.mode, \
             r.seed, r.zoo_version, r.notes, r.recorded_at, s.column_key, s.value, r.operation, r.inputs \
             FROM eval_runs r JOIN scores s ON s.run_id = r.id WHERE 1 = 1",
        );
        if let Some(m) = model {
            q.push(" AND (r.model = ")
                .push_bind(m.to_string())
                .push(" OR r.opponent = ")
                .push_bind(m.to_string())
                .push(")");
        }
        if let Some(b) = benchmark {
            q.push(" AND r.benchmark = ").push_bind(b.to_lowercase());
        }
        q.push(" ORDER BY r.benchmark, r.origin DESC, r.id");
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut runs: Vec<(i64, ResultRecord)> = Vec::new();
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            if runs.last().map(|(i, _)| *i) != Some(id) {
                let origin: String = r.try_get(1)?;
                let provenance = (origin == "measured")
                    .then(|| -> Result<Provenance, sqlx::Error> {
                        Ok(Provenance {
                            model_hash: r.try_get(6)?,
                            prompt_format: r.try_get(7)?,
                            mode: r.try_get(8)?,
                            seed: r.try_get(9)?,
                            zoo_version: r.try_get(10)?,
                            notes: r.try_get(11)?,
                            operation: r.try_get(15)?,
                            inputs: serde_json::from_str(&r.try_get::<String, _>(16)?).unwrap_or_default(),
                        })
                    })
                    .transpose()?;
                runs.push((
                    id,
                    ResultRecord {
                        model: r.try_get(2)?,
                        benchmark: r.try_get(3)?,
                        opponent: r.try_get(4)?,
                        origin,
                        source: r.try_get(5)?,
                        scores: BTreeMap::new(),
                        provenance,
                        recorded_at: r.try_get(12)?,
                    },
                ));
            }
            if let Some((_, rec)) = runs.last_mut() {
                rec.scores.insert(r.try_get(13)?, r.try_get(14)?);
            }
        }
        let benches = self.benchmarks().await?;
        let mut tables: Vec<ResultTable> = Vec::new();
        for (_, rec) in runs {
            match tables.iter_mut().find(|t| t.benchmark.name == rec.benchmark) {
                Some(t) => t.rows.push(rec),
                None => {
                    let Some(b) = benches.iter().find(|b| b.name == rec.benchmark) else { continue };
                    tables.push(ResultTable { benchmark: b.clone(), rows: vec![rec] });
                }
            }
        }
        Ok(tables)
    }

    /// Record a measured result. The model and benchmark must exist and every score must be a
    /// column of the benchmark; the run is written in one transaction.
    pub async fn record_result(&self, r: &ResultRecord) -> Result<i64, Error> {
        let (rec, hash) = self.checked_results(std::slice::from_ref(r)).await?.remove(0);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id = insert_run(&mut tx, &rec, &hash).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Record several measured results, all or none: every one is checked as
    /// [`record_result`](Self::record_result) checks it before any is written, then all are
    /// written in one transaction. Returns their row ids in order.
    pub async fn record_results(&self, rs: &[ResultRecord]) -> Result<Vec<i64>, Error> {
        let checked = self.checked_results(rs).await?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut ids = Vec::with_capacity(checked.len());
        for (rec, hash) in &checked {
            ids.push(insert_run(&mut tx, rec, hash).await?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Each of `rs` as a measured result with its record hash, after checking its model,
    /// benchmark and columns (the model names and benchmarks are read once for all).
    pub(crate) async fn checked_results(&self, rs: &[ResultRecord]) -> Result<Vec<(ResultRecord, String)>, Error> {
        let names = self.model_names().await?;
        let benches = self.benchmarks().await?;
        rs.iter().map(|r| checked_result(r, &names, &benches)).collect()
    }
}

fn checked_result(
    r: &ResultRecord,
    names: &[String],
    benches: &[BenchmarkRecord],
) -> Result<(ResultRecord, String), Error> {
    if !names.iter().any(|n| n.eq_ignore_ascii_case(&r.model)) {
        return Err(Error::UnknownModel { name: r.model.clone() });
    }
    let Some(b) = benches.iter().find(|b| b.name == r.benchmark) else {
        return Err(Error::UnknownBenchmark { name: r.benchmark.clone() });
    };
    for k in r.scores.keys() {
        if !b.columns.iter().any(|c| &c.key == k) {
            return Err(Error::UnknownColumn { benchmark: b.name.clone(), column: k.clone() });
        }
    }
    if r.scores.is_empty() {
        return Err(Error::UnknownColumn { benchmark: b.name.clone(), column: "(no scores)".into() });
    }
    let mut rec = r.clone();
    rec.origin = "measured".into();
    let hash = crate::catalog::hex(&<sha2::Sha256 as sha2::Digest>::digest(serde_json::to_vec(&rec)?));
    Ok((rec, hash))
}

//! Evaluation jobs and their predictions (migration 0006): what makes a measured result
//! resumable. A job is found by its key; predictions are written in one transaction per batch
//! with `INSERT OR IGNORE`, so a question is never scored twice; finishing a job records its
//! result in `eval_runs` and links it, in one transaction.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::model::ResultRecord;
use crate::{Error, Registry};

/// One evaluation configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalJob {
    pub id: Option<i64>,
    /// sha256 over everything that decides the numbers.
    pub key: String,
    /// `mcq`, ...
    pub kind: String,
    pub model: String,
    pub model_hash: Option<String>,
    /// The registry benchmark its result is recorded under, if any.
    pub benchmark: Option<String>,
    pub data_path: String,
    pub data_sha256: String,
    pub selection: String,
    pub prompt_format: String,
    pub mode: String,
    pub seed: Option<i64>,
    /// Questions selected.
    pub total: i64,
    pub zoo_version: String,
    /// Other settings, as JSON.
    pub settings: serde_json::Value,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub run_id: Option<i64>,
}

/// One scored question of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPrediction {
    pub idx: i64,
    pub subset: String,
    pub language: Option<String>,
    pub pred: Option<String>,
    pub gold: String,
    pub correct: bool,
    /// Per-choice scores or the generated text, as JSON.
    pub detail: Option<serde_json::Value>,
}

const JOB_COLUMNS: &str = "id, key, kind, model, model_hash, benchmark, data_path, data_sha256, selection, \
     prompt_format, mode, seed, total, zoo_version, settings, started_at, finished_at, run_id";

fn job_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<EvalJob, Error> {
    let settings: String = r.try_get("settings")?;
    Ok(EvalJob {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        kind: r.try_get("kind")?,
        model: r.try_get("model")?,
        model_hash: r.try_get("model_hash")?,
        benchmark: r.try_get("benchmark")?,
        data_path: r.try_get("data_path")?,
        data_sha256: r.try_get("data_sha256")?,
        selection: r.try_get("selection")?,
        prompt_format: r.try_get("prompt_format")?,
        mode: r.try_get("mode")?,
        seed: r.try_get("seed")?,
        total: r.try_get("total")?,
        zoo_version: r.try_get("zoo_version")?,
        settings: serde_json::from_str(&settings)?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        run_id: r.try_get("run_id")?,
    })
}

impl Registry {
    /// The job with `job.key`, created from `job` when there is none.
    pub async fn open_eval_job(&self, job: &EvalJob) -> Result<EvalJob, Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let found = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM eval_jobs WHERE key = ?")))
            .bind(&job.key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = found {
            tx.commit().await?;
            return job_from_row(&r);
        }
        let id = sqlx::query(
            "INSERT INTO eval_jobs (key, kind, model, model_hash, benchmark, data_path, data_sha256, selection, \
             prompt_format, mode, seed, total, zoo_version, settings, started_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&job.key)
        .bind(&job.kind)
        .bind(&job.model)
        .bind(&job.model_hash)
        .bind(&job.benchmark)
        .bind(&job.data_path)
        .bind(&job.data_sha256)
        .bind(&job.selection)
        .bind(&job.prompt_format)
        .bind(&job.mode)
        .bind(job.seed)
        .bind(job.total)
        .bind(&job.zoo_version)
        .bind(serde_json::to_string(&job.settings)?)
        .bind(&job.started_at)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        tx.commit().await?;
        Ok(EvalJob { id: Some(id), ..job.clone() })
    }

    /// Every job, newest first.
    pub async fn eval_jobs(&self) -> Result<Vec<EvalJob>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM eval_jobs ORDER BY id DESC")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// The predictions of a job so far, by index.
    pub async fn eval_predictions(&self, job_id: i64) -> Result<Vec<StoredPrediction>, Error> {
        let rows = sqlx::query(
            "SELECT idx, subset, language, pred, gold, correct, detail FROM eval_predictions WHERE job_id = ? ORDER BY idx",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: Option<String> = r.try_get("detail")?;
                Ok(StoredPrediction {
                    idx: r.try_get("idx")?,
                    subset: r.try_get("subset")?,
                    language: r.try_get("language")?,
                    pred: r.try_get("pred")?,
                    gold: r.try_get("gold")?,
                    correct: r.try_get::<i64, _>("correct")? != 0,
                    detail: detail.map(|d| serde_json::from_str(&d)).transpose()?,
                })
            })
            .collect()
    }

    /// Forgets a job's predictions and its finish (a restart); a result it recorded stays in
    /// `eval_runs` as history.
    pub async fn clear_eval_predictions(&self, job_id: i64) -> Result<(), Error> {
        self.reset_job(job_id, "DELETE FROM eval_predictions WHERE job_id = ?").await
    }

    /// Runs `delete` (one `?`: the job id) and unmarks the job finished, in one transaction.
    pub(crate) async fn reset_job(&self, job_id: i64, delete: &'static str) -> Result<(), Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(delete).bind(job_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE eval_jobs SET finished_at = NULL, run_id = NULL WHERE id = ?")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a batch of predictions in one transaction; ones already stored are kept as they
    /// are. Returns how many were new.
    pub async fn record_predictions(&self, job_id: i64, preds: &[StoredPrediction]) -> Result<u64, Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut new = 0;
        for p in preds {
            new += sqlx::query(
                "INSERT OR IGNORE INTO eval_predictions (job_id, idx, subset, language, pred, gold, correct, detail) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(job_id)
            .bind(p.idx)
            .bind(&p.subset)
            .bind(&p.language)
            .bind(&p.pred)
            .bind(&p.gold)
            .bind(i64::from(p.correct))
            .bind(p.detail.as_ref().map(serde_json::to_string).transpose()?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Marks a job finished at `at`, recording `result` (when given) as its measured result, in
    /// one transaction: a job is never finished without its result, nor a result recorded
    /// twice. Returns the result's run id.
    pub async fn finish_eval_job(
        &self,
        job_id: i64,
        at: &str,
        result: Option<&ResultRecord>,
    ) -> Result<Option<i64>, Error> {
        let results: Vec<ResultRecord> = result.into_iter().cloned().collect();
        Ok(self.finish_eval_job_with(job_id, at, &results).await?.first().copied())
    }

    /// [`finish_eval_job`](Self::finish_eval_job) with any number of results (a judge run has
    /// one per model against the reference); the job links the first. A job finished before
    /// returns the run it links and records nothing.
    pub async fn finish_eval_job_with(
        &self,
        job_id: i64,
        at: &str,
        results: &[ResultRecord],
    ) -> Result<Vec<i64>, Error> {
        let checked = self.checked_results(results).await?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done: Option<Option<String>> = sqlx::query_scalar("SELECT finished_at FROM eval_jobs WHERE id = ?")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?;
        if matches!(done, Some(Some(_))) {
            let run: Option<i64> = sqlx::query_scalar("SELECT run_id FROM eval_jobs WHERE id = ?")
                .bind(job_id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(run.into_iter().collect());
        }
        let mut run_ids = Vec::with_capacity(checked.len());
        for (rec, hash) in &checked {
            run_ids.push(crate::sync::insert_run(&mut tx, rec, hash).await?);
        }
        sqlx::query("UPDATE eval_jobs SET finished_at = ?, run_id = ? WHERE id = ?")
            .bind(at)
            .bind(run_ids.first())
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(run_ids)
    }
}

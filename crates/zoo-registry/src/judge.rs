//! Open-question answers, judge verdicts and human votes (migration 0007). Answers and verdicts
//! hang off an `eval_jobs` row and are stored as they are made (one transaction per batch,
//! `INSERT OR IGNORE`), so a killed `zoo eval judge` continues without asking twice; a vote is
//! stored the moment its key is pressed, and voting again on the same pair replaces it.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Error, Registry};

/// One judge call's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJudgment {
    pub question_id: String,
    /// 0; pairwise judging also stores 1 (the answers swapped).
    pub game: i64,
    /// The models in the order the judge saw them.
    pub shown: Vec<String>,
    /// The judge's text, as it answered.
    pub output: String,
    /// What was read from it; `None`: unparsable.
    pub verdict: Option<serde_json::Value>,
}

/// One human vote: model A against model B on one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredVote {
    pub questions_sha256: String,
    pub question_id: String,
    pub model_a: String,
    pub model_b: String,
    /// `win`, `tie` or `lose` (A against B).
    pub vote: String,
    pub a_shown_left: bool,
    pub voter: String,
    pub recorded_at: String,
}

impl Registry {
    /// The answers stored for a job: (question id, answer).
    pub async fn eval_answers(&self, job_id: i64) -> Result<Vec<(String, String)>, Error> {
        let rows = sqlx::query("SELECT question_id, answer FROM eval_answers WHERE job_id = ? ORDER BY question_id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("question_id")?, r.try_get("answer")?))).collect()
    }

    /// Stores answers in one transaction; ones already stored stay. Returns how many were new.
    pub async fn record_answers(&self, job_id: i64, answers: &[(String, String)]) -> Result<u64, Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut new = 0;
        for (q, a) in answers {
            new += sqlx::query("INSERT OR IGNORE INTO eval_answers (job_id, question_id, answer) VALUES (?, ?, ?)")
                .bind(job_id)
                .bind(q)
                .bind(a)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    /// The verdicts stored for a judge job, by question then game.
    pub async fn eval_judgments(&self, job_id: i64) -> Result<Vec<StoredJudgment>, Error> {
        let rows = sqlx::query(
            "SELECT question_id, game, shown, output, verdict FROM eval_judgments WHERE job_id = ? \
             ORDER BY question_id, game",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let shown: String = r.try_get("shown")?;
                let verdict: Option<String> = r.try_get("verdict")?;
                Ok(StoredJudgment {
                    question_id: r.try_get("question_id")?,
                    game: r.try_get("game")?,
                    shown: serde_json::from_str(&shown)?,
                    output: r.try_get("output")?,
                    verdict: verdict.map(|v| serde_json::from_str(&v)).transpose()?,
                })
            })
            .collect()
    }

    /// Stores verdicts in one transaction; ones already stored stay. Returns how many were new.
    pub async fn record_judgments(&self, job_id: i64, judgments: &[StoredJudgment]) -> Result<u64, Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut new = 0;
        for j in judgments {
            new += sqlx::query(
                "INSERT OR IGNORE INTO eval_judgments (job_id, question_id, game, shown, output, verdict) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(job_id)
            .bind(&j.question_id)
            .bind(j.game)
            .bind(serde_json::to_string(&j.shown)?)
            .bind(&j.output)
            .bind(j.verdict.as_ref().map(serde_json::to_string).transpose()?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Forgets a judge job's verdicts and its finish (`--restart`); results it recorded stay
    /// in `eval_runs` as history.
    pub async fn clear_judgments(&self, job_id: i64) -> Result<(), Error> {
        self.reset_job(job_id, "DELETE FROM eval_judgments WHERE job_id = ?").await
    }

    /// Stores a vote, replacing the same voter's earlier vote on the same question and pair.
    pub async fn record_vote(&self, v: &StoredVote) -> Result<(), Error> {
        if !matches!(v.vote.as_str(), "win" | "tie" | "lose") {
            return Err(Error::Invalid(format!("vote {:?} is not win, tie or lose", v.vote)));
        }
        sqlx::query(
            "INSERT INTO eval_votes (questions_sha256, question_id, model_a, model_b, vote, a_shown_left, voter, \
             recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (questions_sha256, question_id, model_a, model_b, voter) DO UPDATE SET \
             vote = excluded.vote, a_shown_left = excluded.a_shown_left, recorded_at = excluded.recorded_at",
        )
        .bind(&v.questions_sha256)
        .bind(&v.question_id)
        .bind(&v.model_a)
        .bind(&v.model_b)
        .bind(&v.vote)
        .bind(i64::from(v.a_shown_left))
        .bind(&v.voter)
        .bind(&v.recorded_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every vote, or those on one question set, oldest first.
    pub async fn votes(&self, questions_sha256: Option<&str>) -> Result<Vec<StoredVote>, Error> {
        let rows = sqlx::query(
            "SELECT questions_sha256, question_id, model_a, model_b, vote, a_shown_left, voter, recorded_at \
             FROM eval_votes WHERE ?1 IS NULL OR questions_sha256 = ?1 ORDER BY id",
        )
        .bind(questions_sha256)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredVote {
                    questions_sha256: r.try_get("questions_sha256")?,
                    question_id: r.try_get("question_id")?,
                    model_a: r.try_get("model_a")?,
                    model_b: r.try_get("model_b")?,
                    vote: r.try_get("vote")?,
                    a_shown_left: r.try_get::<i64, _>("a_shown_left")? != 0,
                    voter: r.try_get("voter")?,
                    recorded_at: r.try_get("recorded_at")?,
                })
            })
            .collect()
    }
}

//! Local copies: models on this machine with the hashes of their files (written by `zoo pull`
//! for delta targets and by `zoo add`), and models the user added (origin `local`).
//! Catalog syncs never touch either.

use serde::Serialize;
use sqlx::Row;

use crate::model::{FileRecord, ModelRecord, Provenance};
use crate::{Error, Registry};

/// One copy of a model on this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalCopy {
    pub id: Option<i64>,
    pub model: String,
    /// A folder or a single file (GGUF).
    pub path: String,
    /// The hub commit it came from, when it came from the hub.
    pub revision: Option<String>,
    /// sha256 of the manifest: `"<sha256>  <path>\n"` per file, sorted by path.
    pub sha256: Option<String>,
    pub size: Option<i64>,
    /// How it was made (stored as JSON; a row written before this shape existed reads back with
    /// its JSON in `notes`).
    pub derived_from: Option<Provenance>,
    pub verified_at: Option<String>,
    pub files: Vec<FileRecord>,
}

/// sha256 of the manifest of `files` (see [`LocalCopy::sha256`]).
pub fn manifest_sha256(files: &[FileRecord]) -> String {
    use sha2::Digest;
    let mut sorted: Vec<&FileRecord> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut h = sha2::Sha256::new();
    for f in sorted {
        h.update(format!("{}  {}\n", f.sha256.as_deref().unwrap_or(""), f.path).as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Registry {
    /// Add a user's model (origin `local`) with its copy, in one transaction. A catalog model
    /// of that name is never replaced; a local one is only with `replace`.
    pub async fn add_local_model(&self, m: &ModelRecord, copy: &LocalCopy, replace: bool) -> Result<i64, Error> {
        let mut tx = self.pool.begin().await?;
        let existing: Option<String> = sqlx::query_scalar("SELECT origin FROM models WHERE name = ?")
            .bind(&m.name)
            .fetch_optional(&mut *tx)
            .await?;
        match existing.as_deref() {
            Some("catalog") => return Err(Error::NameTaken { name: m.name.clone(), origin: "catalog".into() }),
            Some(_) if !replace => return Err(Error::NameTaken { name: m.name.clone(), origin: "local".into() }),
            Some(_) => {
                sqlx::query("DELETE FROM local_copies WHERE model = ?").bind(&m.name).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM models WHERE name = ?").bind(&m.name).execute(&mut *tx).await?;
            }
            None => {}
        }
        let mut rec = m.clone();
        rec.origin = "local".into();
        let hash = manifest_sha256(rec.files.as_deref().unwrap_or_default());
        crate::sync::insert_model(&mut tx, &rec, &hash).await?;
        let id = insert_copy(&mut tx, copy).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Record (or replace) the copy of `copy.model` at `copy.path`, with its files.
    pub async fn record_copy(&self, copy: &LocalCopy) -> Result<i64, Error> {
        let mut tx = self.pool.begin().await?;
        let known: Option<String> = sqlx::query_scalar("SELECT name FROM models WHERE name = ?")
            .bind(&copy.model)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(Error::UnknownModel { name: copy.model.clone() });
        }
        let id = insert_copy(&mut tx, copy).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Copies of `model` (all copies when `None`), newest first, with their files.
    pub async fn local_copies(&self, model: Option<&str>) -> Result<Vec<LocalCopy>, Error> {
        let rows = sqlx::query(
            "SELECT id, model, path, revision, sha256, size, derived_from, verified_at FROM local_copies \
             WHERE ?1 IS NULL OR model = ?1 ORDER BY id DESC",
        )
        .bind(model)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get(0)?;
            let derived: Option<String> = r.try_get(6)?;
            let files = sqlx::query("SELECT path, size, sha256 FROM local_copy_files WHERE copy_id = ? ORDER BY path")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|f| Ok(FileRecord { path: f.try_get(0)?, size: f.try_get(1)?, sha256: f.try_get(2)? }))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            out.push(LocalCopy {
                id: Some(id),
                model: r.try_get(1)?,
                path: r.try_get(2)?,
                revision: r.try_get(3)?,
                sha256: r.try_get(4)?,
                size: r.try_get(5)?,
                derived_from: derived.map(|d| {
                    serde_json::from_str(&d).unwrap_or_else(|_| Provenance { notes: Some(d), ..Default::default() })
                }),
                verified_at: r.try_get(7)?,
                files,
            });
        }
        Ok(out)
    }

    /// Stamp a copy as verified now.
    pub async fn mark_verified(&self, id: i64) -> Result<(), Error> {
        sqlx::query("UPDATE local_copies SET verified_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget copies whose path is `path` or lies under it (after `zoo cache rm`); returns
    /// how many were forgotten. User-added models stay (their copy can be added again).
    pub async fn forget_copies_under(&self, path: &str) -> Result<u64, Error> {
        let prefix = format!("{}/%", path.trim_end_matches('/').replace('%', "\\%").replace('_', "\\_"));
        let r = sqlx::query("DELETE FROM local_copies WHERE path = ? OR path LIKE ? ESCAPE '\\'")
            .bind(path)
            .bind(prefix)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

async fn insert_copy(tx: &mut sqlx::SqliteConnection, c: &LocalCopy) -> Result<i64, Error> {
    sqlx::query("DELETE FROM local_copies WHERE model = ? AND path = ?")
        .bind(&c.model)
        .bind(&c.path)
        .execute(&mut *tx)
        .await?;
    let derived = c.derived_from.as_ref().map(serde_json::to_string).transpose()?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO local_copies (model, path, revision, sha256, size, derived_from, verified_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&c.model)
    .bind(&c.path)
    .bind(&c.revision)
    .bind(&c.sha256)
    .bind(c.size)
    .bind(derived)
    .bind(&c.verified_at)
    .fetch_one(&mut *tx)
    .await?;
    for f in &c.files {
        let Some(sha) = &f.sha256 else { continue };
        sqlx::query("INSERT INTO local_copy_files (copy_id, path, size, sha256) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(&f.path)
            .bind(f.size.unwrap_or(0))
            .bind(sha)
            .execute(&mut *tx)
            .await?;
    }
    Ok(id)
}

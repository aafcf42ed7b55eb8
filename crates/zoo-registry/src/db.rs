//! Opening the registry database: SQLite in WAL mode with a busy timeout and foreign keys,
//! schema from the embedded sqlx migrations, and a refusal to touch databases written by a
//! newer zoo.
//!
//! Invariant: creating the file and switching it to WAL, schema changes (migrations) and catalog
//! syncs run under an exclusive lock on `<db>.lock`, so processes starting together on a fresh
//! database never race. SQLite answers such a race with an immediate `SQLITE_BUSY` that its
//! busy handler does not cover (the journal-mode switch needs an exclusive lock); connecting
//! is also retried on `BUSY` until [`BUSY_TIMEOUT`]. Plain reads and measured-result writes
//! rely on SQLite's own locking (WAL + busy timeout).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Row};

use crate::Error;

/// The schema, embedded at build time from the workspace's `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// How long a writer waits for another process's write to finish before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// An open registry database.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) pool: SqlitePool,
    path: PathBuf,
}

/// The newest schema version this build knows.
pub fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

impl Registry {
    /// Open (creating if needed) the database at `path` and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<Registry, Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::Unwritable { path: path.to_path_buf(), source: e })?;
        }
        if path.is_dir() {
            return Err(Error::Unwritable {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
            });
        }
        let fresh = !path.exists();
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| Error::Open { path: path.to_path_buf(), source: e })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .disable_statement_logging();
        // A database not yet in WAL mode (new, empty, or made by another tool) is switched
        // under the advisory lock; an established one is opened without it, so reads never
        // wait for a sync.
        let switch_lock = if is_wal(path) { None } else { Some(lock_file(path)?) };
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        let pool = loop {
            let attempt = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(opts.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(classify_open_error(path, fresh, e)),
            }
        };
        drop(switch_lock);
        let reg = Registry { pool, path: path.to_path_buf() };
        reg.migrate().await?;
        Ok(reg)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Versions recorded in `_sqlx_migrations` (empty for a new database).
    async fn applied_versions(&self) -> Result<Vec<i64>, Error> {
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| classify_open_error(&self.path, false, e))?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    /// The schema version of this database.
    pub async fn schema_version(&self) -> Result<i64, Error> {
        Ok(self.applied_versions().await?.into_iter().max().unwrap_or(0))
    }

    async fn migrate(&self) -> Result<(), Error> {
        let known = known_schema_version();
        let applied = self.applied_versions().await?;
        if let Some(&newest) = applied.iter().max()
            && newest > known
        {
            return Err(Error::NewerSchema { path: self.path.clone(), found: newest, known });
        }
        let pending = MIGRATOR.iter().any(|m| !applied.contains(&m.version));
        if !pending {
            return Ok(());
        }
        let _lock = self.lock()?;
        MIGRATOR.run(&self.pool).await.map_err(|e| Error::Migrate { path: self.path.clone(), source: e })
    }

    /// Exclusive advisory lock for schema changes and syncs; released on drop.
    pub(crate) fn lock(&self) -> Result<std::fs::File, Error> {
        lock_file(&self.path)
    }

    /// A value of the `meta` table.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?").bind(key).fetch_optional(&self.pool).await?)
    }

    /// Close the pool, checkpointing the WAL.
    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// Take the exclusive advisory lock `<db>.lock` (blocking); released when the file drops.
fn lock_file(path: &Path) -> Result<std::fs::File, Error> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::Unwritable { path: lock_path.clone(), source: e })?;
    f.lock().map_err(|e| Error::Unwritable { path: lock_path, source: e })?;
    Ok(f)
}

/// Whether the file is an SQLite database already in WAL mode: header bytes 18 and 19 (file
/// format write and read versions) are 2 for WAL.
fn is_wal(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
        && head.starts_with(b"SQLite format 3\0")
        && head[18] == 2
        && head[19] == 2
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), including their extended codes.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code().and_then(|c| c.parse::<i64>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
        }
        _ => false,
    }
}

fn classify_open_error(path: &Path, fresh: bool, e: sqlx::Error) -> Error {
    let text = e.to_string();
    if text.contains("file is not a database") || text.contains("database disk image is malformed") {
        Error::NotADatabase { path: path.to_path_buf() }
    } else if text.contains("unable to open") || text.contains("readonly") || text.contains("read-only") {
        let kind = if fresh { "cannot create" } else { "cannot open" };
        Error::Unwritable { path: path.to_path_buf(), source: std::io::Error::other(format!("{kind}: {text}")) }
    } else {
        Error::Open { path: path.to_path_buf(), source: e }
    }
}

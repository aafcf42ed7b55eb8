//! The zoo registry: the catalog of models, datasets, benchmarks and published results
//! (human-edited TOML under `registry/`), its linter, and the SQLite database (via sqlx) that
//! the catalog is synced into and that also remembers local copies and measured results.
//!
//! API boundary: no environment variables, no printing. Callers pass paths and get typed
//! records (`model`) whose serde form is the documented `--json` schema.

pub mod catalog;
pub mod check;
pub mod db;
pub mod eval;
pub mod judge;
pub mod local;
pub mod model;
pub mod query;
pub mod sync;

use std::path::PathBuf;

pub use catalog::Catalog;
pub use check::{Problem, ProblemKind, check};
pub use db::{Registry, known_schema_version};
pub use eval::{EvalJob, StoredPrediction};
pub use judge::{StoredJudgment, StoredVote};
pub use local::{LocalCopy, manifest_sha256};
pub use query::{ModelFilter, ResultTable, SortKey};
pub use sync::SyncReport;

/// Everything that can go wrong in the registry, with the facts a user needs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no catalog files (*.toml) under {path}")]
    EmptyCatalog { path: PathBuf },
    #[error("registry database location {path} is not writable: {source}")]
    Unwritable { path: PathBuf, source: std::io::Error },
    #[error("cannot open registry database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("{path} is not a zoo registry database (not SQLite, or corrupt)")]
    NotADatabase { path: PathBuf },
    #[error(
        "registry database {path} has schema version {found}, newer than this zoo knows ({known}); it was written by a newer zoo"
    )]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
    #[error("cannot migrate registry database {path}: {source}")]
    Migrate { path: PathBuf, source: sqlx::migrate::MigrateError },
    #[error("catalog has {count} problem(s); first: {first}")]
    CatalogProblems { count: usize, first: String },
    #[error("unknown model {name:?}")]
    UnknownModel { name: String },
    #[error("the name {name:?} is taken by a {origin} model; choose another name")]
    NameTaken { name: String, origin: String },
    #[error("unknown benchmark {name:?}")]
    UnknownBenchmark { name: String },
    #[error("benchmark {benchmark:?} has no column {column:?}")]
    UnknownColumn { benchmark: String, column: String },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("bad JSON in the registry: {0}")]
    Json(#[from] serde_json::Error),
    /// A value the schema does not allow.
    #[error("{0}")]
    Invalid(String),
}

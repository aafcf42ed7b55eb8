//! The errors of reading benchmark files and choosing questions.

use std::path::PathBuf;

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A record that is not what its format says: `record` counts from 1 (the line of a JSON
    /// lines file, the item of a JSON array).
    #[error("{}: record {record}: {message}", path.display())]
    Record { path: PathBuf, record: usize, message: String },
    /// A file that is none of the formats.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("unknown subset {name:?}; known: {}", known.join(", "))]
    UnknownSubset { name: String, known: Vec<String> },
    #[error("no questions left after the selection ({0})")]
    Empty(String),
    #[error("{0}")]
    Invalid(String),
}

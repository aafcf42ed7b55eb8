//! The one error type of this crate: every variant carries the facts a user needs to act.

use std::path::PathBuf;

/// Everything that can go wrong while pulling, verifying or managing the cache.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A name from a listing, a link or a user argument that would leave the cache.
    #[error("refused {what}: {reason}")]
    Hostile { what: String, reason: String },

    #[error("{repo}: not found on the hub at {endpoint}")]
    RepoNotFound { repo: String, endpoint: String },

    #[error("{repo}: revision {revision:?} not found on the hub")]
    RevisionNotFound { repo: String, revision: String },

    #[error("{repo}: file {file:?} not found at revision {revision}")]
    EntryNotFound { repo: String, revision: String, file: String },

    #[error("{repo}: access denied (HTTP {status}); set HF_TOKEN to a token that can read it")]
    Unauthorized { repo: String, status: u16 },

    #[error("{url}: {message}")]
    Http { url: String, message: String },

    #[error("{url}: gave up after {attempts} attempts: {last}")]
    TooManyRetries { url: String, attempts: u32, last: String },

    #[error("{file}: sha256 mismatch: expected {expected}, got {actual} (the download was discarded)")]
    ChecksumMismatch { file: String, expected: String, actual: String },

    #[error("{file}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { file: String, expected: u64, actual: u64 },

    #[error("offline (HF_HUB_OFFLINE or --offline) and {what} is not in the cache at {cache}")]
    OfflineMiss { what: String, cache: PathBuf },

    #[error("{what}: unexpected answer from the hub: {reason}")]
    BadResponse { what: String, reason: String },

    #[error("cancelled")]
    Cancelled,
}

impl HubError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str) -> impl FnOnce(std::io::Error) -> HubError {
        let path = path.into();
        move |source| HubError::Io { path, op, source }
    }
}

impl From<zoo_atomic_write::Error> for HubError {
    fn from(e: zoo_atomic_write::Error) -> Self {
        HubError::Io { path: e.path, op: e.op, source: e.source }
    }
}

pub type Result<T, E = HubError> = std::result::Result<T, E>;

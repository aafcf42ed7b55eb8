//! The one error type of the operations. Library errors keep their type inside it so a front
//! end can tell a failed check or a miss (exit 1) from a broken environment (exit 2).

use std::path::PathBuf;

pub type Result<T, E = OpsError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A model, repo, revision or path that is not there; `suggestions` are close names.
    #[error("{message}")]
    NotFound { message: String, suggestions: Vec<String> },
    /// A request that cannot be carried out as asked (wrong flag for this model, bad name).
    #[error("{0}")]
    Invalid(String),
    /// Something written or found does not match what it must be.
    #[error("{0}")]
    CheckFailed(String),
    /// The caller cancelled; nothing partial was left looking complete.
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Registry(#[from] zoo_registry::Error),
    #[error(transparent)]
    Hub(#[from] zoo_hub::HubError),
    #[error(transparent)]
    Weights(#[from] zoo_weights::WeightsError),
    #[error(transparent)]
    Infer(#[from] zoo_infer::InferError),
    #[error(transparent)]
    Chat(#[from] zoo_chat::Error),
    #[error(transparent)]
    Eval(#[from] zoo_eval::EvalError),
    #[error(transparent)]
    Write(#[from] zoo_atomic_write::Error),
    /// A training data file that cannot be read as asked, or a bad option (`zoo data`).
    #[error(transparent)]
    Data(#[from] zoo_data::DataError),
    /// A chart or report page that could not be made or written.
    #[error(transparent)]
    Report(#[from] zoo_report::Error),
    /// An OpenAI-compatible server that could not be used.
    #[error(transparent)]
    Endpoint(#[from] crate::endpoint::EndpointError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a worker stopped: {0}")]
    Worker(String),
    /// `error` while doing `context`.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<OpsError>,
    },
}

impl OpsError {
    pub fn not_found(message: impl Into<String>) -> Self {
        OpsError::NotFound { message: message.into(), suggestions: Vec::new() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OpsError::Io { path: path.into(), source }
    }

    /// The error under any context layers.
    pub fn root(&self) -> &OpsError {
        match self {
            OpsError::Context { source, .. } => source.root(),
            e => e,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        matches!(
            self.root(),
            OpsError::Cancelled
                | OpsError::Hub(zoo_hub::HubError::Cancelled)
                | OpsError::Weights(zoo_weights::WeightsError::Cancelled)
                | OpsError::Data(zoo_data::DataError::Cancelled)
        )
    }

    /// A miss or a failed check (exit 1 in the CLI), as opposed to a broken environment.
    pub fn is_failed_check(&self) -> bool {
        match self.root() {
            OpsError::NotFound { .. } | OpsError::CheckFailed(_) => true,
            OpsError::Weights(w) => w.is_refusal(),
            OpsError::Infer(i) => i.is_refusal(),
            OpsError::Hub(h) => hub_check_failed(h),
            OpsError::Eval(e) => matches!(e, zoo_eval::EvalError::UnknownSubset { .. } | zoo_eval::EvalError::Empty(_)),
            _ => false,
        }
    }

    /// The registry error underneath, for hints.
    pub fn registry_error(&self) -> Option<&zoo_registry::Error> {
        match self.root() {
            OpsError::Registry(r) => Some(r),
            _ => None,
        }
    }
}

/// `.context("...")` for anything that converts into [`OpsError`].
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    fn with_context(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<OpsError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| OpsError::Context { context: context.into(), source: Box::new(e.into()) })
    }
    fn with_context(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| OpsError::Context { context: f(), source: Box::new(e.into()) })
    }
}

/// Hub errors that are a failed check or a miss, not a broken environment.
pub fn hub_check_failed(e: &zoo_hub::HubError) -> bool {
    use zoo_hub::HubError as H;
    matches!(
        e,
        H::ChecksumMismatch { .. }
            | H::SizeMismatch { .. }
            | H::RepoNotFound { .. }
            | H::RevisionNotFound { .. }
            | H::EntryNotFound { .. }
            | H::OfflineMiss { .. }
            | H::Hostile { .. }
            | H::Unauthorized { .. }
            | H::BadResponse { .. }
    )
}

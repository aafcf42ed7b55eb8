//! The operations of zoo, called the same way by every front end: the `zoo` binary, the TUI and
//! the server. Each operation takes a [`Zoo`] (where things live), a request, and a
//! [`Control`] (a progress sink and a cancel token), and returns a typed, `Serialize` report:
//! the report *is* the `--json` output, and the front end only renders it.
//!
//! - [`model_ref`]: one parser and resolver for what users type as MODEL;
//! - [`pull`], [`delta`], [`convert`] (quantize, dequantize), [`verify`], [`add`], [`cache`],
//!   [`inspect`]: plans and operations with reports;
//! - [`job`]: an operation in the background with an event channel and cancellation;
//! - [`chat`]: a loaded model with its prompt format, stops and sampling, and a chat session
//!   that streams UTF-8-safe text deltas;
//! - [`catalog`]: the queries front ends show (model list, one model's detail, results, the
//!   TUI's overview);
//! - [`fit`]: the memory a model needs at each precision against the memory free;
//! - [`view`]: the human view of every report (lines with semantic tones, tables), which each
//!   front end lays out in its own way.
//!
//! Nothing here reads the environment, prints, or picks exit codes: the front end resolves
//! paths into a [`Zoo`] and maps [`OpsError`] to its own conventions.

pub mod add;
pub mod cache;
pub mod catalog;
pub mod chat;
pub mod control;
pub mod convert;
pub mod data;
pub mod delta;
pub mod endpoint;
pub mod error;
pub mod eval;
pub mod fit;
pub mod inspect;
pub mod job;
pub mod judge;
pub mod model_ref;
pub mod provenance;
pub mod pull;
pub mod report;
pub mod results;
pub mod verify;
pub mod view;
pub mod vote;
pub mod zoo;

pub use control::Control;
pub use error::{Context, OpsError, Result};
pub use job::{Job, JobEvent};
pub use model_ref::{ModelRef, Target, did_you_mean};
pub use zoo::Zoo;
pub use zoo_registry::model::{Provenance, ProvenanceInput};

/// The current time as RFC 3339 UTC to the second (`2026-12-05T17:10:14Z`).
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// `t` as RFC 3339 UTC to the second; the epoch for years RFC 3339 cannot write (past 9999).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Run blocking work (file I/O, hashing, model math) off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| OpsError::Worker(e.to_string()))?
}

/// The number of worker threads when the user names none: the machine's.
pub fn default_threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
}

#[cfg(test)]
mod tests {
    /// Against Python: `datetime.fromtimestamp(t, timezone.utc).isoformat()` (`+00:00` written `Z`).
    #[test]
    fn rfc3339_matches_python() {
        for (t, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_786_123, "2000-02-29T01:02:03Z"),
            (1_721_743_509, "2024-07-23T14:05:09Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ] {
            let at = time::OffsetDateTime::from_unix_timestamp(t).unwrap() + time::Duration::milliseconds(999);
            assert_eq!(super::rfc3339(at), want, "{t}");
        }
        assert_eq!(super::now_rfc3339().len(), 20);
    }
}

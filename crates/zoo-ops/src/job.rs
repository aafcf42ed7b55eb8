//! Jobs: an operation running in the background with an event channel and a cancel token, so
//! that every front end stops work the same way: the CLI on Ctrl-C, the TUI on a key, the
//! server when the client is gone. Events are progress events and, for chat, text deltas; the
//! channel closes when the operation is done, and [`Job::join`] gives its report.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use zoo_progress::{CancelToken, Event, Progress};

use crate::{Control, OpsError, Result};

/// What a running job says.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    Progress(Event),
    /// A piece of generated text (chat), never splitting a character or a stop string.
    Text(String),
}

/// The progress sink of a job: its events go to the channel.
struct ChannelProgress(UnboundedSender<JobEvent>);

impl Progress for ChannelProgress {
    fn event(&self, event: Event) {
        // A receiver that is gone stops listening, not the work.
        let _ = self.0.send(JobEvent::Progress(event));
    }
}

/// What a job's body gets: its [`Control`] and a way to send text.
#[derive(Clone)]
pub struct JobContext {
    pub control: Control,
    tx: UnboundedSender<JobEvent>,
}

impl JobContext {
    pub fn text(&self, piece: &str) {
        if !piece.is_empty() {
            let _ = self.tx.send(JobEvent::Text(piece.to_string()));
        }
    }
}

/// An operation running on the tokio runtime.
pub struct Job<T> {
    cancel: CancelToken,
    events: UnboundedReceiver<JobEvent>,
    handle: tokio::task::JoinHandle<Result<T>>,
}

impl<T: Send + 'static> Job<T> {
    /// Starts `body` on the current tokio runtime.
    pub fn spawn<F, Fut>(body: F) -> Job<T>
    where
        F: FnOnce(JobContext) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let (tx, events) = unbounded_channel();
        let cancel = CancelToken::new();
        let ctx = JobContext { control: Control::new(Arc::new(ChannelProgress(tx.clone())), cancel.clone()), tx };
        let handle = tokio::spawn(body(ctx));
        Job { cancel, events, handle }
    }

    /// Asks the job to stop at its next safe point; [`Job::join`] then gives its error
    /// (cancelled) or, when it was already done, its report.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The next event; `None` once the job is done and every event was read.
    pub async fn next_event(&mut self) -> Option<JobEvent> {
        self.events.recv().await
    }

    /// An event if one is waiting (for a UI loop that must not block).
    pub fn try_event(&mut self) -> Option<JobEvent> {
        self.events.try_recv().ok()
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the report.
    pub async fn join(self) -> Result<T> {
        self.handle.await.map_err(|e| OpsError::Worker(e.to_string()))?
    }
}

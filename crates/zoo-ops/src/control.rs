//! What a running operation reports to and hears from its caller: a progress sink and a
//! cancel token, passed together.

use std::sync::Arc;

use zoo_progress::{CancelToken, Event, Progress, Silent};

use crate::{OpsError, Result};

#[derive(Clone)]
pub struct Control {
    pub progress: Arc<dyn Progress>,
    pub cancel: CancelToken,
}

impl Control {
    pub fn new(progress: Arc<dyn Progress>, cancel: CancelToken) -> Self {
        Control { progress, cancel }
    }

    /// No progress, never cancelled (tests, quick internal steps).
    pub fn silent() -> Self {
        Control { progress: Arc::new(Silent), cancel: CancelToken::new() }
    }

    pub fn note(&self, message: impl Into<String>) {
        self.progress.event(Event::Note { message: message.into() });
    }

    /// `Err(Cancelled)` once the caller asked to stop.
    pub fn check(&self) -> Result<()> {
        if self.cancel.is_cancelled() { Err(OpsError::Cancelled) } else { Ok(()) }
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("cancelled", &self.cancel.is_cancelled()).finish()
    }
}

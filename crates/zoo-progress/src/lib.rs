//! Progress events and cancellation for long work (download, delta, quantize, verify, eval).
//!
//! Libraries report what they do through a [`Progress`] sink and never print. The CLI turns
//! events into progress bars on stderr (or JSON lines), the TUI into widgets, the server into
//! an event stream. Cancellation travels the other way: a [`CancelToken`] that the library
//! polls between chunks of work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One thing that happened during a long operation. Serialized (for `--progress json` and
/// event streams) as `{"event": "start", "task": ..., "total": ..., "unit": "bytes"}` and so on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A task (or sub-task) started; `total` is in `unit`s when known.
    Start { task: String, total: Option<u64>, unit: Unit },
    /// `delta` more units of `task` are done.
    Advance { task: String, delta: u64 },
    /// A human-readable note worth showing (a dropped buffer, a chosen algorithm, ...).
    Note { message: String },
    /// `task` is finished.
    Finish { task: String },
    /// A running figure of `task` worth showing beside its bar (an evaluation's accuracy so
    /// far): `name` and its value, replacing the previous value of that name.
    Metric { task: String, name: String, value: f64 },
}

/// What a task counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Bytes,
    Items,
}

/// A sink for [`Event`]s. Implementations must be cheap: `event` is called from hot loops.
pub trait Progress: Send + Sync {
    fn event(&self, event: Event);
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _event: Event) {}
}

/// A sink that keeps every event, for tests and for callers that replay them.
#[derive(Debug, Default)]
pub struct Recorder(std::sync::Mutex<Vec<Event>>);

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Progress for Recorder {
    fn event(&self, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}

/// A shared flag that asks long work to stop at the next safe point.
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_keeps_order_and_cancel_is_shared() {
        let r = Recorder::default();
        r.event(Event::Start { task: "t".into(), total: Some(3), unit: Unit::Items });
        r.event(Event::Advance { task: "t".into(), delta: 3 });
        r.event(Event::Finish { task: "t".into() });
        assert_eq!(r.events().len(), 3);
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn events_serialize_as_tagged_objects() {
        let e = Event::Start { task: "model.gguf".into(), total: Some(10), unit: Unit::Bytes };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"start","task":"model.gguf","total":10,"unit":"bytes"}"#
        );
        let e = Event::Note { message: "hi".into() };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"event":"note","message":"hi"}"#);
        // Every variant: the `--progress json` lines are a contract like `--json`.
        let e = Event::Advance { task: "t".into(), delta: 4 };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"event":"advance","task":"t","delta":4}"#);
        let e = Event::Finish { task: "t".into() };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"event":"finish","task":"t"}"#);
        let e = Event::Metric { task: "eval".into(), name: "accuracy".into(), value: 0.5 };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"metric","task":"eval","name":"accuracy","value":0.5}"#
        );
        let e = Event::Start { task: "q".into(), total: None, unit: Unit::Items };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"event":"start","task":"q","total":null,"unit":"items"}"#);
    }
}

//! Streaming helpers: token ids to printable text without split characters, and stop strings that never leak.

use crate::error::{Error, Result};

/// What [`StopMatcher::push`] found in the text so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopStep {
    /// No stop string yet; the text is safe to print (it may be empty while a possible stop is held back).
    Continue(String),
    /// A stop string completed: `text` is what came before it and is still to be printed; generation should end.
    Stopped { text: String, stop: String },
}

/// Holds back text that could be the start of a stop string, so that no part of one is ever printed.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
    stopped: bool,
}

impl StopMatcher {
    /// Empty stop strings are ignored (they would match everywhere).
    pub fn new<S: AsRef<str>>(stops: impl IntoIterator<Item = S>) -> Self {
        let stops = stops.into_iter().map(|s| s.as_ref().to_string()).filter(|s| !s.is_empty()).collect();
        StopMatcher { stops, pending: String::new(), stopped: false }
    }

    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Whether a stop string has been seen; after that every push returns `Stopped` with empty text.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Add a piece of generated text.
    pub fn push(&mut self, piece: &str) -> StopStep {
        if self.stopped {
            return StopStep::Stopped { text: String::new(), stop: String::new() };
        }
        self.pending.push_str(piece);
        // The earliest complete stop wins; among stops starting at the same place, the longest.
        let found = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()).map(|at| (at, s)))
            .min_by(|(a, sa), (b, sb)| a.cmp(b).then(sb.len().cmp(&sa.len())));
        if let Some((at, stop)) = found {
            let stop = stop.clone();
            let text = self.pending[..at].to_string();
            self.pending.clear();
            self.stopped = true;
            return StopStep::Stopped { text, stop };
        }
        let hold = self.held_suffix_len();
        let ready = self.pending.len() - hold;
        let text = self.pending[..ready].to_string();
        self.pending.drain(..ready);
        StopStep::Continue(text)
    }

    /// End of generation: the held-back text, which turned out not to be a stop string.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of some stop string.
    fn held_suffix_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            // Only char-boundary prefixes can match: `pending` is valid UTF-8 and so is its every suffix.
            for (k, _) in stop.char_indices().skip(1) {
                if k > best && self.pending.ends_with(&stop[..k]) {
                    best = k;
                }
            }
        }
        best
    }
}

/// Turns token ids back into text. Implemented for closures `Fn(&[u32]) -> Result<String, E>`, so a
/// `tokenizers::Tokenizer` is wrapped as `|ids: &[u32]| tok.decode(ids, false)`.
pub trait Detokenize {
    type Error: std::fmt::Display;
    fn decode(&self, ids: &[u32]) -> Result<String, Self::Error>;
}

impl<F, E> Detokenize for F
where
    F: Fn(&[u32]) -> Result<String, E>,
    E: std::fmt::Display,
{
    type Error = E;
    fn decode(&self, ids: &[u32]) -> Result<String, E> {
        self(ids)
    }
}

/// Incremental detokenization: each pushed id yields the newly completed text, never half a character and
/// never the same text twice.
///
/// Decoding ids one at a time breaks byte-fallback tokens (half a Chinese character decodes to U+FFFD) and
/// SentencePiece's leading-space rule, so the stream decodes a window that starts at `prefix_offset` (the ids
/// before the last emitted text, as context) and emits only what lies beyond the previously decoded text, once
/// it does not end in U+FFFD. This is the method of text-generation-inference and candle's `TokenOutputStream`.
#[derive(Debug, Clone)]
pub struct TokenTextStream<D> {
    detok: D,
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl<D: Detokenize> TokenTextStream<D> {
    pub fn new(detok: D) -> Self {
        TokenTextStream { detok, ids: Vec::new(), prefix_offset: 0, read_offset: 0 }
    }

    /// Start with context ids (for example the prompt's last few tokens) that are decoded but never emitted,
    /// so the first generated word keeps its leading space.
    pub fn with_context(detok: D, context: &[u32]) -> Self {
        TokenTextStream { detok, ids: context.to_vec(), prefix_offset: 0, read_offset: context.len() }
    }

    /// Add one generated id; returns the text it completed, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = self.decode(self.prefix_offset, self.read_offset)?;
        let full = self.decode(self.prefix_offset, self.ids.len())?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') {
            // A decoder may rewrite the tail of the window; text is only emitted if it extends what was seen.
            if let Some(new) = full.strip_prefix(prefix.as_str()) {
                let new = new.to_string();
                self.prefix_offset = self.read_offset;
                self.read_offset = self.ids.len();
                return Ok(Some(new));
            }
        }
        Ok(None)
    }

    /// End of generation: whatever text is still undelivered (possibly ending in U+FFFD if generation stopped
    /// inside a character).
    pub fn finish(&mut self) -> Result<Option<String>> {
        let prefix = self.decode(self.prefix_offset, self.read_offset)?;
        let full = self.decode(self.prefix_offset, self.ids.len())?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        let new = match full.strip_prefix(prefix.as_str()) {
            Some(n) => n.to_string(),
            None => full.get(prefix.len()..).unwrap_or_default().to_string(),
        };
        Ok((!new.is_empty()).then_some(new))
    }

    /// Every id pushed so far, context included.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn decode(&self, from: usize, to: usize) -> Result<String> {
        let ids = self.ids.get(from..to).unwrap_or_default();
        if ids.is_empty() {
            return Ok(String::new());
        }
        self.detok.decode(ids).map_err(|e| Error::Detokenize(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(m: &mut StopMatcher, pieces: &[&str]) -> (String, Option<String>) {
        let mut out = String::new();
        for p in pieces {
            match m.push(p) {
                StopStep::Continue(t) => out.push_str(&t),
                StopStep::Stopped { text, stop } => {
                    out.push_str(&text);
                    return (out, Some(stop));
                }
            }
        }
        out.push_str(&m.finish());
        (out, None)
    }

    #[test]
    fn stop_split_across_pieces_is_never_printed() {
        let mut m = StopMatcher::new(["</s>"]);
        assert_eq!(m.push("Hello <"), StopStep::Continue("Hello ".into()));
        assert_eq!(m.push("/"), StopStep::Continue(String::new()));
        assert_eq!(m.push("s>tail"), StopStep::Stopped { text: String::new(), stop: "</s>".into() });
        assert!(m.is_stopped());
    }

    #[test]
    fn false_alarm_is_released() {
        let mut m = StopMatcher::new(["</s>"]);
        assert_eq!(feed(&mut m, &["a <", "/b> c"]), ("a </b> c".to_string(), None));
        let mut m = StopMatcher::new(["</s>"]);
        assert_eq!(feed(&mut m, &["a </"]), ("a </".to_string(), None));
    }

    #[test]
    fn multibyte_stop_markers() {
        let mut m = StopMatcher::new(["<病人>", "</s>"]);
        assert_eq!(m.push("多喝水。<"), StopStep::Continue("多喝水。".into()));
        assert_eq!(m.push("病"), StopStep::Continue(String::new()));
        assert_eq!(m.push("人>：我"), StopStep::Stopped { text: String::new(), stop: "<病人>".into() });
    }

    #[test]
    fn earliest_stop_wins() {
        let mut m = StopMatcher::new(["\nUser:", "<|endoftext|>"]);
        let (text, stop) = feed(&mut m, &["ok<|endoftext|>\nUser:"]);
        assert_eq!((text.as_str(), stop.as_deref()), ("ok", Some("<|endoftext|>")));
    }

    #[test]
    fn no_stops_passes_everything() {
        let mut m = StopMatcher::new(Vec::<String>::new());
        assert_eq!(m.push("<"), StopStep::Continue("<".into()));
    }
}

//! The batching engine of one served model: a thread that owns every running sequence and
//! advances all of them with one `forward_batch` per step (continuous batching: a sequence
//! joins at the next step after it arrives, leaves at the step it finishes, and prompts run in
//! the same pass as other sequences' decode tokens).
//!
//! **Decisions.**
//! - One OS thread per model, not a tokio task: a step is seconds of CPU at worst and must not
//!   hold an async worker. Requests arrive through a bounded queue ([`Engine::submit`] fails
//!   with [`SubmitError::QueueFull`] at once, the server's 429); events go back through an
//!   unbounded channel per request, so the engine never waits for a slow client.
//! - A client that goes away (its receiver dropped: axum drops the response body) is noticed
//!   before the next step and its sequence removed then: its slot is free for the next request
//!   at once, and no more tokens are computed for it.
//! - Finished sequences leave their KV state in a small pool; a new request starts from the
//!   pooled state that shares the longest prefix with its prompt (a chat's system prompt and
//!   earlier turns are not run again).
//! - Text is streamed as in `zoo chat`: whole characters only (`TokenTextStream`), stop strings
//!   held back until they are decided (`StopMatcher`), the stop token never shown.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use zoo_chat::{Detokenize, StopMatcher, StopStep, TokenTextStream};
use zoo_infer::{CausalLm, Generator, Sampler, SamplingParams, SeqState, step_batch};
use zoo_ops::chat::ChatModel;

use crate::metrics::ModelMetrics;

/// How one model is served.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences decoded together at most.
    pub batch_size: usize,
    /// Requests waiting for a slot at most; one more is refused.
    pub queue: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { batch_size: 8, queue: 64 }
    }
}

/// One generation asked of the engine.
#[derive(Debug, Clone)]
pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub params: SamplingParams,
    /// Stop strings besides the model's own.
    pub stops: Vec<String>,
    /// Stop token ids besides the model's own.
    pub stop_ids: Vec<u32>,
    /// Generation ends (finish reason `length`) when this passes.
    pub deadline: Option<Instant>,
    /// Leave out the model's own stop ids (end of sequence) and its format's stop strings.
    pub ignore_eos: bool,
}

/// Why a generation ended, and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// `stop` (end of sequence or a stop string) or `length` (the token limit or the deadline).
    pub reason: &'static str,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// What the engine sends back for one request, in order: pieces of text, then `Done` or
/// `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum GenEvent {
    Text(String),
    Done(Finish),
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full ({0} requests waiting); try again later")]
    QueueFull(usize),
    #[error("the server is shutting down")]
    Closed,
    #[error("{0}")]
    Invalid(String),
}

/// A prefix shorter than this is not worth a state copy.
const SHARED_PREFIX_MIN: usize = 8;

struct Queued {
    req: GenRequest,
    events: UnboundedSender<GenEvent>,
    arrived: Instant,
}

/// A served model: its prompt format and tokenizer (for the HTTP side) and the engine thread.
pub struct Engine {
    pub model: Arc<ChatModel>,
    pub name: String,
    pub config: EngineConfig,
    queue: SyncSender<Queued>,
    waiting: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    metrics: Arc<ModelMetrics>,
}

impl Engine {
    /// Starts the engine thread of `model`.
    pub fn start(name: String, model: ChatModel, config: EngineConfig, metrics: Arc<ModelMetrics>) -> Arc<Engine> {
        let model = Arc::new(model);
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let engine = Arc::new(Engine {
            model: Arc::clone(&model),
            name: name.clone(),
            config: config.clone(),
            queue: tx,
            waiting: Arc::new(AtomicUsize::new(0)),
            active: Arc::new(AtomicUsize::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
            metrics,
        });
        let worker = Worker {
            model,
            lm: Arc::clone(engine.model.model.session.shared_model()),
            rx,
            batch_size: config.batch_size.max(1),
            waiting: Arc::clone(&engine.waiting),
            active: Arc::clone(&engine.active),
            metrics: Arc::clone(&engine.metrics),
            slots: Vec::new(),
            gens: Vec::new(),
            pool: VecDeque::new(),
        };
        let spawned = std::thread::Builder::new().name(format!("engine {name}")).spawn(move || worker.run());
        if let Err(e) = spawned {
            // Without a thread nothing is served; every submit then fails as closed.
            eprintln!("error: could not start the engine thread of {name}: {e}");
            engine.closed.store(true, Ordering::SeqCst);
        }
        engine
    }

    /// Queues a generation; its events arrive on the returned receiver. Dropping the receiver
    /// cancels it.
    pub fn submit(&self, req: GenRequest) -> Result<UnboundedReceiver<GenEvent>, SubmitError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(SubmitError::Closed);
        }
        let context = self.model.model.config.context_length;
        if req.prompt.is_empty() {
            return Err(SubmitError::Invalid("the prompt is empty".into()));
        }
        if req.prompt.len() >= context {
            return Err(SubmitError::Invalid(format!(
                "the prompt has {} tokens; this model's context is {context} tokens",
                req.prompt.len()
            )));
        }
        let (tx, rx) = unbounded_channel();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match self.queue.try_send(Queued { req, events: tx, arrived: Instant::now() }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::QueueFull(self.config.queue),
                    TrySendError::Disconnected(_) => SubmitError::Closed,
                })
            }
        }
    }

    /// Requests waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Sequences being generated.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub fn context_length(&self) -> usize {
        self.model.model.config.context_length
    }

    pub fn metrics(&self) -> &ModelMetrics {
        &self.metrics
    }
}

/// Decodes through the served model's tokenizer (shared with the HTTP side).
struct Detok(Arc<ChatModel>);

impl Detokenize for Detok {
    type Error = String;
    fn decode(&self, ids: &[u32]) -> Result<String, String> {
        match self.0.model.tokenizer.as_ref() {
            Some(t) => t.decode(ids).map_err(|e| e.to_string()),
            None => Ok(String::new()),
        }
    }
}

/// A running sequence's bookkeeping (its `Generator` sits at the same index in `gens`).
struct Slot {
    events: UnboundedSender<GenEvent>,
    text: TokenTextStream<Detok>,
    matcher: StopMatcher,
    stop_ids: Vec<u32>,
    arrived: Instant,
    last_token: Option<Instant>,
    deadline: Option<Instant>,
    prompt_tokens: usize,
    completion_tokens: usize,
}

struct Worker {
    model: Arc<ChatModel>,
    lm: Arc<dyn CausalLm>,
    rx: Receiver<Queued>,
    batch_size: usize,
    waiting: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    metrics: Arc<ModelMetrics>,
    slots: Vec<Slot>,
    gens: Vec<Generator>,
    /// States of finished sequences, newest last, for prompts that share their prefix.
    pool: VecDeque<SeqState>,
}

enum Outcome {
    Running,
    Finished(&'static str),
    /// The client is gone or an error was sent: drop without a `Done`.
    Dropped,
}

impl Worker {
    fn run(mut self) {
        loop {
            if !self.admit() {
                return;
            }
            self.active.store(self.gens.len(), Ordering::SeqCst);
            if self.gens.is_empty() {
                continue;
            }
            self.step();
        }
    }

    /// Takes waiting requests into free slots; waits when nothing runs. False once every
    /// sender is gone and nothing runs (the server has shut down).
    fn admit(&mut self) -> bool {
        // Clients that left while their sequence ran are removed before anything else.
        self.drop_gone();
        let mut arrivals = Vec::new();
        while self.gens.len() + arrivals.len() < self.batch_size {
            let next = if self.gens.is_empty() && arrivals.is_empty() {
                match self.rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(q) => q,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return false,
                }
            } else {
                match self.rx.try_recv() {
                    Ok(q) => q,
                    Err(_) => break,
                }
            };
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            if next.events.is_closed() {
                self.metrics.record_cancelled();
                continue;
            }
            arrivals.push(next);
        }
        self.start_all(arrivals);
        true
    }

    /// Starts the requests admitted together. Each takes the pooled state sharing the most
    /// of its prompt; those that share little with the pool but much with each other (the
    /// same system prompt, a burst of clients) get the prefix they share computed once, in a
    /// state each then copies, instead of once per request.
    fn start_all(&mut self, arrivals: Vec<Queued>) {
        let mut fresh = Vec::new();
        for q in arrivals {
            let pooled = self.pool.iter().map(|s| s.common_prefix(&q.req.prompt)).max().unwrap_or(0);
            if pooled >= SHARED_PREFIX_MIN {
                let state = self.state_for(&q.req.prompt);
                self.start(q, state);
            } else {
                fresh.push(q);
            }
        }
        let shared = match fresh.split_first() {
            Some((first, rest)) if !rest.is_empty() => rest
                .iter()
                .map(|q| q.req.prompt.iter().zip(&first.req.prompt).take_while(|(a, b)| a == b).count())
                .min()
                .unwrap_or(0)
                // The last prompt token runs with each request (it gives the logits).
                .min(fresh.iter().map(|q| q.req.prompt.len().saturating_sub(1)).min().unwrap_or(0)),
            _ => 0,
        };
        let base = (shared >= SHARED_PREFIX_MIN)
            .then(|| fresh.first().and_then(|q| q.req.prompt.get(..shared)).map(<[u32]>::to_vec))
            .flatten()
            .and_then(|prefix| {
                let mut state = self.state_for(&prefix);
                let keep = state.common_prefix(&prefix);
                state.truncate(keep);
                let rest = prefix.get(keep..).unwrap_or_default();
                if rest.is_empty() || self.lm.forward(&mut state, rest, zoo_infer::Logits::Greedy).is_ok() {
                    Some(state)
                } else {
                    None
                }
            });
        for q in fresh {
            let state = match &base {
                Some(b) => b.clone_prefix(b.len()).unwrap_or_else(|_| self.lm.new_state()),
                None => self.state_for(&q.req.prompt),
            };
            self.start(q, state);
        }
        if let Some(b) = base {
            self.pool_state(b);
        }
    }

    fn start(&mut self, q: Queued, state: SeqState) {
        let Queued { req, events, arrived } = q;
        let mut stop_ids = if req.ignore_eos { Vec::new() } else { self.model.model.stop_ids.clone() };
        stop_ids.extend(req.stop_ids.iter().copied());
        let sampler = Sampler::new(&req.params);
        match Generator::new(Arc::clone(&self.lm), state, &req.prompt, req.max_tokens, sampler, &stop_ids) {
            Ok(g) => {
                let tail = req.prompt.get(req.prompt.len().saturating_sub(4)..).unwrap_or_default();
                // The format's stop strings are its end-of-turn tokens' text: ignored with them.
                let mut stops = if req.ignore_eos { Vec::new() } else { self.model.stops.clone() };
                stops.extend(req.stops.iter().cloned());
                self.gens.push(g);
                self.slots.push(Slot {
                    events,
                    text: TokenTextStream::with_context(Detok(Arc::clone(&self.model)), tail),
                    matcher: StopMatcher::new(stops.iter()),
                    stop_ids,
                    arrived,
                    last_token: None,
                    deadline: req.deadline,
                    prompt_tokens: req.prompt.len(),
                    completion_tokens: 0,
                });
            }
            Err(e) => {
                let _ = events.send(GenEvent::Error(e.to_string()));
            }
        }
    }

    /// A state for `prompt`: the pooled state sharing the longest prefix with it (moved out of
    /// the pool when the prompt continues all of it, as a conversation's next turn does;
    /// otherwise only the shared positions are copied and the pooled state stays for other
    /// prompts with that prefix), else a fresh one.
    fn state_for(&mut self, prompt: &[u32]) -> SeqState {
        let best = self.pool.iter().enumerate().map(|(i, s)| (s.common_prefix(prompt), i)).max();
        match best {
            Some((n, i)) if n >= SHARED_PREFIX_MIN => {
                let whole = self.pool.get(i).is_some_and(|s| s.len() == n);
                let copy = if whole { None } else { self.pool.get(i).and_then(|s| s.clone_prefix(n).ok()) };
                match copy {
                    Some(c) => c,
                    None => self.pool.remove(i).unwrap_or_else(|| self.lm.new_state()),
                }
            }
            _ => self.lm.new_state(),
        }
    }

    fn drop_gone(&mut self) {
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots.get(i).is_some_and(|s| s.events.is_closed()) {
                self.metrics.record_cancelled();
                self.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// One batched forward over every running sequence, then each one's new token.
    fn step(&mut self) {
        let batch = self.gens.len();
        let t0 = Instant::now();
        let tokens = match step_batch(self.lm.as_ref(), &mut self.gens) {
            Ok(t) => t,
            Err(e) => {
                // A failed forward leaves every state as before; the sequences cannot go on.
                let msg = format!("generation failed: {e}");
                for s in &self.slots {
                    let _ = s.events.send(GenEvent::Error(msg.clone()));
                }
                while !self.gens.is_empty() {
                    self.remove(self.gens.len() - 1);
                }
                return;
            }
        };
        self.metrics.record_step(batch, t0.elapsed());
        let now = Instant::now();
        let mut finished = Vec::new();
        for (i, token) in tokens.into_iter().enumerate() {
            let outcome = match (self.slots.get_mut(i), self.gens.get(i)) {
                (Some(slot), Some(g)) => slot.accept(token, g, now, &self.metrics),
                _ => Outcome::Dropped,
            };
            match outcome {
                Outcome::Running => {}
                Outcome::Finished(reason) => finished.push((i, Some(reason))),
                Outcome::Dropped => finished.push((i, None)),
            }
        }
        for (i, reason) in finished.into_iter().rev() {
            // Removed before `Done` goes out, so that a client that has its answer sees the
            // slot free (the gauges already say so).
            let Some(slot) = self.remove(i) else { continue };
            match reason {
                Some(reason) => {
                    let done =
                        Finish { reason, prompt_tokens: slot.prompt_tokens, completion_tokens: slot.completion_tokens };
                    self.metrics.record_done(&done);
                    let _ = slot.events.send(GenEvent::Done(done));
                }
                // A send failed: the client is gone.
                None if slot.events.is_closed() => self.metrics.record_cancelled(),
                None => {}
            }
        }
    }

    /// Removes sequence `i`, keeping its state for a later prompt with the same prefix.
    fn remove(&mut self, i: usize) -> Option<Slot> {
        if i >= self.gens.len() || i >= self.slots.len() {
            return None;
        }
        let g = self.gens.swap_remove(i);
        let slot = self.slots.swap_remove(i);
        let (generation, state) = g.finish();
        self.metrics.record_prompt_cached(slot.prompt_tokens.saturating_sub(generation.prompt_tokens_run));
        self.pool_state(state);
        self.active.store(self.gens.len(), Ordering::SeqCst);
        Some(slot)
    }

    /// Keeps `state` for later prompts with its prefix (the oldest goes when the pool is full).
    fn pool_state(&mut self, state: SeqState) {
        if self.pool.len() >= self.batch_size {
            self.pool.pop_front();
        }
        self.pool.push_back(state);
    }
}

impl Slot {
    /// Takes the step's token: streams its text, decides whether the sequence ends.
    fn accept(&mut self, token: Option<u32>, g: &Generator, now: Instant, metrics: &ModelMetrics) -> Outcome {
        let Some(id) = token else {
            return self.finish(g.finish_reason().map_or("length", |r| r.as_str()));
        };
        match self.last_token {
            None => metrics.record_first_token(now - self.arrived),
            Some(t) => metrics.record_token_gap(now - t),
        }
        self.last_token = Some(now);
        if !self.stop_ids.contains(&id) {
            self.completion_tokens += 1;
            match self.text.push(id) {
                Ok(Some(piece)) => match self.matcher.push(&piece) {
                    StopStep::Continue(safe) => {
                        if !self.send_text(safe) {
                            return Outcome::Dropped;
                        }
                    }
                    StopStep::Stopped { text, .. } => {
                        if !self.send_text(text) {
                            return Outcome::Dropped;
                        }
                        return Outcome::Finished("stop");
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    let _ = self.events.send(GenEvent::Error(format!("decoding the reply: {e}")));
                    return Outcome::Dropped;
                }
            }
        }
        if g.is_finished() {
            return self.finish(g.finish_reason().map_or("length", |r| r.as_str()));
        }
        if self.deadline.is_some_and(|d| now >= d) {
            return self.finish("length");
        }
        Outcome::Running
    }

    /// Flushes what the text stream and the stop matcher still hold.
    fn finish(&mut self, reason: &'static str) -> Outcome {
        let mut tail = String::new();
        match self.text.finish() {
            Ok(Some(rest)) => match self.matcher.push(&rest) {
                StopStep::Continue(safe) => tail.push_str(&safe),
                StopStep::Stopped { text, .. } => tail.push_str(&text),
            },
            Ok(None) => {}
            Err(e) => {
                let _ = self.events.send(GenEvent::Error(format!("decoding the reply: {e}")));
                return Outcome::Dropped;
            }
        }
        if !self.matcher.is_stopped() {
            tail.push_str(&self.matcher.finish());
        }
        if !self.send_text(tail) {
            return Outcome::Dropped;
        }
        Outcome::Finished(reason)
    }

    fn send_text(&self, text: String) -> bool {
        text.is_empty() || self.events.send(GenEvent::Text(text)).is_ok()
    }
}

/// Everything the engines of a server share for shutdown: a flag the HTTP side reads.
#[derive(Debug, Default)]
pub struct Lifecycle {
    ready: AtomicBool,
    failed: Mutex<Option<String>>,
}

impl Lifecycle {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_failed(&self, msg: String) {
        if let Ok(mut f) = self.failed.lock() {
            *f = Some(msg);
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }
}

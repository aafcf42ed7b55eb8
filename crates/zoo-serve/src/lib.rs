//! Serving: an OpenAI-compatible HTTP server over the batched engine of `zoo-infer`, a web chat
//! page, Prometheus metrics, and FastChat's controller/worker cluster protocol.
//!
//! - [`server`]: `zoo serve` (routes, auth, limits, streaming, graceful shutdown);
//! - [`engine`]: one thread per model decoding every running request in one batch;
//! - [`api`]: the OpenAI request/response shapes and error bodies;
//! - [`metrics`]: Prometheus exposition;
//! - [`controller`], [`worker`], [`cluster`], [`front`]: FastChat's cluster protocol (the
//!   controller, a worker over the engine, the client side, and the OpenAI front of a cluster).

pub mod api;
pub mod cluster;
pub mod controller;
pub mod engine;
pub mod front;
pub mod metrics;
pub mod server;
pub mod worker;

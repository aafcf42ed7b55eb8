//! `zoo serve`, `zoo worker`, `zoo controller`: flags → `zoo_serve` configurations; Ctrl-C and
//! SIGTERM begin a graceful shutdown (running streams finish; a second signal exits at once).

use std::sync::Arc;
use std::time::Duration;

use zoo_ops::Control;
use zoo_serve::controller::{ControllerConfig, Dispatch};
use zoo_serve::engine::EngineConfig;
use zoo_serve::server::ServeConfig;
use zoo_serve::worker::WorkerConfig;

use super::Ctx;
use crate::cli::{ControllerArgs, DispatchArg, ServeArgs, ServerArgs, WorkerArgs};
use crate::progress::{ProgressMode, StderrProgress};

fn config(s: &ServerArgs, port: u16, models: Vec<String>) -> ServeConfig {
    ServeConfig {
        host: s.host.clone(),
        port,
        max_body: s.max_body,
        timeout: Duration::from_secs(s.timeout.max(1)),
        engine: EngineConfig { batch_size: s.batch_size as usize, queue: s.queue as usize },
        threads: s.threads,
        template: s.template.clone(),
        models,
        ..ServeConfig::default()
    }
}

fn control() -> Control {
    Control::new(Arc::new(StderrProgress::new(ProgressMode::Auto)), zoo_progress::CancelToken::new())
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one exits the process at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("shutting down: finishing running requests (Ctrl-C again to stop now)");
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        std::process::exit(130);
    });
}

pub async fn serve(ctx: &Ctx, a: ServeArgs) -> anyhow::Result<u8> {
    let mut models = a.models.clone();
    if models.is_empty() && a.controller.is_none() {
        models.push(zoo_ops::chat::DEFAULT_MODEL.to_string());
    }
    let mut cfg = config(&a.server, a.port, models);
    cfg.api_key = a.api_key.filter(|k| !k.is_empty());
    cfg.controller = a.controller.clone();
    // A test hook: hold the loading state this long (tests/serve.rs checks the 503s).
    if let Some(ms) = std::env::var("ZOO_SERVE_LOAD_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        cfg.load_delay = Duration::from_millis(ms);
    }
    let key = if cfg.api_key.is_some() { " (API key required)" } else { "" };
    zoo_serve::server::serve(ctx.zoo.clone(), cfg, control(), shutdown_signal(), |addr| {
        eprintln!("listening on http://{addr}{key}: chat page at /, OpenAI API at /v1, /health, /metrics");
    })
    .await?;
    Ok(0)
}

pub async fn worker(ctx: &Ctx, a: WorkerArgs) -> anyhow::Result<u8> {
    let cfg = WorkerConfig {
        serve: config(&a.server, a.port, vec![a.model.clone()]),
        controller: a.controller.trim_end_matches('/').to_string(),
        worker_address: a.worker_address.clone(),
        model_names: a.model_names.clone(),
        heart_beat_interval: Duration::from_secs(a.heart_beat_interval.max(1)),
        no_register: a.no_register,
    };
    zoo_serve::worker::run_worker(ctx.zoo.clone(), cfg, control(), shutdown_signal(), |addr| {
        eprintln!("worker listening on http://{addr}");
    })
    .await?;
    Ok(0)
}

pub async fn controller(a: ControllerArgs) -> anyhow::Result<u8> {
    let cfg = ControllerConfig {
        dispatch: match a.dispatch_method {
            DispatchArg::ShortestQueue => Dispatch::ShortestQueue,
            DispatchArg::Lottery => Dispatch::Lottery,
        },
        heart_beat_expiration: Duration::from_secs(a.heart_beat_expiration.max(1)),
        // FastChat looks once per expiration, so a silent worker lingers up to twice as long;
        // looking three times as often bounds that to a third more.
        sweep_interval: Duration::from_secs((a.heart_beat_expiration / 3).max(1)),
        ..ControllerConfig::default()
    };
    zoo_serve::controller::run_controller(&a.host, a.port, cfg, shutdown_signal()).await?;
    Ok(0)
}

//! The commands: [`catalog`] (list, show, results, env, registry), [`ops`] (the operations:
//! pull, verify, cache, add, delta, quantize, inspect) and [`run`] (run, chat). [`Ctx`] holds
//! what every command shares: the [`Zoo`] (resolved paths), where they came from, the style.

mod catalog;
mod data;
mod eval;
mod ops;
mod run;
mod serve;

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::ArgMatches;
use zoo_ops::job::JobContext;
use zoo_ops::{Job, JobEvent, OpsError, Zoo};
use zoo_progress::Progress;

use crate::cli::{Cli, Command, RegistryCommand};
use crate::output::Style;
use crate::paths::{self, Resolved};
use crate::progress::{ProgressMode, StderrProgress};

pub struct Ctx {
    pub zoo: Zoo,
    pub db: Resolved<PathBuf>,
    pub catalog: Resolved<Option<PathBuf>>,
    pub style: Style,
}

/// The zoo of this run: every path and hub setting from flags and environment.
fn zoo(db: &Resolved<PathBuf>, catalog: &Resolved<Option<PathBuf>>) -> Zoo {
    let mut zoo = Zoo::new(db.value.clone());
    zoo.catalog = catalog.value.clone();
    zoo.hub = paths::hf_cache().value.map(|cache| {
        let mut cfg = zoo_hub::download::HubConfig::from_env(cache);
        cfg.offline |= paths::hf_offline();
        cfg
    });
    zoo.models_dir = paths::models_dir();
    zoo.cache_dir = paths::zoo_cache_dir();
    zoo.pypi_index = paths::pypi_index();
    zoo.notes = Arc::new(StderrProgress::new(ProgressMode::Auto));
    zoo
}

/// Runs an operation as a [`Job`] with its progress drawn on stderr and its text (a reply)
/// printed on stdout as it comes; Ctrl-C cancels it through its token (saying `on_interrupt`)
/// and waits for it to stop at a safe point. The one Ctrl-C bridge of every command. A stdout
/// that closes (`zoo chat | head`) cancels the job the same way, and once it has stopped the
/// write's error is returned (`BrokenPipe`: a quiet exit 0, see `main::report`).
pub async fn drive<T, F, Fut>(mode: ProgressMode, on_interrupt: &str, op: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(JobContext) -> Fut,
    Fut: Future<Output = zoo_ops::Result<T>> + Send + 'static,
{
    let sink = StderrProgress::new(mode);
    // Registered before any work starts, so an early Ctrl-C is never the default kill.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut job = Job::spawn(op);
    let mut interrupted = false;
    let mut closed: Option<std::io::Error> = None;
    loop {
        tokio::select! {
            ev = job.next_event() => match ev {
                Some(JobEvent::Progress(e)) => sink.event(e),
                Some(JobEvent::Text(t)) if closed.is_none() => {
                    let mut o = std::io::stdout().lock();
                    if let Err(e) = o.write_all(t.as_bytes()).and_then(|()| o.flush()) {
                        job.cancel();
                        closed = Some(e);
                    }
                }
                Some(JobEvent::Text(_)) => {}
                None => break,
            },
            _ = interrupt.recv(), if !interrupted => {
                job.cancel();
                if !on_interrupt.is_empty() {
                    eprintln!("\ninterrupted: {on_interrupt}");
                }
                interrupted = true;
            }
        }
    }
    let out = job.join().await;
    if let Some(e) = closed {
        return Err(anyhow::Error::from(e).context("writing the reply to stdout"));
    }
    Ok(out?)
}

pub async fn run(cli: Cli, matches: &ArgMatches, style: Style) -> anyhow::Result<u8> {
    let db = paths::database(cli.db.as_deref(), matches.value_source("db"))?;
    let catalog = paths::catalog(cli.catalog.as_deref(), matches.value_source("catalog"));
    let ctx = Ctx { zoo: zoo(&db, &catalog), db, catalog, style };
    // Generation streams from a worker thread, so these two must not hold the stdout lock.
    let command = match cli.command {
        Command::Run(a) => return run::run(&ctx, &mut std::io::stdout(), a).await,
        Command::Chat(a) => return run::chat(&ctx, a).await,
        Command::Tui(a) => return tui(&ctx, a).await,
        Command::Serve(a) => return serve::serve(&ctx, a).await,
        Command::Worker(a) => return serve::worker(&ctx, a).await,
        Command::Controller(a) => return serve::controller(a).await,
        c => c,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match command {
        Command::List(a) => catalog::list(&ctx, &mut out, a).await?,
        Command::Show(a) => catalog::show(&ctx, &mut out, a).await?,
        Command::Results(a) => catalog::results(&ctx, &mut out, a).await?,
        Command::Env(a) => catalog::env(&ctx, &mut out, a).await?,
        Command::Delta(d) => ops::delta(&ctx, &mut out, d).await?,
        Command::Inspect(a) => ops::inspect(&ctx, &mut out, a)?,
        Command::Quantize(a) => ops::quantize(&ctx, &mut out, a).await?,
        Command::Dequantize(a) => ops::dequantize(&ctx, &mut out, a).await?,
        Command::Pull(a) => ops::pull(&ctx, &mut out, a).await?,
        Command::Verify(a) => ops::verify(&ctx, &mut out, a).await?,
        Command::Cache(c) => ops::cache(&ctx, &mut out, c).await?,
        Command::Add(a) => ops::add(&ctx, &mut out, a).await?,
        Command::Eval(e) => eval::eval(&ctx, &mut out, e).await?,
        Command::Data(d) => data::data(&ctx, &mut out, d).await?,
        Command::Run(_)
        | Command::Chat(_)
        | Command::Tui(_)
        | Command::Serve(_)
        | Command::Worker(_)
        | Command::Controller(_) => unreachable!("handled above"),
        Command::Registry(rc) => match rc {
            RegistryCommand::Query(a) => catalog::query(&ctx, &mut out, a).await?,
            RegistryCommand::Check(a) => catalog::check(&ctx, &mut out, a)?,
            RegistryCommand::Sync(a) => catalog::sync(&ctx, &mut out, a).await?,
            RegistryCommand::ImportResults(a) => catalog::import_results(&ctx, &mut out, a).await?,
            RegistryCommand::Benchmarks(a) => catalog::listing(&ctx, &mut out, "benchmarks", a).await?,
            RegistryCommand::Datasets(a) => catalog::listing(&ctx, &mut out, "datasets", a).await?,
            RegistryCommand::Families(a) => catalog::listing(&ctx, &mut out, "families", a).await?,
        },
    };
    out.flush()?;
    Ok(code)
}

/// One hint line for errors a user can fix.
pub fn hint_for(e: &anyhow::Error) -> Option<String> {
    use zoo_registry::Error as R;
    let r = e.chain().find_map(|c| {
        c.downcast_ref::<R>().or_else(|| c.downcast_ref::<OpsError>().and_then(OpsError::registry_error))
    })?;
    Some(match r {
        R::Unwritable { .. } | R::Open { .. } => "pass --db PATH (or set ZOO_DB) to a writable location".into(),
        R::NotADatabase { .. } => {
            "point --db (or ZOO_DB) at a zoo registry, or move this file away to start a new one".into()
        }
        R::NewerSchema { .. } => "upgrade zoo, or use a separate database with --db PATH".into(),
        R::CatalogProblems { .. } => "run `zoo registry check` to see every problem with its file and line".into(),
        R::EmptyCatalog { .. } | R::Io { .. } => {
            "--catalog (or ZOO_CATALOG) must name a folder of *.toml catalog files".into()
        }
        R::UnknownModel { .. } => "see `zoo list` for the model names".into(),
        R::UnknownBenchmark { .. } | R::UnknownColumn { .. } => {
            "see `zoo registry benchmarks` for names and columns".into()
        }
        _ => return None,
    })
}

/// `zoo tui`: the dashboard on this terminal.
async fn tui(ctx: &Ctx, a: crate::cli::TuiArgs) -> anyhow::Result<u8> {
    let opts = zoo_tui::Options {
        threads: a.threads,
        max_tokens: a.max_tokens,
        voter: a.voter.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "me".into()),
        color: ctx.style.color,
        mouse: !a.no_mouse,
    };
    zoo_tui::run(ctx.zoo.clone(), opts).await?;
    Ok(0)
}

//! `zoo delta apply|make`: glue between the CLI and `zoo_weights::delta`. The algorithm for
//! `--algorithm auto` comes from the registry when the delta is a known release; Ctrl-C cancels
//! through the library's token, which removes the unfinished output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use zoo_progress::{CancelToken, Progress};
use zoo_weights::{Algorithm, DeltaOptions, DeltaReport, WriteOptions};

use super::Ctx;
use crate::EXIT_OK;
use crate::cli::{DeltaAlgorithm, DeltaCommand, WriteArgs};
use crate::progress::StderrProgress;

pub async fn delta(ctx: &Ctx, out: &mut dyn Write, cmd: DeltaCommand) -> anyhow::Result<u8> {
    match cmd {
        DeltaCommand::Apply(a) => {
            let (algorithm, why) = match a.algorithm {
                DeltaAlgorithm::Fastchat => (Algorithm::Fastchat, None),
                DeltaAlgorithm::Llmzoo => (Algorithm::Llmzoo, None),
                DeltaAlgorithm::Huatuo => (Algorithm::Huatuo, None),
                DeltaAlgorithm::Auto => match registry_algorithm(ctx, &a.delta).await {
                    Some((alg, model)) => (alg, Some(format!("algorithm {} from the registry ({model})", alg.name()))),
                    None => (Algorithm::Auto, None),
                },
            };
            let progress = Arc::new(StderrProgress::new(a.write.progress));
            if let Some(w) = &why {
                progress.event(zoo_progress::Event::Note { message: w.clone() });
            }
            let (base, delta, dest) = (a.base.clone(), a.delta.clone(), a.write.out.clone());
            let opts = options(&a.write);
            let report = run_cancellable(progress, move |p, c| {
                zoo_weights::delta::apply(&base, &delta, algorithm, &dest, &opts, p, c)
            })
            .await
            .with_context(|| format!("applying delta {} to base {}", a.delta.display(), a.base.display()))?;
            print_report(ctx, out, &report, &a.write, "applied")?;
        }
        DeltaCommand::Make(a) => {
            let progress = Arc::new(StderrProgress::new(a.write.progress));
            let (base, target, dest) = (a.base.clone(), a.target.clone(), a.write.out.clone());
            let opts = options(&a.write);
            let report =
                run_cancellable(progress, move |p, c| zoo_weights::delta::make(&base, &target, &dest, &opts, p, c))
                    .await
                    .with_context(|| {
                        format!("making a delta of {} against base {}", a.target.display(), a.base.display())
                    })?;
            print_report(ctx, out, &report, &a.write, "made")?;
        }
    }
    Ok(EXIT_OK)
}

fn options(w: &WriteArgs) -> DeltaOptions {
    DeltaOptions {
        write: WriteOptions { max_shard_size: w.max_shard_size, overwrite: w.overwrite },
        ..DeltaOptions::default()
    }
}

/// Run blocking weight work off the async thread; Ctrl-C cancels it at the next chunk.
pub(crate) async fn run_cancellable<T, F>(progress: Arc<StderrProgress>, work: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Progress, &CancelToken) -> zoo_weights::Result<T> + Send + 'static,
{
    run_blocking(progress, "removing the unfinished output", work).await
}

/// Run blocking library work off the async thread; on Ctrl-C, say `on_interrupt` and cancel it
/// through its token, then wait for it to stop at its next safe point.
pub(crate) async fn run_blocking<T, E, F>(
    progress: Arc<StderrProgress>,
    on_interrupt: &str,
    work: F,
) -> anyhow::Result<T>
where
    T: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: FnOnce(&dyn Progress, &CancelToken) -> Result<T, E> + Send + 'static,
{
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    // Register for SIGINT before any work starts, so an early Ctrl-C is never the default kill.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler")?;
    let mut job = tokio::task::spawn_blocking(move || work(progress.as_ref(), &c2));
    tokio::select! {
        r = &mut job => Ok(r.context("worker stopped")??),
        _ = interrupt.recv() => {
            cancel.cancel();
            eprintln!("\ninterrupted: {on_interrupt}");
            let r = job.await.context("worker stopped")?;
            Ok(r?)
        }
    }
}

/// The registry's algorithm for a delta folder that is a known release: an HF cache snapshot
/// (`models--ORG--NAME/snapshots/...`) or a folder named like the release's repo.
async fn registry_algorithm(ctx: &Ctx, delta: &Path) -> Option<(Algorithm, String)> {
    let abs = std::fs::canonicalize(delta).unwrap_or_else(|_| delta.to_path_buf());
    let mut candidates: Vec<String> = Vec::new();
    for comp in abs.components() {
        let s = comp.as_os_str().to_string_lossy();
        if let Some(rest) = s.strip_prefix("models--") {
            candidates.push(rest.replacen("--", "/", 1));
        }
    }
    let folder = if abs.is_file() { abs.parent().map(PathBuf::from) } else { Some(abs.clone()) };
    let leaf = folder.as_ref().and_then(|f| f.file_name()).map(|n| n.to_string_lossy().to_lowercase());
    let reg = ctx.registry().await.ok()?;
    let deltas =
        reg.models(&zoo_registry::ModelFilter { kind: Some("delta".into()), ..Default::default() }, None).await.ok()?;
    reg.close().await;
    deltas.into_iter().find_map(|m| {
        let repo = m.hf_repo.clone()?;
        let repo_leaf = repo.rsplit('/').next().unwrap_or_default().to_lowercase();
        let hit =
            candidates.iter().any(|c| c.eq_ignore_ascii_case(&repo)) || leaf.as_deref() == Some(repo_leaf.as_str());
        let alg = Algorithm::from_name(m.delta_algorithm.as_deref()?)?;
        hit.then_some((alg, m.name))
    })
}

fn print_report(ctx: &Ctx, out: &mut dyn Write, r: &DeltaReport, w: &WriteArgs, verb: &str) -> anyhow::Result<()> {
    let files: Vec<serde_json::Value> =
        r.write.files.iter().map(|f| serde_json::json!({"path": f.path, "size": f.size, "sha256": f.sha256})).collect();
    if w.json {
        crate::output::write_json(
            out,
            &serde_json::json!({
                "out": r.write.dest,
                "algorithm": r.algorithm.name(),
                "reason": r.reason,
                "dropped": r.dropped,
                "copied_files": r.copied_files,
                "tensors": r.write.tensors,
                "tensor_bytes": r.write.tensor_bytes,
                "shards": r.write.shards,
                "files": files,
                "manifest": zoo_weights::MANIFEST_NAME,
            }),
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{verb} with algorithm {} ({}): {} tensors, {} in {} shard(s) → {}",
        r.algorithm.name(),
        r.reason,
        r.write.tensors,
        crate::progress::human_bytes(r.write.tensor_bytes),
        r.write.shards,
        r.write.dest.display()
    )?;
    for d in &r.dropped {
        writeln!(out, "  dropped {d}")?;
    }
    let mut t = crate::output::Table::new(["FILE", "SIZE", "SHA256"]).right_align(&[1]);
    for f in &r.write.files {
        t.push(vec![f.path.clone(), f.size.to_string(), f.sha256.clone()]);
    }
    t.write_text(out, ctx.style)?;
    Ok(())
}

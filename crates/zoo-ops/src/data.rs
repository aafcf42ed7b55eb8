//! The `zoo data` operations that need a model: token counts in its prompt format (`stats`)
//! and LLM Zoo's training rendering with its tokenizer (`render`). The model is found or
//! pulled as every command finds one, with progress and cancellation; the file work runs on
//! worker threads off the caller's. The model-free commands (`validate`, `convert`, `sample`,
//! `split`, `dedup`) are `zoo_data`'s functions, called directly.

use std::path::PathBuf;

use serde::Serialize;
use zoo_data::{Format, RenderOptions, RenderReport, ScanOptions, StatsReport, TokenCounter, TokenizedBy, Turn, Watch};

use crate::chat::{TextModel, load_text};
use crate::{Control, Result, Zoo, blocking};

/// Runs a model-free `zoo_data` command (`convert`, `sample`, `split`, `dedup`) on a worker
/// thread under `ctl`: the file's bytes as progress, and cancelled it stops within a megabyte
/// of the file, its output not written.
pub async fn watched<T: Send + 'static>(
    ctl: &Control,
    work: impl FnOnce(Watch) -> zoo_data::Result<T> + Send + 'static,
) -> Result<T> {
    let (progress, cancel) = (ctl.progress.clone(), ctl.cancel.clone());
    blocking(move || Ok(work(Watch { progress: Some(&*progress), cancel: Some(&cancel) })?)).await
}

/// What `zoo data stats` counts.
#[derive(Debug, Clone, Default)]
pub struct StatsRequest {
    pub file: PathBuf,
    /// The format, else detected from the first record.
    pub format: Option<Format>,
    /// Problems listed at most (all are counted).
    pub max_problems: usize,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Count tokens with this model's tokenizer (a model reference), in its prompt format.
    pub tokenizer: Option<String>,
    /// The prompt format to count in, instead of the model's.
    pub template: Option<String>,
    /// Records over this many tokens are counted (default: the model's context length).
    pub context: Option<usize>,
    /// Write the length histogram here (SVG or PNG, by the extension).
    pub plot: Option<PathBuf>,
}

/// Counts records, turns, problems and languages (every scan of `stats` guesses languages)
/// and, with a tokenizer, tokens; writes the length chart when asked. A chart format that
/// does not exist is refused before any work. Cancelled, it stops within a megabyte of the
/// file and returns `is_cancelled()`.
pub async fn stats(zoo: &Zoo, req: &StatsRequest, ctl: &Control) -> Result<StatsReport> {
    if let Some(p) = &req.plot {
        zoo_report::PlotFormat::from_path(p)?;
    }
    let tm = match &req.tokenizer {
        Some(m) => Some(load_text(zoo, Some(m), req.template.as_deref(), ctl).await?),
        None => None,
    };
    let tokenizer = tm.as_ref().map(|tm| TokenizedBy { model: tm.label.clone(), format: tm.format.name().to_string() });
    let (req, cancel, progress) = (req.clone(), ctl.cancel.clone(), ctl.progress.clone());
    blocking(move || {
        let count = |turns: &[Turn]| match &tm {
            Some(tm) => tm.count(&messages(turns)).map_err(|e| e.to_string()),
            None => Ok(0),
        };
        let counter: TokenCounter = &count;
        let opts = ScanOptions {
            format: req.format,
            max_problems: req.max_problems,
            tokens: tm.is_some().then_some(counter),
            context: req.context.or(tm.as_ref().and_then(|tm| tm.context_length)),
            languages: true,
            threads: req.threads.max(1),
            watch: Watch { progress: Some(&*progress), cancel: Some(&cancel) },
        };
        let r = StatsReport { scan: zoo_data::scan(&req.file, &opts)?, tokenizer, plot: req.plot.clone() };
        if let Some(path) = &r.plot {
            zoo_report::write_histogram(&histogram(&r), path)?;
        }
        Ok(r)
    })
    .await
}

/// The chart of `stats`: tokens when counted, else characters.
fn histogram(s: &StatsReport) -> zoo_report::Histogram {
    let r = &s.scan;
    let (unit, h) = match (&r.tokens, &s.tokenizer) {
        (Some(t), Some(by)) => (format!("tokens ({}, {} format)", by.model, by.format), &t.histogram),
        _ => ("characters".to_string(), &r.stats.length_histogram),
    };
    let name = std::path::Path::new(&r.file).file_name().map_or(r.file.clone(), |n| n.to_string_lossy().into_owned());
    zoo_report::Histogram {
        title: format!("{name}: {} records by length", r.stats.records),
        x_desc: format!("{unit} per record, up to"),
        y_desc: "records".to_string(),
        bins: h.iter().map(|(b, n)| (b.to_string(), *n as u64)).collect(),
    }
}

fn messages(turns: &[Turn]) -> Vec<zoo_chat::Message> {
    turns.iter().map(|t| zoo_chat::Message::new(t.role, t.text.clone())).collect()
}

/// What `zoo data render` writes.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub file: PathBuf,
    pub format: Option<Format>,
    /// Whose tokenizer (a model reference).
    pub model: String,
    /// Records are cut at this many tokens, as LLM Zoo's training cut them.
    pub max_length: usize,
    /// Add each record's training text to its line.
    pub with_text: bool,
    /// Read FastChat's other role names (`chatgpt`, `bard`, ...) as the assistant.
    pub normalize_roles: bool,
    pub threads: usize,
    pub out: PathBuf,
}

/// The report of `zoo data render` (its `--json`): the file's, and whose tokenizer rendered it.
#[derive(Debug, Clone, Serialize)]
pub struct RenderOutput {
    #[serde(flatten)]
    pub report: RenderReport,
    /// The model whose tokenizer was used.
    pub model: String,
    /// Where records were cut, in tokens.
    pub max_length: usize,
}

/// Renders every conversation as LLM Zoo's training did: token ids with the assistant-only loss
/// mask, written as JSON lines (atomically). The tokenizer is prepared as LLM Zoo's training
/// prepared it: `<pad>` added when it has none, then `</s>`, `<s>` and `<unk>` made its special
/// tokens (added where the vocabulary lacks them), truncating at `max_length`. Cancelled, it
/// stops within a megabyte of the file and leaves no output (its temp file is removed).
pub async fn render(zoo: &Zoo, req: &RenderRequest, ctl: &Control) -> Result<RenderOutput> {
    let TextModel { tokenizer, label, .. } = load_text(zoo, Some(&req.model), None, ctl).await?;
    let (req, cancel, progress) = (req.clone(), ctl.cancel.clone(), ctl.progress.clone());
    blocking(move || {
        let mut extra = Vec::new();
        if tokenizer.pad_token.is_none() {
            extra.push("<pad>");
        }
        extra.extend(["</s>", "<s>", "<unk>"]);
        let tok = tokenizer.with_special_tokens(&extra)?.truncating(req.max_length)?;
        let encode = |text: &str| tok.encode(text, true).map_err(|e| e.to_string());
        let opts = RenderOptions {
            max_length: req.max_length,
            with_text: req.with_text,
            normalize_roles: req.normalize_roles,
            threads: req.threads.max(1),
            watch: Watch { progress: Some(&*progress), cancel: Some(&cancel) },
        };
        let report = zoo_data::render_file(&req.file, req.format, &encode, opts, &req.out)?;
        Ok(RenderOutput { report, model: label, max_length: req.max_length })
    })
    .await
}

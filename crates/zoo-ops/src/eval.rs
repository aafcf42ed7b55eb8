//! `zoo eval mcq`: multiple-choice benchmarks scored by log-likelihood on the local engine,
//! resumable through the registry.
//!
//! How a run goes: the questions file is read and hashed, the selection applied, the model
//! loaded and hashed; the job key (sha256 over model hash, file hash, selection, prompt format,
//! mode and settings) finds the job of an earlier, interrupted run, whose stored predictions are
//! kept. The questions left are scored in batches: the prompts of a batch are tokenized, the
//! longest token prefix they share (the subject line) is computed once and forked into every
//! sequence, and one `forward_batch` advances them all to their last position. The prediction
//! is the option whose continuation (` A`, ` B`, …) is most likely; a continuation of one token
//! is read off the last position's logits, a longer one is run and its log-probabilities
//! summed (lm-evaluation-harness's `acc`). Each batch's predictions are stored in one
//! transaction before the next batch starts, so `kill -9` loses at most one batch and never
//! scores a question twice. At the end the summary is recorded as a measured result with its
//! provenance when the selection is a registry benchmark (`mmlu-medical-6`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use zoo_eval::metrics::{Prediction, Summary, summarize};
use zoo_eval::{McqPrompt, Question, Selection};
use zoo_infer::{CausalLm, Logits, SeqInput, SeqState, Tokenizer};
use zoo_progress::{Event, Unit};
use zoo_registry::model::{FileRecord, ResultRecord};
use zoo_registry::{EvalJob, StoredPrediction};

use crate::chat::{self, ChatOptions};
use crate::endpoint::{Endpoint, EndpointConfig, EndpointError, option_logprobs};
use crate::{Context as _, Control, OpsError, Result, Zoo, blocking, provenance};

/// How choices are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The log-likelihood of each option's continuation after the prompt.
    Loglik,
    /// Apollo's method: a few-shot prompt, greedy generation, the answer extracted from the
    /// first non-empty line of the output (`zoo_eval::extract`).
    Generate,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Loglik => "loglik",
            Mode::Generate => "generate",
        }
    }
}

/// Settings of `--mode generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GenerateSettings {
    /// Exemplars per question (Apollo: 3).
    pub shots: usize,
    /// Seeds the exemplars' draw.
    pub seed: u64,
    /// Most tokens generated per answer (Apollo: 256 for Qwen, 128 for the others).
    pub max_tokens: usize,
}

/// Apollo's prompt limit, in characters: exemplars are added while the prompt stays under it.
pub const APOLLO_MAX_CHARS: usize = 4096;

#[derive(Debug, Clone)]
pub struct McqRequest {
    /// MODEL (see [`crate::ModelRef`]); `None`: the default model.
    pub model: Option<String>,
    pub questions: PathBuf,
    pub selection: Selection,
    pub prompt: McqPrompt,
    pub mode: Mode,
    /// Questions per forward pass.
    pub batch: usize,
    pub threads: Option<usize>,
    /// Forget the stored predictions of this configuration and score everything again.
    pub restart: bool,
    /// The registry benchmark to record the result under; `None`: the named set's, when the
    /// selection is exactly one named set.
    pub benchmark: Option<String>,
    pub generate: GenerateSettings,
    /// Ask an OpenAI-compatible server instead of loading the model; `model` then only names the
    /// registry model the result is recorded under.
    pub endpoint: Option<EndpointRequest>,
    /// The end-of-sequence text that closes Apollo's exemplars; `None`: the local tokenizer's,
    /// or none with an endpoint.
    pub eos: Option<String>,
}

/// `--endpoint URL [--endpoint-model M] [--endpoint-api chat|completions]`.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    pub config: EndpointConfig,
    /// How `--mode generate` asks (log-likelihoods always use `/completions`).
    pub api: EndpointApi,
}

/// The API `--mode generate` uses on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointApi {
    /// `/chat/completions`: the prompt is the user's message, the server applies its template.
    Chat,
    /// `/completions`: the prompt as it is, as the local engine runs it.
    Completions,
}

impl EndpointApi {
    pub fn name(self) -> &'static str {
        match self {
            EndpointApi::Chat => "chat",
            EndpointApi::Completions => "completions",
        }
    }
}

/// How many of the most likely next tokens `--mode loglik` asks an endpoint for.
pub const ENDPOINT_TOP_LOGPROBS: usize = 20;

/// The registry benchmarks a selection is recorded under: (named set, benchmark).
const BENCHMARKS: &[(&str, &str)] = &[("mmlu-medical-6", "mmlu-medical-6")];

/// The `--json` of `zoo eval mcq`.
#[derive(Debug, Clone, Serialize)]
pub struct McqReport {
    pub model: String,
    /// The manifest sha256 of the local model's files; `None` with an endpoint.
    pub model_hash: Option<String>,
    pub questions: PathBuf,
    pub questions_sha256: String,
    pub format: &'static str,
    pub selection: String,
    pub prompt: String,
    pub mode: String,
    pub job_id: i64,
    /// Predictions found stored from an earlier run of this configuration.
    pub resumed: usize,
    /// Predictions made by this run.
    pub scored: usize,
    #[serde(flatten)]
    pub summary: Summary,
    /// The registry benchmark the result was recorded under, and the run id.
    pub benchmark: Option<String>,
    pub run_id: Option<i64>,
    /// The endpoint asked (`--endpoint`), with the model it served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Questions that failed in this run (an endpoint that kept timing out or answering garbage):
    /// not stored, so a rerun asks them again; no result is recorded while any is left.
    pub failed: Vec<FailedItem>,
    /// Time spent scoring in this run (not loading).
    pub seconds: f64,
    pub questions_per_s: f64,
    /// One per selected question, in order (written by `--predictions`).
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
}

/// A question an endpoint failed on.
#[derive(Debug, Clone, Serialize)]
pub struct FailedItem {
    pub index: usize,
    pub error: String,
}

/// What answers the questions.
enum Engine {
    Local { lm: Arc<dyn CausalLm>, tok: Arc<Tokenizer>, stop_ids: Vec<u32> },
    Remote { ep: Arc<Endpoint>, api: EndpointApi },
}

/// The model's files (a file, or a folder's weights, config and tokenizer) as a manifest hash.
pub(crate) fn model_hash(source: &Path, threads: usize, ctl: &Control) -> Result<String> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if source.is_file() {
        let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        files.push((name, source.to_path_buf()));
    } else {
        let rd = std::fs::read_dir(source).map_err(|e| OpsError::io(source, e))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let keep = [".safetensors", ".bin", ".gguf", ".json", ".model", ".jinja"].iter().any(|x| name.ends_with(x))
                && !name.starts_with("zoo-");
            if keep && e.path().is_file() {
                files.push((name, e.path()));
            }
        }
    }
    files.sort();
    let sums = zoo_hub::hash::sha256_files(&files, threads, ctl.progress.as_ref(), &ctl.cancel);
    let mut records = Vec::new();
    for ((name, path), sum) in files.iter().zip(sums) {
        let size = std::fs::metadata(path).map(|m| m.len() as i64).ok();
        records.push(FileRecord { path: name.clone(), size, sha256: Some(sum?) });
    }
    Ok(zoo_registry::manifest_sha256(&records))
}

/// What decides the numbers, hashed: a run with the same key continues the same job.
pub(crate) fn job_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

/// One scored question before it is stored.
struct Scored {
    pred: usize,
    loglik: Vec<f64>,
}

/// Scores `qs` (with their prompts) by log-likelihood; `shared` limits nothing, it is computed.
fn score_batch(lm: &dyn CausalLm, tok: &Tokenizer, prompts: &[(String, Vec<String>)]) -> Result<Vec<Scored>> {
    let ids: Vec<Vec<u32>> = prompts.iter().map(|(p, _)| tok.encode(p, true)).collect::<std::result::Result<_, _>>()?;
    if ids.iter().any(Vec::is_empty) {
        return Err(OpsError::Invalid("a prompt tokenized to nothing".into()));
    }
    // The longest token prefix the batch shares, leaving every prompt at least one token.
    let shortest = ids.iter().map(Vec::len).min().unwrap_or(1);
    let first = ids.first().cloned().unwrap_or_default();
    let mut shared = first.len().min(shortest - 1);
    for s in &ids[1..] {
        shared = shared.min(first.iter().zip(s).take_while(|(a, b)| a == b).count());
    }
    let mut base = lm.new_state();
    if shared > 0 {
        lm.forward_batch(&mut [SeqInput::new(&mut base, &first[..shared], Logits::Last)])?;
    }
    let mut states: Vec<SeqState> = ids.iter().map(|_| base.fork()).collect();
    let logits = {
        let mut inputs: Vec<SeqInput<'_>> = states
            .iter_mut()
            .zip(&ids)
            .map(|(st, i)| SeqInput::new(st, i.get(shared..).unwrap_or_default(), Logits::Last))
            .collect();
        lm.forward_batch(&mut inputs)?
    };
    let mut out = Vec::with_capacity(prompts.len());
    for (((prompt, conts), ids), (last, state)) in prompts.iter().zip(&ids).zip(logits.iter().zip(&states)) {
        let last =
            log_softmax(&last.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(zoo_infer::InferError::from)?);
        let mut ll = Vec::with_capacity(conts.len());
        for c in conts {
            let full = tok.encode(&format!("{prompt}{c}"), true)?;
            // The continuation's tokens: what the joint encoding adds after the prompt's (as
            // lm-eval splits context and continuation); the continuation alone if they differ.
            let cont: Vec<u32> = match full.strip_prefix(ids.as_slice()) {
                Some(rest) if !rest.is_empty() => rest.to_vec(),
                _ => tok.encode(c, false)?,
            };
            ll.push(continuation_loglik(lm, state, &last, &cont)?);
        }
        let pred = ll
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
            .0;
        out.push(Scored { pred, loglik: ll });
    }
    Ok(out)
}

/// Greedy answers to `prompts`, all advanced together one token per step, each stopped at the
/// end of its first non-empty line, an end-of-sequence token or `max_tokens`; returns the texts.
fn generate_batch(
    lm: &Arc<dyn CausalLm>,
    tok: &Tokenizer,
    stop_ids: &[u32],
    prompts: &[String],
    max_tokens: usize,
) -> Result<Vec<String>> {
    let mut gens = Vec::with_capacity(prompts.len());
    for p in prompts {
        let ids = tok.encode(p, true)?;
        let sampler = zoo_infer::Sampler::new(&zoo_infer::SamplingParams::greedy());
        gens.push(zoo_infer::Generator::new(lm.clone(), lm.new_state(), &ids, max_tokens, sampler, stop_ids)?);
    }
    let mut texts = vec![String::new(); prompts.len()];
    while gens.iter().any(|g| !g.is_finished()) {
        zoo_infer::step_batch(lm.as_ref(), &mut gens)?;
        for (g, text) in gens.iter_mut().zip(texts.iter_mut()) {
            let ids: Vec<u32> = g.tokens().iter().copied().filter(|t| !stop_ids.contains(t)).collect();
            *text = tok.decode(&ids)?;
            // The first non-empty line is complete: nothing after it is read.
            let started = text.trim_start();
            if !g.is_finished() && started.contains('\n') {
                g.stop();
            }
        }
    }
    Ok(texts)
}

/// `f` on every item at once, one thread each (an endpoint serves requests in parallel; the
/// batch size bounds the threads).
pub(crate) fn ask_all<I: Sync, T: Send>(
    items: &[I],
    f: impl Fn(&I) -> std::result::Result<T, EndpointError> + Sync,
) -> Vec<std::result::Result<T, EndpointError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|it| s.spawn(|| f(it))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(EndpointError::Transport { url: String::new(), message: "a request thread panicked".into() })
                })
            })
            .collect()
    })
}

/// The prediction from options' log-probabilities read off an endpoint's top tokens; an option
/// not among them scores -inf. `None` when no option is among them.
fn scored_from_top(lps: &[Option<f64>]) -> Option<Scored> {
    let loglik: Vec<f64> = lps.iter().map(|x| x.unwrap_or(f64::NEG_INFINITY)).collect();
    let (pred, best) = loglik
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) });
    best.is_finite().then_some(Scored { pred, loglik })
}

/// log p(cont | prompt): the first token from the prompt's last logits, the rest (if any) by
/// running the continuation on a fork of the prompt's state.
fn continuation_loglik(lm: &dyn CausalLm, state: &SeqState, last: &[f64], cont: &[u32]) -> Result<f64> {
    let Some((&first, rest)) = cont.split_first() else { return Ok(0.0) };
    let mut total = last.get(first as usize).copied().unwrap_or(f64::NEG_INFINITY);
    if rest.is_empty() {
        return Ok(total);
    }
    let mut st = state.fork();
    let out = lm.forward_batch(&mut [SeqInput::new(&mut st, &cont[..cont.len() - 1], Logits::All)])?;
    let rows = out
        .first()
        .ok_or_else(|| OpsError::Invalid("no logits".into()))?
        .to_vec2::<f32>()
        .map_err(zoo_infer::InferError::from)?;
    for (row, &id) in rows.iter().zip(rest) {
        total += log_softmax(row).get(id as usize).copied().unwrap_or(f64::NEG_INFINITY);
    }
    Ok(total)
}

fn log_softmax(x: &[f32]) -> Vec<f64> {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let lse = max + x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    x.iter().map(|&v| v as f64 - lse).collect()
}

/// The share of scored questions answered correctly so far (`None` before the first).
fn running_accuracy<'a>(done: impl Iterator<Item = &'a StoredPrediction>) -> Option<f64> {
    let (mut n, mut right) = (0usize, 0usize);
    for p in done {
        n += 1;
        right += usize::from(p.correct);
    }
    (n > 0).then(|| right as f64 / n as f64)
}

fn stored(index: usize, q: &Question, s: &Scored) -> StoredPrediction {
    let pred = Question::letter(s.pred).to_string();
    let gold = q.gold_letters();
    StoredPrediction {
        idx: index as i64,
        subset: q.subset.clone(),
        language: q.language.clone(),
        correct: q.gold.contains(&s.pred),
        pred: Some(pred),
        gold,
        detail: Some(serde_json::json!({ "loglik": s.loglik })),
    }
}

/// A generated answer scored as Apollo does: the extracted letter against the gold's first
/// letter (multi-answer golds are reduced to their first letter, as in Apollo).
fn generated(index: usize, q: &Question, text: String) -> StoredPrediction {
    let arabic = q.language.as_deref() == Some("ar");
    let pred = zoo_eval::extract::apollo_answer(&text, arabic);
    let first = q.gold.first().map(|&g| Question::letter(g));
    StoredPrediction {
        idx: index as i64,
        subset: q.subset.clone(),
        language: q.language.clone(),
        correct: pred.is_some() && pred == first,
        pred: pred.map(String::from),
        gold: q.gold_letters(),
        detail: Some(serde_json::json!({ "output": text })),
    }
}

/// Runs (or continues) a multiple-choice evaluation.
pub async fn mcq(zoo: &Zoo, req: &McqRequest, ctl: &Control) -> Result<McqReport> {
    // Everything that can be refused is checked before the model loads.
    if req.mode == Mode::Loglik && !req.prompt.scores_continuations() {
        return Err(OpsError::Invalid(format!("prompt format {} is for --mode generate", req.prompt.name())));
    }
    if req.mode == Mode::Generate && req.prompt != McqPrompt::Apollo {
        return Err(OpsError::Invalid(format!("--mode generate uses --prompt apollo, not {}", req.prompt.name())));
    }
    let selection = req.selection.describe();
    let named = req.selection.subsets.first().filter(|_| {
        req.selection.subsets.len() == 1 && req.selection.languages.is_empty() && req.selection.limit.is_none()
    });
    let benchmark = req.benchmark.clone().or_else(|| {
        named.and_then(|n| BENCHMARKS.iter().find(|(s, _)| s.eq_ignore_ascii_case(n)).map(|(_, b)| b.to_string()))
    });
    let reg = zoo.registry().await?;
    if let Some(b) = &benchmark {
        let names: Vec<String> = reg.benchmarks().await?.into_iter().map(|x| x.name).collect();
        if !names.contains(b) {
            reg.close().await;
            return Err(OpsError::not_found(format!("no benchmark named {b:?}; known: {}", names.join(", "))));
        }
    }
    let path = req.questions.clone();
    let bench = blocking(move || Ok(zoo_eval::data::load(&path)?)).await?;
    let selected: Vec<Question> = req.selection.apply(&bench.questions)?.into_iter().cloned().collect();
    let (label, hash, engine, eos) = match &req.endpoint {
        Some(e) => {
            let config = e.config.clone();
            let ep = blocking(move || Ok(Endpoint::connect(&config)?)).await?;
            let label = req.model.clone().unwrap_or_else(|| ep.model().to_string());
            (label, None, Engine::Remote { ep: Arc::new(ep), api: e.api }, req.eos.clone().unwrap_or_default())
        }
        None => {
            let opts = ChatOptions {
                model: req.model.clone(),
                threads: req.threads,
                template: Some("none".into()),
                ..Default::default()
            };
            let cm = chat::load(zoo, &opts, ctl).await?;
            cm.tokenizer()?;
            let (label, mut loaded) = (cm.label, cm.model);
            let stop_ids = loaded.stop_ids.clone();
            let tok = Arc::new(
                loaded.tokenizer.take().ok_or_else(|| OpsError::Invalid(format!("{label} has no tokenizer")))?,
            );
            // Apollo's exemplars end with the model's end-of-sequence text.
            let eos = req.eos.clone().unwrap_or_else(|| tok.eos_token.clone().unwrap_or_default());
            let (lm, source) = (loaded.model.clone(), loaded.source.clone());
            let threads = crate::default_threads(req.threads);
            let ctl2 = ctl.clone();
            let hash =
                blocking(move || model_hash(&source, threads, &ctl2)).await.context("hashing the model's files")?;
            (label, Some(hash), Engine::Local { lm, tok, stop_ids }, eos)
        }
    };
    // What answers, as the job key and the provenance name it.
    let answered_by = match &engine {
        Engine::Local { .. } => hash.clone().unwrap_or_default(),
        Engine::Remote { ep, api } => format!("endpoint {} model {} api {}", ep.base(), ep.model(), api.name()),
    };
    let settings = match req.mode {
        Mode::Loglik => serde_json::json!({ "tokenizer_special_tokens": true, "format": bench.format }),
        Mode::Generate => serde_json::json!({
            "tokenizer_special_tokens": true,
            "format": bench.format,
            "shots": req.generate.shots,
            "seed": req.generate.seed,
            "max_tokens": req.generate.max_tokens,
            "max_chars": APOLLO_MAX_CHARS,
            "eos": eos,
        }),
    };
    let seed = (req.mode == Mode::Generate).then_some(req.generate.seed as i64);
    let recorded_as = benchmark.clone().unwrap_or_default();
    let key = job_key(&[
        "mcq",
        &answered_by,
        &bench.sha256,
        &selection,
        req.prompt.name(),
        req.mode.name(),
        &settings.to_string(),
        &recorded_as,
    ]);
    let job = EvalJob {
        id: None,
        key,
        kind: "mcq".into(),
        model: label.clone(),
        model_hash: hash.clone(),
        benchmark: benchmark.clone(),
        data_path: req.questions.display().to_string(),
        data_sha256: bench.sha256.clone(),
        selection: selection.clone(),
        prompt_format: req.prompt.name().into(),
        mode: req.mode.name().into(),
        seed,
        total: selected.len() as i64,
        zoo_version: provenance::ZOO_VERSION.into(),
        settings,
        started_at: crate::now_rfc3339(),
        finished_at: None,
        run_id: None,
    };
    let job = reg.open_eval_job(&job).await?;
    let job_id = job.id.ok_or_else(|| OpsError::Invalid("the registry gave the job no id".into()))?;
    if req.restart {
        reg.clear_eval_predictions(job_id).await?;
    }
    let mut done: BTreeMap<usize, StoredPrediction> =
        reg.eval_predictions(job_id).await?.into_iter().map(|p| (p.idx as usize, p)).collect();
    let resumed = done.len();
    if resumed > 0 {
        ctl.note(format!("continuing job {job_id}: {resumed} of {} questions already scored", selected.len()));
    }
    let task = format!("eval {}", req.questions.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    ctl.progress.event(Event::Start { task: task.clone(), total: Some(selected.len() as u64), unit: Unit::Items });
    ctl.progress.event(Event::Advance { task: task.clone(), delta: resumed as u64 });

    // Questions left, grouped by subset so a batch shares its subject line.
    let mut todo: Vec<usize> = (0..selected.len()).filter(|i| !done.contains_key(i)).collect();
    todo.sort_by(|&a, &b| selected[a].subset.cmp(&selected[b].subset).then(a.cmp(&b)));
    let started = std::time::Instant::now();
    let mut scored = 0;
    let mut failed: Vec<FailedItem> = Vec::new();
    let batch = req.batch.max(1);
    let mut i = 0;
    while i < todo.len() {
        ctl.check()?;
        let subset = &selected[todo[i]].subset;
        let mut j = i;
        while j < todo.len() && j - i < batch && &selected[todo[j]].subset == subset {
            j += 1;
        }
        let idx: Vec<usize> = todo[i..j].to_vec();
        let mut rows: Vec<StoredPrediction> = Vec::with_capacity(idx.len());
        match req.mode {
            Mode::Loglik => {
                let prompts: Vec<(String, Vec<String>)> = idx
                    .iter()
                    .map(|&k| {
                        let r = req.prompt.render(&selected[k]);
                        (r.prompt(), r.continuations)
                    })
                    .collect();
                match &engine {
                    Engine::Local { lm, tok, .. } => {
                        let (lm2, tok2) = (lm.clone(), tok.clone());
                        let results = blocking(move || score_batch(lm2.as_ref(), &tok2, &prompts)).await?;
                        rows.extend(idx.iter().zip(&results).map(|(&k, s)| stored(k, &selected[k], s)));
                    }
                    Engine::Remote { ep, .. } => {
                        let ep2 = ep.clone();
                        let answers = blocking(move || {
                            Ok(ask_all(&prompts, |(p, conts)| {
                                let top = ep2.next_token_logprobs(p, ENDPOINT_TOP_LOGPROBS)?;
                                Ok(option_logprobs(&top, conts))
                            }))
                        })
                        .await?;
                        for (&k, answer) in idx.iter().zip(answers) {
                            match answer.map(|lps| scored_from_top(&lps)) {
                                Ok(Some(s)) => rows.push(stored(k, &selected[k], &s)),
                                Ok(None) => failed.push(FailedItem {
                                    index: k,
                                    error: format!("no option among the top {ENDPOINT_TOP_LOGPROBS} next tokens"),
                                }),
                                Err(e @ EndpointError::Unsupported { .. }) => return Err(e.into()),
                                Err(e) => failed.push(FailedItem { index: k, error: e.to_string() }),
                            }
                        }
                    }
                }
            }
            Mode::Generate => {
                let g = req.generate;
                let prompts: Vec<String> = idx
                    .iter()
                    .map(|&k| {
                        let shots: Vec<&Question> = zoo_eval::prompt::shots(&selected, k, g.shots, g.seed)
                            .into_iter()
                            .map(|s| &selected[s])
                            .collect();
                        zoo_eval::prompt::apollo(&selected[k], &shots, &eos, APOLLO_MAX_CHARS)
                    })
                    .collect();
                match &engine {
                    Engine::Local { lm, tok, stop_ids } => {
                        let (lm2, tok2, stops) = (lm.clone(), tok.clone(), stop_ids.clone());
                        let texts =
                            blocking(move || generate_batch(&lm2, &tok2, &stops, &prompts, g.max_tokens)).await?;
                        rows.extend(idx.iter().zip(texts).map(|(&k, t)| generated(k, &selected[k], t)));
                    }
                    Engine::Remote { ep, api } => {
                        let (ep2, api) = (ep.clone(), *api);
                        let answers = blocking(move || {
                            Ok(ask_all(&prompts, |p| match api {
                                EndpointApi::Chat => ep2.chat(None, p, g.max_tokens, 0.0),
                                EndpointApi::Completions => ep2.complete(p, g.max_tokens),
                            }))
                        })
                        .await?;
                        for (&k, answer) in idx.iter().zip(answers) {
                            match answer {
                                Ok(t) => rows.push(generated(k, &selected[k], t)),
                                Err(e @ EndpointError::Unsupported { .. }) => return Err(e.into()),
                                Err(e) => failed.push(FailedItem { index: k, error: e.to_string() }),
                            }
                        }
                    }
                }
            }
        }
        reg.record_predictions(job_id, &rows).await?;
        scored += rows.len();
        for r in rows {
            done.insert(r.idx as usize, r);
        }
        ctl.progress.event(Event::Advance { task: task.clone(), delta: (j - i) as u64 });
        if let Some(acc) = running_accuracy(done.values()) {
            ctl.progress.event(Event::Metric { task: task.clone(), name: "accuracy".into(), value: acc });
        }
        i = j;
    }
    ctl.progress.event(Event::Finish { task });
    let seconds = started.elapsed().as_secs_f64();
    let predictions: Vec<Prediction> = done
        .values()
        .map(|p| Prediction {
            index: p.idx as usize,
            subset: p.subset.clone(),
            language: p.language.clone(),
            pred: p.pred.clone(),
            gold: p.gold.clone(),
            correct: p.correct,
            // An option an endpoint did not list is stored as null: -inf.
            loglik: p.detail.as_ref().and_then(|d| {
                serde_json::from_value::<Vec<Option<f64>>>(d["loglik"].clone())
                    .ok()
                    .map(|v| v.into_iter().map(|x| x.unwrap_or(f64::NEG_INFINITY)).collect())
            }),
            output: p.detail.as_ref().and_then(|d| d["output"].as_str().map(str::to_string)),
        })
        .collect();
    let summary = summarize(&predictions);
    let mut inputs = vec![provenance::path("questions", &req.questions, Some(bench.sha256.clone()))];
    if let Engine::Remote { ep, .. } = &engine {
        inputs.push(provenance::endpoint("endpoint", ep.base(), ep.model()));
    }
    let result = benchmark.as_ref().map(|b| {
        let mut scores: BTreeMap<String, f64> =
            summary.per_subset.iter().map(|(k, s)| (k.replace(' ', "_"), s.accuracy)).collect();
        scores.insert("overall".into(), summary.overall);
        scores.insert("avg".into(), summary.unweighted);
        let mut prov = provenance::made_by("eval mcq", inputs.clone(), hash.clone());
        prov.prompt_format = Some(req.prompt.name().into());
        prov.mode = Some(match &engine {
            Engine::Remote { api, .. } if req.mode == Mode::Generate => format!("generate via {}", api.name()),
            _ => req.mode.name().into(),
        });
        prov.seed = seed;
        prov.notes = Some(format!("{selection}; {} questions; job {job_id}", summary.n));
        ResultRecord {
            model: label.clone(),
            benchmark: b.clone(),
            opponent: None,
            origin: "measured".into(),
            source: None,
            scores,
            provenance: Some(prov),
            recorded_at: Some(crate::now_rfc3339()),
        }
    });
    // A model the registry does not know (a path) keeps its predictions but records no result.
    let known = reg.model_names().await?.iter().any(|n| n.eq_ignore_ascii_case(&label));
    let result = result.filter(|_| known);
    // Failed questions leave the job open: a rerun asks them again, then records the result.
    let run_id = if failed.is_empty() {
        reg.finish_eval_job(job_id, &crate::now_rfc3339(), result.as_ref()).await?
    } else {
        ctl.note(format!("{} questions failed; run again to retry them (no result recorded)", failed.len()));
        None
    };
    reg.close().await;
    Ok(McqReport {
        model: label,
        model_hash: hash,
        questions: req.questions.clone(),
        questions_sha256: bench.sha256,
        format: bench.format,
        selection,
        prompt: req.prompt.name().into(),
        mode: req.mode.name().into(),
        job_id,
        resumed,
        scored,
        summary,
        benchmark: benchmark.filter(|_| run_id.is_some()),
        run_id,
        endpoint: match &engine {
            Engine::Remote { ep, .. } => Some(format!("{} ({})", ep.base(), ep.model())),
            Engine::Local { .. } => None,
        },
        failed,
        seconds,
        questions_per_s: if seconds > 0.0 { scored as f64 / seconds } else { 0.0 },
        predictions,
    })
}

/// `--predictions FILE.jsonl`: one line per question, `{index, subset, pred, gold, correct}`
/// and `loglik` (per option, log p(continuation | prompt)) or `output` (the generated text),
/// written atomically.
pub fn write_predictions(path: &Path, preds: &[Prediction]) -> Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        index: usize,
        subset: &'a str,
        pred: Option<&'a str>,
        gold: &'a str,
        correct: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        loglik: Option<&'a [f64]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<&'a str>,
    }
    let mut s = String::new();
    for p in preds {
        let l = Line {
            index: p.index,
            subset: &p.subset,
            pred: p.pred.as_deref(),
            gold: &p.gold,
            correct: p.correct,
            loglik: p.loglik.as_deref(),
            output: p.output.as_deref(),
        };
        s.push_str(&serde_json::to_string(&l).map_err(|e| OpsError::Invalid(e.to_string()))?);
        s.push('\n');
    }
    Ok(zoo_atomic_write::write(path, s.as_bytes())?)
}

#[cfg(test)]
mod running_tests {
    use super::*;

    #[test]
    fn running_accuracy_counts_what_is_stored() {
        let p = |idx: i64, correct: bool| StoredPrediction {
            idx,
            subset: "anatomy".into(),
            language: None,
            pred: Some("A".into()),
            gold: "A".into(),
            correct,
            detail: None,
        };
        assert_eq!(running_accuracy([].iter()), None);
        let done = [p(0, true), p(1, false), p(2, true), p(3, true)];
        assert_eq!(running_accuracy(done.iter()), Some(0.75));
    }
}

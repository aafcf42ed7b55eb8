//! The dashboard's runtime in process: keys go into the real event loop (drawing on a
//! `TestBackend`) and the effects run on `zoo-ops`: quantize a registered fixture model to a
//! GGUF file, then delete a cached repo after the confirmation.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use zoo_tui::app::{Action, App, JobSpec, JobState};
use zoo_tui::runtime::{Msg, Options, Runtime, dispatch, event_loop};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reference").join(rel)
}

fn key(tx: &UnboundedSender<Msg>, code: KeyCode) {
    tx.send(Msg::Input(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)), Instant::now())).unwrap();
}

fn type_text(tx: &UnboundedSender<Msg>, s: &str) {
    s.chars().for_each(|c| key(tx, KeyCode::Char(c)));
}

fn wait(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "waited {secs}s for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn quantize_then_delete_through_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    // The tiny LLaMA fixture with SmolLM2's tokenizer, registered as a local model.
    let model = root.join("tiny");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("tiny-llama").join(f), model.join(f)).unwrap();
    }
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture("smollm2").join(f), model.join(f)).unwrap();
    }
    // A cached copy of a catalog model's repo (one file) to delete.
    let cache = root.join("hub");
    let repo = cache.join("models--HuggingFaceTB--SmolLM2-135M-Instruct");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let blob = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"; // sha256("hello")
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("blobs").join(blob), "hello").unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    std::os::unix::fs::symlink(format!("../../blobs/{blob}"), repo.join("snapshots").join(commit).join("notes.txt"))
        .unwrap();

    let mut zoo = zoo_ops::Zoo::new(root.join("zoo.db"));
    zoo.models_dir = Some(root.join("models"));
    let mut hub = zoo_hub::download::HubConfig::from_env(cache.clone());
    hub.offline = true;
    zoo.hub = Some(hub);
    let rt_tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt_tokio
        .block_on(zoo_ops::add::add(
            &zoo,
            &zoo_ops::add::AddRequest {
                path: model.clone(),
                name: "tiny-tui".into(),
                family: None,
                template: None,
                replace: false,
                threads: 1,
            },
            &zoo_ops::Control::silent(),
        ))
        .unwrap();

    let (tx, mut rx) = unbounded_channel();
    let models_dir = root.join("models");
    let injector = {
        let (tx, repo) = (tx.clone(), repo.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            // Filter to the fixture model, quantize it (the prompt offers q4_0).
            key(&tx, KeyCode::Char('/'));
            type_text(&tx, "tiny-tui");
            key(&tx, KeyCode::Enter);
            key(&tx, KeyCode::Char('Z'));
            key(&tx, KeyCode::Enter);
            let gguf = || {
                std::fs::read_dir(&models_dir)
                    .ok()
                    .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(".q4_0.gguf")))
            };
            wait("the quantized file", 120, || gguf().is_some());
            // Delete the cached repo: asked first, then done.
            key(&tx, KeyCode::Char('/'));
            for _ in 0.."tiny-tui".len() {
                key(&tx, KeyCode::Backspace);
            }
            type_text(&tx, "smollm2-135m-instruct");
            key(&tx, KeyCode::Enter);
            key(&tx, KeyCode::Char('x'));
            std::thread::sleep(Duration::from_millis(500));
            assert!(repo.exists(), "nothing is deleted before the confirmation");
            key(&tx, KeyCode::Char('y'));
            wait("the repo to go", 30, || !repo.exists());
            std::thread::sleep(Duration::from_millis(300));
            key(&tx, KeyCode::Char('q'));
            tx.send(Msg::Action(Action::Yes)).unwrap();
            gguf().unwrap()
        })
    };
    let mut app = App::new();
    let mut rt = Runtime::new(zoo, Options { threads: Some(1), ..Options::default() }, tx);
    let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
    rt_tokio.block_on(async {
        dispatch(&mut app, &mut rt, Action::Refresh);
        let r = tokio::time::timeout(Duration::from_secs(180), event_loop(&mut term, &mut app, &mut rt, &mut rx, None))
            .await;
        assert!(r.is_ok(), "the loop did not end");
        r.unwrap().unwrap();
    });
    let gguf = injector.join().expect("the key script");
    let bytes = std::fs::read(&gguf).unwrap();
    assert_eq!(&bytes[..4], b"GGUF", "{}", gguf.display());
    let jobs: Vec<(String, JobState)> = app.jobs.iter().map(|j| (j.spec.title(), j.state)).collect();
    assert!(
        matches!(app.jobs[0].spec, JobSpec::Quantize { ref model, ref ggml_type } if model == "tiny-tui" && ggml_type == "q4_0"),
        "{jobs:?}"
    );
    assert_eq!(app.jobs[0].state, JobState::Done, "{:?}", app.jobs[0].log);
    assert!(matches!(app.jobs[1].spec, JobSpec::Delete { .. }), "{jobs:?}");
    assert_eq!(app.jobs[1].state, JobState::Done, "{:?}", app.jobs[1].log);
    assert!(app.jobs[1].log.iter().any(|l| l.contains("1 paths removed")), "{:?}", app.jobs[1].log);
}

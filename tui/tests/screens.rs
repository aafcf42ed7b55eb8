//! Every screen drawn on ratatui's `TestBackend` from real registry data (the built-in catalog
//! synced into a fresh SQLite registry), snapshot-tested: the zoo listed, an empty registry,
//! very long names, Chinese text, 80×24 and 100×30 terminals, overlays.

use std::path::Path;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use zoo_ops::Zoo;
use zoo_ops::catalog::Overview;
use zoo_ops::view::Doc;
use zoo_progress::{Event, Unit};
use zoo_registry::model::ModelRecord;
use zoo_tui::app::{Action, App, BallotView, Facet, JobSpec, Tab, update};

const GIB: u64 = 1 << 30;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The built-in catalog as a fresh registry has it (no local copies), 16 GiB free.
fn zoo(dir: &Path) -> Zoo {
    Zoo::new(dir.join("zoo.db"))
}

fn overview(z: &Zoo) -> Overview {
    let mut ov = block_on(zoo_ops::catalog::overview(z)).unwrap();
    ov.available_memory = Some(16 * GIB);
    ov
}

fn loaded(ov: Overview) -> App {
    let mut app = App::new();
    update(&mut app, Action::Loaded(Box::new(ov)));
    app
}

fn render(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut hit = Default::default();
    t.draw(|f| hit = zoo_tui::ui::draw(app, f)).unwrap();
    app.hit = hit;
    format!("{}", t.backend())
}

fn select(app: &mut App, name: &str) {
    app.selected = app.rows.iter().position(|&i| app.overview.models[i].name == name).expect(name);
}

#[test]
fn models_table_at_100x30_and_80x24() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(overview(&zoo(dir.path())));
    assert!(app.overview.models.len() > 50, "the catalog has the zoo");
    select(&mut app, "chimera-chat-7b");
    insta::assert_snapshot!("models_100x30", render(&mut app, 100, 30));
    insta::assert_snapshot!("models_80x24", render(&mut app, 80, 24));
    // The hit map points the mouse at the rows drawn.
    assert!(app.hit.table_height > 10);
    assert_eq!(app.hit.tabs.len(), 6);
}

#[test]
fn filter_facets_and_sort() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(overview(&zoo(dir.path())));
    update(&mut app, Action::StartFilter);
    for c in "chat".chars() {
        update(&mut app, Action::Type(c));
    }
    update(&mut app, Action::CycleFacet(Facet::Family)); // the first family in name order
    update(&mut app, Action::CycleSort); // family
    update(&mut app, Action::CycleSort); // arch
    update(&mut app, Action::CycleSort); // params
    update(&mut app, Action::ReverseSort);
    let screen = render(&mut app, 100, 30);
    assert!(app.rows.iter().all(|&i| app.overview.models[i].name.contains("chat")
        || app.overview.models[i].display_name.as_deref().unwrap_or("").to_lowercase().contains("chat")
        || app.overview.models[i].backbone.as_deref().unwrap_or("").to_lowercase().contains("chat")));
    insta::assert_snapshot!("models_filtered", screen);
}

#[test]
fn empty_registry() {
    let mut app = loaded(Overview { available_memory: Some(16 * GIB), ..Default::default() });
    insta::assert_snapshot!("models_empty", render(&mut app, 80, 24));
    app.tab = Tab::Results;
    insta::assert_snapshot!("results_empty", render(&mut app, 80, 24));
    app.tab = Tab::Jobs;
    insta::assert_snapshot!("jobs_empty", render(&mut app, 80, 24));
    // Keys on an empty table do nothing harmful.
    for a in [Action::Down, Action::Pull, Action::Verify, Action::Delete, Action::ToggleDetail] {
        app.tab = Tab::Models;
        update(&mut app, a);
    }
    assert!(app.jobs.is_empty());
}

fn odd_model(name: &str, display: &str, family: &str, langs: &[&str]) -> ModelRecord {
    ModelRecord {
        name: name.into(),
        display_name: Some(display.into()),
        family: family.into(),
        kind: "full".into(),
        arch: Some("baichuan".into()),
        params: Some(13.9),
        languages: langs.iter().map(|s| s.to_string()).collect(),
        origin: "local".into(),
        local: Some(true),
        description: Some("华佗GPT：面向医疗问答的中文大语言模型，融合了医生与ChatGPT的数据。".into()),
        ..Default::default()
    }
}

#[test]
fn very_long_names_and_chinese_text() {
    let models = vec![
        odd_model(
            "huatuogpt-ii-13b-a-very-long-local-fine-tune-name-that-goes-on-and-on-past-any-column-width",
            "HuatuoGPT-II 13B",
            "huatuo",
            &["zh", "en"],
        ),
        odd_model(
            "华佗gpt-医疗-七十亿参数-中文对话模型-本地微调版本-名字很长很长很长",
            "华佗GPT 本地",
            "华佗",
            &["zh"],
        ),
        odd_model("phoenix-本地", "凤凰", "phoenix", &["zh", "en", "fr", "es", "ar", "de", "ja", "ko"]),
    ];
    let ov = Overview { models, available_memory: Some(16 * GIB), ..Default::default() };
    let mut app = loaded(ov);
    insta::assert_snapshot!("models_long_and_chinese_80x24", render(&mut app, 80, 24));
    insta::assert_snapshot!("models_long_and_chinese_100x30", render(&mut app, 100, 30));
    update(&mut app, Action::StartFilter);
    for c in "华佗".chars() {
        update(&mut app, Action::Type(c));
    }
    assert_eq!(app.rows.len(), 1, "the filter matches Chinese names");
    insta::assert_snapshot!("models_filter_chinese", render(&mut app, 80, 24));

    app.tab = Tab::Chat;
    app.chat.model = Some("华佗gpt-医疗-七十亿参数".into());
    app.chat.format = Some("huatuo".into());
    app.chat.context = Some(4096);
    update(&mut app, Action::ChatReady { label: "华佗gpt-医疗".into(), format: "huatuo".into(), context: 4096 });
    app.chat.messages.push((zoo_tui::app::Role::User, "感冒了应该吃什么药？请详细说明。".into()));
    app.chat.messages.push((
        zoo_tui::app::Role::Assistant,
        "感冒通常由病毒引起，抗生素无效。可以多休息、多喝水；发热或头痛时可在医生指导下服用对乙酰氨基酚。若症状超过一周或出现呼吸困难，请及时就医。".into(),
    ));
    app.chat.speed = Some("[58 tokens, 41.3 tok/s; prompt 31 tokens at 310.0 tok/s]".into());
    app.chat.input = "谢谢！那儿童呢？".into();
    insta::assert_snapshot!("chat_chinese_80x24", render(&mut app, 80, 24));
}

#[test]
fn detail_pane_with_results_chain_and_fit() {
    let dir = tempfile::tempdir().unwrap();
    let z = zoo(dir.path());
    let mut app = loaded(overview(&z));
    select(&mut app, "chimera-chat-7b");
    let effects = update(&mut app, Action::ToggleDetail);
    assert_eq!(effects, [zoo_tui::app::Effect::LoadDetail("chimera-chat-7b".into())]);
    insta::assert_snapshot!("detail_reading", render(&mut app, 100, 30));
    let d = block_on(zoo_ops::catalog::detail(&z, "chimera-chat-7b")).unwrap();
    update(&mut app, Action::DetailLoaded(Box::new(d)));
    let top = render(&mut app, 100, 30);
    assert!(top.contains("chimera-chat-7b"));
    insta::assert_snapshot!("detail_top", top);
    for _ in 0..22 {
        update(&mut app, Action::Down);
    }
    let lower = render(&mut app, 100, 30);
    assert!(lower.contains("Chain") && lower.contains("applied to"), "{lower}");
    insta::assert_snapshot!("detail_scrolled", lower);
    for _ in 0..30 {
        update(&mut app, Action::Down);
    }
    insta::assert_snapshot!("detail_bottom_80x24", render(&mut app, 80, 24));
}

#[test]
fn results_leaderboards() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(overview(&zoo(dir.path())));
    app.tab = Tab::Results;
    // The bars start on the benchmark's average (its first aggregate column).
    let agg = app.overview.results.iter().position(|t| t.benchmark.columns.iter().any(|c| c.aggregate)).unwrap();
    for _ in 0..agg {
        update(&mut app, Action::Down);
    }
    let col = app.overview.results[agg].benchmark.columns.iter().position(|c| c.aggregate);
    assert_eq!(app.results_column(), col);
    insta::assert_snapshot!("results_first", render(&mut app, 100, 30));
    // A pairwise benchmark (a judge's ratio against ChatGPT), its second column.
    let i = app.overview.results.iter().position(|t| t.rows.iter().any(|r| r.opponent.is_some())).unwrap();
    for _ in 0..i {
        update(&mut app, Action::Down);
    }
    update(&mut app, Action::Right);
    insta::assert_snapshot!("results_pairwise_80x24", render(&mut app, 80, 24));
}

fn progress(app: &mut App, id: usize, e: Event) {
    update(app, Action::Job { id, event: zoo_ops::JobEvent::Progress(e) });
}

#[test]
fn evaluate_with_running_accuracy_and_jobs() {
    let mut app = App::new();
    app.tab = Tab::Evaluate;
    update(&mut app, Action::Loaded(Box::new(Overview { available_memory: Some(16 * GIB), ..Default::default() })));
    insta::assert_snapshot!("evaluate_form_empty", render(&mut app, 80, 24));
    // Start is refused until the form is filled.
    app.eval.selected = app.eval.fields.len();
    assert!(update(&mut app, Action::Submit).is_empty());
    app.eval.fields[0].1 = "smollm2-135m-instruct".into();
    app.eval.fields[1].1 = "mmlu.jsonl".into();
    app.eval.fields[2].1 = "mmlu-medical-6".into();
    app.eval.fields[4].1 = "40".into();
    let effects = update(&mut app, Action::Submit);
    let [zoo_tui::app::Effect::Start(JobSpec::Eval(spec))] = effects.as_slice() else { panic!("{effects:?}") };
    assert_eq!((spec.mode.as_str(), spec.limit), ("loglik", Some(40)));
    update(&mut app, Action::JobStarted { id: 1, spec: JobSpec::Eval(spec.clone()) });
    let task = "mmlu.jsonl".to_string();
    progress(&mut app, 1, Event::Start { task: task.clone(), total: Some(40), unit: Unit::Items });
    progress(&mut app, 1, Event::Advance { task: task.clone(), delta: 16 });
    progress(&mut app, 1, Event::Metric { task: task.clone(), name: "accuracy".into(), value: 0.625 });
    let screen = render(&mut app, 100, 30);
    assert!(screen.contains("62.5%"), "{screen}");
    insta::assert_snapshot!("evaluate_running", screen);

    update(
        &mut app,
        Action::JobStarted {
            id: 2,
            spec: JobSpec::Quantize { model: "phoenix-inst-chat-7b".into(), ggml_type: "q4_0".into() },
        },
    );
    progress(&mut app, 2, Event::Start { task: "quantize".into(), total: Some(291), unit: Unit::Items });
    progress(&mut app, 2, Event::Advance { task: "quantize".into(), delta: 97 });
    progress(&mut app, 2, Event::Note { message: "token_embd.weight: q4_0 needs rows of 32; kept f16".into() });
    let mut doc = Doc::new();
    doc.line("ok  93.8 MiB  smollm2-135m-instruct  SmolLM2-135M-Instruct.Q4_1.gguf");
    update(&mut app, Action::JobStarted { id: 3, spec: JobSpec::Verify { model: "smollm2-135m-instruct".into() } });
    update(&mut app, Action::JobDone { id: 3, result: Ok(doc), cancelled: false });
    update(&mut app, Action::JobStarted { id: 4, spec: JobSpec::Pull { model: "phoenix-chat-7b".into() } });
    update(&mut app, Action::JobDone { id: 4, result: Err("the hub did not answer".into()), cancelled: false });
    app.tab = Tab::Jobs;
    app.job_selected = 1;
    insta::assert_snapshot!("jobs_100x30", render(&mut app, 100, 30));
    assert_eq!(update(&mut app, Action::CancelJob), [zoo_tui::app::Effect::Cancel(2)]);
    insta::assert_snapshot!("jobs_cancelling_80x24", render(&mut app, 80, 24));
}

#[test]
fn vote_form_ballot_and_tallies() {
    let mut app = App::new();
    app.set_voter("alice");
    app.tab = Tab::Vote;
    let tallies = vec![zoo_eval::votes::VoteTally {
        model_a: "phoenix-inst-chat-7b".into(),
        model_b: "chatgpt".into(),
        win: 12,
        tie: 5,
        lose: 3,
        total: 20,
        win_pct: 60.0,
        tie_pct: 25.0,
        lose_pct: 15.0,
    }];
    update(&mut app, Action::Tallies(tallies));
    insta::assert_snapshot!("vote_form", render(&mut app, 100, 30));
    let ballots = vec![
        BallotView {
            question: "高血压患者日常饮食需要注意什么？".into(),
            category: Some("medical".into()),
            left: "少盐少油，多吃蔬菜水果，控制体重，戒烟限酒，并按时服药、定期测量血压。".into(),
            right: "Eat less salt, exercise, and take your medicine as prescribed; check your blood pressure often."
                .into(),
        },
        BallotView { question: "q2".into(), category: None, left: "a".into(), right: "b".into() },
    ];
    update(&mut app, Action::VoteReady { ballots, total: 5, already: 3 });
    insta::assert_snapshot!("vote_ballot_80x24", render(&mut app, 80, 24));
    update(&mut app, Action::VoteKey('1'));
    update(&mut app, Action::VoteSkip);
    insta::assert_snapshot!("vote_done", render(&mut app, 80, 24));
}

#[test]
fn overlays_help_confirm_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(overview(&zoo(dir.path())));
    update(&mut app, Action::ToggleHelp);
    insta::assert_snapshot!("help_models_80x24", render(&mut app, 80, 24));
    update(&mut app, Action::ToggleHelp);
    select(&mut app, "phoenix-inst-chat-7b");
    update(&mut app, Action::Quantize);
    insta::assert_snapshot!("quantize_prompt", render(&mut app, 80, 24));
    update(&mut app, Action::Back);
    update(
        &mut app,
        Action::DeletePlanned {
            model: "phoenix-inst-chat-7b".into(),
            summary: vec![
                "remove repo      FreedomIntelligence/phoenix-inst-chat-7b".into(),
                "  /home/u/.cache/huggingface/hub/models--FreedomIntelligence--phoenix-inst-chat-7b".into(),
            ],
            freed: 16 * GIB,
        },
    );
    insta::assert_snapshot!("confirm_delete", render(&mut app, 80, 24));
    update(&mut app, Action::No);
    update(&mut app, Action::JobStarted { id: 1, spec: JobSpec::Verify { model: "x".into() } });
    update(&mut app, Action::Quit);
    insta::assert_snapshot!("confirm_quit", render(&mut app, 80, 24));
}

/// `NO_COLOR`: no cell has a colour; selection and emphasis stay readable (reverse, bold).
#[test]
fn no_color_draws_without_colours() {
    let dir = tempfile::tempdir().unwrap();
    for color in [true, false] {
        let mut app = loaded(overview(&zoo(dir.path())));
        app.color = color;
        let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
        for tab in Tab::ALL {
            app.tab = tab;
            t.draw(|f| {
                zoo_tui::ui::draw(&app, f);
            })
            .unwrap();
            let coloured = t.backend().buffer().content().iter().any(|c| c.fg != Color::Reset || c.bg != Color::Reset);
            if !color {
                assert!(!coloured, "{tab:?} has colours under NO_COLOR");
            } else if tab == Tab::Models {
                assert!(coloured, "colours are on by default");
            }
        }
    }
}

/// A resize redraws at the new size; tiny terminals do not panic.
#[test]
fn any_size_draws() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(overview(&zoo(dir.path())));
    for tab in Tab::ALL {
        app.tab = tab;
        for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 10), (80, 24), (200, 60)] {
            render(&mut app, w, h);
        }
    }
    app.tab = Tab::Models;
    update(&mut app, Action::ToggleDetail);
    update(&mut app, Action::ToggleHelp);
    for (w, h) in [(1, 1), (10, 3), (30, 8)] {
        render(&mut app, w, h);
    }
}

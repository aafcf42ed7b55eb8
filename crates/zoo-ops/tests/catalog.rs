//! The catalog queries and the human views, on the built-in catalog: the reports are the
//! `--json` of `zoo show`, `zoo results` and `zoo registry benchmarks|datasets|families|sync`,
//! the views what `zoo` prints without `--json` (and what the TUI shows).

use zoo_ops::{OpsError, Zoo, catalog, view};
use zoo_registry::ModelFilter;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The built-in catalog in a fresh registry; no Hugging Face cache.
fn zoo(dir: &tempfile::TempDir) -> Zoo {
    Zoo::new(dir.path().join("registry.db"))
}

#[test]
fn model_detail_report_and_view() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = zoo(&dir);
    rt().block_on(async {
        let d = catalog::detail(&zoo, "chimera-chat-7b").await.unwrap();
        insta::assert_json_snapshot!("detail_chimera_chat_7b", d);
        insta::assert_snapshot!("detail_chimera_chat_7b_view", view::model_detail(&d).plain_text());
        // A repo id names the model too, and facts are what the view shows.
        let by_repo = catalog::detail(&zoo, "FreedomIntelligence/chimera-chat-7b-delta").await.unwrap();
        assert_eq!(by_repo.model.name, "chimera-chat-7b");
        let facts = view::facts(&d);
        assert!(facts.contains(&("delta algorithm", "llmzoo".to_string())), "{facts:?}");
        assert!(facts.contains(&("base", "llama-7b".to_string())), "{facts:?}");
    });
}

#[test]
fn unknown_names_are_not_found_with_suggestions() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = zoo(&dir);
    rt().block_on(async {
        let e = catalog::detail(&zoo, "phenix-inst-chat-7b").await.unwrap_err();
        let OpsError::NotFound { message, suggestions } = &e else { panic!("{e:?}") };
        assert!(suggestions.iter().any(|s| s == "phoenix-inst-chat-7b"), "{suggestions:?}");
        assert!(message.contains("did you mean: phoenix-inst-chat-7b"), "{message}");
        assert!(e.is_failed_check());
        let e = catalog::results(&zoo, Some("apolo-7b"), None).await.unwrap_err();
        assert!(e.to_string().contains("apollo-7b"), "{e}");
        let e = catalog::results(&zoo, None, Some("nope")).await.unwrap_err();
        assert!(e.to_string().contains("xmedbench"), "{e}");
    });
}

#[test]
fn results_report_and_view() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = zoo(&dir);
    rt().block_on(async {
        let tables = catalog::results(&zoo, Some("apollo-0.5b"), None).await.unwrap();
        insta::assert_json_snapshot!("results_apollo_0_5b", tables);
        let v = view::results(&tables[0]);
        let mut doc = view::Doc::new();
        doc.table(v.table);
        v.sources.iter().enumerate().for_each(|(i, s)| _ = doc.line(format!("[{}] {s}", i + 1)));
        insta::assert_snapshot!("results_apollo_0_5b_view", doc.plain_text());
        // Pairwise benchmarks get a VS column; win/tie/lose counts print as integers.
        let votes = catalog::results(&zoo, None, Some("llmzoo-human-eval-zh")).await.unwrap();
        let t = view::results(&votes[0]).table;
        assert_eq!(t.header.get(1).map(String::as_str), Some("VS"), "{:?}", t.header);
        assert!(t.rows.iter().flatten().all(|c| !c.ends_with(".00")), "{:?}", t.rows);
    });
}

#[test]
fn listings_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = zoo(&dir);
    rt().block_on(async {
        insta::assert_json_snapshot!("families", catalog::families(&zoo).await.unwrap());
        insta::assert_json_snapshot!("datasets", catalog::datasets(&zoo).await.unwrap());
        insta::assert_json_snapshot!("benchmarks", catalog::benchmarks(&zoo).await.unwrap());
        let filter = ModelFilter { family: Some("chimera".into()), ..Default::default() };
        let models = catalog::models(&zoo, &filter).await.unwrap();
        insta::assert_snapshot!(
            "models_chimera_view",
            view::Doc { blocks: vec![view::Block::Table(view::models(&models))] }.plain_text()
        );
        let cols = ["name".to_string(), "params".to_string(), "languages".to_string()];
        let readable = view::columns(&models, &cols, true).unwrap();
        let exact = view::columns(&models, &cols, false).unwrap();
        assert_eq!(readable.header, ["NAME", "PARAMS", "LANGUAGES"]);
        assert_eq!(exact.header, cols);
        let (r, x) = (&readable.rows[0], &exact.rows[0]);
        assert!(r[1].ends_with('B') && x[1].parse::<f64>().is_ok(), "{r:?} {x:?}");
        let e = view::columns(&models, &["nope".to_string()], true).unwrap_err();
        assert!(e.contains("unknown column \"nope\"") && e.contains("hf_repo"), "{e}");
    });
}

#[test]
fn sync_report() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = zoo(&dir);
    rt().block_on(async {
        let reg = zoo_registry::Registry::open(&dir.path().join("registry.db")).await.unwrap();
        let r = reg.sync(&zoo.load_catalog().unwrap(), false).await.unwrap();
        insta::assert_json_snapshot!("sync_report", r, { ".catalog_hash" => "[hash]" });
        insta::assert_snapshot!("sync_report_view", view::sync(&r, "registry.db").plain_text());
        let again = reg.sync(&zoo.load_catalog().unwrap(), false).await.unwrap();
        assert!(!again.ran);
        reg.close().await;
    });
}

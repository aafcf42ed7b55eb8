//! The registry database on real SQLite files: migrations, sync as a diff, refusals of
//! databases it must not touch, and measured results surviving catalog changes.

use std::collections::BTreeMap;

use sqlx::Row;
use zoo_registry::catalog::SourceFile;
use zoo_registry::model::{Provenance, ResultRecord};
use zoo_registry::{Catalog, Error, ModelFilter, Registry, SortKey, known_schema_version};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Every row of every table, as text, for before/after comparisons.
async fn dump(path: &std::path::Path) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'meta' ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t} ORDER BY 1, 2")))
            .fetch_all(&pool)
            .await
            .unwrap();
        for r in rows {
            let cols: Vec<String> = (0..r.len())
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .map(|v| v.unwrap_or_default())
                        .or_else(|_| r.try_get::<Option<f64>, _>(i).map(|v| format!("{v:?}")))
                        .or_else(|_| r.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                        .unwrap_or_else(|_| "?".into())
                })
                .collect();
            out.push(format!("{t}: {}", cols.join("|")));
        }
    }
    pool.close().await;
    out
}

fn measured(model: &str, value: f64) -> ResultRecord {
    ResultRecord {
        model: model.into(),
        benchmark: "xmedbench".into(),
        opponent: None,
        origin: "measured".into(),
        source: Some("test".into()),
        scores: BTreeMap::from([("medqa-usmle".to_string(), value)]),
        provenance: Some(Provenance { model_hash: Some("ab".repeat(32)), seed: Some(1), ..Default::default() }),
        recorded_at: Some("2026-11-25T00:00:00Z".into()),
    }
}

#[test]
fn migrates_from_empty_and_syncs_as_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/registry.db");
    rt().block_on(async {
        let reg = Registry::open(&path).await.unwrap();
        assert_eq!(reg.schema_version().await.unwrap(), known_schema_version());
        assert_eq!(reg.count_models().await.unwrap(), 0);
        let cat = Catalog::embedded();
        let first = reg.sync(&cat, false).await.unwrap();
        assert!(first.ran && first.added > 30 && first.updated == 0 && first.removed == 0, "{first:?}");
        assert_eq!(reg.count_models().await.unwrap() as usize, cat.models.len());
        reg.close().await;
        let before = dump(&path).await;

        let reg = Registry::open(&path).await.unwrap();
        let second = reg.sync(&cat, false).await.unwrap();
        assert!(!second.ran, "same catalog: nothing to do");
        let forced = reg.sync(&cat, true).await.unwrap();
        assert!(forced.ran);
        assert_eq!(forced.changed(), 0, "a forced diff of the same catalog changes nothing: {forced:?}");
        reg.close().await;
        assert_eq!(before, dump(&path).await, "database content identical after a second sync");
    });
}

#[test]
fn catalog_edits_update_remove_and_keep_measured_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let mut files: Vec<SourceFile> = Catalog::embedded().files;
    rt().block_on(async {
        let reg = Registry::open(&path).await.unwrap();
        reg.sync(&Catalog::from_sources("v1".into(), files.clone()), false).await.unwrap();
        reg.record_result(&measured("apollo-7b", 55.5)).await.unwrap();

        // Edit one model's description.
        let apollo = files.iter_mut().find(|f| f.path.ends_with("apollo.toml")).unwrap();
        let edited = apollo.text.replacen("description = \"", "description = \"Edited. ", 1);
        assert_ne!(edited, apollo.text);
        apollo.text = edited;
        let v2 = Catalog::from_sources("v2".into(), files.clone());
        let r = reg.sync(&v2, false).await.unwrap();
        assert!(r.ran && r.updated >= 1 && r.added == 0 && r.removed == 0, "{r:?}");

        let tables = reg.results(Some("apollo-7b"), Some("xmedbench")).await.unwrap();
        let rows = &tables[0].rows;
        assert!(rows.iter().any(|x| x.origin == "published"));
        let m = rows.iter().find(|x| x.origin == "measured").expect("measured result survives sync");
        assert_eq!(m.scores["medqa-usmle"], 55.5);
        assert_eq!(m.provenance.as_ref().unwrap().seed, Some(1));
        reg.close().await;
    });
}

#[test]
fn filters_sort_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let reg = Registry::open(&dir.path().join("r.db")).await.unwrap();
        reg.sync(&Catalog::embedded(), false).await.unwrap();
        let q = |f: ModelFilter| {
            let reg = reg.clone();
            async move { reg.models(&f, Some(&[])).await.unwrap() }
        };
        let chimera = q(ModelFilter { family: Some("chimera".into()), ..Default::default() }).await;
        assert_eq!(chimera.len(), 4);
        assert!(chimera.iter().all(|m| m.kind == "delta" && m.local == Some(false)));
        let zh =
            q(ModelFilter { lang: Some("zh".into()), family: Some("huatuogpt".into()), ..Default::default() }).await;
        assert!(!zh.is_empty() && zh.iter().all(|m| m.languages.contains(&"zh".to_string())));
        let biggest =
            q(ModelFilter { sort: SortKey::Params, descending: true, limit: Some(3), ..Default::default() }).await;
        assert_eq!(biggest.len(), 3);
        assert!(
            biggest.windows(2).all(|w| w[0].params >= w[1].params),
            "{:?}",
            biggest.iter().map(|m| m.params).collect::<Vec<_>>()
        );
        let on_llama = q(ModelFilter { base: Some("llama-13b".into()), ..Default::default() }).await;
        assert!(on_llama.iter().any(|m| m.name == "chimera-inst-chat-13b"));
        let none = q(ModelFilter { family: Some("no-such".into()), ..Default::default() }).await;
        assert!(none.is_empty());
        let cached = vec!["FreedomIntelligence/phoenix-inst-chat-7b".to_string()];
        let local = reg.models(&ModelFilter { local_only: true, ..Default::default() }, Some(&cached)).await.unwrap();
        assert_eq!(local.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), vec!["phoenix-inst-chat-7b"]);
        reg.close().await;
    });
}

#[test]
fn measured_results_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let reg = Registry::open(&dir.path().join("r.db")).await.unwrap();
        reg.sync(&Catalog::embedded(), false).await.unwrap();
        assert!(matches!(reg.record_result(&measured("nobody", 1.0)).await, Err(Error::UnknownModel { .. })));
        let mut r = measured("apollo-7b", 1.0);
        r.benchmark = "nope".into();
        assert!(matches!(reg.record_result(&r).await, Err(Error::UnknownBenchmark { .. })));
        let mut r = measured("apollo-7b", 1.0);
        r.scores.insert("not-a-column".into(), 2.0);
        assert!(matches!(reg.record_result(&r).await, Err(Error::UnknownColumn { .. })));
        // Several at once: all or none.
        async fn count(reg: &Registry) -> usize {
            let t = reg.results(Some("apollo-7b"), None).await.unwrap();
            t.iter().flat_map(|t| &t.rows).filter(|r| r.origin == "measured").count()
        }
        let before = count(&reg).await;
        let good = measured("apollo-7b", 2.0);
        assert!(matches!(reg.record_results(&[good.clone(), r]).await, Err(Error::UnknownColumn { .. })));
        assert_eq!(count(&reg).await, before, "the good one before the bad one was not written");
        let ids = reg.record_results(&[good.clone(), measured("apollo-7b", 3.0)]).await.unwrap();
        assert_eq!((ids.len(), count(&reg).await), (2, before + 2));
        assert!(ids[0] < ids[1]);
        reg.close().await;
    });
}

#[test]
fn a_database_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    rt().block_on(async {
        Registry::open(&path).await.unwrap().close().await;
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             VALUES (999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        let before = std::fs::read(&path).unwrap();
        match Registry::open(&path).await {
            Err(e @ Error::NewerSchema { found: 999, .. }) => {
                assert!(e.to_string().contains("newer"), "{e}");
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
        assert_eq!(before, std::fs::read(&path).unwrap(), "a refused database is not modified");
    });
}

#[test]
fn unwritable_locations_and_foreign_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    rt().block_on(async {
        // The parent "directory" is a regular file: creating the database must fail (even as root).
        let e = Registry::open(&file.join("sub/registry.db")).await.unwrap_err();
        assert!(matches!(e, Error::Unwritable { .. }), "{e:?}");
        assert!(e.to_string().contains("a-file"), "names the path: {e}");
        // A folder where the file should be.
        let e = Registry::open(dir.path()).await.unwrap_err();
        assert!(matches!(e, Error::Unwritable { .. }), "{e:?}");
        // A file that is not SQLite.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
        let e = Registry::open(&junk).await.unwrap_err();
        assert!(matches!(e, Error::NotADatabase { .. }), "{e:?}");
        assert_eq!(std::fs::read(&junk).unwrap(), vec![0x42u8; 8192], "foreign file untouched");
    });
}

#[test]
fn sync_refuses_a_catalog_with_problems_and_keeps_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    rt().block_on(async {
        let reg = Registry::open(&path).await.unwrap();
        reg.sync(&Catalog::embedded(), false).await.unwrap();
        let n = reg.count_models().await.unwrap();
        let mut files = Catalog::embedded().files;
        files[0].text.push_str("\n[[model]]\nname = \"broken\"\nkind = \"nonsense\"\nlanguages = []\n");
        let e = reg.sync(&Catalog::from_sources("bad".into(), files), false).await.unwrap_err();
        assert!(matches!(e, Error::CatalogProblems { .. }), "{e:?}");
        assert_eq!(reg.count_models().await.unwrap(), n);
        reg.close().await;
    });
}

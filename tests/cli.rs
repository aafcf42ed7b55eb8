//! End-to-end tests of the `zoo` binary: real processes, real SQLite files, an isolated HOME.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env { dir: tempfile::tempdir().unwrap() }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("registry.db")
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_zoo"));
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ZOO_DB", self.db())
            .env("HF_HOME", self.dir.path().join("hf"))
            .stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
#[track_caller]
fn code(o: &Output, want: i32) {
    assert_eq!(o.status.code(), Some(want), "stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(o)))
}

/// The documented keys of a model object in `--json` listings (docs/USAGE.md).
const MODEL_KEYS: &[&str] = &[
    "name",
    "display_name",
    "family",
    "kind",
    "arch",
    "hf_architecture",
    "hf_repo",
    "revision",
    "base",
    "backbone",
    "delta_algorithm",
    "params",
    "params_source",
    "dtype",
    "languages",
    "license",
    "chat_template",
    "context_length",
    "quantization",
    "open_model",
    "open_data",
    "claimed_languages",
    "instruction_data",
    "conversation_data",
    "release_date",
    "description",
    "homepage",
    "paper",
    "source",
    "origin",
    "source_file",
    "source_line",
    "local",
    "mirrors",
    "sampling",
];

#[test]
fn list_json_has_the_documented_schema() {
    let env = Env::new();
    let o = env.run(&["list", "--json"]);
    code(&o, 0);
    let v = json(&o);
    let arr = v.as_array().unwrap();
    assert!(arr.len() >= 30, "{} models", arr.len());
    for m in arr {
        let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want: Vec<&str> = MODEL_KEYS.to_vec();
        let mut got = keys.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "model {}", m["name"]);
        assert!(m["languages"].is_array());
        assert!(m["local"].is_boolean());
    }
    assert!(stderr(&o).contains("registry synced"), "first use syncs: {}", stderr(&o));
    // Second run: nothing to sync, same output.
    let o2 = env.run(&["list", "--json"]);
    code(&o2, 0);
    assert!(!stderr(&o2).contains("synced"), "{}", stderr(&o2));
    assert_eq!(o.stdout, o2.stdout);
}

#[test]
fn chimera_deltas_by_query() {
    let env = Env::new();
    let o = env.run(&["registry", "query", "--family", "chimera", "--json"]);
    code(&o, 0);
    let v = json(&o);
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["chimera-chat-13b", "chimera-chat-7b", "chimera-inst-chat-13b", "chimera-inst-chat-7b"]);
    for m in v.as_array().unwrap() {
        assert_eq!(m["kind"], "delta");
        assert_eq!(m["delta_algorithm"], "llmzoo");
        assert!(m["base"].as_str().unwrap().starts_with("llama-"));
        assert!(m["hf_repo"].as_str().unwrap().ends_with("-delta"));
    }
    insta::assert_json_snapshot!("query_chimera", v);
}

#[test]
fn query_formats_csv_markdown_and_columns() {
    let env = Env::new();
    let o =
        env.run(&["registry", "query", "--family", "chimera", "--format", "csv", "--columns", "name,base,languages"]);
    code(&o, 0);
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("name,base,languages"));
    assert!(text.contains("chimera-chat-7b,llama-7b,\""), "languages are quoted: {text}");
    let o = env.run(&["registry", "query", "--kind", "quantized", "--format", "markdown", "--limit", "2"]);
    code(&o, 0);
    let md = stdout(&o);
    assert!(md.starts_with("| name | family |"), "{md}");
    assert_eq!(md.lines().count(), 4, "header, rule, 2 rows: {md}");
    let o = env.run(&["registry", "query", "--columns", "nope"]);
    code(&o, 2);
    assert!(stderr(&o).contains("unknown column"), "{}", stderr(&o));
}

#[test]
fn show_gptq_release() {
    let env = Env::new();
    let o = env.run(&["show", "phoenix-inst-chat-7b-int4"]);
    code(&o, 0);
    let t = stdout(&o);
    for want in [
        "GPTQ 4-bit",
        "group size 128",
        "desc_act true",
        "phoenix-inst-chat-7b",
        "gptq_model-4bit.bin",
        "quantize_config.json",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    let o = env.run(&["show", "phoenix-inst-chat-7b-int4", "--json"]);
    code(&o, 0);
    let v = json(&o);
    assert_eq!(v["quantization"]["method"], "gptq");
    assert_eq!(v["quantization"]["bits"], 4);
    assert_eq!(v["quantization"]["group_size"], 128);
    assert_eq!(v["quantization"]["desc_act"], true);
    assert!(v["files"].as_array().unwrap().iter().any(|f| f["path"] == "gptq_model-4bit.bin" && f["sha256"].is_null()));
    // An HF repo id works as a name too.
    let o = env.run(&["show", "FreedomIntelligence/phoenix-inst-chat-7b-int4", "--json"]);
    code(&o, 0);
    assert_eq!(json(&o)["name"], "phoenix-inst-chat-7b-int4");
}

#[test]
fn misspelled_names_get_suggestions_and_exit_1() {
    let env = Env::new();
    let o = env.run(&["show", "phenix-inst-chat-7b"]);
    code(&o, 1);
    assert!(stderr(&o).contains("did you mean: phoenix-inst-chat-7b"), "{}", stderr(&o));
    let o = env.run(&["results", "apolo-7b"]);
    code(&o, 1);
    assert!(stderr(&o).contains("apollo-7b"), "{}", stderr(&o));
    let o = env.run(&["list", "--family", "nope", "--json"]);
    code(&o, 1);
    assert_eq!(json(&o), serde_json::json!([]));
}

#[test]
fn xmedbench_table() {
    let env = Env::new();
    let o = env.run(&["results", "--benchmark", "xmedbench"]);
    code(&o, 0);
    let t = stdout(&o);
    let header = t.lines().nth(1).unwrap();
    for col in ["USMLE", "MedMCQA", "MCMLE", "CMMLU", "HEAD-QA", "Avg"] {
        assert!(header.contains(col), "{header}");
    }
    let row = t.lines().find(|l| l.starts_with("apollo-7b ")).expect("Apollo-7B row");
    for v in ["56.00", "58.21", "71.86", "72.36", "59.04", "60.44", "63.73", "41.82", "45.55", "58.78"] {
        assert!(row.contains(v), "{v} missing in {row}");
    }
    assert_eq!(t.lines().filter(|l| l.contains(" published ")).count(), 26);
    let o = env.run(&["results", "--benchmark", "xmedbench", "--json"]);
    let v = json(&o);
    assert_eq!(v[0]["benchmark"]["name"], "xmedbench");
    assert_eq!(v[0]["rows"].as_array().unwrap().len(), 26);
}

#[test]
fn measured_results_sit_beside_published_ones() {
    let env = Env::new();
    let file = env.dir.path().join("r.json");
    std::fs::write(
        &file,
        r#"[{"model": "apollo-0.5b", "benchmark": "xmedbench", "scores": {"medqa-usmle": 31.5, "avg": 30.0},
             "provenance": {"model_hash": "abc", "prompt_format": "apollo", "mode": "generate+regex", "seed": 7}}]"#,
    )
    .unwrap();
    let o = env.run(&["registry", "import-results", file.to_str().unwrap(), "--json"]);
    code(&o, 0);
    // The row id follows the catalog's published results.
    insta::assert_json_snapshot!("import_results", json(&o), { ".recorded[].id" => "[id]" });
    let o = env.run(&["results", "apollo-0.5b", "--benchmark", "xmedbench"]);
    code(&o, 0);
    let t = stdout(&o);
    assert!(t.lines().any(|l| l.starts_with("apollo-0.5b") && l.contains("published") && l.contains("32.99")), "{t}");
    assert!(t.lines().any(|l| l.starts_with("apollo-0.5b") && l.contains("measured") && l.contains("31.50")), "{t}");
    let o = env.run(&["results", "apollo-0.5b", "--json"]);
    let v = json(&o);
    let measured = v[0]["rows"].as_array().unwrap().iter().find(|r| r["origin"] == "measured").unwrap().clone();
    assert_eq!(measured["provenance"]["seed"], 7);
    assert_eq!(measured["provenance"]["zoo_version"], env!("CARGO_PKG_VERSION"));
    insta::assert_json_snapshot!("results_apollo_0_5b_measured", common::stable(&v, &[env.dir.path()]));
    // Bad input: unknown column, not JSON.
    std::fs::write(&file, r#"{"model": "apollo-0.5b", "benchmark": "xmedbench", "scores": {"zzz": 1}}"#).unwrap();
    let o = env.run(&["registry", "import-results", file.to_str().unwrap()]);
    code(&o, 2);
    assert!(stderr(&o).contains("zzz"), "{}", stderr(&o));
    std::fs::write(&file, "{not json").unwrap();
    code(&env.run(&["registry", "import-results", file.to_str().unwrap()]), 2);
    // All or none: a good result before a bad one is not recorded either.
    std::fs::write(
        &file,
        r#"[{"model": "apollo-0.5b", "benchmark": "xmedbench", "scores": {"avg": 1.0}},
            {"model": "apollo-0.5b", "benchmark": "xmedbench", "scores": {"zzz": 1}}]"#,
    )
    .unwrap();
    code(&env.run(&["registry", "import-results", file.to_str().unwrap()]), 2);
    let v = json(&env.run(&["results", "apollo-0.5b", "--json"]));
    let measured = v[0]["rows"].as_array().unwrap().iter().filter(|r| r["origin"] == "measured").count();
    assert_eq!(measured, 1, "only the first file's result: {v}");
}

/// Write a copy of the shipped catalog with `edit` applied to `file`.
fn broken_catalog(dir: &Path, file: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("registry");
    let dst = dir.join("catalog");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(dst.join(&name), if name == file { edit(&text) } else { text }).unwrap();
    }
    dst
}

#[test]
fn registry_check_passes_on_the_shipped_catalog_and_fails_with_file_and_line() {
    let env = Env::new();
    let o = env.run(&["registry", "check"]);
    code(&o, 0);
    let o = env.run(&["registry", "check", concat!(env!("CARGO_MANIFEST_DIR"), "/registry")]);
    code(&o, 0);
    assert!(stderr(&o).contains("ok"), "{}", stderr(&o));

    let cat =
        broken_catalog(env.dir.path(), "chimera.toml", |t| t.replacen("base = \"llama-7b\"", "base = \"llama-7\"", 1));
    let o = env.run(&["registry", "check", cat.to_str().unwrap()]);
    code(&o, 1);
    let line = stdout(&o);
    assert!(line.contains("chimera.toml:") && line.contains("llama-7") && line.contains("[unknown-base]"), "{line}");
    let lineno: usize = line.split(':').nth(1).unwrap().parse().unwrap();
    let text = std::fs::read_to_string(cat.join("chimera.toml")).unwrap();
    assert!(text.lines().nth(lineno - 1).unwrap().contains("llama-7\""), "line {lineno} is the broken one");

    // Sync and every reading command refuse it, with the hint to run check.
    let o = env.cmd().args(["list"]).env("ZOO_CATALOG", &cat).output().unwrap();
    code(&o, 2);
    assert!(stderr(&o).contains("zoo registry check"), "{}", stderr(&o));
    let o = env.run(&["registry", "check", "--json", cat.to_str().unwrap()]);
    code(&o, 1);
    let v = json(&o);
    assert_eq!(v[0]["code"], "unknown-base");
    insta::assert_json_snapshot!("check_unknown_base", common::stable(&v, &[env.dir.path()]));
}

#[test]
fn a_changed_catalog_is_synced_automatically() {
    let env = Env::new();
    code(&env.run(&["list"]), 0);
    let cat = broken_catalog(env.dir.path(), "chimera.toml", |t| {
        format!("{t}\n[[model]]\nname = \"chimera-extra\"\nkind = \"full\"\nlanguages = [\"en\"]\n")
    });
    let o = env.cmd().args(["list", "--family", "chimera", "--json"]).env("ZOO_CATALOG", &cat).output().unwrap();
    code(&o, 0);
    assert!(stderr(&o).contains("synced"), "{}", stderr(&o));
    assert!(stdout(&o).contains("chimera-extra"));
    let o = env.run(&["registry", "sync", "--json"]);
    code(&o, 0);
    let r = json(&o);
    assert_eq!(r["ran"], true, "back to the built-in catalog");
    assert_eq!(r["added"], 0);
    assert_eq!(r["removed"], 1);
    insta::assert_json_snapshot!("sync_back_to_built_in", r, { ".catalog_hash" => "[hash]" });
    let o = env.run(&["registry", "sync", "--json"]);
    assert_eq!(json(&o)["ran"], false);
}

#[test]
fn concurrent_processes_lose_nothing() {
    let env = Env::new();
    // Fresh database: several processes race to create and sync it.
    let kids: Vec<_> = (0..8)
        .map(|_| env.cmd().args(["list", "--json"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // Two writers import 40 results each while a third re-syncs the catalog.
    let mut writers = Vec::new();
    for w in 0..2 {
        let items: Vec<serde_json::Value> = (0..40)
            .map(|i| serde_json::json!({"model": "apollo-2b", "benchmark": "xmedbench", "scores": {"avg": w * 100 + i}, "source": format!("w{w}")}))
            .collect();
        let f = env.dir.path().join(format!("w{w}.json"));
        std::fs::write(&f, serde_json::to_string(&items).unwrap()).unwrap();
        for _ in 0..3 {
            writers.push(
                env.cmd()
                    .args(["registry", "import-results", f.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
    }
    let syncer =
        env.cmd().args(["registry", "sync", "--force"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    for k in writers.into_iter().chain([syncer]) {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = env.run(&["results", "apollo-2b", "--json"]);
    let v = json(&o);
    let rows = v[0]["rows"].as_array().unwrap();
    let measured: Vec<f64> =
        rows.iter().filter(|r| r["origin"] == "measured").map(|r| r["scores"]["avg"].as_f64().unwrap()).collect();
    assert_eq!(measured.len(), 240, "2 writers × 3 processes × 40 results");
    for w in 0..2 {
        for i in 0..40 {
            let want = (w * 100 + i) as f64;
            assert_eq!(measured.iter().filter(|v| **v == want).count(), 3, "value {want}");
        }
    }
    assert_eq!(rows.iter().filter(|r| r["origin"] == "published").count(), 1);
}

#[test]
fn bad_databases_and_locations_are_errors_with_hints() {
    let env = Env::new();
    let blocker = env.dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let o = env.cmd().args(["list"]).env("ZOO_DB", blocker.join("registry.db")).output().unwrap();
    code(&o, 2);
    let err = stderr(&o);
    assert!(err.starts_with("error: ") && err.contains("not writable") && err.contains("hint: pass --db"), "{err}");
    assert_eq!(err.lines().count(), 2, "one error line and one hint: {err}");
    let junk = env.dir.path().join("junk.db");
    std::fs::write(
        &junk,
        b"definitely not sqlite, just text long enough to have a header......................................",
    )
    .unwrap();
    let o = env.run(&["--db", junk.to_str().unwrap(), "list"]);
    code(&o, 2);
    assert!(stderr(&o).contains("not a zoo registry database"), "{}", stderr(&o));
    code(&env.run(&["list", "--no-such-flag"]), 2);
    code(&env.run(&["list", "--kind", "weird"]), 2);
}

#[test]
fn env_reports_sources_and_color_follows_no_color() {
    let env = Env::new();
    let o = env.run(&["env", "--json"]);
    code(&o, 0);
    let v = json(&o);
    let row = |n: &str| v.as_array().unwrap().iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(row("database")["source"], "ZOO_DB");
    assert_eq!(row("hf_cache")["source"], "HF_HOME");
    assert!(row("hf_cache")["value"].as_str().unwrap().ends_with("hf/hub"));
    insta::assert_json_snapshot!("env", common::stable(&v, &[env.dir.path()]));
    let o = env
        .cmd()
        .args(["env", "--json"])
        .env_remove("ZOO_DB")
        .env("XDG_DATA_HOME", env.dir.path().join("xdg"))
        .output()
        .unwrap();
    let v = json(&o);
    let db = v.as_array().unwrap().iter().find(|r| r["name"] == "database").unwrap().clone();
    assert!(db["value"].as_str().unwrap().ends_with("xdg/zoo/registry.db"), "{db}");
    assert_eq!(db["source"], "$XDG_DATA_HOME/zoo");

    let o = env.run(&["--color", "always", "list", "--family", "chimera"]);
    assert!(stdout(&o).contains("\x1b[1m"), "bold header with --color always");
    let o = env.cmd().args(["list", "--family", "chimera"]).env("NO_COLOR", "1").output().unwrap();
    assert!(!stdout(&o).contains('\x1b'));
    let o = env.cmd().args(["list", "--family", "chimera"]).env("ZOO_COLOR", "never").output().unwrap();
    assert!(!stdout(&o).contains('\x1b'));
}

#[test]
fn local_copies_in_the_hf_cache_are_seen() {
    let env = Env::new();
    let snap = env.dir.path().join("hf/hub/models--FreedomIntelligence--Apollo-0.5B/snapshots/abc");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("config.json"), "{}").unwrap();
    let o = env.run(&["list", "--local", "--json"]);
    code(&o, 0);
    let v = json(&o);
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["apollo-0.5b"]);
    assert_eq!(v[0]["local"], true);
    let o = env.run(&["show", "apollo-0.5b", "--json"]);
    assert!(json(&o)["hf_cache_path"].as_str().unwrap().ends_with("models--FreedomIntelligence--Apollo-0.5B"));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let env = Env::new();
    code(&env.run(&["list"]), 0);
    let mut child = env.cmd().args(["results"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn snapshots_of_cli_text_and_json() {
    let env = Env::new();
    let o = env.cmd().args(["list", "--family", "chimera"]).env("NO_COLOR", "1").output().unwrap();
    code(&o, 0);
    insta::assert_snapshot!("list_chimera", stdout(&o));
    let o = env.run(&["show", "chimera-inst-chat-13b", "--json"]);
    code(&o, 0);
    insta::assert_json_snapshot!("show_chimera_inst_chat_13b", json(&o));
    let o = env.run(&["registry", "check", "--json", concat!(env!("CARGO_MANIFEST_DIR"), "/registry")]);
    code(&o, 0);
    insta::assert_snapshot!("check_clean", stdout(&o));
}

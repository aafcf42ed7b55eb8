//! `zoo data validate|stats` end to end: exit codes, text and JSON, broken files.

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
    // stats reports the same problems but exits 0: counting is not checking.
    let o = common::run_zoo(home.path(), &["data", "stats", &p(&bad)]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("2 records (conversations), 4 turns") && text.contains("2 problems in 1 record"), "{text}");
    // A file cut short is an error naming the record (exit 2).
    let cut = write(home.path(), "cut.json", r#"[{"conversations":[]},{"conversations":[{"from":"hu"#);
    let o = common::run_zoo(home.path(), &["data", "validate", &p(&cut)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("record 1: not valid JSON"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
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
    let o = common::run_zoo(
        home.path(),
        &["data", "convert", &p(&bad), "--to", "alpaca", "-o", &p(&home.path().join("a.json"))],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("record 1 cannot be written as alpaca"));
    assert!(!home.path().join("a.json").exists());
}

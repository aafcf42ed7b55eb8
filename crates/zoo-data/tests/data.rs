//! Reading, checking and counting training data files of every format.

use std::io::Write;

use zoo_data::{DataError, Format, Problem, Stats, Watch, check_record, read_records};

fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

/// (format, stats, problems) of a file.
fn scan(bytes: &[u8], format: Option<Format>) -> Result<(Option<Format>, Stats, Vec<Problem>), DataError> {
    let f = file(bytes);
    let mut stats = Stats::default();
    let mut problems = Vec::new();
    let (fmt, n) = read_records(f.path(), format, |fmt, rec| {
        let (turns, p) = check_record(fmt, &rec);
        stats.add(&turns, p.len());
        problems.extend(p);
    })?;
    stats.format = fmt;
    assert_eq!(n, stats.records);
    Ok((fmt, stats, problems))
}

#[test]
fn llm_zoo_conversations_are_checked_turn_by_turn() {
    let data = r#"[
      {"id": "a", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
      {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "你好"},
                         {"from": "gpt", "value": "你好！"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye."}]},
      {"conversations": []},
      {"conversations": [{"from": "gpt", "value": "I start"}, {"from": "human", "value": "  "}]},
      {"conversations": [{"from": "robot", "value": "x"}, {"from": "human"}]}
    ]"#;
    let (fmt, stats, problems) = scan(data.as_bytes(), None).unwrap();
    assert_eq!(fmt, Some(Format::Conversations));
    assert_eq!(stats.records, 5);
    assert_eq!(stats.turns_by_role.get("user"), Some(&5));
    assert_eq!(stats.turns_by_role.get("system"), Some(&1));
    let paths: Vec<(usize, &str)> = problems.iter().map(|p| (p.record, p.path.as_str())).collect();
    assert_eq!(
        paths,
        [
            (2, "$[2].conversations"),
            (3, "$[3].conversations[1].value"),
            (3, "$[3].conversations[0]"),
            (4, "$[4].conversations[0].from"),
            (4, "$[4].conversations[1].value"),
            (4, "$[4].conversations"),
        ],
        "{problems:#?}"
    );
    assert!(problems[2].message.contains("expected a user turn"), "{problems:#?}");
    assert!(problems[3].message.contains("unknown role `robot`"));
    assert_eq!(stats.records_with_problems, 3);
    // Characters, not bytes: 你好 is 2.
    assert_eq!(stats.max_record_chars, ("Be brief.你好你好！ByeBye.".chars().count()) as u64);
}

#[test]
fn openai_jsonl_alpaca_and_apollo_are_detected() {
    let jsonl = "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n\n\
                 {\"messages\":[{\"role\":\"user\",\"content\":\"q2\"}]}\n";
    let (fmt, stats, problems) = scan(jsonl.as_bytes(), None).unwrap();
    assert_eq!((fmt, stats.records, stats.turns), (Some(Format::OpenAi), 2, 3));
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("last turn"), "{problems:?}");

    let alpaca = r#"[{"instruction": "Add", "input": "2 and 2", "output": "4"}, {"instruction": "", "output": 5}]"#;
    let (fmt, stats, problems) = scan(alpaca.as_bytes(), None).unwrap();
    assert_eq!((fmt, stats.records, stats.turns), (Some(Format::Alpaca), 2, 4));
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["$[1].instruction", "$[1].output"]);

    let apollo = r#"[["What is a fever?", "A high temperature.", "Why?", "Infection."], ["odd"], "A passage of a medical book."]"#;
    let (fmt, stats, problems) = scan(apollo.as_bytes(), None).unwrap();
    assert_eq!((fmt, stats.records, stats.turns), (Some(Format::Apollo), 3, 6));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "$[1]");
}

#[test]
fn broken_files_name_the_record() {
    // Truncated in the third record.
    let e =
        scan(br#"[{"conversations": []}, {"conversations": []}, {"conversations": [{"from": "hu"#, None).unwrap_err();
    match e {
        DataError::Json { record, line, .. } => assert_eq!((record, line), (2, 1)),
        e => panic!("{e}"),
    }
    // Invalid UTF-8 inside a string of the second line.
    let e = scan(b"{\"messages\": []}\n{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}\n", None)
        .unwrap_err();
    assert!(matches!(e, DataError::Json { record: 1, line: 2, .. }), "{e}");
    // Not a format: told, with the record.
    let e = scan(br#"[{"text": "x"}]"#, None).unwrap_err();
    assert!(e.to_string().contains("record 0 is in no known format"), "{e}");
    // Trailing garbage after the array.
    assert!(scan(br#"[] x"#, None).is_err());
    // An empty file has no records.
    let (fmt, stats, _) = scan(b"  \n", None).unwrap();
    assert_eq!((fmt, stats.records), (None, 0));
    // A named format overrides detection.
    let (_, _, problems) = scan(br#"[{"instruction": "x", "output": "y"}]"#, Some(Format::Conversations)).unwrap();
    assert!(problems[0].message.contains("no `conversations`"));
}

#[test]
fn a_large_file_streams_record_by_record() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let n = 20_000;
    f.write_all(b"[").unwrap();
    for i in 0..n {
        if i > 0 {
            f.write_all(b",").unwrap();
        }
        write!(f, r#"{{"id":"{i}","conversations":[{{"from":"human","value":"question {i}"}},{{"from":"gpt","value":"answer {i}"}}]}}"#).unwrap();
    }
    f.write_all(b"]").unwrap();
    let mut seen = Vec::new();
    let (_, count) = read_records(f.path(), None, |_, rec| seen.push(rec.index)).unwrap();
    assert_eq!(count, n);
    assert!(seen.iter().copied().eq(0..n), "records arrive in order, one by one");
}

/// Every record's turns, in order.
fn turns_of(path: &std::path::Path) -> Vec<Vec<(String, String)>> {
    let mut all = Vec::new();
    read_records(path, None, |fmt, rec| {
        let (turns, problems) = check_record(fmt, &rec);
        assert!(problems.is_empty(), "{problems:?}");
        all.push(turns.into_iter().map(|t| (t.role.to_string(), t.text)).collect());
    })
    .unwrap();
    all
}

#[test]
fn conversions_round_trip_every_turn() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("phoenix.json");
    std::fs::write(
        &src,
        r#"[{"id": "x1", "conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "你好"},
              {"from": "gpt", "value": "你好！"}, {"from": "human", "value": "Quote: \"hi\"\n"}, {"from": "gpt", "value": "ok"}]},
            {"id": "x2", "conversations": [{"from": "human", "value": "q"}, {"from": "chatgpt", "value": "a"}]}]"#,
    )
    .unwrap();
    let original = turns_of(&src);
    let jsonl = dir.path().join("chat.jsonl");
    let r = zoo_data::convert(&src, None, Format::OpenAi, &jsonl, false, Watch::default()).unwrap();
    assert_eq!((r.records_read, r.records_written, r.skipped), (2, 2, 0));
    assert_eq!(std::fs::read_to_string(&jsonl).unwrap().lines().count(), 2, "JSON lines");
    assert_eq!(turns_of(&jsonl), original);
    let back = dir.path().join("back.json");
    zoo_data::convert(&jsonl, None, Format::Conversations, &back, false, Watch::default()).unwrap();
    assert_eq!(turns_of(&back), original);
    let apollo = dir.path().join("apollo.json");
    // A system text does not fit ApolloCorpus: refused with the record, nothing written.
    let e = zoo_data::convert(&src, None, Format::Apollo, &apollo, false, Watch::default()).unwrap_err();
    assert!(e.to_string().contains("record 0 cannot be written as apollo"), "{e}");
    assert!(!apollo.exists(), "a failed conversion leaves no file");
    let r = zoo_data::convert(&src, None, Format::Apollo, &apollo, true, Watch::default()).unwrap();
    assert_eq!((r.records_written, r.skipped), (1, 1));
    assert_eq!(turns_of(&apollo), original[1..]);
    // Conversations keep their ids.
    let same = dir.path().join("same.json");
    zoo_data::convert(&src, None, Format::Conversations, &same, false, Watch::default()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&same).unwrap()).unwrap();
    assert_eq!(v[0]["id"], "x1");
    // Multi-turn records do not fit Alpaca; single exchanges do, and come back the same.
    let e =
        zoo_data::convert(&src, None, Format::Alpaca, &dir.path().join("a.json"), false, Watch::default()).unwrap_err();
    assert!(e.to_string().contains("do not fit Alpaca"), "{e}");
    let alpaca = dir.path().join("alpaca.json");
    std::fs::write(&alpaca, r#"[{"instruction": "Add", "input": "2 and 2", "output": "4"}]"#).unwrap();
    let conv = dir.path().join("from-alpaca.json");
    zoo_data::convert(&alpaca, None, Format::Conversations, &conv, false, Watch::default()).unwrap();
    let again = dir.path().join("again.json");
    zoo_data::convert(&conv, None, Format::Alpaca, &again, false, Watch::default()).unwrap();
    assert_eq!(turns_of(&again), turns_of(&alpaca));
    assert_eq!(turns_of(&again)[0][0].1, "Add\n\n2 and 2");
}

/// A cancel token set part way stops `scan` and `render_file` with `Cancelled`: the reading
/// stops (the chunks in flight are bounded, so it cannot run ahead to the end of the file) and
/// the render leaves no output, not even its temp file.
#[test]
fn scan_and_render_stop_when_cancelled() {
    let rec = r#"{"conversations":[{"from":"human","value":"What is a fever?"},{"from":"gpt","value":"A raised body temperature."}]}"#;
    let body: String = (0..5000).map(|_| format!("{rec}\n")).collect();
    let f = file(body.as_bytes());
    let cancel = zoo_progress::CancelToken::new();
    // Set by the first record a worker sees.
    let count = |_: &[zoo_data::Turn]| -> Result<usize, String> {
        cancel.cancel();
        Ok(1)
    };
    let watch = zoo_data::Watch { progress: None, cancel: Some(&cancel) };
    let opts = zoo_data::ScanOptions { tokens: Some(&count), watch, ..Default::default() };
    assert!(matches!(zoo_data::scan(f.path(), &opts), Err(DataError::Cancelled)));
    // Not cancelled, the same scan counts every record.
    let fresh = zoo_progress::CancelToken::new();
    let watch = zoo_data::Watch { progress: None, cancel: Some(&fresh) };
    let opts = zoo_data::ScanOptions { watch, ..Default::default() };
    assert_eq!(zoo_data::scan(f.path(), &opts).unwrap().stats.records, 5000);

    let cancel = zoo_progress::CancelToken::new();
    let encode = |text: &str| -> Result<Vec<u32>, String> {
        cancel.cancel();
        Ok(text.bytes().map(u32::from).collect())
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let o = zoo_data::RenderOptions {
        max_length: 4096,
        with_text: false,
        normalize_roles: false,
        threads: 2,
        watch: zoo_data::Watch { progress: None, cancel: Some(&cancel) },
    };
    let r = zoo_data::render_file(f.path(), None, &encode, o, &out);
    assert!(matches!(r, Err(DataError::Cancelled)), "{r:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing written: {left:?}");

    // The model-free commands read under the same watch: with the token set they stop at the
    // first read and write nothing; progress counts the file's bytes.
    let watch = zoo_data::Watch { progress: None, cancel: Some(&cancel) };
    let conv = zoo_data::convert(f.path(), None, Format::OpenAi, &out, false, watch);
    assert!(matches!(conv, Err(DataError::Cancelled)), "{conv:?}");
    let size = zoo_data::SampleSize::Fraction(0.5);
    assert!(matches!(zoo_data::sample(f.path(), None, size, 1, &out, watch), Err(DataError::Cancelled)));
    let parts = [(dir.path().join("a.json"), 1.0)];
    assert!(matches!(zoo_data::split(f.path(), None, &parts, 1, watch), Err(DataError::Cancelled)));
    let d = zoo_data::dedup(f.path(), None, zoo_data::DedupOptions::default(), &out, watch);
    assert!(matches!(d, Err(DataError::Cancelled)));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
    let seen = zoo_progress::Recorder::default();
    let watch = zoo_data::Watch { progress: Some(&seen), cancel: None };
    zoo_data::convert(f.path(), None, Format::OpenAi, &out, false, watch).unwrap();
    let bytes: u64 = seen
        .events()
        .iter()
        .filter_map(|e| match e {
            zoo_progress::Event::Advance { delta, .. } => Some(*delta),
            _ => None,
        })
        .sum();
    assert_eq!(bytes, std::fs::metadata(f.path()).unwrap().len());
}

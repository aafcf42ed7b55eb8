//! Sampling, splitting and deduplicating training data files: reproducible from a seed, records
//! written unchanged in file order, outputs written atomically.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use zoo_data::{DataError, DedupOptions, DuplicateKind, Format, SampleSize, Watch, dedup, read_records, sample, split};

/// `n` LLM Zoo records with ids `r0`, `r1`, ...
fn records(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"id": format!("r{i}"), "conversations": [
                {"from": "human", "value": format!("question {i}")},
                {"from": "gpt", "value": format!("answer {i}")}]})
        })
        .collect()
}

/// Writes `values` as JSON lines for a `.jsonl` name, else as a JSON array.
fn write(dir: &Path, name: &str, values: &[Value]) -> PathBuf {
    let path = dir.join(name);
    let text = if name.ends_with(".jsonl") {
        values.iter().map(|v| format!("{v}\n")).collect()
    } else {
        serde_json::to_string_pretty(values).unwrap()
    };
    std::fs::write(&path, text).unwrap();
    path
}

/// The records of a file, in order.
fn values(path: &Path) -> Vec<Value> {
    let mut all = Vec::new();
    read_records(path, None, |_, rec| all.push(rec.value)).unwrap();
    all
}

fn ids(path: &Path) -> Vec<usize> {
    values(path).iter().map(|v| v["id"].as_str().unwrap()[1..].parse().unwrap()).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn a_sample_of_n_is_n_input_records_in_input_order_and_the_seed_decides_which() {
    let dir = tempfile::tempdir().unwrap();
    let all = records(20);
    for input in [write(dir.path(), "in.json", &all), write(dir.path(), "in.jsonl", &all)] {
        let out = dir.path().join("sample.jsonl");
        let r = sample(&input, None, SampleSize::Count(5), 7, &out, Watch::default()).unwrap();
        assert_eq!((r.records_read, r.records_written, r.seed, r.format), (20, 5, 7, Some(Format::Conversations)));
        let picked = ids(&out);
        assert_eq!(picked.len(), 5);
        assert!(picked.windows(2).all(|w| w[0] < w[1]), "in input order: {picked:?}");
        // Unchanged: each is the input's record.
        assert!(values(&out).iter().zip(&picked).all(|(v, &i)| *v == all[i]));
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 5, "JSON lines");
        let first = std::fs::read(&out).unwrap();
        sample(&input, None, SampleSize::Count(5), 7, &out, Watch::default()).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), first, "same seed, same bytes");
        sample(&input, None, SampleSize::Count(5), 8, &out, Watch::default()).unwrap();
        assert_ne!(ids(&out), picked, "another seed, another sample");
        // A JSON array for other names.
        let array = dir.path().join("sample.json");
        sample(&input, None, SampleSize::Count(5), 7, &array, Watch::default()).unwrap();
        assert!(std::fs::read_to_string(&array).unwrap().starts_with('['));
        assert_eq!(ids(&array), picked);
    }
    // More than there are: all of them.
    let input = write(dir.path(), "in.json", &all);
    let out = dir.path().join("all.json");
    let r = sample(&input, None, SampleSize::Count(50), 1, &out, Watch::default()).unwrap();
    assert_eq!(r.records_written, 20);
    assert_eq!(values(&out), all);
    assert!(matches!(
        sample(&input, None, SampleSize::Count(0), 1, &out, Watch::default()),
        Err(DataError::Argument(_))
    ));
}

/// How often each of 20 records is picked over `draws` seeds, for samples of 5.
fn pick_counts(size: SampleSize, draws: u64) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", &records(20));
    let out = dir.path().join("s.jsonl");
    let mut counts = vec![0; 20];
    for seed in 0..draws {
        sample(&input, None, size, seed, &out, Watch::default()).unwrap();
        let picked = ids(&out);
        assert_eq!(picked.len(), 5);
        for i in picked {
            counts[i] += 1;
        }
    }
    counts
}

#[test]
fn every_record_is_about_equally_likely_to_be_sampled() {
    // 2000 draws of 5 of 20: each record 500 times expected, standard deviation about 19.
    let counts = pick_counts(SampleSize::Count(5), 2000);
    assert!(counts.iter().all(|&c| (400..=600).contains(&c)), "{counts:?}");
    // 400 draws of a quarter: 100 expected, standard deviation about 9.
    let counts = pick_counts(SampleSize::Fraction(0.25), 400);
    assert!(counts.iter().all(|&c| (60..=140).contains(&c)), "{counts:?}");
}

#[test]
fn a_fraction_takes_exactly_the_rounded_share() {
    let dir = tempfile::tempdir().unwrap();
    let all = records(10);
    let input = write(dir.path(), "in.json", &all);
    let out = dir.path().join("part.json");
    for (f, want) in [(0.25, 3), (0.5, 5), (0.04, 0), (0.06, 1), (1.0, 10)] {
        let r = sample(&input, None, SampleSize::Fraction(f), 3, &out, Watch::default()).unwrap();
        assert_eq!((r.records_read, r.records_written), (10, want), "{f}");
        let picked = ids(&out);
        assert_eq!(picked.len(), want);
        assert!(picked.windows(2).all(|w| w[0] < w[1]), "{picked:?}");
    }
    assert_eq!(values(&out), all, "all of them, unchanged");
    let a = sample(&input, None, SampleSize::Fraction(0.5), 11, &out, Watch::default()).map(|_| ids(&out)).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    sample(&input, None, SampleSize::Fraction(0.5), 11, &out, Watch::default()).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes, "same seed, same bytes");
    sample(&input, None, SampleSize::Fraction(0.5), 12, &out, Watch::default()).unwrap();
    assert_ne!(ids(&out), a);
    for f in [0.0, -0.5, 1.5, f64::NAN] {
        let e = sample(&input, None, SampleSize::Fraction(f), 1, &out, Watch::default()).unwrap_err();
        assert!(matches!(e, DataError::Argument(_)), "{f}: {e}");
    }
}

#[test]
fn split_sizes_are_exact_and_the_parts_divide_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let all = records(10);
    let input = write(dir.path(), "in.jsonl", &all);
    let parts = [(dir.path().join("train.jsonl"), 0.8), (dir.path().join("test.json"), 0.2)];
    let r = split(&input, None, &parts, 5, Watch::default()).unwrap();
    assert_eq!((r.records_read, r.seed, r.format), (10, 5, Some(Format::Conversations)));
    let sizes: Vec<usize> = r.parts.iter().map(|p| p.records).collect();
    assert_eq!(sizes, [8, 2]);
    let (train, test) = (ids(&parts[0].0), ids(&parts[1].0));
    assert_eq!((train.len(), test.len()), (8, 2));
    assert!(std::fs::read_to_string(&parts[1].0).unwrap().starts_with('['), "a JSON array for .json");
    let mut union: Vec<usize> = train.iter().chain(&test).copied().collect();
    union.sort();
    assert_eq!(union, (0..10).collect::<Vec<_>>(), "disjoint, and together the input");
    assert!(train.windows(2).all(|w| w[0] < w[1]) && test.windows(2).all(|w| w[0] < w[1]), "file order kept");
    assert!(values(&parts[0].0).iter().zip(&train).all(|(v, &i)| *v == all[i]), "unchanged");

    let bytes: Vec<Vec<u8>> = parts.iter().map(|(p, _)| std::fs::read(p).unwrap()).collect();
    split(&input, None, &parts, 5, Watch::default()).unwrap();
    assert_eq!(
        parts.iter().map(|(p, _)| std::fs::read(p).unwrap()).collect::<Vec<_>>(),
        bytes,
        "same seed, same bytes"
    );
    split(&input, None, &parts, 6, Watch::default()).unwrap();
    assert_ne!(ids(&parts[1].0), test, "another seed, another split");

    // Three parts of 23 by weights 5:3:2 (not normalized): 11.5, 6.9, 4.6 → 11, 7, 5.
    let all = records(23);
    let input = write(dir.path(), "in23.json", &all);
    let parts: Vec<(PathBuf, f64)> =
        ["a.json", "b.json", "c.jsonl"].iter().zip([5.0, 3.0, 2.0]).map(|(n, w)| (dir.path().join(n), w)).collect();
    let r = split(&input, None, &parts, 99, Watch::default()).unwrap();
    assert_eq!(r.parts.iter().map(|p| p.records).collect::<Vec<_>>(), [11, 7, 5]);
    let mut seen: Vec<usize> = parts.iter().flat_map(|(p, _)| ids(p)).collect();
    seen.sort();
    assert_eq!(seen, (0..23).collect::<Vec<_>>());

    // Over many seeds every way to halve 4 records comes up (all 6).
    let parts = [(dir.path().join("x.jsonl"), 1.0), (dir.path().join("y.jsonl"), 1.0)];
    let input = write(dir.path(), "in4.jsonl", &records(4));
    let mut halves = BTreeSet::new();
    for seed in 0..60 {
        split(&input, None, &parts, seed, Watch::default()).unwrap();
        halves.insert(ids(&parts[0].0));
    }
    assert_eq!(halves.len(), 6, "{halves:?}");
}

#[test]
fn split_refuses_bad_parts_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.json", &records(3));
    let p = |n: &str, w: f64| (dir.path().join(n), w);
    for parts in
        [vec![], vec![p("a.json", 0.0), p("b.json", 0.0)], vec![p("a.json", -1.0)], vec![p("a.json", f64::NAN)]]
    {
        let e = split(&input, None, &parts, 1, Watch::default()).unwrap_err();
        assert!(matches!(e, DataError::Argument(_)), "{parts:?}: {e}");
    }
    let e = split(&input, None, &[p("a.json", 1.0), p("a.json", 1.0)], 1, Watch::default()).unwrap_err();
    assert!(e.to_string().contains("the path of an earlier part"), "{e}");
    assert_eq!(names(dir.path()), ["in.json"]);
    // A part that cannot be created (its folder is a file): the parts opened before it are
    // removed, nothing is left.
    let e = split(&input, None, &[p("a.json", 1.0), p("in.json/b.json", 1.0)], 1, Watch::default()).unwrap_err();
    assert!(e.to_string().contains("in.json"), "{e}");
    assert_eq!(names(dir.path()), ["in.json"]);
    // A part of weight 0 is written, empty.
    let r = split(&input, None, &[p("a.json", 1.0), p("none.jsonl", 0.0)], 1, Watch::default()).unwrap();
    assert_eq!(r.parts[1].records, 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("none.jsonl")).unwrap(), "");
    assert_eq!(values(&dir.path().join("a.json")).len(), 3);
}

#[test]
fn exact_duplicates_are_the_same_turns_whatever_the_ids_keys_and_role_names() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[
      {"id": "a", "conversations": [{"from": "human", "value": "What is a fever?"}, {"from": "gpt", "value": "A high temperature."}]},
      {"conversations": [{"value": "What is a fever?", "from": "user"},   {"value": "A high temperature.", "from": "chatgpt"}], "id": 7},
      {"id": "c", "conversations": [{"from": "human", "value": "What is a fever?"}, {"from": "gpt", "value": "A high temperature!"}]},
      {"id": "d", "conversations": [{"from": "robot", "value": "x"}, {"from": "gpt", "value": "y"}]},
      {"id": "e", "conversations": [{"from": "robot", "value": "z"}, {"from": "gpt", "value": "y"}]},
      {"id": "f", "conversations": [{"from": "human", "value": "What is a fever?"}, {"from": "gpt", "value": "A high temperature."}]}
    ]"#;
    let input = dir.path().join("in.json");
    std::fs::write(&input, text).unwrap();
    let all = values(&input);
    let out = dir.path().join("out.jsonl");
    let r = dedup(&input, None, DedupOptions::default(), &out, Watch::default()).unwrap();
    assert_eq!((r.records_read, r.records_written, r.exact_duplicates, r.near_duplicates), (6, 4, 2, 0));
    // Records whose turns cannot all be read (an unknown role) are kept, not compared.
    assert_eq!(r.unreadable, 2);
    assert_eq!(values(&out), [all[0].clone(), all[2].clone(), all[3].clone(), all[4].clone()], "unchanged, in order");
    let pairs: Vec<(usize, usize, DuplicateKind, f64)> =
        r.duplicates.iter().map(|d| (d.record, d.duplicate_of, d.kind, d.similarity)).collect();
    assert_eq!(pairs, [(1, 0, DuplicateKind::Exact, 1.0), (5, 0, DuplicateKind::Exact, 1.0)]);
    assert_eq!((r.bands, r.rows), (None, None));

    // The same turns in another format are duplicates too (OpenAI JSON lines).
    let m =
        |u: &str, a: &str| json!({"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]});
    let lines = [
        m("q", "a"),
        json!({"messages": [{"content": "q", "role": "user"}, {"role": "assistant", "content": "a"}], "id": 1}),
        m("q", "b"),
    ];
    let jsonl = write(dir.path(), "chat.jsonl", &lines);
    let out = dir.path().join("chat.dedup.jsonl");
    let r = dedup(&jsonl, None, DedupOptions::default(), &out, Watch::default()).unwrap();
    assert_eq!((r.records_written, r.exact_duplicates), (2, 1));
    assert_eq!(values(&out), [lines[0].clone(), lines[2].clone()]);
}

const ARTICLE: &str = "Fever is a temporary increase in body temperature, often due to an illness. Having a fever \
    is a sign that something out of the ordinary is going on in your body. For an adult, a fever may be uncomfortable, \
    but usually isn't a cause for concern unless it reaches 103 F (39.4 C) or higher. For infants and toddlers, a \
    slightly elevated temperature may indicate a serious infection. Fevers generally go away within a few days. A \
    number of over-the-counter medications lower a fever, but sometimes it's better left untreated. Fever seems to \
    play a key role in helping your body fight off a number of infections.";

const OTHER: &str = "Hypertension is a common condition in which the long-term force of the blood against your \
    artery walls is high enough that it may eventually cause health problems, such as heart disease. Blood pressure \
    is determined both by the amount of blood your heart pumps and the amount of resistance to blood flow in your \
    arteries. You can have high blood pressure for years without any symptoms, which is why regular checks matter.";

const CHINESE: &str = "发热是指体温升高超过正常范围，通常是身体对感染的一种防御反应。成人体温超过三十七点三摄氏度即可认为发热。\
    轻度发热一般不需要特殊处理，多休息、多喝水即可；如果体温超过三十九摄氏度，或者持续发热超过三天，应及时就医。\
    婴幼儿发热时病情变化较快，家长应密切观察孩子的精神状态、进食情况和有无皮疹等伴随症状。";

#[test]
fn near_duplicates_are_caught_and_different_texts_kept() {
    let dir = tempfile::tempdir().unwrap();
    let qa = |q: &str, a: &str| json!({"instruction": q, "input": "", "output": a});
    let lines = [
        qa("Tell me about fever.", ARTICLE),
        qa("Tell me about fever.", &ARTICLE.replace("uncomfortable", "unpleasant")),
        qa("Tell me about blood pressure.", OTHER),
        qa("发热怎么办？", CHINESE),
        qa("发热怎么办？", &CHINESE.replace("多喝水", "多饮水")),
        qa("Tell me about fever.", &ARTICLE.to_uppercase().replace(". ", ".\n\n")),
        qa("Tell me about fever.", ARTICLE),
    ];
    for name in ["alpaca.jsonl", "alpaca.json"] {
        let input = write(dir.path(), name, &lines);
        let out = dir.path().join(format!("dedup-{name}"));
        // Exact duplicates only: just the last record goes.
        let r = dedup(&input, None, DedupOptions::default(), &out, Watch::default()).unwrap();
        assert_eq!((r.records_written, r.exact_duplicates, r.near_duplicates), (6, 1, 0));
        let opts = DedupOptions { near: Some(0.8), seed: 3, ..DedupOptions::default() };
        let r = dedup(&input, None, opts, &out, Watch::default()).unwrap();
        assert_eq!((r.records_read, r.records_written, r.exact_duplicates, r.near_duplicates), (7, 3, 1, 3));
        assert_eq!(values(&out), [lines[0].clone(), lines[2].clone(), lines[3].clone()]);
        assert_eq!((r.bands, r.rows), (Some(9), Some(13)));
        let pairs: Vec<(usize, usize, DuplicateKind)> =
            r.duplicates.iter().map(|d| (d.record, d.duplicate_of, d.kind)).collect();
        assert_eq!(
            pairs,
            [
                (1, 0, DuplicateKind::Near),
                (4, 3, DuplicateKind::Near),
                (5, 0, DuplicateKind::Near),
                (6, 0, DuplicateKind::Exact)
            ]
        );
        // One word in a long text: similar, not the same; case and white space do not count.
        let sims: Vec<f64> = r.duplicates.iter().map(|d| d.similarity).collect();
        assert!((0.8..1.0).contains(&sims[0]) && (0.8..1.0).contains(&sims[1]), "{sims:?}");
        assert_eq!(sims[2..], [1.0, 1.0]);
        let bytes = std::fs::read(&out).unwrap();
        dedup(&input, None, opts, &out, Watch::default()).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "same seed, same bytes");
        // A threshold above the one-word change keeps it.
        let strict = DedupOptions { near: Some(0.995), ..opts };
        let r = dedup(&input, None, strict, &out, Watch::default()).unwrap();
        assert_eq!((r.near_duplicates, r.records_written), (1, 5), "{:?}", r.duplicates);
    }
    let input = dir.path().join("alpaca.json");
    let out = dir.path().join("o.json");
    for bad in [
        DedupOptions { near: Some(0.0), ..DedupOptions::default() },
        DedupOptions { near: Some(1.5), ..DedupOptions::default() },
        DedupOptions { shingle: 0, ..DedupOptions::default() },
        DedupOptions { perms: 0, ..DedupOptions::default() },
    ] {
        assert!(matches!(dedup(&input, None, bad, &out, Watch::default()), Err(DataError::Argument(_))), "{bad:?}");
    }
}

#[test]
fn a_truncated_file_fails_with_the_record_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("broken.json");
    let whole = serde_json::to_string(&records(3)).unwrap();
    std::fs::write(&input, &whole[..whole.len() - 20]).unwrap();
    let out = dir.path().join("out.json");
    let check = |r: Result<(), DataError>, what: &str| {
        match r {
            Err(DataError::Json { record, .. }) => assert_eq!(record, 2, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
        assert!(!out.exists(), "{what}: no output");
        assert_eq!(names(dir.path()), ["broken.json"], "{what}: no temp file left");
    };
    check(sample(&input, None, SampleSize::Count(2), 1, &out, Watch::default()).map(drop), "sample of a count");
    check(sample(&input, None, SampleSize::Fraction(0.5), 1, &out, Watch::default()).map(drop), "sample of a fraction");
    let parts = [(out.clone(), 0.5), (dir.path().join("other.jsonl"), 0.5)];
    check(split(&input, None, &parts, 1, Watch::default()).map(drop), "split");
    check(dedup(&input, None, DedupOptions::default(), &out, Watch::default()).map(drop), "dedup");
    let near = DedupOptions { near: Some(0.8), ..DedupOptions::default() };
    check(dedup(&input, None, near, &out, Watch::default()).map(drop), "near dedup");
}

//! Reports for the unit tests: a small realistic one and awkward ones (empty, NaN, huge, long,
//! Chinese and markup-laden names).

use std::collections::BTreeMap;

use crate::model::*;

pub fn col(key: &str, lang: Option<&str>, aggregate: bool) -> Column {
    Column { key: key.into(), label: key.into(), lang: lang.map(Into::into), aggregate }
}

pub fn row(model: &str, origin: Origin, vals: &[(&str, f64)]) -> ResultRow {
    ResultRow {
        model: model.into(),
        origin,
        values: vals.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        source: None,
        provenance: None,
    }
}

pub fn bench(name: &str, columns: Vec<Column>, rows: Vec<ResultRow>) -> BenchmarkSection {
    BenchmarkSection { name: name.into(), title: name.into(), metric: "accuracy".into(), columns, rows }
}

pub fn report(benchmarks: Vec<BenchmarkSection>) -> Report {
    Report {
        title: "t".into(),
        generated_at: "now".into(),
        zoo_version: "0.1.0".into(),
        benchmarks,
        ..Report::default()
    }
}

/// Two languages and an average, one model published and measured, one judge, one vote.
pub fn small() -> Report {
    let cols = vec![col("en", Some("en"), false), col("zh", Some("zh"), false), col("avg", None, true)];
    let rows = vec![
        row("Apollo-7B", Origin::Published, &[("en", 58.8), ("zh", 70.0), ("avg", 64.4)]),
        row("Apollo-7B", Origin::Measured, &[("en", 60.1), ("zh", 66.0), ("avg", 63.05)]),
    ];
    let mut r = report(vec![bench("xmedbench", cols, rows)]);
    r.judges = vec![JudgeSection {
        name: "llmzoo-order".into(),
        reference: "chatgpt".into(),
        rows: vec![JudgeRow {
            model: "Phoenix".into(),
            ratio: Some(85.2),
            win: 3,
            tie: 1,
            lose: 2,
            ..JudgeRow::default()
        }],
    }];
    r.votes = vec![VoteSection {
        title: "human".into(),
        rows: vec![VoteRow { model_a: "Phoenix".into(), model_b: "ChatGPT".into(), win: 4, tie: 1, lose: 5 }],
    }];
    r
}

/// Every awkward input the renderers must survive, one section each.
pub fn awkward() -> Report {
    let long = "x".repeat(2000);
    let names = [long.as_str(), "华佗GPT-II 中文医疗大模型", "<b>&\"evil'</b>\u{0}\u{1b}[31m\n", "", "  "];
    let cols = vec![col("en", Some("en"), false), col("zh", Some("zh"), false), col("avg", None, true)];
    let mut benchmarks = vec![
        bench("empty", vec![], vec![]),
        bench("no-columns", vec![], vec![row("a", Origin::Measured, &[("en", 1.0)])]),
        bench("no-rows", cols.clone(), vec![]),
        bench("all-nan", cols.clone(), vec![row("a", Origin::Measured, &[("en", f64::NAN), ("avg", f64::INFINITY)])]),
        bench("single", vec![col("en", Some("en"), false)], vec![row("a", Origin::Measured, &[("en", 42.0)])]),
        bench("zeros", cols.clone(), vec![row("a", Origin::Published, &[("en", 0.0), ("zh", 0.0), ("avg", 0.0)])]),
        bench(
            "extremes",
            cols.clone(),
            vec![
                row("huge", Origin::Measured, &[("en", f64::MAX), ("zh", 1e300), ("avg", -f64::MAX)]),
                row("tiny", Origin::Measured, &[("en", f64::MIN_POSITIVE), ("zh", -5.0), ("avg", 1e-300)]),
                row("neg", Origin::Published, &[("en", -1e11), ("zh", f64::NEG_INFINITY), ("avg", -0.0)]),
            ],
        ),
    ];
    let rows = names.iter().flat_map(|n| {
        [Origin::Published, Origin::Measured].map(|o| row(n, o, &[("en", 50.0), ("zh", 60.0), ("avg", 55.0)]))
    });
    let mut names_bench = bench(&names[2].repeat(3), cols.clone(), rows.collect());
    names_bench.metric = names[2].into();
    benchmarks.push(names_bench);
    let many: Vec<ResultRow> =
        (0..150).map(|i| row(&format!("model-{i}"), Origin::Measured, &[("en", i as f64)])).collect();
    benchmarks.push(bench("many", cols.clone(), many));
    // A second section with the same name: ids must still be unique.
    benchmarks.push(bench(
        "single",
        vec![col("en", Some("en"), false)],
        vec![row("b", Origin::Measured, &[("en", 1.0)])],
    ));
    let mut r = report(benchmarks);
    r.judges = vec![
        JudgeSection { name: "none".into(), reference: "chatgpt".into(), rows: vec![] },
        JudgeSection {
            name: "nan".into(),
            reference: String::new(),
            rows: vec![JudgeRow { model: "a".into(), ratio: Some(f64::NAN), ..JudgeRow::default() }],
        },
        JudgeSection {
            name: names[1].into(),
            reference: names[2].into(),
            rows: names
                .iter()
                .map(|n| JudgeRow { model: n.to_string(), ratio: Some(120.0), ..JudgeRow::default() })
                .collect(),
        },
    ];
    r.votes = vec![
        VoteSection { title: "none".into(), rows: vec![] },
        VoteSection {
            title: "zeros".into(),
            rows: vec![VoteRow { model_a: "a".into(), model_b: "b".into(), ..VoteRow::default() }],
        },
        VoteSection {
            title: names[2].into(),
            rows: vec![VoteRow {
                model_a: names[0].into(),
                model_b: names[1].into(),
                win: u32::MAX,
                tie: u32::MAX,
                lose: u32::MAX,
            }],
        },
    ];
    r
}

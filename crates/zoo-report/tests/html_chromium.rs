//! Acceptance test: the HTML page, opened in real headless Chromium, shows every chart.
//!
//! How charts are found: Chromium first loads a probe copy of the page, with a script appended
//! that writes each `figure.chart`'s `<svg>` rectangle (page coordinates) into the DOM, which
//! `--dump-dom` prints. Then Chromium screenshots the page itself (no script) at the same window
//! size and scale 1. Inside each rectangle the test counts pixels of the bar colours the chart
//! must show (each model's colour, solid and light; vote outcome colours) and strongly coloured
//! pixels overall. A negative control, the same page with every SVG body emptied, must be judged
//! blank by the same detector, so the check can fail. Chromium comes from scripts/chromium.sh;
//! when it cannot provide one, this test fails (it never skips).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zoo_report::{
    BenchmarkSection, Column, JudgeRow, JudgeSection, Origin, PALETTE, Report, ResultRow, VOTE_COLORS, VoteRow,
    VoteSection, html, light,
};

const WINDOW: (u32, u32) = (1400, 7000);
const LONG_NAME: &str = "Phoenix-inst-chat-7b-with-an-extremely-long-model-name-for-testing-layout-v2.1-final";
const CHINESE_NAME: &str = "华佗GPT-II-7B";

fn row(model: &str, origin: Origin, vals: &[(&str, f64)]) -> ResultRow {
    let (source, provenance) = match origin {
        Origin::Published => (Some("Apollo paper, table 3".to_string()), None),
        Origin::Measured => {
            (None, Some("mode loglik, prompt mmlu-classic, zoo 0.1.0, model sha256 ab12cd34".to_string()))
        }
    };
    ResultRow {
        model: model.to_string(),
        origin,
        values: vals.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        source,
        provenance,
    }
}

fn col(key: &str, lang: Option<&str>, aggregate: bool) -> Column {
    Column { key: key.into(), label: key.into(), lang: lang.map(Into::into), aggregate }
}

fn report() -> Report {
    let langs = ["en", "zh", "fr", "es", "ar", "hi"];
    let mut x_cols: Vec<Column> = langs.iter().map(|l| col(l, Some(l), false)).collect();
    x_cols.push(col("avg", None, true));
    let models = ["Apollo-7B", CHINESE_NAME, LONG_NAME];
    let mut x_rows = Vec::new();
    for (m, model) in models.iter().enumerate() {
        for origin in [Origin::Published, Origin::Measured] {
            let shift = if origin == Origin::Measured { 1.5 } else { 0.0 };
            let mut vals: Vec<(&str, f64)> =
                langs.iter().enumerate().map(|(i, l)| (*l, 35.0 + 6.0 * i as f64 + 4.0 * m as f64 + shift)).collect();
            vals.push(("avg", 50.0 + 3.0 * m as f64 + shift));
            x_rows.push(row(model, origin, &vals));
        }
    }
    let subjects = ["clinical_knowledge", "anatomy", "college_medicine", "medical_genetics"];
    let mut m_cols: Vec<Column> = subjects.iter().map(|s| col(s, None, false)).collect();
    m_cols.push(col("average", None, true));
    let mut m_rows = Vec::new();
    for (m, model) in models.iter().enumerate() {
        let mut vals: Vec<(&str, f64)> =
            subjects.iter().enumerate().map(|(i, s)| (*s, 40.0 + 5.0 * (i + m) as f64)).collect();
        vals.push(("average", 47.5 + 5.0 * m as f64));
        m_rows.push(row(model, Origin::Measured, &vals));
        if m == 0 {
            m_rows.push(row(model, Origin::Published, &vals));
        }
    }
    let judge = |model: &str, ratio| JudgeRow {
        model: model.into(),
        ratio: Some(ratio),
        win: 40,
        tie: 10,
        lose: 30,
        unparsable: 2,
        avg_rank: Some(1.7),
    };
    Report {
        title: "LLM Zoo evaluation <report> & \"friends\"".into(),
        generated_at: "2024-05-01T12:00:00Z".into(),
        zoo_version: "0.1.0".into(),
        benchmarks: vec![
            BenchmarkSection {
                name: "xmedbench".into(),
                title: "XMedBench".into(),
                metric: "accuracy".into(),
                columns: x_cols,
                rows: x_rows,
            },
            BenchmarkSection {
                name: "mmlu-medical".into(),
                title: "MMLU (medical subsets)".into(),
                metric: "accuracy".into(),
                columns: m_cols,
                rows: m_rows,
            },
        ],
        judges: vec![JudgeSection {
            name: "llmzoo-order (judge: gpt-4o, reference: chatgpt)".into(),
            reference: "chatgpt".into(),
            rows: vec![judge("Phoenix", 85.2), judge(CHINESE_NAME, 92.4), judge(LONG_NAME, 70.0)],
        }],
        votes: vec![VoteSection {
            title: "Human preference".into(),
            rows: vec![
                VoteRow { model_a: "Phoenix".into(), model_b: "ChatGPT".into(), win: 40, tie: 12, lose: 48 },
                VoteRow { model_a: CHINESE_NAME.into(), model_b: "Phoenix".into(), win: 55, tie: 5, lose: 40 },
            ],
        }],
    }
}

/// The Chromium binary, from scripts/chromium.sh (which installs it when root).
fn chromium() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/chromium.sh");
    let out = Command::new("bash").arg(&script).stdin(Stdio::null()).output();
    let hint = "headless Chromium is required for this test: run `bash scripts/chromium.sh` as root \
                (it installs Debian's chromium) or install chromium / google-chrome on PATH";
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("running {}: {e}\n{hint}", script.display()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().last().unwrap_or("").trim();
    assert!(
        out.status.success() && !path.is_empty(),
        "{} failed ({}): {}\n{hint}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(path)
}

/// Runs Chromium headless on `page` with `extra` arguments; returns stdout. Fails the test on a
/// non-zero exit or after two minutes. Output goes to files, not pipes: a DOM dump is larger
/// than a pipe's buffer, and an unread pipe would stall Chromium.
fn run_chromium(bin: &Path, profile: &Path, page: &Path, extra: &[String]) -> String {
    let out_path = page.with_extension("stdout");
    let err_path = page.with_extension("stderr");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--force-device-scale-factor=1",
        "--force-color-profile=srgb",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
    .args(extra)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&out_path).unwrap())
    .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "chromium {extra:?} failed ({status}): {stderr}");
    String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned()
}

const PROBE: &str = "<script>(function(){var out=[];\
document.querySelectorAll('figure.chart').forEach(function(f){var s=f.querySelector('svg')||f;\
var r=s.getBoundingClientRect();out.push([f.id,Math.round(r.left+window.scrollX),\
Math.round(r.top+window.scrollY),Math.round(r.width),Math.round(r.height)].join(' '));});\
var p=document.createElement('pre');p.id='zoo-probe';p.textContent='page '+\
document.documentElement.scrollWidth+' '+document.documentElement.scrollHeight+'\\n'+out.join('\\n');\
document.body.appendChild(p);})();</script>";

#[derive(Debug, Clone)]
struct Rect {
    id: String,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// Loads the probe copy of `page` and reads back the page size and each chart's rectangle.
fn chart_rects(bin: &Path, profile: &Path, dir: &Path, name: &str, page_html: &str) -> ((u32, u32), Vec<Rect>) {
    let probe_path = dir.join(format!("{name}-probe.html"));
    let with_probe = page_html.replacen("</body>", &format!("{PROBE}\n</body>"), 1);
    assert_ne!(with_probe, page_html, "page has no </body>");
    std::fs::write(&probe_path, with_probe).unwrap();
    let dom = run_chromium(bin, profile, &probe_path, &["--dump-dom".to_string()]);
    let start = dom.find("<pre id=\"zoo-probe\">").map(|i| i + "<pre id=\"zoo-probe\">".len());
    let body = start
        .and_then(|s| dom[s..].find("</pre>").map(|e| &dom[s..s + e]))
        .unwrap_or_else(|| panic!("probe output missing from --dump-dom:\n{}", &dom[dom.len().saturating_sub(2000)..]));
    let mut lines = body.lines();
    let page: Vec<u32> = lines.next().unwrap().split(' ').skip(1).map(|v| v.parse().unwrap()).collect();
    let rects = lines
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let n = |i: usize| -> u32 { f[i].parse::<i64>().unwrap().max(0) as u32 };
            Rect { id: f[0].to_string(), x: n(1), y: n(2), w: n(3), h: n(4) }
        })
        .collect();
    ((page[0], page[1]), rects)
}

struct Shot {
    w: u32,
    h: u32,
    rgba: Vec<u8>,
}

fn screenshot(bin: &Path, profile: &Path, dir: &Path, name: &str, page_html: &str) -> Shot {
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, page_html).unwrap();
    let png_path = dir.join(format!("{name}.png"));
    run_chromium(bin, profile, &page, &[format!("--screenshot={}", png_path.display())]);
    let mut dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png_path).unwrap()));
    dec.set_transformations(
        png::Transformations::EXPAND | png::Transformations::STRIP_16 | png::Transformations::ALPHA,
    );
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    // After EXPAND + ALPHA every colour type comes out as (grey or RGB) with alpha.
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::GrayscaleAlpha => buf.chunks(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    Shot { w: info.width, h: info.height, rgba }
}

/// What a chart's rectangle holds: pixels per expected bar colour, and strongly coloured ones.
#[derive(Debug)]
struct Ink {
    per_color: Vec<((u8, u8, u8), usize)>,
    colored: usize,
}

fn measure(shot: &Shot, r: &Rect, expect: &[(u8, u8, u8)]) -> Ink {
    let mut per_color: Vec<((u8, u8, u8), usize)> = expect.iter().map(|c| (*c, 0)).collect();
    let mut colored = 0;
    for y in r.y..(r.y + r.h).min(shot.h) {
        for x in r.x..(r.x + r.w).min(shot.w) {
            let i = ((y * shot.w + x) * 4) as usize;
            let p = &shot.rgba[i..i + 3];
            let (max, min) = (p.iter().max().unwrap(), p.iter().min().unwrap());
            if max - min >= 48 {
                colored += 1;
            }
            for (c, n) in per_color.iter_mut() {
                let close = [c.0, c.1, c.2].iter().zip(p).all(|(a, b)| a.abs_diff(*b) <= 6);
                if close {
                    *n += 1;
                }
            }
        }
    }
    Ink { per_color, colored }
}

/// The colours a chart must show, by its kind (from its id), worked out from the report: in a
/// per-column chart each row's model colour (light when published), in order of first appearance.
fn expected_colors(report: &Report, id: &str) -> Vec<(u8, u8, u8)> {
    if id.starts_with("chart-votes-") {
        return VOTE_COLORS.to_vec();
    }
    if id.starts_with("chart-judge-") {
        return vec![PALETTE[0]];
    }
    let bench = report.benchmarks.iter().find(|b| id.starts_with(&format!("chart-bench-{}-", b.name))).unwrap();
    if id.contains("-overall") {
        return vec![PALETTE[0], light(PALETTE[0])];
    }
    let mut models: Vec<&str> = Vec::new();
    let mut colors = Vec::new();
    for r in &bench.rows {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
        let c = PALETTE[models.iter().position(|m| *m == r.model).unwrap()];
        colors.push(if r.origin == Origin::Published { light(c) } else { c });
    }
    colors
}

/// The detector: a chart is drawn when every expected colour covers at least 150 pixels and
/// strongly coloured pixels cover at least 2000.
fn drawn(ink: &Ink) -> bool {
    ink.colored >= 2000 && ink.per_color.iter().all(|(_, n)| *n >= 150)
}

/// The page with every chart's SVG body removed (the `<svg>` element and its size stay).
fn blank_svgs(page: &str) -> String {
    let mut out = String::new();
    let mut rest = page;
    while let Some(start) = rest.find("<svg") {
        let open_end = rest[start..].find('>').map(|e| start + e + 1).unwrap();
        let close = rest[open_end..].find("</svg>").map(|e| open_end + e).unwrap();
        out.push_str(&rest[..open_end]);
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_chart_is_visible_in_headless_chromium_and_blank_svgs_are_caught() {
    let bin = chromium();
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("profile");
    let report = report();
    let page = html(&report);
    let charts = zoo_report::svg_charts(&report);
    // 2 benchmarks x (by-language/column + overall), 1 judge, 1 vote section.
    assert_eq!(charts.len(), 6, "{:?}", charts.iter().map(|c| &c.id).collect::<Vec<_>>());

    let ((page_w, page_h), rects) = chart_rects(&bin, &profile, tmp.path(), "report", &page);
    assert!(page_w <= WINDOW.0 && page_h <= WINDOW.1, "page {page_w}x{page_h} does not fit the window {WINDOW:?}");
    let ids: Vec<String> = rects.iter().map(|r| r.id.clone()).collect();
    let want: Vec<String> = charts.iter().map(|c| format!("chart-{}", c.id)).collect();
    assert_eq!(ids, want);
    for (r, c) in rects.iter().zip(&charts) {
        assert_eq!((r.w, r.h), (c.width, c.height), "{} is laid out at its fixed size", r.id);
    }

    let shot = screenshot(&bin, &profile, tmp.path(), "report", &page);
    if let Ok(keep) = std::env::var("ZOO_REPORT_KEEP_SCREENSHOT") {
        std::fs::copy(tmp.path().join("report.png"), keep).unwrap();
    }
    assert_eq!((shot.w, shot.h), WINDOW, "screenshot size");
    for r in &rects {
        let ink = measure(&shot, r, &expected_colors(&report, &r.id));
        assert!(drawn(&ink), "{} looks blank or lacks bar colours: {ink:?}", r.id);
    }

    // Negative control: same figures, empty SVGs; the detector must call every one blank.
    let blank = blank_svgs(&page);
    assert!(blank.len() < page.len() / 2, "the SVG bodies were removed");
    let (_, blank_rects) = chart_rects(&bin, &profile, tmp.path(), "blank", &blank);
    assert_eq!(blank_rects.len(), rects.len());
    let shot = screenshot(&bin, &profile, tmp.path(), "blank", &blank);
    for r in &blank_rects {
        let ink = measure(&shot, r, &expected_colors(&report, &r.id));
        assert!(!drawn(&ink), "{} has an empty SVG but was judged drawn: {ink:?}", r.id);
        assert_eq!(ink.colored, 0, "{}: {ink:?}", r.id);
    }
}

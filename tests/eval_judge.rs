//! `zoo eval judge` against a scripted OpenAI-compatible judge (`zoo_testhub::openai`) that
//! returns fixed verdicts: the prompts it receives, the parsing, LLM Zoo's ratio and MT-bench's
//! tallies equal values worked out by hand below; a judge that times out or answers garbage is
//! retried a bounded number of times, then the question is reported as failed and the run goes
//! on; a rerun asks only what is missing; results land in the registry beside the published ones.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{ok_json, smollm2_gguf, zoo};
use serde_json::{Value, json};
use zoo_testhub::openai::{Reply, ScriptedOpenAi, chat_reply, last_user_message};

fn run(home: &Path, args: &[&str]) -> Output {
    common::run_zoo(home, args)
}

const QUESTIONS: &[(&str, &str, &str)] = &[
    ("1", "generic", "How do I keep a sourdough starter alive?"),
    ("2", "knowledge", "What does the liver do?"),
    ("3", "writing", "Write a haiku about rain."),
    ("4", "math", "What is 17 * 23?"),
    ("5", "roleplay", "Pretend you are a ship's cook."),
    ("6", "fermi", "How many piano tuners work in Chengdu?"),
];

/// The questions (zoo's native form, English) and three answer files: LLM Zoo's answer format
/// for the reference, zoo's {id, answer} for the others.
fn write_inputs(dir: &Path) {
    let mut q = String::new();
    for (id, cat, text) in QUESTIONS {
        q.push_str(&json!({"id": id, "question": text, "category": cat, "lang": "en"}).to_string());
        q.push('\n');
    }
    std::fs::write(dir.join("questions.jsonl"), q).unwrap();
    let mut reference = String::new();
    for (id, _, _) in QUESTIONS {
        let line = json!({"question_id": id.parse::<u32>().unwrap(), "text": format!("chatgpt answers {id}"),
            "model_id": "gpt-3.5-turbo", "answer_id": "x"});
        reference.push_str(&format!("{line}\n"));
    }
    std::fs::write(dir.join("answer_chatgpt.jsonl"), reference).unwrap();
    for m in ["phoenix", "m3"] {
        let mut s = String::new();
        for (id, _, _) in QUESTIONS {
            s.push_str(&format!("{}\n", json!({"id": id, "answer": format!("{m} answers {id}")})));
        }
        std::fs::write(dir.join(format!("{m}.jsonl")), s).unwrap();
    }
}

/// Which question a judge prompt is about (its text follows `[Question]` or `[User Question]`).
fn question_of(prompt: &str) -> &'static str {
    QUESTIONS.iter().find(|(_, _, text)| prompt.contains(text)).map(|(id, _, _)| *id).unwrap_or("?")
}

#[test]
fn llmzoo_ordering_ratio_and_tallies_equal_hand_computed_values() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    write_inputs(dir);
    // Question 6's judge is broken in the first run (each call hangs past the timeout), and in
    // the second answers garbage once before its verdict.
    let broken = Arc::new(AtomicBool::new(true));
    let q6_calls = Arc::new(AtomicUsize::new(0));
    let (b, calls) = (broken.clone(), q6_calls.clone());
    let judge = ScriptedOpenAi::start(move |path, body| {
        assert_eq!(path, "chat/completions");
        let user = last_user_message(body);
        // The order shown is the reference first, then the others as given.
        assert!(user.contains("[Assistant 1]\nchatgpt answers"), "{user}");
        assert!(user.contains("[Assistant 2]\nphoenix answers") && user.contains("[Assistant 3]\nm3 answers"));
        let verdict = match question_of(&user) {
            "1" => "Assistant 2 is the most helpful.\nAssistant 2 > Assistant 1 > Assistant 3",
            "2" => "Assistant 1 = Assistant 2 > Assistant 3",
            "3" => "Ranking: Assistant 3 >> Assistant 2 >= Assistant 1",
            "5" => "I cannot decide between these answers.",
            "6" if b.load(Ordering::SeqCst) => {
                return Reply::Delay(Duration::from_secs(4), Box::new(Reply::Json(chat_reply("too late"))));
            }
            "6" if calls.fetch_add(1, Ordering::SeqCst) == 0 => return Reply::Raw("<html>502</html>".into()),
            "6" => "Assistant 2 > Assistant 3 > Assistant 1",
            q => panic!("question {q} must not be judged: {user}"),
        };
        Reply::Json(chat_reply(verdict))
    });
    let q = dir.join("questions.jsonl");
    let models = format!(
        "chatgpt={},phoenix-inst-chat-7b={},m3={}",
        dir.join("answer_chatgpt.jsonl").display(),
        dir.join("phoenix.jsonl").display(),
        dir.join("m3.jsonl").display()
    );
    let args = [
        "eval",
        "judge",
        "--questions",
        q.to_str().unwrap(),
        "--models",
        &models,
        "--judge",
        &judge.url(),
        "--judge-model",
        "judge-1",
        "--judge-timeout",
        "1",
        "--judge-retries",
        "1",
        "--json",
    ];

    // Run 1: question 6 fails after 1 + 1 tries; the others are judged and stored; exit 1.
    let o = run(dir, &args);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["failed"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["failed"][0]["question_id"], "6");
    assert_eq!((r["judged"].as_u64(), r["recorded"].as_array().map(Vec::len)), (Some(4), Some(0)));
    let asked_once = judge.requests().len();
    assert_eq!(asked_once, 4 + 2, "4 questions once, question 6 twice (1 retry); math skipped");
    // The judge got LLM Zoo's system prompt, temperature 0, and the ordering instruction.
    let (_, first) = &judge.requests()[0];
    assert_eq!(first["model"], "judge-1");
    assert_eq!(first["temperature"], 0.0);
    assert_eq!(
        first["messages"][0]["content"],
        "You are a helpful and precise assistant for checking the quality of the answer."
    );
    assert!(last_user_message(first).contains("\n\n[System]\n"));

    // Run 2: only question 6 is asked (a garbled answer, retried, then its verdict).
    broken.store(false, Ordering::SeqCst);
    let r = ok_json(&run(dir, &args));
    assert_eq!((r["resumed"].as_u64(), r["judged"].as_u64()), (Some(4), Some(1)));
    assert_eq!(judge.requests().len(), asked_once + 2);

    // By hand, ranks (chatgpt, phoenix, m3) and scores 10/rank:
    //   q1 2,1,3 -> 5, 10, 3.33   q2 1,1,3 -> 10, 10, 3.33   q3 3,2,1 -> 3.33, 5, 10
    //   q6 3,1,2 -> 3.33, 10, 5   q4 math: skipped; q5 unparsable: not scored
    //   sums: chatgpt 21.667, phoenix 35, m3 21.667 -> ratio phoenix 1.6154, m3 1.0
    //   against chatgpt: phoenix wins q1 q3 q6, ties q2 (3/1/0); m3 wins q3 q6, loses q1 q2 (2/0/2)
    //   average rank: chatgpt 9/4, phoenix 5/4, m3 9/4
    let o = &r["order"];
    assert_eq!((o["skipped"].as_u64(), o["unparsable"].as_u64()), (Some(1), Some(1)), "{o}");
    let row = |m: &str| o["rows"].as_array().unwrap().iter().find(|x| x["model"] == m).unwrap().clone();
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    let (c, p, m3) = (row("chatgpt"), row("phoenix-inst-chat-7b"), row("m3"));
    assert!(close(&c["score_sum"], 5.0 + 10.0 + 10.0 / 3.0 + 10.0 / 3.0), "{c}");
    assert!(close(&p["ratio"], 35.0 / (5.0 + 10.0 + 20.0 / 3.0)), "{p}");
    assert!(close(&m3["ratio"], 1.0), "{m3}");
    assert_eq!((p["win"].as_u64(), p["tie"].as_u64(), p["lose"].as_u64()), (Some(3), Some(1), Some(0)));
    assert_eq!((m3["win"].as_u64(), m3["tie"].as_u64(), m3["lose"].as_u64()), (Some(2), Some(0), Some(2)));
    assert!(close(&c["avg_rank"], 2.25) && close(&p["avg_rank"], 1.25) && close(&m3["avg_rank"], 2.25));

    // Recorded for the registry model (m3 is not one), beside the published ratios.
    assert_eq!(r["recorded"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["recorded"][0]["benchmark"], "llmzoo-ratio-en");
    insta::assert_json_snapshot!("eval_judge_order", common::stable(&r, &[dir]));
    let res = ok_json(&run(dir, &["results", "phoenix-inst-chat-7b", "--benchmark", "llmzoo-ratio-en", "--json"]));
    let text = res.to_string();
    assert!(text.contains("161.53") && text.contains("chatgpt") && text.contains("judge:judge-1"), "{text}");

    // A third run asks nothing.
    let before = judge.requests().len();
    let r = ok_json(&run(dir, &args));
    assert_eq!((r["judged"].as_u64(), judge.requests().len()), (Some(0), before));
}

#[test]
fn mt_bench_pairwise_both_orders_and_tally() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    write_inputs(dir);
    let judge = ScriptedOpenAi::start(|_, body| {
        let user = last_user_message(body);
        let a_is_phoenix = user.contains("[The Start of Assistant A's Answer]\nphoenix");
        assert!(body["messages"][0]["content"].as_str().unwrap().contains("\"[[C]]\" for a tie."));
        // The verdict for "phoenix better", "chatgpt better", "A always", "tie", "garbage".
        let better = |phoenix: bool| if phoenix == a_is_phoenix { "[[A]]" } else { "[[B]]" };
        let v = match question_of(&user) {
            "1" | "6" => better(true),
            "2" => "[[A]]",
            "3" => better(false),
            "4" => "Both are right. [[C]]",
            "5" if a_is_phoenix => "no verdict",
            "5" => "[[A]]",
            q => panic!("unknown question {q}"),
        };
        Reply::Json(chat_reply(&format!("Explanation.\n{v}")))
    });
    let q = dir.join("questions.jsonl");
    let models = format!(
        "chatgpt={},phoenix-inst-chat-7b={}",
        dir.join("answer_chatgpt.jsonl").display(),
        dir.join("phoenix.jsonl").display()
    );
    let r = ok_json(&run(
        dir,
        &[
            "eval",
            "judge",
            "--questions",
            q.to_str().unwrap(),
            "--models",
            &models,
            "--method",
            "mt-bench-pair",
            "--judge",
            &judge.url(),
            "--json",
        ],
    ));
    // Two calls per question (math is not skipped here), the model named by the server.
    assert_eq!(judge.requests().len(), 12);
    assert_eq!(r["judge_model"], "scripted");
    // By hand: q1 q6 win; q2 A-always (disagreement) tie; q4 tie; q3 lose; q5 unparsable.
    // win rate (2 + 2/2) / 5 = 0.6.
    let t = &r["pairs"][0];
    assert_eq!((t["model_1"].as_str(), t["model_2"].as_str()), (Some("phoenix-inst-chat-7b"), Some("chatgpt")));
    assert_eq!(
        (t["win"].as_u64(), t["tie"].as_u64(), t["lose"].as_u64(), t["unparsable"].as_u64()),
        (Some(2), Some(2), Some(1), Some(1)),
        "{t}"
    );
    assert!((t["win_rate_adjusted"].as_f64().unwrap() - 0.6).abs() < 1e-12);
    assert_eq!(r["recorded"][0]["benchmark"], "mt-bench-pair");
    insta::assert_json_snapshot!("eval_judge_pair", common::stable(&r, &[dir]));
}

/// A local model as a contestant: its answers generated greedily, stored, not generated again.
#[test]
fn local_model_answers_are_generated_once() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    write_inputs(dir);
    let judge = ScriptedOpenAi::start(|_, _| Reply::Json(chat_reply("Assistant 2 > Assistant 1")));
    let gguf = smollm2_gguf();
    let models = format!("chatgpt={},{}", dir.join("answer_chatgpt.jsonl").display(), gguf.display());
    let q = dir.join("questions.jsonl");
    let args = [
        "eval",
        "judge",
        "--questions",
        q.to_str().unwrap(),
        "--models",
        &models,
        "--limit",
        "2",
        "--max-tokens",
        "12",
        "--judge",
        &judge.url(),
        "--json",
    ];
    let r = ok_json(&run(dir, &args));
    let c = &r["contestants"][1];
    assert_eq!(
        (c["source"].as_str(), c["generated"].as_u64(), c["answers"].as_u64()),
        (Some("generated"), Some(2), Some(2))
    );
    // The judge saw the model's own answers (non-empty text after "[Assistant 2]").
    for (_, body) in judge.requests() {
        let user = last_user_message(&body);
        let after = user.split("[Assistant 2]\n").nth(1).unwrap();
        assert!(!after.starts_with("\n\n[End of Assistant 2]"), "empty answer: {user}");
    }
    let again = ok_json(&run(dir, &args));
    assert_eq!(again["contestants"][1]["generated"].as_u64(), Some(0));
    assert_eq!(again["judged"].as_u64(), Some(0));
}

/// `zoo eval vote` with keys on stdin (one line each): a vote stored per key, sides hidden and
/// drawn per question, a second session showing only what is left, tallies as LLM Zoo's table.
#[test]
fn votes_are_stored_as_cast_and_tallied() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    write_inputs(dir);
    let q = dir.join("questions.jsonl");
    let models = format!(
        "phoenix-inst-chat-7b={},chatgpt={}",
        dir.join("phoenix.jsonl").display(),
        dir.join("answer_chatgpt.jsonl").display()
    );
    let vote = |keys: &str| -> String {
        use std::io::Write;
        let mut c = zoo(dir);
        c.args(["eval", "vote", "--questions", q.to_str().unwrap(), "--models", &models, "--voter", "tester"]);
        let mut child = c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(keys.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    // Left better, right better, tie, skip, left better, then the input ends (quit).
    let out = vote("1\n2\nt\ns\n1\n");
    // Which model was shown on the left of each question, read off the screen.
    let left_is_phoenix: Vec<bool> =
        out.split("── Answer 1 (left) ──\n").skip(1).map(|block| block.starts_with("phoenix answers")).collect();
    assert_eq!(left_is_phoenix.len(), 6, "{out}");
    assert!(left_is_phoenix.iter().any(|&x| x) && left_is_phoenix.iter().any(|&x| !x), "sides are drawn: {out}");
    let ballots = out.split(" votes stored.").next().unwrap();
    // (The answers themselves say "chatgpt answers 1"; the registry name is never shown.)
    assert!(!ballots.contains("phoenix-inst-chat-7b"), "names are hidden while voting: {ballots}");
    // By hand: q1 "left", q2 "right", q3 tie, q5 "left" -> phoenix wins where it was there.
    let win = [left_is_phoenix[0], !left_is_phoenix[1], left_is_phoenix[4]].iter().filter(|&&w| w).count() as u64;
    let lose = 3 - win;
    let t = ok_json(&run(dir, &["eval", "vote", "--tally", "--json"]));
    assert_eq!(t.as_array().unwrap().len(), 1, "{t}");
    let row = &t[0];
    // Pairs are tallied in name order: chatgpt against phoenix.
    assert_eq!((row["model_a"].as_str(), row["model_b"].as_str()), (Some("chatgpt"), Some("phoenix-inst-chat-7b")));
    assert_eq!(
        (row["win"].as_u64(), row["tie"].as_u64(), row["lose"].as_u64()),
        (Some(lose), Some(1), Some(win)),
        "{t}"
    );
    // The second session shows only questions 4 and 6.
    let out = vote("t\nt\n");
    assert!(out.starts_with("6 questions, 4 voted already"), "{out}");
    assert_eq!(out.matches("── Answer 1 (left) ──").count(), 2);
    let t = ok_json(&run(dir, &["eval", "vote", "--tally", "--json"]));
    assert_eq!((t[0]["tie"].as_u64(), t[0]["total"].as_u64()), (Some(3), Some(6)));
    // Which side a model sat on is drawn: win and lose are checked above.
    insta::assert_json_snapshot!("eval_vote_tally", t, { "[].win" => "[drawn]", "[].lose" => "[drawn]" });
}

/// `zoo eval report`: a measured judge ratio and votes beside the catalog's published numbers,
/// as JSON, Markdown, an HTML page whose charts render in headless Chromium, and PNG plots.
#[test]
fn report_shows_measured_beside_published_with_charts() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    write_inputs(dir);
    let judge = ScriptedOpenAi::start(|_, _| Reply::Json(chat_reply("Assistant 2 > Assistant 1")));
    let q = dir.join("questions.jsonl");
    let models = format!(
        "chatgpt={},phoenix-inst-chat-7b={}",
        dir.join("answer_chatgpt.jsonl").display(),
        dir.join("phoenix.jsonl").display()
    );
    ok_json(&run(
        dir,
        &["eval", "judge", "--questions", q.to_str().unwrap(), "--models", &models, "--judge", &judge.url(), "--json"],
    ));
    let r = ok_json(&run(dir, &["eval", "report", "--benchmark", "llmzoo-ratio-en", "--json"]));
    let rows = &r["judges"][0]["rows"];
    let text = rows.to_string();
    assert!(text.contains("phoenix-inst-chat-7b (measured)") && text.contains("(published)"), "{r}");
    // 10/1 against 10/2 on the 5 questions that count (math skipped): ratio 200%.
    let measured = rows.as_array().unwrap().iter().find(|x| x["model"] == "phoenix-inst-chat-7b (measured)").unwrap();
    assert!((measured["ratio"].as_f64().unwrap() - 200.0).abs() < 1e-9, "{measured}");
    insta::assert_json_snapshot!("eval_report", common::stable(&r, &[dir]));
    let md = run(dir, &["eval", "report", "--benchmark", "llmzoo-ratio-en", "--format", "markdown"]);
    assert!(String::from_utf8_lossy(&md.stdout).contains("| phoenix-inst-chat-7b (measured) |"));

    // The whole report: HTML and PNG plots.
    let (html, plots) = (dir.join("report.html"), dir.join("plots"));
    let o = run(
        dir,
        &[
            "eval",
            "report",
            "--html",
            html.to_str().unwrap(),
            "--plots",
            plots.to_str().unwrap(),
            "--plot-format",
            "png",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    let figures = page.matches("<figure class=\"chart\"").count();
    assert!(figures >= 3, "{figures} charts");
    let pngs: Vec<_> = std::fs::read_dir(&plots).unwrap().flatten().collect();
    assert_eq!(pngs.len(), figures, "one PNG per chart");
    for p in &pngs {
        let bytes = std::fs::read(p.path()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 2000, "{}", p.path().display());
    }
    // Headless Chromium renders the page: the screenshot is not blank where the charts are
    // (the chart-locating check of every chart is crates/zoo-report/tests/html_chromium.rs).
    let browser = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/chromium.sh"))
        .output()
        .expect("scripts/chromium.sh");
    assert!(
        browser.status.success(),
        "scripts/chromium.sh found no Chromium: {}",
        String::from_utf8_lossy(&browser.stderr)
    );
    let shot = dir.join("shot.png");
    let status = Command::new(String::from_utf8(browser.stdout).unwrap().trim())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,2400"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success() && shot.is_file());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.line_size / info.width as usize;
    // Strongly coloured pixels (bars), not greys (text, axes, background).
    let coloured = buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| {
            let (mx, mn) = (p[0].max(p[1]).max(p[2]), p[0].min(p[1]).min(p[2]));
            mx - mn > 60
        })
        .count();
    assert!(coloured > 5000, "only {coloured} coloured pixels in the screenshot");
}

//! `zoo tui` end to end in a real terminal (tmux): the zoo listed, `/` filters to a model, its
//! detail opens, verify runs on it and its result shows, a chat with the real small model
//! streams an answer, `q` quits with exit status 0 and leaves a sane terminal.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{smollm2_gguf, zoo};

/// A tmux server of its own (its own socket, no user config), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    fn start(socket: &str, width: u16, height: u16, shell_command: &str) -> Tmux {
        let t = Tmux { socket: socket.to_string() };
        let out = t
            .cmd()
            .args(["new-session", "-d", "-s", "zoo", "-x", &width.to_string(), "-y", &height.to_string()])
            .arg(shell_command)
            .output()
            .expect("tmux is needed for this test (the CI script installs it: apt-get install tmux)");
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        t
    }

    fn keys(&self, keys: &[&str]) {
        let out = self.cmd().args(["send-keys", "-t", "zoo"]).args(keys).output().unwrap();
        assert!(out.status.success(), "send-keys {keys:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        let out = self.cmd().args(["send-keys", "-t", "zoo", "-l", text]).output().unwrap();
        assert!(out.status.success());
    }

    fn screen(&self) -> String {
        let out = self.cmd().args(["capture-pane", "-p", "-t", "zoo"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `pred` holds for it; fails with the last screen after `secs`.
    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < end, "waited {secs}s for {what}; the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn wait_file(p: &Path, secs: u64) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if let Ok(s) = std::fs::read_to_string(p)
            && s.ends_with('\n')
        {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} was not written in {secs}s", p.display());
}

#[test]
fn tui_lists_filters_verifies_chats_and_quits() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    // The real small model, registered under a name of its own.
    let out = zoo(home).args(["add"]).arg(smollm2_gguf()).args(["--name", "smol-tui"]).output().unwrap();
    assert!(out.status.success(), "zoo add: {}", String::from_utf8_lossy(&out.stderr));

    let exit: PathBuf = home.join("exit-status");
    let stty: PathBuf = home.join("stty-after");
    let command = format!(
        "env -i HOME={home} PATH=/usr/bin:/bin ZOO_DB={db} NO_COLOR=1 HF_HUB_OFFLINE=1 TERM=xterm-256color \
         {zoo} tui --threads 2 --max-tokens 48; echo $? > {exit}; stty -a > {stty}; sleep 600",
        home = sh_quote(home),
        db = sh_quote(&home.join("registry.db")),
        zoo = sh_quote(Path::new(env!("CARGO_BIN_EXE_zoo"))),
        exit = sh_quote(&exit),
        stty = sh_quote(&stty),
    );
    let t = Tmux::start(&format!("zoo-tui-test-{}", std::process::id()), 100, 30, &command);

    // The zoo listed: the catalog and the model added.
    let s = t.wait_for("the models table", 60, |s| {
        s.contains(" models · sort name") && s.contains("FAMILY") && s.contains("apollo")
    });
    let total: usize =
        s.lines().find_map(|l| l.split(" of ").nth(1)?.split(' ').next()?.parse().ok()).expect("N of M models");
    assert!(total > 50, "{s}");

    // `/` filters as you type.
    t.keys(&["/"]);
    t.type_text("smol-tui");
    // (A capture can fall between the writes of one frame: wait for the whole of it.)
    let s = t.wait_for("the filter", 10, |s| s.contains(&format!("1 of {total} models")) && !s.contains("apollo"));
    assert!(s.lines().any(|l| l.starts_with("smol-tui") && l.contains("yes")), "{s}");

    // Its detail.
    t.keys(&["Enter", "Enter"]);
    t.wait_for("the detail pane", 10, |s| {
        s.contains("┌ smol-tui") && s.contains("registered copy") && s.contains("family") && s.contains("local")
    });

    // Verify runs in the background and its result shows.
    t.keys(&["v"]);
    t.wait_for("verify to finish", 60, |s| s.contains("done: verify smol-tui"));
    t.keys(&["6"]);
    t.wait_for("the verify report on Jobs", 10, |s| {
        s.contains("1 ok, 0 with problems") && s.contains("SmolLM2-135M-Instruct.Q4_1.gguf")
    });

    // Chat with the real model: the answer streams in.
    // (Esc is sent on its own: Esc and a key at once read as Alt+key.)
    t.keys(&["1"]);
    t.wait_for("the detail again", 10, |s| s.contains("┌ smol-tui"));
    t.keys(&["Escape"]);
    t.wait_for("the table again", 10, |s| s.lines().any(|l| l.starts_with("NAME")));
    t.keys(&["c"]);
    t.wait_for("the model to load", 120, |s| s.contains("smol-tui loaded"));
    t.type_text("Tell me a long story about a cat.");
    t.keys(&["Enter"]);
    let mut partial: Vec<String> = Vec::new();
    let end = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let s = t.screen();
        if s.contains("tok/s") {
            break s;
        }
        // The reply so far: the lines under the last "model" heading.
        let lines: Vec<&str> = s.lines().collect();
        if let Some(i) = lines.iter().rposition(|l| l.trim_end() == "model") {
            let text: String = lines[i + 1..].iter().copied().take_while(|l| l.starts_with("  ")).collect();
            let text = text.trim().to_string();
            if !text.is_empty() && text != "…" && partial.last() != Some(&text) {
                partial.push(text);
            }
        }
        assert!(Instant::now() < end, "no complete answer in 120s:\n{s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(partial.len() >= 2, "the answer did not stream (seen {partial:?}):\n{done}");
    assert!(done.contains("you") && done.contains("Tell me a long story"), "{done}");

    // An MCQ evaluation of the selected model from the Evaluate form: its result lands in the
    // leaderboard as a measured row.
    t.keys(&["Escape"]);
    t.wait_for("the Models screen", 10, |s| s.lines().any(|l| l.starts_with("NAME")));
    t.keys(&["e"]);
    t.wait_for("the Evaluate form", 10, |s| s.contains("Multiple-choice evaluation"));
    let questions = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/mmlu-medical-6.jsonl");
    let fill = |value: &str| {
        t.keys(&["Enter"]);
        t.type_text(value);
        t.keys(&["Enter"]);
    };
    fill(&questions.display().to_string()); // questions
    t.keys(&["Down"]);
    fill("mmlu-medical-6"); // subsets
    t.keys(&["Down", "Down"]); // mode stays loglik
    fill("6"); // limit
    t.keys(&["Down"]);
    fill("mmlu-medical-6"); // benchmark
    t.keys(&["Down", "Enter"]); // Start
    let s = t.wait_for("the evaluation", 180, |s| {
        (s.contains("recorded under mmlu-medical-6") && s.contains("smol-tui on")) || s.contains("failed:")
    });
    assert!(!s.contains("failed:"), "{s}");
    t.keys(&["3"]);
    let mut s = t.wait_for("the Results screen", 10, |s| s.contains("◀ 1/"));
    for _ in 0..30 {
        if s.lines().any(|l| l.starts_with("smol-tui") && l.contains("measured")) {
            break;
        }
        t.keys(&["Down"]);
        std::thread::sleep(Duration::from_millis(100));
        s = t.screen();
    }
    assert!(s.lines().any(|l| l.starts_with("smol-tui") && l.contains("measured")), "{s}");

    // `q` quits (no job runs) with status 0 and the terminal as it was.
    t.keys(&["q"]);
    assert_eq!(wait_file(&exit, 20).trim(), "0");
    let modes = wait_file(&stty, 10);
    for m in ["icanon", "echo", "icrnl", "opost"] {
        assert!(modes.split_whitespace().any(|w| w == m), "stty -a after zoo tui lacks {m}: {modes}");
    }
    let s = t.screen();
    assert!(!s.contains("1 Models  2 Chat"), "the alternate screen was left:\n{s}");
}

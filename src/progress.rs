//! Drawing `zoo-progress` events on stderr: a redrawn bar on a terminal (bytes done / total,
//! rate, ETA), JSON lines with `--progress json`, and only notes when stderr is not a terminal.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zoo_ops::view::human_bytes;
use zoo_progress::{Event, Progress, Unit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, otherwise notes only
    Auto,
    /// One JSON object per event on stderr
    Json,
    /// Notes only
    Off,
}

struct Task {
    name: String,
    total: Option<u64>,
    unit: Unit,
    done: u64,
    started: Instant,
    /// Running figures (`accuracy 0.613`), shown after the bar.
    metrics: Vec<(String, f64)>,
}

/// Tasks nest (a download of many files, each file its own task): the bar shows the innermost
/// task, followed by the outermost one's percentage when they differ.
pub struct StderrProgress {
    mode: ProgressMode,
    tty: bool,
    state: Mutex<(Vec<Task>, Instant)>,
}

impl StderrProgress {
    pub fn new(mode: ProgressMode) -> Self {
        let tty = std::io::stderr().is_terminal();
        StderrProgress { mode, tty, state: Mutex::new((Vec::new(), Instant::now() - Duration::from_secs(1))) }
    }

    fn draw(&self, t: &Task, outer: Option<&Task>, last: bool) {
        let elapsed = t.started.elapsed().as_secs_f64().max(1e-6);
        let rate = t.done as f64 / elapsed;
        let amount = |v: u64| match t.unit {
            Unit::Bytes => human_bytes(v),
            Unit::Items => v.to_string(),
        };
        let mut line = format!("{:<10}", t.name);
        if let Some(total) = t.total.filter(|t| *t > 0) {
            let frac = (t.done as f64 / total as f64).clamp(0.0, 1.0);
            let filled = (frac * 24.0).round() as usize;
            let eta = if rate > 0.0 { (total.saturating_sub(t.done)) as f64 / rate } else { 0.0 };
            line.push_str(&format!(
                " [{}{}] {:>3.0}%  {} / {}",
                "#".repeat(filled),
                "-".repeat(24 - filled),
                frac * 100.0,
                amount(t.done),
                amount(total)
            ));
            line.push_str(&match t.unit {
                Unit::Bytes => format!("  {}/s", human_bytes(rate as u64)),
                Unit::Items => format!("  {rate:.1}/s"),
            });
            if !last {
                line.push_str(&format!("  ETA {}", human_secs(eta)));
            } else {
                line.push_str(&format!("  in {}", human_secs(elapsed)));
            }
        } else {
            line.push_str(&format!("  {}", amount(t.done)));
        }
        for (name, value) in &t.metrics {
            line.push_str(&format!("  {name} {value:.3}"));
        }
        if let Some(o) = outer.filter(|o| o.total.is_some_and(|t| t > 0)) {
            let frac = (o.done as f64 / o.total.unwrap_or(1) as f64).clamp(0.0, 1.0);
            line.push_str(&format!("  | {} {:.0}%", o.name, frac * 100.0));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        if last {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

impl Progress for StderrProgress {
    fn event(&self, event: Event) {
        if self.mode == ProgressMode::Json {
            let v = serde_json::to_string(&event).unwrap_or_default();
            eprintln!("{v}");
            return;
        }
        let Ok(mut st) = self.state.lock() else { return };
        let bar = self.mode == ProgressMode::Auto && self.tty;
        match event {
            Event::Note { message } => {
                if bar && !st.0.is_empty() {
                    eprint!("\r\x1b[2K");
                }
                eprintln!("note: {message}");
            }
            Event::Start { task, total, unit } => {
                st.0.retain(|t| t.name != task);
                st.0.push(Task { name: task, total, unit, done: 0, started: Instant::now(), metrics: Vec::new() });
            }
            Event::Advance { task, delta } => {
                let now = Instant::now();
                let redraw = now.duration_since(st.1) >= Duration::from_millis(100);
                let i = st.0.iter().rposition(|t| t.name == task).or(st.0.len().checked_sub(1));
                if let Some(i) = i {
                    st.0[i].done += delta;
                    // The innermost task is drawn; an advance of the outer one alone is not.
                    if bar && redraw && i + 1 == st.0.len() {
                        let outer = if st.0.len() > 1 { st.0.first() } else { None };
                        self.draw(&st.0[i], outer, false);
                        st.1 = now;
                    }
                }
            }
            Event::Metric { task, name, value } => {
                if let Some(t) = st.0.iter_mut().rev().find(|t| t.name == task) {
                    match t.metrics.iter_mut().find(|m| m.0 == name) {
                        Some(m) => m.1 = value,
                        None => t.metrics.push((name, value)),
                    }
                }
            }
            Event::Finish { task } => {
                let i = st.0.iter().rposition(|t| t.name == task).or(st.0.len().checked_sub(1));
                if let Some(i) = i {
                    let t = st.0.remove(i);
                    // Nested tasks end with their line cleared; the outermost keeps its summary.
                    if bar && st.0.is_empty() {
                        self.draw(&t, None, true);
                    } else if bar {
                        eprint!("\r\x1b[2K");
                    }
                }
            }
        }
    }
}

fn human_secs(s: f64) -> String {
    if s < 60.0 { format!("{s:.0}s") } else { format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64) }
}

//! `draw`: the whole screen from the state, nothing else. It returns where it put clickable
//! things ([`HitMap`]) so the mouse mapping can find them; it changes nothing.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
use zoo_ops::view::{self, Doc, Tone as ViewTone};
use zoo_report::wrap;

use crate::app::{App, Confirm, HitMap, JobState, JobView, Role, Tab, TaskView, Tone};
use crate::keys::BINDINGS;

/// Styles by meaning; without colour only bold, dim and reverse are used (`NO_COLOR`).
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color { Style::new().fg(c) } else { Style::new() }
    }
    pub fn strong(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn faint(self) -> Style {
        if self.color { Style::new().fg(Color::DarkGray) } else { Style::new().add_modifier(Modifier::DIM) }
    }
    pub fn good(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn accent(self) -> Style {
        self.fg(Color::Cyan)
    }
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    fn view(self, t: ViewTone) -> Style {
        match t {
            ViewTone::Plain => Style::new(),
            ViewTone::Strong => self.strong(),
            ViewTone::Faint => self.faint(),
            ViewTone::Good => self.good(),
            ViewTone::Bad => self.bad(),
        }
    }
}

/// Draws everything; returns the mouse targets of this frame.
pub fn draw(app: &App, f: &mut Frame) -> HitMap {
    let th = Theme { color: app.color };
    let area = f.area();
    let [top, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(area);
    let mut hit = HitMap { tab_row: top.y, ..Default::default() };
    tab_bar(app, f, top, th, &mut hit);
    match app.tab {
        Tab::Models if app.detail_open => detail(app, f, body, th),
        Tab::Models => models(app, f, body, th, &mut hit),
        Tab::Chat => chat(app, f, body, th),
        Tab::Results => results(app, f, body, th),
        Tab::Evaluate => evaluate(app, f, body, th),
        Tab::Vote => vote(app, f, body, th),
        Tab::Jobs => jobs(app, f, body, th),
    }
    status_line(app, f, status, th);
    if let Some(c) = &app.confirm {
        confirm(c, f, area, th);
    }
    if let Some(p) = &app.prompt {
        let lines = vec![Line::from(p.question.clone()), input_line(&p.answer, true, th)];
        let title = match p.then {
            crate::app::PromptThen::Quantize => "quantize",
            crate::app::PromptThen::ApplyDelta => "apply delta",
        };
        popup(f, area, title, lines, 70, th);
    }
    if app.help {
        help(app.tab, f, area, th);
    }
    hit
}

fn tab_bar(app: &App, f: &mut Frame, area: Rect, th: Theme, hit: &mut HitMap) {
    let mut spans = vec![Span::styled(" zoo ", th.strong())];
    let mut x = area.x + 5;
    for (i, t) in Tab::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, t.title());
        let w = label.width() as u16;
        hit.tabs.push((x, x + w, *t));
        x += w;
        spans.push(Span::styled(
            label,
            if *t == app.tab { th.selected().add_modifier(Modifier::BOLD) } else { th.faint() },
        ));
    }
    let running = app.running_jobs();
    if running > 0 {
        spans.push(Span::styled(format!("  ⟳ {running} running"), th.accent()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn status_line(app: &App, f: &mut Frame, area: Rect, th: Theme) {
    let line = match &app.message {
        Some((tone, m)) => {
            let style = match tone {
                Tone::Info => Style::new(),
                Tone::Good => th.good(),
                Tone::Bad => th.bad(),
            };
            Line::from(vec![Span::styled(m.clone(), style), Span::styled("   ? help", th.faint())])
        }
        None => Line::from(Span::styled(hints(app), th.faint())),
    };
    f.render_widget(Paragraph::new(line), area);
}

fn hints(app: &App) -> &'static str {
    match app.tab {
        Tab::Models if app.filtering => "type to filter · Enter keep · Esc leave",
        Tab::Models if app.detail_open => "↑↓ scroll · Esc back · p pull · v verify · Z quantize · c chat",
        Tab::Models => "/ filter · Enter detail · p pull · v verify · Z quantize · x delete · c chat · ? help",
        Tab::Chat => "Enter send · Esc stop/back · Ctrl-L reset · Tab next screen",
        Tab::Results => "↑↓ benchmark · ←→ column · ? help",
        Tab::Evaluate => "↑↓ field · Enter edit/keep · Enter on Start runs · ? help",
        Tab::Vote if app.vote.active => "1/← left better · 2/→ right better · t tie · n skip · Esc stop",
        Tab::Vote => "↑↓ field · Enter edit/keep · Enter on Start loads ballots · ? help",
        Tab::Jobs => "↑↓ job · x cancel · ? help",
    }
}

// --- Models ----------------------------------------------------------------------------------

/// `s` cut to `width` display columns, with `…` when cut.
pub fn fit_width(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

fn models(app: &App, f: &mut Frame, area: Rect, th: Theme, hit: &mut HitMap) {
    let [bar, table_area] = Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(area);
    // The filter, facets and sort line, and the count and free memory.
    let mut spans = vec![Span::styled("/", th.accent())];
    if app.filtering {
        spans.push(Span::raw(app.filter.clone()));
        spans.push(Span::styled("▏", th.accent()));
    } else if app.filter.is_empty() {
        spans.push(Span::styled("filter", th.faint()));
    } else {
        spans.push(Span::raw(app.filter.clone()));
    }
    for (facet, v) in &app.facets {
        if let Some(v) = v {
            spans.push(Span::raw("  "));
            spans.push(Span::styled(format!("{}={v}", facet.title()), th.accent()));
        }
    }
    let total = app.overview.models.len();
    let mem = match app.overview.available_memory {
        Some(b) => format!("free memory {}", view::human_bytes(b)),
        None => "free memory unknown".into(),
    };
    let info = Line::from(vec![
        Span::styled(
            format!(
                "{} of {total} models · sort {}{} · ",
                app.rows.len(),
                app.sort.title(),
                if app.sort_desc { " ↓" } else { " ↑" }
            ),
            th.faint(),
        ),
        Span::styled(mem, th.faint()),
    ]);
    f.render_widget(Paragraph::new(vec![Line::from(spans), info]), bar);

    if !app.loaded {
        f.render_widget(Paragraph::new(Span::styled("reading the registry …", th.faint())), table_area);
        return;
    }
    if app.rows.is_empty() {
        let msg = if total == 0 {
            "the registry has no models (zoo registry sync, or zoo add PATH)".to_string()
        } else {
            "no model matches the filter and facets (F clears them)".to_string()
        };
        f.render_widget(Paragraph::new(Span::styled(msg, th.faint())), table_area);
        return;
    }
    // Columns by priority: the narrower the terminal, the fewer.
    let all: [(&str, u16); 9] = [
        ("NAME", 0),
        ("FAMILY", 9),
        ("PARAMS", 6),
        ("KIND", 9),
        ("LOCAL", 5),
        ("FITS", 7),
        ("ARCH", 9),
        ("LANGS", 9),
        ("VERIFIED", 10),
    ];
    let min_name = 22u16;
    let mut shown: Vec<usize> = vec![0];
    let mut used = min_name;
    for (i, (_, w)) in all.iter().enumerate().skip(1) {
        if used + w < table_area.width {
            shown.push(i);
            used += w + 1;
        }
    }
    let name_w = table_area.width.saturating_sub(used - min_name).max(8);
    let widths: Vec<Constraint> =
        shown.iter().map(|&i| Constraint::Length(if i == 0 { name_w } else { all[i].1 })).collect();
    let header = Row::new(shown.iter().map(|&i| Cell::from(all[i].0))).style(th.strong());
    let rows = app.rows.iter().map(|&mi| {
        let m = &app.overview.models[mi];
        let fits = zoo_ops::fit::for_model(m, app.overview.available_memory);
        let fit = match (m.params, zoo_ops::fit::best(&fits)) {
            (None, _) => "?".to_string(),
            (_, Some(b)) => b.precision.to_string(),
            (_, None) if app.overview.available_memory.is_none() => "?".to_string(),
            (_, None) => "none".to_string(),
        };
        let local = m.local == Some(true);
        let verified = app.overview.verified_at(&m.name).map(|t| t.get(..10).unwrap_or(t).to_string());
        let cells: Vec<Cell> = shown
            .iter()
            .map(|&i| match i {
                0 => Cell::from(fit_width(&m.name, name_w as usize)),
                1 => Cell::from(fit_width(&m.family, 9)),
                2 => Cell::from(view::params(m.params)),
                3 => Cell::from(m.kind.clone()),
                4 => Cell::from(Span::styled(
                    if local { "yes" } else { "-" },
                    if local { th.good() } else { th.faint() },
                )),
                5 => Cell::from(Span::styled(fit.clone(), if fit == "none" { th.bad() } else { Style::new() })),
                6 => Cell::from(fit_width(m.arch.as_deref().unwrap_or("-"), 9)),
                7 => Cell::from(fit_width(&m.languages.join(","), 9)),
                _ => Cell::from(verified.clone().unwrap_or_else(|| "-".into())),
            })
            .collect();
        Row::new(cells)
    });
    let table = Table::new(rows, widths).header(header).row_highlight_style(th.selected()).column_spacing(1);
    let mut state = TableState::default().with_selected(Some(app.selected));
    f.render_stateful_widget(table, table_area, &mut state);
    hit.table_top = table_area.y + 1;
    hit.table_height = table_area.height.saturating_sub(1);
    hit.table_offset = state.offset();
}

/// A report or view as styled lines; tables laid out in columns.
pub fn doc_lines(doc: &Doc, th: Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for b in &doc.blocks {
        match b {
            view::Block::Line(spans) => out.push(Line::from(
                spans.iter().map(|s| Span::styled(s.text.clone(), th.view(s.tone))).collect::<Vec<_>>(),
            )),
            view::Block::Table(t) => {
                let n = t.header.len();
                let mut w = vec![0usize; n];
                for r in std::iter::once(&t.header).chain(&t.rows) {
                    for (i, c) in r.iter().enumerate().take(n) {
                        w[i] = w[i].max(c.width());
                    }
                }
                let fmt = |r: &Vec<String>| {
                    let cells: Vec<String> = r
                        .iter()
                        .enumerate()
                        .take(n)
                        .map(|(i, c)| {
                            let pad = " ".repeat(w[i].saturating_sub(c.width()));
                            if t.right.get(i).copied().unwrap_or(false) {
                                format!("{pad}{c}")
                            } else {
                                format!("{c}{pad}")
                            }
                        })
                        .collect();
                    cells.join("  ").trim_end().to_string()
                };
                out.push(Line::styled(fmt(&t.header), th.strong()));
                out.extend(t.rows.iter().map(|r| Line::raw(fmt(r))));
            }
        }
    }
    out
}

fn detail(app: &App, f: &mut Frame, area: Rect, th: Theme) {
    let Some(m) = app.selected_model() else { return };
    let block = Block::bordered().title(Span::styled(format!(" {} ", m.name), th.strong()));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let d = match &app.detail {
        Some(d) if d.model.name == m.name => d,
        _ => {
            f.render_widget(Paragraph::new(Span::styled("reading …", th.faint())), inner);
            return;
        }
    };
    let mut lines: Vec<Line> = Vec::new();
    let label_w = view::facts(d).iter().map(|(k, _)| k.width()).max().unwrap_or(8);
    for (k, v) in view::facts(d) {
        for (i, part) in wrap(&v, (inner.width as usize).saturating_sub(label_w + 2)).into_iter().enumerate() {
            let label = if i == 0 { format!("{k:<label_w$}  ") } else { " ".repeat(label_w + 2) };
            lines.push(Line::from(vec![Span::styled(label, th.faint()), Span::raw(part)]));
        }
    }
    // The base/delta chain, from this model down to the model with no base.
    let mut chain = vec![m.name.clone()];
    let mut cur = m.base.clone();
    while let Some(b) = cur {
        if chain.contains(&b) || chain.len() > 8 {
            break;
        }
        let kind = app.overview.models.iter().find(|x| x.name == b);
        chain.push(b.clone());
        cur = kind.and_then(|x| x.base.clone());
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Chain", th.strong()));
    let mut chain_line = Vec::new();
    for (i, name) in chain.iter().enumerate() {
        let rec = app.overview.models.iter().find(|x| &x.name == name);
        let kind = rec.map(|r| r.kind.as_str()).unwrap_or("?");
        let local = rec.and_then(|r| r.local) == Some(true);
        if i > 0 {
            chain_line.push(Span::styled(if kind == "delta" { " ← " } else { " → " }, th.faint()));
            chain_line.push(Span::styled(
                match chain.get(i - 1).and_then(|p| app.overview.models.iter().find(|x| &x.name == p)) {
                    Some(p) if p.kind == "delta" => "applied to ",
                    Some(p) if p.kind == "quantized" => "quantized from ",
                    _ => "from ",
                },
                th.faint(),
            ));
        }
        chain_line.push(Span::raw(name.clone()));
        chain_line.push(Span::styled(
            format!(" ({kind}{})", if local { ", local" } else { "" }),
            if local { th.good() } else { th.faint() },
        ));
    }
    lines.push(Line::from(chain_line));
    if !d.derived.is_empty() {
        lines.push(Line::from(vec![Span::styled("built on it: ", th.faint()), Span::raw(d.derived.join(", "))]));
    }

    lines.push(Line::raw(""));
    lines.push(Line::styled("Files", th.strong()));
    if let Some(p) = &d.hf_cache_path {
        lines.push(Line::from(vec![Span::styled("hf cache  ", th.faint()), Span::raw(p.clone())]));
    }
    if d.local_copies.is_empty() {
        lines.push(Line::styled("no registered copy on this machine (p pulls it)", th.faint()));
    }
    for c in &d.local_copies {
        let status = match &c.verified_at {
            Some(t) => Span::styled(format!("verified {t}"), th.good()),
            None => Span::styled("not verified (v verifies)".to_string(), th.faint()),
        };
        lines.push(Line::from(vec![Span::raw(c.path.clone()), Span::raw("  "), status]));
        for file in &c.files {
            let size = file.size.map(|s| view::human_bytes(s as u64)).unwrap_or_else(|| "?".into());
            let hash = match &file.sha256 {
                Some(h) => Span::styled(format!("sha256 {}", h.get(..12).unwrap_or(h)), th.faint()),
                None => Span::styled("no sha256 known".to_string(), th.bad()),
            };
            lines
                .push(Line::from(vec![Span::raw(format!("  {:<28} {:>10}  ", fit_width(&file.path, 28), size)), hash]));
        }
    }

    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!(
            "Memory fit (context {}, against {} free)",
            zoo_ops::fit::CONTEXT,
            match app.overview.available_memory {
                Some(b) => view::human_bytes(b),
                None => "unknown".into(),
            }
        ),
        th.strong(),
    ));
    let fits = zoo_ops::fit::for_model(m, app.overview.available_memory);
    if fits.is_empty() {
        lines.push(Line::styled("parameter count unknown", th.faint()));
    }
    for ft in &fits {
        let verdict = match ft.fits {
            Some(true) => Span::styled("fits", th.good()),
            Some(false) => Span::styled("too big", th.bad()),
            None => Span::styled("?", th.faint()),
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "  {:<7} weights {:>9}  kv {:>9}  total {:>9}  ",
                ft.precision,
                view::human_bytes(ft.weights_bytes),
                view::human_bytes(ft.kv_bytes),
                view::human_bytes(ft.total_bytes)
            )),
            verdict,
        ]));
    }

    lines.push(Line::raw(""));
    lines.push(Line::styled("Results (published and measured)", th.strong()));
    if d.results.is_empty() {
        lines.push(Line::styled("none yet (e evaluates)", th.faint()));
    }
    for t in &d.results {
        let v = view::results(t);
        lines.push(Line::styled(format!("{} ({})", v.benchmark.title, v.benchmark.metric), th.accent()));
        let mut doc = Doc::new();
        doc.table(v.table.clone());
        lines.extend(doc_lines(&doc, th));
        for (i, s) in v.sources.iter().enumerate() {
            lines.push(Line::styled(format!("[{}] {s}", i + 1), th.faint()));
        }
    }
    let max = (lines.len() as u16).saturating_sub(inner.height);
    f.render_widget(Paragraph::new(lines).scroll((app.detail_scroll.min(max), 0)), inner);
}

// --- Chat ------------------------------------------------------------------------------------

fn chat(app: &App, f: &mut Frame, area: Rect, th: Theme) {
    let c = &app.chat;
    let [head, hist, input] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(3)]).areas(area);
    let mut spans = match &c.model {
        Some(m) => vec![
            Span::styled(m.clone(), th.strong()),
            Span::styled(format!("  format {}", c.format.as_deref().unwrap_or("?")), th.faint()),
            Span::styled(c.context.map(|n| format!("  context {n}")).unwrap_or_default(), th.faint()),
        ],
        None if c.loading.is_some() => vec![Span::styled("loading the model …", th.accent())],
        None => vec![Span::styled("no model: select one on Models and press c", th.faint())],
    };
    if c.streaming {
        let secs = c.stream_started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        spans.push(Span::styled(format!("  generating … {secs:.0}s (Esc stops)"), th.accent()));
    } else if let Some(s) = &c.speed {
        spans.push(Span::styled(format!("  {s}"), th.faint()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), head);

    let width = hist.width.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    for (role, text) in &c.messages {
        let (who, style) = match role {
            Role::User => ("you", th.accent().add_modifier(Modifier::BOLD)),
            Role::Assistant => ("model", th.strong()),
            Role::Info => ("zoo", th.faint()),
        };
        lines.push(Line::styled(who, style));
        let body_style = if *role == Role::Info { th.faint() } else { Style::new() };
        for l in wrap(text, width) {
            lines.push(Line::styled(format!("  {l}"), body_style));
        }
    }
    if c.streaming && !matches!(c.messages.last(), Some((Role::Assistant, _))) {
        lines.push(Line::styled("model", th.strong()));
        lines.push(Line::styled("  …", th.faint()));
    }
    let h = hist.height as usize;
    let bottom = lines.len().saturating_sub(c.scroll as usize);
    let start = bottom.saturating_sub(h);
    let shown: Vec<Line> = lines.into_iter().skip(start).take(bottom - start).collect();
    f.render_widget(Paragraph::new(Text::from(shown)), hist);

    let block = Block::bordered().border_style(th.faint()).title(Span::styled(" message ", th.faint()));
    let inner = block.inner(input);
    f.render_widget(block, input);
    let w = inner.width.saturating_sub(2) as usize;
    // The end of what is typed, when it is wider than the box.
    let mut shown_input = c.input.clone();
    while shown_input.width() > w && !shown_input.is_empty() {
        shown_input.remove(0);
    }
    f.render_widget(Paragraph::new(input_line(&shown_input, !c.streaming, th)), inner);
}

fn input_line(text: &str, cursor: bool, th: Theme) -> Line<'static> {
    let mut spans = vec![Span::styled("> ", th.accent()), Span::raw(text.to_string())];
    if cursor {
        spans.push(Span::styled("▏", th.accent()));
    }
    Line::from(spans)
}

// --- Results ---------------------------------------------------------------------------------

/// A bar of `frac` (0–1) of `width` cells in eighths.
pub fn bar(frac: f64, width: usize) -> String {
    const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let cells = (frac.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let mut s = "█".repeat(cells / 8);
    s.push_str(EIGHTHS[cells % 8]);
    s
}

fn results(app: &App, f: &mut Frame, area: Rect, th: Theme) {
    let Some(t) = app.overview.results.get(app.bench) else {
        let msg = if app.loaded { "no benchmarks in the registry" } else { "reading the registry …" };
        f.render_widget(Paragraph::new(Span::styled(msg, th.faint())), area);
        return;
    };
    let b = &t.benchmark;
    let col_i = app.results_column().unwrap_or(0);
    let col = b.columns.get(col_i);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("◀ {}/{} ▶ ", app.bench + 1, app.overview.results.len()), th.faint()),
            Span::styled(b.title.clone(), th.strong()),
        ]),
        Line::from(vec![
            Span::styled(format!("◀ {}/{} ▶ ", col_i + 1, b.columns.len()), th.faint()),
            Span::styled(col.map(|c| c.label.clone()).unwrap_or_else(|| "-".into()), th.accent()),
            Span::styled(
                format!(
                    " · {}{}",
                    b.metric,
                    col.and_then(|c| c.lang.clone()).map(|l| format!(" · language {l}")).unwrap_or_default()
                ),
                th.faint(),
            ),
        ]),
        Line::raw(""),
    ];
    let Some(col) = col else {
        f.render_widget(Paragraph::new(lines), area);
        return;
    };
    let mut rows: Vec<(&zoo_registry::model::ResultRecord, f64)> =
        t.rows.iter().filter_map(|r| r.scores.get(&col.key).map(|v| (r, *v))).collect();
    rows.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal).then(a.0.model.cmp(&b.0.model)));
    let max = rows
        .iter()
        .map(|r| r.1)
        .fold(0.0f64, f64::max)
        .max(if b.metric.contains('%') || b.metric == "accuracy" { 100.0 } else { 0.0 });
    // Counts (win/tie/lose) as integers, everything else with 2 decimals (as `zoo results`).
    let integers = rows.iter().all(|r| r.1.fract() == 0.0);
    let name_w = 26usize.min(area.width as usize / 3);
    let bar_w = (area.width as usize).saturating_sub(name_w + 10 + 10).max(4);
    if rows.is_empty() {
        lines.push(Line::styled("no model has a value in this column", th.faint()));
    }
    for (r, v) in &rows {
        let name = match &r.opponent {
            Some(o) => format!("{} vs {o}", r.model),
            None => r.model.clone(),
        };
        let measured = r.origin == "measured";
        let frac = if max > 0.0 { v / max } else { 0.0 };
        let value = if integers { format!("{v:.0}") } else { format!("{v:.2}") };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<name_w$} ", fit_width(&name, name_w))),
            Span::styled(
                format!("{:<9} ", if measured { "measured" } else { "published" }),
                if measured { th.accent() } else { th.faint() },
            ),
            Span::styled(format!("{:<bar_w$}", bar(frac, bar_w)), if measured { th.accent() } else { Style::new() }),
            Span::raw(format!(" {value:>7}")),
        ]));
    }
    lines.push(Line::raw(""));
    let v = view::results(t);
    for (i, s) in v.sources.iter().enumerate() {
        lines.push(Line::styled(fit_width(&format!("[{}] {s}", i + 1), area.width as usize), th.faint()));
    }
    f.render_widget(Paragraph::new(lines), area);
}

// --- Evaluate and Vote -----------------------------------------------------------------------

fn form_lines(form: &crate::app::Form, start_label: &str, th: Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for (i, (k, v)) in form.fields.iter().enumerate() {
        let sel = i == form.selected;
        let mut spans = vec![Span::styled(format!("{:>10}  ", k), if sel { th.strong() } else { th.faint() })];
        if sel && form.editing {
            spans.extend(input_line(v, true, th).spans);
        } else {
            let shown = if v.is_empty() { "-".to_string() } else { v.clone() };
            spans.push(Span::styled(shown, if sel { th.selected() } else { Style::new() }));
        }
        lines.push(Line::from(spans));
    }
    let sel = form.selected == form.fields.len();
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::raw(" ".repeat(12)),
        Span::styled(
            format!("[ {start_label} ]"),
            if sel { th.selected().add_modifier(Modifier::BOLD) } else { th.accent() },
        ),
    ]));
    lines
}

fn task_line(t: &TaskView, width: usize, th: Theme) -> Line<'static> {
    let (done, total) = (t.done, t.total);
    let frac = total.filter(|&n| n > 0).map(|n| done as f64 / n as f64);
    let count = match (t.unit, total) {
        (zoo_progress::Unit::Bytes, Some(n)) => format!("{} / {}", view::human_bytes(done), view::human_bytes(n)),
        (zoo_progress::Unit::Bytes, None) => view::human_bytes(done),
        (zoo_progress::Unit::Items, Some(n)) => format!("{done} / {n}"),
        (zoo_progress::Unit::Items, None) => done.to_string(),
    };
    let metrics: String = t.metrics.iter().map(|(k, v)| format!("  {k} {v:.3}")).collect();
    let name_w = 24.min(width / 3);
    let bar_w = width.saturating_sub(name_w + count.width() + metrics.width() + 10).clamp(4, 40);
    let mut spans = vec![Span::raw(format!("{:<name_w$} ", fit_width(&t.name, name_w)))];
    match frac {
        Some(x) => {
            spans.push(Span::styled(
                format!("{:<bar_w$}", bar(x, bar_w)),
                if t.finished { th.good() } else { th.accent() },
            ));
            spans.push(Span::raw(format!(" {:>3.0}% ", x * 100.0)));
        }
        None => spans.push(Span::styled(if t.finished { "done " } else { "… " }, th.faint())),
    }
    spans.push(Span::styled(count, th.faint()));
    spans.push(Span::styled(metrics, th.strong()));
    Line::from(spans)
}

fn job_lines(j: &JobView, width: usize, log_lines: usize, th: Theme) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("#{} {}", j.id, j.spec.title()), th.strong()),
        Span::raw("  "),
        state_span(j, th),
    ])];
    for t in &j.tasks {
        lines.push(task_line(t, width, th));
    }
    let start = j.log.len().saturating_sub(log_lines);
    for l in &j.log[start..] {
        let style = if l.starts_with("error") { th.bad() } else { th.faint() };
        lines.push(Line::styled(fit_width(l, width), style));
    }
    lines
}

fn state_span(j: &JobView, th: Theme) -> Span<'static> {
    let secs = j.elapsed(Instant::now()).as_secs();
    let t = format!("{}:{:02}", secs / 60, secs % 60);
    match j.state {
        JobState::Running => Span::styled(format!("running {t}"), th.accent()),
        JobState::Cancelling => Span::styled(format!("cancelling {t}"), th.accent()),
        JobState::Done => Span::styled(format!("done {t}"), th.good()),
        JobState::Failed => Span::styled(format!("failed {t}"), th.bad()),
        JobState::Cancelled => Span::styled(format!("cancelled {t}"), th.faint()),
    }
}

fn evaluate(app: &App, f: &mut Frame, area: Rect, th: Theme) {
    let mut lines = vec![
        Line::styled("Multiple-choice evaluation (zoo eval mcq)", th.strong()),
        Line::styled("questions: an XMedBench JSON, MMLU JSON lines or zoo JSONL file", th.faint()),
        Line::styled(
            "subsets: comma-separated, e.g. mmlu-medical-6 · benchmark: where the result is recorded",
            th.faint(),
        ),
        Line::raw(""),
    ];
    lines.extend(form_lines(&app.eval, "Start", th));
    lines.push(Line::raw(""));
    if let Some(j) = app.eval_job.and_then(|id| app.jobs.iter().find(|j| j.id == id)) {
        let acc = j.tasks.iter().flat_map(|t| &t.metrics).find(|(k, _)| k == "accuracy").map(|(_, v)| *v);
        if let Some(a) = acc {
            lines.push(Line::from(vec![
                Span::styled("running accuracy ", th.faint()),
                Span::styled(format!("{:.1}%", a * 100.0), th.strong()),
            ]));
        }
        match &j.report {
            Some(doc) => lines.extend(doc_lines(doc, th)),
            None => lines.extend(job_lines(j, area.width as usize, 4, th)),
        }
    }
    f.render_widget(Paragraph::new(lines), area);
}

fn vote(app: &App, f: &mut Frame, area: Rect, th: Theme) {
    let v = &app.vote;
    let tally_doc = if v.tallies.is_empty() { None } else { Some(view::vote_tally(&v.tallies)) };
    if !v.active {
        let mut lines = vec![
            Line::styled("Human evaluation: two models' answers, names hidden, sides drawn at random", th.strong()),
            Line::styled("models: a MODEL (answers generated here) or NAME=answers.jsonl", th.faint()),
            Line::raw(""),
        ];
        lines.extend(form_lines(&v.form, "Start", th));
        if let Some(s) = &v.status {
            lines.push(Line::raw(""));
            lines.push(Line::styled(s.clone(), th.faint()));
        }
        if let Some(d) = &tally_doc {
            lines.push(Line::raw(""));
            lines.push(Line::styled("Tallies (as LLM Zoo's human evaluation)", th.strong()));
            lines.extend(doc_lines(d, th));
        }
        f.render_widget(Paragraph::new(lines), area);
        return;
    }
    let Some(b) = v.ballots.get(v.current) else {
        let mut lines = vec![
            Line::styled(format!("all voted: {} votes this session", v.cast), th.good()),
            Line::styled("Esc returns to the form", th.faint()),
            Line::raw(""),
        ];
        if let Some(d) = &tally_doc {
            lines.extend(doc_lines(d, th));
        }
        f.render_widget(Paragraph::new(lines), area);
        return;
    };
    let tally_h = if tally_doc.is_some() { 3 } else { 0 };
    let q_lines = wrap(&b.question, area.width as usize);
    let q_h = (q_lines.len() as u16 + 1).min(area.height / 3);
    let [head, question, answers, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(q_h),
        Constraint::Min(3),
        Constraint::Length(tally_h),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(format!("question {} of {}", v.current + 1, v.ballots.len()), th.strong()),
            Span::styled(b.category.as_ref().map(|c| format!("  ({c})")).unwrap_or_default(), th.faint()),
            Span::styled(format!("  · {} cast", v.cast), th.faint()),
        ])),
        head,
    );
    f.render_widget(Paragraph::new(q_lines.into_iter().map(Line::raw).collect::<Vec<_>>()), question);
    let [left, right] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(answers);
    for (rect, title, text) in [(left, " 1 · left ", &b.left), (right, " 2 · right ", &b.right)] {
        let block = Block::default().borders(Borders::ALL).title(Span::styled(title, th.strong()));
        let inner = block.inner(rect);
        f.render_widget(block, rect);
        let lines: Vec<Line> = wrap(text, inner.width as usize).into_iter().map(Line::raw).collect();
        f.render_widget(Paragraph::new(lines), inner);
    }
    if let Some(d) = &tally_doc {
        f.render_widget(Paragraph::new(doc_lines(d, th)), foot);
    }
}

// --- Jobs ------------------------------------------------------------------------------------

fn jobs(app: &App, f: &mut Frame, area: Rect, th: Theme) {
    if app.jobs.is_empty() {
        f.render_widget(
            Paragraph::new(Span::styled("no jobs yet: p, v, A, Z or x on a model start one", th.faint())),
            area,
        );
        return;
    }
    let list_h = (app.jobs.len() as u16 + 1).min(area.height / 3).max(2);
    let [list, detail] = Layout::vertical([Constraint::Length(list_h), Constraint::Min(1)]).areas(area);
    let rows = app.jobs.iter().map(|j| {
        let progress = j
            .current_task()
            .and_then(|t| t.total.filter(|&n| n > 0).map(|n| format!("{:.0}%", 100.0 * t.done as f64 / n as f64)))
            .unwrap_or_default();
        Row::new(vec![
            Cell::from(format!("#{}", j.id)),
            Cell::from(state_span(j, th)),
            Cell::from(progress),
            Cell::from(j.spec.title()),
        ])
    });
    let table =
        Table::new(rows, [Constraint::Length(4), Constraint::Length(16), Constraint::Length(5), Constraint::Min(10)])
            .header(Row::new(["JOB", "STATE", "DONE", "WHAT"]).style(th.strong()))
            .row_highlight_style(th.selected());
    let mut state = TableState::default().with_selected(Some(app.job_selected));
    f.render_stateful_widget(table, list, &mut state);
    if let Some(j) = app.jobs.get(app.job_selected) {
        let block = Block::default().borders(Borders::TOP).title(Span::styled(" log ", th.faint()));
        let inner = block.inner(detail);
        f.render_widget(block, detail);
        let n_log = (inner.height as usize).saturating_sub(1 + j.tasks.len());
        f.render_widget(Paragraph::new(job_lines(j, inner.width as usize, n_log, th)), inner);
    }
}

// --- Overlays --------------------------------------------------------------------------------

fn popup(f: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>, width_pct: u16, th: Theme) {
    let w = (area.width * width_pct / 100).max(30).min(area.width);
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    f.render_widget(Clear, rect);
    let block = Block::bordered().title(Span::styled(format!(" {title} "), th.strong()));
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    f.render_widget(Paragraph::new(lines), inner);
}

fn confirm(c: &Confirm, f: &mut Frame, area: Rect, th: Theme) {
    let (title, mut lines) = match c {
        Confirm::Delete { model, summary, freed } => {
            let mut l = vec![Line::styled(
                format!("Delete {model} from the cache ({} freed)?", view::human_bytes(*freed)),
                th.strong(),
            )];
            let room = (area.height as usize).saturating_sub(6);
            let w = (area.width as usize * 3 / 4).saturating_sub(2);
            l.extend(summary.iter().take(room).map(|s| Line::styled(fit_width(s, w), th.faint())));
            if summary.len() > room {
                l.push(Line::styled(format!("… and {} more", summary.len() - room), th.faint()));
            }
            ("delete", l)
        }
        Confirm::Quit { running } => {
            ("quit", vec![Line::styled(format!("{running} job(s) running: quit and cancel them?"), th.strong())])
        }
    };
    lines.push(Line::from(vec![
        Span::styled("y", th.bad()),
        Span::raw(" yes   "),
        Span::styled("n", th.strong()),
        Span::raw(" no"),
    ]));
    popup(f, area, title, lines, 75, th);
}

/// The keys of every screen and of the one shown (all screens: docs/USAGE.md).
fn help(tab: Tab, f: &mut Frame, area: Rect, th: Theme) {
    let shown = BINDINGS.iter().filter(|(s, _, _)| *s == "everywhere" || *s == tab.title());
    let keys_w = shown.clone().map(|(_, k, _)| k.width()).max().unwrap_or(10);
    let mut lines = Vec::new();
    let mut last = "";
    for (screen, keys, what) in shown {
        if *screen != last {
            lines.push(Line::styled(screen.to_string(), th.strong()));
            last = screen;
        }
        lines.push(Line::from(vec![
            Span::styled(format!("  {keys:<keys_w$}  "), th.accent()),
            Span::raw(what.to_string()),
        ]));
    }
    lines.push(Line::styled("any key closes this help", th.faint()));
    popup(f, area, "keys", lines, 90, th);
}

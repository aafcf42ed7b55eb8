//! `zoo registry check`: lints a catalog and reports every problem with its file and line.
//!
//! Sync refuses a catalog with problems, so everything in the database satisfies these rules:
//! unique names, resolvable references (family, base, opponent, benchmark, dataset), a
//! `delta_algorithm` exactly on deltas, quantization facts exactly on quantized models, and
//! well-formed values (hashes, repo ids, dates, language codes, `params_source` with `params`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::{Catalog, Loc};

/// Prompt formats the zoo knows by name (`chat_template` in the catalog).
pub const KNOWN_TEMPLATES: &[&str] = &[
    "llmzoo",
    "huatuo",
    "huatuo2",
    "apollo",
    "apollo-large",
    "apollo2-phi3",
    "vicuna",
    "alpaca",
    "chatml",
    "gemma",
    "llama2",
    "llama3",
    "jinja",
    "none",
];
pub const KINDS: &[&str] = &["full", "delta", "quantized", "api"];
pub const DELTA_ALGORITHMS: &[&str] = &["fastchat", "llmzoo", "huatuo"];
pub const DTYPES: &[&str] = &["float32", "float16", "bfloat16", "int8", "int4"];
pub const QUANT_METHODS: &[&str] = &["gptq", "awq", "gguf", "bitsandbytes", "unknown"];
/// How a parameter count was decided: counted from the architecture's shapes, a published figure,
/// or the size the model's name gives.
pub const PARAMS_SOURCES: &[&str] = &["config", "card", "name"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    Syntax,
    UnknownField,
    MissingField,
    DuplicateName,
    BadName,
    UnknownFamily,
    UnknownBase,
    BaseCycle,
    BadKind,
    DeltaAlgorithm,
    Quantization,
    BadHash,
    BadHfRepo,
    BadValue,
    UnknownModel,
    UnknownBenchmark,
    UnknownColumn,
    UnknownDataset,
    DuplicateResult,
}

impl ProblemKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::UnknownField => "unknown-field",
            Self::MissingField => "missing-field",
            Self::DuplicateName => "duplicate-name",
            Self::BadName => "bad-name",
            Self::UnknownFamily => "unknown-family",
            Self::UnknownBase => "unknown-base",
            Self::BaseCycle => "base-cycle",
            Self::BadKind => "bad-kind",
            Self::DeltaAlgorithm => "delta-algorithm",
            Self::Quantization => "quantization",
            Self::BadHash => "bad-hash",
            Self::BadHfRepo => "bad-hf-repo",
            Self::BadValue => "bad-value",
            Self::UnknownModel => "unknown-model",
            Self::UnknownBenchmark => "unknown-benchmark",
            Self::UnknownColumn => "unknown-column",
            Self::UnknownDataset => "unknown-dataset",
            Self::DuplicateResult => "duplicate-result",
        }
    }
}

/// One problem in a catalog.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub kind: ProblemKind,
    pub code: &'static str,
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, loc: Loc, message: impl Into<String>) -> Self {
        let message = message.into();
        // serde's messages for unknown/missing keys are schema problems with their own codes.
        let kind = if kind == ProblemKind::Syntax && message.contains("unknown field") {
            ProblemKind::UnknownField
        } else if kind == ProblemKind::Syntax && message.contains("missing field") {
            ProblemKind::MissingField
        } else {
            kind
        };
        Problem { kind, code: kind.code(), file: loc.file, line: loc.line, message }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {} [{}]", self.file, self.line, self.message, self.code)
    }
}

/// Every problem of `cat`, sorted by file and line.
pub fn check(cat: &Catalog) -> Vec<Problem> {
    let mut out = cat.parse_problems.clone();
    let mut p = |kind, loc: Loc, msg: String| out.push(Problem::new(kind, loc, msg));

    // Families.
    let mut families: HashMap<String, Loc> = HashMap::new();
    for f in &cat.families {
        let name = f.entry.name.get_ref();
        let loc = cat.loc(f.file, f.entry.name.span().start);
        if !is_slug(name) {
            p(ProblemKind::BadName, loc.clone(), format!("family name {name:?} must be lowercase [a-z0-9._-]"));
        }
        if let Some(first) = families.get(name) {
            p(ProblemKind::DuplicateName, loc, format!("family {name:?} is already defined at {first}"));
        } else {
            families.insert(name.clone(), loc);
        }
    }

    // Model names first, so references can be resolved in any order.
    let mut models: HashMap<String, Loc> = HashMap::new();
    for m in &cat.models {
        let name = m.entry.name.get_ref();
        let loc = cat.loc(m.file, m.entry.name.span().start);
        if !is_slug(name) {
            p(ProblemKind::BadName, loc.clone(), format!("model name {name:?} must be lowercase [a-z0-9._-]"));
        }
        match models.get(&name.to_lowercase()) {
            Some(first) => p(ProblemKind::DuplicateName, loc, format!("model {name:?} is already defined at {first}")),
            None => {
                models.insert(name.to_lowercase(), loc);
            }
        }
    }
    let known_model = |n: &str| models.contains_key(&n.to_lowercase());

    for m in &cat.models {
        let e = &m.entry;
        let name = e.name.get_ref();
        let at = |off: usize| cat.loc(m.file, off);
        let mloc = at(e.name.span().start);

        match cat.family_of(m) {
            None => p(
                ProblemKind::MissingField,
                mloc.clone(),
                format!("model {name:?} has no family: set `family` or put it in a file with [family]"),
            ),
            Some(fam) if !families.contains_key(&fam) => {
                let loc = e.family.as_ref().map(|f| at(f.span().start)).unwrap_or(mloc.clone());
                p(ProblemKind::UnknownFamily, loc, format!("model {name:?}: unknown family {fam:?}"));
            }
            Some(_) => {}
        }

        let kind = e.kind.get_ref().as_str();
        if !KINDS.contains(&kind) {
            p(
                ProblemKind::BadKind,
                at(e.kind.span().start),
                format!("model {name:?}: kind {kind:?} is not one of {}", KINDS.join(", ")),
            );
        }

        if let Some(base) = &e.base {
            let b = base.get_ref();
            if !known_model(b) {
                p(
                    ProblemKind::UnknownBase,
                    at(base.span().start),
                    format!("model {name:?}: base {b:?} is not a model of the catalog"),
                );
            } else if b.eq_ignore_ascii_case(name) {
                p(ProblemKind::BaseCycle, at(base.span().start), format!("model {name:?} names itself as its base"));
            }
        } else if kind == "delta" || kind == "quantized" {
            p(ProblemKind::MissingField, mloc.clone(), format!("model {name:?}: a {kind} model needs `base`"));
        }

        match (&e.delta_algorithm, kind) {
            (None, "delta") => p(
                ProblemKind::DeltaAlgorithm,
                mloc.clone(),
                format!("delta model {name:?} needs `delta_algorithm` ({})", DELTA_ALGORITHMS.join(", ")),
            ),
            (Some(a), k) => {
                let loc = at(a.span().start);
                if k != "delta" {
                    p(
                        ProblemKind::DeltaAlgorithm,
                        loc,
                        format!("model {name:?} has `delta_algorithm` but its kind is {k:?}, not \"delta\""),
                    );
                } else if !DELTA_ALGORITHMS.contains(&a.get_ref().as_str()) {
                    p(
                        ProblemKind::DeltaAlgorithm,
                        loc,
                        format!(
                            "model {name:?}: delta_algorithm {:?} is not one of {}",
                            a.get_ref(),
                            DELTA_ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            _ => {}
        }

        match (&e.quantization, kind) {
            (None, "quantized") => p(
                ProblemKind::Quantization,
                mloc.clone(),
                format!("quantized model {name:?} needs a [model.quantization] table"),
            ),
            (Some(q), k) => {
                let qe = q.get_ref();
                if k != "quantized" {
                    p(
                        ProblemKind::Quantization,
                        at(q.span().start),
                        format!("model {name:?} has [model.quantization] but its kind is {k:?}"),
                    );
                }
                if !QUANT_METHODS.contains(&qe.method.get_ref().as_str()) {
                    p(
                        ProblemKind::Quantization,
                        at(qe.method.span().start),
                        format!(
                            "model {name:?}: quantization method {:?} is not one of {}",
                            qe.method.get_ref(),
                            QUANT_METHODS.join(", ")
                        ),
                    );
                }
                let bits = *qe.bits.get_ref();
                if !(1..=16).contains(&bits) {
                    p(
                        ProblemKind::Quantization,
                        at(qe.bits.span().start),
                        format!("model {name:?}: quantization bits {bits} is not in 1..=16"),
                    );
                }
            }
            _ => {}
        }

        if let Some(repo) = &e.hf_repo
            && !is_hf_repo(repo.get_ref())
        {
            p(
                ProblemKind::BadHfRepo,
                at(repo.span().start),
                format!("model {name:?}: hf_repo {:?} is not \"org/name\"", repo.get_ref()),
            );
        }
        if let Some(params) = &e.params {
            let v = *params.get_ref();
            if !(v.is_finite() && v > 0.0) {
                p(
                    ProblemKind::BadValue,
                    at(params.span().start),
                    format!("model {name:?}: params must be a positive number of billions, not {v}"),
                );
            }
        }
        if let Some(src) = &e.params_source {
            let v = src.get_ref();
            if !PARAMS_SOURCES.contains(&v.as_str()) {
                p(
                    ProblemKind::BadValue,
                    at(src.span().start),
                    format!("model {name:?}: params_source {v:?} is not one of {}", PARAMS_SOURCES.join(", ")),
                );
            } else if e.params.is_none() {
                p(
                    ProblemKind::MissingField,
                    at(src.span().start),
                    format!("model {name:?} has `params_source` but no `params`"),
                );
            }
        }
        if let Some(ctx) = &e.context_length
            && *ctx.get_ref() <= 0
        {
            p(ProblemKind::BadValue, at(ctx.span().start), format!("model {name:?}: context_length must be positive"));
        }
        if let Some(dt) = &e.dtype
            && !DTYPES.contains(&dt.get_ref().as_str())
        {
            p(
                ProblemKind::BadValue,
                at(dt.span().start),
                format!("model {name:?}: dtype {:?} is not one of {}", dt.get_ref(), DTYPES.join(", ")),
            );
        }
        if let Some(t) = &e.chat_template
            && !KNOWN_TEMPLATES.contains(&t.get_ref().as_str())
        {
            p(
                ProblemKind::BadValue,
                at(t.span().start),
                format!("model {name:?}: chat_template {:?} is not one of {}", t.get_ref(), KNOWN_TEMPLATES.join(", ")),
            );
        }
        if let Some(d) = &e.release_date
            && !is_date(d.get_ref())
        {
            p(
                ProblemKind::BadValue,
                at(d.span().start),
                format!("model {name:?}: release_date {:?} is not YYYY-MM-DD or YYYY-MM", d.get_ref()),
            );
        }
        let mut seen_langs = BTreeSet::new();
        for l in e.languages.get_ref() {
            let code = l.get_ref();
            if !is_lang(code) {
                p(
                    ProblemKind::BadValue,
                    at(l.span().start),
                    format!("model {name:?}: language {code:?} is not an ISO 639-1 code"),
                );
            } else if !seen_langs.insert(code.clone()) {
                p(
                    ProblemKind::BadValue,
                    at(l.span().start),
                    format!("model {name:?}: language {code:?} is listed twice"),
                );
            }
        }
        let mut seen_files = BTreeSet::new();
        for f in &e.files {
            let fe = f.get_ref();
            let path = fe.path.get_ref();
            if !is_relative_path(path) {
                p(
                    ProblemKind::BadValue,
                    at(fe.path.span().start),
                    format!("model {name:?}: file path {path:?} must be relative, without `..`"),
                );
            }
            if !seen_files.insert(path.clone()) {
                p(
                    ProblemKind::DuplicateName,
                    at(fe.path.span().start),
                    format!("model {name:?}: file {path:?} is listed twice"),
                );
            }
            if let Some(h) = &fe.sha256
                && !is_sha256(h.get_ref())
            {
                p(
                    ProblemKind::BadHash,
                    at(h.span().start),
                    format!(
                        "model {name:?}: sha256 of {path:?} must be 64 lowercase hex digits, not {:?}",
                        h.get_ref()
                    ),
                );
            }
            if let Some(s) = &fe.size
                && *s.get_ref() < 0
            {
                p(ProblemKind::BadValue, at(s.span().start), format!("model {name:?}: size of {path:?} is negative"));
            }
        }
        for mi in &e.mirror {
            let me = mi.get_ref();
            let pkg = me.pypi.get_ref();
            if pkg.is_empty() || !pkg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                p(
                    ProblemKind::BadValue,
                    at(me.pypi.span().start),
                    format!("model {name:?}: mirror package {pkg:?} is not a PyPI project name"),
                );
            }
            let ver = me.version.get_ref();
            if ver.is_empty() || !ver.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+!".contains(&b)) {
                p(
                    ProblemKind::BadValue,
                    at(me.version.span().start),
                    format!("model {name:?}: mirror version {ver:?} is not a pinned version"),
                );
            }
            if !is_relative_path(me.member.get_ref()) {
                p(
                    ProblemKind::BadValue,
                    at(me.member.span().start),
                    format!(
                        "model {name:?}: mirror member {:?} must be a relative path, without `..`",
                        me.member.get_ref()
                    ),
                );
            }
            let file = me.file.get_ref();
            if !is_relative_path(file) || file.contains('/') {
                p(
                    ProblemKind::BadValue,
                    at(me.file.span().start),
                    format!("model {name:?}: mirror file {file:?} must be a plain file name"),
                );
            }
            if !is_sha256(me.sha256.get_ref()) {
                p(
                    ProblemKind::BadHash,
                    at(me.sha256.span().start),
                    format!(
                        "model {name:?}: mirror sha256 of {file:?} must be 64 lowercase hex digits, not {:?}",
                        me.sha256.get_ref()
                    ),
                );
            }
            if let Some(s) = &me.size
                && *s.get_ref() <= 0
            {
                p(
                    ProblemKind::BadValue,
                    at(s.span().start),
                    format!("model {name:?}: mirror size of {file:?} must be positive"),
                );
            }
        }
        if let Some(sp) = &e.sampling {
            let sa = sp.get_ref();
            let mut bad = |what: String| {
                p(ProblemKind::BadValue, at(sp.span().start), format!("model {name:?}: sampling {what}"))
            };
            if let Some(t) = sa.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
                bad(format!("temperature {t} is not in [0, 2]"));
            }
            if let Some(v) = sa.top_p.filter(|v| !(*v > 0.0 && *v <= 1.0)) {
                bad(format!("top_p {v} is not in (0, 1]"));
            }
            if let Some(k) = sa.top_k.filter(|k| *k < 0) {
                bad(format!("top_k {k} is negative"));
            }
            if let Some(r) = sa.repetition_penalty.filter(|r| !(*r > 0.0 && *r <= 10.0)) {
                bad(format!("repetition_penalty {r} is not in (0, 10]"));
            }
            if sa.temperature.is_none() && sa.top_p.is_none() && sa.top_k.is_none() && sa.repetition_penalty.is_none() {
                bad("names no setting".into());
            }
            if sa.source.as_deref().is_none_or(|s| s.trim().is_empty()) {
                bad("needs a `source` (where the settings come from)".into());
            }
        }
    }

    // Cycles through `base` (a -> b -> a).
    let base_of: BTreeMap<String, (String, Loc)> = cat
        .models
        .iter()
        .filter_map(|m| {
            let b = m.entry.base.as_ref()?;
            Some((m.entry.name.get_ref().to_lowercase(), (b.get_ref().to_lowercase(), cat.loc(m.file, b.span().start))))
        })
        .collect();
    let mut reported = BTreeSet::new();
    for start in base_of.keys() {
        let mut seen = vec![start.clone()];
        let mut cur = start.clone();
        while let Some((next, _)) = base_of.get(&cur) {
            if next == &cur {
                break; // self-reference is reported above
            }
            if let Some(pos) = seen.iter().position(|s| s == next) {
                let mut cycle: Vec<String> = seen[pos..].to_vec();
                cycle.sort();
                // Reported once, at the `base` of the cycle's first member by name.
                if reported.insert(cycle.clone()) {
                    let loc = base_of[&cycle[0]].1.clone();
                    p(ProblemKind::BaseCycle, loc, format!("`base` references form a cycle: {}", cycle.join(" -> ")));
                }
                break;
            }
            seen.push(next.clone());
            cur = next.clone();
        }
    }

    // Datasets.
    let mut datasets: HashMap<String, Loc> = HashMap::new();
    for d in &cat.datasets {
        let name = d.entry.name.get_ref();
        let loc = cat.loc(d.file, d.entry.name.span().start);
        if let Some(first) = datasets.get(name) {
            p(ProblemKind::DuplicateName, loc.clone(), format!("dataset {name:?} is already defined at {first}"));
        } else {
            datasets.insert(name.clone(), loc.clone());
        }
        if !is_slug(name) {
            p(ProblemKind::BadName, loc, format!("dataset name {name:?} must be lowercase [a-z0-9._-]"));
        }
        if let Some(repo) = &d.entry.hf_repo
            && !is_hf_repo(repo.get_ref())
        {
            p(
                ProblemKind::BadHfRepo,
                cat.loc(d.file, repo.span().start),
                format!("dataset {name:?}: hf_repo {:?} is not \"org/name\"", repo.get_ref()),
            );
        }
        for l in &d.entry.languages {
            if !is_lang(l.get_ref()) {
                p(
                    ProblemKind::BadValue,
                    cat.loc(d.file, l.span().start),
                    format!("dataset {name:?}: language {:?} is not an ISO 639-1 code", l.get_ref()),
                );
            }
        }
    }

    // Benchmarks and their columns.
    let mut benchmarks: HashMap<String, (Loc, Vec<String>)> = HashMap::new();
    for b in &cat.benchmarks {
        let e = &b.entry;
        let name = e.name.get_ref();
        let loc = cat.loc(b.file, e.name.span().start);
        if !is_slug(name) {
            p(ProblemKind::BadName, loc.clone(), format!("benchmark name {name:?} must be lowercase [a-z0-9._-]"));
        }
        if let Some(ds) = &e.dataset
            && !datasets.contains_key(ds.get_ref())
        {
            p(
                ProblemKind::UnknownDataset,
                cat.loc(b.file, ds.span().start),
                format!("benchmark {name:?}: unknown dataset {:?}", ds.get_ref()),
            );
        }
        let mut keys = Vec::new();
        for c in e.columns.get_ref() {
            let key = &c.get_ref().key;
            if keys.contains(key) {
                p(
                    ProblemKind::DuplicateName,
                    cat.loc(b.file, c.span().start),
                    format!("benchmark {name:?}: column {key:?} is listed twice"),
                );
            }
            keys.push(key.clone());
        }
        if keys.is_empty() {
            p(
                ProblemKind::MissingField,
                cat.loc(b.file, e.columns.span().start),
                format!("benchmark {name:?} has no columns"),
            );
        }
        if let Some((first, _)) = benchmarks.get(name) {
            p(ProblemKind::DuplicateName, loc, format!("benchmark {name:?} is already defined at {first}"));
        } else {
            benchmarks.insert(name.clone(), (loc, keys));
        }
    }

    // Published results.
    let mut seen_results: BTreeMap<(String, String, String), Loc> = BTreeMap::new();
    for r in &cat.results {
        let e = &r.entry;
        let model = e.model.get_ref();
        let bench = e.benchmark.get_ref();
        let loc = cat.loc(r.file, e.model.span().start);
        if !known_model(model) {
            p(ProblemKind::UnknownModel, loc.clone(), format!("result for unknown model {model:?}"));
        }
        if let Some(o) = &e.opponent
            && !known_model(o.get_ref())
        {
            p(
                ProblemKind::UnknownModel,
                cat.loc(r.file, o.span().start),
                format!("result opponent {:?} is not a model of the catalog", o.get_ref()),
            );
        }
        match benchmarks.get(bench) {
            None => p(
                ProblemKind::UnknownBenchmark,
                cat.loc(r.file, e.benchmark.span().start),
                format!("result for unknown benchmark {bench:?}"),
            ),
            Some((_, cols)) => {
                for (k, v) in e.scores.get_ref() {
                    if !cols.contains(k) {
                        p(
                            ProblemKind::UnknownColumn,
                            cat.loc(r.file, v.span().start),
                            format!(
                                "result {model}/{bench}: {k:?} is not a column of benchmark {bench:?} ({})",
                                cols.join(", ")
                            ),
                        );
                    }
                    if !v.get_ref().is_finite() {
                        p(
                            ProblemKind::BadValue,
                            cat.loc(r.file, v.span().start),
                            format!("result {model}/{bench}: score {k:?} is not a finite number"),
                        );
                    }
                }
            }
        }
        if e.scores.get_ref().is_empty() {
            p(
                ProblemKind::MissingField,
                cat.loc(r.file, e.scores.span().start),
                format!("result {model}/{bench} has no scores"),
            );
        }
        let key = (
            model.to_lowercase(),
            bench.clone(),
            e.opponent.as_ref().map(|o| o.get_ref().to_lowercase()).unwrap_or_default(),
        );
        if let Some(first) = seen_results.get(&key) {
            p(ProblemKind::DuplicateResult, loc, format!("result {model}/{bench} is already given at {first}"));
        } else {
            seen_results.insert(key, loc);
        }
    }

    out.sort();
    out.dedup();
    out
}

fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn is_hf_repo(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    matches!(s.split('/').collect::<Vec<_>>().as_slice(), [org, name] if ok(org) && ok(name))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_lang(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase())
}

fn is_relative_path(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && !s.contains('\\')
        && s.split('/').all(|p| !p.is_empty() && p != ".." && p != ".")
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let num =
        |p: &str, n: usize, lo: u32, hi: u32| p.len() == n && p.parse::<u32>().is_ok_and(|v| (lo..=hi).contains(&v));
    match parts.as_slice() {
        [y, m] => num(y, 4, 1900, 2999) && num(m, 2, 1, 12),
        [y, m, d] => num(y, 4, 1900, 2999) && num(m, 2, 1, 12) && num(d, 2, 1, 31),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rules() {
        assert!(is_sha256(&"ab".repeat(32)));
        assert!(!is_sha256(&"AB".repeat(32)));
        assert!(!is_sha256("abc"));
        assert!(is_hf_repo("FreedomIntelligence/phoenix-chat-7b"));
        assert!(!is_hf_repo("phoenix") && !is_hf_repo("a/b/c") && !is_hf_repo("../x"));
        assert!(is_date("2023-04") && is_date("2023-04-08") && !is_date("2023-13") && !is_date("April"));
        assert!(is_relative_path("a/b.bin") && !is_relative_path("../a") && !is_relative_path("/etc/passwd"));
        assert!(is_lang("zh") && !is_lang("zho") && !is_lang("ZH"));
    }
}

//! One pass over a file for `zoo data validate` and `zoo data stats`: every record checked,
//! counted, and (for `stats`) measured in tokens of a model's tokenizer and prompt format and
//! given a language.
//!
//! The file is read on the calling thread and records go, in small chunks, to `threads`
//! workers (tokenizing is the slow part; `pipeline.rs`); each chunk's counts are merged in file
//! order, so memory holds a few chunks and the counts, whatever the size of the file. A file cut short (or broken) part way is still counted up to the last complete
//! record, and the break is reported as a problem of the record it cuts.
//!
//! Decisions: token lengths are kept in a log-linear histogram (exact below 1,024, within 1/64
//! above), so percentiles cost fixed memory; records longer than the context length are counted
//! exactly. A record's language is whatlang's guess on its first 1,000 characters (system text
//! left out); a guess whatlang does not call reliable counts as `und` (undetermined).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::pipeline::map_chunks;
use crate::read::{Format, Record, Turn, Watch};
use crate::validate::{Problem, Stats, check_record};
use crate::{DataError, Result};

/// Counts a record's tokens (its turns rendered in a prompt format), or says why it cannot.
pub type TokenCounter<'a> = &'a (dyn Fn(&[Turn]) -> std::result::Result<usize, String> + Sync);

/// What a scan measures.
#[derive(Clone, Copy)]
pub struct ScanOptions<'a> {
    /// The format, else detected from the first record.
    pub format: Option<Format>,
    /// Problems listed at most (all are counted).
    pub max_problems: usize,
    /// Token counts with a model's tokenizer and prompt format.
    pub tokens: Option<TokenCounter<'a>>,
    /// Records longer than this many tokens are counted.
    pub context: Option<usize>,
    /// Guess each record's language.
    pub languages: bool,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Progress (the file's bytes) and cancellation: [`DataError::Cancelled`] soon after the
    /// token is set.
    pub watch: Watch<'a>,
}

impl Default for ScanOptions<'_> {
    fn default() -> Self {
        ScanOptions {
            format: None,
            max_problems: 50,
            tokens: None,
            context: None,
            languages: false,
            threads: 1,
            watch: Watch::default(),
        }
    }
}

/// Token counts of a file's records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenStats {
    pub total: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// Records by token count: `[upper bound, count]`, bounds 2^k.
    pub histogram: Vec<(u64, usize)>,
    pub context: Option<usize>,
    /// Records with more tokens than `context`.
    pub over_context: usize,
    /// `over_context` / records.
    pub over_context_share: f64,
    /// Records the prompt format could not render (each is a problem; not in the counts).
    pub untokenized: usize,
}

/// Records per language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LanguageCount {
    /// ISO 639-3 (`eng`, `cmn`), `und` when no reliable guess.
    pub code: String,
    pub name: String,
    pub records: usize,
    pub share: f64,
}

/// The result of a scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub file: String,
    #[serde(flatten)]
    pub stats: Stats,
    /// The first `max_problems` problems, by record (all are counted in `problems`).
    pub problem_list: Vec<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenStats>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<LanguageCount>,
    /// Where the file stops being readable (the counts are of the records before it).
    pub error: Option<String>,
}

/// Whose tokens a scan counted: a model (its label) and the prompt format the records were
/// rendered in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenizedBy {
    pub model: String,
    pub format: String,
}

/// The report of `zoo data stats` (its `--json`): the scan, whose tokens it counted, and where
/// its chart was written.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    #[serde(flatten)]
    pub scan: ScanReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizedBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plot: Option<std::path::PathBuf>,
}

/// Log-linear histogram of lengths: exact below 1,024, 64 bins per power of two above.
#[derive(Debug, Clone, Default)]
struct Lengths {
    bins: Vec<u64>,
    /// Counts by power-of-two upper bound (exact).
    pow2: BTreeMap<u64, usize>,
    count: u64,
    sum: u64,
    max: u64,
}

const EXACT: u64 = 1024;
const SUB: u64 = 64;

fn bin_of(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = 63 - u64::from(v.leading_zeros());
    let sub = (v >> (e - 6)) & (SUB - 1);
    (EXACT + (e - 10) * SUB + sub) as usize
}

/// The largest value of a bin.
fn bin_top(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let e = (i - EXACT) / SUB + 10;
    let sub = (i - EXACT) % SUB;
    ((SUB + sub) << (e - 6)) + (1 << (e - 6)) - 1
}

impl Lengths {
    fn add(&mut self, v: u64) {
        let b = bin_of(v);
        if self.bins.len() <= b {
            self.bins.resize(b + 1, 0);
        }
        self.bins[b] += 1;
        *self.pow2.entry(v.max(1).next_power_of_two()).or_default() += 1;
        self.count += 1;
        self.sum += v;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, o: &Lengths) {
        if self.bins.len() < o.bins.len() {
            self.bins.resize(o.bins.len(), 0);
        }
        for (a, b) in self.bins.iter_mut().zip(&o.bins) {
            *a += b;
        }
        for (k, n) in &o.pow2 {
            *self.pow2.entry(*k).or_default() += n;
        }
        self.count += o.count;
        self.sum += o.sum;
        self.max = self.max.max(o.max);
    }

    /// The smallest value with at least `q` of the records at or below it (nearest rank).
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.bins.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bin_top(i).min(self.max);
            }
        }
        self.max
    }

    /// Counts by power-of-two upper bound.
    fn pow2_histogram(&self) -> Vec<(u64, usize)> {
        self.pow2.iter().map(|(k, n)| (*k, *n)).collect()
    }
}

/// One worker's counts.
#[derive(Default)]
struct Acc {
    stats: Stats,
    problems: Vec<Problem>,
    tokens: Lengths,
    over_context: usize,
    languages: BTreeMap<(String, String), usize>,
    untokenized: usize,
}

impl Acc {
    fn take(&mut self, fmt: Format, rec: &Record, o: &ScanOptions) {
        let (turns, mut problems) = check_record(fmt, rec);
        if let Some(count) = o.tokens {
            match count(&turns) {
                Ok(n) => {
                    self.tokens.add(n as u64);
                    if o.context.is_some_and(|c| n > c) {
                        self.over_context += 1;
                    }
                }
                // A record the prompt format cannot render (a template that refuses its roles)
                // is a problem of that record, not the end of the count.
                Err(e) => {
                    self.untokenized += 1;
                    problems.push(Problem {
                        record: rec.index,
                        path: format!("$[{}]", rec.index),
                        message: format!("not counted in tokens: {e}"),
                    });
                }
            }
        }
        self.stats.add(&turns, problems.len());
        let room = o.max_problems.saturating_sub(self.problems.len());
        self.problems.extend(problems.into_iter().take(room));
        if o.languages {
            *self.languages.entry(language(&turns)).or_default() += 1;
        }
    }

    /// Adds the counts of the records after these (problems stay in record order, `max` kept).
    fn merge(&mut self, o: Acc, max: usize) {
        self.stats.merge(&o.stats);
        let room = max.saturating_sub(self.problems.len());
        self.problems.extend(o.problems.into_iter().take(room));
        self.tokens.merge(&o.tokens);
        self.over_context += o.over_context;
        for (k, n) in o.languages {
            *self.languages.entry(k).or_default() += n;
        }
        self.untokenized += o.untokenized;
    }
}

/// The language of a record: (ISO 639-3 code, English name).
fn language(turns: &[Turn]) -> (String, String) {
    let mut head = String::new();
    let mut room = 1000;
    for t in turns.iter().filter(|t| t.role != "system") {
        head.extend(t.text.chars().take(room));
        head.push('\n');
        room = room.saturating_sub(t.text.chars().count() + 1);
        if room == 0 {
            break;
        }
    }
    match whatlang::detect(&head) {
        Some(info) if info.is_reliable() => (info.lang().code().to_string(), info.lang().eng_name().to_string()),
        _ => ("und".to_string(), "undetermined".to_string()),
    }
}

const CHUNK: usize = 32;

/// Reads, checks and counts every record of `path`.
pub fn scan(path: &Path, o: &ScanOptions) -> Result<ScanReport> {
    let mut acc = Acc::default();
    let work = |fmt: Format, records: &[Record]| {
        let mut part = Acc::default();
        for rec in records {
            part.take(fmt, rec, o);
        }
        part
    };
    let (read, detected) = map_chunks(path, o.format, (o.threads, CHUNK), o.watch, work, |part| {
        acc.merge(part, o.max_problems);
        true
    });
    let mut error = None;
    match read {
        Ok((format, _)) => acc.stats.format = format,
        // A file cut short or broken part way: the records before the break are counted, the
        // break is a problem of the record it falls in.
        Err(DataError::Json { record, line, column, message, eof, .. }) => {
            let what = if eof {
                format!("the file ends inside this record (cut short?) at line {line}, column {column}")
            } else {
                format!("not valid JSON at line {line}, column {column}: {message}")
            };
            error = Some(format!("record {record}: {what}"));
            acc.stats.problems += 1;
            acc.stats.records_with_problems += 1;
            acc.problems.push(Problem { record, path: format!("$[{record}]"), message: what });
            acc.stats.format = o.format.or(detected);
        }
        Err(e) => return Err(e),
    }
    acc.problems.truncate(o.max_problems.max(usize::from(error.is_some())));
    let records = acc.stats.records;
    let share = |n: usize| if records == 0 { 0.0 } else { n as f64 / records as f64 };
    let tokens = o.tokens.map(|_| {
        let t = &acc.tokens;
        TokenStats {
            total: t.sum,
            mean: if t.count == 0 { 0.0 } else { t.sum as f64 / t.count as f64 },
            p50: t.quantile(0.5),
            p90: t.quantile(0.9),
            p99: t.quantile(0.99),
            max: t.max,
            histogram: t.pow2_histogram(),
            context: o.context,
            over_context: acc.over_context,
            over_context_share: share(acc.over_context),
            untokenized: acc.untokenized,
        }
    });
    let mut languages: Vec<LanguageCount> = acc
        .languages
        .into_iter()
        .map(|((code, name), n)| LanguageCount { code, name, records: n, share: share(n) })
        .collect();
    languages.sort_by(|a, b| b.records.cmp(&a.records).then_with(|| a.code.cmp(&b.code)));
    Ok(ScanReport {
        file: path.display().to_string(),
        stats: acc.stats,
        problem_list: acc.problems,
        tokens,
        languages,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_every_value_once_and_in_order() {
        let mut last = None;
        for v in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, u64::from(u32::MAX)]) {
            let b = bin_of(v);
            assert!(bin_top(b) >= v, "{v}: bin {b} tops at {}", bin_top(b));
            if b > 0 {
                assert!(bin_top(b - 1) < v, "{v}: bin {b}");
            }
            if let Some(l) = last {
                assert!(b >= l);
            }
            last = Some(b);
            // Relative error of the bin's top: exact below 1024, under 1/64 above.
            assert!((bin_top(b) - v) as f64 <= v as f64 / 64.0, "{v}");
        }
    }

    #[test]
    fn quantiles_and_histogram_of_known_lengths() {
        let mut l = Lengths::default();
        for v in 1..=100u64 {
            l.add(v);
        }
        assert_eq!((l.quantile(0.5), l.quantile(0.9), l.quantile(0.99), l.max), (50, 90, 99, 100));
        assert_eq!(l.pow2_histogram(), vec![(1, 1), (2, 1), (4, 2), (8, 4), (16, 8), (32, 16), (64, 32), (128, 36)]);
        let mut big = Lengths::default();
        for v in [3000u64, 5000, 70000] {
            big.add(v);
        }
        assert_eq!(big.pow2_histogram(), vec![(4096, 1), (8192, 1), (131072, 1)]);
        assert!((big.quantile(0.5) as f64 - 5000.0).abs() <= 5000.0 / 64.0);
        assert_eq!(big.quantile(1.0), 70000);
    }
}

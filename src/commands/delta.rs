//! `zoo delta apply|make`: runs `zoo_ops::delta` and prints what was written.

use std::io::Write;

use zoo_ops::delta::{self, ApplyRequest, DeltaOutput, MakeRequest};
use zoo_weights::{Algorithm, DeltaOptions, WriteOptions};

use super::{Ctx, drive};
use crate::EXIT_OK;
use crate::cli::{DeltaAlgorithm, DeltaCommand, WriteArgs};

const ON_INTERRUPT: &str = "removing the unfinished output";

pub async fn delta(ctx: &Ctx, out: &mut dyn Write, cmd: DeltaCommand) -> anyhow::Result<u8> {
    let (report, w, verb) = match cmd {
        DeltaCommand::Apply(a) => {
            let req = ApplyRequest {
                base: a.base.clone(),
                delta: a.delta.clone(),
                algorithm: match a.algorithm {
                    DeltaAlgorithm::Fastchat => Algorithm::Fastchat,
                    DeltaAlgorithm::Llmzoo => Algorithm::Llmzoo,
                    DeltaAlgorithm::Huatuo => Algorithm::Huatuo,
                    DeltaAlgorithm::Auto => Algorithm::Auto,
                },
                out: a.write.out.clone(),
                options: options(&a.write),
            };
            let zoo = ctx.zoo.clone();
            let r =
                drive(
                    a.write.progress,
                    ON_INTERRUPT,
                    move |cx| async move { delta::apply(&zoo, &req, &cx.control).await },
                )
                .await?;
            (r, a.write, "applied")
        }
        DeltaCommand::Make(a) => {
            let req = MakeRequest {
                base: a.base.clone(),
                target: a.target.clone(),
                out: a.write.out.clone(),
                options: options(&a.write),
            };
            let r =
                drive(a.write.progress, ON_INTERRUPT, move |cx| async move { delta::make(&req, &cx.control).await })
                    .await?;
            (r, a.write, "made")
        }
    };
    print_report(ctx, out, &report, &w, verb)?;
    Ok(EXIT_OK)
}

fn options(w: &WriteArgs) -> DeltaOptions {
    DeltaOptions {
        write: WriteOptions { max_shard_size: w.max_shard_size, overwrite: w.overwrite },
        ..DeltaOptions::default()
    }
}

fn print_report(ctx: &Ctx, out: &mut dyn Write, r: &DeltaOutput, w: &WriteArgs, verb: &str) -> anyhow::Result<()> {
    if w.json {
        return crate::output::write_json(out, r);
    }
    writeln!(
        out,
        "{verb} with algorithm {} ({}): {} tensors, {} in {} shard(s) → {}",
        r.algorithm,
        r.reason,
        r.tensors,
        crate::progress::human_bytes(r.tensor_bytes),
        r.shards,
        r.out.display()
    )?;
    for d in &r.dropped {
        writeln!(out, "  dropped {d}")?;
    }
    let mut t = crate::output::Table::new(["FILE", "SIZE", "SHA256"]).right_align(&[1]);
    for f in &r.files {
        t.push(vec![f.path.clone(), f.size.to_string(), f.sha256.clone()]);
    }
    t.write_text(out, ctx.style)?;
    Ok(())
}

//! `zoo env`: every resolved path and setting, and where it came from.

use std::io::Write;

use serde::Serialize;

use super::Ctx;
use crate::EXIT_OK;
use crate::cli::JsonArg;
use crate::paths;

#[derive(Serialize)]
struct Row {
    name: &'static str,
    value: String,
    source: String,
}

pub async fn env(ctx: &Ctx, out: &mut dyn Write, a: JsonArg) -> anyhow::Result<u8> {
    let mut rows = vec![
        Row { name: "zoo_version", value: env!("CARGO_PKG_VERSION").into(), source: "build".into() },
        Row { name: "database", value: ctx.db.value.display().to_string(), source: ctx.db.source.clone() },
    ];
    let schema = if ctx.db.value.exists() {
        // Read-only look: `env` must work even when the database is broken.
        match zoo_registry::Registry::open(&ctx.db.value).await {
            Ok(r) => {
                let v = r.schema_version().await.map(|v| v.to_string()).unwrap_or_else(|e| format!("unreadable: {e}"));
                r.close().await;
                v
            }
            Err(e) => format!("unusable: {e}"),
        }
    } else {
        "not created yet".into()
    };
    rows.push(Row {
        name: "database_schema",
        value: schema,
        source: format!("this zoo knows up to {}", zoo_registry::known_schema_version()),
    });
    rows.push(Row {
        name: "catalog",
        value: ctx.catalog.value.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in".into()),
        source: ctx.catalog.source.clone(),
    });
    let hf = paths::hf_cache();
    rows.push(Row {
        name: "hf_cache",
        value: hf.value.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
        source: hf.source,
    });
    rows.push(Row {
        name: "hf_offline",
        value: paths::hf_offline().to_string(),
        source: if std::env::var_os("HF_HUB_OFFLINE").is_some() { "HF_HUB_OFFLINE".into() } else { "default".into() },
    });
    rows.push(Row {
        name: "color",
        value: ctx.style.color.to_string(),
        source: if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            "NO_COLOR".into()
        } else {
            "--color / ZOO_COLOR / terminal".into()
        },
    });
    if a.json {
        crate::output::write_json(out, &rows)?;
    } else {
        let mut t = crate::output::Table::new(["SETTING", "VALUE", "FROM"]);
        for r in rows {
            t.push(vec![r.name.to_string(), r.value, r.source]);
        }
        t.write_text(out, ctx.style)?;
    }
    Ok(EXIT_OK)
}

//! `zoo`: the command-line front end. Only glue lives here: argument parsing (clap), reading
//! the environment, printing, and exit codes. Every real operation is a library call into
//! `crates/`.

mod cli;
mod commands;
mod keys;
mod output;
mod paths;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// Exit codes: 0 ok, 1 nothing found or a check failed, 2 error (usage errors too, via clap).
pub const EXIT_OK: u8 = 0;
pub const EXIT_NOT_FOUND: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let style = output::Style { color: output::use_color(cli.color) };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return report(&anyhow::Error::from(e), style),
    };
    match runtime.block_on(commands::run(cli, &matches, style)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => report(&e, style),
    }
}

/// Print `error: ...` plus one hint line; a closed stdout (`zoo list | head`) is not an error.
fn report(e: &anyhow::Error, style: output::Style) -> ExitCode {
    if e.chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
    {
        return ExitCode::from(EXIT_OK);
    }
    eprintln!("{} {e:#}", style.red("error:"));
    if let Some(h) = commands::hint_for(e) {
        eprintln!("{} {h}", style.dim("hint:"));
    }
    // A checkpoint that was refused (broken, hostile, mismatched) is a failed check: exit 1.
    if e.chain().any(|c| {
        c.downcast_ref::<zoo_weights::WeightsError>().is_some()
            || c.downcast_ref::<zoo_infer::InferError>().is_some()
            || c.downcast_ref::<zoo_ops::OpsError>().is_some_and(zoo_ops::OpsError::is_failed_check)
            || c.downcast_ref::<zoo_hub::HubError>().is_some_and(zoo_ops::error::hub_check_failed)
    }) {
        return ExitCode::from(EXIT_NOT_FOUND);
    }
    ExitCode::from(EXIT_ERROR)
}

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
    quiet_candle_pool();
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

/// candle's element-wise maps over prompt-sized tensors run on a pool of its own, whose idle
/// workers spin 25,000 pauses (about half a millisecond) after every map before they sleep.
/// Between two maps of a prompt come the model's matrix products on the kernels' pool, so those
/// spinning workers took cores from them: 12% of a SmolLM2 prompt's CPU time, prompts 20-40%
/// slower on 2 cores (docs/BENCHMARKS.md, round 3). Sleeping at once costs a wake-up per map,
/// microseconds. A value the user set is kept.
fn quiet_candle_pool() {
    const SPIN: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN).is_none() {
        // SAFETY: the first thing `main` does: no other thread exists yet, so nothing reads or
        // writes the environment at the same time. candle reads it when its pool starts.
        unsafe { std::env::set_var(SPIN, "0") };
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
    // A checkpoint that was refused (broken, hostile, mismatched) is a failed check: exit 1. A
    // file that cannot be read or written (a full disk) is the machine's failure: exit 2.
    if e.chain().any(|c| {
        c.downcast_ref::<zoo_weights::WeightsError>().is_some_and(zoo_weights::WeightsError::is_refusal)
            || c.downcast_ref::<zoo_infer::InferError>().is_some_and(zoo_infer::InferError::is_refusal)
            || c.downcast_ref::<zoo_ops::OpsError>().is_some_and(zoo_ops::OpsError::is_failed_check)
            || c.downcast_ref::<zoo_hub::HubError>().is_some_and(zoo_ops::error::hub_check_failed)
    }) {
        return ExitCode::from(EXIT_NOT_FOUND);
    }
    ExitCode::from(EXIT_ERROR)
}

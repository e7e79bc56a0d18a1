//! `cargo xtask`: the project's automation — the test suite, the performance gate and baselines.
//!
//! `main` parses flags and hands off to one module per subcommand. Every child process goes
//! through [`cmd`], so arguments are never pasted into a shell string.

mod cmd;
mod flags;
mod test;

use std::process::ExitCode;

use clap::Parser;

use crate::flags::{BaselineCommand, Command, Flags};

/// Exit code for "the command could not do its job": bad usage, bad data, a failing tool.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let result = match flags.command {
        Command::Test(args) => test::run(&args).map(|()| ExitCode::SUCCESS),
        Command::PerfGate(_) => Err(anyhow::anyhow!(
            "`cargo xtask perf-gate` is not built yet (tracked as the regression gate issue)"
        )),
        Command::Baseline(BaselineCommand::Refresh(_)) => Err(anyhow::anyhow!(
            "`cargo xtask baseline refresh` is not built yet (tracked as the regression gate issue)"
        )),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

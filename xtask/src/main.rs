//! `cargo xtask`: the project's automation — the test suite, the performance gate and baselines.
//!
//! `main` parses flags and hands off to one module per subcommand. Every child process goes
//! through [`cmd`], so arguments are never pasted into a shell string.

mod baseline;
mod bench_run;
mod calibrate;
mod cmd;
mod flags;
mod git;
mod lint;
mod load;
mod mutations;
mod paired;
mod paths;
mod perf_gate;
mod progress;
mod services;
mod suites;
mod test;

use std::process::ExitCode;

use clap::Parser;

use crate::flags::{BaselineCommand, Command, Flags, GateCommand};

fn main() -> ExitCode {
    let flags = Flags::parse();
    let result = match flags.command {
        Command::Test(args) => test::run(&args).map(|()| ExitCode::SUCCESS),
        Command::PerfGate(args) => perf_gate::run(&args),
        Command::Baseline(BaselineCommand::Refresh(args)) => {
            baseline::refresh(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Gate(GateCommand::Calibrate(args)) => calibrate::run(&args),
        Command::Load(args) => load::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            // "The command could not do its job": bad usage, bad data, a failing tool; the
            // gate's own code for an error, so that every exit 2 means the same.
            ExitCode::from(gate::Error::EXIT_CODE)
        }
    }
}

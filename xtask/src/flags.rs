//! Command-line flags of `cargo xtask`, one struct per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
pub(crate) struct Flags {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run everything CI runs: format check, clippy, the test suites, the benchmarks in test mode.
    Test(TestArgs),
    /// Compare benchmark results with the committed baselines; exit 1 on a regression.
    PerfGate(PerfGateArgs),
    /// Manage the committed baselines.
    #[command(subcommand)]
    Baseline(BaselineCommand),
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (useful while iterating on a test).
    #[arg(long)]
    pub(crate) no_lint: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PerfGateArgs {
    /// Compare the results already on disk instead of running the suites first.
    #[arg(long)]
    pub(crate) no_run: bool,
    /// Where criterion wrote its results.
    #[arg(long, value_name = "DIR", default_value = "target/criterion")]
    pub(crate) criterion_dir: PathBuf,
    /// Where the committed baselines live.
    #[arg(long, value_name = "DIR", default_value = "baselines")]
    pub(crate) baseline_dir: PathBuf,
    /// Also write the report as JSON.
    #[arg(long, value_name = "PATH")]
    pub(crate) json: Option<PathBuf>,
    /// Also write the report as Markdown.
    #[arg(long, value_name = "PATH")]
    pub(crate) markdown: Option<PathBuf>,
    /// Also write the report as JUnit XML.
    #[arg(long, value_name = "PATH")]
    pub(crate) junit: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BaselineCommand {
    /// Rewrite the baselines from benchmark results.
    Refresh(RefreshArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RefreshArgs {
    /// Use the results already on disk instead of running the suites first.
    #[arg(long)]
    pub(crate) no_run: bool,
    /// Where criterion wrote its results.
    #[arg(long, value_name = "DIR", default_value = "target/criterion")]
    pub(crate) criterion_dir: PathBuf,
    /// Where the committed baselines live.
    #[arg(long, value_name = "DIR", default_value = "baselines")]
    pub(crate) baseline_dir: PathBuf,
}

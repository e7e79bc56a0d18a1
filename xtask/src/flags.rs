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
    /// Measure the gate itself.
    #[command(subcommand)]
    Gate(GateCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum GateCommand {
    /// Measure the gate's false alarms and detections on this machine: A/A rounds (the same
    /// code twice) and A/B rounds with a latency and an allocation regression injected into the
    /// calibration suite.
    Calibrate(CalibrateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    /// Rounds of each kind (A/A, latency A/B, allocation A/B).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) rounds: u32,
    /// The injected latency factor (work per iteration multiplied by it).
    #[arg(long, default_value_t = 1.30)]
    pub(crate) latency_factor: f64,
    /// The injected allocation factor (allocations per iteration multiplied by it).
    #[arg(long, default_value_t = 1.35)]
    pub(crate) allocation_factor: f64,
    /// Arguments passed on to criterion, after `--`.
    #[arg(last = true, value_name = "CRITERION_ARGS")]
    pub(crate) criterion_args: Vec<String>,
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
    /// Where criterion wrote its results [default: $CRITERION_HOME, else
    /// $CARGO_TARGET_DIR/criterion, else target/criterion in the workspace].
    #[arg(long, value_name = "DIR")]
    pub(crate) criterion_dir: Option<PathBuf>,
    /// Where the committed baselines live [default: baselines/ in the workspace].
    #[arg(long, value_name = "DIR")]
    pub(crate) baseline_dir: Option<PathBuf>,
    /// Threshold overrides; an explicit file must exist [default: perf-gate.toml in the
    /// workspace, if present].
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// Also write the report as JSON.
    #[arg(long, value_name = "PATH")]
    pub(crate) json: Option<PathBuf>,
    /// Also write the report as Markdown (it is also appended to $GITHUB_STEP_SUMMARY when set).
    #[arg(long, value_name = "PATH")]
    pub(crate) markdown: Option<PathBuf>,
    /// Also write the report as JUnit XML.
    #[arg(long, value_name = "PATH")]
    pub(crate) junit: Option<PathBuf>,
    /// Run only this suite (repeatable) [default: every suite under benches/ except
    /// `calibration`, which measures the gate itself].
    #[arg(long = "suite", value_name = "NAME")]
    pub(crate) suites: Vec<String>,
    /// Arguments passed on to criterion, after `--` (e.g. `-- --sample-size 20`).
    #[arg(last = true, value_name = "CRITERION_ARGS")]
    pub(crate) criterion_args: Vec<String>,
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
    /// Where criterion wrote its results [default: $CRITERION_HOME, else
    /// $CARGO_TARGET_DIR/criterion, else target/criterion in the workspace].
    #[arg(long, value_name = "DIR")]
    pub(crate) criterion_dir: Option<PathBuf>,
    /// Where the committed baselines live [default: baselines/ in the workspace].
    #[arg(long, value_name = "DIR")]
    pub(crate) baseline_dir: Option<PathBuf>,
    /// Run only this suite (repeatable) [default: every suite under benches/ except
    /// `calibration`, which measures the gate itself].
    #[arg(long = "suite", value_name = "NAME")]
    pub(crate) suites: Vec<String>,
    /// Arguments passed on to criterion, after `--` (e.g. `-- --sample-size 20`).
    #[arg(last = true, value_name = "CRITERION_ARGS")]
    pub(crate) criterion_args: Vec<String>,
}

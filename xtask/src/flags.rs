//! Command-line flags of `cargo xtask`, one struct per subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
pub(crate) struct Flags {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per run: boxing would buy nothing"
)]
pub(crate) enum Command {
    /// Run everything CI runs: format check, clippy, the test suites, the benchmarks in test mode.
    Test(TestArgs),
    /// Judge the working tree against the base revision (paired, the default) or against the
    /// committed baselines (stored); exit 1 on a regression.
    PerfGate(PerfGateArgs),
    /// Manage the committed baselines.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Measure the gate itself.
    #[command(subcommand)]
    Gate(GateCommand),
    /// Load-test the gRPC API: build commerce-server and commerce-load (optimised), then run
    /// `commerce-load ARGS` (a profile such as `smoke`, or `serve`, `merge`, `list`; `cargo
    /// xtask load --help` shows its flags).
    #[command(disable_help_flag = true)]
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The arguments of commerce-load.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub(crate) args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GateCommand {
    /// Measure the gate's false alarms and detections on this machine: on the calibration suite
    /// (A/A rounds and injected regressions), or with `--mutations` on the real suites
    /// (realistic regression patches applied to `crates/`).
    Calibrate(CalibrateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    /// Calibrate the paired gate on the real suites with the regression patches under
    /// `xtask/mutations/` instead of the calibration suite.
    #[arg(long)]
    pub(crate) mutations: bool,
    /// With `--mutations`: only the mutations whose file name contains this (repeatable).
    #[arg(long = "mutation", value_name = "NAME", requires = "mutations")]
    pub(crate) only: Vec<String>,
    /// Rounds: of each kind on the calibration suite (A/A, latency A/B, allocation A/B); with
    /// `--mutations`, gate runs per mutation and A/A runs [default: 10, or 3 with
    /// `--mutations`].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) rounds: Option<u32>,
    /// The injected latency factor (work per iteration multiplied by it).
    #[arg(long, default_value_t = 1.30)]
    pub(crate) latency_factor: f64,
    /// The injected allocation factor (allocations per iteration multiplied by it).
    #[arg(long, default_value_t = 1.35)]
    pub(crate) allocation_factor: f64,
    /// Arguments passed on to criterion, after `--` (calibration suite only).
    #[arg(last = true, value_name = "CRITERION_ARGS")]
    pub(crate) criterion_args: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (useful while iterating on a test).
    #[arg(long)]
    pub(crate) no_lint: bool,
}

/// What `perf-gate` and `baseline refresh` share: where results and baselines are, which
/// suites run, and criterion's arguments.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Use the results already on disk instead of running the suites first (stored mode).
    #[arg(long)]
    pub(crate) no_run: bool,
    /// Where criterion writes its results [default: $CRITERION_HOME, else
    /// $CARGO_TARGET_DIR/criterion, else target/criterion in the workspace].
    #[arg(long, value_name = "DIR")]
    pub(crate) criterion_dir: Option<PathBuf>,
    /// Where the baselines live [default: baselines/ in the workspace; in paired mode, the
    /// base revision's].
    #[arg(long, value_name = "DIR")]
    pub(crate) baseline_dir: Option<PathBuf>,
    /// Run only this suite (repeatable) [default: every suite under benches/ except
    /// `calibration`, which measures the gate itself].
    #[arg(long = "suite", value_name = "NAME")]
    pub(crate) suites: Vec<String>,
    /// Arguments passed on to criterion, after `--` (e.g. `-- --sample-size 20`; stored mode
    /// and refresh only).
    #[arg(last = true, value_name = "CRITERION_ARGS")]
    pub(crate) criterion_args: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PerfGateArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// The base revision latency is judged against [default: the merge-base of HEAD with
    /// origin/main (else main); HEAD itself on the main branch].
    #[arg(
        long,
        value_name = "REV",
        conflicts_with_all = ["stored", "no_run"],
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub(crate) base: Option<String>,
    /// Judge latency against the baselines' recorded latency instead of the base revision
    /// measured beside the change (implied by --no-run).
    #[arg(long)]
    pub(crate) stored: bool,
    /// Threshold overrides; an explicit file must exist [default: perf-gate.toml of the
    /// workspace (stored mode) or of the base revision (paired mode), if present].
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
    #[command(flatten)]
    pub(crate) paired: PairedArgs,
}

/// How the paired runner measures (the defaults are what the gate was calibrated with).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Paired runner")]
pub(crate) struct PairedArgs {
    /// Measured time a slice aims at.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) slice: Option<Duration>,
    /// Blocks before the first decision.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(7..=10_000))]
    pub(crate) min_blocks: Option<u32>,
    /// Blocks of one sequence, at most.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(7..=10_000))]
    pub(crate) max_blocks: Option<u32>,
    /// Wall time of one sequence, at most.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) max_time: Option<Duration>,
    /// Do not confirm a latency regression with a second sequence.
    #[arg(long)]
    pub(crate) no_confirm: bool,
    /// Processes per side; blocks rotate over them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=8))]
    pub(crate) pairs: Option<u32>,
    /// Set a variable in the base side's environment only (`NAME=VALUE`, repeatable; for
    /// calibrating the gate with an injected difference).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub(crate) base_env: Vec<(String, String)>,
    /// Set a variable in the change side's environment only (`NAME=VALUE`, repeatable).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub(crate) candidate_env: Vec<(String, String)>,
}

impl PairedArgs {
    /// The runner's settings: the defaults, with what the flags set.
    pub(crate) fn settings(&self) -> gate::runner::Settings {
        let mut settings = gate::runner::Settings::default();
        if let Some(slice) = self.slice {
            settings.slice = slice;
        }
        if let Some(n) = self.min_blocks {
            settings.min_blocks = n as usize;
        }
        if let Some(n) = self.max_blocks {
            settings.max_blocks = n as usize;
        }
        settings.max_blocks = settings.max_blocks.max(settings.min_blocks);
        if let Some(time) = self.max_time {
            settings.max_time = time;
        }
        settings.confirm = !self.no_confirm;
        if let Some(pairs) = self.pairs {
            settings.pairs = pairs as usize;
        }
        settings
    }
}

/// The shortest duration `--slice` and `--max-time` take: a slice shorter than a millisecond
/// would measure the timer more than the benchmark.
const MIN_DURATION: Duration = Duration::from_millis(1);

/// The longest: a day, far beyond any useful slice or sequence, and far from the overflow of
/// `Duration` (and of the arithmetic the runner does with it).
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// `250ms`, `2s`, `1.5s`, `3m`; from [`MIN_DURATION`] to [`MAX_DURATION`].
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, ""), |at| text.split_at(at));
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 25ms, 2s or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("{text:?} must be a positive duration"));
    }
    let too_long = || format!("{text:?} is too long: a duration is at most 24 hours (1440m)");
    let duration = Duration::try_from_secs_f64(seconds).map_err(|_| too_long())?;
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    if duration < MIN_DURATION {
        return Err(format!(
            "{text:?} is too short: a duration is at least 1 millisecond (1ms)"
        ));
    }
    Ok(duration)
}

/// `NAME=VALUE`.
fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum BaselineCommand {
    /// Rewrite the baselines from benchmark results.
    Refresh(RefreshArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RefreshArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The subcommand of `cargo xtask ARGS`, for the tests of the modules that run it.
#[cfg(test)]
pub(crate) fn parse(args: &[&str]) -> Command {
    Flags::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
        .unwrap_or_else(|err| panic!("{args:?}: {err}"))
        .command
}

/// `cargo xtask perf-gate ARGS`, for tests.
#[cfg(test)]
pub(crate) fn perf_gate(args: &[&str]) -> PerfGateArgs {
    match parse(&[&["perf-gate"], args].concat()) {
        Command::PerfGate(args) => args,
        other => unreachable!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_assignments() {
        assert_eq!(parse_duration("25ms"), Ok(Duration::from_millis(25)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1h").is_err());
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_duration("1440m"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            parse_assignment("CALIBRATION_WORK=1.5"),
            Ok(("CALIBRATION_WORK".to_owned(), "1.5".to_owned()))
        );
        assert!(parse_assignment("=1").is_err());
        assert!(parse_assignment("nothing").is_err());
    }

    #[test]
    fn durations_out_of_range_are_errors_not_panics() {
        for huge in ["99999999999999999999s", "999999999999999999m", "1441m"] {
            let err = parse_duration(huge).unwrap_err();
            assert!(err.contains("at most 24 hours"), "{huge}: {err}");
        }
        for tiny in ["0.0000000001ms", "0.5ms", "0.0009s"] {
            let err = parse_duration(tiny).unwrap_err();
            assert!(err.contains("at least 1 millisecond"), "{tiny}: {err}");
        }
        for nonsense in ["NaNs", "infs", "0s"] {
            assert!(parse_duration(nonsense).is_err(), "{nonsense}");
        }
        // Through clap: a usage error (exit code 2), not a panic.
        for flag in ["--slice", "--max-time"] {
            let err =
                Flags::try_parse_from(["cargo xtask", "perf-gate", flag, "99999999999999999999s"])
                    .unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn an_empty_base_is_a_usage_error() {
        let err = Flags::try_parse_from(["cargo xtask", "perf-gate", "--base", ""]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("--base"), "{err}");
        assert!(Flags::try_parse_from(["cargo xtask", "perf-gate", "--base", "main"]).is_ok());
    }

    #[test]
    fn the_flags_are_consistent() {
        use clap::CommandFactory;
        Flags::command().debug_assert();
    }
}

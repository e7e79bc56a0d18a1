//! `cargo xtask perf-gate`: judge the working tree. Paired by default (the base revision built
//! and measured beside it, see [`crate::paired`]); stored with `--stored`, `--no-run`, or where
//! no base revision can be found (compare criterion's results with the committed baselines,
//! confirm latency regressions by re-running them). Then print the verdict and write the
//! requested reports.
//!
//! The logic lives in the `gate` crate; this module resolves paths, runs cargo, and writes
//! files. Exit codes: 0 no regression, 1 at least one regression (or, paired, a missing
//! benchmark), 2 usage or data error.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use gate::render::{json, junit, markdown, terminal};
use gate::{Config, Fingerprint, GateOptions, Report};

use crate::bench_run::{self, Session};
use crate::flags::PerfGateArgs;
use crate::{git, paired, paths, suites};

/// The report files to write, and `$GITHUB_STEP_SUMMARY`.
struct Outputs {
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
    junit: Option<PathBuf>,
    step_summary: Option<PathBuf>,
}

impl Outputs {
    /// Checks, before anything is built or measured, that every report file can be written:
    /// a run of many minutes must not end in "cannot write the report". Creates the missing
    /// parent directories (the final write would create them too).
    fn check(&self) -> anyhow::Result<()> {
        let files = [
            ("--json", &self.json),
            ("--markdown", &self.markdown),
            ("--junit", &self.junit),
        ];
        for (flag, path) in files {
            if let Some(path) = path {
                gate::baseline::check_writable(path).with_context(|| flag.to_owned())?;
            }
        }
        Ok(())
    }

    /// Writes every report it can: one that cannot be written does not keep the others from
    /// being written. Returns the first failure.
    fn write(&self, json: &str, markdown: &str, junit: &str) -> anyhow::Result<()> {
        let files = [
            ("--json", &self.json, json),
            ("--markdown", &self.markdown, markdown),
            ("--junit", &self.junit, junit),
        ];
        let mut failed = None;
        for (flag, path, contents) in files {
            if let Some(path) = path {
                match gate::baseline::write_atomically(path, contents.as_bytes())
                    .with_context(|| format!("cannot write the report of {flag}"))
                {
                    Ok(()) => eprintln!("wrote {}", path.display()),
                    Err(err) => {
                        failed.get_or_insert(err);
                    }
                }
            }
        }
        if let Some(path) = &self.step_summary {
            // Appended, not replaced: other steps of the job write to the same summary.
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(markdown.as_bytes()))
                .with_context(|| {
                    format!("cannot append to $GITHUB_STEP_SUMMARY ({})", path.display())
                });
            if let Err(err) = appended {
                failed.get_or_insert(err);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

pub(crate) fn run(args: &PerfGateArgs) -> anyhow::Result<ExitCode> {
    let outputs = Outputs {
        json: args.json.clone(),
        markdown: args.markdown.clone(),
        junit: args.junit.clone(),
        step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    };
    // A report that cannot be written is a usage error, found before any build; the reports
    // that can be written say so.
    match outputs.check().and_then(|()| judge(args)) {
        Ok(report) => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print!("{}", terminal::render(&report, colour));
            outputs.write(
                &json::render(&report),
                &markdown::render(&report),
                &junit::render(&report),
            )?;
            Ok(ExitCode::from(report.exit_code()))
        }
        Err(err) => {
            let message = format!("{err:#}");
            // The reports say "error" too, so CI shows why there is no verdict; failing to write
            // them must not hide the original error.
            if let Err(write_error) = outputs.write(
                &json::render_error(&message),
                &markdown::render_error(&message),
                &junit::render_error(&message),
            ) {
                eprintln!("warning: {write_error:#}");
            }
            Err(err)
        }
    }
}

/// Picks the mode and returns its report.
fn judge(args: &PerfGateArgs) -> anyhow::Result<Report> {
    if args.run.no_run || args.stored {
        return judge_stored(args);
    }
    let root = paths::project_root();
    match git::find_base(&root, args.base.as_deref())? {
        Some(base) => paired::judge(args, &base),
        None => {
            eprintln!(
                "perf-gate: WARNING: no base revision to measure beside the working tree (not a \
                 git checkout, or no main branch in its history): judging latency in STORED \
                 mode, against the committed baselines; pass --base REV after fetching one"
            );
            judge_stored(args)
        }
    }
}

/// Stored mode: runs the suites under criterion (unless `--no-run`) and returns the confirmed
/// report against the committed baselines.
fn judge_stored(args: &PerfGateArgs) -> anyhow::Result<Report> {
    let root = paths::project_root();
    let criterion_dir = paths::criterion_dir(args.run.criterion_dir.as_deref());
    let baseline_dir = paths::baseline_dir(args.run.baseline_dir.as_deref());
    let mut options = GateOptions {
        criterion_dir: criterion_dir.clone(),
        baseline_dir: baseline_dir.clone(),
        config: paths::config_file(args.config.as_deref(), &root),
        newer_than: None,
        suites: (!args.run.suites.is_empty()).then(|| args.run.suites.iter().cloned().collect()),
        fingerprint: Fingerprint::current(&root),
    };
    // `--suite` names a suite of the workspace in every mode, with or without `--no-run`.
    let suites = suites::select(&root, &args.run.suites)?;
    if args.run.no_run {
        return Ok(gate::run_gate(&options)?);
    }

    // Read the configuration and the baselines first: a missing or corrupt one must stop the
    // gate before the suites run for minutes, not after.
    Config::load(&options.config)?;
    let baselines = gate::baseline::read_dir(&baseline_dir)?;

    let session = Session::start(
        &root,
        "perf-gate",
        &suites,
        &criterion_dir,
        args.run.criterion_args.clone(),
    )?;
    let started = session.run_suites(&suites, &bench_run::benchmark_counts(&baselines))?;

    options.newer_than = Some(started);
    options.suites = Some(suites.iter().cloned().collect());
    let mut report = gate::run_gate(&options)?;
    bench_run::confirm(&session.built, &session.runner, &options, &mut report)?;
    drop(session);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(json: Option<PathBuf>, markdown: Option<PathBuf>) -> Outputs {
        Outputs {
            json,
            markdown,
            junit: None,
            step_summary: None,
        }
    }

    #[test]
    fn an_unknown_suite_is_named_with_no_run_too() {
        let results = tempfile::tempdir().unwrap();
        let dir = results.path().to_str().unwrap();
        for flags in [
            &["--no-run", "--criterion-dir", dir, "--suite", "nosuch"][..],
            &[
                "--stored",
                "--no-run",
                "--criterion-dir",
                dir,
                "--suite",
                "nosuch",
            ],
        ] {
            let message = format!("{:#}", judge(&crate::flags::perf_gate(flags)).unwrap_err());
            assert!(
                message.starts_with("there is no suite `nosuch`; the suites are: "),
                "{message}"
            );
        }
    }

    #[test]
    fn a_report_that_cannot_be_written_is_found_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("new/dir/report.json");
        outputs(Some(nested.clone()), None).check().unwrap();
        assert!(
            nested.parent().unwrap().is_dir(),
            "its directory is created"
        );
        assert!(!nested.exists());

        let message = format!(
            "{:#}",
            outputs(None, Some(dir.path().to_owned()))
                .check()
                .unwrap_err()
        );
        assert!(message.starts_with("--markdown: "), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("is a directory"), "{message}");

        if cfg!(target_os = "linux") {
            let message = format!(
                "{:#}",
                outputs(Some("/proc/x".into()), None).check().unwrap_err()
            );
            assert!(
                message.starts_with("--json: cannot write /proc/x: "),
                "{message}"
            );
            assert!(!message.contains(".tmp"), "{message}");
        }
    }
}

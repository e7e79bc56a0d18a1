//! `cargo xtask baseline refresh`: rewrite `baselines/<suite>.json` from benchmark results.
//!
//! Without `--no-run` it runs the suites first (services provisioned once, as for the gate)
//! and writes the baselines only when every suite finished: an interrupted run leaves the
//! committed baselines as they were.

use anyhow::Context;
use gate::{Fingerprint, RefreshOptions};

use crate::bench_run::{self, Session};
use crate::flags::RefreshArgs;
use crate::{paths, suites};

pub(crate) fn refresh(args: &RefreshArgs) -> anyhow::Result<()> {
    let root = paths::project_root();
    let args = &args.run;
    let criterion_dir = paths::criterion_dir(args.criterion_dir.as_deref());
    let baseline_dir = paths::baseline_dir(args.baseline_dir.as_deref());
    let mut options = RefreshOptions {
        criterion_dir: criterion_dir.clone(),
        baseline_dir: baseline_dir.clone(),
        newer_than: None,
        suites: (!args.suites.is_empty()).then(|| args.suites.iter().cloned().collect()),
        fingerprint: Fingerprint::current(&root),
    };
    // `--suite` names a suite of the workspace with or without `--no-run`, and the baselines
    // go into a directory: both are checked before the suites run for minutes.
    let suites = suites::select(&root, &args.suites)?;
    gate::baseline::check_dir(&baseline_dir)?;
    if !args.no_run {
        // Progress estimates come from the current baselines, when they can be read.
        let expected = gate::baseline::read_dir(&baseline_dir)
            .map(|baselines| bench_run::benchmark_counts(&baselines))
            .unwrap_or_default();
        let session = Session::start(
            &root,
            "baseline refresh",
            &suites,
            &criterion_dir,
            args.criterion_args.clone(),
        )?;
        let started = session.run_suites(&suites, &expected)?;
        drop(session);
        options.newer_than = Some(started);
        options.suites = Some(suites.into_iter().collect());
    }
    let written = gate::refresh(&options).context("cannot refresh the baselines")?;
    for suite in &written {
        eprintln!(
            "wrote {} ({} benchmarks of suite `{}`)",
            suite.path.display(),
            suite.benchmarks,
            suite.suite
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{BaselineCommand, Command};

    fn refresh_with(flags: &[&str]) -> String {
        let Command::Baseline(BaselineCommand::Refresh(args)) =
            crate::flags::parse(&[&["baseline", "refresh"], flags].concat())
        else {
            unreachable!()
        };
        format!("{:#}", refresh(&args).unwrap_err())
    }

    #[test]
    fn an_unknown_suite_is_named_with_no_run_too() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("criterion");
        let baselines = dir.path().join("baselines");
        let message = refresh_with(&[
            "--no-run",
            "--criterion-dir",
            results.to_str().unwrap(),
            "--baseline-dir",
            baselines.to_str().unwrap(),
            "--suite",
            "nosuch",
        ]);
        assert!(
            message.starts_with("there is no suite `nosuch`; the suites are: "),
            "{message}"
        );
        assert!(!baselines.exists());
    }

    #[test]
    fn a_file_as_baseline_directory_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baselines");
        std::fs::write(&file, "").unwrap();
        let message = refresh_with(&[
            "--no-run",
            "--criterion-dir",
            dir.path().to_str().unwrap(),
            "--baseline-dir",
            file.to_str().unwrap(),
        ]);
        assert!(
            message.contains(&format!("{} is not a directory", file.display())),
            "{message}"
        );
    }
}

//! `cargo xtask baseline refresh`: rewrite `baselines/<suite>.json` from benchmark results.

use std::time::SystemTime;

use anyhow::Context;
use gate::{Fingerprint, RefreshOptions};

use crate::flags::RefreshArgs;
use crate::paths;
use crate::perf_gate::run_benchmarks;

pub(crate) fn refresh(args: &RefreshArgs) -> anyhow::Result<()> {
    let criterion_dir = paths::criterion_dir(args.criterion_dir.as_deref());
    let baseline_dir = paths::baseline_dir(args.baseline_dir.as_deref());
    let started = SystemTime::now();
    if !args.no_run {
        run_benchmarks(&criterion_dir)?;
    }
    let options = RefreshOptions {
        criterion_dir,
        baseline_dir,
        newer_than: (!args.no_run).then_some(started),
        suites: None,
        fingerprint: Fingerprint::current(&paths::project_root()),
    };
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

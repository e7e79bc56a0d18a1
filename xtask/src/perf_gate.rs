//! `cargo xtask perf-gate`: run the benchmark suites (unless `--no-run`), compare the results
//! with the committed baselines, print the verdict and write the requested reports.
//!
//! The logic lives in the `gate` crate; this module only resolves paths, runs cargo, and writes
//! files. Exit codes: 0 no regression, 1 at least one regression, 2 usage or data error.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use gate::render::{json, junit, markdown, terminal};
use gate::{Fingerprint, GateOptions};

use crate::cmd::cargo;
use crate::flags::PerfGateArgs;
use crate::paths;

/// Runs every bench target of the workspace with criterion writing into `criterion_dir`.
pub(crate) fn run_benchmarks(criterion_dir: &Path) -> anyhow::Result<()> {
    // Bench binaries run with the bench crate's directory as working directory, so criterion
    // must be given an absolute path.
    let criterion_dir = std::path::absolute(criterion_dir)
        .with_context(|| format!("cannot resolve {}", criterion_dir.display()))?;
    // `--bench '*'` selects the `[[bench]]` targets only; `--benches` would also run every
    // library's (empty) libtest harness in bench mode.
    cargo()
        .args(["bench", "--workspace", "--bench", "*"])
        .env("CRITERION_HOME", &criterion_dir)
        .run()
}

/// The report files to write, and `$GITHUB_STEP_SUMMARY`.
struct Outputs {
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
    junit: Option<PathBuf>,
    step_summary: Option<PathBuf>,
}

impl Outputs {
    fn write(&self, json: &str, markdown: &str, junit: &str) -> anyhow::Result<()> {
        let files = [
            (&self.json, json),
            (&self.markdown, markdown),
            (&self.junit, junit),
        ];
        for (path, contents) in files {
            if let Some(path) = path {
                gate::baseline::write_atomically(path, contents.as_bytes())
                    .context("cannot write the report")?;
                eprintln!("wrote {}", path.display());
            }
        }
        if let Some(path) = &self.step_summary {
            // Appended, not replaced: other steps of the job write to the same summary.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(markdown.as_bytes()))
                .with_context(|| {
                    format!("cannot append to $GITHUB_STEP_SUMMARY ({})", path.display())
                })?;
        }
        Ok(())
    }
}

pub(crate) fn run(args: &PerfGateArgs) -> anyhow::Result<ExitCode> {
    let criterion_dir = paths::criterion_dir(args.criterion_dir.as_deref());
    let outputs = Outputs {
        json: args.json.clone(),
        markdown: args.markdown.clone(),
        junit: args.junit.clone(),
        step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    };
    let started = SystemTime::now();
    if !args.no_run {
        run_benchmarks(&criterion_dir)?;
    }
    let options = GateOptions {
        criterion_dir,
        baseline_dir: paths::baseline_dir(args.baseline_dir.as_deref()),
        config: paths::config_file(args.config.as_deref()),
        newer_than: (!args.no_run).then_some(started),
        suites: None,
        fingerprint: Fingerprint::current(&paths::project_root()),
    };
    match gate::run_gate(&options) {
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
            let err = anyhow::Error::new(err);
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

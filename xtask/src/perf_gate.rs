//! `cargo xtask perf-gate`: run the benchmark suites (unless `--no-run`), compare the results
//! with the committed baselines, confirm latency regressions by re-running them, print the
//! verdict and write the requested reports.
//!
//! The logic lives in the `gate` crate; this module resolves paths, runs cargo, and writes
//! files. Exit codes: 0 no regression, 1 at least one regression, 2 usage or data error.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, anyhow};
use gate::render::{json, junit, markdown, terminal};
use gate::{Fingerprint, GateOptions, Metric, Report, Status};

use crate::bench_run::{self, Built, Runner, Session, SuiteRun};
use crate::flags::PerfGateArgs;
use crate::{paths, suites};

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
    let outputs = Outputs {
        json: args.json.clone(),
        markdown: args.markdown.clone(),
        junit: args.junit.clone(),
        step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    };
    match judge(args) {
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

/// Runs the suites (unless `--no-run`) and returns the confirmed report.
fn judge(args: &PerfGateArgs) -> anyhow::Result<Report> {
    let root = paths::project_root();
    let criterion_dir = paths::criterion_dir(args.criterion_dir.as_deref());
    let baseline_dir = paths::baseline_dir(args.baseline_dir.as_deref());
    let mut options = GateOptions {
        criterion_dir: criterion_dir.clone(),
        baseline_dir: baseline_dir.clone(),
        config: paths::config_file(args.config.as_deref()),
        newer_than: None,
        suites: (!args.suites.is_empty()).then(|| args.suites.iter().cloned().collect()),
        fingerprint: Fingerprint::current(&root),
    };
    if args.no_run {
        return Ok(gate::run_gate(&options)?);
    }

    let suites = suites::select(&root, &args.suites)?;
    // Read the baselines first: a missing or corrupt one must stop the gate before the
    // suites run for minutes, not after.
    let baselines = gate::baseline::read_dir(&baseline_dir)?;

    let session = Session::start(&root, &suites, &criterion_dir, args.criterion_args.clone())?;
    let started = session.run_suites(&suites, &bench_run::benchmark_counts(&baselines))?;

    options.newer_than = Some(started);
    options.suites = Some(suites.iter().cloned().collect());
    let mut report = gate::run_gate(&options)?;
    confirm(&session.built, &session.runner, &options, &mut report)?;
    drop(session);
    Ok(report)
}

/// Re-runs every benchmark flagged as a latency regression, alone (only the flagged benchmarks
/// of each suite), and keeps a regression only if the second measurement shows it too. A
/// slow moment of a shared machine rarely strikes the same benchmark twice; a real regression
/// does, so a false-alarm rate of p per benchmark becomes about p².
pub(crate) fn confirm(
    built: &Built,
    runner: &Runner,
    options: &GateOptions,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut flagged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for benchmark in &report.benchmarks {
        if benchmark.measured.regressions.contains(&Metric::Latency) {
            flagged
                .entry(benchmark.suite.clone())
                .or_default()
                .push(benchmark.id.clone());
        }
    }
    if flagged.is_empty() {
        return Ok(());
    }
    let count: usize = flagged.values().map(Vec::len).sum();
    eprintln!("perf-gate: {count} latency regression(s) to confirm; re-running them alone");
    let started = SystemTime::now();
    // The suite's reference benchmarks run again too: the confirmation is judged against the
    // machine's speed at the time of the re-run, not of the first run.
    let runs: Vec<SuiteRun> = flagged
        .iter()
        .map(|(suite, ids)| {
            let references: Vec<&str> = report
                .speeds
                .iter()
                .filter(|speed| &speed.suite == suite)
                .flat_map(|speed| speed.references.iter().map(|(id, _)| id.as_str()))
                .collect();
            SuiteRun {
                suite: suite.clone(),
                filter: Some(suites::exact_filter(
                    references
                        .iter()
                        .copied()
                        .chain(ids.iter().map(String::as_str)),
                )),
                expected: ids.len() + references.len(),
            }
        })
        .collect();
    runner.run(built, "confirm", &runs)?;
    let second = gate::run_gate(&GateOptions {
        newer_than: Some(started),
        suites: Some(flagged.keys().cloned().collect::<BTreeSet<_>>()),
        ..options.clone()
    })?;
    for id in flagged.values().flatten() {
        let again = second
            .benchmark(id)
            .filter(|b| b.measured.status != Status::Missing)
            .ok_or_else(|| anyhow!("the confirmation run of {id} produced no result"))?;
        let index = report
            .benchmarks
            .iter()
            .position(|b| &b.id == id)
            .expect("flagged benchmarks come from the report");
        let first = report.benchmarks[index].clone();
        report.benchmarks[index] = first.with_confirmation(again.measured.clone());
    }
    report.refresh_verdict();
    Ok(())
}

//! `cargo xtask gate calibrate`: how often does the gate cry wolf on this machine, and does it
//! catch what it should?
//!
//! The calibration suite (`benches/calibration`) is measured once as the baseline. Then, for
//! each round, three runs are judged by the gate exactly as `perf-gate` judges a pull request
//! (including confirmation re-runs): an A/A run of the same code, which must pass; an A/B run
//! with the work per iteration multiplied by `--latency-factor`, where every benchmark must be
//! reported as a latency regression; and an A/B run with the allocations per iteration
//! multiplied by `--allocation-factor`, where every benchmark must be reported as an
//! allocation regression. The three kinds alternate, so a slow spell of the machine hits all
//! of them alike. Everything happens in a temporary directory; the committed baselines are not
//! read or written.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use gate::{ConfigFile, Fingerprint, GateOptions, Metric, RefreshOptions, Report, Status};

use crate::bench_run::{self, Runner, SuiteRun, confirm};
use crate::flags::CalibrateArgs;
use crate::paths;
use crate::progress::clock;
use crate::suites::CALIBRATION;

/// One kind of round.
#[derive(Clone, Copy)]
enum Kind {
    AA,
    Latency,
    Allocations,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::AA => "A/A",
            Kind::Latency => "latency A/B",
            Kind::Allocations => "allocations A/B",
        }
    }
}

pub(crate) fn run(args: &CalibrateArgs) -> anyhow::Result<ExitCode> {
    if args.mutations {
        return crate::mutations::run(args);
    }
    let root = paths::project_root();
    let scratch = tempfile::Builder::new()
        .prefix("perf-gate-calibrate-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let baseline_dir = scratch.path().join("baselines");
    let fingerprint = Fingerprint::current(&root);
    let started = Instant::now();

    let built = bench_run::build(None)?;
    let runner = |criterion_dir: &std::path::Path, env: Vec<(String, String)>| {
        Runner::new(
            "calibrate",
            criterion_dir,
            paths::log_dir(&root).join("calibrate"),
            env,
            args.criterion_args.clone(),
        )
    };
    let suite = || {
        vec![SuiteRun {
            suite: CALIBRATION.to_owned(),
            filter: None,
            // The floor and the four timing loops.
            expected: 5,
        }]
    };

    eprintln!("calibrate: measuring the baseline");
    let baseline_criterion = scratch.path().join("criterion-baseline");
    runner(&baseline_criterion, Vec::new())?.run(&built, "baseline", &suite())?;
    gate::refresh(&RefreshOptions {
        criterion_dir: baseline_criterion,
        baseline_dir: baseline_dir.clone(),
        newer_than: None,
        suites: Some([CALIBRATION.to_owned()].into()),
        fingerprint: fingerprint.clone(),
    })
    .context("cannot write the calibration baseline")?;

    let mut false_alarms = 0;
    let mut latency_detected = 0;
    let mut allocations_detected = 0;
    let mut log = String::new();
    for round in 1..=args.rounds.unwrap_or(10) {
        for kind in [Kind::AA, Kind::Latency, Kind::Allocations] {
            let env = match kind {
                Kind::AA => Vec::new(),
                Kind::Latency => vec![(
                    "CALIBRATION_WORK".to_owned(),
                    args.latency_factor.to_string(),
                )],
                Kind::Allocations => {
                    vec![(
                        "CALIBRATION_ALLOCS".to_owned(),
                        args.allocation_factor.to_string(),
                    )]
                }
            };
            let criterion_dir = scratch.path().join(format!(
                "criterion-{round}-{}",
                kind.name().replace([' ', '/'], "-")
            ));
            let runner = runner(&criterion_dir, env)?;
            let run_started = SystemTime::now();
            runner.run(&built, &format!("round {round} {}", kind.name()), &suite())?;
            let options = GateOptions {
                criterion_dir,
                baseline_dir: baseline_dir.clone(),
                config: ConfigFile::None,
                newer_than: Some(run_started),
                suites: Some([CALIBRATION.to_owned()].into()),
                fingerprint: fingerprint.clone(),
            };
            let mut report = gate::run_gate(&options)?;
            confirm(&built, &runner, &options, &mut report)?;
            let outcome = match kind {
                Kind::AA => {
                    let alarm = report.count(Status::Regressed) > 0;
                    false_alarms += usize::from(alarm);
                    if alarm {
                        "FALSE ALARM"
                    } else {
                        "pass (as expected)"
                    }
                }
                Kind::Latency => {
                    let all = every_benchmark_regressed(&report, Metric::Latency);
                    latency_detected += usize::from(all);
                    if all { "detected" } else { "MISSED" }
                }
                Kind::Allocations => {
                    let all = every_benchmark_regressed(&report, Metric::Allocations);
                    allocations_detected += usize::from(all);
                    if all { "detected" } else { "MISSED" }
                }
            };
            let speed = report
                .speeds
                .first()
                .map(|s| {
                    format!(
                        "machine {}",
                        gate::compare::signed_percent((s.factor - 1.0) * 100.0)
                    )
                })
                .unwrap_or_default();
            let line = format!(
                "round {round:>2} {:<16} {outcome:<18} {speed}; {}",
                kind.name(),
                summary(&report)
            );
            eprintln!("calibrate: {line}");
            let _ = writeln!(log, "{line}");
        }
    }
    let rounds = args.rounds.unwrap_or(10);
    println!("{log}");
    println!(
        "A/A false alarms {false_alarms}/{rounds}, latency detections {latency_detected}/{rounds} \
         (+{:.0}% injected), allocation detections {allocations_detected}/{rounds} (+{:.0}% \
         injected); {} in all",
        (args.latency_factor - 1.0) * 100.0,
        (args.allocation_factor - 1.0) * 100.0,
        clock(started.elapsed())
    );
    let perfect = false_alarms == 0
        && latency_detected == rounds as usize
        && allocations_detected == rounds as usize;
    Ok(if perfect {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether every benchmark of the report regressed in `metric` (after confirmation), the
/// reference benchmarks aside: no knob scales them.
fn every_benchmark_regressed(report: &Report, metric: Metric) -> bool {
    let is_reference = |id: &gate::BenchmarkId| {
        report.speeds.iter().any(|speed| {
            speed
                .references
                .iter()
                .any(|(reference, _)| reference == id)
        })
    };
    let compared: Vec<_> = report
        .benchmarks
        .iter()
        .filter(|b| !matches!(b.status(), Status::New | Status::Missing) && !is_reference(&b.id))
        .collect();
    !compared.is_empty() && compared.iter().all(|b| b.regressions().contains(&metric))
}

/// Latency changes of the first measurement and, where one was made, the confirmation:
/// `checksum/3840 +29.8%→+30.4%, ...`.
fn summary(report: &Report) -> String {
    let mut parts = Vec::new();
    for benchmark in &report.benchmarks {
        let change = |c: &gate::Comparison| {
            c.latency.as_ref().map_or_else(
                || "?".to_owned(),
                |l| gate::compare::signed_percent(l.change_percent),
            )
        };
        let name = benchmark.id.name();
        let mut text = format!("{name} {}", change(&benchmark.measured));
        if let Some(second) = &benchmark.confirmation {
            let _ = write!(text, "→{}", change(second));
        }
        parts.push(text);
    }
    parts.join(", ")
}

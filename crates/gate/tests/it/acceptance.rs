//! The acceptance scenarios of the gate issue, each over a real run of the calibration suite
//! compared with the real `baseline` run.

use gate::{Metric, Status, exit_code};

use crate::{baseline_from, fingerprint, fixture, gate};

const ALL: [&str; 4] = [
    "calibration/async",
    "calibration/batched/3840",
    "calibration/checksum/3840",
    "calibration/parallel/2",
];

fn statuses(report: &gate::Report) -> Vec<(String, Status)> {
    report
        .benchmarks
        .iter()
        .map(|b| (b.id.to_string(), b.status()))
        .collect()
}

#[test]
fn the_same_code_twice_passes_with_every_benchmark_unchanged() {
    let baselines = baseline_from("baseline", fingerprint());
    let result = gate(&fixture("same"), baselines.path());
    assert_eq!(exit_code(&result), 0);
    let report = result.unwrap();
    let expected: Vec<_> = ALL
        .iter()
        .map(|id| ((*id).to_owned(), Status::Unchanged))
        .collect();
    assert_eq!(statuses(&report), expected);
}

#[test]
fn thirty_percent_more_time_on_one_benchmark_fails_that_benchmark_only() {
    let baselines = baseline_from("baseline", fingerprint());
    let result = gate(&fixture("slower30"), baselines.path());
    assert_eq!(exit_code(&result), 1);
    let report = result.unwrap();
    let regressed: Vec<_> = report
        .benchmarks
        .iter()
        .filter(|b| b.status() == Status::Regressed)
        .collect();
    assert_eq!(regressed.len(), 1, "{:?}", statuses(&report));
    assert_eq!(regressed[0].id, "calibration/checksum/3840");
    assert_eq!(regressed[0].regressions(), [Metric::Latency]);
    // Regressions come first in the report.
    assert_eq!(report.benchmarks[0].id, "calibration/checksum/3840");
    assert_eq!(
        report.count(Status::Unchanged),
        3,
        "{:?}",
        statuses(&report)
    );
}

#[test]
fn ten_percent_more_time_passes() {
    let baselines = baseline_from("baseline", fingerprint());
    let result = gate(&fixture("slower10"), baselines.path());
    assert_eq!(exit_code(&result), 0, "{:?}", result.map(|r| statuses(&r)));
}

#[test]
fn forty_percent_more_allocations_fails_for_allocations() {
    let baselines = baseline_from("baseline", fingerprint());
    let result = gate(&fixture("allocs40"), baselines.path());
    assert_eq!(exit_code(&result), 1);
    let report = result.unwrap();
    let batched = report.benchmark("calibration/batched/3840").unwrap();
    assert_eq!(batched.status(), Status::Regressed);
    // Four more allocations of the same size: the count and the bytes both grow by 40%, exactly.
    assert_eq!(batched.regressions(), [Metric::Allocations, Metric::Bytes]);
    let allocations = batched.measured.allocations.as_ref().unwrap();
    assert_eq!(allocations.baseline_per_iteration, 10.0);
    assert_eq!(allocations.current_per_iteration, 14.0);
    assert_eq!(
        report.count(Status::Regressed),
        1,
        "{:?}",
        statuses(&report)
    );
}

#[test]
fn one_benchmark_removed_and_one_added_are_missing_and_new() {
    let baselines = baseline_from("baseline", fingerprint());
    let result = gate(&fixture("added-removed"), baselines.path());
    assert_eq!(exit_code(&result), 0);
    let report = result.unwrap();
    assert_eq!(
        report.benchmark("calibration/async").unwrap().status(),
        Status::Missing
    );
    assert_eq!(
        report.benchmark("calibration/extra").unwrap().status(),
        Status::New
    );
    assert_eq!(
        report.count(Status::Unchanged),
        3,
        "{:?}",
        statuses(&report)
    );
}

#[test]
fn refresh_then_gate_on_the_same_results_passes_unchanged() {
    for scenario in ["baseline", "same", "slower30", "allocs40", "added-removed"] {
        let baselines = baseline_from(scenario, fingerprint());
        let result = gate(&fixture(scenario), baselines.path());
        assert_eq!(exit_code(&result), 0, "{scenario}");
        let report = result.unwrap();
        assert!(
            report
                .benchmarks
                .iter()
                .all(|b| b.status() == Status::Unchanged),
            "{scenario}: {:?}",
            statuses(&report)
        );
    }
}

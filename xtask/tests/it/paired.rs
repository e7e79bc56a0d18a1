//! The paired gate end to end, through the real binary, on the calibration suite: both sides
//! run the calibration executable of the same build, and `--candidate-env` makes the change's
//! side differ by its knobs (slower, hungrier, one benchmark fewer or more) — the same
//! mechanism the gate uses on two builds.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const CHECKSUM: &str = "calibration/checksum/3840";

fn gate(dir: &Path, name: &str, candidate_env: &[&str]) -> (Output, Value) {
    let baselines = dir.join("baselines");
    if !baselines.exists() {
        // The base's list of benchmarks, as a committed calibration.json would hold it.
        let refreshed = crate::xtask(&[
            crate::os("baseline"),
            crate::os("refresh"),
            crate::os("--no-run"),
            crate::os("--criterion-dir"),
            crate::fixture("baseline").as_os_str(),
            crate::os("--baseline-dir"),
            baselines.as_os_str(),
        ]);
        assert_eq!(
            refreshed.status.code(),
            Some(0),
            "{}",
            crate::stderr(&refreshed)
        );
    }
    let json = dir.join(format!("{name}.json"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(["perf-gate", "--suite", "calibration", "--base", "HEAD"])
        .arg("--baseline-dir")
        .arg(&baselines)
        .arg("--json")
        .arg(&json)
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("CRITERION_HOME")
        .env_remove("CARGO_TARGET_DIR");
    for assignment in candidate_env {
        command.args(["--candidate-env", assignment]);
    }
    for knob in [
        "CALIBRATION_WORK",
        "CALIBRATION_ALLOCS",
        "CALIBRATION_BYTES",
        "CALIBRATION_ONLY",
        "CALIBRATION_SKIP",
        "CALIBRATION_EXTRA",
    ] {
        command.env_remove(knob);
    }
    let output = command.output().expect("the xtask binary runs");
    let report = std::fs::read(&json)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| panic!("no JSON report; stderr:\n{}", crate::stderr(&output)));
    (output, report)
}

fn benchmark<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["benchmarks"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["id"] == id))
        .unwrap_or_else(|| panic!("{id} is not in the report: {report:#}"))
}

#[test]
fn the_same_code_passes_and_every_kind_of_difference_fails() {
    let _measuring = crate::measuring();
    let dir = tempfile::tempdir().unwrap();

    // A/A: both sides the same.
    let (same, report) = gate(dir.path(), "same", &[]);
    assert_eq!(same.status.code(), Some(0), "{}", crate::stderr(&same));
    assert_eq!(report["mode"], "paired");
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["summary"]["regressed"], 0, "{report:#}");
    assert_eq!(report["summary"]["total"], 5, "{report:#}");
    let checksum = benchmark(&report, CHECKSUM);
    assert!(checksum["latency"]["paired"]["blocks"].as_u64().unwrap() >= 8);
    assert!(String::from_utf8_lossy(&same.stdout).contains("latency judged in PAIRED mode"));

    // The change's checksum does 60% more work: a confirmed latency regression, and only there.
    let (slower, report) = gate(
        dir.path(),
        "slower",
        &[
            "CALIBRATION_WORK=1.6",
            &format!("CALIBRATION_ONLY={CHECKSUM}"),
        ],
    );
    assert_eq!(slower.status.code(), Some(1), "{}", crate::stderr(&slower));
    assert_eq!(report["summary"]["regressed"], 1, "{report:#}");
    let checksum = benchmark(&report, CHECKSUM);
    assert_eq!(checksum["regressions"], serde_json::json!(["latency"]));
    assert_eq!(
        checksum["confirmation"]["status"], "regressed",
        "{checksum:#}"
    );
    // 60% more work is not exactly 60% more time (fixed costs, caches, a shared CPU): the
    // estimate must land near it, not on it.
    let ratio = checksum["latency"]["ratio"].as_f64().unwrap();
    assert!((1.3..2.2).contains(&ratio), "{ratio}");

    // 50% more allocations: counted exactly, no statistics needed.
    let (hungrier, report) = gate(
        dir.path(),
        "hungrier",
        &[
            "CALIBRATION_ALLOCS=1.5",
            &format!("CALIBRATION_ONLY={CHECKSUM}"),
        ],
    );
    assert_eq!(
        hungrier.status.code(),
        Some(1),
        "{}",
        crate::stderr(&hungrier)
    );
    let checksum = benchmark(&report, CHECKSUM);
    assert!(
        checksum["regressions"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("allocations")),
        "{checksum:#}"
    );
    assert_eq!(checksum["allocations"]["current_per_iteration"], 15.0);

    // A benchmark of the base's baseline that the change no longer measures fails the gate;
    // one the change adds is new.
    let (fewer, report) = gate(
        dir.path(),
        "fewer",
        &["CALIBRATION_SKIP=calibration/async", "CALIBRATION_EXTRA=1"],
    );
    assert_eq!(fewer.status.code(), Some(1), "{}", crate::stderr(&fewer));
    assert_eq!(benchmark(&report, "calibration/async")["status"], "missing");
    assert_eq!(benchmark(&report, "calibration/extra")["status"], "new");
    assert_eq!(report["summary"]["regressed"], 0, "{report:#}");
}

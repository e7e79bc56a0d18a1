//! Confirmation re-runs of stored mode, end to end: the real `perf-gate --stored` runs the
//! calibration suite, judges it, and re-runs what it flagged. A regression injected into the
//! first run only must not fail the gate; one injected into every run must.

use std::path::Path;
use std::process::{Command, Output};

/// Short criterion settings: the injected regression (3×) is far beyond any noise.
const QUICK: &[&str] = &[
    "--sample-size",
    "20",
    "--warm-up-time",
    "0.3",
    "--measurement-time",
    "1",
];

fn xtask(args: &[&str], dir: &Path, env: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(args)
        .arg("--criterion-dir")
        .arg(dir.join("criterion"))
        .arg("--baseline-dir")
        .arg(dir.join("baselines"))
        .arg("--")
        .args(QUICK)
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("CRITERION_HOME");
    for key in [
        "CALIBRATION_WORK",
        "CALIBRATION_ALLOCS",
        "CALIBRATION_BYTES",
        "CALIBRATION_ONLY",
    ] {
        command.env_remove(key);
    }
    command.envs(env.iter().map(|(k, v)| (*k, v)));
    command.output().expect("the xtask binary runs")
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("the report was written")).expect("JSON")
}

fn benchmark<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["benchmarks"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["id"] == id))
        .unwrap_or_else(|| panic!("{id} is not in the report: {report:#}"))
}

#[test]
fn a_regression_in_the_first_run_only_is_not_confirmed_but_a_lasting_one_is() {
    let _measuring = crate::measuring();
    let dir = tempfile::tempdir().unwrap();
    let refreshed = xtask(
        &["baseline", "refresh", "--suite", "calibration"],
        dir.path(),
        &[],
    );
    assert_eq!(
        refreshed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&refreshed.stderr)
    );

    let target = "calibration/checksum/3840";
    let inject = |once: Option<&Path>| {
        let mut env = vec![
            ("CALIBRATION_WORK", "3".to_owned()),
            ("CALIBRATION_ONLY", target.to_owned()),
        ];
        if let Some(marker) = once {
            env.push(("CALIBRATION_ONCE", marker.display().to_string()));
        }
        env
    };

    let gate = |json: &Path, env: &[(&str, String)]| {
        xtask(
            &[
                "perf-gate",
                "--stored",
                "--suite",
                "calibration",
                "--json",
                json.to_str().unwrap(),
            ],
            dir.path(),
            env,
        )
    };

    // Injected into the first run only: flagged, re-run, not confirmed, the gate passes.
    let json = dir.path().join("once.json");
    let marker = dir.path().join("injected-once");
    let gated = gate(&json, &inject(Some(&marker)));
    let stderr = String::from_utf8_lossy(&gated.stderr);
    assert_eq!(gated.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("re-running them alone"), "{stderr}");
    let once = report(&json);
    let checksum = benchmark(&once, target);
    assert_eq!(checksum["status"], "unchanged", "{checksum:#}");
    assert!(
        checksum["latency"]["change_percent"].as_f64().unwrap() > 100.0,
        "{checksum:#}"
    );
    assert_eq!(
        checksum["confirmation"]["status"], "unchanged",
        "{checksum:#}"
    );
    assert_eq!(once["verdict"], "pass");

    // Injected into every run: flagged, re-run, confirmed, the gate fails.
    let json = dir.path().join("lasting.json");
    let gated = gate(&json, &inject(None));
    let stderr = String::from_utf8_lossy(&gated.stderr);
    assert_eq!(gated.status.code(), Some(1), "{stderr}");
    let lasting = report(&json);
    let checksum = benchmark(&lasting, target);
    assert_eq!(checksum["status"], "regressed", "{checksum:#}");
    assert_eq!(checksum["regressions"], serde_json::json!(["latency"]));
    assert_eq!(
        checksum["confirmation"]["status"], "regressed",
        "{checksum:#}"
    );
    assert!(
        checksum["confirmation"]["latency"]["change_percent"]
            .as_f64()
            .unwrap()
            > 100.0
    );
    // Only the injected benchmark regressed.
    assert_eq!(lasting["summary"]["regressed"], 1, "{lasting:#}");
}

//! The four renderings of real reports: what a reader (or a CI system) must find in them.

use gate::render::{json, junit, markdown, terminal};
use gate::{ConfigFile, Status, exit_code};
use serde_json::Value;

use crate::{baseline_from, fingerprint, fixture, gate, gate_with};

fn slower30() -> gate::Report {
    let baselines = baseline_from("baseline", fingerprint());
    gate(&fixture("slower30"), baselines.path()).unwrap()
}

#[test]
fn json_follows_the_documented_schema() {
    let report: Value = serde_json::from_str(&json::render(&slower30())).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["error"], Value::Null);
    assert_eq!(report["summary"]["regressed"], 1);
    assert_eq!(report["summary"]["total"], 4);
    let first = &report["benchmarks"][0];
    assert_eq!(first["id"], "calibration/checksum/3840");
    assert_eq!(first["suite"], "calibration");
    assert_eq!(first["status"], "regressed");
    assert_eq!(first["regressions"], serde_json::json!(["latency"]));
    assert!(first["latency"]["ratio"].as_f64().unwrap() > 1.2);
    assert!(first["latency"]["p_regression"].as_f64().unwrap() < 0.01);
    assert!(first["reason"].as_str().unwrap().starts_with("time +"));
    for b in report["benchmarks"].as_array().unwrap() {
        for key in [
            "id",
            "status",
            "regressions",
            "thresholds",
            "allocations",
            "bytes",
            "notes",
        ] {
            assert!(b.get(key).is_some(), "{key} missing in {b}");
        }
    }
}

#[test]
fn error_json_has_the_error_verdict() {
    let report: Value = serde_json::from_str(&json::render_error("no results in x")).unwrap();
    assert_eq!(report["verdict"], "error");
    assert_eq!(report["error"], "no results in x");
    assert_eq!(report["benchmarks"], serde_json::json!([]));
}

#[test]
fn the_terminal_table_puts_regressions_first_and_colours_only_when_asked() {
    let report = slower30();
    let plain = terminal::render(&report, false);
    let lines: Vec<&str> = plain.lines().collect();
    assert!(
        lines[0].starts_with("latency judged in STORED mode"),
        "{plain}"
    );
    assert!(lines[2].starts_with("STATUS"), "{plain}");
    assert!(
        lines[3].starts_with("regressed  calibration/checksum/3840"),
        "{plain}"
    );
    assert!(plain.contains("perf-gate: FAIL"), "{plain}");
    assert!(!plain.contains('\x1b'));
    assert!(terminal::render(&report, true).contains("\x1b[1;31m"));
}

#[test]
fn markdown_leads_with_the_verdict_and_the_offending_benchmark() {
    let md = markdown::render(&slower30());
    let mut lines = md.lines();
    let heading = lines.next().unwrap();
    assert!(
        heading.starts_with("## ❌ Performance gate: FAIL — 1 of 4"),
        "{md}"
    );
    let offending = md.split("<details>").next().unwrap();
    assert!(offending.contains("`calibration/checksum/3840`"), "{md}");
    assert!(!offending.contains("`calibration/async`"), "{md}");
}

#[test]
fn junit_has_one_case_per_benchmark_and_a_failure_per_regression() {
    let xml = junit::render(&slower30());
    assert_eq!(xml.matches("<testcase ").count(), 4);
    assert_eq!(xml.matches("<failure ").count(), 1);
    assert!(xml.contains("name=\"calibration/checksum/3840\""));
    assert!(xml.contains("failures=\"1\""));

    let baselines = baseline_from("baseline", fingerprint());
    let report = gate(&fixture("added-removed"), baselines.path()).unwrap();
    assert_eq!(junit::render(&report).matches("<skipped ").count(), 2);
}

#[test]
fn a_baseline_from_another_machine_is_a_loud_warning_everywhere() {
    let mut elsewhere = fingerprint();
    elsewhere.cpu_model = "Other CPU 9000".into();
    elsewhere.rustc = "rustc 1.90.0".into();
    let baselines = baseline_from("baseline", elsewhere);
    let report = gate(&fixture("same"), baselines.path()).unwrap();
    assert_eq!(report.fingerprint.mismatches.len(), 1);
    let fields: Vec<_> = report.fingerprint.mismatches[0]
        .differences
        .iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(fields, ["cpu_model", "rustc"]);

    let plain = terminal::render(&report, false);
    assert_eq!(
        plain
            .matches("WARNING: the baseline of suite `calibration`")
            .count(),
        2
    );
    assert!(plain.contains("Other CPU 9000"));
    assert!(markdown::render(&report).contains("> [!WARNING]"));
    assert!(junit::render(&report).contains("fingerprint-warning"));
    let json: Value = serde_json::from_str(&json::render(&report)).unwrap();
    assert_eq!(json["fingerprint"]["mismatches"][0]["suite"], "calibration");
    // A warning, not a verdict.
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn an_override_changes_the_thresholds_and_its_reason_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("perf-gate.toml");
    std::fs::write(
        &config,
        "[[override]]\nglob = \"calibration/checksum/*\"\nlatency = 60\n\
         reason = \"Checksum is being reworked (tracking issue 42).\"\n\n\
         [[override]]\nglob = \"nothing/**\"\nbytes = 50\nreason = \"stale\"\n",
    )
    .unwrap();
    let baselines = baseline_from("baseline", fingerprint());
    let result = gate_with(
        &fixture("slower30"),
        baselines.path(),
        ConfigFile::Required(config),
    );
    assert_eq!(exit_code(&result), 0);
    let report = result.unwrap();
    let checksum = report.benchmark("calibration/checksum/3840").unwrap();
    assert_eq!(checksum.status(), Status::Unchanged);
    assert_eq!(checksum.thresholds.latency_percent, 60.0);
    assert!(terminal::render(&report, false).contains("tracking issue 42"));
    assert!(markdown::render(&report).contains("tracking issue 42"));
    assert_eq!(report.unused_overrides, ["nothing/**"]);
}

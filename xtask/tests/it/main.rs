//! End-to-end tests of `cargo xtask perf-gate` and `cargo xtask baseline refresh` through the
//! real binary: flags, exit codes and report files, over the gate's criterion fixtures.

mod confirmation;
mod interrupt;
mod paired;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Held by the tests that run benchmarks or services for real: they run one at a time, so that
/// one does not load the two cores while the other measures (the tests of one binary run in
/// parallel).
fn measuring() -> std::sync::MutexGuard<'static, ()> {
    static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding it leaves nothing to protect: go on.
    MEASURING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn fixture(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/gate/tests/it/fixtures")
        .join(scenario)
}

/// Runs the xtask binary with `args`, isolated from the caller's CI environment.
fn xtask(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("CRITERION_HOME")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("the xtask binary runs")
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        // An empty configuration, so overrides in the repository's perf-gate.toml cannot
        // change what these tests see.
        std::fs::write(dir.path().join("perf-gate.toml"), "").unwrap();
        Workspace { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn refresh(&self, scenario: &str) -> Output {
        self.refresh_into(scenario, &self.path("baselines"))
    }

    fn refresh_into(&self, scenario: &str, baselines: &Path) -> Output {
        let criterion = fixture(scenario);
        xtask(&[
            os("baseline"),
            os("refresh"),
            os("--no-run"),
            os("--criterion-dir"),
            criterion.as_os_str(),
            os("--baseline-dir"),
            baselines.as_os_str(),
        ])
    }

    fn gate(&self, criterion: &Path, extra: &[&std::ffi::OsStr]) -> Output {
        let (baselines, config) = (self.path("baselines"), self.path("perf-gate.toml"));
        let mut args = vec![
            os("perf-gate"),
            os("--no-run"),
            os("--criterion-dir"),
            criterion.as_os_str(),
            os("--baseline-dir"),
            baselines.as_os_str(),
            os("--config"),
            config.as_os_str(),
        ];
        args.extend_from_slice(extra);
        xtask(&args)
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn refresh_then_gate_exits_zero() {
    let ws = Workspace::new();
    let refreshed = ws.refresh("baseline");
    assert_eq!(refreshed.status.code(), Some(0), "{}", stderr(&refreshed));
    assert!(ws.path("baselines/calibration.json").is_file());
    let gated = ws.gate(&fixture("same"), &[]);
    assert_eq!(gated.status.code(), Some(0), "{}", stderr(&gated));
    assert!(String::from_utf8_lossy(&gated.stdout).contains("perf-gate: PASS"));
}

#[test]
fn a_regression_exits_one_and_writes_every_report() {
    let ws = Workspace::new();
    ws.refresh("baseline");
    let (json, markdown, junit) = (ws.path("r.json"), ws.path("r.md"), ws.path("r.xml"));
    let gated = ws.gate(
        &fixture("slower30"),
        &[
            os("--json"),
            json.as_os_str(),
            os("--markdown"),
            markdown.as_os_str(),
            os("--junit"),
            junit.as_os_str(),
        ],
    );
    assert_eq!(gated.status.code(), Some(1), "{}", stderr(&gated));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["benchmarks"][0]["id"], "calibration/checksum/3840");
    assert!(std::fs::read_to_string(&markdown).unwrap().contains("FAIL"));
    assert!(
        std::fs::read_to_string(&junit)
            .unwrap()
            .contains("<failure ")
    );
}

#[test]
fn data_and_usage_errors_exit_two_and_say_why() {
    let ws = Workspace::new();
    ws.refresh("baseline");

    let empty = ws.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let json = ws.path("error.json");
    let gated = ws.gate(&empty, &[os("--json"), json.as_os_str()]);
    assert_eq!(gated.status.code(), Some(2));
    assert!(
        stderr(&gated).contains(&empty.display().to_string()),
        "{}",
        stderr(&gated)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["verdict"], "error");

    let missing_config = ws.path("nope.toml");
    let criterion = fixture("same");
    let baselines = ws.path("baselines");
    let gated = xtask(&[
        os("perf-gate"),
        os("--no-run"),
        os("--criterion-dir"),
        criterion.as_os_str(),
        os("--baseline-dir"),
        baselines.as_os_str(),
        os("--config"),
        missing_config.as_os_str(),
    ]);
    assert_eq!(gated.status.code(), Some(2));
    assert!(stderr(&gated).contains("nope.toml"), "{}", stderr(&gated));

    let usage = xtask(&[os("perf-gate"), os("--no-such-flag")]);
    assert_eq!(usage.status.code(), Some(2));
}

/// The repository's `perf-gate.toml` is read by every gate run: its `[[reference]]` rules must
/// each match benchmarks of the committed baselines and name floors those suites measure, or
/// a renamed benchmark or floor would silently fall back to another normalisation.
#[test]
fn committed_reference_rules_match_the_committed_baselines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = gate::Config::load(&gate::ConfigFile::Required(root.join("perf-gate.toml")))
        .expect("perf-gate.toml parses");
    let baselines = gate::baseline::read_dir(&root.join("baselines")).expect("baselines/ reads");
    let ids: Vec<&str> = baselines
        .values()
        .flat_map(|suite| suite.benchmarks.keys().map(gate::BenchmarkId::as_str))
        .collect();
    assert!(!config.reference_rules.is_empty());
    for rule in &config.reference_rules {
        let matched: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| rule.matches(id) && !config.is_reference(id))
            .collect();
        assert!(
            !matched.is_empty(),
            "[[reference]] {:?} matches no benchmark",
            rule.glob
        );
        for id in matched {
            let suite = id.split('/').next().unwrap();
            for floor in &rule.floors {
                let reference = format!("{suite}/floor/{floor}");
                assert!(
                    ids.contains(&reference.as_str()) && config.is_reference(&reference),
                    "[[reference]] {:?} names {floor}, but {reference} is not a reference \
                     benchmark of the baselines (for {id})",
                    rule.glob
                );
            }
        }
    }
}

#[test]
fn bad_inputs_are_usage_errors_found_before_any_work() {
    let ws = Workspace::new();
    ws.refresh("baseline");
    let criterion = fixture("same");
    let fails = |extra: &[&std::ffi::OsStr], expected: &str| {
        let gated = ws.gate(&criterion, extra);
        assert_eq!(
            gated.status.code(),
            Some(2),
            "{extra:?}: {}",
            stderr(&gated)
        );
        assert!(
            stderr(&gated).contains(expected),
            "{extra:?}: {}",
            stderr(&gated)
        );
    };
    // Out of range durations: clap's usage error, not a panic (exit code 101).
    fails(
        &[os("--slice"), os("99999999999999999999s")],
        "at most 24 hours",
    );
    fails(
        &[os("--max-time"), os("999999999999999999m")],
        "at most 24 hours",
    );
    fails(
        &[os("--slice"), os("0.0000000001ms")],
        "at least 1 millisecond",
    );
    // An unknown suite is named as such, with --no-run too.
    fails(&[os("--suite"), os("nosuch")], "there is no suite `nosuch`");
    // A report that cannot be written: named with its flag; the others say why there is no
    // verdict.
    let json = ws.path("r.json");
    let directory = ws.path("baselines");
    fails(
        &[
            os("--json"),
            json.as_os_str(),
            os("--markdown"),
            directory.as_os_str(),
        ],
        &format!(
            "--markdown: cannot write {}: is a directory",
            directory.display()
        ),
    );
    let written = std::fs::read_to_string(&json).expect("the --json report is written");
    assert!(
        written.contains("\"verdict\": \"error\"") && written.contains("is a directory"),
        "{written}"
    );

    let refreshed = ws.refresh_into("same", &ws.path("perf-gate.toml"));
    assert_eq!(refreshed.status.code(), Some(2));
    assert!(
        stderr(&refreshed).contains("perf-gate.toml is not a directory"),
        "{}",
        stderr(&refreshed)
    );
}

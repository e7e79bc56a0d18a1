//! Acceptance tests of the gate over real criterion output: the fixtures under `fixtures/` were
//! produced by running the `calibration` suite (see `fixtures/README.md`).

mod acceptance;
mod errors;
mod golden;
mod refresh;
mod reports;

use std::path::{Path, PathBuf};

use gate::{ConfigFile, Error, Fingerprint, GateOptions, RefreshOptions, Report};
use tempfile::TempDir;

/// A fixed fingerprint, so the tests do not depend on the machine they run on.
pub fn fingerprint() -> Fingerprint {
    Fingerprint {
        cpu_model: "Test CPU".into(),
        logical_cores: 2,
        memory_bytes: 24 << 30,
        os: "Linux test".into(),
        rustc: "rustc 1.95.0".into(),
        git_commit: "0000000".into(),
        date: "2026-01-01T00:00:00Z".into(),
    }
}

/// A fixture directory of criterion results.
pub fn fixture(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(scenario)
}

/// A baseline directory refreshed from `scenario`'s results.
pub fn baseline_from(scenario: &str, fingerprint: Fingerprint) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    gate::refresh(&RefreshOptions {
        criterion_dir: fixture(scenario),
        baseline_dir: dir.path().to_owned(),
        newer_than: None,
        suites: None,
        fingerprint,
    })
    .unwrap();
    dir
}

/// Runs the gate on `criterion_dir` against `baseline_dir` without any configuration file.
pub fn gate(criterion_dir: &Path, baseline_dir: &Path) -> Result<Report, Error> {
    gate_with(criterion_dir, baseline_dir, ConfigFile::None)
}

/// Like [`gate`], with a configuration.
pub fn gate_with(
    criterion_dir: &Path,
    baseline_dir: &Path,
    config: ConfigFile,
) -> Result<Report, Error> {
    gate::run_gate(&GateOptions {
        criterion_dir: criterion_dir.to_owned(),
        baseline_dir: baseline_dir.to_owned(),
        config,
        newer_than: None,
        suites: None,
        fingerprint: fingerprint(),
    })
}

/// Copies a directory tree (to damage a copy of a fixture).
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

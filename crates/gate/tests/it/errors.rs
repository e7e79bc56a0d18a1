//! Never a silent pass: every way of having nothing (or nothing trustworthy) to compare is
//! exit code 2 with a message naming the file or directory.

use gate::{ConfigFile, Error, exit_code};

use crate::{baseline_from, copy_tree, fingerprint, fixture, gate, gate_with};

#[test]
fn an_empty_results_directory_is_an_error() {
    let baselines = baseline_from("baseline", fingerprint());
    let empty = tempfile::tempdir().unwrap();
    let result = gate(empty.path(), baselines.path());
    assert_eq!(exit_code(&result), 2);
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains(&empty.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("no benchmark results"), "{message}");
}

#[test]
fn a_corrupt_estimates_json_is_an_error_naming_it() {
    let baselines = baseline_from("baseline", fingerprint());
    let results = tempfile::tempdir().unwrap();
    copy_tree(&fixture("same"), results.path());
    let damaged = results
        .path()
        .join("calibration/checksum/3840/new/estimates.json");
    std::fs::write(&damaged, "{\"mean\": {\"point_estimate\": 12").unwrap();
    let result = gate(results.path(), baselines.path());
    assert_eq!(exit_code(&result), 2);
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&damaged.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_missing_baseline_directory_is_an_error_naming_it() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("baselines");
    let result = gate(&fixture("same"), &missing);
    assert_eq!(exit_code(&result), 2);
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[test]
fn a_file_as_baseline_directory_is_not_a_directory() {
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("baselines");
    std::fs::write(&file, "").unwrap();
    let result = gate(&fixture("same"), &file);
    assert_eq!(exit_code(&result), 2);
    let message = result.unwrap_err().to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("is not a directory"), "{message}");
    assert!(!message.contains("does not exist"), "{message}");
}

#[test]
fn no_benchmark_in_common_is_an_error() {
    let baselines = tempfile::tempdir().unwrap();
    let empty_baselines = gate(&fixture("same"), baselines.path());
    assert_eq!(exit_code(&empty_baselines), 2);
    assert!(matches!(
        empty_baselines,
        Err(Error::NothingInCommon { .. })
    ));
}

#[test]
fn a_corrupt_baseline_is_an_error_naming_it() {
    let baselines = baseline_from("baseline", fingerprint());
    let file = baselines.path().join("calibration.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();
    let result = gate(&fixture("same"), baselines.path());
    assert_eq!(exit_code(&result), 2);
    assert!(result.unwrap_err().to_string().contains("calibration.json"));
}

#[test]
fn results_without_allocation_counts_against_a_baseline_with_them_is_an_error() {
    let baselines = baseline_from("baseline", fingerprint());
    let results = tempfile::tempdir().unwrap();
    copy_tree(&fixture("same"), results.path());
    let removed = results
        .path()
        .join("calibration/async/new/allocations.json");
    std::fs::remove_file(&removed).unwrap();
    let result = gate(results.path(), baselines.path());
    assert_eq!(exit_code(&result), 2);
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains(&removed.display().to_string())
    );
}

#[test]
fn a_missing_explicit_config_is_an_error_but_a_missing_default_is_not() {
    let baselines = baseline_from("baseline", fingerprint());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("perf-gate.toml");
    let explicit = gate_with(
        &fixture("same"),
        baselines.path(),
        ConfigFile::Required(missing.clone()),
    );
    assert_eq!(exit_code(&explicit), 2);
    assert!(explicit.unwrap_err().to_string().contains("perf-gate.toml"));
    let default = gate_with(
        &fixture("same"),
        baselines.path(),
        ConfigFile::Optional(missing),
    );
    assert_eq!(exit_code(&default), 0);
}

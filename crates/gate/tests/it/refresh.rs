//! `baseline refresh`: one file per suite, stable, and other suites untouched.

use gate::RefreshOptions;

use crate::{fingerprint, fixture};

fn refresh(scenario: &str, baseline_dir: &std::path::Path) -> Vec<gate::RefreshedSuite> {
    gate::refresh(&RefreshOptions {
        criterion_dir: fixture(scenario),
        baseline_dir: baseline_dir.to_owned(),
        newer_than: None,
        suites: None,
        fingerprint: fingerprint(),
    })
    .unwrap()
}

#[test]
fn refresh_writes_one_file_per_suite_and_leaves_other_suites_alone() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("orders.json");
    std::fs::write(&other, "not even JSON, and nobody may touch it\n").unwrap();

    let written = refresh("baseline", dir.path());
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].suite, "calibration");
    assert_eq!(written[0].benchmarks, 4);
    assert_eq!(written[0].path, dir.path().join("calibration.json"));
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        "not even JSON, and nobody may touch it\n"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["calibration.json", "orders.json"]);
}

#[test]
fn refresh_is_deterministic_and_replaces_the_suite_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    refresh("baseline", dir.path());
    let first = std::fs::read(dir.path().join("calibration.json")).unwrap();
    refresh("baseline", dir.path());
    assert_eq!(
        std::fs::read(dir.path().join("calibration.json")).unwrap(),
        first
    );

    // After the suite lost `async` and gained `extra`, so did its baseline.
    refresh("added-removed", dir.path());
    let baseline = gate::baseline::read_file(&dir.path().join("calibration.json")).unwrap();
    let ids: Vec<_> = baseline
        .benchmarks
        .keys()
        .map(gate::BenchmarkId::as_str)
        .collect();
    assert_eq!(
        ids,
        [
            "calibration/batched/3840",
            "calibration/checksum/3840",
            "calibration/extra",
            "calibration/parallel/2"
        ]
    );
    assert_eq!(baseline.fingerprint, fingerprint());
}

#[test]
fn refresh_into_a_file_says_it_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("baselines");
    std::fs::write(&file, "a file, not a directory\n").unwrap();
    let err = gate::refresh(&RefreshOptions {
        criterion_dir: fixture("baseline"),
        baseline_dir: file.clone(),
        newer_than: None,
        suites: None,
        fingerprint: fingerprint(),
    })
    .unwrap_err();
    assert!(
        matches!(&err, gate::Error::BaselineDirNotADirectory { dir } if *dir == file),
        "{err:?}"
    );
    assert!(err.to_string().contains("is not a directory"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "a file, not a directory\n"
    );
}

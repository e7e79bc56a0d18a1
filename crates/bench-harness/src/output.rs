//! Writing the harness's files next to criterion's results: `allocations.json` and
//! `roundtrips.json` (their format is owned by `bench_format`).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use bench_format::criterion::{find_results, output_directory};
use bench_format::files::{ALLOCATIONS_JSON, ROUNDTRIPS_JSON, write_json};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::record::Totals;

pub use bench_format::{AllocationsFile, RoundTripsFile};

/// Criterion's output directory (`bench_format::criterion::output_directory`), with the target
/// directory from `cargo metadata` when cargo started us, as criterion 0.8 finds it.
///
/// [`crate::run`] hands the result to criterion explicitly, so the two can never disagree even
/// if criterion changes its rules.
pub fn default_output_directory() -> PathBuf {
    output_directory(cargo_metadata_target_directory)
}

fn cargo_metadata_target_directory() -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct Metadata {
        target_directory: PathBuf,
    }
    // Criterion only asks cargo when cargo started us (it sets `CARGO`); do the same.
    let cargo = std::env::var_os("CARGO")?;
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let metadata: Metadata = serde_json::from_slice(&output.stdout).ok()?;
    Some(metadata.target_directory)
}

/// What [`write_allocation_files`] or [`write_round_trip_files`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    /// The files written.
    pub written: Vec<PathBuf>,
    /// Benchmarks that were measured but whose criterion results were not found (criterion did
    /// not save them, e.g. with `--discard-baseline` or `--profile-time`).
    pub unmatched: Vec<String>,
}

/// Writes `<dir>/new/allocations.json` next to every `<dir>/new/benchmark.json` under
/// `output_directory` that criterion wrote during this run (modified at or after `run_started`)
/// and whose `full_id` has counted iterations in `records`.
///
/// Matching on `full_id` instead of rebuilding criterion's directory name keeps us right when
/// criterion sanitises an id or de-duplicates a directory name. Looking only at fresh files keeps
/// results of earlier runs (and of test mode, which writes nothing) out of it.
pub fn write_allocation_files(
    output_directory: &Path,
    run_started: SystemTime,
    records: &BTreeMap<String, Totals>,
) -> Result<WriteSummary, Error> {
    let files: BTreeMap<&str, AllocationsFile> = records
        .iter()
        .filter(|(_, totals)| totals.iterations > 0)
        .map(|(id, totals)| {
            let file = AllocationsFile {
                iterations: totals.iterations,
                allocations: totals.allocations,
                bytes: totals.bytes,
            };
            (id.as_str(), file)
        })
        .collect();
    write_next_to_results(output_directory, run_started, ALLOCATIONS_JSON, &files)
}

/// Writes `<dir>/new/roundtrips.json` next to the fresh results of the benchmarks in
/// `records`, as [`write_allocation_files`] does for allocations.
pub fn write_round_trip_files(
    output_directory: &Path,
    run_started: SystemTime,
    records: &BTreeMap<String, RoundTripsFile>,
) -> Result<WriteSummary, Error> {
    let files: BTreeMap<&str, &RoundTripsFile> = records
        .iter()
        .filter(|(_, file)| file.iterations > 0)
        .map(|(id, file)| (id.as_str(), file))
        .collect();
    write_next_to_results(output_directory, run_started, ROUNDTRIPS_JSON, &files)
}

fn write_next_to_results<T: Serialize>(
    output_directory: &Path,
    run_started: SystemTime,
    name: &str,
    files: &BTreeMap<&str, T>,
) -> Result<WriteSummary, Error> {
    let mut found = BTreeMap::new();
    if !files.is_empty() {
        for result in find_results(output_directory, Some(run_started))? {
            if let Some(file) = files.get(result.id.as_str()) {
                let target = result.dir.join(name);
                write_json(&target, file)?;
                found.insert(result.id.as_str().to_owned(), target);
            }
        }
    }
    Ok(WriteSummary {
        unmatched: files
            .keys()
            .filter(|id| !found.contains_key(**id))
            .map(|id| (*id).to_owned())
            .collect(),
        written: found.into_values().collect(),
    })
}

/// Removes `<dir>/new/allocations.json` next to every `<dir>/new/benchmark.json` under
/// `output_directory` that criterion wrote during this run (modified at or after `run_started`),
/// and returns the files removed.
///
/// This is what a run without counting (the `uncounted` feature) does instead of writing: its
/// timings must never sit next to the counts of an earlier run, which the gate would read as this
/// run's. A benchmark without the file is gated on latency only, or reported missing its counts.
pub fn remove_allocation_files(
    output_directory: &Path,
    run_started: SystemTime,
) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    for result in find_results(output_directory, Some(run_started))? {
        let target = result.dir.join(ALLOCATIONS_JSON);
        match std::fs::remove_file(&target) {
            Ok(()) => removed.push(target),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(bench_format::Error::Io {
                    path: target,
                    source,
                }
                .into());
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::time::Duration;

    use super::*;

    fn benchmark_dir(root: &Path, dir: &str, full_id: &str, modified: SystemTime) -> PathBuf {
        let new = root.join(dir).join("new");
        fs::create_dir_all(&new).unwrap();
        let file = new.join("benchmark.json");
        fs::write(&file, serde_json::json!({ "full_id": full_id }).to_string()).unwrap();
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        new
    }

    fn totals(iterations: u64, allocations: u64, bytes: u64) -> Totals {
        Totals {
            calls: 5,
            iterations,
            allocations,
            bytes,
        }
    }

    #[test]
    fn writes_next_to_fresh_results_matched_by_full_id() {
        let root = tempfile::tempdir().unwrap();
        let started = SystemTime::now();
        let later = started + Duration::from_secs(1);
        let earlier = started - Duration::from_secs(3600);
        // Criterion sanitises '?' in directory names, so the directory differs from the id.
        let sanitised = benchmark_dir(root.path(), "suite/op/a_b", "suite/op/a?b", later);
        let stale = benchmark_dir(root.path(), "suite/old", "suite/old", earlier);
        let baseline = root.path().join("suite/op/a_b/base");
        fs::create_dir_all(&baseline).unwrap();
        fs::write(
            baseline.join("benchmark.json"),
            r#"{"full_id":"suite/op/a?b"}"#,
        )
        .unwrap();

        let records = BTreeMap::from([
            ("suite/op/a?b".to_owned(), totals(100, 300, 4800)),
            ("suite/old".to_owned(), totals(10, 10, 10)),
            ("suite/test-mode-only".to_owned(), totals(0, 0, 0)),
        ]);
        let summary = write_allocation_files(root.path(), started, &records).unwrap();

        assert_eq!(summary.written, vec![sanitised.join("allocations.json")]);
        assert_eq!(summary.unmatched, vec!["suite/old".to_owned()]);
        let written: AllocationsFile =
            serde_json::from_slice(&fs::read(sanitised.join("allocations.json")).unwrap()).unwrap();
        assert_eq!(
            written,
            AllocationsFile {
                iterations: 100,
                allocations: 300,
                bytes: 4800
            }
        );
        assert!(!stale.join("allocations.json").exists());
        assert!(!baseline.join("allocations.json").exists());
    }

    #[test]
    fn removal_touches_only_fresh_results() {
        let root = tempfile::tempdir().unwrap();
        let started = SystemTime::now();
        let fresh = benchmark_dir(
            root.path(),
            "suite/fresh",
            "suite/fresh",
            started + Duration::from_secs(1),
        );
        let stale = benchmark_dir(
            root.path(),
            "suite/stale",
            "suite/stale",
            started - Duration::from_secs(3600),
        );
        let without = benchmark_dir(
            root.path(),
            "suite/without",
            "suite/without",
            started + Duration::from_secs(1),
        );
        for dir in [&fresh, &stale] {
            fs::write(dir.join("allocations.json"), "{}").unwrap();
        }

        let removed = remove_allocation_files(root.path(), started).unwrap();

        assert_eq!(removed, vec![fresh.join("allocations.json")]);
        assert!(!fresh.join("allocations.json").exists());
        assert!(stale.join("allocations.json").exists());
        assert!(!without.join("allocations.json").exists());
        let missing = root.path().join("does-not-exist");
        assert_eq!(
            remove_allocation_files(&missing, started).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn nothing_to_do_without_counted_iterations_or_results() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("does-not-exist");
        let records = BTreeMap::from([("a/b".to_owned(), totals(0, 0, 0))]);
        let summary = write_allocation_files(&missing, SystemTime::now(), &records).unwrap();
        assert_eq!(summary, WriteSummary::default());
    }

    #[test]
    fn a_corrupt_benchmark_json_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("a/b/new");
        fs::create_dir_all(&new).unwrap();
        fs::write(new.join("benchmark.json"), "{ not json").unwrap();
        let records = BTreeMap::from([("a/b".to_owned(), totals(1, 1, 1))]);
        let err = write_allocation_files(root.path(), SystemTime::UNIX_EPOCH, &records)
            .expect_err("corrupt file");
        assert!(err.to_string().contains("benchmark.json"), "{err}");
    }
}

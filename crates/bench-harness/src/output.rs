//! Where criterion writes its results, and writing `allocations.json` next to them.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::record::Totals;

/// Criterion's output directory, found the way criterion 0.8 finds it (`default_output_directory`
/// in its `lib.rs`): `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the target
/// directory from `cargo metadata` plus `criterion`, else `target/criterion` (relative to the
/// working directory, which for `cargo bench` is the bench crate's directory).
///
/// [`crate::run`] hands the result to criterion explicitly, so the two can never disagree even
/// if criterion changes its rules.
pub fn default_output_directory() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    cargo_metadata_target_directory()
        .map(|target| target.join("criterion"))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
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

/// The contents of `allocations.json` (the contract is in `benches/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationsFile {
    /// Iterations of the measured routine that were counted.
    pub iterations: u64,
    /// Allocation requests (alloc, alloc_zeroed, realloc) over those iterations.
    pub allocations: u64,
    /// Bytes requested over those iterations.
    pub bytes: u64,
}

/// What [`write_allocation_files`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    /// The `allocations.json` files written.
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
    let mut summary = WriteSummary::default();
    let wanted: BTreeMap<&str, &Totals> = records
        .iter()
        .filter(|(_, totals)| totals.iterations > 0)
        .map(|(id, totals)| (id.as_str(), totals))
        .collect();
    if wanted.is_empty() || !output_directory.exists() {
        summary.unmatched = wanted.keys().map(|id| (*id).to_owned()).collect();
        return Ok(summary);
    }
    let mut found = BTreeMap::new();
    for (path, id) in fresh_results(output_directory, run_started)? {
        if let Some(totals) = wanted.get(id.as_str()) {
            let file = AllocationsFile {
                iterations: totals.iterations,
                allocations: totals.allocations,
                bytes: totals.bytes,
            };
            let target = path.with_file_name("allocations.json");
            let mut json = serde_json::to_string_pretty(&file).map_err(|source| Error::Json {
                path: target.clone(),
                source,
            })?;
            json.push('\n');
            fs::write(&target, json).map_err(|source| Error::Io {
                path: target.clone(),
                source,
            })?;
            found.insert(id, target);
        }
    }
    summary.unmatched = wanted
        .keys()
        .filter(|id| !found.contains_key(**id))
        .map(|id| (*id).to_owned())
        .collect();
    summary.written = found.into_values().collect();
    Ok(summary)
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
    if !output_directory.exists() {
        return Ok(removed);
    }
    for (path, _) in fresh_results(output_directory, run_started)? {
        let target = path.with_file_name("allocations.json");
        match fs::remove_file(&target) {
            Ok(()) => removed.push(target),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: target,
                    source,
                });
            }
        }
    }
    Ok(removed)
}

/// Every `new/benchmark.json` under `output_directory` modified since `run_started`, with its
/// `full_id`.
fn fresh_results(
    output_directory: &Path,
    run_started: SystemTime,
) -> Result<Vec<(PathBuf, String)>, Error> {
    // File systems with coarse timestamps round modification times down to the second, so
    // compare against the start of the second the run started in.
    let since = floor_to_second(run_started);
    let mut results = Vec::new();
    for entry in walkdir::WalkDir::new(output_directory) {
        let entry = entry.map_err(|err| {
            let path = err.path().unwrap_or(output_directory).to_owned();
            Error::Io {
                path,
                source: io::Error::other(err),
            }
        })?;
        let path = entry.path();
        let in_new = path.parent().and_then(Path::file_name) == Some(OsStr::new("new"));
        if entry.file_name() != "benchmark.json" || !in_new {
            continue;
        }
        let modified = entry
            .metadata()
            .map_err(|err| Error::Io {
                path: path.to_owned(),
                source: io::Error::other(err),
            })?
            .modified()
            .map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
        if modified < since {
            continue;
        }
        results.push((path.to_owned(), read_full_id(path)?));
    }
    Ok(results)
}

fn read_full_id(path: &Path) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct BenchmarkJson {
        full_id: String,
    }
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let parsed: BenchmarkJson = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    Ok(parsed.full_id)
}

fn floor_to_second(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()),
        Err(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

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

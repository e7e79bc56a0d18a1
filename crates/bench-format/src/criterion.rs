//! Where criterion writes its results, and finding them there.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::files::{BENCHMARK_JSON, BenchmarkFile, read_json};
use crate::{BenchmarkId, Error};

/// Criterion's output directory, found the way criterion 0.8 finds it (`default_output_directory`
/// in its `lib.rs`): `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else
/// `<target directory>/criterion` with the target directory from `target_dir` (criterion asks
/// `cargo metadata`; xtask knows the workspace), else `target/criterion` relative to the working
/// directory.
///
/// The harness hands the result to criterion explicitly, so the two never disagree.
pub fn output_directory(target_dir: impl FnOnce() -> Option<PathBuf>) -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    target_dir()
        .map(|target| target.join("criterion"))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// One benchmark's result directory found under criterion's output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The benchmark, from `benchmark.json`'s `full_id`.
    pub id: BenchmarkId,
    /// Its `new/` directory, which holds every file of the result.
    pub dir: PathBuf,
    /// When `benchmark.json` was last written.
    pub modified: SystemTime,
}

/// Every result under `dir`: each `new/benchmark.json`, in sorted path order. Criterion's
/// `base/` and `change/` directories are not results. With `since`, results whose
/// `benchmark.json` was last written before that moment (rounded down to the second, for file
/// systems with coarse timestamps) are left out: they belong to earlier runs.
///
/// Criterion's directory names are never rebuilt from ids (it sanitises and de-duplicates
/// them); the id always comes from `full_id`. A missing `dir` holds no results.
pub fn find_results(dir: &Path, since: Option<SystemTime>) -> Result<Vec<Found>, Error> {
    let mut found = Vec::new();
    if !dir.exists() {
        return Ok(found);
    }
    let since = since.map(floor_to_second);
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|err| Error::Io {
            path: err.path().unwrap_or(dir).to_owned(),
            source: io::Error::other(err),
        })?;
        let path = entry.path();
        let Some(parent) = path.parent() else {
            continue;
        };
        if entry.file_name() != BENCHMARK_JSON || parent.file_name() != Some(OsStr::new("new")) {
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
        if since.is_some_and(|since| modified < since) {
            continue;
        }
        let file: BenchmarkFile = read_json(path)?;
        let id = BenchmarkId::new(file.full_id).map_err(|err| Error::Invalid {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        found.push(Found {
            id,
            dir: parent.to_owned(),
            modified,
        });
    }
    Ok(found)
}

fn floor_to_second(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()),
        Err(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};

    use super::*;

    fn result(root: &Path, dir: &str, full_id: &str, modified: SystemTime) -> PathBuf {
        let new = root.join(dir).join("new");
        fs::create_dir_all(&new).unwrap();
        let file = new.join(BENCHMARK_JSON);
        fs::write(
            &file,
            format!("{{\"full_id\":{full_id:?},\"title\":\"x\"}}"),
        )
        .unwrap();
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        new
    }

    #[test]
    fn finds_fresh_new_results_by_full_id() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        // Criterion sanitises '?' in directory names, so the directory differs from the id.
        let sanitised = result(root.path(), "s/op/a_b", "s/op/a?b", now);
        result(
            root.path(),
            "s/old",
            "s/old",
            now - Duration::from_secs(3600),
        );
        let base = root.path().join("s/op/a_b/base");
        fs::create_dir_all(&base).unwrap();
        fs::write(base.join(BENCHMARK_JSON), r#"{"full_id":"s/op/a?b"}"#).unwrap();

        let all = find_results(root.path(), None).unwrap();
        let ids: Vec<&str> = all.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["s/old", "s/op/a?b"]);
        let fresh = find_results(root.path(), Some(now - Duration::from_secs(60))).unwrap();
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].dir, sanitised);
        assert!(
            find_results(&root.path().join("missing"), None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_malformed_id_names_the_file() {
        let root = tempfile::tempdir().unwrap();
        result(root.path(), "x", "lonely", SystemTime::now());
        let err = find_results(root.path(), None).unwrap_err();
        assert!(err.to_string().contains("x/new/benchmark.json"), "{err}");
    }
}

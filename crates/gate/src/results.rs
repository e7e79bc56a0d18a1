//! Reading criterion's output directory: `benchmark.json`, `sample.json`, `estimates.json` and
//! the harness's `allocations.json`, found under every `<benchmark dir>/new/`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// One benchmark's measurement, as the comparison needs it. The same shape is stored in the
/// baselines, so results and baselines compare like for like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    /// Criterion's median time per iteration, in nanoseconds.
    pub median_ns: f64,
    /// Criterion's bootstrap confidence interval of that median (95% unless configured).
    pub median_ci_ns: [f64; 2],
    /// Allocations per iteration of the measured routine, if the harness counted them.
    pub allocations_per_iteration: Option<f64>,
    /// Bytes requested per iteration of the measured routine, if the harness counted them.
    pub bytes_per_iteration: Option<f64>,
    /// Every sample's time per iteration (`times[i] / iters[i]`), in nanoseconds.
    pub samples_ns: Vec<f64>,
}

/// One benchmark found in criterion's output.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkResult {
    /// Criterion's `full_id`, `<suite>/<operation>[/<parameter>]`.
    pub id: String,
    /// The `new` directory holding its files.
    pub dir: PathBuf,
    /// What was measured.
    pub measurement: Measurement,
}

/// Everything found in one criterion output directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// The benchmarks, by id.
    pub benchmarks: BTreeMap<String, BenchmarkResult>,
    /// Things worth telling the reader that do not stop the gate.
    pub warnings: Vec<String>,
}

/// The suite of a benchmark id: its first `/`-separated segment.
pub fn suite_of(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

#[derive(Deserialize)]
struct BenchmarkJson {
    full_id: String,
}

#[derive(Deserialize)]
struct SampleJson {
    iters: Vec<f64>,
    times: Vec<f64>,
}

#[derive(Deserialize)]
struct EstimatesJson {
    median: EstimateJson,
}

#[derive(Deserialize)]
struct EstimateJson {
    point_estimate: f64,
    confidence_interval: IntervalJson,
}

#[derive(Deserialize)]
struct IntervalJson {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocationsJson {
    iterations: u64,
    allocations: u64,
    bytes: u64,
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, message: impl Into<String>) -> Error {
    Error::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads every benchmark under `dir`. With `newer_than`, results whose `benchmark.json` was
/// last written before that moment (rounded down to the second, for coarse file systems) are
/// left out: they are leftovers of earlier runs.
///
/// An unreadable or corrupt file is an error naming it; a directory without any result is
/// [`Error::NoResults`].
pub fn read_results(dir: &Path, newer_than: Option<SystemTime>) -> Result<Results, Error> {
    if !dir.is_dir() {
        return Err(Error::NoResults {
            dir: dir.to_owned(),
        });
    }
    let since = newer_than.map(floor_to_second);
    let mut results = Results::default();
    // Sorted traversal makes the outcome (and any duplicate warning) independent of the order
    // the file system lists directories in.
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|err| Error::Read {
            path: err.path().unwrap_or(dir).to_owned(),
            source: err.into(),
        })?;
        let path = entry.path();
        let parent = path.parent().unwrap_or(dir);
        if entry.file_name() != "benchmark.json" || parent.file_name() != Some(OsStr::new("new")) {
            continue;
        }
        let modified = entry
            .metadata()
            .map_err(|err| Error::Read {
                path: path.to_owned(),
                source: err.into(),
            })?
            .modified()
            .map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })?;
        if since.is_some_and(|since| modified < since) {
            continue;
        }
        let result = read_benchmark(parent)?;
        match results.benchmarks.get(&result.id) {
            // Criterion never writes one id twice in a run, but an output directory that has
            // seen many runs can hold an id in two places (if the sanitised name changed).
            // The newer one is this run's.
            Some(existing) => {
                let existing_time = fs::metadata(existing.dir.join("benchmark.json"))
                    .and_then(|m| m.modified())
                    .unwrap_or(UNIX_EPOCH);
                let (keep, drop) = if modified > existing_time {
                    (result, existing.dir.clone())
                } else {
                    (existing.clone(), result.dir)
                };
                results.warnings.push(format!(
                    "{} appears twice; using {} and ignoring the older {}",
                    keep.id,
                    keep.dir.display(),
                    drop.display()
                ));
                results.benchmarks.insert(keep.id.clone(), keep);
            }
            None => {
                results.benchmarks.insert(result.id.clone(), result);
            }
        }
    }
    if results.benchmarks.is_empty() {
        return Err(Error::NoResults {
            dir: dir.to_owned(),
        });
    }
    Ok(results)
}

/// Reads one benchmark's files from its `new` directory.
pub fn read_benchmark(new_dir: &Path) -> Result<BenchmarkResult, Error> {
    let benchmark_path = new_dir.join("benchmark.json");
    let benchmark: BenchmarkJson = read_json(&benchmark_path)?;
    if benchmark.full_id.is_empty() {
        return Err(invalid(&benchmark_path, "full_id is empty"));
    }

    let sample_path = new_dir.join("sample.json");
    let sample: SampleJson = read_json(&sample_path)?;
    if sample.iters.is_empty() || sample.iters.len() != sample.times.len() {
        return Err(invalid(
            &sample_path,
            format!(
                "expected as many iteration counts as times, at least one ({} and {})",
                sample.iters.len(),
                sample.times.len()
            ),
        ));
    }
    let mut samples_ns = Vec::with_capacity(sample.iters.len());
    for (&iters, &time) in sample.iters.iter().zip(&sample.times) {
        if !(iters.is_finite() && iters > 0.0 && time.is_finite() && time >= 0.0) {
            return Err(invalid(
                &sample_path,
                format!("a sample of {time} ns over {iters} iterations is not a measurement"),
            ));
        }
        samples_ns.push(time / iters);
    }

    let estimates_path = new_dir.join("estimates.json");
    let estimates: EstimatesJson = read_json(&estimates_path)?;
    let median = estimates.median;
    let ci = median.confidence_interval;
    if ![median.point_estimate, ci.lower_bound, ci.upper_bound]
        .iter()
        .all(|v| v.is_finite())
        || median.point_estimate < 0.0
    {
        return Err(invalid(
            &estimates_path,
            "the median estimate is not a finite time",
        ));
    }

    let allocations_path = new_dir.join("allocations.json");
    let (allocations_per_iteration, bytes_per_iteration) = if allocations_path.exists() {
        let counts: AllocationsJson = read_json(&allocations_path)?;
        if counts.iterations == 0 {
            return Err(invalid(&allocations_path, "iterations is 0"));
        }
        let n = counts.iterations as f64;
        (
            Some(counts.allocations as f64 / n),
            Some(counts.bytes as f64 / n),
        )
    } else {
        (None, None)
    };

    Ok(BenchmarkResult {
        id: benchmark.full_id,
        dir: new_dir.to_owned(),
        measurement: Measurement {
            median_ns: median.point_estimate,
            median_ci_ns: [ci.lower_bound, ci.upper_bound],
            allocations_per_iteration,
            bytes_per_iteration,
            samples_ns,
        },
    })
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

    use serde_json::json;

    use super::*;

    pub(crate) fn write_benchmark(root: &Path, dir: &str, id: &str, times: &[f64]) -> PathBuf {
        let new = root.join(dir).join("new");
        fs::create_dir_all(&new).unwrap();
        let iters: Vec<f64> = (1..=times.len()).map(|i| i as f64).collect();
        let totals: Vec<f64> = times.iter().zip(&iters).map(|(t, n)| t * n).collect();
        fs::write(
            new.join("benchmark.json"),
            json!({ "full_id": id }).to_string(),
        )
        .unwrap();
        fs::write(
            new.join("sample.json"),
            json!({ "sampling_mode": "Linear", "iters": iters, "times": totals }).to_string(),
        )
        .unwrap();
        let median = crate::stats::median(times).unwrap();
        fs::write(
            new.join("estimates.json"),
            json!({ "median": { "point_estimate": median, "confidence_interval": {
                "confidence_level": 0.95, "lower_bound": median * 0.9, "upper_bound": median * 1.1
            }, "standard_error": 1.0 } })
            .to_string(),
        )
        .unwrap();
        new
    }

    #[test]
    fn reads_per_iteration_samples_and_allocations() {
        let root = tempfile::tempdir().unwrap();
        let new = write_benchmark(root.path(), "s/op", "s/op", &[10.0, 12.0, 11.0]);
        fs::write(
            new.join("allocations.json"),
            json!({ "iterations": 4, "allocations": 10, "bytes": 100 }).to_string(),
        )
        .unwrap();
        let results = read_results(root.path(), None).unwrap();
        let m = &results.benchmarks["s/op"].measurement;
        assert_eq!(m.samples_ns, vec![10.0, 12.0, 11.0]);
        assert_eq!(m.median_ns, 11.0);
        assert_eq!(m.allocations_per_iteration, Some(2.5));
        assert_eq!(m.bytes_per_iteration, Some(25.0));
    }

    #[test]
    fn baselines_saved_by_criterion_and_stale_results_are_ignored() {
        let root = tempfile::tempdir().unwrap();
        write_benchmark(root.path(), "s/fresh", "s/fresh", &[1.0]);
        let stale = write_benchmark(root.path(), "s/stale", "s/stale", &[1.0]);
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(stale.join("benchmark.json"))
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        // Criterion's `base` directory (the previous run) must not count as a result.
        let base = root.path().join("s/fresh/base");
        fs::create_dir_all(&base).unwrap();
        fs::write(base.join("benchmark.json"), r#"{"full_id":"s/fresh"}"#).unwrap();

        let all = read_results(root.path(), None).unwrap();
        assert_eq!(
            all.benchmarks.keys().collect::<Vec<_>>(),
            ["s/fresh", "s/stale"]
        );
        let recent = read_results(root.path(), Some(an_hour_ago + Duration::from_secs(60)));
        assert_eq!(
            recent.unwrap().benchmarks.keys().collect::<Vec<_>>(),
            ["s/fresh"]
        );
    }

    #[test]
    fn bad_files_are_named() {
        let root = tempfile::tempdir().unwrap();
        let new = write_benchmark(root.path(), "s/op", "s/op", &[1.0, 2.0]);
        fs::write(new.join("estimates.json"), "{\"median\": 3").unwrap();
        let err = read_results(root.path(), None).unwrap_err();
        assert!(matches!(&err, Error::Json { path, .. } if path.ends_with("new/estimates.json")));

        write_benchmark(root.path(), "s/op", "s/op", &[1.0, 2.0]);
        fs::write(new.join("sample.json"), r#"{"iters":[1.0],"times":[]}"#).unwrap();
        let err = read_results(root.path(), None).unwrap_err();
        assert!(matches!(&err, Error::Invalid { path, .. } if path.ends_with("new/sample.json")));

        write_benchmark(root.path(), "s/op", "s/op", &[1.0, 2.0]);
        fs::write(
            new.join("allocations.json"),
            r#"{"iterations":0,"allocations":0,"bytes":0}"#,
        )
        .unwrap();
        let err = read_results(root.path(), None).unwrap_err();
        assert!(err.to_string().contains("allocations.json"), "{err}");
    }

    #[test]
    fn no_results_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_results(root.path(), None),
            Err(Error::NoResults { .. })
        ));
        let missing = root.path().join("missing");
        assert!(matches!(
            read_results(&missing, None),
            Err(Error::NoResults { .. })
        ));
    }

    #[test]
    fn suite_is_the_first_segment() {
        assert_eq!(suite_of("cart/checkout/10"), "cart");
        assert_eq!(suite_of("lonely"), "lonely");
    }
}

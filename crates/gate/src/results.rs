//! Reading criterion's output directory: `benchmark.json`, `sample.json`, `estimates.json` and
//! the harness's `allocations.json` and `roundtrips.json`, found under every
//! `<benchmark dir>/new/` (the files and their types are `bench_format`'s).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bench_format::BenchmarkId;
use bench_format::criterion::find_results;
use bench_format::files::{
    ALLOCATIONS_JSON, AllocationsFile, BENCHMARK_JSON, ESTIMATES_JSON, EstimatesFile,
    ROUNDTRIPS_JSON, RoundTripsFile, SAMPLE_JSON, SampleFile,
};
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
    /// Server round trips per iteration, if the suite counted them (absent from baselines of
    /// format 1).
    #[serde(default)]
    pub round_trips: Option<RoundTrips>,
    /// Every sample's time per iteration (`times[i] / iters[i]`), in nanoseconds.
    pub samples_ns: Vec<f64>,
}

/// What one iteration asked of the servers (from `roundtrips.json`, divided by its
/// iterations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundTrips {
    /// PostgreSQL statements per iteration; `None` when they were not counted.
    pub postgres_statements: Option<f64>,
    /// Redis commands per iteration; `None` when they were not counted.
    pub redis_commands: Option<f64>,
    /// Per statement text, per iteration.
    #[serde(default)]
    pub statements: BTreeMap<String, f64>,
    /// Per Redis command, per iteration.
    #[serde(default)]
    pub commands: BTreeMap<String, f64>,
    /// Why a server was not counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

impl RoundTrips {
    /// The per-iteration figures of a `roundtrips.json`; `None` for zero iterations.
    pub fn from_file(file: &RoundTripsFile) -> Option<RoundTrips> {
        if file.iterations == 0 {
            return None;
        }
        let n = file.iterations as f64;
        let per = |map: &BTreeMap<String, u64>| {
            map.iter()
                .map(|(key, count)| (key.clone(), *count as f64 / n))
                .collect()
        };
        Some(RoundTrips {
            postgres_statements: file.postgres_statements.map(|c| c as f64 / n),
            redis_commands: file.redis_commands.map(|c| c as f64 / n),
            statements: per(&file.statements),
            commands: per(&file.commands),
            unavailable: file.unavailable.clone(),
        })
    }
}

/// One benchmark found in criterion's output.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkResult {
    /// Criterion's `full_id`, `<suite>/<operation>[/<parameter>]`.
    pub id: BenchmarkId,
    /// The `new` directory holding its files.
    pub dir: PathBuf,
    /// What was measured.
    pub measurement: Measurement,
}

/// Everything found in one criterion output directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// The benchmarks, by id.
    pub benchmarks: BTreeMap<BenchmarkId, BenchmarkResult>,
    /// Things worth telling the reader that do not stop the gate.
    pub warnings: Vec<String>,
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    Ok(bench_format::files::read_json(path)?)
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
    let mut results = Results::default();
    let mut written: BTreeMap<BenchmarkId, SystemTime> = BTreeMap::new();
    // Sorted traversal makes the outcome (and any duplicate warning) independent of the order
    // the file system lists directories in.
    for found in find_results(dir, newer_than)? {
        let result = read_benchmark(&found.dir)?;
        match results.benchmarks.get(&result.id) {
            // Criterion never writes one id twice in a run, but an output directory that has
            // seen many runs can hold an id in two places (if the sanitised name changed).
            // The newer one is this run's.
            Some(existing) => {
                let existing_time = written[&result.id];
                let (keep, drop) = if found.modified > existing_time {
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
                written.insert(keep.id.clone(), found.modified.max(existing_time));
                results.benchmarks.insert(keep.id.clone(), keep);
            }
            None => {
                written.insert(result.id.clone(), found.modified);
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
    let benchmark_path = new_dir.join(BENCHMARK_JSON);
    let benchmark: bench_format::files::BenchmarkFile = read_json(&benchmark_path)?;
    let id = BenchmarkId::new(benchmark.full_id)
        .map_err(|err| invalid(&benchmark_path, err.to_string()))?;

    let sample_path = new_dir.join(SAMPLE_JSON);
    let sample: SampleFile = read_json(&sample_path)?;
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

    let estimates_path = new_dir.join(ESTIMATES_JSON);
    let estimates: EstimatesFile = read_json(&estimates_path)?;
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

    let allocations_path = new_dir.join(ALLOCATIONS_JSON);
    let (allocations_per_iteration, bytes_per_iteration) = if allocations_path.exists() {
        let counts: AllocationsFile = read_json(&allocations_path)?;
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

    let round_trips_path = new_dir.join(ROUNDTRIPS_JSON);
    let round_trips = if round_trips_path.exists() {
        let file: RoundTripsFile = read_json(&round_trips_path)?;
        Some(
            RoundTrips::from_file(&file)
                .ok_or_else(|| invalid(&round_trips_path, "iterations is 0"))?,
        )
    } else {
        None
    };

    Ok(BenchmarkResult {
        id,
        dir: new_dir.to_owned(),
        measurement: Measurement {
            median_ns: median.point_estimate,
            median_ci_ns: [ci.lower_bound, ci.upper_bound],
            allocations_per_iteration,
            bytes_per_iteration,
            round_trips,
            samples_ns,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::time::Duration;

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
}

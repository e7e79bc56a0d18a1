//! Stored mode: the results of a criterion run against the latency, allocations and round
//! trips recorded in `baselines/`, normalised by the floors (see the crate docs); and the
//! baseline refresh that records them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::SystemTime;

use bench_format::BenchmarkId;

use crate::Error;
use crate::baseline::{self, FORMAT, SuiteBaseline};
use crate::compare::{ALPHA, Comparison, compare, compare_normalized};
use crate::config::{Config, ConfigFile, Thresholds};
use crate::fingerprint::Fingerprint;
use crate::report::{
    BenchmarkReport, FingerprintMismatch, FingerprintReport, Mode, Report, SuiteSpeed,
};
use crate::results::{Measurement, Results, read_results};

/// What [`run_gate`] compares.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Criterion's output directory.
    pub criterion_dir: PathBuf,
    /// The directory of `<suite>.json` baselines.
    pub baseline_dir: PathBuf,
    /// The overrides.
    pub config: ConfigFile,
    /// Only results written at or after this moment count (set when the gate ran the
    /// benchmarks itself, so leftovers of older runs are ignored).
    pub newer_than: Option<SystemTime>,
    /// Only these suites (results and baselines); all when `None`.
    pub suites: Option<BTreeSet<String>>,
    /// This machine.
    pub fingerprint: Fingerprint,
}

/// Compares the results with the baselines. `Ok` carries a verdict (pass or fail); `Err` is a
/// usage or data error.
pub fn run_gate(options: &GateOptions) -> Result<Report, Error> {
    let config = Config::load(&options.config)?;
    let mut results = read_results(&options.criterion_dir, options.newer_than)?;
    let mut baselines = baseline::read_dir(&options.baseline_dir)?;
    let all_baselines = baselines.clone();
    if let Some(suites) = &options.suites {
        results
            .benchmarks
            .retain(|id, _| suites.contains(id.suite()));
        baselines.retain(|suite, _| suites.contains(suite));
        if results.benchmarks.is_empty() {
            return Err(Error::NoResults {
                dir: options.criterion_dir.clone(),
            });
        }
    }

    let baseline_of: BTreeMap<&BenchmarkId, &Measurement> = baselines
        .values()
        .flat_map(|b| b.benchmarks.iter())
        .collect();
    let ids: BTreeSet<&BenchmarkId> = results
        .benchmarks
        .keys()
        .chain(baseline_of.keys().copied())
        .collect();

    let speeds = speed_factors(&config, &baseline_of, &results);
    let speed_of = |id: &BenchmarkId| speed_factor_for(&config, &speeds, id);

    let mut in_common = 0;
    let mut used_overrides = BTreeSet::new();
    let mut benchmarks = Vec::with_capacity(ids.len());
    for id in ids {
        let thresholds = config.thresholds_for(id.as_str());
        let applied_override = config.applied_override(id.as_str(), &mut used_overrides);
        let measured = match (baseline_of.get(id), results.benchmarks.get(id.as_str())) {
            (Some(base), Some(current)) => {
                in_common += 1;
                if base.allocations_per_iteration.is_some()
                    && current.measurement.allocations_per_iteration.is_none()
                {
                    return Err(Error::Invalid {
                        path: current.dir.join("allocations.json"),
                        message: format!(
                            "missing, but the baseline of {id} has allocation counts: was the \
                             benchmark run through `bench_harness::main!`?"
                        ),
                    });
                }
                if config.is_reference(id.as_str()) {
                    compare(base, &current.measurement, &thresholds).as_reference()
                } else {
                    let (factor, references) = speed_of(id);
                    let mut comparison =
                        compare_normalized(base, &current.measurement, &thresholds, factor);
                    if references.is_empty()
                        && let Some(floors) = config.floors_for(id.as_str())
                    {
                        comparison.notes.push(format!(
                            "not normalised: its [[reference]] floors ({}) were not measured in \
                             both the baseline and this run",
                            floors.join(", ")
                        ));
                    }
                    if let Some(latency) = &mut comparison.latency {
                        latency.references = references;
                    }
                    comparison
                }
            }
            (None, Some(_)) => Comparison::new_benchmark(),
            (Some(_), None) => Comparison::missing(),
            (None, None) => unreachable!("every id comes from the results or the baselines"),
        };
        benchmarks.push(BenchmarkReport {
            id: id.clone(),
            thresholds,
            applied_override,
            measured,
            confirmation: None,
        });
    }
    if in_common == 0 {
        return Err(Error::NothingInCommon {
            results: results.benchmarks.len(),
            criterion_dir: options.criterion_dir.clone(),
            baseline_dir: options.baseline_dir.clone(),
        });
    }

    let mismatches = baselines
        .values()
        .filter_map(|b| {
            let differences = b.fingerprint.differences(&options.fingerprint);
            (!differences.is_empty()).then(|| FingerprintMismatch {
                suite: b.suite.clone(),
                baseline: b.fingerprint.clone(),
                differences,
            })
        })
        .collect();
    // An override is stale if it matches no benchmark of any suite, run or not.
    let unused_overrides = config
        .overrides
        .iter()
        .filter(|o| !used_overrides.contains(&o.glob))
        .filter(|o| {
            !all_baselines
                .values()
                .flat_map(|b| b.benchmarks.keys())
                .any(|id| o.matches(id.as_str()))
        })
        .map(|o| o.glob.clone())
        .collect();

    let notes = round_trip_notes(
        results
            .benchmarks
            .iter()
            .map(|(id, result)| (id, &result.measurement)),
    );
    let mut warnings = results.warnings;
    for (reference, ratio) in speeds.iter().flat_map(|speed| &speed.references) {
        if !(1.0 / SPEED_WARNING..=SPEED_WARNING).contains(ratio) {
            warnings.push(format!(
                "reference benchmark {reference} ran {ratio:.2}× as long as in the baseline; \
                 normalising a change of speed that large assumes the benchmarks it stands for \
                 felt it alike — refresh the baseline on this machine if it persists"
            ));
        }
    }
    let mut report = Report::new(
        Mode::Stored,
        Thresholds::default(),
        ALPHA,
        FingerprintReport {
            current: options.fingerprint.clone(),
            mismatches,
        },
        benchmarks,
        unused_overrides,
        warnings,
    );
    report.speeds = speeds;
    report.notes = notes;
    Ok(report)
}

/// The speed factor of benchmark `id` and the reference benchmarks it comes from: the
/// geometric mean of the ratios of the floors its `[[reference]]` rule names, or of all its
/// suite's reference benchmarks. `(1, [])` when none of them was measured on both sides.
fn speed_factor_for(
    config: &Config,
    speeds: &[SuiteSpeed],
    id: &BenchmarkId,
) -> (f64, Vec<BenchmarkId>) {
    let Some(speed) = speeds.iter().find(|s| s.suite == id.suite()) else {
        return (1.0, Vec::new());
    };
    let chosen: Vec<&(BenchmarkId, f64)> = match config.floors_for(id.as_str()) {
        Some(floors) => speed
            .references
            .iter()
            .filter(|(reference, _)| floors.iter().any(|f| reference.last_segment() == f))
            .collect(),
        None => speed.references.iter().collect(),
    };
    if chosen.is_empty() {
        return (1.0, Vec::new());
    }
    let mean_log = chosen.iter().map(|(_, r)| r.ln()).sum::<f64>() / chosen.len() as f64;
    (
        mean_log.exp(),
        chosen
            .iter()
            .map(|(reference, _)| reference.clone())
            .collect(),
    )
}

/// One line per suite and server whose round trips were not counted, and why (the reasons
/// the counting recorded in `roundtrips.json`): never a silent gap.
pub(crate) fn round_trip_notes<'a>(
    measurements: impl Iterator<Item = (&'a BenchmarkId, &'a Measurement)>,
) -> Vec<String> {
    let mut reasons: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (id, measurement) in measurements {
        if let Some(round_trips) = &measurement.round_trips {
            reasons.extend(
                round_trips
                    .unavailable
                    .iter()
                    .map(|r| (id.suite(), r.as_str())),
            );
        }
    }
    reasons
        .into_iter()
        .map(|(suite, reason)| format!("round trips of suite {suite}: {reason}"))
        .collect()
}

/// A speed factor beyond which (or below whose inverse) the report warns.
const SPEED_WARNING: f64 = 1.5;

/// Each suite's speed factor: the geometric mean, over its reference benchmarks present in
/// both the baseline and the results, of current median / baseline median. Suites without
/// reference benchmarks are left out (factor 1).
fn speed_factors(
    config: &Config,
    baseline_of: &BTreeMap<&BenchmarkId, &Measurement>,
    results: &Results,
) -> Vec<SuiteSpeed> {
    let mut by_suite: BTreeMap<&str, Vec<(BenchmarkId, f64)>> = BTreeMap::new();
    for (id, result) in &results.benchmarks {
        let Some(base) = baseline_of.get(id) else {
            continue;
        };
        let ratio = result.measurement.median_ns / base.median_ns;
        if config.is_reference(id.as_str()) && ratio.is_finite() && ratio > 0.0 {
            by_suite
                .entry(id.suite())
                .or_default()
                .push((id.clone(), ratio));
        }
    }
    by_suite
        .into_iter()
        .map(|(suite, refs)| {
            let mean_log = refs.iter().map(|(_, r)| r.ln()).sum::<f64>() / refs.len() as f64;
            SuiteSpeed {
                suite: suite.to_owned(),
                factor: mean_log.exp(),
                references: refs,
            }
        })
        .collect()
}

/// What [`refresh`] rewrites.
#[derive(Debug, Clone)]
pub struct RefreshOptions {
    /// Criterion's output directory.
    pub criterion_dir: PathBuf,
    /// The directory of `<suite>.json` baselines (created if missing).
    pub baseline_dir: PathBuf,
    /// Only results written at or after this moment count.
    pub newer_than: Option<SystemTime>,
    /// Only these suites; all suites in the results when `None`.
    pub suites: Option<BTreeSet<String>>,
    /// This machine, recorded in every file written.
    pub fingerprint: Fingerprint,
}

/// One baseline file written by [`refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshedSuite {
    /// The suite.
    pub suite: String,
    /// The file.
    pub path: PathBuf,
    /// How many benchmarks it holds.
    pub benchmarks: usize,
}

/// Rewrites the baseline of every suite in the results, atomically, one file per suite. Suites
/// that are not in the results are left untouched; a suite's file is replaced as a whole, so
/// benchmarks that no longer exist leave the baseline.
pub fn refresh(options: &RefreshOptions) -> Result<Vec<RefreshedSuite>, Error> {
    baseline::check_dir(&options.baseline_dir)?;
    let results = read_results(&options.criterion_dir, options.newer_than)?;
    let mut suites: BTreeMap<String, SuiteBaseline> = BTreeMap::new();
    for (id, result) in results.benchmarks {
        let suite = id.suite().to_owned();
        if options
            .suites
            .as_ref()
            .is_some_and(|wanted| !wanted.contains(&suite))
        {
            continue;
        }
        if suite.is_empty() || suite.contains(['\\', '.']) {
            return Err(Error::Invalid {
                path: result.dir.join("benchmark.json"),
                message: format!("the id {id:?} does not start with a usable suite name"),
            });
        }
        suites
            .entry(suite.clone())
            .or_insert_with(|| SuiteBaseline {
                format: FORMAT,
                suite,
                fingerprint: options.fingerprint.clone(),
                benchmarks: BTreeMap::new(),
            })
            .benchmarks
            .insert(id, result.measurement);
    }
    if suites.is_empty() {
        return Err(Error::NoResults {
            dir: options.criterion_dir.clone(),
        });
    }
    let mut written = Vec::with_capacity(suites.len());
    for (suite, content) in suites {
        let path = baseline::path_of(&options.baseline_dir, &suite);
        baseline::write_atomically(&path, baseline::to_json(&content).as_bytes())?;
        written.push(RefreshedSuite {
            suite,
            path,
            benchmarks: content.benchmarks.len(),
        });
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn id(text: &str) -> BenchmarkId {
        BenchmarkId::new(text).unwrap()
    }

    fn speeds() -> Vec<SuiteSpeed> {
        vec![SuiteSpeed {
            suite: "cart".to_owned(),
            factor: (1.5_f64 * 1.1).sqrt(),
            references: vec![
                (id("cart/floor/postgres_select_1"), 1.5),
                (id("cart/floor/redis_get"), 1.1),
            ],
        }]
    }

    #[test]
    fn a_benchmark_is_normalised_by_the_floors_its_rule_names() {
        let config = Config::parse(
            "[[reference]]\nglob = \"cart/get_cart_hit\"\nfloors = [\"redis_get\"]\nreason = \"r\"\n",
            Path::new("perf-gate.toml"),
        )
        .unwrap();
        let (factor, references) = speed_factor_for(&config, &speeds(), &id("cart/get_cart_hit"));
        assert!((factor - 1.1).abs() < 1e-12);
        assert_eq!(references, ["cart/floor/redis_get"]);

        // No rule: the geometric mean of every reference benchmark of the suite.
        let (factor, references) = speed_factor_for(&config, &speeds(), &id("cart/add_item"));
        assert!((factor - (1.5_f64 * 1.1).sqrt()).abs() < 1e-12);
        assert_eq!(references.len(), 2);

        // A suite without reference benchmarks is not normalised.
        assert_eq!(
            speed_factor_for(&config, &speeds(), &id("orders/get_order")),
            (1.0, Vec::new())
        );
    }

    #[test]
    fn a_rule_naming_floors_that_were_not_measured_does_not_normalise() {
        let config = Config::parse(
            "[[reference]]\nglob = \"cart/**\"\nfloors = [\"memory_reference\"]\nreason = \"r\"\n",
            Path::new("perf-gate.toml"),
        )
        .unwrap();
        assert_eq!(
            speed_factor_for(&config, &speeds(), &id("cart/add_item")),
            (1.0, Vec::new())
        );
    }
}

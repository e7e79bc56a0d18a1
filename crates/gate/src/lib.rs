//! The performance regression gate: criterion's results against the committed baselines, with a
//! verdict, reports, and the baseline refresh. `cargo xtask perf-gate` and `cargo xtask baseline
//! refresh` are thin front ends over [`run_gate`] and [`refresh`].
//!
//! The gate knows nothing of the domains it measures: a benchmark is an id
//! (`<suite>/<operation>[/<parameter>]`), criterion's files, and optional allocation counts.
//!
//! # Inputs
//!
//! Under the criterion directory, every `<benchmark>/new/` holding a `benchmark.json` is a
//! result: `benchmark.json` gives the id (`full_id`), `sample.json` the samples (time per
//! iteration `times[i] / iters[i]`), `estimates.json` the median and its confidence interval,
//! and the bench harness's `allocations.json` (`{"iterations", "allocations", "bytes"}`, totals)
//! the allocations and bytes per iteration. Baselines are `<baseline dir>/<suite>.json` (see
//! [`baseline::SuiteBaseline`]), holding the same [`Measurement`] per benchmark plus a
//! [`Fingerprint`] of where they were measured.
//!
//! # Rules
//!
//! Each benchmark gets one [`Status`]: regressed, improved, unchanged, new (no baseline) or
//! missing (in the baseline, not in the results). Thresholds default to 20% (latency), 30%
//! (allocations), 30% (bytes) and can be overridden per glob in `perf-gate.toml` (see
//! [`config`]), with a mandatory reason shown in the reports.
//!
//! **Latency** regresses when both hold, with `t` the threshold:
//!
//! 1. the median time per iteration grew by more than `t`: `current / baseline > 1 + t`;
//! 2. a one-sided Mann-Whitney U test of the current samples against the baseline samples
//!    multiplied by `1 + t` rejects "current is not slower than `(1 + t)` × baseline" at
//!    α = 0.01 (normal approximation with tie and continuity corrections; [`stats`]).
//!
//! It improves in the mirror case: median below `baseline / (1 + t)` (for 20%: 16.7% faster)
//! and the test against the baseline divided by `1 + t` rejects "not faster".
//!
//! Why this rule. A rank test alone is the wrong question: samples within one run are tight
//! and correlated, so between two runs of the same code a drift of a few percent is already
//! "significant" — on a shared machine every benchmark would regress. The threshold does the
//! real work (it says how much change matters), and the test, run against the baseline *scaled
//! by the threshold*, only asks whether the excess over the threshold is more than noise, so a
//! median that crosses 20% on a handful of jittery samples does not fail the build. Mann-Whitney
//! rather than a bootstrap because it is deterministic (no resampling seed), cheap, and works
//! on ranks, so the rare 100 ms spikes of a shared machine move a rank, not a mean. Testing the
//! scaled baseline also needs no assumption about the distribution's shape beyond a change of
//! scale, which is what a slower routine looks like.
//!
//! False alarms. With independent samples, the rule fires at most α = 1% of the time when the
//! true slowdown is exactly `t` (the worst case) and essentially never when nothing changed:
//! in the simulation in `compare.rs` (`false_alarm_rate_of_the_latency_rule`, 2000 trials of
//! 50 + 50 samples, 5% log-normal noise plus 2% spikes) it flagged 0% at +0% and +10%, 0.75%
//! at +20% and 100% at +30%. Across a suite of `k` benchmarks the worst case adds up to `k` × 1%.
//!
//! What the test does not protect against: drift *between* runs. Both samples are assumed to
//! come from the same machine state; if the machine is 25% slower during the second run, the
//! samples are cleanly separated, the test is confident, and the benchmark would be reported as
//! regressed. Two mechanisms take that out:
//!
//! - **Normalisation by reference benchmarks.** Benchmarks matching `[references] globs` in
//!   `perf-gate.toml` (default `*/floor/**`) measure the machine, not the code: a PostgreSQL
//!   `SELECT 1`, a Redis `GET`, fixed CPU, memory and allocator workloads. Each other
//!   benchmark's current samples are divided by a *speed factor* before the rule above is
//!   applied: the geometric mean of current / baseline medians of its references — those named
//!   by the first `[[reference]]` rule whose glob matches it (a PostgreSQL-bound benchmark by
//!   the PostgreSQL floor), else all of its suite's. A shared machine does not slow down evenly
//!   (between two sessions of the development machine, same code: +3% on computation,
//!   +10–20% on allocation-heavy policy evaluation, +13% on a Redis round trip, +46–59% on
//!   PostgreSQL round trips and +56% on a DRAM-bound lookup), hence one reference per resource. References themselves are reported but their latency never
//!   regresses (their allocations still do); a reference that moved by more than 1.5× is a
//!   warning. See [`compare::compare_normalized`].
//! - **Confirmation.** A slow moment of the machine that hits one benchmark and not its
//!   reference is not taken out by normalisation; measuring again is. `cargo xtask perf-gate`
//!   re-runs every benchmark flagged as a latency regression (with its references) and keeps
//!   the regression only if the second run shows it too ([`BenchmarkReport::with_confirmation`],
//!   [`compare::confirm`]).
//!
//! Machine *differences* are caught by the fingerprint instead (below).
//!
//! **Allocations and bytes** per iteration regress when they grow by more than their threshold
//! (exact counts, no statistics), and from zero to anything; they improve when they shrink by
//! more than the threshold (`baseline > current × (1 + t)`), or drop to zero. If the baseline
//! has counts and the results do not, the gate stops with an error naming the missing
//! `allocations.json` (a run without counting must not pass silently).
//!
//! A baseline whose [`Fingerprint`] differs from this machine's (CPU model, logical cores,
//! memory in whole GiB, OS, rustc; never the commit or date) is a loud warning in every report.
//!
//! Never a silent pass: no results, no benchmark in common with the baselines, a missing
//! baseline directory, or an unreadable or corrupt file (named) is an [`Error`] — exit code 2.
//!
//! # The JSON report
//!
//! `--json` writes ([`render::json`]):
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "verdict": "pass" | "fail" | "error",
//!   "error": null | "the message, when verdict is error",
//!   "summary": {"total", "regressed", "improved", "unchanged", "new", "missing"},
//!   "thresholds": null | {"latency_percent", "allocations_percent", "bytes_percent"},
//!   "alpha": null | 0.01,
//!   "fingerprint": null | {"current": Fingerprint,
//!                          "mismatches": [{"suite", "baseline": Fingerprint,
//!                                          "differences": [{"field", "baseline", "current"}]}]},
//!   "unused_overrides": ["glob", ...],
//!   "warnings": ["...", ...],
//!   "speeds": [{"suite", "factor", "references": [["<reference id>", ratio], ...]}, ...],
//!   "benchmarks": [{
//!     "id", "suite",
//!     "status": "regressed" | "improved" | "unchanged" | "new" | "missing",
//!     "regressions": ["latency" | "allocations" | "bytes", ...],
//!     "improvements": [...],
//!     "thresholds": {"latency_percent", "allocations_percent", "bytes_percent"},
//!     "override": null | {"glob", "reason"},
//!     "reason": "one line for humans",
//!     "latency": null | {"baseline_median_ns", "baseline_ci_ns": [lo, hi],
//!                        "current_median_ns", "current_ci_ns": [lo, hi],
//!                        "ratio", "change_percent",        // normalised: what the rule judges
//!                        "raw_ratio", "speed_factor",     // ratio = raw_ratio / speed_factor
//!                        "references": ["<reference id>", ...],
//!                        "p_regression", "p_improvement"},
//!     "allocations": null | {"baseline_per_iteration", "current_per_iteration",
//!                            "change_percent" (null when the baseline is 0)},
//!     "bytes": null | (same as allocations),
//!     "notes": ["...", ...],
//!     "confirmation": null | {"status", "regressions", "improvements", "latency",
//!                             "allocations", "bytes", "notes"}
//!   }, ...]   // regressions first, then missing, new, improved, unchanged; by id within
//! }
//! ```
//!
//! `thresholds` (the defaults), `alpha` and `fingerprint` are `null` only in an error report.
//! `speeds` has one entry per suite with reference benchmarks measured on both sides; its
//! `factor` is the suite-wide geometric mean (what a benchmark without a `[[reference]]` rule
//! is divided by), `ratio` is each reference's current / baseline median.
//! A `Fingerprint` is `{"cpu_model", "logical_cores", "memory_bytes", "os", "rustc",
//! "git_commit", "date"}`.
//!
//! With a confirmation run, `status`, `regressions` and `improvements` are the final verdict
//! (what both runs agree on) while `latency`, `allocations`, `bytes` and `notes` describe the
//! first run.

pub mod baseline;
pub mod compare;
pub mod config;
mod error;
pub mod fingerprint;
pub mod render;
pub mod report;
pub mod results;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::SystemTime;

pub use crate::compare::{ALPHA, Comparison, Metric, Status, compare, compare_normalized};
pub use crate::config::{Config, ConfigFile, Thresholds};
pub use crate::error::{Error, exit_code};
pub use crate::fingerprint::Fingerprint;
pub use crate::report::{AppliedOverride, BenchmarkReport, Report, SuiteSpeed, Verdict};
pub use crate::results::{Measurement, Results, read_results, suite_of};

use crate::baseline::{FORMAT, SuiteBaseline};
use crate::report::{FingerprintMismatch, FingerprintReport};

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
    if let Some(suites) = &options.suites {
        results
            .benchmarks
            .retain(|id, _| suites.contains(suite_of(id)));
        baselines.retain(|suite, _| suites.contains(suite));
        if results.benchmarks.is_empty() {
            return Err(Error::NoResults {
                dir: options.criterion_dir.clone(),
            });
        }
    }

    let baseline_of: BTreeMap<&str, &Measurement> = baselines
        .values()
        .flat_map(|b| b.benchmarks.iter().map(|(id, m)| (id.as_str(), m)))
        .collect();
    let ids: BTreeSet<&str> = results
        .benchmarks
        .keys()
        .map(String::as_str)
        .chain(baseline_of.keys().copied())
        .collect();

    let speeds = speed_factors(&config, &baseline_of, &results);
    let speed_of = |id: &str| speed_factor_for(&config, &speeds, id);

    let mut in_common = 0;
    let mut used_overrides = BTreeSet::new();
    let mut benchmarks = Vec::with_capacity(ids.len());
    for id in ids {
        let thresholds = config.thresholds_for(id);
        let applied_override = config.override_for(id).map(|o| {
            used_overrides.insert(o.glob.clone());
            AppliedOverride {
                glob: o.glob.clone(),
                reason: o.reason.clone(),
            }
        });
        let measured = match (baseline_of.get(id), results.benchmarks.get(id)) {
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
                if config.is_reference(id) {
                    compare(base, &current.measurement, &thresholds).as_reference()
                } else {
                    let (factor, references) = speed_of(id);
                    let mut comparison =
                        compare_normalized(base, &current.measurement, &thresholds, factor);
                    if references.is_empty()
                        && let Some(floors) = config.floors_for(id)
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
            id: id.to_owned(),
            suite: suite_of(id).to_owned(),
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
    let unused_overrides = config
        .overrides
        .iter()
        .filter(|o| !used_overrides.contains(&o.glob))
        .map(|o| o.glob.clone())
        .collect();

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
    Ok(report)
}

/// The speed factor of benchmark `id` and the reference benchmarks it comes from: the
/// geometric mean of the ratios of the floors its `[[reference]]` rule names, or of all its
/// suite's reference benchmarks. `(1, [])` when none of them was measured on both sides.
fn speed_factor_for(config: &Config, speeds: &[SuiteSpeed], id: &str) -> (f64, Vec<String>) {
    let suite = suite_of(id);
    let Some(speed) = speeds.iter().find(|s| s.suite == suite) else {
        return (1.0, Vec::new());
    };
    let chosen: Vec<&(String, f64)> = match config.floors_for(id) {
        Some(floors) => speed
            .references
            .iter()
            .filter(|(reference, _)| {
                floors
                    .iter()
                    .any(|f| reference.rsplit('/').next() == Some(f.as_str()))
            })
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

/// A speed factor beyond which (or below whose inverse) the report warns.
const SPEED_WARNING: f64 = 1.5;

/// Each suite's speed factor: the geometric mean, over its reference benchmarks present in
/// both the baseline and the results, of current median / baseline median. Suites without
/// reference benchmarks are left out (factor 1).
fn speed_factors(
    config: &Config,
    baseline_of: &BTreeMap<&str, &Measurement>,
    results: &Results,
) -> Vec<SuiteSpeed> {
    let mut by_suite: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    for (id, result) in &results.benchmarks {
        let Some(base) = baseline_of.get(id.as_str()) else {
            continue;
        };
        let ratio = result.measurement.median_ns / base.median_ns;
        if config.is_reference(id) && ratio.is_finite() && ratio > 0.0 {
            by_suite
                .entry(suite_of(id))
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
    let results = read_results(&options.criterion_dir, options.newer_than)?;
    let mut suites: BTreeMap<String, SuiteBaseline> = BTreeMap::new();
    for (id, result) in results.benchmarks {
        let suite = suite_of(&id).to_owned();
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

    fn speeds() -> Vec<SuiteSpeed> {
        vec![SuiteSpeed {
            suite: "cart".to_owned(),
            factor: (1.5_f64 * 1.1).sqrt(),
            references: vec![
                ("cart/floor/postgres_select_1".to_owned(), 1.5),
                ("cart/floor/redis_get".to_owned(), 1.1),
            ],
        }]
    }

    #[test]
    fn a_benchmark_is_normalised_by_the_floors_its_rule_names() {
        let config = Config::parse(
            "[[reference]]\nglob = \"cart/get_cart_hit\"\nfloors = [\"redis_get\"]\n",
            Path::new("perf-gate.toml"),
        )
        .unwrap();
        let (factor, references) = speed_factor_for(&config, &speeds(), "cart/get_cart_hit");
        assert!((factor - 1.1).abs() < 1e-12);
        assert_eq!(references, ["cart/floor/redis_get"]);

        // No rule: the geometric mean of every reference benchmark of the suite.
        let (factor, references) = speed_factor_for(&config, &speeds(), "cart/add_item");
        assert!((factor - (1.5_f64 * 1.1).sqrt()).abs() < 1e-12);
        assert_eq!(references.len(), 2);

        // A suite without reference benchmarks is not normalised.
        assert_eq!(
            speed_factor_for(&config, &speeds(), "orders/get_order"),
            (1.0, Vec::new())
        );
    }

    #[test]
    fn a_rule_naming_floors_that_were_not_measured_does_not_normalise() {
        let config = Config::parse(
            "[[reference]]\nglob = \"cart/**\"\nfloors = [\"memory_reference\"]\n",
            Path::new("perf-gate.toml"),
        )
        .unwrap();
        assert_eq!(
            speed_factor_for(&config, &speeds(), "cart/add_item"),
            (1.0, Vec::new())
        );
    }
}

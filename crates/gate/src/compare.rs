//! The comparison of one benchmark's measurement with its baseline: a pure function of the two
//! measurements and the thresholds (the rules are documented at the crate root).

use serde::Serialize;

use std::collections::BTreeSet;

use crate::config::Thresholds;
use crate::paired::PairedLatency;
use crate::results::{Measurement, RoundTrips};
use crate::stats::{Alternative, mann_whitney_u};

/// The significance level of the latency test (one-sided, per benchmark and direction).
pub const ALPHA: f64 = 0.01;

/// A benchmark's verdict. The order is the report order: regressions first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one metric grew beyond its threshold.
    Regressed,
    /// In the baseline, not in the results.
    Missing,
    /// In the results, not in the baseline.
    New,
    /// In the base's baseline, not in the results, and the change removes it from the
    /// baseline too (paired mode): a removal a reviewer sees, not a failure.
    Removed,
    /// No regression, and at least one metric shrank beyond its threshold.
    Improved,
    /// Neither.
    Unchanged,
}

impl Status {
    /// The name used in every report.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Regressed => "regressed",
            Status::Missing => "missing",
            Status::New => "new",
            Status::Removed => "removed",
            Status::Improved => "improved",
            Status::Unchanged => "unchanged",
        }
    }
}

/// A compared quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Median time per iteration.
    Latency,
    /// Allocations per iteration.
    Allocations,
    /// Bytes allocated per iteration.
    Bytes,
    /// PostgreSQL statements per iteration.
    Statements,
    /// Redis commands per iteration.
    Commands,
}

impl Metric {
    /// The name used in every report.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Latency => "latency",
            Metric::Allocations => "allocations",
            Metric::Bytes => "bytes",
            Metric::Statements => "statements",
            Metric::Commands => "commands",
        }
    }
}

/// The smallest change of a count per iteration that counts as a change, whatever its
/// percentage: counting is process-wide (allocations) or server-wide (Redis commands), so one
/// stray allocation of a background thread, or a command of a housekeeping task, during a run
/// of a hundred thousand iterations must not turn a zero-allocation benchmark into a
/// regression "from 0". A real change adds at least one per iteration, or one every few
/// iterations. The paired runner counts round trips over
/// [`runner::Settings::round_trip_iterations`](crate::runner::Settings::round_trip_iterations)
/// (30) iterations, so that one stray command is 0.033 per iteration: below this bound.
pub const MIN_COUNT_CHANGE: f64 = 0.05;

/// The same for bytes per iteration.
pub const MIN_BYTES_CHANGE: f64 = 1.0;

/// Baseline and current latency, and the two one-sided tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyComparison {
    /// The baseline's median time per iteration (ns).
    pub baseline_median_ns: f64,
    /// Its confidence interval (ns).
    pub baseline_ci_ns: [f64; 2],
    /// The current median time per iteration (ns).
    pub current_median_ns: f64,
    /// Its confidence interval (ns).
    pub current_ci_ns: [f64; 2],
    /// `current_median_ns / baseline_median_ns / speed_factor`: the change the code made, with
    /// the machine's change of speed (measured by the suite's reference benchmarks) taken out.
    pub ratio: f64,
    /// `(ratio − 1) × 100`.
    pub change_percent: f64,
    /// `current_median_ns / baseline_median_ns`, as measured.
    pub raw_ratio: f64,
    /// How much slower (> 1) or faster (< 1) the machine ran this benchmark's reference
    /// benchmarks than when the baseline was measured; 1 when it has none.
    pub speed_factor: f64,
    /// The reference benchmarks `speed_factor` comes from.
    pub references: Vec<bench_format::BenchmarkId>,
    /// p-value of the test of "current ≤ (1 + t) × baseline" (small: a significant regression).
    pub p_regression: Option<f64>,
    /// p-value of the test of "current ≥ baseline / (1 + t)" (small: a significant improvement).
    pub p_improvement: Option<f64>,
    /// In paired mode: how the pairs were measured and the confidence interval of `ratio`
    /// (`None` in stored mode).
    pub paired: Option<PairedLatency>,
}

/// Baseline and current allocation counts (or bytes) per iteration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountComparison {
    /// Per iteration, in the baseline.
    pub baseline_per_iteration: f64,
    /// Per iteration, now.
    pub current_per_iteration: f64,
    /// The growth in percent; `None` when the baseline is zero.
    pub change_percent: Option<f64>,
}

/// Baseline and current round trips per iteration, and what changed among them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundTripComparison {
    /// PostgreSQL statements per iteration, when both sides counted them.
    pub statements: Option<CountComparison>,
    /// Redis commands per iteration, when both sides counted them.
    pub commands: Option<CountComparison>,
    /// The statements and commands whose count per iteration changed, largest growth first:
    /// what a regression added.
    pub changed: Vec<RoundTripChange>,
}

/// One statement or command whose count per iteration changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundTripChange {
    /// `postgres` or `redis`.
    pub server: &'static str,
    /// The statement (as `pg_stat_statements` normalises it) or the command.
    pub text: String,
    /// Per iteration, in the baseline.
    pub baseline_per_iteration: f64,
    /// Per iteration, now.
    pub current_per_iteration: f64,
}

impl RoundTripChange {
    /// `+1.0 per iteration: SELECT ...` (or `-2.0`).
    pub fn describe(&self) -> String {
        let delta = self.current_per_iteration - self.baseline_per_iteration;
        format!("{delta:+.1} per iteration: {}", self.text)
    }
}

/// The outcome of comparing one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The verdict.
    pub status: Status,
    /// The metrics that regressed.
    pub regressions: Vec<Metric>,
    /// The metrics that improved.
    pub improvements: Vec<Metric>,
    /// Latency, when both sides have it.
    pub latency: Option<LatencyComparison>,
    /// Allocations per iteration, when both sides have them.
    pub allocations: Option<CountComparison>,
    /// Bytes per iteration, when both sides have them.
    pub bytes: Option<CountComparison>,
    /// Server round trips per iteration, when both sides counted them.
    pub round_trips: Option<RoundTripComparison>,
    /// Human-readable remarks (a change that is large but not significant, a missing count).
    pub notes: Vec<String>,
}

pub(crate) fn status_of(regressions: &[Metric], improvements: &[Metric]) -> Status {
    if !regressions.is_empty() {
        Status::Regressed
    } else if !improvements.is_empty() {
        Status::Improved
    } else {
        Status::Unchanged
    }
}

impl Comparison {
    /// A benchmark with results but no baseline.
    pub fn new_benchmark() -> Comparison {
        Comparison::without_baseline(
            Status::New,
            "no baseline: it is new, or the baseline needs a refresh",
        )
    }

    /// A benchmark the change measures and the base revision does not (paired mode).
    pub fn new_in_change() -> Comparison {
        Comparison::without_baseline(
            Status::New,
            "new: the base revision does not have it (measured on the change's side only)",
        )
    }

    /// A benchmark with a baseline but no results.
    pub fn missing() -> Comparison {
        Comparison::without_baseline(Status::Missing, "in the baseline but not in the results")
    }

    /// A benchmark with a baseline in the base revision but no results, which the change also
    /// removes from its baseline.
    pub fn removed() -> Comparison {
        Comparison::without_baseline(
            Status::Removed,
            "removed: the change deletes it from the benchmarks and from baselines/",
        )
    }

    /// This comparison for a reference benchmark: its latency is the machine's speed, which
    /// sets the suite's speed factor, so it is reported but never a regression or an
    /// improvement. Its allocation counts are still judged: they belong to the client code.
    pub fn as_reference(mut self) -> Comparison {
        self.regressions.retain(|m| *m != Metric::Latency);
        self.improvements.retain(|m| *m != Metric::Latency);
        self.notes.retain(|note| !note.starts_with("time "));
        self.notes.push(
            "reference benchmark: it measures the machine, so its latency is reported, not \
             judged (in stored mode it sets the speed factor of the benchmarks it stands for)"
                .to_owned(),
        );
        self.status = status_of(&self.regressions, &self.improvements);
        self
    }

    fn without_baseline(status: Status, note: &str) -> Comparison {
        Comparison {
            status,
            regressions: Vec::new(),
            improvements: Vec::new(),
            latency: None,
            allocations: None,
            bytes: None,
            round_trips: None,
            notes: vec![note.to_owned()],
        }
    }
}

/// Compares `current` with `baseline` under `thresholds`.
///
/// * Latency regresses when the median grows by more than `t` **and** the one-sided
///   Mann-Whitney U test of the current samples against the baseline samples scaled by `1 + t`
///   rejects "not slower than `(1 + t)` × baseline" at [`ALPHA`]. It improves in the mirror
///   case: median below `baseline / (1 + t)` and the test against the baseline scaled by
///   `1 / (1 + t)` rejects "not faster".
/// * Counts per iteration (allocations, bytes, PostgreSQL statements, Redis commands) regress
///   when they grow by more than their threshold and by at least [`MIN_COUNT_CHANGE`]
///   ([`MIN_BYTES_CHANGE`] for bytes), from zero included; they improve in the mirror case
///   (see [`compare_counts`]).
pub fn compare(
    baseline: &Measurement,
    current: &Measurement,
    thresholds: &Thresholds,
) -> Comparison {
    compare_normalized(baseline, current, thresholds, 1.0)
}

/// [`compare`], with the current times divided by `speed_factor` first: the machine's change of
/// speed since the baseline, as measured by the suite's reference benchmarks in the same run.
/// The latency rule is then applied to what is left, the change the code made.
pub fn compare_normalized(
    baseline: &Measurement,
    current: &Measurement,
    thresholds: &Thresholds,
    speed_factor: f64,
) -> Comparison {
    let mut regressions = Vec::new();
    let mut improvements = Vec::new();
    let mut notes = Vec::new();

    let latency = compare_latency(baseline, current, thresholds.latency_percent, speed_factor);
    if let Some(l) = &latency {
        let t = thresholds.latency_percent;
        let up = 1.0 + t / 100.0;
        let significant = |p: Option<f64>| p.is_some_and(|p| p < ALPHA);
        if l.ratio > up {
            if significant(l.p_regression) {
                regressions.push(Metric::Latency);
            } else {
                notes.push(format!(
                    "time {} exceeds +{t}% but not significantly ({})",
                    signed_percent(l.change_percent),
                    p_text(l.p_regression)
                ));
            }
        } else if l.ratio < 1.0 / up {
            if significant(l.p_improvement) {
                improvements.push(Metric::Latency);
            } else {
                notes.push(format!(
                    "time {} is faster than the threshold but not significantly ({})",
                    signed_percent(l.change_percent),
                    p_text(l.p_improvement)
                ));
            }
        }
    } else {
        notes.push("latency not compared: a median or the samples are unusable".to_owned());
    }

    with_counts(
        baseline,
        current,
        thresholds,
        latency,
        regressions,
        improvements,
        notes,
    )
}

/// The comparison of two measurements whose latency is judged (`latency`, with what it found in
/// `regressions`, `improvements` and `notes`): their exact counts are judged here, the same
/// way in both modes.
pub(crate) fn with_counts(
    baseline: &Measurement,
    current: &Measurement,
    thresholds: &Thresholds,
    latency: Option<LatencyComparison>,
    mut regressions: Vec<Metric>,
    mut improvements: Vec<Metric>,
    mut notes: Vec<String>,
) -> Comparison {
    let counts = compare_counts(
        baseline,
        current,
        thresholds,
        &mut regressions,
        &mut improvements,
        &mut notes,
    );
    Comparison {
        status: status_of(&regressions, &improvements),
        regressions,
        improvements,
        latency,
        allocations: counts.allocations,
        bytes: counts.bytes,
        round_trips: counts.round_trips,
        notes,
    }
}

/// The counted metrics of a comparison.
struct Counts {
    pub(crate) allocations: Option<CountComparison>,
    pub(crate) bytes: Option<CountComparison>,
    pub(crate) round_trips: Option<RoundTripComparison>,
}

/// Compares the exact counts of two measurements (allocations, bytes, round trips): a metric
/// regresses when it grows by more than its threshold and by at least its minimum change
/// ([`MIN_COUNT_CHANGE`], [`MIN_BYTES_CHANGE`]), from zero included; it improves in the mirror
/// case. No statistics: the counts do not depend on the machine's speed.
fn compare_counts(
    baseline: &Measurement,
    current: &Measurement,
    thresholds: &Thresholds,
    regressions: &mut Vec<Metric>,
    improvements: &mut Vec<Metric>,
    notes: &mut Vec<String>,
) -> Counts {
    let mut counts = |metric: Metric,
                      base: Option<f64>,
                      now: Option<f64>,
                      percent: f64,
                      minimum: f64,
                      what: &str| {
        let (base, now) = match (base, now) {
            (Some(base), Some(now)) => (base, now),
            (None, None) => return None,
            (None, Some(_)) => {
                notes.push(format!("{what} not compared: the baseline has no counts"));
                return None;
            }
            (Some(_), None) => {
                notes.push(format!("{what} not compared: the results have no counts"));
                return None;
            }
        };
        let factor = 1.0 + percent / 100.0;
        if now - base >= minimum && now > base * factor {
            regressions.push(metric);
        } else if base - now >= minimum && base > now * factor {
            improvements.push(metric);
        }
        Some(CountComparison {
            baseline_per_iteration: base,
            current_per_iteration: now,
            change_percent: (base > 0.0).then(|| (now / base - 1.0) * 100.0),
        })
    };
    let allocations = counts(
        Metric::Allocations,
        baseline.allocations_per_iteration,
        current.allocations_per_iteration,
        thresholds.allocations_percent,
        MIN_COUNT_CHANGE,
        "allocations",
    );
    let bytes = counts(
        Metric::Bytes,
        baseline.bytes_per_iteration,
        current.bytes_per_iteration,
        thresholds.bytes_percent,
        MIN_BYTES_CHANGE,
        "bytes",
    );
    let round_trips = match (&baseline.round_trips, &current.round_trips) {
        (Some(base), Some(now)) => {
            let statements = counts(
                Metric::Statements,
                base.postgres_statements,
                now.postgres_statements,
                thresholds.round_trips_percent,
                MIN_COUNT_CHANGE,
                "PostgreSQL statements",
            );
            let commands = counts(
                Metric::Commands,
                base.redis_commands,
                now.redis_commands,
                thresholds.round_trips_percent,
                MIN_COUNT_CHANGE,
                "Redis commands",
            );
            Some(RoundTripComparison {
                changed: round_trip_changes(base, now),
                statements,
                commands,
            })
        }
        (Some(_), None) => {
            notes.push("round trips not compared: the results have no roundtrips.json".to_owned());
            None
        }
        (None, Some(_)) => {
            notes.push("round trips not compared: the baseline has no round trips".to_owned());
            None
        }
        (None, None) => None,
    };
    Counts {
        allocations,
        bytes,
        round_trips,
    }
}

/// The statements and commands whose count per iteration moved by at least
/// [`MIN_COUNT_CHANGE`], largest growth first (then by text).
fn round_trip_changes(base: &RoundTrips, now: &RoundTrips) -> Vec<RoundTripChange> {
    let mut changed = Vec::new();
    let sides = [
        ("postgres", &base.statements, &now.statements),
        ("redis", &base.commands, &now.commands),
    ];
    for (server, before, after) in sides {
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for key in keys {
            let was = before.get(key).copied().unwrap_or(0.0);
            let is = after.get(key).copied().unwrap_or(0.0);
            if (is - was).abs() >= MIN_COUNT_CHANGE {
                changed.push(RoundTripChange {
                    server,
                    text: key.clone(),
                    baseline_per_iteration: was,
                    current_per_iteration: is,
                });
            }
        }
    }
    changed.sort_by(|a, b| {
        let growth = |c: &RoundTripChange| c.current_per_iteration - c.baseline_per_iteration;
        growth(b)
            .total_cmp(&growth(a))
            .then_with(|| a.text.cmp(&b.text))
    });
    changed
}

fn compare_latency(
    baseline: &Measurement,
    current: &Measurement,
    latency_percent: f64,
    speed_factor: f64,
) -> Option<LatencyComparison> {
    if !(baseline.median_ns > 0.0 && current.median_ns.is_finite()) {
        return None;
    }
    let speed_factor = if speed_factor.is_finite() && speed_factor > 0.0 {
        speed_factor
    } else {
        1.0
    };
    let normalized: Vec<f64> = current
        .samples_ns
        .iter()
        .map(|s| s / speed_factor)
        .collect();
    let up = 1.0 + latency_percent / 100.0;
    let scaled = |factor: f64| {
        baseline
            .samples_ns
            .iter()
            .map(|s| s * factor)
            .collect::<Vec<_>>()
    };
    let p_regression = mann_whitney_u(&normalized, &scaled(up), Alternative::Greater).map(|r| r.p);
    let p_improvement =
        mann_whitney_u(&normalized, &scaled(1.0 / up), Alternative::Less).map(|r| r.p);
    let raw_ratio = current.median_ns / baseline.median_ns;
    let ratio = raw_ratio / speed_factor;
    Some(LatencyComparison {
        baseline_median_ns: baseline.median_ns,
        baseline_ci_ns: baseline.median_ci_ns,
        current_median_ns: current.median_ns,
        current_ci_ns: current.median_ci_ns,
        ratio,
        change_percent: (ratio - 1.0) * 100.0,
        raw_ratio,
        speed_factor,
        references: Vec::new(),
        p_regression,
        p_improvement,
        paired: None,
    })
}

/// Combines a first comparison with a confirmation run of the same benchmark: a metric counts
/// as regressed (or improved) only if both runs say so. This is the rule a confirmation re-run
/// exists for: one noisy run cannot fail the gate alone.
pub fn confirm(first: &Comparison, second: &Comparison) -> (Status, Vec<Metric>, Vec<Metric>) {
    let both = |a: &[Metric], b: &[Metric]| -> Vec<Metric> {
        a.iter().copied().filter(|m| b.contains(m)).collect()
    };
    let regressions = both(&first.regressions, &second.regressions);
    let improvements = both(&first.improvements, &second.improvements);
    (
        status_of(&regressions, &improvements),
        regressions,
        improvements,
    )
}

/// `+12.3%` / `-4.0%`.
pub fn signed_percent(percent: f64) -> String {
    // Changes that round to zero print as +0.0% rather than a puzzling -0.0%.
    let percent = if (percent * 10.0).round() == 0.0 {
        0.0
    } else {
        percent
    };
    format!("{percent:+.1}%")
}

/// `p = 0.034` / `p < 1e-6` / `p unavailable`.
pub fn p_text(p: Option<f64>) -> String {
    match p {
        None => "p unavailable".to_owned(),
        Some(p) if p < 1e-6 => "p < 1e-6".to_owned(),
        Some(p) if p < 0.001 => format!("p = {p:.1e}"),
        Some(p) => format!("p = {p:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (SplitMix64), so the simulated samples are the same on
    /// every run and machine without a dependency.
    struct SplitMix(u64);

    impl SplitMix {
        fn next_f64(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A standard normal deviate (Box-Muller).
        fn normal(&mut self) -> f64 {
            let u1 = self.next_f64().max(f64::MIN_POSITIVE);
            let u2 = self.next_f64();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }

    fn measurement(samples: Vec<f64>, allocations: Option<f64>, bytes: Option<f64>) -> Measurement {
        let median = crate::stats::median(&samples).unwrap();
        Measurement {
            median_ns: median,
            median_ci_ns: [median * 0.95, median * 1.05],
            allocations_per_iteration: allocations,
            bytes_per_iteration: bytes,
            round_trips: None,
            samples_ns: samples,
        }
    }

    /// `n` samples around `center` with 5% log-normal noise and, rarely, a 100× spike: the
    /// shape of a shared machine's within-run noise.
    fn noisy(rng: &mut SplitMix, n: usize, center: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let spike = if rng.next_f64() < 0.02 { 100.0 } else { 1.0 };
                center * (0.05 * rng.normal()).exp() * spike
            })
            .collect()
    }

    fn counts_only(base: f64, now: f64) -> Comparison {
        let t = vec![1.0, 1.0, 1.0];
        compare(
            &measurement(t.clone(), Some(base), Some(base * 64.0)),
            &measurement(t, Some(now), Some(now * 64.0)),
            &Thresholds::default(),
        )
    }

    #[test]
    fn allocations_regress_beyond_thirty_percent() {
        assert_eq!(counts_only(10.0, 13.0).status, Status::Unchanged);
        let c = counts_only(10.0, 14.0);
        assert_eq!(c.status, Status::Regressed);
        assert_eq!(c.regressions, [Metric::Allocations, Metric::Bytes]);
        assert_eq!(
            c.allocations.unwrap().change_percent.map(|p| p.round()),
            Some(40.0)
        );
        assert_eq!(counts_only(14.0, 10.0).status, Status::Improved);
        assert_eq!(counts_only(13.0, 10.0).status, Status::Unchanged);
    }

    #[test]
    fn from_zero_to_something_is_a_regression_but_a_stray_allocation_is_not() {
        let c = counts_only(0.0, 0.1);
        assert_eq!(c.regressions, [Metric::Allocations, Metric::Bytes]);
        assert_eq!(c.allocations.unwrap().change_percent, None);
        assert_eq!(counts_only(0.0, 0.0).status, Status::Unchanged);
        assert_eq!(counts_only(2.0, 0.0).status, Status::Improved);
        // One allocation of 64 bytes by another thread during 200,000 iterations of a
        // zero-allocation floor.
        assert_eq!(counts_only(0.0, 1.0 / 200_000.0).status, Status::Unchanged);
    }

    fn round_trips(statements: &[(&str, f64)], commands: &[(&str, f64)]) -> RoundTrips {
        let map = |entries: &[(&str, f64)]| {
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        RoundTrips {
            postgres_statements: Some(statements.iter().map(|(_, v)| v).sum()),
            redis_commands: Some(commands.iter().map(|(_, v)| v).sum()),
            statements: map(statements),
            commands: map(commands),
            unavailable: Vec::new(),
        }
    }

    #[test]
    fn an_added_statement_is_a_regression_that_names_it() {
        let t = vec![1.0, 1.0];
        let mut base = measurement(t.clone(), Some(5.0), Some(320.0));
        let mut now = base.clone();
        base.round_trips = Some(round_trips(
            &[
                ("BEGIN", 1.0),
                ("SELECT a FROM t WHERE id = $1", 2.0),
                ("COMMIT", 1.0),
            ],
            &[("get", 1.0)],
        ));
        now.round_trips = Some(round_trips(
            &[
                ("BEGIN", 1.0),
                ("SELECT a FROM t WHERE id = $1", 2.0),
                ("SELECT count(*) FROM u WHERE t = $1", 1.0),
                ("COMMIT", 1.0),
            ],
            &[("get", 1.0)],
        ));
        let c = compare(&base, &now, &Thresholds::default());
        assert_eq!(c.regressions, [Metric::Statements]);
        let compared = c.round_trips.unwrap();
        assert_eq!(compared.changed.len(), 1);
        assert_eq!(
            compared.changed[0].describe(),
            "+1.0 per iteration: SELECT count(*) FROM u WHERE t = $1"
        );
        // A command every fifty iterations (a housekeeping task of another client, since Redis
        // counts server-wide) is below the minimum change, even from zero.
        base.round_trips = Some(round_trips(&[("BEGIN", 4.0)], &[("get", 1.0)]));
        now.round_trips = Some(round_trips(
            &[("BEGIN", 4.0)],
            &[("get", 1.0), ("ping", 0.02)],
        ));
        let c = compare(&base, &now, &Thresholds::default());
        assert!(c.regressions.is_empty(), "{c:?}");
        assert!(c.round_trips.unwrap().changed.is_empty());
    }

    #[test]
    fn missing_counts_are_noted_not_compared() {
        let t = vec![1.0, 1.0];
        let c = compare(
            &measurement(t.clone(), None, None),
            &measurement(t, Some(5.0), Some(50.0)),
            &Thresholds::default(),
        );
        assert_eq!(c.status, Status::Unchanged);
        assert!(c.allocations.is_none());
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("the baseline has no counts")),
            "{c:?}"
        );
    }

    #[test]
    fn latency_needs_both_the_threshold_and_significance() {
        let mut rng = SplitMix(7);
        let base = measurement(noisy(&mut rng, 50, 1000.0), None, None);
        let thresholds = Thresholds::default();

        let slower30 = measurement(noisy(&mut rng, 50, 1300.0), None, None);
        let c = compare(&base, &slower30, &thresholds);
        assert_eq!(c.regressions, [Metric::Latency], "{c:?}");

        let slower10 = measurement(noisy(&mut rng, 50, 1100.0), None, None);
        assert_eq!(
            compare(&base, &slower10, &thresholds).status,
            Status::Unchanged
        );

        let faster30 = measurement(noisy(&mut rng, 50, 700.0), None, None);
        assert_eq!(
            compare(&base, &faster30, &thresholds).improvements,
            [Metric::Latency]
        );

        // Beyond the threshold on the medians but far too few samples to be sure: not flagged.
        let few_base = measurement(vec![1000.0, 1400.0, 800.0], None, None);
        let few_now = measurement(vec![1300.0, 900.0, 1500.0], None, None);
        let c = compare(&few_base, &few_now, &thresholds);
        assert_eq!(c.status, Status::Unchanged, "{c:?}");
        assert!(c.notes[0].contains("not significantly"), "{:?}", c.notes);
    }

    #[test]
    fn override_thresholds_apply() {
        let mut rng = SplitMix(11);
        let base = measurement(noisy(&mut rng, 50, 1000.0), None, None);
        let slower30 = measurement(noisy(&mut rng, 50, 1300.0), None, None);
        let loose = Thresholds {
            latency_percent: 50.0,
            ..Thresholds::default()
        };
        assert_eq!(compare(&base, &slower30, &loose).status, Status::Unchanged);
    }

    /// The false-alarm rate of the latency rule on simulated independent samples (50 per side,
    /// 5% log-normal noise, 2% spikes): 0 when nothing changed, at most about α when the true
    /// slowdown sits exactly on the threshold (the worst case for a one-sided test), and the
    /// power against a true +30%. Run with `--nocapture` to see the rates; the numbers quoted in
    /// the crate docs come from here.
    #[test]
    fn false_alarm_rate_of_the_latency_rule() {
        let trials = 2000;
        let thresholds = Thresholds::default();
        let mut rng = SplitMix(2024);
        let mut rate = |true_ratio: f64| {
            let flagged = (0..trials)
                .filter(|_| {
                    let base = measurement(noisy(&mut rng, 50, 1000.0), None, None);
                    let now = measurement(noisy(&mut rng, 50, 1000.0 * true_ratio), None, None);
                    compare(&base, &now, &thresholds).status == Status::Regressed
                })
                .count();
            flagged as f64 / f64::from(trials)
        };
        let (same, plus10, boundary, plus30) = (rate(1.0), rate(1.1), rate(1.2), rate(1.3));
        println!(
            "regression rate over {trials} trials: unchanged {same}, +10% {plus10}, \
             +20% (boundary) {boundary}, +30% {plus30}"
        );
        assert_eq!(same, 0.0);
        assert_eq!(plus10, 0.0);
        assert!(boundary <= 1.5 * ALPHA, "{boundary}");
        assert!(plus30 >= 0.99, "{plus30}");
    }

    #[test]
    fn confirmation_keeps_only_what_both_runs_show() {
        let mut first = counts_only(10.0, 14.0);
        first.regressions.push(Metric::Latency);
        let second = counts_only(10.0, 14.0);
        let (status, regressions, _) = confirm(&first, &second);
        assert_eq!(status, Status::Regressed);
        assert_eq!(regressions, [Metric::Allocations, Metric::Bytes]);
        let (status, regressions, _) = confirm(&first, &counts_only(10.0, 10.0));
        assert_eq!((status, regressions), (Status::Unchanged, vec![]));
    }

    #[test]
    fn p_values_read_well() {
        assert_eq!(p_text(Some(0.034)), "p = 0.034");
        assert_eq!(p_text(Some(0.0002)), "p = 2.0e-4");
        assert_eq!(p_text(Some(1e-9)), "p < 1e-6");
        assert_eq!(signed_percent(12.34), "+12.3%");
        assert_eq!(signed_percent(-4.0), "-4.0%");
        assert_eq!(signed_percent(-0.04), "+0.0%");
    }
}

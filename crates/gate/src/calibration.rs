//! Calibrating the paired gate with mutations: a realistic regression applied to the code, its
//! true effect on each benchmark measured by a long paired run, then the gate's verdicts of a
//! few ordinary runs held against that truth (`cargo xtask gate calibrate --mutations`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bench_format::BenchmarkId;

use crate::compare::{MIN_BYTES_CHANGE, MIN_COUNT_CHANGE, Metric};
use crate::paired::{PairedBenchmark, PairedResults, assess};
use crate::report::Report;

/// How much a mutation truly slows a benchmark, by the long run's estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// +50% or more: the gate must flag it in every run.
    Large,
    /// +30% to +50%: the gate must flag it in at least 90% of (benchmark, run) cases.
    Medium,
    /// Slower, significantly, by less than +30%: flagging it is allowed, not required.
    Small,
    /// Its latency did not measurably change.
    Untouched,
}

impl Effect {
    /// How the table says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Large => "≥ +50%",
            Effect::Medium => "+30–50%",
            Effect::Small => "< +30%",
            Effect::Untouched => "untouched",
        }
    }
}

/// What the long run found for one benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// The ratio (change / base) of the long run.
    pub ratio: f64,
    /// Its confidence interval.
    pub ratio_ci: [f64; 2],
    /// Its class.
    pub effect: Effect,
    /// The counts that changed (allocations, statements, commands): the gate must flag them
    /// in every run.
    pub counts: Vec<Metric>,
    /// Counts that changed too without being required of the gate (bytes per iteration, which
    /// grow with the allocations that carry them): flagging them is right, not a false alarm.
    pub also_changed: Vec<Metric>,
}

/// The true effect of a mutation on every benchmark of a long paired run (no early stop):
/// latency by the Hodges-Lehmann estimate of its blocks (a benchmark is slowed when the
/// interval excludes no change), counts by their exact change beyond the gate's minimum.
pub fn truths(
    long: &PairedResults,
    thresholds: impl Fn(&BenchmarkId) -> crate::Thresholds,
    alpha: f64,
) -> BTreeMap<BenchmarkId, Truth> {
    let mut truths = BTreeMap::new();
    for (id, measured) in &long.benchmarks {
        let PairedBenchmark::Both {
            base,
            candidate,
            pairing,
        } = measured
        else {
            continue;
        };
        let Some(assessment) = assess(&pairing.first.block_log_ratios, 20.0, alpha) else {
            continue;
        };
        let slowed = assessment.ratio_ci[0] > 1.0;
        let effect = match assessment.ratio {
            r if slowed && r >= 1.5 => Effect::Large,
            r if slowed && r >= 1.3 => Effect::Medium,
            r if slowed && r >= 1.05 => Effect::Small,
            _ => Effect::Untouched,
        };
        let t = thresholds(id);
        let mut counts = Vec::new();
        let mut grew = |metric: Metric, before: Option<f64>, after: Option<f64>, percent: f64| {
            if let (Some(before), Some(after)) = (before, after)
                && after - before >= MIN_COUNT_CHANGE
                && after > before * (1.0 + percent / 100.0)
            {
                counts.push(metric);
            }
        };
        grew(
            Metric::Allocations,
            base.allocations_per_iteration,
            candidate.allocations_per_iteration,
            t.allocations_percent,
        );
        if let (Some(before), Some(after)) = (&base.round_trips, &candidate.round_trips) {
            grew(
                Metric::Statements,
                before.postgres_statements,
                after.postgres_statements,
                t.round_trips_percent,
            );
            grew(
                Metric::Commands,
                before.redis_commands,
                after.redis_commands,
                t.round_trips_percent,
            );
        }
        let mut also_changed = Vec::new();
        if let (Some(before), Some(after)) =
            (base.bytes_per_iteration, candidate.bytes_per_iteration)
            && after - before >= MIN_BYTES_CHANGE
            && after > before * (1.0 + t.bytes_percent / 100.0)
        {
            also_changed.push(Metric::Bytes);
        }
        truths.insert(
            id.clone(),
            Truth {
                ratio: assessment.ratio,
                ratio_ci: assessment.ratio_ci,
                effect,
                counts,
                also_changed,
            },
        );
    }
    truths
}

/// One mutation's verdicts against its truth.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Score {
    /// (benchmark, run) cases of a ≥ +50% slowdown, and how many the gate flagged.
    pub large: (usize, usize),
    /// The same for +30% to +50%.
    pub medium: (usize, usize),
    /// (benchmark, run) cases of a count that grew, and how many the gate flagged on it.
    pub counts: (usize, usize),
    /// Of those flagged on statements or commands, how many named what was added.
    pub named: (usize, usize),
    /// Untouched benchmarks the gate flagged, with the run.
    pub false_alarms: Vec<(BenchmarkId, usize)>,
    /// One line per benchmark that the truth or a run found anything for.
    pub lines: Vec<String>,
}

impl Score {
    /// Whether this mutation met the acceptance: every large slowdown and every grown count
    /// flagged, and nothing untouched flagged (the medium ones are pooled across mutations).
    pub fn perfect_where_required(&self) -> bool {
        self.large.0 == self.large.1
            && self.counts.0 == self.counts.1
            && self.named.0 == self.named.1
            && self.false_alarms.is_empty()
    }
}

/// Holds the gate's `runs` of a mutation against its `truths`.
pub fn score(truths: &BTreeMap<BenchmarkId, Truth>, runs: &[Report]) -> Score {
    let mut score = Score::default();
    for (id, truth) in truths {
        let mut flags = Vec::new();
        for (run, report) in runs.iter().enumerate() {
            let Some(benchmark) = report.benchmark(id.as_str()) else {
                continue;
            };
            let regressions = benchmark.regressions();
            let latency = regressions.contains(&Metric::Latency);
            match truth.effect {
                Effect::Large => {
                    score.large.0 += 1;
                    score.large.1 += usize::from(latency);
                }
                Effect::Medium => {
                    score.medium.0 += 1;
                    score.medium.1 += usize::from(latency);
                }
                Effect::Small => {}
                Effect::Untouched => {
                    // A count the long run saw grow is a true regression, whatever the latency did.
                    let flagged_other = regressions.iter().any(|metric| {
                        *metric != Metric::Latency
                            && !truth.counts.contains(metric)
                            && !truth.also_changed.contains(metric)
                    });
                    if latency || flagged_other {
                        score.false_alarms.push((id.clone(), run + 1));
                    }
                }
            }
            for metric in &truth.counts {
                score.counts.0 += 1;
                let flagged = regressions.contains(metric);
                score.counts.1 += usize::from(flagged);
                if flagged && matches!(metric, Metric::Statements | Metric::Commands) {
                    score.named.0 += 1;
                    let named = benchmark.measured.round_trips.as_ref().is_some_and(|r| {
                        r.changed
                            .iter()
                            .any(|c| c.current_per_iteration > c.baseline_per_iteration)
                    });
                    score.named.1 += usize::from(named);
                }
            }
            let mut flag = String::new();
            if !regressions.is_empty() {
                let metrics: Vec<&str> = regressions.iter().map(|m| m.as_str()).collect();
                let _ = write!(flag, "run {}: {}", run + 1, metrics.join("+"));
                if let Some(latency) = &benchmark.measured.latency {
                    let _ = write!(flag, " ({:+.0}%)", (latency.ratio - 1.0) * 100.0);
                }
            }
            if !flag.is_empty() {
                flags.push(flag);
            }
        }
        if truth.effect != Effect::Untouched || !truth.counts.is_empty() || !flags.is_empty() {
            let counts: Vec<&str> = truth
                .counts
                .iter()
                .chain(&truth.also_changed)
                .map(|m| m.as_str())
                .collect();
            score.lines.push(format!(
                "{id}: true {:+.1}% [{:+.1}%, {:+.1}%] ({}){}; {}",
                (truth.ratio - 1.0) * 100.0,
                (truth.ratio_ci[0] - 1.0) * 100.0,
                (truth.ratio_ci[1] - 1.0) * 100.0,
                truth.effect.as_str(),
                if counts.is_empty() {
                    String::new()
                } else {
                    format!(", more {}", counts.join(" and "))
                },
                if flags.is_empty() {
                    "never flagged".to_owned()
                } else {
                    format!("flagged {}", flags.join(", "))
                },
            ));
        }
    }
    score
}

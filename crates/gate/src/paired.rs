//! The paired latency rule: the base revision and the change measured in alternating slices
//! on the same machine, services and moment, judged on the ratios of neighbouring slices.
//!
//! The runner ([`crate::runner`]) measures each benchmark in blocks of four slices, `A B B A`
//! (A the base, B the change, the same number of iterations in each), and keeps one number per
//! block: `ln((b₁ + b₂) / (a₁ + a₂))`, the log of how much longer the change took. Whatever the
//! machine does over the few tens of milliseconds of a block — a slow phase, a neighbour's
//! burst, a frequency change — hits both sides alike, and a drift that is linear over the block
//! cancels exactly in `A B B A`. What is left is the code's effect and the noise of single
//! slices, which is what the statistics below judge.
//!
//! With `t` the threshold (20% by default) and α the significance level (1%):
//!
//! - **regressed**: the one-sided Wilcoxon signed-rank test rejects "the median block ratio
//!   is at most `1 + t`" at α, i.e. the evidence excludes every ratio ≤ `1 + t`;
//! - **improved**: the mirror, against `1 / (1 + t)`;
//! - **within** the thresholds: both one-sided tests reject the outside (ratio ≥ `1 + t`, and
//!   ratio ≤ `1 / (1 + t)`): nothing more to measure;
//! - otherwise **undecided**: the runner measures more blocks, up to its caps, and a benchmark
//!   still undecided then is reported unchanged, with its estimate and interval in a note.
//!
//! The ratio reported is the Hodges-Lehmann estimate (the median of the Walsh averages of the
//! block log-ratios), with its distribution-free confidence interval at `1 − 2α` (the range
//! that both one-sided tests accept). Rank statistics on logs: a slice that caught a stall of
//! the machine moves one rank, not a mean, and a 2× slower and a 2× faster block weigh alike.

use std::collections::{BTreeMap, BTreeSet};

use bench_format::BenchmarkId;
use serde::Serialize;

use crate::baseline::Baselines;
use crate::compare::{
    ALPHA, Comparison, LatencyComparison, Metric, p_text, signed_percent, with_counts,
};
use crate::config::{self, Config, Thresholds};
use crate::fingerprint::Fingerprint;
use crate::report::{BenchmarkReport, FingerprintReport, Mode, Report};
use crate::results::Measurement;
use crate::stats::{Alternative, hodges_lehmann, hodges_lehmann_interval, wilcoxon_signed_rank};

/// Why the runner stopped measuring a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The evidence decided it (regressed, improved or within the thresholds).
    Decided,
    /// It reached the most blocks a benchmark may take.
    Blocks,
    /// It reached the time a benchmark may take.
    Time,
}

impl Stop {
    /// How the reports say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Decided => "decided",
            Stop::Blocks => "block cap",
            Stop::Time => "time cap",
        }
    }
}

/// One sequence of `A B B A` blocks of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sequence {
    /// `ln(change / base)` of each block, in the order measured.
    pub block_log_ratios: Vec<f64>,
    /// Iterations in each slice (the same on both sides).
    pub iterations_per_slice: u64,
    /// Why it ended.
    pub stopped: Stop,
}

/// How one benchmark was measured in pairs: its sequence, and a second, independent one when
/// the first showed a latency regression (the confirmation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pairing {
    /// The first sequence.
    pub first: Sequence,
    /// The confirmation sequence, if one was measured.
    pub confirmation: Option<Sequence>,
}

/// The paired part of a latency comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedLatency {
    /// Blocks measured.
    pub blocks: usize,
    /// The confidence interval of the ratio, `[low, high]`.
    pub ratio_ci: [f64; 2],
    /// Its confidence level (`1 − 2α`).
    pub confidence: f64,
    /// Iterations per slice.
    pub iterations_per_slice: u64,
    /// Why the runner stopped.
    pub stopped: Stop,
    /// Each block's ratio (change / base), in the order measured.
    pub block_ratios: Vec<f64>,
}

/// Where the evidence of a sequence points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The ratio is above `1 + t`, significantly.
    Regressed,
    /// The ratio is below `1 / (1 + t)`, significantly.
    Improved,
    /// The ratio is within `(1 / (1 + t), 1 + t)`, significantly.
    Within,
    /// None of these yet.
    Undecided,
}

/// What a sequence of block log-ratios says about one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// The Hodges-Lehmann estimate of the ratio (change / base).
    pub ratio: f64,
    /// Its confidence interval at `1 − 2α`.
    pub ratio_ci: [f64; 2],
    /// p-value of "ratio ≤ 1 + t".
    pub p_regression: f64,
    /// p-value of "ratio ≥ 1 / (1 + t)".
    pub p_improvement: f64,
    /// The decision at α.
    pub decision: Decision,
}

/// Judges block log-ratios against the latency threshold `latency_percent` at `alpha` (see
/// the module docs). `None` without any block, or with a non-finite one.
pub fn assess(log_ratios: &[f64], latency_percent: f64, alpha: f64) -> Option<Assessment> {
    if log_ratios.is_empty() || log_ratios.iter().any(|r| !r.is_finite()) {
        return None;
    }
    let up = (1.0 + latency_percent / 100.0).ln();
    // A test left without any non-zero difference has no evidence either way.
    let p = |shift: f64, alternative| {
        wilcoxon_signed_rank(log_ratios, shift, alternative).map_or(1.0, |test| test.p)
    };
    let p_regression = p(up, Alternative::Greater);
    let p_improvement = p(-up, Alternative::Less);
    let below_up = p(up, Alternative::Less);
    let above_down = p(-up, Alternative::Greater);
    let decision = if p_regression < alpha {
        Decision::Regressed
    } else if p_improvement < alpha {
        Decision::Improved
    } else if below_up < alpha && above_down < alpha {
        Decision::Within
    } else {
        Decision::Undecided
    };
    let centre = hodges_lehmann(log_ratios)?;
    let (low, high) = hodges_lehmann_interval(log_ratios, 1.0 - 2.0 * alpha)?;
    Some(Assessment {
        ratio: centre.exp(),
        ratio_ci: [low.exp(), high.exp()],
        p_regression,
        p_improvement,
        decision,
    })
}

/// Compares the change's measurement with the base's, both from one paired run: latency by
/// the pairing's first sequence (see the module docs), counts exactly as in stored mode
/// ([`crate::compare::compare_counts`]).
pub fn compare_paired(
    base: &Measurement,
    candidate: &Measurement,
    sequence: &Sequence,
    thresholds: &Thresholds,
    alpha: f64,
) -> Comparison {
    let mut regressions = Vec::new();
    let mut improvements = Vec::new();
    let mut notes = Vec::new();
    let latency = match assess(
        &sequence.block_log_ratios,
        thresholds.latency_percent,
        alpha,
    ) {
        Some(assessment) => {
            let change_percent = (assessment.ratio - 1.0) * 100.0;
            let t = thresholds.latency_percent;
            let interval = format!(
                "ratio {:.3}, {:.0}% interval {:.3}–{:.3}",
                assessment.ratio,
                (1.0 - 2.0 * alpha) * 100.0,
                assessment.ratio_ci[0],
                assessment.ratio_ci[1]
            );
            match assessment.decision {
                Decision::Regressed => regressions.push(Metric::Latency),
                Decision::Improved => improvements.push(Metric::Latency),
                Decision::Within => {}
                Decision::Undecided => notes.push(format!(
                    "time {} not decided against ±{t}% in {} blocks ({}; {interval}; {}, {})",
                    signed_percent(change_percent),
                    sequence.block_log_ratios.len(),
                    sequence.stopped.as_str(),
                    p_text(Some(assessment.p_regression)),
                    p_text(Some(assessment.p_improvement)),
                )),
            }
            Some(LatencyComparison {
                baseline_median_ns: base.median_ns,
                baseline_ci_ns: base.median_ci_ns,
                current_median_ns: candidate.median_ns,
                current_ci_ns: candidate.median_ci_ns,
                ratio: assessment.ratio,
                change_percent,
                raw_ratio: assessment.ratio,
                speed_factor: 1.0,
                references: Vec::new(),
                p_regression: Some(assessment.p_regression),
                p_improvement: Some(assessment.p_improvement),
                paired: Some(PairedLatency {
                    blocks: sequence.block_log_ratios.len(),
                    ratio_ci: assessment.ratio_ci,
                    confidence: 1.0 - 2.0 * alpha,
                    iterations_per_slice: sequence.iterations_per_slice,
                    stopped: sequence.stopped,
                    block_ratios: sequence.block_log_ratios.iter().map(|r| r.exp()).collect(),
                }),
            })
        }
        None => {
            notes.push("latency not compared: no usable block of paired slices".to_owned());
            None
        }
    };
    with_counts(
        base,
        candidate,
        thresholds,
        latency,
        regressions,
        improvements,
        notes,
    )
}

/// What a paired run measured of one benchmark.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per benchmark of a run, a few dozen: boxing would buy nothing"
)]
pub enum PairedBenchmark {
    /// Both sides have it: measured in pairs.
    Both {
        /// The base revision's counts and slice times.
        base: Measurement,
        /// The change's.
        candidate: Measurement,
        /// The blocks the latency is judged by.
        pairing: Pairing,
    },
    /// Only the change has it: a new benchmark, measured alone for its counts.
    CandidateOnly {
        /// The change's counts and slice times.
        candidate: Measurement,
    },
    /// Only the base revision has it: the change no longer measures it.
    BaseOnly,
}

/// Everything a paired run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairedResults {
    /// By benchmark.
    pub benchmarks: BTreeMap<BenchmarkId, PairedBenchmark>,
    /// The suites that ran.
    pub suites: BTreeSet<String>,
    /// Things the runner noticed that the reader should know.
    pub warnings: Vec<String>,
}

/// What [`judge_paired`] judges by, besides the results.
#[derive(Debug, Clone)]
pub struct PairedOptions {
    /// The base as asked for, e.g. `origin/main` or a commit.
    pub base: String,
    /// The base commit.
    pub commit: String,
    /// Whether the working tree is the base itself.
    pub same_as_working_tree: bool,
    /// `perf-gate.toml` of the base revision: the thresholds the change is judged by.
    pub base_config: Config,
    /// `perf-gate.toml` of the working tree: only to list what the change does to it.
    pub candidate_config: Config,
    /// `baselines/` of the base revision: the benchmarks that must be measured.
    pub base_baselines: Baselines,
    /// `baselines/` of the working tree: a benchmark it drops is a removal, not a miss.
    pub candidate_baselines: Baselines,
    /// This machine.
    pub fingerprint: Fingerprint,
}

/// Judges a paired run (see the module docs): each benchmark measured on both sides by its
/// blocks and its counts, with the base revision's thresholds; a benchmark of the base's
/// baselines that the change does not measure fails the gate unless the change also removes
/// it from `baselines/`.
pub fn judge_paired(options: &PairedOptions, results: &PairedResults) -> Report {
    let config = &options.base_config;
    let expected: BTreeSet<&BenchmarkId> = options
        .base_baselines
        .iter()
        .filter(|(suite, _)| results.suites.contains(suite.as_str()))
        .flat_map(|(_, baseline)| baseline.benchmarks.keys())
        .collect();
    let ids: BTreeSet<&BenchmarkId> = results.benchmarks.keys().chain(expected).collect();
    let removed_by_change = |id: &BenchmarkId| {
        options
            .candidate_baselines
            .get(id.suite())
            .is_some_and(|baseline| !baseline.benchmarks.contains_key(id))
    };

    let mut used_overrides = BTreeSet::new();
    let mut benchmarks = Vec::with_capacity(ids.len());
    for id in ids {
        let thresholds = config.thresholds_for(id.as_str());
        let applied_override = config.applied_override(id.as_str(), &mut used_overrides);
        let reference = config.is_reference(id.as_str());
        let judged = |sequence: &Sequence, base: &Measurement, candidate: &Measurement| {
            let comparison = compare_paired(base, candidate, sequence, &thresholds, ALPHA);
            if reference {
                comparison.as_reference()
            } else {
                comparison
            }
        };
        let (measured, confirmation) = match results.benchmarks.get(id) {
            Some(PairedBenchmark::Both {
                base,
                candidate,
                pairing,
            }) => (
                judged(&pairing.first, base, candidate),
                pairing
                    .confirmation
                    .as_ref()
                    .map(|second| judged(second, base, candidate)),
            ),
            Some(PairedBenchmark::CandidateOnly { candidate }) => {
                let mut new = Comparison::new_in_change();
                new.notes.push(measured_alone(candidate));
                (new, None)
            }
            Some(PairedBenchmark::BaseOnly) | None if removed_by_change(id) => {
                (Comparison::removed(), None)
            }
            Some(PairedBenchmark::BaseOnly) | None => {
                let mut missing = Comparison::missing();
                missing.notes = vec![
                    "the base revision measures it and the change does not: remove it from \
                     baselines/ too if that is intended"
                        .to_owned(),
                ];
                (missing, None)
            }
        };
        benchmarks.push(BenchmarkReport {
            id: id.clone(),
            thresholds,
            applied_override,
            measured,
            confirmation,
        });
    }

    let mut warnings = results.warnings.clone();
    for suite in &results.suites {
        if !options.base_baselines.contains_key(suite) {
            warnings.push(format!(
                "suite {suite} has no baseline file in the base revision (baselines/{suite}.json): \
                 its benchmarks are judged against the base's executable only, and nothing \
                 checks that none of them went missing"
            ));
        }
    }
    // An override is stale if it matches no benchmark of any suite, run or not.
    let every_id: BTreeSet<&BenchmarkId> = options
        .base_baselines
        .values()
        .flat_map(|baseline| baseline.benchmarks.keys())
        .chain(results.benchmarks.keys())
        .collect();
    let unused_overrides = config
        .overrides
        .iter()
        .filter(|o| !used_overrides.contains(&o.glob))
        .filter(|o| !every_id.iter().any(|id| o.matches(id.as_str())))
        .map(|o| o.glob.clone())
        .collect();
    // Counts missing on either side, each said once: the candidate's as they are, the base's
    // (when its reason differs) marked as the base's.
    let mut notes =
        crate::stored::round_trip_notes(results.benchmarks.iter().filter_map(|(id, measured)| {
            match measured {
                PairedBenchmark::Both { candidate, .. }
                | PairedBenchmark::CandidateOnly { candidate } => Some((id, candidate)),
                PairedBenchmark::BaseOnly => None,
            }
        }));
    let base_notes =
        crate::stored::round_trip_notes(results.benchmarks.iter().filter_map(|(id, measured)| {
            match measured {
                PairedBenchmark::Both { base, .. } => Some((id, base)),
                _ => None,
            }
        }));
    for note in base_notes {
        if !notes.contains(&note) {
            notes.push(format!("base revision: {note}"));
        }
    }
    let mut report = Report::new(
        Mode::Paired {
            base: options.base.clone(),
            commit: options.commit.clone(),
            same_as_working_tree: options.same_as_working_tree,
        },
        Thresholds::default(),
        ALPHA,
        FingerprintReport {
            current: options.fingerprint.clone(),
            mismatches: Vec::new(),
        },
        benchmarks,
        unused_overrides,
        warnings,
    );
    report.config_changes = config::changes(&options.base_config, &options.candidate_config);
    report.notes = notes;
    report
}

/// What a benchmark measured on one side only shows: its numbers, so that a new benchmark's
/// first figures are in the report that introduces it.
fn measured_alone(measured: &Measurement) -> String {
    use crate::render::{format_count, format_time};
    let mut parts = vec![format!("median {}", format_time(measured.median_ns))];
    if let Some(allocations) = measured.allocations_per_iteration {
        parts.push(format!("{} allocations", format_count(allocations)));
    }
    if let Some(bytes) = measured.bytes_per_iteration {
        parts.push(format!("{} bytes", format_count(bytes)));
    }
    if let Some(round_trips) = &measured.round_trips {
        if let Some(statements) = round_trips.postgres_statements {
            parts.push(format!(
                "{} PostgreSQL statements",
                format_count(statements)
            ));
        }
        if let Some(commands) = round_trips.redis_commands {
            parts.push(format!("{} Redis commands", format_count(commands)));
        }
    }
    format!("measured alone: {} per iteration", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Status;

    fn measurement() -> Measurement {
        Measurement {
            median_ns: 100.0,
            median_ci_ns: [95.0, 105.0],
            allocations_per_iteration: Some(4.0),
            bytes_per_iteration: Some(256.0),
            round_trips: None,
            samples_ns: vec![100.0; 10],
        }
    }

    /// `n` block log-ratios around `ln(ratio)`, spread ±`spread` deterministically.
    fn blocks(n: usize, ratio: f64, spread: f64) -> Vec<f64> {
        (0..n)
            .map(|i| ratio.ln() + spread * (((i * 7) % 11) as f64 / 5.0 - 1.0))
            .collect()
    }

    #[test]
    fn clear_cases_are_decided() {
        let up = assess(&blocks(12, 1.5, 0.05), 20.0, 0.01).unwrap();
        assert_eq!(up.decision, Decision::Regressed);
        assert!(up.ratio > 1.4 && up.ratio < 1.6, "{up:?}");
        assert!(up.ratio_ci[0] > 1.2, "{up:?}");
        let same = assess(&blocks(12, 1.0, 0.05), 20.0, 0.01).unwrap();
        assert_eq!(same.decision, Decision::Within);
        let down = assess(&blocks(12, 0.6, 0.05), 20.0, 0.01).unwrap();
        assert_eq!(down.decision, Decision::Improved);
        // On the threshold itself: no evidence either way.
        let edge = assess(&blocks(12, 1.2, 0.05), 20.0, 0.01).unwrap();
        assert_eq!(edge.decision, Decision::Undecided);
    }

    #[test]
    fn too_few_blocks_decide_nothing() {
        // Six blocks cannot reach p < 1% one-sided (the smallest exact p is 1/64).
        let six = assess(&blocks(6, 2.0, 0.01), 20.0, 0.01).unwrap();
        assert_eq!(six.decision, Decision::Undecided);
        let seven = assess(&blocks(7, 2.0, 0.01), 20.0, 0.01).unwrap();
        assert_eq!(seven.decision, Decision::Regressed);
        assert!(assess(&[], 20.0, 0.01).is_none());
        assert!(assess(&[f64::NAN], 20.0, 0.01).is_none());
    }

    #[test]
    fn the_comparison_carries_the_pairing_and_judges_counts_too() {
        let base = measurement();
        let mut candidate = measurement();
        candidate.allocations_per_iteration = Some(8.0);
        let sequence = Sequence {
            block_log_ratios: blocks(9, 1.3, 0.02),
            iterations_per_slice: 40,
            stopped: Stop::Decided,
        };
        let c = compare_paired(&base, &candidate, &sequence, &Thresholds::default(), 0.01);
        assert_eq!(c.status, Status::Regressed);
        assert_eq!(c.regressions, [Metric::Latency, Metric::Allocations]);
        let latency = c.latency.unwrap();
        let paired = latency.paired.unwrap();
        assert_eq!((paired.blocks, paired.iterations_per_slice), (9, 40));
        assert!((latency.ratio - 1.3).abs() < 0.02, "{}", latency.ratio);

        let undecided = Sequence {
            block_log_ratios: blocks(20, 1.21, 0.1),
            iterations_per_slice: 40,
            stopped: Stop::Time,
        };
        let c = compare_paired(
            &base,
            &measurement(),
            &undecided,
            &Thresholds::default(),
            0.01,
        );
        assert_eq!(c.status, Status::Unchanged);
        assert!(c.notes[0].contains("not decided"), "{:?}", c.notes);
        assert!(c.notes[0].contains("time cap"), "{:?}", c.notes);
    }
}

//! Reports computed from raw results: statistics with ghz's JSON field names (plus p99.9),
//! per scenario and operation, series, thresholds and their outcome; and the merge of the raw
//! results of several generator processes.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use crate::record::{
    MemorySample, RawChaos, RawChaosBin, RawRun, RawScenario, latency_histogram, step_histogram,
};
use crate::threshold::{Metric, Threshold, format_metric_value, format_seconds};

/// The JSON report. Durations are in nanoseconds, as in ghz's JSON output.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub profile: String,
    pub description: String,
    /// RFC 3339, the start of the measured window.
    pub date: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// Whether every threshold held (and the run was not stopped early).
    pub passed: bool,
    pub thresholds: Vec<ThresholdOutcome>,
    pub scenarios: Vec<ScenarioReport>,
    /// All scenarios together, per step.
    pub series: Vec<SeriesPoint>,
    pub server_memory: Vec<MemoryPoint>,
    /// The trend of the server's memory over the measured window (`None`: fewer than
    /// [`TREND_MIN_SAMPLES`] samples, e.g. a run against `--target`).
    pub memory_trend: Option<MemoryTrend>,
    /// The outages of the run (`--chaos`), each with its error rate, codes and recovery.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<OutageReport>,
    /// In a profile of several rounds: each scenario's figures round by round, and their
    /// medians.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<RoundsReport>,
    pub generators: Vec<GeneratorReport>,
    pub warnings: Vec<String>,
    pub stopped_early: Option<String>,
    /// Everything above is computed from this (`commerce-load merge` reads it).
    pub raw: RawRun,
}

/// ghz's summary fields, plus what a load test needs beyond them.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Completed requests.
    pub count: u64,
    /// Length of the measured window, ns.
    pub total: u64,
    /// Mean latency, ns.
    pub average: u64,
    pub fastest: u64,
    pub slowest: u64,
    /// Completed requests per second of the window.
    pub rps: f64,
    pub error_distribution: BTreeMap<String, u64>,
    pub status_code_distribution: BTreeMap<String, u64>,
    pub latency_distribution: Vec<LatencyPoint>,
    pub histogram: Vec<Bucket>,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    /// p99.9, ns.
    pub p999: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// Requests not sent because the generator was too far behind.
    pub dropped: u64,
    /// Latency from the actual send (without the coordinated-omission correction), ns.
    pub service_time_p50: u64,
    pub service_time_p99: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LatencyPoint {
    /// ghz's percentages (10, 25, 50, 75, 90, 95, 99), integers as ghz writes them; p99.9 is
    /// the top-level `p999`.
    pub percentage: u32,
    /// ns.
    pub latency: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Bucket {
    /// Upper bound, seconds (ghz's unit for marks).
    pub mark: f64,
    pub count: u64,
    pub frequency: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    pub load: String,
    pub mix: String,
    pub start_seconds: f64,
    pub duration_seconds: f64,
    #[serde(flatten)]
    pub summary: Summary,
    pub passed: bool,
    pub operations: BTreeMap<String, Summary>,
    pub series: Vec<SeriesPoint>,
    pub warmup_requests: u64,
    /// For a spike scenario: its recovery.
    pub recovery: Option<RecoveryReport>,
    /// For a scenario of rising steps: each step and the breaking point.
    pub breaking_point: Option<BreakingPointReport>,
}

/// A scenario of a profile of several rounds: its figures in each round, and their medians.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoundsReport {
    /// The scenario's name in the profile (its rounds are `NAME#1`, `NAME#2`...).
    pub scenario: String,
    pub rounds: Vec<RoundFigures>,
    /// Each median is the middle round's, the rounds ordered by that figure, of the rounds
    /// that ran to their end; for an even number of rounds, the worse of the two middle ones
    /// (the higher p95, the lower rate). p95, ns.
    pub median_p95: u64,
    pub median_rps: f64,
    /// Of the rounds' breaking points, a round whose first step failed counting as the
    /// lowest; `None` when that is the median, or for a scenario without steps.
    pub median_breaking_point_rate: Option<f64>,
    /// Whether the median round's steps included one that failed: if not, its breaking
    /// point is a lower bound (`None` for a scenario without steps).
    pub median_broke: Option<bool>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoundFigures {
    pub name: String,
    /// From 1.
    pub index: u32,
    pub passed: bool,
    /// ns.
    pub p95: u64,
    pub rps: f64,
    pub breaking_point_rate: Option<f64>,
    /// Whether a step failed (`None` for a scenario without steps): without one the breaking
    /// point is only a lower bound.
    pub broke: Option<bool>,
    /// Whether the round ran to its end: a run stopped early (Ctrl-C, `--abort-on-fail`)
    /// leaves the rest out of the medians.
    pub complete: bool,
}

/// The rounds of each scenario of `raw` run in several (`reports` are its scenarios' reports,
/// in the same order), in the order the profile names them.
fn rounds(raw: &RawRun, reports: &[ScenarioReport]) -> Vec<RoundsReport> {
    let mut by_scenario: Vec<(String, Vec<RoundFigures>)> = Vec::new();
    for (scenario, report) in raw.scenarios.iter().zip(reports) {
        let Some(round) = &scenario.round else {
            continue;
        };
        let figures = RoundFigures {
            name: report.name.clone(),
            index: round.index,
            passed: report.passed,
            p95: report.summary.p95,
            rps: report.summary.rps,
            breaking_point_rate: report
                .breaking_point
                .as_ref()
                .and_then(|b| b.breaking_point_rate),
            broke: report.breaking_point.as_ref().map(|b| b.broke),
            complete: raw.stopped_early.is_none()
                || scenario.start_ms + scenario.duration_ms <= raw.window_ms,
        };
        match by_scenario.iter_mut().find(|(of, _)| *of == round.of) {
            Some((_, rounds)) => rounds.push(figures),
            None => by_scenario.push((round.of.clone(), vec![figures])),
        }
    }
    by_scenario
        .into_iter()
        .map(|(scenario, mut rounds)| {
            rounds.sort_by_key(|r| r.index);
            let has_steps = rounds.iter().any(|r| r.broke.is_some());
            let complete: Vec<&RoundFigures> = rounds.iter().filter(|r| r.complete).collect();
            // `None` orders before every rate: a round whose first step failed is the lowest.
            let median_round = has_steps
                .then(|| {
                    median_of(complete.iter().copied(), |a, b| {
                        a.breaking_point_rate
                            .partial_cmp(&b.breaking_point_rate)
                            .unwrap_or(Ordering::Equal)
                    })
                })
                .flatten();
            RoundsReport {
                median_p95: median_of(complete.iter().copied(), |a, b| b.p95.cmp(&a.p95))
                    .map_or(0, |r| r.p95),
                median_rps: median_of(complete.iter().copied(), |a, b| a.rps.total_cmp(&b.rps))
                    .map_or(0.0, |r| r.rps),
                median_breaking_point_rate: median_round.and_then(|r| r.breaking_point_rate),
                median_broke: median_round.and_then(|r| r.broke),
                scenario,
                rounds,
            }
        })
        .collect()
}

/// The middle of `values` in the order of `worse_first` (worst first), the worse of the two
/// middle ones for an even count; `None` for none.
fn median_of<T>(
    values: impl Iterator<Item = T>,
    worse_first: impl Fn(&T, &T) -> Ordering,
) -> Option<T> {
    let mut values: Vec<T> = values.collect();
    values.sort_by(worse_first);
    let middle = values.len().checked_sub(1)? / 2;
    values.into_iter().nth(middle)
}

/// The steps of a stress scenario and the highest rate it sustained.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BreakingPointReport {
    /// `p95 < 20ms`.
    pub threshold: String,
    pub max_error_rate: f64,
    pub steps: Vec<RateStepReport>,
    /// The rate of the last step sustained before the first that was not (`None`: the first
    /// step was not); every step sustained makes it the last step's rate, a lower bound.
    pub breaking_point_rate: Option<f64>,
    /// Whether a step failed: without one the breaking point is above the steps tried.
    pub broke: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateStepReport {
    pub rate: f64,
    /// From the start of the measured window.
    pub from_seconds: f64,
    pub to_seconds: f64,
    /// Requests due in the step that were answered, per second of the step.
    pub answered_rps: f64,
    /// The threshold's percentile of the requests due in the step, ms.
    pub percentile_ms: Option<f64>,
    pub error_rate: f64,
    pub dropped: u64,
    pub sustained: bool,
}

/// The breaking point of `scenario`, if it has steps to judge.
pub fn breaking_point(scenario: &RawScenario) -> Option<BreakingPointReport> {
    let spec = scenario.breaking_point.as_ref()?;
    let threshold = Threshold::parse(&spec.threshold).ok()?;
    let Metric::Percentile(percentile) = threshold.metric else {
        return None;
    };
    let step_ms = scenario.step_ms.max(1);
    let index = |ms: u64| usize::try_from(ms / step_ms).unwrap_or(usize::MAX);
    let mut steps = Vec::new();
    for plateau in &spec.steps {
        let from = scenario.start_ms + plateau.start_ms;
        let to = scenario.start_ms + plateau.end_ms;
        // Whole series steps inside the plateau: its edges belong to the ramps.
        let first = usize::try_from(from.div_ceil(step_ms)).unwrap_or(usize::MAX);
        let last = index(to).min(scenario.series.len());
        if last <= first {
            // Shorter than a step of the series: nothing to judge it on.
            continue;
        }
        let mut latency = step_histogram();
        let (mut errors, mut dropped) = (0, 0);
        for step in scenario.series.get(first..last).unwrap_or_default() {
            let _ = latency.add(&step.latency.0);
            errors += step.errors;
            dropped += step.dropped;
        }
        let answered = latency.len();
        let seconds = last.saturating_sub(first) as f64 * step_ms as f64 / 1e3;
        let percentile_ms =
            (answered > 0).then(|| latency.value_at_quantile(percentile / 100.0) as f64 / 1e3);
        let error_rate = if answered > 0 {
            errors as f64 / answered as f64
        } else {
            0.0
        };
        let answered_rps = if seconds > 0.0 {
            answered.saturating_sub(errors) as f64 / seconds
        } else {
            0.0
        };
        let sustained = seconds > 0.0
            && percentile_ms.is_some_and(|ms| threshold.holds(ms / 1e3))
            && error_rate < spec.max_error_rate
            && answered as f64 >= 0.95 * plateau.rate * seconds;
        steps.push(RateStepReport {
            rate: plateau.rate,
            from_seconds: from as f64 / 1e3,
            to_seconds: to as f64 / 1e3,
            answered_rps,
            percentile_ms,
            error_rate,
            dropped,
            sustained,
        });
    }
    let first_failed = steps.iter().position(|s| !s.sustained);
    let held = match first_failed {
        Some(i) => &steps[..i],
        None => &steps[..],
    };
    Some(BreakingPointReport {
        threshold: spec.threshold.clone(),
        max_error_rate: spec.max_error_rate,
        breaking_point_rate: held.last().map(|s| s.rate),
        broke: first_failed.is_some(),
        steps,
    })
}

/// One outage of a dependency: what the requests saw while it was down, and how long after it
/// came back the service was whole again.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutageReport {
    /// `redis` or `postgres`.
    pub dependency: String,
    /// When it was taken down (the stop was due) and when it was back (the start had returned:
    /// it answered), from the start of the measured window, s. `None`: not back by the end.
    pub down_seconds: f64,
    pub up_seconds: Option<f64>,
    /// Requests due while it was down, and how many of them failed.
    pub requests: u64,
    pub failed: u64,
    pub error_rate: Option<f64>,
    /// Failed requests by code, from the outage's start to the end of the run.
    pub codes: BTreeMap<String, u64>,
    /// After its return: until the first second in which no request failed, s.
    pub errors_cleared_seconds: Option<f64>,
    /// Whether the server's cart-cache hits grew before the outage (a mix without GetCart
    /// does not use the cache: then its use after the outage is not asked for).
    pub cache_in_use_before: bool,
    /// After a Redis outage: until the server's cache hits grew again, s (`None` also when the
    /// server's metrics were not scraped).
    pub cache_used_seconds: Option<f64>,
    /// Until the service was whole again: the later of the above that apply, s.
    pub recovery_seconds: Option<f64>,
    /// Chaos events of this outage that could not be done.
    pub event_errors: Vec<String>,
}

/// The outages of a run, from its chaos timeline.
pub fn outages(chaos: &RawChaos) -> Vec<OutageReport> {
    let bin_ms = chaos.bin_ms.max(1);
    let bin = |ms: u64| usize::try_from(ms / bin_ms).unwrap_or(usize::MAX);
    let mut reports = Vec::new();
    for (i, down) in chaos.events.iter().enumerate() {
        let Some(dependency) = down.action.strip_suffix("-down") else {
            continue;
        };
        let up = chaos.events[i + 1..]
            .iter()
            .find(|e| e.action == format!("{dependency}-up"));
        let mut event_errors: Vec<String> = [Some(down), up]
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e.error
                    .as_ref()
                    .map(|error| format!("{}: {error}", e.action))
            })
            .collect();
        if up.is_none() {
            event_errors.push(format!("{dependency} was not brought back during the run"));
        }
        let up_ms = up.filter(|e| e.error.is_none()).map(|e| e.done_ms);
        let first = bin(down.due_ms).min(chaos.bins.len());
        let outage_end = up_ms
            .map_or(chaos.bins.len(), |ms| bin(ms + bin_ms - 1))
            .clamp(first, chaos.bins.len());
        let during = &chaos.bins[first..outage_end];
        let failed: u64 = during.iter().map(RawChaosBin::failed_total).sum();
        let requests: u64 = during.iter().map(|b| b.ok).sum::<u64>() + failed;

        // Calls succeed again: the start of the first second after the return in which every
        // request succeeded.
        let window = usize::try_from(1_000 / bin_ms).unwrap_or(10).max(1);
        let errors_cleared = up_ms.and_then(|up_ms| {
            let start = bin(up_ms);
            (start..chaos.bins.len().saturating_sub(window - 1)).find_map(|b| {
                let bins = &chaos.bins[b..b + window];
                let clean = bins.iter().all(|x| x.failed_total() == 0);
                let answered = bins.iter().any(|x| x.ok > 0);
                (clean && answered).then(|| (b as u64 * bin_ms).saturating_sub(up_ms) as f64 / 1e3)
            })
        });
        // The cache is used again: the first scrape after the return whose hits grew since the
        // scrape before it (also after the return).
        let cache_used = if dependency == "redis" {
            up_ms.and_then(|up_ms| {
                let up_ms = i64::try_from(up_ms).ok()?;
                chaos
                    .server
                    .windows(2)
                    .filter(|pair| pair[0].t_ms >= up_ms)
                    .find(|pair| match (pair[0].cache_hits, pair[1].cache_hits) {
                        (Some(before), Some(after)) => after > before,
                        _ => false,
                    })
                    .map(|pair| (pair[1].t_ms - up_ms) as f64 / 1e3)
            })
        } else {
            None
        };
        let down_ms = i64::try_from(down.due_ms).unwrap_or(i64::MAX);
        let cache_in_use_before = chaos.server.windows(2).any(|pair| {
            pair[1].t_ms <= down_ms
                && matches!((pair[0].cache_hits, pair[1].cache_hits), (Some(a), Some(b)) if b > a)
        });
        let recovery = if cache_asked(dependency, cache_in_use_before, chaos) {
            errors_cleared
                .zip(cache_used)
                .map(|(calls, cache)| calls.max(cache))
        } else {
            errors_cleared
        };
        // Every failure from the outage to the end of the run: a code the outage should not
        // cause counts even after the first clean second.
        let mut codes = BTreeMap::new();
        for b in &chaos.bins[first..] {
            for (code, n) in &b.failed {
                *codes.entry(code.clone()).or_insert(0) += n;
            }
        }
        reports.push(OutageReport {
            dependency: dependency.to_owned(),
            down_seconds: down.due_ms as f64 / 1e3,
            up_seconds: up_ms.map(|ms| ms as f64 / 1e3),
            requests,
            failed,
            error_rate: (requests > 0).then(|| failed as f64 / requests as f64),
            codes,
            errors_cleared_seconds: errors_cleared,
            cache_in_use_before,
            cache_used_seconds: cache_used,
            recovery_seconds: recovery,
            event_errors,
        });
    }
    reports
}

/// Whether an outage's recovery includes the cart cache being used again: after a Redis
/// outage, when the server used the cache before it, or when that is not known (no scrapes of
/// its metrics: the criterion then fails and says so).
fn cache_asked(dependency: &str, cache_in_use_before: bool, chaos: &RawChaos) -> bool {
    dependency == "redis" && (cache_in_use_before || chaos.server.is_empty())
}

/// The outages judged by the seed's criteria (`profile::Chaos`): a Redis outage fails no more
/// than `max_error_rate` of the requests; a PostgreSQL outage fails requests with Unavailable
/// only; after either, the service is whole again within `recovery_ms`.
fn outage_outcomes(chaos: &RawChaos, outages: &[OutageReport]) -> Vec<ThresholdOutcome> {
    let recovery_limit = chaos.recovery_ms as f64 / 1e3;
    let mut outcomes = Vec::new();
    for o in outages {
        let scope = format!("{} outage at {:.0}s", o.dependency, o.down_seconds);
        for error in &o.event_errors {
            outcomes.push(ThresholdOutcome {
                scope: scope.clone(),
                threshold: "the outage as scheduled".to_owned(),
                observed: None,
                observed_text: error.clone(),
                passed: false,
            });
        }
        if o.dependency == "redis" {
            outcomes.push(ThresholdOutcome {
                scope: scope.clone(),
                threshold: format!(
                    "error rate while down < {}",
                    format_metric_value(Metric::ErrorRate, chaos.max_error_rate)
                ),
                observed: o.error_rate,
                observed_text: match o.error_rate {
                    Some(rate) => format!(
                        "{} ({} of {})",
                        format_metric_value(Metric::ErrorRate, rate),
                        o.failed,
                        o.requests
                    ),
                    None => "no requests while down".to_owned(),
                },
                passed: o.error_rate.is_some_and(|rate| rate < chaos.max_error_rate),
            });
        } else {
            let others: u64 = o
                .codes
                .iter()
                .filter(|(code, _)| code.as_str() != "Unavailable")
                .map(|(_, n)| n)
                .sum();
            outcomes.push(ThresholdOutcome {
                scope: scope.clone(),
                threshold: "failures are Unavailable only".to_owned(),
                observed: Some(others as f64),
                observed_text: if o.codes.is_empty() {
                    "no request failed".to_owned()
                } else {
                    o.codes
                        .iter()
                        .map(|(code, n)| format!("{code} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                passed: others == 0,
            });
        }
        let cache_asked = cache_asked(&o.dependency, o.cache_in_use_before, chaos);
        let what = if cache_asked {
            "calls succeed and the cache is used"
        } else {
            "calls succeed"
        };
        outcomes.push(ThresholdOutcome {
            scope,
            threshold: format!("{what} again within {recovery_limit:.0}s of its return"),
            observed: o.recovery_seconds,
            observed_text: match (o.recovery_seconds, o.up_seconds) {
                (Some(seconds), _) => format!("after {seconds:.1}s"),
                (None, None) => "it did not come back".to_owned(),
                (None, Some(_)) if cache_asked && o.cache_used_seconds.is_none() => {
                    if chaos.server.is_empty() {
                        "not known: the server's metrics were not scraped".to_owned()
                    } else {
                        "the cache was not used again by the end of the run".to_owned()
                    }
                }
                (None, Some(_)) => "calls still failed at the end of the run".to_owned(),
            },
            passed: o.recovery_seconds.is_some_and(|s| s <= recovery_limit),
        });
    }
    outcomes
}

/// How a spike scenario recovered: the time from the end of the spike (the load back down)
/// until the latency percentile of its recovery threshold, over a sliding window of the
/// requests due in it, was back under the limit. Measured in whole steps of the series (1 s
/// up to an hour's run).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryReport {
    /// `p95 < 100ms`.
    pub threshold: String,
    pub window_seconds: f64,
    pub peak_rate: f64,
    /// From the start of the measured window.
    pub spike_start_seconds: f64,
    pub spike_end_seconds: f64,
    /// The threshold's percentile of the requests due before the spike and during it, ms.
    pub before_ms: Option<f64>,
    pub during_ms: Option<f64>,
    /// When the first window that starts at or after the spike's end met the threshold
    /// (`None`: none did before the run ended), and how long after the spike's end that was.
    pub recovered_at_seconds: Option<f64>,
    pub recovery_seconds: Option<f64>,
}

/// The recovery of `scenario`, if it is a spike with a recovery criterion.
pub fn recovery(scenario: &RawScenario) -> Option<RecoveryReport> {
    let spec = scenario.recovery.as_ref()?;
    let threshold = Threshold::parse(&spec.threshold).ok()?;
    let Metric::Percentile(percentile) = threshold.metric else {
        return None;
    };
    let step = scenario.step_ms.max(1);
    let spike_start = scenario.start_ms + spec.spike_start_ms;
    let spike_end = scenario.start_ms + spec.spike_end_ms;
    let series = &scenario.series;
    // The percentile of the requests due in steps `from..to`, ms.
    let percentile_ms = |from: usize, to: usize| -> Option<f64> {
        let mut merged = step_histogram();
        for due in series.get(from..to.min(series.len()))? {
            merged.add(&due.latency.0).ok()?;
        }
        (!merged.is_empty()).then(|| merged.value_at_quantile(percentile / 100.0) as f64 / 1e3)
    };
    let index = |ms: u64| usize::try_from(ms / step).unwrap_or(usize::MAX);
    let window_steps = usize::try_from(spec.window_ms.div_ceil(step))
        .unwrap_or(usize::MAX)
        .max(1);
    let first = usize::try_from(spike_end.div_ceil(step)).unwrap_or(usize::MAX);
    // Windows of requests due before the scenario's end (later steps hold late answers only).
    let end = index(scenario.start_ms + scenario.duration_ms).min(series.len());
    let recovered_at = (first..(end + 1).saturating_sub(window_steps))
        .find(|&k| percentile_ms(k, k + window_steps).is_some_and(|ms| threshold.holds(ms / 1e3)))
        .map(|k| k as u64 * step);
    Some(RecoveryReport {
        threshold: spec.threshold.clone(),
        window_seconds: spec.window_ms as f64 / 1e3,
        peak_rate: spec.peak_rate,
        spike_start_seconds: spike_start as f64 / 1e3,
        spike_end_seconds: spike_end as f64 / 1e3,
        before_ms: percentile_ms(index(scenario.start_ms), index(spike_start)),
        during_ms: percentile_ms(
            index(spike_start),
            index(spike_end).max(index(spike_start) + 1),
        ),
        recovered_at_seconds: recovered_at.map(|t| t as f64 / 1e3),
        recovery_seconds: recovered_at.map(|t| t.saturating_sub(spike_end) as f64 / 1e3),
    })
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// Seconds from the start of the measured window.
    pub t: f64,
    pub sent: u64,
    pub completed: u64,
    pub errors: u64,
    pub dropped: u64,
    /// Latency percentiles of the requests due in this step, ms (`None` without any).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryPoint {
    pub t: f64,
    pub rss_bytes: u64,
}

/// How the server's resident memory moved over a window: a least-squares line through its
/// samples (one a second), and the means of the window's two halves.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryTrend {
    pub samples: usize,
    /// The first and last sample's times, seconds from the start of the measured window.
    pub from_seconds: f64,
    pub to_seconds: f64,
    /// The slope, in bytes per hour.
    pub growth_bytes_per_hour: f64,
    /// The slope over the requests answered in the window, in bytes per 100,000 requests
    /// (`None` without any).
    pub growth_bytes_per_100k_requests: Option<f64>,
    /// The fitted line at `from_seconds` and at `to_seconds`.
    pub fitted_start_bytes: f64,
    pub fitted_end_bytes: f64,
    pub first_half_mean_bytes: f64,
    pub second_half_mean_bytes: f64,
}

/// Fewest samples a trend is fitted to (10 s of a sample a second): fewer say little.
pub const TREND_MIN_SAMPLES: usize = 10;

/// The trend of the `samples` taken from `from_ms` to `to_ms` of the measured window, a span
/// in which `requests` requests were answered.
pub fn memory_trend(
    samples: &[MemorySample],
    from_ms: i64,
    to_ms: i64,
    requests: u64,
) -> Option<MemoryTrend> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|m| m.t_ms >= from_ms && m.t_ms <= to_ms)
        .map(|m| (m.t_ms as f64 / 1e3, m.rss_bytes as f64))
        .collect();
    if points.len() < TREND_MIN_SAMPLES {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_y)).sum();
    if sxx <= 0.0 {
        return None;
    }
    // Bytes per second.
    let slope = sxy / sxx;
    let at = |t: f64| mean_y + slope * (t - mean_t);
    let (from, to) = (points[0].0, points[points.len() - 1].0);
    let half = points.len() / 2;
    let mean = |part: &[(f64, f64)]| part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64;
    let span_seconds = (to_ms - from_ms) as f64 / 1e3;
    Some(MemoryTrend {
        samples: points.len(),
        from_seconds: from,
        to_seconds: to,
        growth_bytes_per_hour: slope * 3600.0,
        growth_bytes_per_100k_requests: (requests > 0 && span_seconds > 0.0)
            .then(|| slope * span_seconds / requests as f64 * 1e5),
        fitted_start_bytes: at(from),
        fitted_end_bytes: at(to),
        first_half_mean_bytes: mean(&points[..half]),
        second_half_mean_bytes: mean(&points[half..]),
    })
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorReport {
    pub host: String,
    pub pid: u32,
    pub target: String,
    pub connections: usize,
    /// CPU the generator used, as a share of one core.
    pub cpu_percent: f64,
    pub send_lag_p50_us: u64,
    pub send_lag_p99_us: u64,
    pub send_lag_max_us: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdOutcome {
    /// `overall` or the scenario's name.
    pub scope: String,
    pub threshold: String,
    /// In the metric's unit: seconds, a fraction, per second, a count (`None`: no data).
    pub observed: Option<f64>,
    pub observed_text: String,
    pub passed: bool,
}

/// The generator's send lag above which the report says it could not keep up.
pub const LAG_WARNING: Duration = Duration::from_millis(10);

impl Report {
    pub fn from_raw(raw: RawRun) -> Report {
        let window = Duration::from_millis(raw.window_ms);
        let mut all_ops: Vec<&crate::record::RawOperation> = Vec::new();
        let mut dropped = 0;
        let mut thresholds = Vec::new();
        let mut scenarios = Vec::new();
        for scenario in &raw.scenarios {
            all_ops.extend(scenario.operations.values());
            dropped += scenario.dropped;
            let measured = Duration::from_millis(
                scenario
                    .duration_ms
                    .min(raw.window_ms.saturating_sub(scenario.start_ms)),
            );
            let ops: Vec<_> = scenario.operations.values().collect();
            let summary = summarise(&ops, measured, scenario.dropped);
            let mut outcomes = Vec::new();
            for text in &scenario.thresholds {
                outcomes.push(judge(&scenario.name, text, scenario, measured, &raw.memory));
            }
            let recovery = recovery(scenario);
            if let Some(recovery) = &recovery {
                // A spike the service does not recover from within the run fails it.
                outcomes.push(ThresholdOutcome {
                    scope: scenario.name.clone(),
                    threshold: format!(
                        "recovery: {} over {}s after the spike",
                        recovery.threshold, recovery.window_seconds
                    ),
                    observed: recovery.recovery_seconds,
                    observed_text: match recovery.recovery_seconds {
                        Some(seconds) => format!("back {seconds:.0}s after the spike's end"),
                        None => "not back under it by the end of the run".to_owned(),
                    },
                    passed: recovery.recovery_seconds.is_some(),
                });
            }
            let passed = outcomes.iter().all(|o| o.passed);
            thresholds.extend(outcomes);
            scenarios.push(ScenarioReport {
                name: scenario.name.clone(),
                load: scenario.load.clone(),
                mix: scenario.mix.clone(),
                start_seconds: scenario.start_ms as f64 / 1e3,
                duration_seconds: scenario.duration_ms as f64 / 1e3,
                summary,
                passed,
                operations: scenario
                    .operations
                    .iter()
                    .map(|(name, op)| (name.clone(), summarise(&[op], measured, 0)))
                    .collect(),
                // Its own window only (a scenario of a sequence starts later than step 0).
                series: series(&[scenario])
                    .into_iter()
                    .filter(|p| p.t * 1e3 + 1e-6 >= scenario.start_ms as f64)
                    .collect(),
                warmup_requests: scenario.warmup_requests,
                recovery,
                breaking_point: breaking_point(scenario),
            });
        }
        let summary = summarise(&all_ops, window, dropped);
        for text in &raw.thresholds {
            thresholds.push(judge_overall(text, &raw, window));
        }
        let mut warnings = Vec::new();
        let generators: Vec<GeneratorReport> = raw
            .generators
            .iter()
            .map(|g| GeneratorReport {
                host: g.host.clone(),
                pid: g.pid,
                target: g.target.clone(),
                connections: g.connections,
                cpu_percent: if g.wall_seconds > 0.0 {
                    100.0 * g.cpu_seconds / g.wall_seconds
                } else {
                    0.0
                },
                send_lag_p50_us: g.send_lag.0.value_at_quantile(0.5),
                send_lag_p99_us: g.send_lag.0.value_at_quantile(0.99),
                send_lag_max_us: g.send_lag.0.max(),
            })
            .collect();
        for g in &generators {
            if Duration::from_micros(g.send_lag_p99_us) > LAG_WARNING {
                warnings.push(format!(
                    "the generator on {} (pid {}) sent 1% of its requests more than {} late \
                     (p99 send lag {}): it, or the machine, could not keep up; the latencies \
                     include that wait",
                    g.host,
                    g.pid,
                    format_seconds(LAG_WARNING.as_secs_f64()),
                    format_seconds(g.send_lag_p99_us as f64 / 1e6)
                ));
            }
        }
        if dropped > 0 {
            warnings.push(format!(
                "{dropped} requests were not sent because the generator fell too far behind \
                 (see dropped in each scenario)"
            ));
        }
        if let Some(reason) = &raw.stopped_early {
            warnings.push(format!("the run stopped early: {reason}"));
        }
        let outages = raw.chaos.as_ref().map(outages).unwrap_or_default();
        if let Some(chaos) = &raw.chaos {
            thresholds.extend(outage_outcomes(chaos, &outages));
        }
        let passed = raw.stopped_early.is_none() && thresholds.iter().all(|t| t.passed);
        let memory = raw
            .memory
            .iter()
            .map(|m| MemoryPoint {
                t: m.t_ms as f64 / 1e3,
                rss_bytes: m.rss_bytes,
            })
            .collect();
        let rounds = rounds(&raw, &scenarios);
        Report {
            tool: "commerce-load",
            version: env!("CARGO_PKG_VERSION"),
            profile: raw.profile.clone(),
            description: raw.description.clone(),
            date: rfc3339(raw.started_unix_ms),
            summary,
            passed,
            thresholds,
            series: series(&raw.scenarios.iter().collect::<Vec<_>>()),
            scenarios,
            server_memory: memory,
            memory_trend: overall_trend(&raw),
            outages,
            rounds,
            generators,
            warnings,
            stopped_early: raw.stopped_early.clone(),
            raw,
        }
    }
}

fn rfc3339(unix_ms: u64) -> String {
    chrono_like(unix_ms)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from Unix milliseconds (civil-from-days, Howard Hinnant's
/// algorithm): one date format does not justify a date crate.
fn chrono_like(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

fn merged_latency(ops: &[&crate::record::RawOperation]) -> (Histogram<u64>, Histogram<u64>) {
    let mut latency = latency_histogram();
    let mut service = latency_histogram();
    for op in ops {
        // The histograms of one run share their bounds; a merged file's were checked.
        let _ = latency.add(&op.latency.0);
        let _ = service.add(&op.service.0);
    }
    (latency, service)
}

fn summarise(ops: &[&crate::record::RawOperation], window: Duration, dropped: u64) -> Summary {
    let (latency, service) = merged_latency(ops);
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for op in ops {
        for (code, n) in &op.codes {
            *codes.entry(code.clone()).or_default() += n;
        }
        for (message, n) in &op.errors {
            *errors.entry(message.clone()).or_default() += n;
        }
    }
    let count = latency.len();
    let error_count: u64 = errors.values().sum();
    let ns = |us: u64| us.saturating_mul(1_000);
    let at = |q: f64| {
        if count == 0 {
            0
        } else {
            ns(latency.value_at_quantile(q))
        }
    };
    let latency_distribution = [10, 25, 50, 75, 90, 95, 99]
        .into_iter()
        .map(|percentage| LatencyPoint {
            percentage,
            latency: at(f64::from(percentage) / 100.0),
        })
        .collect();
    Summary {
        count,
        total: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
        average: if count == 0 {
            0
        } else {
            (latency.mean() * 1_000.0) as u64
        },
        fastest: if count == 0 { 0 } else { ns(latency.min()) },
        slowest: if count == 0 { 0 } else { ns(latency.max()) },
        rps: if window.is_zero() {
            0.0
        } else {
            count as f64 / window.as_secs_f64()
        },
        error_distribution: errors,
        status_code_distribution: codes,
        latency_distribution,
        histogram: buckets(&latency),
        p50: at(0.5),
        p90: at(0.9),
        p95: at(0.95),
        p99: at(0.99),
        p999: at(0.999),
        errors: error_count,
        error_rate: if count == 0 {
            0.0
        } else {
            error_count as f64 / count as f64
        },
        dropped,
        service_time_p50: if count == 0 {
            0
        } else {
            ns(service.value_at_quantile(0.5))
        },
        service_time_p99: if count == 0 {
            0
        } else {
            ns(service.value_at_quantile(0.99))
        },
    }
}

/// ghz's histogram: eleven marks from the fastest to the slowest request, ten equal steps
/// apart; each bucket counts the requests above the previous mark, up to its own.
fn buckets(latency: &Histogram<u64>) -> Vec<Bucket> {
    let count = latency.len();
    if count == 0 {
        return Vec::new();
    }
    let (low, high) = (latency.min(), latency.max());
    let width = (high - low) as f64 / 10.0;
    let mut out = Vec::new();
    let mut previous = 0;
    for i in 0..=10u32 {
        let mark = if i == 10 {
            high
        } else {
            low + (width * f64::from(i)) as u64
        };
        let below: u64 = latency
            .iter_recorded()
            .filter(|v| i == 10 || latency.highest_equivalent(v.value_iterated_to()) <= mark)
            .map(|v| v.count_at_value())
            .sum();
        let n = below.saturating_sub(previous);
        previous = previous.max(below);
        out.push(Bucket {
            mark: mark as f64 / 1e6,
            count: n,
            frequency: n as f64 / count as f64,
        });
    }
    out
}

fn series(scenarios: &[&RawScenario]) -> Vec<SeriesPoint> {
    let Some(step_ms) = scenarios.first().map(|s| s.step_ms) else {
        return Vec::new();
    };
    let len = scenarios.iter().map(|s| s.series.len()).max().unwrap_or(0);
    (0..len)
        .map(|i| {
            let mut latency = step_histogram();
            let (mut sent, mut completed, mut errors, mut dropped) = (0, 0, 0, 0);
            for scenario in scenarios {
                if let Some(step) = scenario.series.get(i) {
                    sent += step.sent;
                    completed += step.completed;
                    errors += step.errors;
                    dropped += step.dropped;
                    let _ = latency.add(&step.latency.0);
                }
            }
            let at =
                |q: f64| (!latency.is_empty()).then(|| latency.value_at_quantile(q) as f64 / 1e3);
            SeriesPoint {
                t: (i as u64 * step_ms) as f64 / 1e3,
                sent,
                completed,
                errors,
                dropped,
                p50_ms: at(0.5),
                p95_ms: at(0.95),
                p99_ms: at(0.99),
            }
        })
        .collect()
}

/// What a threshold observes in a set of operations over a window: `None` when there is
/// nothing to observe (no request completed), which fails the threshold.
fn observe(
    threshold: &Threshold,
    ops: &[&crate::record::RawOperation],
    window: Duration,
    dropped: u64,
) -> Option<f64> {
    let (latency, _) = merged_latency(ops);
    let count = latency.len();
    let errors: u64 = ops.iter().flat_map(|op| op.errors.values()).sum();
    match threshold.metric {
        Metric::Percentile(p) => {
            (count > 0).then(|| latency.value_at_quantile(p / 100.0) as f64 / 1e6)
        }
        Metric::Average => (count > 0).then(|| latency.mean() / 1e6),
        Metric::ErrorRate => (count > 0).then(|| errors as f64 / count as f64),
        Metric::Rps => (!window.is_zero()).then(|| count as f64 / window.as_secs_f64()),
        Metric::Dropped => Some(dropped as f64),
        // Judged from the memory samples (`memory_outcome`), not from requests.
        Metric::MemoryGrowthPerHour | Metric::MemoryGrowthPer100k => None,
    }
}

fn outcome(scope: &str, threshold: &Threshold, observed: Option<f64>) -> ThresholdOutcome {
    ThresholdOutcome {
        scope: scope.to_owned(),
        threshold: threshold.text.clone(),
        observed,
        observed_text: observed
            .map(|v| format_metric_value(threshold.metric, v))
            .unwrap_or_else(|| "no requests".to_owned()),
        passed: observed.is_some_and(|v| threshold.holds(v)),
    }
}

/// A memory threshold's outcome: without a trend it fails, and says why.
fn memory_outcome(
    scope: &str,
    threshold: &Threshold,
    trend: Option<MemoryTrend>,
) -> ThresholdOutcome {
    let observed = trend.and_then(|trend| match threshold.metric {
        Metric::MemoryGrowthPerHour => Some(trend.growth_bytes_per_hour),
        _ => trend.growth_bytes_per_100k_requests,
    });
    match observed {
        Some(_) => outcome(scope, threshold, observed),
        None => ThresholdOutcome {
            scope: scope.to_owned(),
            threshold: threshold.text.clone(),
            observed: None,
            observed_text: format!(
                "not known: fewer than {TREND_MIN_SAMPLES} samples of the server's memory, or \
                 no request answered (memory is sampled when commerce-load starts the server)"
            ),
            passed: false,
        },
    }
}

/// The trend over the whole measured window.
fn overall_trend(raw: &RawRun) -> Option<MemoryTrend> {
    let answered = raw
        .scenarios
        .iter()
        .flat_map(|s| s.operations.values())
        .map(|op| op.latency.0.len())
        .sum();
    memory_trend(
        &raw.memory,
        0,
        i64::try_from(raw.window_ms).unwrap_or(i64::MAX),
        answered,
    )
}

fn invalid_threshold(scope: &str, text: &str, error: impl std::fmt::Display) -> ThresholdOutcome {
    // Profiles are validated before a run; a merged file may still carry text a newer version
    // wrote. It cannot pass.
    ThresholdOutcome {
        scope: scope.to_owned(),
        threshold: text.to_owned(),
        observed: None,
        observed_text: format!("invalid: {error}"),
        passed: false,
    }
}

fn judge(
    scope: &str,
    text: &str,
    scenario: &RawScenario,
    window: Duration,
    memory: &[MemorySample],
) -> ThresholdOutcome {
    let threshold = match Threshold::parse(text) {
        Ok(t) => t,
        Err(error) => return invalid_threshold(scope, text, error),
    };
    if threshold.metric.is_memory() {
        let from = i64::try_from(scenario.start_ms).unwrap_or(i64::MAX);
        let to = from.saturating_add(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let answered = scenario
            .operations
            .values()
            .map(|op| op.latency.0.len())
            .sum();
        return memory_outcome(scope, &threshold, memory_trend(memory, from, to, answered));
    }
    let ops: Vec<_> = match threshold.operation {
        Some(op) => scenario.operations.get(op.name()).into_iter().collect(),
        None => scenario.operations.values().collect(),
    };
    let observed = observe(&threshold, &ops, window, scenario.dropped);
    outcome(scope, &threshold, observed)
}

fn judge_overall(text: &str, raw: &RawRun, window: Duration) -> ThresholdOutcome {
    let threshold = match Threshold::parse(text) {
        Ok(t) => t,
        Err(error) => return invalid_threshold("overall", text, error),
    };
    if threshold.metric.is_memory() {
        return memory_outcome("overall", &threshold, overall_trend(raw));
    }
    let ops: Vec<_> = raw
        .scenarios
        .iter()
        .flat_map(|s| {
            s.operations
                .iter()
                .filter(|(name, _)| {
                    threshold
                        .operation
                        .is_none_or(|op| op.name() == name.as_str())
                })
                .map(|(_, op)| op)
        })
        .collect();
    let dropped = raw.scenarios.iter().map(|s| s.dropped).sum();
    outcome(
        "overall",
        &threshold,
        observe(&threshold, &ops, window, dropped),
    )
}

/// Requests a scenario (or the profile) must have before `--abort-on-fail` judges its
/// percentiles: a percentile of a handful of requests says little (k6 delays the evaluation of
/// an aborting threshold for the same reason).
const ABORT_MIN_REQUESTS: u64 = 50;
/// And for how long it must have run.
const ABORT_MIN_TIME: Duration = Duration::from_secs(5);

/// The first latency or error threshold that fails on the results so far (for
/// `--abort-on-fail`); rate and count thresholds are judged only at the end. A scenario is
/// judged once it has run `ABORT_MIN_TIME` and answered `ABORT_MIN_REQUESTS`.
pub fn failing_threshold(
    profile: &Profile,
    scenarios: &[RawScenario],
    elapsed: Duration,
) -> Option<String> {
    let judged = |t: &Threshold| t.metric.is_latency() || t.metric == Metric::ErrorRate;
    let answered =
        |raw: &RawScenario| -> u64 { raw.operations.values().map(|op| op.latency.0.len()).sum() };
    for (scenario, raw) in profile.scenarios.iter().zip(scenarios) {
        let ran = elapsed.saturating_sub(scenario.start);
        if ran < ABORT_MIN_TIME || answered(raw) < ABORT_MIN_REQUESTS {
            continue;
        }
        for threshold in scenario.thresholds.iter().filter(|t| judged(t)) {
            let result = judge(&scenario.name, &threshold.text, raw, ran, &[]);
            if result.observed.is_some() && !result.passed {
                return Some(format!(
                    "`{}` of scenario {} ({})",
                    threshold.text, scenario.name, result.observed_text
                ));
            }
        }
    }
    if elapsed < ABORT_MIN_TIME || scenarios.iter().map(answered).sum::<u64>() < ABORT_MIN_REQUESTS
    {
        return None;
    }
    let ops: Vec<_> = scenarios
        .iter()
        .flat_map(|s| s.operations.values())
        .collect();
    for threshold in profile.thresholds.iter().filter(|t| judged(t)) {
        let ops: Vec<_> = ops
            .iter()
            .copied()
            .filter(|_| threshold.operation.is_none())
            .chain(scenarios.iter().filter_map(|s| {
                threshold
                    .operation
                    .and_then(|op| s.operations.get(op.name()))
            }))
            .collect();
        if let Some(value) = observe(threshold, &ops, elapsed, 0)
            && !threshold.holds(value)
        {
            return Some(format!(
                "`{}` ({})",
                threshold.text,
                format_metric_value(threshold.metric, value)
            ));
        }
    }
    None
}

/// One progress line for a scenario.
pub fn progress_line(
    scenario: &RawScenario,
    elapsed: Duration,
    sent: u64,
    in_flight: u64,
) -> String {
    let ops: Vec<_> = scenario.operations.values().collect();
    let (latency, _) = merged_latency(&ops);
    let errors: u64 = ops.iter().flat_map(|op| op.errors.values()).sum();
    let p95 = if latency.is_empty() {
        "-".to_owned()
    } else {
        format_seconds(latency.value_at_quantile(0.95) as f64 / 1e6)
    };
    format!(
        "[{:>5}s] {}: sent {sent}, answered {}, errors {errors}, dropped {}, in flight {in_flight}, p95 {p95}",
        elapsed.as_secs(),
        scenario.name,
        latency.len(),
        scenario.dropped,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    // The cause is in the message, not a `source` too: a chain would print it twice.
    #[error("{path} is not a commerce-load JSON report: {cause}")]
    Parse {
        path: String,
        cause: serde_json::Error,
    },
    #[error("nothing to merge")]
    Empty,
    #[error("{0}")]
    Incompatible(String),
}

/// The `raw` part of a JSON report.
#[derive(Deserialize)]
struct RawOnly {
    raw: RawRun,
}

/// Reads the raw results of a JSON report written by `commerce-load`.
pub fn read_raw(path: &std::path::Path) -> Result<RawRun, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str::<RawOnly>(&text)
        .map(|r| r.raw)
        .map_err(|cause| MergeError::Parse {
            path: path.display().to_string(),
            cause,
        })
}

/// Merges the raw results of generators that ran the same profile at the same time (against
/// the same service): histograms and counts add up, series are aligned on wall-clock time.
pub fn merge(runs: Vec<RawRun>) -> Result<RawRun, MergeError> {
    for (i, run) in runs.iter().enumerate() {
        if runs[..i].contains(run) {
            let pid = run.generators.first().map_or(0, |g| g.pid);
            return Err(MergeError::Incompatible(format!(
                "the same run (generator pid {pid}, started at {}) is given twice",
                rfc3339(run.started_unix_ms)
            )));
        }
    }
    let mut runs = runs.into_iter();
    let Some(first) = runs.next() else {
        return Err(MergeError::Empty);
    };
    let mut merged = first;
    for run in runs {
        if run.profile != merged.profile {
            return Err(MergeError::Incompatible(format!(
                "the runs are of different profiles (`{}` and `{}`)",
                merged.profile, run.profile
            )));
        }
        let rounds_of = |run: &RawRun| -> std::collections::BTreeSet<(String, u32)> {
            run.scenarios
                .iter()
                .filter_map(|s| s.round.as_ref().map(|r| (r.of.clone(), r.index)))
                .collect()
        };
        if rounds_of(&run) != rounds_of(&merged) {
            return Err(MergeError::Incompatible(
                "the runs had different rounds (--rounds)".to_owned(),
            ));
        }
        let start = merged.started_unix_ms.min(run.started_unix_ms);
        let end =
            (merged.started_unix_ms + merged.window_ms).max(run.started_unix_ms + run.window_ms);
        // Shift both onto the earlier start.
        let shift_merged = merged.started_unix_ms - start;
        let shift_run = run.started_unix_ms - start;
        shift(&mut merged, shift_merged)?;
        let mut run = run;
        shift(&mut run, shift_run)?;
        merged.started_unix_ms = start;
        merged.window_ms = end - start;
        for scenario in run.scenarios {
            match merged
                .scenarios
                .iter_mut()
                .find(|s| s.name == scenario.name)
            {
                None => merged.scenarios.push(scenario),
                Some(into) => add_scenario(into, scenario)?,
            }
        }
        merged.memory.extend(run.memory);
        merged.memory.sort_by_key(|m| m.t_ms);
        // The outages are the one generator's that caused them (it started the server's
        // dependencies); the other generators' requests are in the totals, not in its timeline.
        merged.chaos = match (merged.chaos.take(), run.chaos) {
            (Some(_), Some(_)) => {
                return Err(MergeError::Incompatible(
                    "two of the runs took the server's dependencies down: merge runs of one \
                     outage at a time"
                        .to_owned(),
                ));
            }
            (mine, theirs) => mine.or(theirs),
        };
        merged.generators.extend(run.generators);
        merged.stopped_early = merged.stopped_early.or(run.stopped_early);
    }
    Ok(merged)
}

/// Moves a run's times `by_ms` later (its series get empty steps in front).
fn shift(run: &mut RawRun, by_ms: u64) -> Result<(), MergeError> {
    if by_ms == 0 {
        return Ok(());
    }
    for m in &mut run.memory {
        m.t_ms += i64::try_from(by_ms).unwrap_or(i64::MAX);
    }
    if let Some(chaos) = &mut run.chaos {
        for event in &mut chaos.events {
            event.due_ms += by_ms;
            event.done_ms += by_ms;
        }
        for sample in &mut chaos.server {
            sample.t_ms += i64::try_from(by_ms).unwrap_or(i64::MAX);
        }
        let bins = usize::try_from(by_ms / chaos.bin_ms.max(1)).unwrap_or(0);
        chaos
            .bins
            .splice(0..0, std::iter::repeat_n(RawChaosBin::default(), bins));
    }
    for scenario in &mut run.scenarios {
        scenario.start_ms += by_ms;
        // Aligned to the nearest step: generators started within half a step of each other
        // share their steps.
        let steps = (by_ms + scenario.step_ms / 2) / scenario.step_ms.max(1);
        // A series has at most 3,600 steps of its own: runs further apart than that did not run
        // at the same time.
        let steps = usize::try_from(steps)
            .ok()
            .filter(|steps| *steps <= 100_000)
            .ok_or_else(|| {
                MergeError::Incompatible(format!(
                    "the runs started {} apart: merge runs of generators that ran at the same time",
                    humantime::format_duration(Duration::from_millis(by_ms))
                ))
            })?;
        let mut series = vec![crate::record::RawStep::empty(); steps];
        series.append(&mut scenario.series);
        scenario.series = series;
    }
    Ok(())
}

fn add_scenario(into: &mut RawScenario, from: RawScenario) -> Result<(), MergeError> {
    if into.step_ms != from.step_ms {
        return Err(MergeError::Incompatible(format!(
            "scenario {}: series steps differ ({} ms and {} ms): the runs had different durations",
            into.name, into.step_ms, from.step_ms
        )));
    }
    if into.round != from.round {
        return Err(MergeError::Incompatible(format!(
            "scenario {}: the runs had different rounds",
            into.name
        )));
    }
    if into.thresholds != from.thresholds
        || into.recovery != from.recovery
        || into.breaking_point != from.breaking_point
    {
        return Err(MergeError::Incompatible(format!(
            "scenario {}: the runs had different thresholds",
            into.name
        )));
    }
    let end = (into.start_ms + into.duration_ms).max(from.start_ms + from.duration_ms);
    into.start_ms = into.start_ms.min(from.start_ms);
    into.duration_ms = end - into.start_ms;
    for (name, op) in from.operations {
        match into.operations.get_mut(&name) {
            None => {
                into.operations.insert(name, op);
            }
            Some(target) => {
                add_hist(&mut target.latency.0, &op.latency.0)?;
                add_hist(&mut target.service.0, &op.service.0)?;
                for (code, n) in op.codes {
                    *target.codes.entry(code).or_default() += n;
                }
                for (message, n) in op.errors {
                    *target.errors.entry(message).or_default() += n;
                }
            }
        }
    }
    for (i, step) in from.series.into_iter().enumerate() {
        if into.series.len() <= i {
            into.series.push(step);
            continue;
        }
        let target = &mut into.series[i];
        target.sent += step.sent;
        target.completed += step.completed;
        target.errors += step.errors;
        target.dropped += step.dropped;
        add_hist(&mut target.latency.0, &step.latency.0)?;
    }
    into.dropped += from.dropped;
    into.warmup_requests += from.warmup_requests;
    Ok(())
}

fn add_hist(into: &mut Histogram<u64>, from: &Histogram<u64>) -> Result<(), MergeError> {
    into.add(from)
        .map_err(|error| MergeError::Incompatible(format!("histograms do not add up: {error:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timeline of 100 ms bins over `seconds`: 10 requests a bin, failing with `code` where
    /// `failing` says so; and the server's cache hits, growing where `hits` says so.
    fn timeline(
        seconds: u64,
        failing: impl Fn(u64) -> Option<&'static str>,
        hits: impl Fn(u64) -> bool,
        events: &[(&str, u64, u64)],
    ) -> RawChaos {
        let bins = (0..seconds * 10)
            .map(|i| {
                let mut bin = RawChaosBin::default();
                match failing(i * 100) {
                    Some(code) => {
                        bin.failed.insert(code.to_owned(), 10);
                    }
                    None => bin.ok = 10,
                }
                bin
            })
            .collect();
        let mut total = 0.0;
        let server = (0..seconds * 10)
            .map(|i| {
                if hits(i * 100) {
                    total += 5.0;
                }
                crate::record::ServerSample {
                    t_ms: i as i64 * 100,
                    cache_hits: Some(total),
                    breaker_open: Some(0.0),
                }
            })
            .collect();
        RawChaos {
            max_error_rate: 0.01,
            recovery_ms: 5_000,
            events: events
                .iter()
                .map(|&(action, due_ms, done_ms)| crate::record::RawChaosEvent {
                    action: action.to_owned(),
                    due_ms,
                    done_ms,
                    error: None,
                })
                .collect(),
            bin_ms: 100,
            bins,
            server,
        }
    }

    #[test]
    fn an_outage_is_measured_from_the_timeline() {
        // Redis down 3 s to 7 s: a few failures right after the stop, the cache idle while down
        // and used again 1.5 s after its return.
        let chaos = timeline(
            15,
            |ms| (3_000..3_200).contains(&ms).then_some("Unavailable"),
            |ms| !(3_000..8_500).contains(&ms),
            &[("redis-down", 3_000, 3_050), ("redis-up", 7_000, 7_000)],
        );
        let found = outages(&chaos);
        let o = &found[0];
        assert_eq!(o.dependency, "redis");
        assert_eq!((o.down_seconds, o.up_seconds), (3.0, Some(7.0)));
        assert_eq!((o.requests, o.failed), (400, 20));
        assert_eq!(o.codes.get("Unavailable"), Some(&20));
        assert!(o.cache_in_use_before);
        assert_eq!(o.errors_cleared_seconds, Some(0.0));
        assert_eq!(o.cache_used_seconds, Some(1.5));
        assert_eq!(o.recovery_seconds, Some(1.5));
        let outcomes = outage_outcomes(&chaos, &found);
        assert!(!outcomes[0].passed, "5% failed while down: {outcomes:?}");
        assert!(outcomes[1].passed, "{outcomes:?}");
    }

    #[test]
    fn calls_succeed_again_at_the_first_second_without_a_failure() {
        // PostgreSQL down 2 s to 5 s; failures go on until 6.3 s.
        let chaos = timeline(
            12,
            |ms| (2_000..6_300).contains(&ms).then_some("Unavailable"),
            |_| true,
            &[
                ("postgres-down", 2_000, 2_000),
                ("postgres-up", 5_000, 5_000),
            ],
        );
        let found = outages(&chaos);
        let o = &found[0];
        assert_eq!(o.errors_cleared_seconds, Some(1.3));
        assert_eq!(o.recovery_seconds, Some(1.3), "the cache is not asked for");
        assert_eq!(o.codes.get("Unavailable"), Some(&430));
        assert!(outage_outcomes(&chaos, &found).iter().all(|t| t.passed));

        // Another code fails the outage; so does a dependency never brought back.
        let chaos = timeline(
            12,
            |ms| (2_000..3_000).contains(&ms).then_some("Internal"),
            |_| true,
            &[("postgres-down", 2_000, 2_000)],
        );
        let found = outages(&chaos);
        assert_eq!(found[0].up_seconds, None);
        let outcomes = outage_outcomes(&chaos, &found);
        assert_eq!(
            outcomes.iter().filter(|t| !t.passed).count(),
            3,
            "{outcomes:?}"
        );
    }

    #[test]
    fn the_cache_is_not_asked_for_when_it_was_not_in_use() {
        // A mix without GetCart: no cache hits at all.
        let chaos = timeline(
            10,
            |_| None,
            |_| false,
            &[("redis-down", 2_000, 2_000), ("redis-up", 4_000, 4_000)],
        );
        let found = outages(&chaos);
        assert!(!found[0].cache_in_use_before);
        assert_eq!(found[0].recovery_seconds, Some(0.0));
        assert!(outage_outcomes(&chaos, &found).iter().all(|t| t.passed));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_worse_middle_one() {
        let ascending = |a: &u64, b: &u64| a.cmp(b);
        assert_eq!(median_of([3u64, 1, 2].into_iter(), ascending), Some(2));
        assert_eq!(median_of([4u64, 1, 3, 2].into_iter(), ascending), Some(2));
        let descending = |a: &u64, b: &u64| b.cmp(a);
        assert_eq!(median_of([4u64, 1, 3, 2].into_iter(), descending), Some(3));
        assert_eq!(median_of(std::iter::empty::<u64>(), ascending), None);
        // A round whose first step failed (no rate) is the lowest.
        let rates = [Some(28_000.0), None, Some(20_000.0)];
        let by_rate = |a: &Option<f64>, b: &Option<f64>| a.partial_cmp(b).unwrap();
        assert_eq!(median_of(rates.into_iter(), by_rate), Some(Some(20_000.0)));
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(chrono_like(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(chrono_like(1_796_000_000_123), "2026-11-30T00:53:20.123Z");
        assert_eq!(chrono_like(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    fn samples(rss: impl Fn(i64) -> u64, seconds: i64) -> Vec<MemorySample> {
        (-5..=seconds)
            .map(|s| MemorySample {
                t_ms: s * 1000,
                rss_bytes: rss(s),
            })
            .collect()
    }

    #[test]
    fn a_steady_leak_is_fitted_exactly() {
        // 1 kB a second from 10 MB; 100 requests a second for 60 s.
        let memory = samples(|s| (10_000_000 + 1_000 * s) as u64, 60);
        let trend = memory_trend(&memory, 0, 60_000, 6_000).unwrap();
        // The warm-up's samples (negative times) are left out.
        assert_eq!(trend.samples, 61);
        assert!(
            (trend.growth_bytes_per_hour - 3.6e6).abs() < 1e-3,
            "{trend:?}"
        );
        // 1 kB a second at 100 requests a second: 10 bytes a request, 1 MB per 100K.
        let per_100k = trend.growth_bytes_per_100k_requests.unwrap();
        assert!((per_100k - 1e6).abs() < 1e-3, "{trend:?}");
        assert!((trend.fitted_start_bytes - 10_000_000.0).abs() < 1e-3);
        assert!((trend.fitted_end_bytes - 10_060_000.0).abs() < 1e-3);
        assert!(trend.second_half_mean_bytes > trend.first_half_mean_bytes);
    }

    #[test]
    fn flat_memory_with_noise_has_no_slope_and_few_samples_no_trend() {
        let memory = samples(|s| 20_000_000 + if s % 2 == 0 { 4_096 } else { 0 }, 600);
        let trend = memory_trend(&memory, 0, 600_000, 60_000).unwrap();
        assert!(trend.growth_bytes_per_hour.abs() < 100.0, "{trend:?}");
        assert!(memory_trend(&memory, 0, 8_000, 800).is_none());
        assert!(memory_trend(&[], 0, 60_000, 6_000).is_none());
        let trend = memory_trend(&memory, 0, 600_000, 0).unwrap();
        assert_eq!(trend.growth_bytes_per_100k_requests, None);
    }
}

//! What a run records, and the raw results a report is derived from.
//!
//! Latency is measured from the time a request was **due** (its place in the schedule), not
//! from when it was sent: a request that waited because the server (or the generator) was
//! stalled counts the wait, as wrk2 and oha do. The time from the actual send is kept too
//! (`service`), so a report can show what correcting for coordinated omission changed.
//!
//! [`RawRun`] holds everything as mergeable data: HDR histograms (serialised, compressed,
//! base64), counts per status code, and a series per time step of each scenario, indexed from
//! the start of the measured window. Reports ([`crate::report`]) are computed from it, so runs
//! of several generator processes merge into one report by merging their raw results.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::ops::{Operation, Outcome, code_name};

/// Latencies in microseconds, three significant digits. It grows with the largest value
/// recorded (auto-resize), so an empty or narrow histogram stays small: a run holds one per
/// operation and one per series step, and clones them for progress reports.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits are valid")
}

/// Latencies of one series step: two significant digits keep a long soak's series small.
pub fn step_histogram() -> Histogram<u64> {
    Histogram::new(2).expect("2 significant digits are valid")
}

/// A histogram that serialises as base64 of HdrHistogram's V2 deflate encoding, the format
/// HdrHistogram's other implementations read too.
#[derive(Clone, Debug, PartialEq)]
pub struct Hist(pub Histogram<u64>);

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .map_err(|error| serde::ser::Error::custom(format!("{error:?}")))?;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Hist, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|error| serde::de::Error::custom(format!("histogram: {error}")))?;
        let mut histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|error| serde::de::Error::custom(format!("histogram: {error:?}")))?;
        // As recorded: growing with what is added to it (merges add other runs' histograms).
        histogram.auto(true);
        Ok(Hist(histogram))
    }
}

/// The raw results of one run (or of several merged).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    pub profile: String,
    pub description: String,
    /// Unix time of the start of the measured window (the end of the warm-up), in ms.
    pub started_unix_ms: u64,
    /// Length of the measured window, in ms.
    pub window_ms: u64,
    /// The profile's own thresholds (judging all requests).
    pub thresholds: Vec<String>,
    pub scenarios: Vec<RawScenario>,
    /// The server's resident memory, when the run knows its process.
    pub memory: Vec<MemorySample>,
    /// One entry per generator process.
    pub generators: Vec<GeneratorStats>,
    /// Set when Ctrl-C or `--abort-on-fail` ended the run early: why.
    pub stopped_early: Option<String>,
    /// The outages of the run, when it had any (`--chaos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<RawChaos>,
}

/// What happened around the outages of a run: the events as done, the outcome of every request
/// by the time it was due in bins of [`CHAOS_BIN`], and the server's own counters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawChaos {
    /// `profile::Chaos`'s criteria.
    pub max_error_rate: f64,
    pub recovery_ms: u64,
    pub events: Vec<RawChaosEvent>,
    /// Width of a bin, in ms.
    pub bin_ms: u64,
    /// Bin `i` holds the requests due in `[i * bin_ms, (i + 1) * bin_ms)` of the measured
    /// window, all scenarios together.
    pub bins: Vec<RawChaosBin>,
    /// The server's counters, scraped from its `/metrics` every [`CHAOS_BIN`] (empty when the
    /// run does not know its metrics address).
    pub server: Vec<ServerSample>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawChaosEvent {
    /// `redis-down`, `postgres-up`.
    pub action: String,
    /// When it was due and when it was done (a stop has returned: the process is gone; a
    /// start has returned: the server answers), from the start of the measured window, ms.
    pub due_ms: u64,
    pub done_ms: u64,
    /// Why it could not be done, if it could not.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawChaosBin {
    pub ok: u64,
    /// Failed requests by gRPC code name.
    pub failed: BTreeMap<String, u64>,
}

impl RawChaosBin {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSample {
    /// From the start of the measured window, ms.
    pub t_ms: i64,
    /// `commerce_cache_hits_total{cache="cart",tier="redis"}`: carts served from Redis so far.
    pub cache_hits: Option<f64>,
    /// `commerce_db_breaker_open`: 1 while the server refuses database calls at once.
    pub breaker_open: Option<f64>,
}

/// The resolution of the outage timeline.
pub const CHAOS_BIN: Duration = Duration::from_millis(100);

/// The outcomes of a run's requests by due time, shared by its scenarios' recorders.
#[derive(Clone)]
pub struct Timeline {
    inner: Arc<Mutex<(Instant, Vec<RawChaosBin>)>>,
}

impl Timeline {
    /// A timeline of the measured window starting at `t0`.
    pub fn new(t0: Instant) -> Timeline {
        Timeline {
            inner: Arc::new(Mutex::new((t0, Vec::new()))),
        }
    }

    fn record(&self, due: Instant, outcome: &Outcome) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (t0, bins) = &mut *guard;
        let Some(since) = due.checked_duration_since(*t0) else {
            return;
        };
        let Ok(index) = usize::try_from(since.as_millis() / CHAOS_BIN.as_millis()) else {
            return;
        };
        // A day of bins at most: a longer run's outages are charted from its start.
        if index >= 864_000 {
            return;
        }
        if bins.len() <= index {
            bins.resize_with(index + 1, RawChaosBin::default);
        }
        let bin = &mut bins[index];
        match outcome {
            Ok(_) => bin.ok += 1,
            Err(_) => *bin.failed.entry(code_name(outcome).to_owned()).or_default() += 1,
        }
    }

    pub fn bins(&self) -> Vec<RawChaosBin> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: String,
    /// `constant-arrival-rate 200/s for 1m`.
    pub load: String,
    pub executor: String,
    /// `get_cart 70%, add_item 30%`.
    pub mix: String,
    /// Start and length within the measured window, in ms.
    pub start_ms: u64,
    pub duration_ms: u64,
    pub thresholds: Vec<String>,
    /// Width of one series step, in ms.
    pub step_ms: u64,
    pub operations: BTreeMap<String, RawOperation>,
    /// Step `i` covers `[i * step_ms, (i + 1) * step_ms)` of the measured window.
    pub series: Vec<RawStep>,
    /// Requests not sent because the generator was too far behind (k6's `dropped_iterations`).
    pub dropped: u64,
    /// Requests of the warm-up, not in the results.
    pub warmup_requests: u64,
    /// For a spike: how its recovery is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RawRecovery>,
    /// For steps of rising rate: how each step is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaking_point: Option<RawBreakingPoint>,
    /// In a profile of several rounds: which round of which scenario this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<RawRound>,
}

/// `profile::Round`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRound {
    /// The scenario's name in the profile.
    pub of: String,
    /// From 1.
    pub index: u32,
}

/// `profile::BreakingPoint`, as the report needs it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBreakingPoint {
    /// `p95 < 20ms`.
    pub threshold: String,
    pub max_error_rate: f64,
    pub steps: Vec<RawRateStep>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRateStep {
    /// From the scenario's start, ms.
    pub start_ms: u64,
    pub end_ms: u64,
    pub rate: f64,
}

/// A spike's recovery criterion (`profile::Recovery`), as the report needs it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    /// `p95 < 100ms`.
    pub threshold: String,
    pub window_ms: u64,
    /// From the scenario's start, ms.
    pub spike_start_ms: u64,
    pub spike_end_ms: u64,
    pub peak_rate: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    /// From the time each request was due, in µs.
    pub latency: Hist,
    /// From the time each request was sent, in µs.
    pub service: Hist,
    /// Completed requests by gRPC code name (`OK` included).
    pub codes: BTreeMap<String, u64>,
    /// Failed requests by `rpc error: code = CODE desc = MESSAGE` (ghz's form).
    pub errors: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Requests sent in this step.
    pub sent: u64,
    /// Requests answered in this step (whatever the answer).
    pub completed: u64,
    /// Requests due in this step that failed.
    pub errors: u64,
    /// Requests due in this step that were dropped.
    pub dropped: u64,
    /// Latencies of the requests due in this step, in µs.
    pub latency: Hist,
}

impl RawStep {
    pub fn empty() -> RawStep {
        RawStep {
            sent: 0,
            completed: 0,
            errors: 0,
            dropped: 0,
            latency: Hist(step_histogram()),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemorySample {
    /// From the start of the measured window (negative during the warm-up), in ms.
    pub t_ms: i64,
    pub rss_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeneratorStats {
    pub host: String,
    pub pid: u32,
    /// The server it loaded.
    pub target: String,
    pub connections: usize,
    /// CPU time the generator used during the measured window (user + system), in seconds.
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    /// How late requests were sent after they were due, in µs: the generator's own precision.
    pub send_lag: Hist,
}

/// What one scenario records while it runs; shared by its dispatching task and its requests.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Live>>,
    timeline: Option<Timeline>,
}

struct Live {
    /// The start of the measured window.
    t0: Instant,
    /// The scenario's own window within it.
    from: Duration,
    until: Duration,
    step: Duration,
    operations: BTreeMap<Operation, LiveOperation>,
    series: Vec<RawStep>,
    dropped: u64,
    warmup_requests: u64,
    send_lag: Histogram<u64>,
    in_flight: u64,
    sent_total: u64,
}

struct LiveOperation {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    codes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

/// The series step for a window: one second, or longer for long runs so that a series has at
/// most 3,600 steps (a 24-hour soak is charted in 24-second steps).
pub fn step_for(window: Duration) -> Duration {
    let seconds = window.as_secs().div_ceil(3_600).max(1);
    Duration::from_secs(seconds)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Recorder {
    /// A recorder for a scenario measured from `t0 + from` to `t0 + until`.
    pub fn new(t0: Instant, from: Duration, until: Duration, step: Duration) -> Recorder {
        Recorder {
            inner: Arc::new(Mutex::new(Live {
                t0,
                from,
                until,
                step,
                operations: BTreeMap::new(),
                series: Vec::new(),
                dropped: 0,
                warmup_requests: 0,
                send_lag: latency_histogram(),
                in_flight: 0,
                sent_total: 0,
            })),
            timeline: None,
        }
    }

    /// Also records every measured request's outcome in `timeline`.
    pub fn with_timeline(mut self, timeline: Timeline) -> Recorder {
        self.timeline = Some(timeline);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        // A panic while holding the lock cannot leave the counters half-updated in a way that
        // matters more than losing the run; keep recording.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A request due at `due` was sent at `sent`.
    pub fn sent(&self, due: Instant, sent: Instant) {
        self.record_sent(due, sent, true);
    }

    /// A virtual user sent a request (the closed model has no schedule to be late against, so
    /// no send lag is recorded).
    pub fn sent_by_user(&self, sent: Instant) {
        self.record_sent(sent, sent, false);
    }

    fn record_sent(&self, due: Instant, sent: Instant, lag: bool) {
        let mut live = self.lock();
        live.in_flight += 1;
        if !live.measured(due) {
            return;
        }
        live.sent_total += 1;
        if lag {
            let lag = micros(sent.saturating_duration_since(due));
            let _ = live.send_lag.record(lag);
        }
        if let Some(step) = live.step_mut(sent) {
            step.sent += 1;
        }
    }

    /// A request due at `due` was not sent after all (the operation found no data it could
    /// use without interfering with a request in flight): counted as dropped.
    pub fn not_sent(&self, due: Instant) {
        self.lock().in_flight -= 1;
        self.dropped(due);
    }

    /// A request due at `due`, sent at `sent`, ended at `done` with `outcome`.
    pub fn completed(
        &self,
        op: Operation,
        due: Instant,
        sent: Instant,
        done: Instant,
        outcome: &Outcome,
    ) {
        let mut live = self.lock();
        live.in_flight = live.in_flight.saturating_sub(1);
        if !live.measured(due) {
            live.warmup_requests += 1;
            return;
        }
        let latency = micros(done.saturating_duration_since(due));
        let service = micros(done.saturating_duration_since(sent));
        let entry = live.operations.entry(op).or_insert_with(|| LiveOperation {
            latency: latency_histogram(),
            service: latency_histogram(),
            codes: BTreeMap::new(),
            errors: BTreeMap::new(),
        });
        let _ = entry.latency.record(latency);
        let _ = entry.service.record(service);
        *entry
            .codes
            .entry(code_name(outcome).to_owned())
            .or_default() += 1;
        if let Err(status) = outcome {
            // ghz's (grpc-go's) form of an error.
            let message: String = status.message().chars().take(200).collect();
            *entry
                .errors
                .entry(format!(
                    "rpc error: code = {} desc = {message}",
                    code_name(outcome)
                ))
                .or_default() += 1;
        }
        if let Some(step) = live.step_mut(due) {
            let _ = step.latency.0.record(latency);
            if outcome.is_err() {
                step.errors += 1;
            }
        }
        if let Some(step) = live.step_mut(done) {
            step.completed += 1;
        }
        drop(live);
        if let Some(timeline) = &self.timeline {
            timeline.record(due, outcome);
        }
    }

    /// A request due at `due` was not sent: the generator was too far behind.
    pub fn dropped(&self, due: Instant) {
        let mut live = self.lock();
        if !live.measured(due) {
            return;
        }
        live.dropped += 1;
        if let Some(step) = live.step_mut(due) {
            step.dropped += 1;
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.lock().in_flight
    }

    /// Requests sent in the measured window so far.
    pub fn sent_total(&self) -> u64 {
        self.lock().sent_total
    }

    pub fn send_lag(&self) -> Histogram<u64> {
        self.lock().send_lag.clone()
    }

    /// The raw results so far without the series (for progress and `--abort-on-fail`, which
    /// need only the totals: cheaper to copy, under the lock the requests also take).
    pub fn totals(&self, name: &str) -> RawScenario {
        self.snapshot_inner(name, String::new(), "", String::new(), Vec::new(), false)
    }

    /// The raw results so far.
    pub fn snapshot(
        &self,
        name: &str,
        load: String,
        executor: &str,
        mix: String,
        thresholds: Vec<String>,
    ) -> RawScenario {
        self.snapshot_inner(name, load, executor, mix, thresholds, true)
    }

    fn snapshot_inner(
        &self,
        name: &str,
        load: String,
        executor: &str,
        mix: String,
        thresholds: Vec<String>,
        with_series: bool,
    ) -> RawScenario {
        let live = self.lock();
        RawScenario {
            name: name.to_owned(),
            load,
            executor: executor.to_owned(),
            mix,
            start_ms: millis(live.from),
            duration_ms: millis(live.until - live.from),
            thresholds,
            step_ms: millis(live.step),
            operations: live
                .operations
                .iter()
                .map(|(op, o)| {
                    (
                        op.name().to_owned(),
                        RawOperation {
                            latency: Hist(o.latency.clone()),
                            service: Hist(o.service.clone()),
                            codes: o.codes.clone(),
                            errors: o.errors.clone(),
                        },
                    )
                })
                .collect(),
            series: if with_series {
                live.series.clone()
            } else {
                Vec::new()
            },
            dropped: live.dropped,
            warmup_requests: live.warmup_requests,
            recovery: None,
            breaking_point: None,
            round: None,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Live {
    /// Whether a request due at `due` belongs to the results (not to the warm-up).
    fn measured(&self, due: Instant) -> bool {
        due >= self.t0 + self.from
    }

    /// The series step holding `at`, growing the series as needed (events after the window,
    /// such as late answers, are kept in the steps after it).
    fn step_mut(&mut self, at: Instant) -> Option<&mut RawStep> {
        let since = at.checked_duration_since(self.t0)?;
        let index = usize::try_from(since.as_millis() / self.step.as_millis().max(1)).ok()?;
        // Bound the series: an answer an hour late is counted in the totals, not charted.
        let last =
            (self.until + Duration::from_secs(3_600)).as_millis() / self.step.as_millis().max(1);
        if index as u128 > last {
            return None;
        }
        while self.series.len() <= index {
            self.series.push(RawStep::empty());
        }
        self.series.get_mut(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_json() {
        let mut h = latency_histogram();
        for v in [1, 10, 100, 1_000, 10_000, 1_000_000] {
            h.record(v).unwrap();
        }
        let json = serde_json::to_string(&Hist(h.clone())).unwrap();
        let back: Hist = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, h);
        assert!(serde_json::from_str::<Hist>("\"not base64!\"").is_err());
    }

    #[test]
    fn latency_counts_from_the_due_time_and_warmup_is_left_out() {
        let t0 = Instant::now();
        let rec = Recorder::new(
            t0,
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(1),
        );
        let due = t0 + Duration::from_millis(100);
        let sent = due + Duration::from_millis(900);
        let done = sent + Duration::from_millis(1);
        rec.sent(due, sent);
        rec.completed(Operation::GetCart, due, sent, done, &Ok(()));
        // Due before the window: warm-up.
        let early = t0.checked_sub(Duration::from_millis(10)).unwrap_or(t0);
        if early < t0 {
            rec.sent(early, early);
            rec.completed(Operation::GetCart, early, early, early, &Ok(()));
        }
        rec.dropped(t0 + Duration::from_millis(1_500));
        let raw = rec.snapshot("s", String::new(), "x", String::new(), vec![]);
        let op = &raw.operations["get_cart"];
        assert_eq!(op.latency.0.len(), 1);
        assert!(op.latency.0.max() >= 900_000, "{}", op.latency.0.max());
        assert!(op.service.0.max() < 2_000, "{}", op.service.0.max());
        assert_eq!(raw.series[0].latency.0.len(), 1);
        assert_eq!(raw.series[0].sent, 0);
        assert_eq!(raw.series[1].sent, 1, "sent at 1.0 s: step 1");
        assert_eq!(raw.series[1].completed, 1);
        assert_eq!(raw.series[1].dropped, 1);
        assert_eq!(raw.dropped, 1);
    }

    #[test]
    fn long_windows_get_coarser_steps() {
        assert_eq!(step_for(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(step_for(Duration::from_secs(3_600)), Duration::from_secs(1));
        assert_eq!(
            step_for(Duration::from_secs(24 * 3_600)),
            Duration::from_secs(24)
        );
    }
}

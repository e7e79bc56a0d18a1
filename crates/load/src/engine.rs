//! The generator: runs a profile's scenarios against a [`Client`] and records them.
//!
//! **Open model** (arrival-rate executors). A task per scenario computes when each request is
//! due (the integral of the rate, linear within a stage), sleeps until then on a precise timer
//! (a timerfd), waits for an in-flight slot if all are taken, and sends. Latency counts from
//! the due time, so a server stall shows in full even though the requests behind it are sent
//! late. A request still unsent `max_lag` after it was
//! due is dropped and counted, and the report says the generator could not keep up.
//!
//! **Closed model** (VU executors). Each virtual user sends its next request when the last one
//! is answered; the number of users follows the stages (checked every 100 ms). Latency counts
//! from the send: a closed model has no schedule to be late against.
//!
//! In both, a request ends when the read that carried the end of its answer returned, and its
//! time "from send" starts when the write that carried it began (the socket's times,
//! [`crate::grpc::Wire`]; see `on_the_wire`). A request that got no answer ends when the
//! generator gave up on it.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Semaphore;

use crate::grpc::Wire;
use crate::ops::Client;
use crate::profile::{ChaosEvent, Load, Profile, Scenario, Stage};
use crate::record::{
    CHAOS_BIN, GeneratorStats, Hist, MemorySample, RawBreakingPoint, RawChaos, RawChaosEvent,
    RawRateStep, RawRecovery, RawRound, RawRun, Recorder, ServerSample, Timeline, step_for,
};
use crate::report;

/// Takes the server's dependencies down and brings them back, for a profile's chaos events:
/// the set-up that started them implements it (`setup::Environment`).
pub trait ChaosDriver: Send + Sync {
    /// Does `event`, blocking until it is done: a stopped dependency's process is gone, a
    /// started one answers.
    fn apply(&self, event: &ChaosEvent) -> Result<(), String>;
}

/// How the generator runs, beyond the profile.
#[derive(Clone)]
pub struct RunOptions {
    /// A request this late is not sent (counted as dropped).
    pub max_lag: Duration,
    /// Seed of the operation and data choices.
    pub seed: u64,
    /// Stop at the first failed latency or error threshold (checked every progress interval).
    pub abort_on_fail: bool,
    /// How often to print progress on stderr; `None`: never.
    pub progress: Option<Duration>,
    /// The server's process, to sample its resident memory every second.
    pub server_pid: Option<u32>,
    /// `HOST:PORT` of the server, for the report.
    pub target: String,
    pub connections: usize,
    /// `HOST:PORT` of the server's `/metrics`: scraped during an outage run for its cache and
    /// breaker counters.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Does the profile's chaos events; a profile with events needs one.
    pub chaos: Option<Arc<dyn ChaosDriver>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("max_lag", &self.max_lag)
            .field("seed", &self.seed)
            .field("abort_on_fail", &self.abort_on_fail)
            .field("progress", &self.progress)
            .field("server_pid", &self.server_pid)
            .field("target", &self.target)
            .field("connections", &self.connections)
            .field("metrics_addr", &self.metrics_addr)
            .field("chaos", &self.chaos.is_some())
            .finish()
    }
}

/// Ends a run early from outside (Ctrl-C).
#[derive(Clone, Default)]
pub struct StopHandle {
    stop: Arc<AtomicBool>,
    reason: Arc<std::sync::Mutex<Option<String>>>,
}

impl StopHandle {
    pub fn stop(&self, reason: impl Into<String>) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason.into());
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// When arrivals are due, as offsets from the start of a load's first stage.
#[derive(Clone, Debug)]
pub struct Arrivals {
    /// Segments: start offset, start rate, end rate, length, and the arrivals before it.
    segments: Vec<(Duration, f64, f64, Duration, f64)>,
}

impl Arrivals {
    /// Arrivals at `start_rate`, then along `stages` (linear from each level to the next).
    pub fn new(start_rate: f64, stages: &[Stage]) -> Arrivals {
        let mut segments = Vec::new();
        let mut rate = start_rate;
        for stage in stages {
            segments.push((rate, stage.target, stage.duration));
            rate = stage.target;
        }
        Arrivals::from_segments(&segments)
    }

    /// Arrivals along segments of `(start rate, end rate, length)`; a segment need not start
    /// where the previous one ended (a warm-up at its own level, then the scenario).
    pub fn from_segments(parts: &[(f64, f64, Duration)]) -> Arrivals {
        let mut segments = Vec::new();
        let (mut at, mut before) = (Duration::ZERO, 0.0);
        for &(r0, r1, length) in parts {
            segments.push((at, r0, r1, length, before));
            before += (r0 + r1) / 2.0 * length.as_secs_f64();
            at += length;
        }
        Arrivals { segments }
    }

    /// When the `n`-th arrival (from 0) is due; `None` after the last stage.
    pub fn due(&self, n: u64) -> Option<Duration> {
        let n = n as f64;
        for &(at, r0, r1, length, before) in &self.segments {
            let d = length.as_secs_f64();
            let count = (r0 + r1) / 2.0 * d;
            // The epsilon keeps rounding from adding an arrival on a segment's very end.
            if n >= before + count - 1e-6 {
                continue;
            }
            // Arrivals within the segment: N(t) = r0 t + (r1 - r0) t² / 2d; solve N(t) = m.
            let m = n - before;
            let a = (r1 - r0) / (2.0 * d);
            let t = if a.abs() < 1e-12 {
                m / r0
            } else {
                let discriminant = (r0 * r0 + 4.0 * a * m).max(0.0);
                (-r0 + discriminant.sqrt()) / (2.0 * a)
            };
            return Some(at + Duration::from_secs_f64(t.clamp(0.0, d)));
        }
        None
    }
}

/// The level a scenario's warm-up runs at: its first level, or a tenth of its peak (at least
/// one) when it starts from nothing.
fn warmup_level(load: &Load) -> f64 {
    if load.start > 0.0 {
        load.start
    } else {
        (load.peak() / 10.0).max(1.0)
    }
}

/// Runs `profile` and returns its raw results.
pub async fn run(
    profile: &Profile,
    client: &Client,
    options: &RunOptions,
    stop: &StopHandle,
) -> RawRun {
    let warmup = profile.warmup;
    let window = profile.duration();
    let t0 = Instant::now() + warmup;
    let started_unix_ms = u64::try_from(
        (SystemTime::now() + warmup)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or_default();
    let step = step_for(window);
    let cpu_before = process_cpu_seconds();

    let memory = Arc::new(std::sync::Mutex::new(Vec::<MemorySample>::new()));
    let sampler = options.server_pid.map(|pid| {
        let memory = Arc::clone(&memory);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            while !stop.is_stopped() {
                ticks.tick().await;
                let Some(rss) = resident_bytes(pid) else {
                    break;
                };
                let now = Instant::now();
                let t_ms = if now >= t0 {
                    i64::try_from((now - t0).as_millis()).unwrap_or(i64::MAX)
                } else {
                    -i64::try_from((t0 - now).as_millis()).unwrap_or(i64::MAX)
                };
                memory
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(MemorySample {
                        t_ms,
                        rss_bytes: rss,
                    });
            }
        })
    });

    let timeline = (!profile.chaos.is_empty()).then(|| Timeline::new(t0));
    let recorders: Vec<Recorder> = profile
        .scenarios
        .iter()
        .map(|s| {
            let recorder = Recorder::new(t0, s.start, s.start + s.load.duration(), step);
            match &timeline {
                Some(timeline) => recorder.with_timeline(timeline.clone()),
                None => recorder,
            }
        })
        .collect();
    let chaos = timeline.as_ref().map(|_| {
        let done = Arc::new(std::sync::Mutex::new(Vec::<RawChaosEvent>::new()));
        let server = Arc::new(std::sync::Mutex::new(Vec::<ServerSample>::new()));
        let events = tokio::spawn(chaos_events(
            profile.chaos.events.clone(),
            options.chaos.clone(),
            t0,
            Arc::clone(&done),
            stop.clone(),
        ));
        let scraper = options
            .metrics_addr
            .map(|addr| tokio::spawn(scrape_server(addr, t0, Arc::clone(&server), stop.clone())));
        (events, scraper, done, server)
    });
    let mut tasks = Vec::new();
    for (index, (scenario, recorder)) in profile.scenarios.iter().zip(&recorders).enumerate() {
        // The scenario's warm-up ends where its measured part starts.
        let begin = (t0 + scenario.start)
            .checked_sub(warmup)
            .unwrap_or_else(Instant::now);
        let seed = options.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let task = if scenario.load.executor.is_open() {
            tokio::spawn(open_model(
                scenario.clone(),
                warmup,
                begin,
                client.clone(),
                recorder.clone(),
                options.max_lag,
                seed,
                stop.clone(),
            ))
        } else {
            tokio::spawn(closed_model(
                scenario.clone(),
                warmup,
                begin,
                client.clone(),
                recorder.clone(),
                seed,
                stop.clone(),
            ))
        };
        tasks.push(task);
    }

    // Progress lines, and the threshold checks of `--abort-on-fail` (every second when no
    // progress is printed). They read the totals, never the series: copying those would stall
    // the requests that wait for the same lock.
    let checks = (options.progress.is_some() || options.abort_on_fail).then(|| {
        let every = options.progress.unwrap_or(Duration::from_secs(1));
        let print = options.progress.is_some();
        let profile = profile.clone();
        let recorders = recorders.clone();
        let stop = stop.clone();
        let abort = options.abort_on_fail;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at((t0 + every).into(), every);
            loop {
                ticks.tick().await;
                if stop.is_stopped() {
                    break;
                }
                let elapsed = Instant::now().saturating_duration_since(t0);
                let totals: Vec<_> = profile
                    .scenarios
                    .iter()
                    .zip(&recorders)
                    .map(|(s, r)| r.totals(&s.name))
                    .collect();
                if print {
                    for ((raw, recorder), scenario) in
                        totals.iter().zip(&recorders).zip(&profile.scenarios)
                    {
                        // Only the scenarios running now (or just finished): a profile of
                        // scenarios in sequence would print mostly zeros.
                        let end = scenario.start + scenario.load.duration() + every;
                        if elapsed >= scenario.start && elapsed <= end {
                            eprintln!(
                                "{}",
                                report::progress_line(
                                    raw,
                                    elapsed,
                                    recorder.sent_total(),
                                    recorder.in_flight()
                                )
                            );
                        }
                    }
                }
                if abort && let Some(failed) = report::failing_threshold(&profile, &totals, elapsed)
                {
                    stop.stop(format!(
                        "--abort-on-fail: threshold {failed} failed at {}s",
                        elapsed.as_secs()
                    ));
                    break;
                }
                if elapsed >= window {
                    break;
                }
            }
        })
    });

    for task in tasks {
        // A scenario task only ends in a panic on a bug; the others' results still count.
        if let Err(error) = task.await {
            eprintln!("commerce-load: a scenario task failed: {error}");
        }
    }
    let end = Instant::now();
    let stopped_early = stop.reason();
    stop.stop("finished");
    if let Some(checks) = checks {
        checks.abort();
    }
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    let chaos = match (chaos, timeline) {
        (Some((events, scraper, done, server)), Some(timeline)) => {
            // An event still due when the run ends is not done. One under way finishes on its
            // blocking thread, which holds the driver: the dependencies are not dropped (and
            // stopped) until it has.
            events.abort();
            let _ = events.await;
            if let Some(scraper) = scraper {
                scraper.abort();
            }
            let events = done.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let server = server.lock().unwrap_or_else(|p| p.into_inner()).clone();
            Some(RawChaos {
                max_error_rate: profile.chaos.max_error_rate,
                recovery_ms: u64::try_from(profile.chaos.recovery.as_millis()).unwrap_or(u64::MAX),
                events,
                bin_ms: u64::try_from(CHAOS_BIN.as_millis()).unwrap_or(100),
                bins: timeline.bins(),
                server,
            })
        }
        _ => None,
    };
    let cpu_seconds = process_cpu_seconds() - cpu_before;
    let window_ms = if stopped_early.is_some() {
        u64::try_from(end.saturating_duration_since(t0).as_millis()).unwrap_or_default()
    } else {
        u64::try_from(window.as_millis()).unwrap_or_default()
    };
    let mut send_lag = crate::record::latency_histogram();
    for recorder in &recorders {
        // Same bounds by construction.
        let _ = send_lag.add(recorder.send_lag());
    }
    let memory = memory.lock().unwrap_or_else(|p| p.into_inner()).clone();
    RawRun {
        profile: profile.name.clone(),
        description: profile.description.clone(),
        started_unix_ms,
        window_ms,
        thresholds: profile.thresholds.iter().map(|t| t.text.clone()).collect(),
        scenarios: profile
            .scenarios
            .iter()
            .zip(&recorders)
            .map(|(s, r)| snapshot(s, r))
            .collect(),
        memory,
        generators: vec![GeneratorStats {
            host: hostname(),
            pid: std::process::id(),
            target: options.target.clone(),
            connections: options.connections,
            cpu_seconds,
            wall_seconds: (end - (t0.min(end))).as_secs_f64() + warmup.as_secs_f64(),
            send_lag: Hist(send_lag),
        }],
        stopped_early,
        chaos,
    }
}

/// Does each chaos event at its time (from `t0`, the start of the measured window) on a
/// blocking thread, and records when it was done.
async fn chaos_events(
    events: Vec<ChaosEvent>,
    driver: Option<Arc<dyn ChaosDriver>>,
    t0: Instant,
    done: Arc<std::sync::Mutex<Vec<RawChaosEvent>>>,
    stop: StopHandle,
) {
    let ms = |at: Instant| u64::try_from(at.saturating_duration_since(t0).as_millis()).unwrap_or(0);
    for event in events {
        tokio::time::sleep_until((t0 + event.at).into()).await;
        if stop.is_stopped() {
            return;
        }
        let due_ms = u64::try_from(event.at.as_millis()).unwrap_or(u64::MAX);
        let outcome = match &driver {
            Some(driver) => {
                let driver = Arc::clone(driver);
                // Not cancelled with this task: a start or stop runs to its end.
                tokio::task::spawn_blocking(move || driver.apply(&event))
                    .await
                    .unwrap_or_else(|panic| Err(format!("the driver panicked: {panic}")))
            }
            None => Err(
                "this run cannot stop the server's dependencies: they are not \
                         its own (chaos needs the services commerce-load starts)"
                    .to_owned(),
            ),
        };
        let now = Instant::now();
        if let Err(error) = &outcome {
            eprintln!("commerce-load: chaos {} failed: {error}", event.action());
        } else {
            eprintln!(
                "commerce-load: chaos {} done at {:.1}s",
                event.action(),
                now.saturating_duration_since(t0).as_secs_f64()
            );
        }
        done.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RawChaosEvent {
                action: event.action(),
                due_ms,
                done_ms: ms(now),
                error: outcome.err(),
            });
    }
}

/// Scrapes the server's `/metrics` every [`CHAOS_BIN`] for the counters that show its
/// dependencies in use. A failed scrape (the server busy, its metrics off) leaves a gap.
async fn scrape_server(
    addr: std::net::SocketAddr,
    t0: Instant,
    samples: Arc<std::sync::Mutex<Vec<ServerSample>>>,
    stop: StopHandle,
) {
    let mut ticks = tokio::time::interval(CHAOS_BIN);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_stopped() {
        ticks.tick().await;
        let Ok(Ok(text)) = tokio::time::timeout(CHAOS_BIN * 5, scrape(addr)).await else {
            continue;
        };
        let now = Instant::now();
        let t_ms = if now >= t0 {
            i64::try_from((now - t0).as_millis()).unwrap_or(i64::MAX)
        } else {
            -i64::try_from((t0 - now).as_millis()).unwrap_or(i64::MAX)
        };
        samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ServerSample {
                t_ms,
                cache_hits: metric_value(&text, CART_CACHE_HITS),
                breaker_open: metric_value(&text, "commerce_db_breaker_open"),
            });
    }
}

/// The series of the cart cache's Redis hits, as the server writes it.
const CART_CACHE_HITS: &str = r#"commerce_cache_hits_total{cache="cart",tier="redis"}"#;

/// `GET /metrics` over HTTP/1.0. Written out rather than taken from hyper: it is one request
/// of one shape on the loopback, and hyper's client features would rebuild the hyper that
/// tonic and axum share for it.
async fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "unexpected answer: {}",
            head.lines().next().unwrap_or_default()
        )));
    }
    Ok(body.to_owned())
}

/// The value of the sample `series` (a name, with its labels as the exposition writes them) in
/// Prometheus' text format.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == series).then(|| value.split_whitespace().next()?.parse().ok())?
        })
}

fn snapshot(scenario: &Scenario, recorder: &Recorder) -> crate::record::RawScenario {
    let mut raw = recorder.snapshot(
        &scenario.name,
        scenario.load.describe(),
        scenario.load.executor.name(),
        scenario.mix.describe(),
        scenario.thresholds.iter().map(|t| t.text.clone()).collect(),
    );
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    raw.recovery = scenario.recovery.as_ref().map(|r| RawRecovery {
        threshold: r.threshold.text.clone(),
        window_ms: ms(r.window),
        spike_start_ms: ms(r.spike_start),
        spike_end_ms: ms(r.spike_end),
        peak_rate: r.peak,
    });
    raw.breaking_point = scenario.breaking_point.as_ref().map(|b| RawBreakingPoint {
        threshold: b.threshold.text.clone(),
        max_error_rate: b.max_error_rate,
        steps: b
            .steps
            .iter()
            .map(|&(start, end, rate)| RawRateStep {
                start_ms: ms(start),
                end_ms: ms(end),
                rate,
            })
            .collect(),
    });
    raw.round = scenario.round.as_ref().map(|r| RawRound {
        of: r.of.clone(),
        index: r.index,
    });
    raw
}

/// Arrivals the open model's scheduler handles back to back, behind schedule, before it lets
/// the other tasks of its thread run.
const MAX_ARRIVALS_UNYIELDED: u32 = 64;

#[expect(clippy::too_many_arguments, reason = "one private call site")]
async fn open_model(
    scenario: Scenario,
    warmup: Duration,
    begin: Instant,
    client: Client,
    recorder: Recorder,
    max_lag: Duration,
    seed: u64,
    stop: StopHandle,
) {
    let mut segments = Vec::new();
    if !warmup.is_zero() {
        let level = warmup_level(&scenario.load);
        segments.push((level, level, warmup));
    }
    let mut rate = scenario.load.start;
    for stage in &scenario.load.stages {
        segments.push((rate, stage.target, stage.duration));
        rate = stage.target;
    }
    let arrivals = Arrivals::from_segments(&segments);

    let timer = match Timer::new() {
        Ok(timer) => timer,
        Err(error) => {
            stop.stop(format!("cannot create the scheduler's timer: {error}"));
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(scenario.max_in_flight));
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut n = 0u64;
    // Arrivals handled since this task last gave the runtime back its thread.
    let mut unyielded = 0u32;
    'arrivals: while let Some(offset) = arrivals.due(n) {
        n += 1;
        let due = begin + offset;
        loop {
            if stop.is_stopped() {
                break 'arrivals;
            }
            let now = Instant::now();
            if due <= now {
                // Behind schedule, arrivals are handled without a sleep between them; the
                // requests' tasks and the signal handler (Ctrl-C) share this thread, so let
                // them run now and then rather than only when the schedule is caught up.
                unyielded += 1;
                if unyielded >= MAX_ARRIVALS_UNYIELDED {
                    unyielded = 0;
                    tokio::task::yield_now().await;
                }
                break;
            }
            unyielded = 0;
            // In pieces of at most 50 ms, so that a stop is seen soon.
            if let Err(error) = timer.sleep(due.min(now + Duration::from_millis(50))).await {
                stop.stop(format!("the scheduler's timer failed: {error}"));
                break 'arrivals;
            }
        }
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // All slots taken: wait for one, as long as the request is not too late.
                let deadline = tokio::time::Instant::from_std(due + max_lag);
                match tokio::time::timeout_at(deadline, Arc::clone(&slots).acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        recorder.dropped(due);
                        continue;
                    }
                }
            }
        };
        let sent = Instant::now();
        if sent > due + max_lag {
            recorder.dropped(due);
            continue;
        }
        let op = scenario.mix.pick(rng.random_range(0..scenario.mix.total()));
        let request_seed: u64 = rng.random();
        recorder.sent(due, sent);
        let client = client.clone();
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(request_seed);
            match client.perform(op, &mut rng).await {
                Some((outcome, wire)) => {
                    let (sent, done) = on_the_wire(sent, &wire);
                    recorder.completed(op, due, sent, done, &outcome);
                }
                None => recorder.not_sent(due),
            }
            drop(permit);
        });
    }
    // Wait for the requests in flight (each is bounded by the client's timeout).
    let _ = slots
        .acquire_many(u32::try_from(scenario.max_in_flight).unwrap_or(u32::MAX))
        .await;
}

/// A timer with a microsecond's precision that wakes the runtime's own thread: a timerfd
/// registered with tokio's reactor.
///
/// Why not tokio's timer: its wheel has a 1 ms resolution and rounds up, which would add half
/// a millisecond on average to every latency measured from a due time, more than the whole
/// service time of a cached read here. Why not a thread of its own sleeping until each due
/// time (the first design): it then hands each due time to the runtime's thread through a
/// channel, one more thread to wake per request; measured with `load/cross-check.sh 100`, the
/// median lag from the due time to the send was about 0.1 ms with either, so the timer is the
/// simpler of the two. A timerfd's expiry has no timer slack and wakes the thread that waits in
/// `epoll_wait`. What the 0.1 ms is made of is not pinned down: waking 250 µs early and
/// yielding until the due time did not remove it.
struct Timer {
    fd: AsyncFd<TimerHandle>,
}

struct TimerHandle(TimerFd);

impl AsRawFd for TimerHandle {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Timer {
    fn new() -> std::io::Result<Timer> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: `TimerHandle` owns the timerfd (an `OwnedFd` inside `TimerFd`): it stays
        // open, and `as_raw_fd` returns that same descriptor, for as long as the `AsyncFd`
        // holds the handle; nothing else closes or replaces it.
        let fd =
            unsafe { AsyncFd::register_with_interest(TimerHandle(timer), Interest::READABLE) }?;
        Ok(Timer { fd })
    }

    /// Returns at `deadline` or within microseconds after it.
    async fn sleep(&self, deadline: Instant) -> std::io::Result<()> {
        let now = Instant::now();
        if deadline <= now {
            return Ok(());
        }
        let timer = &self.fd.get_ref().0;
        timer.set(
            Expiration::OneShot(TimeSpec::from_duration(deadline - now)),
            TimerSetTimeFlags::empty(),
        )?;
        loop {
            let mut ready = self.fd.readable().await?;
            // Reading the count of expirations disarms the readiness.
            match nix::unistd::read(timer.as_fd(), &mut [0u8; 8]) {
                Ok(_) => {
                    // The count is read: nothing is pending until the timer is set again.
                    ready.clear_ready();
                    return Ok(());
                }
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(Errno::EINTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}

async fn closed_model(
    scenario: Scenario,
    warmup: Duration,
    begin: Instant,
    client: Client,
    recorder: Recorder,
    seed: u64,
    stop: StopHandle,
) {
    if let Some(wait) = begin.checked_duration_since(Instant::now()) {
        tokio::time::sleep(wait).await;
    }
    let measured_from = begin + warmup;
    let end = measured_from + scenario.load.duration();
    let target = Arc::new(AtomicU64::new(0));
    let mut users: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let now = Instant::now();
        if now >= end || stop.is_stopped() {
            break;
        }
        let level = if now < measured_from {
            warmup_level(&scenario.load)
        } else {
            scenario.load.level_at(now - measured_from)
        };
        let wanted = level.round().max(0.0) as u64;
        target.store(wanted, Ordering::SeqCst);
        for index in 0..wanted as usize {
            let running = users.get(index).is_some_and(|task| !task.is_finished());
            if running {
                continue;
            }
            let task = tokio::spawn(virtual_user(
                index as u64,
                Arc::clone(&target),
                end,
                scenario.clone(),
                client.clone(),
                recorder.clone(),
                seed ^ index as u64,
                stop.clone(),
            ));
            if index < users.len() {
                users[index] = task;
            } else {
                users.push(task);
            }
        }
    }
    target.store(0, Ordering::SeqCst);
    for task in users {
        let _ = task.await;
    }
}

#[expect(clippy::too_many_arguments, reason = "one private call site")]
async fn virtual_user(
    index: u64,
    target: Arc<AtomicU64>,
    end: Instant,
    scenario: Scenario,
    client: Client,
    recorder: Recorder,
    seed: u64,
    stop: StopHandle,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while index < target.load(Ordering::SeqCst) && !stop.is_stopped() && Instant::now() < end {
        let op = scenario.mix.pick(rng.random_range(0..scenario.mix.total()));
        let sent = Instant::now();
        recorder.sent_by_user(sent);
        match client.perform(op, &mut rng).await {
            Some((outcome, wire)) => {
                // No schedule to be late against: latency counts from the moment the user
                // sent (waits inside the client included), "from send" from the write.
                let (written, done) = on_the_wire(sent, &wire);
                recorder.completed(op, sent, written, done, &outcome);
            }
            None => {
                recorder.not_sent(sent);
                // Nothing to do for now: let the others finish theirs.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// When an operation that the generator began sending at `sent` was written to and answered
/// on the socket; where the socket saw no answer (a time-out, a broken connection), its end
/// is now.
///
/// Why the socket's times rather than the generator's own: between its decision to send and
/// the `writev`, and between the answer's `read` and the end of decoding, the generator's own
/// code runs (the request built, h2's framing and HPACK, two tasks woken), with cold caches
/// after an idle gap. At 100 GetCart/s over one connection the median from the send fell by
/// 47–86 µs, to 0.18–0.23 ms, when the socket's times replaced the generator's (5 rounds,
/// both builds interleaved; README, "Cross-checked against h2load"): the generator's cost,
/// not the server's. Both ends are bounds on the longer side ([`Wire`]).
fn on_the_wire(sent: Instant, wire: &Wire) -> (Instant, Instant) {
    let start = wire.first_write.map_or(sent, |write| write.max(sent));
    let end = wire.last_read.unwrap_or_else(Instant::now);
    debug_assert!(start <= end, "written after its answer was read: {wire:?}");
    (start, end.max(start))
}

/// User plus system CPU time of this process, from `/proc/self/stat` (in clock ticks of
/// USER_HZ, which Linux fixes at 100 for this interface).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name may hold spaces; the fields after it are space separated.
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are the 12th and 13th after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The resident set size of a process, from `/proc/PID/status`; `None` once it has exited.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sample_is_read_by_its_name_and_labels() {
        let text = "# HELP commerce_cache_hits_total Cache lookups answered.\n\
                    # TYPE commerce_cache_hits_total counter\n\
                    commerce_cache_hits_total{cache=\"cart\",tier=\"redis\"} 1234\n\
                    commerce_cache_hits_total{cache=\"decision\",tier=\"l1\"} 7\n\
                    commerce_db_breaker_open 0\n";
        assert_eq!(metric_value(text, CART_CACHE_HITS), Some(1234.0));
        assert_eq!(metric_value(text, "commerce_db_breaker_open"), Some(0.0));
        assert_eq!(metric_value(text, "commerce_cache_hits_total"), None);
    }

    use super::*;

    fn count(arrivals: &Arrivals) -> u64 {
        (0..).take_while(|n| arrivals.due(*n).is_some()).count() as u64
    }

    #[test]
    fn a_constant_rate_is_evenly_spaced() {
        let a = Arrivals::new(
            100.0,
            &[Stage {
                duration: Duration::from_secs(1),
                target: 100.0,
            }],
        );
        assert_eq!(count(&a), 100);
        assert_eq!(a.due(0), Some(Duration::ZERO));
        let d = a.due(50).unwrap().as_secs_f64();
        assert!((d - 0.5).abs() < 1e-9, "{d}");
    }

    #[test]
    fn a_ramp_has_the_arrivals_of_its_area() {
        // 0 → 100/s over 10 s: 500 arrivals, the first half in the last 3 s or so.
        let a = Arrivals::new(
            0.0,
            &[Stage {
                duration: Duration::from_secs(10),
                target: 100.0,
            }],
        );
        assert_eq!(count(&a), 500);
        let half = a.due(250).unwrap().as_secs_f64();
        assert!((half - 10.0 / 2f64.sqrt()).abs() < 1e-6, "{half}");
        // Then down to 0 over 10 s: another 500.
        let a = Arrivals::new(
            0.0,
            &[
                Stage {
                    duration: Duration::from_secs(10),
                    target: 100.0,
                },
                Stage {
                    duration: Duration::from_secs(10),
                    target: 0.0,
                },
            ],
        );
        assert_eq!(count(&a), 1_000);
        let mut last = Duration::ZERO;
        for n in 0..1_000 {
            let due = a.due(n).unwrap();
            assert!(due >= last, "arrival {n} before {last:?}");
            last = due;
        }
        assert!(last < Duration::from_secs(20));
    }

    #[test]
    fn the_resident_size_of_this_process_is_read() {
        let rss = resident_bytes(std::process::id()).unwrap();
        assert!(rss > 1_000_000, "{rss}");
        assert!(process_cpu_seconds() >= 0.0);
    }
}

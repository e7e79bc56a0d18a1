//! The paired runner: two bench executables serving the same suite — one built from the base
//! revision, one from the change — driven slice by slice over `bench_format::protocol`, so that
//! every benchmark is measured in alternation on the same machine, services and moment. What it
//! returns is judged by [`crate::paired`].
//!
//! Per benchmark both sides are set up by their own code (the workers stop at each benchmark
//! and wait); then:
//!
//! 1. **Warm-up**: slices alternate between the sides with doubling iteration counts until
//!    both have run for the warm-up time and a slice lasts about [`Settings::slice`]; the
//!    iteration count is then fixed, the same for both sides.
//! 2. **Blocks** `A B B A`, each reduced to `ln((b₁ + b₂) / (a₁ + a₂))`, until the evidence
//!    decides the benchmark ([`crate::paired::assess`]) after at least
//!    [`Settings::min_blocks`], or a cap is reached ([`Settings::max_blocks`],
//!    [`Settings::max_time`]).
//! 3. **Confirmation**: a sequence that decided on a latency regression is followed by a second,
//!    independent one; the regression stands only if both show it.
//! 4. **Round trips**: each side counts [`Settings::round_trip_iterations`] iterations with the
//!    servers' counters.
//!
//! Allocations per iteration are the totals over every measured slice of each side. A
//! benchmark only one side has is measured alone (the change's: new) or not at all (the
//! base's: the change dropped it). One both sides have at different places in their order is
//! measured after the others, in pairs, by fresh workers that go straight to it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bench_format::protocol::{Command as Order, Event, PROTOCOL_VERSION, SERVE_VAR, Slice};
use bench_format::{BenchmarkId, RoundTripsFile};

use crate::paired::{Decision, PairedBenchmark, Pairing, Sequence, Stop, assess};
use crate::results::{Measurement, RoundTrips};
use crate::stats::median;

/// How the runner measures. [`Settings::default`] holds the values chosen from measurements
/// on the project's 2-vCPU machine (see the crate docs, "Paired mode: the numbers").
#[derive(Debug, Clone)]
pub struct Settings {
    /// Measured time a slice aims at.
    pub slice: Duration,
    /// Warm-up time of each side, at most (a group's own warm-up is used when shorter).
    pub warm_up: Duration,
    /// Blocks before the first decision.
    pub min_blocks: usize,
    /// Blocks of one sequence, at most.
    pub max_blocks: usize,
    /// Wall time of one sequence, at most.
    pub max_time: Duration,
    /// The significance level of the decisions.
    pub alpha: f64,
    /// Whether a regression is confirmed by a second sequence.
    pub confirm: bool,
    /// Iterations of the round-trip count.
    pub round_trip_iterations: u64,
    /// Processes per side: blocks rotate over them, so that one process's own bias (its hash
    /// seeds, where its memory landed) does not pass for a change.
    pub pairs: usize,
    /// How long a worker may take to answer one command (its set-up included).
    pub answer_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            slice: Duration::from_millis(50),
            warm_up: Duration::from_millis(400),
            min_blocks: 8,
            max_blocks: 60,
            max_time: Duration::from_secs(15),
            alpha: crate::compare::ALPHA,
            confirm: true,
            round_trip_iterations: 30,
            pairs: 2,
            answer_timeout: Duration::from_secs(600),
        }
    }
}

/// Why a paired run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A worker could not be started.
    #[error("cannot start the {side} executable {}", program.display())]
    Spawn {
        /// `base` or `change`.
        side: &'static str,
        /// The executable.
        program: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A worker stopped or broke the protocol.
    #[error("the {side} executable {what}{}", log_tail(.log))]
    Worker {
        /// `base` or `change`.
        side: &'static str,
        /// What happened.
        what: String,
        /// Its stderr log.
        log: Option<PathBuf>,
    },
}

fn log_tail(log: &Option<PathBuf>) -> String {
    let Some(path) = log else {
        return String::new();
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(25)..].join("\n");
    format!("; the last lines of {}:\n{tail}", path.display())
}

/// One side of a paired run, as the runner talks to it.
pub trait Worker {
    /// `base` or `change`.
    fn side(&self) -> &'static str;
    /// Sends a command.
    fn send(&mut self, order: &Order) -> Result<(), Error>;
    /// The next event.
    fn receive(&mut self) -> Result<Event, Error>;
}

/// A bench executable serving over its stdin and stdout, its stderr going to a log file.
pub struct Process {
    side: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<std::io::Result<String>>,
    log: PathBuf,
    timeout: Duration,
    /// Whether it has sent an event yet (its hello, sent before any set-up).
    spoke: bool,
}

/// How long a worker may take to say hello: it does so before any set-up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);

impl Process {
    /// Starts `command` (a bench executable, with its environment and working directory set)
    /// as the `side` worker; its stderr goes to `log`.
    pub fn spawn(
        side: &'static str,
        mut command: Command,
        log: &Path,
        timeout: Duration,
    ) -> Result<Process, Error> {
        let program = PathBuf::from(command.get_program());
        let spawn_error = |source| Error::Spawn {
            side,
            program: program.clone(),
            source,
        };
        let stderr = std::fs::File::create(log).map_err(spawn_error)?;
        let mut child = command
            .env(SERVE_VAR, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(spawn_error)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, events) = mpsc::channel();
        // A thread per worker reads its stdout, so that a wait can time out.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let stop = line.is_err();
                if sender.send(line).is_err() || stop {
                    return;
                }
            }
        });
        Ok(Process {
            side,
            stdin: child.stdin.take(),
            child,
            events,
            log: log.to_owned(),
            timeout,
            spoke: false,
        })
    }

    fn died(&mut self, what: &str) -> Error {
        // Give it a moment to finish writing its log and exit.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = self.child.try_wait() {
                status = Some(exit);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let what = match status {
            Some(exit) => format!("{what} ({exit})"),
            None => what.to_owned(),
        };
        Error::Worker {
            side: self.side,
            what,
            log: Some(self.log.clone()),
        }
    }
}

impl Worker for Process {
    fn side(&self) -> &'static str {
        self.side
    }

    fn send(&mut self, order: &Order) -> Result<(), Error> {
        let sent = match &mut self.stdin {
            Some(stdin) => writeln!(stdin, "{}", order.to_line()).and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("stdin closed")),
        };
        sent.map_err(|_| self.died("stopped before it could be sent a command"))
    }

    fn receive(&mut self) -> Result<Event, Error> {
        loop {
            let timeout = if self.spoke {
                self.timeout
            } else {
                HELLO_TIMEOUT
            };
            let line = match self.events.recv_timeout(timeout) {
                Ok(Ok(line)) => line,
                Ok(Err(err)) => return Err(self.died(&format!("output unreadable: {err}"))),
                Err(mpsc::RecvTimeoutError::Timeout) if !self.spoke => {
                    let _ = self.child.kill();
                    return Err(self.died(&format!(
                        "did not say hello within {} s: its bench harness has no serve mode \
                         (a revision from before paired runs?); judge it with --stored, or pick \
                         a newer --base",
                        timeout.as_secs()
                    )));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    return Err(self.died(&format!(
                        "did not answer within {} s and was stopped",
                        timeout.as_secs()
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.died("exited"));
                }
            };
            match Event::parse(&line) {
                // Before its hello, a worker prints nothing else on stdout: a line there is
                // criterion measuring, i.e. a harness without serve mode.
                None if !self.spoke => {
                    let _ = self.child.kill();
                    return Err(self.died(&format!(
                        "printed {line:?} instead of the serve protocol's hello: its bench \
                         harness has no serve mode (a revision from before paired runs?); judge \
                         it with --stored, or pick a newer --base"
                    )));
                }
                None => continue, // something a benchmark printed
                Some(Ok(event)) => {
                    self.spoke = true;
                    return Ok(event);
                }
                Some(Err(err)) => return Err(self.died(&err.to_string())),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Closing stdin ends a worker that waits for a command; one that does not is killed.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// What the runner reports while it works, for progress lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Both workers finished their set-up.
    Ready {
        /// How long the set-up took.
        setup: Duration,
    },
    /// A benchmark is being measured.
    Started {
        /// The benchmark.
        id: BenchmarkId,
    },
    /// Latency regressions are measured again with fresh processes.
    Confirming {
        /// How many.
        count: usize,
    },
    /// A benchmark was measured.
    Finished {
        /// The benchmark.
        id: BenchmarkId,
        /// What was found, in a few words.
        summary: String,
        /// How long it took.
        elapsed: Duration,
    },
}

/// What [`run_suite`] measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuiteResults {
    /// By benchmark.
    pub benchmarks: BTreeMap<BenchmarkId, PairedBenchmark>,
    /// Things the reader should know.
    pub warnings: Vec<String>,
    /// Until both workers were ready to measure.
    pub setup: Duration,
    /// Measuring, warm-ups and counts included.
    pub measuring: Duration,
}

/// The benchmark each side is at.
#[derive(Debug, Clone, PartialEq)]
enum At {
    Ready {
        id: BenchmarkId,
        warm_up: Duration,
        round_trips: bool,
    },
    Finished,
}

fn next(worker: &mut dyn Worker) -> Result<At, Error> {
    match worker.receive()? {
        Event::Ready {
            id,
            warm_up_ns,
            round_trips,
        } => Ok(At::Ready {
            id,
            warm_up: Duration::from_nanos(warm_up_ns),
            round_trips,
        }),
        Event::Finished => Ok(At::Finished),
        other => Err(Error::Worker {
            side: worker.side(),
            what: format!("sent {other:?} where a benchmark or the end was expected"),
            log: None,
        }),
    }
}

/// Where every worker of a side is: they must agree, being the same executable.
fn next_all(side: &mut Side<'_>) -> Result<At, Error> {
    let mut at = None;
    for worker in side.iter_mut() {
        let this = next(worker.as_mut())?;
        match &at {
            None => at = Some(this),
            Some(first) if *first == this => {}
            Some(first) => {
                return Err(Error::Worker {
                    side: worker.side(),
                    what: format!(
                        "workers of the same executable disagree on what comes next ({first:?} \
                         and {this:?}): does the suite register its benchmarks conditionally?"
                    ),
                    log: None,
                });
            }
        }
    }
    Ok(at.expect("a side has at least one worker"))
}

fn send_all(side: &mut Side<'_>, order: &Order) -> Result<(), Error> {
    for worker in side.iter_mut() {
        worker.send(order)?;
    }
    Ok(())
}

fn hello(worker: &mut dyn Worker) -> Result<(), Error> {
    match worker.receive()? {
        Event::Hello { protocol } if protocol == PROTOCOL_VERSION => Ok(()),
        Event::Hello { protocol } => Err(Error::Worker {
            side: worker.side(),
            what: format!(
                "speaks serve protocol {protocol}, this gate speaks {PROTOCOL_VERSION}: \
                 rebuild both revisions with the same harness version"
            ),
            log: None,
        }),
        other => Err(Error::Worker {
            side: worker.side(),
            what: format!("began with {other:?} instead of a hello"),
            log: None,
        }),
    }
}

fn slice(worker: &mut dyn Worker, iterations: u64) -> Result<Slice, Error> {
    worker.send(&Order::Run { iterations })?;
    match worker.receive()? {
        Event::Slice(slice) => Ok(slice),
        other => Err(Error::Worker {
            side: worker.side(),
            what: format!("answered a slice with {other:?}"),
            log: None,
        }),
    }
}

fn count_round_trips(
    worker: &mut dyn Worker,
    iterations: u64,
) -> Result<Option<RoundTripsFile>, Error> {
    worker.send(&Order::CountRoundTrips { iterations })?;
    match worker.receive()? {
        Event::RoundTrips { file } => Ok(file),
        other => Err(Error::Worker {
            side: worker.side(),
            what: format!("answered a round-trip count with {other:?}"),
            log: None,
        }),
    }
}

/// Lists each side's benchmarks in order, when the two sides disagree on what comes next.
pub type Lister<'a> = dyn FnMut() -> Result<(Vec<BenchmarkId>, Vec<BenchmarkId>), Error> + 'a;

/// The workers of one side: [`Settings::pairs`] processes of the same executable, which go
/// through the benchmarks in step.
pub type Side<'a> = [Box<dyn Worker + 'a>];

/// Both sides' workers: base, then candidate.
pub type Workers<'w> = (Vec<Box<dyn Worker + 'w>>, Vec<Box<dyn Worker + 'w>>);

/// Starts a fresh set of workers: [`Settings::pairs`] processes of each side, before their
/// hello.
pub type Spawn<'w> = dyn FnMut() -> Result<Workers<'w>, Error> + 'w;

/// Measures one suite. `spawn` starts the workers: once for the run, and once more, at the end,
/// if a benchmark showed a latency regression — the confirmation measures it again with fresh
/// processes, so that the bias of one set of processes (their hash seeds, where their memory
/// landed, which database backends serve them) cannot confirm itself. `latency_percent` gives
/// each benchmark's threshold (the decisions are against it); `lists` is asked for both sides'
/// benchmark lists only if their order differs.
pub fn run_suite<'w>(
    spawn: &mut Spawn<'w>,
    settings: &Settings,
    latency_percent: &dyn Fn(&BenchmarkId) -> f64,
    lists: &mut Lister<'_>,
    observe: &mut dyn FnMut(Observation),
) -> Result<SuiteResults, Error> {
    let started = Instant::now();
    let (mut base_workers, mut candidate_workers) = spawn()?;
    let (base, candidate) = (&mut base_workers[..], &mut candidate_workers[..]);
    assert!(
        !base.is_empty() && base.len() == candidate.len(),
        "a paired run needs as many workers on each side, and at least one"
    );
    for worker in base.iter_mut().chain(candidate.iter_mut()) {
        hello(worker.as_mut())?;
    }
    let mut at_base = next_all(base)?;
    let mut at_candidate = next_all(candidate)?;
    let mut results = SuiteResults {
        setup: started.elapsed(),
        ..SuiteResults::default()
    };
    observe(Observation::Ready {
        setup: results.setup,
    });
    let measuring = Instant::now();
    let mut known: Option<(BTreeSet<BenchmarkId>, BTreeSet<BenchmarkId>)> = None;
    // Benchmarks both sides have, met in another order: measured afterwards, each with fresh
    // workers that go straight to it.
    let mut deferred: BTreeSet<BenchmarkId> = BTreeSet::new();
    loop {
        match (&at_base, &at_candidate) {
            (At::Finished, At::Finished) => break,
            (
                At::Ready {
                    id,
                    warm_up,
                    round_trips,
                },
                At::Ready {
                    id: other,
                    round_trips: other_round_trips,
                    ..
                },
            ) if id == other => {
                let (id, warm_up) = (id.clone(), *warm_up);
                let count = *round_trips && *other_round_trips;
                observe(Observation::Started { id: id.clone() });
                let began = Instant::now();
                let threshold = latency_percent(&id);
                let measured = measure_pair(base, candidate, settings, warm_up, threshold, count)?;
                observe(Observation::Finished {
                    id: id.clone(),
                    summary: summarise(&measured, threshold, settings.alpha),
                    elapsed: began.elapsed(),
                });
                results.benchmarks.insert(id, measured);
                send_all(base, &Order::Next)?;
                send_all(candidate, &Order::Next)?;
                at_base = next_all(base)?;
                at_candidate = next_all(candidate)?;
            }
            (At::Ready { id, .. }, At::Finished) => {
                results
                    .benchmarks
                    .insert(id.clone(), PairedBenchmark::BaseOnly);
                send_all(base, &Order::Next)?;
                at_base = next_all(base)?;
            }
            (
                At::Finished,
                At::Ready {
                    id,
                    warm_up,
                    round_trips,
                },
            ) if deferred.contains(id) => {
                send_all(candidate, &Order::Next)?;
                at_candidate = next_all(candidate)?;
            }
            (
                At::Finished,
                At::Ready {
                    id,
                    warm_up,
                    round_trips,
                },
            ) => {
                let new = measure_new(candidate, settings, id, *warm_up, *round_trips, observe)?;
                results.benchmarks.insert(id.clone(), new);
                send_all(candidate, &Order::Next)?;
                at_candidate = next_all(candidate)?;
            }
            (
                At::Ready { id: base_id, .. },
                At::Ready {
                    id: candidate_id,
                    warm_up,
                    round_trips,
                },
            ) => {
                if known.is_none() {
                    let (of_base, of_candidate) = lists()?;
                    known = Some((
                        of_base.into_iter().collect(),
                        of_candidate.into_iter().collect(),
                    ));
                }
                let (of_base, of_candidate) = known.as_ref().expect("listed above");
                if deferred.contains(candidate_id) {
                    send_all(candidate, &Order::Next)?;
                    at_candidate = next_all(candidate)?;
                } else if !of_candidate.contains(base_id) {
                    results
                        .benchmarks
                        .insert(base_id.clone(), PairedBenchmark::BaseOnly);
                    send_all(base, &Order::Next)?;
                    at_base = next_all(base)?;
                } else if !of_base.contains(candidate_id) {
                    let new = measure_new(
                        candidate,
                        settings,
                        candidate_id,
                        *warm_up,
                        *round_trips,
                        observe,
                    )?;
                    results.benchmarks.insert(candidate_id.clone(), new);
                    send_all(candidate, &Order::Next)?;
                    at_candidate = next_all(candidate)?;
                } else {
                    // Both sides have both benchmarks, in another order: the base's worker
                    // cannot go back to it, so it is measured after the others.
                    results.warnings.push(format!(
                        "{base_id} comes at another place in the change's order of benchmarks: \
                         measured after the others, with fresh processes"
                    ));
                    deferred.insert(base_id.clone());
                    send_all(base, &Order::Next)?;
                    at_base = next_all(base)?;
                }
            }
        }
    }
    drop((base_workers, candidate_workers));
    for id in &deferred {
        straight_to(
            spawn,
            &BTreeSet::from([id.clone()]),
            &mut |base, candidate, at| {
                observe(Observation::Started { id: at.id.clone() });
                let began = Instant::now();
                let threshold = latency_percent(&at.id);
                let measured = measure_pair(
                    base,
                    candidate,
                    settings,
                    at.warm_up,
                    threshold,
                    at.round_trips,
                )?;
                observe(Observation::Finished {
                    id: at.id.clone(),
                    summary: summarise(&measured, threshold, settings.alpha),
                    elapsed: began.elapsed(),
                });
                results.benchmarks.insert(at.id.clone(), measured);
                Ok(())
            },
        )?;
    }
    if settings.confirm {
        confirm(
            spawn,
            settings,
            latency_percent,
            observe,
            &mut results,
            &deferred,
        )?;
    }
    results.measuring = measuring.elapsed();
    Ok(results)
}

/// Measures every benchmark whose first sequence decided on a latency regression again, with a
/// fresh set of workers that go straight to it (skipping the others), and records that second
/// sequence as the benchmark's confirmation. The benchmarks that were paired in step are
/// confirmed in one pass (both sides meet them in the same order); each of `deferred` (met in
/// another order) in a pass of its own.
fn confirm<'w>(
    spawn: &mut Spawn<'w>,
    settings: &Settings,
    latency_percent: &dyn Fn(&BenchmarkId) -> f64,
    observe: &mut dyn FnMut(Observation),
    results: &mut SuiteResults,
    deferred: &BTreeSet<BenchmarkId>,
) -> Result<(), Error> {
    let flagged: BTreeSet<BenchmarkId> = results
        .benchmarks
        .iter()
        .filter(|(id, measured)| match measured {
            PairedBenchmark::Both { pairing, .. } => assess(
                &pairing.first.block_log_ratios,
                latency_percent(id),
                settings.alpha,
            )
            .is_some_and(|a| a.decision == Decision::Regressed),
            _ => false,
        })
        .map(|(id, _)| id.clone())
        .collect();
    if flagged.is_empty() {
        return Ok(());
    }
    observe(Observation::Confirming {
        count: flagged.len(),
    });
    let (in_step, reordered): (BTreeSet<_>, BTreeSet<_>) =
        flagged.into_iter().partition(|id| !deferred.contains(id));
    let passes = std::iter::once(in_step)
        .filter(|ids| !ids.is_empty())
        .chain(reordered.into_iter().map(|id| BTreeSet::from([id])));
    for targets in passes {
        straight_to(spawn, &targets, &mut |base, candidate, at| {
            let id = &at.id;
            observe(Observation::Started { id: id.clone() });
            let began = Instant::now();
            let threshold = latency_percent(id);
            let iterations = warm_up_pair(base, candidate, settings, at.warm_up)?;
            let mut tallies = (Tally::default(), Tally::default());
            let second = sequence(
                base,
                candidate,
                settings,
                iterations,
                threshold,
                &mut tallies,
            )?;
            if let Some(PairedBenchmark::Both { pairing, .. }) = results.benchmarks.get_mut(id) {
                pairing.confirmation = Some(second);
            }
            if let Some(measured) = results.benchmarks.get(id) {
                observe(Observation::Finished {
                    id: id.clone(),
                    summary: format!(
                        "confirmation with fresh processes: {}",
                        summarise(measured, threshold, settings.alpha)
                    ),
                    elapsed: began.elapsed(),
                });
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Where both sides of a [`straight_to`] pass stand.
struct Target {
    id: BenchmarkId,
    warm_up: Duration,
    /// Both sides count round trips for it.
    round_trips: bool,
}

/// Starts fresh workers and calls `each` at every benchmark of `targets`, with both sides at
/// it; the others are skipped on each side independently, so benchmarks only one side has do
/// not get in the way. Both sides must meet `targets` in the same order.
fn straight_to<'w>(
    spawn: &mut Spawn<'w>,
    targets: &BTreeSet<BenchmarkId>,
    each: &mut dyn FnMut(&mut Side<'w>, &mut Side<'w>, &Target) -> Result<(), Error>,
) -> Result<(), Error> {
    let (mut base_workers, mut candidate_workers) = spawn()?;
    let (base, candidate) = (&mut base_workers[..], &mut candidate_workers[..]);
    for worker in base.iter_mut().chain(candidate.iter_mut()) {
        hello(worker.as_mut())?;
    }
    let skip_to = |side: &mut Side<'w>| -> Result<At, Error> {
        loop {
            match next_all(side)? {
                At::Ready { id, .. } if !targets.contains(&id) => {
                    send_all(side, &Order::Next)?;
                }
                at => return Ok(at),
            }
        }
    };
    let mut left = targets.len();
    while left > 0 {
        let (at_base, at_candidate) = (skip_to(base)?, skip_to(candidate)?);
        match (at_base, at_candidate) {
            (
                At::Ready {
                    id,
                    warm_up,
                    round_trips,
                },
                At::Ready {
                    id: other,
                    round_trips: other_round_trips,
                    ..
                },
            ) if id == other => {
                let target = Target {
                    id,
                    warm_up,
                    round_trips: round_trips && other_round_trips,
                };
                each(base, candidate, &target)?;
                left -= 1;
                send_all(base, &Order::Next)?;
                send_all(candidate, &Order::Next)?;
            }
            (at_base, at_candidate) => {
                let name = |at: &At| match at {
                    At::Ready { id, .. } => id.to_string(),
                    At::Finished => "the end".to_owned(),
                };
                return Err(Error::Worker {
                    side: "change",
                    what: format!(
                        "fresh workers were meant to meet again at the benchmarks they measured \
                         in pairs, but the base came to {} and the change to {}: does the suite \
                         register its benchmarks conditionally?",
                        name(&at_base),
                        name(&at_candidate)
                    ),
                    log: None,
                });
            }
        }
    }
    Ok(())
}

/// `+31.2% (regressed, 9 blocks)`, for progress lines.
fn summarise(measured: &PairedBenchmark, threshold: f64, alpha: f64) -> String {
    let PairedBenchmark::Both { pairing, .. } = measured else {
        return String::new();
    };
    let describe = |sequence: &Sequence| match assess(&sequence.block_log_ratios, threshold, alpha)
    {
        Some(assessment) => format!(
            "{:+.1}% ({}, {} blocks)",
            (assessment.ratio - 1.0) * 100.0,
            match assessment.decision {
                Decision::Regressed => "above the threshold".to_owned(),
                Decision::Improved => "below the threshold".to_owned(),
                Decision::Within => "within the thresholds".to_owned(),
                Decision::Undecided => format!("undecided, {}", sequence.stopped.as_str()),
            },
            sequence.block_log_ratios.len()
        ),
        None => "no usable block".to_owned(),
    };
    match &pairing.confirmation {
        Some(second) => format!(
            "{}; confirmation {}",
            describe(&pairing.first),
            describe(second)
        ),
        None => describe(&pairing.first),
    }
}

/// The slices of one side, reduced to what the comparison needs.
#[derive(Default)]
struct Tally {
    per_iteration_ns: Vec<f64>,
    iterations: u64,
    allocations: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, slice: &Slice) {
        if slice.iterations == 0 {
            return;
        }
        self.per_iteration_ns
            .push(slice.nanos as f64 / slice.iterations as f64);
        self.iterations += slice.iterations;
        self.allocations += slice.allocations;
        self.bytes += slice.bytes;
    }

    fn into_measurement(self, round_trips: Option<RoundTripsFile>) -> Measurement {
        let median_ns = median(&self.per_iteration_ns).unwrap_or(0.0);
        let mut sorted = self.per_iteration_ns.clone();
        sorted.sort_by(f64::total_cmp);
        // A distribution-free 95% interval of the median: the order statistics n/2 ± 0.98√n.
        let n = sorted.len();
        let half_width = (0.98 * (n as f64).sqrt()).ceil() as usize;
        let low = sorted
            .get((n / 2).saturating_sub(half_width))
            .copied()
            .unwrap_or(median_ns);
        let high = sorted
            .get((n / 2 + half_width).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(median_ns);
        let per_iteration =
            |total: u64| (self.iterations > 0).then(|| total as f64 / self.iterations as f64);
        Measurement {
            median_ns,
            median_ci_ns: [low, high],
            allocations_per_iteration: per_iteration(self.allocations),
            bytes_per_iteration: per_iteration(self.bytes),
            round_trips: round_trips.as_ref().and_then(RoundTrips::from_file),
            samples_ns: self.per_iteration_ns,
        }
    }
}

/// Rounds of the warm-up after which the iteration count no longer changes.
const WARM_UP_ROUNDS: usize = 30;

/// Warm-up: alternating slices with growing iteration counts until a slice lasts about
/// `settings.slice` (measured time), then at least two more rounds at that size, until every
/// side has run the measured routine for `warm_up` (or three times that in wall time, for
/// benchmarks whose untimed setup dominates). Returns the iteration count to measure with.
///
/// Only measured time counts towards the warm-up: a benchmark that builds its state on its
/// first call (a million-entry cache filled lazily) must still run its routine before
/// measuring, and the first slice's wall time says nothing about the routine's.
fn warm_up<'w>(
    workers: &mut [&mut (dyn Worker + 'w)],
    settings: &Settings,
    warm_up: Duration,
) -> Result<u64, Error> {
    let target = settings.slice.as_nanos() as f64;
    // A slice's wall time includes the benchmark's untimed setup; it must not run away.
    let wall_limit = 4.0 * target;
    let warm_up = warm_up.min(settings.warm_up).as_nanos() as f64;
    let mut iterations: u64 = 1;
    let mut measured_so_far = vec![0.0; workers.len()];
    let mut wall_so_far = 0.0;
    let mut rounds_at_size = 0;
    let mut round = 0;
    loop {
        round += 1;
        let mut measured = 0.0_f64;
        let mut wall = 0.0_f64;
        for (worker, spent) in workers.iter_mut().zip(measured_so_far.iter_mut()) {
            let slice = slice(&mut **worker, iterations)?;
            *spent += slice.nanos as f64;
            measured = measured.max(slice.nanos as f64);
            wall = wall.max(slice.wall_nanos as f64);
            // The first round may hold a one-time set-up: not a measure of the wall time.
            if round > 1 {
                wall_so_far += slice.wall_nanos as f64;
            }
        }
        let per_iteration = (measured / iterations as f64).max(1.0);
        let wall_per_iteration = (wall / iterations as f64).max(1.0);
        let wanted = (target / per_iteration)
            .min(wall_limit / wall_per_iteration)
            .max(1.0)
            .round() as u64;
        // A benchmark whose slices swing by more than 2× would grow and shrink for ever: after
        // enough rounds the size stays.
        let settled = round >= WARM_UP_ROUNDS;
        if round > 1 && !settled && wanted as f64 > iterations as f64 * 1.25 {
            // Grow towards the target, at most tenfold per round, so that a benchmark whose
            // first iterations were slow (cold caches) does not overshoot.
            iterations = wanted.min(iterations.saturating_mul(10));
            rounds_at_size = 0;
            continue;
        }
        if round > 1 && !settled && (wanted as f64) < iterations as f64 * 0.5 {
            // The first rounds overestimated the speed: shrink.
            iterations = wanted;
            rounds_at_size = 0;
            continue;
        }
        rounds_at_size += 1;
        let warm = measured_so_far.iter().all(|spent| *spent >= warm_up)
            || wall_so_far >= 3.0 * warm_up * workers.len() as f64;
        if warm && rounds_at_size >= 2 {
            return Ok(iterations);
        }
    }
}

/// One sequence of `A B B A` blocks; block `k` is measured by the `k mod pairs`-th worker of
/// each side, so that each process's own bias (hash seeds, memory placement) is averaged over
/// the processes.
fn sequence<'w>(
    base: &mut Side<'w>,
    candidate: &mut Side<'w>,
    settings: &Settings,
    iterations: u64,
    threshold: f64,
    tallies: &mut (Tally, Tally),
) -> Result<Sequence, Error> {
    let started = Instant::now();
    let mut ratios = Vec::new();
    let mut previous_pair = None;
    // Blocks measured, also those without a ratio (a side that measured no time): the caps
    // count these, so that the sequence ends whatever the workers report.
    let mut blocks = 0;
    let stopped = loop {
        let pair = blocks % base.len();
        blocks += 1;
        let (a, b) = (base[pair].as_mut(), candidate[pair].as_mut());
        // In `A B B A` measured block after block by one pair, each side has one slice right
        // after the other side's (its caches cold) and one right after its own (warm), and
        // each side's first slice of a block follows its own last one by two slices. When the
        // pair changes, a lead-in of one slice of each side, `B A`, not counted, restores
        // exactly that state; warming only A would leave B's first slice colder than any of
        // A's, a bias of up to 45% measured on memory-bound benchmarks.
        if previous_pair.is_some_and(|previous| previous != pair) {
            slice(b, iterations)?;
            slice(a, iterations)?;
        }
        previous_pair = Some(pair);
        let a1 = slice(a, iterations)?;
        let b1 = slice(b, iterations)?;
        let b2 = slice(b, iterations)?;
        let a2 = slice(a, iterations)?;
        for s in [&a1, &a2] {
            tallies.0.add(s);
        }
        for s in [&b1, &b2] {
            tallies.1.add(s);
        }
        let (a, b) = ((a1.nanos + a2.nanos) as f64, (b1.nanos + b2.nanos) as f64);
        if a > 0.0 && b > 0.0 {
            ratios.push((b / a).ln());
        }
        if ratios.len() >= settings.min_blocks
            && assess(&ratios, threshold, settings.alpha)
                .is_some_and(|a| a.decision != Decision::Undecided)
        {
            break Stop::Decided;
        }
        if blocks >= settings.max_blocks {
            break Stop::Blocks;
        }
        if started.elapsed() >= settings.max_time && blocks >= settings.min_blocks {
            break Stop::Time;
        }
    };
    Ok(Sequence {
        block_log_ratios: ratios,
        iterations_per_slice: iterations,
        stopped,
    })
}

fn interleaved<'s, 'w>(
    base: &'s mut Side<'w>,
    candidate: &'s mut Side<'w>,
) -> Vec<&'s mut (dyn Worker + 'w)> {
    // Which side goes first alternates from pair to pair: a benchmark that builds its state on
    // its first call (a lazily filled cache) then allocates first on one side in half the pairs
    // and on the other in the other half, so that whatever the first to touch memory gets
    // (measured: up to +30% on a 10,000-entry in-process cache, always for the side that went
    // second) is not the same side's every time.
    let mut all: Vec<&'s mut (dyn Worker + 'w)> = Vec::new();
    for (index, (a, b)) in base.iter_mut().zip(candidate.iter_mut()).enumerate() {
        if index % 2 == 0 {
            all.push(a.as_mut());
            all.push(b.as_mut());
        } else {
            all.push(b.as_mut());
            all.push(a.as_mut());
        }
    }
    all
}

fn warm_up_pair<'w>(
    base: &mut Side<'w>,
    candidate: &mut Side<'w>,
    settings: &Settings,
    warm: Duration,
) -> Result<u64, Error> {
    warm_up(&mut interleaved(base, candidate), settings, warm)
}

fn measure_pair<'w>(
    base: &mut Side<'w>,
    candidate: &mut Side<'w>,
    settings: &Settings,
    warm: Duration,
    threshold: f64,
    count: bool,
) -> Result<PairedBenchmark, Error> {
    let iterations = warm_up_pair(base, candidate, settings, warm)?;
    let mut tallies = (Tally::default(), Tally::default());
    let first = sequence(
        base,
        candidate,
        settings,
        iterations,
        threshold,
        &mut tallies,
    )?;
    let (base_round_trips, candidate_round_trips) = if count {
        (
            count_round_trips(base[0].as_mut(), settings.round_trip_iterations)?,
            count_round_trips(candidate[0].as_mut(), settings.round_trip_iterations)?,
        )
    } else {
        (None, None)
    };
    let (base_tally, candidate_tally) = tallies;
    Ok(PairedBenchmark::Both {
        base: base_tally.into_measurement(base_round_trips),
        candidate: candidate_tally.into_measurement(candidate_round_trips),
        pairing: Pairing {
            first,
            confirmation: None,
        },
    })
}

/// A benchmark only the change has, measured alone, with its progress lines.
fn measure_new<'w>(
    candidate: &mut Side<'w>,
    settings: &Settings,
    id: &BenchmarkId,
    warm_up: Duration,
    count: bool,
    observe: &mut dyn FnMut(Observation),
) -> Result<PairedBenchmark, Error> {
    observe(Observation::Started { id: id.clone() });
    let began = Instant::now();
    let alone = measure_alone(candidate, settings, warm_up, count)?;
    observe(Observation::Finished {
        id: id.clone(),
        summary: "new: measured on the change's side only".to_owned(),
        elapsed: began.elapsed(),
    });
    Ok(alone)
}

fn measure_alone<'w>(
    side: &mut Side<'w>,
    settings: &Settings,
    warm: Duration,
    count: bool,
) -> Result<PairedBenchmark, Error> {
    let count_of_workers = side.len();
    let mut workers: Vec<&mut (dyn Worker + 'w)> = side.iter_mut().map(|w| w.as_mut()).collect();
    let iterations = warm_up(&mut workers, settings, warm)?;
    let mut tally = Tally::default();
    for round in 0..2 * settings.min_blocks {
        let worker = &mut workers[round % count_of_workers];
        tally.add(&slice(&mut **worker, iterations)?);
    }
    let round_trips = if count {
        count_round_trips(&mut *workers[0], settings.round_trip_iterations)?
    } else {
        None
    };
    Ok(PairedBenchmark::CandidateOnly {
        candidate: tally.into_measurement(round_trips),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A simulated worker: benchmarks that take `nanos_per_iteration` (times a slowly drifting
    /// machine factor shared by both sides through `clock`), with a fixed allocation count.
    struct Simulated {
        side: &'static str,
        benchmarks: VecDeque<(BenchmarkId, f64)>,
        /// A factor of this process's own on one benchmark: the bias of one set of processes.
        bias: Option<(BenchmarkId, f64)>,
        current: Option<(BenchmarkId, f64)>,
        pending: VecDeque<Event>,
        clock: std::rc::Rc<std::cell::Cell<u64>>,
        said_hello: bool,
    }

    impl Simulated {
        fn new(
            side: &'static str,
            benchmarks: &[(&str, f64)],
            clock: &std::rc::Rc<std::cell::Cell<u64>>,
        ) -> Simulated {
            Simulated {
                side,
                benchmarks: benchmarks
                    .iter()
                    .map(|(id, ns)| (BenchmarkId::new(*id).unwrap(), *ns))
                    .collect(),
                bias: None,
                current: None,
                pending: VecDeque::new(),
                clock: clock.clone(),
                said_hello: false,
            }
        }

        fn advance(&mut self) {
            self.current = self.benchmarks.pop_front();
            self.pending.push_back(match &self.current {
                Some((id, _)) => Event::Ready {
                    id: id.clone(),
                    warm_up_ns: 1_000_000,
                    round_trips: false,
                },
                None => Event::Finished,
            });
        }
    }

    impl Worker for Simulated {
        fn side(&self) -> &'static str {
            self.side
        }

        fn send(&mut self, order: &Order) -> Result<(), Error> {
            match order {
                Order::Run { iterations } => {
                    let (id, mut ns) = self.current.clone().expect("at a benchmark");
                    if let Some((biased, factor)) = &self.bias
                        && *biased == id
                    {
                        ns *= factor;
                    }
                    // The machine slows down by up to 40% and back, slowly, for both sides.
                    let t = self.clock.get();
                    self.clock.set(t + 1);
                    let drift = 1.0 + 0.4 * ((t as f64) / 50.0).sin().abs();
                    // Deterministic jitter of ±3% per slice.
                    let jitter = 1.0 + 0.03 * (((t * 7919) % 13) as f64 / 6.0 - 1.0);
                    let nanos = (ns * drift * jitter * *iterations as f64) as u64;
                    self.pending.push_back(Event::Slice(Slice {
                        iterations: *iterations,
                        nanos,
                        wall_nanos: nanos,
                        allocations: 3 * iterations,
                        bytes: 96 * iterations,
                    }));
                }
                Order::CountRoundTrips { .. } => {
                    self.pending.push_back(Event::RoundTrips { file: None })
                }
                Order::Next => self.advance(),
            }
            Ok(())
        }

        fn receive(&mut self) -> Result<Event, Error> {
            if !self.said_hello {
                self.said_hello = true;
                self.advance();
                return Ok(Event::Hello {
                    protocol: PROTOCOL_VERSION,
                });
            }
            Ok(self.pending.pop_front().expect("an answer is due"))
        }
    }

    fn quick() -> Settings {
        Settings {
            slice: Duration::from_micros(100),
            warm_up: Duration::from_micros(200),
            ..Settings::default()
        }
    }

    fn run(base: &[(&str, f64)], candidate: &[(&str, f64)]) -> SuiteResults {
        run_with_bias(base, candidate, None)
    }

    /// Runs a suite; with `bias`, the change's processes of the first set (not those started
    /// for the confirmation) are that much slower on that benchmark.
    fn run_with_bias(
        base: &[(&str, f64)],
        candidate: &[(&str, f64)],
        bias: Option<(&str, f64)>,
    ) -> SuiteResults {
        let clock = std::rc::Rc::new(std::cell::Cell::new(0));
        let ids = |list: &[(&str, f64)]| -> Vec<BenchmarkId> {
            list.iter()
                .map(|(id, _)| BenchmarkId::new(*id).unwrap())
                .collect()
        };
        let (list_a, list_b) = (ids(base), ids(candidate));
        let mut sets = 0;
        let mut spawn = || {
            sets += 1;
            let a: Vec<Box<dyn Worker>> = (0..2)
                .map(|_| Box::new(Simulated::new("base", base, &clock)) as Box<dyn Worker>)
                .collect();
            let b: Vec<Box<dyn Worker>> = (0..2)
                .map(|_| {
                    let mut worker = Simulated::new("change", candidate, &clock);
                    if sets == 1 {
                        worker.bias = bias.map(|(id, f)| (BenchmarkId::new(id).unwrap(), f));
                    }
                    Box::new(worker) as Box<dyn Worker>
                })
                .collect();
            Ok((a, b))
        };
        run_suite(
            &mut spawn,
            &quick(),
            &|_| 20.0,
            &mut || Ok((list_a.clone(), list_b.clone())),
            &mut |_| {},
        )
        .unwrap()
    }

    fn decision(results: &SuiteResults, id: &str) -> (Decision, Option<Decision>, f64) {
        let Some(PairedBenchmark::Both { pairing, .. }) = results.benchmarks.get(id) else {
            panic!("{id} was not measured in pairs: {results:?}");
        };
        let first = assess(&pairing.first.block_log_ratios, 20.0, 0.01).unwrap();
        let second = pairing
            .confirmation
            .as_ref()
            .map(|s| assess(&s.block_log_ratios, 20.0, 0.01).unwrap().decision);
        (first.decision, second, first.ratio)
    }

    #[test]
    fn drift_shared_by_both_sides_cancels_and_real_changes_show() {
        let results = run(
            &[
                ("s/same", 1000.0),
                ("s/slower", 1000.0),
                ("s/faster", 1000.0),
            ],
            &[
                ("s/same", 1000.0),
                ("s/slower", 1500.0),
                ("s/faster", 600.0),
            ],
        );
        let (same, _, ratio) = decision(&results, "s/same");
        assert_eq!(same, Decision::Within, "{ratio}");
        let (slower, confirmed, ratio) = decision(&results, "s/slower");
        assert_eq!(
            (slower, confirmed),
            (Decision::Regressed, Some(Decision::Regressed))
        );
        assert!((ratio - 1.5).abs() < 0.05, "{ratio}");
        let (faster, _, _) = decision(&results, "s/faster");
        assert_eq!(faster, Decision::Improved);
        let Some(PairedBenchmark::Both { base, .. }) = results.benchmarks.get("s/same") else {
            unreachable!()
        };
        assert_eq!(base.allocations_per_iteration, Some(3.0));
        assert_eq!(base.bytes_per_iteration, Some(96.0));
    }

    #[test]
    fn the_bias_of_one_set_of_processes_is_not_confirmed_by_fresh_ones() {
        let results = run_with_bias(
            &[("s/a", 1000.0), ("s/biased", 1000.0), ("s/c", 1000.0)],
            &[("s/a", 1000.0), ("s/biased", 1000.0), ("s/c", 1000.0)],
            Some(("s/biased", 1.6)),
        );
        let (first, confirmed, ratio) = decision(&results, "s/biased");
        assert_eq!(first, Decision::Regressed, "{ratio}");
        assert_eq!(confirmed, Some(Decision::Within));
        // Only the flagged benchmark was measured again.
        let Some(PairedBenchmark::Both { pairing, .. }) = results.benchmarks.get("s/a") else {
            unreachable!()
        };
        assert!(pairing.confirmation.is_none());
    }

    #[test]
    fn benchmarks_only_one_side_has_are_kept_apart() {
        let results = run(
            &[("s/a", 100.0), ("s/gone", 100.0), ("s/c", 100.0)],
            &[
                ("s/a", 100.0),
                ("s/added", 100.0),
                ("s/c", 100.0),
                ("s/last", 100.0),
            ],
        );
        assert!(matches!(
            results.benchmarks["s/gone"],
            PairedBenchmark::BaseOnly
        ));
        assert!(matches!(
            results.benchmarks["s/added"],
            PairedBenchmark::CandidateOnly { .. }
        ));
        assert!(matches!(
            results.benchmarks["s/last"],
            PairedBenchmark::CandidateOnly { .. }
        ));
        for paired in ["s/a", "s/c"] {
            assert!(
                matches!(results.benchmarks[paired], PairedBenchmark::Both { .. }),
                "{paired}"
            );
        }
        assert!(results.warnings.is_empty(), "{:?}", results.warnings);
    }

    #[test]
    fn benchmarks_met_in_another_order_are_still_measured_in_pairs() {
        let results = run(
            &[("s/a", 100.0), ("s/b", 100.0), ("s/c", 100.0)],
            &[("s/c", 100.0), ("s/a", 100.0), ("s/b", 150.0)],
        );
        for id in ["s/a", "s/b", "s/c"] {
            assert!(
                matches!(results.benchmarks[id], PairedBenchmark::Both { .. }),
                "{id}: {:?}",
                results.benchmarks[id]
            );
        }
        // The slower one is judged and confirmed like any other.
        let (first, confirmed, ratio) = decision(&results, "s/b");
        assert_eq!(
            (first, confirmed),
            (Decision::Regressed, Some(Decision::Regressed)),
            "{ratio}"
        );
        assert_eq!(results.warnings.len(), 2, "{:?}", results.warnings);
    }

    #[test]
    fn a_regression_after_an_added_benchmark_is_confirmed() {
        let results = run(
            &[("s/a", 100.0), ("s/gone", 100.0), ("s/b", 100.0)],
            &[("s/a", 100.0), ("s/added", 100.0), ("s/b", 160.0)],
        );
        let (first, confirmed, ratio) = decision(&results, "s/b");
        assert_eq!(
            (first, confirmed),
            (Decision::Regressed, Some(Decision::Regressed)),
            "{ratio}"
        );
    }
}

//! What the timing loops measure between their `start` and `stop` marks: time and allocations
//! (a criterion sample or a served slice), or the servers' round trips (a counting pass).
//!
//! Every loop of [`crate::Bencher`] brackets exactly the measured routine with these two
//! calls, and nothing else (setup, dropping outputs) falls between them, so one loop serves
//! every kind of measurement.

use std::time::{Duration, Instant};

use bench_format::{RoundTripsFile, ServerCounters};

use crate::alloc::{AllocationCounts, counts, counts_of_this_thread};

/// Whose allocations a timed meter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Counting {
    /// Every thread's: the measured code may run on a runtime's worker threads.
    #[default]
    Process,
    /// The measuring thread's alone: for code that runs only on it (the machine floors), whose
    /// counts must not take in what the fixture's background tasks allocate meanwhile (a pool
    /// handing connections back put 4 allocations, 17,920 bytes, into
    /// `orders/floor/memory_reference`, which allocates nothing; see `benches/README.md`).
    ThisThread,
}

impl Counting {
    #[inline]
    fn read(self) -> AllocationCounts {
        match self {
            Counting::Process => counts(),
            Counting::ThisThread => counts_of_this_thread(),
        }
    }
}

/// Reads the servers' cumulative counters (see [`crate::Group::count_round_trips`]).
pub type CounterSource = dyn Fn() -> ServerCounters + Send + Sync;

/// Time and allocations, or round trips, over the marked parts of one loop call.
pub(crate) enum Meter<'a> {
    Timed {
        counting: Counting,
        elapsed: Duration,
        allocations: AllocationCounts,
        started: Option<(AllocationCounts, Instant)>,
    },
    RoundTrips {
        source: &'a CounterSource,
        before: Option<ServerCounters>,
        file: Option<RoundTripsFile>,
    },
}

impl<'a> Meter<'a> {
    pub(crate) fn timed(counting: Counting) -> Meter<'static> {
        Meter::Timed {
            counting,
            elapsed: Duration::ZERO,
            allocations: AllocationCounts::default(),
            started: None,
        }
    }

    pub(crate) fn round_trips(source: &'a CounterSource) -> Meter<'a> {
        Meter::RoundTrips {
            source,
            before: None,
            file: None,
        }
    }

    /// Marks the start of the measured routine.
    #[inline]
    pub(crate) fn start(&mut self) {
        match self {
            Meter::Timed {
                counting, started, ..
            } => {
                // Counts first and the clock last, so that reading the counters is not timed.
                let before = counting.read();
                *started = Some((before, Instant::now()));
            }
            Meter::RoundTrips { source, before, .. } => *before = Some(source()),
        }
    }

    /// Marks the end of the measured routine, after `iterations` iterations since
    /// [`Meter::start`].
    #[inline]
    pub(crate) fn stop(&mut self, iterations: u64) {
        match self {
            Meter::Timed {
                counting,
                elapsed,
                allocations,
                started,
            } => {
                let now = Instant::now();
                let after = counting.read();
                if let Some((before, start)) = started.take() {
                    *elapsed += now - start;
                    let grown = after - before;
                    allocations.allocations += grown.allocations;
                    allocations.bytes += grown.bytes;
                }
            }
            Meter::RoundTrips {
                source,
                before,
                file,
            } => {
                let after = source();
                if let Some(before) = before.take() {
                    file.get_or_insert_with(|| RoundTripsFile::empty_like(&before))
                        .add(iterations, &before, &after);
                }
            }
        }
    }

    /// Time and allocations measured (zero for a counting pass).
    pub(crate) fn timing(&self) -> (Duration, AllocationCounts) {
        match self {
            Meter::Timed {
                elapsed,
                allocations,
                ..
            } => (*elapsed, *allocations),
            Meter::RoundTrips { .. } => (Duration::ZERO, AllocationCounts::default()),
        }
    }

    /// The round trips counted (`None` for a timed meter, or if nothing was marked).
    pub(crate) fn into_round_trips(self) -> Option<RoundTripsFile> {
        match self {
            Meter::Timed { .. } => None,
            Meter::RoundTrips { file, .. } => file,
        }
    }
}

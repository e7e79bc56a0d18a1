//! Per-benchmark totals of the allocations made by measured routines, and the round trips of
//! their counting passes, kept until the run ends.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use bench_format::RoundTripsFile;

use crate::alloc::AllocationCounts;

/// What one benchmark's measured routine allocated over `iterations` iterations.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Calls of the timing loop by criterion, the first one included.
    pub calls: u64,
    /// Iterations of the routine that were counted (the first call's are not; see `record`).
    pub iterations: u64,
    /// Allocation requests made during those iterations.
    pub allocations: u64,
    /// Bytes requested during those iterations.
    pub bytes: u64,
}

static RECORDS: Mutex<BTreeMap<String, Totals>> = Mutex::new(BTreeMap::new());

static ROUND_TRIPS: Mutex<BTreeMap<String, RoundTripsFile>> = Mutex::new(BTreeMap::new());

/// Keeps the round trips counted for benchmark `id` until the run writes them.
pub(crate) fn record_round_trips(id: &str, file: RoundTripsFile) {
    ROUND_TRIPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.to_owned(), file);
}

/// Removes and returns the round trips recorded so far.
pub(crate) fn take_round_trips() -> BTreeMap<String, RoundTripsFile> {
    std::mem::take(&mut *ROUND_TRIPS.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Adds one call of a benchmark's timing loop (`iterations` iterations that allocated `counts`).
///
/// The first call for each benchmark is left out of the totals. Criterion's first call is the
/// one-iteration start of its warm-up, and it is where one-time work happens (lazy statics,
/// thread-locals, a pool or a cache filling up). Counting it would spread a constant over a
/// number of iterations that criterion picks from the machine's speed, so the per-iteration
/// figure would move with the machine instead of with the code.
pub(crate) fn record(id: &str, iterations: u64, counts: AllocationCounts) {
    // A poisoned lock only means another benchmark panicked while holding it; the map itself is
    // still consistent (every update is a few integer additions).
    let mut records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
    let totals = records.entry(id.to_owned()).or_default();
    totals.calls += 1;
    if totals.calls > 1 {
        totals.iterations += iterations;
        totals.allocations += counts.allocations;
        totals.bytes += counts.bytes;
    }
}

/// Removes and returns everything recorded so far.
pub(crate) fn take() -> BTreeMap<String, Totals> {
    std::mem::take(&mut *RECORDS.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The totals recorded so far for one benchmark (for tests and diagnostics).
pub fn totals(id: &str) -> Option<Totals> {
    RECORDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(id)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_call_is_left_out() {
        let id = "record-test/first-call";
        record(
            id,
            1,
            AllocationCounts {
                allocations: 100,
                bytes: 1000,
            },
        );
        record(
            id,
            10,
            AllocationCounts {
                allocations: 20,
                bytes: 200,
            },
        );
        record(
            id,
            30,
            AllocationCounts {
                allocations: 60,
                bytes: 600,
            },
        );
        assert_eq!(
            totals(id),
            Some(Totals {
                calls: 3,
                iterations: 40,
                allocations: 80,
                bytes: 800
            })
        );
    }
}

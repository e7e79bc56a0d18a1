//! Shared criterion glue for every bench crate: ids, allocation and round-trip counting, the
//! files next to criterion's results, serve mode for paired runs, and the support code every
//! suite's set-up uses.
//!
//! A bench target (`[[bench]] harness = false`) looks like this:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use bench_harness::{BatchSize, Criterion, Group};
//!
//! fn cart(c: &mut Criterion) {
//!     let mut group = Group::new(c, "cart"); // ids are `cart/<operation>[/<parameter>]`
//!     group.measurement_time(Duration::from_secs(2));
//!     group.bench("add_item", |b| b.iter(|| vec![1_u64, 2, 3].iter().sum::<u64>()));
//!     for items in [10, 100] {
//!         group.bench_with_parameter("total", items, |b| {
//!             b.iter_batched(|| vec![7_u64; items], |v| v.iter().sum::<u64>(), BatchSize::SmallInput)
//!         });
//!     }
//!     group.finish();
//! }
//!
//! bench_harness::main!(cart);
//! ```
//!
//! [`main!`] replaces `criterion_group!`/`criterion_main!`: it installs [`CountingAllocator`] as
//! the global allocator, runs the groups, and then writes
//! `<criterion dir>/<benchmark dir>/new/allocations.json` for every benchmark criterion saved.
//! [`Group`] refuses to work outside of it, so the counts cannot be forgotten. The file holds
//! totals over the counted iterations of the measured routine only:
//! `{"iterations": N, "allocations": A, "bytes": B}` (see [`alloc`] for what is counted and
//! `benches/README.md` for the whole results contract). A group that calls
//! [`Group::count_round_trips`] also gets `roundtrips.json`: the PostgreSQL statements and Redis
//! commands of [`ROUND_TRIP_ITERATIONS`] more iterations, from the servers' own counters.
//!
//! With `BENCH_HARNESS_SERVE=1` the same executable serves a paired run instead (see
//! [`serve`](crate::serve) and `bench_format::protocol`): the gate measures it slice by slice,
//! alternating with the executable of the base revision.

pub mod alloc;
mod batch;
pub mod floors;
mod group;
mod latency;
mod meter;
mod output;
pub mod qos;
mod record;
mod run;
pub mod serve;
mod support;

pub use crate::alloc::{AllocationCounts, CountingAllocator, counts, counts_of_this_thread};
pub use crate::batch::{Batches, all_at_once, run_batches};
pub use crate::group::{Bencher, Group, ROUND_TRIP_ITERATIONS};
pub use crate::latency::{Latencies, Summary, measure_latencies};
pub use crate::meter::CounterSource;
pub use crate::output::{
    AllocationsFile, RoundTripsFile, WriteSummary, default_output_directory,
    remove_allocation_files, write_allocation_files, write_round_trip_files,
};
pub use crate::record::{Totals, totals};
pub use crate::run::{GroupFn, RunSummary, run, run_uncounted, run_with};
pub use crate::support::{
    WORKER_THREADS, block, ensure, fail, pass_size, quick_mode, runtime, test_mode,
};
pub use bench_format::ServerCounters;
pub use criterion::{self, BatchSize, Criterion, SamplingMode, Throughput};

// The unit tests count allocations, so their binary needs the counting allocator too.
#[cfg(test)]
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Why the harness could not finish a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process does not allocate through [`CountingAllocator`].
    #[error(
        "the counting allocator is not this binary's global allocator: end the bench target \
         with `bench_harness::main!(...)`, which installs it"
    )]
    AllocatorNotInstalled,
    /// A file under criterion's output directory could not be read or written, or is not what
    /// it should be.
    #[error(transparent)]
    Format(#[from] bench_format::Error),
}

/// Whether this build of the harness counts allocations: `true` unless the `uncounted` feature
/// is enabled.
pub const COUNTING: bool = !cfg!(feature = "uncounted");

/// The global allocator [`main!`] installs: [`CountingAllocator`], or `std::alloc::System` with
/// the `uncounted` feature. Decided here rather than in the macro because a `cfg` inside a
/// macro would be evaluated against the features of the bench crate that expands it.
#[cfg(not(feature = "uncounted"))]
pub type HarnessAllocator = CountingAllocator;
/// The global allocator [`main!`] installs: [`CountingAllocator`], or `std::alloc::System` with
/// the `uncounted` feature. Decided here rather than in the macro because a `cfg` inside a
/// macro would be evaluated against the features of the bench crate that expands it.
#[cfg(feature = "uncounted")]
pub type HarnessAllocator = std::alloc::System;

/// The value of [`HarnessAllocator`] that [`main!`] installs.
#[cfg(not(feature = "uncounted"))]
pub const HARNESS_ALLOCATOR: HarnessAllocator = CountingAllocator;
/// The value of [`HarnessAllocator`] that [`main!`] installs.
#[cfg(feature = "uncounted")]
pub const HARNESS_ALLOCATOR: HarnessAllocator = std::alloc::System;

/// Defines the bench target's `main`: installs [`CountingAllocator`] as the global allocator,
/// runs the given group functions (each `fn(&mut Criterion)`) with criterion configured from the
/// command line, and writes the allocation counts. Use it instead of `criterion_main!`.
///
/// With the harness's `uncounted` feature it installs `std::alloc::System` instead and writes
/// no counts (see [`run_uncounted`]); that build exists only to measure what counting costs.
#[macro_export]
macro_rules! main {
    ($($group:path),+ $(,)?) => {
        #[global_allocator]
        static BENCH_HARNESS_GLOBAL_ALLOCATOR: $crate::HarnessAllocator = $crate::HARNESS_ALLOCATOR;

        fn main() -> ::std::process::ExitCode {
            $crate::run(&[$(&$group),+])
        }
    };
}

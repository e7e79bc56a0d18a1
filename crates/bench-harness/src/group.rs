//! `Group` and `Bencher`: criterion's benchmark group and timing loops, with allocation counting
//! around exactly the code criterion times, an optional round-trip counting pass, and the
//! slices of a paired run (see [`crate::serve`]).

use std::fmt::Display;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_format::protocol::Slice;
use bench_format::{RoundTripsFile, ServerCounters};
use criterion::async_executor::AsyncExecutor;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};

use crate::meter::{CounterSource, Counting, Meter};
use crate::record::{record, record_round_trips};
use crate::run::{run_is_active, serving};

/// Iterations of the round-trip counting pass that follows each benchmark's measurement. The
/// counts are exact, so a few iterations suffice; each is bracketed by two reads of the
/// servers' counters (about a millisecond each), outside any timing.
pub const ROUND_TRIP_ITERATIONS: u64 = 10;

/// A benchmark group for one suite: every benchmark in it gets the id
/// `<suite>/<operation>[/<parameter>]`, and its allocations are counted.
///
/// Only usable inside a run started by [`crate::main!`] (or [`crate::run_with`]): that is what
/// writes the counts to disk, so a group outside of one panics instead of silently counting
/// into the void.
pub struct Group<'c> {
    /// `None` when serving a paired run: criterion measures nothing then.
    inner: Option<BenchmarkGroup<'c, WallTime>>,
    suite: String,
    warm_up: Duration,
    round_trips: Option<Arc<CounterSource>>,
}

/// Checks one segment of a benchmark id. Benchmark code is written once and run by us, so a bad
/// id is a programming error reported the way criterion reports duplicate ids: a panic with a
/// message saying what to change.
fn check_segment(kind: &str, segment: &str) {
    assert!(
        !segment.is_empty() && !segment.contains('/'),
        "benchmark {kind} {segment:?} must be non-empty and must not contain '/': ids are \
         `<suite>/<operation>[/<parameter>]`"
    );
}

/// Criterion's default warm-up time, which a group keeps unless it sets its own.
const DEFAULT_WARM_UP: Duration = Duration::from_secs(3);

impl<'c> Group<'c> {
    /// Starts the group named `suite` (the first segment of its benchmarks' ids).
    ///
    /// # Panics
    ///
    /// If no harness run is active, or `suite` is empty or contains `/`.
    pub fn new(criterion: &'c mut Criterion, suite: &str) -> Group<'c> {
        assert!(
            run_is_active(),
            "bench_harness::Group must be used inside `bench_harness::main!` (or `run_with`), \
             which installs the counting allocator and writes allocations.json"
        );
        check_segment("suite", suite);
        Group {
            inner: (!serving()).then(|| criterion.benchmark_group(suite)),
            suite: suite.to_owned(),
            warm_up: DEFAULT_WARM_UP,
            round_trips: None,
        }
    }

    /// Counts the servers' round trips of every benchmark registered after this call:
    /// `source` reads the servers' cumulative counters (a `provision::RoundTripCounter`, for
    /// instance). After criterion's measurement each benchmark runs
    /// [`ROUND_TRIP_ITERATIONS`] more iterations with the counters read around each of them,
    /// and the differences go to `roundtrips.json` next to its results.
    pub fn count_round_trips(
        &mut self,
        source: impl Fn() -> ServerCounters + Send + Sync + 'static,
    ) -> &mut Self {
        self.round_trips = Some(Arc::new(source));
        self
    }

    /// Benchmarks `<suite>/<operation>`.
    pub fn bench<F>(&mut self, operation: &str, f: F) -> &mut Self
    where
        F: FnMut(&mut Bencher<'_, '_>),
    {
        check_segment("operation", operation);
        let id = format!("{}/{operation}", self.suite);
        self.measure(
            id,
            criterion::BenchmarkId::from_parameter(operation),
            Counting::Process,
            f,
        )
    }

    /// Benchmarks `<suite>/<operation>/<parameter>`; the closure captures whatever input the
    /// parameter stands for.
    pub fn bench_with_parameter<P, F>(&mut self, operation: &str, parameter: P, f: F) -> &mut Self
    where
        P: Display,
        F: FnMut(&mut Bencher<'_, '_>),
    {
        self.with_parameter(operation, parameter, Counting::Process, f)
    }

    /// Registers the floor `<suite>/floor/<name>`: a reference benchmark that measures the
    /// machine rather than the code (see [`crate::floors`] and the gate's `[[reference]]`
    /// rules, which name floors by `name`).
    pub fn floor<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: FnMut(&mut Bencher<'_, '_>),
    {
        self.bench_with_parameter("floor", name, f)
    }

    /// Registers a machine floor (see [`crate::floors`]), `<suite>/floor/<name>`: `routine`,
    /// timed with [`Bencher::iter`] on the calling thread, which is the only thread whose
    /// allocations are counted, so that the floor's counts stay exact whatever the suite's
    /// fixture does in the background meanwhile (the allocations of every other benchmark are
    /// counted on every thread, where a runtime's workers run its tasks). It takes a plain
    /// routine rather than a [`Bencher`] so that nothing it measures can run on another thread.
    pub fn machine_floor<O, R>(&mut self, name: &str, mut routine: R) -> &mut Self
    where
        R: FnMut() -> O,
    {
        self.with_parameter("floor", name, Counting::ThisThread, |b| {
            b.iter(&mut routine);
        })
    }

    /// `<suite>/<operation>/<parameter>`, its allocations counted as `counting` says.
    fn with_parameter<P, F>(
        &mut self,
        operation: &str,
        parameter: P,
        counting: Counting,
        f: F,
    ) -> &mut Self
    where
        P: Display,
        F: FnMut(&mut Bencher<'_, '_>),
    {
        check_segment("operation", operation);
        let parameter = parameter.to_string();
        check_segment("parameter", &parameter);
        let id = format!("{}/{operation}/{parameter}", self.suite);
        self.measure(
            id,
            criterion::BenchmarkId::new(operation, &parameter),
            counting,
            f,
        )
    }

    fn measure<F>(
        &mut self,
        id: String,
        criterion_id: criterion::BenchmarkId,
        counting: Counting,
        mut f: F,
    ) -> &mut Self
    where
        F: FnMut(&mut Bencher<'_, '_>),
    {
        let Some(inner) = self.inner.as_mut() else {
            crate::serve::benchmark(
                &id,
                self.warm_up,
                self.round_trips.as_deref(),
                counting,
                &mut f,
            );
            return self;
        };
        // Criterion calls the closure only when it measures (or, in test mode, runs once); in
        // list mode it does not call it at all.
        let mut measured = false;
        inner.bench_function(criterion_id, |b| {
            measured = true;
            f(&mut Bencher {
                mode: Mode::Criterion(b),
                id: &id,
                counting,
            });
        });
        if let Some(source) = &self.round_trips
            && measured
            && !crate::support::test_mode()
            && let Some(file) =
                count_round_trips(&id, source.as_ref(), ROUND_TRIP_ITERATIONS, &mut f)
        {
            record_round_trips(&id, file);
        }
        self
    }

    /// See [`BenchmarkGroup::sample_size`].
    pub fn sample_size(&mut self, n: usize) -> &mut Self {
        if let Some(inner) = &mut self.inner {
            inner.sample_size(n);
        }
        self
    }

    /// See [`BenchmarkGroup::warm_up_time`]. A paired run takes it as a hint for its own
    /// warm-up.
    pub fn warm_up_time(&mut self, duration: Duration) -> &mut Self {
        self.warm_up = duration;
        if let Some(inner) = &mut self.inner {
            inner.warm_up_time(duration);
        }
        self
    }

    /// See [`BenchmarkGroup::measurement_time`].
    pub fn measurement_time(&mut self, duration: Duration) -> &mut Self {
        if let Some(inner) = &mut self.inner {
            inner.measurement_time(duration);
        }
        self
    }

    /// See [`BenchmarkGroup::nresamples`].
    pub fn nresamples(&mut self, n: usize) -> &mut Self {
        if let Some(inner) = &mut self.inner {
            inner.nresamples(n);
        }
        self
    }

    /// See [`BenchmarkGroup::sampling_mode`].
    pub fn sampling_mode(&mut self, mode: SamplingMode) -> &mut Self {
        if let Some(inner) = &mut self.inner {
            inner.sampling_mode(mode);
        }
        self
    }

    /// See [`BenchmarkGroup::throughput`].
    pub fn throughput(&mut self, throughput: Throughput) -> &mut Self {
        if let Some(inner) = &mut self.inner {
            inner.throughput(throughput);
        }
        self
    }

    /// Ends the group (criterion prints its summary). Dropping the group does the same.
    pub fn finish(self) {
        if let Some(inner) = self.inner {
            inner.finish();
        }
    }
}

/// Runs `iterations` iterations of benchmark `f` with the servers' counters read around each
/// measured part.
pub(crate) fn count_round_trips<F>(
    id: &str,
    source: &CounterSource,
    iterations: u64,
    f: &mut F,
) -> Option<RoundTripsFile>
where
    F: FnMut(&mut Bencher<'_, '_>),
{
    let mut out = None;
    f(&mut Bencher {
        mode: Mode::RoundTrips {
            iterations,
            source,
            out: &mut out,
        },
        id,
        // A counting pass reads the servers' counters, not the allocator.
        counting: Counting::Process,
    });
    out
}

/// Runs one slice of `iterations` iterations of benchmark `f`: `None` if `f` did not run a
/// timing loop.
pub(crate) fn slice<F>(id: &str, iterations: u64, counting: Counting, f: &mut F) -> Option<Slice>
where
    F: FnMut(&mut Bencher<'_, '_>),
{
    let mut out = None;
    let wall = Instant::now();
    f(&mut Bencher {
        mode: Mode::Slice {
            iterations,
            out: &mut out,
        },
        id,
        counting,
    });
    let wall_nanos = duration_nanos(wall.elapsed());
    out.map(|mut slice: Slice| {
        slice.wall_nanos = wall_nanos;
        slice
    })
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Who drives a [`Bencher`]'s loop, and where its measurement goes.
enum Mode<'a, 'b> {
    /// Criterion picks the iteration counts; allocations go to the run's records.
    Criterion(&'a mut criterion::Bencher<'b, WallTime>),
    /// One slice of a paired run.
    Slice {
        iterations: u64,
        out: &'a mut Option<Slice>,
    },
    /// The round-trip counting pass.
    RoundTrips {
        iterations: u64,
        source: &'a CounterSource,
        out: &'a mut Option<RoundTripsFile>,
    },
}

/// The timing loops of one benchmark. Each measures with criterion and counts the allocations of
/// the measured code only (setup, teardown and criterion's own bookkeeping are left out).
pub struct Bencher<'a, 'b> {
    mode: Mode<'a, 'b>,
    id: &'a str,
    counting: Counting,
}

impl Bencher<'_, '_> {
    /// The benchmark's id, `<suite>/<operation>[/<parameter>]`.
    pub fn id(&self) -> &str {
        self.id
    }

    /// Runs `body(meter, iterations)` as the mode wants it: once per criterion sample, once for
    /// a slice, once for the counting pass.
    fn drive(&mut self, mut body: impl FnMut(&mut Meter<'_>, u64)) {
        let id = self.id;
        let counting = self.counting;
        match &mut self.mode {
            Mode::Criterion(b) => b.iter_custom(|iters| {
                let mut meter = Meter::timed(counting);
                body(&mut meter, iters);
                let (elapsed, allocations) = meter.timing();
                record(id, iters, allocations);
                elapsed
            }),
            Mode::Slice { iterations, out } => {
                let mut meter = Meter::timed(counting);
                body(&mut meter, *iterations);
                let (elapsed, allocations) = meter.timing();
                **out = Some(Slice {
                    iterations: *iterations,
                    nanos: duration_nanos(elapsed),
                    wall_nanos: 0,
                    allocations: allocations.allocations,
                    bytes: allocations.bytes,
                });
            }
            Mode::RoundTrips {
                iterations,
                source,
                out,
            } => {
                let mut meter = Meter::round_trips(*source);
                body(&mut meter, *iterations);
                **out = meter.into_round_trips();
            }
        }
    }

    /// Times `routine` (like [`criterion::Bencher::iter`]); its output is dropped inside the
    /// measurement, so freeing it is timed too.
    pub fn iter<O, R>(&mut self, mut routine: R)
    where
        R: FnMut() -> O,
    {
        self.drive(|meter, iters| {
            meter.start();
            for _ in 0..iters {
                black_box(routine());
            }
            meter.stop(iters);
        });
    }

    /// Times an async `routine` on `executor` (a `&tokio::runtime::Runtime`, for instance).
    /// Counting is process-wide, so allocations made by the runtime's worker threads on the
    /// routine's behalf are included: that is the honest figure for async code.
    pub fn iter_async<E, R, F>(&mut self, executor: E, mut routine: R)
    where
        E: AsyncExecutor,
        R: FnMut() -> F,
        F: Future,
    {
        self.drive(|meter, iters| {
            executor.block_on(async {
                meter.start();
                for _ in 0..iters {
                    black_box(routine().await);
                }
                meter.stop(iters);
            });
        });
    }

    /// Times `routine` on inputs made by `setup` (like [`criterion::Bencher::iter_batched`]):
    /// neither the setup nor dropping the outputs is timed or counted.
    pub fn iter_batched<I, O, S, R>(&mut self, mut setup: S, mut routine: R, size: BatchSize)
    where
        S: FnMut() -> I,
        R: FnMut(I) -> O,
    {
        self.drive(|meter, iters| {
            let per_batch = iters_per_batch(size, iters);
            let mut done = 0;
            while done < iters {
                let batch = per_batch.min(iters - done);
                // Capacity for the batch is reserved before counting so that collecting the
                // outputs never allocates inside the measurement.
                let inputs = black_box((0..batch).map(|_| setup()).collect::<Vec<_>>());
                let mut outputs = Vec::with_capacity(inputs.len());
                meter.start();
                outputs.extend(inputs.into_iter().map(&mut routine));
                meter.stop(batch);
                drop(black_box(outputs));
                done += batch;
            }
        });
    }

    /// Times an async `routine` on inputs made by `setup`: the async counterpart of
    /// [`Bencher::iter_batched`]. Each batch's inputs are made first, outside the timing and the
    /// counting; then the batch's routines run one after another inside one `block_on` of
    /// `executor`, as in [`Bencher::iter_async`], and only they are timed and counted.
    ///
    /// `setup` runs outside the executor, so it may block on it itself, e.g. to reset the state
    /// an iteration changes (`|| runtime.block_on(cache.invalidate_l1(key))`). A reset that must
    /// hold for every routine of a batch needs a distinct input per routine (a different key per
    /// iteration of the batch), because the batch's setups all run before its routines.
    pub fn iter_batched_async<E, I, O, S, R, F>(
        &mut self,
        executor: E,
        mut setup: S,
        mut routine: R,
        size: BatchSize,
    ) where
        E: AsyncExecutor,
        S: FnMut() -> I,
        R: FnMut(I) -> F,
        F: Future<Output = O>,
    {
        self.drive(|meter, iters| {
            let per_batch = iters_per_batch(size, iters);
            let mut done = 0;
            while done < iters {
                let batch = per_batch.min(iters - done);
                let inputs = black_box((0..batch).map(|_| setup()).collect::<Vec<_>>());
                // Reserved before counting, so that keeping the outputs never allocates inside
                // the measurement; they are dropped after it.
                let mut outputs = Vec::with_capacity(inputs.len());
                executor.block_on(async {
                    meter.start();
                    for input in inputs {
                        outputs.push(routine(input).await);
                    }
                    meter.stop(batch);
                });
                drop(black_box(outputs));
                done += batch;
            }
        });
    }

    /// Lets `routine` time `iters` iterations itself (like [`criterion::Bencher::iter_custom`]),
    /// for concurrent batches: everything `routine` does while it runs is counted, on every
    /// thread, so keep expensive setup outside it. The time it returns is what is measured.
    pub fn iter_custom<R>(&mut self, mut routine: R)
    where
        R: FnMut(u64) -> Duration,
    {
        let id = self.id;
        let counting = self.counting;
        match &mut self.mode {
            // The routine's own clock is the measurement; the meter only counts.
            Mode::Criterion(b) => b.iter_custom(|iters| {
                let mut meter = Meter::timed(counting);
                meter.start();
                let elapsed = routine(iters);
                meter.stop(iters);
                record(id, iters, meter.timing().1);
                elapsed
            }),
            Mode::Slice { iterations, out } => {
                let mut meter = Meter::timed(counting);
                meter.start();
                let elapsed = routine(*iterations);
                meter.stop(*iterations);
                let allocations = meter.timing().1;
                **out = Some(Slice {
                    iterations: *iterations,
                    nanos: duration_nanos(elapsed),
                    wall_nanos: 0,
                    allocations: allocations.allocations,
                    bytes: allocations.bytes,
                });
            }
            Mode::RoundTrips { .. } => self.drive(|meter, iters| {
                meter.start();
                routine(iters);
                meter.stop(iters);
            }),
        }
    }
}

/// How many iterations share one batch of inputs, as criterion computes it for `iter_batched`
/// (its own helper is private). `BatchSize` may gain variants; those get one input per batch,
/// the choice that never holds too many inputs in memory.
fn iters_per_batch(size: BatchSize, iters: u64) -> u64 {
    let per_batch = match size {
        BatchSize::SmallInput => iters.div_ceil(10),
        BatchSize::LargeInput => iters.div_ceil(1000),
        BatchSize::PerIteration => 1,
        BatchSize::NumBatches(batches) => iters.div_ceil(batches.max(1)),
        BatchSize::NumIterations(size) => size,
        _ => 1,
    };
    per_batch.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_follow_criterion() {
        assert_eq!(iters_per_batch(BatchSize::SmallInput, 95), 10);
        assert_eq!(iters_per_batch(BatchSize::LargeInput, 95), 1);
        assert_eq!(iters_per_batch(BatchSize::PerIteration, 95), 1);
        assert_eq!(iters_per_batch(BatchSize::NumBatches(4), 10), 3);
        assert_eq!(iters_per_batch(BatchSize::NumIterations(7), 100), 7);
        // Never zero, whatever the input.
        assert_eq!(iters_per_batch(BatchSize::NumIterations(0), 100), 1);
        assert_eq!(iters_per_batch(BatchSize::NumBatches(0), 100), 100);
    }

    #[test]
    #[should_panic(expected = "must be used inside `bench_harness::main!`")]
    fn a_group_outside_a_run_is_refused() {
        // No test in this binary starts a run, so none is active here.
        let mut criterion = Criterion::default();
        let _group = Group::new(&mut criterion, "outside");
    }

    #[test]
    #[should_panic(expected = "must not contain '/'")]
    fn a_slash_in_a_segment_is_refused() {
        check_segment("operation", "a/b");
    }
}

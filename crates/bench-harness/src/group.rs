//! `Group` and `Bencher`: criterion's benchmark group and timing loops, with allocation counting
//! around exactly the code criterion times.

use std::fmt::Display;
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::async_executor::AsyncExecutor;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};

use crate::alloc::{AllocationCounts, counts};
use crate::record::record;
use crate::run::run_is_active;

/// A benchmark group for one domain: every benchmark in it gets the id
/// `<domain>/<operation>[/<parameter>]`, and its allocations are counted.
///
/// Only usable inside a run started by [`crate::main!`] (or [`crate::run_with`]): that is what
/// writes the counts to disk, so a group outside of one panics instead of silently counting
/// into the void.
pub struct Group<'c> {
    inner: BenchmarkGroup<'c, WallTime>,
    domain: String,
}

/// Checks one segment of a benchmark id. Benchmark code is written once and run by us, so a bad
/// id is a programming error reported the way criterion reports duplicate ids: a panic with a
/// message saying what to change.
fn check_segment(kind: &str, segment: &str) {
    assert!(
        !segment.is_empty() && !segment.contains('/'),
        "benchmark {kind} {segment:?} must be non-empty and must not contain '/': ids are \
         `<domain>/<operation>[/<parameter>]`"
    );
}

impl<'c> Group<'c> {
    /// Starts the group named `domain` (the first segment of its benchmarks' ids).
    ///
    /// # Panics
    ///
    /// If no harness run is active, or `domain` is empty or contains `/`.
    pub fn new(criterion: &'c mut Criterion, domain: &str) -> Group<'c> {
        assert!(
            run_is_active(),
            "bench_harness::Group must be used inside `bench_harness::main!` (or `run_with`), \
             which installs the counting allocator and writes allocations.json"
        );
        check_segment("domain", domain);
        Group {
            inner: criterion.benchmark_group(domain),
            domain: domain.to_owned(),
        }
    }

    /// Benchmarks `<domain>/<operation>`.
    pub fn bench<F>(&mut self, operation: &str, mut f: F) -> &mut Self
    where
        F: FnMut(&mut Bencher<'_, '_>),
    {
        check_segment("operation", operation);
        let id = format!("{}/{operation}", self.domain);
        self.inner
            .bench_function(operation, |b| f(&mut Bencher { inner: b, id: &id }));
        self
    }

    /// Benchmarks `<domain>/<operation>/<parameter>`; the closure captures whatever input the
    /// parameter stands for.
    pub fn bench_with_parameter<P, F>(
        &mut self,
        operation: &str,
        parameter: P,
        mut f: F,
    ) -> &mut Self
    where
        P: Display,
        F: FnMut(&mut Bencher<'_, '_>),
    {
        check_segment("operation", operation);
        let parameter = parameter.to_string();
        check_segment("parameter", &parameter);
        let id = format!("{}/{operation}/{parameter}", self.domain);
        self.inner
            .bench_function(BenchmarkId::new(operation, &parameter), |b| {
                f(&mut Bencher { inner: b, id: &id })
            });
        self
    }

    /// See [`BenchmarkGroup::sample_size`].
    pub fn sample_size(&mut self, n: usize) -> &mut Self {
        self.inner.sample_size(n);
        self
    }

    /// See [`BenchmarkGroup::warm_up_time`].
    pub fn warm_up_time(&mut self, duration: Duration) -> &mut Self {
        self.inner.warm_up_time(duration);
        self
    }

    /// See [`BenchmarkGroup::measurement_time`].
    pub fn measurement_time(&mut self, duration: Duration) -> &mut Self {
        self.inner.measurement_time(duration);
        self
    }

    /// See [`BenchmarkGroup::nresamples`].
    pub fn nresamples(&mut self, n: usize) -> &mut Self {
        self.inner.nresamples(n);
        self
    }

    /// See [`BenchmarkGroup::sampling_mode`].
    pub fn sampling_mode(&mut self, mode: SamplingMode) -> &mut Self {
        self.inner.sampling_mode(mode);
        self
    }

    /// See [`BenchmarkGroup::throughput`].
    pub fn throughput(&mut self, throughput: Throughput) -> &mut Self {
        self.inner.throughput(throughput);
        self
    }

    /// Ends the group (criterion prints its summary). Dropping the group does the same.
    pub fn finish(self) {
        self.inner.finish();
    }
}

/// The timing loops of one benchmark. Each measures with criterion and counts the allocations of
/// the measured code only (setup, teardown and criterion's own bookkeeping are left out).
pub struct Bencher<'a, 'b> {
    inner: &'a mut criterion::Bencher<'b, WallTime>,
    id: &'a str,
}

impl Bencher<'_, '_> {
    /// The benchmark's id, `<domain>/<operation>[/<parameter>]`.
    pub fn id(&self) -> &str {
        self.id
    }

    /// Times `routine` (like [`criterion::Bencher::iter`]); its output is dropped inside the
    /// measurement, so freeing it is timed too.
    pub fn iter<O, R>(&mut self, mut routine: R)
    where
        R: FnMut() -> O,
    {
        let id = self.id;
        self.inner.iter_custom(|iters| {
            let before = counts();
            let start = Instant::now();
            for _ in 0..iters {
                black_box(routine());
            }
            let elapsed = start.elapsed();
            record(id, iters, counts() - before);
            elapsed
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
        let id = self.id;
        self.inner.iter_custom(|iters| {
            executor.block_on(async {
                let before = counts();
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(routine().await);
                }
                let elapsed = start.elapsed();
                record(id, iters, counts() - before);
                elapsed
            })
        });
    }

    /// Times `routine` on inputs made by `setup` (like [`criterion::Bencher::iter_batched`]):
    /// neither the setup nor dropping the outputs is timed or counted.
    pub fn iter_batched<I, O, S, R>(&mut self, mut setup: S, mut routine: R, size: BatchSize)
    where
        S: FnMut() -> I,
        R: FnMut(I) -> O,
    {
        let id = self.id;
        self.inner.iter_custom(|iters| {
            let per_batch = iters_per_batch(size, iters);
            let mut elapsed = Duration::ZERO;
            let mut allocated = AllocationCounts::default();
            let mut done = 0;
            while done < iters {
                let batch = per_batch.min(iters - done);
                // Capacity for the batch is reserved before counting so that collecting the
                // outputs never allocates inside the measurement.
                let inputs = black_box((0..batch).map(|_| setup()).collect::<Vec<_>>());
                let mut outputs = Vec::with_capacity(inputs.len());
                let before = counts();
                let start = Instant::now();
                outputs.extend(inputs.into_iter().map(&mut routine));
                elapsed += start.elapsed();
                let after = counts();
                allocated.allocations += after.allocations.wrapping_sub(before.allocations);
                allocated.bytes += after.bytes.wrapping_sub(before.bytes);
                drop(black_box(outputs));
                done += batch;
            }
            record(id, iters, allocated);
            elapsed
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
        let id = self.id;
        self.inner.iter_custom(|iters| {
            let per_batch = iters_per_batch(size, iters);
            let mut elapsed = Duration::ZERO;
            let mut allocated = AllocationCounts::default();
            let mut done = 0;
            while done < iters {
                let batch = per_batch.min(iters - done);
                let inputs = black_box((0..batch).map(|_| setup()).collect::<Vec<_>>());
                // Reserved before counting, so that keeping the outputs never allocates inside
                // the measurement; they are dropped after it.
                let mut outputs = Vec::with_capacity(inputs.len());
                let (batch_elapsed, batch_counts) = executor.block_on(async {
                    let before = counts();
                    let start = Instant::now();
                    for input in inputs {
                        outputs.push(routine(input).await);
                    }
                    let batch_elapsed = start.elapsed();
                    (batch_elapsed, counts() - before)
                });
                elapsed += batch_elapsed;
                allocated.allocations += batch_counts.allocations;
                allocated.bytes += batch_counts.bytes;
                drop(black_box(outputs));
                done += batch;
            }
            record(id, iters, allocated);
            elapsed
        });
    }

    /// Lets `routine` time `iters` iterations itself (like [`criterion::Bencher::iter_custom`]),
    /// for concurrent batches: everything `routine` does while it runs is counted, on every
    /// thread, so keep expensive setup outside it.
    pub fn iter_custom<R>(&mut self, mut routine: R)
    where
        R: FnMut(u64) -> Duration,
    {
        let id = self.id;
        self.inner.iter_custom(|iters| {
            let before = counts();
            let elapsed = routine(iters);
            record(id, iters, counts() - before);
            elapsed
        });
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

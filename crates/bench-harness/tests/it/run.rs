//! One real criterion run over the four timing loops, then the allocations.json it leaves behind.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bench_harness::{AllocationsFile, BatchSize, Criterion, Group};
use serde::Deserialize;

/// The harness keeps its records in one process-wide table that each run empties when it ends,
/// so two runs at once would take each other's records: the tests that run take turns.
fn serial() -> MutexGuard<'static, ()> {
    static RUNS: Mutex<()> = Mutex::new(());
    RUNS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings that keep the run to about a second while still going through criterion's warm-up,
/// sampling and analysis.
fn quick(group: &mut Group<'_>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(20))
        .measurement_time(Duration::from_millis(100))
        .nresamples(1000);
}

/// Exactly `n` allocations of 32 bytes each.
fn allocate(n: usize) -> usize {
    (0..n)
        .map(|i| black_box(Box::new([i as u8; 32])).len())
        .sum()
}

fn sync_loops(c: &mut Criterion) {
    let mut group = Group::new(c, "harness-it");
    quick(&mut group);
    group.bench("iter", |b| b.iter(|| allocate(2)));
    // The setup allocates a lot; only the routine's single allocation must be counted.
    group.bench_with_parameter("batched", "small", |b| {
        b.iter_batched(|| allocate(50), |x| allocate(1) + x, BatchSize::SmallInput)
    });
    group.bench_with_parameter("batched", "per-iteration", |b| {
        b.iter_batched(
            || allocate(50),
            |x| allocate(1) + x,
            BatchSize::PerIteration,
        )
    });
    group.bench("custom", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                scope.spawn(|| (0..iters).map(|_| allocate(3)).sum::<usize>());
            });
            start.elapsed()
        })
    });
    group.finish();
}

fn async_loop(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = Group::new(c, "harness-it");
    quick(&mut group);
    group.bench("async", |b| {
        b.iter_async(&runtime, || async { allocate(4) })
    });
    // The setup allocates a lot and blocks on the runtime itself; only the routine's
    // allocations must be counted.
    group.bench_with_parameter("batched_async", "small", |b| {
        b.iter_batched_async(
            &runtime,
            || runtime.block_on(async { allocate(50) }),
            |x| async move {
                tokio::task::yield_now().await;
                allocate(2) + x
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

#[derive(Deserialize)]
struct Sample {
    iters: Vec<f64>,
}

fn read_allocations(dir: &Path) -> AllocationsFile {
    let path = dir.join("new/allocations.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn sampled_iterations(dir: &Path) -> u64 {
    let sample: Sample =
        serde_json::from_slice(&std::fs::read(dir.join("new/sample.json")).unwrap()).unwrap();
    sample.iters.iter().sum::<f64>() as u64
}

#[test]
fn a_real_run_writes_per_benchmark_allocation_totals() {
    let _serial = serial();
    let out = tempfile::tempdir().unwrap();
    let summary = bench_harness::run_with(
        Criterion::default().without_plots(),
        out.path(),
        &[&sync_loops, &async_loop],
    )
    .unwrap();
    let written = &summary.allocations;
    assert!(written.unmatched.is_empty(), "{:?}", written.unmatched);
    assert_eq!(written.written.len(), 6, "{:?}", written.written);
    // No group counted round trips.
    assert_eq!(summary.round_trips, bench_harness::WriteSummary::default());

    let cases: [(&str, f64); 6] = [
        ("harness-it/iter", 2.0),
        ("harness-it/batched/small", 1.0),
        ("harness-it/batched/per-iteration", 1.0),
        ("harness-it/custom", 3.0),
        ("harness-it/async", 4.0),
        ("harness-it/batched_async/small", 2.0),
    ];
    for (id, per_iteration) in cases {
        let dir: PathBuf = out.path().join(id);
        let file = read_allocations(&dir);
        // Warm-up iterations (all but the very first call) are counted too, so there are at
        // least as many counted iterations as criterion's samples hold.
        assert!(
            file.iterations >= sampled_iterations(&dir),
            "{id}: {file:?}"
        );
        // Other test threads may allocate while we count (counting is process-wide), which can
        // only add; with this many iterations it cannot move the average by 2%.
        let measured = file.allocations as f64 / file.iterations as f64;
        let bytes = file.bytes as f64 / file.iterations as f64;
        if id == "harness-it/custom" {
            // Spawning the scoped thread allocates a few times per call of the routine, on top
            // of the child's three per iteration. On a loaded machine criterion runs only a few
            // hundred iterations in a few dozen calls, so that constant can reach a third of an
            // allocation per iteration: check that every child allocation was counted (at least
            // three) and that the excess stays a per-call constant (well under one).
            assert!(
                (per_iteration..per_iteration + 1.0).contains(&measured),
                "{id}: {measured} allocations per iteration, expected {per_iteration} plus the \
                 spawn ({file:?})"
            );
            assert!(
                (32.0 * per_iteration..64.0 * per_iteration).contains(&bytes),
                "{id}: {bytes}"
            );
            continue;
        }
        assert!(
            (measured - per_iteration).abs() < 0.02 * per_iteration,
            "{id}: {measured} allocations per iteration, expected {per_iteration} ({file:?})"
        );
        assert!(
            (bytes - 32.0 * per_iteration).abs() < 0.02 * 32.0 * per_iteration,
            "{id}: {bytes}"
        );
    }
}

fn one_loop(c: &mut Criterion) {
    let mut group = Group::new(c, "harness-it");
    quick(&mut group);
    group.bench("uncounted", |b| b.iter(|| allocate(1)));
    group.finish();
}

#[test]
fn an_uncounted_run_leaves_no_counts_next_to_its_results() {
    let _serial = serial();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("harness-it/uncounted/new");
    let counted = bench_harness::run_with(
        Criterion::default().without_plots(),
        out.path(),
        &[&one_loop],
    )
    .unwrap();
    assert_eq!(
        counted.allocations.written,
        vec![dir.join("allocations.json")]
    );

    // The same benchmark again without counting: its fresh timings must not keep the counts of
    // the run before.
    let removed = bench_harness::run_uncounted(
        Criterion::default().without_plots(),
        out.path(),
        &[&one_loop],
    )
    .unwrap();
    assert_eq!(removed, vec![dir.join("allocations.json")]);
    assert!(dir.join("benchmark.json").exists());
    assert!(!dir.join("allocations.json").exists());
}

/// A stand-in for the servers: counters that the routine and the setup below advance, read as
/// `provision::RoundTripCounter` reads PostgreSQL's and Redis'.
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static COMMANDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn fake_servers() -> bench_harness::ServerCounters {
    use std::sync::atomic::Ordering::SeqCst;
    bench_harness::ServerCounters {
        postgres: Ok([("SELECT $1".to_owned(), STATEMENTS.load(SeqCst))].into()),
        redis: Ok([("get".to_owned(), COMMANDS.load(SeqCst))].into()),
    }
}

fn counted_round_trips(c: &mut Criterion) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut group = Group::new(c, "harness-it");
    quick(&mut group);
    group.count_round_trips(fake_servers);
    // Three statements and two commands per iteration; the setup's hundred statements must not
    // be counted.
    group.bench("round_trips", |b| {
        b.iter_batched(
            || STATEMENTS.fetch_add(100, SeqCst),
            |_| {
                STATEMENTS.fetch_add(3, SeqCst);
                COMMANDS.fetch_add(2, SeqCst);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

#[test]
fn a_group_that_counts_round_trips_writes_exact_totals_of_the_routine_alone() {
    let _serial = serial();
    let out = tempfile::tempdir().unwrap();
    let summary = bench_harness::run_with(
        Criterion::default().without_plots(),
        out.path(),
        &[&counted_round_trips],
    )
    .unwrap();
    let path = out
        .path()
        .join("harness-it/round_trips/new/roundtrips.json");
    assert_eq!(summary.round_trips.written, vec![path.clone()]);
    let file: bench_harness::RoundTripsFile =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let n = bench_harness::ROUND_TRIP_ITERATIONS;
    assert_eq!(file.iterations, n);
    assert_eq!(file.postgres_statements, Some(3 * n));
    assert_eq!(file.redis_commands, Some(2 * n));
    assert_eq!(file.statements["SELECT $1"], 3 * n);
    assert_eq!(file.commands["get"], 2 * n);
    assert!(file.unavailable.is_empty());
}

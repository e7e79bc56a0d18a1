//! Running benchmark groups and writing the allocation and round-trip counts afterwards (what
//! `main!` calls), or serving them to a paired run.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

use bench_format::protocol::{Event, SERVE_VAR};
use criterion::Criterion;

use crate::Error;
use crate::output::{
    WriteSummary, default_output_directory, remove_allocation_files, write_allocation_files,
    write_round_trip_files,
};

/// A benchmark group function, as criterion's `criterion_group!` would take it.
pub type GroupFn = dyn Fn(&mut Criterion);

static ACTIVE_RUNS: AtomicUsize = AtomicUsize::new(0);

static SERVING: AtomicBool = AtomicBool::new(false);

pub(crate) fn run_is_active() -> bool {
    ACTIVE_RUNS.load(Ordering::SeqCst) > 0
}

/// Whether this process serves a paired run (see [`crate::serve`]) instead of running
/// criterion.
pub(crate) fn serving() -> bool {
    SERVING.load(Ordering::SeqCst)
}

/// Whether the environment asks for serve mode.
fn serve_requested() -> bool {
    std::env::var(SERVE_VAR).is_ok_and(|value| value == "1")
}

/// Marks a run as active for as long as it lives, even if a benchmark panics.
struct ActiveRun;

impl ActiveRun {
    fn enter() -> ActiveRun {
        ACTIVE_RUNS.fetch_add(1, Ordering::SeqCst);
        ActiveRun
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        ACTIVE_RUNS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The body of the `main` that [`crate::main!`] generates: configures criterion from the command
/// line, runs `groups`, and writes `allocations.json` for every benchmark criterion saved.
///
/// Built with the `uncounted` feature, it runs the groups through [`run_uncounted`] instead and
/// writes no counts.
pub fn run(groups: &[&GroupFn]) -> ExitCode {
    // Held until `run` returns: every benchmark of the binary runs with CPUs that do not idle.
    let _latency = crate::qos::hold_zero_latency();
    if serve_requested() {
        return serve(groups);
    }
    let output_directory = default_output_directory();
    let criterion = Criterion::default().configure_from_args();
    if !crate::COUNTING {
        return match run_uncounted(criterion, &output_directory, groups) {
            Ok(removed) => {
                eprintln!(
                    "bench-harness: built with the `uncounted` feature: allocations were not \
                     counted and no allocations.json was written ({} stale one(s) removed)",
                    removed.len()
                );
                ExitCode::SUCCESS
            }
            Err(err) => report(&err),
        };
    }
    match run_with(criterion, &output_directory, groups) {
        Ok(summary) => {
            for id in &summary.allocations.unmatched {
                eprintln!(
                    "bench-harness: warning: no results of this run found for {id} under {}; \
                     its allocation counts were not written",
                    output_directory.display()
                );
            }
            if !summary.allocations.written.is_empty() {
                eprintln!(
                    "bench-harness: wrote allocations.json for {} benchmark(s) under {}",
                    summary.allocations.written.len(),
                    output_directory.display()
                );
            }
            if !summary.round_trips.written.is_empty() {
                eprintln!(
                    "bench-harness: wrote roundtrips.json for {} benchmark(s)",
                    summary.round_trips.written.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => report(&err),
    }
}

/// Serve mode: every group runs its set-up, and each benchmark is measured as the controller
/// on stdin asks (see [`crate::serve`]). Criterion measures nothing and no file is written.
fn serve(groups: &[&GroupFn]) -> ExitCode {
    if !crate::alloc::is_installed() && crate::COUNTING {
        return report(&Error::AllocatorNotInstalled);
    }
    SERVING.store(true, Ordering::SeqCst);
    crate::serve::hello();
    let mut criterion = Criterion::default();
    {
        let _active = ActiveRun::enter();
        for group in groups {
            group(&mut criterion);
        }
    }
    crate::serve::send(&Event::Finished);
    ExitCode::SUCCESS
}

fn report(err: &Error) -> ExitCode {
    eprintln!("bench-harness: error: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    ExitCode::FAILURE
}

/// What [`run_with`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// The `allocations.json` files.
    pub allocations: WriteSummary,
    /// The `roundtrips.json` files (of groups that count round trips).
    pub round_trips: WriteSummary,
}

/// Runs `groups` on `criterion` with its results in `output_directory`, then writes the
/// allocation and round-trip counts. [`run`] is this plus command-line parsing; tests call it
/// directly.
pub fn run_with(
    criterion: Criterion,
    output_directory: &Path,
    groups: &[&GroupFn],
) -> Result<RunSummary, Error> {
    if !crate::alloc::is_installed() {
        return Err(Error::AllocatorNotInstalled);
    }
    let started = SystemTime::now();
    let mut criterion = criterion.output_directory(output_directory);
    {
        let _active = ActiveRun::enter();
        for group in groups {
            group(&mut criterion);
        }
    }
    criterion.final_summary();
    Ok(RunSummary {
        allocations: write_allocation_files(output_directory, started, &crate::record::take())?,
        round_trips: write_round_trip_files(
            output_directory,
            started,
            &crate::record::take_round_trips(),
        )?,
    })
}

/// Runs `groups` on `criterion` with its results in `output_directory` without relying on the
/// counting allocator, then removes any `allocations.json` left next to the results of this run
/// (see [`crate::remove_allocation_files`]) and returns the files removed.
///
/// This is the `uncounted` build's run: the timing loops are the same as in a counted run (they
/// still read the counters, which stay at zero without the counting allocator), so the only
/// difference between the two builds is the global allocator, which is what the overhead
/// measurement compares.
pub fn run_uncounted(
    criterion: Criterion,
    output_directory: &Path,
    groups: &[&GroupFn],
) -> Result<Vec<std::path::PathBuf>, Error> {
    let started = SystemTime::now();
    let mut criterion = criterion.output_directory(output_directory);
    {
        let _active = ActiveRun::enter();
        for group in groups {
            group(&mut criterion);
        }
    }
    criterion.final_summary();
    // The records are of no use without counting; drop them so that memory does not hold them.
    drop(crate::record::take());
    // Round trips do not depend on the allocator: they are written as in a counted run.
    write_round_trip_files(
        output_directory,
        started,
        &crate::record::take_round_trips(),
    )?;
    remove_allocation_files(output_directory, started)
}

//! Running benchmark groups and writing the allocation counts afterwards (what `main!` calls).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use criterion::Criterion;

use crate::Error;
use crate::output::{WriteSummary, default_output_directory, write_allocation_files};

/// A benchmark group function, as criterion's `criterion_group!` would take it.
pub type GroupFn = dyn Fn(&mut Criterion);

static ACTIVE_RUNS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn run_is_active() -> bool {
    ACTIVE_RUNS.load(Ordering::SeqCst) > 0
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
pub fn run(groups: &[&GroupFn]) -> ExitCode {
    let output_directory = default_output_directory();
    let criterion = Criterion::default().configure_from_args();
    match run_with(criterion, &output_directory, groups) {
        Ok(summary) => {
            for id in &summary.unmatched {
                eprintln!(
                    "bench-harness: warning: no results of this run found for {id} under {}; \
                     its allocation counts were not written",
                    output_directory.display()
                );
            }
            if !summary.written.is_empty() {
                eprintln!(
                    "bench-harness: wrote allocations.json for {} benchmark(s) under {}",
                    summary.written.len(),
                    output_directory.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bench-harness: error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs `groups` on `criterion` with its results in `output_directory`, then writes the
/// allocation counts. [`run`] is this plus command-line parsing; tests call it directly.
pub fn run_with(
    criterion: Criterion,
    output_directory: &Path,
    groups: &[&GroupFn],
) -> Result<WriteSummary, Error> {
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
    write_allocation_files(output_directory, started, &crate::record::take())
}

//! What every suite's set-up needs around its benchmarks: the runtime, stopping a run that
//! measured the wrong thing, and short extra passes in test and serve modes.

use std::fmt::Display;
use std::future::Future;

use anyhow::Context as _;

/// Worker threads of a suite's tokio runtime: one per core of the 2-core benchmark machine. The
/// benchmark's own future runs on the thread that calls `block_on` (criterion's), the servers'
/// and drivers' tasks on the workers; more workers than cores would only add context switches.
pub const WORKER_THREADS: usize = 2;

/// The multi-thread tokio runtime a suite's benchmarks run on (built once per binary).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .context("building the tokio runtime")
}

/// Stops the bench binary: prints `error: <what>: <the whole error chain>` and exits with
/// code 1.
///
/// A benchmark whose operation fails, or whose counters show that it measured the wrong thing,
/// must not report a number; exiting makes `cargo bench` (and so the gate) fail.
pub fn fail(what: &str, error: impl Into<anyhow::Error>) -> ! {
    eprintln!("error: {what}: {:#}", error.into());
    std::process::exit(1)
}

/// [`fail`]s with `message` unless `condition` holds.
pub fn ensure(what: &str, condition: bool, message: impl Display) {
    if !condition {
        fail(what, anyhow::anyhow!("{message}"));
    }
}

/// Runs `future` on `runtime` and returns its value, or [`fail`]s with `what`.
pub fn block<T, E>(
    runtime: &tokio::runtime::Runtime,
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> T
where
    E: Into<anyhow::Error>,
{
    runtime
        .block_on(future)
        .unwrap_or_else(|error| fail(what, error))
}

/// Whether criterion runs in test mode (`cargo bench -- --test`: every benchmark once).
pub fn test_mode() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

/// Whether extra passes after a benchmark (latency percentiles, checks over many requests)
/// should be short: in test mode, which must stay quick and only run their code, and when
/// serving a paired run, whose verdict does not read them.
pub fn quick_mode() -> bool {
    test_mode() || crate::run::serving()
}

/// Requests of an extra pass: `full` normally, `quick` in [`quick_mode`].
pub fn pass_size(full: usize, quick: usize) -> usize {
    if quick_mode() { quick } else { full }
}

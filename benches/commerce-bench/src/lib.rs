//! Shared set-up of the `cart` and `orders` benchmark suites: the services they measure, the
//! resets that keep their state from drifting, per-request latency histograms, and the checks
//! that fail a run which measured something other than what it claims.
//!
//! - [`BenchEnv`]: a database and Redis namespaces of their own from `provision`, the commerce
//!   services over them configured as `commerce-server` runs them (policy engine with its
//!   decision cache), an in-process gRPC server on 127.0.0.1 and a channel to it.
//! - [`Counters`]: the cart cache's and the decision cache's counters, to assert after a
//!   benchmark that it hit (or missed) the cache as claimed and that Redis never failed.
//! - [`run_batches`]: the timing loop of the concurrent benchmarks (N tasks per iteration, wall
//!   time of each batch only, resets between batches outside the timing).
//! - [`measure_latencies`]: an extra pass after criterion's measurement that records every
//!   request's latency in an HDR histogram, for p50/p95/p99 (criterion's samples are means).
//! - [`refill_uncached`]: many carts reset in one transaction, for the concurrent benchmarks.
//! - [`sequential`], [`concurrent`], [`postgres_floor`]: the group settings both suites use,
//!   and the PostgreSQL round trip they are normalised by.

mod batch;
mod env;
mod latency;
mod reset;
mod settings;

use std::fmt::Display;
use std::future::Future;

pub use batch::{Batches, all_at_once, run_batches};
pub use env::{BenchEnv, Counters, POOL_SIZE, REDIS_TIMEOUT};
pub use latency::{Latencies, Summary, measure_latencies};
pub use reset::{cart_of, refill_uncached};
pub use settings::{concurrent, postgres_floor, sequential};

/// Worker threads of the bench runtime: one per core of the 2-core benchmark machine. The
/// benchmark's own future runs on the thread that calls `block_on` (criterion's), the servers'
/// and drivers' tasks on the workers; more workers than cores would only add context switches.
pub const WORKER_THREADS: usize = 2;

/// The multi-thread tokio runtime every benchmark of a suite runs on (built once per binary).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .context("building the tokio runtime")
}

/// Stops the bench binary: prints `error: <id>: <the whole error chain>` and exits with code 1.
///
/// A benchmark whose operation fails, or whose counters show that it measured the wrong thing,
/// must not report a number; exiting makes `cargo bench` (and so the gate) fail.
pub fn fail(id: &str, error: impl Into<anyhow::Error>) -> ! {
    eprintln!("error: {id}: {:#}", error.into());
    std::process::exit(1)
}

/// [`fail`]s with `message` unless `condition` holds.
pub fn ensure(id: &str, condition: bool, message: impl Display) {
    if !condition {
        fail(id, anyhow::anyhow!("{message}"));
    }
}

/// Runs `future` on `runtime` and returns its value, or [`fail`]s with `id`.
pub fn block<T, E>(
    runtime: &tokio::runtime::Runtime,
    id: &str,
    future: impl Future<Output = Result<T, E>>,
) -> T
where
    E: Into<anyhow::Error>,
{
    runtime
        .block_on(future)
        .unwrap_or_else(|error| fail(id, error))
}

/// Whether criterion runs in test mode (`cargo bench -- --test`: every benchmark once), where
/// the latency passes shrink to a couple of requests so that the mode stays quick.
pub fn test_mode() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

/// Requests of a latency pass: `full` normally, 2 in test mode.
pub fn pass_size(full: usize) -> usize {
    if test_mode() { 2 } else { full }
}

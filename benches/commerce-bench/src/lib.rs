//! Shared set-up of the `cart` and `orders` benchmark suites: the commerce services they
//! measure, the resets that keep their state from drifting, and the checks that fail a run which
//! measured something other than what it claims. Everything that is not about commerce (the
//! runtime, `fail`, latency passes, concurrent batches) is in `bench_harness`.
//!
//! - [`BenchEnv`]: a database and Redis namespaces of their own from `provision`, the commerce
//!   services over them configured as `commerce-server` runs them (policy engine with its
//!   decision cache), an in-process gRPC server on 127.0.0.1 and a channel to it, and the
//!   servers' round-trip counters for `Group::count_round_trips`. The services
//!   record their metrics as `commerce-server --metrics-addr` does (`COMMERCE_BENCH_METRICS=0`,
//!   [`METRICS_ENV`], turns them off), so a paired run against a revision without metrics
//!   measures what they cost.
//! - [`Counters`]: the cart cache's and the decision cache's counters, to assert after a
//!   benchmark that it hit (or missed) the cache as claimed and that Redis never failed.
//! - [`refill_uncached`]: many carts reset in one transaction, for the concurrent benchmarks.
//! - [`sequential`], [`concurrent`], [`postgres_floor`]: the group settings both suites use,
//!   and the PostgreSQL round trip they are normalised by.

mod env;
mod reset;
mod settings;

pub use env::{BenchEnv, Counters, METRICS_ENV, POOL_SIZE, REDIS_TIMEOUT, metrics_requested};
pub use reset::{cart_of, refill_uncached};
pub use settings::{concurrent, postgres_floor, sequential};

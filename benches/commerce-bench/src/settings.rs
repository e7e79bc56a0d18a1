//! What the `cart` and `orders` suites measure alike: their group settings and the PostgreSQL
//! round trip they stand on.

use std::time::Duration;

use bench_harness::{Group, SamplingMode, Throughput};
use tokio::runtime::Runtime;

use bench_harness::fail;

use crate::BenchEnv;

/// Settings of the sequential benchmarks. Their iterations take 20 µs (a cart cache hit) to
/// 6 ms (ten operations of the cart mix); order reads take 0.2 to 1 ms and an order about 2 ms.
/// 3 s of measurement in 30 samples gives hundreds to a hundred thousand iterations, enough for
/// tight medians and for the gate's rank test; 1 s of warm-up fills the pool connections'
/// statement caches and the decision cache. The write benchmarks reset their cart before every
/// iteration outside the timing, which roughly doubles their wall time.
pub fn sequential(group: &mut Group<'_>) {
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Auto)
        .throughput(Throughput::Elements(1));
}

/// Settings of the concurrent benchmarks: a batch of 64 takes tens of milliseconds (64 orders
/// about 40 ms on two cores), too long for linear sampling (which needs 465 iterations for 30
/// samples), so flat sampling with 20 samples of a few batches each.
pub fn concurrent(group: &mut Group<'_>, tasks: usize) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(tasks as u64));
}

/// `<suite>/floor/postgres_select_1`: `SELECT 1` through the suite's pool, a checkout (sqlx
/// pings the connection: one round trip) and the query (one more), with the sequential
/// settings. The gate normalises the suite's PostgreSQL-bound benchmarks by it.
pub fn postgres_floor(group: &mut Group<'_>, suite: &str, runtime: &Runtime, env: &BenchEnv) {
    sequential(group);
    let id = format!("{suite}/floor/postgres_select_1");
    let id = id.as_str();
    group.floor("postgres_select_1", |b| {
        b.iter_async(runtime, || async {
            let one: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&env.pool)
                .await
                .unwrap_or_else(|error| fail(id, error));
            one
        })
    });
}

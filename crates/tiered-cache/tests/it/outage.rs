//! A Redis outage: callers never see it, and Redis is used again soon after it returns.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use tiered_cache::{CacheConfig, TieredCache};

use crate::LoaderFailed;

/// The requirement: L2 is used again within this long after Redis returns.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, provision::Error> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(work).await??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_is_invisible_and_l2_returns_within_five_seconds() -> anyhow::Result<()> {
    let mut server = blocking(provision::RedisServer::launch).await?;
    // The default limits, as a service would run with them.
    let config = CacheConfig::new(server.url(), "outage-test:");
    let cache = TieredCache::<u64>::new(config.clone())?;

    // Redis up: values reach it.
    cache.set("before", 1).await?;
    let peer = TieredCache::<u64>::new(config.clone())?;
    assert_eq!(peer.get("before").await, Some(1));
    assert_eq!(peer.stats().l2_hits, 1);

    // Redis down: every call still succeeds, from L1 or the loader, and quickly.
    let mut server = blocking(move || server.stop().map(|()| server)).await?;
    let down_since = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut i = 0_u64;
    while down_since.elapsed() < Duration::from_millis(2_500) {
        let started = Instant::now();
        let loaded = cache
            .get_or_load(
                &format!("down-{i}"),
                || async move { Ok::<_, LoaderFailed>(i) },
            )
            .await
            .with_context(|| format!("get_or_load during the outage, call {i}"))?;
        ensure!(loaded == i, "loaded {loaded} for {i}");
        cache.set(&format!("set-{i}"), i).await?;
        ensure!(
            cache.get(&format!("set-{i}")).await == Some(i),
            "L1 lost set-{i}"
        );
        ensure!(cache.get("before").await == Some(1), "L1 lost `before`");
        slowest = slowest.max(started.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A cache created while Redis is down works too.
    let late = TieredCache::<u64>::new(config.clone())?;
    assert_eq!(
        late.get_or_load("late", || async { Ok::<_, LoaderFailed>(9) })
            .await?,
        9
    );

    let stats = cache.stats();
    println!("outage: {i} rounds, slowest round {slowest:?}, {stats:?}");
    assert!(stats.l2_errors > 0, "the outage went unnoticed: {stats:?}");
    assert!(
        stats.l2_skipped > 0,
        "the breaker never skipped Redis: {stats:?}"
    );
    assert_eq!(stats.loader_calls, i);
    // A round is five cache calls; with Redis skipped they cost microseconds, and the few
    // that probe Redis cost at most one timeout each.
    assert!(
        slowest < Duration::from_secs(1),
        "slowest round {slowest:?}"
    );

    // Redis back: the same cache instance uses it again within the bound.
    let server = blocking(move || server.start().map(|()| server)).await?;
    let back_since = Instant::now();
    // Write a value from a fresh instance (its own breaker is closed), retrying until Redis
    // accepts it; then wait until the long-lived cache reads it from Redis.
    loop {
        let seeder = TieredCache::<u64>::new(config.clone())?;
        seeder.set("after", 42).await?;
        if seeder.stats().l2_errors == 0 {
            break;
        }
        ensure!(
            back_since.elapsed() < RECOVERY_BOUND,
            "Redis did not accept writes after restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hits_before = cache.stats().l2_hits;
    let recovered = loop {
        if cache.get("after").await == Some(42) {
            break back_since.elapsed();
        }
        ensure!(
            back_since.elapsed() < RECOVERY_BOUND,
            "no L2 hit within {RECOVERY_BOUND:?} of Redis returning: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("L2 hit again {recovered:?} after Redis returned");
    assert!(recovered < RECOVERY_BOUND);
    assert_eq!(cache.stats().l2_hits, hits_before + 1);
    drop(server);
    Ok(())
}

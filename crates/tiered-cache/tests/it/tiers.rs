//! Both tiers working together: Redis shares entries between cache instances (as between
//! processes), under the namespace, with a time-to-live, in postcard encoding.

use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tiered_cache::{CacheStats, TieredCache};

use crate::{LoaderFailed, config};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<String>,
    total_cents: i64,
}

fn order() -> Order {
    Order {
        id: 7,
        items: vec!["book".to_owned(), "pen".to_owned()],
        total_cents: 1_999,
    }
}

#[tokio::test]
async fn redis_shares_entries_between_instances() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let writer = TieredCache::<Order>::new(config(&namespace))?;
    let reader = TieredCache::<Order>::new(config(&namespace))?;
    writer.set("order:7", order()).await?;

    assert_eq!(reader.get("order:7").await, Some(order()));
    assert_eq!(
        reader.stats(),
        CacheStats {
            l1_misses: 1,
            l2_hits: 1,
            ..CacheStats::default()
        }
    );
    // The Redis hit filled the reader's L1.
    assert_eq!(reader.get("order:7").await, Some(order()));
    assert_eq!(reader.stats().l1_hits, 1);
    assert_eq!(writer.stats().l2_errors + reader.stats().l2_errors, 0);
    Ok(())
}

#[tokio::test]
async fn invalidate_l1_keeps_the_redis_copy() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let cache = TieredCache::<Order>::new(config(&namespace))?;
    cache.set("order:7", order()).await?;
    cache.invalidate_l1("order:7").await;

    // The next read misses L1 and is answered by Redis, which fills L1 again.
    assert_eq!(cache.get("order:7").await, Some(order()));
    assert_eq!(cache.get("order:7").await, Some(order()));
    assert_eq!(
        cache.stats(),
        CacheStats {
            l1_hits: 1,
            l1_misses: 1,
            l2_hits: 1,
            ..CacheStats::default()
        }
    );
    Ok(())
}

#[tokio::test]
async fn loaded_values_are_shared_through_redis() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let first = TieredCache::<Order>::new(config(&namespace))?;
    let second = TieredCache::<Order>::new(config(&namespace))?;
    let loaded = first
        .get_or_load("order:7", || async { Ok::<_, LoaderFailed>(order()) })
        .await?;
    assert_eq!(loaded, order());
    // The second instance must not need its loader: the value is in Redis.
    let shared = second
        .get_or_load("order:7", || async { Err::<Order, _>(LoaderFailed) })
        .await?;
    assert_eq!(shared, order());
    assert_eq!(first.stats().loader_calls, 1);
    assert_eq!(first.stats().l2_misses, 1);
    assert_eq!(second.stats().loader_calls, 0);
    assert_eq!(second.stats().l2_hits, 1);
    Ok(())
}

#[tokio::test]
async fn delete_clears_both_tiers() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let cache = TieredCache::<u32>::new(config(&namespace))?;
    let other = TieredCache::<u32>::new(config(&namespace))?;
    cache.set("k", 1).await?;
    cache.delete("k").await;
    assert_eq!(cache.get("k").await, None);
    assert_eq!(other.get("k").await, None);
    assert_eq!(other.stats().l2_misses, 1);
    Ok(())
}

#[tokio::test]
async fn namespaces_isolate_caches() -> anyhow::Result<()> {
    let services = provision::shared()?;
    let (one, two) = (services.redis_namespace(), services.redis_namespace());
    TieredCache::<u32>::new(config(&one))?.set("k", 1).await?;
    assert_eq!(TieredCache::<u32>::new(config(&two))?.get("k").await, None);
    assert_eq!(
        TieredCache::<u32>::new(config(&one))?.get("k").await,
        Some(1)
    );
    Ok(())
}

#[tokio::test]
async fn redis_holds_postcard_bytes_under_the_prefix_with_a_ttl() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let l2_ttl = Duration::from_secs(30);
    let cache =
        TieredCache::<Order>::new(config(&namespace).with_ttl(Duration::from_secs(60), l2_ttl))?;
    cache.set("order:7", order()).await?;

    let client = redis::Client::open(namespace.url())?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let key = format!("{}order:7", namespace.prefix());
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await?;
    assert_eq!(bytes, postcard::to_stdvec(&order())?);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await?;
    assert!(pttl > 0 && pttl <= 30_000, "PTTL {pttl}");
    Ok(())
}

#[tokio::test]
async fn redis_entries_expire() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let short = config(&namespace).with_ttl(Duration::from_secs(60), Duration::from_millis(200));
    TieredCache::<u32>::new(short)?.set("k", 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reader = TieredCache::<u32>::new(config(&namespace))?;
    assert_eq!(reader.get("k").await, None);
    assert_eq!(reader.stats().l2_misses, 1);
    Ok(())
}

#[tokio::test]
async fn undecodable_redis_value_is_a_miss() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    // A string's bytes do not decode as a bool (the first byte, its length, is 5).
    TieredCache::<String>::new(config(&namespace))?
        .set("k", "hello".to_owned())
        .await?;
    let flags = TieredCache::<bool>::new(config(&namespace))?;
    assert_eq!(flags.get("k").await, None);
    assert_eq!(flags.stats().codec_errors, 1);
    let loaded = flags
        .get_or_load("k", || async { Ok::<_, LoaderFailed>(true) })
        .await?;
    assert!(loaded);
    // The loader's value replaced the undecodable one in Redis.
    let fresh = TieredCache::<bool>::new(config(&namespace))?;
    assert_eq!(fresh.get("k").await, Some(true));
    Ok(())
}

//! The Redis cart cache: a repeated read is a hit, a write invalidates, a stale fill loses to a
//! newer invalidation, and a Redis outage costs nothing but the cache.

use std::time::Duration;

use anyhow::Context as _;
use commerce::cache::CacheStats;
use commerce::cart::Cart;
use commerce::grpc::identity::request;
use commerce::grpc::proto::{AddItemRequest, GetCartRequest};
use commerce::ids::TenantId;
use provision::RedisServer;
use redis::AsyncCommands as _;

use crate::support::{Env, cache_config, customer};

/// The fields of a cart's cache entry: (version, whether it holds a cart).
async fn entry(env: &Env, key: &str) -> anyhow::Result<(Option<i64>, bool)> {
    let client = redis::Client::open(env.redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let version: Option<i64> = conn.hget(key, "v").await?;
    let has_data: bool = conn.hexists(key, "d").await?;
    Ok((version, has_data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_get_is_a_redis_hit_and_a_write_invalidates() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(500, 10), (700, 10)]).await?;
    let me = customer(tenant);
    let key = env.cache().key(me.tenant, me.user);
    let add = |i: usize| {
        request(
            &me,
            AddItemRequest {
                product_id: ids[i].to_string(),
                quantity: 1,
            },
        )
    };
    let get = || request(&me, GetCartRequest::default());

    let written = api.carts.add_item(add(0)).await?.into_inner();
    // The write left a tombstone for its version, not a cart.
    assert_eq!(entry(&env, &key).await?, (Some(written.version), false));
    let before = env.cache().stats();

    let first = api.carts.get_cart(get()).await?.into_inner();
    let after_first = env.cache().stats();
    assert_eq!(after_first.misses, before.misses + 1, "{after_first:?}");
    assert_eq!(after_first.hits, before.hits);
    assert_eq!(entry(&env, &key).await?, (Some(written.version), true));

    // Change the product's name behind the cache's back: a hit still shows the cached name,
    // which proves the second read never reached PostgreSQL.
    sqlx::query("UPDATE products SET name = 'Renamed' WHERE id = $1")
        .bind(ids[0])
        .execute(&env.pool)
        .await?;
    let second = api.carts.get_cart(get()).await?.into_inner();
    let after_second = env.cache().stats();
    assert_eq!(after_second.hits, after_first.hits + 1, "{after_second:?}");
    assert_eq!(after_second.misses, after_first.misses);
    assert_eq!(second, first);
    assert_eq!(second.items[0].name, "Product 0");

    // A write invalidates: the next read misses and sees both the new item and the new name.
    let written = api.carts.add_item(add(1)).await?.into_inner();
    assert_eq!(entry(&env, &key).await?, (Some(written.version), false));
    let third = api.carts.get_cart(get()).await?.into_inner();
    let after_third = env.cache().stats();
    assert_eq!(
        after_third.misses,
        after_second.misses + 1,
        "{after_third:?}"
    );
    assert_eq!(third.items.len(), 2);
    assert_eq!(third.total_cents, 500 + 700);
    assert!(third.items.iter().any(|item| item.name == "Renamed"));
    assert_eq!(third.version, written.version);
    let fourth = api.carts.get_cart(get()).await?.into_inner();
    assert_eq!(env.cache().stats().hits, after_third.hits + 1);
    assert_eq!(fourth, third);
    assert_eq!(env.cache().stats().errors, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fill_loses_to_a_newer_invalidation() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let cache = env.cache();
    let (tenant, user) = (TenantId::new_random(), commerce::ids::UserId::new_random());
    let stale = Cart {
        version: 4,
        ..Cart::default()
    };
    // A reader read version 4 from the database; a writer then committed version 5 and
    // invalidated; only now does the reader try to fill.
    cache.invalidate(tenant, user, 5).await;
    cache.fill(tenant, user, &stale).await;
    assert!(
        cache.get(tenant, user).await.is_none(),
        "the stale cart must not be served"
    );
    // A fill of the current version is accepted, and an older invalidation does not remove it.
    let current = Cart {
        version: 5,
        ..Cart::default()
    };
    cache.fill(tenant, user, &current).await;
    cache.invalidate(tenant, user, 3).await;
    assert_eq!(cache.get(tenant, user).await, Some(current));
    assert_eq!(cache.stats().errors, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carts_work_through_a_redis_outage() -> anyhow::Result<()> {
    let mut redis = tokio::task::spawn_blocking(RedisServer::launch)
        .await?
        .context("launching a Redis server of the test's own")?;
    let namespace = provision::shared()?.redis_namespace();
    let env = Env::with_cache(namespace, &cache_config(redis.url(), "outage:")).await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(300, 10), (900, 10)]).await?;
    let me = customer(tenant);
    let add = |i: usize, quantity| {
        request(
            &me,
            AddItemRequest {
                product_id: ids[i].to_string(),
                quantity,
            },
        )
    };
    let get = || request(&me, GetCartRequest::default());

    api.carts.add_item(add(0, 2)).await?;
    api.carts.get_cart(get()).await?;
    let cached = api.carts.get_cart(get()).await?.into_inner();
    assert_eq!(env.cache().stats().hits, 1, "Redis is up and serving hits");

    let mut redis = tokio::task::spawn_blocking(move || redis.stop().map(|()| redis))
        .await?
        .context("stopping Redis")?;
    let down = env.cache().stats();

    let cart = api.carts.get_cart(get()).await?.into_inner();
    assert_eq!(cart, cached, "reads fall back to PostgreSQL");
    let cart = api.carts.add_item(add(1, 1)).await?.into_inner();
    assert_eq!(cart.total_cents, 2 * 300 + 900, "writes still succeed");
    let cart = api.carts.get_cart(get()).await?.into_inner();
    assert_eq!(cart.total_cents, 2 * 300 + 900, "and reads see them");
    let during = env.cache().stats();
    assert!(
        during.errors > down.errors,
        "the outage was noticed: {during:?}"
    );
    assert_eq!(
        during.hits, down.hits,
        "no hits while Redis is down: {during:?}"
    );

    // Redis comes back (empty: it has no persistence); after the cool-down the cache recovers
    // by itself and serves the current cart, not the one cached before the outage.
    let _redis = tokio::task::spawn_blocking(move || redis.start().map(|()| redis))
        .await?
        .context("restarting Redis")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = api.carts.get_cart(get()).await?.into_inner();
        assert_eq!(got, cart);
        let stats: CacheStats = env.cache().stats();
        if stats.hits > during.hits {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the cache did not recover: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

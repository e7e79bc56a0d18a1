//! The Redis cart cache: a repeated read is a hit, a write invalidates, a stale fill loses to a
//! newer invalidation, a Redis outage costs nothing but the cache, and a Redis that is only slow
//! does not count as one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use commerce::cache::{CacheConfig, CacheStats, CartCache};
use commerce::cart::Cart;
use commerce::grpc::identity::request;
use commerce::grpc::proto::{AddItemRequest, GetCartRequest};
use commerce::ids::{TenantId, UserId};
use provision::{RedisNamespace, RedisServer};
use redis::AsyncCommands as _;
use sqlx::Connection as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

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

/// Reads that miss one cart at the same moment load it from PostgreSQL once. With the carts
/// table locked, the first load waits in PostgreSQL and the reads arriving meanwhile wait for
/// it; before, each sent a load of its own and took a pooled connection for it (a cold cache
/// under load swamped the pool: the `capacity` load profile's stampede).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_miss_one_cart_together_load_it_once() -> anyhow::Result<()> {
    const READS: u64 = 20;
    let env = Env::new().await?;
    let api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(500, 10)]).await?;
    let me = customer(tenant);
    let add = AddItemRequest {
        product_id: ids[0].to_string(),
        quantity: 2,
    };
    // The write leaves a tombstone: the reads below miss.
    let written = api
        .carts
        .clone()
        .add_item(request(&me, add))
        .await?
        .into_inner();

    // Connections of the test's own: the service's pool is what is being counted.
    let options = env.pool.connect_options();
    let mut locker = sqlx::PgConnection::connect_with(&options).await?;
    let mut observer = sqlx::PgConnection::connect_with(&options).await?;
    sqlx::query("BEGIN").execute(&mut locker).await?;
    sqlx::query("LOCK TABLE carts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await?;

    let before = env.cache().stats();
    let reads: Vec<_> = (0..READS)
        .map(|_| {
            let mut carts = api.carts.clone();
            let get = request(&me, GetCartRequest::default());
            tokio::spawn(async move { carts.get_cart(get).await })
        })
        .collect();
    let loads_waiting = async |observer: &mut sqlx::PgConnection| {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND wait_event_type = 'Lock' AND query LIKE '%FROM carts c%'",
        )
        .fetch_one(observer)
        .await
    };
    // Every read has found no cart in the cache (missed it, or skipped it or timed out on a
    // slow machine), and a load waits for the lock.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let without_cart = |stats: CacheStats| stats.misses + stats.bypassed + stats.errors;
    while without_cart(env.cache().stats().since(&before)) < READS
        || loads_waiting(&mut observer).await? == 0
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the reads did not all miss and wait: {:?}",
            env.cache().stats().since(&before)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Time for loads of their own, had the reads sent any.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = loads_waiting(&mut observer).await?;
    sqlx::query("COMMIT").execute(&mut locker).await?;
    assert_eq!(waiting, 1, "loads of the cart waiting in PostgreSQL");

    for read in reads {
        let cart = read
            .await?
            .context("a read that shared the load")?
            .into_inner();
        assert_eq!(cart.version, written.version);
        assert_eq!(cart.items.len(), 1);
        assert_eq!(cart.items[0].quantity, 2);
    }
    // The load filled the cache: the next read is a hit.
    let after = env.cache().stats();
    api.carts
        .clone()
        .get_cart(request(&me, GetCartRequest::default()))
        .await?;
    assert_eq!(env.cache().stats().since(&after).hits, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fill_loses_to_a_newer_invalidation() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let cache = env.cache();
    let (tenant, user) = (TenantId::new_random(), UserId::new_random());
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

/// A TCP proxy in front of Redis that holds each of Redis' answers back for a while (set at
/// any time), as a Redis too busy to answer in time, or one that hangs, would.
struct SlowProxy {
    url: String,
    delay_ms: Arc<AtomicU64>,
}

impl SlowProxy {
    /// In front of the Redis of `url` (`redis://host:port/db`); the proxy's URL keeps the db.
    async fn start(url: &str) -> anyhow::Result<SlowProxy> {
        let rest = url.strip_prefix("redis://").context("a redis:// URL")?;
        let (target, db) = rest.split_once('/').unwrap_or((rest, ""));
        let target = target.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("redis://{}/{db}", listener.local_addr()?);
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = Arc::clone(&delay_ms);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let delay = Arc::clone(&delay);
                tokio::spawn(async move {
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let requests = tokio::io::copy(&mut from_client, &mut to_server);
                    let answers = async {
                        let mut buffer = vec![0; 64 * 1024];
                        loop {
                            let n = from_server.read(&mut buffer).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            let ms = delay.load(Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            to_client.write_all(&buffer[..n]).await?;
                        }
                    };
                    let _ = tokio::join!(requests, answers);
                });
            }
        });
        Ok(SlowProxy { url, delay_ms })
    }

    fn delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
}

/// A cart cache reaching `namespace`'s Redis through a [`SlowProxy`] (no delay yet), with a
/// 100 ms timeout and a 1 s cool-down.
async fn slow_cache(namespace: &RedisNamespace) -> anyhow::Result<(SlowProxy, CartCache)> {
    let proxy = SlowProxy::start(namespace.url()).await?;
    let mut config = CacheConfig::new(&proxy.url, namespace.prefix());
    config.timeout = Duration::from_millis(100);
    config.cooldown = Duration::from_secs(1);
    let cache = CartCache::connect(&config)?;
    Ok((proxy, cache))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_keeps_the_cache_and_a_silent_one_turns_it_off() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let (proxy, cache) = slow_cache(&namespace).await?;
    let (tenant, user) = (TenantId::new_random(), UserId::new_random());
    // Connected and answering (the first connection may take longer than the timeout on a busy
    // machine; then the next call connects again).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().misses == 0 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "Redis never answered through the proxy: {:?}",
            cache.stats()
        );
        assert!(cache.get(tenant, user).await.is_none());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let start = cache.stats();

    // Slow: answers take 300 ms, longer than the timeout (100 ms), far less than the check's
    // PING may take (the cool-down, 1 s). The read keeps waiting and uses the late answer; the
    // check finds Redis there, so the next read asks Redis again instead of skipping it.
    proxy.delay(Duration::from_millis(300));
    assert!(cache.get(tenant, user).await.is_none());
    let slow = cache.stats().since(&start);
    assert_eq!(
        (slow.misses, slow.late, slow.errors),
        (1, 1, 0),
        "the late answer was used: {slow:?}"
    );
    // A fill waits for its late answer too, and lands (redis' multiplexed connection never
    // sends a command whose caller stopped waiting before it was written, so a fill given up
    // under load was never made).
    let cart = Cart {
        version: 3,
        ..Cart::default()
    };
    let asked = tokio::time::Instant::now();
    cache.fill(tenant, user, &cart).await;
    let waited = asked.elapsed();
    let filled = cache.stats().since(&start);
    assert!(
        waited >= Duration::from_millis(250),
        "the fill waited for its answer: {waited:?}"
    );
    assert_eq!(
        (filled.late - slow.late, filled.errors),
        (1, 0),
        "the fill's late answer: {filled:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.delay(Duration::ZERO);
    assert_eq!(cache.get(tenant, user).await, Some(cart), "the fill landed");
    cache.invalidate(tenant, user, 4).await;
    assert!(cache.get(tenant, user).await.is_none());
    let after = cache.stats().since(&start);
    // The read after the tombstone misses it, or skips the cache if the tombstone was not yet
    // known to have landed when the write returned (a slow machine).
    assert_eq!(
        (
            after.misses - slow.misses + after.bypassed,
            after.hits,
            after.errors
        ),
        (1, 1, 0),
        "a slow Redis is still used: {after:?}"
    );

    // Silent: no answer at all. The read gives up after the cool-down (1 s); the check's PING
    // gets no answer either and starts the cool-down, in which calls skip Redis.
    proxy.delay(Duration::from_secs(30));
    let started = tokio::time::Instant::now();
    assert!(cache.get(tenant, user).await.is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1500),
        "a read waits for a silent Redis up to the cool-down: {waited:?}"
    );
    let deadline = started + Duration::from_secs(3);
    loop {
        assert!(cache.get(tenant, user).await.is_none());
        if cache.stats().since(&start).bypassed > after.bypassed {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "a silent Redis was never bypassed: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // When the cool-down is over (each check without an answer renews it), Redis still silent:
    // a read waits only the timeout, as in any outage.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        let before = cache.stats();
        let asked = tokio::time::Instant::now();
        assert!(cache.get(tenant, user).await.is_none());
        let waited = asked.elapsed();
        let read = cache.stats().since(&before);
        if read.bypassed > 0 {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the cool-down never ended: {:?}",
                cache.stats()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(
            read.errors, 1,
            "the read asked Redis and timed out: {read:?}"
        );
        assert!(
            waited < Duration::from_millis(500),
            "once found silent, Redis costs a read the timeout only: {waited:?}"
        );
        break;
    }
    Ok(())
}

/// A write whose caller goes away while it waits for its tombstone (tonic drops a call's future
/// when its client cancels) still makes the tombstone: the rest of it goes on in a task of its
/// own. On a single-threaded runtime nothing else runs between the write's first poll (which
/// hands the command to the multiplexed connection) and its drop, so the command is not yet
/// written when the write goes away: dropped with it, it would never be sent (redis skips a
/// command whose caller stopped waiting), and other processes would read the stale entry.
#[tokio::test(flavor = "current_thread")]
async fn a_write_whose_caller_goes_away_still_makes_its_tombstone() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let (proxy, cache) = slow_cache(&namespace).await?;
    let (tenant, user) = (TenantId::new_random(), UserId::new_random());
    let mut direct = redis::Client::open(namespace.url())?
        .get_multiplexed_async_connection()
        .await?;
    let version = async |direct: &mut redis::aio::MultiplexedConnection| {
        redis::cmd("HGET")
            .arg(cache.key(tenant, user))
            .arg("v")
            .query_async::<Option<i64>>(direct)
            .await
    };
    // Connected, and a first tombstone landed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while version(&mut direct).await? != Some(4) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no tombstone landed through the proxy: {:?}",
            cache.stats()
        );
        cache.invalidate(tenant, user, 4).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.delay(Duration::from_millis(300));
    let mut write = Box::pin(cache.invalidate(tenant, user, 5));
    assert!(futures::poll!(&mut write).is_pending(), "the write waits");
    drop(write);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        version(&mut direct).await?,
        Some(5),
        "the dropped write's tombstone landed"
    );
    Ok(())
}

/// The reads of the cache that many requests make at once go to Redis in pipelines
/// (`read_batches`): each read still gets its own cart, and one read's error stays its own (it
/// is counted, and starts no cool-down that would send the others to PostgreSQL). Each read is
/// a task of its own, spawned from a task of the runtime, as each request is in the server.
/// This checks how answers and errors are handed out, not that reads are batched: a burst of
/// spawned reads like this one is coalesced by redis' connection too (the batching's effect on
/// a server is measured in the README).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_sent_together_each_get_their_own_answer() -> anyhow::Result<()> {
    const READS: i64 = 32;
    let env = Env::new().await?;
    let cache = env.cache();
    let carts: Vec<(TenantId, UserId, Cart)> = (1..=READS)
        .map(|version| {
            let cart = Cart {
                version,
                ..Cart::default()
            };
            (TenantId::new_random(), UserId::new_random(), cart)
        })
        .collect();
    for (tenant, user, cart) in &carts {
        cache.fill(*tenant, *user, cart).await;
    }
    // A key that holds a string where a cart's hash belongs: Redis answers its read with an
    // error (WRONGTYPE), in the middle of the others.
    let (tenant, user) = (TenantId::new_random(), UserId::new_random());
    let client = redis::Client::open(env.redis.url())?;
    let mut direct = client.get_multiplexed_async_connection().await?;
    let () = direct.set(cache.key(tenant, user), "not a cart").await?;
    let before = cache.stats();

    let reader = cache.clone();
    let mut wanted: Vec<_> = carts.iter().map(|(t, u, _)| (*t, *u)).collect();
    wanted.insert(carts.len() / 2, (tenant, user));
    let found = tokio::spawn(async move {
        let reads: Vec<_> = wanted
            .into_iter()
            .map(|(tenant, user)| {
                let cache = reader.clone();
                tokio::spawn(async move { cache.get(tenant, user).await })
            })
            .collect();
        let mut found = Vec::new();
        for read in reads {
            found.push(read.await?);
        }
        anyhow::Ok(found)
    })
    .await??;

    let stats = cache.stats();
    let mut found = found.into_iter();
    for (i, (_, _, cart)) in carts.iter().enumerate() {
        if i == carts.len() / 2 {
            let wrong = found.next();
            assert_eq!(wrong, Some(None), "the key of another type");
        }
        assert_eq!(found.next().flatten().as_ref(), Some(cart), "read {i}");
    }
    assert_eq!(stats.hits, before.hits + READS as u64, "{stats:?}");
    assert_eq!(stats.errors, before.errors + 1, "{stats:?}");
    assert_eq!(stats.bypassed, before.bypassed, "{stats:?}");
    // And the reads after it still go to Redis.
    let (tenant, user, cart) = &carts[0];
    assert_eq!(cache.get(*tenant, *user).await.as_ref(), Some(cart));
    Ok(())
}

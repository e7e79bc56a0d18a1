//! The `cache` suite: the tiered cache's in-process tier (moka) and Redis tier side by side, on a
//! real Redis from `provision`, with the raw Redis round trip as the floor.
//!
//! What each benchmark measures and how its state is kept from drifting is in
//! `docs/suites.md` (section `cache`); the short version is next to each benchmark below.

use std::cell::OnceCell;
use std::hint::black_box;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bench_harness::{BatchSize, Criterion, Group, Latencies, Throughput, fail, pass_size};
use cache::{KeyPicker, Product, RoundRobin, keys, mixed_90_10, product};
use redis::aio::ConnectionManager;
use tiered_cache::{CacheConfig, CacheStats, Capacity, TieredCache};
use tokio::runtime::Runtime;

/// The key of the single-key benchmarks (`l1_hit`, `get_or_load/hit`).
const HOT: &str = "hot:0000000";
/// A key that is never written, for `miss`.
const ABSENT: &str = "absent:0000000";
/// Keys per round-robin set. Batched benchmarks take one key per iteration and reset it in
/// their setup, so a batch must hold fewer iterations than this for its keys to be distinct.
const ROUND_ROBIN_KEYS: usize = 1_024;
/// Iterations per batch of the batched benchmarks: well below [`ROUND_ROBIN_KEYS`].
const BATCH: u64 = 256;
/// Keys of the concurrent mixed workload, all present in both tiers.
const MIXED_KEYS: usize = 10_000;
/// L1 capacity of the eviction benchmark, filled before it starts.
const EVICTION_CAPACITY: u64 = 10_000;
/// Lifetimes far beyond the run, so that no entry expires while it is being measured.
const TTL: Duration = Duration::from_secs(3_600);

/// The tiered cache as the benchmarks use it: L1 big enough for every key the suite writes (it
/// never evicts, so the benchmarks other than `eviction` measure lookups, not evictions),
/// lifetimes beyond the run, and a Redis timeout generous enough that a slow moment of the
/// loaded machine is not turned into an error that opens the breaker.
fn config(url: &str, prefix: &str) -> CacheConfig {
    CacheConfig::new(url, prefix)
        .with_l1_capacity(Capacity::Entries(100_000))
        .with_ttl(TTL, TTL)
        .with_l2_limits(Duration::from_secs(5), Duration::from_secs(1))
}

/// A cache without Redis holding `entries` entries, for the L1 size and eviction benchmarks.
fn filled_l1(runtime: &Runtime, capacity: u64, keys: &[String]) -> TieredCache<Product> {
    let config = CacheConfig::l1_only()
        .with_l1_capacity(Capacity::Entries(capacity))
        .with_ttl(TTL, TTL);
    let cache = TieredCache::new(config).unwrap_or_else(|error| {
        fail(
            "cache",
            anyhow::anyhow!("invalid L1 configuration: {error}"),
        )
    });
    runtime.block_on(async {
        for key in keys {
            cache.set(key, product()).await.unwrap_or_else(|error| {
                fail(
                    "cache",
                    anyhow::anyhow!("cannot encode the product: {error}"),
                )
            });
        }
    });
    cache
}

struct Fixture {
    cache: TieredCache<Product>,
    /// A connection of the same client stack as the cache's (redis' `ConnectionManager`), for
    /// the floor.
    redis: ConnectionManager,
    floor_key: String,
    l2_keys: Vec<String>,
    set_keys: Vec<String>,
    delete_keys: Vec<String>,
    load_keys: Vec<String>,
    mixed_keys: Arc<Vec<String>>,
    /// The Redis server's command counters, for `roundtrips.json`.
    round_trips: Arc<provision::RoundTripCounter>,
    // Deletes the suite's Redis keys when the run ends.
    _namespace: provision::RedisNamespace,
}

fn setup(runtime: &Runtime) -> anyhow::Result<Fixture> {
    let services = provision::shared().context("cannot provide Redis")?;
    let namespace = services.redis_namespace();
    let cache = TieredCache::new(config(namespace.url(), namespace.prefix()))
        .context("invalid cache configuration")?;
    let client = redis::Client::open(namespace.url()).context("invalid Redis URL")?;
    let fixture = Fixture {
        cache,
        redis: runtime
            .block_on(ConnectionManager::new(client))
            .context("cannot connect to Redis")?,
        floor_key: format!("{}floor", namespace.prefix()),
        l2_keys: keys("l2", ROUND_ROBIN_KEYS),
        set_keys: keys("set", ROUND_ROBIN_KEYS),
        delete_keys: keys("delete", ROUND_ROBIN_KEYS),
        load_keys: keys("load", ROUND_ROBIN_KEYS),
        mixed_keys: Arc::new(keys("mixed", MIXED_KEYS)),
        round_trips: Arc::new(services.redis_round_trip_counter()),
        _namespace: namespace,
    };
    runtime.block_on(async {
        // The floor reads the very bytes the cache stores for a product.
        let written = [HOT, "floor"]
            .into_iter()
            .chain(fixture.l2_keys.iter().map(String::as_str))
            .chain(fixture.set_keys.iter().map(String::as_str))
            .chain(fixture.mixed_keys.iter().map(String::as_str));
        for key in written {
            fixture.cache.set(key, product()).await?;
        }
        anyhow::Ok(())
    })?;
    let stats = fixture.cache.stats();
    anyhow::ensure!(
        stats.l2_errors == 0 && stats.l2_skipped == 0,
        "Redis failed while the fixtures were written: {stats:?}"
    );
    Ok(fixture)
}

/// Shared by every benchmark of the group, the floor included, so that the floor is measured
/// exactly like the operations it is set against. 100 samples give the gate's rank test its
/// power; 2 s of measurement hold at least 5,050 iterations (criterion's linear ramp) even at
/// 300 µs per Redis round trip; half a second of warm-up is thousands of iterations of the
/// slowest benchmark, enough to settle the connection and moka's housekeeping; 20,000
/// bootstrap resamples instead of 100,000 cut criterion's analysis time several-fold and
/// still give the confidence interval of the median to well under a percent of itself. With
/// the 1M-entry fill this keeps the suite near a minute (budget: 110 s).
fn configure(group: &mut Group<'_>) {
    group
        .sample_size(100)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .nresamples(20_000);
}

/// Tracks what each benchmark did to the cache's counters and collects what went wrong.
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Runs `bench`, then holds the counters it moved to `check` (see [`cache::verify`]).
    fn run(
        &mut self,
        cache: &TieredCache<Product>,
        id: &str,
        bench: impl FnOnce(),
        check: impl FnOnce(&CacheStats) -> Option<String>,
    ) {
        let before = cache.stats();
        bench();
        let delta = cache.stats().since(&before);
        if let Err(problem) = cache::verify(id, &delta, check) {
            self.failures.push(problem);
        }
    }
}

fn cache(c: &mut Criterion) {
    let runtime = bench_harness::runtime().unwrap_or_else(|error| fail("cache", error));
    let fixture = setup(&runtime).unwrap_or_else(|error| fail("cache", error));
    let Fixture {
        cache,
        redis,
        floor_key,
        ..
    } = &fixture;
    let mut checks = Checks {
        failures: Vec::new(),
    };
    let mut group = Group::new(c, "cache");
    configure(&mut group);
    let counter = Arc::clone(&fixture.round_trips);
    group.count_round_trips(move || counter.read());

    // The floor: one GET round trip on the same client stack, nothing else.
    let floor_get = || {
        let mut redis = redis.clone();
        async move {
            redis::cmd("GET")
                .arg(floor_key)
                .query_async::<Option<Vec<u8>>>(&mut redis)
                .await
                .unwrap_or_else(|error| fail("cache: the Redis floor", error))
        }
    };
    let mut ran = false;
    group.floor("redis_get", |b| {
        ran = true;
        b.iter_async(&runtime, floor_get);
    });
    if ran {
        let latencies = runtime.block_on(async {
            let mut latencies = Latencies::new();
            for _ in 0..pass_size(10_000, 20) {
                let start = Instant::now();
                black_box(floor_get().await);
                latencies.record(start.elapsed());
            }
            latencies
        });
        eprintln!("latency {}", latencies.summary("cache/floor/redis_get"));
    }
    // The machine floors (CPU, memory, allocator): what the gate normalises by, per resource.
    bench_harness::floors::register(&mut group);

    // A hit in L1: the key was written in the setup and is never removed.
    checks.run(
        cache,
        "cache/l1_hit",
        || {
            let mut ran = false;
            group.bench("l1_hit", |b| {
                ran = true;
                b.iter_async(&runtime, || cache.get(HOT));
            });
            if ran {
                let latencies = runtime.block_on(async {
                    let mut latencies = Latencies::new();
                    for _ in 0..pass_size(200_000, 20) {
                        let start = Instant::now();
                        black_box(cache.get(HOT).await);
                        latencies.record(start.elapsed());
                    }
                    latencies
                });
                eprintln!("latency {}", latencies.summary("cache/l1_hit"));
            }
        },
        |delta| (delta.l1_misses != 0).then(|| "an L1 hit missed L1".to_owned()),
    );

    // A hit in Redis: each iteration reads a key that is in Redis and was dropped from L1 in the
    // setup (outside the timing); the read then fills L1 again, as a real L2 hit does.
    checks.run(
        cache,
        "cache/l2_hit",
        || {
            let mut turn = RoundRobin::new(&fixture.l2_keys);
            let mut ran = false;
            group.bench("l2_hit", |b| {
                ran = true;
                b.iter_batched_async(
                    &runtime,
                    || {
                        let key = turn.next_key();
                        runtime.block_on(cache.invalidate_l1(key));
                        key
                    },
                    |key| cache.get(key),
                    BatchSize::NumIterations(BATCH),
                );
            });
            if ran {
                let latencies = runtime.block_on(async {
                    let mut latencies = Latencies::new();
                    for _ in 0..pass_size(10_000, 20) {
                        let key = turn.next_key();
                        cache.invalidate_l1(key).await;
                        let start = Instant::now();
                        black_box(cache.get(key).await);
                        latencies.record(start.elapsed());
                    }
                    latencies
                });
                eprintln!("latency {}", latencies.summary("cache/l2_hit"));
            }
        },
        |delta| {
            (delta.l1_hits != 0 || delta.l2_misses != 0 || delta.l2_hits != delta.l1_misses)
                .then(|| "an L2 hit was answered by L1 or missed Redis".to_owned())
        },
    );

    // A miss in both tiers: a key that nobody writes, so nothing is stored and nothing grows.
    checks.run(
        cache,
        "cache/miss",
        || {
            let mut ran = false;
            group.bench("miss", |b| {
                ran = true;
                b.iter_async(&runtime, || cache.get(ABSENT));
            });
            if ran {
                let latencies = runtime.block_on(async {
                    let mut latencies = Latencies::new();
                    for _ in 0..pass_size(10_000, 20) {
                        let start = Instant::now();
                        black_box(cache.get(ABSENT).await);
                        latencies.record(start.elapsed());
                    }
                    latencies
                });
                eprintln!("latency {}", latencies.summary("cache/miss"));
            }
        },
        |delta| {
            (delta.l1_hits != 0 || delta.l2_hits != 0)
                .then(|| "a miss found the key in a tier".to_owned())
        },
    );

    // A write to both tiers, overwriting keys written in the setup (a fixed set: nothing grows).
    // The value is cloned in the setup, so the timing holds only what `set` does.
    checks.run(
        cache,
        "cache/set",
        || {
            let mut turn = RoundRobin::new(&fixture.set_keys);
            group.bench("set", |b| {
                b.iter_batched_async(
                    &runtime,
                    || (turn.next_key(), product()),
                    |(key, value)| cache.set(key, value),
                    BatchSize::NumIterations(BATCH),
                );
            });
        },
        |_| None,
    );

    // A delete from both tiers of a key that is in both: the setup writes it (outside the
    // timing), the routine deletes it.
    checks.run(
        cache,
        "cache/delete",
        || {
            let mut turn = RoundRobin::new(&fixture.delete_keys);
            group.bench("delete", |b| {
                b.iter_batched_async(
                    &runtime,
                    || {
                        let key = turn.next_key();
                        runtime
                            .block_on(cache.set(key, product()))
                            .unwrap_or_else(|error| {
                                fail("cache", anyhow::anyhow!("cache/delete: {error}"))
                            });
                        key
                    },
                    |key| cache.delete(key),
                    BatchSize::NumIterations(BATCH),
                );
            });
        },
        |_| None,
    );

    // `get_or_load`, both paths. The hit path finds the key in L1 (its loader would fail); the
    // load path finds the key in neither tier (the setup deleted it from both, outside the
    // timing) and runs the loader, writes Redis and fills L1.
    checks.run(
        cache,
        "cache/get_or_load/hit",
        || {
            group.bench_with_parameter("get_or_load", "hit", |b| {
                b.iter_async(&runtime, || {
                    cache.get_or_load(HOT, || async {
                        Err::<Product, _>(io::Error::other("the hit path must not load"))
                    })
                });
            });
        },
        |delta| (delta.loader_calls != 0).then(|| "the hit path ran the loader".to_owned()),
    );
    checks.run(
        cache,
        "cache/get_or_load/load",
        || {
            let mut turn = RoundRobin::new(&fixture.load_keys);
            // Two Redis round trips per iteration: criterion's linear ramp of 5,050
            // iterations needs more than the default 2 s on an idle machine (see the README).
            group.measurement_time(Duration::from_secs(3));
            group.bench_with_parameter("get_or_load", "load", |b| {
                b.iter_batched_async(
                    &runtime,
                    || {
                        let key = turn.next_key();
                        runtime.block_on(cache.delete(key));
                        key
                    },
                    |key| cache.get_or_load(key, || async { Ok::<_, io::Error>(product()) }),
                    BatchSize::NumIterations(BATCH),
                );
            });
            configure(&mut group);
        },
        |delta| {
            (delta.l1_hits != 0 || delta.l2_hits != 0 || delta.loader_calls != delta.l1_misses)
                .then(|| "the load path found a cached value".to_owned())
        },
    );

    // L1 hits at three sizes, on keys picked at random over the whole set (the same sequence in
    // every run), in caches without Redis. Each cache is filled when its benchmark first runs
    // (outside the timing; not at all when a filter skips the benchmark) and dropped before the
    // next one is filled.
    for entries in [100_usize, 10_000, 1_000_000] {
        let id = format!("cache/l1_hit_at/{entries}");
        let sized = OnceCell::new();
        let mut picker = KeyPicker::new(entries, 0x5EED);
        group.bench_with_parameter("l1_hit_at", entries, |b| {
            let (keys, cache) = sized.get_or_init(|| {
                let filled = Instant::now();
                let keys = keys("entry", entries);
                let cache = filled_l1(&runtime, entries as u64, &keys);
                eprintln!("{id}: filled {entries} entries in {:.2?}", filled.elapsed());
                (keys, cache)
            });
            b.iter_async(&runtime, || cache.get(&keys[picker.next_index()]));
        });
        if let Some((_, cache)) = sized.get() {
            // The cache is new, so its counters are the benchmark's own.
            if let Err(problem) = cache::verify(&id, &cache.stats(), |delta| {
                (delta.l1_misses != 0).then(|| "a lookup missed L1".to_owned())
            }) {
                checks.failures.push(problem);
            }
        }
    }

    // Inserts into a full L1 (no Redis): the cache holds its capacity before the benchmark and
    // every iteration inserts a key never seen before, so every insert evicts an entry (or the
    // new one: moka's admission policy may refuse a newcomer). The keys are made in the setup.
    {
        let full = OnceCell::new();
        let mut next = 0_u64;
        group.bench("eviction", |b| {
            let full = full.get_or_init(|| {
                let resident = keys("resident", EVICTION_CAPACITY as usize);
                filled_l1(&runtime, EVICTION_CAPACITY, &resident)
            });
            b.iter_batched_async(
                &runtime,
                || {
                    next += 1;
                    (format!("new:{next:012}"), product())
                },
                |(key, value)| async move { full.set(&key, value).await },
                BatchSize::NumIterations(BATCH),
            );
        });
        if let Some(full) = full.get() {
            // moka applies evictions in batches, so the count may briefly be below the capacity,
            // never above it once they are applied.
            let result = cache::verify("cache/eviction", &full.stats(), |_| {
                (full.l1_entry_count() > EVICTION_CAPACITY).then(|| {
                    format!(
                        "L1 grew beyond its capacity: {} entries",
                        full.l1_entry_count()
                    )
                })
            });
            if let Err(problem) = result {
                checks.failures.push(problem);
            }
        }
    }

    // The 90/10 mix with 1, 8 and 64 tasks at once, on keys present in both tiers: the reads hit
    // L1, the writes go to Redis and L1. An iteration is one operation per task; the time is the
    // wall time of the whole batch.
    for tasks in [1_usize, 8, 64] {
        checks.run(
            cache,
            &format!("cache/concurrent_mixed/{tasks}"),
            || {
                group.throughput(Throughput::Elements(tasks as u64));
                group.bench_with_parameter("concurrent_mixed", tasks, |b| {
                    b.iter_custom(|rounds| {
                        runtime.block_on(mixed_90_10(cache, &fixture.mixed_keys, tasks, rounds))
                    });
                });
            },
            |delta| (delta.l1_misses != 0).then(|| "a read missed L1".to_owned()),
        );
    }
    group.finish();

    if !checks.failures.is_empty() {
        fail("cache", anyhow::anyhow!(checks.failures.join("\n")));
    }
    let total = cache.stats();
    eprintln!("cache: counters of the tiered cache after the run: {total:?}");
}

bench_harness::main!(cache);

//! A two-tier cache for typed values: a bounded in-process L1 in front of Redis as L2.
//!
//! - **L1** is a [`moka::future::Cache`], bounded by entries or bytes, with a time-to-live.
//!   moka rather than quick_cache because it has both things this cache needs built in: expiry
//!   (quick_cache has none) and coalesced loading (`try_get_with`), which gives single flight.
//! - **L2** is Redis: keys carry the configured namespace as prefix, values are written with a
//!   time-to-live (`SET … PX`), and each command is bounded by a short timeout.
//! - Values are any serde type, encoded once with postcard (compact, not self-describing) for
//!   Redis and for the byte-size bound of L1.
//!
//! Redis is an optimisation, never a dependency: when it fails, the error is counted
//! ([`CacheStats::l2_errors`]) and the call proceeds as on a miss. After a failure the cache
//! skips Redis for [`CacheConfig::l2_retry_after`], then lets one caller probe it, so a down Redis
//! costs little and a Redis that returns is used again within about twice that back-off.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tiered_cache::{CacheConfig, TieredCache};
//!
//! let cache: TieredCache<String> =
//!     TieredCache::new(CacheConfig::new("redis://127.0.0.1:6379/", "example:"))?;
//! let value = cache
//!     .get_or_load("greeting", || async { Ok::<_, std::io::Error>("hello".to_owned()) })
//!     .await?;
//! assert_eq!(value, "hello");
//! println!("{:?}", cache.stats());
//! # Ok(())
//! # }
//! ```

mod breaker;
mod config;
mod error;
mod l2;
mod stats;

use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::config::{CacheConfig, Capacity};
pub use crate::error::{ConfigError, EncodeError, LoadError};
pub use crate::stats::CacheStats;

use crate::l2::{L2, Lookup};
use crate::stats::{Counters, bump};

/// What a cached value must be: serde-encodable, cheap enough to clone out of L1, and shareable
/// across tasks.
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// An L1 entry: the decoded value, plus its encoded size for the byte-size bound.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    encoded_len: u32,
}

struct Inner<V> {
    l1: moka::future::Cache<String, Entry<V>>,
    l2: Option<L2>,
    counters: Counters,
    /// Write generations, striped by key hash: `set` and `delete` bump the stripe of their key
    /// before they write. A fill of L1 from a Redis read (or a loader) that began under an
    /// older generation may be stale — a write landed while it was in flight — and is undone.
    /// Striping bounds the memory whatever the number of keys; two keys sharing a stripe only
    /// cost an occasional skipped fill, never a stale one.
    generations: Box<[AtomicU64]>,
    /// A pause between the Redis read of `get` and its L1 fill, so that a test can land a
    /// write in that window deterministically.
    #[cfg(test)]
    fill_gate: std::sync::Mutex<Option<Arc<FillGate>>>,
}

/// Stripes of [`Inner::generations`].
const GENERATION_STRIPES: usize = 1024;

#[cfg(test)]
struct FillGate {
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

/// A two-tier cache of `V` values under string keys. Cloning is cheap and shares the cache.
pub struct TieredCache<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for TieredCache<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> fmt::Debug for TieredCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("l1_entries", &self.inner.l1.entry_count())
            .field("l2", &self.inner.l2.is_some())
            .field("stats", &self.inner.counters.snapshot())
            .finish()
    }
}

fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, EncodeError> {
    Ok(postcard::to_stdvec(value)?)
}

fn weight(key: &str, encoded_len: u32) -> u32 {
    u32::try_from(key.len())
        .unwrap_or(u32::MAX)
        .saturating_add(encoded_len)
}

impl<V: CacheValue> TieredCache<V> {
    /// Builds a cache. Does not contact Redis: the connection is made on first use, so a cache
    /// can be created while Redis is down (and then works from L1 and loaders until it is up).
    pub fn new(config: CacheConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let builder = moka::future::Cache::builder().time_to_live(config.l1_ttl);
        let l1 = match config.l1_capacity {
            Capacity::Entries(entries) => builder.max_capacity(entries).build(),
            Capacity::Bytes(bytes) => builder
                .max_capacity(bytes)
                .weigher(|key: &String, entry: &Entry<V>| weight(key, entry.encoded_len))
                .build(),
        };
        let l2 = config
            .redis_url
            .as_deref()
            .map(|url| L2::new(url, &config))
            .transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                l1,
                l2,
                counters: Counters::default(),
                generations: (0..GENERATION_STRIPES).map(|_| AtomicU64::new(0)).collect(),
                #[cfg(test)]
                fill_gate: std::sync::Mutex::new(None),
            }),
        })
    }

    fn stripe(&self, key: &str) -> &AtomicU64 {
        // A fixed hasher: the stripe only needs to be the same for the same key in this process.
        let hash =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(key);
        let index = (hash % GENERATION_STRIPES as u64) as usize;
        &self.inner.generations[index]
    }

    /// The current write generation of `key`'s stripe.
    fn generation(&self, key: &str) -> u64 {
        self.stripe(key).load(Ordering::Acquire)
    }

    /// Marks a write of `key`: fills that began before it will be undone.
    fn bump_generation(&self, key: &str) {
        self.stripe(key).fetch_add(1, Ordering::AcqRel);
    }

    /// Undoes an L1 fill of `key` that began at generation `began`, if a write of the key (or
    /// of its stripe) happened since: the filled value may be older than that write. Checked
    /// after the fill, so that a write landing between the check and the fill is covered too;
    /// at worst a fresh entry is dropped and the next read goes to Redis.
    async fn settle_fill(&self, key: &str, began: u64) {
        if self.generation(key) != began {
            self.inner.l1.invalidate(key).await;
            bump(&self.inner.counters.stale_fills);
        }
    }

    #[cfg(test)]
    async fn pause_before_fill(&self) {
        let gate = self
            .inner
            .fill_gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(gate) = gate {
            gate.reached.notify_one();
            gate.release.notified().await;
        }
    }

    /// The value under `key`, from L1, else from Redis (which then also fills L1).
    pub async fn get(&self, key: &str) -> Option<V> {
        if let Some(value) = self.l1_get(key).await {
            return Some(value);
        }
        let began = self.generation(key);
        let entry = self.l2_get(key).await?;
        let value = entry.value.clone();
        #[cfg(test)]
        self.pause_before_fill().await;
        self.inner.l1.insert(key.to_owned(), entry).await;
        self.settle_fill(key, began).await;
        Some(value)
    }

    /// Stores `value` under `key` in both tiers.
    ///
    /// Fails only if the value cannot be encoded; a Redis failure is counted, and the value is
    /// then only in L1.
    pub async fn set(&self, key: &str, value: V) -> Result<(), EncodeError> {
        let bytes = encode(&value).inspect_err(|_| bump(&self.inner.counters.codec_errors))?;
        self.bump_generation(key);
        let encoded_len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        if let Some(l2) = &self.inner.l2 {
            l2.set(&self.inner.counters, key, &bytes).await;
        }
        self.inner
            .l1
            .insert(key.to_owned(), Entry { value, encoded_len })
            .await;
        Ok(())
    }

    /// Removes `key` from both tiers.
    ///
    /// If Redis is unreachable, the Redis copy stays until its time-to-live expires (the
    /// failure is counted); L1 is always cleared.
    pub async fn delete(&self, key: &str) {
        self.bump_generation(key);
        self.inner.l1.invalidate(key).await;
        if let Some(l2) = &self.inner.l2 {
            l2.delete(&self.inner.counters, key).await;
        }
    }

    /// Drops `key` from this process's L1 only, leaving its Redis copy: the next [`get`] of
    /// `key` reads Redis (and fills L1 again).
    ///
    /// For a caller that knows its in-process copy is stale while Redis holds the fresh one, and
    /// for the benchmarks, which need a key that is in Redis but not in L1 on every iteration to
    /// measure an honest L2 hit (`delete` would empty both tiers, `clear_l1` all of L1).
    ///
    /// [`get`]: TieredCache::get
    pub async fn invalidate_l1(&self, key: &str) {
        self.inner.l1.invalidate(key).await;
    }

    /// Drops every L1 entry of this process, leaving Redis untouched. Meant for callers that
    /// change their key scheme (for example a new version prefix), so that the old L1 entries
    /// stop using memory at once.
    pub fn clear_l1(&self) {
        self.inner.l1.invalidate_all();
    }

    /// The value under `key`; on a miss in both tiers, runs `loader`, stores its value in both
    /// tiers and returns it.
    ///
    /// Single flight: concurrent calls for the same missing key in this process run one loader
    /// (and one Redis lookup) between them; the others wait for its result. A loader error is
    /// returned to all of them and nothing is cached. Redis failures never reach the caller.
    pub async fn get_or_load<F, Fut, E>(&self, key: &str, loader: F) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        if let Some(value) = self.l1_get(key).await {
            return Ok(value);
        }
        let began = self.generation(key);
        let counters = &self.inner.counters;
        let load = async {
            if let Some(entry) = self.l2_get(key).await {
                return Ok(entry);
            }
            bump(&counters.loader_calls);
            let value = loader().await.map_err(|error| {
                bump(&counters.loader_errors);
                LoadError::Loader(Arc::new(error))
            })?;
            let bytes = encode(&value).map_err(|error| {
                bump(&counters.codec_errors);
                LoadError::Encode(error)
            })?;
            if let Some(l2) = &self.inner.l2 {
                l2.set(counters, key, &bytes).await;
            }
            let encoded_len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            Ok(Entry { value, encoded_len })
        };
        // moka runs `load` for one caller and makes concurrent callers of the same key wait
        // for it; it inserts the entry into L1 on success.
        let loaded = self
            .inner
            .l1
            .try_get_with_by_ref(key, load)
            .await
            .map(|entry| entry.value)
            .map_err(|error: Arc<LoadError<E>>| LoadError::clone(&error));
        if loaded.is_ok() {
            self.settle_fill(key, began).await;
        }
        loaded
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// Entries currently in L1 (approximate: moka applies pending evictions lazily).
    pub fn l1_entry_count(&self) -> u64 {
        self.inner.l1.entry_count()
    }

    async fn l1_get(&self, key: &str) -> Option<V> {
        let found = self.inner.l1.get(key).await;
        let counter = match found {
            Some(_) => &self.inner.counters.l1_hits,
            None => &self.inner.counters.l1_misses,
        };
        bump(counter);
        found.map(|entry| entry.value)
    }

    async fn l2_get(&self, key: &str) -> Option<Entry<V>> {
        let l2 = self.inner.l2.as_ref()?;
        let counters = &self.inner.counters;
        match l2.get(counters, key).await {
            Lookup::Hit(bytes) => match postcard::from_bytes::<V>(&bytes) {
                Ok(value) => {
                    bump(&counters.l2_hits);
                    Some(Entry {
                        value,
                        encoded_len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                    })
                }
                Err(error) => {
                    // A value written by an incompatible version of `V`; the loader replaces it.
                    bump(&counters.codec_errors);
                    tracing::warn!(%error, key, "undecodable value in the Redis cache tier");
                    None
                }
            },
            Lookup::Miss => {
                bump(&counters.l2_misses);
                None
            }
            Lookup::Unavailable => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("loader failed on purpose")]
    struct Boom;

    fn l1_cache<V: CacheValue>() -> TieredCache<V> {
        TieredCache::new(CacheConfig::l1_only()).expect("the default configuration is valid")
    }

    #[tokio::test]
    async fn set_get_delete_in_l1() {
        let cache = l1_cache::<Vec<u32>>();
        assert_eq!(cache.get("k").await, None);
        cache.set("k", vec![1, 2, 3]).await.expect("encodable");
        assert_eq!(cache.get("k").await, Some(vec![1, 2, 3]));
        cache.delete("k").await;
        assert_eq!(cache.get("k").await, None);
        let stats = cache.stats();
        assert_eq!((stats.l1_hits, stats.l1_misses), (1, 2));
        assert_eq!(stats.l2_errors + stats.l2_hits + stats.l2_misses, 0);
    }

    #[tokio::test]
    async fn invalidate_l1_drops_one_key() {
        let cache = l1_cache::<u32>();
        cache.set("a", 1).await.expect("encodable");
        cache.set("b", 2).await.expect("encodable");
        cache.invalidate_l1("a").await;
        // Without Redis, a key dropped from L1 is gone; the other key stays.
        assert_eq!(cache.get("a").await, None);
        assert_eq!(cache.get("b").await, Some(2));
        // Unknown keys are fine.
        cache.invalidate_l1("never-set").await;
    }

    #[tokio::test]
    async fn loader_error_is_typed_and_not_cached() {
        let cache = l1_cache::<u64>();
        let calls = AtomicUsize::new(0);
        let load = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<u64, _>(Boom)
        };
        let error = cache
            .get_or_load("k", load)
            .await
            .expect_err("the loader fails");
        assert!(
            matches!(error, LoadError::Loader(ref inner) if inner.to_string() == "loader failed on purpose")
        );
        let again = cache.get_or_load("k", || async { Ok::<_, Boom>(7) }).await;
        assert_eq!(again.expect("the second loader succeeds"), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!((stats.loader_calls, stats.loader_errors), (2, 1));
        // Now cached: no third loader call.
        let cached = cache
            .get_or_load("k", || async { Err::<u64, _>(Boom) })
            .await;
        assert_eq!(cached.expect("served from L1"), 7);
        assert_eq!(cache.stats().loader_calls, 2);
    }

    #[tokio::test]
    async fn unencodable_value_is_an_encode_error() {
        // postcard cannot encode a sequence whose length is unknown up front; serde's
        // `collect_seq` over a filtered iterator (no exact size hint) produces one.
        #[derive(Clone, Debug, serde::Deserialize)]
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq((0..3).filter(|n| n % 2 == 0))
            }
        }
        let cache = l1_cache::<Unsized>();
        assert!(cache.set("k", Unsized).await.is_err());
        let loaded = cache
            .get_or_load("k", || async { Ok::<_, Boom>(Unsized) })
            .await;
        assert!(matches!(loaded, Err(LoadError::Encode(_))));
        assert_eq!(cache.stats().codec_errors, 2);
    }

    #[tokio::test]
    async fn byte_capacity_bounds_l1() {
        let config = CacheConfig::l1_only().with_l1_capacity(Capacity::Bytes(4_096));
        let cache = TieredCache::<Vec<u8>>::new(config).expect("valid configuration");
        for i in 0..100 {
            cache
                .set(&format!("key-{i}"), vec![0; 500])
                .await
                .expect("encodable");
        }
        cache.inner.l1.run_pending_tasks().await;
        // Each entry weighs about 506 bytes, so at most 8 fit in 4 KiB.
        assert!(
            cache.l1_entry_count() <= 8,
            "{} entries",
            cache.l1_entry_count()
        );
        assert!(cache.inner.l1.weighted_size() <= 4_096);
    }

    #[tokio::test]
    async fn l1_ttl_expires_entries() {
        let config =
            CacheConfig::l1_only().with_ttl(Duration::from_millis(50), CacheConfig::DEFAULT_L2_TTL);
        let cache = TieredCache::<u8>::new(config).expect("valid configuration");
        cache.set("k", 1).await.expect("encodable");
        assert_eq!(cache.get("k").await, Some(1));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(cache.get("k").await, None);
    }

    /// The race a black-box client found: `get` reads a value from Redis, a `set` or `delete`
    /// of the key completes, then `get` fills L1 with the value it read — which the write made
    /// stale, and which L1 would have served until its time-to-live. The fill is paused
    /// deterministically between the Redis read and the L1 fill while the write lands.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_during_a_redis_read_never_leaves_a_stale_l1_entry() {
        let namespace = provision::shared()
            .expect("the test's Redis")
            .redis_namespace();
        let cache = TieredCache::<u32>::new(CacheConfig::new(namespace.url(), namespace.prefix()))
            .expect("valid configuration");
        for write in ["set", "delete"] {
            cache.set("k", 1).await.expect("encodable");
            cache.invalidate_l1("k").await;
            let gate = Arc::new(FillGate {
                reached: tokio::sync::Notify::new(),
                release: tokio::sync::Notify::new(),
            });
            *cache.inner.fill_gate.lock().unwrap() = Some(Arc::clone(&gate));
            let reader = tokio::spawn({
                let cache = cache.clone();
                async move { cache.get("k").await }
            });
            // The reader has read 1 from Redis and not yet filled L1.
            gate.reached.notified().await;
            *cache.inner.fill_gate.lock().unwrap() = None;
            match write {
                "set" => cache.set("k", 2).await.expect("encodable"),
                _ => cache.delete("k").await,
            }
            gate.release.notify_one();
            // The read began before the write, so its own answer may be the old value...
            assert_eq!(reader.await.expect("no panic"), Some(1), "{write}");
            // ...but nothing after the write may see it.
            let expected = (write == "set").then_some(2);
            assert_eq!(cache.get("k").await, expected, "after the {write}");
            assert_eq!(cache.get("k").await, expected, "after the {write}, from L1");
        }
        assert_eq!(cache.stats().stale_fills, 2);
        assert_eq!(cache.stats().l2_errors, 0);
    }

    #[test]
    fn invalid_redis_url_is_a_config_error() {
        let config = CacheConfig::new("not a url", "ns:");
        let error = TieredCache::<u8>::new(config).expect_err("the URL is invalid");
        assert!(matches!(error, ConfigError::RedisUrl { .. }), "{error}");
    }
}

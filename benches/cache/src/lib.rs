//! Fixtures of the `cache` suite: the cached value, key sets, a deterministic key picker, the
//! concurrent 90/10 workload, and the check that a benchmark measured the tier it claims to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tiered_cache::{CacheStats, TieredCache};

/// The value every benchmark caches: a product summary as the commerce backend would cache it,
/// 55 bytes in postcard. Small on purpose: the suite measures the cache, not the codec, and one
/// heap field makes a hit cost one allocation (the clone handed to the caller), as it does for
/// the real values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Product id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Unit price in cents.
    pub price_cents: i64,
    /// Units in stock.
    pub stock: u32,
}

/// The product cached under every key.
pub fn product() -> Product {
    Product {
        id: 4_711,
        name: "Stainless steel water bottle, 750 ml, matte black".to_owned(),
        price_cents: 2_499,
        stock: 120,
    }
}

/// `count` distinct keys `"<prefix>:0000000"`, `"<prefix>:0000001"`, ... All keys of one set have
/// the same length, so that every lookup hashes and compares the same number of bytes.
pub fn keys(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}:{i:07}")).collect()
}

/// Picks keys of a set uniformly at random, from a fixed seed: the same sequence in every run,
/// spread over the whole set (not one hot key).
#[derive(Debug, Clone)]
pub struct KeyPicker {
    rng: SmallRng,
    len: usize,
}

impl KeyPicker {
    /// A picker over `len` keys (at least one) seeded with `seed`.
    pub fn new(len: usize, seed: u64) -> KeyPicker {
        KeyPicker {
            rng: SmallRng::seed_from_u64(seed),
            len: len.max(1),
        }
    }

    /// The index of the next key.
    #[inline]
    pub fn next_index(&mut self) -> usize {
        self.rng.random_range(0..self.len)
    }
}

/// Hands out keys of a set in turn, wrapping around: consecutive calls give distinct keys as
/// long as fewer than the set's length are taken, which is what a batch whose inputs must not
/// collide needs.
#[derive(Debug)]
pub struct RoundRobin<'k> {
    keys: &'k [String],
    next: usize,
}

impl<'k> RoundRobin<'k> {
    /// Cycles over `keys` (which must not be empty).
    pub fn new(keys: &'k [String]) -> RoundRobin<'k> {
        assert!(!keys.is_empty(), "a round robin needs at least one key");
        RoundRobin { keys, next: 0 }
    }

    /// The next key.
    pub fn next_key(&mut self) -> &'k str {
        let key = &self.keys[self.next];
        self.next = (self.next + 1) % self.keys.len();
        key
    }
}

/// Runs the concurrent 90/10 workload: `tasks` tasks on the current runtime, each doing `rounds`
/// operations on keys picked at random from `keys`, and returns the wall time from the first
/// spawn to the last completion.
///
/// Every tenth operation of a task is a `set` of [`product`], the others are `get`s ([`is_write`]):
/// a fixed schedule rather than a coin flip, so that a batch of any length has the same share of
/// writes in every run (a write costs a Redis round trip and twenty allocations, a read one).
/// Each task has its own key picker with a seed derived from its index.
pub async fn mixed_90_10(
    cache: &TieredCache<Product>,
    keys: &Arc<Vec<String>>,
    tasks: usize,
    rounds: u64,
) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let cache = cache.clone();
            let keys = Arc::clone(keys);
            let value = product();
            tokio::spawn(async move {
                let mut picker = KeyPicker::new(keys.len(), 0x90_10 + task as u64);
                for round in 0..rounds {
                    let key = &keys[picker.next_index()];
                    if is_write(task, round) {
                        cache
                            .set(key, value.clone())
                            .await
                            .expect("a Product always encodes");
                    } else {
                        std::hint::black_box(cache.get(key).await);
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        if let Err(error) = handle.await {
            std::panic::resume_unwind(error.into_panic());
        }
    }
    start.elapsed()
}

/// Whether operation `round` of task `task` in [`mixed_90_10`] is a write: one in ten, offset by
/// the task's index so that the tasks do not all write in the same round.
pub fn is_write(task: usize, round: u64) -> bool {
    (round + task as u64).is_multiple_of(10)
}

/// Checks that a benchmark measured what it claims: `check` gets the counters accumulated while
/// it ran and says what is wrong, if anything. Redis errors or skipped Redis calls are always
/// wrong: they mean the breaker turned a Redis benchmark into an in-process one.
pub fn verify(
    id: &str,
    delta: &CacheStats,
    check: impl FnOnce(&CacheStats) -> Option<String>,
) -> Result<(), String> {
    if delta.l2_errors != 0 || delta.l2_skipped != 0 || delta.codec_errors != 0 {
        return Err(format!(
            "{id}: Redis failed or was skipped while it ran ({delta:?}); its numbers do not \
             measure the cache it claims to"
        ));
    }
    match check(delta) {
        None => Ok(()),
        Some(problem) => Err(format!("{id}: {problem} ({delta:?})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_of_equal_length() {
        let keys = keys("k", 1_000);
        assert_eq!(keys[0], "k:0000000");
        assert!(keys.iter().all(|key| key.len() == keys[0].len()));
        let mut sorted = keys.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 1_000);
    }

    #[test]
    fn the_picker_is_deterministic_and_covers_the_set() {
        let mut first = KeyPicker::new(100, 7);
        let mut second = KeyPicker::new(100, 7);
        let a: Vec<usize> = (0..10_000).map(|_| first.next_index()).collect();
        let b: Vec<usize> = (0..10_000).map(|_| second.next_index()).collect();
        assert_eq!(a, b);
        let mut seen = [false; 100];
        for index in a {
            seen[index] = true;
        }
        assert!(seen.iter().all(|&hit| hit), "every key is picked");
    }

    #[test]
    fn one_operation_in_ten_is_a_write() {
        for task in [0, 1, 7, 63] {
            let writes: Vec<u64> = (0..30).filter(|&round| is_write(task, round)).collect();
            assert_eq!(writes.len(), 3, "task {task}: {writes:?}");
        }
        assert!(is_write(0, 0) && !is_write(1, 0) && is_write(1, 9));
    }

    #[test]
    fn round_robin_wraps_around() {
        let keys = keys("r", 3);
        let mut turn = RoundRobin::new(&keys);
        let taken: Vec<&str> = (0..4).map(|_| turn.next_key()).collect();
        assert_eq!(taken, ["r:0000000", "r:0000001", "r:0000002", "r:0000000"]);
    }

    #[test]
    fn redis_trouble_fails_verification() {
        let clean = CacheStats {
            l1_hits: 5,
            ..CacheStats::default()
        };
        assert_eq!(verify("x", &clean, |_| None), Ok(()));
        let skipped = CacheStats {
            l2_skipped: 1,
            ..clean
        };
        assert!(verify("x", &skipped, |_| None).is_err());
        let wrong = verify("x", &clean, |d| (d.l1_hits > 0).then(|| "hits".to_owned()));
        assert!(wrong.expect_err("the check fails").starts_with("x: hits"));
    }

    #[test]
    fn the_product_is_the_documented_size() {
        let encoded = postcard::to_stdvec(&product()).expect("a plain struct encodes");
        assert_eq!(encoded.len(), 55);
    }
}

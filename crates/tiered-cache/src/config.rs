//! Configuration of a [`TieredCache`](crate::TieredCache): tier sizes, lifetimes and Redis limits.

use std::time::Duration;

use crate::error::ConfigError;

/// How the in-process tier (L1) bounds its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// At most this many entries.
    Entries(u64),
    /// At most about this many bytes, counting each entry as its key length plus the length of
    /// its encoded value (the same bytes that are stored in Redis).
    Bytes(u64),
}

/// Settings for a [`TieredCache`](crate::TieredCache).
///
/// Build one with [`CacheConfig::new`] (L1 and Redis) or [`CacheConfig::l1_only`], then adjust
/// the public fields; [`TieredCache::new`](crate::TieredCache::new) validates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Redis URL of the shared tier (L2); `None` runs the cache with the in-process tier only.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this cache writes, e.g. `"commerce:authz:"`. Two caches with
    /// different namespaces never see each other's entries in Redis.
    pub namespace: String,
    /// Size bound of the in-process tier.
    pub l1_capacity: Capacity,
    /// How long an entry lives in the in-process tier after it was written there.
    pub l1_ttl: Duration,
    /// How long an entry lives in Redis after it was written there (`SET … PX`).
    pub l2_ttl: Duration,
    /// Upper bound on one Redis round trip, connecting included. Kept short so that a Redis
    /// that hangs costs each caller at most this long.
    pub l2_timeout: Duration,
    /// After a Redis error, how long the cache skips Redis before it probes it again. A Redis
    /// that comes back is used again at most about twice this long (plus one `l2_timeout`)
    /// after it answers.
    pub l2_retry_after: Duration,
}

impl CacheConfig {
    /// Default size bound of the in-process tier.
    pub const DEFAULT_L1_CAPACITY: Capacity = Capacity::Entries(10_000);
    /// Default lifetime of an in-process entry.
    pub const DEFAULT_L1_TTL: Duration = Duration::from_secs(60);
    /// Default lifetime of a Redis entry.
    pub const DEFAULT_L2_TTL: Duration = Duration::from_secs(300);
    /// Default bound on one Redis round trip. Generous for a local Redis, so that a busy
    /// machine does not turn slow answers into errors, and still short next to a request.
    pub const DEFAULT_L2_TIMEOUT: Duration = Duration::from_millis(250);
    /// Default pause after a Redis error before Redis is probed again.
    pub const DEFAULT_L2_RETRY_AFTER: Duration = Duration::from_millis(1_000);

    /// Settings for a cache backed by Redis at `redis_url`, keys prefixed with `namespace`.
    pub fn new(redis_url: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            redis_url: Some(redis_url.into()),
            ..Self::l1_only()
        }
        .with_namespace(namespace)
    }

    /// Settings for a cache without Redis: only the in-process tier.
    pub fn l1_only() -> Self {
        Self {
            redis_url: None,
            namespace: String::new(),
            l1_capacity: Self::DEFAULT_L1_CAPACITY,
            l1_ttl: Self::DEFAULT_L1_TTL,
            l2_ttl: Self::DEFAULT_L2_TTL,
            l2_timeout: Self::DEFAULT_L2_TIMEOUT,
            l2_retry_after: Self::DEFAULT_L2_RETRY_AFTER,
        }
    }

    /// Replaces the Redis key prefix.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Replaces the size bound of the in-process tier.
    pub fn with_l1_capacity(mut self, capacity: Capacity) -> Self {
        self.l1_capacity = capacity;
        self
    }

    /// Replaces both lifetimes: `l1` for the in-process tier, `l2` for Redis.
    pub fn with_ttl(mut self, l1: Duration, l2: Duration) -> Self {
        self.l1_ttl = l1;
        self.l2_ttl = l2;
        self
    }

    /// Replaces the Redis round-trip bound and the pause after a Redis error.
    pub fn with_l2_limits(mut self, timeout: Duration, retry_after: Duration) -> Self {
        self.l2_timeout = timeout;
        self.l2_retry_after = retry_after;
        self
    }

    /// Checks the values that the tiers would otherwise reject at run time (or panic on).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match self.l1_capacity {
            Capacity::Entries(0) | Capacity::Bytes(0) => return Err(ConfigError::ZeroCapacity),
            Capacity::Entries(_) | Capacity::Bytes(_) => {}
        }
        // moka panics on a time-to-live above 1,000 years and Redis `PX` rejects 0 ms; 100 years
        // is far beyond any sensible cache lifetime and keeps every duration clear of overflow.
        const MIN: Duration = Duration::from_millis(1);
        const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        let durations = [
            ("l1_ttl", self.l1_ttl),
            ("l2_ttl", self.l2_ttl),
            ("l2_timeout", self.l2_timeout),
            ("l2_retry_after", self.l2_retry_after),
        ];
        for (field, value) in durations {
            if !(MIN..=MAX).contains(&value) {
                return Err(ConfigError::Duration {
                    field,
                    value,
                    reason: "must be between 1 ms and 100 years",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(CacheConfig::l1_only().validate(), Ok(()));
        let config = CacheConfig::new("redis://127.0.0.1/", "ns:");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.namespace, "ns:");
        assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1/"));
    }

    #[test]
    fn rejects_zero_capacity_and_durations() {
        let config = CacheConfig::l1_only().with_l1_capacity(Capacity::Bytes(0));
        assert_eq!(config.validate(), Err(ConfigError::ZeroCapacity));

        let config = CacheConfig::l1_only().with_ttl(Duration::from_secs(1), Duration::ZERO);
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Duration {
                field: "l2_ttl",
                ..
            })
        ));

        let config = CacheConfig::l1_only().with_l2_limits(Duration::MAX, Duration::from_secs(1));
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Duration {
                field: "l2_timeout",
                ..
            })
        ));
    }
}

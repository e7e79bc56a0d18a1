//! Integration tests of the tiered cache against a real Redis: both tiers, single flight, and
//! a Redis outage.

mod outage;
mod single_flight;
mod tiers;

use tiered_cache::CacheConfig;

/// A configuration for the test's own Redis namespace.
pub(crate) fn config(namespace: &provision::RedisNamespace) -> CacheConfig {
    CacheConfig::new(namespace.url(), namespace.prefix())
}

/// A loader error for tests.
#[derive(Debug, thiserror::Error)]
#[error("the loader failed on purpose")]
pub(crate) struct LoaderFailed;

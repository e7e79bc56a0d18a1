//! Typed errors of the cache. Redis failures are deliberately absent: they are counted, never
//! returned.

use std::sync::Arc;
use std::time::Duration;

/// A [`CacheConfig`](crate::CacheConfig) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The L1 capacity is zero, which would make every insert an immediate eviction.
    #[error("the L1 capacity must be greater than zero")]
    ZeroCapacity,
    /// A duration is out of the accepted range.
    #[error("{field} = {value:?} {reason}")]
    Duration {
        /// The configuration field.
        field: &'static str,
        /// The rejected value.
        value: Duration,
        /// What the value must satisfy.
        reason: &'static str,
    },
    /// The Redis URL does not parse.
    #[error("invalid Redis URL {url:?}: {reason}")]
    RedisUrl {
        /// The URL as configured.
        url: String,
        /// Why the Redis client rejected it.
        reason: String,
    },
}

/// A value that cannot be encoded with the cache's encoding (postcard).
///
/// This happens only for types whose `Serialize` implementation needs a self-describing format
/// (for example `serde_json::Value`, or `#[serde(flatten)]`), so it is a property of the type,
/// not of the data: pick a different value type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the value for the cache")]
pub struct EncodeError(#[from] pub(crate) postcard::Error);

/// Why [`TieredCache::get_or_load`](crate::TieredCache::get_or_load) returned no value.
///
/// Redis failures never appear here: the cache then serves from the loader instead.
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E> {
    /// The loader failed. Concurrent callers that waited for the same load share the error,
    /// hence the `Arc`. Nothing was cached, so the next call runs the loader again.
    #[error("the loader failed")]
    Loader(#[source] Arc<E>),
    /// The loaded value cannot be encoded; see [`EncodeError`].
    #[error(transparent)]
    Encode(EncodeError),
}

// Derived `Clone` would require `E: Clone`, which the `Arc` makes unnecessary.
impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Loader(error) => Self::Loader(Arc::clone(error)),
            Self::Encode(error) => Self::Encode(error.clone()),
        }
    }
}

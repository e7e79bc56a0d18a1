//! The shared tier: Redis through a `ConnectionManager`, with namespaced keys, per-command
//! timeouts and a circuit breaker. Every failure is counted and logged, never returned.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::breaker::{Breaker, Permit};
use crate::config::CacheConfig;
use crate::error::ConfigError;
use crate::stats::{Counters, bump};

/// The outcome of a Redis read, for the caller's statistics.
pub(crate) enum Lookup {
    Hit(Vec<u8>),
    Miss,
    /// Redis failed, timed out, or was skipped; the caller proceeds as on a miss.
    Unavailable,
}

pub(crate) struct L2 {
    client: redis::Client,
    /// Created on first use rather than in `TieredCache::new`, because creating it spawns a
    /// task and therefore needs a Tokio runtime, and `new` should not.
    manager: OnceLock<ConnectionManager>,
    namespace: String,
    ttl_ms: u64,
    timeout: Duration,
    breaker: Breaker,
}

impl L2 {
    pub(crate) fn new(url: &str, config: &CacheConfig) -> Result<Self, ConfigError> {
        let client = redis::Client::open(url).map_err(|error| ConfigError::RedisUrl {
            url: url.to_owned(),
            reason: error.to_string(),
        })?;
        Ok(Self {
            client,
            manager: OnceLock::new(),
            namespace: config.namespace.clone(),
            ttl_ms: u64::try_from(config.l2_ttl.as_millis()).unwrap_or(u64::MAX),
            timeout: config.l2_timeout,
            breaker: Breaker::new(config.l2_retry_after),
        })
    }

    fn manager(&self) -> Result<ConnectionManager, redis::RedisError> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        // No retries inside the manager: the breaker decides when to try again, so a reconnect
        // attempt is one quick connect (refused at once when the server is down) and never a
        // back-off loop that a command would have to wait for.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        // Two first callers may race here; the loser's manager has not connected yet and is
        // simply dropped.
        Ok(self.manager.get_or_init(|| manager).clone())
    }

    fn key(&self, key: &str) -> String {
        let mut namespaced = String::with_capacity(self.namespace.len() + key.len());
        namespaced.push_str(&self.namespace);
        namespaced.push_str(key);
        namespaced
    }

    /// Runs one Redis command under the breaker and the timeout. `None` means the command was
    /// skipped or failed; both are counted here.
    async fn run<T, F, Fut>(&self, counters: &Counters, what: &str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(permit) = self.breaker.try_acquire() else {
            bump(&counters.l2_skipped);
            return None;
        };
        let outcome = match self.manager() {
            Ok(manager) => tokio::time::timeout(self.timeout, command(manager))
                .await
                .map_err(|_| format!("timed out after {:?}", self.timeout))
                .and_then(|result| result.map_err(|error| error.to_string())),
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(value) => {
                if self.breaker.on_success() {
                    tracing::info!(namespace = %self.namespace, "Redis cache tier is reachable again");
                }
                Some(value)
            }
            Err(error) => {
                bump(&counters.l2_errors);
                // Log the transition, not every failure: while Redis is down the breaker lets
                // one probe through per back-off, and each would otherwise add a line.
                if self.breaker.on_failure() || permit == Permit::Probe {
                    tracing::warn!(
                        namespace = %self.namespace,
                        %error,
                        "Redis cache {what} failed; skipping Redis for a while"
                    );
                }
                None
            }
        }
    }

    pub(crate) async fn get(&self, counters: &Counters, key: &str) -> Lookup {
        let key = self.key(key);
        let found = self
            .run(counters, "read", |mut manager| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<Vec<u8>>>(&mut manager)
                    .await
            })
            .await;
        match found {
            Some(Some(bytes)) => Lookup::Hit(bytes),
            Some(None) => Lookup::Miss,
            None => Lookup::Unavailable,
        }
    }

    pub(crate) async fn set(&self, counters: &Counters, key: &str, bytes: &[u8]) {
        let key = self.key(key);
        let ttl_ms = self.ttl_ms;
        self.run(counters, "write", |mut manager| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(bytes)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut manager)
                .await
        })
        .await;
    }

    pub(crate) async fn delete(&self, counters: &Counters, key: &str) {
        let key = self.key(key);
        self.run(counters, "delete", |mut manager| async move {
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut manager)
                .await
        })
        .await;
    }
}

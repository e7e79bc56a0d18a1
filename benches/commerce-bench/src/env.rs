//! The environment of one bench binary: services, database, caches, policy engine, gRPC server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use authz::PolicySet;
use commerce::Commerce;
use commerce::cache::{CacheConfig, CacheStats, CartCache};
use commerce::grpc::LocalServer;
use provision::{Provider, RedisNamespace, TestDatabase};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tonic::transport::Channel;

/// Connections of the suite's pool: the 64 tasks of the largest concurrent benchmarks each hold
/// one for a whole transaction, the reset between batches needs one more, and a few spare ones
/// keep the gRPC server's calls from queueing on the pool at the end of a batch.
pub const POOL_SIZE: u32 = 72;

/// The bound on one Redis round trip of the cart cache and of the decision cache. The server's
/// defaults (100 ms and 250 ms) are right for production, but 64 tasks on two cores can delay an
/// answer past them, and a timeout would silently turn a cache benchmark into a database one
/// (the caches fall back to PostgreSQL or to evaluating). Every benchmark asserts afterwards
/// that no Redis command failed or was skipped, so a generous bound hides nothing.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a suite measures, over a database and Redis namespaces of its own.
pub struct BenchEnv {
    /// The services, as `commerce-server` builds them.
    pub commerce: Commerce,
    /// The pool behind [`BenchEnv::commerce`] (for fixtures, resets and the PostgreSQL floor).
    pub pool: PgPool,
    /// A Redis connection of the bench's own, made like the cart cache's (a `ConnectionManager`
    /// over one multiplexed connection): for the Redis floor and for deleting cache entries
    /// outside the timing.
    pub redis: ConnectionManager,
    /// A channel to [`BenchEnv::server`], shared by the gRPC clients.
    pub channel: Channel,
    /// The in-process gRPC server on 127.0.0.1.
    pub server: LocalServer,
    /// Key prefix of the cart cache (its keys are deleted when the environment drops).
    pub cart_keys: RedisNamespace,
    /// Key prefix of the decision cache.
    pub decision_keys: RedisNamespace,
    /// How `provision` provided PostgreSQL and Redis.
    pub provider: Provider,
    // Dropped last: the database goes away with it.
    database: TestDatabase,
}

/// The cache counters a benchmark is judged by (see [`BenchEnv::counters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// The cart cache: hits, misses, Redis errors, bypasses.
    pub cart: CacheStats,
    /// The policy engine's decision cache.
    pub decisions: tiered_cache::CacheStats,
    /// Policy evaluations (decision-cache hits run none).
    pub evaluations: u64,
    /// Evaluations that failed and were turned into denials.
    pub evaluation_failures: u64,
}

impl Counters {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        // The counters only grow; saturating keeps a snapshot taken in the wrong order harmless.
        let cart = CacheStats {
            hits: self.cart.hits.saturating_sub(earlier.cart.hits),
            misses: self.cart.misses.saturating_sub(earlier.cart.misses),
            errors: self.cart.errors.saturating_sub(earlier.cart.errors),
            bypassed: self.cart.bypassed.saturating_sub(earlier.cart.bypassed),
        };
        Counters {
            cart,
            decisions: self.decisions.since(&earlier.decisions),
            evaluations: self.evaluations.saturating_sub(earlier.evaluations),
            evaluation_failures: self
                .evaluation_failures
                .saturating_sub(earlier.evaluation_failures),
        }
    }

    /// `Err` naming the counters if either cache had a Redis error, skipped Redis after one
    /// (cool-down, back-off), or could not decode an entry, or a policy evaluation failed: the
    /// benchmark then measured a fallback path, not the operation it names.
    pub fn healthy(&self) -> anyhow::Result<()> {
        let cart = &self.cart;
        let decisions = &self.decisions;
        anyhow::ensure!(
            cart.errors == 0
                && cart.bypassed == 0
                && decisions.l2_errors == 0
                && decisions.l2_skipped == 0
                && decisions.codec_errors == 0
                && self.evaluation_failures == 0,
            "Redis failed or was bypassed during the benchmark, so it measured a fallback path: \
             {self:?}"
        );
        Ok(())
    }
}

impl BenchEnv {
    /// Provisions the services (once per process, see `provision::shared`), creates a migrated
    /// database and two Redis namespaces of the suite's own, builds the services and starts the
    /// gRPC server on `runtime`.
    pub fn start(runtime: &tokio::runtime::Runtime) -> anyhow::Result<BenchEnv> {
        let services = provision::shared().context("provisioning PostgreSQL and Redis")?;
        runtime.block_on(async {
            let database = services
                .database(&commerce::MIGRATOR)
                .await
                .context("creating the suite's database")?;
            // The server's pool settings (sqlx's defaults, which include a liveness ping when a
            // connection is checked out), sized for the concurrent benchmarks.
            let pool = PgPoolOptions::new()
                .max_connections(POOL_SIZE)
                .acquire_timeout(Duration::from_secs(30))
                .connect(database.url())
                .await
                .context("connecting to the suite's database")?;
            // Open every connection now, so no benchmark times a connection being established.
            let mut held = Vec::with_capacity(POOL_SIZE as usize);
            for _ in 0..POOL_SIZE {
                held.push(pool.acquire().await.context("filling the pool")?);
            }
            drop(held);

            let cart_keys = services.redis_namespace();
            let mut cart_config = CacheConfig::new(services.redis_url(), cart_keys.prefix());
            cart_config.timeout = REDIS_TIMEOUT;
            let cache = CartCache::connect(&cart_config).context("configuring the cart cache")?;

            // The server's decision cache (in-process tier of 10,000 entries for 60 s, Redis for
            // 300 s: `tiered_cache`'s defaults, which are also `commerce-server`'s), with the
            // generous Redis bound.
            let decision_keys = services.redis_namespace();
            let decisions =
                tiered_cache::CacheConfig::new(services.redis_url(), decision_keys.prefix())
                    .with_l2_limits(REDIS_TIMEOUT, Duration::from_secs(1));
            let policies = PolicySet::shipped().context("compiling the shipped policies")?;
            let engine = commerce::server::policy_engine(policies, Some(decisions))
                .context("configuring the decision cache")?;
            let commerce = Commerce::new(pool.clone(), cache, Arc::new(engine));

            let client = redis::Client::open(services.redis_url()).context("the Redis URL")?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(REDIS_TIMEOUT))
                .set_response_timeout(Some(REDIS_TIMEOUT));
            let redis = ConnectionManager::new_with_config(client, config)
                .await
                .context("connecting to Redis")?;

            let server = LocalServer::start(commerce.clone())
                .await
                .context("starting the gRPC server")?;
            let channel = Channel::from_shared(server.url())
                .context("the server's URL")?
                .connect()
                .await
                .context("connecting to the gRPC server")?;
            Ok(BenchEnv {
                commerce,
                pool,
                redis,
                channel,
                server,
                cart_keys,
                decision_keys,
                provider: services.provider(),
                database,
            })
        })
    }

    /// The cart cache.
    pub fn cache(&self) -> &CartCache {
        self.commerce.carts.cache()
    }

    /// A snapshot of the cache counters.
    pub fn counters(&self) -> Counters {
        let engine = self.commerce.policy.stats();
        Counters {
            cart: self.commerce.carts.cache_stats(),
            decisions: engine.cache.unwrap_or_default(),
            evaluations: engine.evaluations,
            evaluation_failures: engine.evaluation_failures,
        }
    }

    /// One line about the set-up, for the log of a run.
    pub fn describe(&self) -> String {
        format!(
            "{} services, database {}, pool of {POOL_SIZE}, tokio runtime with {} workers, gRPC on {}",
            self.provider,
            self.database.name(),
            crate::WORKER_THREADS,
            self.server.addr()
        )
    }

    /// Stops the gRPC server, closes the pool, then drops the database and the Redis keys.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let BenchEnv {
            commerce,
            pool,
            redis,
            channel,
            server,
            cart_keys,
            decision_keys,
            provider: _,
            database,
        } = self;
        drop(channel);
        let addr = server.addr();
        server
            .stop()
            .await
            .with_context(|| format!("stopping the gRPC server on {addr}"))?;
        drop(commerce);
        drop(redis);
        pool.close().await;
        drop((cart_keys, decision_keys));
        drop(database);
        Ok(())
    }
}

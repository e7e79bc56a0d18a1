//! The environment of one bench binary: services, database, caches, policy engine, gRPC server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use authz::PolicySet;
use bench_harness::Group;
use commerce::Commerce;
use commerce::cache::{CacheConfig, CacheStats, CartCache};
use commerce::grpc::LocalServer;
use commerce::metrics::Metrics;
use provision::{Provider, RedisNamespace, RoundTripCounter, TestDatabase};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sqlx::PgPool;
use tonic::transport::Channel;

/// Connections of the suite's pool: `commerce-server`'s default. Every operation holds a
/// connection for one statement only, so the 64 tasks of the largest concurrent benchmarks
/// queue on it as they would on the server. A larger pool is not neutral: sqlx hands out idle
/// connections oldest first, so sequential calls cycle through every backend, and with 72 of
/// them `commerce_add_item` took about twice as long as with 20 (a backend's caches are cold
/// again when its turn comes; measured side by side with pools of 1, 4, 20 and 72).
pub const POOL_SIZE: u32 = commerce::server::DEFAULT_MAX_CONNECTIONS;

/// The bound on one Redis round trip of the cart cache and of the decision cache. The server's
/// defaults (100 ms and 250 ms) are right for production, but 64 tasks on two cores can delay an
/// answer past them, and a timeout would silently turn a cache benchmark into a database one
/// (the caches fall back to PostgreSQL or to evaluating). Every benchmark asserts afterwards
/// that no Redis command failed or was skipped, so a generous bound hides nothing.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// The services record their metrics (`commerce::metrics`) exactly as `commerce-server
/// --metrics-addr` runs them: every gRPC call goes through the same metrics layer, and the
/// services time their statements. That is the default, so a paired run against a revision
/// without metrics (`cargo xtask perf-gate --base <pre-metrics revision> --suite cart`) measures
/// what the metrics cost. Set this variable to `0` to build the services without metrics, e.g.
/// for a paired run of one build both ways (`--candidate-env COMMERCE_BENCH_METRICS=0` measures
/// off against on).
pub const METRICS_ENV: &str = "COMMERCE_BENCH_METRICS";

/// Whether [`METRICS_ENV`] leaves the metrics on (unset or `1`) or turns them off (`0`); any
/// other value is an error, so a typo cannot silently measure the wrong side.
pub fn metrics_requested() -> anyhow::Result<bool> {
    match std::env::var(METRICS_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(true),
        Ok(value) if value == "1" || value.is_empty() => Ok(true),
        Ok(value) if value == "0" => Ok(false),
        Ok(value) => anyhow::bail!("{METRICS_ENV} must be 1 or 0, not {value:?}"),
        Err(error) => Err(error).context(METRICS_ENV),
    }
}

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
    /// The metrics the services record, unless [`METRICS_ENV`]`=0` (never scraped: the cost
    /// measured is the recording's).
    pub metrics: Option<Metrics>,
    /// How `provision` provided PostgreSQL and Redis.
    pub provider: Provider,
    /// The servers' counters of what the suite's database and Redis executed.
    pub round_trips: Arc<RoundTripCounter>,
    // Dropped last: the database goes away with it.
    database: TestDatabase,
}

/// The cache counters a benchmark is judged by (see [`BenchEnv::counters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// The cart cache: hits, misses, Redis errors, bypasses, late answers.
    pub cart: CacheStats,
    /// The policy engine's decision cache.
    pub decisions: tiered_cache::CacheStats,
    /// Policy evaluations (decision-cache hits run none).
    pub evaluations: u64,
    /// Evaluations that failed and were turned into denials.
    pub evaluation_failures: u64,
    /// gRPC calls the server's metrics layer recorded (`None` with the metrics off).
    pub grpc_calls: Option<u64>,
}

impl Counters {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        // The counters only grow; saturating keeps a snapshot taken in the wrong order harmless.
        Counters {
            cart: self.cart.since(&earlier.cart),
            decisions: self.decisions.since(&earlier.decisions),
            evaluations: self.evaluations.saturating_sub(earlier.evaluations),
            evaluation_failures: self
                .evaluation_failures
                .saturating_sub(earlier.evaluation_failures),
            grpc_calls: self
                .grpc_calls
                .map(|calls| calls.saturating_sub(earlier.grpc_calls.unwrap_or_default())),
        }
    }

    /// `Err` naming the counters if either cache had a Redis error, skipped Redis after one
    /// (cool-down, back-off), or could not decode an entry, if a cart-cache answer came after
    /// its timeout, or a policy evaluation failed: the benchmark then measured a fallback path
    /// or a stall, not the operation it names.
    pub fn healthy(&self) -> anyhow::Result<()> {
        let cart = &self.cart;
        let decisions = &self.decisions;
        anyhow::ensure!(
            cart.errors == 0
                && cart.bypassed == 0
                && cart.late == 0
                && decisions.l2_errors == 0
                && decisions.l2_skipped == 0
                && decisions.codec_errors == 0
                && self.evaluation_failures == 0,
            "Redis failed, answered late or was bypassed during the benchmark, so it measured a \
             fallback path or a stall: \
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
            // The server's pool settings (`commerce::db::pool_options`: no liveness ping when a
            // connection is checked out) and size.
            let pool = commerce::db::pool_options()
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
            let mut commerce = Commerce::new(pool.clone(), cache, Arc::new(engine));
            let metrics = if metrics_requested()? {
                let metrics = Metrics::new().context("setting up the metrics")?;
                commerce = commerce
                    .with_metrics(&metrics)
                    .context("registering the services' metrics")?;
                Some(metrics)
            } else {
                None
            };

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
                metrics,
                provider: services.provider(),
                round_trips: Arc::new(services.round_trip_counter(&database)),
                database,
            })
        })
    }

    /// The cart cache.
    pub fn cache(&self) -> &CartCache {
        self.commerce.carts.cache()
    }

    /// Makes `group` count the round trips of its benchmarks to this environment's database and
    /// Redis (`roundtrips.json`; see `bench_harness::Group::count_round_trips`).
    pub fn count_round_trips(&self, group: &mut Group<'_>) {
        let counter = Arc::clone(&self.round_trips);
        group.count_round_trips(move || counter.read());
    }

    /// A snapshot of the cache counters.
    pub fn counters(&self) -> Counters {
        let engine = self.commerce.policy.stats();
        Counters {
            cart: self.commerce.carts.cache_stats(),
            decisions: engine.cache.unwrap_or_default(),
            evaluations: engine.evaluations,
            evaluation_failures: engine.evaluation_failures,
            grpc_calls: self
                .metrics
                .as_ref()
                .map(|metrics| metrics.grpc().handled_total()),
        }
    }

    /// One line about the set-up, for the log of a run.
    pub fn describe(&self) -> String {
        format!(
            "{} services, database {}, pool of {POOL_SIZE}, tokio runtime with {} workers, gRPC on {}, metrics {}",
            self.provider,
            self.database.name(),
            bench_harness::WORKER_THREADS,
            self.server.addr(),
            if self.metrics.is_some() { "on" } else { "off" }
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
            metrics: _,
            provider: _,
            round_trips,
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
        drop((cart_keys, decision_keys, round_trips));
        drop(database);
        Ok(())
    }
}

//! The commerce backend: a per-tenant catalog, carts with a Redis read-through cache, orders, and
//! the gRPC API over them.
//!
//! Code map:
//! - [`ids`]: the typed ids (tenant, user, product, order) and their parsing.
//! - [`identity`]: who is calling ([`identity::Caller`]) and with which roles.
//! - [`authz`]: the single authorization step every gRPC handler runs first, which asks the
//!   policy engine (the `authz` crate).
//! - [`cart`]: cart operations ([`cart::Carts`]); [`cache`]: the Redis cart cache.
//! - [`orders`]: order creation, lookup and keyset-paginated listing ([`orders::Orders`]).
//! - [`db`]: the PostgreSQL circuit breaker both services go through.
//! - [`grpc`]: the generated protobuf code, the tonic services and the in-process server helpers.
//! - [`metrics`]: the Prometheus metrics (gRPC layer, domain, database, caches, policy, process
//!   and runtime) and their `/metrics` listener.
//! - [`fixtures`]: deterministic catalog, cart and order-history data for tests and benchmarks.
//! - [`server`]: what the `commerce-server` binary runs: connect, migrate, serve until a signal.

pub mod authz;
pub mod cache;
pub mod cart;
pub mod db;
mod error;
pub mod fixtures;
pub mod grpc;
pub mod identity;
pub mod ids;
pub mod metrics;
pub mod orders;
pub mod server;

use std::sync::Arc;

pub use error::Error;

/// The schema migrations under `crates/commerce/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The services over one database pool and one cart cache, and the policy engine that
/// authorizes every gRPC call; cheap to clone.
#[derive(Clone, Debug)]
pub struct Commerce {
    pub carts: cart::Carts,
    pub orders: orders::Orders,
    /// The engine [`authz::authorize`] asks; its [`stats`](::authz::PolicyEngine::stats) count
    /// evaluations and decision-cache hits.
    pub policy: Arc<::authz::PolicyEngine>,
    /// Where the services and the gRPC layer record their metrics (`None`: nowhere).
    metrics: Option<metrics::Metrics>,
}

impl Commerce {
    /// Builds the services over `pool`, caching carts in `cache`, authorizing calls with `policy`.
    pub fn new(
        pool: sqlx::PgPool,
        cache: cache::CartCache,
        policy: Arc<::authz::PolicyEngine>,
    ) -> Self {
        // One breaker for both services: they share the pool, and so its database.
        let breaker = db::Breaker::new(&pool);
        Self {
            carts: cart::Carts::with_breaker(pool.clone(), cache.clone(), breaker.clone()),
            orders: orders::Orders::with_breaker(pool, cache, breaker),
            policy,
            metrics: None,
        }
    }

    /// The services recording their metrics in `metrics`, which also reads the pool, the caches
    /// and the policy engine when it is scraped; the gRPC server built from them
    /// ([`grpc::router`]) records the calls there too. Fails if `metrics` observes other services
    /// already.
    pub fn with_metrics(self, metrics: &metrics::Metrics) -> Result<Self, metrics::MetricsError> {
        metrics.observe(&self)?;
        Ok(Self {
            carts: self.carts.with_metrics(Some(metrics.clone())),
            orders: self.orders.with_metrics(Some(metrics.clone())),
            policy: self.policy,
            metrics: Some(metrics.clone()),
        })
    }

    /// Where the services record their metrics, if anywhere.
    pub fn metrics(&self) -> Option<&metrics::Metrics> {
        self.metrics.as_ref()
    }
}

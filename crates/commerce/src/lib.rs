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
//! - [`grpc`]: the generated protobuf code, the tonic services and the in-process server helpers.
//! - [`fixtures`]: deterministic catalog, cart and order-history data for tests and benchmarks.
//! - [`server`]: what the `commerce-server` binary runs: connect, migrate, serve until a signal.

pub mod authz;
pub mod cache;
pub mod cart;
mod error;
pub mod fixtures;
pub mod grpc;
pub mod identity;
pub mod ids;
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
}

impl Commerce {
    /// Builds the services over `pool`, caching carts in `cache`, authorizing calls with `policy`.
    pub fn new(
        pool: sqlx::PgPool,
        cache: cache::CartCache,
        policy: Arc<::authz::PolicyEngine>,
    ) -> Self {
        Self {
            carts: cart::Carts::new(pool.clone(), cache.clone()),
            orders: orders::Orders::new(pool, cache),
            policy,
        }
    }
}

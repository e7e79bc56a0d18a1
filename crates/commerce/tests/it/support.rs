//! Shared set-up: a migrated database and a Redis namespace per test, the services over them, an
//! in-process gRPC server with clients, and callers.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use authz::{PolicyEngine, PolicySet};
use commerce::Commerce;
use commerce::cache::{CacheConfig, CartCache};
use commerce::fixtures::{self, NewProduct};
use commerce::grpc::LocalServer;
use commerce::grpc::proto::cart_service_client::CartServiceClient;
use commerce::grpc::proto::order_service_client::OrderServiceClient;
use commerce::identity::{Caller, Role, Roles};
use commerce::ids::{ProductId, TenantId, UserId};
use provision::{RedisNamespace, TestDatabase};
use sqlx::PgPool;
use tonic::transport::Channel;

/// One test's database, Redis namespaces and services.
pub struct Env {
    pub commerce: Commerce,
    pub pool: PgPool,
    pub redis: RedisNamespace,
    /// The decision cache's namespace (in the shared Redis).
    pub decisions: RedisNamespace,
    // Dropped last: the database goes away with it.
    _db: TestDatabase,
}

impl Env {
    /// A fresh database and namespace, caching carts in the shared Redis.
    pub async fn new() -> anyhow::Result<Env> {
        let services = provision::shared().context("provisioning PostgreSQL and Redis")?;
        let redis = services.redis_namespace();
        let config = cache_config(redis.url(), redis.prefix());
        Env::with_cache(redis, &config).await
    }

    /// A fresh database, caching carts as `config` says (e.g. in a Redis server of the test's own).
    pub async fn with_cache(redis: RedisNamespace, config: &CacheConfig) -> anyhow::Result<Env> {
        let services = provision::shared().context("provisioning PostgreSQL and Redis")?;
        let db = services
            .database(&commerce::MIGRATOR)
            .await
            .context("creating a test database")?;
        let pool = commerce::db::pool_options()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(30))
            .connect(db.url())
            .await
            .context("connecting to the test database")?;
        let cache = CartCache::connect(config).context("configuring the cart cache")?;
        let decisions = services.redis_namespace();
        Ok(Env {
            commerce: Commerce::new(pool.clone(), cache, policy_engine(&decisions)?),
            pool,
            redis,
            decisions,
            _db: db,
        })
    }

    pub fn cache(&self) -> &CartCache {
        self.commerce.carts.cache()
    }

    /// Serves the API on 127.0.0.1:0 and connects the clients.
    pub async fn serve(&self) -> anyhow::Result<Api> {
        Api::start(self.commerce.clone()).await
    }

    /// Inserts products with the given (price in cents, stock), all active; SKUs are `P0`, `P1`…
    pub async fn products(
        &self,
        tenant: TenantId,
        specs: &[(i64, i32)],
    ) -> anyhow::Result<Vec<ProductId>> {
        let products: Vec<NewProduct> = specs
            .iter()
            .enumerate()
            .map(|(i, &(price_cents, stock))| NewProduct {
                id: ProductId::new_random(),
                sku: format!("P{i}"),
                name: format!("Product {i}"),
                price_cents,
                stock,
                active: true,
            })
            .collect();
        let mut conn = self.pool.acquire().await?;
        fixtures::insert_products(&mut conn, tenant, &products)
            .await
            .context("inserting products")?;
        Ok(products.iter().map(|p| p.id).collect())
    }

    pub async fn stock(&self, tenant: TenantId, product: ProductId) -> anyhow::Result<i32> {
        Ok(fixtures::stock_of(&self.pool, tenant, product).await?)
    }

    /// How many orders the tenant has, straight from the database.
    pub async fn order_count(&self, tenant: TenantId) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// The shipped policies, caching decisions in `namespace` (L1 and Redis).
pub fn policy_engine(namespace: &RedisNamespace) -> anyhow::Result<Arc<PolicyEngine>> {
    let policies = PolicySet::shipped().context("compiling the shipped policies")?;
    // A generous Redis timeout: the statistics tests count Redis hits and misses exactly, and a
    // loaded test machine must not turn a slow answer into an error.
    let cache = tiered_cache::CacheConfig::new(namespace.url(), namespace.prefix())
        .with_l2_limits(Duration::from_secs(2), Duration::from_millis(200));
    let engine = commerce::server::policy_engine(policies, Some(cache))
        .context("configuring the decision cache")?;
    Ok(Arc::new(engine))
}

/// Cache settings for tests: a short cool-down, so recovery after an outage is quick to observe.
pub fn cache_config(url: &str, prefix: &str) -> CacheConfig {
    let mut config = CacheConfig::new(url, prefix);
    config.cooldown = Duration::from_millis(200);
    config.timeout = Duration::from_millis(500);
    config
}

/// An in-process server and clients connected to it.
pub struct Api {
    pub carts: CartServiceClient<Channel>,
    pub orders: OrderServiceClient<Channel>,
    pub server: LocalServer,
}

impl Api {
    pub async fn start(commerce: Commerce) -> anyhow::Result<Api> {
        let server = LocalServer::start(commerce)
            .await
            .context("starting the server")?;
        let channel = Channel::from_shared(server.url())?
            .connect()
            .await
            .context("connecting to the server")?;
        Ok(Api {
            carts: CartServiceClient::new(channel.clone()),
            orders: OrderServiceClient::new(channel),
            server,
        })
    }
}

/// A new user of `tenant` with `roles`.
pub fn user(tenant: TenantId, roles: &[Role]) -> Caller {
    Caller {
        tenant,
        user: UserId::new_random(),
        roles: Roles::of(roles),
    }
}

/// A new customer of `tenant`.
pub fn customer(tenant: TenantId) -> Caller {
    user(tenant, &[Role::Customer])
}

/// The status code of a failed call, failing the test if it succeeded.
pub fn failure<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> anyhow::Result<tonic::Status> {
    match result {
        Ok(response) => anyhow::bail!("expected an error, got {:?}", response.into_inner()),
        Err(status) => Ok(status),
    }
}

/// Log lines of `commerce::authz` at `info` and above, from every test of this binary.
///
/// Tracing's per-thread default subscriber would miss the lines that the server's tasks write on
/// other worker threads, so this installs a global subscriber once, writing into memory. Tests
/// run in parallel, so each looks for its own lines by the random ids it used.
pub fn authz_log() -> &'static LogBuffer {
    static LOG: OnceLock<LogBuffer> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("commerce::authz=info"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // Only this function installs a global subscriber, and only once.
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global tracing subscriber in the test binary");
        buffer
    })
}

/// Formatted log output, shared between the subscriber's writers and the tests.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// The lines written so far that contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

//! The environment of a self-contained run: PostgreSQL and Redis from `provision` (the same
//! way as the tests and benchmarks), a database of its own with the migrations, a
//! deterministic data set (catalog, users with carts, order histories) in several tenants, and
//! `commerce-server` started as a process of its own on a free port.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use commerce::cache::{CacheConfig, CartCache};
use commerce::fixtures::{self, FixtureSpec};
use commerce::ids::TenantId;
use uuid::Uuid;

use std::sync::{Arc, Mutex};

use crate::engine::ChaosDriver;
use crate::ops::{Identities, OrderRef, TenantData};
use crate::profile::{ChaosEvent, Dependency};

/// How much data to load.
#[derive(Clone, Debug)]
pub struct DataSpec {
    pub tenants: usize,
    pub users_per_tenant: usize,
    pub products: usize,
    pub orders_per_user: usize,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            tenants: 2,
            users_per_tenant: 1_000,
            products: 200,
            orders_per_user: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot start PostgreSQL and Redis")]
    Services(#[source] provision::Error),
    #[error("cannot load the data set")]
    Data(#[source] commerce::Error),
    #[error("cannot connect to the database")]
    Database(#[source] sqlx::Error),
    #[error("cannot connect to Redis")]
    Redis(#[source] redis::RedisError),
    #[error("cannot find a free port")]
    Port(#[source] std::io::Error),
    #[error("cannot start {binary} (build it with `cargo xtask load`, or pass --server-bin)")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "commerce-server exited before it served ({status}); its log ({log}) ends with:\n{tail}"
    )]
    ServerExited {
        status: String,
        log: String,
        tail: String,
    },
    #[error("commerce-server did not answer health checks within {0:?}; its log: {1}")]
    ServerSilent(Duration, String),
    #[error("the set-up panicked: {0}")]
    Panicked(String),
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running environment; dropping it stops the server and removes the data.
pub struct Environment {
    server: Option<Child>,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub identities: Identities,
    pub server_log: PathBuf,
    // Dropped after the server: the database, then the Redis keys and the services.
    _database: provision::TestDatabase,
    backends: Backends,
}

/// Where PostgreSQL and Redis come from.
enum Backends {
    /// `provision`'s usual services (environment, containers or local binaries), with a Redis
    /// key namespace of the run's own.
    Shared {
        _namespace: provision::RedisNamespace,
        services: provision::Services,
    },
    /// Servers of the run's own, which it may stop and start (`--chaos`).
    Own(Arc<Dependencies>),
}

/// PostgreSQL and Redis servers that belong to one run: its chaos events stop and start them.
pub struct Dependencies {
    postgres: Mutex<provision::PostgresServer>,
    redis: Mutex<provision::RedisServer>,
}

impl Dependencies {
    /// Servers the caller launched (`provision::PostgresServer::launch`,
    /// `provision::RedisServer::launch`).
    pub fn new(postgres: provision::PostgresServer, redis: provision::RedisServer) -> Dependencies {
        Dependencies {
            postgres: Mutex::new(postgres),
            redis: Mutex::new(redis),
        }
    }

    pub fn postgres_url(&self) -> String {
        lock(&self.postgres).url().to_owned()
    }

    pub fn redis_url(&self) -> String {
        lock(&self.redis).url().to_owned()
    }
}

impl ChaosDriver for Dependencies {
    fn apply(&self, event: &ChaosEvent) -> Result<(), String> {
        let outcome = match (event.dependency, event.up) {
            (Dependency::Redis, false) => lock(&self.redis).stop(),
            (Dependency::Redis, true) => lock(&self.redis).start(),
            (Dependency::Postgres, false) => lock(&self.postgres).stop(),
            (Dependency::Postgres, true) => lock(&self.postgres).start(),
        };
        // The whole chain, as the binary prints errors.
        outcome.map_err(|error| format!("{:#}", anyhow::Error::new(error)))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tenant ids of a data set: fixed, so that runs and `serve` sessions are reproducible.
fn tenant_id(index: usize) -> TenantId {
    TenantId(Uuid::from_u128(
        0x10ad_0000_0000_4000_8000_0000_0000_0000 | index as u128,
    ))
}

impl Environment {
    /// Starts everything; `log_dir` receives the server's log. With `own_services`, PostgreSQL
    /// and Redis are servers of the run's own (see [`Environment::chaos_driver`]) rather than
    /// `provision`'s usual ones.
    pub async fn start(
        server_bin: &Path,
        data: &DataSpec,
        log_dir: &Path,
        own_services: bool,
        progress: impl Fn(&str),
    ) -> Result<Environment, SetupError> {
        let (backends, database, prefix) = if own_services {
            progress("starting PostgreSQL and Redis of this run's own, to stop and start them");
            let postgres = tokio::task::spawn_blocking(provision::PostgresServer::launch);
            let redis = tokio::task::spawn_blocking(provision::RedisServer::launch);
            let postgres = postgres
                .await
                .map_err(|panic| SetupError::Panicked(panic.to_string()))?
                .map_err(SetupError::Services)?;
            let redis = redis
                .await
                .map_err(|panic| SetupError::Panicked(panic.to_string()))?
                .map_err(SetupError::Services)?;
            let database = postgres
                .database(&commerce::MIGRATOR)
                .await
                .map_err(SetupError::Services)?;
            let dependencies = Dependencies::new(postgres, redis);
            (
                Backends::Own(Arc::new(dependencies)),
                database,
                "load:".to_owned(),
            )
        } else {
            progress("starting PostgreSQL and Redis (provision)");
            let services = provision::Services::start().map_err(SetupError::Services)?;
            let database = services
                .database(&commerce::MIGRATOR)
                .await
                .map_err(SetupError::Services)?;
            let namespace = services.redis_namespace();
            let prefix = namespace.prefix().to_owned();
            (
                Backends::Shared {
                    _namespace: namespace,
                    services,
                },
                database,
                prefix,
            )
        };
        let redis_url = match &backends {
            Backends::Shared { services, .. } => services.redis_url().to_owned(),
            Backends::Own(own) => lock(&own.redis).url().to_owned(),
        };
        let cart_prefix = format!("{prefix}cart:");
        let decision_prefix = format!("{prefix}authz:");

        progress(&format!(
            "loading {} tenants × ({} products, {} users with a cart, {} orders each)",
            data.tenants, data.products, data.users_per_tenant, data.orders_per_user
        ));
        let identities = load_data(database.url(), &redis_url, &cart_prefix, data).await?;

        std::fs::create_dir_all(log_dir).map_err(|source| SetupError::Write {
            path: log_dir.display().to_string(),
            source,
        })?;
        let server_log = log_dir.join("commerce-server.log");
        let addr = free_port()?;
        let metrics_addr = free_port()?;
        progress(&format!("starting {} on {addr}", server_bin.display()));
        let log = std::fs::File::create(&server_log).map_err(|source| SetupError::Write {
            path: server_log.display().to_string(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| SetupError::Write {
            path: server_log.display().to_string(),
            source,
        })?;
        let mut command = Command::new(server_bin);
        command
            .args(["--listen", &addr.to_string()])
            .args(["--metrics-addr", &metrics_addr.to_string()])
            .args(["--database-url", database.url()])
            .args(["--redis-url", &redis_url])
            .args(["--redis-prefix", &cart_prefix])
            .args(["--decision-cache-prefix", &decision_prefix])
            // Per-call logs would cost the server more than some calls do.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // A process group of its own: Ctrl-C in the terminal stops the load test, which then
        // stops the server, rather than the server mid-run.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| SetupError::Spawn {
            binary: server_bin.display().to_string(),
            source,
        })?;
        let mut environment = Environment {
            server: Some(child),
            addr,
            metrics_addr,
            identities,
            server_log,
            _database: database,
            backends,
        };
        environment
            .wait_until_serving(Duration::from_secs(30))
            .await?;
        Ok(environment)
    }

    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    pub fn provider(&self) -> String {
        match &self.backends {
            Backends::Shared { services, .. } => services.provider().to_string(),
            Backends::Own(_) => "servers of this run's own".to_owned(),
        }
    }

    /// What stops and starts PostgreSQL and Redis: only for servers of the run's own.
    pub fn chaos_driver(&self) -> Option<Arc<dyn ChaosDriver>> {
        match &self.backends {
            Backends::Own(own) => Some(Arc::clone(own) as Arc<dyn ChaosDriver>),
            Backends::Shared { .. } => None,
        }
    }

    async fn wait_until_serving(&mut self, limit: Duration) -> Result<(), SetupError> {
        let started = Instant::now();
        let url = format!("http://{}", self.addr);
        loop {
            if let Some(child) = self.server.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.server = None;
                return Err(SetupError::ServerExited {
                    status: status.to_string(),
                    log: self.server_log.display().to_string(),
                    tail: tail(&self.server_log),
                });
            }
            if let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.clone())
                && let Ok(channel) = endpoint
                    .connect_timeout(Duration::from_millis(500))
                    .connect()
                    .await
            {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let request = tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(answer) = health.check(request).await
                    && answer.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return Ok(());
                }
            }
            if started.elapsed() > limit {
                return Err(SetupError::ServerSilent(
                    limit,
                    self.server_log.display().to_string(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s); the data and services go on drop.
    pub fn stop_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// Loads the data set into a migrated database (and invalidates the carts' entries in the cart
/// cache under `cart_prefix`); returns what the requests may use.
pub async fn load_data(
    database_url: &str,
    redis_url: &str,
    cart_prefix: &str,
    data: &DataSpec,
) -> Result<Identities, SetupError> {
    let pool = sqlx::PgPool::connect(database_url)
        .await
        .map_err(SetupError::Database)?;
    let cache =
        CartCache::connect(&CacheConfig::new(redis_url, cart_prefix)).map_err(SetupError::Redis)?;
    let mut tenants = Vec::new();
    for index in 0..data.tenants {
        let spec = FixtureSpec {
            seed: 42 + index as u64,
            products: data.products,
            // Enough for any run: orders must not fail for want of stock.
            stock: 1_000_000_000,
            users: data.users_per_tenant,
            cart_items: 3.min(data.products),
            orders_per_user: data.orders_per_user,
        };
        let set = fixtures::load(&pool, &cache, tenant_id(index), &spec)
            .await
            .map_err(SetupError::Data)?;
        tenants.push(TenantData {
            id: set.tenant.0,
            users: set.users.iter().map(|u| u.0).collect(),
            products: set.products.iter().map(|p| p.id.0).collect(),
            orders: set
                .orders
                .iter()
                .map(|o| OrderRef {
                    id: o.id.0,
                    user: o.user.0,
                })
                .collect(),
        });
    }
    pool.close().await;
    Ok(Identities { tenants })
}

/// A port nobody listens on now. (The server binds it a moment later; another process taking
/// it in between makes the server exit, which is reported with its log.)
fn free_port() -> Result<SocketAddr, SetupError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(SetupError::Port)?;
    listener.local_addr().map_err(SetupError::Port)
}

/// Makes the child receive SIGTERM when this process dies, however it dies: a server must not
/// outlive its load test (its database is gone by then).
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the child between fork and exec; it only makes the prctl
    // system call, which is async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
}

/// The last lines of a log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Writes the identities as JSON (for `serve`, and for `--target` runs later).
pub fn write_identities(path: &Path, identities: &Identities) -> Result<(), SetupError> {
    let text = serde_json::to_string_pretty(identities).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(|source| SetupError::Write {
        path: path.display().to_string(),
        source,
    })
}

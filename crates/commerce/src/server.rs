//! What the `commerce-server` binary runs: load the authorization policies, connect to
//! PostgreSQL and Redis, optionally migrate, and serve the gRPC API (and, if asked, `/metrics`)
//! until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authz::{PolicyEngine, PolicyError, PolicySet};
use tiered_cache::TieredCache;
use tokio::net::TcpListener;

use crate::Commerce;
use crate::cache::{CacheConfig, CartCache};
use crate::metrics::{Metrics, MetricsError};

/// Where the authorization policies come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// The policies shipped with the `authz` crate, embedded in the binary.
    Shipped,
    /// Every `.rego` file under a directory.
    Dir(PathBuf),
}

impl PolicySource {
    /// Loads and compiles the policies.
    pub fn load(&self) -> Result<PolicySet, PolicyError> {
        match self {
            PolicySource::Shipped => PolicySet::shipped(),
            PolicySource::Dir(dir) => PolicySet::load_dir(dir),
        }
    }
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::Shipped => f.write_str("the shipped policies"),
            PolicySource::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// The policy engine over `policies`, caching its decisions as `decision_cache` says (`None`:
/// every call evaluates the policies). The cache's Redis namespace should hold decisions only.
pub fn policy_engine(
    policies: PolicySet,
    decision_cache: Option<tiered_cache::CacheConfig>,
) -> Result<PolicyEngine, tiered_cache::ConfigError> {
    Ok(match decision_cache {
        Some(config) => PolicyEngine::with_decision_cache(policies, TieredCache::new(config)?),
        None => PolicyEngine::new(policies),
    })
}

/// The size of the PostgreSQL pool unless configured otherwise (`--max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 20;

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub max_connections: u32,
    /// How long a call waits for a pooled connection before it fails with `UNAVAILABLE`.
    pub acquire_timeout: Duration,
    /// Apply pending migrations before serving.
    pub migrate: bool,
    pub cache: CacheConfig,
    pub policies: PolicySource,
    /// The decision cache (`None`: evaluate the policies on every call).
    pub decision_cache: Option<tiered_cache::CacheConfig>,
    /// Where to serve `/metrics` over HTTP (`None`: no metrics are recorded at all).
    pub metrics_addr: Option<SocketAddr>,
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot load the authorization policies from {source_name}")]
    Policies {
        source_name: PolicySource,
        #[source]
        source: PolicyError,
    },
    #[error("invalid decision cache settings")]
    DecisionCache(#[source] tiered_cache::ConfigError),
    #[error("cannot connect to PostgreSQL at {address}")]
    Database {
        /// Host and port (or socket directory) of the URL; never its password.
        address: String,
        /// What sqlx said, without the wrapper whose message repeats its own source
        /// ([`database_cause`]).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot apply the migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot set up the Redis cart cache")]
    Redis(#[source] redis::RedisError),
    #[error("cannot set up the metrics")]
    Metrics(#[source] MetricsError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// The cause of a failed connection as it should be printed in an error chain: sqlx's `Io`,
/// `Tls` and `Configuration` errors print their source in their own message and give it as
/// their source too, so the chain would say "Connection refused (os error 111): Connection
/// refused (os error 111)". Those are unwrapped to the error they carry.
fn database_cause(error: sqlx::Error) -> Box<dyn std::error::Error + Send + Sync> {
    match error {
        sqlx::Error::Io(io) => Box::new(io),
        sqlx::Error::Tls(tls) | sqlx::Error::Configuration(tls) => tls,
        other => Box::new(other),
    }
}

/// The pool of `settings`, with its first connection made. When that fails, the error says
/// where it tried and why: sqlx's pool reports only that it timed out, so the cause is asked
/// of one more direct connection (e.g. "Connection refused").
async fn connect(settings: &Settings) -> Result<sqlx::PgPool, ServerError> {
    use sqlx::Connection as _;
    let options: sqlx::postgres::PgConnectOptions =
        settings
            .database_url
            .parse()
            .map_err(|source| ServerError::Database {
                address: "the given URL".to_owned(),
                source: database_cause(source),
            })?;
    let address = match options.get_socket() {
        // The socket file sqlx connects to is `<directory>/.s.PGSQL.<port>`.
        Some(directory) => format!("{} (port {})", directory.display(), options.get_port()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let pooled = crate::db::pool_options()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options.clone())
        .await;
    match pooled {
        Ok(pool) => Ok(pool),
        Err(sqlx::Error::PoolTimedOut) => {
            // Within the same time again: a host that drops packets would otherwise keep this
            // attempt waiting for the system's TCP timeout (about two minutes on Linux).
            let direct = tokio::time::timeout(
                settings.acquire_timeout,
                sqlx::PgConnection::connect_with(&options),
            )
            .await;
            let source = match direct {
                Err(_elapsed) => Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}, twice", settings.acquire_timeout),
                )),
                Ok(Err(cause)) => database_cause(cause),
                Ok(Ok(connection)) => {
                    // It answers now: the pool's attempt failed on something transient.
                    let _ = connection.close().await;
                    database_cause(sqlx::Error::PoolTimedOut)
                }
            };
            Err(ServerError::Database { address, source })
        }
        Err(source) => Err(ServerError::Database {
            address,
            source: database_cause(source),
        }),
    }
}

/// Loads the policies, connects, migrates if asked, and serves until `shutdown` resolves; calls
/// in flight finish before it returns.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    // Policies first: a policy that does not compile is a configuration error worth reporting
    // before anything is connected to.
    let policies = settings
        .policies
        .load()
        .map_err(|source| ServerError::Policies {
            source_name: settings.policies.clone(),
            source,
        })?;
    tracing::info!(
        from = %settings.policies,
        version = %policies.version(),
        files = policies.files().len(),
        "policies loaded"
    );
    let engine = policy_engine(policies, settings.decision_cache.clone())
        .map_err(ServerError::DecisionCache)?;
    let pool = connect(&settings).await?;
    if settings.migrate {
        crate::MIGRATOR
            .run(&pool)
            .await
            .map_err(ServerError::Migrate)?;
        tracing::info!("migrations applied");
    }
    let cache = CartCache::connect(&settings.cache).map_err(ServerError::Redis)?;
    let mut commerce = Commerce::new(pool.clone(), cache, Arc::new(engine));
    let metrics = match settings.metrics_addr {
        None => None,
        Some(addr) => {
            let metrics = Metrics::new().map_err(ServerError::Metrics)?;
            commerce = commerce
                .with_metrics(&metrics)
                .map_err(ServerError::Metrics)?;
            Some((metrics, bind(addr).await?))
        }
    };
    let listener = bind(settings.listen).await?;
    let addr = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(
        %addr,
        redis_prefix = %settings.cache.prefix,
        decision_cache_prefix = settings.decision_cache.as_ref().map(|config| config.namespace.as_str()),
        "serving gRPC"
    );
    // The metrics listener stops when the gRPC server has stopped, so that the calls in flight
    // at shutdown are still counted by the last scrape that can see them.
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = metrics.map(|(metrics, listener)| {
        match listener.local_addr() {
            Ok(addr) => tracing::info!(%addr, "serving metrics on /metrics"),
            Err(error) => tracing::info!(%error, "serving metrics on /metrics"),
        }
        tokio::spawn(crate::metrics::serve(listener, metrics, async {
            let _ = metrics_stopped.await;
        }))
    });
    let served = crate::grpc::serve(listener, commerce, shutdown).await;
    let _ = stop_metrics.send(());
    if let Some(task) = metrics_server {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the metrics listener failed"),
            Err(error) => tracing::error!(%error, "the metrics listener's task failed"),
        }
    }
    served.map_err(ServerError::Serve)?;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Resolves on the first SIGINT or SIGTERM (Ctrl-C elsewhere).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

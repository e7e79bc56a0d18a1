//! What the `commerce-server` binary runs: connect to PostgreSQL and Redis, optionally migrate,
//! and serve the gRPC API until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;

use crate::Commerce;
use crate::cache::{CacheConfig, CartCache};

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
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot connect to PostgreSQL")]
    Database(#[source] sqlx::Error),
    #[error("cannot apply the migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot set up the Redis cart cache")]
    Redis(#[source] redis::RedisError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// Connects, migrates if asked, and serves until `shutdown` resolves; calls in flight finish
/// before it returns.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect(&settings.database_url)
        .await
        .map_err(ServerError::Database)?;
    if settings.migrate {
        crate::MIGRATOR
            .run(&pool)
            .await
            .map_err(ServerError::Migrate)?;
        tracing::info!("migrations applied");
    }
    let cache = CartCache::connect(&settings.cache).map_err(ServerError::Redis)?;
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: settings.listen,
                source,
            })?;
    let addr = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(%addr, redis_prefix = %settings.cache.prefix, "serving gRPC");
    crate::grpc::serve(listener, Commerce::new(pool.clone(), cache), shutdown)
        .await
        .map_err(ServerError::Serve)?;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
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

//! Errors of service provisioning.

use std::path::PathBuf;

/// Why services could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PERF_SERVICES={0:?} is not one of `env`, `docker`, `local` (or unset for automatic)")]
    BadChoice(String),
    #[error("PERF_SERVICES=env needs both DATABASE_URL and REDIS_URL, but {0} is not set")]
    EnvMissing(&'static str),
    #[error("{what} does not answer")]
    Unreachable {
        what: &'static str,
        #[source]
        source: Box<Error>,
    },
    #[error("PERF_SERVICES=docker, but no Docker engine answers: {0}")]
    DockerUnavailable(String),
    #[error("Docker: {0}")]
    Docker(#[from] testcontainers::TestcontainersError),
    #[error("PERF_SERVICES=local, but {0}")]
    BinariesNotFound(String),
    #[error(
        "no PostgreSQL and Redis to test against. Provide them in one of three ways:\n\
         \x20 1. export DATABASE_URL=postgres://... and REDIS_URL=redis://... (for example \
         `docker compose up -d --wait` and the URLs in the README);\n\
         \x20 2. run a Docker engine (testcontainers starts throwaway containers): {docker_reason};\n\
         \x20 3. install the servers locally, on Debian or Ubuntu: \
         `sudo apt-get install -y postgresql redis-server`: {local_reason}"
    )]
    NoProvider {
        docker_reason: String,
        local_reason: String,
    },
    #[error("{what} did not start: {reason}{}", log_tail(.log))]
    Start {
        what: &'static str,
        reason: String,
        log: Option<String>,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not a valid connection URL")]
    BadUrl(String),
    #[error("PostgreSQL")]
    Postgres(#[from] sqlx::Error),
    #[error("applying migrations to the template database {template}")]
    Migrate {
        template: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("Redis")]
    Redis(#[from] redis::RedisError),
    #[error(
        "no unprivileged user (`postgres` or `nobody`) to run PostgreSQL as; initdb refuses root"
    )]
    NoUnprivilegedUser,
    #[error("removing {}", .0.display())]
    Cleanup(PathBuf, #[source] std::io::Error),
    #[error("the shared services could not start: {0}")]
    SharedStartFailed(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

fn log_tail(log: &Option<String>) -> String {
    match log {
        Some(log) if !log.trim().is_empty() => {
            format!("\n--- last lines of its log ---\n{}", log.trim_end())
        }
        _ => String::new(),
    }
}

/// The error and its sources, one per line, as `{:#}` would print them through anyhow.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! PostgreSQL and Redis for tests and benchmarks: from the environment, a Docker engine, or local binaries.
//!
//! [`Services::start`] picks the first way that works, in this order:
//!
//! 1. `DATABASE_URL` and `REDIS_URL` from the environment, used exactly as given;
//! 2. a Docker engine that answers: throwaway `postgres` and `redis` containers (testcontainers);
//! 3. local binaries (`initdb`/`postgres`, `redis-server`): throwaway servers in a temporary
//!    directory on free loopback ports, configured for benchmarking (no fsync, no persistence).
//!
//! `PERF_SERVICES=env|docker|local` forces one of them. The choice is printed once to stderr.
//!
//! Everything a test needs to run in parallel with others comes from [`Services::database`] (a
//! fresh database cloned from a migrated template) and [`Services::redis_namespace`] (a key prefix
//! of its own). Servers started here are stopped, and their directories removed, when the handle
//! drops — and, through a watchdog process, also when the process dies without dropping it (a
//! panic that aborts, `SIGKILL`, Ctrl-C, or the process-wide [`shared`] instance at exit).
//!
//! An outage needs servers nobody else uses: [`RedisServer`] and [`PostgresServer`] start one
//! for the caller alone (local binaries, else a container), which it may stop and start again
//! on the same URL.

mod config;
mod counter;
mod docker;
mod error;
mod isolate;
mod local;
mod postgres_server;
mod redis_server;
mod watchdog;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use crate::config::{Choice, Config};
pub use crate::counter::RoundTripCounter;
pub use crate::error::Error;
pub use crate::isolate::{RedisNamespace, TestDatabase};
pub use crate::postgres_server::PostgresServer;
pub use crate::redis_server::RedisServer;

/// How the services were provided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// `DATABASE_URL` and `REDIS_URL` from the environment.
    Env,
    /// Containers on a Docker engine.
    Docker,
    /// Local `postgres` and `redis-server` processes in a temporary directory.
    Local,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Env => "env",
            Provider::Docker => "docker",
            Provider::Local => "local",
        })
    }
}

/// A running PostgreSQL server and Redis server.
///
/// Dropping it stops whatever it started (containers, local processes) and removes their
/// temporary directories. Servers from the environment are left alone.
#[derive(Debug)]
pub struct Services {
    provider: Provider,
    postgres_url: String,
    redis_url: String,
    startup: Duration,
    // Held only for its `Drop`; `None` for servers from the environment.
    _running: Option<Running>,
}

#[derive(Debug)]
enum Running {
    Docker(#[expect(dead_code, reason = "held only for its Drop")] Box<docker::DockerServices>),
    Local(Box<local::LocalServices>),
}

impl Services {
    /// Starts (or finds) PostgreSQL and Redis as configured by the environment.
    ///
    /// Blocking. Safe to call from inside a tokio runtime: the work runs on a thread of its own.
    pub fn start() -> Result<Services, Error> {
        Services::start_with(&Config::from_env()?)
    }

    /// Starts (or finds) PostgreSQL and Redis as `config` says.
    pub fn start_with(config: &Config) -> Result<Services, Error> {
        let config = config.clone();
        // Starting servers blocks, and the Docker client runs a runtime of its own, which must not
        // be nested in the caller's: a plain thread keeps this usable from sync and async code.
        std::thread::scope(|scope| scope.spawn(|| start_blocking(&config)).join())
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Which way the services were provided.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Connection URL of the server's `postgres` database, as a superuser (or, for servers from
    /// the environment, as whoever `DATABASE_URL` names).
    pub fn postgres_url(&self) -> &str {
        &self.postgres_url
    }

    /// Connection URL of the Redis server.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// A fresh database of its own, created from a template that already has `migrator`'s
    /// migrations (the template is made once per server and set of migrations). Dropping the
    /// handle drops the database.
    pub async fn database(
        &self,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<TestDatabase, Error> {
        isolate::database(&self.postgres_url, migrator).await
    }

    /// Counts the statements executed in `database` and the commands executed by Redis, from
    /// the servers' own counters (see [`RoundTripCounter`]): what a benchmark's
    /// `Group::count_round_trips` reads.
    pub fn round_trip_counter(&self, database: &TestDatabase) -> RoundTripCounter {
        RoundTripCounter::connect(&self.postgres_url, database.name(), &self.redis_url)
    }

    /// Counts the commands executed by Redis, for a suite without a database (see
    /// [`RoundTripCounter::redis_only`]).
    pub fn redis_round_trip_counter(&self) -> RoundTripCounter {
        RoundTripCounter::redis_only(&self.redis_url)
    }

    /// A Redis key namespace of its own: a unique key prefix whose keys are deleted on drop.
    pub fn redis_namespace(&self) -> RedisNamespace {
        RedisNamespace::new(&self.redis_url)
    }

    /// How long it took from the call to [`Services::start`] until both servers answered.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Process ids of locally started servers (PostgreSQL's postmaster, then redis-server).
    pub fn local_pids(&self) -> Option<(u32, u32)> {
        match &self._running {
            Some(Running::Local(local)) => Some(local.pids()),
            _ => None,
        }
    }

    /// The temporary directory holding locally started servers' data.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        match &self._running {
            Some(Running::Local(local)) => Some(local.dir()),
            _ => None,
        }
    }
}

/// The process-wide services, started on first use and shared by every test of the binary.
///
/// It is never dropped; the watchdog stops its servers and removes their directory when the
/// process exits. Each test should still take a [`Services::database`] and a
/// [`Services::redis_namespace`] of its own.
pub fn shared() -> Result<&'static Services, Error> {
    static SHARED: OnceLock<Result<Services, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Services::start().map_err(|err| error::chain(&err))) {
        Ok(services) => Ok(services),
        Err(message) => Err(Error::SharedStartFailed(message.clone())),
    }
}

/// Whether a Docker engine answers at the configured address; `Err` says why not. Bounded to
/// well under two seconds.
pub fn docker_probe(config: &Config) -> Result<(), String> {
    docker::probe(config)
}

fn start_blocking(config: &Config) -> Result<Services, Error> {
    let started = Instant::now();
    let (provider, running, postgres_url, redis_url, detail) = match config.choice {
        Choice::Env => from_env(config)?,
        Choice::Docker => from_docker(config)?,
        Choice::Local => from_local(config)?,
        Choice::Auto => {
            if config.database_url.is_some() && config.redis_url.is_some() {
                from_env(config)?
            } else {
                if let Some(name) = config.half_env() {
                    eprintln!(
                        "provision: {name} is set but not its partner; ignoring it (set both \
                         DATABASE_URL and REDIS_URL to use your own servers)"
                    );
                }
                match docker::probe(config) {
                    Ok(()) => from_docker(config)?,
                    Err(docker_reason) => match local::find_binaries(config) {
                        Ok(_) => from_local(config)?,
                        Err(local_reason) => {
                            return Err(Error::NoProvider {
                                docker_reason,
                                local_reason,
                            });
                        }
                    },
                }
            }
        }
    };
    let startup = started.elapsed();
    eprintln!(
        "provision: using {provider} services ({detail}), ready in {} ms",
        startup.as_millis()
    );
    Ok(Services {
        provider,
        postgres_url,
        redis_url,
        startup,
        _running: running,
    })
}

type Started = (Provider, Option<Running>, String, String, String);

fn from_env(config: &Config) -> Result<Started, Error> {
    let database_url = config
        .database_url
        .clone()
        .ok_or(Error::EnvMissing("DATABASE_URL"))?;
    let redis_url = config
        .redis_url
        .clone()
        .ok_or(Error::EnvMissing("REDIS_URL"))?;
    let runtime = isolate::runtime()?;
    runtime.block_on(async {
        isolate::check_postgres(&database_url)
            .await
            .map_err(|source| Error::Unreachable {
                what: "DATABASE_URL",
                source: Box::new(source),
            })?;
        isolate::check_redis(&redis_url)
            .await
            .map_err(|source| Error::Unreachable {
                what: "REDIS_URL",
                source: Box::new(source),
            })
    })?;
    Ok((
        Provider::Env,
        None,
        database_url,
        redis_url,
        "DATABASE_URL and REDIS_URL".to_owned(),
    ))
}

fn from_docker(config: &Config) -> Result<Started, Error> {
    docker::probe(config).map_err(Error::DockerUnavailable)?;
    let services = docker::DockerServices::start()?;
    let (pg, redis) = (services.postgres_url(), services.redis_url());
    let detail = format!("testcontainers: {}", docker::IMAGES);
    Ok((
        Provider::Docker,
        Some(Running::Docker(Box::new(services))),
        pg,
        redis,
        detail,
    ))
}

fn from_local(config: &Config) -> Result<Started, Error> {
    let binaries = local::find_binaries(config).map_err(Error::BinariesNotFound)?;
    let detail = binaries.describe();
    let services = local::LocalServices::start(&binaries)?;
    let (pg, redis) = (services.postgres_url(), services.redis_url());
    Ok((
        Provider::Local,
        Some(Running::Local(Box::new(services))),
        pg,
        redis,
        detail,
    ))
}

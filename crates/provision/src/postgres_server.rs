//! A PostgreSQL server of the caller's own, which a test or a load test may stop and start to
//! simulate an outage of the database.

use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use testcontainers::Container;
use testcontainers_modules::postgres::Postgres;

use crate::local::{LocalPostgres, RunAs, find_binaries, free_port, server_dir};
use crate::redis_server::off_runtime;
use crate::watchdog::{Duties, Watchdog};
use crate::{Config, Error, TestDatabase, docker, isolate};

/// A PostgreSQL server that belongs to one caller. [`PostgresServer::stop`] makes it
/// unreachable (a fast shutdown: open connections break, what was committed is kept, new
/// connections are refused),
/// [`PostgresServer::start`] brings it back on the same URL with its data.
///
/// It runs from the local binaries when they are installed, else as a container on a Docker
/// engine. The shared services are never stopped, since other tests use them.
#[derive(Debug)]
pub struct PostgresServer {
    url: String,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Local {
        // Field order is drop order.
        _watchdog: Watchdog,
        postgres: LocalPostgres,
        _dir: tempfile::TempDir,
    },
    Docker {
        _watchdog: Watchdog,
        container: Option<Box<DockerPostgres>>,
    },
}

struct DockerPostgres(Container<Postgres>);

impl std::fmt::Debug for DockerPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DockerPostgres").field(&self.0.id()).finish()
    }
}

impl PostgresServer {
    /// Starts a PostgreSQL server for the caller alone. Blocking (initdb takes a few seconds);
    /// safe to call from inside a tokio runtime.
    pub fn launch() -> Result<PostgresServer, Error> {
        let config = Config::from_env()?;
        off_runtime(|| PostgresServer::launch_blocking(&config))
    }

    fn launch_blocking(config: &Config) -> Result<PostgresServer, Error> {
        match find_binaries(config) {
            Ok(binaries) => {
                let run_as = RunAs::detect()?;
                let dir = server_dir("perf-postgres-", run_as)?;
                let watchdog = Watchdog::spawn(&Duties {
                    stop: vec![("QUIT", LocalPostgres::pid_file(dir.path()))],
                    dirs: vec![dir.path().to_owned()],
                    ..Duties::default()
                })?;
                let postgres = LocalPostgres::start(&binaries.postgres_bin, dir.path(), run_as)?;
                Ok(PostgresServer {
                    url: postgres.url(),
                    inner: Inner::Local {
                        _watchdog: watchdog,
                        postgres,
                        _dir: dir,
                    },
                })
            }
            Err(local_reason) => match docker::probe(config) {
                Ok(()) => {
                    let container = docker::start_postgres(Some(free_port()?))?;
                    let url = docker::container_postgres_url(&container)?;
                    let watchdog = Watchdog::spawn(&Duties {
                        containers: vec![container.id().to_owned()],
                        ..Duties::default()
                    })?;
                    Ok(PostgresServer {
                        url,
                        inner: Inner::Docker {
                            _watchdog: watchdog,
                            container: Some(Box::new(DockerPostgres(container))),
                        },
                    })
                }
                Err(docker_reason) => Err(Error::NoProvider {
                    docker_reason,
                    local_reason,
                }),
            },
        }
    }

    /// Connection URL of the server's `postgres` database, as a superuser; the same before and
    /// after a stop and start.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A fresh database with `migrator`'s migrations, as [`crate::Services::database`] makes.
    pub async fn database(&self, migrator: &Migrator) -> Result<TestDatabase, Error> {
        isolate::database(&self.url, migrator).await
    }

    /// Process id of a local server's postmaster while it runs.
    pub fn pid(&self) -> Option<u32> {
        match &self.inner {
            Inner::Local { postgres, .. } => postgres.pid(),
            Inner::Docker { .. } => None,
        }
    }

    /// Stops the server with a fast shutdown (a container: its stop signal, SIGINT in the
    /// official image): open connections break, new ones are refused until
    /// [`PostgresServer::start`].
    pub fn stop(&mut self) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Local { postgres, .. } => {
                postgres.pause();
                Ok(())
            }
            Inner::Docker { container, .. } => {
                let container = container.as_ref().expect("present until drop");
                off_runtime(|| container.0.stop().map_err(Error::from))
            }
        }
    }

    /// Starts the server again on the same port and waits until it answers.
    pub fn start(&mut self) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Local { postgres, .. } => postgres.resume(),
            Inner::Docker { container, .. } => {
                let container = container.as_ref().expect("present until drop");
                let url = &self.url;
                off_runtime(|| {
                    container.0.start()?;
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while let Err(reason) = isolate::check_postgres_blocking(url) {
                        if Instant::now() > deadline {
                            return Err(Error::Start {
                                what: "PostgreSQL container",
                                reason,
                                log: None,
                            });
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Ok(())
                })
            }
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Inner::Docker { container, .. } = &mut self.inner
            && let Some(container) = container.take()
        {
            // See `DockerServices`' drop: never inside the caller's runtime.
            let _ = std::thread::spawn(move || drop(container)).join();
        }
    }
}

//! A Redis server of the caller's own, which a test may stop and start to simulate an outage.

use testcontainers::Container;
use testcontainers_modules::redis::Redis;

use crate::local::{LocalRedis, RunAs, find_redis, free_port, server_dir};
use crate::watchdog::{Duties, Watchdog};
use crate::{Config, Error, docker, isolate};

/// A Redis server that belongs to one test. [`RedisServer::stop`] makes it unreachable,
/// [`RedisServer::start`] brings it back on the same URL, with no data (it has no persistence).
///
/// It is a local `redis-server` when one is on the `PATH`, else a container on a Docker engine.
/// The shared services are never stopped, since other tests use them.
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Local {
        // Field order is drop order.
        _watchdog: Watchdog,
        redis: LocalRedis,
        _dir: tempfile::TempDir,
    },
    Docker {
        _watchdog: Watchdog,
        container: Option<Box<DockerRedis>>,
    },
}

struct DockerRedis(Container<Redis>);

impl std::fmt::Debug for DockerRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DockerRedis").field(&self.0.id()).finish()
    }
}

impl RedisServer {
    /// Starts a Redis server for the caller alone.
    pub fn launch() -> Result<RedisServer, Error> {
        let config = Config::from_env()?;
        off_runtime(|| RedisServer::launch_blocking(&config))
    }

    fn launch_blocking(config: &Config) -> Result<RedisServer, Error> {
        let path_dirs: Vec<_> = config
            .search_path
            .as_deref()
            .map(|path| std::env::split_paths(path).collect())
            .unwrap_or_default();
        match find_redis(&path_dirs) {
            Ok(binary) => {
                let run_as = RunAs::detect()?;
                let dir = server_dir("perf-redis-", run_as)?;
                let watchdog = Watchdog::spawn(&Duties {
                    stop: vec![("TERM", LocalRedis::pid_file(dir.path()))],
                    dirs: vec![dir.path().to_owned()],
                    ..Duties::default()
                })?;
                let redis = LocalRedis::start(&binary, dir.path(), run_as)?;
                Ok(RedisServer {
                    url: redis.url(),
                    inner: Inner::Local {
                        _watchdog: watchdog,
                        redis,
                        _dir: dir,
                    },
                })
            }
            Err(local_reason) => match docker::probe(config) {
                Ok(()) => {
                    let container = docker::start_redis(Some(free_port()?))?;
                    let url = docker::container_redis_url(&container)?;
                    let watchdog = Watchdog::spawn(&Duties {
                        containers: vec![container.id().to_owned()],
                        ..Duties::default()
                    })?;
                    Ok(RedisServer {
                        url,
                        inner: Inner::Docker {
                            _watchdog: watchdog,
                            container: Some(Box::new(DockerRedis(container))),
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

    /// Connection URL; the same before and after a stop and start.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Process id of a local server while it runs.
    pub fn pid(&self) -> Option<u32> {
        match &self.inner {
            Inner::Local { redis, .. } => redis.pid(),
            Inner::Docker { .. } => None,
        }
    }

    /// Stops the server: connections are refused until [`RedisServer::start`].
    pub fn stop(&mut self) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Local { redis, .. } => {
                redis.pause();
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
            Inner::Local { redis, .. } => redis.resume(),
            Inner::Docker { container, .. } => {
                let container = container.as_ref().expect("present until drop");
                let url = &self.url;
                off_runtime(|| {
                    container.0.start()?;
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    while let Err(reason) = isolate::check_redis_blocking(url) {
                        if std::time::Instant::now() > deadline {
                            return Err(Error::Start {
                                what: "redis container",
                                reason,
                                log: None,
                            });
                        }
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    Ok(())
                })
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Inner::Docker { container, .. } = &mut self.inner
            && let Some(container) = container.take()
        {
            // See `DockerServices`' drop: never inside the caller's runtime.
            let _ = std::thread::spawn(move || drop(container)).join();
        }
    }
}

/// Runs blocking work that may start a runtime of its own on a plain thread, so that callers
/// inside a tokio runtime can use it.
pub(crate) fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(work).join())
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

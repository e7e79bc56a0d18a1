//! Throwaway PostgreSQL and Redis containers on a Docker engine, through testcontainers.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use testcontainers::core::IntoContainerPort as _;
use testcontainers::runners::SyncRunner as _;
use testcontainers::{Container, ImageExt as _};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::redis::Redis;

use crate::watchdog::{Duties, Watchdog};
use crate::{Config, Error};

pub(crate) const IMAGES: &str = "postgres:15-alpine, redis:7-alpine";
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// Asks the engine at `DOCKER_HOST` (or the default socket) for `/_ping`.
///
/// testcontainers has no quick "is there an engine?" call: without one it fails only when it
/// tries to start a container, and behind an unreachable TCP host it can wait a long time. This
/// probe answers in well under two seconds either way (a connect and one read, each bounded).
/// It speaks just enough HTTP/1.0 to see whether an engine answers: a `200` with Docker's
/// `Api-Version` header, or the Go server's complaint that plain HTTP reached a TLS-only port
/// (testcontainers speaks TLS there). Anything else — a proxy, another service — is not Docker.
pub(crate) fn probe(config: &Config) -> Result<(), String> {
    let host = config.docker_host.as_deref().unwrap_or(DEFAULT_HOST);
    let answer = if let Some(path) = host.strip_prefix("unix://") {
        UnixStream::connect(path).and_then(|stream| {
            stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
            stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
            ping(stream)
        })
    } else if let Some(address) = host.strip_prefix("tcp://") {
        address
            .to_socket_addrs()
            .and_then(|mut addrs| {
                addrs
                    .next()
                    .ok_or_else(|| std::io::Error::other("the host name has no address"))
            })
            .and_then(|addr| TcpStream::connect_timeout(&addr, PROBE_TIMEOUT))
            .and_then(|stream| {
                stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
                stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
                ping(stream)
            })
    } else {
        return Err(format!("DOCKER_HOST={host} is neither unix:// nor tcp://"));
    };
    match answer {
        Ok(response) if looks_like_docker(&response) => Ok(()),
        Ok(response) => Err(format!(
            "{host} answered, but not like a Docker engine: {:?}",
            response.lines().next().unwrap_or_default()
        )),
        Err(err) => Err(format!("{host}: {err}")),
    }
}

fn looks_like_docker(response: &str) -> bool {
    let mut lines = response.lines();
    let status_ok = lines.next().is_some_and(|status| {
        status.starts_with("HTTP/") && status.split_whitespace().nth(1) == Some("200")
    });
    let api_version = lines.any(|header| header.to_ascii_lowercase().starts_with("api-version:"));
    (status_ok && api_version)
        || response.contains("Client sent an HTTP request to an HTTPS server")
}

/// Sends the ping on a stream whose read and write timeouts are already set.
fn ping(mut stream: impl Read + Write) -> std::io::Result<String> {
    stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    // HTTP/1.0: the server closes the connection after the response, so read to the end.
    let mut response = Vec::new();
    stream.take(16 * 1024).read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// PostgreSQL and Redis containers, removed when this drops (or, through the watchdog, when the
/// process exits without dropping it).
pub(crate) struct DockerServices {
    // Field order is drop order: the watchdog is disarmed first.
    _watchdog: Watchdog,
    containers: Option<(Container<Postgres>, Container<Redis>)>,
    postgres_url: String,
    redis_url: String,
}

impl std::fmt::Debug for DockerServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerServices")
            .field("postgres_url", &self.postgres_url)
            .field("redis_url", &self.redis_url)
            .finish_non_exhaustive()
    }
}

impl DockerServices {
    pub(crate) fn start() -> Result<DockerServices, Error> {
        let postgres = start_postgres(None)?;
        let postgres_url = container_postgres_url(&postgres)?;
        let redis = start_redis(None)?;
        let redis_url = container_redis_url(&redis)?;
        let watchdog = Watchdog::spawn(&Duties {
            containers: vec![postgres.id().to_owned(), redis.id().to_owned()],
            ..Duties::default()
        })?;
        Ok(DockerServices {
            _watchdog: watchdog,
            containers: Some((postgres, redis)),
            postgres_url,
            redis_url,
        })
    }

    pub(crate) fn postgres_url(&self) -> String {
        self.postgres_url.clone()
    }

    pub(crate) fn redis_url(&self) -> String {
        self.redis_url.clone()
    }
}

impl Drop for DockerServices {
    fn drop(&mut self) {
        // A container's destructor blocks on testcontainers' own runtime, which panics inside
        // another runtime: remove them from a plain thread.
        if let Some(containers) = self.containers.take() {
            let _ = std::thread::spawn(move || drop(containers)).join();
        }
    }
}

/// A PostgreSQL container with the local servers' benchmarking settings (no fsync), on
/// `host_port` if given (so that a restarted container keeps its URL).
pub(crate) fn start_postgres(host_port: Option<u16>) -> Result<Container<Postgres>, Error> {
    let request = Postgres::default().with_tag("15-alpine").with_cmd([
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=500",
        // Server-side statement counts for the benchmarks' roundtrips.json.
        "-c",
        "shared_preload_libraries=pg_stat_statements",
    ]);
    let container = match host_port {
        Some(port) => request.with_mapped_port(port, 5432.tcp()).start()?,
        None => request.start()?,
    };
    Ok(container)
}

pub(crate) fn container_postgres_url(container: &Container<Postgres>) -> Result<String, Error> {
    Ok(format!(
        "postgres://postgres:postgres@{}:{}/postgres",
        container.get_host()?,
        container.get_host_port_ipv4(5432.tcp())?
    ))
}

/// A Redis container without persistence, on `host_port` if given (so that a restarted
/// container keeps its URL).
pub(crate) fn start_redis(host_port: Option<u16>) -> Result<Container<Redis>, Error> {
    let request = Redis::default().with_tag("7-alpine").with_cmd([
        "redis-server",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let container = match host_port {
        Some(port) => request.with_mapped_port(port, 6379.tcp()).start()?,
        None => request.start()?,
    };
    Ok(container)
}

pub(crate) fn container_redis_url(container: &Container<Redis>) -> Result<String, Error> {
    Ok(format!(
        "redis://{}:{}",
        container.get_host()?,
        container.get_host_port_ipv4(6379.tcp())?
    ))
}

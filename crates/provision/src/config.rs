//! What [`crate::Services::start`] is asked to do: the forced choice, URLs, where to look for binaries.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::Error;

/// Environment variable that forces how services are provided.
pub const CHOICE_VAR: &str = "PERF_SERVICES";

/// Which way to provide the services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The first that works: environment, Docker, local binaries.
    Auto,
    /// `DATABASE_URL` and `REDIS_URL`; an error if either is missing or unreachable.
    Env,
    /// Containers; an error if no Docker engine answers.
    Docker,
    /// Local binaries; an error if they are not installed.
    Local,
}

/// Inputs of the provisioning decision. [`Config::from_env`] reads them from the environment;
/// tests build them directly so they need not change the process environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub choice: Choice,
    /// `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `DOCKER_HOST`; `None` means the default socket, `/var/run/docker.sock`.
    pub docker_host: Option<String>,
    /// Directories searched for `initdb`, `postgres` and `redis-server` (`PATH`).
    pub search_path: Option<OsString>,
    /// Directories holding versioned PostgreSQL installations, such as Debian's
    /// `/usr/lib/postgresql` (`15/bin/postgres`), searched after `search_path`.
    pub postgres_roots: Vec<PathBuf>,
}

impl Config {
    /// Reads `PERF_SERVICES`, `DATABASE_URL`, `REDIS_URL`, `DOCKER_HOST` and `PATH`.
    pub fn from_env() -> Result<Config, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let choice = match var(CHOICE_VAR).as_deref() {
            None | Some("auto") => Choice::Auto,
            Some("env") => Choice::Env,
            Some("docker") => Choice::Docker,
            Some("local") => Choice::Local,
            Some(other) => return Err(Error::BadChoice(other.to_owned())),
        };
        Ok(Config {
            choice,
            database_url: var("DATABASE_URL"),
            redis_url: var("REDIS_URL"),
            docker_host: var("DOCKER_HOST"),
            search_path: std::env::var_os("PATH"),
            postgres_roots: vec![
                PathBuf::from("/usr/lib/postgresql"),
                PathBuf::from("/usr/pgsql"),
            ],
        })
    }

    /// The name of the one URL variable that is set when its partner is not.
    pub(crate) fn half_env(&self) -> Option<&'static str> {
        match (&self.database_url, &self.redis_url) {
            (Some(_), None) => Some("DATABASE_URL"),
            (None, Some(_)) => Some("REDIS_URL"),
            _ => None,
        }
    }
}

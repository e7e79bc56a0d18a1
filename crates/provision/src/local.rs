//! Throwaway PostgreSQL and Redis servers from locally installed binaries.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::watchdog::{Duties, Watchdog};
use crate::{Config, Error, isolate};

/// How long a server may take to accept connections before we give up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server binaries are, and whom to run them as.
#[derive(Clone, Debug)]
pub(crate) struct Binaries {
    /// Directory holding `initdb` and `postgres` (one installation, so their versions match).
    pub(crate) postgres_bin: PathBuf,
    pub(crate) redis_server: PathBuf,
}

impl Binaries {
    pub(crate) fn describe(&self) -> String {
        format!(
            "local binaries: PostgreSQL from {}, {}",
            self.postgres_bin.display(),
            self.redis_server.display()
        )
    }
}

/// Finds `initdb`/`postgres` and `redis-server`, or says what is missing and how to install it.
pub(crate) fn find_binaries(config: &Config) -> Result<Binaries, String> {
    let path_dirs: Vec<PathBuf> = config
        .search_path
        .as_deref()
        .map(|path| std::env::split_paths(path).collect())
        .unwrap_or_default();
    let postgres = find_postgres(&path_dirs, &config.postgres_roots);
    let redis = find_redis(&path_dirs);
    match (postgres, redis) {
        (Ok(postgres_bin), Ok(redis_server)) => Ok(Binaries {
            postgres_bin,
            redis_server,
        }),
        (postgres, redis) => {
            let missing: Vec<String> = [postgres.err(), redis.err()]
                .into_iter()
                .flatten()
                .collect();
            Err(missing.join("; "))
        }
    }
}

pub(crate) fn find_redis(path_dirs: &[PathBuf]) -> Result<PathBuf, String> {
    path_dirs
        .iter()
        .map(|dir| dir.join("redis-server"))
        .find(|path| is_executable(path))
        .ok_or_else(|| {
            "redis-server is not on PATH (Debian/Ubuntu package: redis-server)".to_owned()
        })
}

fn find_postgres(path_dirs: &[PathBuf], roots: &[PathBuf]) -> Result<PathBuf, String> {
    let has_both =
        |dir: &Path| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"));
    if let Some(dir) = path_dirs.iter().find(|dir| has_both(dir)) {
        return Ok(dir.clone());
    }
    // Debian and Ubuntu install PostgreSQL into /usr/lib/postgresql/<major>/bin, off the PATH.
    // Prefer the newest major version.
    let mut versioned: Vec<(u32, PathBuf)> = roots
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versioned.sort();
    versioned.pop().map(|(_, bin)| bin).ok_or_else(|| {
        let roots: Vec<String> = roots
            .iter()
            .map(|root| format!("{}/*/bin", root.display()))
            .collect();
        format!(
            "initdb and postgres are neither on PATH nor in {} (Debian/Ubuntu package: postgresql)",
            if roots.is_empty() {
                "any PostgreSQL installation directory".to_owned()
            } else {
                roots.join(", ")
            }
        )
    })
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The user servers run as. `initdb` refuses to run as root, so when we are root the servers run
/// as `postgres` (the Debian package creates it) or, failing that, `nobody`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunAs {
    uid: u32,
    gid: u32,
}

impl RunAs {
    pub(crate) fn detect() -> Result<Option<RunAs>, Error> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(None);
        }
        for name in ["postgres", "nobody"] {
            if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
                return Ok(Some(RunAs {
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                }));
            }
        }
        Err(Error::NoUnprivilegedUser)
    }

    pub(crate) fn apply(run_as: Option<RunAs>, command: &mut Command) {
        if let Some(RunAs { uid, gid }) = run_as {
            command.uid(uid).gid(gid);
        }
    }

    pub(crate) fn chown(run_as: Option<RunAs>, path: &Path) -> Result<(), Error> {
        if let Some(RunAs { uid, gid }) = run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(Error::io(format!(
                "handing {} to the server user",
                path.display()
            )))?;
        }
        Ok(())
    }
}

/// A temporary directory for servers, owned by the user they run as.
pub(crate) fn server_dir(prefix: &str, run_as: Option<RunAs>) -> Result<tempfile::TempDir, Error> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(Error::io("creating a temporary directory for the servers"))?;
    RunAs::chown(run_as, dir.path())?;
    Ok(dir)
}

/// A free TCP port on the loopback interface. Another process may take it before the server
/// binds it; callers retry with a new port when a server fails to start.
pub(crate) fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(Error::io("finding a free loopback port"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(Error::io("finding a free loopback port"))
}

/// PostgreSQL and Redis started from local binaries, in one temporary directory.
#[derive(Debug)]
pub(crate) struct LocalServices {
    // Field order is drop order: the watchdog is disarmed before the servers are stopped here.
    _watchdog: Watchdog,
    postgres: LocalPostgres,
    redis: LocalRedis,
    dir: tempfile::TempDir,
}

impl LocalServices {
    pub(crate) fn start(binaries: &Binaries) -> Result<LocalServices, Error> {
        let run_as = RunAs::detect()?;
        let dir = server_dir("perf-services-", run_as)?;
        let pg_dir = dir.path().join("pg");
        let redis_dir = dir.path().join("redis");
        for sub in [&pg_dir, &redis_dir] {
            std::fs::create_dir(sub).map_err(Error::io(format!("creating {}", sub.display())))?;
            RunAs::chown(run_as, sub)?;
        }
        // The watchdog comes first, so that even a failure half-way leaves nothing behind.
        let watchdog = Watchdog::spawn(&Duties {
            stop: vec![
                ("QUIT", LocalPostgres::pid_file(&pg_dir)),
                ("TERM", LocalRedis::pid_file(&redis_dir)),
            ],
            containers: Vec::new(),
            dirs: vec![dir.path().to_owned()],
        })?;
        // initdb dominates start-up; Redis starts meanwhile.
        let (postgres, redis) = std::thread::scope(|scope| {
            let postgres =
                scope.spawn(|| LocalPostgres::start(&binaries.postgres_bin, &pg_dir, run_as));
            let redis = LocalRedis::start(&binaries.redis_server, &redis_dir, run_as);
            (
                postgres
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                redis,
            )
        });
        Ok(LocalServices {
            _watchdog: watchdog,
            postgres: postgres?,
            redis: redis?,
            dir,
        })
    }

    pub(crate) fn postgres_url(&self) -> String {
        self.postgres.url()
    }

    pub(crate) fn redis_url(&self) -> String {
        self.redis.url()
    }

    pub(crate) fn pids(&self) -> (u32, u32) {
        (
            self.postgres.pid().unwrap_or(0),
            self.redis.pid().unwrap_or(0),
        )
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A PostgreSQL server in a data directory of its own, which can be stopped and started again
/// on the same port with its data.
#[derive(Debug)]
pub(crate) struct LocalPostgres {
    bin: PathBuf,
    dir: PathBuf,
    run_as: Option<RunAs>,
    child: Option<Child>,
    port: u16,
}

impl LocalPostgres {
    pub(crate) fn pid_file(dir: &Path) -> PathBuf {
        dir.join("data").join("postmaster.pid")
    }

    pub(crate) fn start(
        bin: &Path,
        dir: &Path,
        run_as: Option<RunAs>,
    ) -> Result<LocalPostgres, Error> {
        let data = dir.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(&data)
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .args(["--no-sync", "--no-instructions"]);
        RunAs::apply(run_as, &mut initdb);
        let output = initdb
            .output()
            .map_err(Error::io(format!("running {}/initdb", bin.display())))?;
        if !output.status.success() {
            return Err(Error::Start {
                what: "initdb",
                reason: output.status.to_string(),
                log: Some(
                    String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned(),
                ),
            });
        }
        let mut last_error = None;
        for _attempt in 0..3 {
            let mut server = LocalPostgres {
                bin: bin.to_owned(),
                dir: dir.to_owned(),
                run_as,
                child: None,
                port: free_port()?,
            };
            match server.resume() {
                Ok(()) => return Ok(server),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("at least one attempt was made"))
    }

    /// Starts the server (again) on its port, with the data it had.
    pub(crate) fn resume(&mut self) -> Result<(), Error> {
        if self.child.is_some() {
            return Ok(());
        }
        let log_path = self.dir.join("postgres.log");
        // Appended to: a restart's log follows the first start's.
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(Error::io(format!("opening {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(Error::io("duplicating the log file handle"))?;
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(&self.dir)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            // Benchmarking settings: durability is not what we measure, and a throwaway server
            // has nothing to lose. Connections: tests run many pools side by side.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=500", "-c", "shared_buffers=256MB"])
            // Server-side statement counts for the benchmarks' roundtrips.json
            // (`RoundTripCounter`); loading the module costs nothing measurable until the
            // extension is created.
            .args(["-c", "shared_preload_libraries=pg_stat_statements"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        RunAs::apply(self.run_as, &mut command);
        let mut child = command.spawn().map_err(Error::io(format!(
            "starting {}/postgres",
            self.bin.display()
        )))?;
        let url = self.url();
        match wait_ready(&mut child, || isolate::check_postgres_blocking(&url)) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(reason) => {
                stop_child(&mut child, nix::sys::signal::Signal::SIGQUIT);
                Err(Error::Start {
                    what: "PostgreSQL",
                    reason,
                    log: std::fs::read_to_string(&log_path)
                        .ok()
                        .map(|log| tail(&log, 20)),
                })
            }
        }
    }

    /// Stops the server; its port refuses connections until [`LocalPostgres::resume`].
    ///
    /// SIGINT, PostgreSQL's fast shutdown: open connections are broken, as in an outage, but
    /// what was committed is written out first. An immediate shutdown (SIGQUIT) would lose the
    /// last commits: with `synchronous_commit=off` they are acknowledged before the WAL is
    /// written, and a restart would come back without them.
    pub(crate) fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, nix::sys::signal::Signal::SIGINT);
        }
    }

    /// Stops the server for good: SIGQUIT, PostgreSQL's immediate shutdown (its data are
    /// thrown away next).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, nix::sys::signal::Signal::SIGQUIT);
        }
    }

    pub(crate) fn url(&self) -> String {
        server_url(self.port)
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

fn server_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// A Redis server without persistence, which can be stopped and started again on the same port.
#[derive(Debug)]
pub(crate) struct LocalRedis {
    binary: PathBuf,
    dir: PathBuf,
    run_as: Option<RunAs>,
    port: u16,
    child: Option<Child>,
}

impl LocalRedis {
    pub(crate) fn pid_file(dir: &Path) -> PathBuf {
        dir.join("redis.pid")
    }

    pub(crate) fn start(
        binary: &Path,
        dir: &Path,
        run_as: Option<RunAs>,
    ) -> Result<LocalRedis, Error> {
        let mut last_error = None;
        for _attempt in 0..3 {
            let mut redis = LocalRedis {
                binary: binary.to_owned(),
                dir: dir.to_owned(),
                run_as,
                port: free_port()?,
                child: None,
            };
            match redis.resume() {
                Ok(()) => return Ok(redis),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("at least one attempt was made"))
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port.
    pub(crate) fn resume(&mut self) -> Result<(), Error> {
        if self.child.is_some() {
            return Ok(());
        }
        let log_path = self.dir.join("redis.log");
        let mut command = Command::new(&self.binary);
        command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "no",
            ])
            // No persistence: a benchmark must not pay for snapshots, and a test never reads them.
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(Self::pid_file(&self.dir))
            .arg("--logfile")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        RunAs::apply(self.run_as, &mut command);
        let mut child = command
            .spawn()
            .map_err(Error::io(format!("starting {}", self.binary.display())))?;
        let url = self.url();
        match wait_ready(&mut child, || isolate::check_redis_blocking(&url)) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(reason) => {
                stop_child(&mut child, nix::sys::signal::Signal::SIGTERM);
                Err(Error::Start {
                    what: "redis-server",
                    reason,
                    log: std::fs::read_to_string(&log_path)
                        .ok()
                        .map(|log| tail(&log, 20)),
                })
            }
        }
    }

    /// Stops the server; its port refuses connections until [`LocalRedis::resume`].
    pub(crate) fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, nix::sys::signal::Signal::SIGTERM);
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.pause();
    }
}

/// Polls `ready` until it succeeds, the child exits, or [`READY_TIMEOUT`] passes.
fn wait_ready(
    child: &mut Child,
    mut ready: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let attempt = ready();
        if attempt.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status})"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "it did not accept connections within {READY_TIMEOUT:?}: {}",
                attempt.unwrap_err()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal`, waits up to ten seconds, then kills.
pub(crate) fn stop_child(child: &mut Child, signal: nix::sys::signal::Signal) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, signal);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

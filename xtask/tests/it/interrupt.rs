//! Ctrl-C in the middle of `cargo xtask perf-gate` (paired, the default): the terminal sends
//! SIGINT to the whole foreground process group (xtask, `perf-services`, the workers of both
//! sides). Afterwards no server or worker process may survive, the servers' directory must be
//! gone, and the baselines must be untouched.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigHandler, Signal, signal};

/// The pids and directory `perf-gate` reports for the servers it started.
#[derive(Default, Debug)]
struct Servers {
    perf_services: Option<u32>,
    postgres: Option<u32>,
    redis: Option<u32>,
    dir: Option<PathBuf>,
}

impl Servers {
    /// Parses `perf-gate: services held by perf-services (pid N): provider=local ...
    /// postgres_pid=P redis_pid=R dir=D`.
    fn parse(line: &str) -> Option<Servers> {
        let rest = line.strip_prefix("perf-gate: services held by perf-services (pid ")?;
        let (pid, facts) = rest.split_once("): ")?;
        let mut servers = Servers {
            perf_services: pid.parse().ok(),
            ..Servers::default()
        };
        for fact in facts.split(' ') {
            match fact.split_once('=') {
                Some(("postgres_pid", pid)) => servers.postgres = pid.parse().ok(),
                Some(("redis_pid", pid)) => servers.redis = pid.parse().ok(),
                Some(("dir", dir)) => servers.dir = Some(PathBuf::from(dir)),
                _ => {}
            }
        }
        Some(servers)
    }
}

/// Whether a process exists (a zombie holds nothing and counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            != Some("Z")
    })
}

fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn read_all(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let contents = std::fs::read(&path).unwrap();
            (path, contents)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn ctrl_c_half_way_leaves_no_servers_and_no_baseline_changes() {
    let _measuring = crate::measuring();
    let dir = tempfile::tempdir().unwrap();
    let baselines = dir.path().join("baselines");
    std::fs::create_dir(&baselines).unwrap();
    // The committed baseline of a suite that needs both servers.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../baselines/cache.json");
    std::fs::copy(&committed, baselines.join("cache.json"))
        .unwrap_or_else(|err| panic!("{}: {err}", committed.display()));
    let before = read_all(&baselines);

    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // SAFETY: the closure runs between fork and exec and only calls sigaction, which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            signal(Signal::SIGINT, SigHandler::SigDfl)
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = command
        .args([
            "perf-gate",
            "--suite",
            "cache",
            "--base",
            "HEAD",
            "--baseline-dir",
        ])
        .arg(&baselines)
        // Servers of its own, not the caller's.
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("CRITERION_HOME")
        // Like a shell's foreground job: a process group of its own, which the "terminal"
        // signals, and the default reaction to SIGINT (a test run started in the background by
        // a script would otherwise pass on an ignored SIGINT).
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the xtask binary runs");
    let group = child.id();

    // Read stderr on a thread, so the test cannot hang on a silent child.
    let (lines, received) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("xtask: {line}");
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    // Wait for the servers and then for the first benchmark: half-way through the run. The
    // build is usually done already (the test command builds the suites first).
    let mut servers = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("perf-gate started a benchmark in time");
        if let Some(parsed) = Servers::parse(&line) {
            servers = Some(parsed);
        }
        if line.starts_with("perf-gate paired: [") {
            break;
        }
    }
    let servers = servers.expect("perf-gate said which services it started");
    std::thread::sleep(Duration::from_secs(2));

    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group as i32), Signal::SIGINT)
        .expect("the process group exists");
    let exited = eventually(Duration::from_secs(60), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    assert!(exited, "perf-gate did not stop within 60 s of Ctrl-C");
    assert!(!child.wait().unwrap().success());
    drop(received);
    reader.join().unwrap();

    let pid_gone = |pid: Option<u32>, what: &str| {
        if let Some(pid) = pid {
            assert!(
                eventually(Duration::from_secs(15), || !alive(pid)),
                "{what} (pid {pid}) survived Ctrl-C"
            );
        }
    };
    pid_gone(servers.perf_services, "perf-services");
    // Local servers have pids and a directory; containers (with a Docker engine) are removed
    // by the same watchdog, which provision's own tests cover.
    pid_gone(servers.postgres, "postgres");
    pid_gone(servers.redis, "redis-server");
    if let Some(dir) = &servers.dir {
        assert!(
            eventually(Duration::from_secs(15), || !dir.exists()),
            "{} survived Ctrl-C",
            dir.display()
        );
    }
    // Nothing else that ran in the group survives either (the suite's executable).
    let survivors: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                // Field 5 of stat is the process group; fields after the name start at 3.
                fields.get(2) == Some(&group.to_string().as_str()) && fields.first() != Some(&"Z")
            })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(15), || survivors
            .iter()
            .all(|&pid| !alive(pid))),
        "processes of the interrupted run survived: {survivors:?}"
    );

    assert_eq!(read_all(&baselines), before, "the baselines were touched");
}

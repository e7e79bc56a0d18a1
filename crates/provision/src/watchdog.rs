//! A watchdog process that cleans up after this process, however it ends.
//!
//! `Drop` cannot run when a process is killed, aborts, or leaves a `static` behind at exit (as
//! the test harness does). So every set of servers gets a tiny `sh` process whose stdin is a pipe
//! from us. When our end closes — on any kind of exit, since the kernel closes it — `read` sees
//! end of file, and the script stops the servers named in the pid files it was given, removes
//! containers, and deletes the directory. It ignores Ctrl-C and friends so that it outlives us.
//!
//! A shell script rather than a re-executed Rust binary: tests and benchmarks are separate
//! binaries we cannot re-enter, and `sh` is everywhere the servers are.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::Error;

const SCRIPT: &str = r#"
trap '' INT TERM HUP QUIT PIPE
while read -r _; do :; done
# Our parent is gone (or asked us to clean up): stop the servers, then remove what they used.
pids=""
for arg in "$@"; do
  case "$arg" in
    stop:*)
      rest=${arg#stop:}
      signal=${rest%%:*}
      pid=$(head -n 1 "${rest#*:}" 2>/dev/null)
      case "$pid" in ''|*[!0-9]*) ;; *) kill -"$signal" "$pid" 2>/dev/null && pids="$pids $pid" ;; esac ;;
    container:*) docker rm --force --volumes "${arg#container:}" >/dev/null 2>&1 ;;
  esac
done
for _ in $(seq 1 100); do
  alive=""
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
  [ -z "$alive" ] && break
  sleep 0.05
done
for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
for arg in "$@"; do
  case "$arg" in dir:*) rm -rf "${arg#dir:}" ;; esac
done
"#;

/// What the watchdog cleans up.
#[derive(Debug, Default)]
pub(crate) struct Duties {
    /// Servers to stop: the signal to send (`QUIT`, `TERM`) and a file whose first line is the
    /// pid (PostgreSQL's `postmaster.pid`, Redis's `--pidfile`). The file is read at clean-up
    /// time, so a server restarted since the watchdog started is found too.
    pub(crate) stop: Vec<(&'static str, PathBuf)>,
    pub(crate) containers: Vec<String>,
    pub(crate) dirs: Vec<PathBuf>,
}

/// The running watchdog. Dropping it disarms it: the owner has cleaned up itself.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
}

impl Watchdog {
    pub(crate) fn spawn(duties: &Duties) -> Result<Watchdog, Error> {
        let args = duties
            .stop
            .iter()
            .map(|(signal, path)| format!("stop:{signal}:{}", path.display()))
            .chain(duties.containers.iter().map(|id| format!("container:{id}")))
            .chain(
                duties
                    .dirs
                    .iter()
                    .map(|path| format!("dir:{}", path.display())),
            );
        let child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("provision-watchdog")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C on the terminal must reach us, not the watchdog.
            .process_group(0)
            .spawn()
            .map_err(Error::io("starting the clean-up watchdog (`sh`)"))?;
        Ok(Watchdog { child })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // The owner cleans up in its own `Drop`; the watchdog must not act afterwards on pids
        // that may have been reused, so it is killed rather than woken.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The one place where xtask starts child processes.

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

/// A command line to run, built from separate arguments (never a shell string).
pub(crate) struct Cmd {
    inner: Command,
    display: String,
}

impl Cmd {
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Cmd {
        let program = program.as_ref();
        Cmd {
            inner: Command::new(program),
            display: program.to_string_lossy().into_owned(),
        }
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            let arg = arg.as_ref();
            self.display.push(' ');
            self.display.push_str(&arg.to_string_lossy());
            self.inner.arg(arg);
        }
        self
    }

    /// Sets an environment variable of the child process (`perf-gate` points criterion at its
    /// output directory with `CRITERION_HOME`).
    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.inner.env(key, value);
        self
    }

    /// Sets the working directory of the child process.
    pub(crate) fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Cmd {
        self.inner.current_dir(dir);
        self
    }

    /// Runs the command with stderr inherited and returns what it printed on stdout.
    pub(crate) fn stdout(mut self) -> anyhow::Result<String> {
        eprintln!("$ {}", self.display);
        let started = Instant::now();
        let output = self
            .inner
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("failed to start `{}`", self.display))?;
        eprintln!("  ({:.1?}, {})", started.elapsed(), output.status);
        if !output.status.success() {
            bail!("`{}` failed: {}", self.display, output.status);
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("`{}` printed something that is not UTF-8", self.display))
    }

    /// Runs the command without announcing it and returns its stdout; on failure the error
    /// holds what it printed on stderr. For queries (git) whose noise the user need not see.
    pub(crate) fn quiet_stdout(mut self) -> anyhow::Result<String> {
        let output = self
            .inner
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to start `{}`", self.display))?;
        if !output.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                self.display,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("`{}` printed something that is not UTF-8", self.display))
    }

    /// Runs the command without announcing it; on failure the error holds its stderr.
    pub(crate) fn quiet_run(self) -> anyhow::Result<()> {
        self.quiet_stdout().map(drop)
    }

    /// Runs the command quietly and returns its exit code (`None` if a signal ended it).
    pub(crate) fn status_code(mut self) -> anyhow::Result<Option<i32>> {
        let status = self
            .inner
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("failed to start `{}`", self.display))?;
        Ok(status.code())
    }

    /// Runs the command with inherited stdio, announcing it and its duration on stderr.
    pub(crate) fn run(mut self) -> anyhow::Result<()> {
        eprintln!("$ {}", self.display);
        let started = Instant::now();
        let status = self
            .inner
            .status()
            .with_context(|| format!("failed to start `{}`", self.display))?;
        eprintln!("  ({:.1?}, {status})", started.elapsed());
        if !status.success() {
            bail!("`{}` failed: {status}", self.display);
        }
        Ok(())
    }
}

impl Cmd {
    /// Starts a long-lived helper: stdin and stdout piped to the caller (it is stopped by
    /// closing its stdin and speaks on its stdout), stderr inherited.
    pub(crate) fn spawn_helper(mut self) -> anyhow::Result<Child> {
        eprintln!("$ {}", self.display);
        self.inner
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("failed to start `{}`", self.display))
    }

    /// Replaces this process with the command (Unix `exec`): its exit code and its handling of
    /// Ctrl-C become ours. Returns only if it could not be started.
    pub(crate) fn exec(mut self) -> anyhow::Error {
        use std::os::unix::process::CommandExt as _;
        eprintln!("$ {}", self.display);
        let error = self.inner.exec();
        anyhow::Error::new(error).context(format!("failed to start `{}`", self.display))
    }

    /// The command, announced, for a caller that spawns it with its own plumbing (the gate's
    /// paired runner, which talks to a bench executable over its stdin and stdout).
    pub(crate) fn into_std(self) -> Command {
        eprintln!("$ {}", self.display);
        self.inner
    }

    /// Starts the command with stdout and stderr piped to the caller (and stdin closed),
    /// announcing it on stderr. The caller reads the pipes and waits.
    pub(crate) fn spawn_piped(mut self) -> anyhow::Result<(Child, String)> {
        eprintln!("$ {}", self.display);
        let child = self
            .inner
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to start `{}`", self.display))?;
        Ok((child, self.display))
    }
}

/// `cargo`, honouring the `CARGO` variable that cargo sets for the programs it runs.
///
/// `cargo xtask` runs us through `cargo run`, which describes the xtask package in the
/// environment (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...). Those must not reach the cargo we
/// start: build scripts that watch them (ring's watches `CARGO_MANIFEST_DIR`) would see a
/// change and recompile a good part of the tree whenever a build alternates between a shell's
/// `cargo bench` and `cargo xtask perf-gate`.
pub(crate) fn cargo() -> Cmd {
    let mut cmd = Cmd::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if is_set_by_cargo_run(name) {
            cmd.inner.env_remove(name);
        }
    }
    cmd
}

/// Whether `name` is one of the variables `cargo run` sets to describe the package it runs
/// (as opposed to configuration such as `CARGO_TARGET_DIR` or `CARGO_HOME`).
fn is_set_by_cargo_run(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || matches!(
            name,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
        )
}

#[cfg(test)]
mod tests {
    use super::is_set_by_cargo_run;

    #[test]
    fn only_the_description_of_the_running_package_is_dropped() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_BIN_NAME",
        ] {
            assert!(is_set_by_cargo_run(name), "{name}");
        }
        for name in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO_INCREMENTAL",
            "PATH",
        ] {
            assert!(!is_set_by_cargo_run(name), "{name}");
        }
    }
}

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
pub(crate) fn cargo() -> Cmd {
    Cmd::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

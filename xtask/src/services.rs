//! PostgreSQL and Redis for a whole benchmark run, started once and shared by every suite.
//!
//! When `DATABASE_URL` and `REDIS_URL` are set, the suites use them as they are. Otherwise the
//! `perf-services` binary of the `provision` crate starts them (Docker or local binaries, as
//! the tests choose) and prints their URLs; the suites then get them through the same two
//! variables. Closing its stdin stops the servers; if xtask dies instead (Ctrl-C, a kill),
//! `perf-services` dies with it and its watchdog removes the servers and their directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin};

use anyhow::{Context, bail};

use crate::cmd::{Cmd, cargo};
use crate::paths;

/// Running services and the environment that points the suites at them.
pub(crate) struct Services {
    /// `DATABASE_URL` and `REDIS_URL` for the suites.
    pub(crate) env: Vec<(String, String)>,
    // Dropped (closed) before the child is waited for: that is what stops it.
    stdin: Option<ChildStdin>,
    child: Option<Child>,
}

impl Services {
    /// Services for running `suites`: none when only the calibration suite runs (it is pure
    /// CPU), else [`Services::start`].
    pub(crate) fn for_suites(root: &Path, suites: &[String]) -> anyhow::Result<Services> {
        if suites
            .iter()
            .all(|suite| suite == crate::suites::CALIBRATION)
        {
            return Ok(Services {
                env: Vec::new(),
                stdin: None,
                child: None,
            });
        }
        Services::start(root)
    }

    pub(crate) fn start(root: &Path) -> anyhow::Result<Services> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        if let (Some(database), Some(redis)) = (from_env("DATABASE_URL"), from_env("REDIS_URL")) {
            eprintln!("perf-gate: using DATABASE_URL and REDIS_URL from the environment");
            return Ok(Services {
                env: vec![
                    ("DATABASE_URL".into(), database),
                    ("REDIS_URL".into(), redis),
                ],
                stdin: None,
                child: None,
            });
        }
        // The bench profile and the whole workspace, like the suites themselves, so that the
        // dependencies compiled for them are reused.
        cargo()
            .args([
                "build",
                "--profile",
                "bench",
                "--workspace",
                "--bin",
                "perf-services",
            ])
            .run()?;
        let binary = paths::target_dir(root)
            .join("release")
            .join("perf-services");
        let mut child = Cmd::new(&binary).spawn_helper()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("perf-services has no stdout")?;
        let mut env = Vec::new();
        let mut ready = false;
        // What perf-services says about the servers (provider, pids, directory), passed on so
        // that a user (or a test) knows what to look for if a run is interrupted.
        let mut facts = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.context("cannot read the output of perf-services")?;
            if let Some(assignment) = line.strip_prefix("export ") {
                if let Some((name, value)) = assignment.split_once('=') {
                    env.push((name.to_owned(), value.to_owned()));
                }
            } else if line.starts_with("# ready") {
                ready = true;
                break;
            } else if let Some(fact) = line.strip_prefix("# ") {
                facts.push(fact.to_owned());
            }
        }
        eprintln!(
            "perf-gate: services held by perf-services (pid {}): {}",
            child.id(),
            facts.join(" ")
        );
        let mut services = Services {
            env,
            stdin,
            child: Some(child),
        };
        if !ready || services.env.len() != 2 {
            let status = services.child.as_mut().map(|child| child.wait());
            bail!("perf-services did not start the services (it exited: {status:?})");
        }
        Ok(services)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

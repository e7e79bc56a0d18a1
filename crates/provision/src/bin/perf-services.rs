//! `perf-services`: throwaway PostgreSQL and Redis for poking at by hand, chosen like the tests do.
//!
//! Prints the URLs as `export` lines (so `eval "$(perf-services)"` style use works with a
//! background job), then holds the servers until stdin closes or the process is interrupted.
//! Whatever way it ends, the servers are stopped and their directory removed.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let services = provision::Services::start()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "export DATABASE_URL={}", services.postgres_url())?;
    writeln!(out, "export REDIS_URL={}", services.redis_url())?;
    writeln!(
        out,
        "# provider={} startup_ms={}",
        services.provider(),
        services.startup_time().as_millis()
    )?;
    if let Some((postgres, redis)) = services.local_pids() {
        writeln!(out, "# postgres_pid={postgres} redis_pid={redis}")?;
    }
    if let Some(dir) = services.local_dir() {
        writeln!(out, "# dir={}", dir.display())?;
    }
    writeln!(out, "# ready; close stdin (Ctrl-D) or press Ctrl-C to stop")?;
    out.flush()?;
    drop(out);
    // Hold until stdin closes. Ctrl-C kills us; the watchdog then cleans up.
    for line in std::io::stdin().lock().lines() {
        line?;
    }
    Ok(())
}

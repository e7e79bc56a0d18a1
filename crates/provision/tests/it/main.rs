//! Integration tests of service provisioning, against real servers.

mod choice;
mod counter;
mod isolation;
mod lifecycle;
mod postgres_server;
mod redis_server;

use std::path::Path;

/// Migrations of provision's own tests (one table).
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("tests/it/migrations");

/// Whether a process with this pid still exists (zombies count as gone: they hold nothing).
pub(crate) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// Waits up to `seconds` for `done`.
pub(crate) fn eventually(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

pub(crate) fn exists(path: &Path) -> bool {
    path.exists()
}

/// Gives the child the default reaction to SIGINT (die), as a shell gives its foreground jobs.
/// Needed because the disposition is inherited: a test run started in the background by a
/// script (`cmd &` in a non-interactive shell) ignores SIGINT, and so would the child.
pub(crate) fn with_default_sigint(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls sigaction, which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGINT,
                nix::sys::signal::SigHandler::SigDfl,
            )
            .map(drop)
            .map_err(std::io::Error::from)
        });
    }
}

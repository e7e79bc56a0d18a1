//! `cargo xtask load ARGS`: builds `commerce-server` and `commerce-load` with the bench profile
//! (release optimisations plus line tables, so that a profile of the server under load names
//! its functions; and the same profile as the benchmarks, so the dependencies they compiled
//! are reused), then becomes `commerce-load ARGS` (`exec`): its output, its exit code (0 pass,
//! 1 a threshold failed, 2 an error) and its handling of Ctrl-C are the command's. The load
//! generator itself lives in the `load` crate.

use std::path::Path;
use std::process::ExitCode;

use crate::cmd::{Cmd, cargo};
use crate::flags::LoadArgs;
use crate::paths;

pub(crate) fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let root = paths::project_root();
    Err(command(&root, &args.args)?.exec())
}

/// Builds the executables and returns the `commerce-load` command with `args`.
pub(crate) fn command(root: &Path, args: &[String]) -> anyhow::Result<Cmd> {
    cargo()
        .args([
            "build",
            "--profile",
            "bench",
            "--workspace",
            "--bin",
            "commerce-server",
            "--bin",
            "commerce-load",
        ])
        .current_dir(root)
        .run()?;
    let binary = paths::target_dir(root)
        .join("release")
        .join("commerce-load");
    let mut cmd = Cmd::new(&binary).args(args);
    // The defaults of commerce-load are relative to the workspace; point them there, so that
    // `cargo xtask load` works from any directory (the user's own settings win).
    if std::env::var_os("COMMERCE_LOAD_PROFILES").is_none() {
        cmd = cmd.env(
            "COMMERCE_LOAD_PROFILES",
            root.join("load").join("profiles.toml"),
        );
    }
    if std::env::var_os("COMMERCE_LOAD_OUT_DIR").is_none() {
        cmd = cmd.env(
            "COMMERCE_LOAD_OUT_DIR",
            paths::target_dir(root).join("load"),
        );
    }
    Ok(cmd)
}

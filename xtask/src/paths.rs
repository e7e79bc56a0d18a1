//! Where things live unless a flag says otherwise: the workspace, cargo's target directory,
//! criterion's results, the baselines, the configuration, the logs.

use std::path::{Path, PathBuf};

use gate::ConfigFile;

/// The workspace root (xtask lives one level below it).
///
/// From `CARGO_MANIFEST_DIR` as `cargo run` (the `cargo xtask` alias) sets it for this run, and
/// only without it (the binary started by hand) as it was when xtask was compiled. The
/// compile-time value alone named the wrong checkout when two clones share a target directory
/// (`CARGO_TARGET_DIR`): cargo hashes a path package by its place in the workspace, so both
/// clones' xtask are one artifact, which cargo finds up to date in the clone that did not
/// build it, and that clone's `cargo xtask` then worked on the other one.
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `target` in the workspace.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Where xtask's runs keep their logs and scratch files: `target/perf-gate/`.
pub(crate) fn log_dir(root: &Path) -> PathBuf {
    target_dir(root).join("perf-gate")
}

/// `--criterion-dir`, else where criterion writes by default
/// (`bench_format::criterion::output_directory`, with the workspace's target directory).
pub(crate) fn criterion_dir(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(dir) => dir.to_owned(),
        None => bench_format::criterion::output_directory(|| Some(target_dir(&project_root()))),
    }
}

/// `--baseline-dir`, else `baselines/` in the workspace.
pub(crate) fn baseline_dir(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(|| project_root().join("baselines"), Path::to_owned)
}

/// `--config` (which must exist), else `perf-gate.toml` in `root` (which may not).
pub(crate) fn config_file(explicit: Option<&Path>, root: &Path) -> ConfigFile {
    match explicit {
        Some(path) => ConfigFile::Required(path.to_owned()),
        None => ConfigFile::Optional(root.join("perf-gate.toml")),
    }
}

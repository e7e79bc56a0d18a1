//! Where things live unless a flag says otherwise: the workspace, cargo's target directory,
//! criterion's results, the baselines, the configuration, the logs.

use std::path::{Path, PathBuf};

use gate::ConfigFile;

/// The workspace root (xtask lives one level below it).
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_owned()
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

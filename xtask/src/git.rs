//! The base revision of a paired run: which commit, whether the working tree differs from it,
//! and a checkout of it (a git worktree under `target/`) to build from.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cmd::Cmd;

/// The base revision as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    /// As asked for or found: `--base`'s argument, `origin/main`'s merge-base, `HEAD`.
    pub(crate) name: String,
    /// The full commit id.
    pub(crate) commit: String,
    /// Whether the working tree (tracked files, and untracked ones git does not ignore) is
    /// exactly the base: then both sides run the same executables.
    pub(crate) same_as_working_tree: bool,
}

fn git(root: &Path) -> Cmd {
    Cmd::new("git").args([std::ffi::OsStr::new("-C"), root.as_os_str()])
}

/// `git <args>`'s output, trimmed; `None` if git fails (not a repository, unknown revision).
fn query(root: &Path, args: &[&str]) -> Option<String> {
    let output = git(root).args(args).quiet_stdout().ok()?;
    Some(output.trim().to_owned())
}

/// Finds the base: `explicit` (`--base`), else the merge-base of `HEAD` with `origin/main`
/// (else `main`), and `HEAD` itself when that is `HEAD` (on the main branch). `Ok(None)` when
/// this is no git checkout or has no history to find a base in (a source archive, a shallow
/// clone without the main branch): stored mode then.
pub(crate) fn find_base(root: &Path, explicit: Option<&str>) -> anyhow::Result<Option<Base>> {
    if query(root, &["rev-parse", "--git-dir"]).is_none() {
        if let Some(rev) = explicit {
            bail!("--base {rev}: {} is not a git checkout", root.display());
        }
        return Ok(None);
    }
    let (name, commit) = match explicit {
        Some(rev) => {
            let commit = query(
                root,
                &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
            )
            .with_context(|| no_such_commit(rev))?;
            (rev.to_owned(), commit)
        }
        None => {
            let Some(head) = query(root, &["rev-parse", "--verify", "HEAD^{commit}"]) else {
                return Ok(None);
            };
            let main = ["origin/main", "main"].into_iter().find(|name| {
                query(
                    root,
                    &["rev-parse", "--verify", &format!("{name}^{{commit}}")],
                )
                .is_some()
            });
            let Some(main) = main else {
                return Ok(None);
            };
            match query(root, &["merge-base", "HEAD", main]) {
                Some(base) if base == head => ("HEAD".to_owned(), head),
                Some(base) => (format!("merge-base of HEAD and {main}"), base),
                None => return Ok(None),
            }
        }
    };
    let same_as_working_tree = unchanged_since(root, &commit)?;
    Ok(Some(Base {
        name,
        commit,
        same_as_working_tree,
    }))
}

/// Why `--base rev` names no commit, and what to do about it.
fn no_such_commit(rev: &str) -> String {
    if looks_like_a_ref(rev) {
        format!(
            "--base {rev}: no such commit here (fetch it first, e.g. `git fetch origin {rev}`; a \
             shallow clone needs enough history)"
        )
    } else {
        format!(
            "--base {rev}: names no commit here (REV must be a commit: a branch, a tag, a commit \
             id, or an expression such as `main~1`; a shallow clone needs enough history)"
        )
    }
}

/// Whether `text` could be a branch, a tag or a commit id, something `git fetch origin <text>`
/// can fetch: a valid ref name (`git check-ref-format --allow-onelevel`), so not an expression
/// of git's revision syntax such as `HEAD~1`, `main^`, `@{u}`, `a..b` or `rev:path`.
fn looks_like_a_ref(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(['-', '/'])
        && !text.ends_with(['/', '.'])
        && !text.ends_with(".lock")
        && !text.contains("..")
        && !text.contains("@{")
        && !text.contains("//")
        && text != "@"
        && !text
            .chars()
            .any(|c| c.is_ascii_control() || c == ' ' || "~^:?*[\\".contains(c))
        && !text.split('/').any(|part| part.starts_with('.'))
}

/// Whether the working tree holds exactly `commit`'s files: no tracked difference (staged or
/// not) and no untracked file that git does not ignore.
fn unchanged_since(root: &Path, commit: &str) -> anyhow::Result<bool> {
    let differs = git(root)
        .args(["diff", "--quiet", commit, "--"])
        .status_code()?;
    if differs != Some(0) {
        return Ok(false);
    }
    let untracked = git(root)
        .args(["ls-files", "--others", "--exclude-standard"])
        .quiet_stdout()?;
    Ok(untracked.trim().is_empty())
}

/// Checks `commit` out into a worktree at `dir` (created, or moved to `commit`) and tags its
/// packages for a build of their own (see [`tag_packages`]); returns its path. A worktree
/// already at `commit` is left as it is, so cargo rebuilds nothing.
pub(crate) fn worktree(
    root: &Path,
    dir: &Path,
    commit: &str,
    tag: &str,
) -> anyhow::Result<PathBuf> {
    // A worktree whose directory was deleted (`cargo clean`) is still registered; forget it.
    git(root).args(["worktree", "prune"]).quiet_run()?;
    // Reused only if it is a worktree of this repository: a clone sharing this target
    // directory (`CARGO_TARGET_DIR`) may have left one of its own there, which knows none of
    // this repository's commits.
    let ours = |dir: &Path| {
        let common = |at: &Path| {
            query(
                at,
                &["rev-parse", "--path-format=absolute", "--git-common-dir"],
            )
            .and_then(|path| std::fs::canonicalize(path).ok())
        };
        common(dir).is_some_and(|theirs| Some(theirs) == common(root))
    };
    let at = (dir.join(".git").exists() && ours(dir))
        .then(|| query(dir, &["rev-parse", "HEAD"]))
        .flatten();
    let prepared = dir.join(TAGGED_MARKER);
    if at.as_deref() == Some(commit)
        && std::fs::read_to_string(&prepared).is_ok_and(|text| text == tag)
    {
        return Ok(dir.to_owned());
    }
    if at.is_some() {
        // The marker goes first: interrupted between the checkout and the tagging, the
        // worktree must not pass for a tagged one next time.
        match std::fs::remove_file(&prepared) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("cannot remove {}", prepared.display()));
            }
            _ => {}
        }
        git(dir)
            .args(["checkout", "--quiet", "--force", "--detach", commit])
            .quiet_run()
            .with_context(|| format!("cannot move the worktree {} to {commit}", dir.display()))?;
        git(dir).args(["clean", "--quiet", "-fdx"]).quiet_run()?;
    } else {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove the stale {}", dir.display()))?;
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        git(root)
            .args([
                std::ffi::OsStr::new("worktree"),
                std::ffi::OsStr::new("add"),
                std::ffi::OsStr::new("--quiet"),
                std::ffi::OsStr::new("--detach"),
                std::ffi::OsStr::new("--force"),
                dir.as_os_str(),
                std::ffi::OsStr::new(commit),
            ])
            .quiet_run()
            .with_context(|| format!("cannot check {commit} out into {}", dir.display()))?;
    }
    tag_packages(dir, tag)?;
    std::fs::write(&prepared, tag)
        .with_context(|| format!("cannot write {}", prepared.display()))?;
    Ok(dir.to_owned())
}

/// Marks a worktree whose packages are tagged (ignored by nothing but our own check; `git
/// clean` removes it with the tags).
const TAGGED_MARKER: &str = ".perf-gate-tag";

/// Gives every package of the workspace at `dir` the version build metadata `+<tag>`.
///
/// Cargo names a workspace package's artifacts by a hash of its name, version and path
/// *relative to the workspace root*, so two checkouts of the same workspace built into one
/// target directory would overwrite each other's executables. A different version makes them
/// distinct, while the dependencies, whose hashes do not depend on their dependents, are
/// shared: the second checkout compiles only its own crates. Build metadata changes no version
/// requirement.
pub(crate) fn tag_packages(dir: &Path, tag: &str) -> anyhow::Result<()> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let mut members = Vec::new();
    for pattern in ["crates", "benches"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(pattern)) {
            for entry in entries.flatten() {
                let path = entry.path().join("Cargo.toml");
                if path.is_file() {
                    members.push(path);
                }
            }
        }
    }
    members.push(dir.join("xtask").join("Cargo.toml"));
    let mut tagged = 0;
    for path in members.iter().filter(|p| p.is_file()).chain([&manifest]) {
        let original = if *path == manifest {
            text.clone()
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        let mut section = String::new();
        let mut changed = false;
        let mut already = false;
        let lines: Vec<String> = original
            .lines()
            .map(|line| {
                let trimmed = line.trim();
                if trimmed.starts_with('[') {
                    section = trimmed.to_owned();
                }
                let is_version = trimmed.starts_with("version") && trimmed.contains('"');
                if is_version
                    && (section == "[package]" || section == "[workspace.package]")
                    && let Some(end) = line.rfind('"')
                {
                    // Tagging twice (a checkout whose crates were reset) must not tag again.
                    if trimmed.contains(&format!("+{tag}\"")) {
                        already = true;
                        return line.to_owned();
                    }
                    changed = true;
                    return format!("{}+{tag}{}", &line[..end], &line[end..]);
                }
                line.to_owned()
            })
            .collect();
        if already {
            tagged += 1;
        }
        if changed {
            tagged += 1;
            let mut new = lines.join("\n");
            new.push('\n');
            std::fs::write(path, new)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if tagged == 0 {
        bail!(
            "no package version to tag in the workspace at {}: its executables would overwrite \
             the working tree's",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_is_suggested_only_for_what_can_be_fetched() {
        for rev in [
            "main",
            "origin/release",
            "v1.2.0",
            "0123abcd",
            "HEAD",
            "feature/x-1",
        ] {
            assert!(looks_like_a_ref(rev), "{rev}");
            assert!(no_such_commit(rev).contains("git fetch origin"), "{rev}");
        }
        for rev in [
            "HEAD:README.md",
            "main~1",
            "main^",
            "@{u}",
            "main..HEAD",
            "a b",
            "-x",
            "",
            "refs/heads/.hidden",
            "x.lock",
        ] {
            assert!(!looks_like_a_ref(rev), "{rev}");
            let message = no_such_commit(rev);
            assert!(!message.contains("git fetch"), "{message}");
            assert!(message.contains("names no commit"), "{message}");
        }
    }
}

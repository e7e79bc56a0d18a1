//! `cargo xtask test`: every check CI runs, in the order that fails fastest.

use crate::cmd::cargo;
use crate::flags::TestArgs;
use crate::{lint, paths};

pub(crate) fn run(args: &TestArgs) -> anyhow::Result<()> {
    if !args.no_lint {
        cargo().args(["fmt", "--all", "--check"]).run()?;
        lint::run(&paths::project_root())?;
        cargo()
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .run()?;
    }
    cargo().args(["test", "--workspace"]).run()?;
    // Criterion's test mode: every benchmark of every suite runs once, against real services.
    // Only the bench crates have benchmark targets (`bench = false` everywhere else).
    cargo()
        .args(["bench", "--workspace", "--", "--test"])
        .run()?;
    eprintln!("all checks passed");
    Ok(())
}

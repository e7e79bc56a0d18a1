//! `cargo xtask test`: every check CI runs, in the order that fails fastest.

use crate::cmd::cargo;
use crate::flags::TestArgs;

pub(crate) fn run(args: &TestArgs) -> anyhow::Result<()> {
    if !args.no_lint {
        cargo().args(["fmt", "--all", "--check"]).run()?;
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
    eprintln!("all checks passed");
    Ok(())
}

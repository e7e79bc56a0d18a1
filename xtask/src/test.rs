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
    // Criterion's test mode: every benchmark of every suite runs once, against real services.
    // Only the bench crates have benchmark targets (`bench = false` everywhere else). It comes
    // before the tests because xtask's end-to-end tests run `perf-gate`, which needs this very
    // build (`cargo bench --workspace`): made once here, it is reused there.
    cargo()
        .args(["bench", "--workspace", "--", "--test"])
        .run()?;
    cargo().args(["test", "--workspace"]).run()?;
    // The load test end to end, as users run it: services, data, a commerce-server process of
    // its own, every operation for 10 s, the thresholds, the reports.
    let smoke = ["smoke", "--duration", "10s", "--progress", "5"].map(str::to_owned);
    crate::load::command(&paths::project_root(), &smoke)?.run()?;
    eprintln!("all checks passed");
    Ok(())
}

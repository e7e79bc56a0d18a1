//! The synthetic policy sets compile, load from disk, and decide every generated request as
//! their rule model says, on both allow and deny paths.

use authz::PolicySet;
use authz::synthetic::{PolicySize, generate};

#[test]
fn compiled_sets_agree_with_their_model() -> anyhow::Result<()> {
    for size in PolicySize::ALL {
        let set = generate(size);
        let policies = set.compile()?;
        let mut allowed = 0;
        let mut denied_by_rule = 0;
        let mut denied_by_default = 0;
        for case in &set.cases {
            let decision = policies.evaluate(&case.request);
            assert_eq!(
                decision,
                case.expected,
                "{} set, {:?}",
                size.name(),
                case.request
            );
            match (decision.allowed, decision.reason.as_str()) {
                (true, _) => allowed += 1,
                (false, "no rule grants the request") => denied_by_default += 1,
                (false, _) => denied_by_rule += 1,
            }
        }
        let total = set.cases.len();
        // Both paths must carry weight, or the benchmark would measure only one of them.
        assert!(
            allowed * 5 >= total,
            "{}: {allowed}/{total} allowed",
            size.name()
        );
        assert!(
            (denied_by_rule + denied_by_default) * 5 >= total,
            "{}: {allowed}/{total} allowed",
            size.name()
        );
        assert!(denied_by_default > 0, "{}: no default denial", size.name());
        if size != PolicySize::Small {
            assert!(denied_by_rule > 0, "{}: no rule denial", size.name());
        }
    }
    Ok(())
}

#[test]
fn written_set_loads_with_the_same_version() -> anyhow::Result<()> {
    let set = generate(PolicySize::Medium);
    let dir = tempfile::tempdir()?;
    set.write_to(dir.path())?;
    let from_disk = PolicySet::load_dir(dir.path())?;
    assert_eq!(from_disk.version(), set.compile()?.version());
    assert_eq!(from_disk.files().len(), set.files.len());
    Ok(())
}

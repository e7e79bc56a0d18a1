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

/// The bytecode VM decides every synthetic request exactly as the tree interpreter does, reason
/// included, and is the one that decides (no set falls back to the interpreter).
#[test]
fn bytecode_agrees_with_the_interpreter() -> anyhow::Result<()> {
    let shipped = PolicySet::shipped()?;
    assert!(shipped.uses_bytecode());
    for size in PolicySize::ALL {
        let set = generate(size);
        let policies = set.compile()?;
        assert!(policies.uses_bytecode(), "{} set", size.name());
        for case in &set.cases {
            assert_eq!(
                policies.evaluate(&case.request),
                policies.evaluate_interpreted(&case.request),
                "{} set, {:?}",
                size.name(),
                case.request
            );
            // The same requests against the shipped policies, whose paths differ.
            assert_eq!(
                shipped.evaluate(&case.request),
                shipped.evaluate_interpreted(&case.request),
                "shipped policies, {:?}",
                case.request
            );
        }
    }
    Ok(())
}

//! Loading policy directories: errors name the file and line, evaluation errors become
//! denials, reloads swap the policies.

use std::path::Path;

use anyhow::Context as _;
use authz::{
    AuthzRequest, PolicyEngine, PolicyError, PolicySet, Resource, Subject, actions, kinds, roles,
    shipped_policy_dir,
};

fn copy_shipped_policies(to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(shipped_policy_dir()).context("listing the shipped policies")? {
        let path = entry?.path();
        let name = path.file_name().context("policy file name")?;
        std::fs::copy(&path, to.join(name))
            .with_context(|| format!("copying {}", path.display()))?;
    }
    Ok(())
}

fn own_cart_request() -> AuthzRequest {
    AuthzRequest::new(
        Subject::new("tenant-a", "alice", [roles::CUSTOMER]),
        actions::CART_GET,
        Resource::owned(kinds::CART, "tenant-a", "alice"),
    )
}

#[test]
fn syntax_error_names_file_and_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    copy_shipped_policies(dir.path())?;
    // In a subdirectory, to show that loading recurses; the error is on line 5.
    std::fs::create_dir(dir.path().join("extra"))?;
    let broken = dir.path().join("extra").join("broken.rego");
    std::fs::write(
        &broken,
        "package authz.extra\n\nimport rego.v1\n\nallow if input.subject.user_id == ]\n\nother := 1\n",
    )?;
    let error = PolicySet::load_dir(dir.path()).expect_err("the policy does not parse");
    let PolicyError::Syntax { location, message } = &error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!(location.file, broken);
    assert_eq!(location.line, 5, "{error}");
    assert!(!message.is_empty());
    let text = error.to_string();
    assert!(text.contains(&format!("{}:5:", broken.display())), "{text}");
    Ok(())
}

#[test]
fn compile_error_is_located() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    copy_shipped_policies(dir.path())?;
    let unsafe_var = dir.path().join("unsafe.rego");
    // Parses, but `z` is never bound: regorus rejects the rule when it compiles the set.
    std::fs::write(
        &unsafe_var,
        "package authz.extra\n\nimport rego.v1\n\nx if { count(z) > 1 }\n",
    )?;
    let error = PolicySet::load_dir(dir.path()).expect_err("`z` is unbound");
    assert!(matches!(error, PolicyError::Compile { .. }), "{error}");
    let location = error
        .location()
        .with_context(|| format!("no location in {error:?}"))?;
    assert_eq!(location.file, unsafe_var, "{error}");
    assert_eq!(location.line, 5, "{error}");
    Ok(())
}

#[test]
fn empty_and_missing_directories_are_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("README.md"), "not a policy")?;
    assert!(matches!(
        PolicySet::load_dir(dir.path()),
        Err(PolicyError::NoPolicies { .. })
    ));
    assert!(matches!(
        PolicySet::load_dir(dir.path().join("absent")),
        Err(PolicyError::Io { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn evaluation_error_is_a_deny_with_its_reason() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("divide.rego");
    // Divides by the number of roles: fine for most requests, a runtime error for none.
    std::fs::write(
        &file,
        "package authz\n\nimport rego.v1\n\ndecision := {\"allowed\": true, \"reason\": sprintf(\"share %v\", [1 / count(input.subject.roles)])}\n",
    )?;
    let engine = PolicyEngine::new(PolicySet::load_dir(dir.path())?);
    let fine = engine.authorize(&own_cart_request()).await;
    assert!(fine.allowed, "{fine:?}");
    let mut no_roles = own_cart_request();
    no_roles.subject.roles.clear();
    let denied = engine.authorize(&no_roles).await;
    assert!(!denied.allowed);
    assert!(
        denied.reason.starts_with(&format!(
            "policy evaluation failed at {}:5:",
            file.display()
        )),
        "{}",
        denied.reason
    );
    assert!(
        denied.reason.contains("divide by zero"),
        "{}",
        denied.reason
    );
    let batch = engine
        .authorize_batch(&[own_cart_request(), no_roles])
        .await;
    assert_eq!(batch, vec![fine, denied]);
    assert_eq!(engine.stats().evaluation_failures, 2);
    Ok(())
}

#[tokio::test]
async fn reload_swaps_policies_and_keeps_them_on_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    copy_shipped_policies(dir.path())?;
    let engine = PolicyEngine::new(PolicySet::load_dir(dir.path())?);
    let shipped_version = engine.version();
    let mut other_tenant = own_cart_request();
    other_tenant.resource.tenant_id = "tenant-b".to_owned();
    assert!(!engine.authorize(&other_tenant).await.allowed);

    // A reload that fails leaves the current policies in force.
    let broken = tempfile::tempdir()?;
    std::fs::write(
        broken.path().join("broken.rego"),
        "package authz\n\ndecision := {\n",
    )?;
    assert!(engine.reload_dir(broken.path()).is_err());
    assert_eq!(engine.version(), shipped_version);

    let open = tempfile::tempdir()?;
    std::fs::write(
        open.path().join("open.rego"),
        "package authz\n\nimport rego.v1\n\ndecision := {\"allowed\": true, \"reason\": \"maintenance mode\"}\n",
    )?;
    let open_version = engine.reload_dir(open.path())?;
    assert_ne!(open_version, shipped_version);
    assert_eq!(engine.version(), open_version);
    assert_eq!(
        engine.authorize(&other_tenant).await,
        authz::Decision::allow("maintenance mode")
    );
    Ok(())
}

#[test]
fn one_policy_set_serves_many_threads() -> anyhow::Result<()> {
    let policies = PolicySet::shipped()?;
    let requests: Vec<AuthzRequest> = roles::ALL
        .iter()
        .flat_map(|role| {
            actions::ALL.iter().map(move |action| {
                let kind = action.split(':').next().unwrap_or_default();
                AuthzRequest::new(
                    Subject::new("tenant-a", "alice", [*role]),
                    *action,
                    Resource::owned(kind, "tenant-b", "alice"),
                )
            })
        })
        .collect();
    let sequential: Vec<_> = requests.iter().map(|r| policies.evaluate(r)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    requests
                        .iter()
                        .map(|r| policies.evaluate(r))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            let parallel = handle.join().expect("evaluation does not panic");
            assert_eq!(parallel, sequential);
        }
    });
    Ok(())
}

//! The decision table of the shipped policies: every role × action × resource context, each
//! row asserting `allowed` and the exact reason.

use std::collections::BTreeSet;

use authz::{AuthzRequest, Decision, PolicySet, Resource, Subject, actions, roles};

/// Where the resource is, relative to the caller (user "alice" of tenant "tenant-a").
#[derive(Debug, Clone, Copy)]
enum Context {
    /// Alice's own resource.
    Own,
    /// Bob's resource, same tenant.
    OtherUser,
    /// No owner: the whole tenant (e.g. listing all orders).
    TenantWide,
    /// Carol's resource in tenant B.
    OtherTenant,
    /// A resource of tenant B whose owner id is also "alice": ownership must not leak across
    /// tenants.
    OtherTenantSameUserId,
}

const CONTEXTS: [Context; 5] = [
    Context::Own,
    Context::OtherUser,
    Context::TenantWide,
    Context::OtherTenant,
    Context::OtherTenantSameUserId,
];

/// The expected decision, in the policies' words.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Allowed at this scope (the description the policy uses).
    Allow(&'static str),
    /// Denied with this fixed reason.
    Deny(&'static str),
    /// Denied because the role does not grant the action at all.
    Lacks,
}

use Expect::{Allow, Deny, Lacks};

const OWN: Expect = Allow("own resources");
const TENANT: Expect = Allow("resources of its tenant");
const ANY: Expect = Allow("resources of any tenant");
const OTHER_USER: Expect = Deny("resource belongs to another user");
const TENANT_WIDE: Expect = Deny("tenant-wide access denied");
const CROSS: Expect = Deny("cross-tenant access denied");

/// Columns: own, other user, tenant-wide, other tenant, other tenant with the same user id.
const OWNER_ONLY: [Expect; 5] = [OWN, OTHER_USER, TENANT_WIDE, CROSS, CROSS];
const TENANT_READ: [Expect; 5] = [OWN, TENANT, TENANT, CROSS, CROSS];
const ANY_TENANT_READ: [Expect; 5] = [ANY, ANY, ANY, ANY, ANY];
const NEVER: [Expect; 5] = [Lacks, Lacks, Lacks, Lacks, Lacks];

const TABLE: [(&str, &str, [Expect; 5]); 21] = [
    (roles::CUSTOMER, actions::CART_GET, OWNER_ONLY),
    (roles::CUSTOMER, actions::CART_ADD_ITEM, OWNER_ONLY),
    (roles::CUSTOMER, actions::CART_REMOVE_ITEM, OWNER_ONLY),
    (roles::CUSTOMER, actions::CART_CLEAR, OWNER_ONLY),
    (roles::CUSTOMER, actions::ORDER_CREATE, OWNER_ONLY),
    (roles::CUSTOMER, actions::ORDER_GET, OWNER_ONLY),
    (roles::CUSTOMER, actions::ORDER_LIST, OWNER_ONLY),
    (roles::TENANT_ADMIN, actions::CART_GET, OWNER_ONLY),
    (roles::TENANT_ADMIN, actions::CART_ADD_ITEM, OWNER_ONLY),
    (roles::TENANT_ADMIN, actions::CART_REMOVE_ITEM, OWNER_ONLY),
    (roles::TENANT_ADMIN, actions::CART_CLEAR, OWNER_ONLY),
    (roles::TENANT_ADMIN, actions::ORDER_CREATE, OWNER_ONLY),
    (roles::TENANT_ADMIN, actions::ORDER_GET, TENANT_READ),
    (roles::TENANT_ADMIN, actions::ORDER_LIST, TENANT_READ),
    (roles::SUPPORT, actions::CART_GET, ANY_TENANT_READ),
    (roles::SUPPORT, actions::CART_ADD_ITEM, NEVER),
    (roles::SUPPORT, actions::CART_REMOVE_ITEM, NEVER),
    (roles::SUPPORT, actions::CART_CLEAR, NEVER),
    (roles::SUPPORT, actions::ORDER_CREATE, NEVER),
    (roles::SUPPORT, actions::ORDER_GET, ANY_TENANT_READ),
    (roles::SUPPORT, actions::ORDER_LIST, ANY_TENANT_READ),
];

fn request(roles: &[&str], action: &str, context: Context) -> AuthzRequest {
    let kind = action.split(':').next().unwrap_or_default();
    let resource = match context {
        Context::Own => Resource::owned(kind, "tenant-a", "alice"),
        Context::OtherUser => Resource::owned(kind, "tenant-a", "bob"),
        Context::TenantWide => Resource::tenant_wide(kind, "tenant-a"),
        Context::OtherTenant => Resource::owned(kind, "tenant-b", "carol"),
        Context::OtherTenantSameUserId => Resource::owned(kind, "tenant-b", "alice"),
    };
    AuthzRequest::new(
        Subject::new("tenant-a", "alice", roles.iter().copied()),
        action,
        resource,
    )
}

fn expected(role: &str, action: &str, expect: Expect) -> Decision {
    match expect {
        Allow(scope) => Decision::allow(format!("role {role} may {action} on {scope}")),
        Deny(reason) => Decision::deny(reason),
        Lacks => Decision::deny(format!("role {role} lacks permission {action}")),
    }
}

#[test]
fn table_covers_every_role_and_action() {
    let covered: BTreeSet<(&str, &str)> = TABLE
        .iter()
        .map(|(role, action, _)| (*role, *action))
        .collect();
    for role in roles::ALL {
        for action in actions::ALL {
            assert!(
                covered.contains(&(role, action)),
                "no row for {role} × {action}"
            );
        }
    }
    assert_eq!(covered.len(), TABLE.len(), "duplicate rows");
}

#[test]
fn shipped_policies_follow_the_table() -> anyhow::Result<()> {
    let policies = PolicySet::shipped()?;
    let mut failures = Vec::new();
    for (role, action, row) in TABLE {
        for (context, expect) in CONTEXTS.into_iter().zip(row) {
            let want = expected(role, action, expect);
            let request = request(&[role], action, context);
            let got = policies.evaluate(&request);
            if got != want {
                failures.push(format!(
                    "{role} × {action} × {context:?}: want {want:?}, got {got:?}"
                ));
            }
            // The table holds the tree interpreter to the same reasons, byte for byte.
            let interpreted = policies.evaluate_interpreted(&request);
            if interpreted != want {
                failures.push(format!(
                    "{role} × {action} × {context:?} (interpreter): want {want:?}, got \
                     {interpreted:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn support_never_writes_even_its_own_resources() -> anyhow::Result<()> {
    let policies = PolicySet::shipped()?;
    for action in actions::WRITES {
        let decision = policies.evaluate(&request(&[roles::SUPPORT], action, Context::Own));
        assert!(!decision.allowed, "support may {action}");
    }
    Ok(())
}

/// Rows for combined roles and malformed requests, which the role × action table does not
/// reach.
#[test]
fn special_cases() -> anyhow::Result<()> {
    let policies = PolicySet::shipped()?;
    let customer_and_support = [roles::CUSTOMER, roles::SUPPORT];
    let cases: Vec<(AuthzRequest, Decision)> = vec![
        // A support agent who is also a customer still cannot write in another tenant...
        (
            request(
                &customer_and_support,
                actions::CART_ADD_ITEM,
                Context::OtherTenant,
            ),
            Decision::deny("cross-tenant access denied"),
        ),
        // ...but writes their own cart as a customer, and reads anywhere as support.
        (
            request(&customer_and_support, actions::CART_ADD_ITEM, Context::Own),
            Decision::allow("role customer may cart:add_item on own resources"),
        ),
        (
            request(
                &customer_and_support,
                actions::ORDER_GET,
                Context::OtherTenant,
            ),
            Decision::allow("role support may order:get on resources of any tenant"),
        ),
        // The narrowest granting scope names the reason.
        (
            request(
                &[roles::TENANT_ADMIN, roles::CUSTOMER],
                actions::ORDER_GET,
                Context::Own,
            ),
            Decision::allow("role customer may order:get on own resources"),
        ),
        (
            request(&["guest"], actions::CART_GET, Context::Own),
            Decision::deny("role guest lacks permission cart:get"),
        ),
        (
            request(
                &[roles::SUPPORT, "guest"],
                actions::CART_CLEAR,
                Context::Own,
            ),
            Decision::deny("roles guest, support lack permission cart:clear"),
        ),
        (
            request(&[roles::TENANT_ADMIN], "order:delete", Context::Own),
            Decision::deny("role tenant_admin lacks permission order:delete"),
        ),
        (
            request(&[], actions::CART_GET, Context::Own),
            Decision::deny("subject has no roles"),
        ),
        (
            AuthzRequest::new(
                Subject::new("tenant-a", "alice", [roles::CUSTOMER]),
                actions::CART_GET,
                Resource::owned("order", "tenant-a", "alice"),
            ),
            Decision::deny("action cart:get does not apply to resource kind order"),
        ),
        (
            AuthzRequest::new(
                Subject::new("", "alice", [roles::CUSTOMER]),
                actions::CART_GET,
                Resource::owned("cart", "", "alice"),
            ),
            Decision::deny("resource tenant is missing"),
        ),
    ];
    for (request, want) in cases {
        assert_eq!(policies.evaluate(&request), want, "{request:?}");
        assert_eq!(policies.evaluate_interpreted(&request), want, "{request:?}");
    }
    Ok(())
}

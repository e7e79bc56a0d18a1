//! Fixtures of the `policy` suite: representative requests for the shipped policies, distinct
//! requests for decision-cache misses, the CPU reference workload, the concurrent driver, and
//! the Cedar reference of the shipped decision ([`cedar`]).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authz::{AuthzRequest, PolicyEngine, Resource, Subject, actions, kinds, roles};

pub mod cedar;

/// Role-based requests inside the caller's own tenant: the decision turns on the role, the action
/// and the scope a grant covers. Allow and deny paths, and a subject with two roles.
pub fn rbac_requests() -> Vec<AuthzRequest> {
    vec![
        // A customer on their own cart and orders: the "own" scope.
        AuthzRequest::new(
            Subject::new("tenant-1", "user-1", [roles::CUSTOMER]),
            actions::CART_ADD_ITEM,
            Resource::owned(kinds::CART, "tenant-1", "user-1"),
        ),
        AuthzRequest::new(
            Subject::new("tenant-1", "user-1", [roles::CUSTOMER]),
            actions::ORDER_CREATE,
            Resource::owned(kinds::ORDER, "tenant-1", "user-1"),
        ),
        // A tenant admin reads the tenant's orders: the "tenant" scope.
        AuthzRequest::new(
            Subject::new("tenant-1", "admin-1", [roles::TENANT_ADMIN]),
            actions::ORDER_LIST,
            Resource::tenant_wide(kinds::ORDER, "tenant-1"),
        ),
        AuthzRequest::new(
            Subject::new("tenant-1", "admin-1", [roles::TENANT_ADMIN]),
            actions::ORDER_GET,
            Resource::owned(kinds::ORDER, "tenant-1", "user-2"),
        ),
        // Support never writes: the role lacks the permission.
        AuthzRequest::new(
            Subject::new("tenant-1", "support-1", [roles::SUPPORT]),
            actions::CART_ADD_ITEM,
            Resource::owned(kinds::CART, "tenant-1", "user-2"),
        ),
        // Two roles: the wider one allows reading another user's cart.
        AuthzRequest::new(
            Subject::new("tenant-1", "user-3", [roles::CUSTOMER, roles::SUPPORT]),
            actions::CART_GET,
            Resource::owned(kinds::CART, "tenant-1", "user-2"),
        ),
    ]
}

/// Multi-tenant requests: the decision turns on whose tenant and whose resource it is.
pub fn tenancy_requests() -> Vec<AuthzRequest> {
    vec![
        // Own resource, own tenant.
        AuthzRequest::new(
            Subject::new("tenant-1", "user-1", [roles::CUSTOMER]),
            actions::CART_GET,
            Resource::owned(kinds::CART, "tenant-1", "user-1"),
        ),
        // Another user's cart in the same tenant.
        AuthzRequest::new(
            Subject::new("tenant-1", "user-1", [roles::CUSTOMER]),
            actions::CART_GET,
            Resource::owned(kinds::CART, "tenant-1", "user-2"),
        ),
        // The same user id in another tenant is someone else.
        AuthzRequest::new(
            Subject::new("tenant-1", "user-1", [roles::CUSTOMER]),
            actions::CART_GET,
            Resource::owned(kinds::CART, "tenant-2", "user-1"),
        ),
        // A customer may not list the whole tenant.
        AuthzRequest::new(
            Subject::new("tenant-1", "user-1", [roles::CUSTOMER]),
            actions::ORDER_LIST,
            Resource::tenant_wide(kinds::ORDER, "tenant-1"),
        ),
        // A tenant admin may list their own tenant, not another.
        AuthzRequest::new(
            Subject::new("tenant-1", "admin-1", [roles::TENANT_ADMIN]),
            actions::ORDER_LIST,
            Resource::tenant_wide(kinds::ORDER, "tenant-2"),
        ),
        // Support reads across tenants.
        AuthzRequest::new(
            Subject::new("tenant-1", "support-1", [roles::SUPPORT]),
            actions::ORDER_GET,
            Resource::owned(kinds::ORDER, "tenant-2", "user-9"),
        ),
    ]
}

/// `count` requests that differ only in the user id (fixed width, so every one has the same
/// size and takes the same path through the policies): each has a decision-cache key of its
/// own.
pub fn distinct_requests(count: usize) -> Vec<AuthzRequest> {
    (0..count)
        .map(|i| {
            let user = format!("user-{i:06}");
            AuthzRequest::new(
                Subject::new("tenant-1", &user, [roles::CUSTOMER]),
                actions::CART_GET,
                Resource::owned(kinds::CART, "tenant-1", &user),
            )
        })
        .collect()
}

/// Runs `rounds` rounds of `tasks` tasks at once on the current runtime: in each round every
/// task authorizes one request (task `t` always the request `t` modulo the list), so a batch
/// does the same evaluations in every run. Returns the wall time from the first spawn to the
/// last completion.
pub async fn concurrent_authorize(
    engine: &Arc<PolicyEngine>,
    requests: &Arc<Vec<AuthzRequest>>,
    tasks: usize,
    rounds: u64,
) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let engine = Arc::clone(engine);
            let requests = Arc::clone(requests);
            tokio::spawn(async move {
                let request = &requests[task % requests.len()];
                for _ in 0..rounds {
                    black_box(engine.authorize(request).await);
                }
            })
        })
        .collect();
    for handle in handles {
        if let Err(error) = handle.await {
            std::panic::resume_unwind(error.into_panic());
        }
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use authz::{Decision, PolicySet};

    use super::*;

    fn decide(requests: &[AuthzRequest]) -> Vec<Decision> {
        let policies = PolicySet::shipped().expect("the shipped policies compile");
        requests
            .iter()
            .map(|request| policies.evaluate(request))
            .collect()
    }

    #[test]
    fn rbac_requests_take_the_paths_they_are_meant_to() {
        let decisions = decide(&rbac_requests());
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(
            allowed,
            [true, true, true, true, false, true],
            "{decisions:?}"
        );
        assert_eq!(
            decisions[4].reason,
            "role support lacks permission cart:add_item"
        );
        assert!(
            decisions[2].reason.contains("resources of its tenant"),
            "{decisions:?}"
        );
    }

    #[test]
    fn tenancy_requests_take_the_paths_they_are_meant_to() {
        let decisions = decide(&tenancy_requests());
        let reasons: Vec<&str> = decisions.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(
            reasons[1..5],
            [
                "resource belongs to another user",
                "cross-tenant access denied",
                "tenant-wide access denied",
                "cross-tenant access denied",
            ]
        );
        assert!(
            decisions[0].allowed && decisions[5].allowed,
            "{decisions:?}"
        );
    }

    #[test]
    fn distinct_requests_are_distinct_allowed_and_of_one_size() {
        let requests = distinct_requests(100);
        let mut unique = requests.clone();
        unique.dedup();
        assert_eq!(unique.len(), 100);
        let size = |r: &AuthzRequest| serde_json::to_string(r).expect("encodes").len();
        assert!(requests.iter().all(|r| size(r) == size(&requests[0])));
        assert!(decide(&requests[..3]).iter().all(|d| d.allowed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_task_authorizes_once_per_round() {
        let engine = Arc::new(PolicyEngine::new(
            PolicySet::shipped().expect("the shipped policies compile"),
        ));
        let requests = Arc::new(rbac_requests());
        concurrent_authorize(&engine, &requests, 10, 3).await;
        assert_eq!(engine.stats().evaluations, 30);
    }
}

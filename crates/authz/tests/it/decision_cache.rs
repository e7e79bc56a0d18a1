//! The decision cache over Redis: repeated decisions are cache hits (shown by the statistics),
//! engines share decisions through Redis, and reloading the policies invalidates them.

use std::collections::HashSet;
use std::sync::Arc;

use authz::synthetic::{PolicySize, generate};
use authz::{
    AuthzRequest, Decision, PolicyEngine, PolicySet, Resource, Subject, actions, kinds, roles,
};
use tiered_cache::{CacheConfig, TieredCache};

fn cached_engine(
    namespace: &provision::RedisNamespace,
    policies: PolicySet,
) -> anyhow::Result<PolicyEngine> {
    let cache = TieredCache::new(CacheConfig::new(namespace.url(), namespace.prefix()))?;
    Ok(PolicyEngine::with_decision_cache(policies, cache))
}

fn cross_tenant_read() -> AuthzRequest {
    AuthzRequest::new(
        Subject::new("tenant-a", "alice", [roles::CUSTOMER]),
        actions::ORDER_GET,
        Resource::owned(kinds::ORDER, "tenant-b", "bob"),
    )
}

#[tokio::test]
async fn repeated_authorization_is_a_cache_hit() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let engine = cached_engine(&namespace, PolicySet::shipped()?)?;
    let request = cross_tenant_read();

    let first = engine.authorize(&request).await;
    assert_eq!(first, Decision::deny("cross-tenant access denied"));
    let before = engine.stats();
    let second = engine.authorize(&request).await;
    let after = engine.stats();

    assert_eq!(second, first);
    assert_eq!(before.evaluations, 1);
    assert_eq!(
        after.evaluations, 1,
        "the repeat must not evaluate the policies"
    );
    let (before_cache, after_cache) = (before.cache.expect("cached"), after.cache.expect("cached"));
    let delta = after_cache.since(&before_cache);
    assert_eq!(
        (delta.l1_hits, delta.l1_misses, delta.loader_calls),
        (1, 0, 0)
    );
    Ok(())
}

#[tokio::test]
async fn engines_share_decisions_through_redis() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let first = cached_engine(&namespace, PolicySet::shipped()?)?;
    let second = cached_engine(&namespace, PolicySet::shipped()?)?;
    let decision = first.authorize(&cross_tenant_read()).await;
    assert_eq!(second.authorize(&cross_tenant_read()).await, decision);
    let stats = second.stats();
    assert_eq!(stats.evaluations, 0);
    assert_eq!(stats.cache.expect("cached").l2_hits, 1);
    Ok(())
}

#[tokio::test]
async fn reloading_policies_invalidates_cached_decisions() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let engine = cached_engine(&namespace, PolicySet::shipped()?)?;
    let request = cross_tenant_read();
    assert!(!engine.authorize(&request).await.allowed);

    let open = PolicySet::from_sources([(
        "open.rego",
        "package authz\n\nimport rego.v1\n\ndecision := {\"allowed\": true, \"reason\": \"maintenance mode\"}\n",
    )])?;
    let shipped_version = engine.version();
    let open_version = engine.replace_policies(open);
    assert_ne!(open_version, shipped_version);
    assert_eq!(
        engine.authorize(&request).await,
        Decision::allow("maintenance mode"),
        "a decision of the old policies was served"
    );
    assert_eq!(engine.stats().evaluations, 2);

    // Back to the first policies: their decisions are valid again, and Redis still has them.
    engine.replace_policies(PolicySet::shipped()?);
    assert_eq!(engine.version(), shipped_version);
    let before = engine.stats();
    assert_eq!(
        engine.authorize(&request).await,
        Decision::deny("cross-tenant access denied")
    );
    let after = engine.stats();
    assert_eq!(after.evaluations, before.evaluations);
    let delta = after
        .cache
        .expect("cached")
        .since(&before.cache.expect("cached"));
    assert_eq!(
        delta.l2_hits, 1,
        "L1 was cleared by the reload; Redis answered"
    );
    Ok(())
}

#[tokio::test]
async fn batch_decides_in_order_and_evaluates_duplicates_once() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let set = generate(PolicySize::Medium);
    let engine = cached_engine(&namespace, set.compile()?)?;
    let mut requests: Vec<AuthzRequest> = set.requests().take(40).cloned().collect();
    requests.extend_from_slice(&requests.clone());
    let decisions = engine.authorize_batch(&requests).await;
    let expected: Vec<Decision> = set
        .cases
        .iter()
        .take(40)
        .chain(set.cases.iter().take(40))
        .map(|case| case.expected.clone())
        .collect();
    assert_eq!(decisions, expected);
    let distinct: HashSet<&AuthzRequest> = requests.iter().collect();
    assert_eq!(engine.stats().evaluations, distinct.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_share_one_engine() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let set = generate(PolicySize::Small);
    let engine = Arc::new(cached_engine(&namespace, set.compile()?)?);
    let cases = Arc::new(set.cases);
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let (engine, cases) = (Arc::clone(&engine), Arc::clone(&cases));
            tokio::spawn(async move {
                // Each task walks the cases from a different starting point.
                for offset in 0..cases.len() {
                    let case = &cases[(offset + task * 16) % cases.len()];
                    let decision = engine.authorize(&case.request).await;
                    if decision != case.expected {
                        return Err(format!("{:?}: got {decision:?}", case.request));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await?.map_err(anyhow::Error::msg)?;
    }
    let distinct: HashSet<&AuthzRequest> = cases.iter().map(|case| &case.request).collect();
    let stats = engine.stats();
    // Single flight: each distinct request was evaluated once, however many tasks asked.
    assert_eq!(stats.evaluations, distinct.len() as u64);
    assert!(stats.cache.expect("cached").l1_hits > 0);
    Ok(())
}

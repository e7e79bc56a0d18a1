//! Authorization by the policy engine through the gRPC API: cross-tenant denials with the
//! policy's reason (and its log line), support's cross-tenant reads and refused writes, a
//! tenant admin's tenant-wide listing, and the decision cache's statistics.

use authz::EngineStats;
use commerce::Commerce;
use commerce::grpc::identity::request;
use commerce::grpc::proto::{
    AddItemRequest, Cart, ClearCartRequest, CreateOrderRequest, GetCartRequest, GetOrderRequest,
    ListOrdersRequest, ListScope, Order, RemoveItemRequest,
};
use commerce::identity::{Caller, Role};
use commerce::ids::{ProductId, TenantId, UserId};
use tiered_cache::CacheStats;
use tonic::Code;

use crate::support::{Api, Env, authz_log, customer, failure, policy_engine, user};

fn get_cart(tenant: TenantId, user: UserId) -> GetCartRequest {
    GetCartRequest {
        tenant_id: tenant.to_string(),
        user_id: user.to_string(),
    }
}

fn get_order(order: &Order, tenant: &str) -> GetOrderRequest {
    GetOrderRequest {
        order_id: order.id.clone(),
        tenant_id: tenant.to_owned(),
    }
}

fn list(tenant: &str, scope: ListScope) -> ListOrdersRequest {
    ListOrdersRequest {
        page_size: 100,
        page_token: String::new(),
        tenant_id: tenant.to_owned(),
        scope: scope as i32,
    }
}

fn add(product: ProductId) -> AddItemRequest {
    AddItemRequest {
        product_id: product.to_string(),
        quantity: 1,
    }
}

/// `shopper` orders one `products[0]` and then puts one `products[1]` in the cart; returns the
/// order and the cart.
async fn shop(
    api: &mut Api,
    shopper: &Caller,
    products: &[ProductId],
) -> anyhow::Result<(Order, Cart)> {
    api.carts
        .add_item(request(shopper, add(products[0])))
        .await?;
    let order = api
        .orders
        .create_order(request(shopper, CreateOrderRequest::default()))
        .await?
        .into_inner();
    let cart = api
        .carts
        .add_item(request(shopper, add(products[1])))
        .await?
        .into_inner();
    Ok((order, cart))
}

/// Fails unless `result` is `PERMISSION_DENIED` with exactly `reason`.
fn assert_denied<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    reason: &str,
    case: &str,
) -> anyhow::Result<()> {
    let status = failure(result)?;
    assert_eq!(status.code(), Code::PermissionDenied, "{case}: {status:?}");
    assert_eq!(status.message(), reason, "{case}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_denied_on_another_tenants_resources_and_the_reason_is_logged()
-> anyhow::Result<()> {
    let log = authz_log();
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let (tenant_a, tenant_b) = (TenantId::new_random(), TenantId::new_random());
    let b_products = env.products(tenant_b, &[(100, 10), (200, 10)]).await?;
    let bob = customer(tenant_b);
    let (order, _) = shop(&mut api, &bob, &b_products).await?;
    let b = tenant_b.to_string();

    // Alice, a customer of tenant A, names tenant B's cart and orders explicitly; so does an
    // admin of tenant A, whose tenant-wide rights end at their own tenant.
    let alice = customer(tenant_a);
    let admin = user(tenant_a, &[Role::TenantAdmin]);
    for caller in [&alice, &admin] {
        let denied = "cross-tenant access denied";
        let cart = api
            .carts
            .get_cart(request(caller, get_cart(tenant_b, bob.user)))
            .await;
        assert_denied(cart, denied, "cart")?;
        let read = api
            .orders
            .get_order(request(caller, get_order(&order, &b)))
            .await;
        assert_denied(read, denied, "order")?;
        for scope in [ListScope::Own, ListScope::Tenant] {
            let listed = api
                .orders
                .list_orders(request(caller, list(&b, scope)))
                .await;
            assert_denied(listed, denied, &format!("{scope:?} listing"))?;
        }
    }

    // Each denial is logged with who asked for what, and why.
    let alice_id = alice.user.to_string();
    let lines = log.lines_with(&[
        "authorization denied",
        &alice_id,
        "action=order:get",
        &format!("resource=order {b}/{alice_id}"),
        "reason=cross-tenant access denied",
    ]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert!(line.contains(&format!("tenant={tenant_a}")), "{line}");
    assert!(line.contains("roles=customer"), "{line}");
    let cart_line = log.lines_with(&[
        &alice_id,
        "action=cart:get",
        &format!("resource=cart {b}/{}", bob.user),
        "reason=cross-tenant access denied",
    ]);
    assert_eq!(cart_line.len(), 1, "{cart_line:#?}");
    let tenant_wide = log.lines_with(&[
        &admin.user.to_string(),
        "action=order:list",
        &format!("resource=order {b}/*"),
        "roles=tenant_admin",
    ]);
    assert_eq!(tenant_wide.len(), 1, "{tenant_wide:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_reads_other_tenants_but_never_writes() -> anyhow::Result<()> {
    let log = authz_log();
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let (tenant_a, tenant_b) = (TenantId::new_random(), TenantId::new_random());
    let b_products = env.products(tenant_b, &[(100, 10), (200, 10)]).await?;
    let bob = customer(tenant_b);
    let (order, cart) = shop(&mut api, &bob, &b_products).await?;
    let b = tenant_b.to_string();

    // A support agent (of tenant A) reads Bob's order, cart and the whole of tenant B.
    let agent = user(tenant_a, &[Role::Support]);
    let read = api
        .orders
        .get_order(request(&agent, get_order(&order, &b)))
        .await?
        .into_inner();
    assert_eq!(read, order);
    let read = api
        .carts
        .get_cart(request(&agent, get_cart(tenant_b, bob.user)))
        .await?
        .into_inner();
    assert_eq!(read, cart);
    let listed = api
        .orders
        .list_orders(request(&agent, list(&b, ListScope::Tenant)))
        .await?
        .into_inner();
    let ids: Vec<&str> = listed.orders.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, [order.id.as_str()]);

    // But never writes, not even to their own cart.
    let created = api
        .orders
        .create_order(request(&agent, CreateOrderRequest::default()))
        .await;
    assert_denied(
        created,
        "role support lacks permission order:create",
        "create",
    )?;
    let added = api
        .carts
        .add_item(request(&agent, add(b_products[0])))
        .await;
    assert_denied(added, "role support lacks permission cart:add_item", "add")?;
    let remove = RemoveItemRequest {
        product_id: b_products[1].to_string(),
    };
    let removed = api.carts.remove_item(request(&agent, remove)).await;
    assert_denied(
        removed,
        "role support lacks permission cart:remove_item",
        "remove",
    )?;
    let cleared = api
        .carts
        .clear_cart(request(&agent, ClearCartRequest {}))
        .await;
    assert_denied(cleared, "role support lacks permission cart:clear", "clear")?;
    let lines = log.lines_with(&[
        &agent.user.to_string(),
        "roles=support",
        "action=order:create",
        "reason=role support lacks permission order:create",
    ]);
    assert_eq!(lines.len(), 1, "{lines:#?}");

    // Nothing changed in tenant B.
    assert_eq!(env.order_count(tenant_b).await?, 1);
    assert_eq!(env.order_count(tenant_a).await?, 0);
    let after = api
        .carts
        .get_cart(request(&bob, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!(after, cart);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_lists_the_whole_tenant_and_customers_only_their_own() -> anyhow::Result<()>
{
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let products = env.products(tenant, &[(100, 10), (200, 10)]).await?;
    let (alice, carol) = (customer(tenant), customer(tenant));
    let (alice_order, alice_cart) = shop(&mut api, &alice, &products).await?;
    let (carol_order, _) = shop(&mut api, &carol, &products).await?;

    let admin = user(tenant, &[Role::TenantAdmin]);
    let all = api
        .orders
        .list_orders(request(&admin, list("", ListScope::Tenant)))
        .await?
        .into_inner();
    let mut ids: Vec<String> = all.orders.into_iter().map(|o| o.id).collect();
    ids.sort();
    let mut expected = vec![alice_order.id.clone(), carol_order.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    let read = api
        .orders
        .get_order(request(&admin, get_order(&alice_order, "")))
        .await?
        .into_inner();
    assert_eq!(read, alice_order);
    // An admin reads orders, not other people's carts.
    let cart = api
        .carts
        .get_cart(request(&admin, get_cart(tenant, alice.user)))
        .await;
    assert_denied(
        cart,
        "resource belongs to another user",
        "admin reads a cart",
    )?;

    // Carol is granted her own orders only: Alice's order is not found, the tenant is denied.
    let status = failure(
        api.orders
            .get_order(request(&carol, get_order(&alice_order, "")))
            .await,
    )?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let listed = api
        .orders
        .list_orders(request(&carol, list("", ListScope::Tenant)))
        .await;
    assert_denied(
        listed,
        "tenant-wide access denied",
        "customer lists the tenant",
    )?;
    let cart = api
        .carts
        .get_cart(request(&carol, get_cart(tenant, alice.user)))
        .await;
    assert_denied(
        cart,
        "resource belongs to another user",
        "customer reads a cart",
    )?;
    // Naming oneself explicitly is the same as naming nobody.
    let own = api
        .carts
        .get_cart(request(&alice, get_cart(tenant, alice.user)))
        .await?
        .into_inner();
    assert_eq!(own, alice_cart);
    Ok(())
}

/// The engine's counters accumulated between two snapshots.
fn delta(after: &EngineStats, before: &EngineStats) -> (u64, CacheStats) {
    let cache = |stats: &EngineStats| stats.cache.expect("the engine has a decision cache");
    (
        after.evaluations - before.evaluations,
        cache(after).since(&cache(before)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_authorization_is_served_from_the_decision_cache() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let me = customer(tenant);
    let engine = &env.commerce.policy;

    // The same call twice: the first evaluates the policy and fills both tiers, the second is
    // answered by the in-process tier without evaluating anything.
    let call = || request(&me, GetCartRequest::default());
    let start = engine.stats();
    api.carts.get_cart(call()).await?;
    let first = engine.stats();
    let (evaluations, cache) = delta(&first, &start);
    assert_eq!(evaluations, 1, "{first:?}");
    assert_eq!(
        (cache.l1_misses, cache.l2_misses, cache.loader_calls),
        (1, 1, 1)
    );
    api.carts.get_cart(call()).await?;
    let second = engine.stats();
    let (evaluations, cache) = delta(&second, &first);
    assert_eq!(evaluations, 0, "{second:?}");
    assert_eq!(
        (cache.l1_hits, cache.l1_misses, cache.loader_calls),
        (1, 0, 0)
    );

    // A denial is a decision like any other: cached too.
    let other = TenantId::new_random();
    let foreign = || request(&me, get_cart(other, me.user));
    for _ in 0..2 {
        let status = failure(api.carts.get_cart(foreign()).await)?;
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    let third = engine.stats();
    let (evaluations, cache) = delta(&third, &second);
    assert_eq!((evaluations, cache.l1_hits), (1, 1), "{third:?}");

    // A customer's order read asks two questions (tenant-wide, then their own); both are cached.
    let read = || {
        request(
            &me,
            GetOrderRequest {
                order_id: uuid::Uuid::new_v4().to_string(),
                tenant_id: String::new(),
            },
        )
    };
    let status = failure(api.orders.get_order(read()).await)?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let fourth = engine.stats();
    assert_eq!(delta(&fourth, &third).0, 2, "{fourth:?}");
    let status = failure(api.orders.get_order(read()).await)?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let fifth = engine.stats();
    let (evaluations, cache) = delta(&fifth, &fourth);
    assert_eq!((evaluations, cache.l1_hits), (0, 2), "{fifth:?}");

    // Another server (a fresh engine, so an empty in-process tier) over the same Redis
    // namespace gets the decision from Redis, still without evaluating.
    let replica = Commerce::new(
        env.pool.clone(),
        env.cache().clone(),
        policy_engine(&env.decisions)?,
    );
    let mut other_api = Api::start(replica.clone()).await?;
    other_api.carts.get_cart(call()).await?;
    let stats = replica.policy.stats();
    let cache = stats.cache.expect("the engine has a decision cache");
    assert_eq!(stats.evaluations, 0, "{stats:?}");
    assert_eq!((cache.l1_misses, cache.l2_hits), (1, 1), "{stats:?}");
    other_api.server.stop().await?;
    Ok(())
}

//! Tenant isolation through the gRPC API: ids guessed across tenants or users are not found, and
//! naming another tenant is denied (the reasons are checked in `policy`).

use commerce::grpc::identity::request;
use commerce::grpc::proto::{
    AddItemRequest, ClearCartRequest, CreateOrderRequest, GetCartRequest, GetOrderRequest,
    ListOrdersRequest, ListScope, RemoveItemRequest,
};
use commerce::identity::{Caller, Role};
use commerce::ids::TenantId;
use tonic::Code;

use crate::support::{Env, customer, failure, user};

fn add(product: &str) -> AddItemRequest {
    AddItemRequest {
        product_id: product.to_owned(),
        quantity: 1,
    }
}

fn get(order_id: &str, tenant: &str) -> GetOrderRequest {
    GetOrderRequest {
        order_id: order_id.to_owned(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_b_cannot_read_or_modify_tenant_a() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let (tenant_a, tenant_b) = (TenantId::new_random(), TenantId::new_random());
    let a_products = env.products(tenant_a, &[(100, 10), (200, 10)]).await?;
    env.products(tenant_b, &[(100, 10)]).await?;
    let (a_kettle, a_mug) = (a_products[0].to_string(), a_products[1].to_string());
    let alice = customer(tenant_a);
    api.carts.add_item(request(&alice, add(&a_kettle))).await?;
    let order = api
        .orders
        .create_order(request(&alice, CreateOrderRequest::default()))
        .await?
        .into_inner();
    api.carts.add_item(request(&alice, add(&a_mug))).await?;
    let alice_cart = api
        .carts
        .get_cart(request(&alice, GetCartRequest::default()))
        .await?
        .into_inner();

    // Bob is in tenant B, and even guesses Alice's user id.
    let bob = Caller {
        tenant: tenant_b,
        ..alice
    };
    let status = failure(
        api.orders
            .get_order(request(&bob, get(&order.id, "")))
            .await,
    )?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = failure(
        api.orders
            .get_order(request(&bob, get(&order.id, &tenant_a.to_string())))
            .await,
    )?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(!status.message().is_empty());
    let listed = api
        .orders
        .list_orders(request(&bob, list("", ListScope::Own)))
        .await?;
    assert!(listed.into_inner().orders.is_empty());
    let status = failure(
        api.orders
            .list_orders(request(&bob, list(&tenant_a.to_string(), ListScope::Own)))
            .await,
    )?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let bob_admin = Caller {
        roles: commerce::identity::Roles::of(&[Role::TenantAdmin]),
        ..bob
    };
    let listed = api
        .orders
        .list_orders(request(&bob_admin, list("", ListScope::Tenant)))
        .await?;
    assert!(
        listed.into_inner().orders.is_empty(),
        "tenant B has no orders"
    );

    // Bob cannot touch tenant A's products or Alice's cart.
    let status = failure(api.carts.add_item(request(&bob, add(&a_kettle))).await)?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let remove = RemoveItemRequest {
        product_id: a_mug.clone(),
    };
    let status = failure(api.carts.remove_item(request(&bob, remove)).await)?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let bobs = api
        .carts
        .get_cart(request(&bob, GetCartRequest::default()))
        .await?
        .into_inner();
    assert!(bobs.items.is_empty());
    api.carts
        .clear_cart(request(&bob, ClearCartRequest {}))
        .await?;
    let status = failure(
        api.orders
            .create_order(request(&bob, CreateOrderRequest::default()))
            .await,
    )?;
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "Bob's own cart is empty"
    );
    let after = api
        .carts
        .get_cart(request(&alice, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!(after, alice_cart, "Alice's cart is untouched");
    assert_eq!(env.stock(tenant_a, a_products[0]).await?, 9);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_see_their_own_orders_and_admins_the_tenant() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(100, 10)]).await?;
    let alice = customer(tenant);
    let carol = customer(tenant);
    let mut order_ids = Vec::new();
    for caller in [&alice, &carol] {
        api.carts
            .add_item(request(caller, add(&ids[0].to_string())))
            .await?;
        let order = api
            .orders
            .create_order(request(caller, CreateOrderRequest::default()))
            .await?;
        order_ids.push(order.into_inner().id);
    }

    // Carol cannot read Alice's order, nor list the tenant.
    let status = failure(
        api.orders
            .get_order(request(&carol, get(&order_ids[0], "")))
            .await,
    )?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = failure(
        api.orders
            .list_orders(request(&carol, list("", ListScope::Tenant)))
            .await,
    )?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let own = api
        .orders
        .list_orders(request(&carol, list("", ListScope::Own)))
        .await?;
    let own: Vec<_> = own.into_inner().orders.into_iter().map(|o| o.id).collect();
    assert_eq!(own, vec![order_ids[1].clone()]);

    // A tenant admin reads both; support reads but never writes.
    for roles in [&[Role::TenantAdmin][..], &[Role::Support]] {
        let staff = user(tenant, roles);
        api.orders
            .get_order(request(&staff, get(&order_ids[0], "")))
            .await?;
        let all = api
            .orders
            .list_orders(request(&staff, list("", ListScope::Tenant)))
            .await?;
        assert_eq!(all.into_inner().orders.len(), 2, "{roles:?}");
    }
    let support = user(tenant, &[Role::Support]);
    let status = failure(
        api.carts
            .add_item(request(&support, add(&ids[0].to_string())))
            .await,
    )?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = failure(
        api.orders
            .create_order(request(&support, CreateOrderRequest::default()))
            .await,
    )?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    Ok(())
}

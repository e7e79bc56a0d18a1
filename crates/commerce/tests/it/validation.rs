//! Bad input through the gRPC API gets the documented code and a message, never a panic or
//! `UNKNOWN`; a database that cannot be reached is `UNAVAILABLE`.

use std::sync::Arc;
use std::time::Duration;

use commerce::Commerce;
use commerce::cache::CartCache;
use commerce::grpc::identity::request;
use commerce::grpc::proto::{
    AddItemRequest, ClearCartRequest, CreateOrderRequest, GetCartRequest, GetOrderRequest,
    ListOrdersRequest, RemoveItemRequest,
};
use commerce::ids::TenantId;
use tonic::{Code, Request, Status};

use crate::support::{Api, Env, customer, failure};

fn check(status: &Status, expected: Code, case: &str) {
    assert_eq!(status.code(), expected, "{case}: {status:?}");
    assert!(!status.message().is_empty(), "{case}: no message");
}

fn add(product_id: &str, quantity: u32) -> AddItemRequest {
    AddItemRequest {
        product_id: product_id.to_owned(),
        quantity,
    }
}

fn list(page_size: u32, page_token: &str) -> ListOrdersRequest {
    ListOrdersRequest {
        page_size,
        page_token: page_token.to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_code() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(100, 10)]).await?;
    let product = ids[0].to_string();
    let me = customer(tenant);

    for quantity in [0, 100, u32::MAX] {
        let status = failure(
            api.carts
                .add_item(request(&me, add(&product, quantity)))
                .await,
        )?;
        check(
            &status,
            Code::InvalidArgument,
            &format!("quantity {quantity}"),
        );
        assert!(status.message().contains("quantity"), "{status:?}");
    }
    for page_size in [0, 101] {
        let status = failure(
            api.orders
                .list_orders(request(&me, list(page_size, "")))
                .await,
        )?;
        check(
            &status,
            Code::InvalidArgument,
            &format!("page size {page_size}"),
        );
        assert!(status.message().contains("page size"), "{status:?}");
    }
    for malformed in ["", "42", "not-a-uuid", "'; DROP TABLE products; --"] {
        let status = failure(api.carts.add_item(request(&me, add(malformed, 1))).await)?;
        check(&status, Code::InvalidArgument, malformed);
        let remove = RemoveItemRequest {
            product_id: malformed.to_owned(),
        };
        let status = failure(api.carts.remove_item(request(&me, remove)).await)?;
        check(&status, Code::InvalidArgument, malformed);
        let get = GetOrderRequest {
            order_id: malformed.to_owned(),
            tenant_id: String::new(),
        };
        let status = failure(api.orders.get_order(request(&me, get)).await)?;
        check(&status, Code::InvalidArgument, malformed);
    }
    let get = GetOrderRequest {
        order_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: "acme".to_owned(),
    };
    let status = failure(api.orders.get_order(request(&me, get)).await)?;
    check(&status, Code::InvalidArgument, "malformed target tenant");
    for (tenant_id, user_id) in [("acme", ""), ("", "bob")] {
        let get = GetCartRequest {
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
        };
        let status = failure(api.carts.get_cart(request(&me, get)).await)?;
        check(&status, Code::InvalidArgument, "malformed cart owner");
    }
    let status = failure(
        api.orders
            .list_orders(request(&me, list(10, "garbage")))
            .await,
    )?;
    check(&status, Code::InvalidArgument, "page token");
    let unknown_scope = ListOrdersRequest {
        page_size: 10,
        scope: 7,
        ..Default::default()
    };
    let status = failure(api.orders.list_orders(request(&me, unknown_scope)).await)?;
    check(&status, Code::InvalidArgument, "scope");
    let long_key = CreateOrderRequest {
        idempotency_key: "k".repeat(129),
    };
    let status = failure(api.orders.create_order(request(&me, long_key)).await)?;
    check(&status, Code::InvalidArgument, "idempotency key");
    let status = failure(
        api.orders
            .get_order(request(
                &me,
                GetOrderRequest {
                    order_id: uuid::Uuid::new_v4().to_string(),
                    tenant_id: String::new(),
                },
            ))
            .await,
    )?;
    check(&status, Code::NotFound, "unknown order");
    // None of it created a cart.
    let cart = api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!(cart.version, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_identity_are_unauthenticated() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let product = uuid::Uuid::new_v4().to_string();
    let outcomes = [
        failure(api.carts.add_item(Request::new(add(&product, 1))).await)?,
        failure(
            api.carts
                .get_cart(Request::new(GetCartRequest::default()))
                .await,
        )?,
        failure(
            api.carts
                .clear_cart(Request::new(ClearCartRequest {}))
                .await,
        )?,
        failure(
            api.carts
                .remove_item(Request::new(RemoveItemRequest {
                    product_id: product.clone(),
                }))
                .await,
        )?,
        failure(
            api.orders
                .create_order(Request::new(CreateOrderRequest::default()))
                .await,
        )?,
        failure(
            api.orders
                .get_order(Request::new(GetOrderRequest::default()))
                .await,
        )?,
        failure(api.orders.list_orders(Request::new(list(10, ""))).await)?,
    ];
    for status in &outcomes {
        check(status, Code::Unauthenticated, "no metadata");
    }

    // Present but malformed: a tenant that is not a UUID, an unknown role.
    let mut bad_tenant = Request::new(GetCartRequest::default());
    bad_tenant
        .metadata_mut()
        .insert("x-tenant-id", "acme".parse()?);
    bad_tenant
        .metadata_mut()
        .insert("x-user-id", uuid::Uuid::new_v4().to_string().parse()?);
    let status = failure(api.carts.get_cart(bad_tenant).await)?;
    check(&status, Code::Unauthenticated, "malformed tenant");
    let mut bad_role = request(&customer(TenantId::new_random()), GetCartRequest::default());
    bad_role.metadata_mut().insert("x-roles", "root".parse()?);
    let status = failure(api.carts.get_cart(bad_role).await)?;
    check(&status, Code::Unauthenticated, "unknown role");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable() -> anyhow::Result<()> {
    // Nothing listens on port 1; the pool gives up after its acquire timeout.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://nobody@127.0.0.1:1/nothing")?;
    let engine = authz::PolicyEngine::new(authz::PolicySet::shipped()?);
    let commerce = Commerce::new(pool, CartCache::disabled(), Arc::new(engine));
    let mut api = Api::start(commerce).await?;
    let me = customer(TenantId::new_random());
    let status = failure(
        api.carts
            .get_cart(request(&me, GetCartRequest::default()))
            .await,
    )?;
    check(&status, Code::Unavailable, "get cart");
    let status = failure(
        api.orders
            .create_order(request(&me, CreateOrderRequest::default()))
            .await,
    )?;
    check(&status, Code::Unavailable, "create order");
    assert!(
        !status.message().contains("127.0.0.1"),
        "no internals leak: {status:?}"
    );
    Ok(())
}

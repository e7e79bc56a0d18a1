//! Creating and reading orders: the happy path via gRPC, empty carts, out of stock, price
//! snapshots and idempotency keys (including two first attempts racing).

use commerce::grpc::identity::request;
use commerce::grpc::proto::{
    AddItemRequest, CreateOrderRequest, GetCartRequest, GetOrderRequest, OrderStatus,
};
use commerce::ids::TenantId;
use commerce::orders::IdempotencyKey;
use tonic::Code;

use crate::support::{Env, customer, failure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_order_happy_path_via_grpc() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env
        .products(tenant, &[(1250, 5), (499, 3), (10, 7)])
        .await?;
    let me = customer(tenant);
    for (i, quantity) in [(0, 2), (1, 1)] {
        let add = AddItemRequest {
            product_id: ids[i].to_string(),
            quantity,
        };
        api.carts.add_item(request(&me, add)).await?;
    }
    // Warm the cache, so the test also shows that ordering invalidates it.
    api.carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?;

    let create = CreateOrderRequest::default();
    let order = api
        .orders
        .create_order(request(&me, create))
        .await?
        .into_inner();
    assert_eq!(order.total_cents, 2 * 1250 + 499);
    assert_eq!(order.status, OrderStatus::Placed as i32);
    assert_eq!(order.tenant_id, tenant.to_string());
    assert_eq!(order.user_id, me.user.to_string());
    assert_eq!(order.items.len(), 2);
    let first = order
        .items
        .iter()
        .find(|item| item.product_id == ids[0].to_string())
        .unwrap();
    assert_eq!(
        (
            first.quantity,
            first.unit_price_cents,
            first.line_total_cents
        ),
        (2, 1250, 2500)
    );

    assert_eq!(env.stock(tenant, ids[0]).await?, 3);
    assert_eq!(env.stock(tenant, ids[1]).await?, 2);
    assert_eq!(
        env.stock(tenant, ids[2]).await?,
        7,
        "products not ordered are untouched"
    );
    let cart = api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert!(cart.items.is_empty(), "the cart is emptied: {cart:?}");
    assert_eq!(cart.total_cents, 0);

    // The order keeps the prices of its moment.
    sqlx::query("UPDATE products SET price_cents = 9999 WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&env.pool)
        .await?;
    let get = GetOrderRequest {
        order_id: order.id.clone(),
        tenant_id: String::new(),
    };
    let read = api.orders.get_order(request(&me, get)).await?.into_inner();
    assert_eq!(read, order);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_carts_and_missing_stock_change_nothing() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(100, 1), (200, 5)]).await?;
    let me = customer(tenant);

    // No cart at all, then a cart that was emptied.
    let status = failure(
        api.orders
            .create_order(request(&me, Default::default()))
            .await,
    )?;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), "the cart is empty");
    let carts = &env.commerce.carts;
    let q = |n| commerce::cart::Quantity::new(n).unwrap();
    carts.add_item(me.tenant, me.user, ids[1], q(1)).await?;
    carts.clear_cart(me.tenant, me.user).await?;
    let status = failure(
        api.orders
            .create_order(request(&me, Default::default()))
            .await,
    )?;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // Two units of a product with one in stock, next to one that is available.
    carts.add_item(me.tenant, me.user, ids[0], q(2)).await?;
    carts.add_item(me.tenant, me.user, ids[1], q(1)).await?;
    let before = carts.get_cart(me.tenant, me.user).await?;
    let status = failure(
        api.orders
            .create_order(request(&me, Default::default()))
            .await,
    )?;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains(&ids[0].to_string()), "{status:?}");
    assert!(
        !status.message().contains(&ids[1].to_string()),
        "{status:?}"
    );
    assert_eq!(env.stock(tenant, ids[0]).await?, 1);
    assert_eq!(env.stock(tenant, ids[1]).await?, 5);
    assert_eq!(carts.get_cart(me.tenant, me.user).await?, before);
    assert_eq!(env.order_count(tenant).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_idempotency_key_twice_returns_the_same_order() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(800, 10)]).await?;
    let me = customer(tenant);
    let add = || {
        request(
            &me,
            AddItemRequest {
                product_id: ids[0].to_string(),
                quantity: 3,
            },
        )
    };
    let create = || {
        request(
            &me,
            CreateOrderRequest {
                idempotency_key: "checkout-7f3a".to_owned(),
            },
        )
    };
    api.carts.add_item(add()).await?;
    let first = api.orders.create_order(create()).await?.into_inner();
    // The user fills the cart again; a retry of the first request must not order it.
    api.carts.add_item(add()).await?;
    let retry = api.orders.create_order(create()).await?.into_inner();
    assert_eq!(retry.id, first.id);
    assert_eq!(retry, first);
    assert_eq!(
        env.stock(tenant, ids[0]).await?,
        7,
        "stock decremented once"
    );
    assert_eq!(env.order_count(tenant).await?, 1);
    let cart = api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!(cart.items.len(), 1, "the retry left the new cart alone");

    // Another user of the tenant may use the same key: it is theirs, and gives them an order of
    // their own, without telling them anything about the first user's.
    let other = customer(tenant);
    env.commerce
        .carts
        .add_item(
            other.tenant,
            other.user,
            ids[0],
            commerce::cart::Quantity::new(1)?,
        )
        .await?;
    let theirs = api
        .orders
        .create_order(request(
            &other,
            CreateOrderRequest {
                idempotency_key: "checkout-7f3a".to_owned(),
            },
        ))
        .await?
        .into_inner();
    assert_ne!(theirs.id, first.id, "a separate order");
    assert_eq!(theirs.user_id, other.user.to_string());
    assert_eq!(
        env.stock(tenant, ids[0]).await?,
        6,
        "stock decremented for it"
    );
    assert_eq!(env.order_count(tenant).await?, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_attempts_with_one_key_create_one_order() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(100, 50)]).await?;
    let me = customer(tenant);
    let orders = &env.commerce.orders;
    let key = IdempotencyKey::new("double-click")?;
    for round in 0..5 {
        let key = IdempotencyKey::new(format!("double-click-{round}"))?;
        env.commerce
            .carts
            .add_item(
                me.tenant,
                me.user,
                ids[0],
                commerce::cart::Quantity::new(2)?,
            )
            .await?;
        let (a, b) = tokio::join!(
            orders.create_order(me.tenant, me.user, Some(&key)),
            orders.create_order(me.tenant, me.user, Some(&key)),
        );
        assert_eq!(a?.id, b?.id, "round {round}");
    }
    assert_eq!(env.stock(tenant, ids[0]).await?, 50 - 5 * 2);
    assert_eq!(env.order_count(tenant).await?, 5);

    // Two users racing with one key: an order each, keys being per user.
    let other = customer(tenant);
    for caller in [&me, &other] {
        env.commerce
            .carts
            .add_item(
                caller.tenant,
                caller.user,
                ids[0],
                commerce::cart::Quantity::new(1)?,
            )
            .await?;
    }
    let (a, b) = tokio::join!(
        orders.create_order(me.tenant, me.user, Some(&key)),
        orders.create_order(other.tenant, other.user, Some(&key)),
    );
    let (a, b) = (a?, b?);
    assert_ne!(a.id, b.id);
    assert_eq!((a.user, b.user), (me.user, other.user));
    assert_eq!(env.stock(tenant, ids[0]).await?, 50 - 5 * 2 - 2);
    assert_eq!(env.order_count(tenant).await?, 7);
    Ok(())
}

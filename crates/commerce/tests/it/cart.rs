//! Cart operations through the gRPC API: the round trip with exact totals, quantity capping,
//! unknown and inactive products.

use commerce::grpc::identity::request;
use commerce::grpc::proto::{AddItemRequest, ClearCartRequest, GetCartRequest, RemoveItemRequest};
use commerce::ids::TenantId;
use tonic::Code;

use crate::support::{Env, customer, failure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_round_trip_via_grpc() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(1999, 10), (250, 10)]).await?;
    let (kettle, mug) = (ids[0].to_string(), ids[1].to_string());
    let me = customer(tenant);
    let add = |product: &str, quantity| {
        request(
            &me,
            AddItemRequest {
                product_id: product.to_owned(),
                quantity,
            },
        )
    };

    let cart = api.carts.add_item(add(&kettle, 2)).await?.into_inner();
    assert_eq!(cart.items.len(), 1);
    assert_eq!(cart.total_cents, 2 * 1999);
    let cart = api.carts.add_item(add(&mug, 3)).await?.into_inner();
    assert_eq!(cart.total_cents, 2 * 1999 + 3 * 250);
    // Adding a product already in the cart adds to its quantity.
    let cart = api.carts.add_item(add(&kettle, 1)).await?.into_inner();
    assert_eq!(cart.items.len(), 2);
    assert_eq!(cart.total_cents, 3 * 1999 + 3 * 250);

    let got = api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!(got, cart);
    let line = got
        .items
        .iter()
        .find(|item| item.product_id == kettle)
        .unwrap();
    assert_eq!((line.quantity, line.unit_price_cents), (3, 1999));
    assert_eq!(line.line_total_cents, 3 * 1999);
    assert_eq!((line.sku.as_str(), line.active), ("P0", true));

    let remove = |product: &str| {
        request(
            &me,
            RemoveItemRequest {
                product_id: product.to_owned(),
            },
        )
    };
    let cart = api.carts.remove_item(remove(&mug)).await?.into_inner();
    assert_eq!(cart.items.len(), 1);
    assert_eq!(cart.total_cents, 3 * 1999);
    let status = failure(api.carts.remove_item(remove(&mug)).await)?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let cart = api
        .carts
        .clear_cart(request(&me, ClearCartRequest {}))
        .await?
        .into_inner();
    assert!(cart.items.is_empty());
    assert_eq!(cart.total_cents, 0);
    let got = api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert!(got.items.is_empty());
    assert_eq!(got.total_cents, 0);
    assert_eq!(got.version, cart.version);

    // Another user's cart was never touched.
    let other = customer(tenant);
    let theirs = api
        .carts
        .get_cart(request(&other, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!((theirs.items.len(), theirs.version), (0, 0));
    api.server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_again_is_capped_at_99() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(100, 1000)]).await?;
    let me = customer(tenant);
    let carts = &env.commerce.carts;
    let q = |n| commerce::cart::Quantity::new(n).unwrap();
    carts.add_item(me.tenant, me.user, ids[0], q(60)).await?;
    let cart = carts.add_item(me.tenant, me.user, ids[0], q(60)).await?;
    assert_eq!(cart.items[0].quantity, 99);
    assert_eq!(cart.total_cents, 99 * 100);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_inactive_products_are_refused() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(100, 5)]).await?;
    sqlx::query("UPDATE products SET active = false WHERE id = $1")
        .bind(ids[0])
        .execute(&env.pool)
        .await?;
    let me = customer(tenant);
    let add = |product: String| {
        request(
            &me,
            AddItemRequest {
                product_id: product,
                quantity: 1,
            },
        )
    };
    let status = failure(api.carts.add_item(add(ids[0].to_string())).await)?;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("not available"), "{status:?}");
    let unknown = uuid::Uuid::new_v4().to_string();
    let status = failure(api.carts.add_item(add(unknown)).await)?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "product not found");
    // Neither attempt created anything.
    let cart = api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!((cart.items.len(), cart.version), (0, 0));
    Ok(())
}

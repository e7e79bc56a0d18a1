//! Stock under contention: 100 concurrent orders for 10 units.

use commerce::cart::Quantity;
use commerce::fixtures::{self, CartFixture};
use commerce::grpc::identity::request;
use commerce::grpc::proto::CreateOrderRequest;
use commerce::ids::TenantId;
use tonic::Code;

use crate::support::{Env, customer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_orders_for_ten_units() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(1500, 10)]).await?;
    let callers: Vec<_> = (0..100).map(|_| customer(tenant)).collect();
    let carts: Vec<CartFixture> = callers
        .iter()
        .map(|caller| CartFixture {
            user: caller.user,
            items: vec![(ids[0], Quantity::new(1).unwrap())],
        })
        .collect();
    fixtures::refill_carts(&env.pool, env.cache(), tenant, &carts).await?;

    let calls = callers.iter().map(|caller| {
        let mut orders = api.orders.clone();
        let request = request(caller, CreateOrderRequest::default());
        tokio::spawn(async move { orders.create_order(request).await })
    });
    let mut created = 0;
    let mut out_of_stock = 0;
    for outcome in futures::future::join_all(calls).await {
        match outcome? {
            Ok(order) => {
                assert_eq!(order.into_inner().total_cents, 1500);
                created += 1;
            }
            Err(status) if status.code() == Code::FailedPrecondition => {
                assert!(status.message().starts_with("out of stock"), "{status:?}");
                out_of_stock += 1;
            }
            Err(status) => anyhow::bail!("unexpected failure: {status:?}"),
        }
    }
    assert_eq!((created, out_of_stock), (10, 90));
    assert_eq!(env.stock(tenant, ids[0]).await?, 0);
    assert_eq!(env.order_count(tenant).await?, 10);
    let ordered: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(quantity), 0) FROM order_items WHERE tenant_id = $1 AND product_id = $2",
    )
    .bind(tenant)
    .bind(ids[0])
    .fetch_one(&env.pool)
    .await?;
    assert_eq!(ordered, 10, "exactly the stock was sold");
    // The 90 losers still hold their carts; the 10 winners' carts are empty.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM cart_items WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&env.pool)
        .await?;
    assert_eq!(left, 90);
    Ok(())
}

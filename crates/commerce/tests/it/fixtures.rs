//! The fixture generator against a real database: bulk loading, and the resets benchmarks use.

use std::time::Instant;

use commerce::fixtures::{self, Dataset, FixtureSpec};
use commerce::ids::TenantId;

use crate::support::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_a_dataset_and_resets_it() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let tenant = TenantId::new_random();
    let spec = FixtureSpec {
        seed: 9,
        products: 200,
        stock: 50,
        users: 10,
        cart_items: 4,
        orders_per_user: 100,
    };
    let started = Instant::now();
    let data = fixtures::load(&env.pool, env.cache(), tenant, &spec).await?;
    let elapsed = started.elapsed();
    println!("loaded 200 products, 10 carts and 1000 orders in {elapsed:?}");
    assert_eq!(data, Dataset::generate(tenant, &spec)?, "deterministic");
    assert_eq!(env.order_count(tenant).await?, 1000);

    // Carts come back with their items and totals; the orders list newest first.
    let user = data.users[3];
    let cart = env.commerce.carts.get_cart(tenant, user).await?;
    assert_eq!(cart.items.len(), 4);
    let newest = env
        .commerce
        .orders
        .list_orders(
            tenant,
            Some(user),
            commerce::orders::PageSize::new(1)?,
            None,
        )
        .await?;
    let expected = data.orders.iter().rev().find(|o| o.user == user).unwrap();
    assert_eq!(newest.orders[0].id, expected.id);
    let order = env
        .commerce
        .orders
        .get_order(tenant, Some(user), expected.id)
        .await?;
    assert_eq!(order.items.len(), expected.items.len());

    // Order every cart, then put everything back the cheap way.
    for cart in &data.carts {
        env.commerce
            .orders
            .create_order(tenant, cart.user, None)
            .await?;
    }
    assert!(
        env.commerce
            .carts
            .get_cart(tenant, user)
            .await?
            .items
            .is_empty()
    );
    assert_eq!(fixtures::restock(&env.pool, tenant, 50).await?, 200);
    fixtures::refill_carts(&env.pool, env.cache(), tenant, &data.carts).await?;
    let refilled = env.commerce.carts.get_cart(tenant, user).await?;
    assert_eq!(refilled.items, cart.items);
    assert!(refilled.version > cart.version);
    for product in &data.products {
        assert_eq!(fixtures::stock_of(&env.pool, tenant, product.id).await?, 50);
    }
    fixtures::set_stock(&env.pool, tenant, data.products[0].id, 3).await?;
    assert_eq!(
        fixtures::stock_of(&env.pool, tenant, data.products[0].id).await?,
        3
    );
    Ok(())
}

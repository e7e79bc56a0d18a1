//! The services take the connection their last statement used before any other (the pool's own
//! order is oldest first, which spreads statements over every server process, each with cold
//! caches), without keeping a connection from anyone who waits for one.

use std::time::Duration;

use commerce::cart::Quantity;
use commerce::ids::{TenantId, UserId};

use crate::support::Env;

/// How many of the database's server processes last ran a statement containing `needle`.
async fn backends_that_ran(env: &Env, needle: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE $1",
    )
    .bind(format!("%{needle}%"))
    .fetch_one(&env.pool)
    .await?)
}

/// Opens every connection the pool may have and leaves them idle in it.
async fn open_every_connection(env: &Env) -> anyhow::Result<()> {
    let mut held = Vec::new();
    for _ in 0..env.pool.options().get_max_connections() {
        held.push(env.pool.acquire().await?);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_one_after_another_reuse_one_connection() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let tenant = TenantId::new_random();
    let products = env.products(tenant, &[(100, 1000)]).await?;
    // Every connection of the pool (10) open and idle.
    open_every_connection(&env).await?;
    let user = UserId::new_random();
    for _ in 0..20 {
        env.commerce
            .carts
            .add_item(tenant, user, products[0], Quantity::clamped(1))
            .await?;
    }
    // Handed out oldest first, as the pool does, the 20 statements would have run on all 10.
    assert_eq!(backends_that_ran(&env, "commerce_add_item").await?, 1);

    // The kept connection does not hold up the pool's close (which waits for every connection
    // it handed out).
    tokio::time::timeout(Duration::from_secs(5), env.pool.close())
        .await
        .map_err(|_| anyhow::anyhow!("the pool did not close within 5 s"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_goes_back_to_a_pool_user_that_waits_for_it() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let tenant = TenantId::new_random();
    let products = env.products(tenant, &[(100, 1000)]).await?;
    let max = env.pool.options().get_max_connections();
    open_every_connection(&env).await?;
    let user = UserId::new_random();
    env.commerce
        .carts
        .add_item(tenant, user, products[0], Quantity::clamped(1))
        .await?;
    // One connection is kept by the services, the others idle in the pool.
    assert_eq!(env.commerce.carts.breaker().kept(), 1);
    assert_eq!(env.pool.num_idle() as u32, max - 1);
    // Someone else takes every connection the pool has: the kept one is handed back within
    // moments.
    let all = async {
        let mut held = Vec::new();
        for _ in 0..max {
            held.push(env.pool.acquire().await?);
        }
        anyhow::Ok(held)
    };
    let held = tokio::time::timeout(Duration::from_secs(2), all)
        .await
        .map_err(|_| {
            anyhow::anyhow!("a connection kept by the services was never handed back")
        })??;
    assert_eq!(held.len() as u32, max);
    Ok(())
}

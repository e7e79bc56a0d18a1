//! Cart resets for benchmarks, beyond `commerce::fixtures`: many carts in one transaction,
//! without a Redis round trip per cart.

use anyhow::Context as _;
use commerce::cart::Quantity;
use commerce::fixtures::{self, CartFixture};
use commerce::ids::{ProductId, TenantId, UserId};
use sqlx::PgPool;

/// A cart of `user` holding one unit of each of `products`.
pub fn cart_of(user: UserId, products: &[ProductId]) -> CartFixture {
    CartFixture {
        user,
        items: products
            .iter()
            .map(|&product| (product, Quantity::clamped(1)))
            .collect(),
    }
}

/// Makes each listed cart hold exactly its items, in one transaction, without touching the cart
/// cache (`fixtures::replace_carts` without `refill_carts`'s invalidation, one Redis round trip
/// per cart).
///
/// Only for carts whose cache entry holds no cart data: carts whose last change was a cart
/// write, an order or a `refill_carts` (each leaves a tombstone after its commit), and that were
/// not read since. The version is still bumped, so a later read misses the tombstone, loads the
/// new version and caches it; nothing stale can be served. The concurrent benchmarks use it
/// between batches, where one Redis round trip per cart would dominate the counted reset.
pub async fn refill_uncached(
    pool: &PgPool,
    tenant: TenantId,
    carts: &[CartFixture],
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("starting the refill")?;
    fixtures::replace_carts(&mut tx, tenant, carts)
        .await
        .context("refilling carts")?;
    tx.commit().await.context("committing the refill")?;
    Ok(())
}

//! Cart operations. Every write runs in one transaction that first bumps the cart's version
//! (taking the cart row's lock, the first lock of every cart or order transaction, so they cannot
//! deadlock), then invalidates the cached cart after the commit. Reads go through the Redis cache.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::Error;
use crate::cache::{CacheStats, CartCache};
use crate::ids::{ProductId, TenantId, UserId};

/// A validated quantity: 1..=99.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u8);

impl Quantity {
    /// The most units of one product a cart (and so an order) may hold.
    pub const MAX: u32 = 99;

    /// Validates `quantity`; outside 1..=99 it is an invalid argument.
    pub fn new(quantity: u32) -> Result<Self, Error> {
        match u8::try_from(quantity) {
            Ok(q) if (1..=Self::MAX).contains(&quantity) => Ok(Quantity(q)),
            _ => Err(Error::InvalidArgument(format!(
                "quantity must be between 1 and {}, got {quantity}",
                Self::MAX
            ))),
        }
    }

    /// `quantity` moved into 1..=99: for generated data that must never fail.
    pub fn clamped(quantity: u32) -> Self {
        Quantity(quantity.clamp(1, Self::MAX) as u8)
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

/// One product in a cart, with its current catalog data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: u32,
    /// False when the product was deactivated after it was added; ordering then fails.
    pub active: bool,
}

impl CartLine {
    /// `unit_price_cents * quantity`, or `None` on overflow.
    pub fn line_total_cents(&self) -> Option<i64> {
        self.unit_price_cents.checked_mul(i64::from(self.quantity))
    }
}

/// A cart: its lines ordered by product id, their total, and the version it was read at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// 0 for a cart that was never written; every write increments it.
    pub version: i64,
    pub items: Vec<CartLine>,
    pub total_cents: i64,
}

impl Cart {
    fn from_lines(version: i64, items: Vec<CartLine>) -> Result<Self, Error> {
        let total_cents = items
            .iter()
            .try_fold(0_i64, |total, line| {
                total.checked_add(line.line_total_cents()?)
            })
            .ok_or_else(|| Error::Internal("cart total overflows".to_owned()))?;
        Ok(Cart {
            version,
            items,
            total_cents,
        })
    }
}

/// The cart operations over PostgreSQL, with the cart cache in front of reads.
#[derive(Clone, Debug)]
pub struct Carts {
    pool: PgPool,
    cache: CartCache,
}

impl Carts {
    pub fn new(pool: PgPool, cache: CartCache) -> Self {
        Self { pool, cache }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn cache(&self) -> &CartCache {
        &self.cache
    }

    /// The cache's hit, miss and error counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Adds `quantity` units of `product` to the cart; a product already in the cart gets the
    /// units added to its quantity, capped at [`Quantity::MAX`]. Returns the cart after the change.
    pub async fn add_item(
        &self,
        tenant: TenantId,
        user: UserId,
        product: ProductId,
        quantity: Quantity,
    ) -> Result<Cart, Error> {
        let mut tx = self.pool.begin().await?;
        let active: Option<bool> =
            sqlx::query_scalar("SELECT active FROM products WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(product)
                .fetch_optional(&mut *tx)
                .await?;
        match active {
            None => return Err(Error::NotFound("product")),
            Some(false) => return Err(Error::ProductInactive(product)),
            Some(true) => {}
        }
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO carts (tenant_id, user_id) VALUES ($1, $2)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET version = carts.version + 1
             RETURNING version",
        )
        .bind(tenant)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO cart_items (tenant_id, user_id, product_id, quantity)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, user_id, product_id)
             DO UPDATE SET quantity = LEAST(cart_items.quantity + EXCLUDED.quantity, $5)",
        )
        .bind(tenant)
        .bind(user)
        .bind(product)
        .bind(i32::from(quantity.0))
        .bind(Quantity::MAX as i32)
        .execute(&mut *tx)
        .await?;
        let cart = load(&mut *tx, tenant, user).await?;
        tx.commit().await?;
        self.cache.invalidate(tenant, user, version).await;
        Ok(cart)
    }

    /// Removes `product` from the cart; [`Error::NotFound`] if it is not in the cart.
    pub async fn remove_item(
        &self,
        tenant: TenantId,
        user: UserId,
        product: ProductId,
    ) -> Result<Cart, Error> {
        let mut tx = self.pool.begin().await?;
        let Some(version) = bump_version(&mut tx, tenant, user).await? else {
            return Err(Error::NotFound("cart item"));
        };
        let removed = sqlx::query(
            "DELETE FROM cart_items WHERE tenant_id = $1 AND user_id = $2 AND product_id = $3",
        )
        .bind(tenant)
        .bind(user)
        .bind(product)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            // Dropping the transaction rolls the version bump back.
            return Err(Error::NotFound("cart item"));
        }
        let cart = load(&mut *tx, tenant, user).await?;
        tx.commit().await?;
        self.cache.invalidate(tenant, user, version).await;
        Ok(cart)
    }

    /// Returns the cart, from the cache when it holds the current version, else from PostgreSQL
    /// (and then fills the cache).
    pub async fn get_cart(&self, tenant: TenantId, user: UserId) -> Result<Cart, Error> {
        if let Some(cart) = self.cache.get(tenant, user).await {
            return Ok(cart);
        }
        let cart = load(&self.pool, tenant, user).await?;
        self.cache.fill(tenant, user, &cart).await;
        Ok(cart)
    }

    /// Removes every item from the cart and returns the (empty) cart.
    pub async fn clear_cart(&self, tenant: TenantId, user: UserId) -> Result<Cart, Error> {
        let mut tx = self.pool.begin().await?;
        let Some(version) = bump_version(&mut tx, tenant, user).await? else {
            // The cart was never written, so it is empty and nothing is cached for a newer version.
            return Ok(Cart::default());
        };
        sqlx::query("DELETE FROM cart_items WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.cache.invalidate(tenant, user, version).await;
        Ok(Cart {
            version,
            ..Cart::default()
        })
    }
}

/// Increments the version of an existing cart, locking its row; `None` if there is no cart.
pub(crate) async fn bump_version(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<i64>, Error> {
    let version = sqlx::query_scalar(
        "UPDATE carts SET version = version + 1 WHERE tenant_id = $1 AND user_id = $2
         RETURNING version",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(tx)
    .await?;
    Ok(version)
}

#[derive(sqlx::FromRow)]
struct CartRow {
    version: i64,
    product_id: Option<ProductId>,
    sku: Option<String>,
    name: Option<String>,
    price_cents: Option<i64>,
    quantity: Option<i32>,
    active: Option<bool>,
}

/// Reads a cart and its lines in one statement, so the version and the lines come from the same
/// snapshot (the cache relies on a cart being labelled with the version it was read at).
async fn load<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    tenant: TenantId,
    user: UserId,
) -> Result<Cart, Error> {
    let rows: Vec<CartRow> = sqlx::query_as(
        "SELECT c.version, i.product_id, p.sku, p.name, p.price_cents, i.quantity, p.active
         FROM carts c
         LEFT JOIN cart_items i ON i.tenant_id = c.tenant_id AND i.user_id = c.user_id
         LEFT JOIN products p ON p.tenant_id = i.tenant_id AND p.id = i.product_id
         WHERE c.tenant_id = $1 AND c.user_id = $2
         ORDER BY i.product_id",
    )
    .bind(tenant)
    .bind(user)
    .fetch_all(executor)
    .await?;
    let Some(version) = rows.first().map(|row| row.version) else {
        return Ok(Cart::default());
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        // A cart without items yields one row whose item columns are all NULL.
        let Some(product_id) = row.product_id else {
            continue;
        };
        let (Some(sku), Some(name), Some(unit_price_cents), Some(quantity), Some(active)) =
            (row.sku, row.name, row.price_cents, row.quantity, row.active)
        else {
            return Err(Error::Internal(format!(
                "cart item {product_id} has no product row"
            )));
        };
        let quantity = u32::try_from(quantity).map_err(|_| {
            Error::Internal(format!("cart item {product_id} has quantity {quantity}"))
        })?;
        items.push(CartLine {
            product_id,
            sku,
            name,
            unit_price_cents,
            quantity,
            active,
        });
    }
    Cart::from_lines(version, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_is_one_to_ninety_nine() {
        for ok in [1, 2, 98, 99] {
            assert_eq!(Quantity::new(ok).unwrap().get(), ok);
        }
        for bad in [0, 100, 255, 256, u32::MAX] {
            let err = Quantity::new(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}");
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
    }

    #[test]
    fn totals_are_exact_and_overflow_is_an_error() {
        let line = |price, quantity| CartLine {
            product_id: ProductId::new_random(),
            sku: "SKU".to_owned(),
            name: "Thing".to_owned(),
            unit_price_cents: price,
            quantity,
            active: true,
        };
        let cart = Cart::from_lines(3, vec![line(199, 3), line(1, 99)]).unwrap();
        assert_eq!(cart.total_cents, 199 * 3 + 99);
        assert!(Cart::from_lines(1, vec![line(i64::MAX, 2)]).is_err());
        assert!(Cart::from_lines(1, vec![line(i64::MAX, 1), line(1, 1)]).is_err());
    }
}

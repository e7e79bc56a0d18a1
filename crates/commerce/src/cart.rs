//! Cart operations. Every write is one call of a server-side function (migration `0005`), one
//! round trip, whose transaction first bumps the cart's version (taking the cart row's lock, the
//! first lock of every cart or order write, so they cannot deadlock); the cached cart is
//! invalidated after the commit. Reads go through the Redis cache.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::Error;
use crate::cache::{CacheStats, CartCache};
use crate::db::{Breaker, Operation, Replay, retry_stale};
use crate::ids::{ProductId, TenantId, UserId};
use crate::metrics::Metrics;

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
            .ok_or(Error::TotalOverflow)?;
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
    breaker: Breaker,
    metrics: Option<Metrics>,
}

impl Carts {
    /// The service over `pool`, with a circuit breaker of its own.
    pub fn new(pool: PgPool, cache: CartCache) -> Self {
        let breaker = Breaker::new(&pool);
        Self::with_breaker(pool, cache, breaker)
    }

    /// The service over `pool`, sharing `breaker` (see [`crate::db`]) with the other services of
    /// the pool.
    pub fn with_breaker(pool: PgPool, cache: CartCache, breaker: Breaker) -> Self {
        Self {
            pool,
            cache,
            breaker,
            metrics: None,
        }
    }

    /// The service recording its statements and operations in `metrics` (none: nothing is
    /// recorded or timed).
    pub fn with_metrics(self, metrics: Option<Metrics>) -> Self {
        Self { metrics, ..self }
    }

    /// The circuit breaker in front of the database.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
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
        self.breaker
            .guard(async {
                let rows: Vec<WrittenRow> = retry_stale(
                    &self.pool,
                    self.metrics.as_ref(),
                    Operation::AddItem,
                    Replay::Write,
                    |mut connection| async move {
                        let result =
                            sqlx::query_as("SELECT * FROM commerce_add_item($1, $2, $3, $4, $5)")
                                .bind(tenant)
                                .bind(user)
                                .bind(product)
                                .bind(i32::from(quantity.0))
                                .bind(Quantity::MAX as i32)
                                .fetch_all(&mut *connection)
                                .await;
                        (connection, result)
                    },
                )
                .await
                .map_err(priced)?;
                let cart = written(rows, |outcome| match outcome {
                    "product_not_found" => Some(Error::NotFound("product")),
                    "product_inactive" => Some(Error::ProductInactive(product)),
                    _ => None,
                })?;
                self.cache.invalidate(tenant, user, cart.version).await;
                if let Some(metrics) = &self.metrics {
                    metrics.cart_item_added();
                }
                Ok(cart)
            })
            .await
    }

    /// Removes `product` from the cart; [`Error::NotFound`] if it is not in the cart.
    pub async fn remove_item(
        &self,
        tenant: TenantId,
        user: UserId,
        product: ProductId,
    ) -> Result<Cart, Error> {
        self.breaker
            .guard(async {
                let rows: Vec<WrittenRow> = retry_stale(
                    &self.pool,
                    self.metrics.as_ref(),
                    Operation::RemoveItem,
                    Replay::Write,
                    |mut connection| async move {
                        let result =
                            sqlx::query_as("SELECT * FROM commerce_remove_item($1, $2, $3)")
                                .bind(tenant)
                                .bind(user)
                                .bind(product)
                                .fetch_all(&mut *connection)
                                .await;
                        (connection, result)
                    },
                )
                .await
                .map_err(priced)?;
                let cart = written(rows, |outcome| {
                    (outcome == "not_found").then_some(Error::NotFound("cart item"))
                })?;
                self.cache.invalidate(tenant, user, cart.version).await;
                if let Some(metrics) = &self.metrics {
                    metrics.cart_item_removed();
                }
                Ok(cart)
            })
            .await
    }

    /// Returns the cart, from the cache when it holds the current version, else from PostgreSQL
    /// (and then fills the cache).
    pub async fn get_cart(&self, tenant: TenantId, user: UserId) -> Result<Cart, Error> {
        // A cached cart needs no database, so the breaker is only in front of the load.
        if let Some(cart) = self.cache.get(tenant, user).await {
            return Ok(cart);
        }
        // One load per cart for all the reads that miss it at once (a cold cache under load);
        // `load_once` fills the cache. Boxed: the flight, the load and the fill make a large
        // future, and inline it would make every read's future that large, hits included, to
        // allocate and move (`cargo xtask perf-gate --suite cart`: `concurrent_get` +33% to
        // +53%, 4.4 times the bytes).
        Box::pin(
            self.cache.load_once(
                tenant,
                user,
                self.breaker
                    .guard(load(&self.pool, self.metrics.as_ref(), tenant, user)),
            ),
        )
        .await
    }

    /// Removes every item from the cart and returns the (empty) cart.
    pub async fn clear_cart(&self, tenant: TenantId, user: UserId) -> Result<Cart, Error> {
        self.breaker
            .guard(async {
                let version: Option<i64> = retry_stale(
                    &self.pool,
                    self.metrics.as_ref(),
                    Operation::ClearCart,
                    Replay::Write,
                    |mut connection| async move {
                        let result = sqlx::query_scalar("SELECT commerce_clear_cart($1, $2)")
                            .bind(tenant)
                            .bind(user)
                            .fetch_one(&mut *connection)
                            .await;
                        (connection, result)
                    },
                )
                .await?;
                // No version: the cart was never written, so it is empty and nothing is cached
                // for a newer version.
                if let Some(version) = version {
                    self.cache.invalidate(tenant, user, version).await;
                }
                Ok(Cart {
                    version: version.unwrap_or(0),
                    ..Cart::default()
                })
            })
            .await
    }
}

/// A statement that reports a total that does not fit in a bigint (SQLSTATE 22003, raised by the
/// write functions while they price the cart, which rolls the write back) failed because of the
/// caller's cart: [`Error::TotalOverflow`].
pub(crate) fn priced(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("22003") => Error::TotalOverflow,
        _ => Error::from(error),
    }
}

/// A row of `commerce_add_item` or `commerce_remove_item`: the outcome, then the cart's rows as
/// `commerce_cart_rows` returns them.
#[derive(sqlx::FromRow)]
struct WrittenRow {
    outcome: String,
    total_cents: Option<i64>,
    #[sqlx(flatten)]
    row: CartRow,
}

/// The cart a write function returned, or the error its outcome names (`refused` maps every
/// outcome but `ok`).
fn written(rows: Vec<WrittenRow>, refused: impl Fn(&str) -> Option<Error>) -> Result<Cart, Error> {
    let Some(first) = rows.first() else {
        return Err(Error::Internal("a cart write returned no rows".to_owned()));
    };
    if first.outcome != "ok" {
        return Err(refused(&first.outcome).unwrap_or_else(|| {
            Error::Internal(format!("unknown cart write outcome {:?}", first.outcome))
        }));
    }
    let total_cents = first.total_cents;
    let cart = cart_from_rows(rows.into_iter().map(|written| written.row).collect())?;
    // Both sums are exact; they can only differ if the rows are not what the function says.
    if let Some(total) = total_cents
        && total != cart.total_cents
    {
        return Err(Error::Internal(format!(
            "cart total {total} from the database, {} from its lines",
            cart.total_cents
        )));
    }
    Ok(cart)
}

#[derive(sqlx::FromRow)]
struct CartRow {
    /// NULL only in the rows of a write function's refusal.
    version: Option<i64>,
    product_id: Option<ProductId>,
    sku: Option<String>,
    name: Option<String>,
    price_cents: Option<i64>,
    quantity: Option<i32>,
    active: Option<bool>,
}

/// Reads a cart and its lines in one statement, so the version and the lines come from the same
/// snapshot (the cache relies on a cart being labelled with the version it was read at).
async fn load(
    pool: &PgPool,
    metrics: Option<&Metrics>,
    tenant: TenantId,
    user: UserId,
) -> Result<Cart, Error> {
    let rows: Vec<CartRow> = retry_stale(
        pool,
        metrics,
        Operation::LoadCart,
        Replay::Read,
        |mut connection| async move {
            let result = sqlx::query_as(
                "SELECT c.version, i.product_id, p.sku, p.name, p.price_cents, i.quantity, p.active
                     FROM carts c
                     LEFT JOIN cart_items i ON i.tenant_id = c.tenant_id AND i.user_id = c.user_id
                     LEFT JOIN products p ON p.tenant_id = i.tenant_id AND p.id = i.product_id
                     WHERE c.tenant_id = $1 AND c.user_id = $2
                     ORDER BY i.product_id",
            )
            .bind(tenant)
            .bind(user)
            .fetch_all(&mut *connection)
            .await;
            (connection, result)
        },
    )
    .await?;
    cart_from_rows(rows)
}

/// The cart in `rows`: no rows for a user who never had a cart, one row with NULL item columns
/// for an empty cart, else a row per line.
fn cart_from_rows(rows: Vec<CartRow>) -> Result<Cart, Error> {
    let Some(version) = rows.first().and_then(|row| row.version) else {
        return Ok(Cart::default());
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
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

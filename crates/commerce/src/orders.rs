//! Orders: creating one from the cart in one transaction, reading one, and listing them newest
//! first with keyset pagination.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Error;
use crate::cache::CartCache;
use crate::cart::bump_version;
use crate::ids::{OrderId, ProductId, TenantId, UserId, truncate};

/// Where an order is in its life. Only placing exists so far; the rest arrives with the
/// operations that change it (the database check constraint lists the same set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Stock is reserved and prices are fixed.
    Placed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
        }
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = Error;

    fn try_from(text: String) -> Result<Self, Error> {
        match text.as_str() {
            "placed" => Ok(OrderStatus::Placed),
            other => Err(Error::Internal(format!("unknown order status {other:?}"))),
        }
    }
}

/// One product of an order, with its catalog data when the order was placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: u32,
}

impl OrderLine {
    pub fn line_total_cents(&self) -> i64 {
        // Cannot overflow: the order's total, a sum of these, was computed with checked
        // arithmetic when the order was placed.
        self.unit_price_cents
            .saturating_mul(i64::from(self.quantity))
    }
}

/// An order with its items (ordered by product id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub tenant: TenantId,
    pub user: UserId,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
    pub items: Vec<OrderLine>,
}

/// An order without its items, as listings return it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderSummary {
    pub id: OrderId,
    #[sqlx(rename = "user_id")]
    pub user: UserId,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
}

/// A validated page size: 1..=100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize(u8);

impl PageSize {
    pub const MAX: u32 = 100;

    pub fn new(size: u32) -> Result<Self, Error> {
        match u8::try_from(size) {
            Ok(small) if (1..=Self::MAX).contains(&size) => Ok(PageSize(small)),
            _ => Err(Error::InvalidArgument(format!(
                "page size must be between 1 and {}, got {size}",
                Self::MAX
            ))),
        }
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

/// Where the next page starts: the (created_at, id) of the last order of the previous page.
///
/// On the wire it is 48 hex digits (the creation time in microseconds, then the id). Clients must
/// treat it as opaque; it carries nothing they are not allowed to see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageToken {
    created_at: DateTime<Utc>,
    id: OrderId,
}

impl PageToken {
    const LEN: usize = 16 + 32;

    fn after(order: &OrderSummary) -> Self {
        PageToken {
            created_at: order.created_at,
            id: order.id,
        }
    }

    pub fn encode(&self) -> String {
        // The cast keeps all 64 bits, so times before 1970 survive the round trip.
        let micros = self.created_at.timestamp_micros() as u64;
        format!("{micros:016x}{}", self.id.0.simple())
    }

    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid =
            || Error::InvalidArgument(format!("malformed page token {:?}", truncate(text)));
        if text.len() != Self::LEN || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let micros = u64::from_str_radix(&text[..16], 16).map_err(|_| invalid())? as i64;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        let id = Uuid::try_parse(&text[16..]).map_err(|_| invalid())?;
        Ok(PageToken {
            created_at,
            id: OrderId(id),
        })
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<PageToken>,
}

/// A validated idempotency key: 1..=128 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 128;

    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        let chars = key.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(Error::InvalidArgument(format!(
                "idempotency key must have 1 to {} characters, got {chars}",
                Self::MAX_CHARS
            )));
        }
        if key.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(
                "idempotency key must not contain control characters".to_owned(),
            ));
        }
        Ok(IdempotencyKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The order operations over PostgreSQL. Creating an order empties the cart, so it invalidates
/// the cached cart too.
#[derive(Clone, Debug)]
pub struct Orders {
    pool: PgPool,
    cache: CartCache,
}

#[derive(sqlx::FromRow)]
struct LockedLine {
    product_id: ProductId,
    quantity: i32,
    sku: String,
    name: String,
    price_cents: i64,
    stock: i32,
    active: bool,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    product_id: ProductId,
    sku: String,
    name: String,
    unit_price_cents: i64,
    quantity: i32,
}

impl Orders {
    pub fn new(pool: PgPool, cache: CartCache) -> Self {
        Self { pool, cache }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Turns the user's cart into an order, in one transaction that takes its locks in a fixed
    /// order (the cart row, then the cart's products by id) so concurrent orders cannot deadlock.
    /// It checks and decrements stock, snapshots prices and empties the cart; on any error
    /// nothing changes. With an idempotency key, a retry returns the order the first attempt
    /// created without touching stock again.
    pub async fn create_order(
        &self,
        tenant: TenantId,
        user: UserId,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Order, Error> {
        let mut tx = self.pool.begin().await?;
        // Serializes this user's concurrent orders (and cart writes): a retry that raced its
        // original waits here and then finds the original's order by its key.
        let cart: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM carts WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE",
        )
        .bind(tenant)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(key) = idempotency_key
            && let Some(id) = order_for_key(&mut *tx, tenant, key).await?
        {
            drop(tx);
            return self.replay(tenant, user, id).await;
        }
        if cart.is_none() {
            return Err(Error::EmptyCart);
        }

        // `FOR NO KEY UPDATE` is the lock the stock UPDATE takes anyway; unlike `FOR UPDATE` it
        // does not block the key-share locks of concurrent cart inserts referencing the product.
        // ORDER BY runs before the locking, so the rows are locked in id order.
        let lines: Vec<LockedLine> = sqlx::query_as(
            "SELECT i.product_id, i.quantity, p.sku, p.name, p.price_cents, p.stock, p.active
             FROM cart_items i
             JOIN products p ON p.tenant_id = i.tenant_id AND p.id = i.product_id
             WHERE i.tenant_id = $1 AND i.user_id = $2
             ORDER BY p.id
             FOR NO KEY UPDATE OF p",
        )
        .bind(tenant)
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        if lines.is_empty() {
            return Err(Error::EmptyCart);
        }
        if let Some(line) = lines.iter().find(|line| !line.active) {
            return Err(Error::ProductInactive(line.product_id));
        }
        let short: Vec<ProductId> = lines
            .iter()
            .filter(|line| line.stock < line.quantity)
            .map(|line| line.product_id)
            .collect();
        if !short.is_empty() {
            return Err(Error::OutOfStock(short));
        }
        let mut total_cents = 0_i64;
        let mut items = Vec::with_capacity(lines.len());
        for line in lines {
            let quantity = u32::try_from(line.quantity).map_err(|_| {
                Error::Internal(format!("cart quantity {} is negative", line.quantity))
            })?;
            total_cents = line
                .price_cents
                .checked_mul(i64::from(quantity))
                .and_then(|line_total| total_cents.checked_add(line_total))
                .ok_or_else(|| Error::Internal("order total overflows".to_owned()))?;
            items.push(OrderLine {
                product_id: line.product_id,
                sku: line.sku,
                name: line.name,
                unit_price_cents: line.price_cents,
                quantity,
            });
        }
        let product_ids: Vec<Uuid> = items.iter().map(|item| item.product_id.0).collect();
        let quantities: Vec<i32> = items.iter().map(|item| item.quantity as i32).collect();

        sqlx::query(
            "UPDATE products p SET stock = p.stock - x.quantity
             FROM UNNEST($2::uuid[], $3::int4[]) AS x(id, quantity)
             WHERE p.tenant_id = $1 AND p.id = x.id",
        )
        .bind(tenant)
        .bind(&product_ids)
        .bind(&quantities)
        .execute(&mut *tx)
        .await?;

        let id = OrderId::new_random();
        let created_at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "INSERT INTO orders (tenant_id, id, user_id, status, total_cents, idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
             RETURNING created_at",
        )
        .bind(tenant)
        .bind(id)
        .bind(user)
        .bind(OrderStatus::Placed.as_str())
        .bind(total_cents)
        .bind(idempotency_key.map(IdempotencyKey::as_str))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(created_at) = created_at else {
            // Another user of the tenant committed an order with this key after our check (the
            // same user cannot: the cart lock orders them). Roll back, stock included.
            drop(tx);
            let key = idempotency_key
                .ok_or_else(|| Error::Internal("order insert conflicted without a key".into()))?;
            let winner = order_for_key(&self.pool, tenant, key)
                .await?
                .ok_or_else(|| Error::Internal("conflicting idempotency key vanished".into()))?;
            return self.replay(tenant, user, winner).await;
        };

        let skus: Vec<&str> = items.iter().map(|item| item.sku.as_str()).collect();
        let names: Vec<&str> = items.iter().map(|item| item.name.as_str()).collect();
        let prices: Vec<i64> = items.iter().map(|item| item.unit_price_cents).collect();
        sqlx::query(
            "INSERT INTO order_items
                 (tenant_id, order_id, product_id, sku, name, unit_price_cents, quantity)
             SELECT $1, $2, x.* FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::int8[], $7::int4[])
                 AS x(product_id, sku, name, unit_price_cents, quantity)",
        )
        .bind(tenant)
        .bind(id)
        .bind(&product_ids)
        .bind(&skus)
        .bind(&names)
        .bind(&prices)
        .bind(&quantities)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM cart_items WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        let version = bump_version(&mut tx, tenant, user)
            .await?
            .ok_or_else(|| Error::Internal("the locked cart row vanished".to_owned()))?;
        tx.commit().await?;
        self.cache.invalidate(tenant, user, version).await;

        Ok(Order {
            id,
            tenant,
            user,
            status: OrderStatus::Placed,
            total_cents,
            created_at,
            items,
        })
    }

    /// The order an idempotency key already names, if it is this user's.
    async fn replay(&self, tenant: TenantId, user: UserId, id: OrderId) -> Result<Order, Error> {
        let order = self.get_order(tenant, None, id).await?;
        if order.user != user {
            return Err(Error::IdempotencyKeyReused);
        }
        Ok(order)
    }

    /// One order of `tenant`; with `owner`, only if it is that user's. [`Error::NotFound`]
    /// otherwise, so a caller cannot tell another user's order from a missing one.
    pub async fn get_order(
        &self,
        tenant: TenantId,
        owner: Option<UserId>,
        id: OrderId,
    ) -> Result<Order, Error> {
        let summary: Option<OrderSummary> = sqlx::query_as(
            "SELECT id, user_id, status, total_cents, created_at FROM orders
             WHERE tenant_id = $1 AND id = $2 AND ($3::uuid IS NULL OR user_id = $3)",
        )
        .bind(tenant)
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        let summary = summary.ok_or(Error::NotFound("order"))?;
        let rows: Vec<ItemRow> = sqlx::query_as(
            "SELECT product_id, sku, name, unit_price_cents, quantity FROM order_items
             WHERE tenant_id = $1 AND order_id = $2
             ORDER BY product_id",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .into_iter()
            .map(|row| {
                Ok(OrderLine {
                    quantity: u32::try_from(row.quantity).map_err(|_| {
                        Error::Internal(format!("order item quantity {}", row.quantity))
                    })?,
                    product_id: row.product_id,
                    sku: row.sku,
                    name: row.name,
                    unit_price_cents: row.unit_price_cents,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Order {
            id: summary.id,
            tenant,
            user: summary.user,
            status: summary.status,
            total_cents: summary.total_cents,
            created_at: summary.created_at,
            items,
        })
    }

    /// The orders of `tenant` (with `owner`, only that user's), newest first, `size` at a time,
    /// starting after `after`. Ties on the creation time are broken by id, so pages never skip or
    /// repeat an order.
    pub async fn list_orders(
        &self,
        tenant: TenantId,
        owner: Option<UserId>,
        size: PageSize,
        after: Option<&PageToken>,
    ) -> Result<OrderPage, Error> {
        // Four static statements rather than optional predicates, so each one plans onto its
        // index (by user, or by tenant) with the row comparison as an index condition.
        let sql = match (owner.is_some(), after.is_some()) {
            (true, false) => {
                "SELECT id, user_id, status, total_cents, created_at FROM orders
                 WHERE tenant_id = $1 AND user_id = $2
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            }
            (true, true) => {
                "SELECT id, user_id, status, total_cents, created_at FROM orders
                 WHERE tenant_id = $1 AND user_id = $2 AND (created_at, id) < ($3, $4)
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            }
            (false, false) => {
                "SELECT id, user_id, status, total_cents, created_at FROM orders
                 WHERE tenant_id = $1
                 ORDER BY created_at DESC, id DESC LIMIT $2"
            }
            (false, true) => {
                "SELECT id, user_id, status, total_cents, created_at FROM orders
                 WHERE tenant_id = $1 AND (created_at, id) < ($2, $3)
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            }
        };
        let mut query = sqlx::query_as::<_, OrderSummary>(sql).bind(tenant);
        if let Some(owner) = owner {
            query = query.bind(owner);
        }
        if let Some(after) = after {
            query = query.bind(after.created_at).bind(after.id);
        }
        // One more than a page tells whether another page follows.
        let mut orders = query
            .bind(i64::from(size.get()) + 1)
            .fetch_all(&self.pool)
            .await?;
        let next = if orders.len() > size.get() as usize {
            orders.truncate(size.get() as usize);
            orders.last().map(PageToken::after)
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }
}

async fn order_for_key<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    tenant: TenantId,
    key: &IdempotencyKey,
) -> Result<Option<OrderId>, Error> {
    let id =
        sqlx::query_scalar("SELECT id FROM orders WHERE tenant_id = $1 AND idempotency_key = $2")
            .bind(tenant)
            .bind(key.as_str())
            .fetch_optional(executor)
            .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_one_to_a_hundred() {
        assert_eq!(PageSize::new(1).unwrap().get(), 1);
        assert_eq!(PageSize::new(100).unwrap().get(), 100);
        for bad in [0, 101, 256, u32::MAX] {
            assert!(
                matches!(PageSize::new(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        for micros in [0, 1_700_000_000_123_456, -86_400_000_000] {
            let token = PageToken {
                created_at: DateTime::from_timestamp_micros(micros).unwrap(),
                id: OrderId::new_random(),
            };
            let text = token.encode();
            assert_eq!(text.len(), PageToken::LEN);
            assert_eq!(PageToken::parse(&text).unwrap(), token);
        }
        let good = PageToken {
            created_at: DateTime::from_timestamp_micros(5).unwrap(),
            id: OrderId::new_random(),
        }
        .encode();
        let plus = format!("+{}", &good[1..]);
        let unicode = format!("é{}", &good[2..]);
        for bad in [
            "",
            "abc",
            &good[1..],
            &plus,
            &unicode,
            &good.replace('0', "g"),
        ] {
            assert!(
                matches!(PageToken::parse(bad), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert_eq!(IdempotencyKey::new("retry-1").unwrap().as_str(), "retry-1");
        assert!(IdempotencyKey::new("é".repeat(128)).is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("x".repeat(129)).is_err());
        assert!(IdempotencyKey::new("a\nb").is_err());
    }
}

//! Orders: creating one from the cart in one statement (a server-side function, one
//! transaction), reading one in one statement, and listing them newest first with keyset
//! pagination.

use chrono::{DateTime, Datelike as _, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Error;
use crate::cache::CartCache;
use crate::cart::priced;
use crate::db::{Breaker, Operation, Replay, retry_stale};
use crate::ids::{OrderId, ProductId, TenantId, UserId, truncate};
use crate::metrics::Metrics;

/// Where an order is in its life. Only placing exists so far; the rest arrives with the
/// operations that change it (the database check constraint lists the same set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Stock is reserved and prices are fixed.
    Placed,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 1] = [OrderStatus::Placed];

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
    /// The years a token's time may fall in: any order this service can have created.
    const OLDEST: i32 = 1;
    const NEWEST: i32 = 9999;

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
        // Tokens come from real creation times. A well-formed one far outside PostgreSQL's
        // `timestamptz` range (4713 BC to 294276 AD) would reach the database and fail there as
        // an internal error; the caller's mistake is an invalid argument.
        if !(Self::OLDEST..=Self::NEWEST).contains(&created_at.year()) {
            return Err(invalid());
        }
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
    breaker: Breaker,
    metrics: Option<Metrics>,
}

impl Orders {
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

    /// The service recording its statements and orders in `metrics` (none: nothing is recorded
    /// or timed).
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

    /// Turns the user's cart into an order, in one statement (the server-side function
    /// `commerce_create_order` of migration `0005`) whose transaction takes its locks in a fixed
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
        let created = self
            .breaker
            .guard(async {
                let id = OrderId::new_random();
                let key = idempotency_key.map(IdempotencyKey::as_str);
                let rows: Vec<CreatedRow> = retry_stale(
                    &self.pool,
                    self.metrics.as_ref(),
                    Operation::CreateOrder,
                    Replay::Write,
                    |mut connection| async move {
                        let result =
                            sqlx::query_as("SELECT * FROM commerce_create_order($1, $2, $3, $4)")
                                .bind(tenant)
                                .bind(user)
                                .bind(id)
                                .bind(key)
                                .fetch_all(&mut *connection)
                                .await;
                        (connection, result)
                    },
                )
                .await
                .map_err(priced)?;
                let Some(first) = rows.first() else {
                    return Err(Error::Internal(
                        "creating an order returned no rows".to_owned(),
                    ));
                };
                let replayed = match first.outcome.as_str() {
                    "ok" => false,
                    "replayed" => true,
                    "empty_cart" => return Err(Error::EmptyCart),
                    "product_inactive" => {
                        let problems = first.problem_ids.as_deref().unwrap_or_default();
                        let product = problems.first().copied().ok_or_else(|| {
                            Error::Internal("an inactive product without its id".to_owned())
                        })?;
                        return Err(Error::ProductInactive(ProductId(product)));
                    }
                    "out_of_stock" => {
                        let problems = first.problem_ids.as_deref().unwrap_or_default();
                        let products = problems.iter().copied().map(ProductId).collect();
                        return Err(Error::OutOfStock(products));
                    }
                    other => {
                        return Err(Error::Internal(format!("unknown order outcome {other:?}")));
                    }
                };
                let cart_version = first.cart_version;
                let order = order_from_rows(tenant, user, rows.into_iter().map(|row| row.row))?;
                // A replay changed nothing; a new order emptied the cart.
                if let Some(version) = cart_version {
                    self.cache.invalidate(tenant, user, version).await;
                }
                Ok((order, replayed))
            })
            .await;
        if let Some(metrics) = &self.metrics {
            match &created {
                Ok((order, false)) => metrics.order_created(order),
                Ok((_, true)) => {}
                Err(error) => metrics.order_failed(error),
            }
        }
        created.map(|(order, _)| order)
    }

    /// One order of `tenant`, in one statement; with `owner`, only if it is that user's.
    /// [`Error::NotFound`] otherwise, so a caller cannot tell another user's order from a missing
    /// one.
    pub async fn get_order(
        &self,
        tenant: TenantId,
        owner: Option<UserId>,
        id: OrderId,
    ) -> Result<Order, Error> {
        self.breaker
            .guard(async {
                let rows: Vec<OrderRow> = retry_stale(
                    &self.pool,
                    self.metrics.as_ref(),
                    Operation::GetOrder,
                    Replay::Read,
                    |mut connection| async move {
                        let result = sqlx::query_as(
                            "SELECT o.id AS order_id, o.user_id, o.status, o.created_at, o.total_cents,
                                    i.product_id, i.sku, i.name, i.unit_price_cents, i.quantity
                             FROM orders o
                             LEFT JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
                             WHERE o.tenant_id = $1 AND o.id = $2
                               AND ($3::uuid IS NULL OR o.user_id = $3)
                             ORDER BY i.product_id",
                        )
                        .bind(tenant)
                        .bind(id)
                        .bind(owner)
                        .fetch_all(&mut *connection)
                        .await;
                        (connection, result)
                    },
                )
                .await?;
                let Some(first) = rows.first() else {
                    return Err(Error::NotFound("order"));
                };
                let user = first
                    .user_id
                    .ok_or_else(|| Error::Internal("an order without its user".to_owned()))?;
                order_from_rows(tenant, user, rows)
            })
            .await
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
        self.breaker
            .guard(async {
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
                let mut orders = retry_stale(
                    &self.pool,
                    self.metrics.as_ref(),
                    Operation::ListOrders,
                    Replay::Read,
                    |mut connection| async move {
                        let mut query = sqlx::query_as::<_, OrderSummary>(sql).bind(tenant);
                        if let Some(owner) = owner {
                            query = query.bind(owner);
                        }
                        if let Some(after) = after {
                            query = query.bind(after.created_at).bind(after.id);
                        }
                        // One more than a page tells whether another page follows.
                        let result = query
                            .bind(i64::from(size.get()) + 1)
                            .fetch_all(&mut *connection)
                            .await;
                        (connection, result)
                    },
                )
                .await?;
                let next = if orders.len() > size.get() as usize {
                    orders.truncate(size.get() as usize);
                    orders.last().map(PageToken::after)
                } else {
                    None
                };
                Ok(OrderPage { orders, next })
            })
            .await
    }
}

/// A row of an order with one of its items: what `get_order` selects and what
/// `commerce_create_order` returns after its outcome. The item columns are NULL only for an
/// order without items, which placing never creates.
#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: Option<OrderId>,
    #[sqlx(default)]
    user_id: Option<UserId>,
    status: Option<String>,
    created_at: Option<DateTime<Utc>>,
    total_cents: Option<i64>,
    product_id: Option<ProductId>,
    sku: Option<String>,
    name: Option<String>,
    unit_price_cents: Option<i64>,
    quantity: Option<i32>,
}

/// A row of `commerce_create_order`.
#[derive(sqlx::FromRow)]
struct CreatedRow {
    outcome: String,
    cart_version: Option<i64>,
    problem_ids: Option<Vec<Uuid>>,
    #[sqlx(flatten)]
    row: OrderRow,
}

/// The order in `rows` (one per item, in product id order).
fn order_from_rows(
    tenant: TenantId,
    user: UserId,
    rows: impl IntoIterator<Item = OrderRow>,
) -> Result<Order, Error> {
    let mut rows = rows.into_iter().peekable();
    let missing = |what: &str| Error::Internal(format!("an order row without its {what}"));
    let first = rows.peek().ok_or_else(|| missing("order"))?;
    let id = first.order_id.ok_or_else(|| missing("id"))?;
    let status = OrderStatus::try_from(first.status.clone().ok_or_else(|| missing("status"))?)?;
    let created_at = first.created_at.ok_or_else(|| missing("creation time"))?;
    let total_cents = first.total_cents.ok_or_else(|| missing("total"))?;
    let mut items = Vec::new();
    for row in rows {
        let Some(product_id) = row.product_id else {
            continue;
        };
        let (Some(sku), Some(name), Some(unit_price_cents), Some(quantity)) =
            (row.sku, row.name, row.unit_price_cents, row.quantity)
        else {
            return Err(missing("item columns"));
        };
        let quantity = u32::try_from(quantity)
            .map_err(|_| Error::Internal(format!("order item quantity {quantity}")))?;
        items.push(OrderLine {
            product_id,
            sku,
            name,
            unit_price_cents,
            quantity,
        });
    }
    Ok(Order {
        id,
        tenant,
        user,
        status,
        total_cents,
        created_at,
        items,
    })
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

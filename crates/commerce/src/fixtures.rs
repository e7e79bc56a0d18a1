//! Deterministic data for tests and benchmarks: a catalog of N products, U users with carts of K
//! items, and M historical orders per user, inserted in bulk (one `UNNEST` statement per table),
//! plus the cheap resets a benchmark needs between iterations (restock, refill carts).
//!
//! The same tenant and [`FixtureSpec`] always produce the same ids, names, prices, carts and
//! orders. The tenant id is mixed into every random stream so two tenants never share ids.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Error;
use crate::cache::CartCache;
use crate::cart::Quantity;
use crate::ids::{OrderId, ProductId, TenantId, UserId};

/// How much data to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixtureSpec {
    pub seed: u64,
    /// N: products in the catalog.
    pub products: usize,
    /// Stock of every product.
    pub stock: i32,
    /// U: users, each with a cart.
    pub users: usize,
    /// K: distinct products in each cart (at most N).
    pub cart_items: usize,
    /// M: historical orders per user.
    pub orders_per_user: usize,
}

impl Default for FixtureSpec {
    fn default() -> Self {
        Self {
            seed: 42,
            products: 100,
            stock: 1_000,
            users: 10,
            cart_items: 3,
            orders_per_user: 5,
        }
    }
}

/// A catalog product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProduct {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub stock: i32,
    pub active: bool,
}

/// The items of one user's cart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartFixture {
    pub user: UserId,
    pub items: Vec<(ProductId, Quantity)>,
}

/// A historical order; its items snapshot the catalog prices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub id: OrderId,
    pub user: UserId,
    pub created_at: DateTime<Utc>,
    /// Indexes into the catalog, with quantities.
    pub items: Vec<(usize, Quantity)>,
}

/// Everything a [`FixtureSpec`] generates for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub tenant: TenantId,
    pub products: Vec<NewProduct>,
    pub users: Vec<UserId>,
    pub carts: Vec<CartFixture>,
    /// Oldest first.
    pub orders: Vec<NewOrder>,
}

impl Dataset {
    /// Generates the data for `tenant`, without touching a database.
    pub fn generate(tenant: TenantId, spec: &FixtureSpec) -> Result<Self, Error> {
        if spec.cart_items > spec.products {
            return Err(Error::InvalidArgument(format!(
                "carts of {} distinct items need at least that many products, not {}",
                spec.cart_items, spec.products
            )));
        }
        if spec.orders_per_user > 0 && spec.products == 0 {
            return Err(Error::InvalidArgument("orders need products".to_owned()));
        }
        if spec.stock < 0 {
            return Err(Error::InvalidArgument(
                "stock must not be negative".to_owned(),
            ));
        }
        let products = catalog(tenant, spec.seed, spec.products, spec.stock);
        let mut rng = Rng::new(tenant, spec.seed, 2);
        let users: Vec<UserId> = (0..spec.users).map(|_| UserId(rng.uuid())).collect();

        let mut rng = Rng::new(tenant, spec.seed, 3);
        let carts = users
            .iter()
            .map(|&user| CartFixture {
                user,
                items: rng
                    .distinct(spec.products, spec.cart_items)
                    .into_iter()
                    .map(|index| (products[index].id, rng.quantity()))
                    .collect(),
            })
            .collect();

        // Historical orders are one second apart, interleaved across users, and all before the
        // present, so orders created by a test are always the newest.
        let mut rng = Rng::new(tenant, spec.seed, 4);
        let base = DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default(); // 2024-01-01
        let mut orders = Vec::with_capacity(spec.users * spec.orders_per_user);
        for _ in 0..spec.orders_per_user {
            for &user in &users {
                let count = 1 + rng.below(spec.products.min(3));
                let seconds = i64::try_from(orders.len()).unwrap_or(i64::MAX);
                orders.push(NewOrder {
                    id: OrderId(rng.uuid()),
                    user,
                    created_at: base + Duration::seconds(seconds),
                    items: rng
                        .distinct(spec.products, count)
                        .into_iter()
                        .map(|index| (index, rng.quantity()))
                        .collect(),
                });
            }
        }
        Ok(Dataset {
            tenant,
            products,
            users,
            carts,
            orders,
        })
    }
}

/// The catalog part of a dataset: `n` products, all active, each with `stock` units.
pub fn catalog(tenant: TenantId, seed: u64, n: usize, stock: i32) -> Vec<NewProduct> {
    const ADJECTIVES: [&str; 8] = [
        "Sturdy", "Compact", "Bright", "Quiet", "Classic", "Nimble", "Vintage", "Rugged",
    ];
    const NOUNS: [&str; 8] = [
        "Kettle",
        "Lamp",
        "Backpack",
        "Notebook",
        "Headphones",
        "Mug",
        "Chair",
        "Umbrella",
    ];
    let mut rng = Rng::new(tenant, seed, 1);
    (0..n)
        .map(|i| NewProduct {
            id: ProductId(rng.uuid()),
            sku: format!("SKU-{i:06}"),
            name: format!(
                "{} {}",
                ADJECTIVES[rng.below(ADJECTIVES.len())],
                NOUNS[rng.below(NOUNS.len())]
            ),
            // 1.00 to 999.99.
            price_cents: 100 + rng.below(99_900) as i64,
            stock,
            active: true,
        })
        .collect()
}

/// Generates the dataset and inserts it, in one transaction; the carts' cache entries are
/// invalidated after the commit.
pub async fn load(
    pool: &PgPool,
    cache: &CartCache,
    tenant: TenantId,
    spec: &FixtureSpec,
) -> Result<Dataset, Error> {
    let data = Dataset::generate(tenant, spec)?;
    insert(pool, cache, &data).await?;
    Ok(data)
}

/// Inserts a dataset (products, carts, orders) in one transaction.
pub async fn insert(pool: &PgPool, cache: &CartCache, data: &Dataset) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    insert_products(&mut tx, data.tenant, &data.products).await?;
    let versions = replace_carts(&mut tx, data.tenant, &data.carts).await?;
    insert_orders(&mut tx, data.tenant, &data.products, &data.orders).await?;
    tx.commit().await?;
    for (user, version) in versions {
        cache.invalidate(data.tenant, user, version).await;
    }
    Ok(())
}

/// Inserts catalog products.
pub async fn insert_products(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    products: &[NewProduct],
) -> Result<(), Error> {
    let ids: Vec<Uuid> = products.iter().map(|p| p.id.0).collect();
    let skus: Vec<&str> = products.iter().map(|p| p.sku.as_str()).collect();
    let names: Vec<&str> = products.iter().map(|p| p.name.as_str()).collect();
    let prices: Vec<i64> = products.iter().map(|p| p.price_cents).collect();
    let stocks: Vec<i32> = products.iter().map(|p| p.stock).collect();
    let active: Vec<bool> = products.iter().map(|p| p.active).collect();
    sqlx::query(
        "INSERT INTO products (tenant_id, id, sku, name, price_cents, stock, active)
         SELECT $1, x.* FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::int8[], $6::int4[],
                                     $7::bool[])
             AS x(id, sku, name, price_cents, stock, active)",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&skus)
    .bind(&names)
    .bind(&prices)
    .bind(&stocks)
    .bind(&active)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes each listed cart hold exactly its items (creating carts as needed) and returns the new
/// version of each, for cache invalidation. Use [`refill_carts`] unless you hold a transaction.
pub async fn replace_carts(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    carts: &[CartFixture],
) -> Result<Vec<(UserId, i64)>, Error> {
    // Sorted users: the cart rows are locked in a fixed order, as everywhere else.
    let mut users: Vec<Uuid> = carts.iter().map(|cart| cart.user.0).collect();
    users.sort_unstable();
    let versions: Vec<(UserId, i64)> = sqlx::query_as(
        "INSERT INTO carts (tenant_id, user_id)
         SELECT $1, u FROM UNNEST($2::uuid[]) AS u ORDER BY u
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET version = carts.version + 1
         RETURNING user_id, version",
    )
    .bind(tenant)
    .bind(&users)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM cart_items WHERE tenant_id = $1 AND user_id = ANY($2)")
        .bind(tenant)
        .bind(&users)
        .execute(&mut *conn)
        .await?;
    let mut item_users = Vec::new();
    let mut products = Vec::new();
    let mut quantities = Vec::new();
    for cart in carts {
        for (product, quantity) in &cart.items {
            item_users.push(cart.user.0);
            products.push(product.0);
            quantities.push(quantity.get() as i32);
        }
    }
    sqlx::query(
        "INSERT INTO cart_items (tenant_id, user_id, product_id, quantity)
         SELECT $1, x.* FROM UNNEST($2::uuid[], $3::uuid[], $4::int4[])
             AS x(user_id, product_id, quantity)",
    )
    .bind(tenant)
    .bind(&item_users)
    .bind(&products)
    .bind(&quantities)
    .execute(&mut *conn)
    .await?;
    Ok(versions)
}

/// Makes each listed cart hold exactly its items, and invalidates their cache entries: the cheap
/// way for a benchmark to put carts back after ordering them.
pub async fn refill_carts(
    pool: &PgPool,
    cache: &CartCache,
    tenant: TenantId,
    carts: &[CartFixture],
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    let versions = replace_carts(&mut tx, tenant, carts).await?;
    tx.commit().await?;
    for (user, version) in versions {
        cache.invalidate(tenant, user, version).await;
    }
    Ok(())
}

/// Inserts historical orders and their items; `products` is the catalog the item indexes
/// point into, and supplies the price snapshots.
pub async fn insert_orders(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    products: &[NewProduct],
    orders: &[NewOrder],
) -> Result<(), Error> {
    let mut ids = Vec::with_capacity(orders.len());
    let mut users = Vec::with_capacity(orders.len());
    let mut totals = Vec::with_capacity(orders.len());
    let mut created = Vec::with_capacity(orders.len());
    let (mut item_orders, mut item_products, mut skus, mut names, mut prices, mut quantities) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for order in orders {
        let mut total = 0_i64;
        for &(index, quantity) in &order.items {
            let product = products.get(index).ok_or_else(|| {
                Error::InvalidArgument(format!("order item refers to product #{index}"))
            })?;
            total = product
                .price_cents
                .checked_mul(i64::from(quantity.get()))
                .and_then(|line| total.checked_add(line))
                .ok_or_else(|| Error::InvalidArgument("order total overflows".to_owned()))?;
            item_orders.push(order.id.0);
            item_products.push(product.id.0);
            skus.push(product.sku.as_str());
            names.push(product.name.as_str());
            prices.push(product.price_cents);
            quantities.push(quantity.get() as i32);
        }
        ids.push(order.id.0);
        users.push(order.user.0);
        totals.push(total);
        created.push(order.created_at);
    }
    sqlx::query(
        "INSERT INTO orders (tenant_id, id, user_id, status, total_cents, created_at)
         SELECT $1, x.id, x.user_id, 'placed', x.total_cents, x.created_at
         FROM UNNEST($2::uuid[], $3::uuid[], $4::int8[], $5::timestamptz[])
             AS x(id, user_id, total_cents, created_at)",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&users)
    .bind(&totals)
    .bind(&created)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO order_items
             (tenant_id, order_id, product_id, sku, name, unit_price_cents, quantity)
         SELECT $1, x.* FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int8[],
                                     $7::int4[])
             AS x(order_id, product_id, sku, name, unit_price_cents, quantity)",
    )
    .bind(tenant)
    .bind(&item_orders)
    .bind(&item_products)
    .bind(&skus)
    .bind(&names)
    .bind(&prices)
    .bind(&quantities)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets the stock of every product of `tenant`; returns how many products it touched.
pub async fn restock(pool: &PgPool, tenant: TenantId, stock: i32) -> Result<u64, Error> {
    let result = sqlx::query("UPDATE products SET stock = $2 WHERE tenant_id = $1")
        .bind(tenant)
        .bind(stock)
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

/// Sets the stock of one product.
pub async fn set_stock(
    pool: &PgPool,
    tenant: TenantId,
    product: ProductId,
    stock: i32,
) -> Result<(), Error> {
    let result = sqlx::query("UPDATE products SET stock = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(product)
        .bind(stock)
        .execute(pool)
        .await?;
    if result.rows_affected() == 0 {
        return Err(Error::NotFound("product"));
    }
    Ok(())
}

/// The stock of one product.
pub async fn stock_of(pool: &PgPool, tenant: TenantId, product: ProductId) -> Result<i32, Error> {
    sqlx::query_scalar("SELECT stock FROM products WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(product)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound("product"))
}

/// SplitMix64 (Steele, Lea and Flood 2014). Hand-written rather than taken from `rand` because
/// fixtures must stay identical across dependency upgrades, which `rand` does not promise for its
/// seeded generators; ten lines are cheaper than that risk.
struct Rng(u64);

impl Rng {
    /// A stream for (`tenant`, `seed`, `stream`): each kind of data has its own stream, so that
    /// e.g. the catalog does not change when the number of users does.
    fn new(tenant: TenantId, seed: u64, stream: u64) -> Self {
        let (high, low) = tenant.0.as_u64_pair();
        let mut rng =
            Rng(seed ^ high.rotate_left(17) ^ low ^ stream.wrapping_mul(0xA24B_AED4_963E_E407));
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (the modulo bias is below 2^-40 for the sizes used here).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn uuid(&mut self) -> Uuid {
        let mut bytes = [0_u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn quantity(&mut self) -> Quantity {
        Quantity::clamped(1 + self.below(3) as u32)
    }

    /// `k` distinct indexes in `0..n` (k <= n), in the order drawn.
    fn distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        if k > n / 2 {
            // Dense: a partial Fisher-Yates shuffle avoids long rejection runs.
            let mut all: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = i + self.below(n - i);
                all.swap(i, j);
            }
            all.truncate(k);
            return all;
        }
        while picked.len() < k {
            let candidate = self.below(n);
            if !picked.contains(&candidate) {
                picked.push(candidate);
            }
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FixtureSpec {
        FixtureSpec {
            seed: 7,
            products: 50,
            stock: 10,
            users: 4,
            cart_items: 5,
            orders_per_user: 3,
        }
    }

    #[test]
    fn the_same_spec_gives_the_same_data() {
        let tenant = TenantId(Uuid::from_u128(1));
        let a = Dataset::generate(tenant, &spec()).unwrap();
        let b = Dataset::generate(tenant, &spec()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.products.len(), 50);
        assert_eq!(a.users.len(), 4);
        assert_eq!(a.orders.len(), 12);
        for cart in &a.carts {
            let mut ids: Vec<_> = cart.items.iter().map(|(id, _)| *id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 5, "cart items are distinct");
        }
        assert!(
            a.orders
                .windows(2)
                .all(|w| w[0].created_at < w[1].created_at)
        );
        // The catalog depends only on the tenant, seed and size.
        let fewer_users = FixtureSpec { users: 1, ..spec() };
        let c = Dataset::generate(tenant, &fewer_users).unwrap();
        assert_eq!(a.products, c.products);
    }

    #[test]
    fn tenants_and_seeds_do_not_share_ids() {
        let a = Dataset::generate(TenantId(Uuid::from_u128(1)), &spec()).unwrap();
        let b = Dataset::generate(TenantId(Uuid::from_u128(2)), &spec()).unwrap();
        let c = Dataset::generate(
            TenantId(Uuid::from_u128(1)),
            &FixtureSpec { seed: 8, ..spec() },
        )
        .unwrap();
        assert_ne!(a.products[0].id, b.products[0].id);
        assert_ne!(a.products[0].id, c.products[0].id);
        assert_ne!(a.users[0], b.users[0]);
    }

    #[test]
    fn rejects_impossible_specs() {
        let tenant = TenantId(Uuid::from_u128(1));
        let too_many = FixtureSpec {
            cart_items: 51,
            ..spec()
        };
        assert!(Dataset::generate(tenant, &too_many).is_err());
    }

    #[test]
    fn distinct_picks_cover_dense_and_sparse_cases() {
        let mut rng = Rng::new(TenantId(Uuid::nil()), 1, 1);
        for (n, k) in [(10, 10), (10, 3), (1, 1), (5, 0)] {
            let mut picks = rng.distinct(n, k);
            picks.sort_unstable();
            picks.dedup();
            assert_eq!(picks.len(), k);
            assert!(picks.iter().all(|&i| i < n));
        }
    }
}

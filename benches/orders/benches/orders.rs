//! The `orders` suite: creating, reading and listing orders on real PostgreSQL and Redis, through
//! the library and end to end through the gRPC API, next to the PostgreSQL round trip they stand
//! on. `docs/suites.md` (section `orders`) says what each benchmark measures and how its state
//! is kept from drifting.

use std::cell::Cell;
use std::ops::Range;
use std::slice;
use std::time::Instant;

use bench_harness::{
    BatchSize, Batches, Criterion, Group, all_at_once, block, fail, measure_latencies, pass_size,
    run_batches,
};
use commerce::fixtures::{self, CartFixture, FixtureSpec};
use commerce::grpc::identity::request;
use commerce::grpc::proto::order_service_client::OrderServiceClient;
use commerce::grpc::proto::{self, CreateOrderRequest, GetOrderRequest, ListOrdersRequest};
use commerce::identity::{Caller, Role, Roles};
use commerce::ids::{OrderId, ProductId, TenantId, UserId};
use commerce::orders::{Order, OrderPage, PageSize};
use commerce_bench::{
    BenchEnv, Counters, POOL_SIZE, cart_of, concurrent, postgres_floor, refill_uncached, sequential,
};
use orders::{LARGE_CART, PRODUCTS, SMALL_CART, task_cart};
use tokio::runtime::Runtime;
use tonic::transport::Channel;

const SUITE: &str = "orders";

/// Stock of every product, put back before every sample (outside the timing and the counts).
/// A sample takes at most one unit per product per iteration, far less than this.
const STOCK: i32 = 1_000_000;
/// Users of the ordering tenant, by benchmark (indexes into its users).
const CREATE_SMALL: usize = 0;
const CREATE_LARGE: usize = 1;
const GRPC_CREATE: usize = 2;
/// Enough users for 32 batches of 8, or 4 batches of 64, between two resets.
const WRITERS: Range<usize> = 3..3 + 256;
const USERS: usize = WRITERS.end;
/// The reading tenant: one customer with this many orders, which nothing adds to.
const HISTORY: usize = 1_000;
const PAGE: u32 = 100;

const CONCURRENCY: [usize; 2] = [8, 64];

/// The suite's state. Orders are created in one tenant and read in another, so the reads always
/// see the same 1,000 orders however many the write benchmarks add.
struct Ctx {
    runtime: Runtime,
    env: BenchEnv,
    /// Where orders are created.
    shop: TenantId,
    products: Vec<ProductId>,
    users: Vec<UserId>,
    /// Where orders are read: one customer and their history.
    history: TenantId,
    reader: UserId,
    /// An order of the reader with three items.
    order: OrderId,
    client: OrderServiceClient<Channel>,
}

impl Ctx {
    fn load(runtime: Runtime, env: BenchEnv) -> anyhow::Result<Ctx> {
        // Fixed tenants: each run has a fresh database, and the fixture ids derive from them.
        let shop: TenantId = "00000000-0000-4000-8000-0000000005e1".parse()?;
        let history: TenantId = "00000000-0000-4000-8000-000000000415".parse()?;
        let shop_spec = FixtureSpec {
            seed: 51,
            products: PRODUCTS,
            stock: STOCK,
            users: USERS,
            cart_items: 0,
            orders_per_user: 0,
        };
        let history_spec = FixtureSpec {
            seed: 41,
            products: PRODUCTS,
            stock: STOCK,
            users: 1,
            cart_items: 0,
            orders_per_user: HISTORY,
        };
        let (shop_data, history_data) = runtime.block_on(async {
            let shop_data = fixtures::load(&env.pool, env.cache(), shop, &shop_spec).await?;
            let history_data =
                fixtures::load(&env.pool, env.cache(), history, &history_spec).await?;
            anyhow::Ok((shop_data, history_data))
        })?;
        let order = history_data
            .orders
            .iter()
            .find(|order| order.items.len() == 3)
            .ok_or_else(|| anyhow::anyhow!("the history has no order of three items"))?
            .id;
        let client = OrderServiceClient::new(env.channel.clone());
        let cx = Ctx {
            runtime,
            env,
            shop,
            products: shop_data.products.iter().map(|p| p.id).collect(),
            users: shop_data.users,
            history,
            reader: history_data.users[0],
            order,
            client,
        };
        let carts: Vec<CartFixture> = (0..USERS).map(|i| cx.cart(i)).collect();
        cx.runtime.block_on(fixtures::refill_carts(
            &cx.env.pool,
            cx.env.cache(),
            shop,
            &carts,
        ))?;
        Ok(cx)
    }

    /// Makes every pooled connection prepare every statement the benchmarks time, before any
    /// measurement (see `bench_harness::all_at_once`): waves of concurrent orders by the first
    /// writers, refills of their carts, order reads, listings and `SELECT 1`s, twice, which
    /// leaves their carts as they were.
    fn prepare_statements(&self) -> anyhow::Result<()> {
        let tasks = POOL_SIZE as usize;
        let (orders, shop) = (&self.env.commerce.orders, self.shop);
        let (history, reader, order) = (self.history, self.reader, self.order);
        self.runtime.block_on(async {
            for _ in 0..2 {
                all_at_once(tasks, |task| {
                    let (orders, user) = (orders.clone(), self.users[WRITERS.start + task]);
                    async move {
                        orders.create_order(shop, user, None).await?;
                        Ok(())
                    }
                })
                .await?;
                // The orders left tombstones, so the uncached refill is safe.
                all_at_once(tasks, |task| {
                    let (pool, cart) = (self.env.pool.clone(), self.cart(WRITERS.start + task));
                    async move { refill_uncached(&pool, shop, slice::from_ref(&cart)).await }
                })
                .await?;
                all_at_once(tasks, |_| {
                    let orders = orders.clone();
                    async move {
                        orders.get_order(history, Some(reader), order).await?;
                        Ok(())
                    }
                })
                .await?;
                all_at_once(tasks, |_| {
                    let orders = orders.clone();
                    async move {
                        let size = PageSize::new(PAGE)?;
                        orders
                            .list_orders(history, Some(reader), size, None)
                            .await?;
                        Ok(())
                    }
                })
                .await?;
                all_at_once(tasks, |_| {
                    let pool = self.env.pool.clone();
                    async move {
                        sqlx::query_scalar::<_, i32>("SELECT 1")
                            .fetch_one(&pool)
                            .await?;
                        Ok(())
                    }
                })
                .await?;
            }
            self.restock().await
        })
    }

    /// User `index`'s cart before each order: ten products for [`CREATE_LARGE`], three for the
    /// others (for the concurrent writers, three of their task's own), one unit each.
    fn cart(&self, index: usize) -> CartFixture {
        let products = if index == CREATE_LARGE {
            0..LARGE_CART
        } else if WRITERS.contains(&index) {
            // A batch is a run of at most 64 consecutive writers, so their positions modulo 64
            // (what `task_cart` takes) differ: the tasks of a batch share no product.
            task_cart(index - WRITERS.start)
        } else {
            0..SMALL_CART
        };
        cart_of(self.users[index], &self.products[products])
    }

    fn customer(&self, tenant: TenantId, user: UserId) -> Caller {
        Caller {
            tenant,
            user,
            roles: Roles::of(&[Role::Customer]),
        }
    }

    async fn refill(&self, cart: &CartFixture) -> anyhow::Result<()> {
        fixtures::refill_carts(
            &self.env.pool,
            self.env.cache(),
            self.shop,
            slice::from_ref(cart),
        )
        .await?;
        Ok(())
    }

    async fn restock(&self) -> anyhow::Result<()> {
        let restocked = fixtures::restock(&self.env.pool, self.shop, STOCK).await?;
        anyhow::ensure!(
            restocked == PRODUCTS as u64,
            "restocked {restocked} products"
        );
        Ok(())
    }

    async fn create(&self, index: usize, items: usize) -> anyhow::Result<Order> {
        let order = self
            .env
            .commerce
            .orders
            .create_order(self.shop, self.users[index], None)
            .await?;
        anyhow::ensure!(
            order.items.len() == items,
            "expected an order of {items} items"
        );
        Ok(order)
    }

    async fn get(&self) -> anyhow::Result<Order> {
        let order = self
            .env
            .commerce
            .orders
            .get_order(self.history, Some(self.reader), self.order)
            .await?;
        anyhow::ensure!(order.items.len() == 3, "expected an order of 3 items");
        Ok(order)
    }

    async fn list(&self) -> anyhow::Result<OrderPage> {
        let page = self
            .env
            .commerce
            .orders
            .list_orders(self.history, Some(self.reader), PageSize::new(PAGE)?, None)
            .await?;
        anyhow::ensure!(
            page.orders.len() == PAGE as usize && page.next.is_some(),
            "expected a full first page"
        );
        Ok(page)
    }

    async fn grpc_create(&self, caller: &Caller) -> anyhow::Result<proto::Order> {
        let message = CreateOrderRequest::default();
        let order = self
            .client
            .clone()
            .create_order(request(caller, message))
            .await?
            .into_inner();
        anyhow::ensure!(
            order.items.len() == SMALL_CART,
            "expected an order of 3 items"
        );
        Ok(order)
    }

    async fn grpc_get(&self, caller: &Caller, id: &str) -> anyhow::Result<proto::Order> {
        let message = GetOrderRequest {
            order_id: id.to_owned(),
            tenant_id: String::new(),
        };
        let order = self
            .client
            .clone()
            .get_order(request(caller, message))
            .await?
            .into_inner();
        anyhow::ensure!(order.items.len() == 3, "expected an order of 3 items");
        Ok(order)
    }

    async fn grpc_list(&self, caller: &Caller) -> anyhow::Result<proto::ListOrdersResponse> {
        let message = ListOrdersRequest {
            page_size: PAGE,
            page_token: String::new(),
            tenant_id: String::new(),
            scope: proto::ListScope::Own as i32,
        };
        let page = self
            .client
            .clone()
            .list_orders(request(caller, message))
            .await?
            .into_inner();
        anyhow::ensure!(
            page.orders.len() == PAGE as usize && !page.next_page_token.is_empty(),
            "expected a full first page"
        );
        Ok(page)
    }

    /// Fails the run unless Redis stayed healthy since `before` and the policy engine evaluated
    /// at most `evaluations` times (the decision cache answers the rest); prints the counters.
    fn check(&self, id: &str, before: &Counters, evaluations: u64) {
        let delta = self.env.counters().since(before);
        let d = &delta.decisions;
        eprintln!(
            "counters {id}: decisions {} L1 hits, {} L2 hits, {} evaluations",
            d.l1_hits, d.l2_hits, delta.evaluations
        );
        let outcome = delta.healthy().and_then(|()| {
            anyhow::ensure!(
                delta.evaluations <= evaluations,
                "{} policy evaluations, expected at most {evaluations}: the decision cache did \
                 not answer",
                delta.evaluations
            );
            Ok(())
        });
        if let Err(error) = outcome {
            fail(
                id,
                error.context("the benchmark did not measure what it claims"),
            );
        }
    }
}

/// `orders/create_order/3_items` and `/10_items`: the cart is refilled before every iteration
/// and the stock before every sample, both untimed.
fn create_order(group: &mut Group<'_>, cx: &Ctx, index: usize, items: usize) {
    let id = format!("orders/create_order/{items}_items");
    let id = id.as_str();
    let cart = cx.cart(index);
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench_with_parameter("create_order", format!("{items}_items"), |b| {
        block(&cx.runtime, id, cx.restock());
        b.iter_batched(
            || block(&cx.runtime, id, cx.refill(&cart)),
            |()| {
                calls.set(calls.get() + 1);
                block(&cx.runtime, id, cx.create(index, items))
            },
            BatchSize::PerIteration,
        )
    });
    if calls.get() == 0 {
        return;
    }
    block(&cx.runtime, id, cx.restock());
    block(
        &cx.runtime,
        id,
        measure_latencies(
            id,
            pass_size(200, 2),
            async |_| cx.refill(&cart).await,
            async |()| cx.create(index, items).await.map(drop),
        ),
    );
    cx.check(id, &before, 0);
}

fn get_order(group: &mut Group<'_>, cx: &Ctx) {
    let id = "orders/get_order";
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench("get_order", |b| {
        b.iter_async(&cx.runtime, || {
            calls.set(calls.get() + 1);
            async { cx.get().await.unwrap_or_else(|error| fail(id, error)) }
        })
    });
    if calls.get() == 0 {
        return;
    }
    block(
        &cx.runtime,
        id,
        measure_latencies(
            id,
            pass_size(500, 2),
            async |_| Ok(()),
            async |()| cx.get().await.map(drop),
        ),
    );
    cx.check(id, &before, 0);
}

fn list_orders(group: &mut Group<'_>, cx: &Ctx) {
    let id = "orders/list_orders/100_of_1000";
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench_with_parameter("list_orders", "100_of_1000", |b| {
        b.iter_async(&cx.runtime, || {
            calls.set(calls.get() + 1);
            async { cx.list().await.unwrap_or_else(|error| fail(id, error)) }
        })
    });
    if calls.get() == 0 {
        return;
    }
    block(
        &cx.runtime,
        id,
        measure_latencies(
            id,
            pass_size(300, 2),
            async |_| Ok(()),
            async |()| cx.list().await.map(drop),
        ),
    );
    cx.check(id, &before, 0);
}

fn concurrent_create(group: &mut Group<'_>, cx: &Ctx, tasks: usize) {
    let id = format!("orders/concurrent_create/{tasks}");
    let batches = Batches {
        tasks,
        per_reset: WRITERS.len() / tasks,
    };
    let indexes: Vec<usize> = WRITERS.collect();
    let carts: Vec<CartFixture> = WRITERS.map(|i| cx.cart(i)).collect();
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    concurrent(group, tasks);
    group.bench_with_parameter("concurrent_create", tasks, |b| {
        block(&cx.runtime, &id, cx.restock());
        b.iter_custom(|iters| {
            calls.set(calls.get() + iters);
            block(
                &cx.runtime,
                &id,
                run_batches(
                    &batches,
                    iters,
                    &indexes,
                    // The writers' carts were last written by `create_order` (or the fixture's
                    // refill), which leaves a tombstone: the uncached refill is safe (see
                    // `refill_uncached`).
                    async |round: &[usize]| {
                        refill_uncached(&cx.env.pool, cx.shop, &carts[..round.len()]).await
                    },
                    |index| {
                        // Each task orders its own cart of three products of its own (see
                        // `orders::task_cart`): the tasks of a batch lock no common row.
                        let (orders, shop, user) =
                            (cx.env.commerce.orders.clone(), cx.shop, cx.users[index]);
                        async move {
                            let order = orders.create_order(shop, user, None).await?;
                            anyhow::ensure!(order.items.len() == SMALL_CART, "expected 3 items");
                            Ok(())
                        }
                    },
                ),
            )
        })
    });
    if calls.get() == 0 {
        return;
    }
    cx.check(&id, &before, 0);
}

/// The gRPC variants: the same operations through a client, the HTTP/2 loopback connection, the
/// server's identity parsing and the policy engine's authorization (decision-cache hits after
/// the first call), and the protobuf conversions.
fn grpc(group: &mut Group<'_>, cx: &Ctx) {
    sequential(group);

    let id = "orders/grpc/create_order";
    let caller = cx.customer(cx.shop, cx.users[GRPC_CREATE]);
    let cart = cx.cart(GRPC_CREATE);
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench_with_parameter("grpc", "create_order", |b| {
        block(&cx.runtime, id, cx.restock());
        b.iter_batched(
            || block(&cx.runtime, id, cx.refill(&cart)),
            |()| {
                calls.set(calls.get() + 1);
                block(&cx.runtime, id, cx.grpc_create(&caller))
            },
            BatchSize::PerIteration,
        )
    });
    if calls.get() > 0 {
        block(&cx.runtime, id, cx.restock());
        block(
            &cx.runtime,
            id,
            measure_latencies(
                id,
                pass_size(200, 2),
                async |_| cx.refill(&cart).await,
                async |()| cx.grpc_create(&caller).await.map(drop),
            ),
        );
        cx.check(id, &before, 1);
    }

    let reader = cx.customer(cx.history, cx.reader);
    let id = "orders/grpc/get_order";
    let order = cx.order.to_string();
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench_with_parameter("grpc", "get_order", |b| {
        b.iter_async(&cx.runtime, || {
            calls.set(calls.get() + 1);
            async {
                cx.grpc_get(&reader, &order)
                    .await
                    .unwrap_or_else(|error| fail(id, error))
            }
        })
    });
    if calls.get() > 0 {
        // A customer's order read asks the policy twice (the tenant-wide question, denied, then
        // the caller's own), so up to two evaluations before the decision cache answers both.
        cx.check(id, &before, 2);
    }

    let id = "orders/grpc/list_orders";
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench_with_parameter("grpc", "list_orders", |b| {
        b.iter_async(&cx.runtime, || {
            calls.set(calls.get() + 1);
            async {
                cx.grpc_list(&reader)
                    .await
                    .unwrap_or_else(|error| fail(id, error))
            }
        })
    });
    if calls.get() > 0 {
        block(
            &cx.runtime,
            id,
            measure_latencies(
                id,
                pass_size(300, 2),
                async |_| Ok(()),
                async |()| cx.grpc_list(&reader).await.map(drop),
            ),
        );
        cx.check(id, &before, 1);
    }
}

fn orders(c: &mut Criterion) {
    let started = Instant::now();
    let runtime = bench_harness::runtime().unwrap_or_else(|error| fail(SUITE, error));
    let env = BenchEnv::start(&runtime).unwrap_or_else(|error| fail(SUITE, error));
    let cx = Ctx::load(runtime, env).unwrap_or_else(|error| fail(SUITE, error));
    cx.prepare_statements()
        .unwrap_or_else(|error| fail(SUITE, error.context("preparing the statements")));
    eprintln!(
        "{SUITE}: {}; {USERS} carts and {HISTORY} orders ready in {:.1} s",
        cx.env.describe(),
        started.elapsed().as_secs_f64()
    );

    let mut group = Group::new(c, SUITE);
    cx.env.count_round_trips(&mut group);
    postgres_floor(&mut group, SUITE, &cx.runtime, &cx.env);
    // The machine floors (CPU, memory, allocator): what the gate normalises by, per resource.
    bench_harness::floors::register(&mut group);
    create_order(&mut group, &cx, CREATE_SMALL, SMALL_CART);
    create_order(&mut group, &cx, CREATE_LARGE, LARGE_CART);
    get_order(&mut group, &cx);
    list_orders(&mut group, &cx);
    for tasks in CONCURRENCY {
        concurrent_create(&mut group, &cx, tasks);
    }
    grpc(&mut group, &cx);
    group.finish();

    let Ctx { runtime, env, .. } = cx;
    block(&runtime, SUITE, env.shutdown());
    eprintln!("{SUITE}: done in {:.1} s", started.elapsed().as_secs_f64());
}

bench_harness::main!(orders);

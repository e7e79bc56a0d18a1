//! The `cart` suite: cart operations on real PostgreSQL and Redis, through the library and end to
//! end through the gRPC API, next to the round trips they stand on. `docs/suites.md` (section
//! `cart`) says what each benchmark measures and how its state is kept from drifting.

use std::cell::Cell;
use std::ops::Range;
use std::slice;
use std::time::Instant;

use bench_harness::{
    BatchSize, Batches, Criterion, Group, Throughput, all_at_once, block, ensure, fail,
    measure_latencies, pass_size, run_batches,
};
use cart::{MIX_USERS, Mix, Step};
use commerce::cart::{Cart, Quantity};
use commerce::fixtures::{self, CartFixture, FixtureSpec};
use commerce::grpc::identity::request;
use commerce::grpc::proto::cart_service_client::CartServiceClient;
use commerce::grpc::proto::{self, AddItemRequest, GetCartRequest, RemoveItemRequest};
use commerce::identity::{Caller, Role, Roles};
use commerce::ids::{ProductId, TenantId, UserId};
use commerce_bench::{
    BenchEnv, Counters, POOL_SIZE, cart_of, concurrent, postgres_floor, refill_uncached, sequential,
};
use tokio::runtime::Runtime;
use tonic::transport::Channel;

const SUITE: &str = "cart";

/// The catalog: base carts draw on the first 99 products, the products added by the concurrent
/// benchmark are 100..164, the mix's extra products 180..191 and the single writers' 199.
const PRODUCTS: usize = 200;
/// Each benchmark has users of its own (indexes into the fixture's users), so no benchmark
/// leaves state behind for another.
const ADD: usize = 0;
const REMOVE: usize = 1;
const HIT: usize = 2;
const COLD: usize = 3;
const TEN_ITEMS: usize = 4;
const GRPC_ADD: usize = 5;
const GRPC_GET: usize = 6;
const GRPC_REMOVE: usize = 7;
const MIXED: Range<usize> = 8..8 + MIX_USERS;
const READERS: Range<usize> = MIXED.end..MIXED.end + 64;
/// Enough users for 32 batches of 8, or 4 batches of 64, between two resets.
const WRITERS: Range<usize> = READERS.end..READERS.end + 256;
const USERS: usize = WRITERS.end;
/// The product the single-writer benchmarks add and remove.
const EXTRA: usize = 199;
/// The first product the concurrent writers add (task `j` of a batch adds `ADDED + j`).
const ADDED: usize = 100;
/// The first of the mix users' extra products.
const MIX_EXTRA: usize = 180;

const CONCURRENCY: [usize; 2] = [8, 64];

/// The suite's state: runtime, services, and the fixture's tenant, products and users.
struct Ctx {
    runtime: Runtime,
    env: BenchEnv,
    tenant: TenantId,
    products: Vec<ProductId>,
    users: Vec<UserId>,
    carts: CartServiceClient<Channel>,
}

impl Ctx {
    /// Loads the catalog and one cart per user (see [`Ctx::base_cart`]).
    fn load(runtime: Runtime, env: BenchEnv) -> anyhow::Result<Ctx> {
        // A fixed tenant: each run has a fresh database, and the fixture ids derive from it.
        let tenant: TenantId = "00000000-0000-4000-8000-00000000ca27".parse()?;
        let spec = FixtureSpec {
            seed: 27,
            products: PRODUCTS,
            stock: 1_000_000,
            users: USERS,
            cart_items: 0,
            orders_per_user: 0,
        };
        let data = runtime.block_on(fixtures::load(&env.pool, env.cache(), tenant, &spec))?;
        let carts = CartServiceClient::new(env.channel.clone());
        let cx = Ctx {
            runtime,
            env,
            tenant,
            products: data.products.iter().map(|p| p.id).collect(),
            users: data.users,
            carts,
        };
        let all: Vec<CartFixture> = (0..USERS).map(|i| cx.base_cart(i)).collect();
        cx.runtime.block_on(fixtures::refill_carts(
            &cx.env.pool,
            cx.env.cache(),
            tenant,
            &all,
        ))?;
        Ok(cx)
    }

    /// Makes every pooled connection prepare every statement the benchmarks time, before any
    /// measurement (see `bench_harness::all_at_once`): one wave of concurrent adds, reads,
    /// removals, `SELECT 1`s and refills by the first writers, twice, which leaves their carts
    /// as they were.
    fn prepare_statements(&self) -> anyhow::Result<()> {
        let tasks = POOL_SIZE as usize;
        let (carts, tenant) = (&self.env.commerce.carts, self.tenant);
        let writer = |task: usize| self.users[WRITERS.start + task];
        let product = |task: usize| self.products[ADDED + task % 64];
        self.runtime.block_on(async {
            for _ in 0..2 {
                all_at_once(tasks, |task| {
                    let (carts, user, product) = (carts.clone(), writer(task), product(task));
                    async move {
                        carts
                            .add_item(tenant, user, product, Quantity::clamped(1))
                            .await?;
                        Ok(())
                    }
                })
                .await?;
                all_at_once(tasks, |task| {
                    let (carts, user) = (carts.clone(), writer(task));
                    async move {
                        carts.get_cart(tenant, user).await?;
                        Ok(())
                    }
                })
                .await?;
                all_at_once(tasks, |task| {
                    let (carts, user, product) = (carts.clone(), writer(task), product(task));
                    async move {
                        carts.remove_item(tenant, user, product).await?;
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
                // The removals left tombstones, so the uncached refill is safe.
                all_at_once(tasks, |task| {
                    let (pool, cart) =
                        (self.env.pool.clone(), self.base_cart(WRITERS.start + task));
                    async move { refill_uncached(&pool, tenant, slice::from_ref(&cart)).await }
                })
                .await?;
            }
            anyhow::Ok(())
        })
    }

    /// User `index`'s cart before each operation: three products (ten for [`TEN_ITEMS`]), one
    /// unit each, from the first 99 products.
    fn base_cart(&self, index: usize) -> CartFixture {
        let products = if index == TEN_ITEMS {
            &self.products[..10]
        } else {
            let first = 3 * (index % 33);
            &self.products[first..first + 3]
        };
        cart_of(self.users[index], products)
    }

    /// [`Ctx::base_cart`] plus the [`EXTRA`] product.
    fn cart_with_extra(&self, index: usize) -> CartFixture {
        let mut cart = self.base_cart(index);
        cart.items
            .push((self.products[EXTRA], Quantity::clamped(1)));
        cart
    }

    fn caller(&self, index: usize) -> Caller {
        Caller {
            tenant: self.tenant,
            user: self.users[index],
            roles: Roles::of(&[Role::Customer]),
        }
    }

    /// Puts `cart` back, with the cache invalidated: one transaction and one Redis round trip.
    async fn refill(&self, cart: &CartFixture) -> anyhow::Result<()> {
        fixtures::refill_carts(
            &self.env.pool,
            self.env.cache(),
            self.tenant,
            slice::from_ref(cart),
        )
        .await?;
        Ok(())
    }

    async fn get(&self, index: usize, items: usize) -> anyhow::Result<Cart> {
        let cart = self
            .env
            .commerce
            .carts
            .get_cart(self.tenant, self.users[index])
            .await?;
        anyhow::ensure!(
            cart.items.len() == items,
            "expected {items} items, got {}",
            cart.items.len()
        );
        Ok(cart)
    }

    async fn add(&self, index: usize, product: usize, items: usize) -> anyhow::Result<Cart> {
        let cart = self
            .env
            .commerce
            .carts
            .add_item(
                self.tenant,
                self.users[index],
                self.products[product],
                Quantity::clamped(1),
            )
            .await?;
        anyhow::ensure!(
            cart.items.len() == items,
            "expected {items} items after the add"
        );
        Ok(cart)
    }

    async fn remove(&self, index: usize, product: usize, items: usize) -> anyhow::Result<Cart> {
        let cart = self
            .env
            .commerce
            .carts
            .remove_item(self.tenant, self.users[index], self.products[product])
            .await?;
        anyhow::ensure!(
            cart.items.len() == items,
            "expected {items} items after the removal"
        );
        Ok(cart)
    }

    /// Deletes user `index`'s cache entry, so that the next read misses.
    async fn evict(&self, index: usize) -> anyhow::Result<()> {
        let key = self.env.cache().key(self.tenant, self.users[index]);
        let mut redis = self.env.redis.clone();
        let deleted: i64 = redis::cmd("DEL").arg(&key).query_async(&mut redis).await?;
        anyhow::ensure!(deleted == 1, "no cache entry under {key} to evict");
        Ok(())
    }

    async fn grpc_add(&self, caller: &Caller, product: &str) -> anyhow::Result<proto::Cart> {
        let message = AddItemRequest {
            product_id: product.to_owned(),
            quantity: 1,
        };
        let cart = self
            .carts
            .clone()
            .add_item(request(caller, message))
            .await?;
        Ok(cart.into_inner())
    }

    async fn grpc_get(&self, caller: &Caller) -> anyhow::Result<proto::Cart> {
        let message = GetCartRequest::default();
        let cart = self
            .carts
            .clone()
            .get_cart(request(caller, message))
            .await?;
        Ok(cart.into_inner())
    }

    async fn grpc_remove(&self, caller: &Caller, product: &str) -> anyhow::Result<proto::Cart> {
        let message = RemoveItemRequest {
            product_id: product.to_owned(),
        };
        let cart = self
            .carts
            .clone()
            .remove_item(request(caller, message))
            .await?;
        Ok(cart.into_inner())
    }

    /// Fails the run unless Redis stayed healthy since `before` and `expect` holds for what
    /// the counters did; prints what they did.
    fn check(
        &self,
        id: &str,
        before: &Counters,
        expect: impl FnOnce(&Counters) -> anyhow::Result<()>,
    ) {
        let delta = self.env.counters().since(before);
        let d = &delta.decisions;
        eprintln!(
            "counters {id}: cart cache {} hits, {} misses; decisions {} L1 hits, {} L2 hits, \
             {} evaluations",
            delta.cart.hits, delta.cart.misses, d.l1_hits, d.l2_hits, delta.evaluations
        );
        if let Err(error) = delta.healthy().and_then(|()| expect(&delta)) {
            fail(
                id,
                error.context("the benchmark did not measure what it claims"),
            );
        }
    }
}

fn floors(group: &mut Group<'_>, cx: &Ctx) {
    postgres_floor(group, SUITE, &cx.runtime, &cx.env);

    let key = format!("{}floor", cx.env.cart_keys.prefix());
    let mut redis = cx.env.redis.clone();
    block(&cx.runtime, "cart: writing the Redis floor's key", async {
        redis::cmd("SET")
            .arg(&key)
            .arg("1")
            .query_async::<()>(&mut redis)
            .await
    });
    group.floor("redis_get", |b| {
        let id = &b.id().to_owned();
        b.iter_async(&cx.runtime, || async {
            // The cart cache clones its connection manager per command too.
            let mut redis = cx.env.redis.clone();
            let value: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap_or_else(|error| fail(id, error));
            ensure(id, value.is_some(), "the floor key vanished");
            value
        })
    });
}

fn add_item(group: &mut Group<'_>, cx: &Ctx) {
    let id = "cart/add_item";
    let base = cx.base_cart(ADD);
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench("add_item", |b| {
        b.iter_batched(
            || block(&cx.runtime, id, cx.refill(&base)),
            |()| {
                calls.set(calls.get() + 1);
                block(&cx.runtime, id, cx.add(ADD, EXTRA, 4))
            },
            BatchSize::PerIteration,
        )
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
            async |_| cx.refill(&base).await,
            async |()| cx.add(ADD, EXTRA, 4).await.map(drop),
        ),
    );
    cx.check(id, &before, |_| Ok(()));
}

fn remove_item(group: &mut Group<'_>, cx: &Ctx) {
    let id = "cart/remove_item";
    let full = cx.cart_with_extra(REMOVE);
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench("remove_item", |b| {
        b.iter_batched(
            || block(&cx.runtime, id, cx.refill(&full)),
            |()| {
                calls.set(calls.get() + 1);
                block(&cx.runtime, id, cx.remove(REMOVE, EXTRA, 3))
            },
            BatchSize::PerIteration,
        )
    });
    if calls.get() == 0 {
        return;
    }
    cx.check(id, &before, |_| Ok(()));
}

/// `get_cart` of a cart that is in the cache: `cart/get_cart_hit` (3 items) and
/// `cart/get_cart_items/10`.
fn get_cart_hit(group: &mut Group<'_>, cx: &Ctx, id: &str, index: usize, items: usize) {
    // Fill the cache entry, so that every measured read hits it.
    block(&cx.runtime, id, cx.get(index, items));
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    let routine = |b: &mut bench_harness::Bencher<'_, '_>| {
        b.iter_async(&cx.runtime, || {
            calls.set(calls.get() + 1);
            async { block_ok(id, cx.get(index, items).await) }
        })
    };
    if index == TEN_ITEMS {
        group.bench_with_parameter("get_cart_items", items, routine);
    } else {
        group.bench("get_cart_hit", routine);
    }
    if calls.get() == 0 {
        return;
    }
    let pass = block(
        &cx.runtime,
        id,
        measure_latencies(
            id,
            pass_size(1000, 2),
            async |_| Ok(()),
            async |()| cx.get(index, items).await.map(drop),
        ),
    );
    let reads = calls.get() + pass.requests;
    cx.check(id, &before, |delta| {
        anyhow::ensure!(
            delta.cart.hits == reads && delta.cart.misses == 0,
            "expected {reads} cache hits and no miss"
        );
        Ok(())
    });
}

fn get_cart_cold(group: &mut Group<'_>, cx: &Ctx) {
    let id = "cart/get_cart_cold";
    // Make sure there is an entry to evict before the first iteration.
    block(&cx.runtime, id, cx.get(COLD, 3));
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench("get_cart_cold", |b| {
        b.iter_batched(
            || block(&cx.runtime, id, cx.evict(COLD)),
            |()| {
                calls.set(calls.get() + 1);
                block(&cx.runtime, id, cx.get(COLD, 3))
            },
            BatchSize::PerIteration,
        )
    });
    if calls.get() == 0 {
        return;
    }
    let pass = block(
        &cx.runtime,
        id,
        measure_latencies(
            id,
            pass_size(500, 2),
            async |_| cx.evict(COLD).await,
            async |()| cx.get(COLD, 3).await.map(drop),
        ),
    );
    let reads = calls.get() + pass.requests;
    cx.check(id, &before, |delta| {
        anyhow::ensure!(
            delta.cart.misses == reads && delta.cart.hits == 0,
            "expected {reads} cache misses and no hit"
        );
        Ok(())
    });
}

fn mixed(group: &mut Group<'_>, cx: &Ctx) {
    let id = "cart/mixed_70_30";
    let before = cx.env.counters();
    let mut mix = Mix::new(MIX_USERS);
    group.throughput(Throughput::Elements(10));
    group.bench("mixed_70_30", |b| {
        b.iter_async(&cx.runtime, || {
            let steps = mix.next_cycle();
            async move {
                for step in steps {
                    let done = match step {
                        Step::Read { user, extra } => {
                            cx.get(MIXED.start + user, 3 + usize::from(extra)).await
                        }
                        Step::Add { user } => cx.add(MIXED.start + user, MIX_EXTRA + user, 4).await,
                        Step::Remove { user } => {
                            cx.remove(MIXED.start + user, MIX_EXTRA + user, 3).await
                        }
                    };
                    block_ok(id, done);
                }
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    if mix.expected_hits() + mix.expected_misses() == 0 {
        return;
    }
    let (hits, misses) = (mix.expected_hits(), mix.expected_misses());
    cx.check(id, &before, |delta| {
        anyhow::ensure!(
            delta.cart.hits == hits && delta.cart.misses == misses,
            "expected {hits} cache hits and {misses} misses (one per read after a write)"
        );
        Ok(())
    });
}

fn concurrent_add(group: &mut Group<'_>, cx: &Ctx, tasks: usize) {
    let id = format!("cart/concurrent_add/{tasks}");
    let batches = Batches {
        tasks,
        per_reset: WRITERS.len() / tasks,
    };
    let indexes: Vec<usize> = WRITERS.collect();
    let base: Vec<CartFixture> = WRITERS.map(|i| cx.base_cart(i)).collect();
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    concurrent(group, tasks);
    group.bench_with_parameter("concurrent_add", tasks, |b| {
        b.iter_custom(|iters| {
            calls.set(calls.get() + iters);
            block(
                &cx.runtime,
                &id,
                run_batches(
                    &batches,
                    iters,
                    &indexes,
                    // The writers' carts were last written by `add_item`, which leaves a
                    // tombstone: the uncached refill is safe (see `refill_uncached`).
                    async |round: &[usize]| {
                        refill_uncached(&cx.env.pool, cx.tenant, &base[..round.len()]).await
                    },
                    |index| {
                        // Distinct users and, within a batch, distinct products: the tasks
                        // share no row, so this measures the stack's concurrency, not a lock.
                        let task = (index - WRITERS.start) % tasks;
                        let (carts, tenant) = (cx.env.commerce.carts.clone(), cx.tenant);
                        let (user, product) = (cx.users[index], cx.products[ADDED + task]);
                        async move {
                            let cart = carts
                                .add_item(tenant, user, product, Quantity::clamped(1))
                                .await?;
                            anyhow::ensure!(cart.items.len() == 4, "expected 4 items");
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
    cx.check(&id, &before, |_| Ok(()));
}

fn concurrent_get(group: &mut Group<'_>, cx: &Ctx, tasks: usize) {
    let id = format!("cart/concurrent_get/{tasks}");
    // Every reader's cart in the cache, so every measured read hits.
    for index in READERS.start..READERS.start + tasks {
        block(&cx.runtime, &id, cx.get(index, 3));
    }
    let indexes: Vec<usize> = (READERS.start..READERS.start + tasks).collect();
    let batches = Batches {
        tasks,
        per_reset: 1,
    };
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    concurrent(group, tasks);
    group.bench_with_parameter("concurrent_get", tasks, |b| {
        b.iter_custom(|iters| {
            calls.set(calls.get() + iters);
            block(
                &cx.runtime,
                &id,
                run_batches(
                    &batches,
                    iters,
                    &indexes,
                    async |_: &[usize]| Ok(()),
                    |index| {
                        let (carts, tenant, user) =
                            (cx.env.commerce.carts.clone(), cx.tenant, cx.users[index]);
                        async move {
                            let cart = carts.get_cart(tenant, user).await?;
                            anyhow::ensure!(cart.items.len() == 3, "expected 3 items");
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
    let reads = calls.get() * tasks as u64;
    cx.check(&id, &before, |delta| {
        anyhow::ensure!(
            delta.cart.hits == reads && delta.cart.misses == 0,
            "expected {reads} cache hits and no miss"
        );
        Ok(())
    });
}

/// The gRPC variants: the same operations through a client, the HTTP/2 loopback connection, the
/// server's identity parsing and the policy engine's authorization (decision-cache hits after
/// the first call), and the protobuf conversions.
fn grpc(group: &mut Group<'_>, cx: &Ctx) {
    sequential(group);
    let extra = cx.products[EXTRA].to_string();

    let id = "cart/grpc/add_item";
    let caller = cx.caller(GRPC_ADD);
    let base = cx.base_cart(GRPC_ADD);
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench_with_parameter("grpc", "add_item", |b| {
        b.iter_batched(
            || block(&cx.runtime, id, cx.refill(&base)),
            |()| {
                calls.set(calls.get() + 1);
                let cart = block(&cx.runtime, id, cx.grpc_add(&caller, &extra));
                ensure(id, cart.items.len() == 4, "expected 4 items after the add");
                cart
            },
            BatchSize::PerIteration,
        )
    });
    if calls.get() > 0 {
        block(
            &cx.runtime,
            id,
            measure_latencies(
                id,
                pass_size(300, 2),
                async |_| cx.refill(&base).await,
                async |()| cx.grpc_add(&caller, &extra).await.map(drop),
            ),
        );
        cx.check(id, &before, one_evaluation);
    }

    let id = "cart/grpc/get_cart";
    let caller = cx.caller(GRPC_GET);
    block(&cx.runtime, id, cx.grpc_get(&caller));
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench_with_parameter("grpc", "get_cart", |b| {
        b.iter_async(&cx.runtime, || {
            calls.set(calls.get() + 1);
            async {
                let cart = block_ok(id, cx.grpc_get(&caller).await);
                ensure(id, cart.items.len() == 3, "expected 3 items");
                cart
            }
        })
    });
    if calls.get() > 0 {
        let pass = block(
            &cx.runtime,
            id,
            measure_latencies(
                id,
                pass_size(1000, 2),
                async |_| Ok(()),
                async |()| cx.grpc_get(&caller).await.map(drop),
            ),
        );
        let reads = calls.get() + pass.requests;
        cx.check(id, &before, |delta| {
            one_evaluation(delta)?;
            anyhow::ensure!(
                delta.cart.hits == reads && delta.cart.misses == 0,
                "expected {reads} cache hits and no miss"
            );
            // With metrics on (the default), every call went through the server's metrics
            // layer, as in `commerce-server --metrics-addr`.
            if let Some(recorded) = delta.grpc_calls {
                anyhow::ensure!(
                    recorded == reads,
                    "expected the metrics layer to record {reads} calls, not {recorded}"
                );
            }
            Ok(())
        });
    }

    let id = "cart/grpc/remove_item";
    let caller = cx.caller(GRPC_REMOVE);
    let full = cx.cart_with_extra(GRPC_REMOVE);
    let before = cx.env.counters();
    let calls = Cell::new(0_u64);
    group.bench_with_parameter("grpc", "remove_item", |b| {
        b.iter_batched(
            || block(&cx.runtime, id, cx.refill(&full)),
            |()| {
                calls.set(calls.get() + 1);
                let cart = block(&cx.runtime, id, cx.grpc_remove(&caller, &extra));
                ensure(
                    id,
                    cart.items.len() == 3,
                    "expected 3 items after the removal",
                );
                cart
            },
            BatchSize::PerIteration,
        )
    });
    if calls.get() > 0 {
        cx.check(id, &before, one_evaluation);
    }
}

/// Every call of a gRPC benchmark asks the policy engine the same question, so at most one of
/// them evaluates the policies; the others are answered by the decision cache, as in the
/// server.
fn one_evaluation(delta: &Counters) -> anyhow::Result<()> {
    anyhow::ensure!(
        delta.evaluations <= 1,
        "{} policy evaluations: the decision cache did not answer",
        delta.evaluations
    );
    Ok(())
}

/// The value of `result`, or the end of the run.
fn block_ok<T>(id: &str, result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|error| fail(id, error))
}

fn cart(c: &mut Criterion) {
    let started = Instant::now();
    let runtime = bench_harness::runtime().unwrap_or_else(|error| fail(SUITE, error));
    let env = BenchEnv::start(&runtime).unwrap_or_else(|error| fail(SUITE, error));
    let cx = Ctx::load(runtime, env).unwrap_or_else(|error| fail(SUITE, error));
    cx.prepare_statements()
        .unwrap_or_else(|error| fail(SUITE, error.context("preparing the statements")));
    eprintln!(
        "{SUITE}: {}; {PRODUCTS} products and {USERS} carts ready in {:.1} s",
        cx.env.describe(),
        started.elapsed().as_secs_f64()
    );

    let mut group = Group::new(c, SUITE);
    cx.env.count_round_trips(&mut group);
    floors(&mut group, &cx);
    // The machine floors (CPU, memory, allocator): what the gate normalises by, per resource.
    bench_harness::floors::register(&mut group);
    add_item(&mut group, &cx);
    remove_item(&mut group, &cx);
    get_cart_hit(&mut group, &cx, "cart/get_cart_hit", HIT, 3);
    get_cart_cold(&mut group, &cx);
    get_cart_hit(&mut group, &cx, "cart/get_cart_items/10", TEN_ITEMS, 10);
    mixed(&mut group, &cx);
    for tasks in CONCURRENCY {
        concurrent_add(&mut group, &cx, tasks);
    }
    for tasks in CONCURRENCY {
        concurrent_get(&mut group, &cx, tasks);
    }
    grpc(&mut group, &cx);
    group.finish();

    let Ctx { runtime, env, .. } = cx;
    block(&runtime, SUITE, env.shutdown());
    eprintln!("{SUITE}: done in {:.1} s", started.elapsed().as_secs_f64());
}

bench_harness::main!(cart);

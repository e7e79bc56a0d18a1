//! PostgreSQL going away under the API and coming back: calls are refused with `UNAVAILABLE`
//! within a moment (not after the pool's acquire timeout each), and they succeed again soon
//! after the database answers.
//!
//! The database is taken away by a TCP proxy between the pool and the server, which the test
//! opens and closes: closing it breaks every connection and refuses new ones, as a crashed or
//! partitioned server would, without stopping the PostgreSQL the other tests share.
//!
//! A server that killed the pool's connections while they sat idle is another case: the database
//! is there, so the caller should not notice at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use commerce::Commerce;
use commerce::cache::CartCache;
use commerce::grpc::identity::request;
use commerce::grpc::proto::{
    AddItemRequest, CreateOrderRequest, GetCartRequest, GetOrderRequest, ListOrdersRequest,
};
use commerce::ids::{ProductId, TenantId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::Code;

use crate::support::{Api, Env, customer, failure};

/// A TCP proxy to `target` that can be cut (every connection closed, new ones closed at once)
/// and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> anyhow::Result<Proxy> {
        Proxy::start_on(0, target).await
    }

    /// On `port` of 127.0.0.1 (0: any free port).
    async fn start_on(port: u16, target: String) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0_u64);
        let accepting = Arc::clone(&up);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cuts = cuts.clone();
                // Only a cut after this connection was accepted ends it.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Ok(Proxy { port, up, cut })
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_refused_fast_and_used_again_when_it_returns() -> anyhow::Result<()> {
    let services = provision::shared()?;
    let db = services.database(&commerce::MIGRATOR).await?;
    let url: url::Url = db.url().parse()?;
    let target = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(target).await?;
    let mut through = url.clone();
    through
        .set_port(Some(proxy.port))
        .map_err(|()| anyhow::anyhow!("cannot set the port of {url}"))?;
    // The acquire timeout of a server that would otherwise make every call wait for it.
    let acquire_timeout = Duration::from_secs(10);
    let pool = commerce::db::pool_options()
        .max_connections(4)
        .acquire_timeout(acquire_timeout)
        .connect(through.as_str())
        .await?;
    let engine = authz::PolicyEngine::new(authz::PolicySet::shipped()?);
    // No cart cache: every read goes to the database.
    let commerce = Commerce::new(pool, CartCache::disabled(), Arc::new(engine));
    let breaker = commerce.carts.breaker().clone();
    let mut api = Api::start(commerce).await?;
    let me = customer(TenantId::new_random());
    let get = || request(&me, GetCartRequest::default());
    api.carts.get_cart(get()).await?;

    proxy.cut();
    // The first call finds out: on its broken connection, or, waiting for a new one, when the
    // breaker's own check fails after `SUSPECT_AFTER`; not after the acquire timeout.
    let started = Instant::now();
    let status = failure(api.carts.get_cart(get()).await)?;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let first = started.elapsed();
    eprintln!("the first call after the cut failed after {first:?}");
    assert!(
        first < commerce::db::SUSPECT_AFTER + Duration::from_secs(1),
        "{first:?} (acquire timeout {acquire_timeout:?})"
    );
    // Every call after it is refused at once, reads and writes alike.
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let started = Instant::now();
        let status = if i % 2 == 0 {
            failure(api.carts.get_cart(get()).await)?
        } else {
            let list = ListOrdersRequest {
                page_size: 10,
                ..Default::default()
            };
            failure(api.orders.list_orders(request(&me, list)).await)?
        };
        slowest = slowest.max(started.elapsed());
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(status.message(), "database unavailable, retry later");
    }
    eprintln!("with the database gone: the slowest of 10 refusals took {slowest:?}");
    assert!(slowest < Duration::from_millis(250), "{slowest:?}");
    assert!(breaker.stats().rejected >= 10, "{:?}", breaker.stats());

    proxy.restore();
    let back = Instant::now();
    loop {
        match api.carts.get_cart(get()).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(
                    back.elapsed() < Duration::from_secs(5),
                    "still refused 5 s after the database returned"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let recovery = back.elapsed();
    eprintln!("calls succeed again {recovery:?} after the database returned");
    assert!(recovery < Duration::from_secs(2), "{recovery:?}");
    assert_eq!(breaker.stats().trips, 1);
    assert!(!breaker.stats().open);
    Ok(())
}

/// A call that must open a connection to a database that is gone does not wait out the pool's
/// acquire timeout (the pool retries connecting until then): after `SUSPECT_AFTER` the breaker
/// checks, opens, and the call fails with `UNAVAILABLE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_a_connection_to_a_lost_database_fails_within_a_moment()
-> anyhow::Result<()> {
    let services = provision::shared()?;
    let db = services.database(&commerce::MIGRATOR).await?;
    let url: url::Url = db.url().parse()?;
    let target = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    // A port nobody listens on: connections are refused, as by a stopped server, and the pool
    // retries them until its acquire timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut through = url.clone();
    through
        .set_port(Some(port))
        .map_err(|()| anyhow::anyhow!("cannot set the port of {url}"))?;
    let acquire_timeout = Duration::from_secs(10);
    // No connection yet: the first call has to open one.
    let pool = commerce::db::pool_options()
        .max_connections(4)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(through.as_str())?;
    let engine = authz::PolicyEngine::new(authz::PolicySet::shipped()?);
    let commerce = Commerce::new(pool, CartCache::disabled(), Arc::new(engine));
    let breaker = commerce.carts.breaker().clone();
    let mut api = Api::start(commerce).await?;
    let me = customer(TenantId::new_random());

    let started = Instant::now();
    let status = failure(
        api.carts
            .get_cart(request(&me, GetCartRequest::default()))
            .await,
    )?;
    let waited = started.elapsed();
    eprintln!("the call waiting for a connection failed after {waited:?}");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(waited >= commerce::db::SUSPECT_AFTER, "{waited:?}");
    assert!(
        waited < commerce::db::SUSPECT_AFTER + Duration::from_secs(1),
        "{waited:?} (acquire timeout {acquire_timeout:?})"
    );
    assert_eq!(breaker.stats().trips, 1, "{:?}", breaker.stats());

    // The database "returns" on that port.
    let _proxy = Proxy::start_on(port, target).await?;
    let back = Instant::now();
    while api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await
        .is_err()
    {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "still refused 5 s later"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A pool that is only busy is not an outage: a call that waited out the acquire timeout gets
/// `UNAVAILABLE`, but the breaker checks with a connection of its own, finds the database
/// answering and stays closed, so the next call is served instead of refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_does_not_open_the_breaker() -> anyhow::Result<()> {
    let services = provision::shared()?;
    let db = services.database(&commerce::MIGRATOR).await?;
    let pool = commerce::db::pool_options()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect(db.url())
        .await?;
    let engine = authz::PolicyEngine::new(authz::PolicySet::shipped()?);
    let commerce = Commerce::new(pool.clone(), CartCache::disabled(), Arc::new(engine));
    let breaker = commerce.carts.breaker().clone();
    let me = customer(TenantId::new_random());

    let held = pool.acquire().await?;
    let busy = commerce.carts.get_cart(me.tenant, me.user).await;
    assert!(
        matches!(
            busy,
            Err(commerce::Error::Unavailable(sqlx::Error::PoolTimedOut))
        ),
        "{busy:?}"
    );
    // Longer than the check can take.
    tokio::time::sleep(commerce::db::PROBE_TIMEOUT + Duration::from_millis(300)).await;
    assert_eq!(breaker.stats().trips, 0, "{:?}", breaker.stats());
    drop(held);
    commerce.carts.get_cart(me.tenant, me.user).await?;
    Ok(())
}

/// The pool does not ping a connection before handing it out (a round trip per checkout), so a
/// connection the server killed while it sat in the pool is found by the next statement. That
/// statement runs again on another connection, so the caller never sees the failure: here after
/// `pg_terminate_backend` of every pooled connection, the next reads and writes all succeed and
/// the breaker never opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_killed_are_replaced_without_a_failure() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let products = env.products(tenant, &[(250, 100), (999, 100)]).await?;
    let me = customer(tenant);
    let add = |product: &ProductId| {
        request(
            &me,
            AddItemRequest {
                product_id: product.to_string(),
                quantity: 1,
            },
        )
    };
    // Fill the pool: calls in parallel, each holding a connection for a moment.
    let callers = (0..8).map(|_| {
        let pool = env.pool.clone();
        async move { sqlx::query("SELECT pg_sleep(0.05)").execute(&pool).await }
    });
    for outcome in futures::future::join_all(callers).await {
        outcome?;
    }
    let pooled = env.pool.num_idle();
    assert!(pooled >= 2, "only {pooled} idle connections in the pool");
    api.carts.add_item(add(&products[0])).await?;

    let killed = kill_backends(&env).await?;
    assert!(
        killed >= pooled as i64,
        "killed {killed} of {pooled} pooled connections"
    );

    // Writes, reads, an order and its read-back, all on a pool of dead connections.
    api.carts.add_item(add(&products[1])).await?;
    let order = api
        .orders
        .create_order(request(&me, CreateOrderRequest::default()))
        .await?
        .into_inner();
    assert_eq!(order.items.len(), 2);
    kill_backends(&env).await?;
    let read = api
        .orders
        .get_order(request(
            &me,
            GetOrderRequest {
                order_id: order.id.clone(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    assert_eq!(read.id, order.id);
    kill_backends(&env).await?;
    let cart = env.commerce.carts.clear_cart(tenant, me.user).await?;
    assert!(cart.items.is_empty());
    assert_eq!(env.commerce.carts.breaker().stats().trips, 0);
    assert_eq!(env.commerce.orders.breaker().stats().trips, 0);
    Ok(())
}

/// Terminates every other session of the test's database, and waits until they are gone;
/// returns how many there were.
async fn kill_backends(env: &Env) -> anyhow::Result<i64> {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect_with(&env.pool.connect_options()).await?;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} sessions outlived their termination"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin.close().await?;
    Ok(killed)
}

//! How the services talk to PostgreSQL: the pool's settings, the retry of a statement that met a
//! dead pooled connection, and a circuit breaker.
//!
//! # One round trip per operation
//!
//! Every operation is one statement (the writes call the server-side functions of migration
//! `0005`), and the pool does not ping a connection before handing it out (sqlx's
//! `test_before_acquire`, a round trip per checkout). A connection the server closed while it sat
//! in the pool (a restart, `pg_terminate_backend`, an idle timeout) is found by the statement
//! itself, and [`retry_stale`] runs the statement again on another connection when that is safe.
//! A connection idle for longer than [`PING_IDLE_AFTER`] is still pinged before use: after a
//! quiet spell one round trip is cheap, and it spares a stale connection's failure.
//!
//! # The most recently used connection first
//!
//! sqlx's pool hands out its idle connections oldest first (a FIFO queue), so a pool of 20 used
//! one call at a time sends consecutive statements to 20 different server processes in turn,
//! each with cold caches: measured with the cart suite, `cart/add_item` took 580-780 µs with the
//! pool of 20 and 380-400 µs with a pool of 2, in the same run (the statement's own time in
//! `pg_stat_statements`: 340 µs against 90 µs in a loop on one connection). So the services keep
//! the connections their statements just used ([`HOT`] at most per [`Breaker`]: the services
//! that `Commerce::new` builds share one per pool) and take those first, the most recently used
//! first, as PgBouncer reuses server connections by default. Only a connection whose statement
//! succeeded is kept; one is kept only while the pool has idle connections of its own and no
//! call of the breaker's services waits for one, so that none of them waits for a connection
//! that sits here. Every [`HAND_BACK_EVERY`] a task hands the kept ones back to the pool if it
//! has no idle connection (another user of the pool, e.g. the services of another breaker, may
//! be waiting: it waits up to that long), and hands back those unused for [`PING_IDLE_AFTER`];
//! every [`RETURN_ALL_EVERY`] it hands all of them back, so that the pool's rules on return
//! (`max_lifetime`, `after_release`) apply to them too; at the pool's close it hands them back
//! at once (`close` waits for them). A kept connection skips what the pool does when it hands
//! one out (its `before_acquire`): it is pinged, within the acquire timeout, only if it was
//! kept longer than [`PING_IDLE_AFTER`], as `pool_options`' own check does.
//!
//! # The breaker
//!
//! When the database cannot be reached, calls fail at once with `UNAVAILABLE` instead of each
//! waiting out the pool's acquire timeout, and a background probe closes the breaker as soon as
//! the database answers again.
//!
//! The Redis caches have the same idea (`tiered_cache`'s breaker, the cart cache's cool-down),
//! but there the answer is the fallback (PostgreSQL, L1, the loader); here there is none, so the
//! point is only to answer quickly and to come back quickly. A call that has waited
//! [`SUSPECT_AFTER`] for a connection may be waiting for a database that is gone (the pool
//! retries a refused connection until its acquire timeout, seconds): the breaker then tries a
//! connection of its own, and if that fails outright (refused, reset; not merely slow, which an
//! overloaded machine also is) it opens, and the calls still waiting for a connection end with
//! `UNAVAILABLE` at once. Only the wait for a connection is given up: a statement once sent,
//! and what a call does after it (the cache's invalidation), always runs to its end. Every call
//! after that is refused in microseconds while the probe — one connection attempt every [`PROBE_INTERVAL`], each bounded by
//! [`PROBE_TIMEOUT`] — watches for the database's return. A pool that timed out, or a server
//! that refused a connection for their number (`53300`), may only be busy: then one connection
//! of the breaker's own decides, and the breaker opens only if that fails too (a spike of load
//! must not become an outage of its own making).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgPool, Postgres};
use tokio::sync::Notify;

use crate::Error;
use crate::metrics::Metrics;

/// A pooled connection idle for longer than this is pinged before it is handed out.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(10);

/// At most this many connections are kept for reuse, most recently used first, per breaker (see
/// the module docs).
pub const HOT: usize = 4;

/// How often the kept connections are handed back to a pool that has no idle connection left.
pub const HAND_BACK_EVERY: Duration = Duration::from_millis(50);

/// How often every kept connection is handed back to the pool, used or not, so that the pool's
/// rules on return (`max_lifetime`) apply to them too.
pub const RETURN_ALL_EVERY: Duration = Duration::from_secs(60);

/// The pool options every user of the commerce services should start from: no ping on every
/// checkout, a ping after [`PING_IDLE_AFTER`] of idleness (see the module docs).
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IDLE_AFTER {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Whether a statement may run again after its connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// It only reads: running it twice is harmless, so any broken connection is retried.
    Read,
    /// It writes: it is retried only when the server ended the session of an idle connection
    /// (`57P01` admin shutdown: `pg_terminate_backend`, a server restart), which a backend
    /// reports when it next reads a command, before running it. Not on `57P02` (crash shutdown,
    /// sent from a signal handler, possibly after the commit) nor when the connection just
    /// broke: then the statement may have committed.
    Write,
}

/// What a statement does, for the `operation` label of `commerce_db_query_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    AddItem,
    RemoveItem,
    ClearCart,
    LoadCart,
    CreateOrder,
    GetOrder,
    ListOrders,
}

impl Operation {
    /// Every operation, in discriminant order.
    pub const ALL: [Operation; 7] = [
        Operation::AddItem,
        Operation::RemoveItem,
        Operation::ClearCart,
        Operation::LoadCart,
        Operation::CreateOrder,
        Operation::GetOrder,
        Operation::ListOrders,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::AddItem => "add_item",
            Operation::RemoveItem => "remove_item",
            Operation::ClearCart => "clear_cart",
            Operation::LoadCart => "load_cart",
            Operation::CreateOrder => "create_order",
            Operation::GetOrder => "get_order",
            Operation::ListOrders => "list_orders",
        }
    }
}

/// Runs `statement` on a connection of `pool` and, while it fails on a pooled connection that
/// turns out to be dead, runs it again on another one: at most once per pooled connection plus
/// one, so a pool whose every connection the server killed recovers in one call, and a database
/// that is really gone still fails (the next attempts need a new connection, and that fails
/// differently).
///
/// The connection is acquired here, explicitly, so that with `metrics` the wait for it
/// (`commerce_db_pool_acquire_seconds`) and the statement (`commerce_db_query_seconds` of
/// `operation`) are timed apart; without metrics nothing is timed. `statement` owns the
/// connection and gives it back with its result, so that a connection whose statement succeeded
/// can be kept for the next one (see the module docs); a closure over `&mut PgConnection` would
/// make the handlers' futures generic over that borrow's lifetime, which rustc cannot prove
/// `Send` for.
pub(crate) async fn retry_stale<T, F, Fut>(
    pool: &PgPool,
    metrics: Option<&Metrics>,
    operation: Operation,
    replay: Replay,
    mut statement: F,
) -> Result<T, sqlx::Error>
where
    F: FnMut(PoolConnection<Postgres>) -> Fut,
    Fut: Future<Output = (PoolConnection<Postgres>, Result<T, sqlx::Error>)>,
{
    let attempts = pool.options().get_max_connections() + 1;
    let mut attempt = 1;
    loop {
        let result = match metrics {
            None => match acquire(pool).await {
                Ok(connection) => {
                    let (connection, result) = statement(connection).await;
                    release(pool, connection, result.is_ok());
                    result
                }
                Err(error) => Err(error),
            },
            Some(metrics) => {
                let asked = Instant::now();
                let acquired = acquire(pool).await;
                let got = Instant::now();
                metrics.connection_acquired(got - asked);
                match acquired {
                    Ok(connection) => {
                        let (connection, result) = statement(connection).await;
                        metrics.statement_ran(operation, got.elapsed());
                        release(pool, connection, result.is_ok());
                        result
                    }
                    Err(error) => Err(error),
                }
            }
        };
        match result {
            Err(error) if attempt < attempts && is_stale(&error, replay) => {
                tracing::debug!(%error, attempt, "dead pooled connection; running the statement again");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Whether `error` says the connection was dead, in a way that makes running the statement again
/// safe for `replay`.
fn is_stale(error: &sqlx::Error, replay: Replay) -> bool {
    match error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("57P01") => true,
            Some("57P02") => replay == Replay::Read,
            _ => false,
        },
        sqlx::Error::Io(io) => {
            replay == Replay::Read
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                )
        }
        _ => false,
    }
}

/// How long a call waits for a connection before the breaker checks that the database is still
/// there (at most one check per this long).
pub const SUSPECT_AFTER: Duration = Duration::from_millis(250);

/// How often the probe tries the database while the breaker is open.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// How long one probe may take: a connection and a `SELECT 1`.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The breaker of one pool; cheap to clone (the clones share the state).
#[derive(Clone, Debug)]
pub struct Breaker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    open: AtomicBool,
    /// A [`Breaker::check`] is running.
    checking: AtomicBool,
    options: PgConnectOptions,
    trips: AtomicU64,
    rejected: AtomicU64,
    /// Woken when the breaker opens: the calls waiting for the database end.
    opened: Notify,
    /// When the last suspicion check started, in ms from `epoch`.
    suspected_ms: AtomicU64,
    epoch: Instant,
    /// The connections kept for reuse, the most recently used last, with when each was kept.
    hot: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    /// Calls of the services looking for a connection now (kept or from the pool).
    waiting: AtomicUsize,
    /// Whether a task hands the kept connections back when the pool closes.
    watching: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A kept connection dropped returns to its pool from a spawned task, which needs a
        // runtime; outside one, it is detached from the pool (and closed) instead.
        if tokio::runtime::Handle::try_current().is_err() {
            let hot = self.hot.get_mut().unwrap_or_else(PoisonError::into_inner);
            for (connection, _) in hot.drain(..) {
                drop(connection.detach());
            }
        }
    }
}

/// What the breaker did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BreakerStats {
    /// Times it opened (the database became unreachable).
    pub trips: u64,
    /// Calls refused at once while it was open.
    pub rejected: u64,
    /// Whether it is open now.
    pub open: bool,
}

impl Breaker {
    /// A closed breaker for `pool`; the probe connects with the pool's own options.
    pub fn new(pool: &PgPool) -> Self {
        Breaker {
            inner: Arc::new(Inner {
                open: AtomicBool::new(false),
                checking: AtomicBool::new(false),
                options: (*pool.connect_options()).clone(),
                trips: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                opened: Notify::new(),
                suspected_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                hot: Mutex::new(Vec::with_capacity(HOT)),
                waiting: AtomicUsize::new(0),
                watching: AtomicBool::new(false),
            }),
        }
    }

    /// Runs `operation` unless the breaker is open (then [`Error::DatabaseDown`] at once), and
    /// opens it if the operation found the database unreachable ([`Error::Unavailable`]).
    pub async fn guard<T>(
        &self,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        if self.inner.open.load(Ordering::Acquire) {
            self.inner.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::DatabaseDown);
        }
        // The operation's waits for a connection (`acquire`) find the breaker here.
        let result = GUARDED_BY.scope(self.clone(), operation).await;
        if let Err(Error::Unavailable(error)) = &result {
            if is_saturation(error) {
                self.check();
            } else {
                self.trip();
            }
        }
        result
    }

    /// Resolves if the breaker opens while a call waits for a connection: after
    /// [`SUSPECT_AFTER`] the database is checked (one check per [`SUSPECT_AFTER`] for all the
    /// calls waiting), and if it refuses, the breaker opens. Pending while it stays closed.
    async fn opened_while_waiting(&self) {
        tokio::time::sleep(SUSPECT_AFTER).await;
        let opened = self.inner.opened.notified();
        let mut opened = std::pin::pin!(opened);
        // Registered before the flag is read: an opening in between is not missed.
        opened.as_mut().enable();
        if self.inner.open.load(Ordering::Acquire) {
            return;
        }
        let now = u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.inner.suspected_ms.load(Ordering::Relaxed);
        let every = u64::try_from(SUSPECT_AFTER.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= every)
            && self
                .inner
                .suspected_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.check_suspected();
        }
        opened.await;
    }

    /// A call has waited long for a connection: one connection attempt of the breaker's own, and
    /// the breaker opens only if it fails outright. A slow attempt or a full server proves
    /// nothing (an overloaded machine is slow too): then the calls go on waiting, and the pool's
    /// own timeout decides as before.
    fn check_suspected(&self) {
        self.check_then(|outcome| outcome == Some(false));
    }

    /// The counters.
    pub fn stats(&self) -> BreakerStats {
        BreakerStats {
            trips: self.inner.trips.load(Ordering::Relaxed),
            rejected: self.inner.rejected.load(Ordering::Relaxed),
            open: self.inner.open.load(Ordering::Acquire),
        }
    }

    /// The pool timed out, or the server refused a connection for their number: an overload
    /// or an outage? One connection attempt tells, in the background; only an outage opens the
    /// breaker (refusing every call because the pool is busy would turn a spike into an outage).
    fn check(&self) {
        self.check_then(|outcome| outcome != Some(true));
    }

    /// One attempt of [`try_once`] in the background (none while another runs); the breaker
    /// opens when `trips` says so of its outcome.
    fn check_then(&self, trips: fn(Option<bool>) -> bool) {
        if self.inner.checking.swap(true, Ordering::AcqRel) {
            return; // a check is running
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let outcome = try_once(&inner.options).await;
            inner.checking.store(false, Ordering::Release);
            if trips(outcome) {
                Breaker { inner }.trip();
            }
        });
    }

    fn trip(&self) {
        if self.inner.open.swap(true, Ordering::AcqRel) {
            return; // already open: its probe is running
        }
        self.inner.trips.fetch_add(1, Ordering::Relaxed);
        self.inner.opened.notify_waiters();
        tracing::warn!("PostgreSQL unreachable: refusing calls until it answers again");
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(probe(weak));
    }
}

/// Tries the database until it answers, then closes the breaker. Stops if the breaker is gone.
async fn probe(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if answers(&inner.options).await {
            inner.open.store(false, Ordering::Release);
            tracing::info!("PostgreSQL answers again: calls are let through");
            return;
        }
    }
}

/// Whether the database answers a connection of its own within [`PROBE_TIMEOUT`]: it runs a
/// `SELECT 1`, or refuses the connection for their number (`53300`: it is up, only full).
async fn answers(options: &PgConnectOptions) -> bool {
    try_once(options).await == Some(true)
}

/// One connection of its own and a `SELECT 1`: `Some(true)` it answered (or refused the
/// connection for their number, `53300`: it is up, only full), `Some(false)` it failed,
/// `None` no answer within [`PROBE_TIMEOUT`].
async fn try_once(options: &PgConnectOptions) -> Option<bool> {
    let attempt = async {
        let mut connection = options.connect().await?;
        sqlx::query("SELECT 1").execute(&mut connection).await?;
        connection.close().await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) => Some(true),
        Ok(Err(error)) => {
            Some(is_saturation(&error) && !matches!(error, sqlx::Error::PoolTimedOut))
        }
        Err(_) => None,
    }
}

tokio::task_local! {
    /// The breaker whose [`Breaker::guard`] the current operation runs in.
    static GUARDED_BY: Breaker;
}

/// A connection of `pool`; inside a [`Breaker::guard`], the wait ends with
/// `PoolTimedOut` (which callers see as `UNAVAILABLE`) as soon as the breaker opens: no
/// statement was sent, so nothing is left half done.
async fn acquire(pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
    let Ok(breaker) = GUARDED_BY.try_with(Breaker::clone) else {
        return pool.acquire().await;
    };
    // Counted before the kept connections are looked at: a connection released from now on is
    // handed to the pool, where this call may be waiting, rather than kept.
    let _waiting = Waiting::new(&breaker.inner);
    while let Some((mut connection, kept)) = breaker.take_hot() {
        if pool.is_closed() {
            break;
        }
        if kept.elapsed() <= PING_IDLE_AFTER {
            return Ok(connection);
        }
        // As the pool's `before_acquire` does for its own idle connections, and within the
        // pool's acquire timeout, as there (a half-open connection would not answer at all).
        let limit = pool.options().get_acquire_timeout();
        match tokio::time::timeout(limit, connection.ping()).await {
            Ok(Ok(())) => return Ok(connection),
            Ok(Err(error)) => {
                tracing::debug!(%error, "a kept connection failed its ping; closing it");
                connection.close_on_drop();
            }
            Err(_) => {
                tracing::debug!("a kept connection did not answer its ping; closing it");
                connection.close_on_drop();
            }
        }
    }
    let acquire = std::pin::pin!(pool.acquire());
    tokio::select! {
        biased;
        acquired = acquire => acquired,
        () = breaker.opened_while_waiting() => {
            Err(sqlx::Error::PoolTimedOut)
        }
    }
}

/// Hands a connection back after its statement: kept for the next statement of the services
/// (the most recently used first) when `succeeded` and there is room, else to the pool.
fn release(pool: &PgPool, connection: PoolConnection<Postgres>, succeeded: bool) {
    if !succeeded || pool.is_closed() {
        return; // dropped: the pool decides, as before
    }
    if let Ok(breaker) = GUARDED_BY.try_with(Breaker::clone) {
        breaker.keep(pool, connection);
    }
}

/// Counts a call looking for a connection while it lives.
struct Waiting<'a>(&'a Inner);

impl<'a> Waiting<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(inner)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Breaker {
    /// The most recently kept connection, if any.
    fn take_hot(&self) -> Option<(PoolConnection<Postgres>, Instant)> {
        self.inner
            .hot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Keeps `connection` for the next statement, unless that could make a caller wait for it:
    /// only while nobody looks for a connection, the pool has idle connections of its own (so
    /// no caller of the pool waits), and fewer than [`HOT`] are kept. Dropped otherwise (back
    /// to the pool).
    fn keep(&self, pool: &PgPool, connection: PoolConnection<Postgres>) {
        if self.inner.waiting.load(Ordering::SeqCst) > 0 || pool.num_idle() == 0 {
            return;
        }
        {
            let mut hot = self
                .inner
                .hot
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if hot.len() >= HOT {
                return;
            }
            hot.push((connection, Instant::now()));
            // The pool closed since `release` looked: its `close` waits for this connection,
            // and the task that hands the kept ones back at the close may be gone already.
            if pool.is_closed() {
                hot.clear();
                return;
            }
        }
        // A call that started looking after the check above, and found nothing kept, waits in
        // the pool: it gets this connection from there.
        if self.inner.waiting.load(Ordering::SeqCst) > 0 {
            drop(self.take_hot());
        }
        self.watch(pool);
    }

    /// Once per breaker: a task that hands the kept connections back to the pool when it
    /// closes (the pool's `close` waits for every connection it handed out); whenever the pool
    /// has no idle connection left at one of its looks ([`HAND_BACK_EVERY`]), since a user of
    /// the pool other than these services (another breaker's, a direct one) may be waiting for
    /// one; those kept unused for [`PING_IDLE_AFTER`] (a quiet service does not hold them); and
    /// all of them every [`RETURN_ALL_EVERY`], so that the pool applies its own rules on
    /// return (`max_lifetime`) to connections that are reused all the time. It holds the
    /// breaker weakly and ends with it (a breaker dropped hands its connections back by
    /// dropping them).
    fn watch(&self, pool: &PgPool) {
        if self.inner.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.watching.store(false, Ordering::Release);
            return;
        };
        /// Lets the next kept connection start another task if this one ends for any reason
        /// (its runtime shut down, say).
        struct Watching(Weak<Inner>);
        impl Drop for Watching {
            fn drop(&mut self) {
                if let Some(inner) = self.0.upgrade() {
                    inner.watching.store(false, Ordering::Release);
                }
            }
        }
        let pool = pool.clone();
        let watching = Watching(Arc::downgrade(&self.inner));
        runtime.spawn(async move {
            let mut closed = std::pin::pin!(pool.close_event());
            let mut every = tokio::time::interval(HAND_BACK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut all_since = Instant::now();
            loop {
                let closing = tokio::select! {
                    () = &mut closed => true,
                    _ = every.tick() => false,
                };
                let Some(inner) = watching.0.upgrade() else {
                    return;
                };
                let mut hot = inner.hot.lock().unwrap_or_else(PoisonError::into_inner);
                if closing || pool.num_idle() == 0 || all_since.elapsed() >= RETURN_ALL_EVERY {
                    hot.clear();
                    all_since = Instant::now();
                } else {
                    hot.retain(|(_, kept)| kept.elapsed() < PING_IDLE_AFTER);
                }
                drop(hot);
                if closing {
                    return;
                }
            }
        });
    }

    /// How many connections are kept for reuse now.
    pub fn kept(&self) -> usize {
        self.inner
            .hot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Errors that a busy database gives as well as an unreachable one.
fn is_saturation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().as_deref() == Some("53300"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_listed_in_discriminant_order() {
        for (index, operation) in Operation::ALL.iter().enumerate() {
            assert_eq!(*operation as usize, index, "{operation:?}");
        }
    }
}

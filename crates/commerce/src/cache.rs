//! The Redis read-through cache for carts.
//!
//! Entries are Redis hashes under `{prefix}cart:{tenant}:{user}`: field `v` holds the cart version
//! the entry describes, field `d` the cart encoded with postcard. A write does not delete the
//! entry but replaces it, after its commit, with a *tombstone* (`v` = the version the write
//! produced, no `d`), and both writes are Lua scripts that never lower `v`. That closes the race
//! of plain delete-on-write: a reader that read the database before a write committed, and fills
//! the cache after the write's invalidation, carries an older version than the tombstone and is
//! refused, instead of caching a stale cart until the entry expires.
//!
//! Redis is an optimisation, never a dependency: every failure (unreachable server, error,
//! timeout, undecodable entry) is counted, logged once per outage, and the call goes on without
//! the cache (a read is answered from PostgreSQL). An error starts a short cool-down in which the
//! cache is bypassed, so a refused or broken connection costs nothing per request; an entry that
//! cannot be read (undecodable, or a key that holds another type) is that read's alone and
//! starts none.
//!
//! A timeout alone is not taken for an outage: a server too busy to read Redis' answers in time
//! (overload) times out too, and bypassing the cache then sends every read to PostgreSQL and adds
//! to the overload (the `capacity` load profile showed that cascade). A timeout starts one check
//! instead, a `PING` given as long as the cool-down to answer, sent from a thread and a
//! connection of its own (the busy runtime would read its answer late too). Every command keeps
//! waiting for its own answer meanwhile, and uses it if it comes: it must, because redis'
//! multiplexed connection never sends a command whose caller stopped waiting before it was
//! written (a fill given up under load was never made, and every read of that cart went on
//! missing). A write waits for its tombstone only the timeout; the tombstone's own task waits
//! on. A check without an answer starts the cool-down and releases the calls still waiting;
//! until Redis answers again, a timeout then starts the cool-down at once (and another check).
//! So a Redis that hangs costs the calls of its first moments up to a cool-down each, and then
//! one timeout per cool-down. A call that waits the whole cool-down without an answer while the
//! check finds Redis answering starts the cool-down too: the shared connection may be dead
//! (half-open) while Redis is fine, and bypassing is cheaper than a cool-down's wait per call.
//!
//! A read that misses loads the cart once for every read of that cart that misses meanwhile
//! ([`CartCache::load_once`]): without it, a cold cache under load sends each read of a cart to
//! PostgreSQL, and at thousands of reads a second the pool's backlog fails them (the `capacity`
//! load profile's stampede at GetCart's start).
//!
//! The reads of the cache that requests make at once go to Redis together, as one pipeline
//! (`read_batches`): a write and a read on the socket per batch rather than per request, which
//! is what a cached read costs the server most after the gRPC stack itself.
//!
//! A tombstone is remembered in this process from before it is sent until it is known to have
//! landed; meanwhile reads of that cart skip the cache, and if it never lands, the next
//! successful fill of the current version overwrites the stale entry. Another process may
//! still read that stale entry until it expires (`ttl`), which bounds the staleness after an
//! outage.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot, watch};

use crate::Error;
use crate::cart::Cart;
use crate::ids::{TenantId, UserId};

/// Writes a cart entry unless the entry holds a newer version. KEYS[1] = key; ARGV = version,
/// encoded cart, TTL in milliseconds.
const FILL: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'v'))
if current and current > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Replaces a cart entry with a tombstone for a new version unless the entry already describes
/// that version or a newer one. KEYS[1] = key; ARGV = version, TTL in milliseconds.
const INVALIDATE: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'v'))
if current and current >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// A load of one cart, shared by the reads that wait for it. The error is behind an `Arc`
/// because [`Error`] cannot be cloned; each waiter gets a replica ([`Error::replica`]).
type Flight = Arc<tokio::sync::OnceCell<Result<Cart, Arc<Error>>>>;

/// At most this many failed invalidations are remembered; beyond it, the TTL bounds staleness.
const MAX_PENDING: usize = 100_000;

/// The longest lifetime of an entry, 100 years in milliseconds: a longer `ttl` is cut to it.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3_600 * 1_000;

/// How to reach Redis and how to use it.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prepended to every key, so that deployments, tests and benchmarks can share a server.
    pub prefix: String,
    /// How long an entry (or tombstone) lives: at least 1 ms, at most 100 years (a longer one
    /// is cut to that).
    pub ttl: Duration,
    /// How long a Redis round trip may take, including (re)connecting, before Redis is
    /// checked (the call keeps waiting for its answer up to `cooldown`; a write waits for its
    /// tombstone only this long).
    pub timeout: Duration,
    /// How long the cache is bypassed after a failure; also how long the check after a
    /// timeout waits for Redis to answer.
    pub cooldown: Duration,
}

impl CacheConfig {
    /// The defaults: entries live 10 minutes, a round trip may take 100 ms before Redis is
    /// checked, and an outage bypasses Redis for a second at a time.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            ttl: Duration::from_secs(600),
            timeout: Duration::from_millis(100),
            cooldown: Duration::from_secs(1),
        }
    }
}

/// A snapshot of the cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from Redis.
    pub hits: u64,
    /// Reads that found no current entry (absent, or a tombstone) and went to PostgreSQL (or
    /// joined a load of the cart under way, see [`CartCache::load_once`]).
    pub misses: u64,
    /// Redis operations that failed (connection, timeout, script or decoding errors).
    pub errors: u64,
    /// Operations skipped without asking Redis: during a cool-down, or for a cart whose
    /// invalidation is still pending.
    pub bypassed: u64,
    /// Calls (reads, fills, tombstones) answered after the timeout (within the cool-down).
    pub late: u64,
}

impl CacheStats {
    /// The counts accumulated between `earlier` and `self` (both snapshots of one cache); the
    /// counters only grow, so a pair taken in the wrong order gives zeros, not a wrap.
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits.saturating_sub(earlier.hits),
            misses: self.misses.saturating_sub(earlier.misses),
            errors: self.errors.saturating_sub(earlier.errors),
            bypassed: self.bypassed.saturating_sub(earlier.bypassed),
            late: self.late.saturating_sub(earlier.late),
        }
    }
}

/// The cart cache; cheap to clone (clones share the connection and the counters).
#[derive(Clone)]
pub struct CartCache(Arc<Inner>);

struct Inner {
    /// `None` for a cache that is switched off.
    redis: Option<ConnectionManager>,
    /// The reads' way to Redis (see [`read_batches`]); `None` when switched off.
    reads: Option<mpsc::UnboundedSender<Read>>,
    /// For the checks after a timeout, which connect on their own (see `check`).
    client: Option<redis::Client>,
    prefix: String,
    ttl_ms: u64,
    timeout: Duration,
    cooldown: Duration,
    /// The time base of `bypass_until_ms`.
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not asked.
    bypass_until_ms: AtomicU64,
    /// Whether a check after a timeout is under way (one at a time).
    checking: AtomicBool,
    /// Whether the last check got no answer, and nothing has been answered since.
    silent: AtomicBool,
    /// Counts the checks that got no answer; the reads waiting past their timeout watch it.
    silenced: watch::Sender<u64>,
    /// Keys whose tombstone could not be written, with the version it carries.
    pending: Mutex<HashMap<String, i64>>,
    /// The loads under way, one per cart (see [`CartCache::load_once`]).
    loads: Mutex<HashMap<(TenantId, UserId), Flight>>,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    bypassed: AtomicU64,
    late: AtomicU64,
}

/// What a cache that is switched on talks to Redis with.
struct Redis {
    manager: ConnectionManager,
    client: redis::Client,
    reads: mpsc::UnboundedSender<Read>,
}

/// A cached entry as `HMGET key v d` reads it: the version, and the encoded cart if the entry
/// is not a tombstone.
type Entry = (Option<i64>, Option<Vec<u8>>);

/// Redis' answer to one read of a batch.
enum Answer {
    Entry(Entry),
    /// Redis answered, but not with an entry: an error for this key alone (a key holding
    /// another type), or a reply of another shape. Like an undecodable entry, it says nothing
    /// about Redis being there, so it starts no cool-down.
    Unreadable(String),
}

/// A read waiting for its entry.
struct Read {
    key: String,
    answer: oneshot::Sender<redis::RedisResult<Answer>>,
}

/// The most reads sent to Redis in one pipeline: enough that a batch out for a slow round trip
/// (5 ms) still carries 200,000 reads a second.
const MAX_BATCH: usize = 1024;

/// Sends the reads to Redis in pipelines: the reads that arrive while the runtime has other
/// work queued, or while the batch before is out, go in one write, and their answers come back
/// in one read.
///
/// Without it every cached read was a write and a read of its own on the Redis socket, each a
/// system call (a write on loopback also runs Redis' side of the delivery): at 15,000 GetCart/s
/// the server made 2 writes and 1.7 reads a call, and the Redis writes were 11% of its CPU
/// samples. redis' multiplexed connection only coalesces the commands that are queued when its
/// task runs, and tokio runs that task right after the one that woke it (its LIFO slot): one
/// command per write. This task yields once before it collects a batch, and tokio runs a
/// yielded task when its worker has nothing else to run (or at its periodic maintenance, every
/// 61 tasks), so the reads that the worker's queued requests make join the batch.
///
/// One batch is out at a time, sent and awaited by this task itself: a batch of its own task
/// (spawned) cost each read on an idle server a task of over 1 KiB (`cargo xtask perf-gate
/// --suite cart`: `cart/get_cart_hit` 2.79 -> 4.07 KiB). A read that comes while a batch is out
/// waits for that batch's answers and goes in the next. Reads whose caller stopped waiting (a
/// timeout, a cancelled request) are left out. A batch waits at most `patience`, longer than any
/// read waits (see `late_answer`), so that a read is always given up by its own timeout first.
/// Ends when the cache, which holds the only sender, is dropped.
async fn read_batches(
    mut redis: ConnectionManager,
    mut reads: mpsc::UnboundedReceiver<Read>,
    patience: Duration,
) {
    let mut batch = Vec::new();
    while let Some(first) = reads.recv().await {
        tokio::task::yield_now().await;
        let mut next = Some(first);
        while let Some(read) = next.take() {
            if !read.answer.is_closed() {
                batch.push(read);
            }
            if batch.len() < MAX_BATCH {
                next = reads.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            read_batch(&mut redis, &mut batch, patience).await;
        }
    }
}

/// Sends one batch of reads as a pipeline and hands each read its answer; leaves `batch` empty.
async fn read_batch(redis: &mut ConnectionManager, batch: &mut Vec<Read>, patience: Duration) {
    let mut pipe = redis::pipe();
    // One read's error (a key holding another type) is its own, not the batch's.
    pipe.ignore_errors();
    for read in batch.iter() {
        pipe.cmd("HMGET").arg(&read.key).arg("v").arg("d");
    }
    let answers =
        match tokio::time::timeout(patience, pipe.query_async::<Vec<redis::Value>>(redis)).await {
            Ok(Ok(values)) if values.len() == batch.len() => values,
            Ok(Ok(values)) => {
                let error = redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "a pipeline of cart reads got the wrong number of answers",
                    format!("{} answers to {} reads", values.len(), batch.len()),
                ));
                return fail(batch, &error);
            }
            Ok(Err(error)) => return fail(batch, &error),
            Err(_) => {
                let error = redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer to a pipeline of cart reads",
                ));
                return fail(batch, &error);
            }
        };
    for (read, value) in batch.drain(..).zip(answers) {
        let answer = match value {
            redis::Value::ServerError(error) => Answer::Unreadable(error.to_string()),
            value => match redis::from_redis_value::<Entry>(value) {
                Ok(entry) => Answer::Entry(entry),
                Err(error) => Answer::Unreadable(error.to_string()),
            },
        };
        // The reader may have stopped waiting.
        let _ = read.answer.send(Ok(answer));
    }
}

/// Hands every read of `batch` the batch's error; leaves `batch` empty.
fn fail(batch: &mut Vec<Read>, error: &redis::RedisError) {
    for read in batch.drain(..) {
        let _ = read.answer.send(Err(error.clone()));
    }
}

impl fmt::Debug for CartCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CartCache")
            .field("enabled", &self.0.redis.is_some())
            .field("prefix", &self.0.prefix)
            .field("stats", &self.stats())
            .finish()
    }
}

impl CartCache {
    /// A cache over the Redis server at `config.url`. It connects lazily and reconnects by
    /// itself, so this succeeds while Redis is down; it fails for a malformed URL, or when called
    /// outside a tokio runtime (the connection manager spawns a task).
    pub fn connect(config: &CacheConfig) -> Result<Self, redis::RedisError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "CartCache::connect must be called inside a tokio runtime",
            )));
        }
        let client = redis::Client::open(config.url.as_str())?;
        // One connection attempt per request that gets through the cool-down: the cool-down,
        // not the manager's retry loop, paces reconnection, so no request waits for a backoff.
        // No response timeout of the manager's (its default is 500 ms): `answer` bounds each
        // command itself (and `read_batches` each batch), and the check after a timeout waits
        // longer than requests do.
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(None);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        let (reads, batches) = mpsc::unbounded_channel();
        // A batch waits longer than its reads do (the timeout, then the rest of the cool-down;
        // see `late_answer`), so that each read gives up by its own rules.
        let patience = config.cooldown.max(config.timeout) + config.timeout;
        tokio::spawn(read_batches(manager.clone(), batches, patience));
        Ok(Self::build(
            Some(Redis {
                manager,
                client,
                reads,
            }),
            config,
        ))
    }

    /// A cache that never caches: every read goes to PostgreSQL and nothing is counted.
    pub fn disabled() -> Self {
        Self::build(None, &CacheConfig::new("", ""))
    }

    fn build(redis: Option<Redis>, config: &CacheConfig) -> Self {
        let (redis, client, reads) = match redis {
            Some(Redis {
                manager,
                client,
                reads,
            }) => (Some(manager), Some(client), Some(reads)),
            None => (None, None, None),
        };
        Self(Arc::new(Inner {
            redis,
            reads,
            client,
            prefix: config.prefix.clone(),
            // Within what Redis' PEXPIRE accepts: beyond it, FILL's HSET would land and its
            // PEXPIRE fail, leaving an entry that never expires.
            ttl_ms: u64::try_from(config.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_TTL_MS),
            timeout: config.timeout,
            cooldown: config.cooldown,
            epoch: Instant::now(),
            bypass_until_ms: AtomicU64::new(0),
            checking: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            silenced: watch::Sender::new(0),
            pending: Mutex::new(HashMap::new()),
            loads: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            late: AtomicU64::new(0),
        }))
    }

    /// The Redis key of a cart.
    pub fn key(&self, tenant: TenantId, user: UserId) -> String {
        format!("{}cart:{tenant}:{user}", self.0.prefix)
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.0.hits.load(Ordering::Relaxed),
            misses: self.0.misses.load(Ordering::Relaxed),
            errors: self.0.errors.load(Ordering::Relaxed),
            bypassed: self.0.bypassed.load(Ordering::Relaxed),
            late: self.0.late.load(Ordering::Relaxed),
        }
    }

    /// The cached cart, if Redis holds a current entry for it.
    pub async fn get(&self, tenant: TenantId, user: UserId) -> Option<Cart> {
        let reads = self.0.reads.as_ref()?;
        let key = self.key(tenant, user);
        if self.pending_version(&key).is_some() || self.cooling_down() {
            self.0.bypassed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Through the batcher (`read_batches`), which answers every read it takes; the sender
        // is dropped, unanswered, only if the batcher is gone (the runtime is shutting down).
        let (answer, answered) = oneshot::channel();
        let _ = reads.send(Read { key, answer });
        let answer = self
            .answer(async {
                answered.await.unwrap_or_else(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "the cart cache's read batcher has stopped",
                    )))
                })
            })
            .await?;
        let (_version, data) = match answer {
            Answer::Entry(entry) => entry,
            Answer::Unreadable(error) => {
                self.0.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = %self.key(tenant, user), %error, "unreadable cart cache entry");
                return None;
            }
        };
        let Some(data) = data else {
            self.0.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match postcard::from_bytes::<Cart>(&data) {
            Ok(cart) => {
                self.0.hits.fetch_add(1, Ordering::Relaxed);
                Some(cart)
            }
            Err(error) => {
                // An entry written by an incompatible build; the next fill replaces it.
                self.0.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = %self.key(tenant, user), %error, "undecodable cart cache entry");
                None
            }
        }
    }

    /// Runs `load` (a read of the cart from PostgreSQL) once for all the reads of the cart that
    /// call this while it runs, and fills the cache with its cart: a read that finds a load of
    /// its cart under way waits for that load's result (or error) instead of starting another.
    /// The read that ran the load fills the cache after the others have their cart (a fill may
    /// wait for Redis as long as the cool-down), and returns once it has landed, so that its
    /// caller's next read hits. If the
    /// read running the load is dropped (its caller went away), a waiting read runs its own
    /// `load` in its place. A write ends the sharing: [`CartCache::invalidate`] forgets the load
    /// under way, so a read that starts after a write returned runs a load of its own, and never
    /// gets a cart read before the write. This holds with the cache switched off too.
    ///
    /// Hand-written around tokio's `OnceCell` (which does the waiting and the hand-over on
    /// cancellation) rather than a single-flight crate, because the sharing must end at a
    /// write, which those crates have no way to say.
    pub async fn load_once<F>(&self, tenant: TenantId, user: UserId, load: F) -> Result<Cart, Error>
    where
        F: Future<Output = Result<Cart, Error>>,
    {
        // Boxed once: the closure below and the future it makes would each hold a copy of it,
        // and a load's future is large (the gate measured 72 KiB more per cold read unboxed).
        let load = Box::pin(load);
        let flight = Arc::clone(
            self.0
                .loads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry((tenant, user))
                .or_default(),
        );
        // The read that runs the load keeps its own result (an error as it came, source and
        // all); the others get a copy.
        let mut own = None;
        let shared = flight
            .get_or_init(|| async {
                let result = load.await;
                let shared = match &result {
                    Ok(cart) => Ok(cart.clone()),
                    Err(error) => Err(Arc::new(error.replica())),
                };
                own = Some(result);
                shared
            })
            .await
            .clone();
        // If every read of a load is dropped before it ends, its entry stays, uninitialised,
        // until the cart is read (which runs the load) or written: at most one per cart.
        {
            let mut loads = self.0.loads.lock().unwrap_or_else(PoisonError::into_inner);
            // Unless a write already forgot it (and a new load may have taken its place).
            if loads
                .get(&(tenant, user))
                .is_some_and(|current| Arc::ptr_eq(current, &flight))
            {
                loads.remove(&(tenant, user));
            }
        }
        match own {
            Some(Ok(cart)) => {
                self.fill(tenant, user, &cart).await;
                Ok(cart)
            }
            Some(Err(error)) => Err(error),
            None => shared.map_err(|error| error.replica()),
        }
    }

    /// Caches `cart`, read from PostgreSQL at `cart.version`, unless a newer version is known.
    pub async fn fill(&self, tenant: TenantId, user: UserId, cart: &Cart) {
        let Some(redis) = self.0.redis.as_ref() else {
            return;
        };
        let key = self.key(tenant, user);
        if self
            .pending_version(&key)
            .is_some_and(|pending| pending > cart.version)
        {
            // This reader started before a write whose invalidation is still pending.
            self.0.bypassed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.cooling_down() {
            self.0.bypassed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let data = match postcard::to_allocvec(cart) {
            Ok(data) => data,
            Err(error) => {
                self.0.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%key, %error, "cannot encode a cart for the cache");
                return;
            }
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(FILL)
            .arg(1)
            .arg(&key)
            .arg(cart.version)
            .arg(data)
            .arg(self.0.ttl_ms);
        // Waits for a late answer like a read: a command whose caller went away before the
        // multiplexed connection wrote it is never sent (redis drops it), so a fill given up
        // under load was never made, and every read of the cart went on missing.
        if self.run::<i64>(redis, &cmd).await.is_some() {
            // Whether it wrote or found a newer entry, the entry is no older than this version.
            self.settle(&key, cart.version);
        }
    }

    /// Marks the cart as changed by the write that produced `version` (call after the commit,
    /// and before the write returns): the cached entry, and the load under way, if any (the
    /// reads already waiting for it still get its result; later reads load again).
    pub async fn invalidate(&self, tenant: TenantId, user: UserId, version: i64) {
        self.0
            .loads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(tenant, user));
        if self.0.redis.is_none() {
            return;
        }
        let key = self.key(tenant, user);
        // Remembered until the tombstone is known to have landed, from before it is sent: if
        // the write is dropped while it waits below, or the tombstone never lands, reads of the
        // cart in this process still skip the stale entry.
        self.remember(&key, version);
        if self.cooling_down() {
            self.0.bypassed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The write waits for its tombstone only the timeout. The tombstone is still made if
        // Redis is merely slow, or if the write's caller goes away meanwhile (a command whose
        // caller stopped waiting before the multiplexed connection wrote it is never sent):
        // what is left of it then goes on in a task of its own. Polled here first, so that
        // the common case (an answer within the timeout) spawns nothing.
        let mut landing = Landing(Some(Box::pin(self.clone().land(key, version))));
        let _ = tokio::time::timeout(self.0.timeout, &mut landing).await;
    }

    /// Sends the tombstone of `version` and forgets it as pending once it has landed.
    async fn land(self, key: String, version: i64) {
        let Some(redis) = self.0.redis.as_ref() else {
            return;
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(INVALIDATE)
            .arg(1)
            .arg(&key)
            .arg(version)
            .arg(self.0.ttl_ms);
        if self.run::<i64>(redis, &cmd).await.is_some() {
            self.settle(&key, version);
        }
    }

    /// Remembers that the entry of `key` is older than `version` until a tombstone or a fill of
    /// that version or newer lands (see `settle`).
    fn remember(&self, key: &str, version: i64) {
        let mut pending = self
            .0
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pending.len() < MAX_PENDING || pending.contains_key(key) {
            let entry = pending.entry(key.to_owned()).or_insert(version);
            *entry = (*entry).max(version);
        }
    }

    /// Runs one command. An error is counted, starts a cool-down and is answered with `None`.
    /// A command unanswered after the timeout starts a check of whether Redis is there at all
    /// (unless a check already found it silent: then the cool-down starts at once); the call
    /// keeps waiting for its answer until a check finds Redis silent or the cool-down has
    /// passed (then the cool-down starts), and uses a late answer (counted in `late`). It must
    /// wait: the multiplexed connection never sends a command whose caller stopped waiting
    /// before it was written.
    async fn run<T: redis::FromRedisValue>(
        &self,
        redis: &ConnectionManager,
        cmd: &redis::Cmd,
    ) -> Option<T> {
        let mut connection = redis.clone();
        self.answer(cmd.query_async::<T>(&mut connection)).await
    }

    /// Waits for `query` as [`run`](Self::run) describes.
    async fn answer<T, F>(&self, query: F) -> Option<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        tokio::pin!(query);
        let outcome = match tokio::time::timeout(self.0.timeout, &mut query).await {
            Ok(outcome) => outcome,
            Err(_) => return self.late_answer(query).await,
        };
        match outcome {
            Ok(value) => {
                self.0.silent.store(false, Ordering::Release);
                Some(value)
            }
            // The connection timeout of a reconnection: as slow as an answer after the timeout.
            Err(error) if error.is_timeout() => {
                self.0.errors.fetch_add(1, Ordering::Relaxed);
                self.timed_out();
                None
            }
            Err(error) => {
                self.0.errors.fetch_add(1, Ordering::Relaxed);
                self.cool_down(&error.to_string());
                None
            }
        }
    }

    /// A command past its timeout: the check (or the cool-down) starts, and the call waits on
    /// for the answer.
    async fn late_answer<T, F>(&self, mut query: std::pin::Pin<&mut F>) -> Option<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        // Subscribed before the check can start, so that its verdict is not missed.
        let mut silenced = self.0.silenced.subscribe();
        if !self.timed_out() {
            self.0.errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let rest = self.0.cooldown.saturating_sub(self.0.timeout);
        let answer = tokio::select! {
            answer = tokio::time::timeout(rest, &mut query) => match answer {
                Ok(answer) => Some(answer),
                Err(_) => {
                    // Whatever the check finds: a dead (half-open) shared connection never
                    // answers while Redis answers a new one, and bypassing costs less than a
                    // cool-down's wait per call.
                    self.cool_down("no answer within the cool-down");
                    None
                }
            },
            // The check found Redis silent: the cool-down has started.
            _ = silenced.changed() => None,
        };
        match answer {
            Some(Ok(value)) => {
                self.0.late.fetch_add(1, Ordering::Relaxed);
                self.0.silent.store(false, Ordering::Release);
                Some(value)
            }
            Some(Err(error)) => {
                self.0.errors.fetch_add(1, Ordering::Relaxed);
                if !error.is_timeout() {
                    self.cool_down(&error.to_string());
                }
                None
            }
            None => {
                // Given up, and the cool-down has started.
                self.0.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// What a timeout starts: a check of whether Redis is there, unless a check already found
    /// it silent and nothing has been answered since; then the cool-down starts at once (and
    /// another check, so that an answering Redis is noticed even if every request times out).
    /// Returns whether Redis may still answer (no cool-down was started).
    fn timed_out(&self) -> bool {
        self.check();
        if self.0.silent.load(Ordering::Acquire) {
            self.cool_down("timed out, and the last check got no answer");
            return false;
        }
        true
    }

    /// Starts a check, unless one is under way: Redis is silent if it does not answer a `PING`
    /// within the cool-down, and then the cool-down starts and the reads waiting for a late
    /// answer are released; if it answers, it was only slow (or this process was), and the
    /// cache stays in use.
    ///
    /// The check runs on a thread of its own (tokio's blocking pool) over a connection of its
    /// own. A runtime too busy to read Redis' answers in time, which is what made the call time
    /// out, would read the check's answer late too, and take its own backlog for Redis'
    /// silence: at GetCart's cold start in the `capacity` load profile, every read then went to
    /// PostgreSQL, which kept the overload going.
    fn check(&self) {
        let Some(client) = self.0.client.clone() else {
            return;
        };
        if self.0.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        /// Ends the check even if its task is dropped unfinished (a runtime shutting down).
        struct Checking(Arc<Inner>);
        impl Drop for Checking {
            fn drop(&mut self) {
                self.0.checking.store(false, Ordering::Release);
            }
        }
        let checking = Checking(Arc::clone(&self.0));
        tokio::task::spawn_blocking(move || {
            let cache = CartCache(Arc::clone(&checking.0));
            let started = Instant::now();
            match ping(&client, cache.0.cooldown) {
                Ping::Answered => {
                    cache.0.silent.store(false, Ordering::Release);
                    tracing::debug!(
                        answered_in_ms = duration_ms(started.elapsed()),
                        "a Redis cart cache call timed out, but Redis answers: not an outage"
                    );
                }
                Ping::Failed(error) => cache.cool_down(&format!("timed out, then {error}")),
                Ping::Silent => {
                    cache.0.silent.store(true, Ordering::Release);
                    cache.cool_down(&format!(
                        "timed out, and a PING got no answer within {} ms",
                        duration_ms(cache.0.cooldown)
                    ));
                    cache.0.silenced.send_modify(|checks| *checks += 1);
                }
            }
            drop(checking);
        });
    }

    /// Bypasses Redis for the cool-down; logs the first failure of an outage.
    fn cool_down(&self, error: &str) {
        let now = self.now_ms();
        let until = now.saturating_add(duration_ms(self.0.cooldown));
        let previous = self.0.bypass_until_ms.swap(until, Ordering::Relaxed);
        if previous <= now {
            tracing::warn!(
                %error,
                cooldown_ms = duration_ms(self.0.cooldown),
                "Redis cart cache unavailable; serving carts from PostgreSQL"
            );
        }
    }

    fn cooling_down(&self) -> bool {
        self.now_ms() < self.0.bypass_until_ms.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        duration_ms(self.0.epoch.elapsed())
    }

    fn pending_version(&self, key: &str) -> Option<i64> {
        let pending = self
            .0
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pending.is_empty() {
            None
        } else {
            pending.get(key).copied()
        }
    }

    /// Forgets a pending invalidation once Redis holds `version` or newer for the key.
    fn settle(&self, key: &str, version: i64) {
        let mut pending = self
            .0
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pending.get(key).is_some_and(|&stale| stale <= version) {
            pending.remove(key);
        }
    }
}

/// A tombstone being sent: polled by the write, and if the write stops polling it before it is
/// done (its timeout, or its caller went away), handed to a task of its own when dropped.
struct Landing(Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Future for Landing {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let Some(landing) = self.0.as_mut() else {
            return std::task::Poll::Ready(());
        };
        let poll = landing.as_mut().poll(cx);
        if poll.is_ready() {
            self.0 = None;
        }
        poll
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        if let Some(landing) = self.0.take() {
            // Outside a tokio runtime there is nothing to send it on, and a runtime shutting
            // down cancels the task at once: then the tombstone stays remembered in this
            // process only.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(landing);
            }
        }
    }
}

/// What a check's `PING` got.
enum Ping {
    Answered,
    /// No answer (nor connection) within the time given.
    Silent,
    /// Refused, reset, or an error answer.
    Failed(redis::RedisError),
}

/// A `PING` over a new blocking connection, answered within `within` (connecting included).
fn ping(client: &redis::Client, within: Duration) -> Ping {
    let classify = |error: redis::RedisError| {
        if error.is_timeout() {
            Ping::Silent
        } else {
            Ping::Failed(error)
        }
    };
    let deadline = Instant::now() + within;
    let mut connection = match client.get_connection_with_timeout(within) {
        Ok(connection) => connection,
        Err(error) => return classify(error),
    };
    // A zero timeout would mean none at all.
    let rest = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    if let Err(error) = connection
        .set_read_timeout(Some(rest))
        .and_then(|()| connection.set_write_timeout(Some(rest)))
    {
        return Ping::Failed(error);
    }
    match redis::cmd("PING").query::<String>(&mut connection) {
        Ok(_) => Ping::Answered,
        Err(error) => classify(error),
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced() {
        let cache = CartCache::build(None, &CacheConfig::new("", "t1:"));
        let tenant = TenantId(uuid::Uuid::nil());
        let user = UserId(uuid::Uuid::max());
        assert_eq!(
            cache.key(tenant, user),
            "t1:cart:00000000-0000-0000-0000-000000000000:ffffffff-ffff-ffff-ffff-ffffffffffff"
        );
    }

    #[test]
    fn connecting_outside_a_runtime_is_an_error_not_a_panic() {
        let config = CacheConfig::new("redis://127.0.0.1:1/", "t:");
        assert!(CartCache::connect(&config).is_err());
    }

    #[tokio::test]
    async fn a_disabled_cache_never_hits_and_counts_nothing() {
        let cache = CartCache::disabled();
        let (tenant, user) = (TenantId::new_random(), UserId::new_random());
        cache.fill(tenant, user, &Cart::default()).await;
        cache.invalidate(tenant, user, 3).await;
        assert!(cache.get(tenant, user).await.is_none());
        assert_eq!(cache.stats(), CacheStats::default());
    }

    /// A load that counts its runs and waits for `gate` to open; it returns an empty cart at the
    /// version of its run (1, 2...), or `fail`'s error.
    async fn counted_load(
        runs: &AtomicU64,
        gate: &watch::Sender<bool>,
        fail: bool,
    ) -> Result<Cart, Error> {
        let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
        let mut open = gate.subscribe();
        open.wait_for(|open| *open).await.expect("the gate is kept");
        if fail {
            return Err(Error::Unavailable(sqlx::Error::PoolTimedOut));
        }
        Ok(Cart {
            version: i64::try_from(run).unwrap(),
            ..Cart::default()
        })
    }

    #[tokio::test]
    async fn reads_that_miss_one_cart_at_once_share_one_load() {
        let cache = CartCache::disabled();
        let (tenant, user) = (TenantId::new_random(), UserId::new_random());
        let (runs, gate) = (AtomicU64::new(0), watch::Sender::new(false));
        let reads =
            (0..50).map(|_| cache.load_once(tenant, user, counted_load(&runs, &gate, false)));
        // `join!` polls in order: every read is waiting before the gate opens.
        let (carts, ()) = tokio::join!(futures::future::join_all(reads), async {
            gate.send_replace(true);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(carts.iter().all(|cart| cart.as_ref().unwrap().version == 1));
        // Done, the load is forgotten: the next miss loads again.
        let cart = cache
            .load_once(tenant, user, counted_load(&runs, &gate, false))
            .await;
        assert_eq!(cart.unwrap().version, 2);
        assert!(cache.0.loads.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_load_fails_every_read_that_waited_for_it() {
        let cache = CartCache::disabled();
        let (tenant, user) = (TenantId::new_random(), UserId::new_random());
        let (runs, gate) = (AtomicU64::new(0), watch::Sender::new(false));
        let reads = (0..5).map(|_| cache.load_once(tenant, user, counted_load(&runs, &gate, true)));
        let (results, ()) = tokio::join!(futures::future::join_all(reads), async {
            gate.send_replace(true);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        for result in results {
            assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
        }
    }

    #[tokio::test]
    async fn a_read_after_a_write_does_not_join_a_load_from_before_it() {
        let cache = CartCache::disabled();
        let (tenant, user) = (TenantId::new_random(), UserId::new_random());
        let other = UserId::new_random();
        let (runs, gate) = (AtomicU64::new(0), watch::Sender::new(false));
        let (before, after, elsewhere, ()) = tokio::join!(
            cache.load_once(tenant, user, counted_load(&runs, &gate, false)),
            async {
                cache.invalidate(tenant, user, 2).await;
                cache
                    .load_once(tenant, user, counted_load(&runs, &gate, false))
                    .await
            },
            // Another user's write ends nothing of this cart's.
            async {
                cache.invalidate(tenant, other, 2).await;
                cache
                    .load_once(tenant, user, counted_load(&runs, &gate, false))
                    .await
            },
            async {
                gate.send_replace(true);
            },
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(before.unwrap().version, 1);
        assert_eq!(after.unwrap().version, 2);
        assert_eq!(
            elsewhere.unwrap().version,
            2,
            "joined the load after the write"
        );
    }

    #[tokio::test]
    async fn a_load_whose_reader_went_away_is_run_by_a_waiting_read() {
        let cache = CartCache::disabled();
        let (tenant, user) = (TenantId::new_random(), UserId::new_random());
        let (runs, gate) = (AtomicU64::new(0), watch::Sender::new(false));
        let mut first = Box::pin(cache.load_once(tenant, user, counted_load(&runs, &gate, false)));
        let mut second = Box::pin(cache.load_once(tenant, user, counted_load(&runs, &gate, false)));
        assert!(futures::poll!(&mut first).is_pending());
        assert!(futures::poll!(&mut second).is_pending());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop(first);
        gate.send_replace(true);
        assert_eq!(second.await.unwrap().version, 2);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(cache.0.loads.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_write_that_stops_waiting_for_its_tombstone_leaves_it_remembered() {
        // A server that accepts connections (the kernel does) and never answers: a hung Redis.
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = CacheConfig::new(format!("redis://{}/", hung.local_addr().unwrap()), "t:");
        let cache = CartCache::connect(&config).unwrap();
        let (tenant, user) = (TenantId::new_random(), UserId::new_random());
        let mut write = Box::pin(cache.invalidate(tenant, user, 9));
        assert!(futures::poll!(&mut write).is_pending());
        // The write's caller goes away while it waits for the tombstone.
        drop(write);
        assert_eq!(cache.pending_version(&cache.key(tenant, user)), Some(9));
        // So reads of the cart skip the (possibly stale) entry.
        assert!(cache.get(tenant, user).await.is_none());
        assert_eq!(cache.stats().bypassed, 1);
    }

    #[tokio::test]
    async fn an_unreachable_server_costs_one_timeout_per_cooldown() {
        // Port 1 on localhost refuses connections, like a stopped Redis.
        let mut config = CacheConfig::new("redis://127.0.0.1:1/", "t:");
        config.cooldown = Duration::from_secs(60);
        let cache = CartCache::connect(&config).unwrap();
        let (tenant, user) = (TenantId::new_random(), UserId::new_random());
        assert!(cache.get(tenant, user).await.is_none());
        assert!(cache.get(tenant, user).await.is_none());
        cache.invalidate(tenant, user, 7).await;
        let stats = cache.stats();
        assert_eq!(
            (stats.errors, stats.bypassed, stats.hits),
            (1, 2, 0),
            "{stats:?}"
        );
        // The failed invalidation is remembered, so a stale fill cannot land later.
        assert_eq!(cache.pending_version(&cache.key(tenant, user)), Some(7));
    }
}

//! `commerce-server`: the commerce gRPC API over PostgreSQL and Redis.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use commerce::cache::CacheConfig;
use commerce::server::{self, PolicySource, Settings};
use tiered_cache::Capacity;

/// Serves the commerce gRPC API (cart and order services, plus grpc.health.v1).
///
/// Caller identity comes from the x-tenant-id, x-user-id and x-roles metadata that the API
/// gateway sets; never expose this server except through the gateway.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "COMMERCE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Address of an HTTP listener of its own serving Prometheus metrics on /metrics (e.g.
    /// 127.0.0.1:9464; 0.0.0.0:9464 for a Prometheus in a container). Off by default: then no
    /// metrics are recorded at all.
    #[arg(long, env = "COMMERCE_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Redis URL of the cart cache and the decision cache.
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// Prefix of the cart cache's Redis keys.
    #[arg(long, env = "COMMERCE_REDIS_PREFIX", default_value = "commerce:")]
    redis_prefix: String,
    /// Seconds a cached cart lives (1 s to 100 years).
    #[arg(long, default_value_t = 600, value_parser = secs_range())]
    cache_ttl_secs: u64,
    /// Milliseconds one Redis round trip may take before the cache is bypassed (both caches;
    /// 1 ms to 1 hour).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    redis_timeout_ms: u64,
    /// Directory of the Rego authorization policies (every .rego file, recursively); by default
    /// the policies shipped with the authz crate, embedded in this binary. A policy that does not
    /// compile stops the server at start-up.
    #[arg(long, env = "COMMERCE_POLICY_DIR")]
    policy_dir: Option<PathBuf>,
    /// Evaluate the policies on every call instead of caching decisions.
    #[arg(long)]
    no_decision_cache: bool,
    /// Prefix of the decision cache's Redis keys (keep it apart from --redis-prefix's keys).
    #[arg(
        long,
        env = "COMMERCE_DECISION_CACHE_PREFIX",
        default_value = "commerce:authz:"
    )]
    decision_cache_prefix: String,
    /// Decisions kept in memory, at most (1 or more).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    decision_cache_entries: u64,
    /// Seconds a decision stays in memory (1 s to 100 years).
    #[arg(long, default_value_t = 60, value_parser = secs_range())]
    decision_cache_l1_ttl_secs: u64,
    /// Seconds a decision stays in Redis, shared with the other servers (1 s to 100 years).
    #[arg(long, default_value_t = 300, value_parser = secs_range())]
    decision_cache_ttl_secs: u64,
    /// Apply pending database migrations before serving.
    #[arg(long, env = "COMMERCE_MIGRATE")]
    migrate: bool,
    /// Size of the PostgreSQL connection pool (1 or more).
    #[arg(
        long,
        default_value_t = commerce::server::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_connections: u32,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The lifetimes a cache accepts, in seconds: at least a second, and at most 100 years (far
/// beyond any sensible lifetime; Redis refuses an expiry that overflows its clock, and an entry
/// written before its expiry is refused would never expire).
fn secs_range() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=100 * 365 * 24 * 3_600)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// mimalloc rather than glibc's allocator: a GetCart makes about 120 allocations, and with
/// glibc's the allocator was 23% of the server's CPU samples at its limit (`_int_malloc`, and
/// `malloc_consolidate` for every request's future of over 1 KiB), 11% with mimalloc. Builds
/// interleaved, closed loop (`load/throughput.py`, 2026-11-30): GetCart 39,381 -> 46,249/s
/// (+17%), Health/Check 74,892 -> 78,820/s (+5%).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "commerce-server failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let redis_timeout = Duration::from_millis(args.redis_timeout_ms);
    // Decisions depend only on the policy version (part of every key) and the request, so a
    // cached decision is never stale; the lifetimes only bound memory.
    let decision_cache = (!args.no_decision_cache).then(|| {
        tiered_cache::CacheConfig::new(args.redis_url.clone(), args.decision_cache_prefix)
            .with_l1_capacity(Capacity::Entries(args.decision_cache_entries))
            .with_ttl(
                Duration::from_secs(args.decision_cache_l1_ttl_secs),
                Duration::from_secs(args.decision_cache_ttl_secs),
            )
            .with_l2_limits(
                redis_timeout,
                tiered_cache::CacheConfig::DEFAULT_L2_RETRY_AFTER,
            )
    });
    let mut cache = CacheConfig::new(args.redis_url, args.redis_prefix);
    cache.ttl = Duration::from_secs(args.cache_ttl_secs);
    cache.timeout = redis_timeout;
    let settings = Settings {
        listen: args.listen,
        database_url: args.database_url,
        max_connections: args.max_connections,
        acquire_timeout: Duration::from_secs(5),
        migrate: args.migrate,
        cache,
        policies: args
            .policy_dir
            .map_or(PolicySource::Shipped, PolicySource::Dir),
        decision_cache,
        metrics_addr: args.metrics_addr,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime
        .block_on(server::run(settings, server::shutdown_signal()))
        .context("commerce server")
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

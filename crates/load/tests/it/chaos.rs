//! Outages under load, against the real server (in process) on PostgreSQL and Redis servers of
//! the test's own, which the run stops and starts: a Redis outage costs (almost) no errors and
//! the cart cache is used again soon after Redis is back; a PostgreSQL outage fails the calls
//! that need it with `Unavailable` only, and they succeed again soon after it is back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use commerce::cache::CacheConfig;
use commerce::server::{PolicySource, Settings};
use load::engine::ChaosDriver;
use load::report::{OutageReport, Report};
use load::setup::{self, DataSpec, Dependencies};

use crate::support;

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound address")
}

/// Runs `profile` against a server on dependencies of its own; the report.
async fn run_with_outage(profile_text: &str, name: &str) -> Report {
    let postgres = tokio::task::spawn_blocking(provision::PostgresServer::launch);
    let redis = tokio::task::spawn_blocking(provision::RedisServer::launch);
    let postgres = postgres.await.unwrap().expect("a PostgreSQL server");
    let redis = redis.await.unwrap().expect("a Redis server");
    let database = postgres.database(&commerce::MIGRATOR).await.unwrap();
    let dependencies = Arc::new(Dependencies::new(postgres, redis));
    let data = DataSpec {
        tenants: 1,
        users_per_tenant: 200,
        products: 20,
        orders_per_user: 1,
    };
    let identities = setup::load_data(
        database.url(),
        &dependencies.redis_url(),
        "load:cart:",
        &data,
    )
    .await
    .unwrap();

    let (addr, metrics_addr) = (free_addr(), free_addr());
    let settings = Settings {
        listen: addr,
        database_url: database.url().to_owned(),
        max_connections: 10,
        acquire_timeout: Duration::from_secs(5),
        migrate: false,
        cache: CacheConfig::new(dependencies.redis_url(), "load:cart:"),
        policies: PolicySource::Shipped,
        decision_cache: Some(tiered_cache::CacheConfig::new(
            dependencies.redis_url(),
            "load:authz:",
        )),
        metrics_addr: Some(metrics_addr),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(commerce::server::run(settings, async {
        let _ = stopped.await;
    }));
    support::wait_listening(addr).await;

    let target = addr.to_string();
    let profile = support::profile(profile_text, name);
    let mut options = support::options(&target);
    options.metrics_addr = Some(metrics_addr);
    options.chaos = Some(Arc::clone(&dependencies) as Arc<dyn ChaosDriver>);
    let raw = support::run(&profile, &target, identities, &options).await;
    let _ = stop.send(());
    let _ = server.await;
    drop(database);
    tokio::task::spawn_blocking(move || drop(dependencies))
        .await
        .unwrap();
    let report = Report::from_raw(raw);
    eprintln!("{}", load::render::terminal::render(&report));
    report
}

fn only_outage(report: &Report) -> &OutageReport {
    assert_eq!(report.outages.len(), 1, "{:?}", report.outages);
    &report.outages[0]
}

/// Reads and writes at 100/s for 14 s, `dependency` down from 3 s to 7 s.
fn outage_profile(dependency: &str) -> String {
    format!(
        r#"
[profiles.{dependency}]
description = "reads and writes at 100/s; {dependency} down from 3 s to 7 s"
warmup = "2s"
chaos = {{ events = "{dependency}-down@3s,{dependency}-up@7s" }}

[[profiles.{dependency}.scenarios]]
name = "mix"
executor = "constant-arrival-rate"
rate = 100
duration = "14s"
mix = {{ get_cart = 5, list_orders = 1, get_order = 1, add_item = 2, create_order = 1 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_costs_no_errors_and_the_cache_is_used_again() {
    let report = run_with_outage(&outage_profile("redis"), "redis").await;
    let outage = only_outage(&report);
    assert_eq!(outage.dependency, "redis");
    assert!(outage.event_errors.is_empty(), "{:?}", outage.event_errors);
    let up = outage.up_seconds.expect("Redis came back");
    assert!((7.0..8.0).contains(&up), "back at {up}s");
    assert!(
        outage.requests > 300,
        "{} requests while down",
        outage.requests
    );
    assert!(
        outage.error_rate.unwrap() < 0.01,
        "{} of {} failed: {:?}",
        outage.failed,
        outage.requests,
        outage.codes
    );
    let cache = outage.cache_used_seconds.expect("the cache was used again");
    assert!(
        cache < 5.0,
        "the cache was used again {cache}s after Redis' return"
    );
    // While Redis was down the server had no hits: the timeline saw them stop and resume.
    let chaos = report.raw.chaos.as_ref().unwrap();
    let hits_at = |t_ms: i64| {
        chaos
            .server
            .iter()
            .rfind(|s| s.t_ms <= t_ms)
            .and_then(|s| s.cache_hits)
            .expect("a sample")
    };
    assert_eq!(
        hits_at(3_500),
        hits_at(6_900),
        "cache hits while Redis was down"
    );
    assert!(report.passed, "{:?}", report.thresholds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_fails_calls_with_unavailable_only_and_they_succeed_again() {
    let report = run_with_outage(&outage_profile("postgres"), "postgres").await;
    let outage = only_outage(&report);
    assert_eq!(outage.dependency, "postgres");
    assert!(outage.event_errors.is_empty(), "{:?}", outage.event_errors);
    assert!(outage.up_seconds.is_some(), "PostgreSQL came back");
    assert!(
        outage.failed > 100,
        "only {} calls failed while PostgreSQL was down",
        outage.failed
    );
    assert_eq!(
        outage.codes.keys().collect::<Vec<_>>(),
        ["Unavailable"],
        "{:?}",
        outage.codes
    );
    let recovery = outage.errors_cleared_seconds.expect("calls succeed again");
    assert!(
        recovery < 5.0,
        "calls succeed again {recovery}s after PostgreSQL's return"
    );
    assert!(report.passed, "{:?}", report.thresholds);
}

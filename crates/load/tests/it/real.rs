//! Every operation against the real server (in process, on the same PostgreSQL and Redis the
//! tests and benchmarks use, with the data set a run loads): none may fail.

use std::net::SocketAddr;
use std::time::Duration;

use commerce::cache::CacheConfig;
use commerce::server::{PolicySource, Settings};
use load::ops::Operation;
use load::report::Report;
use load::setup::{self, DataSpec};

use crate::support;

const PROFILE: &str = r#"
[profiles.every]
description = "every operation"
warmup = "1s"

[[profiles.every.scenarios]]
name = "every"
executor = "constant-arrival-rate"
rate = 60
duration = "5s"
mix = { get_cart = 1, add_item = 1, create_order = 1, list_orders = 1, get_order = 1, admin_list_orders = 1, support_get_cart = 1, get_cart_new_user = 1, health = 1 }

[[profiles.every.scenarios]]
name = "users"
executor = "constant-vus"
vus = 3
duration = "3s"
mix = { get_cart = 3, create_order = 1 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_succeeds_against_the_real_server() {
    let services = provision::shared().expect("PostgreSQL and Redis");
    let database = services.database(&commerce::MIGRATOR).await.unwrap();
    let namespace = services.redis_namespace();
    let cart_prefix = format!("{}cart:", namespace.prefix());
    let data = DataSpec {
        tenants: 2,
        users_per_tenant: 50,
        products: 20,
        orders_per_user: 2,
    };
    let identities = setup::load_data(database.url(), services.redis_url(), &cart_prefix, &data)
        .await
        .unwrap();
    assert_eq!(identities.tenants.len(), 2);
    assert_eq!(identities.tenants[0].orders.len(), 100);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    drop(listener);
    let mut cache = CacheConfig::new(services.redis_url(), cart_prefix);
    cache.timeout = Duration::from_secs(1);
    let settings = Settings {
        listen: addr,
        database_url: database.url().to_owned(),
        max_connections: 10,
        acquire_timeout: Duration::from_secs(5),
        migrate: false,
        cache,
        policies: PolicySource::Shipped,
        decision_cache: Some(tiered_cache_config(
            services.redis_url(),
            namespace.prefix(),
        )),
        metrics_addr: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(commerce::server::run(settings, async {
        let _ = stopped.await;
    }));
    let target = addr.to_string();
    support::wait_listening(addr).await;

    let profile = support::profile(PROFILE, "every");
    let raw = support::run(&profile, &target, identities, &support::options(&target)).await;
    let report = Report::from_raw(raw);
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    for scenario in &report.scenarios {
        assert_eq!(
            scenario.summary.errors, 0,
            "{}: {:?}",
            scenario.name, scenario.summary.error_distribution
        );
    }
    let every = &report.scenarios[0];
    assert_eq!(every.summary.count, 300, "5 s at 60/s");
    for op in Operation::ALL {
        let count = every.operations.get(op.name()).map_or(0, |s| s.count);
        assert!(count > 0, "{op} never ran");
    }
    let users = &report.scenarios[1];
    assert!(
        users.summary.count > 30,
        "3 virtual users for 3 s answered {}",
        users.summary.count
    );
}

fn tiered_cache_config(url: &str, prefix: &str) -> tiered_cache::CacheConfig {
    tiered_cache::CacheConfig::new(url, format!("{prefix}authz:"))
}

//! `commerce-server --metrics-addr`: `/metrics` counts every call by code after real traffic,
//! and the metrics catalogue of the README is exactly what the server exposes.
//!
//! Also the helpers of the monitoring tests: the server binary with metrics on
//! ([`ServerProcess`]), the traffic they drive ([`drive_traffic`]), and a reader of Prometheus'
//! text format ([`Exposition`]).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use commerce::fixtures::{self, NewProduct};
use commerce::grpc::identity::request;
use commerce::grpc::proto::cart_service_client::CartServiceClient;
use commerce::grpc::proto::order_service_client::OrderServiceClient;
use commerce::grpc::proto::{
    AddItemRequest, ClearCartRequest, CreateOrderRequest, GetCartRequest, GetOrderRequest,
    ListOrdersRequest, RemoveItemRequest,
};
use commerce::ids::{ProductId, TenantId, UserId};
use commerce::metrics::grpc::code_name;
use provision::{RedisNamespace, TestDatabase};
use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::customer;

/// Customers of [`drive_traffic`] in the tests: 14 calls each, 353 in all.
pub const USERS: usize = 25;

/// Where the README's catalogue starts and ends; the lines between are generated.
const CATALOGUE_START: &str = "<!-- metrics-catalogue:start -->";
const CATALOGUE_END: &str = "<!-- metrics-catalogue:end -->";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_call_by_code_and_match_the_catalogue() -> anyhow::Result<()> {
    let server = ServerProcess::start().await?;
    let calls = drive_traffic(&server, USERS).await?;
    let total: u64 = calls.values().sum();
    ensure!(total >= 300, "only {total} calls made");
    let exposition = Exposition::parse(&server.scrape().await?)?;

    // Every call is counted once, under the code its client saw; nothing else is counted.
    let mut handled = BTreeMap::new();
    let mut started: BTreeMap<(String, String), f64> = BTreeMap::new();
    for sample in exposition.samples("grpc_server_handled_total") {
        if sample.value > 0.0 {
            let key = (
                sample.label("grpc_service").to_owned(),
                sample.label("grpc_method").to_owned(),
                sample.label("grpc_code").to_owned(),
            );
            handled.insert(key, sample.value as u64);
        }
    }
    assert_eq!(
        handled, calls,
        "grpc_server_handled_total against the calls made"
    );
    for sample in exposition.samples("grpc_server_started_total") {
        let key = (
            sample.label("grpc_service").to_owned(),
            sample.label("grpc_method").to_owned(),
        );
        started.insert(key, sample.value);
    }
    for ((service, method), count) in &started {
        let ended: u64 = calls
            .iter()
            .filter(|((s, m, _), _)| s == service && m == method)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(*count as u64, ended, "started {service}/{method}");
        let timed = exposition.value(
            "grpc_server_handling_seconds_count",
            &[("grpc_service", service), ("grpc_method", method)],
        )?;
        assert_eq!(
            timed as u64, ended,
            "handling_seconds_count {service}/{method}"
        );
    }

    // The domain, database, cache, policy, process and runtime metrics saw the traffic.
    let users = USERS as f64;
    let value = |name: &str, labels: &[(&str, &str)]| exposition.value(name, labels);
    assert_eq!(
        value("commerce_orders_created_total", &[("status", "placed")])?,
        users
    );
    assert_eq!(value("commerce_order_value_cents_count", &[])?, users);
    assert_eq!(
        value("commerce_order_failures_total", &[("reason", "empty_cart")])?,
        users
    );
    assert_eq!(value("commerce_cart_items_added_total", &[])?, 2.0 * users);
    assert_eq!(value("commerce_cart_items_removed_total", &[])?, users);
    assert!(
        value(
            "commerce_cache_hits_total",
            &[("cache", "cart"), ("tier", "redis")]
        )? >= users
    );
    assert!(
        value(
            "commerce_cache_misses_total",
            &[("cache", "cart"), ("tier", "redis")]
        )? >= 1.0
    );
    assert!(
        value(
            "commerce_cache_hits_total",
            &[("cache", "decision"), ("tier", "l1")]
        )? >= 1.0
    );
    let evaluations = value("commerce_policy_evaluations_total", &[])?;
    assert!(evaluations >= users, "{evaluations} evaluations");
    assert_eq!(
        value("commerce_policy_evaluation_seconds_count", &[])?,
        evaluations
    );
    assert!(value("commerce_db_pool_connections_open", &[])? >= 1.0);
    assert!(value("commerce_db_pool_acquire_seconds_count", &[])? >= 5.0 * users);
    assert_eq!(
        value(
            "commerce_db_query_seconds_count",
            &[("operation", "create_order")]
        )?,
        2.0 * users
    );
    assert!(value("process_resident_memory_bytes", &[])? > 0.0);
    assert!(value("process_open_fds", &[])? > 0.0);
    assert!(value("tokio_workers", &[])? >= 1.0);
    assert!(value("tokio_alive_tasks", &[])? >= 1.0);

    // The catalogue in the README is the server's own list of metrics.
    let catalogue = exposition.catalogue();
    let readme_path = repository().join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .with_context(|| format!("reading {}", readme_path.display()))?;
    let (before, rest) = readme
        .split_once(CATALOGUE_START)
        .with_context(|| format!("no {CATALOGUE_START} in the README"))?;
    let (current, after) = rest
        .split_once(CATALOGUE_END)
        .with_context(|| format!("no {CATALOGUE_END} in the README"))?;
    let expected = format!("\n{catalogue}");
    if current != expected {
        if std::env::var_os("UPDATE_CATALOGUE").is_some() {
            std::fs::write(
                &readme_path,
                format!("{before}{CATALOGUE_START}{expected}{CATALOGUE_END}{after}"),
            )?;
            eprintln!("rewrote the metrics catalogue in {}", readme_path.display());
        } else {
            bail!(
                "the README's metrics catalogue is not what the server exposes; regenerate it with \
                 `UPDATE_CATALOGUE=1 cargo test -p commerce --test it metrics_count` and review \
                 the diff. Expected:\n{catalogue}"
            );
        }
    }
    Ok(())
}

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `commerce-server` process with `--metrics-addr 127.0.0.1:0`, over a database and Redis
/// namespaces of its own; stopped (SIGTERM) when dropped.
pub struct ServerProcess {
    child: Child,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    /// A pool on the server's database, for fixtures.
    pub pool: PgPool,
    log: Arc<Mutex<Vec<String>>>,
    // Dropped after the server has stopped.
    _namespaces: (RedisNamespace, RedisNamespace),
    _db: TestDatabase,
}

impl ServerProcess {
    /// Starts the server and waits until it logged both of its addresses.
    pub async fn start() -> anyhow::Result<ServerProcess> {
        let services = provision::shared()?;
        let db = services.database(&commerce::MIGRATOR).await?;
        let (redis, decisions) = (services.redis_namespace(), services.redis_namespace());
        let pool = commerce::db::pool_options()
            .max_connections(2)
            .connect(db.url())
            .await
            .context("connecting to the server's database")?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_commerce-server"));
        command
            .args(["--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(["--database-url", db.url(), "--redis-url", redis.url()])
            .args(["--redis-prefix", redis.prefix(), "--log-format", "json"])
            .args(["--decision-cache-prefix", decisions.prefix()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut command, nix::sys::signal::Signal::SIGTERM);
        let mut child = command.spawn().context("starting commerce-server")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addresses, found) = mpsc::channel();
        let stdout = child.stdout.take().context("the server's stdout")?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(found) = logged_address(&line) {
                    let _ = addresses.send(found);
                }
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let mut server = ServerProcess {
            child,
            grpc: SocketAddr::from(([0, 0, 0, 0], 0)),
            metrics: SocketAddr::from(([0, 0, 0, 0], 0)),
            pool,
            log,
            _namespaces: (redis, decisions),
            _db: db,
        };
        let (mut grpc, mut metrics) = (None, None);
        let waited = tokio::task::spawn_blocking(move || {
            while grpc.is_none() || metrics.is_none() {
                match found.recv_timeout(Duration::from_secs(30)) {
                    Ok(("serving gRPC", addr)) => grpc = Some(addr),
                    Ok((_, addr)) => metrics = Some(addr),
                    Err(_) => return None,
                }
            }
            grpc.zip(metrics)
        })
        .await?;
        let Some((grpc, metrics)) = waited else {
            bail!(
                "commerce-server did not log its addresses; its output:\n{}",
                server.output()
            );
        };
        server.grpc = grpc;
        server.metrics = metrics;
        Ok(server)
    }

    /// What the server wrote so far.
    pub fn output(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// A channel to the gRPC port.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.grpc))?
            .connect()
            .await?)
    }

    /// `GET /metrics`.
    pub async fn scrape(&self) -> anyhow::Result<String> {
        let url = format!("http://{}/metrics", self.metrics);
        let (content_type, body) = http_get(url).await?;
        ensure!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "content type {content_type}"
        );
        Ok(body)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `("serving gRPC" | "serving metrics on /metrics", address)` of a JSON log line that
/// announces a listener.
fn logged_address(line: &str) -> Option<(&'static str, SocketAddr)> {
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = record.get("fields")?;
    let message = match fields.get("message")?.as_str()? {
        "serving gRPC" => "serving gRPC",
        "serving metrics on /metrics" => "serving metrics",
        _ => return None,
    };
    Some((message, fields.get("addr")?.as_str()?.parse().ok()?))
}

/// Makes the child receive `signal` when the test process dies, so that a killed test run
/// leaves no server behind (drop handles every other exit).
pub fn die_with_parent(command: &mut Command, signal: nix::sys::signal::Signal) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        command
            .pre_exec(move || nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from));
    }
}

/// `GET url` on a blocking thread: the content type and the body, whatever the status (the
/// caller judges it). Plain HTTP on loopback only.
pub async fn http_get(url: String) -> anyhow::Result<(String, String)> {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        let mut response = agent
            .get(&url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the body of {url}"))?;
        Ok((content_type, body))
    })
    .await?
}

/// Calls made, by `(service, method, code)` as the client saw them.
pub type Calls = BTreeMap<(String, String, String), u64>;

fn record<T>(
    calls: &mut Calls,
    service: &str,
    method: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
) -> Option<T> {
    let (code, message) = match result {
        Ok(response) => ("OK", Some(response.into_inner())),
        Err(status) => (code_name(status.code()), None),
    };
    *calls
        .entry((service.to_owned(), method.to_owned(), code.to_owned()))
        .or_default() += 1;
    message
}

/// Drives every method of the API for `users` customers of a new tenant, with successes and
/// the usual failures (not found, invalid argument, empty cart, denied, unauthenticated): 14
/// calls per user and three more.
pub async fn drive_traffic(server: &ServerProcess, users: usize) -> anyhow::Result<Calls> {
    const CART: &str = "commerce.v1.CartService";
    const ORDERS: &str = "commerce.v1.OrderService";
    let tenant = TenantId::new_random();
    let products: Vec<NewProduct> = (0..3)
        .map(|i| NewProduct {
            id: ProductId::new_random(),
            sku: format!("M{i}"),
            name: format!("Metric {i}"),
            price_cents: 250 * (i + 1),
            stock: 1_000_000,
            active: true,
        })
        .collect();
    let mut conn = server.pool.acquire().await?;
    fixtures::insert_products(&mut conn, tenant, &products).await?;
    drop(conn);

    let channel = server.channel().await?;
    let mut carts = CartServiceClient::new(channel.clone());
    let mut orders = OrderServiceClient::new(channel.clone());
    let mut health = HealthClient::new(channel);
    let mut calls = Calls::new();
    for service in ["", "commerce.v1.CartService"] {
        let check = HealthCheckRequest {
            service: service.to_owned(),
        };
        record(
            &mut calls,
            "grpc.health.v1.Health",
            "Check",
            health.check(check).await,
        );
    }
    // No identity metadata: Unauthenticated.
    let anonymous = carts.get_cart(GetCartRequest::default()).await;
    record(&mut calls, CART, "GetCart", anonymous);

    for i in 0..users {
        let me = customer(tenant);
        let (first, second) = (products[i % 3].id, products[(i + 1) % 3].id);
        for (product, quantity) in [(first, 2), (second, 1), (first, 0)] {
            let message = AddItemRequest {
                product_id: product.to_string(),
                quantity,
            };
            let result = carts.add_item(request(&me, message)).await;
            record(&mut calls, CART, "AddItem", result);
        }
        // A miss, then a hit of the cart cache.
        for _ in 0..2 {
            let result = carts
                .get_cart(request(&me, GetCartRequest::default()))
                .await;
            record(&mut calls, CART, "GetCart", result);
        }
        for product in [second, ProductId::new_random()] {
            let message = RemoveItemRequest {
                product_id: product.to_string(),
            };
            let result = carts.remove_item(request(&me, message)).await;
            record(&mut calls, CART, "RemoveItem", result);
        }
        let mut placed = None;
        for _ in 0..2 {
            // The second finds the cart empty.
            let result = orders
                .create_order(request(&me, CreateOrderRequest::default()))
                .await;
            placed = placed.or(record(&mut calls, ORDERS, "CreateOrder", result));
        }
        let placed = placed.context("no order was placed")?;
        for id in [placed.id, uuid::Uuid::new_v4().to_string()] {
            let message = GetOrderRequest {
                order_id: id,
                tenant_id: String::new(),
            };
            let result = orders.get_order(request(&me, message)).await;
            record(&mut calls, ORDERS, "GetOrder", result);
        }
        let message = ListOrdersRequest {
            page_size: 10,
            ..ListOrdersRequest::default()
        };
        let result = orders.list_orders(request(&me, message)).await;
        record(&mut calls, ORDERS, "ListOrders", result);
        let result = carts
            .clear_cart(request(&me, ClearCartRequest::default()))
            .await;
        record(&mut calls, CART, "ClearCart", result);
        // Another customer's cart: denied.
        let message = GetCartRequest {
            tenant_id: String::new(),
            user_id: UserId::new_random().to_string(),
        };
        let result = carts.get_cart(request(&me, message)).await;
        record(&mut calls, CART, "GetCart", result);
    }
    for expected in [
        (CART, "AddItem", "OK"),
        (CART, "AddItem", "InvalidArgument"),
        (CART, "GetCart", "PermissionDenied"),
        (CART, "GetCart", "Unauthenticated"),
        (CART, "RemoveItem", "NotFound"),
        (ORDERS, "CreateOrder", "FailedPrecondition"),
        (ORDERS, "GetOrder", "NotFound"),
        (ORDERS, "ListOrders", "OK"),
    ] {
        let key = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        ensure!(
            calls.contains_key(&key),
            "no call ended {expected:?}: {calls:?}"
        );
    }
    Ok(calls)
}

/// A scrape in Prometheus' text format, read into families of samples.
///
/// Written here: the format is a few lines of grammar, and the parser crates on crates.io are
/// either unmaintained or bring an HTTP client along.
pub struct Exposition {
    families: BTreeMap<String, Family>,
}

struct Family {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

pub struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

impl Exposition {
    pub fn parse(text: &str) -> anyhow::Result<Exposition> {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let (name, help) = help.split_once(' ').unwrap_or((help, ""));
                let help = help.replace("\\n", "\n").replace("\\\\", "\\");
                families
                    .entry(name.to_owned())
                    .or_insert_with(|| Family {
                        kind: String::new(),
                        help: String::new(),
                        samples: Vec::new(),
                    })
                    .help = help;
            } else if let Some(kind) = line.strip_prefix("# TYPE ") {
                let (name, kind) = kind.split_once(' ').context("TYPE without a type")?;
                families
                    .get_mut(name)
                    .with_context(|| format!("TYPE of {name} before its HELP"))?
                    .kind = kind.to_owned();
                current = Some(name.to_owned());
            } else if !line.starts_with('#') {
                let sample = parse_sample(line).with_context(|| format!("sample {line:?}"))?;
                let family = current
                    .as_ref()
                    .filter(|family| sample.name.starts_with(family.as_str()))
                    .with_context(|| format!("sample {line:?} outside its family"))?;
                families
                    .get_mut(family)
                    .context("the current family")?
                    .samples
                    .push(sample);
            }
        }
        Ok(Exposition { families })
    }

    /// Every sample named `name` (a family, or a histogram's `_bucket`, `_sum`, `_count`).
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.families
            .values()
            .flat_map(|family| &family.samples)
            .filter(move |sample| sample.name == name)
    }

    /// The value of the one sample named `name` with (at least) `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        let mut matching = self.samples(name).filter(|sample| {
            labels
                .iter()
                .all(|(label, value)| sample.label(label) == *value)
        });
        let sample = matching
            .next()
            .with_context(|| format!("no sample {name} {labels:?}"))?;
        ensure!(
            matching.next().is_none(),
            "several samples {name} {labels:?}"
        );
        Ok(sample.value)
    }

    /// The README's table of metrics: name, type, labels (but a histogram's `le`), meaning.
    pub fn catalogue(&self) -> String {
        let mut table = String::from("| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n");
        for (name, family) in &self.families {
            let mut labels: Vec<&str> = family
                .samples
                .iter()
                .flat_map(|sample| sample.labels.keys())
                .map(String::as_str)
                .filter(|label| *label != "le")
                .collect();
            labels.sort_unstable();
            labels.dedup();
            let labels = labels
                .iter()
                .map(|label| format!("`{label}`"))
                .collect::<Vec<_>>()
                .join(", ");
            table.push_str(&format!(
                "| `{name}` | {} | {labels} | {} |\n",
                family.kind,
                family.help.replace('|', "\\|")
            ));
        }
        table
    }

    /// Every family's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.families.keys().map(String::as_str)
    }
}

fn parse_sample(line: &str) -> anyhow::Result<Sample> {
    let name_end = line.find(['{', ' ']).context("a sample without a value")?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut label = String::new();
        loop {
            let Some((i, c)) = chars.next() else {
                bail!("unterminated labels");
            };
            match c {
                '}' => {
                    rest = &inner[i + 1..];
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    ensure!(
                        matches!(chars.next(), Some((_, '"'))),
                        "unquoted label value"
                    );
                    let mut value = String::new();
                    loop {
                        match chars.next().context("unterminated label value")?.1 {
                            '"' => break,
                            '\\' => match chars.next().context("dangling escape")?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut label), value);
                }
                other => label.push(other),
            }
        }
    }
    let value = rest
        .split_whitespace()
        .next()
        .context("a sample without a value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().with_context(|| format!("value {other:?}"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

#[test]
fn the_exposition_reader_reads_labels_escapes_and_histograms() -> anyhow::Result<()> {
    let text = "# HELP a_total A \\\\ counter.\n# TYPE a_total counter\n\
                a_total{x=\"1\",y=\"q\\\"uote\"} 3\n\
                # HELP h Hist.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
    let exposition = Exposition::parse(text)?;
    assert_eq!(exposition.value("a_total", &[("y", "q\"uote")])?, 3.0);
    assert_eq!(exposition.value("h_count", &[])?, 2.0);
    assert_eq!(exposition.names().collect::<Vec<_>>(), ["a_total", "h"]);
    assert_eq!(
        exposition.catalogue(),
        "| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n\
         | `a_total` | counter | `x`, `y` | A \\ counter. |\n| `h` | histogram |  | Hist. |\n"
    );
    Ok(())
}

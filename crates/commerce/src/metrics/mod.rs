//! Prometheus metrics of the commerce server: what is counted, where, and how it is served.
//!
//! One [`Metrics`] holds a registry of its own (so tests can run several servers in one
//! process) with four kinds of metrics:
//!
//! - **gRPC** (`grpc_server_*`, named like go-grpc-prometheus so existing dashboards read them),
//!   recorded by the tower layer of [`grpc`] around every call;
//! - **domain** and **database** (`commerce_orders_*`, `commerce_cart_*`, `commerce_db_*`),
//!   recorded by the services on their way ([`crate::cart`], [`crate::orders`], [`crate::db`]);
//! - **state read at scrape time** (`commerce_db_pool_*`, `commerce_cache_*`,
//!   `commerce_policy_evaluations_total`…): the pool, the caches and the policy engine already
//!   count everything in atomics, so [`collect`] reads their `stats()` when Prometheus scrapes,
//!   and the calls pay nothing more for them;
//! - **process and runtime** (`process_*` from the `prometheus` crate's process collector,
//!   `tokio_*` from the runtime's stable metrics).
//!
//! Metrics are a run-time choice: the services hold an `Option<Metrics>` (see
//! [`Commerce::with_metrics`]), so one build runs with and without them. The benches record them
//! as the server does (unless `COMMERCE_BENCH_METRICS=0`), so their cost is measured paired
//! against a revision without metrics (see the README). Labels take values from closed sets
//! only (methods of the served protos, codes, operations, reasons, caches): no id ever becomes a
//! label.
//!
//! The `prometheus` crate (TiKV's) rather than `prometheus-client`: its counters and histograms
//! are lock-free atomics (`prometheus-client`'s histogram takes a lock on every observation,
//! which 64 concurrent calls would contend on), and it ships the process collector.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::db::Operation;
use crate::orders::{Order, OrderStatus};
use crate::{Commerce, Error};

pub(crate) mod collect;
pub mod grpc;
mod http;

pub use grpc::{GrpcMetrics, GrpcMetricsLayer};
pub use http::serve;

/// Buckets of the gRPC call and query durations, in seconds: from 25 µs (a cached cart read on
/// loopback takes about a hundred) to 5 s (the pool's acquire timeout), with 200 ms, the latency
/// alert's threshold, on a bucket boundary so that the alert's P95 is not an interpolation.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.2, 0.5, 1.0, 2.5, 5.0,
];

/// Buckets of the pool's acquire wait: a few microseconds when a connection is idle, up to the
/// acquire timeout when the pool is exhausted.
const ACQUIRE_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Buckets of one policy evaluation (regorus, in process): microseconds for the shipped
/// policies, milliseconds for the benchmarks' thousand-rule sets.
const POLICY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1,
];

/// Buckets of an order's total, in cents (minor units of the tenant's currency).
const ORDER_VALUE_BUCKETS: &[f64] = &[
    100.0,
    500.0,
    1_000.0,
    2_500.0,
    5_000.0,
    10_000.0,
    25_000.0,
    50_000.0,
    100_000.0,
    250_000.0,
    500_000.0,
    1_000_000.0,
];

/// Why metrics could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric could not be created or registered (a bug: names and labels are constants), or
    /// a second set of services was registered into the same [`Metrics`].
    #[error("cannot register the metrics")]
    Register(#[from] prometheus::Error),
    /// The descriptor of a served gRPC service does not decode (a build problem).
    #[error("cannot decode the gRPC service descriptors")]
    Descriptor(#[from] prost::DecodeError),
}

/// The metrics of one server; cheap to clone (clones share the registry and the metrics).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    grpc: Arc<GrpcMetrics>,
    domain: Domain,
    db: Db,
    policy_evaluation: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What the services record on their way.
struct Domain {
    /// One per [`OrderStatus`], in [`OrderStatus::ALL`]'s order.
    orders_created: Vec<IntCounter>,
    order_value: Histogram,
    /// One per reason, in [`FAILURE_REASONS`]' order.
    order_failures: Vec<IntCounter>,
    cart_items_added: IntCounter,
    cart_items_removed: IntCounter,
}

/// The database timings.
struct Db {
    acquire: Histogram,
    /// One per [`Operation`], in [`Operation::ALL`]'s order.
    queries: Vec<Histogram>,
}

/// The `reason` label values of `commerce_order_failures_total`, one per kind of [`Error`].
pub const FAILURE_REASONS: &[&str] = &[
    "invalid_argument",
    "not_found",
    "product_inactive",
    "out_of_stock",
    "empty_cart",
    "total_overflow",
    "unavailable",
    "conflict",
    "internal",
];

/// The index in [`FAILURE_REASONS`] of why an operation failed.
fn failure_reason(error: &Error) -> usize {
    match error {
        Error::InvalidArgument(_) => 0,
        Error::NotFound(_) => 1,
        Error::ProductInactive(_) => 2,
        Error::OutOfStock(_) => 3,
        Error::EmptyCart => 4,
        Error::TotalOverflow => 5,
        Error::Unavailable(_) | Error::DatabaseDown => 6,
        Error::Conflict(_) => 7,
        Error::Database(_) | Error::Internal(_) => 8,
    }
}

impl Metrics {
    /// A registry with the gRPC, domain, database and policy metrics, the process collector, and
    /// the metrics of the current tokio runtime (none when called outside a runtime). Every
    /// labelled series that is known in advance (every gRPC method with every code, every
    /// operation, every failure reason) is created at zero, so that dashboards and alerts find
    /// their series before the first call, and a rate of errors is 0 rather than absent.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let grpc = Arc::new(GrpcMetrics::new(&registry)?);

        let orders_created = IntCounterVec::new(
            Opts::new(
                "commerce_orders_created_total",
                "Orders placed (idempotent replays not included), by the status they were created with.",
            ),
            &["status"],
        )?;
        registry.register(Box::new(orders_created.clone()))?;
        let order_value = Histogram::with_opts(
            HistogramOpts::new(
                "commerce_order_value_cents",
                "Totals of the orders placed, in cents (minor units of the currency).",
            )
            .buckets(ORDER_VALUE_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(order_value.clone()))?;
        let order_failures = IntCounterVec::new(
            Opts::new(
                "commerce_order_failures_total",
                "Order creations that failed, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(order_failures.clone()))?;
        let cart_items_added = IntCounter::new(
            "commerce_cart_items_added_total",
            "Successful AddItem operations (a product added to a cart, or its quantity raised).",
        )?;
        registry.register(Box::new(cart_items_added.clone()))?;
        let cart_items_removed = IntCounter::new(
            "commerce_cart_items_removed_total",
            "Successful RemoveItem operations (a product removed from a cart).",
        )?;
        registry.register(Box::new(cart_items_removed.clone()))?;
        let domain = Domain {
            orders_created: OrderStatus::ALL
                .iter()
                .map(|status| orders_created.with_label_values(&[status.as_str()]))
                .collect(),
            order_value,
            order_failures: FAILURE_REASONS
                .iter()
                .map(|reason| order_failures.with_label_values(&[reason]))
                .collect(),
            cart_items_added,
            cart_items_removed,
        };

        let acquire = Histogram::with_opts(
            HistogramOpts::new(
                "commerce_db_pool_acquire_seconds",
                "Time a statement waited for a pooled PostgreSQL connection.",
            )
            .buckets(ACQUIRE_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(acquire.clone()))?;
        let queries = HistogramVec::new(
            HistogramOpts::new(
                "commerce_db_query_seconds",
                "Duration of one PostgreSQL statement (each operation is one), connection held, by operation.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        registry.register(Box::new(queries.clone()))?;
        let db = Db {
            acquire,
            queries: Operation::ALL
                .iter()
                .map(|operation| queries.with_label_values(&[operation.as_str()]))
                .collect(),
        };

        let policy_evaluation = Histogram::with_opts(
            HistogramOpts::new(
                "commerce_policy_evaluation_seconds",
                "Duration of one evaluation of the authorization policies (decision-cache hits run none).",
            )
            .buckets(POLICY_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(policy_evaluation.clone()))?;

        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            registry.register(Box::new(collect::RuntimeCollector::new(runtime)?))?;
        }

        Ok(Metrics(Arc::new(Inner {
            registry,
            grpc,
            domain,
            db,
            policy_evaluation,
        })))
    }

    /// The registry, to gather or to register more collectors.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// The gRPC metrics, for [`GrpcMetricsLayer`].
    pub fn grpc(&self) -> &Arc<GrpcMetrics> {
        &self.0.grpc
    }

    /// Everything registered, in Prometheus' text exposition format.
    pub fn encode(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.0.registry.gather())
            // Encoding into a `String` fails only on a metric without a value, which the
            // registry's own metrics never are.
            .unwrap_or_else(|error| format!("# cannot encode the metrics: {error}\n"))
    }

    /// Registers the collector that reads the state of `commerce` at scrape time (pool, caches,
    /// breaker, policy engine), and makes the policy engine report its evaluation times here.
    /// Called by [`Commerce::with_metrics`]; fails if services were registered already.
    pub(crate) fn observe(&self, commerce: &Commerce) -> Result<(), MetricsError> {
        self.0
            .registry
            .register(Box::new(collect::StateCollector::new(commerce)?))?;
        let histogram = self.0.policy_evaluation.clone();
        let observed = commerce
            .policy
            .observe_evaluations(move |duration| histogram.observe(duration.as_secs_f64()));
        if !observed {
            tracing::warn!(
                "the policy engine reports its evaluation times elsewhere already; \
                 commerce_policy_evaluation_seconds stays empty"
            );
        }
        Ok(())
    }

    pub(crate) fn cart_item_added(&self) {
        self.0.domain.cart_items_added.inc();
    }

    pub(crate) fn cart_item_removed(&self) {
        self.0.domain.cart_items_removed.inc();
    }

    pub(crate) fn order_created(&self, order: &Order) {
        let domain = &self.0.domain;
        let status = OrderStatus::ALL
            .iter()
            .position(|status| *status == order.status)
            .unwrap_or_default();
        domain.orders_created[status].inc();
        // Cents as a float: exact up to 2^53 cents.
        domain.order_value.observe(order.total_cents as f64);
    }

    pub(crate) fn order_failed(&self, error: &Error) {
        self.0.domain.order_failures[failure_reason(error)].inc();
    }

    pub(crate) fn connection_acquired(&self, waited: Duration) {
        self.0.db.acquire.observe(waited.as_secs_f64());
    }

    pub(crate) fn statement_ran(&self, operation: Operation, took: Duration) {
        self.0.db.queries[operation as usize].observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_reason_and_every_reason_an_error() {
        let errors = [
            Error::InvalidArgument(String::new()),
            Error::NotFound("order"),
            Error::ProductInactive(crate::ids::ProductId(uuid::Uuid::nil())),
            Error::OutOfStock(vec![]),
            Error::EmptyCart,
            Error::TotalOverflow,
            Error::DatabaseDown,
            Error::Conflict(sqlx::Error::PoolTimedOut),
            Error::Internal(String::new()),
        ];
        let reasons: Vec<&str> = errors
            .iter()
            .map(|error| FAILURE_REASONS[failure_reason(error)])
            .collect();
        assert_eq!(reasons, FAILURE_REASONS);
    }

    #[test]
    fn known_series_exist_before_any_call() {
        let text = Metrics::new().unwrap().encode();
        for line in [
            "commerce_orders_created_total{status=\"placed\"} 0",
            "commerce_order_failures_total{reason=\"out_of_stock\"} 0",
            "commerce_db_query_seconds_count{operation=\"load_cart\"} 0",
            "grpc_server_handled_total{grpc_code=\"Internal\",grpc_method=\"GetCart\",grpc_service=\"commerce.v1.CartService\"} 0",
            "grpc_server_started_total{grpc_method=\"Check\",grpc_service=\"grpc.health.v1.Health\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}

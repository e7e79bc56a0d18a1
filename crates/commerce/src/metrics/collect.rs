//! The metrics read at scrape time: the state and counters that the pool, the caches, the
//! breaker and the policy engine keep anyway ([`StateCollector`]), and the tokio runtime's
//! stable metrics ([`RuntimeCollector`]).
//!
//! Reading them when Prometheus asks costs the calls nothing; counting them again in
//! `prometheus` counters on every call would double the atomics on the hot path for the same
//! numbers. The runtime's metrics are read straight from `tokio::runtime::RuntimeMetrics` (the
//! `tokio-metrics` crate adds sampling intervals that Prometheus' own rates make unnecessary).

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use crate::Commerce;
use crate::cache::CartCache;
use crate::db::Breaker;

/// One metric family a collector exports.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
}

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    Family {
        name,
        help,
        kind: MetricType::COUNTER,
        labels,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: MetricType::GAUGE,
        labels: &[],
    }
}

/// The descriptors of `families`, for the registry's consistency checks.
fn descs(families: &[Family]) -> Result<Vec<Desc>, prometheus::Error> {
    families
        .iter()
        .map(|family| {
            Desc::new(
                family.name.to_owned(),
                family.help.to_owned(),
                family
                    .labels
                    .iter()
                    .map(|&label| label.to_owned())
                    .collect(),
                Default::default(),
            )
        })
        .collect()
}

/// The samples of one family while they are collected.
struct Samples<'a> {
    family: &'a Family,
    metrics: Vec<proto::Metric>,
}

impl<'a> Samples<'a> {
    fn of(family: &'a Family) -> Self {
        Samples {
            family,
            metrics: Vec::new(),
        }
    }

    /// Adds a sample; `labels` are the values of the family's labels, in order.
    fn add(mut self, labels: &[&str], value: f64) -> Self {
        debug_assert_eq!(
            labels.len(),
            self.family.labels.len(),
            "{}",
            self.family.name
        );
        let mut metric = proto::Metric::default();
        metric.set_label(
            self.family
                .labels
                .iter()
                .zip(labels)
                .map(|(&name, &value)| {
                    let mut pair = proto::LabelPair::default();
                    pair.set_name(name.to_owned());
                    pair.set_value(value.to_owned());
                    pair
                })
                .collect(),
        );
        match self.family.kind {
            MetricType::GAUGE => {
                let mut gauge = proto::Gauge::default();
                gauge.set_value(value);
                metric.set_gauge(gauge);
            }
            _ => {
                let mut counter = proto::Counter::default();
                counter.set_value(value);
                metric.set_counter(counter);
            }
        }
        self.metrics.push(metric);
        self
    }

    fn done(self) -> MetricFamily {
        let mut family = MetricFamily::default();
        family.set_name(self.family.name.to_owned());
        family.set_help(self.family.help.to_owned());
        family.set_field_type(self.family.kind);
        family.set_metric(self.metrics);
        family
    }
}

/// The families of [`StateCollector`], in the order of its `collect`.
const STATE: [Family; 14] = [
    gauge(
        "commerce_db_pool_connections_open",
        "PostgreSQL connections the pool holds (idle and in use).",
    ),
    gauge(
        "commerce_db_pool_connections_idle",
        "PostgreSQL connections idle in the pool.",
    ),
    gauge(
        "commerce_db_pool_connections_in_use",
        "PostgreSQL connections checked out of the pool.",
    ),
    gauge(
        "commerce_db_pool_connections_max",
        "The pool's maximum number of connections (--max-connections).",
    ),
    gauge(
        "commerce_db_breaker_open",
        "1 while the PostgreSQL circuit breaker refuses calls (the database was found unreachable), else 0.",
    ),
    counter(
        "commerce_db_breaker_trips_total",
        &[],
        "Times the PostgreSQL circuit breaker opened.",
    ),
    counter(
        "commerce_db_breaker_rejected_total",
        &[],
        "Calls refused at once by the open PostgreSQL circuit breaker.",
    ),
    counter(
        "commerce_cache_hits_total",
        &["cache", "tier"],
        "Cache lookups answered, by cache (cart, decision) and tier (redis; l1, l2).",
    ),
    counter(
        "commerce_cache_misses_total",
        &["cache", "tier"],
        "Cache lookups that found no current entry, by cache and tier.",
    ),
    counter(
        "commerce_cache_errors_total",
        &["cache", "tier"],
        "Cache operations that failed (Redis errors and timeouts, undecodable entries), by cache and tier.",
    ),
    counter(
        "commerce_cache_bypasses_total",
        &["cache", "tier"],
        "Cache operations skipped without asking Redis (cool-down or back-off after a failure, pending invalidation), by cache and tier.",
    ),
    counter(
        "commerce_cache_late_answers_total",
        &["cache", "tier"],
        "Cache reads Redis answered after their timeout (a slow Redis, or a server too busy to read the answer in time), used rather than read again from PostgreSQL, by cache and tier.",
    ),
    counter(
        "commerce_policy_evaluations_total",
        &[],
        "Evaluations of the authorization policies (decision-cache hits run none).",
    ),
    counter(
        "commerce_policy_evaluation_failures_total",
        &[],
        "Policy evaluations that failed and were turned into denials.",
    ),
];

/// Reads the pool, the caches, the breaker and the policy engine of one [`Commerce`].
pub(crate) struct StateCollector {
    descs: Vec<Desc>,
    pool: sqlx::PgPool,
    cart_cache: CartCache,
    breaker: Breaker,
    policy: Arc<authz::PolicyEngine>,
}

impl StateCollector {
    pub(crate) fn new(commerce: &Commerce) -> Result<Self, prometheus::Error> {
        Ok(StateCollector {
            descs: descs(&STATE)?,
            pool: commerce.carts.pool().clone(),
            cart_cache: commerce.carts.cache().clone(),
            breaker: commerce.carts.breaker().clone(),
            policy: Arc::clone(&commerce.policy),
        })
    }
}

impl Collector for StateCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let [
            open,
            idle,
            in_use,
            max,
            breaker_open,
            trips,
            rejected,
            hits,
            misses,
            errors,
            bypasses,
            late,
            evaluations,
            failures,
        ] = &STATE;
        // Read without a lock, so they may disagree by a connection taken between the reads;
        // `in_use` must never go negative. The connections the services keep for reuse
        // (`commerce::db`) are checked out of the pool but idle.
        let size = self.pool.size();
        let idle_now = u32::try_from(self.pool.num_idle() + self.breaker.kept())
            .unwrap_or(u32::MAX)
            .min(size);
        let breaker = self.breaker.stats();
        let cart = self.cart_cache.stats();
        let engine = self.policy.stats();
        let decisions = engine.cache.unwrap_or_default();
        let (cart_tier, l1, l2) = (["cart", "redis"], ["decision", "l1"], ["decision", "l2"]);
        let mut families = vec![
            Samples::of(open).add(&[], f64::from(size)).done(),
            Samples::of(idle).add(&[], f64::from(idle_now)).done(),
            Samples::of(in_use)
                .add(&[], f64::from(size - idle_now))
                .done(),
            Samples::of(max)
                .add(&[], f64::from(self.pool.options().get_max_connections()))
                .done(),
            Samples::of(breaker_open)
                .add(&[], if breaker.open { 1.0 } else { 0.0 })
                .done(),
            Samples::of(trips).add(&[], breaker.trips as f64).done(),
            Samples::of(rejected)
                .add(&[], breaker.rejected as f64)
                .done(),
        ];
        let mut hit_samples = Samples::of(hits).add(&cart_tier, cart.hits as f64);
        let mut miss_samples = Samples::of(misses).add(&cart_tier, cart.misses as f64);
        let mut error_samples = Samples::of(errors).add(&cart_tier, cart.errors as f64);
        let mut bypass_samples = Samples::of(bypasses).add(&cart_tier, cart.bypassed as f64);
        // An engine without a decision cache has no decision-cache series.
        if engine.cache.is_some() {
            hit_samples = hit_samples
                .add(&l1, decisions.l1_hits as f64)
                .add(&l2, decisions.l2_hits as f64);
            miss_samples = miss_samples
                .add(&l1, decisions.l1_misses as f64)
                .add(&l2, decisions.l2_misses as f64);
            error_samples =
                error_samples.add(&l2, (decisions.l2_errors + decisions.codec_errors) as f64);
            bypass_samples = bypass_samples.add(&l2, decisions.l2_skipped as f64);
        }
        families.extend([
            hit_samples.done(),
            miss_samples.done(),
            error_samples.done(),
            bypass_samples.done(),
            Samples::of(late).add(&cart_tier, cart.late as f64).done(),
            Samples::of(evaluations)
                .add(&[], engine.evaluations as f64)
                .done(),
            Samples::of(failures)
                .add(&[], engine.evaluation_failures as f64)
                .done(),
        ]);
        families
    }
}

/// The families of [`RuntimeCollector`], in the order of its `collect`.
const RUNTIME: [Family; 5] = [
    gauge("tokio_workers", "Worker threads of the tokio runtime."),
    gauge(
        "tokio_alive_tasks",
        "Tasks alive in the tokio runtime (spawned and not finished).",
    ),
    gauge(
        "tokio_global_queue_depth",
        "Tasks waiting in the tokio runtime's global (injection) queue.",
    ),
    counter(
        "tokio_worker_busy_seconds_total",
        &[],
        "Time the tokio workers spent busy, summed over workers: its rate is the number of busy workers.",
    ),
    counter(
        "tokio_worker_parks_total",
        &[],
        "Times the tokio workers parked (went idle), summed over workers.",
    ),
];

/// Reads the stable metrics of one tokio runtime (no `tokio_unstable` needed).
pub(crate) struct RuntimeCollector {
    descs: Vec<Desc>,
    runtime: tokio::runtime::Handle,
}

impl RuntimeCollector {
    pub(crate) fn new(runtime: tokio::runtime::Handle) -> Result<Self, prometheus::Error> {
        Ok(RuntimeCollector {
            descs: descs(&RUNTIME)?,
            runtime,
        })
    }
}

impl Collector for RuntimeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let [workers, alive, queue, busy, parks] = &RUNTIME;
        let metrics = self.runtime.metrics();
        let (mut busy_seconds, mut park_count) = (0.0, 0_u64);
        for worker in 0..metrics.num_workers() {
            busy_seconds += metrics.worker_total_busy_duration(worker).as_secs_f64();
            park_count += metrics.worker_park_count(worker);
        }
        vec![
            Samples::of(workers)
                .add(&[], metrics.num_workers() as f64)
                .done(),
            Samples::of(alive)
                .add(&[], metrics.num_alive_tasks() as f64)
                .done(),
            Samples::of(queue)
                .add(&[], metrics.global_queue_depth() as f64)
                .done(),
            Samples::of(busy).add(&[], busy_seconds).done(),
            Samples::of(parks).add(&[], park_count as f64).done(),
        ]
    }
}

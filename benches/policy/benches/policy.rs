//! The `policy` suite: compiling and evaluating Rego policies with regorus (the shipped RBAC and
//! multi-tenant policies, and synthetic sets of 10, 100 and 1,000 rules), batches, concurrent
//! evaluation, and the decision cache on a real Redis from `provision`.
//!
//! What each benchmark measures and how its state is kept from drifting is in
//! `docs/suites.md` (section `policy`); the short version is next to each benchmark below.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use authz::synthetic::{self, PolicySize, SyntheticPolicySet};
use authz::{AuthzRequest, EngineStats, PolicyEngine, PolicySet};
use bench_harness::{
    BatchSize, Criterion, Group, Latencies, SamplingMode, Throughput, fail, pass_size,
};
use policy::cedar::CedarReference;
use policy::{concurrent_authorize, distinct_requests, rbac_requests, tenancy_requests};
use tiered_cache::{CacheConfig, Capacity, TieredCache};

/// Distinct requests the decision-cache miss cycles through: more than a batch holds, so that a
/// batch's requests are distinct (each is forgotten in the setup before its routine runs).
const MISS_REQUESTS: usize = 1_024;
/// Iterations per batch of the miss benchmark: well below [`MISS_REQUESTS`].
const BATCH: u64 = 256;
/// Requests of a synthetic set decided per iteration of `evaluate/<size>`.
const SWEEP: usize = 64;
/// Lifetimes far beyond the run, so that no cached decision expires while it is measured.
const TTL: Duration = Duration::from_secs(3_600);

struct Fixture {
    shipped: PolicySet,
    synthetic: Vec<(PolicySize, SyntheticPolicySet, PolicySet)>,
    /// No decision cache: every call evaluates.
    engine: Arc<PolicyEngine>,
    /// The decision cache as production configures it: L1 in front of Redis.
    cached: PolicyEngine,
    /// The Redis server's command counters, for `roundtrips.json`.
    round_trips: Arc<provision::RoundTripCounter>,
    // Deletes the suite's Redis keys when the run ends.
    _namespace: provision::RedisNamespace,
}

fn setup() -> anyhow::Result<Fixture> {
    let shipped = PolicySet::shipped().context("the shipped policies do not compile")?;
    let mut sets = Vec::new();
    for size in PolicySize::ALL {
        let set = synthetic::generate(size);
        let compiled = set
            .compile()
            .with_context(|| format!("the {} synthetic set does not compile", size.name()))?;
        // Evaluating the wrong rules fast would be no result: hold the compiled set to the
        // generator's model before measuring it.
        let allowed = set
            .cases
            .iter()
            .filter(|case| case.expected.allowed)
            .count();
        for case in &set.cases {
            let decision = compiled.evaluate(&case.request);
            anyhow::ensure!(
                decision == case.expected,
                "the {} set decides {:?} as {decision:?}, its model as {:?}",
                size.name(),
                case.request,
                case.expected
            );
        }
        let swept = set.cases[..SWEEP]
            .iter()
            .filter(|case| case.expected.allowed)
            .count();
        eprintln!(
            "policy: {} set: {} rules, {} requests ({allowed} allowed); the first {SWEEP}: \
             {swept} allowed, {} denied",
            size.name(),
            set.rule_count,
            set.cases.len(),
            SWEEP - swept
        );
        sets.push((size, set, compiled));
    }
    let services = provision::shared().context("cannot provide Redis")?;
    let namespace = services.redis_namespace();
    // Generous Redis limits: a slow moment of the loaded machine must not open the breaker and
    // silently turn the miss benchmark into one without Redis (checked after the run).
    let decisions = CacheConfig::new(namespace.url(), namespace.prefix())
        .with_l1_capacity(Capacity::Entries(10_000))
        .with_ttl(TTL, TTL)
        .with_l2_limits(Duration::from_secs(5), Duration::from_secs(1));
    let cache = TieredCache::new(decisions).context("invalid decision cache configuration")?;
    Ok(Fixture {
        engine: Arc::new(PolicyEngine::new(shipped.clone())),
        cached: PolicyEngine::with_decision_cache(shipped.clone(), cache),
        shipped,
        synthetic: sets,
        round_trips: Arc::new(services.redis_round_trip_counter()),
        _namespace: namespace,
    })
}

/// The default of the group, the floor included: 100 samples (the gate's rank test needs them),
/// half a second of warm-up and 2 s of measurement, enough for thousands of iterations of
/// everything but the compiles, the decision-cache miss, the large sweep and the 1,000-task
/// batch, which adjust it (see there). 20,000 bootstrap resamples instead of 100,000 cut
/// criterion's analysis time several-fold and still place the median's confidence interval to
/// well under a percent of itself.
fn configure(group: &mut Group<'_>) {
    group
        .sampling_mode(SamplingMode::Auto)
        .sample_size(100)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .nresamples(20_000);
}

/// Times `requests` one by one (cycling through them `count` times in all) and prints the
/// percentiles of single evaluations.
fn evaluation_latencies(id: &str, policies: &PolicySet, requests: &[&AuthzRequest], count: usize) {
    let mut latencies = Latencies::new();
    for request in requests.iter().cycle().take(count) {
        let start = Instant::now();
        black_box(policies.evaluate(request));
        latencies.record(start.elapsed());
    }
    eprintln!("latency {}", latencies.summary(id));
}

/// Checks the decision cache's counters between two snapshots: Redis must never have failed or
/// been skipped, and `check` says what else is wrong.
fn verify_cache(
    id: &str,
    before: &EngineStats,
    after: &EngineStats,
    check: impl FnOnce(u64, &tiered_cache::CacheStats) -> Option<String>,
) -> Result<(), String> {
    let (Some(cache_before), Some(cache_after)) = (before.cache, after.cache) else {
        return Err(format!("{id}: the engine has no decision cache"));
    };
    let delta = cache_after.since(&cache_before);
    let evaluations = after.evaluations - before.evaluations;
    if delta.l2_errors != 0 || delta.l2_skipped != 0 || delta.codec_errors != 0 {
        return Err(format!(
            "{id}: Redis failed or was skipped while it ran ({delta:?}); its numbers do not \
             measure the decision cache"
        ));
    }
    match check(evaluations, &delta) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "{id}: {problem} ({evaluations} evaluations, {delta:?})"
        )),
    }
}

fn policy(c: &mut Criterion) {
    let runtime = bench_harness::runtime().unwrap_or_else(|error| fail("policy", error));
    let fixture = setup().unwrap_or_else(|error| fail("policy", error));
    let mut failures = Vec::new();
    let mut group = Group::new(c, "policy");
    configure(&mut group);
    let counter = Arc::clone(&fixture.round_trips);
    group.count_round_trips(move || counter.read());

    // The machine floors (CPU, memory, allocator): what the gate normalises by, per resource.
    bench_harness::floors::register(&mut group);

    // Compiling the synthetic sets from their in-memory sources (parsing, analysis, and the
    // version hash); the compiled set is dropped outside the timing. One compile per batch, so
    // that only one compiled set at a time is alive. Flat sampling: a compile takes from half a
    // millisecond to tens of milliseconds, far too long for criterion's linear ramp of
    // iterations to fit the measurement time.
    for (size, set, _) in &fixture.synthetic {
        group.sampling_mode(SamplingMode::Flat);
        if *size == PolicySize::Large {
            // 35 to 50 ms per compile: 30 samples (of two compiles each) take 3 s.
            group.sample_size(30);
        }
        group.bench_with_parameter("compile", size.name(), |b| {
            b.iter_batched(
                || (),
                |()| {
                    set.compile()
                        .unwrap_or_else(|error| fail("policy", anyhow::anyhow!("compile: {error}")))
                },
                BatchSize::PerIteration,
            )
        });
        configure(&mut group);
    }

    // The decision cache. A hit is the same request again, answered by L1 (it was decided once
    // before the benchmark). A miss is a request whose decision is in neither tier: the setup
    // removes it from both (outside the timing), so the routine looks in L1 and Redis, evaluates,
    // and stores the decision in both; cycling through 1,024 requests keeps the cache's size
    // fixed.
    let hit = &rbac_requests()[0];
    runtime.block_on(fixture.cached.authorize(hit));
    let before = fixture.cached.stats();
    let mut ran = false;
    group.bench_with_parameter("decision_cache", "hit", |b| {
        ran = true;
        b.iter_async(&runtime, || fixture.cached.authorize(hit));
    });
    if ran {
        let latencies = runtime.block_on(async {
            let mut latencies = Latencies::new();
            for _ in 0..pass_size(100_000, 12) {
                let start = Instant::now();
                black_box(fixture.cached.authorize(hit).await);
                latencies.record(start.elapsed());
            }
            latencies
        });
        eprintln!("latency {}", latencies.summary("policy/decision_cache/hit"));
    }
    let after = fixture.cached.stats();
    if let Err(problem) = verify_cache(
        "policy/decision_cache/hit",
        &before,
        &after,
        |evaluations, delta| {
            (evaluations != 0 || delta.l1_misses != 0)
                .then(|| "a hit was not served by L1".to_owned())
        },
    ) {
        failures.push(problem);
    }

    let misses = distinct_requests(MISS_REQUESTS);
    let mut next = 0;
    let before = fixture.cached.stats();
    // 0.2 to 0.5 ms per miss (an evaluation and two Redis round trips, whose cost depends on
    // how busy the machine is): criterion's linear ramp of 5,050 iterations may not fit, so flat
    // sampling over 3 s.
    group
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3));
    group.bench_with_parameter("decision_cache", "miss", |b| {
        b.iter_batched_async(
            &runtime,
            || {
                let request = &misses[next];
                next = (next + 1) % misses.len();
                runtime.block_on(fixture.cached.forget(request));
                request
            },
            |request| fixture.cached.authorize(request),
            BatchSize::NumIterations(BATCH),
        );
    });
    configure(&mut group);
    let after = fixture.cached.stats();
    if let Err(problem) = verify_cache(
        "policy/decision_cache/miss",
        &before,
        &after,
        |evaluations, delta| {
            (delta.l1_hits != 0 || delta.l2_hits != 0 || evaluations != delta.l1_misses)
                .then(|| "a miss found a cached decision".to_owned())
        },
    ) {
        failures.push(problem);
    }

    // From here on every iteration evaluates policies several times (a millisecond or more), so
    // criterion's linear ramp of 5,050 iterations would not fit the measurement time: flat
    // sampling (every sample the same number of iterations) for the rest of the group.
    group.sampling_mode(SamplingMode::Flat);

    // Evaluating the shipped policies (no cache): an iteration decides each representative
    // request once, so the work per iteration is the same in every run; per-request latencies
    // follow in an extra pass.
    let shipped_sweeps = [
        ("evaluate_rbac", rbac_requests()),
        ("evaluate_tenancy", tenancy_requests()),
    ];
    for (operation, requests) in &shipped_sweeps {
        group.throughput(Throughput::Elements(requests.len() as u64));
        let mut ran = false;
        group.bench(operation, |b| {
            ran = true;
            b.iter(|| {
                for request in requests {
                    black_box(fixture.shipped.evaluate(request));
                }
            });
        });
        if ran {
            let requests: Vec<&AuthzRequest> = requests.iter().collect();
            evaluation_latencies(
                &format!("policy/{operation}"),
                &fixture.shipped,
                &requests,
                pass_size(6_000, 12),
            );
        }
    }

    // The reference: the same RBAC + tenancy decision in Cedar, on the same requests as
    // `evaluate_rbac` (an iteration decides each once, building Cedar's request from ours as
    // our engine builds its input), so that the ratio of the two is measured in one run. The
    // fixture's check that both engines agree on every request is a test of this crate
    // (`policy::cedar`).
    let reference = CedarReference::new().unwrap_or_else(|error| fail("policy", error));
    let requests = rbac_requests();
    for request in &requests {
        let ours = fixture.shipped.evaluate(request).allowed;
        match reference.is_allowed(request) {
            Ok(theirs) if theirs == ours => {}
            Ok(theirs) => fail(
                "policy",
                anyhow::anyhow!("Cedar decides {request:?} as allowed={theirs}, ours {ours}"),
            ),
            Err(error) => fail("policy", error),
        }
    }
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_with_parameter("reference", "cedar_rbac", |b| {
        b.iter(|| {
            for request in &requests {
                black_box(reference.is_allowed(request).ok());
            }
        });
    });

    // Evaluating the synthetic sets: an iteration decides the first 64 of the set's 256
    // requests (allowed and denied ones, counted in the setup), in order, so that every size
    // does the same number of evaluations per iteration and the large set's iteration stays
    // near a tenth of a second. The per-request latency pass cycles through all 256.
    for (size, set, compiled) in &fixture.synthetic {
        let all: Vec<&AuthzRequest> = set.requests().collect();
        let sweep = &all[..SWEEP];
        if *size == PolicySize::Large {
            // About 2 ms per evaluation, 0.1 s per sweep: 20 samples (of one or two sweeps each)
            // take 3 s.
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(3));
        }
        group.throughput(Throughput::Elements(SWEEP as u64));
        let mut ran = false;
        group.bench_with_parameter("evaluate", size.name(), |b| {
            ran = true;
            b.iter(|| {
                for request in sweep {
                    black_box(compiled.evaluate(request));
                }
            });
        });
        configure(&mut group);
        group.sampling_mode(SamplingMode::Flat);
        if ran {
            evaluation_latencies(
                &format!("policy/evaluate/{}", size.name()),
                compiled,
                &all,
                pass_size(
                    match size {
                        PolicySize::Small => 20_000,
                        PolicySize::Medium => 5_120,
                        PolicySize::Large => 512,
                    },
                    12,
                ),
            );
        }
    }

    // A batch of 10 through the engine (no cache): `authorize_batch` runs the ten decisions as
    // one future.
    let mixed: Vec<AuthzRequest> = rbac_requests()
        .into_iter()
        .chain(tenancy_requests())
        .collect();
    let batch = &mixed[..10];
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_with_parameter("batch", batch.len(), |b| {
        b.iter_async(&runtime, || fixture.engine.authorize_batch(batch));
    });

    // 10, 100 and 1,000 tasks at once on the two workers, each authorizing one request per
    // round (no cache); the time is the wall time of the whole batch of rounds.
    let mixed = Arc::new(mixed);
    for tasks in [10_usize, 100, 1_000] {
        if tasks == 1_000 {
            // A round of 1,000 evaluations takes 120 to 200 ms: 20 samples of one round each.
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(4));
        }
        group.throughput(Throughput::Elements(tasks as u64));
        group.bench_with_parameter("concurrent", tasks, |b| {
            b.iter_custom(|rounds| {
                runtime.block_on(concurrent_authorize(&fixture.engine, &mixed, tasks, rounds))
            });
        });
    }
    group.finish();

    let stats = fixture.engine.stats();
    if stats.evaluation_failures != 0 {
        failures.push(format!(
            "policy: {} evaluations failed and were measured as denials",
            stats.evaluation_failures
        ));
    }
    if !failures.is_empty() {
        fail("policy", anyhow::anyhow!(failures.join("\n")));
    }
}

bench_harness::main!(policy);

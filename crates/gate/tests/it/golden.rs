//! The four reports, byte for byte, in both modes: a change to a renderer shows up here as a
//! diff of `golden/`. After a deliberate change, regenerate them with
//!
//!     UPDATE_GOLDEN=1 cargo test -p gate --test it golden
//!
//! and review the diff like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gate::baseline::{Baselines, FORMAT, SuiteBaseline};
use gate::paired::{PairedBenchmark, Pairing, Sequence, Stop};
use gate::render::{json, junit, markdown, terminal};
use gate::{BenchmarkId, Config, Measurement, PairedOptions, PairedResults, Report, RoundTrips};

use crate::{baseline_from, fingerprint, fixture, gate};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/golden")
}

/// Compares `actual` with `golden/<name>`, or rewrites it with `UPDATE_GOLDEN=1`.
fn check(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err} (UPDATE_GOLDEN=1 writes it)", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the rendering, first at line {}:\n  golden: {:?}\n  actual: {:?}\n\
             (after a deliberate change: UPDATE_GOLDEN=1 cargo test -p gate --test it golden)",
            path.display(),
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

fn all_four(stem: &str, report: &Report) {
    check(&format!("{stem}.txt"), &terminal::render(report, false));
    check(&format!("{stem}.md"), &markdown::render(report));
    check(&format!("{stem}.json"), &json::render(report));
    check(&format!("{stem}.xml"), &junit::render(report));
}

#[test]
fn stored_mode_reports_are_pinned() {
    let baselines = baseline_from("baseline", fingerprint());
    let report = gate(&fixture("slower30"), baselines.path()).unwrap();
    all_four("stored", &report);
}

fn id(text: &str) -> BenchmarkId {
    BenchmarkId::new(text).unwrap()
}

fn measurement(
    median_ns: f64,
    allocations: f64,
    statements: Option<&[(&str, f64)]>,
) -> Measurement {
    Measurement {
        median_ns,
        median_ci_ns: [median_ns * 0.98, median_ns * 1.02],
        allocations_per_iteration: Some(allocations),
        bytes_per_iteration: Some(allocations * 64.0),
        round_trips: statements.map(|entries| RoundTrips {
            postgres_statements: Some(entries.iter().map(|(_, n)| n).sum()),
            redis_commands: Some(1.0),
            statements: entries.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            commands: [("get".to_owned(), 1.0)].into(),
            unavailable: Vec::new(),
        }),
        samples_ns: vec![median_ns; 16],
    }
}

fn sequence(ratio: f64, blocks: usize) -> Sequence {
    Sequence {
        // A fixed spread of ±2% around the ratio.
        block_log_ratios: (0..blocks)
            .map(|i| ratio.ln() + 0.02 * ((i % 5) as f64 / 2.0 - 1.0))
            .collect(),
        iterations_per_slice: 64,
        stopped: Stop::Decided,
    }
}

fn both(base: Measurement, candidate: Measurement, ratio: f64, confirm: bool) -> PairedBenchmark {
    PairedBenchmark::Both {
        base,
        candidate,
        pairing: Pairing {
            first: sequence(ratio, 9),
            confirmation: confirm.then(|| sequence(ratio, 8)),
        },
    }
}

fn baselines(ids: &[&str]) -> Baselines {
    let mut baselines = Baselines::new();
    for text in ids {
        let id = id(text);
        baselines
            .entry(id.suite().to_owned())
            .or_insert_with(|| SuiteBaseline {
                format: FORMAT,
                suite: id.suite().to_owned(),
                fingerprint: fingerprint(),
                benchmarks: BTreeMap::new(),
            })
            .benchmarks
            .insert(id, measurement(1000.0, 1.0, None));
    }
    baselines
}

/// A paired run with every kind of finding: a confirmed latency regression, an added statement,
/// an improvement, an unchanged benchmark, a new one, a missing one, a removed one, and an
/// edit of perf-gate.toml.
pub(crate) fn paired_report() -> Report {
    let select = [
        ("BEGIN", 1.0),
        ("SELECT a FROM cart WHERE id = $1", 1.0),
        ("COMMIT", 1.0),
    ];
    let select_twice = [
        ("BEGIN", 1.0),
        ("SELECT a FROM cart WHERE id = $1", 1.0),
        ("SELECT count(*) FROM items WHERE cart = $1", 1.0),
        ("COMMIT", 1.0),
    ];
    let benchmarks = BTreeMap::from([
        (
            id("cart/add_item"),
            both(
                measurement(420_000.0, 120.0, Some(&select)),
                measurement(470_000.0, 121.0, Some(&select_twice)),
                1.11,
                false,
            ),
        ),
        (
            id("cart/get_cart_hit"),
            both(
                measurement(20_000.0, 40.0, Some(&select)),
                measurement(31_000.0, 40.0, Some(&select)),
                1.55,
                true,
            ),
        ),
        (
            id("cart/remove_item"),
            both(
                measurement(400_000.0, 100.0, Some(&select)),
                measurement(300_000.0, 100.0, Some(&select)),
                0.75,
                false,
            ),
        ),
        (
            id("cart/floor/redis_get"),
            both(
                measurement(15_000.0, 4.0, None),
                measurement(15_100.0, 4.0, None),
                1.01,
                false,
            ),
        ),
        (
            id("cart/mixed_70_30"),
            PairedBenchmark::CandidateOnly {
                candidate: measurement(900_000.0, 300.0, Some(&select)),
            },
        ),
        (id("cart/concurrent_get/8"), PairedBenchmark::BaseOnly),
    ]);
    let results = PairedResults {
        benchmarks,
        suites: BTreeSet::from(["cart".to_owned()]),
        warnings: Vec::new(),
    };
    let base_ids = [
        "cart/add_item",
        "cart/get_cart_hit",
        "cart/remove_item",
        "cart/floor/redis_get",
        "cart/concurrent_get/8",
        "cart/concurrent_get/64",
    ];
    let mut candidate_ids = base_ids.to_vec();
    candidate_ids.retain(|id| *id != "cart/concurrent_get/64");
    candidate_ids.push("cart/mixed_70_30");
    let base_config = Config::parse(
        "[[override]]\nglob = \"cart/concurrent_*/*\"\nlatency = 30\nreason = \"64 tasks on two cores\"\n",
        Path::new("perf-gate.toml"),
    )
    .unwrap();
    let candidate_config = Config::parse(
        "[[override]]\nglob = \"cart/concurrent_*/*\"\nlatency = 45\nreason = \"64 tasks on two cores\"\n",
        Path::new("perf-gate.toml"),
    )
    .unwrap();
    gate::judge_paired(
        &PairedOptions {
            base: "merge-base of HEAD and origin/main".to_owned(),
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            same_as_working_tree: false,
            base_config,
            candidate_config,
            base_baselines: baselines(&base_ids),
            candidate_baselines: baselines(&candidate_ids),
            fingerprint: fingerprint(),
        },
        &results,
    )
}

#[test]
fn paired_mode_reports_are_pinned() {
    all_four("paired", &paired_report());
}

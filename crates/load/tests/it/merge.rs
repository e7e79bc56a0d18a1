//! Two generator processes' results read as one: `merge` adds histograms and counts and aligns
//! the series on wall-clock time, and thresholds are judged on the whole.

use std::time::Duration;

use load::report::{self, Report};

use crate::{double, support};

const PROFILE: &str = r#"
[profiles.part]
description = "one generator's share"
warmup = "0s"
thresholds = ["rps >= 150"]

[[profiles.part.scenarios]]
name = "reads"
executor = "constant-arrival-rate"
rate = 100
duration = "3s"
mix = { get_cart = 1 }
thresholds = ["p99 < 1s", "rps >= 150"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_generators_merge_into_one_report() {
    let server = double::start(Duration::from_secs(3600), Duration::ZERO).await;
    let profile = support::profile(PROFILE, "part");
    let addr = server.addr.to_string();
    let options = support::options(&addr);
    let (a, b) = tokio::join!(
        support::run(&profile, &addr, support::any_identities(), &options),
        support::run(&profile, &addr, support::any_identities(), &options),
    );
    // Each alone fails its rps >= 150: it sent 100/s.
    assert!(!Report::from_raw(a.clone()).passed);

    // Through the JSON files, as `commerce-load merge` reads them.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, raw) in [a, b].into_iter().enumerate() {
        let path = dir.path().join(format!("{i}.json"));
        std::fs::write(
            &path,
            serde_json::to_string(&Report::from_raw(raw)).unwrap(),
        )
        .unwrap();
        paths.push(path);
    }
    let runs: Vec<_> = paths.iter().map(|p| report::read_raw(p).unwrap()).collect();
    // The same report twice would double the counts.
    let twice = report::merge(vec![runs[0].clone(), runs[0].clone()]).unwrap_err();
    assert!(twice.to_string().contains("given twice"), "{twice}");
    let merged = Report::from_raw(report::merge(runs).unwrap());
    assert_eq!(merged.summary.count, 600);
    assert_eq!(merged.generators.len(), 2);
    assert!(merged.summary.rps > 150.0, "rps {}", merged.summary.rps);
    assert!(merged.passed, "{:?}", merged.thresholds);
    let sent: u64 = merged.series.iter().map(|p| p.sent).sum();
    assert_eq!(sent, 600);
    // The two ran at the same time: their steps line up, about 200 sent in each full second.
    let busiest = merged.series.iter().map(|p| p.sent).max().unwrap();
    assert!(busiest >= 190, "busiest step {busiest}");
}

#[test]
fn what_cannot_be_merged_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    std::fs::write(&path, "{\"count\": 3}").unwrap();
    let error = report::read_raw(&path).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not a commerce-load JSON report"),
        "{error}"
    );
    assert!(report::merge(Vec::new()).is_err());
}

//! The command line: exit codes 0 (thresholds held), 1 (one failed), 2 (usage or input), the
//! reports it writes, and `merge`, against the test double with `--target`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::{double, support};

const PROFILES: &str = r#"
[profiles.quick]
description = "two seconds of reads"
warmup = "0s"

[[profiles.quick.scenarios]]
name = "reads"
executor = "constant-arrival-rate"
rate = 50
duration = "2s"
mix = { get_cart = 1 }
thresholds = ["p95 < 1s", "error_rate < 1%", "rps >= 45"]

[profiles.strict]
description = "a threshold no server meets"
warmup = "0s"

[[profiles.strict.scenarios]]
name = "reads"
executor = "constant-arrival-rate"
rate = 50
duration = "2s"
mix = { get_cart = 1 }
thresholds = ["p95 < 1us"]

[profiles.long]
description = "a minute no server passes"
warmup = "0s"

[[profiles.long.scenarios]]
name = "reads"
executor = "constant-arrival-rate"
rate = 50
duration = "60s"
mix = { get_cart = 1 }
thresholds = ["p95 < 1us"]
"#;

fn commerce_load(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_commerce-load"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("commerce-load runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_judge_write_reports_and_merge() {
    let server = double::start(Duration::from_secs(3600), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("profiles.toml"), PROFILES).unwrap();
    let ids = dir.path().join("ids.json");
    std::fs::write(
        &ids,
        serde_json::to_string(&support::any_identities()).unwrap(),
    )
    .unwrap();
    let addr = server.addr.to_string();
    let common = [
        "--profiles",
        "profiles.toml",
        "--target",
        &addr,
        "--identities",
        "ids.json",
        "--progress",
        "0",
    ];
    let dir_path = dir.path().to_owned();

    let run = |args: Vec<String>| {
        let dir = dir_path.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            commerce_load(&dir, &args)
        })
    };
    let with = |extra: &[&str]| -> Vec<String> {
        common
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };

    let pass = run(with(&["quick", "--json", "a.json", "--html", "a.html"]))
        .await
        .unwrap();
    assert_eq!(pass.status.code(), Some(0), "{}", text(&pass));
    assert!(text(&pass).contains("PASS"), "{}", text(&pass));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("a.json")).unwrap()).unwrap();
    for field in [
        "count",
        "total",
        "average",
        "fastest",
        "slowest",
        "rps",
        "errorDistribution",
        "statusCodeDistribution",
        "latencyDistribution",
        "histogram",
        "p999",
        "series",
        "thresholds",
        "scenarios",
        "raw",
    ] {
        assert!(json.get(field).is_some(), "the JSON report has no {field}");
    }
    assert_eq!(json["count"], 100);
    assert_eq!(json["statusCodeDistribution"]["OK"], 100);
    assert!(
        std::fs::read_to_string(dir.path().join("a.html"))
            .unwrap()
            .contains("<svg")
    );

    let second = run(with(&["quick", "--json", "b.json", "--html", "b.html"]))
        .await
        .unwrap();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let merged = run([
        "merge", "a.json", "b.json", "--json", "m.json", "--html", "m.html",
    ]
    .map(str::to_owned)
    .to_vec())
    .await
    .unwrap();
    // Two runs one after the other: 200 requests over about twice the window, so rps >= 45 still holds.
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("m.json")).unwrap()).unwrap();
    assert_eq!(json["count"], 200);

    let fail = run(with(&["strict", "--json", "c.json", "--html", "c.html"]))
        .await
        .unwrap();
    assert_eq!(fail.status.code(), Some(1), "{}", text(&fail));
    assert!(text(&fail).contains("✗"), "{}", text(&fail));

    // --abort-on-fail stops a failing minute after about 5 s of data, with the reports.
    let started = std::time::Instant::now();
    let mut args = with(&[
        "long",
        "--json",
        "d.json",
        "--html",
        "d.html",
        "--abort-on-fail",
    ]);
    // Progress (and so the threshold check) every second.
    let at = args.iter().position(|a| a == "--progress").unwrap();
    args[at + 1] = "1".to_owned();
    let aborted = run(args).await.unwrap();
    assert_eq!(aborted.status.code(), Some(1), "{}", text(&aborted));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("d.json")).unwrap()).unwrap();
    let why = json["stoppedEarly"].as_str().unwrap_or_default();
    assert!(
        why.contains("--abort-on-fail") && why.contains("p95 < 1us"),
        "{why}"
    );
    assert!(json["count"].as_u64().unwrap() < 1_500, "{}", json["count"]);
}

#[test]
fn usage_and_input_errors_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("profiles.toml"), PROFILES).unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        "[profiles.x]\ndescription = 1\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("reports")).unwrap();
    // A run against a server that is not there, stopped by a mistake before it starts.
    let against = [
        "quick",
        "--profiles",
        "profiles.toml",
        "--target",
        "127.0.0.1:1",
    ];
    for (args, fragment) in [
        (
            vec!["nosuch", "--profiles", "profiles.toml"],
            "there is no profile `nosuch`; the profiles are: long, quick, strict",
        ),
        (
            vec![
                "quick",
                "--profiles",
                "profiles.toml",
                "--scenario",
                "writes",
            ],
            "has no scenario `writes`",
        ),
        (
            vec!["quick", "--profiles", "broken.toml"],
            "broken.toml is not valid",
        ),
        (
            vec!["quick", "--profiles", "missing.toml"],
            "cannot read the profiles file missing.toml",
        ),
        (
            vec!["quick", "--profiles", "profiles.toml", "--duration", "soon"],
            "e.g. 30s",
        ),
        (
            vec!["quick", "--profiles", "profiles.toml", "--rate", "0"],
            "--rate must be",
        ),
        (against.to_vec(), "--identities"),
        (
            [&against[..], &["--identities", "none.json"]].concat(),
            "cannot read the identities file none.json",
        ),
        (vec!["merge", "only-one.json"], "2 values"),
        (vec!["merge", "x.json", "y.json"], "cannot read x.json"),
        // Reports that cannot be written are found before the run, not after it.
        (
            [
                &against[..],
                &["--identities", "none.json", "--json", "reports"],
            ]
            .concat(),
            "reports is a directory",
        ),
        (
            [
                &against[..],
                &[
                    "--identities",
                    "none.json",
                    "--html",
                    "profiles.toml/r.html",
                ],
            ]
            .concat(),
            "profiles.toml is not a directory",
        ),
        (
            vec!["quick", "--profiles", "profiles.toml", "--rate", "2000000"],
            "at most 1000000",
        ),
    ] {
        let output = commerce_load(dir.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains(fragment),
            "{args:?}: {}",
            text(&output)
        );
    }
}

#[test]
fn list_shows_the_shipped_profiles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = commerce_load(&root, &["list"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let out = text(&output);
    for name in ["smoke", "get_cart", "stress", "spike", "soak", "cache_miss"] {
        assert!(out.contains(name), "{name} not listed: {out}");
    }
}

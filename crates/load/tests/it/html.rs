//! The HTML report in a real browser: headless Chromium loads the file, lays it out, runs its
//! check script, and the rendered DOM says how many charts drew lines; a screenshot is taken.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use load::report::Report;

use crate::{double, support};

const PROFILE: &str = r#"
[profiles.page]
description = "a short run to draw"
warmup = "0s"
thresholds = ["p95 < 1s"]

[[profiles.page.scenarios]]
name = "reads"
executor = "ramping-arrival-rate"
start_rate = 50
stages = [{ duration = "2s", target = 200 }, { duration = "1s", target = 200 }]
mix = { get_cart = 1 }
thresholds = ["p95 < 50ms", "error_rate < 1%"]
"#;

fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name;
        }
    }
    panic!(
        "headless Chromium is needed to check the HTML report: `apt-get install chromium` \
         (.ci/run installs it)"
    );
}

fn browse(file: &Path, extra: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--virtual-time-budget=3000")
        .args(extra)
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_its_charts_in_a_browser() {
    let server = double::start(Duration::from_secs(3600), Duration::ZERO).await;
    let profile = support::profile(PROFILE, "page");
    let addr = server.addr.to_string();
    let mut options = support::options(&addr);
    // This process stands in for the server whose memory is charted.
    options.server_pid = Some(std::process::id());
    let raw = support::run(&profile, &addr, support::any_identities(), &options).await;
    let report = Report::from_raw(raw);
    assert!(!report.server_memory.is_empty());
    let html = load::render::html::render(&report);
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "fetches nothing"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    std::fs::write(&file, &html).unwrap();
    let dom = browse(&file, &["--dump-dom".to_owned()]);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom_text.contains("data-charts=\"4\"") && dom_text.contains("data-charts-drawn=\"4\""),
        "the rendered page does not have its four charts drawn; chromium said: {}\n{}",
        String::from_utf8_lossy(&dom.stderr),
        &dom_text[..dom_text.len().min(2_000)]
    );
    for id in [
        "chart-latency",
        "chart-throughput",
        "chart-errors",
        "chart-memory",
    ] {
        assert!(dom_text.contains(&format!("id=\"{id}\"")), "{id} missing");
    }

    let shot = dir.path().join("report.png");
    let out = browse(
        &file,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1000,1800".to_owned(),
            "--hide-scrollbars".to_owned(),
        ],
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "the screenshot is {size} bytes; chromium said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Keep a copy for people to look at (the README describes it).
    if let Ok(dir) = std::env::var("LOAD_SCREENSHOT_DIR") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(&shot, Path::new(&dir).join("report.png"));
        let _ = std::fs::copy(&file, Path::new(&dir).join("report.html"));
    }
}

//! The monitoring files (`monitoring/`) against the tools that read them: the alert rules with
//! `promtool` (checked, unit-tested, every alert with a case that fires it and one that does
//! not), and every PromQL expression of the Grafana dashboard and of the alert rules against a
//! real Prometheus scraping a real `commerce-server`, so that the dashboard and the alerts can
//! only name metrics that exist.
//!
//! `prometheus` and `promtool` come from Debian's `prometheus` package (`.ci/run` installs it).
//! Without them these tests fail under `CI=true`, and elsewhere say loudly that they did not run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::metrics::{ServerProcess, USERS, die_with_parent, drive_traffic, http_get, repository};

/// `monitoring/` of the repository.
fn monitoring() -> PathBuf {
    repository().join("monitoring")
}

fn alerts_file() -> PathBuf {
    monitoring().join("prometheus/alerts.yml")
}

fn dashboard_file() -> PathBuf {
    monitoring().join("grafana/dashboards/commerce-server.json")
}

/// The executable `name` of the `prometheus` package: `Ok(None)` (and a note on stderr) when it
/// is missing outside CI, an error when it is missing under `CI` (set and not `false`/`0`).
fn tool(name: &str) -> anyhow::Result<Option<PathBuf>> {
    let dirs = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/bin")])
        .collect::<Vec<_>>();
    let ci = std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"));
    locate(name, &dirs, ci)
}

/// `name` in the first of `dirs` that has it; when none has it, an error under CI, else `None`.
fn locate(name: &str, dirs: &[PathBuf], ci: bool) -> anyhow::Result<Option<PathBuf>> {
    let found = dirs
        .iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_some() {
        return Ok(found);
    }
    if ci {
        bail!(
            "`{name}` is not installed, and CI must run this test: `apt-get install -y prometheus` \
             (`.ci/run` does)"
        );
    }
    eprintln!(
        "NOT RUN: `{name}` is not installed (`sudo apt-get install -y prometheus`); \
         under CI=true this test fails instead"
    );
    Ok(None)
}

#[test]
fn a_missing_tool_fails_the_test_under_ci_and_is_reported_elsewhere() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dirs = [dir.path().to_owned()];
    assert!(locate("promtool", &dirs, true).is_err());
    assert_eq!(locate("promtool", &dirs, false)?, None);
    std::fs::write(dir.path().join("promtool"), "")?;
    assert_eq!(
        locate("promtool", &dirs, true)?,
        Some(dir.path().join("promtool"))
    );
    Ok(())
}

/// Runs `program args` in `dir`, failing with its output unless it succeeds.
fn run(program: &Path, args: &[&str], dir: &Path) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        output.status.success(),
        "{} {} failed ({}):\n{text}",
        program.display(),
        args.join(" "),
        output.status
    );
    Ok(text)
}

/// A YAML file as JSON values.
fn yaml(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `(alert name, expression)` of every alerting rule of `alerts.yml`.
fn alert_rules() -> anyhow::Result<Vec<(String, String)>> {
    let rules = yaml(&alerts_file())?;
    let mut alerts = Vec::new();
    for group in rules["groups"].as_array().context("no groups")? {
        for rule in group["rules"].as_array().context("a group without rules")? {
            let name = rule["alert"]
                .as_str()
                .context("a rule that is not an alert")?;
            let expr = rule["expr"].as_str().context("an alert without expr")?;
            alerts.push((name.to_owned(), expr.to_owned()));
        }
    }
    ensure!(!alerts.is_empty(), "no alerts in alerts.yml");
    Ok(alerts)
}

/// An alert's expression split as the convention of `alerts.yml` says, `<query> <op> <number>`:
/// the query, the comparison and the threshold.
fn split_threshold(expr: &str) -> Option<(&str, &str, f64)> {
    let expr = expr.trim();
    let (query, threshold) = expr.rsplit_once(' ')?;
    let threshold: f64 = threshold.parse().ok()?;
    let (query, op) = query.trim_end().rsplit_once(' ')?;
    matches!(op, ">" | "<" | ">=" | "<=" | "==" | "!=").then_some((query.trim_end(), op, threshold))
}

/// `(panel title, expression)` of every query of every panel of the dashboard (rows included),
/// with Grafana's interval variables replaced by `window` (a Prometheus duration).
fn dashboard_queries(window: &str) -> anyhow::Result<Vec<(String, String)>> {
    fn walk(panel: &Value, window: &str, out: &mut Vec<(String, String)>) {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let expr = expr
                    .replace("$__rate_interval", window)
                    .replace("$__interval", window)
                    .replace("$__range", window);
                out.push((title.to_owned(), expr));
            }
        }
        for inner in panel["panels"].as_array().into_iter().flatten() {
            walk(inner, window, out);
        }
    }
    let path = dashboard_file();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let dashboard: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut queries = Vec::new();
    walk(&dashboard, window, &mut queries);
    ensure!(!queries.is_empty(), "no queries in the dashboard");
    for (title, expr) in &queries {
        ensure!(
            !expr.contains('$'),
            "panel {title:?}: a variable the tests do not know in {expr}"
        );
    }
    Ok(queries)
}

#[test]
fn the_dashboard_has_the_panels_of_the_issue() -> anyhow::Result<()> {
    let path = dashboard_file();
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .context("no panels")?
        .iter()
        .filter_map(|panel| panel["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Request rate",
            "P95 latency",
            "Error rate",
            "Orders by status",
            "Cart operations throughput",
            "Order creation latency",
            "Database pool",
            "Cache hit rate",
            "Latency heatmap",
            "CPU",
            "Memory",
            "Tokio tasks",
            "Policy evaluations",
        ]
    );
    // Every panel reads the datasource that provisioning creates.
    let datasource = yaml(&monitoring().join("grafana/provisioning/datasources/prometheus.yml"))?;
    let uid = datasource["datasources"][0]["uid"]
        .as_str()
        .context("the provisioned datasource's uid")?;
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        assert_eq!(panel["datasource"]["uid"], uid, "{}", panel["title"]);
    }
    dashboard_queries("5m")?;
    Ok(())
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_fires_and_stays_silent() -> anyhow::Result<()> {
    let Some(promtool) = tool("promtool")? else {
        return Ok(());
    };
    let dir = monitoring().join("prometheus");
    run(&promtool, &["check", "rules", "alerts.yml"], &dir)?;
    run(&promtool, &["test", "rules", "alerts.test.yml"], &dir)?;
    // The compose stack's configuration (it loads alerts.yml).
    run(&promtool, &["check", "config", "prometheus.yml"], &dir)?;

    // Each alert's expression follows the convention the real-Prometheus test relies on.
    let alerts = alert_rules()?;
    for (name, expr) in &alerts {
        ensure!(
            split_threshold(expr).is_some(),
            "{name}: the expression is not `<query> <comparison> <number>`: {expr}"
        );
    }
    // Each alert is expected to fire somewhere and to stay silent somewhere.
    let tests = yaml(&dir.join("alerts.test.yml"))?;
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for test in tests["tests"].as_array().context("no tests")? {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"]
                .as_str()
                .context("a case without alertname")?;
            let fires = case["exp_alerts"]
                .as_array()
                .is_some_and(|alerts| !alerts.is_empty());
            let entry = cases.entry(name.to_owned()).or_default();
            if fires {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    let names: BTreeSet<&str> = alerts.iter().map(|(name, _)| name.as_str()).collect();
    for name in cases.keys() {
        ensure!(
            names.contains(name.as_str()),
            "alerts.test.yml tests {name}, which alerts.yml does not define"
        );
    }
    for name in names {
        let (fires, silent) = cases.get(name).copied().unwrap_or_default();
        ensure!(fires, "no test case where {name} fires");
        ensure!(silent, "no test case where {name} stays silent");
    }
    Ok(())
}

#[test]
fn alert_expressions_split_at_their_threshold() {
    assert_eq!(
        split_threshold("sum(rate(x[5m])) / sum(rate(y[5m])) > 0.01"),
        Some(("sum(rate(x[5m])) / sum(rate(y[5m]))", ">", 0.01))
    );
    assert_eq!(split_threshold("a < 0.7"), Some(("a", "<", 0.7)));
    assert_eq!(split_threshold("up == 0 or b"), None);
    assert_eq!(split_threshold("rate(x[5m])"), None);
}

/// A Prometheus server of the test's own; killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    // Removed after the server has stopped.
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `binary` on a free port of 127.0.0.1, scraping `target` every second as the job
    /// `commerce-server` (the job the dashboard names) and evaluating `alerts.yml` every second.
    async fn start(binary: &Path, target: SocketAddr) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir().context("a directory for Prometheus")?;
        let config = dir.path().join("prometheus.yml");
        let alerts = alerts_file().canonicalize().context("alerts.yml")?;
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {alerts:?}\n\
                 scrape_configs:\n  - job_name: commerce-server\n    static_configs:\n      \
                 - targets: [\"{target}\"]\n"
            ),
        )
        .context("writing the Prometheus configuration")?;
        // A port the kernel just handed out and nobody holds: a race with another process is
        // possible but unlikely, and shows as Prometheus failing to start (its log is shown).
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).context("creating Prometheus' log")?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("Prometheus' log")?)
            .stderr(log_file);
        die_with_parent(&mut command, nix::sys::signal::Signal::SIGKILL);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let ready = format!("{}/-/ready", prometheus.url);
        prometheus
            .wait_for("Prometheus to be ready", || {
                let ready = ready.clone();
                async move {
                    Ok(http_get(ready)
                        .await
                        .is_ok_and(|(_, body)| body.contains("Ready")))
                }
            })
            .await?;
        Ok(prometheus)
    }

    /// What Prometheus logged.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `check` every 250 ms for up to 60 s.
    async fn wait_for<F, Fut>(&self, what: &str, mut check: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<bool>>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if check().await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {what}; Prometheus' log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /api/v1/<path>` with `params`: the `data` of a successful answer, or the error
    /// Prometheus gave (a query that does not parse, for instance).
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let url = url::Url::parse_with_params(&format!("{}/api/v1/{path}", self.url), params)
            .context("the API's URL")?;
        let (_, body) = http_get(url.into()).await?;
        let answer: Value =
            serde_json::from_str(&body).with_context(|| format!("Prometheus answered {body}"))?;
        ensure!(
            answer["status"] == "success",
            "{} {}",
            answer["errorType"],
            answer["error"]
        );
        Ok(answer["data"].clone())
    }

    /// The samples of an instant query.
    async fn query(&self, query: &str) -> anyhow::Result<Vec<Value>> {
        let data = self.api("query", &[("query", query)]).await?;
        ensure!(
            data["resultType"] == "vector",
            "result type {}",
            data["resultType"]
        );
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of a query that returns one sample, if it does.
    async fn scalar(&self, query: &str) -> anyhow::Result<Option<f64>> {
        let result = self.query(query).await?;
        Ok(match result.as_slice() {
            [sample] => sample["value"][1]
                .as_str()
                .and_then(|value| value.parse().ok()),
            _ => None,
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a query's samples hold a number (not only NaN, which is what a ratio or a quantile
/// of no traffic gives).
fn has_number(samples: &[Value]) -> bool {
    samples.iter().any(|sample| {
        sample["value"][1]
            .as_str()
            .and_then(|value| value.parse::<f64>().ok())
            .is_some_and(|value| !value.is_nan())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_every_dashboard_and_alert_expression() -> anyhow::Result<()> {
    let Some(binary) = tool("prometheus")? else {
        return Ok(());
    };
    let server = ServerProcess::start().await?;
    let started = Prometheus::start(&binary, server.metrics).await?;
    let prometheus = &started;
    prometheus
        .wait_for("a first scrape of commerce-server", || async move {
            Ok(prometheus.scalar("up{job=\"commerce-server\"}").await? == Some(1.0))
        })
        .await?;

    let calls = drive_traffic(&server, USERS).await?;
    let made: u64 = calls.values().sum();
    ensure!(made >= 300, "only {made} calls made");
    // Until a scrape has seen every call.
    let total = "sum(grpc_server_handled_total{job=\"commerce-server\"})";
    prometheus
        .wait_for("a scrape that counts every call", || async move {
            Ok(prometheus.scalar(total).await? == Some(made as f64))
        })
        .await?;
    // One more, so that every rate over the traffic has a sample after it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let mut problems = Vec::new();
    // Prometheus loaded every rule of alerts.yml and evaluates it without error.
    let alerts = alert_rules()?;
    let rules = prometheus.api("rules", &[]).await?;
    let loaded: BTreeMap<String, (String, String)> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().into_iter().flatten())
        .filter_map(|rule| {
            Some((
                rule["name"].as_str()?.to_owned(),
                (
                    rule["health"].as_str().unwrap_or_default().to_owned(),
                    rule["lastError"].as_str().unwrap_or_default().to_owned(),
                ),
            ))
        })
        .collect();
    for (name, _) in &alerts {
        match loaded.get(name) {
            None => problems.push(format!("alert {name}: not loaded by Prometheus")),
            Some((health, error)) if health != "ok" => {
                problems.push(format!("alert {name}: health {health:?} {error}"));
            }
            Some(_) => {}
        }
    }

    // Every alert's query, without its threshold, returns data; the whole expression parses.
    let mut queries: Vec<(String, String)> = Vec::new();
    for (name, expr) in &alerts {
        if let Err(error) = prometheus.query(expr).await {
            problems.push(format!("alert {name}: {error:#}\n    {expr}"));
        }
        match split_threshold(expr) {
            Some((query, _, _)) => queries.push((format!("alert {name}"), query.to_owned())),
            None => problems.push(format!("alert {name}: no threshold in {expr}")),
        }
    }
    // Every query of every panel returns data; the windows are wide enough to hold the
    // traffic's scrapes.
    for (title, expr) in dashboard_queries("5m")? {
        queries.push((format!("panel {title:?}"), expr));
    }
    for (what, query) in &queries {
        match prometheus.query(query).await {
            Ok(samples) if has_number(&samples) => {}
            Ok(samples) => problems.push(format!("{what}: no data ({samples:?})\n    {query}")),
            Err(error) => problems.push(format!("{what}: {error:#}\n    {query}")),
        }
    }
    ensure!(
        problems.is_empty(),
        "{} of {} expressions failed against Prometheus:\n{}",
        problems.len(),
        queries.len(),
        problems.join("\n")
    );
    Ok(())
}

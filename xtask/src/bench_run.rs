//! Building the suites and running them under criterion with progress (stored mode and the
//! baseline refresh): which suite and benchmark, elapsed time, and an estimate of what is left.
//! Criterion's own output goes to one log file per suite. Also the confirmation re-runs of
//! stored mode.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, anyhow, bail};
use gate::{GateOptions, Metric, Report, Status};

use crate::cmd::{Cmd, cargo};
use crate::paths;
use crate::progress::Progress;
use crate::services::Services;
use crate::suites;

/// A measuring run of whole suites, as `perf-gate` and `baseline refresh` make it: every suite
/// built, the services started once for all of them, and a runner pointed at both. The
/// services stop when it drops.
pub(crate) struct Session {
    pub(crate) built: Built,
    pub(crate) runner: Runner,
    _services: Services,
}

impl Session {
    /// `command` names the command in progress lines (`perf-gate`, `baseline refresh`).
    pub(crate) fn start(
        root: &Path,
        command: &'static str,
        suites: &[String],
        criterion_dir: &Path,
        criterion_args: Vec<String>,
    ) -> anyhow::Result<Session> {
        let built = build(None)?;
        let services = Services::for_suites(root, suites)?;
        let runner = Runner::new(
            command,
            criterion_dir,
            paths::log_dir(root),
            services.env.clone(),
            criterion_args,
        )?;
        Ok(Session {
            built,
            runner,
            _services: services,
        })
    }

    /// Runs every benchmark of `suites`, with `expected` benchmarks per suite for the progress
    /// estimate (see [`benchmark_counts`]), and returns when the run started: only results
    /// written after that moment belong to it.
    pub(crate) fn run_suites(
        &self,
        suites: &[String],
        expected: &BTreeMap<String, usize>,
    ) -> anyhow::Result<SystemTime> {
        let started = SystemTime::now();
        let runs: Vec<SuiteRun> = suites
            .iter()
            .map(|suite| SuiteRun {
                suite: suite.clone(),
                filter: None,
                expected: expected.get(suite).copied().unwrap_or(0),
            })
            .collect();
        self.runner.run(&self.built, "run", &runs)?;
        check_suites(&self.runner.criterion_dir, started, suites)?;
        Ok(started)
    }
}

/// Fails if the results written since `started` hold a benchmark of a suite that did not run:
/// a bench crate whose group is not named after it would otherwise be judged (and baselined)
/// under another suite's name, or silently left out.
fn check_suites(
    criterion_dir: &Path,
    started: SystemTime,
    suites: &[String],
) -> anyhow::Result<()> {
    let found = bench_format::criterion::find_results(criterion_dir, Some(started))?;
    let strangers: Vec<String> = found
        .iter()
        .filter(|result| !suites.iter().any(|suite| suite == result.id.suite()))
        .map(|result| result.id.to_string())
        .collect();
    if !strangers.is_empty() {
        bail!(
            "the run of {} wrote results of another suite: {} (a suite's benchmark group must be \
             named after its bench crate)",
            suites.join(", "),
            strangers.join(", ")
        );
    }
    Ok(())
}

/// How many benchmarks each suite's baseline holds: what a run of it is expected to have.
pub(crate) fn benchmark_counts(baselines: &gate::baseline::Baselines) -> BTreeMap<String, usize> {
    baselines
        .iter()
        .map(|(suite, baseline)| (suite.clone(), baseline.benchmarks.len()))
        .collect()
}

/// How a set of suites is run.
pub(crate) struct Runner {
    /// The command, for progress lines.
    pub(crate) command: &'static str,
    /// Criterion's output directory (absolute: bench binaries run in their crate's directory).
    pub(crate) criterion_dir: PathBuf,
    /// Environment for the bench binaries (service URLs, knobs).
    pub(crate) env: Vec<(String, String)>,
    /// Extra arguments for criterion (`--sample-size 20`, ...).
    pub(crate) criterion_args: Vec<String>,
    /// Where the per-suite logs go.
    pub(crate) log_dir: PathBuf,
}

/// One suite to run, optionally only the benchmarks matching `filter`.
pub(crate) struct SuiteRun {
    pub(crate) suite: String,
    pub(crate) filter: Option<String>,
    /// How many benchmarks the run is expected to have (from the baseline), for the estimate.
    pub(crate) expected: usize,
}

/// The compiled bench executables, by suite.
pub(crate) struct Built {
    pub(crate) executables: BTreeMap<String, Executable>,
}

/// One suite's compiled bench executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Executable {
    pub(crate) path: PathBuf,
    /// The bench crate's directory: cargo runs benchmarks from there, and so do we.
    pub(crate) package_dir: PathBuf,
}

impl Executable {
    /// The command that runs it as `cargo bench` would: `--bench`, from the crate's directory,
    /// with the manifest directory in the environment.
    pub(crate) fn command(&self) -> Cmd {
        Cmd::new(&self.path)
            .args(["--bench"])
            .current_dir(&self.package_dir)
            .env("CARGO_MANIFEST_DIR", &self.package_dir)
    }
}

/// Compiles every suite, exactly as `cargo bench --workspace` does, and finds the executables:
/// of the workspace, or with `manifest` of another checkout (the base revision's worktree),
/// into the same target directory so that the dependencies are shared.
///
/// The suites are then run directly rather than through `cargo bench --bench <suite>`: a
/// different selection of targets can resolve dependency features differently and make cargo
/// recompile part of the tree between two suites of one run.
pub(crate) fn build(manifest: Option<&Path>) -> anyhow::Result<Built> {
    let mut command = cargo().args([
        "bench",
        "--workspace",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    if let Some(manifest) = manifest {
        let target = paths::target_dir(&paths::project_root());
        command = command
            .args([
                std::ffi::OsStr::new("--manifest-path"),
                manifest.as_os_str(),
            ])
            .env("CARGO_TARGET_DIR", target);
    }
    let messages = command.stdout()?;
    let mut executables = BTreeMap::new();
    for line in messages.lines().filter(|line| line.starts_with('{')) {
        let message: serde_json::Value =
            serde_json::from_str(line).context("cannot parse cargo's build messages")?;
        let is_bench = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bench"));
        if message["reason"] != "compiler-artifact" || !is_bench {
            continue;
        }
        let (Some(name), Some(path), Some(manifest)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
            message["manifest_path"].as_str(),
        ) else {
            continue;
        };
        let package_dir = Path::new(manifest)
            .parent()
            .unwrap_or(Path::new("."))
            .to_owned();
        executables.insert(
            name.to_owned(),
            Executable {
                path: PathBuf::from(path),
                package_dir,
            },
        );
    }
    Ok(Built { executables })
}

impl Runner {
    pub(crate) fn new(
        command: &'static str,
        criterion_dir: &Path,
        log_dir: PathBuf,
        env: Vec<(String, String)>,
        criterion_args: Vec<String>,
    ) -> anyhow::Result<Runner> {
        let criterion_dir = std::path::absolute(criterion_dir)
            .with_context(|| format!("cannot resolve {}", criterion_dir.display()))?;
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        Ok(Runner {
            command,
            criterion_dir,
            env,
            criterion_args,
            log_dir,
        })
    }

    /// Runs `runs` one after the other; `label` names the pass in the progress lines
    /// (`run`, `confirm`).
    pub(crate) fn run(&self, built: &Built, label: &str, runs: &[SuiteRun]) -> anyhow::Result<()> {
        let mut progress = Progress::new(
            &format!("{} {label}", self.command),
            runs.iter().map(|run| run.expected).sum(),
            runs.iter().all(|run| run.expected > 0),
        );
        for run in runs {
            let executable = built.executables.get(&run.suite).with_context(|| {
                format!(
                    "the build produced no benchmark executable for the suite `{}`",
                    run.suite
                )
            })?;
            self.run_suite(executable, label, run, &mut progress)?;
        }
        progress.finish();
        Ok(())
    }

    fn run_suite(
        &self,
        executable: &Executable,
        label: &str,
        run: &SuiteRun,
        progress: &mut Progress,
    ) -> anyhow::Result<()> {
        let file_label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let log_path = self.log_dir.join(format!("{}.{file_label}.log", run.suite));
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let log = Arc::new(Mutex::new(log));

        let mut cmd = executable.command();
        if let Some(filter) = &run.filter {
            cmd = cmd.args([filter]);
        }
        cmd = cmd
            .args(&self.criterion_args)
            .env("CRITERION_HOME", &self.criterion_dir);
        for (name, value) in &self.env {
            cmd = cmd.env(name, value);
        }
        progress.suite_started(&run.suite, run.expected);
        let (mut child, display) = cmd.spawn_piped()?;

        let stdout = child.stdout.take().context("the bench has no stdout")?;
        let stdout_log = Arc::clone(&log);
        let copier = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(
                    stdout_log.lock().unwrap_or_else(|p| p.into_inner()),
                    "{line}"
                );
            }
        });
        // Criterion announces each benchmark on stderr ("Benchmarking <id>: ..."); without a
        // terminal every announcement is a line of its own.
        let stderr = child.stderr.take().context("the bench has no stderr")?;
        let mut current = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.context("cannot read the bench's output")?;
            let _ = writeln!(log.lock().unwrap_or_else(|p| p.into_inner()), "{line}");
            if let Some(rest) = line.strip_prefix("Benchmarking ") {
                let id = rest.split(": ").next().unwrap_or(rest);
                if id != current {
                    current = id.to_owned();
                    progress.benchmark_started(&current);
                }
            } else if line.starts_with("provision: ")
                || line.starts_with("bench-harness: ")
                || line.contains("panicked")
            {
                progress.println(&line);
            }
        }
        let status = child
            .wait()
            .with_context(|| format!("cannot wait for `{display}`"))?;
        let _ = copier.join();
        if !status.success() {
            progress.abandon();
            bail!(
                "`{display}` failed ({status}); the last lines of {}:\n{}",
                log_path.display(),
                tail(&log_path, 30)
            );
        }
        Ok(())
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Re-runs every benchmark flagged as a latency regression, alone (only the flagged benchmarks
/// of each suite), and keeps a regression only if the second measurement shows it too. A
/// slow moment of a shared machine rarely strikes the same benchmark twice; a real regression
/// does, so a false-alarm rate of p per benchmark becomes about p². (Stored mode; paired
/// mode confirms inside its own run.)
pub(crate) fn confirm(
    built: &Built,
    runner: &Runner,
    options: &GateOptions,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut flagged: BTreeMap<String, Vec<gate::BenchmarkId>> = BTreeMap::new();
    for benchmark in &report.benchmarks {
        if benchmark.measured.regressions.contains(&Metric::Latency) {
            flagged
                .entry(benchmark.id.suite().to_owned())
                .or_default()
                .push(benchmark.id.clone());
        }
    }
    if flagged.is_empty() {
        return Ok(());
    }
    let count: usize = flagged.values().map(Vec::len).sum();
    eprintln!(
        "{}: {count} latency regression(s) to confirm; re-running them alone",
        runner.command
    );
    let started = SystemTime::now();
    // The suite's reference benchmarks run again too: the confirmation is judged against the
    // machine's speed at the time of the re-run, not of the first run.
    let runs: Vec<SuiteRun> = flagged
        .iter()
        .map(|(suite, ids)| {
            let references: Vec<&str> = report
                .speeds
                .iter()
                .filter(|speed| &speed.suite == suite)
                .flat_map(|speed| speed.references.iter().map(|(id, _)| id.as_str()))
                .collect();
            SuiteRun {
                suite: suite.clone(),
                filter: Some(suites::exact_filter(
                    references
                        .iter()
                        .copied()
                        .chain(ids.iter().map(gate::BenchmarkId::as_str)),
                )),
                expected: ids.len() + references.len(),
            }
        })
        .collect();
    runner.run(built, "confirm", &runs)?;
    let second = gate::run_gate(&GateOptions {
        newer_than: Some(started),
        suites: Some(flagged.keys().cloned().collect::<BTreeSet<_>>()),
        ..options.clone()
    })?;
    for id in flagged.values().flatten() {
        let again = second
            .benchmark(id.as_str())
            .filter(|b| b.measured.status != Status::Missing)
            .ok_or_else(|| anyhow!("the confirmation run of {id} produced no result"))?;
        let index = report
            .benchmarks
            .iter()
            .position(|b| &b.id == id)
            .expect("flagged benchmarks come from the report");
        let first = report.benchmarks[index].clone();
        report.benchmarks[index] = first.with_confirmation(again.measured.clone());
    }
    report.refresh_verdict();
    Ok(())
}

//! Running benchmark suites with progress: which suite and benchmark, elapsed time, and an
//! estimate of what is left. Criterion's own output goes to one log file per suite.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::cmd::{Cmd, cargo};
use crate::services::{self, Services};

/// A measuring run of whole suites, as `perf-gate` and `baseline refresh` make it: every suite
/// built, the services started once for all of them, and a runner pointed at both. The
/// services stop when it drops.
pub(crate) struct Session {
    pub(crate) built: Built,
    pub(crate) runner: Runner,
    _services: Services,
}

impl Session {
    pub(crate) fn start(
        root: &Path,
        suites: &[String],
        criterion_dir: &Path,
        criterion_args: Vec<String>,
    ) -> anyhow::Result<Session> {
        let built = build()?;
        let services = Services::for_suites(root, suites)?;
        let runner = Runner::new(
            criterion_dir,
            services::log_dir(root),
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
        Ok(started)
    }
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
    executables: BTreeMap<String, Executable>,
}

struct Executable {
    path: PathBuf,
    /// The bench crate's directory: cargo runs benchmarks from there, and so do we.
    package_dir: PathBuf,
}

/// Compiles every suite, exactly as `cargo bench --workspace` does, and finds the executables.
///
/// The suites are then run directly rather than through `cargo bench --bench <suite>`: a
/// different selection of targets can resolve dependency features differently and make cargo
/// recompile part of the tree between two suites of one run.
pub(crate) fn build() -> anyhow::Result<Built> {
    let messages = cargo()
        .args([
            "bench",
            "--workspace",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stdout()?;
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
            label,
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

        // What `cargo bench` would run: the executable with `--bench`, from the crate's
        // directory, with the manifest directory in the environment.
        let mut cmd = Cmd::new(&executable.path)
            .args(["--bench"])
            .current_dir(&executable.package_dir)
            .env("CARGO_MANIFEST_DIR", &executable.package_dir);
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

/// Progress over all the suites of a pass: a bar on a terminal, one line per benchmark
/// elsewhere (CI logs).
struct Progress {
    label: String,
    expected: usize,
    /// Whether `expected` is known for every suite (a suite without a baseline is not).
    known_total: bool,
    done: usize,
    suite: String,
    started: Instant,
    benchmark_started: Option<Instant>,
    per_suite_seen: BTreeMap<String, usize>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(label: &str, expected: usize, known_total: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(expected as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .expect("the template is valid"),
            );
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            label: label.to_owned(),
            expected,
            known_total,
            done: 0,
            suite: String::new(),
            started: Instant::now(),
            benchmark_started: None,
            per_suite_seen: BTreeMap::new(),
            bar,
        }
    }

    fn suite_started(&mut self, suite: &str, expected: usize) {
        self.suite = suite.to_owned();
        self.per_suite_seen.insert(suite.to_owned(), 0);
        let expected = if expected > 0 {
            format!("{expected} benchmarks expected")
        } else {
            "no baseline: number of benchmarks unknown".to_owned()
        };
        self.println(&format!(
            "perf-gate {}: suite {suite} ({expected})",
            self.label
        ));
    }

    fn benchmark_started(&mut self, id: &str) {
        if self.benchmark_started.is_some() {
            self.done += 1;
        }
        self.benchmark_started = Some(Instant::now());
        *self.per_suite_seen.entry(self.suite.clone()).or_default() += 1;
        // A benchmark the baseline does not know yet makes the total grow.
        let position = self.done + 1;
        self.expected = self.expected.max(position);
        let elapsed = self.started.elapsed();
        let left = (self.done > 0 && self.known_total)
            .then(|| elapsed.mul_f64((self.expected - self.done) as f64 / self.done as f64));
        let left = match left {
            Some(left) => format!("about {} left", clock(left)),
            None if !self.known_total => "time left unknown".to_owned(),
            None => "estimating".to_owned(),
        };
        let total = if self.known_total {
            self.expected.to_string()
        } else {
            "?".to_owned()
        };
        match &self.bar {
            Some(bar) => {
                bar.set_length(self.expected as u64);
                bar.set_position(self.done as u64);
                bar.set_message(format!("{} › {id} ({left})", self.suite));
            }
            None => eprintln!(
                "perf-gate {}: [{position}/{total}] {} › {id} (elapsed {}, {left})",
                self.label,
                self.suite,
                clock(elapsed)
            ),
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if self.benchmark_started.take().is_some() {
            self.done += 1;
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "perf-gate {}: {} benchmarks in {}",
            self.label,
            self.done,
            clock(self.started.elapsed())
        );
    }

    fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// `1m05s` / `42s`.
fn clock(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

//! `cargo xtask perf-gate` in paired mode: build the base revision beside the working tree,
//! start PostgreSQL and Redis once, and for each suite let the gate's paired runner drive both
//! executables in alternation; then judge with the base revision's configuration and
//! baselines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use gate::baseline::Baselines;
use gate::runner::{self, Observation, Process, Settings, SuiteResults, Worker};
use gate::{BenchmarkId, Config, ConfigFile, Fingerprint, PairedOptions, PairedResults, Report};

use crate::bench_run::{self, Built, Executable};
use crate::flags::PerfGateArgs;
use crate::git::{self, Base};
use crate::progress::{Progress, clock};
use crate::services::Services;
use crate::{paths, suites};

/// Where the base revision is checked out: inside the target directory, so `cargo clean`
/// removes it and nothing of it is ever committed.
fn base_checkout(root: &Path) -> PathBuf {
    paths::log_dir(root).join("base")
}

pub(crate) fn judge(args: &PerfGateArgs, base: &Base) -> anyhow::Result<Report> {
    let root = paths::project_root();
    if !args.run.criterion_args.is_empty() {
        bail!(
            "criterion arguments ({}) apply to stored mode only: paired mode measures without \
             criterion (add --stored to use them)",
            args.run.criterion_args.join(" ")
        );
    }
    let suites = suites::select(&root, &args.run.suites)?;
    // Every input is read before the builds, which take minutes: a wrong `--config` or
    // `--baseline-dir` must fail now, not after them.
    let explicit = ExplicitInputs::read(args)?;
    // The working tree's configuration and baselines are read only to list what the change
    // does to the base revision's.
    let candidate_config = Config::load(&ConfigFile::Optional(root.join("perf-gate.toml")))
        .context("the working tree's perf-gate.toml")?;
    let candidate_baselines =
        read_baselines(&root.join("baselines")).context("the working tree's baselines")?;
    eprintln!(
        "perf-gate: paired mode, base {} ({})",
        base.name,
        &base.commit[..12.min(base.commit.len())]
    );

    let started = Instant::now();
    // The base revision is checked out (no build yet) so that its own configuration and
    // baselines, which judge the change, are read before the builds too.
    let base_root = if base.same_as_working_tree {
        root.clone()
    } else {
        git::worktree(&root, &base_checkout(&root), &base.commit, "perf-gate.base")?
    };
    let base_config = match explicit.config {
        Some(config) => config,
        None => Config::load(&ConfigFile::Optional(base_root.join("perf-gate.toml")))
            .context("the base revision's perf-gate.toml")?,
    };
    let base_baselines = match explicit.baselines {
        Some(baselines) => baselines,
        None => {
            read_baselines(&base_root.join("baselines")).context("the base revision's baselines")?
        }
    };

    let candidate = bench_run::build(None)?;
    let based = if base.same_as_working_tree {
        eprintln!("perf-gate: the working tree is the base revision: both sides run one build");
        None
    } else {
        eprintln!(
            "perf-gate: building the base revision in {}",
            base_root.display()
        );
        Some(bench_run::build(Some(&base_root.join("Cargo.toml")))?)
    };
    let base_built = based.as_ref().unwrap_or(&candidate);
    let builds = started.elapsed();

    let services = Services::for_suites(&root, &suites)?;
    let expected: BTreeMap<String, usize> = base_baselines
        .iter()
        .map(|(suite, baseline)| (suite.clone(), baseline.benchmarks.len()))
        .collect();
    let pairing = Pairing {
        base: base_built,
        candidate: &candidate,
        services_env: &services.env,
        base_env: &args.paired.base_env,
        candidate_env: &args.paired.candidate_env,
        settings: args.paired.settings(),
        config: &base_config,
        log_dir: paths::log_dir(&root),
        label: "perf-gate paired",
    };
    let measuring = Instant::now();
    let (mut results, timings) = pairing.measure(&suites, &expected)?;
    drop(services);
    // A suite the base has baselines for and the change deleted ran nowhere: unless the change
    // also deleted its baselines, its benchmarks are expected all the same, and missing.
    if args.run.suites.is_empty() {
        let remaining = suites::discover(&root)?;
        for suite in base_baselines.keys() {
            if suite != suites::CALIBRATION
                && !remaining.contains(suite)
                && candidate_baselines.contains_key(suite)
            {
                results.suites.insert(suite.clone());
            }
        }
    }
    eprintln!(
        "perf-gate: builds {}, measuring {} ({})",
        clock(builds),
        clock(measuring.elapsed()),
        timings.join(", ")
    );

    let options = PairedOptions {
        base: base.name.clone(),
        commit: base.commit.clone(),
        same_as_working_tree: base.same_as_working_tree,
        base_config,
        candidate_config,
        base_baselines,
        candidate_baselines,
        fingerprint: Fingerprint::current(&root),
    };
    Ok(gate::judge_paired(&options, &results))
}

/// What the flags name instead of the base revision's own files. Unlike those, they must
/// exist: a typo must not pass for "no configuration" or "no baselines".
#[derive(Debug)]
struct ExplicitInputs {
    /// `--config`.
    config: Option<Config>,
    /// `--baseline-dir`.
    baselines: Option<Baselines>,
}

impl ExplicitInputs {
    fn read(args: &PerfGateArgs) -> anyhow::Result<ExplicitInputs> {
        let config = args
            .config
            .as_ref()
            .map(|path| Config::load(&ConfigFile::Required(path.clone())))
            .transpose()?;
        let baselines = args
            .run
            .baseline_dir
            .as_deref()
            .map(gate::baseline::read_dir)
            .transpose()?;
        Ok(ExplicitInputs { config, baselines })
    }
}

/// The baselines in the default directory `dir`, or none when it does not exist (a revision
/// before baselines were committed: every suite is then reported without one).
fn read_baselines(dir: &Path) -> anyhow::Result<Baselines> {
    if !dir.exists() {
        return Ok(Baselines::new());
    }
    Ok(gate::baseline::read_dir(dir)?)
}

/// Two builds measured against each other, and how.
pub(crate) struct Pairing<'a> {
    pub(crate) base: &'a Built,
    pub(crate) candidate: &'a Built,
    /// `DATABASE_URL` and `REDIS_URL` for both sides.
    pub(crate) services_env: &'a [(String, String)],
    pub(crate) base_env: &'a [(String, String)],
    pub(crate) candidate_env: &'a [(String, String)],
    pub(crate) settings: Settings,
    /// Where the thresholds the runner decides by come from.
    pub(crate) config: &'a Config,
    pub(crate) log_dir: PathBuf,
    /// Starts every progress line.
    pub(crate) label: &'a str,
}

impl Pairing<'_> {
    /// Measures `suites` in pairs; `expected` holds each suite's number of benchmarks, for
    /// the progress estimate. Returns the results and how long each suite took.
    pub(crate) fn measure(
        &self,
        suites: &[String],
        expected: &BTreeMap<String, usize>,
    ) -> anyhow::Result<(PairedResults, Vec<String>)> {
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("cannot create {}", self.log_dir.display()))?;
        let mut progress = Progress::new(
            self.label,
            suites
                .iter()
                .map(|s| expected.get(s).copied().unwrap_or(0))
                .sum(),
            suites.iter().all(|s| expected.contains_key(s)),
        );
        let mut results = PairedResults::default();
        let mut timings = Vec::new();
        for suite in suites {
            progress.suite_started(suite, expected.get(suite).copied().unwrap_or(0));
            let sides = Sides {
                pairing: self,
                base: self.base.executables.get(suite),
                candidate: self.candidate.executables.get(suite).with_context(|| {
                    format!("the build produced no benchmark executable for the suite `{suite}`")
                })?,
                suite,
            };
            let measured = run_suite(&sides, &mut progress)
                .with_context(|| format!("the paired run of suite `{suite}` failed"))?;
            let strangers: Vec<String> = measured
                .benchmarks
                .keys()
                .filter(|id| id.suite() != suite)
                .map(BenchmarkId::to_string)
                .collect();
            if !strangers.is_empty() {
                bail!(
                    "the executables of suite `{suite}` measured benchmarks of another suite: {} \
                     (a suite's benchmark group must be named after its bench crate)",
                    strangers.join(", ")
                );
            }
            if sides.base.is_none() {
                results.warnings.push(format!(
                    "suite {suite} does not exist in the base revision: all of its benchmarks are \
                     new"
                ));
            }
            timings.push(format!(
                "{suite} {} (set-up {})",
                clock(measured.setup + measured.measuring),
                clock(measured.setup)
            ));
            results.suites.insert(suite.clone());
            results.benchmarks.extend(measured.benchmarks);
            results.warnings.extend(measured.warnings);
        }
        progress.finish();
        Ok((results, timings))
    }
}

/// The two executables of one suite and how to start them.
struct Sides<'a> {
    pairing: &'a Pairing<'a>,
    base: Option<&'a Executable>,
    candidate: &'a Executable,
    suite: &'a str,
}

impl Sides<'_> {
    fn side_env(&self, side: &str) -> &[(String, String)] {
        match side {
            "base" => self.pairing.base_env,
            _ => self.pairing.candidate_env,
        }
    }

    fn command(&self, executable: &Executable, side: &str) -> crate::cmd::Cmd {
        let mut command = executable.command();
        for (name, value) in self.pairing.services_env.iter().chain(self.side_env(side)) {
            command = command.env(name, value);
        }
        command
    }

    fn spawn(
        &self,
        side: &'static str,
        index: usize,
        executable: &Executable,
    ) -> Result<Process, runner::Error> {
        let log = self
            .pairing
            .log_dir
            .join(format!("{}.paired-{side}-{index}.log", self.suite));
        Process::spawn(
            side,
            self.command(executable, side).into_std(),
            &log,
            self.pairing.settings.answer_timeout,
        )
    }

    /// Both sides' benchmarks in order, from criterion's `--list` (which runs each suite's
    /// set-up but measures nothing).
    fn lists(&self) -> Result<(Vec<BenchmarkId>, Vec<BenchmarkId>), runner::Error> {
        let list = |side: &'static str, executable: Option<&Executable>| {
            let Some(executable) = executable else {
                return Ok(Vec::new());
            };
            let output = self
                .command(executable, side)
                .args(["--list"])
                .quiet_stdout()
                .map_err(|err| runner::Error::Worker {
                    side,
                    what: format!("could not list its benchmarks: {err:#}"),
                    log: None,
                })?;
            Ok(output
                .lines()
                .filter_map(|line| line.strip_suffix(": benchmark"))
                .filter_map(|id| BenchmarkId::new(id).ok())
                .collect())
        };
        Ok((
            list("base", self.base)?,
            list("change", Some(self.candidate))?,
        ))
    }
}

/// A side that has no benchmarks at all: the base revision of a suite that it does not have.
struct Absent {
    said_hello: bool,
}

impl Worker for Absent {
    fn side(&self) -> &'static str {
        "base"
    }

    fn send(&mut self, _: &bench_format::protocol::Command) -> Result<(), runner::Error> {
        Ok(())
    }

    fn receive(&mut self) -> Result<bench_format::protocol::Event, runner::Error> {
        if self.said_hello {
            return Ok(bench_format::protocol::Event::Finished);
        }
        self.said_hello = true;
        Ok(bench_format::protocol::Event::Hello {
            protocol: bench_format::protocol::PROTOCOL_VERSION,
        })
    }
}

fn run_suite(sides: &Sides<'_>, progress: &mut Progress) -> anyhow::Result<SuiteResults> {
    let settings = &sides.pairing.settings;
    // Every worker of both sides starts at once: their set-ups run in parallel, and only the
    // measuring alternates. A second set starts for the confirmation of a regression.
    let mut sets = 0;
    let mut spawn = || -> Result<runner::Workers<'_>, runner::Error> {
        sets += 1;
        let mut base: Vec<Box<dyn Worker>> = Vec::new();
        let mut candidate: Vec<Box<dyn Worker>> = Vec::new();
        for index in 0..settings.pairs {
            let number = (sets - 1) * settings.pairs + index;
            base.push(match sides.base {
                Some(executable) => Box::new(sides.spawn("base", number, executable)?),
                None => Box::new(Absent { said_hello: false }),
            });
            candidate.push(Box::new(sides.spawn("change", number, sides.candidate)?));
        }
        Ok((base, candidate))
    };
    let config = sides.pairing.config;
    let threshold = |id: &BenchmarkId| config.thresholds_for(id.as_str()).latency_percent;
    let label = sides.pairing.label;
    let mut observe = |observation: Observation| match observation {
        Observation::Ready { setup } => progress.println(&format!(
            "{label}: both sides of suite {} set up in {:.1}s",
            sides.suite,
            setup.as_secs_f64()
        )),
        Observation::Started { id } => progress.benchmark_started(id.as_str()),
        Observation::Confirming { count } => progress.println(&format!(
            "{label}: confirming {count} latency regression(s) of suite {} with fresh processes",
            sides.suite
        )),
        Observation::Finished {
            id,
            summary,
            elapsed,
        } => progress.benchmark_finished(id.as_str(), &summary, elapsed),
    };
    let results = runner::run_suite(
        &mut spawn,
        settings,
        &threshold,
        &mut || sides.lists(),
        &mut observe,
    );
    match results {
        Ok(results) => Ok(results),
        Err(err) => {
            progress.abandon();
            Err(err.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_inputs_must_exist_and_are_read_before_any_build() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let missing = missing.to_str().unwrap();

        let none = ExplicitInputs::read(&crate::flags::perf_gate(&[])).unwrap();
        assert!(none.config.is_none() && none.baselines.is_none());

        let err =
            ExplicitInputs::read(&crate::flags::perf_gate(&["--config", missing])).unwrap_err();
        assert!(format!("{err:#}").contains(missing), "{err:#}");

        let err = ExplicitInputs::read(&crate::flags::perf_gate(&["--baseline-dir", missing]))
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains(&format!("the baseline directory {missing} does not exist")),
            "{message}"
        );

        std::fs::write(dir.path().join("perf-gate.toml"), "").unwrap();
        let given = ExplicitInputs::read(&crate::flags::perf_gate(&[
            "--config",
            dir.path().join("perf-gate.toml").to_str().unwrap(),
            "--baseline-dir",
            dir.path().to_str().unwrap(),
        ]))
        .unwrap();
        assert!(given.config.is_some());
        assert_eq!(given.baselines.map(|b| b.len()), Some(0));
    }

    #[test]
    fn only_a_default_baseline_directory_may_be_absent() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_baselines(&dir.path().join("baselines"))
                .unwrap()
                .is_empty()
        );
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let message = format!("{:#}", read_baselines(&file).unwrap_err());
        assert!(message.contains("is not a directory"), "{message}");
    }
}

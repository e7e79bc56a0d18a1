//! `cargo xtask gate calibrate --mutations`: the paired gate held against realistic regressions
//! of the real suites. Each patch under `xtask/mutations/` is applied to a checkout of `HEAD`;
//! a long paired run (no early stop) measures what it truly does to every benchmark of the
//! suites it names; then the gate runs on it as on a pull request, `--rounds` times, and every
//! verdict is held against that truth (`gate::calibration`). A/A runs of `HEAD` against itself
//! come first. Everything is built into the usual target directory; nothing is committed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gate::calibration::{self, Score};
use gate::runner::Settings;
use gate::{Config, ConfigFile, Fingerprint, PairedOptions, Report, Status};

use crate::bench_run::{self, Built};
use crate::cmd::Cmd;
use crate::flags::CalibrateArgs;
use crate::paired::Pairing;
use crate::progress::clock;
use crate::services::Services;
use crate::{git, paths, suites};

/// One patch of `xtask/mutations/`.
struct Mutation {
    name: String,
    path: PathBuf,
    /// The first lines of the patch, `# ...`: what it does.
    description: String,
    /// From its `# suites: a, b` line.
    suites: Vec<String>,
}

fn mutations(root: &Path, only: &[String]) -> anyhow::Result<Vec<Mutation>> {
    let dir = root.join("xtask").join("mutations");
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.extension().is_none_or(|ext| ext != "patch") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if !only.is_empty() && !only.iter().any(|wanted| name.contains(wanted.as_str())) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut description = Vec::new();
        let mut suites = Vec::new();
        for line in text.lines().take_while(|line| line.starts_with('#')) {
            match line.strip_prefix("# suites:") {
                Some(list) => suites.extend(list.split(',').map(|s| s.trim().to_owned())),
                None => description.push(line.trim_start_matches('#').trim()),
            }
        }
        if suites.is_empty() {
            bail!(
                "{}: no `# suites: ...` line says what it affects",
                path.display()
            );
        }
        found.push(Mutation {
            name,
            path,
            description: description.join(" "),
            suites,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if found.is_empty() {
        bail!("no mutation in {} matches {only:?}", dir.display());
    }
    Ok(found)
}

/// What every paired run of a calibration shares.
struct Side<'a> {
    base: &'a Built,
    services: &'a Services,
    config: &'a Config,
    log_dir: &'a Path,
}

impl Side<'_> {
    fn with<'b>(&'b self, candidate: &'b Built, settings: Settings, label: &'b str) -> Pairing<'b> {
        Pairing {
            base: self.base,
            candidate,
            services_env: &self.services.env,
            base_env: &[],
            candidate_env: &[],
            settings,
            config: self.config,
            log_dir: self.log_dir.to_owned(),
            label,
        }
    }
}

/// Where the mutated checkout lives.
fn mutant_checkout(root: &Path) -> PathBuf {
    paths::log_dir(root).join("mutant")
}

/// A fresh checkout of `head` with `mutation` applied (one checkout, reused by every mutation).
fn mutant_tree(root: &Path, head: &str, mutation: &Mutation) -> anyhow::Result<PathBuf> {
    let tree = git::worktree(root, &mutant_checkout(root), head, "perf-gate.mutant")?;
    Cmd::new("git")
        .args([std::ffi::OsStr::new("-C"), tree.as_os_str()])
        .args(["checkout", "--quiet", "--", "crates"])
        .quiet_run()?;
    // The reset took the crates' version tags too: without them the mutant's libraries would
    // overwrite the working tree's in the shared target directory.
    git::tag_packages(&tree, "perf-gate.mutant")?;
    Cmd::new("git")
        .args([std::ffi::OsStr::new("-C"), tree.as_os_str()])
        .args([std::ffi::OsStr::new("apply"), mutation.path.as_os_str()])
        .quiet_run()
        .with_context(|| format!("{} does not apply to HEAD", mutation.path.display()))?;
    Ok(tree)
}

/// Checks that every mutation builds against HEAD before the A/A rounds, which take most of an
/// hour: a patch can still apply once the code around it has changed and no longer compile
/// (mutation 01 did, after the cart cache's reads went through a batcher), and the mutants are
/// built only after those rounds. `cargo check`, so that no mutant's build is done twice.
fn check_mutants(root: &Path, head: &str, mutations: &[Mutation]) -> anyhow::Result<()> {
    for mutation in mutations {
        eprintln!("calibrate: checking that mutation {} builds", mutation.name);
        let tree = mutant_tree(root, head, mutation)?;
        crate::cmd::cargo()
            .args([
                "check",
                "--workspace",
                "--benches",
                "--quiet",
                "--manifest-path",
            ])
            .args([tree.join("Cargo.toml")])
            .env("CARGO_TARGET_DIR", paths::target_dir(root))
            .run()
            .with_context(|| {
                format!(
                    "{} applies to HEAD but does not build: update it to the code it patches",
                    mutation.path.display()
                )
            })?;
    }
    Ok(())
}

pub(crate) fn run(args: &CalibrateArgs) -> anyhow::Result<ExitCode> {
    let root = paths::project_root();
    let started = Instant::now();
    let rounds = args.rounds.unwrap_or(3) as usize;
    let mutations = mutations(&root, &args.only)?;
    let all_suites = suites::select(&root, &[])?;
    for mutation in &mutations {
        for suite in &mutation.suites {
            if !all_suites.contains(suite) {
                bail!("{}: there is no suite `{suite}`", mutation.path.display());
            }
        }
    }

    // The base: HEAD as committed, whatever the working tree holds.
    let head = Cmd::new("git")
        .args([std::ffi::OsStr::new("-C"), root.as_os_str()])
        .args(["rev-parse", "HEAD"])
        .quiet_stdout()
        .context("calibration needs a git checkout")?;
    let head = head.trim();
    check_mutants(&root, head, &mutations)?;
    let base_tree = git::worktree(
        &root,
        &paths::log_dir(&root).join("base"),
        head,
        "perf-gate.base",
    )?;
    eprintln!(
        "calibrate: building HEAD ({}) in {}",
        &head[..12],
        base_tree.display()
    );
    let base = bench_run::build(Some(&base_tree.join("Cargo.toml")))?;
    let config = Config::load(&ConfigFile::Optional(base_tree.join("perf-gate.toml")))?;
    let baselines = gate::baseline::read_dir(&base_tree.join("baselines"))?;
    let expected: BTreeMap<String, usize> = baselines
        .iter()
        .map(|(suite, baseline)| (suite.clone(), baseline.benchmarks.len()))
        .collect();
    let services = Services::start(&root)?;
    let fingerprint = Fingerprint::current(&root);

    let judge = |results: &gate::PairedResults| {
        gate::judge_paired(
            &PairedOptions {
                base: "HEAD".to_owned(),
                commit: head.to_owned(),
                same_as_working_tree: false,
                base_config: config.clone(),
                candidate_config: config.clone(),
                base_baselines: baselines.clone(),
                candidate_baselines: baselines.clone(),
                fingerprint: fingerprint.clone(),
            },
            results,
        )
    };
    let log_dir = paths::log_dir(&root).join("calibrate");
    let side = Side {
        base: &base,
        services: &services,
        config: &config,
        log_dir: &log_dir,
    };
    let mut out = String::new();

    // A/A: HEAD against itself, every suite, as a pull request that changes nothing would be.
    let mut aa_flagged = Vec::new();
    for round in 1..=rounds {
        let began = Instant::now();
        let (results, _) = side
            .with(&base, Settings::default(), "calibrate A/A")
            .measure(&all_suites, &expected)?;
        let report = judge(&results);
        let flagged: Vec<String> = report
            .benchmarks
            .iter()
            .filter(|b| b.status() == Status::Regressed)
            .map(|b| b.id.to_string())
            .collect();
        let line = format!(
            "A/A round {round}: {} benchmarks, {} regressed{} ({})",
            report.benchmarks.len(),
            flagged.len(),
            if flagged.is_empty() {
                String::new()
            } else {
                format!(": {}", flagged.join(", "))
            },
            clock(began.elapsed())
        );
        eprintln!("calibrate: {line}");
        out.push_str(&line);
        out.push('\n');
        aa_flagged.extend(flagged);
    }

    let mut total = Score::default();
    let mut per_mutation = Vec::new();
    for mutation in &mutations {
        let began = Instant::now();
        eprintln!(
            "calibrate: mutation {}: {}",
            mutation.name, mutation.description
        );
        let tree = mutant_tree(&root, head, mutation)?;
        let mutant = bench_run::build(Some(&tree.join("Cargo.toml")))?;

        // The truth: every benchmark measured for a fixed, long sequence.
        let long = Settings {
            min_blocks: 40,
            max_blocks: 40,
            max_time: Duration::from_secs(120),
            confirm: false,
            ..Settings::default()
        };
        let (truth_run, _) = side
            .with(&mutant, long, "calibrate truth")
            .measure(&mutation.suites, &expected)?;
        let truths = calibration::truths(
            &truth_run,
            |id| config.thresholds_for(id.as_str()),
            gate::ALPHA,
        );

        let mut reports: Vec<Report> = Vec::new();
        for round in 1..=rounds {
            let (results, _) = side
                .with(&mutant, Settings::default(), "calibrate gate")
                .measure(&mutation.suites, &expected)?;
            let report = judge(&results);
            eprintln!(
                "calibrate: {} gate run {round}: {}",
                mutation.name,
                gate::render::summary_counts(&report)
            );
            reports.push(report);
        }
        let score = calibration::score(&truths, &reports);
        let mut text = format!(
            "mutation {} ({}; suites {}; {}):\n",
            mutation.name,
            mutation.description,
            mutation.suites.join(", "),
            clock(began.elapsed())
        );
        for line in &score.lines {
            text.push_str(&format!("  {line}\n"));
        }
        text.push_str(&format!(
            "  ≥ +50%: {}/{} flagged; +30–50%: {}/{}; counts: {}/{} (named {}/{}); untouched flagged: {}\n",
            score.large.1,
            score.large.0,
            score.medium.1,
            score.medium.0,
            score.counts.1,
            score.counts.0,
            score.named.1,
            score.named.0,
            score.false_alarms.len()
        ));
        eprint!("{text}");
        out.push_str(&text);
        total.large.0 += score.large.0;
        total.large.1 += score.large.1;
        total.medium.0 += score.medium.0;
        total.medium.1 += score.medium.1;
        total.counts.0 += score.counts.0;
        total.counts.1 += score.counts.1;
        total.named.0 += score.named.0;
        total.named.1 += score.named.1;
        total
            .false_alarms
            .extend(score.false_alarms.iter().cloned());
        per_mutation.push(score);
    }
    drop(services);

    let medium_ok = total.medium.0 == 0 || total.medium.1 * 10 >= total.medium.0 * 9;
    let passed = aa_flagged.is_empty() && total.perfect_where_required() && medium_ok;
    out.push_str(&format!(
        "A/A: {} benchmarks flagged in {rounds} runs; mutations: ≥ +50% {}/{} flagged, +30–50% {}/{} \
         (need ≥ 90%), counts {}/{} (named {}/{}), untouched benchmarks flagged {}; {} in all: {}\n",
        aa_flagged.len(),
        total.large.1,
        total.large.0,
        total.medium.1,
        total.medium.0,
        total.counts.1,
        total.counts.0,
        total.named.1,
        total.named.0,
        total.false_alarms.len(),
        clock(started.elapsed()),
        if passed { "PASS" } else { "FAIL" }
    ));
    print!("{out}");
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mutation that no longer applies is found when calibrating, an hour into a run; this
    /// finds it when the code it patches changes.
    #[test]
    fn every_mutation_applies_to_the_working_tree_and_names_real_suites() {
        let root = paths::project_root();
        let known = suites::discover(&root).unwrap();
        let found = mutations(&root, &[]).unwrap();
        assert!(found.len() >= 5, "{} mutations", found.len());
        for mutation in found {
            for suite in &mutation.suites {
                assert!(
                    known.contains(suite),
                    "{}: no suite `{suite}`",
                    mutation.name
                );
            }
            let check = std::process::Command::new("git")
                .current_dir(&root)
                .args(["apply", "--check"])
                .arg(&mutation.path)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{} does not apply: {}",
                mutation.name,
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}

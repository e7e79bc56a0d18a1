//! What a policy costs, against the shipped policies and against the engine's floor, timed in
//! one process with the rounds interleaved (so that the machine's drift falls on all alike):
//!
//!     cargo run --release -p policy --example compare -- [DIR ...]
//!
//! Each DIR holds a policy set (`.rego` files, loaded as `--policy-dir` loads them). The floor
//! is a policy that decides every request with a constant: what any policy costs around its
//! rules (the request turned into the VM's input, the VM reset, the decision read back). Every
//! set decides the suite's `policy/evaluate_rbac` requests (an iteration decides each once, as
//! the benchmark's does); a set that decides a request differently from the shipped policies is
//! named, with the request and both decisions. For a rule's cost, copy the shipped policies to a directory,
//! change or remove the rule there, and compare.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use authz::{AuthzRequest, Decision, PolicySet};

/// Rounds of each set, interleaved; the median round is reported.
const ROUNDS: usize = 31;
/// Iterations (each deciding every request once) per round.
const ITERATIONS: usize = 200;

const FLOOR: &str = r#"package authz

import rego.v1

decision := {"allowed": true, "reason": "floor"}
"#;

fn main() -> ExitCode {
    let dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if let Some(flag) = dirs
        .iter()
        .find(|dir| dir.to_string_lossy().starts_with('-'))
    {
        eprintln!("usage: compare [DIR ...]   (directories of .rego policies)");
        let help = matches!(flag.to_str(), Some("-h" | "--help"));
        return if help {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    let mut sets = vec![("shipped".to_owned(), PolicySet::shipped())];
    sets.push((
        "floor (a constant decision)".to_owned(),
        PolicySet::from_sources([("floor.rego", FLOOR)]),
    ));
    sets.extend(
        dirs.iter()
            .map(|dir| (dir.display().to_string(), PolicySet::load_dir(dir))),
    );
    let mut loaded = Vec::new();
    for (name, set) in sets {
        match set {
            Ok(set) => loaded.push((name, set)),
            Err(error) => {
                eprintln!("compare: {name}: {error}");
                return ExitCode::from(2);
            }
        }
    }

    let requests = policy::rbac_requests();
    let shipped = decide(&loaded[0].1, &requests);
    for (name, set) in loaded.iter().skip(2) {
        for ((theirs, ours), (index, request)) in decide(set, &requests)
            .iter()
            .zip(&shipped)
            .zip(requests.iter().enumerate())
        {
            if theirs != ours {
                println!(
                    "{name}: request {index} ({request:?}) is decided {theirs:?}, by the \
                     shipped policies {ours:?}"
                );
            }
        }
    }

    let mut rounds = vec![Vec::with_capacity(ROUNDS); loaded.len()];
    for _ in 0..ROUNDS {
        for ((_, set), times) in loaded.iter().zip(&mut rounds) {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                for request in &requests {
                    std::hint::black_box(set.evaluate(request));
                }
            }
            times.push(start.elapsed().as_secs_f64() * 1e6 / ITERATIONS as f64);
        }
    }
    let medians: Vec<f64> = rounds
        .iter_mut()
        .map(|times| {
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        })
        .collect();
    println!(
        "{} requests an iteration; median of {ROUNDS} interleaved rounds of {ITERATIONS} iterations",
        requests.len()
    );
    for ((name, set), median) in loaded.iter().zip(&medians) {
        // The interpreter is far slower than the VM: a set that falls back to it says so.
        let engine = if set.uses_bytecode() {
            ""
        } else {
            " (the interpreter: the bytecode VM does not support this set)"
        };
        println!(
            "{median:>9.1} µs an iteration  {:>8.2} µs a decision  {:>5.2}× the shipped  \
             {name}{engine}",
            median / requests.len() as f64,
            median / medians[0],
        );
    }
    ExitCode::SUCCESS
}

fn decide(set: &PolicySet, requests: &[AuthzRequest]) -> Vec<Decision> {
    requests
        .iter()
        .map(|request| set.evaluate(request))
        .collect()
}

//! How policy evaluation scales from one thread to several: each of N plain threads evaluates the
//! shipped policies 4,000 times (the RBAC requests of the suite, in turn), and the program prints
//! the wall time per evaluation. Run it as a pair and compare with the CPU time `time` reports:
//!
//!     cargo run --release -p policy --example scaling -- 1
//!     cargo run --release -p policy --example scaling -- 2
//!
//! Plain threads rather than tokio tasks, so that only the evaluations share the cores.

use std::process::ExitCode;
use std::time::Instant;

const PER_THREAD: usize = 4_000;

fn main() -> ExitCode {
    let threads = match std::env::args().nth(1).map(|arg| arg.parse::<usize>()) {
        None => 1,
        Some(Ok(threads)) if threads > 0 => threads,
        Some(_) => {
            eprintln!("usage: scaling [THREADS]   (THREADS: a positive number, default 1)");
            return ExitCode::from(2);
        }
    };
    let policies = match authz::PolicySet::shipped() {
        Ok(policies) => policies,
        Err(error) => {
            eprintln!("scaling: the shipped policies do not compile: {error}");
            return ExitCode::FAILURE;
        }
    };
    let requests = policy::rbac_requests();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (policies, requests) = (&policies, &requests);
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let request = &requests[(i + thread) % requests.len()];
                    std::hint::black_box(policies.evaluate(request));
                }
            });
        }
    });
    let wall = start.elapsed();
    let evaluations = threads * PER_THREAD;
    println!(
        "threads={threads} evaluations={evaluations} wall={wall:.2?} wall per evaluation={:.2?}",
        wall / u32::try_from(evaluations).unwrap_or(u32::MAX)
    );
    ExitCode::SUCCESS
}

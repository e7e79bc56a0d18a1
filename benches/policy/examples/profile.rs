//! Allocations and instructions per decision of the shipped policies (or those of a directory):
//! decides the suite's RBAC (or tenancy) requests N times after one warm-up round, and prints the allocations and bytes
//! per decision, counted by the harness' counting allocator. Small enough to run under
//! callgrind, where the difference of two runs (N and 1) is the cost of N − 1 rounds:
//!
//!     cargo run --release -p policy --example profile -- 1000 rbac
//!     valgrind --tool=callgrind target/release/examples/profile 10 rbac
//!     valgrind --tool=callgrind target/release/examples/profile 1 rbac
//!
//! Set `RUST_BACKTRACE=0` when comparing with figures measured without it: regorus' tree
//! interpreter creates (and discards) `anyhow` errors while it evaluates, and with
//! `RUST_BACKTRACE=1` each of them captures a backtrace.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: bench_harness::CountingAllocator = bench_harness::CountingAllocator;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let rounds = match args.next().map(|arg| arg.parse::<u64>()) {
        None => 100,
        Some(Ok(rounds)) if rounds > 0 => rounds,
        Some(_) => return usage(),
    };
    let requests = match args.next().as_deref() {
        None | Some("rbac") => policy::rbac_requests(),
        Some("tenancy") => policy::tenancy_requests(),
        Some(_) => return usage(),
    };
    let policies = match args.next() {
        None => authz::PolicySet::shipped(),
        Some(dir) => authz::PolicySet::load_dir(dir),
    };
    let policies = match policies {
        Ok(policies) => policies,
        Err(error) => {
            eprintln!("profile: the policies do not compile: {error}");
            return ExitCode::FAILURE;
        }
    };
    for request in &requests {
        std::hint::black_box(policies.evaluate(request));
    }
    let before = bench_harness::counts();
    for _ in 0..rounds {
        for request in &requests {
            std::hint::black_box(policies.evaluate(request));
        }
    }
    let counted = bench_harness::counts() - before;
    let decisions = rounds * requests.len() as u64;
    eprintln!(
        "profile: {decisions} decisions ({} per round): {} allocations and {} bytes per decision",
        requests.len(),
        counted.allocations / decisions,
        counted.bytes / decisions
    );
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: profile [ROUNDS] [rbac|tenancy] [DIR]   (ROUNDS: a positive number, default \
         100; DIR: a policy directory, default the shipped policies)"
    );
    ExitCode::from(2)
}

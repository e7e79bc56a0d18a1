//! Keeping the CPUs out of idle states while benchmarks run, through Linux's PM QoS interface.
//!
//! On a virtual machine an idle vCPU halts and the hypervisor has to wake it, which adds tens of
//! microseconds to every wake-up. Benchmarks that wait on a loopback round trip (PostgreSQL,
//! Redis, gRPC) pay it on every request, but only while the machine happens to be idle: the
//! same Redis GET measured 79 µs (p50) on an idle machine and 15 µs with `/dev/cpu_dma_latency`
//! held at 0 (`redis-benchmark -c 1 -t get`, this project's 2-vCPU development machine), and
//! flipped between the two whenever another process kept a CPU busy. Holding the latency
//! request at 0 — what `tuned`'s latency-performance profile and `pyperf system tune` do —
//! makes idle CPUs poll instead, so the figures stop depending on what else the machine does.
//!
//! The request lasts while the file stays open, so it ends with the process however it ends.
//! Writing it needs root; without it (or off Linux) the run goes on, with a note.

use std::fs::File;
use std::io::Write;

/// The kernel's PM QoS file for the CPU wake-up latency request.
const PATH: &str = "/dev/cpu_dma_latency";

/// Set to `1` to let the CPUs idle normally during a run.
pub const ALLOW_IDLE_VAR: &str = "BENCH_ALLOW_CPU_IDLE";

/// An active request for zero wake-up latency; dropping it lets the CPUs idle again.
#[derive(Debug)]
pub struct LatencyRequest {
    _file: Option<File>,
}

/// Asks the kernel to keep the CPUs out of idle states until the returned value drops, and
/// says on stderr what happened.
pub fn hold_zero_latency() -> LatencyRequest {
    if std::env::var(ALLOW_IDLE_VAR).is_ok_and(|value| value == "1") {
        eprintln!("bench-harness: {ALLOW_IDLE_VAR}=1: CPUs may idle during this run");
        return LatencyRequest { _file: None };
    }
    let request = File::options()
        .write(true)
        .open(PATH)
        .and_then(|mut file| file.write_all(&0_i32.to_ne_bytes()).map(|()| file));
    match request {
        Ok(file) => {
            eprintln!("bench-harness: holding {PATH} at 0 during this run (CPUs poll, not sleep)");
            LatencyRequest { _file: Some(file) }
        }
        Err(err) => {
            eprintln!(
                "bench-harness: note: cannot hold {PATH} at 0 ({err}); on a virtual machine, \
                 round trips may be several times slower and noisier than with it (run as root \
                 to allow it)"
            );
            LatencyRequest { _file: None }
        }
    }
}

//! The `calibration` suite: one benchmark per timing loop of the harness, each a checksum plus
//! an exact number of allocations, scaled by the `CALIBRATION_*` variables (see the crate docs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench_harness::{BatchSize, Criterion, Group};
use calibration::{Knobs, Load, checksum, input, iteration};

/// The base load of every benchmark: 3840 bytes hashed (about 4 µs) plus ten small
/// allocations, so the allocations are a few percent of the time and scaling them barely moves
/// the latency. Multiples of 10, so that factors like 1.1 or 1.3 scale them exactly.
const BASE: Load = Load {
    work: 60,
    allocations: 10,
    allocation_size: 80,
};

fn knobs() -> Knobs {
    Knobs::from_env().unwrap_or_else(|err| {
        eprintln!("calibration: {err}");
        std::process::exit(2);
    })
}

/// Short measurements keep the whole suite to about fifteen seconds; 100 samples per benchmark
/// give the gate's rank test its power on a noisy machine.
fn configure(group: &mut Group<'_>) {
    group
        .sample_size(100)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

fn calibration(c: &mut Criterion) {
    let knobs = knobs();
    let data = input();
    let mut group = Group::new(c, "calibration");
    configure(&mut group);

    // The machine's yardstick, measured first: fixed work that no knob scales. The gate divides
    // the suite's latency ratios by this benchmark's ratio to its baseline, so a machine that
    // is slower or faster as a whole than when the baseline was measured moves nothing.
    if knobs.runs("calibration/floor/cpu_reference") {
        group.machine_floor("cpu_reference", || checksum(&data, BASE.work));
    }

    let id = "calibration/checksum/3840";
    if knobs.runs(id) {
        let load = knobs.load(id, BASE);
        group.bench_with_parameter("checksum", 3840, |b| b.iter(|| iteration(&data, load)));
    }

    // The input is rebuilt for every iteration outside the measurement: only `iteration`'s
    // allocations may be counted, not the copy made by the setup.
    let id = "calibration/batched/3840";
    if knobs.runs(id) {
        let load = knobs.load(id, BASE);
        group.bench_with_parameter("batched", 3840, |b| {
            b.iter_batched(
                || data.clone(),
                |input| iteration(&input, load),
                BatchSize::SmallInput,
            )
        });
    }

    let id = "calibration/async";
    if knobs.runs(id) {
        let load = knobs.load(id, BASE);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime without drivers cannot fail to build");
        group.bench("async", |b| {
            b.iter_async(&runtime, || async {
                tokio::task::yield_now().await;
                iteration(&data, load)
            })
        });
    }

    // Two threads share each batch; the caller times the batch as a whole.
    let id = "calibration/parallel/2";
    if knobs.runs(id) {
        let load = knobs.load(id, BASE);
        group.bench_with_parameter("parallel", 2, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    let half = iters / 2;
                    let data = &data;
                    scope.spawn(move || (0..half).map(|_| iteration(data, load)).sum::<u64>());
                    black_box((half..iters).map(|_| iteration(data, load)).sum::<u64>());
                });
                start.elapsed()
            })
        });
    }

    let id = "calibration/extra";
    if knobs.extra && knobs.runs(id) {
        let load = knobs.load(id, Load { work: 30, ..BASE });
        group.bench("extra", |b| b.iter(|| checksum(&data, load.work)));
    }

    group.finish();
}

bench_harness::main!(calibration);

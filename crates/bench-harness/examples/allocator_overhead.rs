//! Measures what counting costs: an alloc/dealloc pair through `System` directly and through
//! `CountingAllocator`, on one thread and on two threads at once (the counters are shared, so
//! two threads contend for their cache line).
//!
//!     cargo run --release -p bench-harness --example allocator_overhead

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::Instant;

use bench_harness::CountingAllocator;

const PAIRS: u32 = 20_000_000;

/// Nanoseconds per alloc/dealloc pair of 64 bytes through `allocator`.
fn pair_ns(allocator: &dyn GlobalAlloc) -> f64 {
    let layout = Layout::from_size_align(64, 8).expect("a valid layout");
    let start = Instant::now();
    for _ in 0..PAIRS {
        // SAFETY: the layout has a non-zero size, and the block is freed with the same layout
        // by the allocator that returned it.
        unsafe {
            let block = black_box(allocator.alloc(layout));
            assert!(!block.is_null(), "out of memory");
            allocator.dealloc(block, layout);
        }
    }
    start.elapsed().as_nanos() as f64 / f64::from(PAIRS)
}

/// The best of five runs, each on `threads` threads at once (the figure of the first thread).
fn best(allocator: &(dyn GlobalAlloc + Sync), threads: usize) -> f64 {
    (0..5)
        .map(|_| {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| scope.spawn(|| pair_ns(allocator)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("no panic"))
                    .next()
                    .unwrap_or(0.0)
            })
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    for threads in [1, 2] {
        let system = best(&System, threads);
        let counting = best(&CountingAllocator, threads);
        println!(
            "{threads} thread(s): System {system:.1} ns/pair, CountingAllocator {counting:.1} \
             ns/pair, overhead {:.1} ns",
            counting - system
        );
    }
}

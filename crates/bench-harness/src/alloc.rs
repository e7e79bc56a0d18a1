//! The counting global allocator: `std::alloc::System` plus per-thread request counters.
//!
//! # What is counted
//!
//! * **allocations**: the number of calls to [`GlobalAlloc::alloc`], [`GlobalAlloc::alloc_zeroed`]
//!   and [`GlobalAlloc::realloc`]. A `realloc` counts as one allocation because it asks the
//!   allocator for memory (and usually copies), which is exactly the cost we want to see when a
//!   `Vec` starts growing where it used to be pre-sized. Deallocations are not counted.
//! * **bytes**: the sum of the sizes *requested* by those calls: `layout.size()` for `alloc` and
//!   `alloc_zeroed`, `new_size` for `realloc` (the whole new block, not the growth). It is the
//!   amount of memory asked for, not the peak or the live amount, and it ignores the allocator's
//!   rounding and bookkeeping.
//!
//! Requests are counted whether or not they succeed; a failed request aborts the process in
//! practice, so the difference never shows in a benchmark. Every thread is counted.
//!
//! # Overhead
//!
//! The obvious design, two relaxed `fetch_add`s on shared atomics per allocation, measured
//! 13–14 ns per allocation on one thread and 28–36 ns with two threads allocating at once (the
//! shared cache line bounces between cores): as much again as the allocation itself (an
//! alloc/free pair of 64 bytes costs about 15 ns through `System` on the development machine).
//! Hence per-thread counters: each thread owns a slot (two counters on a cache line of their
//! own) that only it writes, with a plain relaxed load and store instead of a locked
//! read-modify-write, and [`counts`] sums the slots. See `examples/allocator_overhead.rs`; the
//! measured numbers and the command are in `docs/measurements/2026-11-22.md`.
//!
//! The sum is exact: no count is lost or held back in a batch. The only caveat is the usual one
//! of relaxed memory: another thread's latest counts are guaranteed visible only after some
//! synchronisation with it (joining it, receiving a message, a task completing), which every
//! timing loop does before it reads the totals anyway. The first [`SLOTS`] threads of the
//! process get a slot of their own; later ones share one slot through `fetch_add`, which stays
//! exact and only costs more.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ops::Sub;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Threads that get a counter slot of their own.
pub const SLOTS: usize = 256;

/// One thread's counters, alone on a cache line (128 bytes: adjacent-line prefetching pairs
/// 64-byte lines on x86) so that threads never write to the same line.
#[repr(align(128))]
struct Slot {
    allocations: AtomicU64,
    bytes: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            allocations: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }
}

static OWNED: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// Shared by the threads that came after the first [`SLOTS`], updated with `fetch_add`.
static SHARED: Slot = Slot::new();
/// The next slot to hand out (it keeps counting past `SLOTS`; those threads use `SHARED`).
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

const UNASSIGNED: usize = usize::MAX;

thread_local! {
    // A `const`-initialised `Cell` without a destructor: reading it never allocates and never
    // registers anything, which is what makes a thread-local usable inside an allocator.
    static MY_SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
}

/// This thread's slot, given it on first use (`UNASSIGNED` while the thread is being torn down).
#[inline]
fn my_slot() -> usize {
    MY_SLOT
        .try_with(|slot| {
            let mut index = slot.get();
            if index == UNASSIGNED {
                index = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
                slot.set(index);
            }
            index
        })
        .unwrap_or(UNASSIGNED)
}

#[inline]
fn count(bytes: usize) {
    let slot = my_slot();
    // `usize` always fits in `u64` on the platforms Rust supports.
    let bytes = bytes as u64;
    match OWNED.get(slot) {
        Some(owned) => {
            // Only this thread ever writes to its slot, so a load and a store cannot lose an
            // update; they are atomic only so that readers on other threads never see a torn
            // value.
            let allocations = owned.allocations.load(Ordering::Relaxed);
            owned
                .allocations
                .store(allocations.wrapping_add(1), Ordering::Relaxed);
            let total = owned.bytes.load(Ordering::Relaxed);
            owned
                .bytes
                .store(total.wrapping_add(bytes), Ordering::Relaxed);
        }
        None => {
            SHARED.allocations.fetch_add(1, Ordering::Relaxed);
            SHARED.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// A global allocator that forwards to [`System`] and counts requests (see the module docs).
///
/// [`crate::main!`] installs it; install it yourself only in a test binary:
///
/// ```
/// #[global_allocator]
/// static GLOBAL: bench_harness::CountingAllocator = bench_harness::CountingAllocator;
/// # fn main() {}
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is upheld exactly as `System` upholds it; counting touches only atomics
// and a destructor-less thread-local, and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract; we pass it on unchanged.
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` was allocated by `System` (every block we hand out comes from it) with
        // `layout`, as the caller guarantees; the rest of the contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocation counters: either process totals ([`counts`]) or the difference of two totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AllocationCounts {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc`.
    pub allocations: u64,
    /// Bytes requested by those calls.
    pub bytes: u64,
}

impl Sub for AllocationCounts {
    type Output = AllocationCounts;

    /// The counts between an earlier snapshot (`rhs`) and a later one (`self`).
    fn sub(self, rhs: AllocationCounts) -> AllocationCounts {
        // The counters only grow (wrapping after 2^64 requests, which takes centuries), so a
        // wrapping difference is the exact number of requests in between.
        AllocationCounts {
            allocations: self.allocations.wrapping_sub(rhs.allocations),
            bytes: self.bytes.wrapping_sub(rhs.bytes),
        }
    }
}

/// The totals since the process started, counted by every thread. Zero if [`CountingAllocator`]
/// is not the global allocator.
pub fn counts() -> AllocationCounts {
    let assigned = NEXT_SLOT.load(Ordering::Acquire).min(SLOTS);
    OWNED[..assigned]
        .iter()
        .chain(std::iter::once(&SHARED))
        .fold(AllocationCounts::default(), |sum, slot| AllocationCounts {
            allocations: sum
                .allocations
                .wrapping_add(slot.allocations.load(Ordering::Relaxed)),
            bytes: sum.bytes.wrapping_add(slot.bytes.load(Ordering::Relaxed)),
        })
}

/// The totals since this thread started, counted by this thread alone: what a benchmark that
/// runs entirely on the calling thread allocates, whatever other threads do meanwhile. Zero if
/// [`CountingAllocator`] is not the global allocator; a thread past the first [`SLOTS`] shares
/// its counters, so it gets the process-wide [`counts`] instead (never less than its own).
pub fn counts_of_this_thread() -> AllocationCounts {
    match OWNED.get(my_slot()) {
        Some(owned) => AllocationCounts {
            allocations: owned.allocations.load(Ordering::Relaxed),
            bytes: owned.bytes.load(Ordering::Relaxed),
        },
        None => counts(),
    }
}

/// Whether [`CountingAllocator`] is this process's global allocator, found by making one small
/// allocation and seeing whether the counter moved.
pub fn is_installed() -> bool {
    let before = counts();
    drop(std::hint::black_box(Box::new(std::hint::black_box(1_u8))));
    counts().allocations != before.allocations
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;
    use std::sync::Mutex;

    use super::*;

    /// Counting is process-wide and the test runner's threads allocate too, so a single reading
    /// can be inflated by someone else's allocation (never deflated). The smallest reading over a
    /// few repetitions is therefore the exact count of `f` itself.
    fn exact_counts(mut f: impl FnMut()) -> AllocationCounts {
        // Serialise the counting tests so they do not inflate one another.
        static LOCK: Mutex<()> = Mutex::new(());
        let _guard = LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (0..50)
            .map(|_| {
                let before = counts();
                f();
                counts() - before
            })
            .min_by_key(|c| (c.allocations, c.bytes))
            .expect("50 repetitions")
    }

    #[test]
    fn the_allocator_is_installed_in_this_test_binary() {
        assert!(is_installed());
    }

    #[test]
    fn alloc_counts_one_request_of_the_layout_size() {
        let c = exact_counts(|| drop(black_box(Box::new(black_box([7_u8; 24])))));
        assert_eq!(
            c,
            AllocationCounts {
                allocations: 1,
                bytes: 24
            }
        );
    }

    #[test]
    fn this_threads_counts_leave_out_the_other_threads() {
        let (start, started) = std::sync::mpsc::channel::<()>();
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let _ = started.recv();
            // Another thread's allocations while this one measures: 10 of 4 KiB.
            let kept: Vec<Box<[u8; 4096]>> = (0..10).map(|_| Box::new([1; 4096])).collect();
            drop(black_box(kept));
            let _ = finish.send(());
        });
        let mine_before = counts_of_this_thread();
        let all_before = counts();
        start.send(()).expect("the other thread waits");
        finished.recv().expect("the other thread allocates");
        let mine = counts_of_this_thread() - mine_before;
        let all = counts() - all_before;
        other.join().expect("the other thread ends");
        assert!(all.bytes >= 10 * 4096, "{all:?}");
        if my_slot() >= SLOTS {
            // Run after the test that uses up the slots: this thread shares its counters, and
            // its counts are the process-wide ones, as documented (never fewer than its own).
            assert!(mine.bytes >= 10 * 4096, "{mine:?}");
            return;
        }
        // Only this thread's own requests (none between the two readings but the channel's, if
        // any), never the other thread's 40 KiB; the process-wide counts do have them.
        assert!(mine.bytes < 4096, "{mine:?}");
        // And this thread's counts are its allocations, exactly.
        let before = counts_of_this_thread();
        drop(black_box(Box::new(black_box([7_u8; 24]))));
        assert_eq!(
            counts_of_this_thread() - before,
            AllocationCounts {
                allocations: 1,
                bytes: 24
            }
        );
    }

    #[test]
    fn alloc_zeroed_is_counted() {
        // `vec![0; n]` asks the allocator for zeroed memory.
        let c = exact_counts(|| drop(black_box(vec![0_u64; black_box(100)])));
        assert_eq!(
            c,
            AllocationCounts {
                allocations: 1,
                bytes: 800
            }
        );
    }

    #[test]
    fn realloc_counts_one_request_of_the_new_size() {
        let c = exact_counts(|| {
            let mut v: Vec<u32> = Vec::with_capacity(black_box(10));
            v.push(1);
            v.reserve_exact(black_box(99)); // room for 1 + 99: grows the block to 100 elements
            drop(black_box(v));
        });
        assert_eq!(
            c,
            AllocationCounts {
                allocations: 2,
                bytes: 40 + 400
            }
        );
    }

    #[test]
    fn deallocation_and_zero_sized_values_are_not_counted() {
        let boxed = Box::new(5_u64);
        let c = exact_counts(|| drop(black_box(Box::new(())))); // a ZST never reaches the allocator
        drop(boxed);
        assert_eq!(c, AllocationCounts::default());
    }

    #[test]
    fn other_threads_are_counted_once_joined() {
        let c = exact_counts(|| {
            std::thread::scope(|scope| {
                scope.spawn(|| drop(black_box(Box::new(black_box([1_u8; 40])))));
            });
        });
        // Spawning allocates too (the thread's handle and name), so at least the child's 40.
        assert!(c.allocations >= 2 && c.bytes >= 40, "{c:?}");
    }

    #[test]
    fn threads_beyond_the_owned_slots_are_still_counted_exactly() {
        // Use up every owned slot (threads that never allocate still take one when spawning
        // their first allocation; make each allocate once).
        for _ in 0..SLOTS + 4 {
            std::thread::spawn(|| drop(black_box(Box::new(0_u8))))
                .join()
                .unwrap();
        }
        let c = std::thread::spawn(|| {
            assert!(
                MY_SLOT.with(Cell::get) >= SLOTS,
                "this thread must not own a slot"
            );
            exact_counts(|| drop(black_box(Box::new(black_box([7_u8; 24])))))
        })
        .join()
        .unwrap();
        assert_eq!(
            c,
            AllocationCounts {
                allocations: 1,
                bytes: 24
            }
        );
    }

    #[test]
    fn an_exact_number_of_allocations_in_a_loop() {
        let c = exact_counts(|| {
            for i in 0..37_usize {
                drop(black_box(String::with_capacity(black_box(i + 1))));
            }
        });
        assert_eq!(
            c,
            AllocationCounts {
                allocations: 37,
                bytes: (1..=37).sum::<u64>()
            }
        );
    }
}

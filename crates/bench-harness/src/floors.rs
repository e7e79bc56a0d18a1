//! Machine floors: fixed workloads that measure the machine, not the code, one per resource a
//! benchmark may be bound by. Every suite registers them under `<suite>/floor/`, next to its own
//! round-trip floors (PostgreSQL, Redis).
//!
//! A shared machine does not slow down evenly: between two sessions of this project's
//! development machine, the same code measured +3% on pure computation, +10–20% on
//! allocation-heavy work and +56% on a DRAM-latency-bound lookup, all at once. The gate
//! compares each benchmark's change with the change of the floor that stands for what bounds
//! it (`perf-gate.toml`, `[[reference]]`), so each floor must isolate one resource:
//!
//! - `cpu_reference`: arithmetic on a few KiB that stay in the L1 cache;
//! - `memory_reference`: a dependent walk through a 64 MiB random cycle, so every step is a
//!   cache and TLB miss: DRAM latency;
//! - `alloc_reference`: building and dropping a small map of strings: the allocator and the
//!   cache traffic of short-lived objects, the shape of most request handling.
//!
//! They are deterministic (fixed seeds) and allocation counts are exact: they run on the calling
//! thread alone and only its allocations are counted ([`crate::Group::machine_floor`]).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hint::black_box;

use crate::Group;

/// Registers the three machine floors in `group` (`<suite>/floor/cpu_reference`,
/// `/memory_reference`, `/alloc_reference`), with `group`'s current settings.
pub fn register(group: &mut Group<'_>) {
    let data = cpu_input();
    let walk = MemoryWalk::new();
    group.machine_floor("cpu_reference", || cpu(&data));
    group.machine_floor("memory_reference", || walk.steps(STEPS));
    group.machine_floor("alloc_reference", alloc);
}

const CPU_BYTES: usize = 4096;
const MEMORY_SLOTS: usize = 16 << 20; // u32 slots: 64 MiB, far beyond any cache
const STEPS: usize = 1024;

/// Fixed, non-trivial input for [`cpu`].
pub fn cpu_input() -> Vec<u8> {
    (0..CPU_BYTES)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect()
}

/// 64-bit FNV-1a over `data`, eight times: each byte depends on the previous state, so the
/// compiler can neither skip nor vectorise it.
pub fn cpu(data: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for _ in 0..8 {
        for &byte in black_box(data) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// A random single cycle over 16 million slots, 64 MiB (Sattolo's algorithm): following it
/// visits every slot once in an order no prefetcher can guess.
///
/// Each call to [`MemoryWalk::steps`] goes on from where the previous one stopped, so
/// successive iterations touch new slots: 16 million of them before the walk comes round
/// again, 64 MiB that no cache holds. (Starting every call from the same slot would revisit
/// the same 1,024 slots, which then sit in L2, and measure the cache instead of DRAM.)
pub struct MemoryWalk {
    next: Vec<u32>,
    position: Cell<u32>,
}

impl MemoryWalk {
    /// Builds the cycle (about 100 ms, outside any measurement).
    pub fn new() -> MemoryWalk {
        let mut next: Vec<u32> = (0..MEMORY_SLOTS as u32).collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for i in (1..next.len()).rev() {
            // xorshift64*: deterministic and good enough to scatter the slots.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let j = (r % i as u64) as usize;
            next.swap(i, j);
        }
        MemoryWalk {
            next,
            position: Cell::new(0),
        }
    }

    /// Follows the cycle for `steps` more steps; each step waits for the previous load.
    /// Returns the slot reached.
    pub fn steps(&self, steps: usize) -> u32 {
        let mut slot = self.position.get();
        for _ in 0..steps {
            slot = self.next[black_box(slot) as usize];
        }
        self.position.set(slot);
        slot
    }
}

impl Default for MemoryWalk {
    fn default() -> MemoryWalk {
        MemoryWalk::new()
    }
}

/// Builds a map of 64 strings of 16 to 1,024 bytes and drops it: exactly 64 string and a
/// fixed number of tree-node allocations per call.
pub fn alloc() -> usize {
    let mut map = BTreeMap::new();
    for i in 0..64_usize {
        let len = 16 + (i * 97) % 1009;
        map.insert(i, "x".repeat(len));
    }
    black_box(&map);
    map.values().map(String::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_is_one_cycle_through_every_slot() {
        let walk = MemoryWalk::new();
        let mut seen = vec![false; MEMORY_SLOTS];
        let mut slot = 0_usize;
        for _ in 0..MEMORY_SLOTS {
            assert!(!seen[slot], "slot {slot} visited twice");
            seen[slot] = true;
            slot = walk.next[slot] as usize;
        }
        assert_eq!(slot, 0, "the walk returns to its start after every slot");
    }

    #[test]
    fn each_call_goes_on_where_the_last_one_stopped() {
        let (once, twice) = (MemoryWalk::new(), MemoryWalk::new());
        let first = twice.steps(STEPS);
        let second = twice.steps(STEPS);
        assert_ne!(first, second, "the second call walks new slots");
        assert_eq!(once.steps(2 * STEPS), second);
    }

    #[test]
    fn workloads_are_deterministic() {
        assert_eq!(cpu(&cpu_input()), cpu(&cpu_input()));
        assert_eq!(alloc(), alloc());
        let before = crate::counts();
        let total = alloc();
        let after = crate::counts();
        assert!(total > 64 * 16);
        assert!(after.allocations - before.allocations >= 64);
    }
}

//! Cache statistics: lock-free counters updated on every operation, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters since it was created.
///
/// Every lookup counts exactly one L1 hit or L1 miss; an L1 miss that reaches Redis counts
/// exactly one of L2 hit, L2 miss or L2 error; one that does not reach Redis because it is
/// considered down counts an L2 skip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered by the in-process tier.
    pub l1_hits: u64,
    /// Lookups the in-process tier could not answer.
    pub l1_misses: u64,
    /// Lookups answered by Redis.
    pub l2_hits: u64,
    /// Lookups Redis answered with "no such key".
    pub l2_misses: u64,
    /// Redis commands (reads, writes, deletes) that failed or timed out.
    pub l2_errors: u64,
    /// Redis commands not sent because Redis failed recently and its back-off had not expired.
    pub l2_skipped: u64,
    /// Values found in Redis that could not be decoded (they are treated as misses), plus
    /// values that could not be encoded.
    pub codec_errors: u64,
    /// Loader runs (one per single-flight group).
    pub loader_calls: u64,
    /// Loader runs that returned an error.
    pub loader_errors: u64,
    /// L1 fills undone because a write of the key landed while the value was being read from
    /// Redis or loaded (the value might have been older than the write).
    pub stale_fills: u64,
}

impl CacheStats {
    /// The counts accumulated between `earlier` and `self` (both snapshots of one cache).
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        CacheStats {
            l1_hits: self.l1_hits.saturating_sub(earlier.l1_hits),
            l1_misses: self.l1_misses.saturating_sub(earlier.l1_misses),
            l2_hits: self.l2_hits.saturating_sub(earlier.l2_hits),
            l2_misses: self.l2_misses.saturating_sub(earlier.l2_misses),
            l2_errors: self.l2_errors.saturating_sub(earlier.l2_errors),
            l2_skipped: self.l2_skipped.saturating_sub(earlier.l2_skipped),
            codec_errors: self.codec_errors.saturating_sub(earlier.codec_errors),
            loader_calls: self.loader_calls.saturating_sub(earlier.loader_calls),
            loader_errors: self.loader_errors.saturating_sub(earlier.loader_errors),
            stale_fills: self.stale_fills.saturating_sub(earlier.stale_fills),
        }
    }
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) l1_misses: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) l2_misses: AtomicU64,
    pub(crate) l2_errors: AtomicU64,
    pub(crate) l2_skipped: AtomicU64,
    pub(crate) codec_errors: AtomicU64,
    pub(crate) loader_calls: AtomicU64,
    pub(crate) loader_errors: AtomicU64,
    pub(crate) stale_fills: AtomicU64,
}

/// Adds one to a counter. Relaxed ordering suffices: the counters are independent tallies and
/// nothing is synchronised through them.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            l1_hits: read(&self.l1_hits),
            l1_misses: read(&self.l1_misses),
            l2_hits: read(&self.l2_hits),
            l2_misses: read(&self.l2_misses),
            l2_errors: read(&self.l2_errors),
            l2_skipped: read(&self.l2_skipped),
            codec_errors: read(&self.codec_errors),
            loader_calls: read(&self.loader_calls),
            loader_errors: read(&self.loader_errors),
            stale_fills: read(&self.stale_fills),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_since() {
        let counters = Counters::default();
        bump(&counters.l1_hits);
        let first = counters.snapshot();
        bump(&counters.l1_hits);
        bump(&counters.l2_errors);
        let second = counters.snapshot();
        assert_eq!(second.l1_hits, 2);
        let delta = second.since(&first);
        assert_eq!(
            delta,
            CacheStats {
                l1_hits: 1,
                l2_errors: 1,
                ..CacheStats::default()
            }
        );
    }
}

//! A minimal circuit breaker that keeps a down Redis from costing every caller a timeout.
//!
//! Hand-written rather than taken from a crate because it is one atomic word and three short
//! methods, and the crates that offer breakers bring policies (failure rates, windows) that this
//! cache does not need: one failure opens the breaker, the first caller after the back-off
//! probes Redis, and one success closes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a caller may do with Redis right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Redis is considered up.
    Closed,
    /// Redis failed recently and this caller is the one that probes it.
    Probe,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    origin: Instant,
    retry_after_ms: u64,
    /// 0 while closed; otherwise 1 + the millisecond (since `origin`) at which the next probe
    /// may start. The offset keeps "open until time 0" distinct from "closed".
    open_until: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(retry_after: Duration) -> Self {
        Self {
            origin: Instant::now(),
            retry_after_ms: u64::try_from(retry_after.as_millis())
                .unwrap_or(u64::MAX / 4)
                .max(1),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX / 4)
    }

    /// Whether the caller may use Redis; `None` means skip it.
    pub(crate) fn try_acquire(&self) -> Option<Permit> {
        self.try_acquire_at(self.now_ms())
    }

    fn try_acquire_at(&self, now_ms: u64) -> Option<Permit> {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return Some(Permit::Closed);
        }
        if now_ms + 1 < open_until {
            return None;
        }
        // The back-off expired: exactly one caller wins the right to probe, and pushes the
        // deadline out so that the others keep skipping while the probe is in flight.
        let next = now_ms + 1 + self.retry_after_ms;
        self.open_until
            .compare_exchange(open_until, next, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Permit::Probe)
    }

    /// Records a successful Redis command; returns true if this closed an open breaker.
    pub(crate) fn on_success(&self) -> bool {
        // Loading first avoids a write (and cache-line traffic) on every healthy command.
        self.open_until.load(Ordering::Acquire) != 0
            && self.open_until.swap(0, Ordering::AcqRel) != 0
    }

    /// Records a failed Redis command; returns true if this opened a closed breaker.
    pub(crate) fn on_failure(&self) -> bool {
        self.on_failure_at(self.now_ms())
    }

    fn on_failure_at(&self, now_ms: u64) -> bool {
        let next = now_ms + 1 + self.retry_after_ms;
        self.open_until.swap(next, Ordering::AcqRel) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_until_a_failure() {
        let breaker = Breaker::new(Duration::from_millis(100));
        assert_eq!(breaker.try_acquire_at(0), Some(Permit::Closed));
        assert!(!breaker.on_success());
        assert_eq!(breaker.try_acquire_at(5_000), Some(Permit::Closed));
    }

    #[test]
    fn failure_opens_then_one_probe_after_back_off() {
        let breaker = Breaker::new(Duration::from_millis(100));
        assert!(breaker.on_failure_at(10));
        assert!(!breaker.on_failure_at(20), "already open");
        // Open until 20 + 100 = 120.
        assert_eq!(breaker.try_acquire_at(50), None);
        assert_eq!(breaker.try_acquire_at(119), None);
        assert_eq!(breaker.try_acquire_at(120), Some(Permit::Probe));
        // While the probe is in flight, everyone else keeps skipping.
        assert_eq!(breaker.try_acquire_at(121), None);
        assert_eq!(breaker.try_acquire_at(200), None);
        // The probe succeeded: closed again.
        assert!(breaker.on_success());
        assert_eq!(breaker.try_acquire_at(201), Some(Permit::Closed));
    }

    #[test]
    fn failed_probe_reopens() {
        let breaker = Breaker::new(Duration::from_millis(100));
        breaker.on_failure_at(0);
        assert_eq!(breaker.try_acquire_at(100), Some(Permit::Probe));
        breaker.on_failure_at(110);
        assert_eq!(breaker.try_acquire_at(150), None);
        assert_eq!(breaker.try_acquire_at(210), Some(Permit::Probe));
    }

    #[test]
    fn abandoned_probe_is_retried_after_another_back_off() {
        // A probe whose future is dropped reports nothing; the next back-off expiry must still
        // let someone probe, or the breaker would stay open forever.
        let breaker = Breaker::new(Duration::from_millis(100));
        breaker.on_failure_at(0);
        assert_eq!(breaker.try_acquire_at(100), Some(Permit::Probe));
        assert_eq!(breaker.try_acquire_at(150), None);
        assert_eq!(breaker.try_acquire_at(200), Some(Permit::Probe));
    }
}

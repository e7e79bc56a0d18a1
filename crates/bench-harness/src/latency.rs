//! Per-request latency percentiles for an extra pass after criterion's measurement.
//!
//! Criterion's samples are means over many iterations, so they cannot give a percentile of
//! single requests (a p95 target). A suite that needs one times a few thousand requests one by
//! one after the benchmark, records them here, and prints [`Latencies::summary`] to stderr.
//! Timing each request separately adds the cost of reading the clock twice (tens of
//! nanoseconds), which matters only for sub-microsecond operations.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Per-request latencies, recorded in nanoseconds (3 significant digits, 1 ns to 60 s).
#[derive(Debug)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

impl Latencies {
    /// An empty recorder.
    pub fn new() -> Latencies {
        Latencies {
            histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("1 ns to 60 s at 3 significant digits is a valid histogram"),
        }
    }

    /// Records one request; latencies beyond 60 s are recorded as 60 s.
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(nanos.max(1));
    }

    /// The number of requests recorded.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The latency at `quantile` (0.0 to 1.0), to 3 significant digits.
    pub fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_nanos(self.histogram.value_at_quantile(quantile))
    }

    /// The largest latency recorded.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.histogram.max())
    }

    /// One line for stderr: `latency <id>: n=… p50=… p95=… p99=… max=…`.
    pub fn summary(&self, id: &str) -> String {
        format!(
            "latency {id}: n={} p50={:?} p95={:?} p99={:?} max={:?}",
            self.len(),
            self.quantile(0.50),
            self.quantile(0.95),
            self.quantile(0.99),
            self.max(),
        )
    }
}

/// Whether criterion runs in test mode (`cargo bench -- --test`: each benchmark once). Extra
/// passes should then make only a few requests, so that the mode stays quick and still runs
/// their code.
pub fn test_mode() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut latencies = Latencies::new();
        assert!(latencies.is_empty());
        for micros in 1..=100 {
            latencies.record(Duration::from_micros(micros));
        }
        assert_eq!(latencies.len(), 100);
        let p95 = latencies.quantile(0.95).as_nanos();
        assert!((94_900..=95_100).contains(&p95), "{p95}");
        let max = latencies.max().as_nanos();
        assert!((99_900..=100_100).contains(&max), "{max}");
        assert!(
            latencies
                .summary("a/b")
                .starts_with("latency a/b: n=100 p50="),
            "{}",
            latencies.summary("a/b")
        );
    }

    #[test]
    fn extremes_are_clamped_not_lost() {
        let mut latencies = Latencies::new();
        latencies.record(Duration::ZERO);
        latencies.record(Duration::from_secs(3_600));
        assert_eq!(latencies.len(), 2);
        assert!(latencies.max() >= Duration::from_secs(59));
    }
}

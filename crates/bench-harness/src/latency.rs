//! Per-request latencies in an HDR histogram, for an extra pass after the measurement: the
//! percentiles targets are stated in (criterion's samples are means over many iterations, so
//! they have no p95). Timing each request separately adds the cost of reading the clock twice
//! (tens of nanoseconds), which matters only for sub-microsecond operations.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;

/// Per-request latencies in nanoseconds, from 1 ns to 60 s with three significant digits
/// (0.1% resolution).
#[derive(Debug)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

/// Percentiles of a [`Latencies`].
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The benchmark id.
    pub id: String,
    /// Requests recorded.
    pub requests: u64,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Latencies {
        Latencies {
            histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("1 ns to 60 s at 3 significant digits is a valid histogram"),
        }
    }

    /// Records one request; latencies outside 1 ns..60 s are clamped to the bounds.
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

    /// The percentiles so far, for benchmark `id`.
    pub fn summary(&self, id: &str) -> Summary {
        let at = |quantile| self.quantile(quantile);
        Summary {
            id: id.to_owned(),
            requests: self.histogram.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: Duration::from_nanos(self.histogram.max()),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} requests, p50 {:?}, p95 {:?}, p99 {:?}, max {:?}",
            self.id, self.requests, self.p50, self.p95, self.p99, self.max
        )
    }
}

/// Runs `requests` requests one after another, each on an input made by `setup` (not timed),
/// records the latency of each `op` call, prints the percentiles to stderr as
/// `latency <id>: …`, and returns them.
///
/// It is the same operation, on the same state and with the same resets as the criterion
/// benchmark it follows, only timed one request at a time.
pub async fn measure_latencies<I>(
    id: &str,
    requests: usize,
    mut setup: impl AsyncFnMut(usize) -> anyhow::Result<I>,
    mut op: impl AsyncFnMut(I) -> anyhow::Result<()>,
) -> anyhow::Result<Summary> {
    let mut latencies = Latencies::new();
    for request in 0..requests {
        let input = setup(request)
            .await
            .with_context(|| format!("setting up request {request} of the latency pass"))?;
        let start = Instant::now();
        op(input)
            .await
            .with_context(|| format!("request {request} of the latency pass"))?;
        latencies.record(start.elapsed());
    }
    let summary = latencies.summary(id);
    eprintln!("latency {summary}");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut latencies = Latencies::new();
        assert!(latencies.is_empty());
        // 1..=100 ms: the p-th percentile is p ms (within the histogram's 0.1%).
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary("t/x");
        assert_eq!(summary.requests, 100);
        assert_eq!(latencies.len(), 100);
        let close = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() <= ms * 0.002;
        assert!(close(summary.p50, 50.0), "{summary}");
        assert!(close(summary.p95, 95.0), "{summary}");
        assert!(close(summary.p99, 99.0), "{summary}");
        assert!(close(summary.max, 100.0), "{summary}");
        assert!(
            summary
                .to_string()
                .starts_with("t/x: 100 requests, p50 50.0")
        );
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut latencies = Latencies::new();
        latencies.record(Duration::ZERO);
        latencies.record(Duration::from_secs(3600));
        let summary = latencies.summary("t/y");
        assert_eq!(summary.requests, 2);
        assert!(summary.max >= Duration::from_secs(59), "{summary}");
    }

    #[tokio::test]
    async fn a_pass_times_every_request_and_not_the_setup() {
        let mut setups = 0;
        let summary = measure_latencies(
            "t/z",
            5,
            async |i| {
                setups += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(i)
            },
            async |_| {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            },
        )
        .await
        .unwrap();
        assert_eq!(setups, 5);
        assert_eq!(summary.requests, 5);
        assert!(summary.p50 >= Duration::from_millis(2), "{summary}");
        // Had the setup been timed, every request would take more than 50 ms.
        assert!(summary.max < Duration::from_millis(50), "{summary}");
    }

    #[tokio::test]
    async fn a_failing_request_is_an_error_naming_it() {
        let error = measure_latencies(
            "t/e",
            3,
            async |i| Ok(i),
            async |i| {
                anyhow::ensure!(i < 1, "boom");
                Ok(())
            },
        )
        .await
        .unwrap_err();
        assert_eq!(format!("{error:#}"), "request 1 of the latency pass: boom");
    }
}

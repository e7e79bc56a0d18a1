//! Thresholds in k6's spirit: `p95 < 20ms`, `error_rate < 1%`, `rps >= 190`, optionally for one
//! operation of a scenario: `create_order.p99 < 300ms`.

use std::fmt;
use std::time::Duration;

use crate::ops::Operation;

/// What a threshold measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A latency percentile, 0–100 (`p95`, `p99.9`, `p(95)`); `p100` is the maximum.
    Percentile(f64),
    /// The mean latency.
    Average,
    /// Failed requests over completed requests, 0–1.
    ErrorRate,
    /// Completed requests per second of the measured window.
    Rps,
    /// Requests the generator could not send in time (k6's `dropped_iterations`), a count.
    Dropped,
    /// Growth of the server's resident memory in bytes per hour: the least-squares slope of
    /// its samples over the window (`report::memory_trend`).
    MemoryGrowthPerHour,
    /// The same slope in bytes per 100,000 answered requests.
    MemoryGrowthPer100k,
}

impl Metric {
    pub fn is_latency(self) -> bool {
        matches!(self, Metric::Percentile(_) | Metric::Average)
    }

    /// Whether it judges the server's memory (not requests).
    pub fn is_memory(self) -> bool {
        matches!(
            self,
            Metric::MemoryGrowthPerHour | Metric::MemoryGrowthPer100k
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Percentile(p) if *p >= 100.0 => f.write_str("max"),
            Metric::Percentile(p) => write!(f, "p{p}"),
            Metric::Average => f.write_str("avg"),
            Metric::ErrorRate => f.write_str("error_rate"),
            Metric::Rps => f.write_str("rps"),
            Metric::Dropped => f.write_str("dropped"),
            Metric::MemoryGrowthPerHour => f.write_str("memory_growth_per_hour"),
            Metric::MemoryGrowthPer100k => f.write_str("memory_growth_per_100k"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Comparison::Less => observed < limit,
            Comparison::LessOrEqual => observed <= limit,
            Comparison::Greater => observed > limit,
            Comparison::GreaterOrEqual => observed >= limit,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// One parsed threshold. Latency limits are held in seconds, rates as fractions.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The text it was parsed from, as the user wrote it.
    pub text: String,
    /// `Some` when it judges one operation of the scenario, not all of its requests.
    pub operation: Option<Operation>,
    pub metric: Metric,
    pub comparison: Comparison,
    pub limit: f64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("threshold {text:?}: {reason}")]
pub struct ThresholdError {
    pub text: String,
    pub reason: String,
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Threshold, ThresholdError> {
        let fail = |reason: String| ThresholdError {
            text: text.to_owned(),
            reason,
        };
        let (left, comparison, right) = split_comparison(text).ok_or_else(|| {
            fail(
                "expected `METRIC OP VALUE` with OP one of <, <=, >, >= (e.g. `p95 < 20ms`)".into(),
            )
        })?;
        let (operation, metric_name) = match left.split_once('.') {
            // `p99.9` has a dot too: only a known operation name before it makes a prefix.
            Some((op, metric)) if Operation::from_name(op).is_some() => {
                (Operation::from_name(op), metric)
            }
            _ => (None, left),
        };
        let metric = parse_metric(metric_name).map_err(fail)?;
        if metric.is_memory() && operation.is_some() {
            return Err(fail(
                "memory thresholds judge the server's memory, not one operation's".into(),
            ));
        }
        let limit = parse_value(metric, right).map_err(fail)?;
        Ok(Threshold {
            text: text.trim().to_owned(),
            operation,
            metric,
            comparison,
            limit,
        })
    }

    /// Whether `observed` (seconds, a fraction, a rate or a count, as the metric) passes.
    pub fn holds(&self, observed: f64) -> bool {
        self.comparison.holds(observed, self.limit)
    }

    /// `observed` in the threshold's own unit, for reports.
    pub fn format_value(&self, observed: f64) -> String {
        format_metric_value(self.metric, observed)
    }

    /// The normalised form, e.g. `create_order.p95 < 200ms`.
    pub fn canonical(&self) -> String {
        let op = self
            .operation
            .map(|op| format!("{}.", op.name()))
            .unwrap_or_default();
        format!(
            "{op}{} {} {}",
            self.metric,
            self.comparison.as_str(),
            format_metric_value(self.metric, self.limit)
        )
    }
}

/// A value of `metric` as people write it: `12.3ms`, `0.50%`, `199.8/s`.
pub fn format_metric_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::Percentile(_) | Metric::Average => format_seconds(value),
        Metric::ErrorRate => format!("{:.2}%", value * 100.0),
        Metric::Rps => format!("{value:.1}/s"),
        Metric::Dropped => format!("{value:.0}"),
        Metric::MemoryGrowthPerHour => format!("{}/h", format_bytes(value)),
        Metric::MemoryGrowthPer100k => format!("{} per 100K requests", format_bytes(value)),
    }
}

/// Bytes in decimal units (kB, MB, GB: the units of memory limits such as "1 MB per hour"),
/// three significant digits, with a sign when negative.
pub fn format_bytes(bytes: f64) -> String {
    if !bytes.is_finite() {
        return "-".to_owned();
    }
    let magnitude = bytes.abs();
    let (value, unit) = if magnitude >= 1e9 {
        (bytes / 1e9, "GB")
    } else if magnitude >= 1e6 {
        (bytes / 1e6, "MB")
    } else if magnitude >= 1e3 {
        (bytes / 1e3, "kB")
    } else {
        return format!("{bytes:.0} B");
    };
    if value.abs() < 10.0 {
        format!("{value:.2} {unit}")
    } else if value.abs() < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// Nanoseconds (the reports' unit) as [`format_seconds`] writes them.
pub fn format_nanos(nanos: u64) -> String {
    format_seconds(nanos as f64 / 1e9)
}

/// Seconds as µs, ms or s with three significant digits.
pub fn format_seconds(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "-".to_owned();
    }
    if seconds < 1e-3 {
        format!("{:.0}µs", seconds * 1e6)
    } else if seconds < 1.0 {
        let ms = seconds * 1e3;
        if ms < 10.0 {
            format!("{ms:.2}ms")
        } else if ms < 100.0 {
            format!("{ms:.1}ms")
        } else {
            format!("{ms:.0}ms")
        }
    } else {
        format!("{seconds:.2}s")
    }
}

fn split_comparison(text: &str) -> Option<(&str, Comparison, &str)> {
    // The two-character operators first, so `<=` is not read as `<` and `= 5`.
    for (token, comparison) in [
        ("<=", Comparison::LessOrEqual),
        (">=", Comparison::GreaterOrEqual),
        ("<", Comparison::Less),
        (">", Comparison::Greater),
    ] {
        if let Some((left, right)) = text.split_once(token) {
            let (left, right) = (left.trim(), right.trim());
            if left.is_empty() || right.is_empty() {
                return None;
            }
            return Some((left, comparison, right));
        }
    }
    None
}

fn parse_metric(name: &str) -> Result<Metric, String> {
    let name = name.trim();
    match name {
        "avg" | "mean" => return Ok(Metric::Average),
        "max" => return Ok(Metric::Percentile(100.0)),
        "med" | "median" => return Ok(Metric::Percentile(50.0)),
        "error_rate" | "errors" => return Ok(Metric::ErrorRate),
        "rps" => return Ok(Metric::Rps),
        "dropped" => return Ok(Metric::Dropped),
        "memory_growth_per_hour" => return Ok(Metric::MemoryGrowthPerHour),
        "memory_growth_per_100k" => return Ok(Metric::MemoryGrowthPer100k),
        _ => {}
    }
    let number = name
        .strip_prefix("p(")
        .and_then(|rest| rest.strip_suffix(')'))
        .or_else(|| name.strip_prefix('p'))
        .ok_or_else(|| {
            format!(
                "unknown metric `{name}` (expected p50, p95, p99, p99.9, p(95), avg, max, \
                 error_rate, rps or dropped, optionally after an operation: `get_cart.p95`; \
                 or memory_growth_per_hour, memory_growth_per_100k)"
            )
        })?;
    let percentile: f64 = number
        .parse()
        .map_err(|_| format!("`{name}`: `{number}` is not a percentile"))?;
    if !(0.0..=100.0).contains(&percentile) || percentile == 0.0 {
        return Err(format!("`{name}`: a percentile is above 0 and at most 100"));
    }
    Ok(Metric::Percentile(percentile))
}

fn parse_value(metric: Metric, text: &str) -> Result<f64, String> {
    let text = text.trim();
    match metric {
        Metric::Percentile(_) | Metric::Average => {
            let duration: Duration = humantime::parse_duration(text).map_err(|error| {
                format!("`{text}` is not a duration such as 20ms, 1.5s or 250us ({error})")
            })?;
            Ok(duration.as_secs_f64())
        }
        Metric::ErrorRate => {
            let (number, scale) = match text.strip_suffix('%') {
                Some(number) => (number.trim(), 0.01),
                None => (text, 1.0),
            };
            let value: f64 = number
                .parse()
                .map_err(|_| format!("`{text}` is not a rate such as 1% or 0.01"))?;
            let value = value * scale;
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("`{text}`: an error rate is between 0% and 100%"));
            }
            Ok(value)
        }
        Metric::Rps | Metric::Dropped => {
            let number = text.strip_suffix("/s").unwrap_or(text).trim();
            let value: f64 = number
                .parse()
                .map_err(|_| format!("`{text}` is not a number"))?;
            if !value.is_finite() || value < 0.0 {
                return Err(format!("`{text}` must be a finite number ≥ 0"));
            }
            Ok(value)
        }
        Metric::MemoryGrowthPerHour | Metric::MemoryGrowthPer100k => parse_bytes(metric, text),
    }
}

/// `1MB`, `1 MB/h`, `512KiB`, `50MB per 100K requests`: bytes, in decimal (kB, MB, GB) or
/// binary (KiB, MiB, GiB) units.
fn parse_bytes(metric: Metric, text: &str) -> Result<f64, String> {
    let suffixes: &[&str] = match metric {
        Metric::MemoryGrowthPerHour => &["/hour", "/h"],
        _ => &["per 100K requests", "per 100k requests", "/100K", "/100k"],
    };
    let mut amount = text.trim();
    for suffix in suffixes {
        if let Some(rest) = amount.strip_suffix(suffix) {
            amount = rest.trim_end();
            break;
        }
    }
    let split = amount
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(amount.len());
    let (number, unit) = amount.split_at(split);
    let scale = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1_048_576.0,
        "GiB" => 1_073_741_824.0,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (expected B, kB, MB, GB, KiB, MiB or GiB, \
                 e.g. `1MB`)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not an amount of memory such as 1MB or 512KiB"))?;
    if !value.is_finite() {
        return Err(format!("`{text}` must be finite"));
    }
    Ok(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        let t = Threshold::parse("p95 < 20ms").unwrap();
        assert_eq!(t.metric, Metric::Percentile(95.0));
        assert_eq!(t.comparison, Comparison::Less);
        assert!((t.limit - 0.020).abs() < 1e-12);
        assert!(t.holds(0.019) && !t.holds(0.020));

        let t = Threshold::parse("p(99.9)<=1s").unwrap();
        assert_eq!(t.metric, Metric::Percentile(99.9));
        assert_eq!(t.comparison, Comparison::LessOrEqual);

        let t = Threshold::parse("p99.9 < 250ms").unwrap();
        assert_eq!(t.metric, Metric::Percentile(99.9));
        assert_eq!(t.operation, None);

        let t = Threshold::parse("create_order.p99 < 300ms").unwrap();
        assert_eq!(t.operation, Some(Operation::CreateOrder));
        assert_eq!(t.canonical(), "create_order.p99 < 300ms");

        let t = Threshold::parse("error_rate < 1%").unwrap();
        assert!((t.limit - 0.01).abs() < 1e-12);
        assert!(t.holds(0.009) && !t.holds(0.01));

        let t = Threshold::parse("rps >= 190").unwrap();
        assert!(t.holds(190.0) && !t.holds(189.9));
        assert_eq!(Threshold::parse("dropped <= 0").unwrap().limit, 0.0);
    }

    #[test]
    fn rejects_what_it_cannot_judge_with_a_reason() {
        for (text, fragment) in [
            ("p95 20ms", "expected `METRIC OP VALUE`"),
            ("p95 <", "expected `METRIC OP VALUE`"),
            ("latency < 20ms", "unknown metric"),
            ("p0 < 20ms", "above 0"),
            ("p101 < 20ms", "above 0"),
            ("p95 < 20 parsecs", "not a duration"),
            ("error_rate < 150%", "between 0% and 100%"),
            ("rps > fast", "not a number"),
            ("nosuchop.p95 < 1s", "unknown metric"),
            ("memory_growth_per_hour < 1 parsec", "unknown unit"),
            ("memory_growth_per_hour < MB", "not an amount of memory"),
            (
                "get_cart.memory_growth_per_hour < 1MB",
                "not one operation's",
            ),
        ] {
            let error = Threshold::parse(text).unwrap_err();
            assert!(error.to_string().contains(fragment), "{text}: {error}");
        }
    }

    #[test]
    fn memory_limits_read_as_people_write_them() {
        let t = Threshold::parse("memory_growth_per_hour < 1MB").unwrap();
        assert_eq!(t.metric, Metric::MemoryGrowthPerHour);
        assert_eq!(t.limit, 1e6);
        assert!(t.holds(999_999.0) && !t.holds(1e6));
        assert_eq!(
            Threshold::parse("memory_growth_per_hour < 1.5 MiB/h")
                .unwrap()
                .limit,
            1.5 * 1_048_576.0
        );
        let t = Threshold::parse("memory_growth_per_100k < 50MB per 100K requests").unwrap();
        assert_eq!(t.metric, Metric::MemoryGrowthPer100k);
        assert_eq!(t.limit, 50e6);
        // What a report writes can be read back.
        let again = Threshold::parse(&t.canonical()).unwrap();
        assert_eq!(again.limit, t.limit);
        assert_eq!(format_bytes(-2_500.0), "-2.50 kB");
        assert_eq!(format_bytes(12.0), "12 B");
        assert_eq!(format_bytes(123_456_789.0), "123 MB");
    }

    #[test]
    fn formats_values_in_the_unit_people_read() {
        assert_eq!(format_seconds(0.000_412), "412µs");
        assert_eq!(format_seconds(0.003_14), "3.14ms");
        assert_eq!(format_seconds(0.0314), "31.4ms");
        assert_eq!(format_seconds(0.314), "314ms");
        assert_eq!(format_seconds(2.5), "2.50s");
    }
}

//! The report in four forms: a terminal table, Markdown for pull requests, JSON for scripts,
//! JUnit XML for CI test views. Each renderer is a pure function of the [`Report`].

pub mod json;
pub mod junit;
pub mod markdown;
pub mod terminal;

use crate::compare::{
    CountComparison, LatencyComparison, Metric, RoundTripComparison, Status, p_text, signed_percent,
};
use crate::report::{BenchmarkReport, FingerprintMismatch, Mode, Report};

/// A time in nanoseconds with three significant digits and a unit: `812 ns`, `7.05 µs`.
pub fn format_time(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", three_digits(value))
}

fn three_digits(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A per-iteration count: whole numbers as such, fractions with enough digits to see them.
pub fn format_count(value: f64) -> String {
    if value == 0.0 {
        "0".to_owned()
    } else if (value - value.round()).abs() < 0.005 && value >= 1.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        // Three significant digits: 0.100, 0.0123.
        let decimals = (2.0 - value.abs().log10().floor()).clamp(2.0, 12.0) as usize;
        format!("{value:.decimals$}")
    }
}

/// A per-iteration byte count with a binary unit.
pub fn format_bytes(value: f64) -> String {
    if value >= f64::from(1u32 << 20) {
        format!("{} MiB", three_digits(value / f64::from(1u32 << 20)))
    } else if value >= 1024.0 {
        format!("{} KiB", three_digits(value / 1024.0))
    } else {
        format!("{} B", format_count(value))
    }
}

/// The change of a count, or `new` when the baseline is zero and the count is not.
fn count_change(c: &CountComparison) -> String {
    match c.change_percent {
        Some(percent) => signed_percent(percent),
        None if c.current_per_iteration > 0.0 => "from 0".to_owned(),
        None => "+0.0%".to_owned(),
    }
}

/// `4 stmts, 1 cmd` per iteration.
fn round_trips_text(statements: Option<f64>, commands: Option<f64>) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(statements) = statements {
        parts.push(format!("{} stmts", format_count(statements)));
    }
    if let Some(commands) = commands {
        parts.push(format!("{} cmds", format_count(commands)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A one-line summary of one side: `7.05 µs, 10 allocs, 640 B, 4 stmts, 1 cmds`.
fn side(b: &BenchmarkReport, baseline: bool) -> String {
    let m = &b.measured;
    let mut parts = Vec::new();
    if let Some(l) = &m.latency {
        parts.push(format_time(if baseline {
            l.baseline_median_ns
        } else {
            l.current_median_ns
        }));
    }
    let pick = |c: &CountComparison| {
        if baseline {
            c.baseline_per_iteration
        } else {
            c.current_per_iteration
        }
    };
    if let Some(a) = &m.allocations {
        parts.push(format!("{} allocs", format_count(pick(a))));
    }
    if let Some(bytes) = &m.bytes {
        parts.push(format_bytes(pick(bytes)));
    }
    if let Some(round_trips) = &m.round_trips
        && let Some(text) = round_trips_text(
            round_trips.statements.as_ref().map(pick),
            round_trips.commands.as_ref().map(pick),
        )
    {
        parts.push(text);
    }
    if parts.is_empty() {
        "—".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The baseline column.
pub fn baseline_cell(b: &BenchmarkReport) -> String {
    side(b, true)
}

/// The current column.
pub fn current_cell(b: &BenchmarkReport) -> String {
    side(b, false)
}

/// The change column: time / allocations / bytes / round trips (statements, commands).
pub fn change_cell(b: &BenchmarkReport) -> String {
    let m = &b.measured;
    let mut parts = Vec::new();
    if let Some(l) = &m.latency {
        parts.push(signed_percent(l.change_percent));
    }
    if let Some(a) = &m.allocations {
        parts.push(count_change(a));
    }
    if let Some(bytes) = &m.bytes {
        parts.push(count_change(bytes));
    }
    if let Some(round_trips) = &m.round_trips {
        let changes: Vec<String> = [&round_trips.statements, &round_trips.commands]
            .into_iter()
            .flatten()
            .map(count_change)
            .collect();
        if !changes.is_empty() {
            parts.push(changes.join(" "));
        }
    }
    if parts.is_empty() {
        "—".to_owned()
    } else {
        parts.join(" / ")
    }
}

fn metric_explanation(b: &BenchmarkReport, metric: Metric, regressed: bool) -> String {
    let m = &b.measured;
    let t = &b.thresholds;
    let count = |name: &str, c: &CountComparison, percent: f64| match c.change_percent {
        Some(change) if regressed => {
            format!("{name} {} > +{percent}%", signed_percent(change))
        }
        Some(change) => format!("{name} {}, beyond {percent}%", signed_percent(change)),
        None => format!(
            "{name} from 0 to {} per iteration",
            format_count(c.current_per_iteration)
        ),
    };
    match metric {
        Metric::Latency => match &m.latency {
            Some(l) if regressed => format!(
                "time {} > +{}% ({}{})",
                signed_percent(l.change_percent),
                t.latency_percent,
                p_text(l.p_regression),
                net_of(l)
            ),
            Some(l) => format!(
                "time {}, beyond {}% ({}{})",
                signed_percent(l.change_percent),
                t.latency_percent,
                p_text(l.p_improvement),
                net_of(l)
            ),
            None => "time".to_owned(),
        },
        Metric::Statements | Metric::Commands => match &m.round_trips {
            Some(r) => round_trip_explanation(r, metric, t.round_trips_percent, regressed),
            None => metric.as_str().to_owned(),
        },
        Metric::Allocations => match &m.allocations {
            Some(c) => count("allocations", c, t.allocations_percent),
            None => "allocations".to_owned(),
        },
        Metric::Bytes => match &m.bytes {
            Some(c) => count("bytes", c, t.bytes_percent),
            None => "bytes".to_owned(),
        },
    }
}

/// `PostgreSQL statements +25.0% > +5%: +1.0 per iteration: SELECT count(*) FROM …`: the
/// change of the count, then the statements or commands that made it.
fn round_trip_explanation(
    r: &RoundTripComparison,
    metric: Metric,
    percent: f64,
    regressed: bool,
) -> String {
    let (name, counts, server) = match metric {
        Metric::Statements => ("PostgreSQL statements", &r.statements, "postgres"),
        _ => ("Redis commands", &r.commands, "redis"),
    };
    let head = match counts {
        Some(c) => match c.change_percent {
            Some(change) if regressed => format!("{name} {} > +{percent}%", signed_percent(change)),
            Some(change) => format!("{name} {}, beyond {percent}%", signed_percent(change)),
            None => format!(
                "{name} from 0 to {} per iteration",
                format_count(c.current_per_iteration)
            ),
        },
        None => name.to_owned(),
    };
    let what: Vec<String> = r
        .changed
        .iter()
        .filter(|change| change.server == server)
        .filter(|change| {
            (change.current_per_iteration > change.baseline_per_iteration) == regressed
        })
        .map(|change| change.describe())
        .collect();
    if what.is_empty() {
        head
    } else {
        format!("{head}: {}", what.join(", "))
    }
}

/// `; measured +41.2%, references +4.6%` when the change was normalised by a speed factor
/// other than 1 (to a tenth of a percent), so that a reader can tell the two apart.
fn net_of(l: &LatencyComparison) -> String {
    if let Some(paired) = &l.paired {
        return format!(
            "; ratio {:.3}, {:.0}% interval {:.3}–{:.3}, {} blocks",
            l.ratio,
            paired.confidence * 100.0,
            paired.ratio_ci[0],
            paired.ratio_ci[1],
            paired.blocks
        );
    }
    if (l.speed_factor - 1.0).abs() < 0.0005 {
        return String::new();
    }
    format!(
        "; measured {}, references {}",
        signed_percent((l.raw_ratio - 1.0) * 100.0),
        signed_percent((l.speed_factor - 1.0) * 100.0)
    )
}

/// Why the benchmark has its status, in one line (override reason included).
pub fn reason(b: &BenchmarkReport) -> String {
    let mut parts: Vec<String> = match b.status() {
        Status::Regressed => b
            .regressions()
            .into_iter()
            .map(|m| metric_explanation(b, m, true))
            .collect(),
        Status::Improved => b
            .improvements()
            .into_iter()
            .map(|m| metric_explanation(b, m, false))
            .collect(),
        Status::Unchanged | Status::New | Status::Missing | Status::Removed => {
            b.measured.notes.clone()
        }
    };
    if let Some(confirmation) = &b.confirmation {
        let time = confirmation
            .latency
            .as_ref()
            .map(|l| format!(", time {}", signed_percent(l.change_percent)))
            .unwrap_or_default();
        parts.push(format!(
            "confirmation run: {}{time}",
            confirmation.status.as_str()
        ));
    }
    if let Some(o) = &b.applied_override {
        parts.push(format!("override `{}`: {}", o.glob, o.reason));
    }
    parts.join("; ")
}

/// `verdict — counts` summary line shared by the renderers.
pub fn summary_counts(report: &Report) -> String {
    let mut text = format!(
        "{} regressed, {} improved, {} unchanged, {} new, {} missing",
        report.count(Status::Regressed),
        report.count(Status::Improved),
        report.count(Status::Unchanged),
        report.count(Status::New),
        report.count(Status::Missing)
    );
    let removed = report.count(Status::Removed);
    if removed > 0 {
        text.push_str(&format!(", {removed} removed"));
    }
    text
}

/// The thresholds and significance level, for the footer.
pub fn rules_line(report: &Report) -> String {
    let t = &report.thresholds;
    let evidence = match report.mode {
        Mode::Stored => "and significant",
        Mode::Paired { .. } => "with the paired blocks' evidence",
    };
    format!(
        "thresholds: latency +{}% ({evidence} at α = {}), allocations +{}%, bytes +{}%, \
         round trips +{}%",
        t.latency_percent,
        report.alpha,
        t.allocations_percent,
        t.bytes_percent,
        t.round_trips_percent
    )
}

/// One line per change the working tree makes to the gate's configuration (paired mode):
/// `perf-gate.toml: LOOSENS: override ...`.
pub fn config_change_lines(report: &Report) -> Vec<String> {
    report
        .config_changes
        .iter()
        .map(|change| {
            format!(
                "this change edits perf-gate.toml ({}; judged by the base's): {}",
                change.effect.as_str().to_uppercase(),
                change.what
            )
        })
        .collect()
}

/// One line per suite with reference benchmarks: how fast the machine ran them compared with
/// the baseline, which the latency changes of that suite are relative to.
pub fn speed_lines(report: &Report) -> Vec<String> {
    report
        .speeds
        .iter()
        .map(|speed| {
            let references: Vec<String> = speed
                .references
                .iter()
                .map(|(id, ratio)| {
                    format!(
                        "{} {}",
                        id.last_segment(),
                        signed_percent((ratio - 1.0) * 100.0)
                    )
                })
                .collect();
            format!(
                "machine speed, suite {}: {} against the baseline (all together {}); each \
                 latency change is net of its references'",
                speed.suite,
                references.join(", "),
                signed_percent((speed.factor - 1.0) * 100.0),
            )
        })
        .collect()
}

/// The fingerprint warning for one suite, as plain text lines.
pub fn mismatch_lines(mismatch: &FingerprintMismatch) -> Vec<String> {
    let mut lines = vec![format!(
        "the baseline of suite `{}` was measured on a different machine (commit {}, {}):",
        mismatch.suite, mismatch.baseline.git_commit, mismatch.baseline.date
    )];
    for d in &mismatch.differences {
        lines.push(format!(
            "  {}: {} (baseline) vs {} (here)",
            d.field, d.baseline, d.current
        ));
    }
    lines.push(
        "  timings are not comparable: refresh the baseline on this machine, or run the gate \
         where it was measured"
            .to_owned(),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_time(812.4), "812 ns");
        assert_eq!(format_time(7052.6), "7.05 µs");
        assert_eq!(format_time(12_345_678.0), "12.3 ms");
        assert_eq!(format_time(2.5e9), "2.50 s");
        assert_eq!(format_count(10.0), "10");
        assert_eq!(format_count(10.000_787), "10");
        assert_eq!(format_count(2.5), "2.50");
        assert_eq!(format_count(0.0012), "0.00120");
        assert_eq!(format_count(0.1), "0.100");
        assert_eq!(format_bytes(640.0), "640 B");
        assert_eq!(format_bytes(4096.0), "4.00 KiB");
        assert_eq!(format_bytes(3.0 * 1048576.0), "3.00 MiB");
    }
}

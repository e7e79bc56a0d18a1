//! The end-of-test summary, in the manner of k6's: thresholds first with ✓ or ✗, then each
//! scenario's requests, latency percentiles, operations and status codes.

use std::fmt::Write as _;

use crate::report::{Report, Summary, TREND_MIN_SAMPLES};
use crate::threshold::{format_bytes, format_nanos, format_seconds};

fn latency_line(summary: &Summary) -> String {
    format!(
        "avg={} min={} p50={} p90={} p95={} p99={} p99.9={} max={}",
        format_nanos(summary.average),
        format_nanos(summary.fastest),
        format_nanos(summary.p50),
        format_nanos(summary.p90),
        format_nanos(summary.p95),
        format_nanos(summary.p99),
        format_nanos(summary.p999),
        format_nanos(summary.slowest)
    )
}

fn codes(summary: &Summary) -> String {
    summary
        .status_code_distribution
        .iter()
        .map(|(code, n)| format!("{code}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n  profile {}: {}\n  started {}, measured {:.1}s",
        report.profile,
        report.description,
        report.date,
        report.summary.total as f64 / 1e9
    );
    if !report.thresholds.is_empty() {
        let _ = writeln!(out, "\n  thresholds");
        for t in &report.thresholds {
            let mark = if t.passed { "✓" } else { "✗" };
            let _ = writeln!(
                out,
                "    {mark} {:<12} {:<28} {}",
                t.scope, t.threshold, t.observed_text
            );
        }
    }
    for s in &report.scenarios {
        let _ = writeln!(out, "\n  scenario {}: {}", s.name, s.load);
        let _ = writeln!(out, "    mix ............ {}", s.mix);
        let _ = writeln!(
            out,
            "    requests ....... {} answered, {:.1}/s, {} errors ({:.2}%), {} dropped, {} in warm-up",
            s.summary.count,
            s.summary.rps,
            s.summary.errors,
            s.summary.error_rate * 100.0,
            s.summary.dropped,
            s.warmup_requests
        );
        let _ = writeln!(out, "    latency ........ {}", latency_line(&s.summary));
        let _ = writeln!(
            out,
            "    from send ...... p50={} p99={} (without the wait for a late send)",
            format_nanos(s.summary.service_time_p50),
            format_nanos(s.summary.service_time_p99)
        );
        if s.operations.len() > 1 {
            for (name, op) in &s.operations {
                let _ = writeln!(
                    out,
                    "    {name:.<16} {} answered, p50={} p95={} p99={}, {} errors",
                    op.count,
                    format_nanos(op.p50),
                    format_nanos(op.p95),
                    format_nanos(op.p99),
                    op.errors
                );
            }
        }
        if let Some(r) = &s.recovery {
            let ms = |v: Option<f64>| v.map_or("-".to_owned(), |ms| format_seconds(ms / 1e3));
            let _ = writeln!(
                out,
                "    spike .......... to {}/s from {:.0}s to {:.0}s; {} before {}, during {}; {}",
                r.peak_rate,
                r.spike_start_seconds,
                r.spike_end_seconds,
                r.threshold,
                ms(r.before_ms),
                ms(r.during_ms),
                match r.recovery_seconds {
                    Some(seconds) => format!(
                        "recovered {seconds:.0}s after its end ({}s windows)",
                        r.window_seconds
                    ),
                    None => "not recovered by the end of the run".to_owned(),
                }
            );
        }
        if let Some(b) = &s.breaking_point {
            // `p95 < 20ms`: the metric's name, for the steps' lines.
            let metric = b.threshold.split_whitespace().next().unwrap_or("latency");
            let _ = writeln!(
                out,
                "    steps .......... sustained when {}, errors under {:.0}% and 95% answered",
                b.threshold,
                b.max_error_rate * 100.0
            );
            for step in &b.steps {
                let _ = writeln!(
                    out,
                    "      {} {:>8}/s  answered {:>9.1}/s  {} {:>8}  errors {:>6.2}%  dropped {}",
                    if step.sustained { "✓" } else { "✗" },
                    step.rate,
                    step.answered_rps,
                    metric,
                    step.percentile_ms
                        .map_or("-".to_owned(), |ms| format_seconds(ms / 1e3)),
                    step.error_rate * 100.0,
                    step.dropped
                );
            }
            let _ = writeln!(
                out,
                "    breaking point . {}",
                match (b.breaking_point_rate, b.broke) {
                    (Some(rate), true) => format!("{rate}/s (the next step was not sustained)"),
                    (Some(rate), false) => {
                        format!("above {rate}/s (every step was sustained)")
                    }
                    (None, _) => "below the first step".to_owned(),
                }
            );
        }
        let _ = writeln!(out, "    status ......... {}", codes(&s.summary));
        for (message, n) in s.summary.error_distribution.iter().take(5) {
            let _ = writeln!(out, "      {n} × {message}");
        }
    }
    if report.scenarios.len() > 1 {
        let _ = writeln!(
            out,
            "\n  all scenarios: {} answered, {:.1}/s, {} errors, latency {}",
            report.summary.count,
            report.summary.rps,
            report.summary.errors,
            latency_line(&report.summary)
        );
    }
    if let Some(peak) = report.server_memory.iter().map(|m| m.rss_bytes).max() {
        let first = report
            .server_memory
            .first()
            .map(|m| m.rss_bytes)
            .unwrap_or(0);
        let last = report
            .server_memory
            .last()
            .map(|m| m.rss_bytes)
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "\n  server memory (RSS): {:.1} MiB at the start, {:.1} MiB at the end, {:.1} MiB at most",
            first as f64 / 1_048_576.0,
            last as f64 / 1_048_576.0,
            peak as f64 / 1_048_576.0
        );
        match &report.memory_trend {
            Some(trend) => {
                let _ = writeln!(
                    out,
                    "  server memory trend: {}/h{} (least squares over {} samples); first half {:.1} MiB, second half {:.1} MiB",
                    format_bytes(trend.growth_bytes_per_hour),
                    trend
                        .growth_bytes_per_100k_requests
                        .map(|b| format!(", {} per 100K requests", format_bytes(b)))
                        .unwrap_or_default(),
                    trend.samples,
                    trend.first_half_mean_bytes / 1_048_576.0,
                    trend.second_half_mean_bytes / 1_048_576.0
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  server memory trend: not fitted (fewer than {TREND_MIN_SAMPLES} samples)"
                );
            }
        }
    }
    if !report.outages.is_empty() {
        let _ = writeln!(out, "\n  outages");
        let seconds = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.1}s"));
        for o in &report.outages {
            let _ = writeln!(
                out,
                "    {:<9} down {:.1}s, back {}: {} of {} requests failed ({}){}; calls succeed {} after{}",
                o.dependency,
                o.down_seconds,
                seconds(o.up_seconds),
                o.failed,
                o.requests,
                o.error_rate
                    .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0)),
                if o.codes.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", codes {}",
                        o.codes
                            .iter()
                            .map(|(code, n)| format!("{code} {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                seconds(o.errors_cleared_seconds),
                if o.dependency == "redis" {
                    format!(", cache used {} after", seconds(o.cache_used_seconds))
                } else {
                    String::new()
                }
            );
        }
    }
    if !report.rounds.is_empty() {
        let _ = writeln!(
            out,
            "\n  rounds (each figure round by round, then the median)"
        );
        for r in &report.rounds {
            let _ = writeln!(
                out,
                "    {:<14} {} {}: median {}; {} rounds passed",
                r.scenario,
                super::round_figure(r),
                super::round_list(r),
                super::round_median(r),
                super::rounds_passed(r)
            );
        }
    }
    for g in &report.generators {
        let _ = writeln!(
            out,
            "  generator {} pid {}: {} connection(s) to {}, CPU {:.0}% of a core, send lag p50={} p99={}",
            g.host,
            g.pid,
            g.connections,
            g.target,
            g.cpu_percent,
            format_seconds(g.send_lag_p50_us as f64 / 1e6),
            format_seconds(g.send_lag_p99_us as f64 / 1e6)
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    let verdict = if report.passed {
        "PASS: every threshold held"
    } else if report.stopped_early.is_some() {
        "FAIL: the run stopped early"
    } else {
        "FAIL: a threshold failed"
    };
    let _ = writeln!(out, "\n  {verdict}");
    out
}

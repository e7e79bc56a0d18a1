//! The HTML report: one self-contained file (inline CSS, SVG and a few lines of script; nothing
//! fetched from the network) with charts of latency percentiles, throughput (sent and
//! answered), errors and the server's memory over time, and a table per scenario with its
//! thresholds.
//!
//! The charts are SVG written here rather than a charting library's script: a report that must
//! open offline, years later, is best as plain markup. The script only checks, once the page is
//! laid out, that every chart has drawn something (`data-charts-drawn` on `<body>`), which the
//! tests read from a headless browser.

use std::fmt::Write as _;

use crate::report::{
    BreakingPointReport, RecoveryReport, Report, ScenarioReport, SeriesPoint, Summary,
};
use crate::threshold::{Metric, Threshold, format_bytes, format_nanos, format_seconds};

const WIDTH: f64 = 920.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Line<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(f64, Option<f64>)>,
}

/// A guide: a dashed horizontal line (a threshold), a shaded span of time (a spike), or a
/// dashed vertical line at a time (a recovery).
enum Guide {
    Level(String, f64),
    Span(String, f64, f64),
    Mark(String, f64),
}

/// A "nice" upper bound and step for an axis: 1, 2 or 5 times a power of ten.
fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let raw_step = max / 5.0;
    let power = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw_step)
        .unwrap_or(10.0 * power);
    ((max / step).ceil() * step, step)
}

fn format_tick(value: f64) -> String {
    if value == 0.0 {
        "0".to_owned()
    } else if value.abs() >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The server's memory, and the line fitted to it when there is one.
fn memory_lines(report: &Report) -> Vec<Line<'static>> {
    let mut lines = vec![Line {
        name: "RSS",
        colour: "#5f3dc4",
        points: report
            .server_memory
            .iter()
            .map(|m| (m.t, Some(m.rss_bytes as f64 / 1_048_576.0)))
            .collect(),
    }];
    if let Some(trend) = &report.memory_trend {
        lines.push(Line {
            name: "fitted",
            colour: "#e8590c",
            points: vec![
                (
                    trend.from_seconds,
                    Some(trend.fitted_start_bytes / 1_048_576.0),
                ),
                (trend.to_seconds, Some(trend.fitted_end_bytes / 1_048_576.0)),
            ],
        });
    }
    lines
}

fn chart(id: &str, title: &str, y_unit: &str, lines: &[Line<'_>], guides: &[Guide]) -> String {
    let mut svg = String::new();
    // The x axis spans the points (a scenario that starts late is charted from its start).
    let x_min = lines
        .iter()
        .flat_map(|l| l.points.iter().filter(|p| p.1.is_some()).map(|p| p.0))
        .fold(f64::INFINITY, f64::min);
    let x_min = if x_min.is_finite() { x_min } else { 0.0 };
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(x_min, f64::max)
        .max(x_min + 1.0);
    let data_max = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .fold(0.0f64, f64::max);
    let guide_max = guides
        .iter()
        .filter_map(|guide| match guide {
            Guide::Level(_, v) => Some(*v),
            _ => None,
        })
        .fold(0.0f64, f64::max);
    // A threshold far above the data would flatten the lines: show it only if it is near.
    let y_top = if guide_max <= data_max * 3.0 {
        data_max.max(guide_max)
    } else {
        data_max
    };
    let (y_max, y_step) = nice_axis(y_top * 1.05);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: f64| LEFT + (t - x_min) / (x_max - x_min).max(1e-9) * plot_w;
    let y = |v: f64| TOP + plot_h - (v / y_max).min(1.0) * plot_h;
    let _ = write!(
        svg,
        r#"<svg class="chart" id="{id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(title)
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="16" class="title">{}</text>"#,
        escape(title)
    );
    // Grid and y ticks.
    let mut tick = 0.0;
    while tick <= y_max + y_step / 2.0 {
        let ty = y(tick);
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            format_tick(tick)
        );
        tick += y_step;
    }
    let _ = write!(
        svg,
        r#"<text x="14" y="{:.1}" class="unit" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_unit)
    );
    // x ticks: about eight, on whole seconds.
    let (_, x_step) = nice_axis((x_max - x_min) * 5.0 / 8.0);
    let mut tx = (x_min / x_step).ceil() * x_step;
    while tx <= x_max {
        let px = x(tx);
        let _ = write!(
            svg,
            r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" class="axis"/><text x="{px:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            TOP + plot_h,
            TOP + plot_h + 4.0,
            TOP + plot_h + 16.0,
            format_tick(tx)
        );
        tx += x_step;
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" class="unit" text-anchor="middle">seconds from the end of the warm-up</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0
    );
    let clamp_x = |t: f64| x(t).clamp(LEFT, WIDTH - RIGHT);
    for guide in guides {
        match guide {
            Guide::Level(label, value) => {
                if *value > y_max {
                    continue;
                }
                let gy = y(*value);
                let _ = write!(
                    svg,
                    r#"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" class="guide"/><text x="{:.1}" y="{:.1}" class="guide-label" text-anchor="end">{}</text>"#,
                    WIDTH - RIGHT,
                    WIDTH - RIGHT - 4.0,
                    gy - 4.0,
                    escape(label)
                );
            }
            Guide::Span(label, from, to) => {
                let (x1, x2) = (clamp_x(*from), clamp_x(*to));
                let _ = write!(
                    svg,
                    r#"<rect x="{x1:.1}" y="{TOP:.1}" width="{:.1}" height="{plot_h:.1}" class="span"><title>{}</title></rect><text x="{:.1}" y="{:.1}" class="guide-label">{}</text>"#,
                    (x2 - x1).max(1.0),
                    escape(label),
                    x1 + 3.0,
                    TOP + 12.0,
                    escape(label)
                );
            }
            Guide::Mark(label, t) => {
                let gx = clamp_x(*t);
                let _ = write!(
                    svg,
                    r#"<line x1="{gx:.1}" y1="{TOP:.1}" x2="{gx:.1}" y2="{:.1}" class="guide"/><text x="{:.1}" y="{:.1}" class="guide-label">{}</text>"#,
                    TOP + plot_h,
                    gx + 3.0,
                    TOP + 26.0,
                    escape(label)
                );
            }
        }
    }
    // Lines, broken where a step has no value.
    for line in lines {
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(t, v) in &line.points {
            match v {
                Some(v) => runs
                    .last_mut()
                    .map(|run| run.push((x(t), y(v))))
                    .unwrap_or(()),
                None => runs.push(Vec::new()),
            }
        }
        for run in runs.iter().filter(|run| !run.is_empty()) {
            let points: Vec<String> = run
                .iter()
                .map(|(px, py)| format!("{px:.1},{py:.1}"))
                .collect();
            // A single point still draws: a polyline of one point has no extent.
            let points = if run.len() == 1 {
                format!("{} {:.1},{:.1}", points[0], run[0].0 + 2.0, run[0].1)
            } else {
                points.join(" ")
            };
            let _ = write!(
                svg,
                r#"<polyline points="{points}" fill="none" stroke="{}" stroke-width="1.6"><title>{}</title></polyline>"#,
                line.colour,
                escape(line.name)
            );
        }
    }
    // Legend, right-aligned above the plot (the title is on the left).
    let widths: Vec<f64> = lines
        .iter()
        .map(|line| 24.0 + 7.0 * line.name.len() as f64)
        .collect();
    let mut lx = WIDTH - RIGHT - widths.iter().sum::<f64>();
    for (line, width) in lines.iter().zip(&widths) {
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="8" width="12" height="4" fill="{}"/><text x="{:.1}" y="14" class="legend">{}</text>"#,
            line.colour,
            lx + 16.0,
            escape(line.name)
        );
        lx += width;
    }
    svg.push_str("</svg>");
    svg
}

/// A spike's recovery: the scenario's latency with the spike shaded, the recovery
/// threshold, and the moment it was met again.
fn recovery_section(i: usize, s: &ScenarioReport, recovery: &RecoveryReport) -> String {
    let mut html = String::new();
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |ms| format_seconds(ms / 1e3));
    let _ = write!(
        html,
        "<p>Spike to {}/s from {:.0}s to {:.0}s: {} before it {}, during it {}; {}.</p>",
        recovery.peak_rate,
        recovery.spike_start_seconds,
        recovery.spike_end_seconds,
        escape(&recovery.threshold),
        ms(recovery.before_ms),
        ms(recovery.during_ms),
        match recovery.recovery_seconds {
            Some(seconds) => format!(
                "<b>recovered {seconds:.0}s after its end</b> ({} over {}s windows)",
                escape(&recovery.threshold),
                recovery.window_seconds
            ),
            None => "<b>not recovered by the end of the run</b>".to_owned(),
        }
    );
    let mut guides = vec![Guide::Span(
        "spike".to_owned(),
        recovery.spike_start_seconds,
        recovery.spike_end_seconds,
    )];
    if let Ok(threshold) = Threshold::parse(&recovery.threshold) {
        guides.push(Guide::Level(threshold.text.clone(), threshold.limit * 1e3));
    }
    if let Some(at) = recovery.recovered_at_seconds {
        guides.push(Guide::Mark("recovered".to_owned(), at));
    }
    html.push_str(&chart(
        &format!("chart-recovery-{i}"),
        &format!("Recovery of {}", s.name),
        "ms",
        &[
            Line {
                name: "p95",
                colour: "#e8590c",
                points: s.series.iter().map(|p| (p.t, p.p95_ms)).collect(),
            },
            Line {
                name: "p50",
                colour: "#1971c2",
                points: s.series.iter().map(|p| (p.t, p.p50_ms)).collect(),
            },
        ],
        &guides,
    ));
    html
}

/// The outages: per outage what the requests saw and the recovery (their outcomes are in the
/// thresholds table at the top), and a chart of the requests failed and answered per bin with each outage shaded, the returns and
/// recoveries marked, and the server's cache hits per second.
fn outages_section(report: &Report, chaos: &crate::record::RawChaos) -> String {
    let mut html = String::from("<h2>Outages</h2>");
    let seconds = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.1}s"));
    html.push_str(
        "<table><tr><th>dependency</th><th>down</th><th>back</th><th>requests while down</th>\
         <th>failed</th><th>failures by code</th><th>calls succeed after</th>\
         <th>cache used after</th><th>whole again after</th></tr>",
    );
    for o in &report.outages {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.1}s</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&o.dependency),
            o.down_seconds,
            seconds(o.up_seconds),
            o.requests,
            o.failed,
            o.error_rate
                .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0)),
            escape(
                &o.codes
                    .iter()
                    .map(|(code, n)| format!("{code} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            seconds(o.errors_cleared_seconds),
            if o.dependency == "redis" {
                seconds(o.cache_used_seconds)
            } else {
                "n/a".to_owned()
            },
            seconds(o.recovery_seconds)
        );
    }
    html.push_str("</table>");
    let bin = chaos.bin_ms.max(1) as f64 / 1e3;
    let rate = |n: u64| Some(n as f64 / bin);
    let answered: Vec<_> = chaos
        .bins
        .iter()
        .enumerate()
        .map(|(i, b)| (i as f64 * bin, rate(b.ok)))
        .collect();
    let failed: Vec<_> = chaos
        .bins
        .iter()
        .enumerate()
        .map(|(i, b)| (i as f64 * bin, rate(b.failed_total())))
        .collect();
    let hits: Vec<_> = chaos
        .server
        .windows(2)
        .filter_map(|pair| {
            let dt = (pair[1].t_ms - pair[0].t_ms) as f64 / 1e3;
            let (a, b) = (pair[0].cache_hits?, pair[1].cache_hits?);
            (dt > 0.0 && pair[1].t_ms >= 0).then(|| (pair[1].t_ms as f64 / 1e3, Some((b - a) / dt)))
        })
        .collect();
    let mut guides = Vec::new();
    for o in &report.outages {
        let end = o.up_seconds.unwrap_or(chaos.bins.len() as f64 * bin);
        guides.push(Guide::Span(
            format!("{} down", o.dependency),
            o.down_seconds,
            end,
        ));
        if let (Some(up), Some(recovery)) = (o.up_seconds, o.recovery_seconds) {
            guides.push(Guide::Mark("whole again".to_owned(), up + recovery));
        }
    }
    let mut lines = vec![
        Line {
            name: "answered/s",
            colour: "#2f9e44",
            points: answered,
        },
        Line {
            name: "failed/s",
            colour: "#e03131",
            points: failed,
        },
    ];
    if !hits.is_empty() {
        lines.push(Line {
            name: "cache hits/s (server)",
            colour: "#1971c2",
            points: hits,
        });
    }
    html.push_str(&chart(
        "chart-outages",
        "Requests around the outages (by due time, 100 ms bins)",
        "/s",
        &lines,
        &guides,
    ));
    // The latency of all requests over the same time, per second.
    html.push_str(&chart(
        "chart-outage-latency",
        "Latency around the outages",
        "ms",
        &[
            Line {
                name: "p95",
                colour: "#e8590c",
                points: report.series.iter().map(|p| (p.t, p.p95_ms)).collect(),
            },
            Line {
                name: "p50",
                colour: "#1971c2",
                points: report.series.iter().map(|p| (p.t, p.p50_ms)).collect(),
            },
        ],
        &report
            .outages
            .iter()
            .map(|o| {
                Guide::Span(
                    format!("{} down", o.dependency),
                    o.down_seconds,
                    o.up_seconds.unwrap_or(report.summary.total as f64 / 1e9),
                )
            })
            .collect::<Vec<_>>(),
    ));
    html
}

/// A profile of several rounds: each scenario's figures round by round and their medians (each
/// round has its own section below).
fn rounds_section(report: &Report) -> String {
    let mut html = String::from(
        "<h2>Rounds</h2><p>The scenarios ran one round after the other: a scenario of rising \
         steps by its breaking point in each round (≥: every step was sustained), any other by \
         its p95; then the median of the rounds that ran to their end (for an even number, the \
         worse of the two middle ones). -: the first step failed.</p><table><tr><th>scenario</th>\
         <th>figure</th><th>by round</th><th>median</th><th>rounds passed</th></tr>",
    );
    for r in &report.rounds {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td></tr>",
            escape(&r.scenario),
            super::round_figure(r),
            escape(&super::round_list(r)),
            escape(&super::round_median(r)),
            super::rounds_passed(r)
        );
    }
    html.push_str("</table>");
    html
}

/// A stress scenario's steps: a table, and its latency with each step shaded and marked
/// sustained or not.
fn breaking_point_section(i: usize, s: &ScenarioReport, b: &BreakingPointReport) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<p>Breaking point ({}, errors under {:.0}%, 95% of the requests answered): <b>{}</b>.</p>",
        escape(&b.threshold),
        b.max_error_rate * 100.0,
        match (b.breaking_point_rate, b.broke) {
            (Some(rate), true) => format!("{rate}/s"),
            (Some(rate), false) => format!("above {rate}/s (every step was sustained)"),
            (None, _) => "below the first step".to_owned(),
        }
    );
    html.push_str("<table><tr><th>rate</th><th>answered /s</th><th>percentile</th><th>errors</th><th>dropped</th><th>result</th></tr>");
    for step in &b.steps {
        let _ = write!(
            html,
            "<tr><td>{}/s</td><td>{:.1}</td><td>{}</td><td>{:.2}%</td><td>{}</td>{}</tr>",
            step.rate,
            step.answered_rps,
            step.percentile_ms
                .map_or("-".to_owned(), |ms| format_seconds(ms / 1e3)),
            step.error_rate * 100.0,
            step.dropped,
            verdict_cell(step.sustained)
        );
    }
    html.push_str("</table>");
    let mut guides: Vec<Guide> = b
        .steps
        .iter()
        .map(|step| {
            Guide::Span(
                format!("{}/s {}", step.rate, if step.sustained { "✓" } else { "✗" }),
                step.from_seconds,
                step.to_seconds,
            )
        })
        .collect();
    if let Ok(threshold) = Threshold::parse(&b.threshold) {
        guides.push(Guide::Level(threshold.text.clone(), threshold.limit * 1e3));
    }
    html.push_str(&chart(
        &format!("chart-steps-{i}"),
        &format!("Steps of {}", s.name),
        "ms",
        &[
            Line {
                name: "p95",
                colour: "#e8590c",
                points: s.series.iter().map(|p| (p.t, p.p95_ms)).collect(),
            },
            Line {
                name: "p50",
                colour: "#1971c2",
                points: s.series.iter().map(|p| (p.t, p.p50_ms)).collect(),
            },
        ],
        &guides,
    ));
    html
}

fn latency_chart(
    id: &str,
    title: &str,
    series: &[SeriesPoint],
    thresholds: &[Threshold],
) -> String {
    let guides: Vec<Guide> = thresholds
        .iter()
        .filter(|t| t.operation.is_none())
        .filter_map(|t| match t.metric {
            Metric::Percentile(p) if [50.0, 95.0, 99.0].contains(&p) => {
                Some(Guide::Level(t.text.clone(), t.limit * 1e3))
            }
            _ => None,
        })
        .collect();
    chart(
        id,
        title,
        "ms",
        &[
            Line {
                name: "p50",
                colour: "#2b8a3e",
                points: series.iter().map(|p| (p.t, p.p50_ms)).collect(),
            },
            Line {
                name: "p95",
                colour: "#e67700",
                points: series.iter().map(|p| (p.t, p.p95_ms)).collect(),
            },
            Line {
                name: "p99",
                colour: "#c92a2a",
                points: series.iter().map(|p| (p.t, p.p99_ms)).collect(),
            },
        ],
        &guides,
    )
}

fn per_second(
    series: &[SeriesPoint],
    step: f64,
    value: impl Fn(&SeriesPoint) -> u64,
) -> Vec<(f64, Option<f64>)> {
    series
        .iter()
        .map(|p| (p.t, Some(value(p) as f64 / step)))
        .collect()
}

fn summary_rows(name: &str, s: &Summary) -> String {
    format!(
        "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{}</td></tr>",
        escape(name),
        s.count,
        s.rps,
        format_nanos(s.average),
        format_nanos(s.fastest),
        format_nanos(s.p50),
        format_nanos(s.p90),
        format_nanos(s.p95),
        format_nanos(s.p99),
        format_nanos(s.p999),
        format_nanos(s.slowest),
        s.error_rate * 100.0,
        s.dropped
    )
}

/// A threshold's outcome as a table cell.
fn verdict_cell(passed: bool) -> &'static str {
    if passed {
        r#"<td class="pass">pass</td>"#
    } else {
        r#"<td class="fail">fail</td>"#
    }
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:960px;color:#212529}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px}table{border-collapse:collapse;margin:8px 0;font-size:13px}\
td,th{border:1px solid #dee2e6;padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}\
.pass{color:#2b8a3e;font-weight:600}.fail{color:#c92a2a;font-weight:600}.warn{background:#fff3bf;padding:6px 10px}\
svg.chart{width:100%;height:auto;border:1px solid #e9ecef;margin:8px 0}.grid{stroke:#f1f3f5}.axis{stroke:#adb5bd}\
.tick,.legend,.unit{font-size:11px;fill:#495057}.title{font-size:13px;font-weight:600;fill:#212529}\
.guide{stroke:#862e9c;stroke-dasharray:6 4}.guide-label{font-size:11px;fill:#862e9c}.span{fill:#ffe8cc;opacity:.7}";

const SCRIPT: &str = "window.addEventListener('load',function(){var c=document.querySelectorAll('svg.chart'),d=0;\
c.forEach(function(s){var ok=false;s.querySelectorAll('polyline').forEach(function(l){var b=l.getBBox();if(b.width>0)ok=true;});\
s.setAttribute('data-drawn',ok?'yes':'no');if(ok)d++;});document.body.setAttribute('data-charts',c.length);\
document.body.setAttribute('data-charts-drawn',d);});";

pub fn render(report: &Report) -> String {
    let mut html = String::new();
    let verdict = if report.passed {
        r#"<span class="pass">PASS</span>"#
    } else {
        r#"<span class="fail">FAIL</span>"#
    };
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>commerce-load: {}</title><style>{STYLE}</style></head><body>",
        escape(&report.profile)
    );
    let _ = write!(
        html,
        "<h1>Load test <code>{}</code>: {verdict}</h1><p>{}</p><p>Started {}, measured {:.1} s; {} requests answered, {:.1}/s, {} errors ({:.2}%), {} dropped.</p>",
        escape(&report.profile),
        escape(&report.description),
        escape(&report.date),
        report.summary.total as f64 / 1e9,
        report.summary.count,
        report.summary.rps,
        report.summary.errors,
        report.summary.error_rate * 100.0,
        report.summary.dropped
    );
    for warning in &report.warnings {
        let _ = write!(html, r#"<p class="warn">{}</p>"#, escape(warning));
    }
    if !report.thresholds.is_empty() {
        html.push_str("<h2>Thresholds</h2><table><tr><th>scope</th><th>threshold</th><th>observed</th><th>result</th></tr>");
        for t in &report.thresholds {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                escape(&t.scope),
                escape(&t.threshold),
                escape(&t.observed_text),
                verdict_cell(t.passed)
            );
        }
        html.push_str("</table>");
    }

    let step = report
        .raw
        .scenarios
        .first()
        .map(|s| s.step_ms as f64 / 1e3)
        .unwrap_or(1.0);
    let overall_thresholds: Vec<Threshold> = report
        .raw
        .thresholds
        .iter()
        .filter_map(|t| Threshold::parse(t).ok())
        .collect();
    let single_thresholds: Vec<Threshold> = if report.raw.scenarios.len() == 1 {
        report.raw.scenarios[0]
            .thresholds
            .iter()
            .filter_map(|t| Threshold::parse(t).ok())
            .chain(overall_thresholds.iter().cloned())
            .collect()
    } else {
        overall_thresholds
    };
    html.push_str("<h2>Over time</h2>");
    html.push_str(&latency_chart(
        "chart-latency",
        "Latency percentiles (of the requests due in each step)",
        &report.series,
        &single_thresholds,
    ));
    html.push_str(&chart(
        "chart-throughput",
        "Throughput: requests sent and answered",
        "per second",
        &[
            Line {
                name: "sent",
                colour: "#1971c2",
                points: per_second(&report.series, step, |p| p.sent),
            },
            Line {
                name: "answered",
                colour: "#2b8a3e",
                points: per_second(&report.series, step, |p| p.completed),
            },
        ],
        &[],
    ));
    html.push_str(&chart(
        "chart-errors",
        "Errors and dropped requests",
        "per second",
        &[
            Line {
                name: "errors",
                colour: "#c92a2a",
                points: per_second(&report.series, step, |p| p.errors),
            },
            Line {
                name: "dropped",
                colour: "#868e96",
                points: per_second(&report.series, step, |p| p.dropped),
            },
        ],
        &[],
    ));
    if report.server_memory.is_empty() {
        html.push_str("<p>Server memory: not known (the run did not start the server).</p>");
    } else {
        html.push_str(&chart(
            "chart-memory",
            "Server memory (resident set size)",
            "MiB",
            &memory_lines(report),
            &[],
        ));
        if let Some(trend) = &report.memory_trend {
            let _ = write!(
                html,
                "<p>Memory trend (least squares over {} samples): <b>{}/h</b>{}; mean {:.1} MiB in the first half, {:.1} MiB in the second.</p>",
                trend.samples,
                escape(&format_bytes(trend.growth_bytes_per_hour)),
                trend
                    .growth_bytes_per_100k_requests
                    .map(|b| format!(", {} per 100K requests", escape(&format_bytes(b))))
                    .unwrap_or_default(),
                trend.first_half_mean_bytes / 1_048_576.0,
                trend.second_half_mean_bytes / 1_048_576.0
            );
        }
    }

    if let Some(chaos) = &report.raw.chaos {
        html.push_str(&outages_section(report, chaos));
    }
    if !report.rounds.is_empty() {
        html.push_str(&rounds_section(report));
    }

    let header = "<tr><th>requests</th><th>answered</th><th>/s</th><th>avg</th><th>min</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>dropped</th></tr>";
    for (i, s) in report.scenarios.iter().enumerate() {
        let _ = write!(
            html,
            "<h2>Scenario <code>{}</code>: {}</h2><p>{}; mix: {}; {} warm-up requests not counted.</p>",
            escape(&s.name),
            if s.passed {
                r#"<span class="pass">pass</span>"#
            } else {
                r#"<span class="fail">fail</span>"#
            },
            escape(&s.load),
            escape(&s.mix),
            s.warmup_requests
        );
        let _ = write!(html, "<table>{header}{}", summary_rows("all", &s.summary));
        if s.operations.len() > 1 {
            for (name, op) in &s.operations {
                html.push_str(&summary_rows(name, op));
            }
        }
        html.push_str("</table>");
        let rows: Vec<_> = report
            .thresholds
            .iter()
            .filter(|t| t.scope == s.name)
            .collect();
        if !rows.is_empty() {
            html.push_str("<table><tr><th>threshold</th><th>observed</th><th>result</th></tr>");
            for t in rows {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td>{}</tr>",
                    escape(&t.threshold),
                    escape(&t.observed_text),
                    verdict_cell(t.passed)
                );
            }
            html.push_str("</table>");
        }
        let codes: Vec<String> = s
            .summary
            .status_code_distribution
            .iter()
            .map(|(code, n)| format!("{}: {n}", escape(code)))
            .collect();
        let _ = write!(html, "<p>Status codes: {}</p>", codes.join(", "));
        if !s.summary.error_distribution.is_empty() {
            html.push_str("<table><tr><th>error</th><th>count</th></tr>");
            for (message, n) in s.summary.error_distribution.iter().take(20) {
                let _ = write!(html, "<tr><td>{}</td><td>{n}</td></tr>", escape(message));
            }
            html.push_str("</table>");
        }
        if let Some(recovery) = &s.recovery {
            html.push_str(&recovery_section(i, s, recovery));
        }
        if let Some(breaking) = &s.breaking_point {
            html.push_str(&breaking_point_section(i, s, breaking));
        }
        if report.scenarios.len() > 1 {
            let thresholds: Vec<Threshold> = report.raw.scenarios[i]
                .thresholds
                .iter()
                .filter_map(|t| Threshold::parse(t).ok())
                .collect();
            html.push_str(&latency_chart(
                &format!("chart-latency-{i}"),
                &format!("Latency of {}", s.name),
                &s.series,
                &thresholds,
            ));
        }
    }
    html.push_str("<h2>Generators</h2><table><tr><th>host</th><th>pid</th><th>target</th><th>connections</th><th>CPU (% of a core)</th><th>send lag p50</th><th>p99</th><th>max</th></tr>");
    for g in &report.generators {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&g.host),
            g.pid,
            escape(&g.target),
            g.connections,
            g.cpu_percent,
            format_seconds(g.send_lag_p50_us as f64 / 1e6),
            format_seconds(g.send_lag_p99_us as f64 / 1e6),
            format_seconds(g.send_lag_max_us as f64 / 1e6)
        );
    }
    html.push_str("</table><p>Latency counts from the time each request was due, so a stalled server or generator shows in full (coordinated omission corrected). Written by commerce-load.</p>");
    let _ = writeln!(html, "<script>{SCRIPT}</script></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(9.3), (10.0, 2.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
        assert_eq!(nice_axis(230.0), (250.0, 50.0));
        assert_eq!(escape("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
    }
}

//! The terminal report: one table, regressions first, with ANSI colour when asked for.

use std::fmt::Write as _;

use super::{
    baseline_cell, change_cell, config_change_lines, current_cell, mismatch_lines, reason,
    rules_line, speed_lines, summary_counts,
};
use crate::compare::Status;
use crate::report::{Mode, Report, Verdict};

const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[1;33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

fn paint(text: &str, colour: &str, enabled: bool) -> String {
    if enabled {
        format!("{colour}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

fn status_colour(status: Status) -> &'static str {
    match status {
        Status::Regressed => RED,
        Status::Improved => GREEN,
        Status::New | Status::Missing | Status::Removed => YELLOW,
        Status::Unchanged => DIM,
    }
}

/// Renders the report as a table. `colour` should be true only when writing to a terminal.
pub fn render(report: &Report, colour: bool) -> String {
    let mut out = String::new();
    let warnings = fingerprint_warning(report, colour);
    out.push_str(&warnings);
    let _ = writeln!(out, "{}\n", report.mode.describe());

    let (base, current) = match report.mode {
        Mode::Stored => ("BASELINE", "CURRENT"),
        Mode::Paired { .. } => ("BASE", "CHANGE"),
    };
    let header = [
        "STATUS",
        "BENCHMARK",
        base,
        current,
        "DIFFERENCE (TIME / ALLOCS / BYTES / ROUND TRIPS)",
        "REASON",
    ];
    let rows: Vec<[String; 6]> = report
        .benchmarks
        .iter()
        .map(|b| {
            [
                b.status().as_str().to_owned(),
                b.id.to_string(),
                baseline_cell(b),
                current_cell(b),
                change_cell(b),
                reason(b),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6], status: Option<Status>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let last = i == cells.len() - 1;
            let padded = if last {
                (*cell).to_owned()
            } else {
                format!("{cell}{}  ", " ".repeat(widths[i] - cell.chars().count()))
            };
            match (i, status) {
                (0, Some(status)) => text.push_str(&paint(&padded, status_colour(status), colour)),
                _ => text.push_str(&padded),
            }
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header, None));
    for (row, b) in rows.iter().zip(&report.benchmarks) {
        let cells = [&*row[0], &*row[1], &*row[2], &*row[3], &*row[4], &*row[5]];
        let _ = writeln!(out, "{}", line(cells, Some(b.status())));
    }
    out.push('\n');

    for line in speed_lines(report) {
        let _ = writeln!(out, "{line}");
    }
    for warning in &report.warnings {
        let _ = writeln!(
            out,
            "{}",
            paint(&format!("warning: {warning}"), YELLOW, colour)
        );
    }
    for line in config_change_lines(report) {
        let _ = writeln!(
            out,
            "{}",
            paint(&format!("warning: {line}"), YELLOW, colour)
        );
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for glob in &report.unused_overrides {
        let _ = writeln!(out, "note: the override `{glob}` matched no benchmark");
    }
    let verdict = match report.verdict {
        Verdict::Pass => paint("PASS", GREEN, colour),
        Verdict::Fail => paint("FAIL", RED, colour),
        Verdict::Error => paint("ERROR", RED, colour),
    };
    let _ = writeln!(
        out,
        "perf-gate: {verdict} — {} ({} mode)",
        summary_counts(report),
        report.mode.name()
    );
    let _ = writeln!(out, "{}", rules_line(report));
    // Repeated at the end, where the eye lands, so a mismatch cannot scroll away.
    out.push_str(&warnings);
    out
}

fn fingerprint_warning(report: &Report, colour: bool) -> String {
    let mut out = String::new();
    for mismatch in &report.fingerprint.mismatches {
        for (i, line) in mismatch_lines(mismatch).iter().enumerate() {
            let text = if i == 0 {
                format!("WARNING: {line}")
            } else {
                format!("         {line}")
            };
            let _ = writeln!(out, "{}", paint(&text, YELLOW, colour));
        }
        out.push('\n');
    }
    out
}

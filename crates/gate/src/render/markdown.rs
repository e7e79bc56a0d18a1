//! The Markdown report (a pull request comment or `$GITHUB_STEP_SUMMARY`): the verdict and the
//! offending benchmarks first, everything else folded away.

use std::fmt::Write as _;

use super::{
    baseline_cell, change_cell, config_change_lines, current_cell, mismatch_lines, reason,
    rules_line, speed_lines, summary_counts,
};
use crate::compare::Status;
use crate::report::{BenchmarkReport, Mode, Report, Verdict};

/// Escapes text for a table cell: pipes would split the cell, newlines would end the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn table(out: &mut String, mode: &Mode, benchmarks: &[&BenchmarkReport], with_status: bool) {
    let (base, current) = match mode {
        Mode::Stored => ("Baseline", "Current"),
        Mode::Paired { .. } => ("Base", "Change"),
    };
    let columns = format!(
        "| Benchmark | {base} | {current} | Difference (time / allocs / bytes / round trips) | Reason |"
    );
    if with_status {
        let _ = writeln!(out, "| Status {columns}");
        out.push_str("|---|---|---|---|---|---|\n");
    } else {
        let _ = writeln!(out, "{columns}");
        out.push_str("|---|---|---|---|---|\n");
    }
    for b in benchmarks {
        if with_status {
            let _ = write!(out, "| {} ", b.status().as_str());
        }
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            cell(b.id.as_str()),
            cell(&baseline_cell(b)),
            cell(&current_cell(b)),
            cell(&change_cell(b)),
            cell(&reason(b))
        );
    }
}

/// Renders the report as Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let total = report.benchmarks.len();
    let regressed = report.count(Status::Regressed);
    let missing = match report.mode {
        Mode::Paired { .. } if report.count(Status::Missing) > 0 => {
            format!(", {} missing", report.count(Status::Missing))
        }
        _ => String::new(),
    };
    let _ = match report.verdict {
        Verdict::Fail => writeln!(
            out,
            "## ❌ Performance gate: FAIL — {regressed} of {total} benchmarks regressed{missing}\n"
        ),
        _ => writeln!(
            out,
            "## ✅ Performance gate: PASS — no regression in {total} benchmarks\n"
        ),
    };

    let _ = writeln!(out, "_{}_\n", cell(&report.mode.describe()));
    let changes = config_change_lines(report);
    if !changes.is_empty() {
        out.push_str("> [!WARNING]\n");
        for line in &changes {
            let _ = writeln!(out, "> - {}", cell(line));
        }
        out.push('\n');
    }

    for mismatch in &report.fingerprint.mismatches {
        out.push_str("> [!WARNING]\n");
        for (i, line) in mismatch_lines(mismatch).iter().enumerate() {
            let text = line.trim_start();
            if i == 0 {
                let _ = writeln!(out, "> **{}**", cell(text));
            } else {
                let _ = writeln!(out, "> - {}", cell(text));
            }
        }
        out.push('\n');
    }

    let missing_fails = matches!(report.mode, Mode::Paired { .. });
    let offending: Vec<&BenchmarkReport> = report
        .benchmarks
        .iter()
        .filter(|b| {
            b.status() == Status::Regressed || (missing_fails && b.status() == Status::Missing)
        })
        .collect();
    if !offending.is_empty() {
        table(&mut out, &report.mode, &offending, false);
        out.push('\n');
    }

    let _ = writeln!(out, "{}.\n", summary_counts(report));
    for line in speed_lines(report) {
        let _ = writeln!(out, "- {}", cell(&line));
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "- ⚠️ {}", cell(warning));
    }
    for note in &report.notes {
        let _ = writeln!(out, "- {}", cell(note));
    }
    for glob in &report.unused_overrides {
        let _ = writeln!(out, "- the override `{}` matched no benchmark", cell(glob));
    }
    if !report.warnings.is_empty()
        || !report.unused_overrides.is_empty()
        || !report.speeds.is_empty()
        || !report.notes.is_empty()
    {
        out.push('\n');
    }

    let _ = writeln!(out, "<details><summary>All {total} benchmarks</summary>\n");
    let all: Vec<&BenchmarkReport> = report.benchmarks.iter().collect();
    table(&mut out, &report.mode, &all, true);
    let _ = writeln!(out, "\n{}\n\n</details>", rules_line(report));
    out
}

/// The Markdown for a gate that could not reach a verdict.
pub fn render_error(message: &str) -> String {
    format!(
        "## ⚠️ Performance gate: ERROR — no verdict\n\n```text\n{}\n```\n",
        message.replace("```", "'''")
    )
}

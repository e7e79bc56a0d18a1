//! The JUnit XML report: one test suite per benchmark suite, one test case per benchmark, a
//! failure per regression, so CI systems show regressions in their native test views.
//!
//! Written by hand: the format is a dozen elements, and escaping five characters is all an XML
//! writer would do for us here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{change_cell, mismatch_lines, reason};
use crate::compare::Status;
use crate::report::{BenchmarkReport, Mode, Report};

/// Escapes text for an attribute value: like [`escape`], and line breaks as character
/// references, because parsers turn literal ones in attributes into spaces.
fn escape_attribute(text: &str) -> String {
    escape(text)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// Escapes text for XML content and attribute values, dropping characters XML 1.0 forbids.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// Renders the report as JUnit XML.
pub fn render(report: &Report) -> String {
    let mut suites: BTreeMap<&str, Vec<&BenchmarkReport>> = BTreeMap::new();
    for b in &report.benchmarks {
        suites.entry(b.id.suite()).or_default().push(b);
    }
    // In paired mode a missing benchmark fails the gate (see `Report::refresh_verdict`).
    let missing_fails = matches!(report.mode, Mode::Paired { .. });
    let fails = |status: Status| {
        status == Status::Regressed || (missing_fails && status == Status::Missing)
    };
    let failures = report
        .benchmarks
        .iter()
        .filter(|b| fails(b.status()))
        .count();
    let skipped = report
        .benchmarks
        .iter()
        .filter(|b| {
            matches!(b.status(), Status::New | Status::Missing | Status::Removed)
                && !fails(b.status())
        })
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"perf-gate\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        report.benchmarks.len()
    );
    for (suite, benchmarks) in suites {
        let failed = benchmarks.iter().filter(|b| fails(b.status())).count();
        let skipped = benchmarks
            .iter()
            .filter(|b| {
                matches!(b.status(), Status::New | Status::Missing | Status::Removed)
                    && !fails(b.status())
            })
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\">",
            escape(suite),
            benchmarks.len(),
        );
        let mismatch = report
            .fingerprint
            .mismatches
            .iter()
            .find(|m| m.suite == suite);
        if let Some(mismatch) = mismatch {
            let text = mismatch_lines(mismatch).join("\n");
            out.push_str("    <properties>\n");
            let _ = writeln!(
                out,
                "      <property name=\"fingerprint-warning\" value=\"{}\"/>",
                escape_attribute(&text)
            );
            out.push_str("    </properties>\n");
        }
        for b in benchmarks {
            let _ = write!(
                out,
                "    <testcase classname=\"perf-gate.{}\" name=\"{}\" time=\"0\"",
                escape(suite),
                escape(b.id.as_str())
            );
            let change = format!("change (time / allocs / bytes): {}", change_cell(b));
            let why = reason(b);
            let details = if why.is_empty() {
                change
            } else {
                format!("{why}\n{change}")
            };
            match b.status() {
                Status::Regressed => {
                    let metrics: Vec<&str> = b.regressions().iter().map(|m| m.as_str()).collect();
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"regression\" message=\"regressed: {}\">{}</failure>\n    </testcase>",
                        escape_attribute(&metrics.join(", ")),
                        escape(&details)
                    );
                }
                Status::Missing if missing_fails => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"missing\" message=\"missing\">{}</failure>\n    </testcase>",
                        escape(&details)
                    );
                }
                Status::New | Status::Missing | Status::Removed => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}: {}\"/>\n    </testcase>",
                        b.status().as_str(),
                        escape_attribute(&reason(b))
                    );
                }
                Status::Improved | Status::Unchanged => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>{}; {}</system-out>\n    </testcase>",
                        b.status().as_str(),
                        escape(&details)
                    );
                }
            }
        }
        if let Some(mismatch) = mismatch {
            let _ = writeln!(
                out,
                "    <system-err>WARNING: {}</system-err>",
                escape(&mismatch_lines(mismatch).join("\n"))
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// The JUnit XML for a gate that could not reach a verdict: one errored test case.
pub fn render_error(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"perf-gate\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\">\n\
         \x20 <testsuite name=\"perf-gate\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\">\n\
         \x20   <testcase classname=\"perf-gate\" name=\"perf-gate\" time=\"0\">\n\
         \x20     <error type=\"error\" message=\"the gate could not reach a verdict\">{}</error>\n\
         \x20   </testcase>\n\
         \x20 </testsuite>\n\
         </testsuites>\n",
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
    }
}

//! The JSON report; its schema is documented at the crate root and in `benches/README.md`.

use serde::Serialize;

use crate::compare::{Comparison, CountComparison, LatencyComparison, Metric, Status};
use crate::config::Thresholds;
use crate::report::{AppliedOverride, FingerprintReport, Report, SuiteSpeed, Verdict};

/// The version of the schema below; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    verdict: Verdict,
    error: Option<&'a str>,
    summary: Summary,
    thresholds: Option<&'a Thresholds>,
    alpha: Option<f64>,
    fingerprint: Option<&'a FingerprintReport>,
    unused_overrides: &'a [String],
    warnings: &'a [String],
    speeds: &'a [SuiteSpeed],
    benchmarks: Vec<JsonBenchmark<'a>>,
}

#[derive(Serialize, Default)]
struct Summary {
    total: usize,
    regressed: usize,
    improved: usize,
    unchanged: usize,
    new: usize,
    missing: usize,
}

#[derive(Serialize)]
struct JsonBenchmark<'a> {
    id: &'a str,
    suite: &'a str,
    status: Status,
    regressions: Vec<Metric>,
    improvements: Vec<Metric>,
    thresholds: &'a Thresholds,
    #[serde(rename = "override")]
    applied_override: Option<&'a AppliedOverride>,
    reason: String,
    latency: Option<&'a LatencyComparison>,
    allocations: Option<&'a CountComparison>,
    bytes: Option<&'a CountComparison>,
    notes: &'a [String],
    confirmation: Option<&'a Comparison>,
}

/// Renders the report as pretty-printed JSON (with a final newline).
pub fn render(report: &Report) -> String {
    let json = JsonReport {
        schema_version: SCHEMA_VERSION,
        verdict: report.verdict,
        error: None,
        summary: Summary {
            total: report.benchmarks.len(),
            regressed: report.count(Status::Regressed),
            improved: report.count(Status::Improved),
            unchanged: report.count(Status::Unchanged),
            new: report.count(Status::New),
            missing: report.count(Status::Missing),
        },
        thresholds: Some(&report.thresholds),
        alpha: Some(report.alpha),
        fingerprint: Some(&report.fingerprint),
        unused_overrides: &report.unused_overrides,
        warnings: &report.warnings,
        speeds: &report.speeds,
        benchmarks: report
            .benchmarks
            .iter()
            .map(|b| JsonBenchmark {
                id: &b.id,
                suite: &b.suite,
                status: b.status(),
                regressions: b.regressions(),
                improvements: b.improvements(),
                thresholds: &b.thresholds,
                applied_override: b.applied_override.as_ref(),
                reason: super::reason(b),
                latency: b.measured.latency.as_ref(),
                allocations: b.measured.allocations.as_ref(),
                bytes: b.measured.bytes.as_ref(),
                notes: &b.measured.notes,
                confirmation: b.confirmation.as_ref(),
            })
            .collect(),
    };
    to_string(&json)
}

/// The JSON for a gate that could not reach a verdict: `verdict` is `error` and `error` holds
/// the message.
pub fn render_error(message: &str) -> String {
    to_string(&JsonReport {
        schema_version: SCHEMA_VERSION,
        verdict: Verdict::Error,
        error: Some(message),
        summary: Summary::default(),
        thresholds: None,
        alpha: None,
        fingerprint: None,
        unused_overrides: &[],
        warnings: &[],
        speeds: &[],
        benchmarks: Vec::new(),
    })
}

fn to_string(value: &impl Serialize) -> String {
    // Serialising these plain structs cannot fail: no maps with non-string keys, and serde_json
    // writes non-finite floats as null.
    let mut json = serde_json::to_string_pretty(value).unwrap_or_else(|err| {
        let message = serde_json::Value::String(err.to_string());
        format!(
            "{{\"schema_version\": {SCHEMA_VERSION}, \"verdict\": \"error\", \"error\": {message}}}"
        )
    });
    json.push('\n');
    json
}

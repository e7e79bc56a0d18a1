//! The JSON report; its schema is documented at the crate root.

use serde::Serialize;

use crate::compare::{
    Comparison, CountComparison, LatencyComparison, Metric, RoundTripComparison, Status,
};
use crate::config::{ConfigChange, Thresholds};
use crate::report::{AppliedOverride, FingerprintReport, Mode, Report, SuiteSpeed, Verdict};

/// The version of the schema below; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    verdict: Verdict,
    error: Option<&'a str>,
    /// `paired` or `stored`; `null` in an error report.
    mode: Option<&'static str>,
    /// The base revision in paired mode.
    base: Option<JsonBase<'a>>,
    summary: Summary,
    thresholds: Option<&'a Thresholds>,
    alpha: Option<f64>,
    fingerprint: Option<&'a FingerprintReport>,
    unused_overrides: &'a [String],
    warnings: &'a [String],
    speeds: &'a [SuiteSpeed],
    config_changes: &'a [ConfigChange],
    notes: &'a [String],
    benchmarks: Vec<JsonBenchmark<'a>>,
}

#[derive(Serialize)]
struct JsonBase<'a> {
    rev: &'a str,
    commit: &'a str,
    same_as_working_tree: bool,
}

#[derive(Serialize, Default)]
struct Summary {
    total: usize,
    regressed: usize,
    improved: usize,
    unchanged: usize,
    new: usize,
    missing: usize,
    removed: usize,
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
    round_trips: Option<&'a RoundTripComparison>,
    notes: &'a [String],
    confirmation: Option<&'a Comparison>,
}

/// Renders the report as pretty-printed JSON (with a final newline).
pub fn render(report: &Report) -> String {
    let base = match &report.mode {
        Mode::Stored => None,
        Mode::Paired {
            base,
            commit,
            same_as_working_tree,
        } => Some(JsonBase {
            rev: base,
            commit,
            same_as_working_tree: *same_as_working_tree,
        }),
    };
    let json = JsonReport {
        schema_version: SCHEMA_VERSION,
        verdict: report.verdict,
        error: None,
        mode: Some(report.mode.name()),
        base,
        summary: Summary {
            total: report.benchmarks.len(),
            regressed: report.count(Status::Regressed),
            improved: report.count(Status::Improved),
            unchanged: report.count(Status::Unchanged),
            new: report.count(Status::New),
            missing: report.count(Status::Missing),
            removed: report.count(Status::Removed),
        },
        thresholds: Some(&report.thresholds),
        alpha: Some(report.alpha),
        fingerprint: Some(&report.fingerprint),
        unused_overrides: &report.unused_overrides,
        warnings: &report.warnings,
        speeds: &report.speeds,
        config_changes: &report.config_changes,
        notes: &report.notes,
        benchmarks: report
            .benchmarks
            .iter()
            .map(|b| JsonBenchmark {
                id: b.id.as_str(),
                suite: b.id.suite(),
                status: b.status(),
                regressions: b.regressions(),
                improvements: b.improvements(),
                thresholds: &b.thresholds,
                applied_override: b.applied_override.as_ref(),
                reason: super::reason(b),
                latency: b.measured.latency.as_ref(),
                allocations: b.measured.allocations.as_ref(),
                bytes: b.measured.bytes.as_ref(),
                round_trips: b.measured.round_trips.as_ref(),
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
        mode: None,
        base: None,
        summary: Summary::default(),
        thresholds: None,
        alpha: None,
        fingerprint: None,
        unused_overrides: &[],
        warnings: &[],
        speeds: &[],
        config_changes: &[],
        notes: &[],
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

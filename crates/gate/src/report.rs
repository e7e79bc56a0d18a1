//! The gate's findings, as one value that every renderer (terminal, Markdown, JSON, JUnit)
//! reads.

use serde::Serialize;

use crate::compare::{Comparison, Metric, Status, confirm};
use crate::config::Thresholds;
use crate::fingerprint::{Difference, Fingerprint};

/// The outcome of the whole gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No regression.
    Pass,
    /// At least one regression.
    Fail,
    /// No verdict: a usage or data error (only in error reports).
    Error,
}

impl Verdict {
    /// The process exit code: 0 pass, 1 fail, 2 error.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
        }
    }

    /// `pass`, `fail` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

/// A suite whose baseline was measured somewhere else.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FingerprintMismatch {
    /// The suite.
    pub suite: String,
    /// Where its baseline was measured.
    pub baseline: Fingerprint,
    /// The fields that differ from this machine.
    pub differences: Vec<Difference>,
}

/// The fingerprint section of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FingerprintReport {
    /// This machine.
    pub current: Fingerprint,
    /// Suites whose baselines were measured elsewhere (a loud warning in every report).
    pub mismatches: Vec<FingerprintMismatch>,
}

/// An override that set a benchmark's thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedOverride {
    /// Its glob, as written in the configuration.
    pub glob: String,
    /// Its reason, shown in every report.
    pub reason: String,
}

/// How fast the machine ran a suite compared with its baseline, from its reference benchmarks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteSpeed {
    /// The suite.
    pub suite: String,
    /// Current time / baseline time of the reference benchmarks (geometric mean): above 1 the
    /// machine is slower now. Latency ratios of the suite's other benchmarks are divided by it.
    pub factor: f64,
    /// Each reference benchmark and its ratio.
    pub references: Vec<(String, f64)>,
}

/// Everything the gate found about one benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkReport {
    /// `<suite>/<operation>[/<parameter>]`.
    pub id: String,
    /// The first segment of the id.
    pub suite: String,
    /// The thresholds applied.
    pub thresholds: Thresholds,
    /// The override that set them, if one did.
    pub applied_override: Option<AppliedOverride>,
    /// The comparison of the results with the baseline.
    pub measured: Comparison,
    /// The comparison of a confirmation run with the baseline, when one was made.
    pub confirmation: Option<Comparison>,
}

impl BenchmarkReport {
    /// The final verdict: the measurement's, or with a confirmation run, what both runs agree on
    /// (see [`confirm`]).
    pub fn status(&self) -> Status {
        self.verdict().0
    }

    /// The metrics that regressed (in both runs, with a confirmation).
    pub fn regressions(&self) -> Vec<Metric> {
        self.verdict().1
    }

    /// The metrics that improved (in both runs, with a confirmation).
    pub fn improvements(&self) -> Vec<Metric> {
        self.verdict().2
    }

    fn verdict(&self) -> (Status, Vec<Metric>, Vec<Metric>) {
        match &self.confirmation {
            Some(second) if !matches!(self.measured.status, Status::New | Status::Missing) => {
                confirm(&self.measured, second)
            }
            _ => (
                self.measured.status,
                self.measured.regressions.clone(),
                self.measured.improvements.clone(),
            ),
        }
    }

    /// Adds a confirmation run's comparison.
    pub fn with_confirmation(mut self, confirmation: Comparison) -> BenchmarkReport {
        self.confirmation = Some(confirmation);
        self
    }
}

/// The gate's findings.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Pass or fail.
    pub verdict: Verdict,
    /// The default thresholds.
    pub thresholds: Thresholds,
    /// The significance level of the latency test.
    pub alpha: f64,
    /// This machine, and the suites whose baselines were measured elsewhere.
    pub fingerprint: FingerprintReport,
    /// Every benchmark, regressions first, then missing, new, improved, unchanged; by id within.
    pub benchmarks: Vec<BenchmarkReport>,
    /// Overrides that matched no benchmark (probably stale).
    pub unused_overrides: Vec<String>,
    /// Other things the reader should know.
    pub warnings: Vec<String>,
    /// The machine's speed per suite (suites with reference benchmarks only).
    pub speeds: Vec<SuiteSpeed>,
}

impl Report {
    /// Builds the report: sorts the benchmarks and works out the verdict.
    pub fn new(
        thresholds: Thresholds,
        alpha: f64,
        fingerprint: FingerprintReport,
        benchmarks: Vec<BenchmarkReport>,
        unused_overrides: Vec<String>,
        warnings: Vec<String>,
    ) -> Report {
        let mut report = Report {
            verdict: Verdict::Pass,
            thresholds,
            alpha,
            fingerprint,
            benchmarks,
            unused_overrides,
            warnings,
            speeds: Vec::new(),
        };
        report.refresh_verdict();
        report
    }

    /// Recomputes the verdict and the order after benchmarks changed (a confirmation was added).
    pub fn refresh_verdict(&mut self) {
        self.benchmarks
            .sort_by(|a, b| a.status().cmp(&b.status()).then_with(|| a.id.cmp(&b.id)));
        self.verdict = if self.count(Status::Regressed) > 0 {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
    }

    /// How many benchmarks have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.benchmarks
            .iter()
            .filter(|b| b.status() == status)
            .count()
    }

    /// The benchmark `id`, if reported.
    pub fn benchmark(&self, id: &str) -> Option<&BenchmarkReport> {
        self.benchmarks.iter().find(|b| b.id == id)
    }

    /// The process exit code for this report (0 pass, 1 fail).
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }
}

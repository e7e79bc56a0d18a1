//! The gate's findings, as one value that every renderer (terminal, Markdown, JSON, JUnit)
//! reads.

use bench_format::BenchmarkId;
use serde::Serialize;

use crate::compare::{Comparison, Metric, Status, confirm};
use crate::config::{ConfigChange, Thresholds};
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

/// What latency was judged against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Mode {
    /// Against latency recorded in `baselines/` at another time (and, unless the results came
    /// from elsewhere, normalised by the floors and confirmed by a re-run).
    Stored,
    /// Against the base revision measured in the same run, in alternating slices.
    Paired {
        /// The base as asked for (`--base`, or how it was found).
        base: String,
        /// Its commit.
        commit: String,
        /// Whether the working tree is the base itself (an A/A run of one build).
        same_as_working_tree: bool,
    },
}

impl Mode {
    /// `paired` or `stored`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Stored => "stored",
            Mode::Paired { .. } => "paired",
        }
    }

    /// One line for every report: which mode judged latency, against what.
    pub fn describe(&self) -> String {
        match self {
            Mode::Stored => "latency judged in STORED mode: against the baselines' recorded \
                             latency (another run, another moment), normalised by the floors"
                .to_owned(),
            Mode::Paired {
                base,
                commit,
                same_as_working_tree,
            } => {
                let short = &commit[..commit.len().min(12)];
                let same = if *same_as_working_tree {
                    "; the working tree is the base itself (A/A)"
                } else {
                    ""
                };
                format!(
                    "latency judged in PAIRED mode: against the base revision {base} ({short}), \
                     measured in the same run in alternating slices{same}"
                )
            }
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
    pub references: Vec<(BenchmarkId, f64)>,
}

/// Everything the gate found about one benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkReport {
    /// `<suite>/<operation>[/<parameter>]`.
    pub id: BenchmarkId,
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
            Some(second)
                if !matches!(
                    self.measured.status,
                    Status::New | Status::Missing | Status::Removed
                ) =>
            {
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
    /// What latency was judged against.
    pub mode: Mode,
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
    /// The machine's speed per suite (suites with reference benchmarks only; stored mode).
    pub speeds: Vec<SuiteSpeed>,
    /// What the change does to the gate's own configuration (paired mode), for a reviewer.
    pub config_changes: Vec<ConfigChange>,
    /// Facts about the run that are neither warnings nor findings (what was not counted, and
    /// why).
    pub notes: Vec<String>,
}

impl Report {
    /// Builds the report: sorts the benchmarks and works out the verdict.
    pub fn new(
        mode: Mode,
        thresholds: Thresholds,
        alpha: f64,
        fingerprint: FingerprintReport,
        benchmarks: Vec<BenchmarkReport>,
        unused_overrides: Vec<String>,
        warnings: Vec<String>,
    ) -> Report {
        let mut report = Report {
            verdict: Verdict::Pass,
            mode,
            thresholds,
            alpha,
            fingerprint,
            benchmarks,
            unused_overrides,
            warnings,
            speeds: Vec::new(),
            config_changes: Vec::new(),
            notes: Vec::new(),
        };
        report.refresh_verdict();
        report
    }

    /// Recomputes the verdict and the order after benchmarks changed (a confirmation was added).
    ///
    /// A regression fails the gate in both modes. In paired mode a benchmark of the base's
    /// baselines that the change no longer measures (missing) fails it too: the base revision
    /// says what must be measured, and only a change that also removes it from `baselines/`
    /// may drop it. In stored mode the results may come from a partial run, so missing
    /// benchmarks are listed without failing.
    pub fn refresh_verdict(&mut self) {
        self.benchmarks
            .sort_by(|a, b| a.status().cmp(&b.status()).then_with(|| a.id.cmp(&b.id)));
        let missing_fails = matches!(self.mode, Mode::Paired { .. });
        self.verdict = if self.count(Status::Regressed) > 0
            || (missing_fails && self.count(Status::Missing) > 0)
        {
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
        self.benchmarks.iter().find(|b| b.id.as_str() == id)
    }

    /// The process exit code for this report (0 pass, 1 fail).
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }
}

//! The performance regression gate: did a change make the backend slower or hungrier? This
//! crate is the judge — its statistics, rules, reports and baselines — and this page is where
//! its rules are written down (the README and `benches/README.md` link here). `cargo xtask
//! perf-gate`, `cargo xtask baseline refresh` and `cargo xtask gate calibrate` are thin front
//! ends over it. It knows nothing of the domains it measures: a benchmark is a
//! [`BenchmarkId`] (`<suite>/<operation>[/<parameter>]`), its times, and its counts.
//!
//! # Two modes
//!
//! **Paired (the default).** The base revision (the merge-base of the change with `main`, or
//! `--base REV`) is built beside the working tree, and both are measured *in the same run, on
//! the same services, in alternating slices* ([`runner`], [`paired`]). On the 2-vCPU machines
//! this project runs on, the machine's speed drifts by as much as the 20% threshold between
//! two runs minutes apart, and by far more between days or VMs: a verdict that compares with
//! numbers measured at another time cannot be trusted there, and one that compares
//! neighbouring slices can.
//!
//! **Stored.** Criterion's results against the latency recorded in `baselines/`, normalised
//! by reference benchmarks and confirmed by a re-run ([`run_gate`]). Kept for `--no-run`
//! (judging results measured elsewhere), for `--stored`, and for a checkout without the history
//! to find a base in. Every report says which mode judged latency (`"mode"` in the JSON).
//!
//! Counts — allocations, bytes, PostgreSQL statements, Redis commands per iteration — do not
//! depend on the machine and are judged the same way in both modes.
//!
//! # Statuses and the verdict
//!
//! Each benchmark gets one [`Status`]: **regressed** (a metric grew beyond its threshold),
//! **missing**, **new**, **removed**, **improved** (a metric shrank beyond its threshold, none
//! grew) or **unchanged**. The gate fails (exit 1) on any regression; in paired mode also on a
//! benchmark that the base revision's `baselines/` list and the change no longer measures,
//! unless the change removes it from `baselines/` too (then it is *removed*, listed, not a
//! failure). In stored mode results may come from a partial run, so *missing* is listed without
//! failing. *New* is a benchmark the base does not have (paired) or the baselines do not list
//! (stored). Exit 0 is a pass; exit 2 is no verdict (see "Never a silent pass").
//!
//! # Latency, paired
//!
//! The runner measures each benchmark in blocks of four slices, `A B B A` (A the base, B the
//! change, the same number of iterations in each slice), and keeps one number per block:
//! `ln((b₁ + b₂) / (a₁ + a₂))`. What the machine does over a block's few tens of milliseconds
//! hits both sides; a drift that is linear over the block cancels exactly. With `t` the
//! threshold (20% by default) and α = 1%:
//!
//! - **regressed**: the one-sided Wilcoxon signed-rank test of the block log-ratios rejects
//!   "the median ratio is at most `1 + t`" at α — the evidence excludes every ratio ≤ `1 + t`;
//! - **improved**: the mirror, against `1 / (1 + t)`;
//! - **decided within the thresholds** when both one-sided tests reject the outside;
//! - otherwise the runner measures more blocks, and a benchmark still undecided at its caps is
//!   reported unchanged, with its estimate and interval in a note.
//!
//! The ratio reported is the Hodges-Lehmann estimate of the block ratios, with its
//! distribution-free 98% interval ([`stats`]). Ranks of logs: a slice that caught a stall of the
//! machine moves one rank, not a mean, and a 2× slower and a 2× faster block weigh alike. A
//! sequence that decides on a regression is followed by a second, independent one (the
//! confirmation); the regression stands only if both show it.
//!
//! Each side runs in [`runner::Settings::pairs`] processes and block `k` uses the `k mod
//! pairs`-th of each, so that one process's own bias — its hash seeds, where its memory landed —
//! is averaged out instead of passing for a change; a block that starts on another process than
//! the one before is preceded by a lead-in slice, not counted, so that each side keeps one
//! "cold" slice (right after the other side's) and one "warm" slice per block. Both are the
//! outcome of A/A measurements: see "Paired mode: the numbers".
//!
//! Reference benchmarks (`*/floor/**`) are measured too; their latency is reported and never
//! judged (their counts are).
//!
//! ## Paired mode: the numbers
//!
//! The defaults of [`runner::Settings`] come from A/A measurements on the project's
//! development machine (2 shared vCPUs of a KVM guest, where timings drift by 20% between runs
//! minutes apart):
//!
//! - **Slices of 50 ms.** In A/A runs of the cart and orders suites with the slice set to 10, 25
//!   and 50 ms (a scratch build of this runner, 2026-11-28), the standard deviation of a block's
//!   log-ratio was 0.099, 0.076 and 0.064 within one pair of processes, and the spread between
//!   pairs of processes 0.049, 0.049 and 0.023: longer slices average more of the machine's
//!   phases out, and 50 ms still gives 8 blocks in under 2 s for most benchmarks.
//! - **Two processes per side.** A process carries a bias of its own (hash seeds, where its
//!   memory landed, which database backends serve it): in the interleaved experiment that led
//!   to this mode, single base/change pairs of untouched benchmarks ranged 0.77–1.24. Rotating the blocks over two pairs, and confirming a
//!   regression with fresh processes, keeps that bias from passing for a change.
//! - **8 to 60 blocks, 15 s, α = 1%.** With block log-ratios of sd ≈ 0.06, 8 blocks already
//!   decide a ratio of 1.0 against the 20% threshold (the test needs every ratio ≤ 1.2 or ≥ 1/1.2
//!   excluded at 1%); a benchmark close to its threshold runs longer. The tests look after every
//!   block, so the real false-alarm rate of one sequence is above α; the confirmation (a second,
//!   independent sequence that must agree) is what holds it down.
//!
//! What these settings gave on the final code, five A/A runs of `cargo xtask perf-gate` (base =
//! the working tree, all four suites, 67 benchmarks each) on 2026-11-29: every run exited 0, no
//! benchmark was reported regressed or improved, and every benchmark was decided within the
//! thresholds before a cap (the README's "What the gate was measured to do" has the
//! figures and the runs that detect real changes).
//!
//! # Latency, stored
//!
//! Latency regresses when both hold, with `t` the threshold: the median time per iteration,
//! *normalised by the machine's speed*, grew by more than `t`; and a one-sided Mann-Whitney U
//! test of the current samples against the baseline samples multiplied by `1 + t` rejects "not
//! slower than `(1 + t)` × baseline" at α = 1% ([`stats`]). It improves in the mirror case.
//! The threshold says how much change matters; the test, against the baseline *scaled by the
//! threshold*, only asks whether the excess is more than noise (within one run samples are
//! tight and correlated, so a rank test alone would call any drift significant). In the
//! simulation in `compare.rs` (2000 trials of 50 + 50 samples, 5% log-normal noise, 2% spikes)
//! it flagged 0% at +0% and +10%, 0.75% at +20% and 100% at +30%.
//!
//! What that test cannot see is drift *between* runs, which two mechanisms try to take out:
//!
//! - **Normalisation**: benchmarks matching `[references] globs` (default `*/floor/**`) measure
//!   the machine — a PostgreSQL `SELECT 1`, a Redis `GET`, fixed CPU, DRAM and allocator
//!   workloads. Each other benchmark's samples are divided by the geometric mean of current /
//!   baseline medians of the floors its first matching `[[reference]]` rule names (else all of
//!   its suite's). A floor that moved by more than 1.5× is a warning.
//! - **Confirmation**: `perf-gate --stored` re-runs every benchmark flagged as a latency
//!   regression (with its floors) and keeps only what the second run shows too.
//!
//! These are not enough on this project's machines — that is why paired mode exists — but
//! they are what a judgement against a stored record can do. A baseline whose [`Fingerprint`]
//! differs from this machine's (CPU model, cores, memory in whole GiB, OS, rustc) is a loud
//! warning in every report.
//!
//! # Counts
//!
//! Allocations, bytes, PostgreSQL statements and Redis commands per iteration regress when
//! they grow by more than their threshold (30%, 30%, 5%, 5% by default) **and** by at least
//! [`compare::MIN_COUNT_CHANGE`] per iteration ([`compare::MIN_BYTES_CHANGE`] for bytes), from
//! zero included; they improve in the mirror case. No statistics: the counts are exact, or
//! nearly (see `benches/README.md`: allocations of async and multi-threaded loops include the
//! runtime's threads, within 2%; Redis counts are server-wide). The minimum change keeps one
//! stray allocation of a background thread over a hundred thousand iterations from making a
//! zero-allocation floor regress "from 0". A regression of statements or commands names what
//! was added: `+1.0 per iteration: SELECT count(*) FROM order_items WHERE …`. A suite whose
//! servers' counters could not be read (a `DATABASE_URL` server without `pg_stat_statements`)
//! is named in a note of every report, with the reason. In paired mode the base's counts are
//! measured in the same run; in stored mode they come from `baselines/`, and a baseline with
//! allocation counts against results without them is an error.
//!
//! # Configuration: `perf-gate.toml`
//!
//! Overrides set thresholds per glob (`*` within a segment, `**` across; the first match
//! wins), each with a mandatory reason shown in every report; `[[reference]]` rules (stored
//! mode) name the floors that normalise a glob, also with a reason ([`config`]). In paired mode
//! the *base revision's* file judges the change; every difference of the working tree's file is
//! listed in every report as loosening, tightening or changing the gate
//! ([`config::changes`]), for a reviewer to see. An override that matches no benchmark is a
//! note.
//!
//! # Baselines
//!
//! `baselines/<suite>.json` ([`baseline::SuiteBaseline`], format 2, format 1 still read): the
//! list of benchmarks, their allocations, bytes and round trips per iteration, and main's
//! latency record (medians, intervals, samples) with the [`Fingerprint`] of where it was
//! measured. Written only by [`refresh`] (`cargo xtask baseline refresh`, on main by the
//! baseline-refresh workflow), one suite at a time, atomically, with stable key order and
//! arrays on one line so a refresh is a reviewable diff. In paired mode they say what must be
//! measured; in stored mode they are the comparison itself.
//!
//! # Never a silent pass
//!
//! No results, no benchmark in common with the baselines (stored), a missing baseline directory
//! (stored), an unreadable or corrupt file (named), a worker that dies or breaks the serve
//! protocol, or a base revision whose bench harness has no serve mode: an [`Error`] or an
//! error of the runner, exit code 2, and the requested reports are written saying `error`.
//!
//! # Inputs of stored mode
//!
//! Under the criterion directory, every `<benchmark>/new/` holding a `benchmark.json` is a
//! result (read through `bench_format`): `benchmark.json` gives the id (`full_id`), `sample.json`
//! the samples (time per iteration `times[i] / iters[i]`), `estimates.json` the median and its
//! confidence interval, the harness's `allocations.json` and `roundtrips.json` the counts.
//!
//! # The JSON report
//!
//! `--json` writes ([`render::json`]):
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "verdict": "pass" | "fail" | "error",
//!   "error": null | "the message, when verdict is error",
//!   "mode": null | "paired" | "stored",                   // null only in an error report
//!   "base": null | {"rev", "commit", "same_as_working_tree"},   // paired mode
//!   "summary": {"total", "regressed", "improved", "unchanged", "new", "missing", "removed"},
//!   "thresholds": null | {"latency_percent", "allocations_percent", "bytes_percent",
//!                         "round_trips_percent"},
//!   "alpha": null | 0.01,
//!   "fingerprint": null | {"current": Fingerprint,
//!                          "mismatches": [{"suite", "baseline": Fingerprint,
//!                                          "differences": [{"field", "baseline", "current"}]}]},
//!   "unused_overrides": ["glob", ...],
//!   "warnings": ["...", ...],
//!   "speeds": [{"suite", "factor", "references": [["<reference id>", ratio], ...]}, ...],
//!   "config_changes": [{"effect": "loosens" | "tightens" | "changes", "what"}, ...],
//!   "notes": ["...", ...],
//!   "benchmarks": [{
//!     "id", "suite",
//!     "status": "regressed" | "missing" | "new" | "removed" | "improved" | "unchanged",
//!     "regressions": ["latency" | "allocations" | "bytes" | "statements" | "commands", ...],
//!     "improvements": [...],
//!     "thresholds": {...}, "override": null | {"glob", "reason"},
//!     "reason": "one line for humans",
//!     "latency": null | {"baseline_median_ns", "baseline_ci_ns": [lo, hi],
//!                        "current_median_ns", "current_ci_ns": [lo, hi],
//!                        "ratio", "change_percent",        // what the rule judges
//!                        "raw_ratio", "speed_factor",     // stored: ratio = raw_ratio / speed_factor
//!                        "references": ["<reference id>", ...],
//!                        "p_regression", "p_improvement",
//!                        "paired": null | {"blocks", "ratio_ci": [lo, hi], "confidence",
//!                                          "iterations_per_slice",
//!                                          "stopped": "decided" | "blocks" | "time",
//!                                          "block_ratios": [...]}},
//!     "allocations": null | {"baseline_per_iteration", "current_per_iteration",
//!                            "change_percent" (null when the baseline is 0)},
//!     "bytes": null | (same as allocations),
//!     "round_trips": null | {"statements": null | (as allocations),
//!                            "commands": null | (as allocations),
//!                            "changed": [{"server": "postgres" | "redis", "text",
//!                                         "baseline_per_iteration", "current_per_iteration"}]},
//!     "notes": ["...", ...],
//!     "confirmation": null | {"status", "regressions", "improvements", "latency",
//!                             "allocations", "bytes", "round_trips", "notes"}
//!   }, ...]   // regressions first, then missing, new, removed, improved, unchanged; by id
//! }
//! ```
//!
//! In paired mode "baseline" fields describe the base revision measured in the run. With a
//! confirmation, `status`, `regressions` and `improvements` are the final verdict (what both
//! sequences or runs agree on), while `latency` and `notes` describe the first. Fields are
//! only ever added to this schema (mode, base, removed, round trips and the paired fields came
//! with paired mode); a change that removes or renames one bumps `schema_version`.

pub mod baseline;
pub mod calibration;
pub mod compare;
pub mod config;
mod error;
pub mod fingerprint;
pub mod paired;
pub mod render;
pub mod report;
pub mod results;
pub mod runner;
pub mod stats;
mod stored;

pub use bench_format::BenchmarkId;

pub use crate::compare::{ALPHA, Comparison, Metric, Status, compare, compare_normalized};
pub use crate::config::{Config, ConfigFile, Thresholds};
pub use crate::error::{Error, exit_code};
pub use crate::fingerprint::Fingerprint;
pub use crate::paired::{PairedOptions, PairedResults, judge_paired};
pub use crate::report::{AppliedOverride, BenchmarkReport, Mode, Report, SuiteSpeed, Verdict};
pub use crate::results::{Measurement, Results, RoundTrips, read_results};
pub use crate::stored::{GateOptions, RefreshOptions, RefreshedSuite, refresh, run_gate};

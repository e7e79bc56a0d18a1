//! The reports a run writes: the terminal summary, the self-contained HTML page; the JSON
//! report is [`crate::report::Report`] serialised.

pub mod html;
pub mod terminal;

use crate::report::RoundsReport;
use crate::threshold::format_nanos;

/// A scenario's breaking points round by round (`-`: below the first step; `≥`: every step
/// sustained, so a lower bound; `stopped`: the run ended before the round did), or for a
/// scenario without steps its p95s, as both renderers write them.
pub(crate) fn round_list(r: &RoundsReport) -> String {
    r.rounds
        .iter()
        .map(|round| {
            let figure = match (round.broke, round.breaking_point_rate) {
                (None, _) => format_nanos(round.p95),
                (Some(_), None) => "-".to_owned(),
                (Some(true), Some(rate)) => format!("{rate}/s"),
                (Some(false), Some(rate)) => format!("≥{rate}/s"),
            };
            if round.complete {
                figure
            } else {
                format!("{figure} (stopped)")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the rounds of `r` are judged by their breaking points (else by their p95).
pub(crate) fn has_steps(r: &RoundsReport) -> bool {
    r.rounds.iter().any(|round| round.broke.is_some())
}

/// What [`round_list`] gives: `breaking point` or `p95`.
pub(crate) fn round_figure(r: &RoundsReport) -> &'static str {
    if has_steps(r) {
        "breaking point"
    } else {
        "p95"
    }
}

/// `2 of 3`: the rounds whose thresholds all held.
pub(crate) fn rounds_passed(r: &RoundsReport) -> String {
    let passed = r.rounds.iter().filter(|round| round.passed).count();
    format!("{passed} of {}", r.rounds.len())
}

/// The median of [`round_list`]'s figures, over the rounds that ran to their end.
pub(crate) fn round_median(r: &RoundsReport) -> String {
    if !r.rounds.iter().any(|round| round.complete) {
        return "none (no round ran to its end)".to_owned();
    }
    if has_steps(r) {
        match (r.median_breaking_point_rate, r.median_broke) {
            (None, _) => "below the first step".to_owned(),
            (Some(rate), Some(false)) => format!("≥{rate}/s"),
            (Some(rate), _) => format!("{rate}/s"),
        }
    } else {
        format_nanos(r.median_p95)
    }
}

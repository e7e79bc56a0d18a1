//! The reports a run writes: the terminal summary, the self-contained HTML page; the JSON
//! report is [`crate::report::Report`] serialised.

pub mod html;
pub mod terminal;

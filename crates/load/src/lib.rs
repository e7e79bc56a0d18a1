//! Load tests of the commerce gRPC API, in the manner of k6 and ghz: profiles of scenarios
//! (`profile`) whose requests arrive on a schedule (open model) or come from virtual users
//! (closed model), sent by `engine` through `ops::Client` over several HTTP/2 connections
//! (`grpc`: a lean unary gRPC client on h2, which writes a call in one go),
//! recorded in HDR histograms from the time each request was due (`record`), judged by
//! thresholds (`threshold`) and reported in the terminal, JSON and HTML (`report`, `render`).
//! `setup` starts everything a self-contained run needs: PostgreSQL, Redis, a data set and
//! `commerce-server`.
//!
//! The `commerce-load` binary is the command line (`cargo xtask load` builds and runs it).

pub mod engine;
pub mod grpc;
pub mod ops;
pub mod profile;
pub mod record;
pub mod render;
pub mod report;
pub mod setup;
pub mod threshold;

/// Exit code: every threshold held.
pub const EXIT_PASS: u8 = 0;
/// Exit code: a threshold failed, or the run was stopped early.
pub const EXIT_FAIL: u8 = 1;
/// Exit code: bad usage, bad input, or the set-up failed.
pub const EXIT_ERROR: u8 = 2;

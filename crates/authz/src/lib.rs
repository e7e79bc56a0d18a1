//! Authorization of commerce calls with Rego policies evaluated by regorus.
//!
//! - [`PolicySet`] loads `.rego` files (a directory, in-memory sources, or the shipped set),
//!   compiles them once, and evaluates [`AuthzRequest`]s into [`Decision`]s. Every policy set
//!   defines [`ENTRYPOINT`] (`data.authz.decision`), an object `{"allowed", "reason"}`.
//! - [`PolicyEngine`] holds the current set (swappable at run time) and an optional decision
//!   cache ([`tiered_cache::TieredCache`]) keyed by policy version and request.
//! - [`synthetic`] generates policy sets of increasing size, with requests and their expected
//!   decisions, for the benchmarks.
//!
//! Denial is the default: an evaluation error, a malformed or missing decision, or anything
//! else unexpected is a [`Decision`] with `allowed: false` and a reason, never a panic.

mod engine;
mod error;
mod policy;
mod request;
pub mod synthetic;

pub use crate::engine::{EngineStats, PolicyEngine};
pub use crate::error::{PolicyError, SourceLocation};
pub use crate::policy::{ENTRYPOINT, PolicySet, PolicyVersion, shipped_policy_dir};
pub use crate::request::{AuthzRequest, Decision, Resource, Subject, actions, kinds, roles};

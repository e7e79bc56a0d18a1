//! The load crate's integration tests: the generator against a test double of the cart service
//! (coordinated omission, merging), against the real server (every operation with real data),
//! the command line, the HTML report in a headless browser, and the lean gRPC client.

mod chaos;
mod cli;
mod double;
mod grpc;
mod html;
mod merge;
mod real;
mod soak;
mod spike;
mod stall;
mod stress;
mod support;

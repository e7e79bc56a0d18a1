//! Integration tests of the benchmark set-up against real PostgreSQL and Redis (provisioned by
//! the `provision` crate): the environment the suites run in, and the resets they rely on.

mod env;

//! Integration tests of the commerce backend against real PostgreSQL and Redis (provisioned by the
//! `provision` crate). Every test takes a database and a Redis key namespace of its own, so they
//! run in parallel; the gRPC tests serve on 127.0.0.1:0 and call through the generated clients.

mod cache;
mod cart;
mod concurrency;
mod fixtures;
mod metrics;
mod monitoring;
mod orders;
mod outage;
mod pagination;
mod policy;
mod pool;
mod server;
mod support;
mod tenancy;
mod validation;

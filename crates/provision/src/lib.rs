//! PostgreSQL and Redis for tests and benchmarks (being written).

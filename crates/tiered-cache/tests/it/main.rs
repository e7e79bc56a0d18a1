//! Integration tests of the tiered cache against a real Redis.

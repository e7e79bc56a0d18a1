//! Integration tests of the policy engine: the shipped policies' decision table, policy
//! loading errors, the synthetic sets, and the decision cache against a real Redis.

mod decision_cache;
mod decision_table;
mod loading;
mod synthetic;

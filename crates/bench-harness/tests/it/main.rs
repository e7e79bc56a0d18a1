//! Integration tests of the harness: real criterion runs into a temporary directory, checked
//! through the files criterion and the harness write.

mod run;

#[global_allocator]
static GLOBAL: bench_harness::CountingAllocator = bench_harness::CountingAllocator;

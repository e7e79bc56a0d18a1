//! The benchmark results format, with its one reader and writer: what a benchmark run leaves
//! on disk and what the gate reads, for the bench harness, the gate and xtask alike.
//!
//! - [`BenchmarkId`]: `<suite>/<operation>[/<parameter>]`, checked and split in one place.
//! - [`criterion`]: where criterion's output directory is, and finding the results in it.
//! - [`files`]: the files of one result — criterion's `benchmark.json`, `sample.json` and
//!   `estimates.json` (read), the harness's `allocations.json` and `roundtrips.json` (written
//!   and read through the same types, so a field added on one side is known to the other).
//! - [`protocol`]: the serve protocol of paired runs, between a bench executable and the
//!   gate's paired runner.
//!
//! The contract in prose is `benches/README.md` ("The results contract").

pub mod criterion;
pub mod files;
mod id;
pub mod protocol;

use std::path::PathBuf;

pub use crate::files::{AllocationsFile, RoundTripsFile, ServerCounters};
pub use crate::id::{BenchmarkId, IdError};

/// A results file that could not be read or written, or does not hold what it should.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be accessed.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is corrupt or not of the expected shape.
    #[error("{} is corrupt or not in the expected format", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A file parsed but holds something that makes no sense.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

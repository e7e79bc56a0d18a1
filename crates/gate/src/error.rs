//! Why the gate could not reach a verdict. Every error is a usage or data error (exit code 2)
//! and names the file or directory it is about.

use std::io;
use std::path::PathBuf;

/// A usage or data error. The messages name the offending file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A JSON file is corrupt or does not have the expected shape.
    #[error("{} is corrupt or not in the expected format", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// The configuration file is not valid TOML of the expected shape.
    #[error("{} is not a valid perf-gate configuration", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: toml::de::Error,
    },
    /// A file parsed but holds values that make no sense.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// There are no benchmark results to judge.
    #[error(
        "no benchmark results under {}: run the benchmarks first (`cargo bench`), or point \
         --criterion-dir at criterion's output directory",
        dir.display()
    )]
    NoResults {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The baseline directory is missing.
    #[error(
        "the baseline directory {} does not exist: create baselines with `cargo xtask baseline \
         refresh`, or point --baseline-dir at them",
        dir.display()
    )]
    NoBaselineDir {
        /// The directory.
        dir: PathBuf,
    },
    /// The baseline directory is something else than a directory (a file).
    #[error(
        "the baseline directory {} is not a directory: point --baseline-dir at the directory of \
         the `<suite>.json` baselines",
        dir.display()
    )]
    BaselineDirNotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// Not one benchmark of the results has a baseline, so nothing was compared.
    #[error(
        "none of the {results} benchmarks under {} has a baseline in {}: nothing was compared \
         (refresh the baselines, or check that both directories are the intended ones)",
        criterion_dir.display(),
        baseline_dir.display()
    )]
    NothingInCommon {
        /// How many benchmarks the results hold.
        results: usize,
        /// The results directory.
        criterion_dir: PathBuf,
        /// The baseline directory.
        baseline_dir: PathBuf,
    },
}

impl From<bench_format::Error> for Error {
    fn from(err: bench_format::Error) -> Error {
        match err {
            bench_format::Error::Io { path, source } => Error::Read { path, source },
            bench_format::Error::Json { path, source } => Error::Json { path, source },
            bench_format::Error::Invalid { path, message } => Error::Invalid { path, message },
        }
    }
}

impl Error {
    /// The process exit code for any error: 2, "usage or data error" (0 and 1 are verdicts).
    pub const EXIT_CODE: u8 = 2;
}

/// The exit code of a gate run: the verdict's (0 pass, 1 fail), or 2 for an error. The xtask
/// front end returns exactly this.
pub fn exit_code(result: &Result<crate::Report, Error>) -> u8 {
    match result {
        Ok(report) => report.exit_code(),
        Err(_) => Error::EXIT_CODE,
    }
}

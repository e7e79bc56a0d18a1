//! The committed baselines: `<baseline dir>/<suite>.json`, one file per suite, written with a
//! stable layout so that a refresh shows up as a reviewable diff.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use bench_format::BenchmarkId;

use crate::Error;
use crate::fingerprint::Fingerprint;
use crate::results::Measurement;

/// The version of the file layout written. Format 2 added `round_trips` to each benchmark;
/// files of format 1 (without it) are still read. A reader refuses other versions instead of
/// misreading them.
pub const FORMAT: u32 = 2;

/// The oldest format this gate still reads.
pub const OLDEST_FORMAT: u32 = 1;

/// One suite's baseline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteBaseline {
    /// [`FORMAT`] when written; [`OLDEST_FORMAT`] to [`FORMAT`] when read.
    pub format: u32,
    /// The suite (the file's name without `.json`).
    pub suite: String,
    /// Where it was measured.
    pub fingerprint: Fingerprint,
    /// Per benchmark id, what the comparison needs. A `BTreeMap` keeps the keys sorted.
    pub benchmarks: BTreeMap<BenchmarkId, Measurement>,
}

/// Every baseline in a directory, by suite.
pub type Baselines = BTreeMap<String, SuiteBaseline>;

/// The path of `suite`'s baseline in `dir`.
pub fn path_of(dir: &Path, suite: &str) -> PathBuf {
    dir.join(format!("{suite}.json"))
}

/// Reads every `*.json` file in `dir`. A missing directory is [`Error::NoBaselineDir`], a file
/// in its place [`Error::BaselineDirNotADirectory`]; an unreadable, corrupt or inconsistent
/// file is an error naming it.
pub fn read_dir(dir: &Path) -> Result<Baselines, Error> {
    if !dir.is_dir() {
        check_dir(dir)?;
        return Err(Error::NoBaselineDir {
            dir: dir.to_owned(),
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut baselines = Baselines::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") || !path.is_file() {
            continue;
        }
        let baseline = read_file(&path)?;
        baselines.insert(baseline.suite.clone(), baseline);
    }
    Ok(baselines)
}

/// Checks that `dir` can hold baselines: it is a directory, or nothing yet (a refresh creates
/// it). Anything else, such as a file, is [`Error::BaselineDirNotADirectory`].
pub fn check_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::metadata(dir) {
        Ok(metadata) if !metadata.is_dir() => Err(Error::BaselineDirNotADirectory {
            dir: dir.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Reads and checks one baseline file.
pub fn read_file(path: &Path) -> Result<SuiteBaseline, Error> {
    let baseline: SuiteBaseline = crate::results::read_json(path)?;
    let invalid = |message: String| Error::Invalid {
        path: path.to_owned(),
        message,
    };
    if !(OLDEST_FORMAT..=FORMAT).contains(&baseline.format) {
        return Err(invalid(format!(
            "format {} is not supported (this gate reads formats {OLDEST_FORMAT} to {FORMAT})",
            baseline.format
        )));
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if baseline.suite != stem {
        return Err(invalid(format!(
            "holds suite {:?}, but the file is named {stem}.json",
            baseline.suite
        )));
    }
    for (id, measurement) in &baseline.benchmarks {
        if id.suite() != baseline.suite {
            return Err(invalid(format!(
                "benchmark {id} does not belong to suite {}",
                baseline.suite
            )));
        }
        if measurement.samples_ns.is_empty()
            || !measurement
                .samples_ns
                .iter()
                .all(|s| s.is_finite() && *s >= 0.0)
            || !(measurement.median_ns.is_finite() && measurement.median_ns >= 0.0)
        {
            return Err(invalid(format!(
                "benchmark {id} has no usable samples or median"
            )));
        }
    }
    Ok(baseline)
}

/// Serialises a baseline: pretty objects (one key per line, in a fixed order) with every array
/// on one line, so a sample list is one line of the diff rather than a hundred.
pub fn to_json(baseline: &SuiteBaseline) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, CompactArrays::default());
    baseline
        .serialize(&mut serializer)
        .expect("serialising plain structs, maps and finite numbers into memory cannot fail");
    let mut json = String::from_utf8(out).expect("serde_json writes UTF-8");
    json.push('\n');
    json
}

/// Writes `contents` to `path` atomically: into a temporary file in the same directory, then
/// renamed over `path`, so a reader sees the old file or the new one, never half of one.
///
/// Errors name `path`, never the temporary file, whose name the caller did not choose.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let write_error = write_error(path);
    let dir = prepare_dir(path)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(&write_error)?;
    file.as_file_mut()
        .write_all(contents)
        .map_err(&write_error)?;
    // A temporary file is private (0600); the file it replaces keeps its mode, a new one gets
    // the usual 0644 of a file in a repository.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let permissions = std::fs::metadata(path).map_or_else(
            |_| std::fs::Permissions::from_mode(0o644),
            |existing| existing.permissions(),
        );
        file.as_file()
            .set_permissions(permissions)
            .map_err(&write_error)?;
    }
    file.as_file().sync_all().map_err(&write_error)?;
    file.persist(path).map_err(|err| write_error(err.error))?;
    Ok(())
}

/// Checks, without writing it, that [`write_atomically`] can write `path`: it is not a
/// directory, its directory exists (it is created if it does not) and a file can be created
/// there. For a caller that would otherwise find out only after minutes of work.
pub fn check_writable(path: &Path) -> Result<(), Error> {
    let dir = prepare_dir(path)?;
    // Removed again when dropped.
    tempfile::NamedTempFile::new_in(dir).map_err(write_error(path))?;
    Ok(())
}

/// The directory `path` is written in, created if missing, after checking that neither `path`
/// nor its directory is in the way.
fn prepare_dir(path: &Path) -> Result<&Path, Error> {
    let write_error = write_error(path);
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(write_error(io::Error::from(io::ErrorKind::IsADirectory)));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(write_error(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        )));
    }
    std::fs::create_dir_all(dir).map_err(&write_error)?;
    Ok(dir)
}

/// [`Error::Write`] of `path`.
fn write_error(path: &Path) -> impl Fn(io::Error) -> Error {
    move |source| Error::Write {
        path: path.to_owned(),
        source: without_temporary_path(source),
    }
}

/// `error` without the name of the temporary file that tempfile appends to the errors of
/// creating and writing one (`… at path "/dir/.tmpAbC123"`): a name the user never chose, which
/// reads as if the wrong file had been written.
fn without_temporary_path(error: io::Error) -> io::Error {
    if error.get_ref().is_none() {
        return error;
    }
    let message = error.to_string();
    match message.rfind(" at path \"") {
        Some(at) => io::Error::new(error.kind(), &message[..at]),
        None => error,
    }
}

/// A `serde_json` formatter that indents objects like `PrettyFormatter` but writes arrays on one
/// line. Hand-written because serde_json offers only all-pretty or all-compact.
#[derive(Default)]
struct CompactArrays {
    indent: usize,
    in_array: usize,
    has_value: bool,
}

impl CompactArrays {
    fn newline<W: ?Sized + Write>(&self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b"\n")?;
        for _ in 0..self.indent {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for CompactArrays {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.in_array += 1;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.in_array -= 1;
        writer.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.indent += 1;
        self.has_value = false;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.indent -= 1;
        if self.has_value {
            self.newline(writer)?;
        }
        self.has_value = true;
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            writer.write_all(b",")?;
        }
        if self.in_array > 0 {
            // Objects inside arrays do not occur in our files; keep them on the line anyway.
            return if first {
                Ok(())
            } else {
                writer.write_all(b" ")
            };
        }
        self.newline(writer)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn an_atomic_write_keeps_the_mode_of_the_file_it_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suite.json");
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(
            mode(&path),
            0o644,
            "a new file is readable like any committed file"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        write_atomically(&path, b"{\"a\": 1}").unwrap();
        assert_eq!(mode(&path), 0o664);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\": 1}");
    }

    fn fingerprint() -> Fingerprint {
        Fingerprint {
            cpu_model: "cpu".into(),
            logical_cores: 2,
            memory_bytes: 1 << 30,
            os: "os".into(),
            rustc: "rustc".into(),
            git_commit: "abc".into(),
            date: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn baseline() -> SuiteBaseline {
        let measurement = Measurement {
            median_ns: 1.5,
            median_ci_ns: [1.25, 1.75],
            allocations_per_iteration: Some(10.0),
            bytes_per_iteration: None,
            round_trips: None,
            samples_ns: vec![1.0, 1.5, 2.0],
        };
        SuiteBaseline {
            format: FORMAT,
            suite: "s".into(),
            fingerprint: fingerprint(),
            benchmarks: BTreeMap::from([
                (BenchmarkId::new("s/b").unwrap(), measurement.clone()),
                (BenchmarkId::new("s/a").unwrap(), measurement),
            ]),
        }
    }

    #[test]
    fn layout_is_stable_and_round_trips() {
        let json = to_json(&baseline());
        let expected = r#"{
  "format": 2,
  "suite": "s",
  "fingerprint": {
    "cpu_model": "cpu",
    "logical_cores": 2,
    "memory_bytes": 1073741824,
    "os": "os",
    "rustc": "rustc",
    "git_commit": "abc",
    "date": "2026-01-01T00:00:00Z"
  },
  "benchmarks": {
    "s/a": {
      "median_ns": 1.5,
      "median_ci_ns": [1.25, 1.75],
      "allocations_per_iteration": 10.0,
      "bytes_per_iteration": null,
      "round_trips": null,
      "samples_ns": [1.0, 1.5, 2.0]
    },
    "s/b": {
      "median_ns": 1.5,
      "median_ci_ns": [1.25, 1.75],
      "allocations_per_iteration": 10.0,
      "bytes_per_iteration": null,
      "round_trips": null,
      "samples_ns": [1.0, 1.5, 2.0]
    }
  }
}
"#;
        assert_eq!(json, expected);
        let back: SuiteBaseline = serde_json::from_str(&json).unwrap();
        assert_eq!(back, baseline());
    }

    #[test]
    fn atomic_write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_of(&dir.path().join("nested"), "s");
        write_atomically(&path, to_json(&baseline()).as_bytes()).unwrap();
        write_atomically(&path, to_json(&baseline()).as_bytes()).unwrap();
        assert_eq!(
            read_dir(&dir.path().join("nested")).unwrap()["s"],
            baseline()
        );
        // Only the file itself is left: no temporary files behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("nested"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn a_failed_write_names_the_path_asked_for_not_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go.
        let err = write_atomically(dir.path(), b"{}").unwrap_err();
        assert!(matches!(&err, Error::Write { path, .. } if path == dir.path()));
        let message = error_chain(&err);
        assert!(message.contains("is a directory"), "{message}");
        // A file where its directory should be.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let message = error_chain(&write_atomically(&file.join("report.json"), b"{}").unwrap_err());
        assert!(message.contains("is not a directory"), "{message}");
        assert!(!message.contains("File exists"), "{message}");
        // A directory where no file can be created (even by root).
        if cfg!(target_os = "linux") {
            let message = error_chain(&write_atomically(Path::new("/proc/x"), b"{}").unwrap_err());
            assert!(message.starts_with("cannot write /proc/x: "), "{message}");
            assert!(!message.contains(".tmp"), "{message}");
            assert!(!message.contains("at path"), "{message}");
        }
    }

    /// The error and its sources, as `{:#}` prints them.
    fn error_chain(err: &dyn std::error::Error) -> String {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    }

    #[test]
    fn what_cannot_be_written_is_found_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("reports/report.json");
        check_writable(&report).unwrap();
        assert!(!report.exists(), "the check writes nothing");
        assert_eq!(
            std::fs::read_dir(dir.path().join("reports"))
                .unwrap()
                .count(),
            0,
            "and leaves no temporary file behind"
        );
        let message = error_chain(&check_writable(dir.path()).unwrap_err());
        assert!(message.contains("is a directory"), "{message}");
        if cfg!(target_os = "linux") {
            let message = error_chain(&check_writable(Path::new("/proc/x")).unwrap_err());
            assert!(message.starts_with("cannot write /proc/x: "), "{message}");
            assert!(!message.contains(".tmp"), "{message}");
        }
    }

    #[test]
    fn inconsistent_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let wrong_name = path_of(dir.path(), "other");
        write_atomically(&wrong_name, to_json(&baseline()).as_bytes()).unwrap();
        let err = read_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("other.json"), "{err}");

        std::fs::write(&wrong_name, "{").unwrap();
        assert!(matches!(read_dir(dir.path()), Err(Error::Json { .. })));

        let mut future = baseline();
        future.format = 3;
        std::fs::write(&wrong_name, to_json(&future)).unwrap();
        std::fs::rename(&wrong_name, path_of(dir.path(), "s")).unwrap();
        let err = read_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("format 3"), "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_dir(&dir.path().join("baselines")).unwrap_err();
        assert!(matches!(err, Error::NoBaselineDir { .. }));
        assert!(check_dir(&dir.path().join("baselines")).is_ok());
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baselines");
        std::fs::write(&file, "").unwrap();
        let err = read_dir(&file).unwrap_err();
        assert!(
            matches!(err, Error::BaselineDirNotADirectory { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("is not a directory"), "{err}");
        assert!(!err.to_string().contains("does not exist"), "{err}");
        assert!(matches!(
            check_dir(&file),
            Err(Error::BaselineDirNotADirectory { .. })
        ));
        assert!(check_dir(dir.path()).is_ok());
    }
}

//! The files of one benchmark result, in `<criterion dir>/<benchmark dir>/new/`: criterion's own
//! (`benchmark.json`, `sample.json`, `estimates.json`, read only) and the harness's
//! (`allocations.json`, `roundtrips.json`, written by the harness and read by the gate through
//! the same types).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Criterion's file naming the benchmark (`full_id`).
pub const BENCHMARK_JSON: &str = "benchmark.json";
/// Criterion's samples: iteration counts and total times.
pub const SAMPLE_JSON: &str = "sample.json";
/// Criterion's estimates (the median and its confidence interval among them).
pub const ESTIMATES_JSON: &str = "estimates.json";
/// The harness's allocation counts, [`AllocationsFile`].
pub const ALLOCATIONS_JSON: &str = "allocations.json";
/// The harness's server round-trip counts, [`RoundTripsFile`].
pub const ROUNDTRIPS_JSON: &str = "roundtrips.json";

/// What the gate takes from criterion's `benchmark.json` (criterion writes more; unknown fields
/// are ignored because criterion owns this file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BenchmarkFile {
    /// The benchmark id as criterion knows it: `<group>/<function>[/<parameter>]`.
    pub full_id: String,
}

/// What the gate takes from criterion's `sample.json`: sample `i` ran `iters[i]` iterations in
/// `times[i]` nanoseconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SampleFile {
    /// Iterations per sample.
    pub iters: Vec<f64>,
    /// Total nanoseconds per sample.
    pub times: Vec<f64>,
}

/// What the gate takes from criterion's `estimates.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EstimatesFile {
    /// The median time per iteration.
    pub median: Estimate,
}

/// One of criterion's estimates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Estimate {
    /// Nanoseconds.
    pub point_estimate: f64,
    /// Its bootstrap confidence interval.
    pub confidence_interval: Interval,
}

/// A confidence interval of an [`Estimate`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Interval {
    /// Nanoseconds.
    pub lower_bound: f64,
    /// Nanoseconds.
    pub upper_bound: f64,
}

/// `allocations.json`: totals over the counted iterations of the measured routine only (the
/// contract is in `benches/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationsFile {
    /// Iterations of the measured routine that were counted.
    pub iterations: u64,
    /// Allocation requests (alloc, alloc_zeroed, realloc) over those iterations.
    pub allocations: u64,
    /// Bytes requested over those iterations.
    pub bytes: u64,
}

/// `roundtrips.json`: what the measured routine asked of PostgreSQL and Redis over
/// `iterations` iterations, from the servers' own counters (`pg_stat_statements` of the
/// suite's database, Redis `INFO commandstats`), so the counts are exact.
///
/// A server whose counters could not be read has `null` for its total, no entries in its map,
/// and a line in `unavailable` saying why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundTripsFile {
    /// Iterations counted.
    pub iterations: u64,
    /// PostgreSQL statements executed (every call `pg_stat_statements` records, `BEGIN` and
    /// `COMMIT` included), or `null` when not counted.
    pub postgres_statements: Option<u64>,
    /// Redis commands executed (a script's own calls included), or `null` when not counted.
    pub redis_commands: Option<u64>,
    /// Per statement (as `pg_stat_statements` normalises it, whitespace collapsed): calls.
    pub statements: BTreeMap<String, u64>,
    /// Per Redis command (lower case, `INFO commandstats` names): calls.
    pub commands: BTreeMap<String, u64>,
    /// Why a server's counters were not read, one line each; empty when both were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

/// The cumulative counters of the servers at one moment (what a counter source reports; the
/// harness subtracts two of them). `Err` says why a server's counters cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCounters {
    /// Per PostgreSQL statement: calls so far, in the suite's database only.
    pub postgres: Result<BTreeMap<String, u64>, String>,
    /// Per Redis command: calls so far, server-wide.
    pub redis: Result<BTreeMap<String, u64>, String>,
}

impl RoundTripsFile {
    /// An empty count over zero iterations that says which servers are counted: those whose
    /// counters `probe` could read.
    pub fn empty_like(probe: &ServerCounters) -> RoundTripsFile {
        let unavailable = [&probe.postgres, &probe.redis]
            .into_iter()
            .filter_map(|side| side.as_ref().err().cloned())
            .collect();
        RoundTripsFile {
            iterations: 0,
            postgres_statements: probe.postgres.is_ok().then_some(0),
            redis_commands: probe.redis.is_ok().then_some(0),
            statements: BTreeMap::new(),
            commands: BTreeMap::new(),
            unavailable,
        }
    }

    /// Adds what happened between `before` and `after` (one or more iterations): every
    /// counter's growth. A server that could not be read on either side is left uncounted.
    pub fn add(&mut self, iterations: u64, before: &ServerCounters, after: &ServerCounters) {
        self.iterations += iterations;
        add_side(
            &mut self.postgres_statements,
            &mut self.statements,
            &before.postgres,
            &after.postgres,
        );
        add_side(
            &mut self.redis_commands,
            &mut self.commands,
            &before.redis,
            &after.redis,
        );
    }
}

fn add_side(
    total: &mut Option<u64>,
    per_entry: &mut BTreeMap<String, u64>,
    before: &Result<BTreeMap<String, u64>, String>,
    after: &Result<BTreeMap<String, u64>, String>,
) {
    let (Some(sum), Ok(before), Ok(after)) = (total.as_mut(), before, after) else {
        return;
    };
    for (key, &now) in after {
        // Counters only grow; an entry evicted and re-created (pg_stat_statements.max) would
        // look smaller, and then counts from zero.
        let was = before.get(key).copied().unwrap_or(0);
        let grown = if now >= was { now - was } else { now };
        if grown > 0 {
            *per_entry.entry(key.clone()).or_default() += grown;
            *sum += grown;
        }
    }
}

/// Reads a JSON file into `T`, naming the file in any error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

/// Writes `value` as pretty JSON with a final newline.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let mut json = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    json.push('\n');
    fs::write(path, json).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(postgres: &[(&str, u64)], redis: Option<&[(&str, u64)]>) -> ServerCounters {
        let map = |entries: &[(&str, u64)]| {
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        ServerCounters {
            postgres: Ok(map(postgres)),
            redis: redis.map(map).ok_or_else(|| "redis: no INFO".to_owned()),
        }
    }

    #[test]
    fn differences_of_snapshots_add_up() {
        let before = counters(&[("SELECT $1", 10), ("BEGIN", 3)], None);
        let after = counters(&[("SELECT $1", 13), ("BEGIN", 3), ("COMMIT", 2)], None);
        let mut file = RoundTripsFile::empty_like(&before);
        file.add(1, &before, &after);
        file.add(1, &after, &after);
        assert_eq!(file.iterations, 2);
        assert_eq!(file.postgres_statements, Some(5));
        assert_eq!(file.statements["SELECT $1"], 3);
        assert_eq!(file.statements["COMMIT"], 2);
        assert!(!file.statements.contains_key("BEGIN"));
        assert_eq!(file.redis_commands, None);
        assert_eq!(file.unavailable, ["redis: no INFO"]);
    }

    #[test]
    fn files_round_trip_and_refuse_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROUNDTRIPS_JSON);
        let before = counters(&[], Some(&[("get", 1)]));
        let after = counters(&[], Some(&[("get", 4)]));
        let mut file = RoundTripsFile::empty_like(&before);
        file.add(3, &before, &after);
        write_json(&path, &file).unwrap();
        assert_eq!(read_json::<RoundTripsFile>(&path).unwrap(), file);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"redis_commands\": 3"), "{text}");
        assert!(!text.contains("unavailable"), "{text}");

        fs::write(
            &path,
            r#"{"iterations":1,"allocations":1,"bytes":1,"extra":1}"#,
        )
        .unwrap();
        let err = read_json::<AllocationsFile>(&path).unwrap_err();
        assert!(err.to_string().contains(ROUNDTRIPS_JSON), "{err}");
    }
}

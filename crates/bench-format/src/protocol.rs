//! The serve protocol of paired runs: a bench executable started with [`SERVE_VAR`]`=1` does
//! its set-up as usual, then stops at every benchmark and measures it one slice at a time, as
//! a controller (the gate's paired runner) tells it. Used by both ends: the harness (the
//! worker) and the gate (the controller), so the two cannot drift apart.
//!
//! One JSON object per line. Commands come on the worker's stdin; events go to its stdout,
//! each line starting with [`EVENT_PREFIX`] so that anything else a benchmark prints there is
//! told apart and ignored. The conversation:
//!
//! ```text
//! worker:     {"event":"hello","protocol":1}
//! worker:     {"event":"ready","id":"cart/add_item","warm_up_ns":...,"round_trips":true}
//! controller: {"op":"run","iterations":64}
//! worker:     {"event":"slice","iterations":64,"nanos":...,"wall_nanos":...,"allocations":...,"bytes":...}
//! ...                                    (more slices)
//! controller: {"op":"count_round_trips","iterations":10}
//! worker:     {"event":"round_trips","file":{...roundtrips.json...}}
//! controller: {"op":"next"}
//! worker:     {"event":"ready","id":"cart/remove_item",...}
//! ...
//! worker:     {"event":"finished"}
//! ```
//!
//! A benchmark that fails ends the worker (as it ends a criterion run); the controller sees its
//! stdout close and reports its stderr.

use serde::{Deserialize, Serialize};

use crate::BenchmarkId;
use crate::files::RoundTripsFile;

/// Set to `1` in a bench executable's environment to make it a worker of this protocol.
pub const SERVE_VAR: &str = "BENCH_HARNESS_SERVE";

/// The version a worker announces in [`Event::Hello`]; a controller refuses any other.
pub const PROTOCOL_VERSION: u32 = 1;

/// The start of every event line on the worker's stdout.
pub const EVENT_PREFIX: &str = "bench-harness-serve: ";

/// What the controller asks of the worker, at the benchmark it is ready at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Time `iterations` iterations in one call of the benchmark's timing loop, counting its
    /// allocations: answered by [`Event::Slice`].
    Run {
        /// Iterations of the routine.
        iterations: u64,
    },
    /// Count the servers' round trips over `iterations` iterations (untimed): answered by
    /// [`Event::RoundTrips`].
    CountRoundTrips {
        /// Iterations of the routine.
        iterations: u64,
    },
    /// Leave this benchmark and go on to the next one (answered by its [`Event::Ready`], or
    /// [`Event::Finished`]).
    Next,
}

/// What the worker tells the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// The worker started; sent before any set-up.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
    },
    /// The worker set up a benchmark and waits for commands.
    Ready {
        /// The benchmark.
        id: BenchmarkId,
        /// The group's warm-up time (criterion's setting), a hint for the controller.
        warm_up_ns: u64,
        /// Whether the suite counts server round trips.
        round_trips: bool,
    },
    /// One slice was measured.
    Slice(Slice),
    /// The round trips counted (`null` when the suite does not count them).
    RoundTrips {
        /// As it would be written to `roundtrips.json`.
        file: Option<RoundTripsFile>,
    },
    /// Every benchmark was served; the worker exits.
    Finished,
}

/// The measurement of one slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    /// Iterations run.
    pub iterations: u64,
    /// Time of the measured routine alone, as criterion would take it (setup excluded).
    pub nanos: u64,
    /// Wall time of the whole command, setup included (for sizing slices).
    pub wall_nanos: u64,
    /// Allocations of the measured routine.
    pub allocations: u64,
    /// Bytes those allocations requested.
    pub bytes: u64,
}

/// A line of the protocol that is not what it should be.
#[derive(Debug, thiserror::Error)]
#[error("not a serve-protocol message: {line:?}")]
pub struct ProtocolError {
    /// The line.
    pub line: String,
    /// What the parser said.
    #[source]
    pub source: serde_json::Error,
}

impl Command {
    /// The line to send (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("commands serialise")
    }

    /// Parses a line the controller sent.
    pub fn parse(line: &str) -> Result<Command, ProtocolError> {
        serde_json::from_str(line.trim()).map_err(|source| ProtocolError {
            line: line.to_owned(),
            source,
        })
    }
}

impl Event {
    /// The line to print (prefix included, without the newline).
    pub fn to_line(&self) -> String {
        format!(
            "{EVENT_PREFIX}{}",
            serde_json::to_string(self).expect("events serialise")
        )
    }

    /// Parses a line of the worker's stdout: `None` when it is not an event line (something
    /// a benchmark printed).
    pub fn parse(line: &str) -> Option<Result<Event, ProtocolError>> {
        let json = line.strip_prefix(EVENT_PREFIX)?;
        Some(
            serde_json::from_str(json.trim()).map_err(|source| ProtocolError {
                line: line.to_owned(),
                source,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for command in [
            Command::Run { iterations: 64 },
            Command::CountRoundTrips { iterations: 10 },
            Command::Next,
        ] {
            assert_eq!(Command::parse(&command.to_line()).unwrap(), command);
        }
        assert_eq!(Command::Next.to_line(), r#"{"op":"next"}"#);
        let ready = Event::Ready {
            id: BenchmarkId::new("cart/add_item").unwrap(),
            warm_up_ns: 1,
            round_trips: true,
        };
        let line = ready.to_line();
        assert!(line.starts_with(EVENT_PREFIX), "{line}");
        assert_eq!(Event::parse(&line).unwrap().unwrap(), ready);
        assert!(Event::parse("Benchmarking cart/add_item").is_none());
        assert!(
            Event::parse(&format!("{EVENT_PREFIX}{{\"event\":\"nope\"}}"))
                .unwrap()
                .is_err()
        );
        assert!(Command::parse(r#"{"op":"run"}"#).is_err());
    }
}

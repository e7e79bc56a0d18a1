//! Serve mode: the worker side of a paired run (`bench_format::protocol`).
//!
//! With `BENCH_HARNESS_SERVE=1` the bench executable runs its groups as usual — set-up included
//! — but criterion measures nothing: at each benchmark the harness announces it and measures it
//! one slice at a time, as the controller on stdin tells it, until told to go on. Two such
//! workers, one built from the base revision and one from the change, let the controller
//! alternate between them every few milliseconds on the same services: the paired comparison
//! the gate judges latency by. (tango-bench pairs two builds inside one process; across two
//! processes the suites keep their ordinary set-up code.)

use std::io::Write;
use std::time::Duration;

use bench_format::BenchmarkId;
use bench_format::protocol::{Command, Event, PROTOCOL_VERSION};

use crate::group::{Bencher, count_round_trips, slice};
use crate::meter::CounterSource;
use crate::meter::Counting;

/// Sends one event line to the controller.
pub(crate) fn send(event: &Event) {
    let mut stdout = std::io::stdout().lock();
    let sent = writeln!(stdout, "{}", event.to_line()).and_then(|()| stdout.flush());
    if sent.is_err() {
        // The controller is gone (it closed our stdout): nothing left to serve.
        std::process::exit(1);
    }
}

/// The next command, or the end of the process when the controller closed stdin.
fn receive() -> Command {
    // `Stdin` buffers internally, across calls: nothing read ahead is lost between benchmarks.
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) => {
            eprintln!("bench-harness: serve: the controller closed stdin; stopping");
            std::process::exit(1);
        }
        Ok(_) => Command::parse(&line).unwrap_or_else(|err| {
            eprintln!("bench-harness: serve: {err}");
            std::process::exit(2);
        }),
        Err(err) => {
            eprintln!("bench-harness: serve: cannot read a command: {err}");
            std::process::exit(2);
        }
    }
}

/// Announces that the worker runs this protocol.
pub(crate) fn hello() {
    send(&Event::Hello {
        protocol: PROTOCOL_VERSION,
    });
}

/// Serves benchmark `id` until the controller says `next`.
pub(crate) fn benchmark<F>(
    id: &str,
    warm_up: Duration,
    round_trips: Option<&CounterSource>,
    counting: Counting,
    f: &mut F,
) where
    F: FnMut(&mut Bencher<'_, '_>),
{
    let checked = BenchmarkId::new(id).unwrap_or_else(|err| panic!("{err}"));
    send(&Event::Ready {
        id: checked,
        warm_up_ns: u64::try_from(warm_up.as_nanos()).unwrap_or(u64::MAX),
        round_trips: round_trips.is_some(),
    });
    loop {
        match receive() {
            Command::Run { iterations } => match slice(id, iterations.max(1), counting, f) {
                Some(measured) => send(&Event::Slice(measured)),
                None => {
                    eprintln!("bench-harness: serve: {id} ran none of the Bencher's timing loops");
                    std::process::exit(1);
                }
            },
            Command::CountRoundTrips { iterations } => {
                let file = round_trips
                    .and_then(|source| count_round_trips(id, source, iterations.max(1), f));
                send(&Event::RoundTrips { file });
            }
            Command::Next => return,
        }
    }
}

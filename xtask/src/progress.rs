//! Progress lines of long runs: a bar on a terminal, one line per benchmark elsewhere (CI
//! logs), labelled with the command that runs (`perf-gate paired`, `baseline refresh run`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Progress over all the suites of a pass.
pub(crate) struct Progress {
    label: String,
    expected: usize,
    /// Whether `expected` is known for every suite (a suite without a baseline is not).
    known_total: bool,
    done: usize,
    suite: String,
    started: Instant,
    benchmark_started: Option<Instant>,
    per_suite_seen: BTreeMap<String, usize>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// `label` starts every line: the command and the pass (`perf-gate run`, `perf-gate
    /// confirm`); `expected` benchmarks in all, known for every suite or not.
    pub(crate) fn new(label: &str, expected: usize, known_total: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(expected as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .expect("the template is valid"),
            );
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            label: label.to_owned(),
            expected,
            known_total,
            done: 0,
            suite: String::new(),
            started: Instant::now(),
            benchmark_started: None,
            per_suite_seen: BTreeMap::new(),
            bar,
        }
    }

    pub(crate) fn suite_started(&mut self, suite: &str, expected: usize) {
        self.suite = suite.to_owned();
        self.per_suite_seen.insert(suite.to_owned(), 0);
        let expected = if expected > 0 {
            format!("{expected} benchmarks expected")
        } else {
            "no baseline: number of benchmarks unknown".to_owned()
        };
        self.println(&format!("{}: suite {suite} ({expected})", self.label));
    }

    pub(crate) fn benchmark_started(&mut self, id: &str) {
        if self.benchmark_started.is_some() {
            self.done += 1;
        }
        self.benchmark_started = Some(Instant::now());
        *self.per_suite_seen.entry(self.suite.clone()).or_default() += 1;
        // A benchmark the baseline does not know yet makes the total grow.
        let position = self.done + 1;
        self.expected = self.expected.max(position);
        let elapsed = self.started.elapsed();
        let left = (self.done > 0 && self.known_total)
            .then(|| elapsed.mul_f64((self.expected - self.done) as f64 / self.done as f64));
        let left = match left {
            Some(left) => format!("about {} left", clock(left)),
            None if !self.known_total => "time left unknown".to_owned(),
            None => "estimating".to_owned(),
        };
        let total = if self.known_total {
            self.expected.to_string()
        } else {
            "?".to_owned()
        };
        match &self.bar {
            Some(bar) => {
                bar.set_length(self.expected as u64);
                bar.set_position(self.done as u64);
                bar.set_message(format!("{} › {id} ({left})", self.suite));
            }
            None => eprintln!(
                "{}: [{position}/{total}] {} › {id} (elapsed {}, {left})",
                self.label,
                self.suite,
                clock(elapsed)
            ),
        }
    }

    /// What was found for the benchmark that just ended, on a line of its own (paired runs).
    pub(crate) fn benchmark_finished(&mut self, id: &str, summary: &str, elapsed: Duration) {
        let line = format!(
            "{}:     {id}: {summary} ({:.1}s)",
            self.label,
            elapsed.as_secs_f64()
        );
        self.println(&line);
    }

    pub(crate) fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub(crate) fn finish(&mut self) {
        if self.benchmark_started.take().is_some() {
            self.done += 1;
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "{}: {} benchmarks in {}",
            self.label,
            self.done,
            clock(self.started.elapsed())
        );
    }

    pub(crate) fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// `1m05s` / `42s`.
pub(crate) fn clock(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

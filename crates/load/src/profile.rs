//! Profiles: named sets of scenarios with thresholds, read from a TOML file users edit
//! (`load/profiles.toml`). The executors and their names are k6's:
//!
//! - `constant-arrival-rate` (`rate`, `duration`) and `ramping-arrival-rate` (`start_rate`,
//!   `stages` of `{ duration, target }` requests per second, linear between stages): the open
//!   model, where requests arrive on a schedule whatever the server's speed;
//! - `constant-vus` (`vus`, `duration`) and `ramping-vus` (`start_vus`, `stages` of
//!   `{ duration, target }` virtual users): the closed model, where each virtual user sends its
//!   next request when the previous one has been answered.
//!
//! A scenario's `start` delays it (scenarios of a profile run at the same time, as in k6); its
//! `mix` weighs operations; its `thresholds` judge it, the profile's `thresholds` judge all
//! requests together.
//!
//! A profile's `rounds` (or `--rounds`) runs its scenarios that many times, one round after
//! the other, as `NAME#1`, `NAME#2`...: on a machine whose speed drifts from minute to minute,
//! figures to be compared (two breaking points, say) are then measured side by side in every
//! round, and the report gives each round's and their median.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::ops::Operation;
use crate::threshold::{Comparison, Metric, Threshold, ThresholdError};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read the profiles file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the profiles file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("there is no profile `{name}`; the profiles are: {known}")]
    UnknownProfile { name: String, known: String },
    #[error("profile `{profile}` has no scenario `{name}`; its scenarios are: {known}")]
    UnknownScenario {
        profile: String,
        name: String,
        known: String,
    },
    #[error("profile `{profile}`, scenario `{scenario}`: {reason}")]
    Invalid {
        profile: String,
        scenario: String,
        reason: String,
    },
    // The cause is in the message, not a `source` too: a chain would print it twice.
    #[error("profile `{profile}`: {cause}")]
    Threshold {
        profile: String,
        cause: ThresholdError,
    },
    #[error("{0}")]
    Override(String),
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    profiles: BTreeMap<String, ProfileSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    description: String,
    #[serde(default, with = "opt_duration")]
    warmup: Option<Duration>,
    #[serde(default)]
    thresholds: Vec<String>,
    #[serde(default)]
    chaos: Option<ChaosSpec>,
    #[serde(default)]
    rounds: Option<u32>,
    scenarios: Vec<ScenarioSpec>,
}

/// `chaos = { events = "redis-down@10s,redis-up@20s", max_error_rate = "1%", recovery = "5s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChaosSpec {
    events: String,
    #[serde(default)]
    max_error_rate: Option<String>,
    #[serde(default, with = "opt_duration")]
    recovery: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    name: String,
    executor: ExecutorKind,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    start_rate: Option<f64>,
    #[serde(default)]
    vus: Option<u32>,
    #[serde(default)]
    start_vus: Option<u32>,
    #[serde(default, with = "opt_duration")]
    duration: Option<Duration>,
    #[serde(default)]
    stages: Vec<StageSpec>,
    #[serde(default, with = "opt_duration")]
    start: Option<Duration>,
    mix: BTreeMap<String, u32>,
    #[serde(default)]
    thresholds: Vec<String>,
    #[serde(default)]
    max_in_flight: Option<usize>,
    #[serde(default)]
    recovery: Option<RecoverySpec>,
    #[serde(default)]
    breaking_point: Option<BreakingPointSpec>,
}

/// `breaking_point = { threshold = "p95 < 20ms", errors = "5%" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakingPointSpec {
    threshold: String,
    #[serde(default)]
    errors: Option<String>,
}

/// `recovery = { threshold = "p95 < 100ms", window = "5s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverySpec {
    threshold: String,
    #[serde(default, with = "opt_duration")]
    window: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageSpec {
    #[serde(with = "duration")]
    duration: Duration,
    target: f64,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    ConstantArrivalRate,
    RampingArrivalRate,
    ConstantVus,
    RampingVus,
}

impl ExecutorKind {
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::ConstantArrivalRate => "constant-arrival-rate",
            ExecutorKind::RampingArrivalRate => "ramping-arrival-rate",
            ExecutorKind::ConstantVus => "constant-vus",
            ExecutorKind::RampingVus => "ramping-vus",
        }
    }

    pub fn is_open(self) -> bool {
        matches!(
            self,
            ExecutorKind::ConstantArrivalRate | ExecutorKind::RampingArrivalRate
        )
    }
}

/// A stage: over `duration`, move linearly to `target` (requests per second, or virtual users).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// How load is applied: a start level and stages (a constant executor is one stage at its level).
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub executor: ExecutorKind,
    pub start: f64,
    pub stages: Vec<Stage>,
}

impl Load {
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|stage| stage.duration).sum()
    }

    /// The level (rate or virtual users) at `t` from the start, linear within a stage.
    pub fn level_at(&self, t: Duration) -> f64 {
        let mut from = self.start;
        let mut elapsed = Duration::ZERO;
        for stage in &self.stages {
            if t < elapsed + stage.duration {
                let into = (t - elapsed).as_secs_f64() / stage.duration.as_secs_f64();
                return from + (stage.target - from) * into;
            }
            elapsed += stage.duration;
            from = stage.target;
        }
        from
    }

    /// The spike of a load that rises to its peak, comes back down and runs on: from the
    /// start of the first stage that rises to the peak to the end of the stage after the last
    /// one at the peak (the way down). `None` for a load that ends at its peak, starts there,
    /// or stops right after coming down.
    pub fn spike(&self) -> Option<(Duration, Duration)> {
        let peak = self.peak();
        let first = self.stages.iter().position(|s| s.target == peak)?;
        let last = self.stages.iter().rposition(|s| s.target == peak)?;
        let down = last + 1;
        let before = match first {
            0 => self.start,
            i => self.stages[i - 1].target,
        };
        if before >= peak || down + 1 >= self.stages.len() {
            return None;
        }
        let start = self.stages[..first].iter().map(|s| s.duration).sum();
        let end = self.stages[..=down].iter().map(|s| s.duration).sum();
        Some((start, end))
    }

    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|stage| stage.target)
            .fold(self.start, f64::max)
    }

    /// The stages that hold their level (a constant executor's one stage among them): start
    /// and end from the load's start, and the level.
    pub fn plateaus(&self) -> Vec<(Duration, Duration, f64)> {
        let mut plateaus = Vec::new();
        let mut level = self.start;
        let mut at = Duration::ZERO;
        for stage in &self.stages {
            if (stage.target - level).abs() < 1e-9 && stage.target > 0.0 {
                plateaus.push((at, at + stage.duration, stage.target));
            }
            at += stage.duration;
            level = stage.target;
        }
        plateaus
    }

    /// One line: `constant-arrival-rate 200/s for 60s`.
    pub fn describe(&self) -> String {
        let unit = if self.executor.is_open() {
            "/s"
        } else {
            " VUs"
        };
        let duration = humantime::format_duration(self.duration());
        match self.executor {
            ExecutorKind::ConstantArrivalRate | ExecutorKind::ConstantVus => format!(
                "{} {}{unit} for {duration}",
                self.executor.name(),
                trim_float(self.start)
            ),
            _ => {
                let stages: Vec<String> = self
                    .stages
                    .iter()
                    .map(|stage| {
                        format!(
                            "{}{unit} over {}",
                            trim_float(stage.target),
                            humantime::format_duration(stage.duration)
                        )
                    })
                    .collect();
                format!(
                    "{} from {}{unit}: {} ({duration})",
                    self.executor.name(),
                    trim_float(self.start),
                    stages.join(", ")
                )
            }
        }
    }
}

fn trim_float(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Weighted operations.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    entries: Vec<(Operation, u32)>,
    total: u32,
}

impl Mix {
    pub fn new(entries: Vec<(Operation, u32)>) -> Option<Mix> {
        let entries: Vec<_> = entries.into_iter().filter(|(_, w)| *w > 0).collect();
        let total = entries.iter().map(|(_, w)| *w).sum();
        (total > 0).then_some(Mix { entries, total })
    }

    /// The operation for a uniform draw `0 <= draw < total()`.
    pub fn pick(&self, draw: u32) -> Operation {
        let mut left = draw % self.total;
        for (op, weight) in &self.entries {
            if left < *weight {
                return *op;
            }
            left -= weight;
        }
        self.entries[self.entries.len() - 1].0
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    pub fn operations(&self) -> impl Iterator<Item = Operation> + '_ {
        self.entries.iter().map(|(op, _)| *op)
    }

    /// `get_cart 70%, add_item 20%, create_order 10%`.
    pub fn describe(&self) -> String {
        self.entries
            .iter()
            .map(|(op, w)| format!("{op} {:.0}%", 100.0 * f64::from(*w) / f64::from(self.total)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub load: Load,
    /// When it starts, from the start of the measured window.
    pub start: Duration,
    pub mix: Mix,
    pub thresholds: Vec<Threshold>,
    /// Requests in flight at most (k6's `maxVUs` of arrival-rate executors); a request due when
    /// all are taken waits, and its latency counts from when it was due.
    pub max_in_flight: usize,
    /// For a spike: how its recovery is judged (`report::RecoveryReport`).
    pub recovery: Option<Recovery>,
    /// For steps of rising rate: how each step is judged (`report::BreakingPointReport`).
    pub breaking_point: Option<BreakingPoint>,
    /// Which round of the profile's scenarios this is, when it has more than one.
    pub round: Option<Round>,
}

/// One of the repetitions of a scenario in a profile of several rounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// The scenario's name in the profile (this one is named `of#index`).
    pub of: String,
    /// From 1.
    pub index: u32,
}

/// The most rounds a profile may have.
pub const MAX_ROUNDS: u32 = 100;
/// The longest run of several rounds: up to an hour the series has one-second steps
/// (`record::step_for`), so every round's steps are judged alike.
pub const MAX_ROUNDS_WINDOW: Duration = Duration::from_secs(3_600);
/// Between the end of a round and the start of the next one's warm-up: time for a server that
/// fell behind to catch up, so that one round's overload does not spill into the next.
pub const ROUND_PAUSE: Duration = Duration::from_secs(10);

/// How the steps of a stress test are judged: a step (a stage that holds its rate) is
/// sustained when the latency percentile of `threshold` of the requests due in it is under
/// the limit, their error rate under `max_error_rate`, and at least 95% of them were answered.
/// The breaking point is the rate of the last step sustained before the first that is not.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakingPoint {
    pub threshold: Threshold,
    pub max_error_rate: f64,
    /// The steps: start and end from the scenario's start, and the rate.
    pub steps: Vec<(Duration, Duration, f64)>,
}

/// The error rate above which a step is not sustained when the profile does not say.
pub const DEFAULT_BREAKING_ERROR_RATE: f64 = 0.05;

/// How a spike's recovery is judged: the time from the spike's end until the latency
/// percentile of `threshold`, over a sliding `window`, is back under its limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    pub threshold: Threshold,
    pub window: Duration,
    /// From the scenario's start (`Load::spike`).
    pub spike_start: Duration,
    pub spike_end: Duration,
    pub peak: f64,
}

/// The sliding window of `recovery` when the profile does not give one.
pub const DEFAULT_RECOVERY_WINDOW: Duration = Duration::from_secs(5);

/// A profile, validated, with the command line's overrides applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// Run before each scenario at its first level; its requests are not in the results.
    pub warmup: Duration,
    pub thresholds: Vec<Threshold>,
    pub scenarios: Vec<Scenario>,
    /// Outages of the server's dependencies during the run (empty: none).
    pub chaos: Chaos,
}

/// A dependency of the server that a run may take down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dependency {
    Redis,
    Postgres,
}

impl Dependency {
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Redis => "redis",
            Dependency::Postgres => "postgres",
        }
    }
}

/// `redis-down@10s`: at 10 s into the measured window, stop Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChaosEvent {
    /// From the start of the measured window.
    pub at: Duration,
    pub dependency: Dependency,
    /// `true`: start it again; `false`: stop it.
    pub up: bool,
}

impl ChaosEvent {
    /// `redis-down`, `postgres-up`.
    pub fn action(&self) -> String {
        format!(
            "{}-{}",
            self.dependency.name(),
            if self.up { "up" } else { "down" }
        )
    }
}

/// The outages of a run and how they are judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Chaos {
    /// In time order; per dependency, downs and ups alternate, starting with a down.
    pub events: Vec<ChaosEvent>,
    /// A Redis outage fails the run when more requests than this fail during it (the cart
    /// cache is an optimisation: the service should not notice). Default 1%.
    pub max_error_rate: f64,
    /// After a dependency is back, the service must be whole again within this long: calls
    /// succeed, and after a Redis outage the cache is used again. Default 5 s.
    pub recovery: Duration,
}

/// The seed's criteria: errors < 1% during a Redis outage, recovery < 5 s.
pub const DEFAULT_OUTAGE_ERROR_RATE: f64 = 0.01;
pub const DEFAULT_OUTAGE_RECOVERY: Duration = Duration::from_secs(5);

impl Default for Chaos {
    fn default() -> Self {
        Chaos {
            events: Vec::new(),
            max_error_rate: DEFAULT_OUTAGE_ERROR_RATE,
            recovery: DEFAULT_OUTAGE_RECOVERY,
        }
    }
}

impl Chaos {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn describe(&self) -> String {
        self.events
            .iter()
            .map(|e| format!("{}@{}", e.action(), humantime::format_duration(e.at)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Parses `redis-down@10s,redis-up@20s,postgres-down@30s,postgres-up@40s`: each dependency is
/// taken down before it is brought up, at most once at a time.
pub fn parse_chaos(text: &str) -> Result<Vec<ChaosEvent>, String> {
    let mut events = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (action, at) = part.split_once('@').ok_or_else(|| {
            format!("`{part}`: expected ACTION@TIME, e.g. redis-down@10s or postgres-up@20s")
        })?;
        let (dependency, up) = match action.trim() {
            "redis-down" => (Dependency::Redis, false),
            "redis-up" => (Dependency::Redis, true),
            "postgres-down" | "postgresql-down" => (Dependency::Postgres, false),
            "postgres-up" | "postgresql-up" => (Dependency::Postgres, true),
            other => {
                return Err(format!(
                    "`{other}`: the actions are redis-down, redis-up, postgres-down and \
                     postgres-up"
                ));
            }
        };
        let at = humantime::parse_duration(at.trim())
            .map_err(|error| format!("`{part}`: `{at}` is not a time such as 10s ({error})"))?;
        events.push(ChaosEvent { at, dependency, up });
    }
    if events.is_empty() {
        return Err("no events: expected e.g. redis-down@10s,redis-up@20s".to_owned());
    }
    events.sort_by_key(|e| e.at);
    for dependency in [Dependency::Redis, Dependency::Postgres] {
        let mut down = false;
        for event in events.iter().filter(|e| e.dependency == dependency) {
            if event.up != down {
                return Err(format!(
                    "{} at {}: {} is {} then",
                    event.action(),
                    humantime::format_duration(event.at),
                    dependency.name(),
                    if down { "already down" } else { "not down" }
                ));
            }
            down = !event.up;
        }
    }
    Ok(events)
}

impl Profile {
    /// From the end of the warm-up to the end of the last scenario.
    pub fn duration(&self) -> Duration {
        self.scenarios
            .iter()
            .map(|s| s.start + s.load.duration())
            .max()
            .unwrap_or_default()
    }

    pub fn operations(&self) -> impl Iterator<Item = Operation> + '_ {
        self.scenarios.iter().flat_map(|s| s.mix.operations())
    }
}

/// What the command line changes in a profile.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Only this scenario.
    pub scenario: Option<String>,
    /// Total duration of each scenario (ramping stages are scaled to it).
    pub duration: Option<Duration>,
    /// Peak arrival rate of each open-model scenario (every level scaled to it).
    pub rate: Option<f64>,
    pub warmup: Option<Duration>,
    /// Outages instead of the profile's own (`--chaos`).
    pub chaos: Option<Vec<ChaosEvent>>,
    /// Rounds instead of the profile's own (`--rounds`).
    pub rounds: Option<u32>,
}

/// The longest scenario (and the latest start) a profile may have.
pub const MAX_DURATION: Duration = Duration::from_secs(31 * 24 * 3_600);
/// The longest warm-up.
pub const MAX_WARMUP: Duration = Duration::from_secs(24 * 3_600);

/// The default `max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;
/// The largest `max_in_flight`.
pub const MAX_IN_FLIGHT: usize = 1_000_000;
/// The highest arrival rate of a scenario, requests per second. One generator's scheduler
/// handles an arrival in about a microsecond: far above this, it falls behind faster than it
/// can drop the late arrivals, and the run would never end.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The most virtual users of a scenario (each is a task with its own connection state).
pub const MAX_VUS: f64 = 100_000.0;

/// `MAX_DURATION` as people say it (`humantime` says "1month 13h 26m 24s").
const MAX_DURATION_TEXT: &str = "31 days";

/// All profiles of a file.
#[derive(Debug)]
pub struct Profiles {
    path: String,
    specs: BTreeMap<String, ProfileSpec>,
}

impl Profiles {
    pub fn read(path: &Path) -> Result<Profiles, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Profiles::parse(&path.display().to_string(), &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Profiles, ProfileError> {
        let file: ProfilesFile = toml::from_str(text).map_err(|error| ProfileError::Parse {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        let profiles = Profiles {
            path: path.to_owned(),
            specs: file.profiles,
        };
        // Every profile is checked, not only the one asked for: a mistake in the file shows up
        // on the first run, whichever profile it is in.
        for name in profiles.specs.keys() {
            profiles.get(name, &Overrides::default())?;
        }
        Ok(profiles)
    }

    pub fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.specs
            .iter()
            .map(|(name, spec)| (name.as_str(), spec.description.as_str()))
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The profile `name`, validated, with `overrides` applied.
    pub fn get(&self, name: &str, overrides: &Overrides) -> Result<Profile, ProfileError> {
        let spec = self
            .specs
            .get(name)
            .ok_or_else(|| ProfileError::UnknownProfile {
                name: name.to_owned(),
                known: self.specs.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let thresholds = parse_thresholds(name, &spec.thresholds)?;
        let mut scenarios = Vec::new();
        for scenario in &spec.scenarios {
            if overrides
                .scenario
                .as_ref()
                .is_some_and(|only| *only != scenario.name)
            {
                continue;
            }
            scenarios.push(scenario_from(name, scenario, overrides)?);
        }
        if let Some(only) = &overrides.scenario {
            if scenarios.is_empty() {
                return Err(ProfileError::UnknownScenario {
                    profile: name.to_owned(),
                    name: only.clone(),
                    known: spec
                        .scenarios
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            // One scenario alone starts at once.
            scenarios[0].start = Duration::ZERO;
        }
        if scenarios.is_empty() {
            return Err(ProfileError::Invalid {
                profile: name.to_owned(),
                scenario: "-".to_owned(),
                reason: "a profile needs at least one scenario".to_owned(),
            });
        }
        let warmup = overrides
            .warmup
            .or(spec.warmup)
            .unwrap_or(Duration::from_secs(5));
        if warmup > MAX_WARMUP {
            return Err(ProfileError::Override(format!(
                "a warm-up lasts at most {}",
                humantime::format_duration(MAX_WARMUP)
            )));
        }
        let chaos = chaos_from(name, spec.chaos.as_ref(), overrides)?;
        let rounds = overrides.rounds.or(spec.rounds).unwrap_or(1);
        if !(1..=MAX_ROUNDS).contains(&rounds) {
            return Err(ProfileError::Invalid {
                profile: name.to_owned(),
                scenario: "-".to_owned(),
                reason: format!("rounds must be between 1 and {MAX_ROUNDS}, not {rounds}"),
            });
        }
        if rounds > 1 {
            if !chaos.events.is_empty() {
                return Err(ProfileError::Override(
                    "outages (chaos) happen once, at their times in the run: they cannot be \
                     combined with rounds (use --rounds 1)"
                        .to_owned(),
                ));
            }
            scenarios = in_rounds(scenarios, rounds, warmup).ok_or_else(|| {
                ProfileError::Override(format!(
                    "{rounds} rounds would last more than {}",
                    humantime::format_duration(MAX_ROUNDS_WINDOW)
                ))
            })?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for scenario in &scenarios {
            if !seen.insert(scenario.name.as_str()) {
                return Err(ProfileError::Invalid {
                    profile: name.to_owned(),
                    scenario: scenario.name.clone(),
                    reason: "two scenarios have this name".to_owned(),
                });
            }
        }
        check_together(name, &scenarios, warmup)?;
        if overrides.rate.is_some() && !scenarios.iter().any(|s| s.load.executor.is_open()) {
            return Err(ProfileError::Override(format!(
                "--rate sets arrival rates, and profile `{name}` has no arrival-rate scenario \
                 (its scenarios run virtual users)"
            )));
        }
        for threshold in &thresholds {
            if let Some(op) = threshold.operation
                && !scenarios
                    .iter()
                    .any(|s| s.mix.operations().any(|o| o == op))
            {
                return Err(ProfileError::Invalid {
                    profile: name.to_owned(),
                    scenario: "-".to_owned(),
                    reason: format!(
                        "threshold `{}` names `{op}`, which no scenario's mix has",
                        threshold.text
                    ),
                });
            }
        }
        let window = scenarios
            .iter()
            .map(|s| s.start + s.load.duration())
            .max()
            .unwrap_or_default();
        if let Some(late) = chaos.events.iter().find(|e| e.at >= window) {
            return Err(ProfileError::Override(format!(
                "chaos event {}@{} is not within the run (it lasts {} after the warm-up)",
                late.action(),
                humantime::format_duration(late.at),
                humantime::format_duration(window)
            )));
        }
        Ok(Profile {
            name: name.to_owned(),
            description: spec.description.clone(),
            warmup,
            thresholds,
            scenarios,
            chaos,
        })
    }
}

/// One generator runs every scenario of a profile: each scenario, and the scenarios that run at
/// the same time (warm-ups included), must stay within [`MAX_RATE`] arrivals a second and
/// [`MAX_VUS`] virtual users. Peaks are added, whether or not they coincide: a bound, not the
/// exact sum at any instant.
fn check_together(
    profile: &str,
    scenarios: &[Scenario],
    warmup: Duration,
) -> Result<(), ProfileError> {
    let span = |s: &Scenario| (s.start.saturating_sub(warmup), s.start + s.load.duration());
    // With a margin for the rounding of `--rate`'s scaling (1e6 may scale to 1000000.0000000001).
    let too_much = |open: bool, total: f64| {
        if open {
            total > MAX_RATE * (1.0 + 1e-9)
        } else {
            total > MAX_VUS
        }
    };
    for open in [true, false] {
        let of_kind = || {
            scenarios
                .iter()
                .filter(move |s| s.load.executor.is_open() == open)
        };
        // One alone, named as in the profile (a round's copy by the scenario it repeats).
        if let Some(alone) = of_kind().find(|s| too_much(open, s.load.peak())) {
            let peak = alone.load.peak();
            return Err(ProfileError::Invalid {
                profile: profile.to_owned(),
                scenario: alone
                    .round
                    .as_ref()
                    .map_or(&alone.name, |round| &round.of)
                    .clone(),
                reason: if open {
                    format!(
                        "its rate reaches {peak:.0}/s, above the {MAX_RATE}/s one generator can \
                         schedule"
                    )
                } else {
                    format!(
                        "it reaches {peak} virtual users, more than the {MAX_VUS} one generator runs"
                    )
                },
            });
        }
        // The most scenarios run at once at some scenario's beginning.
        for at in of_kind().map(|s| span(s).0) {
            let running: Vec<&Scenario> = of_kind()
                .filter(|s| {
                    let (from, to) = span(s);
                    from <= at && at < to
                })
                .collect();
            let total: f64 = running.iter().map(|s| s.load.peak()).sum();
            let names = || {
                running
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !too_much(open, total) {
                continue;
            }
            let reason = if open {
                format!(
                    "scenarios {} run at the same time and together reach {total:.0} \
                     arrivals/s, above the {MAX_RATE}/s one generator can schedule",
                    names()
                )
            } else {
                format!(
                    "scenarios {} run at the same time and together reach {total} virtual \
                     users, more than the {MAX_VUS} one generator runs",
                    names()
                )
            };
            return Err(ProfileError::Invalid {
                profile: profile.to_owned(),
                scenario: "-".to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

/// The scenarios `rounds` times over: round `k` is every scenario named `NAME#k`, starting
/// where it started in round 1 plus `k - 1` times a round's length (the scenarios' window, then
/// the warm-up and [`ROUND_PAUSE`], rounded up to whole seconds so that every round's steps
/// fall alike on the series' one-second steps), so that each round's warm-up begins after the
/// round before it ended and a pause. `None` if the rounds would last more than
/// [`MAX_ROUNDS_WINDOW`].
fn in_rounds(scenarios: Vec<Scenario>, rounds: u32, warmup: Duration) -> Option<Vec<Scenario>> {
    let window = scenarios
        .iter()
        .map(|s| s.start + s.load.duration())
        .max()
        .unwrap_or_default();
    let length = window.checked_add(warmup)?.checked_add(ROUND_PAUSE)?;
    let length = Duration::from_secs(
        length
            .as_secs()
            .checked_add(u64::from(length.subsec_nanos() > 0))?,
    );
    if length.checked_mul(rounds - 1)?.checked_add(window)? > MAX_ROUNDS_WINDOW {
        return None;
    }
    Some(
        (1..=rounds)
            .flat_map(|index| {
                scenarios.iter().map(move |scenario| Scenario {
                    name: format!("{}#{index}", scenario.name),
                    start: scenario.start + length * (index - 1),
                    round: Some(Round {
                        of: scenario.name.clone(),
                        index,
                    }),
                    ..scenario.clone()
                })
            })
            .collect(),
    )
}

fn chaos_from(
    profile: &str,
    spec: Option<&ChaosSpec>,
    overrides: &Overrides,
) -> Result<Chaos, ProfileError> {
    let invalid = |reason: String| ProfileError::Invalid {
        profile: profile.to_owned(),
        scenario: "-".to_owned(),
        reason: format!("chaos: {reason}"),
    };
    let mut chaos = Chaos::default();
    if let Some(spec) = spec {
        chaos.events = parse_chaos(&spec.events).map_err(invalid)?;
        if let Some(text) = &spec.max_error_rate {
            let threshold = Threshold::parse(&format!("error_rate < {text}"))
                .map_err(|error| invalid(format!("max_error_rate: {error}")))?;
            chaos.max_error_rate = threshold.limit;
        }
        if let Some(recovery) = spec.recovery {
            chaos.recovery = recovery;
        }
    }
    if let Some(events) = &overrides.chaos {
        chaos.events = events.clone();
    }
    Ok(chaos)
}

fn parse_thresholds(profile: &str, texts: &[String]) -> Result<Vec<Threshold>, ProfileError> {
    texts
        .iter()
        .map(|text| {
            Threshold::parse(text).map_err(|cause| ProfileError::Threshold {
                profile: profile.to_owned(),
                cause,
            })
        })
        .collect()
}

fn scenario_from(
    profile: &str,
    spec: &ScenarioSpec,
    overrides: &Overrides,
) -> Result<Scenario, ProfileError> {
    let invalid = |reason: String| ProfileError::Invalid {
        profile: profile.to_owned(),
        scenario: spec.name.clone(),
        reason,
    };
    let open = spec.executor.is_open();
    // Which fields each executor takes: anything else is a mistake worth saying.
    let (allowed, required): (&[&str], &[&str]) = match spec.executor {
        ExecutorKind::ConstantArrivalRate => (&["rate", "duration"], &["rate", "duration"]),
        ExecutorKind::RampingArrivalRate => (&["start_rate", "stages"], &["stages"]),
        ExecutorKind::ConstantVus => (&["vus", "duration"], &["vus", "duration"]),
        ExecutorKind::RampingVus => (&["start_vus", "stages"], &["stages"]),
    };
    let present = [
        ("rate", spec.rate.is_some()),
        ("start_rate", spec.start_rate.is_some()),
        ("vus", spec.vus.is_some()),
        ("start_vus", spec.start_vus.is_some()),
        ("duration", spec.duration.is_some()),
        ("stages", !spec.stages.is_empty()),
    ];
    for (field, here) in present {
        if here && !allowed.contains(&field) {
            return Err(invalid(format!(
                "`{field}` does not apply to {} (it takes {})",
                spec.executor.name(),
                allowed.join(" and ")
            )));
        }
        if !here && required.contains(&field) {
            return Err(invalid(format!("{} needs `{field}`", spec.executor.name())));
        }
    }
    let mut load = match spec.executor {
        ExecutorKind::ConstantArrivalRate | ExecutorKind::ConstantVus => {
            let level = spec.rate.or(spec.vus.map(f64::from)).unwrap_or_default();
            Load {
                executor: spec.executor,
                start: level,
                stages: vec![Stage {
                    duration: spec.duration.unwrap_or_default(),
                    target: level,
                }],
            }
        }
        ExecutorKind::RampingArrivalRate | ExecutorKind::RampingVus => Load {
            executor: spec.executor,
            start: spec
                .start_rate
                .or(spec.start_vus.map(f64::from))
                .unwrap_or(0.0),
            stages: spec
                .stages
                .iter()
                .map(|stage| Stage {
                    duration: stage.duration,
                    target: stage.target,
                })
                .collect(),
        },
    };
    let mut start = spec.start.unwrap_or_default();
    if let Some(duration) = overrides.duration {
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(ProfileError::Override(format!(
                "--duration must be above 0 and at most {MAX_DURATION_TEXT}"
            )));
        }
        let scale = duration.as_secs_f64() / load.duration().as_secs_f64().max(1e-9);
        for stage in &mut load.stages {
            stage.duration = stage.duration.mul_f64(scale);
        }
        // Scenarios in sequence stay in sequence: their starts scale with their lengths.
        start = start.mul_f64(scale);
    }
    let mut rate_scale = 1.0;
    if let (Some(rate), true) = (overrides.rate, open) {
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
            return Err(ProfileError::Override(format!(
                "--rate must be a number of requests per second above 0 and at most {MAX_RATE}"
            )));
        }
        let scale = rate / load.peak().max(1e-9);
        rate_scale = scale;
        load.start *= scale;
        for stage in &mut load.stages {
            stage.target *= scale;
        }
    }
    for (i, stage) in load.stages.iter().enumerate() {
        if stage.duration.is_zero() {
            return Err(invalid(format!("stage {} lasts 0s", i + 1)));
        }
        if !(stage.target.is_finite() && stage.target >= 0.0) {
            return Err(invalid(format!("stage {} has a negative target", i + 1)));
        }
        if !open && stage.target.fract() != 0.0 {
            return Err(invalid(format!(
                "stage {}: virtual users come whole, not {}",
                i + 1,
                stage.target
            )));
        }
    }
    if !(load.start.is_finite() && load.start >= 0.0) {
        return Err(invalid("the start level is negative".into()));
    }
    if load.peak() <= 0.0 {
        return Err(invalid("the load is 0 throughout".into()));
    }
    let mut entries = Vec::new();
    for (name, weight) in &spec.mix {
        let op = Operation::from_name(name).ok_or_else(|| {
            invalid(format!(
                "unknown operation `{name}` in its mix (the operations are: {})",
                Operation::ALL.map(|op| op.name()).join(", ")
            ))
        })?;
        entries.push((op, *weight));
    }
    let mix = Mix::new(entries).ok_or_else(|| invalid("its mix has no weight above 0".into()))?;
    if load.duration() > MAX_DURATION || start > MAX_DURATION {
        return Err(invalid(format!(
            "a scenario lasts and starts within {MAX_DURATION_TEXT}"
        )));
    }
    let mut thresholds = parse_thresholds(profile, &spec.thresholds)?;
    // A request-rate threshold follows the rate: `--rate 100` on a 200/s scenario with
    // `rps >= 190` expects 95/s.
    for threshold in &mut thresholds {
        if threshold.metric == Metric::Rps && rate_scale != 1.0 {
            threshold.limit *= rate_scale;
            threshold.text = threshold.canonical();
        }
    }
    for threshold in &thresholds {
        if let Some(op) = threshold.operation
            && !mix.operations().any(|o| o == op)
        {
            return Err(invalid(format!(
                "threshold `{}` names `{op}`, which is not in its mix",
                threshold.text
            )));
        }
    }
    let max_in_flight = spec.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if !(1..=MAX_IN_FLIGHT).contains(&max_in_flight) {
        return Err(invalid(format!(
            "max_in_flight must be at least 1 and at most {MAX_IN_FLIGHT}"
        )));
    }
    let recovery = match &spec.recovery {
        None => None,
        Some(recovery) => Some(recovery_from(recovery, &load).map_err(invalid)?),
    };
    let breaking_point = match &spec.breaking_point {
        None => None,
        Some(spec) => Some(breaking_point_from(spec, &load).map_err(invalid)?),
    };
    Ok(Scenario {
        name: spec.name.clone(),
        load,
        start,
        mix,
        thresholds,
        max_in_flight,
        recovery,
        breaking_point,
        round: None,
    })
}

fn breaking_point_from(spec: &BreakingPointSpec, load: &Load) -> Result<BreakingPoint, String> {
    if !load.executor.is_open() {
        return Err("`breaking_point` applies to the arrival-rate executors".into());
    }
    let threshold =
        Threshold::parse(&spec.threshold).map_err(|error| format!("breaking_point: {error}"))?;
    if !matches!(threshold.metric, Metric::Percentile(_))
        || threshold.operation.is_some()
        || !matches!(
            threshold.comparison,
            Comparison::Less | Comparison::LessOrEqual
        )
    {
        return Err(format!(
            "breaking_point: `{}` is not an upper limit on a latency percentile of all \
             requests (e.g. `p95 < 20ms`)",
            spec.threshold
        ));
    }
    let max_error_rate = match &spec.errors {
        None => DEFAULT_BREAKING_ERROR_RATE,
        Some(text) => {
            Threshold::parse(&format!("error_rate < {text}"))
                .map_err(|error| format!("breaking_point: errors: {error}"))?
                .limit
        }
    };
    let steps = load.plateaus();
    if steps.is_empty() {
        return Err("breaking_point: the load has no step that holds its rate".into());
    }
    Ok(BreakingPoint {
        threshold,
        max_error_rate,
        steps,
    })
}

fn recovery_from(spec: &RecoverySpec, load: &Load) -> Result<Recovery, String> {
    if !load.executor.is_open() {
        return Err("`recovery` applies to the arrival-rate executors".into());
    }
    let threshold =
        Threshold::parse(&spec.threshold).map_err(|error| format!("recovery: {error}"))?;
    if !matches!(threshold.metric, Metric::Percentile(_))
        || threshold.operation.is_some()
        || !matches!(
            threshold.comparison,
            Comparison::Less | Comparison::LessOrEqual
        )
    {
        return Err(format!(
            "recovery: `{}` is not an upper limit on a latency percentile of all requests \
             (e.g. `p95 < 100ms`)",
            spec.threshold
        ));
    }
    let window = spec.window.unwrap_or(DEFAULT_RECOVERY_WINDOW);
    if window.is_zero() || window > Duration::from_secs(600) {
        return Err("recovery: the window is above 0 and at most 10m".into());
    }
    let (spike_start, spike_end) = load.spike().ok_or_else(|| {
        "recovery: the load has no spike (it must rise to its peak, come back down and run on \
         after it)"
            .to_owned()
    })?;
    Ok(Recovery {
        threshold,
        window,
        spike_start,
        spike_end,
        peak: load.peak(),
    })
}

/// `"60s"`, `"1m30s"`, `"2h"` in the file.
mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|error| serde::de::Error::custom(format!("`{text}`: {error}")))
    }
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|text| {
            humantime::parse_duration(&text)
                .map_err(|error| serde::de::Error::custom(format!("`{text}`: {error}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[profiles.one]
description = "one"
warmup = "2s"
thresholds = ["p95 < 1s"]

[[profiles.one.scenarios]]
name = "reads"
executor = "constant-arrival-rate"
rate = 200
duration = "60s"
mix = { get_cart = 7, list_orders = 3 }
thresholds = ["p95 < 20ms", "get_cart.p99 < 50ms", "error_rate < 1%"]

[[profiles.one.scenarios]]
name = "ramp"
executor = "ramping-arrival-rate"
start_rate = 10
stages = [{ duration = "10s", target = 100 }, { duration = "20s", target = 100 }, { duration = "10s", target = 0 }]
mix = { health = 1 }

[[profiles.one.scenarios]]
name = "users"
executor = "ramping-vus"
stages = [{ duration = "5s", target = 4 }]
start = "1m"
mix = { get_cart = 1 }
"#;

    #[test]
    fn reads_the_executors_of_k6() {
        let profiles = Profiles::parse("test", FILE).unwrap();
        let profile = profiles.get("one", &Overrides::default()).unwrap();
        assert_eq!(profile.warmup, Duration::from_secs(2));
        assert_eq!(profile.scenarios.len(), 3);
        let reads = &profile.scenarios[0];
        assert_eq!(reads.load.describe(), "constant-arrival-rate 200/s for 1m");
        assert_eq!(reads.mix.describe(), "get_cart 70%, list_orders 30%");
        assert_eq!(reads.thresholds.len(), 3);
        let ramp = &profile.scenarios[1];
        assert_eq!(ramp.load.duration(), Duration::from_secs(40));
        assert!((ramp.load.level_at(Duration::from_secs(5)) - 55.0).abs() < 1e-9);
        assert!((ramp.load.level_at(Duration::from_secs(35)) - 50.0).abs() < 1e-9);
        assert_eq!(profile.scenarios[2].start, Duration::from_secs(60));
        assert_eq!(profile.duration(), Duration::from_secs(65));
    }

    #[test]
    fn chaos_events_are_checked() {
        let events =
            parse_chaos("redis-up@20s, redis-down@10s,postgres-down@5s,postgres-up@30s").unwrap();
        let actions: Vec<String> = events.iter().map(ChaosEvent::action).collect();
        assert_eq!(
            actions,
            ["postgres-down", "redis-down", "redis-up", "postgres-up"],
            "sorted by time"
        );
        for (text, expected) in [
            ("", "no events"),
            ("redis-down", "expected ACTION@TIME"),
            ("mysql-down@1s", "the actions are"),
            ("redis-down@soon", "is not a time"),
            ("redis-up@1s", "redis is not down then"),
            ("redis-down@1s,redis-down@2s", "redis is already down then"),
        ] {
            let error = parse_chaos(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn overrides_scale_the_profile() {
        let profiles = Profiles::parse("test", FILE).unwrap();
        let overrides = Overrides {
            scenario: Some("ramp".into()),
            duration: Some(Duration::from_secs(4)),
            rate: Some(50.0),
            warmup: Some(Duration::ZERO),
            ..Overrides::default()
        };
        let profile = profiles.get("one", &overrides).unwrap();
        assert_eq!(profile.scenarios.len(), 1);
        let load = &profile.scenarios[0].load;
        assert_eq!(load.duration(), Duration::from_secs(4));
        assert!((load.peak() - 50.0).abs() < 1e-9);
        assert!((load.start - 5.0).abs() < 1e-9);
        assert_eq!(profile.warmup, Duration::ZERO);

        // `--rate` carries a scenario's rps thresholds along; `--duration` its start.
        let text = FILE.replace(
            "\"error_rate < 1%\"]",
            "\"error_rate < 1%\", \"rps >= 190\"]",
        );
        let profiles = Profiles::parse("test", &text).unwrap();
        let overrides = Overrides {
            rate: Some(100.0),
            duration: Some(Duration::from_secs(120)),
            ..Overrides::default()
        };
        let profile = profiles.get("one", &overrides).unwrap();
        let reads = &profile.scenarios[0];
        assert_eq!(reads.thresholds[3].text, "rps >= 95.0/s");
        assert!((reads.thresholds[3].limit - 95.0).abs() < 1e-9);
        // "users" lasted 5 s from 60 s: now 120 s from 1440 s.
        assert_eq!(profile.scenarios[2].start, Duration::from_secs(1_440));
    }

    #[test]
    fn rounds_repeat_the_scenarios_one_round_after_the_other() {
        let text = FILE.replace("warmup = \"2s\"", "warmup = \"2s\"\nrounds = 3");
        let profiles = Profiles::parse("test", &text).unwrap();
        let profile = profiles.get("one", &Overrides::default()).unwrap();
        let names: Vec<&str> = profile.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "reads#1", "ramp#1", "users#1", "reads#2", "ramp#2", "users#2", "reads#3",
                "ramp#3", "users#3"
            ]
        );
        // A round lasts until "users" ends (65 s), then the warm-up (2 s) and the pause.
        let length = Duration::from_secs(67) + ROUND_PAUSE;
        let users = |round: usize| &profile.scenarios[3 * round + 2];
        assert_eq!(users(0).start, Duration::from_secs(60));
        assert_eq!(users(2).start, Duration::from_secs(60) + 2 * length);
        assert_eq!(
            users(1).round,
            Some(Round {
                of: "users".into(),
                index: 2
            })
        );
        assert_eq!(profile.duration(), Duration::from_secs(65) + 2 * length);

        // `--rounds` wins over the profile's; one round is the profile as written.
        let once = Overrides {
            rounds: Some(1),
            ..Overrides::default()
        };
        let profile = profiles.get("one", &once).unwrap();
        assert_eq!(profile.scenarios[0].name, "reads");
        assert_eq!(profile.scenarios[0].round, None);
        // `--scenario` picks by the profile's name, and its rounds follow one another.
        let only = Overrides {
            scenario: Some("users".into()),
            rounds: Some(2),
            ..Overrides::default()
        };
        let profile = profiles.get("one", &only).unwrap();
        let starts: Vec<Duration> = profile.scenarios.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            [Duration::ZERO, Duration::from_secs(7) + ROUND_PAUSE]
        );
        let none = Overrides {
            rounds: Some(0),
            ..Overrides::default()
        };
        let error = profiles.get("one", &none).unwrap_err().to_string();
        assert!(
            error.contains("rounds must be between 1 and 100"),
            "{error}"
        );
        // Outages happen once: not with rounds.
        let chaos = Overrides {
            rounds: Some(2),
            chaos: Some(parse_chaos("redis-down@10s,redis-up@20s").unwrap()),
            ..Overrides::default()
        };
        let error = profiles.get("one", &chaos).unwrap_err().to_string();
        assert!(error.contains("cannot be combined with rounds"), "{error}");
        // Rounds are judged on one-second steps: at most an hour of them.
        let long = Overrides {
            rounds: Some(60),
            ..Overrides::default()
        };
        let error = profiles.get("one", &long).unwrap_err().to_string();
        assert!(
            error.contains("60 rounds would last more than 1h"),
            "{error}"
        );
        // A huge warm-up is refused as such, before the rounds are laid out.
        let huge = Overrides {
            rounds: Some(3),
            warmup: Some(Duration::from_secs(u64::MAX / 4)),
            ..Overrides::default()
        };
        let error = profiles.get("one", &huge).unwrap_err().to_string();
        assert!(error.contains("a warm-up lasts at most"), "{error}");
        // A warm-up of a fraction of a second: rounds still start on whole seconds.
        let fraction = Overrides {
            rounds: Some(2),
            warmup: Some(Duration::from_millis(2_500)),
            ..Overrides::default()
        };
        let profile = profiles.get("one", &fraction).unwrap();
        assert_eq!(profile.scenarios[3].start, Duration::from_secs(78));
    }

    #[test]
    fn a_spike_is_found_and_its_recovery_checked() {
        let text = r#"
[profiles.spike]
description = "x"
[[profiles.spike.scenarios]]
name = "spike"
executor = "ramping-arrival-rate"
start_rate = 100
stages = [
  { duration = "60s", target = 100 },
  { duration = "10s", target = 1000 },
  { duration = "60s", target = 1000 },
  { duration = "10s", target = 100 },
  { duration = "2m", target = 100 },
]
mix = { get_cart = 1 }
recovery = { threshold = "p95 < 100ms" }
"#;
        let profile = Profiles::parse("test", text)
            .unwrap()
            .get("spike", &Overrides::default())
            .unwrap();
        let recovery = profile.scenarios[0].recovery.clone().unwrap();
        assert_eq!(recovery.spike_start, Duration::from_secs(60));
        assert_eq!(recovery.spike_end, Duration::from_secs(140));
        assert_eq!(recovery.window, DEFAULT_RECOVERY_WINDOW);
        assert_eq!(recovery.peak, 1000.0);
        for (edit, fragment) in [
            (("p95 < 100ms", "error_rate < 1%"), "not an upper limit"),
            (("p95 < 100ms", "p95 > 100ms"), "not an upper limit"),
            (
                ("  { duration = \"2m\", target = 100 },\n", ""),
                "has no spike",
            ),
            (
                ("\"p95 < 100ms\" }", "\"p95 < 100ms\", window = \"0s\" }"),
                "the window is above 0",
            ),
        ] {
            let text = text.replacen(edit.0, edit.1, 1);
            let error = Profiles::parse("test", &text)
                .and_then(|p| p.get("spike", &Overrides::default()))
                .unwrap_err();
            assert!(error.to_string().contains(fragment), "{edit:?}: {error}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        let profiles = Profiles::parse("test", FILE).unwrap();
        let error = profiles.get("two", &Overrides::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "there is no profile `two`; the profiles are: one"
        );
        let only = Overrides {
            scenario: Some("nope".into()),
            ..Overrides::default()
        };
        let error = profiles.get("one", &only).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("its scenarios are: reads, ramp, users")
        );

        for (edit, fragment) in [
            (
                ("rate = 200", "rate = 200\nvus = 3"),
                "`vus` does not apply",
            ),
            (("rate = 200\n", ""), "needs `rate`"),
            (
                ("get_cart = 7", "get_kart = 7"),
                "unknown operation `get_kart`",
            ),
            (("\"p95 < 20ms\"", "\"p95 < twenty\""), "not a duration"),
            (("get_cart.p99", "health.p99"), "not in its mix"),
            (("duration = \"60s\"", "duration = \"sixty\""), "sixty"),
            (("target = 4", "target = 4.5"), "virtual users come whole"),
            (
                ("name = \"ramp\"", "name = \"reads\""),
                "two scenarios have this name",
            ),
            (
                ("warmup = \"2s\"", "warmup = \"2s\"\ncolour = 1"),
                "unknown field",
            ),
            // Beyond what one generator can do: refused, rather than a run that never ends
            // (the scheduler falling behind for good) or that exhausts memory.
            (
                ("rate = 200\n", "rate = 2000000\n"),
                "its rate reaches 2000000/s, above the 1000000/s",
            ),
            (
                ("target = 4", "target = 200000"),
                "200000 virtual users, more than the 100000",
            ),
            (
                ("rate = 200\n", "rate = 200\nmax_in_flight = 2000000\n"),
                "max_in_flight must be at least 1 and at most 1000000",
            ),
        ] {
            let text = FILE.replacen(edit.0, edit.1, 1);
            let error = Profiles::parse("test", &text).unwrap_err();
            assert!(error.to_string().contains(fragment), "{edit:?}: {error}");
        }
        let too_fast = Overrides {
            rate: Some(2e6),
            ..Overrides::default()
        };
        let error = profiles.get("one", &too_fast).unwrap_err();
        assert!(
            error.to_string().contains("--rate must be")
                && error.to_string().contains("at most 1000000"),
            "{error}"
        );
        // One generator runs them all: scenarios at the same time count together.
        let error = profiles
            .get(
                "one",
                &Overrides {
                    rate: Some(600_000.0),
                    ..Overrides::default()
                },
            )
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("scenarios reads, ramp run at the same time and together reach 1200000"),
            "{error}"
        );
        let after_reads = |start: &str, rate: u32| {
            format!(
                "{FILE}\n[[profiles.one.scenarios]]\nname = \"late\"\n\
                 executor = \"constant-arrival-rate\"\nrate = {rate}\nduration = \"10s\"\n\
                 start = \"{start}\"\nmix = {{ health = 1 }}\n"
            )
        };
        // `reads` ends at 60 s; the warm-up of 2 s before a start counts as running.
        Profiles::parse("test", &after_reads("62s", 999_999)).unwrap();
        let error = Profiles::parse("test", &after_reads("61s", 999_999)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("scenarios reads, late run at the same time"),
            "{error}"
        );
        let crowd = FILE.replacen("target = 4", "target = 60000", 1)
            + "\n[[profiles.one.scenarios]]\nname = \"crowd\"\nexecutor = \"constant-vus\"\n\
               vus = 50000\nduration = \"10s\"\nstart = \"1m\"\nmix = { health = 1 }\n";
        let error = Profiles::parse("test", &crowd).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("scenarios users, crowd run at the same time and together reach 110000"),
            "{error}"
        );
        let too_long = Overrides {
            duration: Some(Duration::from_secs(32 * 24 * 3_600)),
            ..Overrides::default()
        };
        let error = profiles.get("one", &too_long).unwrap_err();
        assert!(error.to_string().contains("at most 31 days"), "{error}");
    }

    #[test]
    fn the_mix_picks_by_weight() {
        let mix = Mix::new(vec![(Operation::GetCart, 7), (Operation::AddItem, 3)]).unwrap();
        let picks: Vec<_> = (0..10).map(|draw| mix.pick(draw)).collect();
        assert_eq!(
            picks.iter().filter(|op| **op == Operation::GetCart).count(),
            7
        );
        assert!(Mix::new(vec![(Operation::GetCart, 0)]).is_none());
    }

    #[test]
    fn the_shipped_profiles_are_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../load/profiles.toml");
        let profiles = Profiles::read(&path).unwrap();
        let names: Vec<_> = profiles.names().map(|(name, _)| name).collect();
        for wanted in [
            "smoke",
            "load",
            "stress",
            "spike",
            "soak",
            "get_cart",
            "add_item",
            "create_order",
            "list_orders",
            "mixed",
            "read_write",
            "read_write_admin",
            "read_heavy",
            "cache_miss",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
    }
}

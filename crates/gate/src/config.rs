//! Thresholds, and the per-benchmark overrides of `perf-gate.toml`.
//!
//! ```toml
//! # Each override applies to the benchmarks whose id matches `glob` (`*` stays within one
//! # `/`-separated segment, `**` crosses them). The first matching override wins. Thresholds
//! # are percentages; the ones left out keep their defaults. `reason` is mandatory and is shown
//! # in every report next to the benchmarks it affects.
//! [[override]]
//! glob = "orders/concurrent_create/*"
//! latency = 35
//! round_trips = 10
//! reason = "64 tasks contend for two cores; the order they commit in varies (see #123)."
//!
//! # Reference benchmarks measure the machine, not the code (see the crate docs on speed
//! # normalisation). The default is shown; `globs = []` turns normalisation off.
//! [references]
//! globs = ["*/floor/**"]
//!
//! # Which reference benchmarks of its suite a benchmark is normalised by (stored mode): the
//! # first rule whose glob matches. Without a matching rule, all of the suite's reference
//! # benchmarks. `reason` is mandatory, as for overrides.
//! [[reference]]
//! glob = "cart/get_cart_hit"
//! floors = ["redis_get"]     # cart/floor/redis_get
//! reason = "A Redis round trip plus decoding."
//! ```

use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The growth beyond which a metric regresses, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Median time per iteration.
    pub latency_percent: f64,
    /// Allocations per iteration.
    pub allocations_percent: f64,
    /// Bytes allocated per iteration.
    pub bytes_percent: f64,
    /// PostgreSQL statements and Redis commands per iteration (each on its own).
    pub round_trips_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            latency_percent: 20.0,
            allocations_percent: 30.0,
            bytes_percent: 30.0,
            round_trips_percent: 5.0,
        }
    }
}

/// One `[[override]]` entry.
#[derive(Debug, Clone)]
pub struct Override {
    /// The glob as written.
    pub glob: String,
    /// The thresholds it sets; `None` keeps the default.
    pub latency: Option<f64>,
    /// See `latency`.
    pub allocations: Option<f64>,
    /// See `latency`.
    pub bytes: Option<f64>,
    /// See `latency`.
    pub round_trips: Option<f64>,
    /// Why the benchmark needs different thresholds.
    pub reason: String,
    matcher: GlobMatcher,
}

impl Override {
    /// Whether this override's glob matches the benchmark id.
    pub fn matches(&self, id: &str) -> bool {
        self.matcher.is_match(id)
    }
}

/// The reference benchmarks of a suite when the configuration does not say otherwise: the
/// raw round trips and fixed workloads each suite measures under `<suite>/floor/`.
pub const DEFAULT_REFERENCE_GLOBS: &[&str] = &["*/floor/**"];

/// One `[[reference]]` entry: the benchmarks matching `glob` are normalised by these floors.
#[derive(Debug, Clone)]
pub struct ReferenceRule {
    /// Why these floors bound these benchmarks.
    pub reason: String,
    /// The glob as written.
    pub glob: String,
    /// Names of reference benchmarks of the same suite: `redis_get` stands for
    /// `<suite>/floor/redis_get`.
    pub floors: Vec<String>,
    matcher: GlobMatcher,
}

impl ReferenceRule {
    /// Whether this rule's glob matches the benchmark id.
    pub fn matches(&self, id: &str) -> bool {
        self.matcher.is_match(id)
    }
}

/// The gate's configuration: the overrides, in file order, and the reference benchmarks.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    /// The overrides.
    pub overrides: Vec<Override>,
    /// Globs of the reference benchmarks: they measure the machine (a PostgreSQL round trip, a
    /// fixed CPU workload), not the code, and set the speed factors.
    pub reference_globs: Vec<String>,
    /// Which floors normalise which benchmarks; a benchmark that no rule matches is normalised
    /// by all of its suite's reference benchmarks.
    pub reference_rules: Vec<ReferenceRule>,
    references: globset::GlobSet,
}

impl Default for Config {
    fn default() -> Config {
        let globs: Vec<String> = DEFAULT_REFERENCE_GLOBS
            .iter()
            .map(|g| (*g).to_owned())
            .collect();
        let references = glob_set(&globs).expect("the default reference globs are valid");
        Config {
            path: None,
            overrides: Vec::new(),
            reference_globs: globs,
            reference_rules: Vec::new(),
            references,
        }
    }
}

fn glob_set(globs: &[String]) -> Result<globset::GlobSet, (String, globset::Error)> {
    let mut builder = globset::GlobSetBuilder::new();
    for glob in globs {
        builder.add(
            GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
                .map_err(|err| (glob.clone(), err))?,
        );
    }
    builder.build().map_err(|err| (String::new(), err))
}

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// The default location: a missing file means no overrides.
    Optional(PathBuf),
    /// A file the user named: it must exist.
    Required(PathBuf),
    /// No configuration at all.
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "override", default)]
    overrides: Vec<RawOverride>,
    #[serde(default)]
    references: Option<RawReferences>,
    #[serde(rename = "reference", default)]
    reference_rules: Vec<RawReferenceRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReferenceRule {
    glob: String,
    floors: Vec<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReferences {
    globs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    glob: String,
    latency: Option<f64>,
    allocations: Option<f64>,
    bytes: Option<f64>,
    round_trips: Option<f64>,
    reason: Option<String>,
}

impl Config {
    /// Loads the configuration from `file`.
    pub fn load(file: &ConfigFile) -> Result<Config, Error> {
        let (path, required) = match file {
            ConfigFile::None => return Ok(Config::default()),
            ConfigFile::Optional(path) => (path, false),
            ConfigFile::Required(path) => (path, true),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::default())
            }
            Err(source) => Err(Error::Read {
                path: path.clone(),
                source,
            }),
        }
    }

    /// Parses `text`, the contents of `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let raw: RawConfig = toml::from_str(text).map_err(|source| Error::Toml {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |index: usize, message: String| Error::Invalid {
            path: path.to_owned(),
            message: format!("override #{}: {message}", index + 1),
        };
        let mut overrides = Vec::with_capacity(raw.overrides.len());
        for (index, o) in raw.overrides.into_iter().enumerate() {
            let reason = o.reason.map(|r| r.trim().to_owned()).unwrap_or_default();
            if reason.is_empty() {
                return Err(invalid(
                    index,
                    format!("`reason` is mandatory (glob {:?})", o.glob),
                ));
            }
            if o.latency.is_none()
                && o.allocations.is_none()
                && o.bytes.is_none()
                && o.round_trips.is_none()
            {
                return Err(invalid(
                    index,
                    format!(
                        "sets none of `latency`, `allocations`, `bytes`, `round_trips` (glob {:?})",
                        o.glob
                    ),
                ));
            }
            for (name, value) in [
                ("latency", o.latency),
                ("allocations", o.allocations),
                ("bytes", o.bytes),
                ("round_trips", o.round_trips),
            ] {
                if let Some(value) = value
                    && !(value.is_finite() && value > 0.0)
                {
                    return Err(invalid(
                        index,
                        format!("`{name}` must be a positive percentage, not {value}"),
                    ));
                }
            }
            let glob: Glob = GlobBuilder::new(&o.glob)
                .literal_separator(true)
                .build()
                .map_err(|err| invalid(index, format!("bad glob {:?}: {err}", o.glob)))?;
            overrides.push(Override {
                matcher: glob.compile_matcher(),
                glob: o.glob,
                latency: o.latency,
                allocations: o.allocations,
                bytes: o.bytes,
                round_trips: o.round_trips,
                reason,
            });
        }
        let reference_globs = match raw.references {
            Some(references) => references.globs,
            None => Config::default().reference_globs,
        };
        let references = glob_set(&reference_globs).map_err(|(glob, err)| Error::Invalid {
            path: path.to_owned(),
            message: format!("[references]: bad glob {glob:?}: {err}"),
        })?;
        let mut reference_rules = Vec::with_capacity(raw.reference_rules.len());
        for (index, rule) in raw.reference_rules.into_iter().enumerate() {
            let invalid = |message: String| Error::Invalid {
                path: path.to_owned(),
                message: format!("reference #{}: {message}", index + 1),
            };
            if rule.floors.is_empty() || rule.floors.iter().any(|f| f.is_empty() || f.contains('/'))
            {
                return Err(invalid(format!(
                    "`floors` must name at least one reference benchmark of the suite, by its \
                     last segment such as \"redis_get\" (glob {:?})",
                    rule.glob
                )));
            }
            let reason = rule.reason.map(|r| r.trim().to_owned()).unwrap_or_default();
            if reason.is_empty() {
                return Err(invalid(format!(
                    "`reason` is mandatory: say why these floors bound these benchmarks (glob {:?})",
                    rule.glob
                )));
            }
            let matcher = GlobBuilder::new(&rule.glob)
                .literal_separator(true)
                .build()
                .map_err(|err| invalid(format!("bad glob {:?}: {err}", rule.glob)))?
                .compile_matcher();
            reference_rules.push(ReferenceRule {
                reason,
                glob: rule.glob,
                floors: rule.floors,
                matcher,
            });
        }
        Ok(Config {
            path: Some(path.to_owned()),
            overrides,
            reference_globs,
            reference_rules,
            references,
        })
    }

    /// The floors that normalise `id` (last segments, see [`ReferenceRule::floors`]), or `None`
    /// when no `[[reference]]` rule matches it.
    pub fn floors_for(&self, id: &str) -> Option<&[String]> {
        self.reference_rules
            .iter()
            .find(|r| r.matcher.is_match(id))
            .map(|r| r.floors.as_slice())
    }

    /// Whether `id` is a reference benchmark (see [`Config::reference_globs`]).
    pub fn is_reference(&self, id: &str) -> bool {
        self.references.is_match(id)
    }

    /// The first override matching `id`, if any.
    pub fn override_for(&self, id: &str) -> Option<&Override> {
        self.overrides.iter().find(|o| o.matcher.is_match(id))
    }

    /// The override that sets `id`'s thresholds, as reports show it; its glob is added to
    /// `used` (an override no benchmark used is reported as unused).
    pub(crate) fn applied_override(
        &self,
        id: &str,
        used: &mut std::collections::BTreeSet<String>,
    ) -> Option<crate::report::AppliedOverride> {
        self.override_for(id).map(|o| {
            used.insert(o.glob.clone());
            crate::report::AppliedOverride {
                glob: o.glob.clone(),
                reason: o.reason.clone(),
            }
        })
    }

    /// The thresholds for `id`: the defaults, with the first matching override applied.
    pub fn thresholds_for(&self, id: &str) -> Thresholds {
        let defaults = Thresholds::default();
        match self.override_for(id) {
            None => defaults,
            Some(o) => Thresholds {
                latency_percent: o.latency.unwrap_or(defaults.latency_percent),
                allocations_percent: o.allocations.unwrap_or(defaults.allocations_percent),
                bytes_percent: o.bytes.unwrap_or(defaults.bytes_percent),
                round_trips_percent: o.round_trips.unwrap_or(defaults.round_trips_percent),
            },
        }
    }
}

/// Which way a change of the configuration moves the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// A threshold grows (or a stricter override goes): fewer regressions will be reported.
    Loosens,
    /// A threshold shrinks (or a looser override goes): more regressions will be reported.
    Tightens,
    /// Neither by itself (a reason, a normalisation rule, the order of overrides).
    Changes,
}

impl Effect {
    /// How the reports say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Loosens => "loosens",
            Effect::Tightens => "tightens",
            Effect::Changes => "changes",
        }
    }
}

/// One difference between the base revision's configuration and the change's, for a reviewer:
/// in paired mode the gate judges by the base's, so a change cannot loosen its own gate
/// unseen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    /// Which way it moves the gate.
    pub effect: Effect,
    /// What changed, in one line.
    pub what: String,
}

/// The thresholds an override sets, by name, `None` for the ones it leaves at the default.
fn override_thresholds(o: &Override) -> [(&'static str, Option<f64>); 4] {
    [
        ("latency", o.latency),
        ("allocations", o.allocations),
        ("bytes", o.bytes),
        ("round_trips", o.round_trips),
    ]
}

fn default_threshold(name: &str) -> f64 {
    let defaults = Thresholds::default();
    match name {
        "latency" => defaults.latency_percent,
        "allocations" => defaults.allocations_percent,
        "bytes" => defaults.bytes_percent,
        _ => defaults.round_trips_percent,
    }
}

/// Whether going from `before` to `after` (percentages) loosens or tightens the gate.
fn effect_of(before: f64, after: f64) -> Effect {
    if after > before {
        Effect::Loosens
    } else if after < before {
        Effect::Tightens
    } else {
        Effect::Changes
    }
}

/// What `candidate` changes with respect to `base`: overrides added, removed or changed (each
/// threshold on its own line, loosening or tightening), reference rules and reference globs.
pub fn changes(base: &Config, candidate: &Config) -> Vec<ConfigChange> {
    let mut changes = Vec::new();
    let find = |config: &'_ Config, glob: &str| -> Option<Override> {
        config.overrides.iter().find(|o| o.glob == glob).cloned()
    };
    for o in &candidate.overrides {
        match find(base, &o.glob) {
            None => {
                for (name, value) in override_thresholds(o) {
                    if let Some(value) = value {
                        changes.push(ConfigChange {
                            effect: effect_of(default_threshold(name), value),
                            what: format!(
                                "new override `{}`: {name} {value}% (default {}%); reason: {}",
                                o.glob,
                                default_threshold(name),
                                o.reason
                            ),
                        });
                    }
                }
            }
            Some(before) => {
                for ((name, was), (_, is)) in override_thresholds(&before)
                    .into_iter()
                    .zip(override_thresholds(o))
                {
                    let (was, is) = (
                        was.unwrap_or(default_threshold(name)),
                        is.unwrap_or(default_threshold(name)),
                    );
                    if was != is {
                        changes.push(ConfigChange {
                            effect: effect_of(was, is),
                            what: format!(
                                "override `{}`: {name} {was}% → {is}%; reason: {}",
                                o.glob, o.reason
                            ),
                        });
                    }
                }
                if before.reason != o.reason {
                    changes.push(ConfigChange {
                        effect: Effect::Changes,
                        what: format!("override `{}`: new reason: {}", o.glob, o.reason),
                    });
                }
            }
        }
    }
    for o in &base.overrides {
        if find(candidate, &o.glob).is_none() {
            for (name, value) in override_thresholds(o) {
                if let Some(value) = value {
                    changes.push(ConfigChange {
                        effect: effect_of(value, default_threshold(name)),
                        what: format!(
                            "override `{}` removed: {name} back from {value}% to the default {}%",
                            o.glob,
                            default_threshold(name)
                        ),
                    });
                }
            }
        }
    }
    let globs = |config: &Config| config.overrides.iter().map(|o| o.glob.clone()).collect();
    let (before, after): (Vec<String>, Vec<String>) = (globs(base), globs(candidate));
    let common = |list: &[String], other: &[String]| -> Vec<String> {
        list.iter().filter(|g| other.contains(g)).cloned().collect()
    };
    if common(&before, &after) != common(&after, &before) {
        changes.push(ConfigChange {
            effect: Effect::Changes,
            what: "the order of the overrides changed (the first match wins)".to_owned(),
        });
    }
    let rules = |config: &Config| -> Vec<(String, Vec<String>)> {
        config
            .reference_rules
            .iter()
            .map(|r| (r.glob.clone(), r.floors.clone()))
            .collect()
    };
    if rules(base) != rules(candidate) {
        let describe = |list: Vec<(String, Vec<String>)>| {
            list.iter()
                .map(|(glob, floors)| format!("{glob} → {}", floors.join("+")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        changes.push(ConfigChange {
            effect: Effect::Changes,
            what: format!(
                "[[reference]] rules (stored-mode normalisation) changed: before [{}], now [{}]",
                describe(rules(base)),
                describe(rules(candidate))
            ),
        });
    }
    if base.reference_globs != candidate.reference_globs {
        changes.push(ConfigChange {
            effect: Effect::Changes,
            what: format!(
                "[references] globs changed: {:?} → {:?}",
                base.reference_globs, candidate.reference_globs
            ),
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("perf-gate.toml"))
    }

    #[test]
    fn first_matching_override_wins_and_keeps_other_defaults() {
        let config = parse(
            r#"
            [[override]]
            glob = "cart/checkout/*"
            latency = 50
            reason = "noisy"

            [[override]]
            glob = "cart/**"
            allocations = 45.5
            reason = "caches warm up"
            "#,
        )
        .unwrap();
        let t = config.thresholds_for("cart/checkout/10");
        assert_eq!(
            (
                t.latency_percent,
                t.allocations_percent,
                t.bytes_percent,
                t.round_trips_percent
            ),
            (50.0, 30.0, 30.0, 5.0)
        );
        assert_eq!(
            config.override_for("cart/checkout/10").unwrap().reason,
            "noisy"
        );
        // `*` does not cross a `/`, `**` does.
        let t = config.thresholds_for("cart/checkout/10/deep");
        assert_eq!(t.allocations_percent, 45.5);
        assert_eq!(config.thresholds_for("orders/place"), Thresholds::default());
    }

    #[test]
    fn a_reason_is_mandatory() {
        let err = parse("[[override]]\nglob = \"a/*\"\nlatency = 30\n").unwrap_err();
        assert!(err.to_string().contains("`reason` is mandatory"), "{err}");
        assert!(err.to_string().contains("perf-gate.toml"), "{err}");
        let err = parse("[[override]]\nglob = \"a/*\"\nlatency = 30\nreason = \"  \"\n");
        assert!(err.is_err());
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(parse("[[override]]\nglob = \"a\"\nreason = \"r\"\n").is_err()); // no threshold
        assert!(parse("[[override]]\nglob = \"a\"\nlatency = -5\nreason = \"r\"\n").is_err());
        assert!(parse("[[override]]\nglob = \"[\"\nlatency = 5\nreason = \"r\"\n").is_err());
        assert!(parse("[[override]]\nglob = \"a\"\nlatncy = 5\nreason = \"r\"\n").is_err());
        assert!(matches!(parse("not toml ["), Err(Error::Toml { .. })));
    }

    #[test]
    fn reference_rules_pick_floors_by_name_and_default_to_none() {
        let config = parse(
            r#"
            [references]
            globs = ["*/floor/*"]

            [[reference]]
            glob = "cart/get_cart_*"
            floors = ["redis_get"]
            reason = "a Redis round trip"

            [[reference]]
            glob = "cart/**"
            floors = ["postgres_select_1", "alloc_reference"]
            reason = "PostgreSQL and allocation"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.floors_for("cart/get_cart_hit").unwrap(),
            ["redis_get"]
        );
        assert_eq!(
            config.floors_for("cart/add_item").unwrap(),
            ["postgres_select_1", "alloc_reference"]
        );
        assert_eq!(config.floors_for("orders/get_order"), None);
        assert!(config.is_reference("cart/floor/redis_get"));
        assert!(!config.is_reference("cart/redis_get"));

        let defaults = parse("").unwrap();
        assert!(defaults.is_reference("orders/floor/postgres_select_1"));
        assert!(defaults.reference_rules.is_empty());
    }

    #[test]
    fn bad_reference_rules_are_refused() {
        let no_floors =
            parse("[[reference]]\nglob = \"a/*\"\nfloors = []\nreason = \"r\"\n").unwrap_err();
        assert!(
            no_floors.to_string().contains("reference #1"),
            "{no_floors}"
        );
        let path_not_name =
            parse("[[reference]]\nglob = \"a/*\"\nfloors = [\"a/floor/x\"]\nreason = \"r\"\n")
                .unwrap_err();
        assert!(
            path_not_name.to_string().contains("last segment"),
            "{path_not_name}"
        );
        assert!(parse("[[reference]]\nglob = \"[\"\nfloors = [\"x\"]\nreason = \"r\"\n").is_err());
        let no_reason = parse("[[reference]]\nglob = \"a/*\"\nfloors = [\"x\"]\n").unwrap_err();
        assert!(
            no_reason.to_string().contains("`reason` is mandatory"),
            "{no_reason}"
        );
        assert!(parse("[references]\nglobs = [\"[\"]\n").is_err());
    }

    #[test]
    fn changes_say_which_way_they_move_the_gate() {
        let base = parse(
            r#"
            [[override]]
            glob = "cart/**"
            latency = 30
            reason = "noisy"

            [[override]]
            glob = "orders/**"
            allocations = 40
            reason = "pools warm up"
            "#,
        )
        .unwrap();
        let candidate = parse(
            r#"
            [[override]]
            glob = "cart/**"
            latency = 50
            reason = "noisy"

            [[override]]
            glob = "cache/**"
            round_trips = 2
            reason = "exact"
            "#,
        )
        .unwrap();
        let found = changes(&base, &candidate);
        let summary: Vec<(Effect, &str)> =
            found.iter().map(|c| (c.effect, c.what.as_str())).collect();
        assert_eq!(
            summary,
            [
                (
                    Effect::Loosens,
                    "override `cart/**`: latency 30% → 50%; reason: noisy"
                ),
                (
                    Effect::Tightens,
                    "new override `cache/**`: round_trips 2% (default 5%); reason: exact"
                ),
                (
                    Effect::Tightens,
                    "override `orders/**` removed: allocations back from 40% to the default 30%"
                ),
            ]
        );
        assert!(changes(&base, &base).is_empty());
    }

    #[test]
    fn missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("perf-gate.toml");
        let optional = Config::load(&ConfigFile::Optional(missing.clone())).unwrap();
        assert!(optional.overrides.is_empty());
        let required = Config::load(&ConfigFile::Required(missing));
        assert!(matches!(required, Err(Error::Read { .. })));
    }
}

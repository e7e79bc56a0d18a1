//! Workloads of the `calibration` suite: pure CPU plus an exact number of allocations, both
//! scaled by environment variables so that a regression can be injected on purpose.
//!
//! | Variable | Default | Effect |
//! |---|---|---|
//! | `CALIBRATION_WORK` | `1.0` | multiplies the CPU work per iteration (and so the time) |
//! | `CALIBRATION_ALLOCS` | `1.0` | multiplies the number of allocations per iteration |
//! | `CALIBRATION_BYTES` | `1.0` | multiplies the size of each of those allocations |
//! | `CALIBRATION_ONLY` | all | a glob: the three factors apply only to benchmark ids matching it |
//! | `CALIBRATION_SKIP` | none | a glob: benchmarks whose ids match it are not run at all |
//! | `CALIBRATION_EXTRA` | `0` | `1` adds the benchmark `calibration/extra` |
//! | `CALIBRATION_ONCE` | none | a file path: the factors apply only while it does not exist, and the run that applies them creates it (a regression that shows only in the first of several runs) |
//!
//! Counts are rounded to whole units (`round(base × factor)`). The base loads of the suite are
//! multiples of 10 (60 units of work, 10 allocations of 80 bytes), so factors with one decimal
//! (1.1, 1.3, 1.4) scale them exactly.

use std::hint::black_box;

use globset::{Glob, GlobMatcher};

/// The environment variables, read once by the bench target.
pub const ENV_WORK: &str = "CALIBRATION_WORK";
/// See the module docs.
pub const ENV_ALLOCS: &str = "CALIBRATION_ALLOCS";
/// See the module docs.
pub const ENV_BYTES: &str = "CALIBRATION_BYTES";
/// See the module docs.
pub const ENV_ONLY: &str = "CALIBRATION_ONLY";
/// See the module docs.
pub const ENV_SKIP: &str = "CALIBRATION_SKIP";
/// See the module docs.
pub const ENV_EXTRA: &str = "CALIBRATION_EXTRA";
/// See the module docs.
pub const ENV_ONCE: &str = "CALIBRATION_ONCE";

/// A knob that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A factor that is not a positive finite number.
    #[error("{name}={value:?}: expected a positive number such as 1.3")]
    Factor {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A pattern that is not a valid glob.
    #[error("{name}={value:?} is not a valid glob")]
    Glob {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What globset said.
        #[source]
        source: globset::Error,
    },
    /// The marker file of `CALIBRATION_ONCE` could not be created.
    #[error("{ENV_ONCE}={}: cannot create the marker file", .path.display())]
    Once {
        /// The marker file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A flag that is neither 0 nor 1.
    #[error("{name}={value:?}: expected 0 or 1")]
    Flag {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

/// The knobs of one run.
#[derive(Debug, Clone)]
pub struct Knobs {
    work: f64,
    allocs: f64,
    bytes: f64,
    only: Option<GlobMatcher>,
    skip: Option<GlobMatcher>,
    /// Whether `calibration/extra` is added.
    pub extra: bool,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            work: 1.0,
            allocs: 1.0,
            bytes: 1.0,
            only: None,
            skip: None,
            extra: false,
        }
    }
}

impl Knobs {
    /// Reads the knobs from the process environment, and applies `CALIBRATION_ONCE`: when its
    /// marker file exists the factors are 1; otherwise this run creates it and keeps them.
    pub fn from_env() -> Result<Knobs, Error> {
        let knobs = Knobs::from_lookup(|name| std::env::var(name).ok())?;
        let Some(path) = std::env::var_os(ENV_ONCE).filter(|p| !p.is_empty()) else {
            return Ok(knobs);
        };
        let path = std::path::PathBuf::from(path);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => Ok(knobs),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(Knobs {
                work: 1.0,
                allocs: 1.0,
                bytes: 1.0,
                ..knobs
            }),
            Err(source) => Err(Error::Once { path, source }),
        }
    }

    /// Reads the knobs through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Knobs, Error> {
        let factor = |name: &'static str| -> Result<f64, Error> {
            match lookup(name) {
                None => Ok(1.0),
                Some(value) => match value.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
                    _ => Err(Error::Factor { name, value }),
                },
            }
        };
        let glob = |name: &'static str| -> Result<Option<GlobMatcher>, Error> {
            lookup(name)
                .map(|value| {
                    Glob::new(&value)
                        .map(|g| g.compile_matcher())
                        .map_err(|source| Error::Glob {
                            name,
                            value,
                            source,
                        })
                })
                .transpose()
        };
        let extra = match lookup(ENV_EXTRA).as_deref().map(str::trim) {
            None | Some("" | "0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(Error::Flag {
                    name: ENV_EXTRA,
                    value: other.to_owned(),
                });
            }
        };
        Ok(Knobs {
            work: factor(ENV_WORK)?,
            allocs: factor(ENV_ALLOCS)?,
            bytes: factor(ENV_BYTES)?,
            only: glob(ENV_ONLY)?,
            skip: glob(ENV_SKIP)?,
            extra,
        })
    }

    /// Whether the benchmark `id` runs at all.
    pub fn runs(&self, id: &str) -> bool {
        !self.skip.as_ref().is_some_and(|skip| skip.is_match(id))
    }

    /// The load of benchmark `id`, from its base load and the factors that apply to it.
    pub fn load(&self, id: &str, base: Load) -> Load {
        if self.only.as_ref().is_some_and(|only| !only.is_match(id)) {
            return base;
        }
        let scale = |n: usize, f: f64| (n as f64 * f).round() as usize;
        Load {
            work: scale(base.work, self.work).max(1),
            allocations: scale(base.allocations, self.allocs),
            allocation_size: scale(base.allocation_size, self.bytes).max(1),
        }
    }
}

/// What one iteration of a benchmark does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Units of CPU work (one unit hashes the 64-byte [`input`] once).
    pub work: usize,
    /// Allocations per iteration.
    pub allocations: usize,
    /// Bytes per allocation.
    pub allocation_size: usize,
}

/// 64 bytes of fixed, non-trivial input for the CPU work.
pub fn input() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..64)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// `units` rounds of 64-bit FNV-1a over `data`: CPU work whose cost is linear in `units` and
/// that the compiler cannot skip or vectorise away (each byte depends on the previous state).
pub fn checksum(data: &[u8], units: usize) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for _ in 0..units {
        for &byte in black_box(data) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Exactly `count` heap allocations of `size` bytes each, each written to so it is really used,
/// and freed again before returning.
pub fn allocate(count: usize, size: usize) -> u64 {
    let mut sum = 0_u64;
    for i in 0..count {
        let block = black_box(vec![i as u8; size]);
        sum = sum.wrapping_add(u64::from(block[size - 1]));
    }
    sum
}

/// One iteration of a benchmark with this load.
pub fn iteration(data: &[u8], load: Load) -> u64 {
    checksum(data, load.work) ^ allocate(load.allocations, load.allocation_size)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bench_harness::CountingAllocator;

    use super::*;

    #[global_allocator]
    static GLOBAL: CountingAllocator = CountingAllocator;

    const BASE: Load = Load {
        work: 60,
        allocations: 10,
        allocation_size: 80,
    };

    fn knobs(vars: &[(&str, &str)]) -> Result<Knobs, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Knobs::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn factors_scale_the_base_load_exactly() {
        let k = knobs(&[(ENV_WORK, "1.3"), (ENV_ALLOCS, "1.4"), (ENV_BYTES, "0.5")]).unwrap();
        let load = k.load("calibration/checksum", BASE);
        assert_eq!(
            load,
            Load {
                work: 78,
                allocations: 14,
                allocation_size: 40
            }
        );
    }

    #[test]
    fn only_limits_the_factors_to_matching_ids() {
        let k = knobs(&[(ENV_WORK, "2"), (ENV_ONLY, "calibration/fold/*")]).unwrap();
        assert_eq!(k.load("calibration/fold/1024", BASE).work, 120);
        assert_eq!(k.load("calibration/checksum", BASE), BASE);
    }

    #[test]
    fn skip_and_extra() {
        let k = knobs(&[(ENV_SKIP, "calibration/async*"), (ENV_EXTRA, "1")]).unwrap();
        assert!(!k.runs("calibration/async_checksum"));
        assert!(k.runs("calibration/checksum"));
        assert!(k.extra);
        assert!(!Knobs::default().extra);
    }

    #[test]
    fn bad_knobs_are_errors() {
        assert!(matches!(
            knobs(&[(ENV_WORK, "fast")]),
            Err(Error::Factor { .. })
        ));
        assert!(matches!(
            knobs(&[(ENV_ALLOCS, "-1")]),
            Err(Error::Factor { .. })
        ));
        assert!(matches!(knobs(&[(ENV_ONLY, "[")]), Err(Error::Glob { .. })));
        assert!(matches!(
            knobs(&[(ENV_EXTRA, "yes")]),
            Err(Error::Flag { .. })
        ));
    }

    #[test]
    fn an_iteration_allocates_exactly_its_load() {
        let data = input();
        let load = Load {
            work: 1,
            allocations: 14,
            allocation_size: 48,
        };
        // Other test threads can only add to the process-wide counters; the least of a few
        // readings is this iteration's own count.
        let counted = (0..20)
            .map(|_| {
                let before = bench_harness::counts();
                black_box(iteration(&data, load));
                bench_harness::counts() - before
            })
            .min_by_key(|c| (c.allocations, c.bytes))
            .unwrap();
        assert_eq!(counted.allocations, 14);
        assert_eq!(counted.bytes, 14 * 48);
    }

    #[test]
    fn checksum_work_is_not_constant() {
        let data = input();
        assert_ne!(checksum(&data, 1), checksum(&data, 2));
    }
}

//! Where a measurement was taken: the machine, the toolchain and the code.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// What a baseline records about the place it was measured. Timings from two places with
/// different hardware, OS or compiler are not comparable, which the reports say loudly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// The CPU model name (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Logical cores available to the process (affinity and cgroup limits included).
    pub logical_cores: u64,
    /// Total memory in bytes (`/proc/meminfo`).
    pub memory_bytes: u64,
    /// Kernel and distribution, e.g. `Linux 6.1.0-18-amd64 (Debian GNU/Linux 12 (bookworm))`.
    pub os: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The commit the code was at, with `-dirty` if tracked files had changes. Informational.
    pub git_commit: String,
    /// When the fingerprint was taken (RFC 3339, UTC). Informational.
    pub date: String,
}

/// One field in which two fingerprints differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The field's name, as in [`Fingerprint`].
    pub field: &'static str,
    /// The baseline's value.
    pub baseline: String,
    /// This machine's value.
    pub current: String,
}

const UNKNOWN: &str = "unknown";
const GIB: f64 = (1u64 << 30) as f64;

impl Fingerprint {
    /// The fingerprint of this machine, toolchain and the checkout at `repository`. Whatever
    /// cannot be found out is `unknown` (or 0): a fingerprint never stops the gate.
    pub fn current(repository: &Path) -> Fingerprint {
        Fingerprint {
            cpu_model: cpu_model().unwrap_or_else(|| UNKNOWN.to_owned()),
            logical_cores: std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
            memory_bytes: memory_bytes().unwrap_or(0),
            os: os(),
            rustc: rustc_version().unwrap_or_else(|| UNKNOWN.to_owned()),
            git_commit: git_commit(repository).unwrap_or_else(|| UNKNOWN.to_owned()),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// The fields that make `self` (a baseline's fingerprint) a different place from `current`:
    /// CPU model, cores, memory, OS and rustc. Memory is compared in whole GiB, because the
    /// total a kernel reports moves by a few MiB between kernel versions on the same hardware.
    /// The commit and the date always differ and are not compared.
    pub fn differences(&self, current: &Fingerprint) -> Vec<Difference> {
        let mut differences = Vec::new();
        let mut compare = |field: &'static str, baseline: String, now: String, same: bool| {
            if !same {
                differences.push(Difference {
                    field,
                    baseline,
                    current: now,
                });
            }
        };
        compare(
            "cpu_model",
            self.cpu_model.clone(),
            current.cpu_model.clone(),
            self.cpu_model == current.cpu_model,
        );
        compare(
            "logical_cores",
            self.logical_cores.to_string(),
            current.logical_cores.to_string(),
            self.logical_cores == current.logical_cores,
        );
        let gib = |bytes: u64| (bytes as f64 / GIB).round();
        compare(
            "memory",
            format!("{} GiB", gib(self.memory_bytes)),
            format!("{} GiB", gib(current.memory_bytes)),
            gib(self.memory_bytes) == gib(current.memory_bytes),
        );
        compare(
            "os",
            self.os.clone(),
            current.os.clone(),
            self.os == current.os,
        );
        compare(
            "rustc",
            self.rustc.clone(),
            current.rustc.clone(),
            self.rustc == current.rustc,
        );
        differences
    }
}

/// Runs a program and returns its trimmed standard output if it succeeded. The only child
/// processes of this crate are these read-only queries (`rustc --version`, `git rev-parse`).
fn output_of(program: &str, args: &[&str], dir: Option<&Path>) -> Option<String> {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned())
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn os() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| format!("Linux {}", release.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    let distribution = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|release| {
            release.lines().find_map(|line| {
                let value = line.strip_prefix("PRETTY_NAME=")?;
                Some(value.trim_matches('"').to_owned())
            })
        });
    match distribution {
        Some(distribution) => format!("{kernel} ({distribution})"),
        None => kernel,
    }
}

fn rustc_version() -> Option<String> {
    // `RUSTC` is how cargo and rustup say which compiler is in use; the benchmarks were built
    // with the same one.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    output_of(&rustc, &["--version"], None)
}

fn git_commit(repository: &Path) -> Option<String> {
    let commit = output_of("git", &["rev-parse", "HEAD"], Some(repository))?;
    let status = output_of(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        Some(repository),
    )?;
    Some(if status.is_empty() {
        commit
    } else {
        format!("{commit}-dirty")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Fingerprint {
        Fingerprint {
            cpu_model: "Intel(R) Xeon(R) Processor".into(),
            logical_cores: 2,
            memory_bytes: 24 * (1 << 30),
            os: "Linux 6.1.0 (Debian GNU/Linux 12 (bookworm))".into(),
            rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            git_commit: "abc".into(),
            date: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn commit_date_and_a_few_mib_of_memory_are_not_differences() {
        let mut other = sample();
        other.git_commit = "def".into();
        other.date = "2026-02-02T00:00:00Z".into();
        other.memory_bytes -= 40 << 20;
        assert_eq!(sample().differences(&other), vec![]);
    }

    #[test]
    fn hardware_os_and_compiler_are_differences() {
        let mut other = sample();
        other.cpu_model = "AMD EPYC 7763".into();
        other.logical_cores = 4;
        other.memory_bytes = 16 << 30;
        other.os = "Linux 6.8.0 (Ubuntu 24.04 LTS)".into();
        other.rustc = "rustc 1.96.0".into();
        let fields: Vec<_> = sample()
            .differences(&other)
            .iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(
            fields,
            ["cpu_model", "logical_cores", "memory", "os", "rustc"]
        );
        let memory = &sample().differences(&other)[2];
        assert_eq!(
            (memory.baseline.as_str(), memory.current.as_str()),
            ("24 GiB", "16 GiB")
        );
    }

    #[test]
    fn this_machine_has_a_fingerprint() {
        let here = Fingerprint::current(Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(here.logical_cores > 0);
        assert!(here.rustc.starts_with("rustc "), "{here:?}");
        assert_eq!(here.differences(&here), vec![]);
    }
}

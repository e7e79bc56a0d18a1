//! The benchmark suites: one bench crate per suite under `benches/`, whose folder name is the
//! suite, the package and the `[[bench]]` target.

use std::path::Path;

use anyhow::{Context, bail};

/// Every suite of the workspace, sorted.
pub(crate) fn discover(root: &Path) -> anyhow::Result<Vec<String>> {
    let benches = root.join("benches");
    let mut suites = Vec::new();
    for entry in std::fs::read_dir(&benches)
        .with_context(|| format!("cannot list the bench crates in {}", benches.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", benches.display()))?;
        let has_bench = entry
            .path()
            .join("benches")
            .join(format!("{}.rs", entry.file_name().to_string_lossy()))
            .is_file();
        if entry.path().join("Cargo.toml").is_file() && has_bench {
            suites.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    suites.sort();
    Ok(suites)
}

/// The suite that measures the gate itself (`cargo xtask gate calibrate`), not the product: it
/// runs only when named.
pub(crate) const CALIBRATION: &str = "calibration";

/// The suites named by `--suite`, checked against what exists; when none is named, every suite
/// but [`CALIBRATION`].
pub(crate) fn select(root: &Path, wanted: &[String]) -> anyhow::Result<Vec<String>> {
    let all = discover(root)?;
    if wanted.is_empty() {
        return Ok(all
            .into_iter()
            .filter(|suite| suite != CALIBRATION)
            .collect());
    }
    let mut selected = Vec::new();
    for name in wanted {
        if !all.contains(name) {
            bail!(
                "there is no suite `{name}`; the suites are: {}",
                all.join(", ")
            );
        }
        if !selected.contains(name) {
            selected.push(name.clone());
        }
    }
    Ok(selected)
}

/// A criterion filter that matches exactly the given ids (criterion reads it as a regex).
pub(crate) fn exact_filter<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let alternatives: Vec<String> = ids.into_iter().map(escape_regex).collect();
    format!("^(?:{})$", alternatives.join("|"))
}

/// Escapes the characters a regex treats specially. Hand-written: xtask keeps its own
/// dependencies few, and ids are plain ASCII names.
fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_filter_escapes_and_anchors() {
        assert_eq!(
            exact_filter(["cart/get_cart/10", "a.b+c"]),
            r"^(?:cart/get_cart/10|a\.b\+c)$"
        );
    }
}

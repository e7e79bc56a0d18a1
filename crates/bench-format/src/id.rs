//! `BenchmarkId`: `<suite>/<operation>[/<parameter>]`, checked once and split in one place.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A benchmark's id: its suite (the first `/`-separated segment: the criterion group, the
/// bench crate and the baseline file), then the operation and an optional parameter, e.g.
/// `cart/add_item` or `orders/list_orders/100_of_1000`.
///
/// Every segment is non-empty, and there are at least two of them. Ids order, compare and hash
/// as their text, and a `BTreeMap<BenchmarkId, _>` can be searched with a `&str`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BenchmarkId(String);

/// Why a text is not a benchmark id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{id:?} is not a benchmark id: {reason} (ids are `<suite>/<operation>[/<parameter>]`)")]
pub struct IdError {
    /// The text.
    pub id: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl BenchmarkId {
    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<BenchmarkId, IdError> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if !id.contains('/') {
            Some("it has no `/` after the suite")
        } else if id.split('/').any(str::is_empty) {
            Some("it has an empty segment")
        } else if id.chars().any(char::is_control) {
            Some("it holds a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(IdError { id, reason }),
            None => Ok(BenchmarkId(id)),
        }
    }

    /// The id of `name` (`<operation>[/<parameter>]`) in `suite`.
    pub fn in_suite(suite: &str, name: &str) -> Result<BenchmarkId, IdError> {
        BenchmarkId::new(format!("{suite}/{name}"))
    }

    /// The whole id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The suite: the first segment.
    pub fn suite(&self) -> &str {
        self.split().0
    }

    /// Everything after the suite: `<operation>[/<parameter>]`.
    pub fn name(&self) -> &str {
        self.split().1
    }

    /// The last segment (`redis_get` for `cart/floor/redis_get`): how `[[reference]]` rules
    /// name a suite's floors.
    pub fn last_segment(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    fn split(&self) -> (&str, &str) {
        self.0
            .split_once('/')
            .expect("a BenchmarkId has at least two segments")
    }
}

impl fmt::Display for BenchmarkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BenchmarkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for BenchmarkId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<BenchmarkId, IdError> {
        BenchmarkId::new(s)
    }
}

impl AsRef<str> for BenchmarkId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Sound because `Eq`, `Ord` and `Hash` are derived from the one `String` field, so they agree
// with `str`'s.
impl Borrow<str> for BenchmarkId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for BenchmarkId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for BenchmarkId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for BenchmarkId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BenchmarkId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BenchmarkId, D::Error> {
        let text = String::deserialize(deserializer)?;
        BenchmarkId::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn parts() {
        let id = BenchmarkId::new("orders/list_orders/100_of_1000").unwrap();
        assert_eq!(id.suite(), "orders");
        assert_eq!(id.name(), "list_orders/100_of_1000");
        assert_eq!(id.last_segment(), "100_of_1000");
        assert_eq!(id.to_string(), "orders/list_orders/100_of_1000");
        let short = BenchmarkId::in_suite("cart", "add_item").unwrap();
        assert_eq!((short.suite(), short.name()), ("cart", "add_item"));
    }

    #[test]
    fn malformed_ids_are_refused_with_a_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("lonely", "no `/`"),
            ("cart//x", "empty segment"),
            ("/x", "empty segment"),
            ("cart/x/", "empty segment"),
            ("cart/a\nb", "control"),
        ] {
            let err = BenchmarkId::new(text).unwrap_err();
            assert!(err.to_string().contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn maps_are_searched_by_text_and_json_is_a_string() {
        let id = BenchmarkId::new("cart/add_item").unwrap();
        let map = BTreeMap::from([(id.clone(), 1)]);
        assert_eq!(map.get("cart/add_item"), Some(&1));
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"cart/add_item\"");
        let back: BenchmarkId = serde_json::from_str("\"cart/add_item\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<BenchmarkId>("\"nope\"").is_err());
    }
}

//! Case-insensitive option maps, as Spark's `CaseInsensitiveMap`.
//!
//! Users copy option names from Spark jobs (`maxFilesPerTrigger`, `checkpointLocation`) in any
//! case; Spark accepts them regardless, so must we. Unlike Spark, an option nobody reads is an
//! error: a typo such as `maxFilePerTrigger` would otherwise silently change nothing.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::error::{Result, SluiceError};

/// Options given in a `WITH (...)` clause or by `SET`, keyed case-insensitively.
///
/// `Debug` shows the redacted view ([`crate::redact::redact_value`]), so a type holding options
/// can derive `Debug` and be logged without printing a password; `Serialize` keeps every value
/// (task specs carry them to executors).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// lower-cased key → (key as the user spelled it, value)
    entries: BTreeMap<String, (String, String)>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k, crate::redact::redact_value(k, v)))).finish()
    }
}

impl Options {
    /// An empty option map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from pairs; later pairs win, as with repeated Spark `.option()` calls.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut o = Self::new();
        for (k, v) in pairs {
            o.insert(k, v);
        }
        o
    }

    /// Sets `key` (any case) to `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.entries.insert(key.to_ascii_lowercase(), (key, value.into()));
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.entries.remove(&key.to_ascii_lowercase()).map(|(_, v)| v)
    }

    /// The value of `key`, case-insensitively.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(&key.to_ascii_lowercase()).map(|(_, v)| v.as_str())
    }

    /// True if `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(&key.to_ascii_lowercase())
    }

    /// The value of a required option, or a user error naming it.
    pub fn required(&self, key: &str, owner: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| SluiceError::user(format!("{owner}: option '{key}' is required")))
    }

    /// Parses `key` with `FromStr`, or returns `default` when unset.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T, owner: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_value(key, v, owner),
        }
    }

    /// Parses `key` with `FromStr` when it is set.
    pub fn parse_opt<T: FromStr>(&self, key: &str, owner: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key).map(|v| parse_value(key, v, owner)).transpose()
    }

    /// Parses a Spark boolean option (`true`/`false`, any case).
    pub fn bool_or(&self, key: &str, default: bool, owner: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(SluiceError::user(format!(
                    "{owner}: option '{key}' must be true or false, got '{}'",
                    crate::redact::redact_value(key, v)
                ))),
            },
        }
    }

    /// Fails with a message naming the first option not in `valid` and listing the valid ones.
    pub fn check_known(&self, valid: &[&str], owner: &str) -> Result<()> {
        for (lower, (spelled, _)) in &self.entries {
            if !valid.iter().any(|v| v.eq_ignore_ascii_case(lower)) {
                let mut names: Vec<&str> = valid.to_vec();
                names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
                return Err(SluiceError::user(format!(
                    "unknown option '{spelled}' for {owner}; valid options are: {}",
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Iterates (key as spelled, value) in case-insensitive key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.values().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True if no option is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_value<T: FromStr>(key: &str, v: &str, owner: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    v.trim().parse::<T>().map_err(|e| {
        let shown = crate::redact::redact_value(key, v);
        SluiceError::user(format!("{owner}: invalid value '{shown}' for option '{key}': {e}"))
    })
}

/// Spark's `Utils.timeStringAsMs`: `7d`, `12h`, `30m`, `10s`, `500ms`; a bare number is ms.
pub fn parse_duration_ms(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| SluiceError::user(format!("invalid duration '{text}'")))?;
    let mult = match unit.trim() {
        "" | "ms" => 1,
        "s" | "sec" | "secs" => 1000,
        "m" | "min" | "mins" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "us" => return Ok(n / 1000),
        other => return Err(SluiceError::user(format!("invalid duration unit '{other}' in '{text}'"))),
    };
    Ok(n.saturating_mul(mult))
}

/// Spark's `Utils.byteStringAsBytes`: `1024`, `64k`, `128m`, `1g`, `10mb`.
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| SluiceError::user(format!("invalid byte size '{text}'")))?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        other => return Err(SluiceError::user(format!("invalid byte unit '{other}' in '{text}'"))),
    };
    Ok(n.saturating_mul(mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_like_spark() {
        let o = Options::from_pairs([("maxFilesPerTrigger", "3")]);
        assert_eq!(o.get("MAXFILESPERTRIGGER"), Some("3"));
        assert_eq!(o.parse_or::<usize>("maxfilespertrigger", 1, "files").unwrap(), 3);
    }

    #[test]
    fn unknown_option_is_named_with_the_valid_ones() {
        let o = Options::from_pairs([("maxFilePerTrigger", "3")]);
        let e = o.check_known(&["path", "maxFilesPerTrigger"], "connector 'files'").unwrap_err();
        assert_eq!(
            e.message,
            "unknown option 'maxFilePerTrigger' for connector 'files'; valid options are: maxFilesPerTrigger, path"
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration_ms("7d").unwrap(), 604_800_000);
        assert_eq!(parse_duration_ms("1500").unwrap(), 1500);
        assert_eq!(parse_bytes("128m").unwrap(), 128 << 20);
        assert!(parse_bytes("12 parsecs").is_err());
    }
}

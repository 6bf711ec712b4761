//! Spark's time arithmetic: interval strings, delay conversion and timestamp rendering.
//!
//! Spark measures event time in microseconds but watermarks in milliseconds, converts with
//! `floorDiv`, counts a month as 31 days when turning a watermark delay into milliseconds, and
//! renders progress timestamps as `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`. Getting any of these subtly
//! different shifts which rows are late, so they live here, once (docs/semantics.md §0, §3).

use crate::error::{Result, SluiceError};

/// A Spark `CalendarInterval`: months, days and microseconds kept apart, as Spark does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// Whole months (years count 12).
    pub months: i32,
    /// Whole days (weeks count 7).
    pub days: i32,
    /// Everything below a day.
    pub micros: i64,
}

/// Microseconds in a millisecond: the step between event time (µs) and watermarks (ms).
pub const MICROS_PER_MILLI: i64 = 1_000;
/// Microseconds in a second.
pub const MICROS_PER_SECOND: i64 = 1_000_000;
/// Microseconds in a 24-hour day (Spark's `MICROS_PER_DAY`), used for the days of fixed-length intervals.
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
const MILLIS_PER_DAY: i64 = 86_400_000;

impl Interval {
    /// The watermark delay in milliseconds (`EventTimeWatermark.getDelayMs`): a month is 31 days.
    pub fn delay_ms(&self) -> i64 {
        (self.months as i64 * 31 + self.days as i64) * MILLIS_PER_DAY + self.micros / MICROS_PER_MILLI
    }

    /// Total microseconds for intervals without months (window durations); months are rejected
    /// because their length varies.
    pub fn fixed_micros(&self, what: &str) -> Result<i64> {
        if self.months != 0 {
            return Err(SluiceError::user(format!("Intervals greater than or equal to a month is not supported ({what}).")));
        }
        (self.days as i64).checked_mul(MICROS_PER_DAY).and_then(|days| days.checked_add(self.micros)).ok_or_else(|| {
            SluiceError::user(format!("the interval is too large ({what}): it does not fit in 64-bit microseconds"))
        })
    }

    /// True for a negative interval; Spark rejects these as watermark delays.
    pub fn is_negative(&self) -> bool {
        self.months < 0 || self.days < 0 || self.micros < 0
    }
}

/// Parses Spark interval text: `10 seconds`, `1 hour 30 minutes`, `interval 5 minutes`,
/// `2 days`, `500 milliseconds`, `1 week`, `-3 hours`.
pub fn parse_interval(text: &str) -> Result<Interval> {
    let bad = |why: &str| SluiceError::user(format!("invalid interval '{text}': {why}"));
    let mut words = text.split_whitespace().peekable();
    if words.peek().is_some_and(|w| w.eq_ignore_ascii_case("interval")) {
        words.next();
    }
    let mut iv = Interval::default();
    let mut any = false;
    while let Some(num) = words.next() {
        let (num, unit_inline) = split_number(num);
        let unit = match unit_inline {
            Some(u) => u.to_string(),
            None => words.next().ok_or_else(|| bad("a number needs a unit"))?.to_string(),
        };
        let unit = unit.trim_matches('\'').to_ascii_lowercase();
        let (whole, frac) = parse_decimal(num).ok_or_else(|| bad("not a number"))?;
        // Every step is checked: the text comes from users (and from checkpoints and task
        // payloads), and an overflow would panic the driver rather than fail the query.
        let too_large = || bad("too large");
        let per_unit_micros: Option<i64> = match unit.trim_end_matches('s') {
            "year" | "y" => {
                iv.months = add_i32(iv.months, whole.checked_mul(12)).ok_or_else(too_large)?;
                None
            }
            "month" | "mon" => {
                iv.months = add_i32(iv.months, Some(whole)).ok_or_else(too_large)?;
                None
            }
            "week" | "w" => {
                iv.days = add_i32(iv.days, whole.checked_mul(7)).ok_or_else(too_large)?;
                None
            }
            "day" | "d" => {
                iv.days = add_i32(iv.days, Some(whole)).ok_or_else(too_large)?;
                None
            }
            "hour" | "h" | "hr" => Some(3_600 * MICROS_PER_SECOND),
            "minute" | "min" | "m" => Some(60 * MICROS_PER_SECOND),
            "second" | "sec" | "" => Some(MICROS_PER_SECOND),
            "millisecond" | "milli" | "ms" => Some(MICROS_PER_MILLI),
            "microsecond" | "micro" | "us" => Some(1),
            _ => return Err(bad(&format!("unknown unit '{unit}'"))),
        };
        if let Some(per) = per_unit_micros {
            iv.micros = whole
                .checked_mul(per)
                .and_then(|m| m.checked_add((frac * per as f64).round() as i64))
                .and_then(|m| iv.micros.checked_add(m))
                .ok_or_else(too_large)?;
        } else if frac != 0.0 {
            return Err(bad("fractions are only allowed for hours and smaller units"));
        }
        any = true;
    }
    if !any {
        return Err(bad("empty"));
    }
    Ok(iv)
}

fn split_number(word: &str) -> (&str, Option<&str>) {
    let end = word
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '-' || *c == '+'))))
        .map(|(i, _)| i)
        .unwrap_or(word.len());
    if end == word.len() {
        (word, None)
    } else {
        (&word[..end], Some(&word[end..]))
    }
}

fn parse_decimal(s: &str) -> Option<(i64, f64)> {
    let s = s.trim_matches('\'');
    if s.contains('.') {
        let v: f64 = s.parse().ok()?;
        let whole = v.trunc();
        Some((whole as i64, v - whole))
    } else {
        Some((s.parse().ok()?, 0.0))
    }
}

/// `base + add` when `add` was computed without overflow and the sum fits an `i32`.
fn add_i32(base: i32, add: Option<i64>) -> Option<i32> {
    i32::try_from(add?).ok().and_then(|a| base.checked_add(a))
}

/// Spark's `DateTimeUtils.microsToMillis`: floor division, also for negative values.
pub fn micros_to_millis(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_MILLI)
}

/// Renders epoch milliseconds as Spark's progress timestamp `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`.
pub fn format_iso_millis(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Converts any Arrow timestamp array to microseconds (Spark's unit), keeping nulls.
pub fn to_micros(array: &arrow::array::ArrayRef) -> datafusion::common::Result<arrow::array::TimestampMicrosecondArray> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, TimeUnit};
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Ok(array.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().clone().with_timezone_opt(None::<String>))
        }
        DataType::Timestamp(_, _) => {
            let c = arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            Ok(c.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().clone())
        }
        other => datafusion::common::exec_err!("expected a timestamp, got {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_counts_a_month_as_31_days() {
        assert_eq!(parse_interval("1 month").unwrap().delay_ms(), 31 * 86_400_000);
        assert_eq!(parse_interval("1 year").unwrap().delay_ms(), 12 * 31 * 86_400_000);
        assert_eq!(parse_interval("10 seconds").unwrap().delay_ms(), 10_000);
        assert_eq!(parse_interval("interval 1 hour 30 minutes").unwrap().delay_ms(), 5_400_000);
        assert_eq!(parse_interval("500 milliseconds").unwrap().delay_ms(), 500);
        assert_eq!(parse_interval("2 days").unwrap().fixed_micros("w").unwrap(), 2 * MICROS_PER_DAY);
        assert_eq!(parse_interval("10s").unwrap().micros, 10 * MICROS_PER_SECOND);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(parse_interval("ten seconds").is_err());
        assert!(parse_interval("10 parsecs").is_err());
        assert!(parse_interval("").is_err());
        assert!(parse_interval("1 month").unwrap().fixed_micros("window").is_err());
    }

    #[test]
    fn overflowing_intervals_are_errors_not_panics() {
        for text in
            ["9223372036854775807 years", "2147483647 days 1 day", "9223372036854775807 hours", "-9223372036854775808 weeks"]
        {
            assert!(parse_interval(text).unwrap_err().message.contains("too large"), "{text}");
        }
        assert!(parse_interval("9223372036854775807 microseconds 1 microsecond").is_err());
        let days = parse_interval("2147483647 days").unwrap();
        assert!(days.fixed_micros("window").unwrap_err().message.contains("too large"));
    }

    #[test]
    fn millis_floor_like_spark() {
        assert_eq!(micros_to_millis(-1), -1);
        assert_eq!(micros_to_millis(1_999), 1);
        assert_eq!(format_iso_millis(15_000), "1970-01-01T00:00:15.000Z");
    }
}

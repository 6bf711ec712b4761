//! Spark's text form of DATE and TIMESTAMP values (`DateFormatter` / the "fraction" timestamp
//! formatter behind `CAST(… AS STRING)` and `Dataset.show`).
//!
//! Spark 3+ uses the proleptic Gregorian calendar and the `uuuu-MM-dd HH:mm:ss[.ffffff]` layout,
//! where the year follows `java.time`'s `EXCEEDS_PAD` sign style (`0001`, `-0001`, `+10000`)
//! and the fraction keeps only its significant digits. The conversion is done with plain
//! integer arithmetic rather than chrono so that every value an Arrow column can hold renders
//! (chrono stops at ±262 143 years) and no input can make formatting fail.

use arrow::datatypes::TimeUnit;

/// Microseconds in one day.
const MICROS_PER_DAY: i128 = 86_400_000_000;

/// Renders a day count since 1970-01-01 as Spark's `yyyy-MM-dd`.
pub(super) fn format_date(days: i64) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, days);
    out
}

/// Renders an Arrow timestamp value of the given unit as Spark's `yyyy-MM-dd HH:mm:ss[.f…]`.
///
/// The wall clock is UTC (sluice runs sessions in UTC, and TIMESTAMP_NTZ values are stored as
/// if they were UTC). Nanosecond values are floored to microseconds first because Spark's
/// timestamps have microsecond precision.
pub(super) fn format_timestamp(value: i64, unit: TimeUnit) -> String {
    let micros = to_micros(value, unit);
    let days = micros.div_euclid(MICROS_PER_DAY);
    let micros_of_day = micros.rem_euclid(MICROS_PER_DAY);
    let secs_of_day = micros_of_day / 1_000_000;
    let fraction = micros_of_day % 1_000_000;

    let mut out = String::with_capacity(26);
    // |days| < 2^63 / 86 400 since the input is an i64 count of at least seconds.
    push_date(&mut out, days as i64);
    out.push_str(&format!(" {:02}:{:02}:{:02}", secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60));
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// Converts a timestamp in any Arrow unit to microseconds, widened so no unit can overflow.
fn to_micros(value: i64, unit: TimeUnit) -> i128 {
    let value = i128::from(value);
    match unit {
        TimeUnit::Second => value * 1_000_000,
        TimeUnit::Millisecond => value * 1_000,
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => value.div_euclid(1_000),
    }
}

/// Appends `yyyy-MM-dd` for a day count since the epoch.
fn push_date(out: &mut String, days: i64) {
    let (year, month, day) = civil_from_days(days);
    push_year(out, year);
    out.push_str(&format!("-{month:02}-{day:02}"));
}

/// Appends a year the way `java.time` prints pattern `uuuu`: four digits zero-padded, a `-`
/// for years before year 0, and a `+` once the year needs more than four digits.
fn push_year(out: &mut String, year: i64) {
    if year > 9999 {
        out.push_str(&format!("+{year}"));
    } else if year < 0 {
        out.push_str(&format!("-{:04}", year.unsigned_abs()));
    } else {
        out.push_str(&format!("{year:04}"));
    }
}

/// Proleptic Gregorian (year, month, day) for a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`, valid for the whole `i64` range the callers produce.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // March-based month, [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_use_proleptic_gregorian_and_java_year_signs() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(-1), "1969-12-31");
        assert_eq!(format_date(16_887), "2016-03-27");
        assert_eq!(format_date(11_016), "2000-02-29");
        assert_eq!(format_date(-719_162), "0001-01-01");
        assert_eq!(format_date(-719_528), "0000-01-01");
        assert_eq!(format_date(-719_529), "-0001-12-31");
        assert_eq!(format_date(2_932_897), "+10000-01-01");
    }

    #[test]
    fn timestamps_trim_fraction_and_floor_before_epoch() {
        let us = TimeUnit::Microsecond;
        assert_eq!(format_timestamp(1_459_107_574_000_000, us), "2016-03-27 19:39:34");
        assert_eq!(format_timestamp(1_459_107_574_500_000, us), "2016-03-27 19:39:34.5");
        assert_eq!(format_timestamp(1_459_107_574_123_456, us), "2016-03-27 19:39:34.123456");
        assert_eq!(format_timestamp(1_459_107_574_000_010, us), "2016-03-27 19:39:34.00001");
        assert_eq!(format_timestamp(-1, us), "1969-12-31 23:59:59.999999");
        assert_eq!(format_timestamp(-1_500_000, us), "1969-12-31 23:59:58.5");
    }

    #[test]
    fn other_units_are_normalised_to_micros() {
        assert_eq!(format_timestamp(1_459_107_574, TimeUnit::Second), "2016-03-27 19:39:34");
        assert_eq!(format_timestamp(1_459_107_574_250, TimeUnit::Millisecond), "2016-03-27 19:39:34.25");
        assert_eq!(format_timestamp(1_459_107_574_123_456_789, TimeUnit::Nanosecond), "2016-03-27 19:39:34.123456");
        assert_eq!(format_timestamp(-1, TimeUnit::Nanosecond), "1969-12-31 23:59:59.999999");
        assert!(format_timestamp(i64::MIN, TimeUnit::Second).starts_with("-292277022657-"));
    }
}

//! Spark's string ↔ TIMESTAMP/DATE conversions for the file formats.
//!
//! Without a user format Spark 3 parses with `DateTimeUtils.stringToTimestamp`/`stringToDate`,
//! a hand-written lenient scanner (`2024-1-5 7:03`, `2024-01-05T07:03:00.123456789+01:00`,
//! `2024`, ` 2024-01-05 `), not with a pattern; with `timestampFormat`/`dateFormat` it parses
//! strictly with a `DateTimeFormatter`. Writers default to `yyyy-MM-dd'T'HH:mm:ss.SSSXXX` and
//! `yyyy-MM-dd`. The session time zone is UTC. Values are microseconds (TIMESTAMP) and days
//! (DATE) since the epoch.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};

use super::pattern::Pattern;
use super::zone::Zone;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;

const UNIX_EPOCH_DAY_FROM_CE: i32 = 719_163;

/// Microseconds since the epoch of a UTC date-time; `None` on overflow.
pub(crate) fn micros_of(utc: NaiveDateTime) -> Option<i64> {
    let t = utc.and_utc();
    t.timestamp().checked_mul(1_000_000)?.checked_add(i64::from(t.timestamp_subsec_micros()))
}

/// The UTC date-time of microseconds since the epoch.
pub(crate) fn datetime_of_micros(micros: i64) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

/// Days since the epoch of a date.
pub(crate) fn days_of(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAY_FROM_CE
}

/// The date of days since the epoch.
pub(crate) fn date_of_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAY_FROM_CE)?)
}

/// Java's `Character.isWhitespace || isISOControl` on a byte, as Spark's trimming uses.
fn is_trim_byte(b: u8) -> bool {
    b <= 0x20 || b == 0x7f
}

/// The pieces `DateTimeUtils.parseTimestampString` extracts.
struct Segments<'a> {
    /// year, month, day, hour, minute, second, microsecond
    v: [i32; 7],
    zone: Option<&'a str>,
    just_time: bool,
}

/// A port of Spark's `parseTimestampString`: `[+-]yyyy*[-[m]m[-[d]d[( |T)[h]h[:[m]m[:[s]s[.frac]]]]]][zone]`,
/// `[h]h:[m]m[:[s]s…]` and `T[h]h…`.
fn parse_segments(s: &str) -> Option<Segments<'_>> {
    fn valid(segment: usize, digits: u32) -> bool {
        segment == 6
            || (segment == 0 && (4..=6).contains(&digits))
            || (segment == 7 && digits <= 2)
            || (segment != 0 && segment != 6 && segment != 7 && (1..=2).contains(&digits))
    }
    let b = s.as_bytes();
    let mut j = b.iter().position(|&c| !is_trim_byte(c))?;
    let end = b.iter().rposition(|&c| !is_trim_byte(c))? + 1;
    let mut seg = [1, 1, 1, 0, 0, 0, 0, 0, 0];
    let (mut i, mut value, mut digits, mut frac_digits) = (0usize, 0i32, 0u32, 0u32);
    let mut just_time = false;
    let mut year_sign = None;
    let mut zone = None;
    if b[j] == b'-' || b[j] == b'+' {
        year_sign = Some(if b[j] == b'-' { -1 } else { 1 });
        j += 1;
    }
    macro_rules! close {
        ($seg:expr) => {{
            if !valid($seg, digits) {
                return None;
            }
            seg[$seg] = value;
            value = 0;
            digits = 0;
        }};
    }
    while j < end {
        let c = b[j];
        if c.is_ascii_digit() {
            if i == 6 {
                frac_digits += 1;
            }
            // Fraction digits past the sixth are dropped (truncation to microseconds).
            if i != 6 || digits < 6 {
                value = value.wrapping_mul(10).wrapping_add(i32::from(c - b'0'));
            }
            digits += 1;
        } else if j == 0 && c == b'T' {
            just_time = true;
            i += 3;
        } else if i < 2 {
            if c == b'-' {
                close!(i);
                i += 1;
            } else if i == 0 && c == b':' && year_sign.is_none() {
                just_time = true;
                close!(3);
                i = 4;
            } else {
                return None;
            }
        } else if i == 2 {
            if c != b' ' && c != b'T' {
                return None;
            }
            close!(i);
            i += 1;
        } else if i == 3 || i == 4 {
            if c != b':' {
                return None;
            }
            close!(i);
            i += 1;
        } else if i == 5 || i == 6 {
            if c == b'.' && i == 5 {
                close!(i);
                i += 1;
            } else {
                close!(i);
                i += 1;
                zone = Some(s.get(j..end)?);
                j = end - 1;
            }
            if i == 6 && c != b'.' {
                i += 1;
            }
        } else if i < 9 && (c == b':' || c == b' ') {
            close!(i);
            i += 1;
        } else {
            return None;
        }
        j += 1;
    }
    if i >= seg.len() || !valid(i, digits) {
        return None;
    }
    seg[i] = value;
    while frac_digits < 6 {
        seg[6] = seg[6].wrapping_mul(10);
        frac_digits += 1;
    }
    seg[0] = seg[0].wrapping_mul(year_sign.unwrap_or(1));
    let mut v = [0; 7];
    v.copy_from_slice(&seg[..7]);
    Some(Segments { v, zone, just_time })
}

impl Segments<'_> {
    fn time(&self) -> Option<NaiveTime> {
        let [.., h, m, s, us] = self.v;
        NaiveTime::from_hms_micro_opt(
            u32::try_from(h).ok()?,
            u32::try_from(m).ok()?,
            u32::try_from(s).ok()?,
            u32::try_from(us).ok()?,
        )
    }

    fn date(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.v[0], u32::try_from(self.v[1]).ok()?, u32::try_from(self.v[2]).ok()?)
    }
}

/// Spark's `stringToTimestamp` with the UTC session zone: microseconds, or `None` if invalid.
pub fn string_to_timestamp(s: &str) -> Option<i64> {
    iso_utc_micros(s.as_bytes()).or_else(|| scanned_timestamp(s))
}

/// [`string_to_timestamp`] by the general scanner.
fn scanned_timestamp(s: &str) -> Option<i64> {
    let seg = parse_segments(s)?;
    let zone = match seg.zone {
        Some(z) => Zone::parse(z.trim_matches(|c: char| c <= ' '))?,
        None => Zone::UTC,
    };
    let date = if seg.just_time { zone.today() } else { seg.date()? };
    micros_of(zone.to_utc(date.and_time(seg.time()?))?)
}

/// The common shape of machine-written timestamps, `yyyy-MM-ddTHH:mm:ss[.f…][Z]` (or a space
/// for the `T`), in microseconds since the epoch, without the general scanner and calendar
/// library: JSON and CSV inputs carry one such value per row, and this is most of what reading
/// them costs. `None` means "not this shape, or not a valid date": the caller then runs the exact
/// scanner, which is the authority on everything else (and gives the same answer here).
fn iso_utc_micros(b: &[u8]) -> Option<i64> {
    iso_utc_prefix(b).and_then(|(micros, len)| (len == b.len()).then_some(micros))
}

/// [`iso_utc_micros`] of the longest start of `b` that has the common shape, with its length:
/// a JSON reader parses the value where it lies in the line, and takes it when the closing
/// quote follows (the shape holds no byte a JSON string would have to escape).
pub(crate) fn iso_utc_prefix(b: &[u8]) -> Option<(i64, usize)> {
    /// Where the fixed part `yyyy-MM-ddTHH:mm:ss` has its digits.
    const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    /// What a fraction of `n` digits (`n` ≤ 6) is multiplied by to count microseconds.
    const SCALE: [u32; 7] = [1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];
    let (head, mut rest) = b.split_first_chunk::<19>()?;
    let digit = |at: usize| u32::from(head[at].wrapping_sub(b'0'));
    if head[4] != b'-'
        || head[7] != b'-'
        || !matches!(head[10], b'T' | b' ')
        || head[13] != b':'
        || head[16] != b':'
        || DIGITS.iter().any(|&at| digit(at) > 9)
    {
        return None;
    }
    let two = |at: usize| digit(at) * 10 + digit(at + 1);
    let (year, month, day) = (two(0) * 100 + two(2), two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    let mut micros = 0u32;
    if let Some((b'.', fraction)) = rest.split_first() {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Digits past the sixth are dropped, as Spark truncates to microseconds.
        let kept = digits.min(6);
        micros = fraction[..kept].iter().fold(0, |m, c| m * 10 + u32::from(c - b'0')) * SCALE[kept];
        rest = &fraction[digits..];
    }
    if let Some(after_zone) = rest.strip_prefix(b"Z") {
        rest = after_zone;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let micros =
        ((days * 24 + i64::from(hour)) * 60 + i64::from(minute)) * 60_000_000 + i64::from(second) * 1_000_000 + i64::from(micros);
    Some((micros, b.len() - rest.len()))
}

/// Days since 1970-01-01 of a proleptic Gregorian date of year 0 to 9999 (Hinnant's
/// `days_from_civil`), `None` for a month or day that does not exist. Counting from 400 years
/// before year 0 keeps every step unsigned, so each division by a constant is a multiply and a
/// shift: this runs once per timestamp of every JSON and CSV row.
fn days_from_civil(year: u32, month: u32, day: u32) -> Option<i64> {
    /// Days from 1 March to the first of each month, in a year that starts in March.
    const BEFORE_MONTH: [u32; 12] = [306, 337, 0, 31, 61, 92, 122, 153, 184, 214, 245, 275];
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days {
        return None;
    }
    // The year that holds this date's March, counted from 400 BC (one whole Gregorian cycle).
    let y = year + 400 - u32::from(month <= 2);
    let days = y * 365 + y / 4 - y / 100 + y / 400 + BEFORE_MONTH[(month - 1) as usize] + day - 1;
    // 1970-01-01 is day 719_468 counted from 0000-03-01, and one cycle is 146_097 days.
    Some(i64::from(days) - 719_468 - 146_097)
}

/// Spark's `stringToTimestampWithoutTimeZone(s, allowTimeZone = false)` for TIMESTAMP_NTZ.
pub fn string_to_timestamp_ntz(s: &str) -> Option<i64> {
    let seg = parse_segments(s)?;
    if seg.just_time || seg.zone.is_some() {
        return None;
    }
    micros_of(seg.date()?.and_time(seg.time()?))
}

/// Spark's `stringToDate`: `[+-]yyyy*`, `[+-]yyyy*-[m]m`, `[+-]yyyy*-[m]m-[d]d`, the last
/// optionally followed by a space or `T` and anything.
pub fn string_to_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    let mut j = b.iter().position(|&c| !is_trim_byte(c))?;
    let end = b.iter().rposition(|&c| !is_trim_byte(c))? + 1;
    let mut seg = [1i32, 1, 1];
    let (mut i, mut value, mut digits) = (0usize, 0i32, 0u32);
    let valid = |i: usize, digits: u32| {
        if i == 0 {
            (4..=7).contains(&digits)
        } else {
            (1..=2).contains(&digits)
        }
    };
    let mut sign = 1;
    if b[j] == b'-' || b[j] == b'+' {
        sign = if b[j] == b'-' { -1 } else { 1 };
        j += 1;
    }
    while j < end && b[j] != b' ' && b[j] != b'T' {
        let c = b[j];
        if i < 2 && c == b'-' {
            if !valid(i, digits) {
                return None;
            }
            seg[i] = value;
            (value, digits) = (0, 0);
            i += 1;
        } else if c.is_ascii_digit() {
            value = value.wrapping_mul(10).wrapping_add(i32::from(c - b'0'));
            digits += 1;
        } else {
            return None;
        }
        j += 1;
    }
    if !valid(i, digits) || (i < 2 && j < end) {
        return None;
    }
    seg[i] = value;
    let date = NaiveDate::from_ymd_opt(sign * seg[0], u32::try_from(seg[1]).ok()?, u32::try_from(seg[2]).ok()?)?;
    Some(days_of(date))
}

/// Spark's `cleanLegacyTimestampStr` fallback: retries without `GMT` (for `… GMT+01:00`).
fn without_gmt<T>(s: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    parse(s).or_else(|| if s.contains("GMT") { parse(&s.replace("GMT", "")) } else { None })
}

fn compile_opt(opts: &Options, key: &str, parsing: bool) -> Result<Option<Pattern>> {
    opts.get(key)
        .map(|p| Pattern::compile(p, parsing).map_err(|e| SluiceError::user(format!("option '{key}': {}", e.message))))
        .transpose()
}

/// How readers turn text into TIMESTAMP, TIMESTAMP_NTZ and DATE values: the lenient defaults, or
/// the user's `timestampFormat`, `timestampNTZFormat` and `dateFormat` patterns.
#[derive(Debug, Clone, Default)]
pub struct ReadFormats {
    timestamp: Option<Pattern>,
    timestamp_ntz: Option<Pattern>,
    date: Option<Pattern>,
}

impl ReadFormats {
    /// Compiles the format options, failing on patterns Spark would reject.
    pub fn from_options(opts: &Options) -> Result<Self> {
        Ok(Self {
            timestamp: compile_opt(opts, "timestampFormat", true)?,
            timestamp_ntz: compile_opt(opts, "timestampNTZFormat", true)?,
            date: compile_opt(opts, "dateFormat", true)?,
        })
    }

    /// A TIMESTAMP in microseconds, or `None` if `s` does not parse.
    pub fn parse_timestamp(&self, s: &str) -> Option<i64> {
        match &self.timestamp {
            Some(p) => {
                let f = p.parse_fields(s)?;
                let local = f.date()?.and_time(f.time()?);
                let utc = match f.offset {
                    Some(secs) => local.checked_sub_signed(chrono::TimeDelta::seconds(i64::from(secs)))?,
                    None => Zone::UTC.to_utc(local)?,
                };
                micros_of(utc)
            }
            None => without_gmt(s, string_to_timestamp),
        }
    }

    /// A TIMESTAMP_NTZ in microseconds; text carrying a zone does not parse.
    pub fn parse_timestamp_ntz(&self, s: &str) -> Option<i64> {
        match &self.timestamp_ntz {
            Some(p) => {
                let f = p.parse_fields(s)?;
                if f.offset.is_some() {
                    return None;
                }
                micros_of(f.date()?.and_time(f.time()?))
            }
            None => string_to_timestamp_ntz(s),
        }
    }

    /// A DATE in days, or `None` if `s` does not parse.
    pub fn parse_date(&self, s: &str) -> Option<i32> {
        match &self.date {
            Some(p) => {
                let f = p.parse_fields(s)?;
                // The STRICT resolver validates time fields even when only the date is kept.
                f.time()?;
                Some(days_of(f.date()?))
            }
            None => without_gmt(s, string_to_date),
        }
    }

    /// True when the user gave `dateFormat` (which turns off Spark's legacy fallbacks).
    pub fn has_date_format(&self) -> bool {
        self.date.is_some()
    }

    /// True when TIMESTAMP text is read leniently (no `timestampFormat`), so that text of the
    /// common ISO shape is what [`iso_utc_prefix`] reads.
    pub(crate) fn lenient_timestamps(&self) -> bool {
        self.timestamp.is_none()
    }
}

/// How writers render TIMESTAMP, TIMESTAMP_NTZ and DATE values.
#[derive(Debug, Clone)]
pub struct WriteFormats {
    timestamp: Pattern,
    timestamp_ntz: Pattern,
    date: Pattern,
}

impl WriteFormats {
    /// Spark's write defaults, overridden by `timestampFormat`, `timestampNTZFormat`, `dateFormat`.
    pub fn from_options(opts: &Options) -> Result<Self> {
        let get = |key: &str, default: &str| -> Result<Pattern> {
            Ok(compile_opt(opts, key, false)?.unwrap_or(Pattern::compile(default, false)?))
        };
        Ok(Self {
            timestamp: get("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX")?,
            timestamp_ntz: get("timestampNTZFormat", "yyyy-MM-dd'T'HH:mm:ss[.SSS]")?,
            date: get("dateFormat", "yyyy-MM-dd")?,
        })
    }

    /// Appends a TIMESTAMP (microseconds) rendered in the UTC session zone.
    pub fn format_timestamp(&self, micros: i64, out: &mut String) -> Result<()> {
        let t = datetime_of_micros(micros).ok_or_else(|| out_of_range(micros))?;
        format_with(&self.timestamp, t.date(), Some(t.time()), Some(0), out)
    }

    /// Appends a TIMESTAMP_NTZ (microseconds).
    pub fn format_timestamp_ntz(&self, micros: i64, out: &mut String) -> Result<()> {
        let t = datetime_of_micros(micros).ok_or_else(|| out_of_range(micros))?;
        format_with(&self.timestamp_ntz, t.date(), Some(t.time()), None, out)
    }

    /// Appends a DATE (days since the epoch).
    pub fn format_date(&self, days: i32, out: &mut String) -> Result<()> {
        let d = date_of_days(days).ok_or_else(|| SluiceError::user(format!("date {days} is out of range")))?;
        format_with(&self.date, d, None, None, out)
    }
}

fn out_of_range(micros: i64) -> SluiceError {
    SluiceError::user(format!("timestamp {micros} is out of range"))
}

fn format_with(p: &Pattern, date: NaiveDate, time: Option<NaiveTime>, offset: Option<i32>, out: &mut String) -> Result<()> {
    p.format(date, time, offset, out).map_err(|field| {
        SluiceError::user(format!("cannot format a value with pattern '{}': Unsupported field: {field}", p.source))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        let d = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        micros_of(d).unwrap()
    }

    #[test]
    fn the_iso_fast_path_agrees_with_the_scanner() {
        let mut texts = vec![
            "2024-01-01T10:00:00Z".to_string(),
            "2023-12-31T23:59:14.666Z".to_string(),
            "1969-12-31T23:59:59.999999Z".to_string(),
            "0000-03-01 00:00:00".to_string(),
            "9999-12-31T23:59:59.1234567891Z".to_string(),
            "1900-02-29T00:00:00Z".to_string(),
            "2000-02-29T00:00:00Z".to_string(),
            "2023-02-29T00:00:00Z".to_string(),
            "2024-04-31T00:00:00Z".to_string(),
            "2024-00-10T00:00:00Z".to_string(),
            "2024-01-00T00:00:00Z".to_string(),
            "2024-01-01T24:00:00Z".to_string(),
            "2024-01-01T10:60:00Z".to_string(),
            "2024-01-01T10:00:60Z".to_string(),
            "2024-01-01T10:00:00.Z".to_string(),
            "2024-01-01T10:00:00z".to_string(),
            "2024-01-01T10:00:00+01:00".to_string(),
            "2024-01-01T10:00:00 ".to_string(),
            "2024-01-01X10:00:00".to_string(),
            "2024-1-01T10:00:00".to_string(),
        ];
        // Every day of a leap and a common year and of the years around the epoch and the
        // Gregorian 400-year boundary, at a few times of day and fraction lengths.
        for year in [1582, 1600, 1700, 1969, 1970, 2000, 2023, 2024, 2100] {
            for month in 1..=12 {
                for day in [1, 15, 28, 29, 30, 31] {
                    for (time, fraction) in
                        [("00:00:00", ""), ("12:34:56", ".7"), ("23:59:59", ".123456"), ("01:02:03", ".98765432")]
                    {
                        texts.push(format!("{year:04}-{month:02}-{day:02}T{time}{fraction}Z"));
                        texts.push(format!("{year:04}-{month:02}-{day:02} {time}{fraction}"));
                    }
                }
            }
        }
        assert_eq!(iso_utc_micros(b"2023-12-31T23:59:14.666Z"), Some(1_704_067_154_666_000));
        let mut fast = 0;
        for text in &texts {
            let quick = iso_utc_micros(text.as_bytes());
            fast += usize::from(quick.is_some());
            if let Some(v) = quick {
                assert_eq!(Some(v), scanned_timestamp(text), "{text}");
            }
            assert_eq!(string_to_timestamp(text), scanned_timestamp(text), "{text}");
        }
        assert!(fast > texts.len() / 2, "the fast path took only {fast} of {} texts", texts.len());
    }

    #[test]
    fn lenient_timestamps_follow_string_to_timestamp() {
        assert_eq!(string_to_timestamp("2024-01-01T10:00:00Z"), Some(ts("2024-01-01 10:00:00")));
        assert_eq!(string_to_timestamp(" 2024-1-2 3:04:05.123456789 "), Some(ts("2024-01-02 03:04:05.123456")));
        assert_eq!(string_to_timestamp("2024"), Some(ts("2024-01-01 00:00:00")));
        assert_eq!(string_to_timestamp("2024-03"), Some(ts("2024-03-01 00:00:00")));
        assert_eq!(string_to_timestamp("2024-03-04T05"), Some(ts("2024-03-04 05:00:00")));
        assert_eq!(string_to_timestamp("2024-03-04 05:06"), Some(ts("2024-03-04 05:06:00")));
        assert_eq!(string_to_timestamp("2024-01-01 10:00:00+01:00"), Some(ts("2024-01-01 09:00:00")));
        assert_eq!(string_to_timestamp("2024-01-01T10:00:00.5-0130"), Some(ts("2024-01-01 11:30:00.5")));
        assert_eq!(string_to_timestamp("2024-01-01 10:00:00 UTC+02"), Some(ts("2024-01-01 08:00:00")));
        assert_eq!(string_to_timestamp("2024-01-01 10:00:00GMT+01:00"), Some(ts("2024-01-01 09:00:00")));
        assert_eq!(string_to_timestamp("2024-07-01 12:00:00 Europe/Paris"), Some(ts("2024-07-01 10:00:00")));
        for bad in [
            "",
            "abc",
            "2024-13-01",
            "2023-02-30",
            "2024-01-01T",
            "2024-01-01 10:00Z",
            "24-01-01",
            "2024-01-01 25:00:00",
            "2024-01-01 10:00:00 utc",
        ] {
            assert_eq!(string_to_timestamp(bad), None, "{bad}");
        }
        // Time-only strings take today's date.
        let today = days_of(Zone::UTC.today()) as i64 * 86_400_000_000;
        assert_eq!(string_to_timestamp("10:30"), Some(today + 37_800_000_000));
    }

    #[test]
    fn lenient_dates_and_ntz() {
        let day = |y, m, d| days_of(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert_eq!(string_to_date("2024-02-29"), Some(day(2024, 2, 29)));
        assert_eq!(string_to_date("2024-2-9T10:00 junk"), Some(day(2024, 2, 9)));
        assert_eq!(string_to_date("2024"), Some(day(2024, 1, 1)));
        assert_eq!(string_to_date("2024-05"), Some(day(2024, 5, 1)));
        for bad in ["2023-02-29", "2024-02-30", "2024-13-01", "2024-01 x", "2024-01-01x", "", "1-1-1"] {
            assert_eq!(string_to_date(bad), None, "{bad}");
        }
        assert_eq!(string_to_timestamp_ntz("2024-01-01 10:00:00"), Some(ts("2024-01-01 10:00:00")));
        assert_eq!(string_to_timestamp_ntz("2024-01-01 10:00:00Z"), None);
    }

    #[test]
    fn user_formats_parse_strictly() {
        let o = Options::from_pairs([("timestampFormat", "MM/dd/yyyy HH:mm"), ("dateFormat", "dd/MM/yyyy")]);
        let f = ReadFormats::from_options(&o).unwrap();
        assert_eq!(f.parse_timestamp("01/31/2024 23:05"), Some(ts("2024-01-31 23:05:00")));
        assert_eq!(f.parse_timestamp("2024-01-31 23:05"), None);
        assert_eq!(f.parse_date("31/01/2024"), Some(days_of(NaiveDate::from_ymd_opt(2024, 1, 31).unwrap())));
        assert_eq!(f.parse_date("30/02/2024"), None);
        let z = ReadFormats::from_options(&Options::from_pairs([("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX")])).unwrap();
        assert_eq!(z.parse_timestamp("2024-01-01T10:00:00.250+02:00"), Some(ts("2024-01-01 08:00:00.25")));
        let bad = ReadFormats::from_options(&Options::from_pairs([("dateFormat", "YYYY")])).unwrap_err();
        assert!(bad.message.starts_with("option 'dateFormat'"), "{}", bad.message);
    }

    #[test]
    fn writes_spark_default_formats() {
        let f = WriteFormats::from_options(&Options::new()).unwrap();
        let mut out = String::new();
        f.format_timestamp(ts("2024-01-01 10:00:00"), &mut out).unwrap();
        out.push(' ');
        f.format_timestamp_ntz(ts("2024-01-01 10:00:00.5"), &mut out).unwrap();
        out.push(' ');
        f.format_date(-1, &mut out).unwrap();
        assert_eq!(out, "2024-01-01T10:00:00.000Z 2024-01-01T10:00:00.500 1969-12-31");
        let custom = WriteFormats::from_options(&Options::from_pairs([("dateFormat", "dd/MM/yyyy HH")])).unwrap();
        assert!(custom.format_date(0, &mut out).unwrap_err().message.contains("HourOfDay"));
    }
}

//! Parsing and formatting with compiled `DateTimeFormatter` patterns.
//!
//! Parsing follows Spark's formatter setup: case-insensitive, STRICT resolver (field ranges and
//! calendar validity are checked), the whole text must match, and missing fields default as in
//! Spark's `toLocalDate`/`toLocalTime` (year 1970, month and day 1, midnight; `h` without `a`
//! means AM).

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};

use super::pattern::{Elem, NumField, Pattern, Sign, TextField};

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const MONTHS_SHORT: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Fields found in a parsed string, before resolution.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Parsed {
    year: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    hour_of_day: Option<i64>,
    hour_of_am_pm: Option<i64>,
    pm: Option<bool>,
    minute: Option<i64>,
    second: Option<i64>,
    nano: Option<i64>,
    /// Seconds east of UTC.
    pub(crate) offset: Option<i32>,
}

/// Stores a field; a second, different value for the same field is Java's "Conflict found".
fn set(slot: &mut Option<i64>, v: i64) -> Option<()> {
    match *slot {
        Some(old) if old != v => None,
        _ => {
            *slot = Some(v);
            Some(())
        }
    }
}

impl Parsed {
    /// The local date, with Spark's defaults for missing fields.
    pub(crate) fn date(&self) -> Option<NaiveDate> {
        let year = i32::try_from(self.year.unwrap_or(1970)).ok()?;
        let month = u32::try_from(self.month.unwrap_or(1)).ok()?;
        let day = u32::try_from(self.day.unwrap_or(1)).ok()?;
        NaiveDate::from_ymd_opt(year, month, day)
    }

    /// The local time, with Spark's defaults for missing fields.
    pub(crate) fn time(&self) -> Option<NaiveTime> {
        let hour = match (self.hour_of_day, self.hour_of_am_pm, self.pm) {
            (Some(h), _, Some(pm)) if (h >= 12) != pm => return None,
            (Some(h), ..) => h,
            (None, Some(h), pm) => h + if pm == Some(true) { 12 } else { 0 },
            (None, None, Some(true)) => 12,
            (None, None, _) => 0,
        };
        let (h, m, s) = (hour as u32, self.minute.unwrap_or(0) as u32, self.second.unwrap_or(0) as u32);
        NaiveTime::from_hms_nano_opt(h, m, s, self.nano.unwrap_or(0) as u32)
    }
}

impl Pattern {
    /// Parses the whole of `s`; `None` if it does not match or a field is out of range.
    pub(crate) fn parse_fields(&self, s: &str) -> Option<Parsed> {
        let mut parsed = Parsed::default();
        let end = parse_elems(&self.elems, s, 0, &mut parsed)?;
        (end == s.len()).then_some(parsed)
    }

    /// Formats a date, optionally with a time of day and an offset; `Err` names the first field
    /// the pattern needs but the value lacks (Java's "Unsupported field").
    pub(crate) fn format(
        &self,
        date: NaiveDate,
        time: Option<NaiveTime>,
        offset: Option<i32>,
        out: &mut String,
    ) -> Result<(), &'static str> {
        format_elems(&self.elems, &Moment { date, time, offset }, out)
    }
}

fn parse_elems(elems: &[Elem], s: &str, mut pos: usize, p: &mut Parsed) -> Option<usize> {
    for elem in elems {
        pos = match elem {
            Elem::Lit(lit) => parse_literal(s, pos, lit)?,
            Elem::Num { field, min, max, sign, reserve } => {
                let (v, next) = parse_number(s, pos, *min, *max, *sign, *reserve)?;
                let (slot, range) = match field {
                    NumField::Year => (&mut p.year, (i64::MIN, i64::MAX)),
                    NumField::Month => (&mut p.month, (1, 12)),
                    NumField::Day => (&mut p.day, (1, 31)),
                    NumField::HourOfDay => (&mut p.hour_of_day, (0, 23)),
                    NumField::ClockHourOfDay => (&mut p.hour_of_day, (1, 24)),
                    NumField::HourOfAmPm => (&mut p.hour_of_am_pm, (0, 11)),
                    NumField::ClockHourOfAmPm => (&mut p.hour_of_am_pm, (1, 12)),
                    NumField::Minute => (&mut p.minute, (0, 59)),
                    NumField::Second => (&mut p.second, (0, 59)),
                };
                if v < range.0 || v > range.1 {
                    return None;
                }
                let v = match field {
                    NumField::ClockHourOfDay => v % 24,
                    NumField::ClockHourOfAmPm => v % 12,
                    _ => v,
                };
                set(slot, v)?;
                next
            }
            Elem::ReducedYear => {
                let (v, next) = parse_number(s, pos, 2, 2, Sign::NotNegative, 0)?;
                set(&mut p.year, 2000 + v)?;
                next
            }
            Elem::Fraction { width } => {
                let digits = s.as_bytes().get(pos..)?.iter().take(usize::from(*width)).take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    return None;
                }
                let v: i64 = s.get(pos..pos + digits)?.parse().ok()?;
                set(&mut p.nano, v * 10i64.pow(9 - digits as u32))?;
                pos + digits
            }
            Elem::Text(field) => {
                let names: &[&str] = match field {
                    TextField::MonthShort => &MONTHS_SHORT,
                    TextField::MonthFull => &MONTHS,
                    TextField::AmPm => &["AM", "PM"],
                    // Day-of-week text is rejected for parsing when the pattern is compiled.
                    TextField::DayOfWeekShort | TextField::DayOfWeekFull => return None,
                };
                let (index, next) = names.iter().enumerate().find_map(|(i, n)| Some((i, parse_literal(s, pos, n)?)))?;
                if *field == TextField::AmPm {
                    if p.pm.is_some_and(|pm| pm != (index == 1)) {
                        return None;
                    }
                    p.pm = Some(index == 1);
                } else {
                    set(&mut p.month, index as i64 + 1)?;
                }
                next
            }
            Elem::Offset { style, zero } => {
                let (secs, next) = parse_offset(s, pos, *style, zero)?;
                p.offset = Some(secs);
                next
            }
            Elem::GmtOffset => {
                let next = parse_literal(s, pos, "GMT")?;
                match s.as_bytes().get(next) {
                    Some(b'+' | b'-') => {
                        let (secs, end) = parse_offset(s, next, 2, "")?;
                        p.offset = Some(secs);
                        end
                    }
                    _ => {
                        p.offset = Some(0);
                        next
                    }
                }
            }
            Elem::Optional(section) => {
                let mut attempt = *p;
                match parse_elems(section, s, pos, &mut attempt) {
                    Some(next) => {
                        *p = attempt;
                        next
                    }
                    None => pos,
                }
            }
        };
    }
    Some(pos)
}

/// Matches `lit` at `pos` case-insensitively; returns the position after it.
fn parse_literal(s: &str, pos: usize, lit: &str) -> Option<usize> {
    let mut rest = s.get(pos..)?.chars();
    let mut end = pos;
    for want in lit.chars() {
        let got = rest.next()?;
        let same = got == want || got.to_lowercase().eq(want.to_lowercase()) || got.to_uppercase().eq(want.to_uppercase());
        if !same {
            return None;
        }
        end += got.len_utf8();
    }
    Some(end)
}

/// Java's strict `NumberPrinterParser.parse`, including the digits reserved for adjacent fields.
fn parse_number(s: &str, pos: usize, min: u8, max: u8, sign: Sign, reserve: u8) -> Option<(i64, usize)> {
    let b = s.as_bytes();
    let (negative, start) = match (b.get(pos), sign) {
        (Some(b'-'), Sign::Normal | Sign::ExceedsPad) => (true, pos + 1),
        (Some(b'+'), Sign::ExceedsPad) => (false, pos + 1),
        _ => (false, pos),
    };
    let limit = usize::from(max) + usize::from(reserve);
    let available = b.get(start..)?.iter().take(limit).take_while(|c| c.is_ascii_digit()).count();
    let take =
        if reserve > 0 { available.saturating_sub(usize::from(reserve)).max(usize::from(min)).min(available) } else { available };
    if take < usize::from(min) || take == 0 {
        return None;
    }
    let v: i64 = s.get(start..start + take)?.parse().ok()?;
    Some((if negative { -v } else { v }, start + take))
}

/// True for the offset styles written with colons (`+HH:mm`, `+HH:MM`, `+HH:MM:ss`, `+HH:MM:SS`).
fn has_colon(style: u8) -> bool {
    matches!(style, 2 | 4 | 6 | 8)
}

/// Java's `OffsetIdPrinterParser.parse` for styles 0-8 (`+HH`, `+HHmm`, `+HH:mm`, `+HHMM`,
/// `+HH:MM`, `+HHMMss`, `+HH:MM:ss`, `+HHMMSS`, `+HH:MM:SS`).
fn parse_offset(s: &str, pos: usize, style: u8, zero: &str) -> Option<(i32, usize)> {
    if !zero.is_empty() {
        if let Some(next) = parse_literal(s, pos, zero) {
            return Some((0, next));
        }
    }
    let b = s.as_bytes();
    let negative = match b.get(pos)? {
        b'+' => false,
        b'-' => true,
        _ => return None,
    };
    let colon = has_colon(style);
    let two = |at: usize| -> Option<i32> {
        let d = b.get(at..at + 2)?;
        d.iter().all(u8::is_ascii_digit).then(|| i32::from(d[0] - b'0') * 10 + i32::from(d[1] - b'0'))
    };
    // Parses an optional-or-required `[:]NN` unit at `at`.
    let unit = |at: usize, required: bool| -> Option<(i32, usize)> {
        let digits_at = if colon { at + 1 } else { at };
        let found = (!colon || b.get(at) == Some(&b':')).then(|| two(digits_at)).flatten();
        match found {
            Some(v) => Some((v, digits_at + 2)),
            None if required => None,
            None => Some((0, at)),
        }
    };
    let hours = two(pos + 1)?;
    let mut end = pos + 3;
    let (mut minutes, mut seconds) = (0, 0);
    if style >= 1 {
        (minutes, end) = unit(end, style >= 3)?;
        if style >= 5 {
            (seconds, end) = unit(end, style >= 7)?;
        }
    }
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = hours * 3600 + minutes * 60 + seconds;
    Some((if negative { -total } else { total }, end))
}

/// A value to format.
struct Moment {
    date: NaiveDate,
    time: Option<NaiveTime>,
    offset: Option<i32>,
}

fn format_elems(elems: &[Elem], m: &Moment, out: &mut String) -> Result<(), &'static str> {
    for elem in elems {
        match elem {
            Elem::Lit(lit) => out.push_str(lit),
            Elem::Num { field, min, sign, .. } => {
                let t = || m.time.ok_or(time_field_name(*field));
                let v = match field {
                    NumField::Year => i64::from(m.date.year()),
                    NumField::Month => i64::from(m.date.month()),
                    NumField::Day => i64::from(m.date.day()),
                    NumField::HourOfDay => i64::from(t()?.hour()),
                    NumField::ClockHourOfDay => i64::from((t()?.hour() + 23) % 24 + 1),
                    NumField::HourOfAmPm => i64::from(t()?.hour() % 12),
                    NumField::ClockHourOfAmPm => i64::from((t()?.hour() + 11) % 12 + 1),
                    NumField::Minute => i64::from(t()?.minute()),
                    NumField::Second => i64::from(t()?.second()),
                };
                let width = usize::from(*min);
                if v < 0 {
                    out.push('-');
                } else if *sign == Sign::ExceedsPad && digit_count(v.unsigned_abs()) > width {
                    out.push('+');
                }
                push_padded(out, v.unsigned_abs(), width);
            }
            Elem::ReducedYear => push_padded(out, u64::from(m.date.year().rem_euclid(100).unsigned_abs()), 2),
            Elem::Fraction { width } => {
                let nanos = m.time.ok_or("NanoOfSecond")?.nanosecond().min(999_999_999);
                // The first `width` of the nine digits, truncated.
                let shown = u64::from(nanos) / 10u64.pow(9 - u32::from(*width));
                push_padded(out, shown, usize::from(*width));
            }
            Elem::Text(field) => {
                let text = match field {
                    TextField::MonthShort => MONTHS_SHORT[m.date.month0() as usize],
                    TextField::MonthFull => MONTHS[m.date.month0() as usize],
                    TextField::DayOfWeekShort => &WEEKDAYS[m.date.weekday().num_days_from_monday() as usize][..3],
                    TextField::DayOfWeekFull => WEEKDAYS[m.date.weekday().num_days_from_monday() as usize],
                    TextField::AmPm => {
                        if m.time.ok_or("AmPmOfDay")?.hour() < 12 {
                            "AM"
                        } else {
                            "PM"
                        }
                    }
                };
                out.push_str(text);
            }
            Elem::Offset { style, zero } => format_offset(m.offset.ok_or("OffsetSeconds")?, *style, zero, out),
            Elem::GmtOffset => {
                let secs = m.offset.ok_or("OffsetSeconds")?;
                out.push_str("GMT");
                if secs != 0 {
                    format_offset(secs, 4, "", out);
                }
            }
            Elem::Optional(section) => {
                let mut part = String::new();
                if format_elems(section, m, &mut part).is_ok() {
                    out.push_str(&part);
                }
            }
        }
    }
    Ok(())
}

fn digit_count(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// Appends `v` in decimal, zero-padded to `width` digits, without allocating.
fn push_padded(out: &mut String, v: u64, width: usize) {
    for _ in digit_count(v)..width {
        out.push('0');
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut rest = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&d| char::from(d)));
}

fn time_field_name(field: NumField) -> &'static str {
    match field {
        NumField::HourOfDay => "HourOfDay",
        NumField::ClockHourOfDay => "ClockHourOfDay",
        NumField::HourOfAmPm => "HourOfAmPm",
        NumField::ClockHourOfAmPm => "ClockHourOfAmPm",
        NumField::Minute => "MinuteOfHour",
        _ => "SecondOfMinute",
    }
}

/// Java's `OffsetIdPrinterParser.format`.
fn format_offset(secs: i32, style: u8, zero: &str, out: &mut String) {
    if secs == 0 && !zero.is_empty() {
        out.push_str(zero);
        return;
    }
    let abs = secs.unsigned_abs();
    let (h, mi, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    let colon = if has_colon(style) { ":" } else { "" };
    out.push(if secs < 0 { '-' } else { '+' });
    push_padded(out, u64::from(h), 2);
    if style >= 3 || (style >= 1 && (mi > 0 || s > 0)) {
        out.push_str(colon);
        push_padded(out, u64::from(mi), 2);
        if style >= 7 || (style >= 5 && s > 0) {
            out.push_str(colon);
            push_padded(out, u64::from(s), 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: &str, s: &str) -> Option<Parsed> {
        Pattern::compile(p, true).unwrap().parse_fields(s)
    }

    fn fmt(p: &str, date: NaiveDate, time: Option<NaiveTime>, offset: Option<i32>) -> Result<String, &'static str> {
        let mut out = String::new();
        Pattern::compile(p, false).unwrap().format(date, time, offset, &mut out).map(|()| out)
    }

    #[test]
    fn parses_common_patterns_strictly() {
        let p = parse("yyyy-MM-dd HH:mm:ss", "2024-01-31 23:59:58").unwrap();
        assert_eq!(p.date(), NaiveDate::from_ymd_opt(2024, 1, 31));
        assert_eq!(p.time(), NaiveTime::from_hms_opt(23, 59, 58));
        let p = parse("dd/MM/yyyy", "05/11/2023").unwrap();
        assert_eq!(p.date(), NaiveDate::from_ymd_opt(2023, 11, 5));
        assert!(parse("dd/MM/yyyy", "5/11/2023").is_none(), "dd needs two digits");
        assert!(parse("yyyy-MM-dd", "2024-01-01 ").is_none(), "trailing text");
        assert!(parse("yyyy-MM-dd", "2023-02-30").unwrap().date().is_none(), "Feb 30");
        assert!(parse("yyyy-MM-dd HH", "2023-02-03 24").is_none(), "hour 24");
        let p = parse("yyyyMMdd", "20240131").unwrap();
        assert_eq!(p.date(), NaiveDate::from_ymd_opt(2024, 1, 31));
        let p = parse("d MMM yyyy", "7 jan 2020").unwrap();
        assert_eq!(p.date(), NaiveDate::from_ymd_opt(2020, 1, 7));
    }

    #[test]
    fn fractions_offsets_and_am_pm() {
        let p = parse("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2024-01-01t10:00:00.5+05:30").unwrap();
        assert_eq!(p.time(), NaiveTime::from_hms_milli_opt(10, 0, 0, 500));
        assert_eq!(p.offset, Some(19800));
        let p = parse("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2024-01-01T10:00:00.123Z").unwrap();
        assert_eq!(p.offset, Some(0));
        assert!(parse("HH:mm:ss.SSS", "10:00:00.1234").is_none());
        let p = parse("MM/dd/yyyy hh:mm a", "01/02/2020 12:15 AM").unwrap();
        assert_eq!(p.time(), NaiveTime::from_hms_opt(0, 15, 0));
        let p = parse("MM/dd/yyyy hh:mm a", "01/02/2020 01:15 pm").unwrap();
        assert_eq!(p.time(), NaiveTime::from_hms_opt(13, 15, 0));
        assert_eq!(parse("HHmm Z", "1000 -0130").unwrap().offset, Some(-5400));
        assert_eq!(parse("HH x", "10 +05").unwrap().offset, Some(18000));
        let p = parse("yyyy-MM-dd[ HH:mm]", "2024-01-01").unwrap();
        assert_eq!(p.time(), NaiveTime::from_hms_opt(0, 0, 0));
    }

    #[test]
    fn formats_like_java() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        let t = NaiveTime::from_hms_milli_opt(15, 4, 5, 67);
        let full = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX";
        assert_eq!(fmt(full, d, t, Some(0)).unwrap(), "2024-03-04T15:04:05.067Z");
        assert_eq!(fmt(full, d, t, Some(-9000)).unwrap(), "2024-03-04T15:04:05.067-02:30");
        assert_eq!(fmt("EEE, d MMM yy h:mm a", d, t, None).unwrap(), "Mon, 4 Mar 24 3:04 PM");
        assert_eq!(fmt("yyyy-MM-dd'T'HH:mm:ss[.SSS][XXX]", d, t, None).unwrap(), "2024-03-04T15:04:05.067");
        assert_eq!(fmt("xx ZZZZ", d, t, Some(3600)).unwrap(), "+0100 GMT+01:00");
        assert_eq!(fmt("yyyy-MM-dd HH", d, None, None), Err("HourOfDay"));
        let far = NaiveDate::from_ymd_opt(12345, 1, 1).unwrap();
        assert_eq!(fmt("yyyy", far, None, None).unwrap(), "+12345");
    }
}

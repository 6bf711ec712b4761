//! Time-zone suffixes of timestamp strings, resolved as Spark's `getZoneId` does.
//!
//! Spark hands the zone text to Java's `ZoneId.of(id, SHORT_IDS)` after two regex fix-ups for
//! one-digit hours and minutes; the accepted spellings (`Z`, `+h`, `+hh:mm`, `UTC+hh`, `PST`,
//! `Europe/Paris`, but not `utc`) and the DST rules for local times must match, or the same
//! string lands on a different instant.

use std::borrow::Cow;
use std::str::FromStr;

use arrow::array::timezone::Tz;
use chrono::{NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};

/// A resolved zone: a fixed offset in seconds east of UTC, or a region with DST rules.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Zone {
    Fixed(i32),
    Region(Tz),
}

/// Java's `ZoneId.SHORT_IDS`, which Spark passes as the alias map.
const SHORT_IDS: &[(&str, &str)] = &[
    ("ACT", "Australia/Darwin"),
    ("AET", "Australia/Sydney"),
    ("AGT", "America/Argentina/Buenos_Aires"),
    ("ART", "Africa/Cairo"),
    ("AST", "America/Anchorage"),
    ("BET", "America/Sao_Paulo"),
    ("BST", "Asia/Dhaka"),
    ("CAT", "Africa/Harare"),
    ("CNT", "America/St_Johns"),
    ("CST", "America/Chicago"),
    ("CTT", "Asia/Shanghai"),
    ("EAT", "Africa/Addis_Ababa"),
    ("ECT", "Europe/Paris"),
    ("EST", "-05:00"),
    ("HST", "-10:00"),
    ("IET", "America/Indiana/Indianapolis"),
    ("IST", "Asia/Kolkata"),
    ("JST", "Asia/Tokyo"),
    ("MIT", "Pacific/Apia"),
    ("MST", "-07:00"),
    ("NET", "Asia/Yerevan"),
    ("NST", "Pacific/Auckland"),
    ("PLT", "Asia/Karachi"),
    ("PNT", "America/Phoenix"),
    ("PRT", "America/Puerto_Rico"),
    ("PST", "America/Los_Angeles"),
    ("SST", "Pacific/Guadalcanal"),
    ("VST", "Asia/Ho_Chi_Minh"),
];

impl Zone {
    /// The session time zone.
    pub(crate) const UTC: Zone = Zone::Fixed(0);

    /// Resolves a zone id the way Spark's `DateTimeUtils.getZoneId` does; `None` if Java would
    /// reject it.
    pub(crate) fn parse(id: &str) -> Option<Zone> {
        if id == "Z" || id == "UTC" {
            return Some(Zone::UTC);
        }
        let hour_fixed = pad_short_hour(id);
        let fixed = pad_short_minutes(&hour_fixed);
        let id: &str = &fixed;
        let id = SHORT_IDS.iter().find(|(k, _)| *k == id).map_or(id, |(_, v)| v);
        if id.len() <= 1 || id.starts_with(['+', '-']) {
            return if id == "Z" { Some(Zone::UTC) } else { offset_of(id).map(Zone::Fixed) };
        }
        if matches!(id, "UTC" | "GMT" | "UT") {
            return Some(Zone::UTC);
        }
        for prefix in ["UTC", "GMT", "UT"] {
            if let Some(rest) = id.strip_prefix(prefix) {
                if rest.starts_with(['+', '-']) {
                    return offset_of(rest).map(Zone::Fixed);
                }
            }
        }
        let valid_region = id.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || b"~/._+-".contains(&c));
        if !valid_region {
            return None;
        }
        Tz::from_str(id).ok().map(Zone::Region)
    }

    /// The UTC date-time of a local date-time in this zone. Like Java's `ZonedDateTime.of`, a
    /// time in a DST gap moves forward by the gap and an ambiguous time takes the earlier offset.
    pub(crate) fn to_utc(self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Zone::Fixed(secs) => local.checked_sub_signed(TimeDelta::seconds(i64::from(secs))),
            Zone::Region(tz) => match tz.from_local_datetime(&local).earliest() {
                Some(dt) => Some(dt.naive_utc()),
                None => {
                    // In a gap: use the offset in force before the transition.
                    let before = local.checked_sub_signed(TimeDelta::days(1))?;
                    let offset = tz.offset_from_utc_datetime(&before).fix().local_minus_utc();
                    local.checked_sub_signed(TimeDelta::seconds(i64::from(offset)))
                }
            },
        }
    }

    /// Today's date in this zone, for time-only strings such as `10:30:00`.
    pub(crate) fn today(self) -> NaiveDate {
        let now = Utc::now().naive_utc();
        match self {
            Zone::Fixed(secs) => now.checked_add_signed(TimeDelta::seconds(i64::from(secs))).unwrap_or(now).date(),
            Zone::Region(tz) => tz.from_utc_datetime(&now).date_naive(),
        }
    }
}

/// Spark's fix-up `(\+|\-)(\d):` → `$10$2:` (first match): `+1:00` becomes `+01:00`.
fn pad_short_hour(id: &str) -> Cow<'_, str> {
    let b = id.as_bytes();
    for i in 0..b.len().saturating_sub(2) {
        if matches!(b[i], b'+' | b'-') && b[i + 1].is_ascii_digit() && b[i + 2] == b':' {
            return Cow::Owned(format!("{}0{}", &id[..=i], &id[i + 1..]));
        }
    }
    Cow::Borrowed(id)
}

/// Spark's fix-up `(\+|\-)(\d\d):(\d)$` → `$1$2:0$3`: `+01:5` becomes `+01:05`.
fn pad_short_minutes(id: &str) -> Cow<'_, str> {
    let b = id.as_bytes();
    let n = b.len();
    if n >= 5
        && matches!(b[n - 5], b'+' | b'-')
        && b[n - 4].is_ascii_digit()
        && b[n - 3].is_ascii_digit()
        && b[n - 2] == b':'
        && b[n - 1].is_ascii_digit()
    {
        return Cow::Owned(format!("{}0{}", &id[..n - 1], &id[n - 1..]));
    }
    Cow::Borrowed(id)
}

/// Java's `ZoneOffset.of`: `±h`, `±hh`, `±hh:mm`, `±hhmm`, `±hh:mm:ss`, `±hhmmss`, within ±18:00.
fn offset_of(id: &str) -> Option<i32> {
    let sign = match id.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = &id[1..];
    let num = |s: Option<&str>| -> Option<i32> {
        let s = s?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (h, m, s) = match rest.len() {
        1 | 2 => (num(Some(rest))?, 0, 0),
        4 => (num(rest.get(0..2))?, num(rest.get(2..4))?, 0),
        5 if rest.as_bytes()[2] == b':' => (num(rest.get(0..2))?, num(rest.get(3..5))?, 0),
        6 => (num(rest.get(0..2))?, num(rest.get(2..4))?, num(rest.get(4..6))?),
        8 if rest.as_bytes()[2] == b':' && rest.as_bytes()[5] == b':' => {
            (num(rest.get(0..2))?, num(rest.get(3..5))?, num(rest.get(6..8))?)
        }
        _ => return None,
    };
    let total = h * 3600 + m * 60 + s;
    (h <= 18 && m < 60 && s < 60 && total <= 18 * 3600).then_some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(id: &str) -> Option<i32> {
        match Zone::parse(id)? {
            Zone::Fixed(s) => Some(s),
            Zone::Region(_) => None,
        }
    }

    #[test]
    fn offsets_follow_zone_offset_of_with_spark_fixups() {
        assert_eq!(offset("Z"), Some(0));
        assert_eq!(offset("UTC"), Some(0));
        assert_eq!(offset("GMT"), Some(0));
        assert_eq!(offset("+01:00"), Some(3600));
        assert_eq!(offset("+0130"), Some(5400));
        assert_eq!(offset("-05"), Some(-18000));
        assert_eq!(offset("+1"), Some(3600));
        assert_eq!(offset("+1:30"), Some(5400));
        assert_eq!(offset("+01:5"), Some(3900));
        assert_eq!(offset("UTC+01:00"), Some(3600));
        assert_eq!(offset("GMT-8"), Some(-28800));
        assert_eq!(offset("UT+2"), Some(7200));
        assert_eq!(offset("EST"), Some(-18000));
        for bad in ["+19:00", "+01:60", "utc", "", "X", "+1:", "UTC+", "01:00"] {
            assert!(Zone::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn regions_apply_dst_like_java() {
        let paris = Zone::parse("Europe/Paris").unwrap();
        let d = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(paris.to_utc(d("2024-07-01 12:00:00")), Some(d("2024-07-01 10:00:00")));
        // Spring-forward gap: 02:30 does not exist and moves forward one hour (03:30 CEST).
        assert_eq!(paris.to_utc(d("2024-03-31 02:30:00")), Some(d("2024-03-31 01:30:00")));
        // Autumn overlap: the earlier offset (CEST) wins.
        assert_eq!(paris.to_utc(d("2024-10-27 02:30:00")), Some(d("2024-10-27 00:30:00")));
        assert!(Zone::parse("PST").is_some());
        assert!(Zone::parse("Mars/Olympus").is_none());
    }
}

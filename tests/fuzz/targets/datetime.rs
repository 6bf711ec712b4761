//! Spark's datetime handling: `DateTimeFormatter` patterns (`timestampFormat`, `dateFormat`,
//! `to_timestamp(s, fmt)`, `date_format(ts, fmt)`) compiled and used to parse and format, the
//! lenient default parsers behind casts, and interval strings (`window`, watermarks, triggers).
//!
//! Input: the first line is the pattern, every further line a value.

use sluice_common::options::Options;
use sluice_common::time::parse_interval;
use sluice_formats::datetime::{string_to_date, string_to_timestamp, string_to_timestamp_ntz, ReadFormats, WriteFormats};

use crate::Target;

pub const TARGET: Target = Target {
    name: "datetime",
    seeds,
    store_seeds: true,
    dictionary: &[
        "yyyy",
        "yy",
        "MM",
        "MMM",
        "MMMM",
        "dd",
        "HH",
        "hh",
        "mm",
        "ss",
        "SSS",
        "SSSSSSSSS",
        "a",
        "XXX",
        "xxxxx",
        "Z",
        "ZZZZ",
        "EEE",
        "'T'",
        "''",
        "[",
        "]",
        "[.SSS]",
        "+18:00",
        "-12",
        "GMT+01:00",
        "Z",
        "UTC",
        "PM",
        "2024",
        "02-29",
        "T",
        " ",
        "interval",
        "1 month",
        "day",
        "hours",
        "-3",
        "microseconds",
        "1.5",
        "weeks",
    ],
    run,
};

/// Timestamps at the edges of what the formatter accepts.
const MICROS: &[i64] = &[0, -1, 1_706_695_200_123_456, i64::MIN, i64::MAX, -62_135_596_800_000_000, 253_402_300_799_999_999];

fn run(input: &[u8]) {
    let text = super::text(input);
    let mut lines = text.split('\n');
    let pattern = lines.next().unwrap_or_default();
    let values: Vec<&str> = lines.take(64).collect();
    let opts = Options::from_pairs([("timestampFormat", pattern), ("timestampNTZFormat", pattern), ("dateFormat", pattern)]);
    if let Ok(read) = ReadFormats::from_options(&opts) {
        for v in values.iter().chain(std::iter::once(&pattern)) {
            let _ = read.parse_timestamp(v);
            let _ = read.parse_timestamp_ntz(v);
            let _ = read.parse_date(v);
        }
    }
    if let Ok(write) = WriteFormats::from_options(&opts) {
        let mut out = String::new();
        for m in MICROS.iter().copied().chain(values.iter().filter_map(|v| v.trim().parse::<i64>().ok())) {
            let _ = write.format_timestamp(m, &mut out);
            let _ = write.format_timestamp_ntz(m, &mut out);
            let _ = write.format_date(m.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32, &mut out);
            out.clear();
        }
    }
    for v in values.iter().chain(std::iter::once(&pattern)) {
        let _ = string_to_timestamp(v);
        let _ = string_to_timestamp_ntz(v);
        let _ = string_to_date(v);
        if let Ok(iv) = parse_interval(v) {
            let _ = iv.delay_ms();
            let _ = iv.fixed_micros("fuzz");
        }
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    // Patterns from the README, Spark's defaults and the formats' tests, each with values the
    // writer formats with it (so they parse back), plus lenient-parser and interval inputs.
    let patterns = [
        ("iso-offset", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"),
        ("optional-sections", "yyyy-MM-dd'T'HH:mm[:ss][.SSS]"),
        ("compact", "yyyyMMddHHmmss"),
        ("text-fields", "EEE, dd MMM yyyy hh:mm:ss a ZZZZ"),
        ("date", "dd/MM/yy"),
    ];
    let mut out = Vec::new();
    for (name, p) in patterns {
        let mut text = format!("{p}\n");
        if let Ok(w) = WriteFormats::from_options(&Options::from_pairs([("timestampFormat", p)])) {
            for m in [0, 1_706_695_200_123_456, -86_400_000_001] {
                let mut s = String::new();
                if w.format_timestamp(m, &mut s).is_ok() {
                    text.push_str(&s);
                    text.push('\n');
                }
            }
        }
        text.push_str("2024-01-31 10:00:00.123+01:00\n2024-02-29\n1 hour 30 minutes\n");
        out.push((format!("{name}.txt"), text.into_bytes()));
    }
    out.push(("lenient.txt".into(), b"yyyy\n2024-1-1T1:2:3.123456789Z\n 2024-01-31 \n+10000-01-01\nT10:00\n2024-01-31 10:00:00 UTC\ninterval 1 year 2 months 3 weeks 4 days\n-3 hours 500 milliseconds\n".to_vec()));
    out
}

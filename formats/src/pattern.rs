//! Compiling `DateTimeFormatter` patterns (`yyyy-MM-dd'T'HH:mm:ss.SSSXXX`) the way Spark 3 does.
//!
//! Users pass Java patterns in `timestampFormat`/`dateFormat`; Spark rewrites and restricts them
//! (`DateTimeFormatterHelper.convertIncompatiblePattern`: week-based letters are rejected, `E` is
//! format-only, `y` means the proleptic year) before handing them to `DateTimeFormatterBuilder`.
//! Compiling once into [`Elem`]s reproduces that, reports bad patterns when options are parsed,
//! and keeps per-value parsing free of pattern interpretation. Parsing and formatting with the
//! compiled form live in `pattern_exec`.

use sluice_common::error::{Result, SluiceError};

/// A numeric field a pattern letter stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumField {
    Year,
    Month,
    Day,
    /// `H`: 0-23.
    HourOfDay,
    /// `k`: 1-24.
    ClockHourOfDay,
    /// `K`: 0-11.
    HourOfAmPm,
    /// `h`: 1-12.
    ClockHourOfAmPm,
    Minute,
    Second,
}

/// Java's `SignStyle` as used by the letters sluice supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sign {
    /// No sign accepted.
    NotNegative,
    /// `-` accepted (`y`, `yyy`).
    Normal,
    /// `-` always, `+` when wider than the pad (`yyyy`).
    ExceedsPad,
}

/// Text fields, in Locale.US.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextField {
    MonthShort,
    MonthFull,
    DayOfWeekShort,
    DayOfWeekFull,
    AmPm,
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Elem {
    /// Literal text, matched case-insensitively when parsing.
    Lit(String),
    /// A number of `min..=max` digits; `reserve` digits are left for the fixed-width numbers
    /// that follow without a separator (Java's adjacent value parsing, e.g. `yyyyMMdd`).
    Num {
        field: NumField,
        min: u8,
        max: u8,
        sign: Sign,
        reserve: u8,
    },
    /// `yy`: two digits meaning 2000-2099.
    ReducedYear,
    /// `S…`: fraction of second; parses 1..=width digits (Spark's variable-length fraction) and
    /// formats exactly `width` digits.
    Fraction {
        width: u8,
    },
    Text(TextField),
    /// `X`/`x`/`Z`: Java's `appendOffset` style 0-8 (`+HH` … `+HH:MM:SS`) and the text used for
    /// a zero offset.
    Offset {
        style: u8,
        zero: &'static str,
    },
    /// `ZZZZ`: localized offset, `GMT` or `GMT+01:00`.
    GmtOffset,
    /// `[...]`: parsed if possible, formatted if all its fields are available.
    Optional(Vec<Elem>),
}

/// A compiled Java date-time pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    /// The pattern as the user wrote it, for error messages.
    pub(crate) source: String,
    /// The compiled elements, in order.
    pub(crate) elems: Vec<Elem>,
}

impl Pattern {
    /// Compiles `source`; `parsing` applies Spark's extra restrictions for parsers.
    pub(crate) fn compile(source: &str, parsing: bool) -> Result<Self> {
        let mut elems = compile_elems(source, parsing).map_err(|why| {
            SluiceError::user(format!(
                "Fail to recognize '{source}' pattern in the DateTimeFormatter: {why}. You can form \
                 a valid datetime pattern with the guide from \
                 https://spark.apache.org/docs/latest/sql-ref-datetime-pattern.html"
            ))
        })?;
        reserve_adjacent(&mut elems);
        Ok(Self { source: source.to_string(), elems })
    }
}

/// The deepest nesting of `[…]` sections a pattern may have. Compiling, parsing and formatting
/// recurse once per level, so a pattern of thousands of `[` would overflow the stack of the
/// thread evaluating `to_timestamp` — patterns come from users and from query data. Java itself
/// has no limit, but no real pattern nests more than two or three levels.
const MAX_OPTIONAL_DEPTH: usize = 32;

fn compile_elems(source: &str, parsing: bool) -> std::result::Result<Vec<Elem>, String> {
    // Stack of open optional sections; the bottom entry is the pattern itself.
    let mut stack: Vec<Vec<Elem>> = vec![Vec::new()];
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let top = stack.len() - 1;
        if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i] == c {
                i += 1;
            }
            let elem = letter(c, i - start, parsing)?;
            stack[top].push(elem);
            continue;
        }
        i += 1;
        match c {
            '\'' => {
                let mut text = String::new();
                if chars.get(i) == Some(&'\'') {
                    // `''` outside quotes is one quote.
                    i += 1;
                    text.push('\'');
                } else {
                    loop {
                        match chars.get(i) {
                            None => return Err("Pattern ends with an incomplete string literal".into()),
                            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                                text.push('\'');
                                i += 2;
                            }
                            Some('\'') => {
                                i += 1;
                                break;
                            }
                            Some(&ch) => {
                                text.push(ch);
                                i += 1;
                            }
                        }
                    }
                }
                push_lit(&mut stack[top], &text);
            }
            '[' if stack.len() > MAX_OPTIONAL_DEPTH => {
                return Err(format!("Optional sections nested more than {MAX_OPTIONAL_DEPTH} levels deep are not supported"))
            }
            '[' => stack.push(Vec::new()),
            ']' => {
                if stack.len() == 1 {
                    return Err("Pattern invalid as it contains ] without previous [".into());
                }
                let section = stack.pop().unwrap_or_default();
                let top = stack.len() - 1;
                stack[top].push(Elem::Optional(section));
            }
            '{' | '}' | '#' => return Err(format!("Pattern includes reserved character: '{c}'")),
            other => push_lit(&mut stack[top], other.encode_utf8(&mut [0; 4])),
        }
    }
    // Java closes sections left open at the end of the pattern.
    while stack.len() > 1 {
        let section = stack.pop().unwrap_or_default();
        let top = stack.len() - 1;
        stack[top].push(Elem::Optional(section));
    }
    Ok(stack.pop().unwrap_or_default())
}

fn push_lit(elems: &mut Vec<Elem>, text: &str) {
    if let Some(Elem::Lit(prev)) = elems.last_mut() {
        prev.push_str(text);
    } else if !text.is_empty() {
        elems.push(Elem::Lit(text.to_string()));
    }
}

/// The element for `count` repetitions of pattern letter `c`.
fn letter(c: char, count: usize, parsing: bool) -> std::result::Result<Elem, String> {
    let too_many = || format!("Too many pattern letters: {c}");
    if "YWwuec".contains(c) {
        return Err(format!(
            "All week-based patterns are unsupported since Spark 3.0, detected: {c}, Please use \
             the SQL function EXTRACT instead"
        ));
    }
    if "AnNpB".contains(c) || (parsing && "EFqQ".contains(c)) {
        return Err(format!("Illegal pattern character: {c}"));
    }
    let num = |field, min: usize, max: u8, sign| Elem::Num { field, min: min as u8, max, sign, reserve: 0 };
    let small = |field| match count {
        1 => Ok(num(field, 1, 19, Sign::NotNegative)),
        2 => Ok(num(field, 2, 2, Sign::NotNegative)),
        _ => Err(too_many()),
    };
    match c {
        'y' => match count {
            2 => Ok(Elem::ReducedYear),
            1 | 3 => Ok(num(NumField::Year, count, 19, Sign::Normal)),
            4..=6 => Ok(num(NumField::Year, count, 19, Sign::ExceedsPad)),
            _ => Err(too_many()),
        },
        'M' => match count {
            3 => Ok(Elem::Text(TextField::MonthShort)),
            4 => Ok(Elem::Text(TextField::MonthFull)),
            _ => small(NumField::Month),
        },
        'd' => small(NumField::Day),
        'H' => small(NumField::HourOfDay),
        'k' => small(NumField::ClockHourOfDay),
        'K' => small(NumField::HourOfAmPm),
        'h' => small(NumField::ClockHourOfAmPm),
        'm' => small(NumField::Minute),
        's' => small(NumField::Second),
        'S' if count <= 9 => Ok(Elem::Fraction { width: count as u8 }),
        'S' => Err(too_many()),
        'a' if count == 1 => Ok(Elem::Text(TextField::AmPm)),
        'E' => match count {
            1..=3 => Ok(Elem::Text(TextField::DayOfWeekShort)),
            4 => Ok(Elem::Text(TextField::DayOfWeekFull)),
            _ => Err(too_many()),
        },
        'X' | 'x' if count <= 5 => {
            let style = [1, 3, 4, 5, 6][count - 1];
            let zero = if c == 'X' { "Z" } else { ["+00", "+0000", "+00:00", "+0000", "+00:00"][count - 1] };
            Ok(Elem::Offset { style, zero })
        }
        'Z' => match count {
            1..=3 => Ok(Elem::Offset { style: 3, zero: "+0000" }),
            4 => Ok(Elem::GmtOffset),
            5 => Ok(Elem::Offset { style: 6, zero: "Z" }),
            _ => Err(too_many()),
        },
        'a' | 'X' | 'x' => Err(too_many()),
        'G' | 'D' | 'L' | 'Q' | 'q' | 'F' | 'V' | 'v' | 'z' | 'O' | 'g' => {
            Err(format!("pattern letter '{c}' is not supported by sluice"))
        }
        _ => Err(format!("Unknown pattern letter: {c}")),
    }
}

/// Java's adjacent value parsing: a number followed directly by fixed-width numbers leaves them
/// their digits, so `yyyyMMdd` reads `20240131` as 2024-01-31 instead of a 8-digit year.
fn reserve_adjacent(elems: &mut [Elem]) {
    let mut active: Option<usize> = None;
    for i in 0..elems.len() {
        let fixed_width = match &elems[i] {
            Elem::Num { min, max, sign: Sign::NotNegative, .. } if min == max => Some(*max),
            Elem::ReducedYear => Some(2),
            Elem::Num { .. } => None,
            Elem::Optional(section) => {
                let mut section = section.clone();
                reserve_adjacent(&mut section);
                elems[i] = Elem::Optional(section);
                active = None;
                continue;
            }
            _ => {
                active = None;
                continue;
            }
        };
        match (active, fixed_width) {
            (Some(a), Some(width)) => {
                if let Elem::Num { reserve, .. } = &mut elems[a] {
                    *reserve = reserve.saturating_add(width);
                }
            }
            _ => active = Some(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elems(p: &str) -> Vec<Elem> {
        Pattern::compile(p, true).unwrap().elems
    }

    #[test]
    fn compiles_quotes_literals_and_sections() {
        let e = elems("yyyy-MM-dd'T'HH:mm[:ss][.SSS]XXX");
        assert_eq!(e[1], Elem::Lit("-".into()));
        assert_eq!(e[5], Elem::Lit("T".into()));
        assert!(matches!(&e[9], Elem::Optional(s) if s.len() == 2));
        assert_eq!(e[11], Elem::Offset { style: 4, zero: "Z" });
        assert_eq!(elems("h 'o''clock' ''")[1], Elem::Lit(" o'clock '".into()));
    }

    #[test]
    fn adjacent_numbers_reserve_their_widths() {
        let e = elems("yyyyMMdd");
        assert!(matches!(e[0], Elem::Num { field: NumField::Year, reserve: 4, .. }));
        assert!(matches!(elems("yyyy-MM")[0], Elem::Num { reserve: 0, .. }));
    }

    #[test]
    fn spark_restrictions_are_reported_at_compile_time() {
        let msg = |p: &str, parsing| Pattern::compile(p, parsing).unwrap_err().message;
        assert!(msg("yyyy-ww", true).contains("week-based"));
        assert!(msg("uuuu", true).contains("week-based"));
        assert!(msg("EEE, dd MMM yyyy", true).contains("Illegal pattern character: E"));
        assert!(Pattern::compile("EEE, dd MMM yyyy", false).is_ok());
        assert!(msg("yyyyyyy", true).contains("Too many pattern letters: y"));
        assert!(msg("ddd", true).contains("Too many pattern letters: d"));
        assert!(msg("yyyy'T", true).contains("incomplete string literal"));
        assert!(msg("yyyy]", true).contains("without previous ["));
        assert!(msg("DDD", true).contains("not supported by sluice"));
        assert!(msg("bb", true).contains("Unknown pattern letter: b"));
    }

    #[test]
    fn deeply_nested_optional_sections_are_refused() {
        assert!(Pattern::compile(&format!("{}yyyy", "[".repeat(32)), true).is_ok());
        let deep = format!("{}yyyy", "[".repeat(100_000));
        assert!(Pattern::compile(&deep, true).unwrap_err().message.contains("nested more than 32 levels"));
    }
}

//! Decoding JSON values into column builders with the conversion rules of Spark's
//! `JacksonParser.makeConverter`.
//!
//! A value either lands in its builder — possibly as a *partial result*, a struct some of whose
//! fields failed and were left null — or fails with [`Fail::Convert`] (valid JSON of the wrong
//! shape; the caller decides how much to roll back) or [`Fail::Syntax`] (not JSON).
//!
//! Where partial results stop follows Spark: top-level fields always keep going; nested structs
//! do so only with `spark.sql.json.enablePartialResults` (default since Spark 3.4), and even then
//! a failing array element or map value fails its whole array or map.

use std::borrow::Cow;

use base64::Engine;

use super::builder::{ColumnBuilder, StructCol};
use super::datetime::{iso_utc_prefix, ReadFormats};
use super::decimal::parse_big_decimal;
use super::java_num::parse_long;
use super::json_lexer::{Fail, Key, Kind, Lexer, NumKind, Step};

/// What value conversion needs besides the text.
#[derive(Clone, Copy)]
pub(crate) struct JsonCx<'o> {
    /// Date-time parsing (default lenient or the user's patterns).
    pub(crate) formats: &'o ReadFormats,
    /// Spark's `allowNonNumericNumbers`.
    pub(crate) non_numeric: bool,
    /// Spark's `spark.sql.json.enablePartialResults`: nested structs keep their good fields.
    pub(crate) nested_partial: bool,
}

/// A floating-point value before it is narrowed to FLOAT or DOUBLE.
enum FloatSrc<'a> {
    Text(&'a str),
    NaN,
    PosInf,
    NegInf,
}

/// Decodes the next value into `col`; `Ok(true)` if it is a partial result.
#[inline]
pub(crate) fn decode_value(lx: &mut Lexer<'_>, col: &mut ColumnBuilder, cx: JsonCx<'_>) -> Step<bool> {
    if decode_plain(lx, col, cx) {
        Ok(false)
    } else {
        decode_classified(lx, col, cx)
    }
}

/// [`decode_value`] for any value: classified by its first byte, then converted by the rules
/// of the column's type.
fn decode_classified(lx: &mut Lexer<'_>, col: &mut ColumnBuilder, cx: JsonCx<'_>) -> Step<bool> {
    let kind = lx.peek_kind()?;
    if kind == Kind::Null {
        lx.read_literal(kind)?;
        col.push_null();
        return Ok(false);
    }
    let convert = |ok: bool| if ok { Ok(()) } else { Err(Fail::Convert) };
    match col {
        ColumnBuilder::Null(n) => {
            lx.skip_value(None)?;
            *n += 1;
        }
        ColumnBuilder::Boolean(c) => {
            convert(matches!(kind, Kind::True | Kind::False))?;
            lx.read_literal(kind)?;
            c.push(kind == Kind::True);
        }
        // Jackson's getByteValue accepts -128..=255 and wraps (200 becomes -56).
        ColumnBuilder::Int8(c) => {
            let v = int_value(lx, kind)?;
            convert((-128..=255).contains(&v))?;
            c.push(v as i8);
        }
        ColumnBuilder::Int16(c) => c.push(i16::try_from(int_value(lx, kind)?).map_err(|_| Fail::Convert)?),
        ColumnBuilder::Int32(c) => c.push(i32::try_from(int_value(lx, kind)?).map_err(|_| Fail::Convert)?),
        ColumnBuilder::Int64(c) => c.push(int_value(lx, kind)?),
        ColumnBuilder::Float32(c) => c.push(match float_source(lx, kind, cx.non_numeric)? {
            FloatSrc::Text(t) => t.parse().map_err(|_| Fail::Convert)?,
            FloatSrc::NaN => f32::NAN,
            FloatSrc::PosInf => f32::INFINITY,
            FloatSrc::NegInf => f32::NEG_INFINITY,
        }),
        ColumnBuilder::Float64(c) => c.push(match float_source(lx, kind, cx.non_numeric)? {
            FloatSrc::Text(t) => t.parse().map_err(|_| Fail::Convert)?,
            FloatSrc::NaN => f64::NAN,
            FloatSrc::PosInf => f64::INFINITY,
            FloatSrc::NegInf => f64::NEG_INFINITY,
        }),
        ColumnBuilder::Utf8(c) => {
            if kind == Kind::String {
                c.push(lx.read_string()?);
            } else {
                // Spark keeps any other value as its JSON text.
                c.push_written(|text| lx.skip_value(Some(text)), Fail::Syntax)?;
            }
        }
        ColumnBuilder::Binary(c) => {
            convert(kind == Kind::String)?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(lx.read_string()?);
            c.push(&bytes.map_err(|_| Fail::Convert)?);
        }
        ColumnBuilder::Date32(c) => {
            let s = nonempty_string(lx, kind)?;
            // Without a dateFormat Spark also accepts a day number (Spark 1.5 stored dates so).
            let days =
                cx.formats.parse_date(s).or_else(|| if cx.formats.has_date_format() { None } else { s.parse::<i32>().ok() });
            c.push(days.ok_or(Fail::Convert)?);
        }
        ColumnBuilder::Timestamp(c, Some(_)) => {
            let micros = if kind == Kind::Number {
                // A JSON integer is seconds since the epoch; Java's multiplication wraps.
                int_value(lx, kind)?.wrapping_mul(1_000_000)
            } else {
                cx.formats.parse_timestamp(nonempty_string(lx, kind)?).ok_or(Fail::Convert)?
            };
            c.push(micros);
        }
        ColumnBuilder::Timestamp(c, None) => {
            c.push(cx.formats.parse_timestamp_ntz(nonempty_string(lx, kind)?).ok_or(Fail::Convert)?);
        }
        ColumnBuilder::Decimal(c, precision, scale) => {
            let unscaled = if kind == Kind::Number {
                let n = lx.read_number()?;
                convert(matches!(n.kind, NumKind::Int | NumKind::Float))?;
                parse_big_decimal(n.text, *precision, *scale)
            } else {
                // Spark's US-locale decimal parser drops grouping commas.
                let s = nonempty_string(lx, kind)?;
                let s = if s.contains(',') { Cow::Owned(s.replace(',', "")) } else { Cow::Borrowed(s) };
                parse_big_decimal(&s, *precision, *scale)
            };
            c.push(unscaled.ok_or(Fail::Convert)?);
        }
        ColumnBuilder::Struct(st) => {
            convert(kind == Kind::Object)?;
            return decode_object(lx, st, cx, cx.nested_partial);
        }
        ColumnBuilder::List(l) => {
            convert(kind == Kind::Array)?;
            lx.begin_array();
            let (mut first, mut partial) = (true, false);
            while lx.next_element(&mut first)? {
                partial |= decode_value(lx, &mut l.child, cx)?;
            }
            l.commit();
            return Ok(partial);
        }
        ColumnBuilder::Map(m) => {
            convert(kind == Kind::Object)?;
            lx.begin_object();
            let (mut first, mut partial) = (true, false);
            // Spark keeps every entry, duplicate keys included.
            while let Some(key) = lx.next_key(&mut first)? {
                m.keys.push(key);
                partial |= decode_value(lx, &mut m.values, cx)?;
            }
            m.commit();
            return Ok(partial);
        }
    }
    Ok(false)
}

/// Decodes the values nearly every machine-written row consists of without classifying them
/// first: a string without escapes into a STRING column or a TIMESTAMP column that parses it, an
/// integer that plainly fits into a BIGINT or INT column. Each gives what the general path
/// below would; `false` means the value is not of such a shape, nothing was consumed, and the
/// general path decodes it (and judges whatever makes it unusual).
#[inline]
fn decode_plain(lx: &mut Lexer<'_>, col: &mut ColumnBuilder, cx: JsonCx<'_>) -> bool {
    let at = lx.pos();
    let done = match col {
        ColumnBuilder::Utf8(c) => lx.plain_string().map(|s| c.push(s)).is_some(),
        ColumnBuilder::Timestamp(c, Some(_)) => {
            // The common ISO shape is parsed where it lies, without scanning the string first.
            let micros = if cx.formats.lenient_timestamps() { lx.plain_quoted(iso_utc_prefix) } else { None };
            let micros =
                micros.or_else(|| lx.plain_string().filter(|s| !s.is_empty()).and_then(|s| cx.formats.parse_timestamp(s)));
            micros.map(|m| c.push(m)).is_some()
        }
        ColumnBuilder::Int64(c) => lx.plain_long().map(|v| c.push(v)).is_some(),
        ColumnBuilder::Int32(c) => lx.plain_long().and_then(|v| i32::try_from(v).ok()).map(|v| c.push(v)).is_some(),
        _ => false,
    };
    if !done {
        lx.seek(at);
    }
    done
}

/// A JSON integer (`VALUE_NUMBER_INT`) that fits a long.
fn int_value(lx: &mut Lexer<'_>, kind: Kind) -> Step<i64> {
    if kind != Kind::Number {
        return Err(Fail::Convert);
    }
    let n = lx.read_number()?;
    if n.kind != NumKind::Int {
        return Err(Fail::Convert);
    }
    parse_long(n.text).ok_or(Fail::Convert)
}

/// A string of at least one character (Spark rejects `""` for non-string types).
fn nonempty_string<'l>(lx: &'l mut Lexer<'_>, kind: Kind) -> Step<&'l str> {
    if kind != Kind::String {
        return Err(Fail::Convert);
    }
    let s = lx.read_string()?;
    if s.is_empty() {
        Err(Fail::Convert)
    } else {
        Ok(s)
    }
}

/// Any JSON number, or one of the strings Spark reads as NaN or infinity.
fn float_source<'a>(lx: &mut Lexer<'a>, kind: Kind, non_numeric: bool) -> Step<FloatSrc<'a>> {
    match kind {
        Kind::Number => {
            let n = lx.read_number()?;
            Ok(match n.kind {
                NumKind::Int | NumKind::Float => FloatSrc::Text(n.text),
                NumKind::NaN => FloatSrc::NaN,
                NumKind::PosInf => FloatSrc::PosInf,
                NumKind::NegInf => FloatSrc::NegInf,
            })
        }
        Kind::String if non_numeric => match lx.read_string()? {
            "NaN" => Ok(FloatSrc::NaN),
            "+INF" | "+Infinity" | "Infinity" => Ok(FloatSrc::PosInf),
            "-INF" | "-Infinity" => Ok(FloatSrc::NegInf),
            _ => Err(Fail::Convert),
        },
        _ => Err(Fail::Convert),
    }
}

/// Decodes an object into a struct row, fields matched by exact name, unknown keys skipped.
///
/// With `partial`, a field that fails to convert is left null and decoding goes on; the return
/// value says whether that happened here or in a nested partial result. Without it the first
/// failure propagates. A repeated key replaces the earlier value, except that a failing repeat
/// keeps it (Spark only updates the row after a successful conversion).
pub(crate) fn decode_object(lx: &mut Lexer<'_>, st: &mut StructCol, cx: JsonCx<'_>, partial: bool) -> Step<bool> {
    lx.begin_object();
    let row = st.len();
    st.seen.fill(false);
    let (mut failed, mut first, mut hint) = (false, true, 0);
    while let Some(key) = lx.next_key_expecting(&mut first, st.plain_name(hint))? {
        let found = match key {
            Key::Expected => Some(hint),
            Key::Other(name) => st.field_index(name, hint),
        };
        let Some(i) = found else {
            lx.skip_value(None)?;
            continue;
        };
        hint = i + 1;
        let start = lx.pos();
        let repeated = st.seen[i];
        let child = &mut st.children[i];
        if repeated && !partial {
            child.truncate(row);
        }
        match decode_value(lx, child, cx) {
            Ok(_) if repeated && partial => {
                // Decode again in the earlier value's place.
                child.truncate(row);
                lx.seek(start);
                failed |= decode_value(lx, child, cx)?;
            }
            Ok(nested_failed) => {
                st.seen[i] = true;
                failed |= nested_failed;
            }
            Err(Fail::Convert) if partial => {
                child.truncate(if repeated { row + 1 } else { row });
                lx.seek(start);
                lx.skip_value(None)?;
                failed = true;
            }
            Err(e) => return Err(e),
        }
    }
    for (child, seen) in st.children.iter_mut().zip(&st.seen) {
        if !seen {
            child.push_null();
        }
    }
    st.commit();
    Ok(failed)
}

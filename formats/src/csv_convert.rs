//! Converting CSV field text to typed values with the rules of Spark's
//! `UnivocityParser.makeConverter`: Java's number parsers, case-insensitive booleans, the
//! `nanValue`/`positiveInf`/`negativeInf` spellings, grouping commas ignored in decimals.

use std::borrow::Cow;

use super::builder::ColumnBuilder;
use super::datetime::ReadFormats;
use super::decimal::parse_big_decimal;
use super::java_num::{parse_double, parse_float, parse_long};

/// What field conversion needs besides the text.
pub(crate) struct TextCx<'o> {
    /// Date-time parsing (default lenient or the user's patterns).
    pub(crate) formats: &'o ReadFormats,
    /// `nanValue`: the text read as NaN.
    pub(crate) nan_value: &'o str,
    /// `positiveInf`: the text read as +infinity.
    pub(crate) positive_inf: &'o str,
    /// `negativeInf`: the text read as -infinity.
    pub(crate) negative_inf: &'o str,
}

/// Appends `datum` converted to the column's type; `None` (and nothing appended) if it does not
/// convert.
pub(crate) fn convert_text(col: &mut ColumnBuilder, datum: &str, cx: &TextCx<'_>) -> Option<()> {
    match col {
        ColumnBuilder::Null(_) => col.push_null(),
        ColumnBuilder::Boolean(c) => {
            // Scala's `toBoolean`: `true`/`false` in any case, nothing else.
            if datum.eq_ignore_ascii_case("true") {
                c.push(true);
            } else if datum.eq_ignore_ascii_case("false") {
                c.push(false);
            } else {
                return None;
            }
        }
        ColumnBuilder::Int8(c) => c.push(i8::try_from(parse_long(datum)?).ok()?),
        ColumnBuilder::Int16(c) => c.push(i16::try_from(parse_long(datum)?).ok()?),
        ColumnBuilder::Int32(c) => c.push(i32::try_from(parse_long(datum)?).ok()?),
        ColumnBuilder::Int64(c) => c.push(parse_long(datum)?),
        ColumnBuilder::Float32(c) => c.push(match datum {
            d if d == cx.nan_value => f32::NAN,
            d if d == cx.negative_inf => f32::NEG_INFINITY,
            d if d == cx.positive_inf => f32::INFINITY,
            d => parse_float(d)?,
        }),
        ColumnBuilder::Float64(c) => c.push(match datum {
            d if d == cx.nan_value => f64::NAN,
            d if d == cx.negative_inf => f64::NEG_INFINITY,
            d if d == cx.positive_inf => f64::INFINITY,
            d => parse_double(d)?,
        }),
        ColumnBuilder::Decimal(c, precision, scale) => {
            let text = if datum.contains(',') { Cow::Owned(datum.replace(',', "")) } else { Cow::Borrowed(datum) };
            c.push(parse_big_decimal(&text, *precision, *scale)?);
        }
        ColumnBuilder::Date32(c) => c.push(cx.formats.parse_date(datum)?),
        ColumnBuilder::Timestamp(c, Some(_)) => c.push(cx.formats.parse_timestamp(datum)?),
        ColumnBuilder::Timestamp(c, None) => c.push(cx.formats.parse_timestamp_ntz(datum)?),
        ColumnBuilder::Utf8(c) => c.push(datum),
        ColumnBuilder::Binary(c) => c.push(datum.as_bytes()),
        // Nested types are rejected before decoding starts.
        ColumnBuilder::List(_) | ColumnBuilder::Map(_) | ColumnBuilder::Struct(_) => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Float64Type, Int8Type};

    fn cx(formats: &ReadFormats) -> TextCx<'_> {
        TextCx { formats, nan_value: "NaN", positive_inf: "Inf", negative_inf: "-Inf" }
    }

    #[test]
    fn numbers_follow_java_parsers() {
        let f = ReadFormats::default();
        let mut b = ColumnBuilder::new(&DataType::Int8).unwrap();
        assert!(convert_text(&mut b, "+127", &cx(&f)).is_some());
        assert!(convert_text(&mut b, "128", &cx(&f)).is_none());
        assert!(convert_text(&mut b, " 1", &cx(&f)).is_none());
        assert_eq!(b.finish().unwrap().as_primitive::<Int8Type>().values(), &[127]);

        let mut d = ColumnBuilder::new(&DataType::Float64).unwrap();
        for ok in ["Inf", "-Inf", "NaN", " 2.5d ", "1e3"] {
            assert!(convert_text(&mut d, ok, &cx(&f)).is_some(), "{ok}");
        }
        assert!(convert_text(&mut d, "inf", &cx(&f)).is_none());
        let d = d.finish().unwrap();
        let v = d.as_primitive::<Float64Type>().values();
        assert_eq!((v[0], v[1], v[3], v[4]), (f64::INFINITY, f64::NEG_INFINITY, 2.5, 1000.0));
        assert!(v[2].is_nan());
    }

    #[test]
    fn booleans_and_decimals() {
        let f = ReadFormats::default();
        let mut b = ColumnBuilder::new(&DataType::Boolean).unwrap();
        assert!(convert_text(&mut b, "TRUE", &cx(&f)).is_some());
        assert!(convert_text(&mut b, "yes", &cx(&f)).is_none());
        let mut m = ColumnBuilder::new(&DataType::Decimal128(7, 2)).unwrap();
        assert!(convert_text(&mut m, "1,234.567", &cx(&f)).is_some());
        assert!(convert_text(&mut m, "123456.7", &cx(&f)).is_none());
        assert_eq!(m.finish().unwrap().as_primitive::<arrow::datatypes::Decimal128Type>().value(0), 123457);
    }
}

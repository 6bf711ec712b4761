//! Typed access to the flat (non-nested) columns the writers render.
//!
//! Both writers need each column downcast once per batch and then rendered per row as Spark
//! renders the value: Java's `Float.toString`/`Double.toString`, `BigDecimal.toString`, and the
//! configured date-time patterns.

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
    TimestampMicrosecondType,
};

use super::datetime::WriteFormats;
use super::decimal::big_decimal_to_string;
use super::java_fmt::{double_to_string, float_to_string};
use sluice_common::error::Result;

/// A flat column, downcast.
pub(crate) enum Scalar<'a> {
    /// Spark's NullType: every value is null.
    Null,
    Bool(&'a BooleanArray),
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Decimal(&'a Decimal128Array, i8),
    Str(&'a StringArray),
    Binary(&'a BinaryArray),
    Date(&'a Date32Array),
    /// Microseconds; `true` for TIMESTAMP_NTZ.
    Timestamp(&'a TimestampMicrosecondArray, bool),
}

impl<'a> Scalar<'a> {
    /// The typed view of `array`, or `None` if it is nested or a type Spark has no name for.
    pub(crate) fn new(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Null => Self::Null,
            DataType::Boolean => Self::Bool(array.as_boolean_opt()?),
            DataType::Int8 => Self::I8(array.as_primitive_opt::<Int8Type>()?),
            DataType::Int16 => Self::I16(array.as_primitive_opt::<Int16Type>()?),
            DataType::Int32 => Self::I32(array.as_primitive_opt::<Int32Type>()?),
            DataType::Int64 => Self::I64(array.as_primitive_opt::<Int64Type>()?),
            DataType::Float32 => Self::F32(array.as_primitive_opt::<Float32Type>()?),
            DataType::Float64 => Self::F64(array.as_primitive_opt::<Float64Type>()?),
            DataType::Decimal128(_, s) => Self::Decimal(array.as_primitive_opt::<Decimal128Type>()?, *s),
            DataType::Utf8 => Self::Str(array.as_string_opt::<i32>()?),
            DataType::Binary => Self::Binary(array.as_binary_opt::<i32>()?),
            DataType::Date32 => Self::Date(array.as_primitive_opt::<Date32Type>()?),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Self::Timestamp(array.as_primitive_opt::<TimestampMicrosecondType>()?, tz.is_none())
            }
            _ => return None,
        })
    }

    /// True if value `i` is null.
    pub(crate) fn is_null(&self, i: usize) -> bool {
        match self {
            Self::Null => true,
            Self::Bool(a) => a.is_null(i),
            Self::I8(a) => a.is_null(i),
            Self::I16(a) => a.is_null(i),
            Self::I32(a) => a.is_null(i),
            Self::I64(a) => a.is_null(i),
            Self::F32(a) => a.is_null(i),
            Self::F64(a) => a.is_null(i),
            Self::Decimal(a, _) => a.is_null(i),
            Self::Str(a) => a.is_null(i),
            Self::Binary(a) => a.is_null(i),
            Self::Date(a) => a.is_null(i),
            Self::Timestamp(a, _) => a.is_null(i),
        }
    }

    /// Appends value `i` (which must be non-null) as Spark's `toString` renders it: Java float
    /// digits, `BigDecimal.toString`, binary as (lossy) UTF-8, and dates and timestamps through
    /// `formats` — or, without formats, as Spark's internal day and microsecond numbers (how
    /// Spark's JSON writer renders map keys).
    pub(crate) fn text(&self, i: usize, formats: Option<&WriteFormats>, out: &mut String) -> Result<()> {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = match (self, formats) {
            (Self::Null, _) => Ok(()),
            (Self::Bool(a), _) => write!(out, "{}", a.value(i)),
            (Self::I8(a), _) => write!(out, "{}", a.value(i)),
            (Self::I16(a), _) => write!(out, "{}", a.value(i)),
            (Self::I32(a), _) => write!(out, "{}", a.value(i)),
            (Self::I64(a), _) => write!(out, "{}", a.value(i)),
            (Self::F32(a), _) => write!(out, "{}", float_to_string(a.value(i))),
            (Self::F64(a), _) => write!(out, "{}", double_to_string(a.value(i))),
            (Self::Decimal(a, scale), _) => write!(out, "{}", big_decimal_to_string(a.value(i), *scale)),
            (Self::Str(a), _) => write!(out, "{}", a.value(i)),
            (Self::Binary(a), _) => write!(out, "{}", String::from_utf8_lossy(a.value(i))),
            (Self::Date(a), None) => write!(out, "{}", a.value(i)),
            (Self::Timestamp(a, _), None) => write!(out, "{}", a.value(i)),
            (Self::Date(a), Some(f)) => return f.format_date(a.value(i), out),
            (Self::Timestamp(a, false), Some(f)) => return f.format_timestamp(a.value(i), out),
            (Self::Timestamp(a, true), Some(f)) => return f.format_timestamp_ntz(a.value(i), out),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::options::Options;

    #[test]
    fn renders_like_spark_to_string() {
        let f = WriteFormats::from_options(&Options::new()).unwrap();
        let render = |a: &dyn Array| {
            let mut s = String::new();
            Scalar::new(a).unwrap().text(0, Some(&f), &mut s).unwrap();
            s
        };
        assert_eq!(render(&Float64Array::from(vec![1e10])), "1.0E10");
        assert_eq!(render(&Float32Array::from(vec![0.1f32])), "0.1");
        let dec = Decimal128Array::from(vec![1250]).with_precision_and_scale(5, 2).unwrap();
        assert_eq!(render(&dec), "12.50");
        assert_eq!(render(&Date32Array::from(vec![19723])), "2024-01-01");
        let ts = TimestampMicrosecondArray::from(vec![1_704_103_200_000_000]).with_timezone("UTC");
        assert_eq!(render(&ts), "2024-01-01T10:00:00.000Z");
        let mut internal = String::new();
        Scalar::new(&ts).unwrap().text(0, None, &mut internal).unwrap();
        assert_eq!(internal, "1704103200000000");
        assert!(Scalar::new(&arrow::array::LargeStringArray::from(vec!["x"])).is_none());
    }
}

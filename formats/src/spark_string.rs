//! One Arrow value rendered as Spark's `ToPrettyString` expression renders it.
//!
//! `Dataset.show` (and therefore the console sink) does not print values with `CAST(… AS
//! STRING)`: since Spark 3.5 it wraps every column in `ToPrettyString`, which differs from a cast
//! in three visible ways — nulls, top-level or nested, print as `NULL`; binary prints as
//! upper-case hex bytes (`[41 42 0A]`); decimals always use plain notation. Structs and maps use
//! `{…}` and arrays `[…]`, with nested values following the same rules (nested strings are not
//! quoted). Users compare sluice's console output with Spark's line by line, so this module
//! reproduces those rules rather than Arrow's own display format.

use arrow::array::{Array, AsArray, GenericListArray, OffsetSizeTrait};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type, Float16Type, Float32Type,
    Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::downcast_dictionary_array;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::java_fmt::{double_to_string, float_to_string};
use super::spark_time::{format_date, format_timestamp};

/// The text Spark prints for a null, at the top level and inside arrays, structs and maps.
const NULL_TEXT: &str = "NULL";

/// Milliseconds in one day, to turn Arrow's `Date64` into a day count.
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Renders `array[row]` exactly as Spark's `ToPrettyString` does; `None` when the value is null.
///
/// The caller decides how to show a top-level null (`Dataset.show` prints `NULL`), which is why
/// this returns an `Option` instead of the literal. A `row` past the end of the array is treated
/// as null rather than panicking, so a malformed batch cannot take the sink down.
pub fn value_to_spark_string(array: &dyn Array, row: usize) -> Option<String> {
    let mut out = String::new();
    render_into(&mut out, array, row).then_some(out)
}

/// Appends the rendering of a non-null value and returns `true`, or returns `false` (appending
/// nothing) when the value is null, so nested callers can substitute [`NULL_TEXT`].
fn render_into(out: &mut String, array: &dyn Array, row: usize) -> bool {
    if row >= array.len() || array.is_null(row) {
        return false;
    }
    match array.data_type() {
        DataType::Null => return false,
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) { "true" } else { "false" }),
        DataType::Int8 => push_display(out, array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => push_display(out, array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => push_display(out, array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => push_display(out, array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => push_display(out, array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => push_display(out, array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => push_display(out, array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => push_display(out, array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => out.push_str(&float_to_string(array.as_primitive::<Float16Type>().value(row).to_f32())),
        DataType::Float32 => out.push_str(&float_to_string(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => out.push_str(&double_to_string(array.as_primitive::<Float64Type>().value(row))),
        DataType::Decimal32(_, scale) => push_decimal(out, &array.as_primitive::<Decimal32Type>().value(row).to_string(), *scale),
        DataType::Decimal64(_, scale) => push_decimal(out, &array.as_primitive::<Decimal64Type>().value(row).to_string(), *scale),
        DataType::Decimal128(_, scale) => {
            push_decimal(out, &array.as_primitive::<Decimal128Type>().value(row).to_string(), *scale)
        }
        DataType::Decimal256(_, scale) => {
            push_decimal(out, &array.as_primitive::<Decimal256Type>().value(row).to_string(), *scale)
        }
        DataType::Utf8 => out.push_str(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => out.push_str(array.as_string::<i64>().value(row)),
        DataType::Utf8View => out.push_str(array.as_string_view().value(row)),
        DataType::Binary => push_hex(out, array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => push_hex(out, array.as_binary::<i64>().value(row)),
        DataType::BinaryView => push_hex(out, array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => push_hex(out, array.as_fixed_size_binary().value(row)),
        DataType::Date32 => out.push_str(&format_date(i64::from(array.as_primitive::<Date32Type>().value(row)))),
        DataType::Date64 => {
            let millis = array.as_primitive::<Date64Type>().value(row);
            out.push_str(&format_date(millis.div_euclid(MILLIS_PER_DAY)))
        }
        DataType::Timestamp(unit, _) => out.push_str(&format_timestamp(timestamp_value(array, *unit, row), *unit)),
        DataType::List(_) => push_list(out, array.as_list::<i32>(), row),
        DataType::LargeList(_) => push_list(out, array.as_list::<i64>(), row),
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list();
            let len = usize::try_from(list.value_length()).unwrap_or(0);
            let start = list.value_offset(row) as usize;
            push_elements(out, list.values().as_ref(), start, start + len);
        }
        DataType::Struct(_) => push_struct(out, array, row),
        DataType::Map(_, _) => push_map(out, array, row),
        DataType::Dictionary(_, _) => return render_dictionary(out, array, row),
        _ => push_arrow_display(out, array, row),
    }
    true
}

/// Appends a value whose `Display` already matches Java's `toString` (integers).
fn push_display(out: &mut String, value: impl std::fmt::Display) {
    out.push_str(&value.to_string());
}

/// Reads a timestamp's raw `i64`, whatever its unit.
fn timestamp_value(array: &dyn Array, unit: TimeUnit, row: usize) -> i64 {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
    }
}

/// Appends an unscaled decimal as `java.math.BigDecimal.toPlainString` does: never scientific
/// notation, and exactly `scale` fractional digits (`1250` at scale 2 is `12.50`).
fn push_decimal(out: &mut String, unscaled: &str, scale: i8) {
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", unscaled),
    };
    if scale <= 0 {
        out.push_str(sign);
        out.push_str(digits);
        // BigDecimal prints a zero with a negative scale as a bare "0".
        if digits != "0" {
            out.push_str(&"0".repeat(usize::from(scale.unsigned_abs())));
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    out.push_str(sign);
    if digits.len() > scale {
        let (int_part, frac_part) = digits.split_at(digits.len() - scale);
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac_part);
    } else {
        out.push_str("0.");
        out.push_str(&"0".repeat(scale - digits.len()));
        out.push_str(digits);
    }
}

/// Appends bytes as Spark's hex style: `[41 42 0A]`, upper case, space separated.
fn push_hex(out: &mut String, bytes: &[u8]) {
    out.push('[');
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out.push(']');
}

/// Appends a nested value, writing `NULL` when it is null.
fn push_nested(out: &mut String, array: &dyn Array, row: usize) {
    if !render_into(out, array, row) {
        out.push_str(NULL_TEXT);
    }
}

/// Appends one list entry of a `List`/`LargeList` column.
fn push_list<O: OffsetSizeTrait>(out: &mut String, list: &GenericListArray<O>, row: usize) {
    let offsets = list.value_offsets();
    let start = offsets[row].as_usize();
    let end = offsets[row + 1].as_usize();
    push_elements(out, list.values().as_ref(), start, end);
}

/// Appends `values[start..end]` as `[a, b, NULL]`.
fn push_elements(out: &mut String, values: &dyn Array, start: usize, end: usize) {
    out.push('[');
    for i in start..end {
        if i > start {
            out.push_str(", ");
        }
        push_nested(out, values, i);
    }
    out.push(']');
}

/// Appends a struct as its field values only: `{1, a, NULL}`.
fn push_struct(out: &mut String, array: &dyn Array, row: usize) {
    out.push('{');
    for (i, column) in array.as_struct().columns().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_nested(out, column.as_ref(), row);
    }
    out.push('}');
}

/// Appends a map entry list as `{a -> 1, b -> NULL}`.
fn push_map(out: &mut String, array: &dyn Array, row: usize) {
    let map = array.as_map();
    let offsets = map.value_offsets();
    // Offsets of a valid map array are non-negative.
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    out.push('{');
    for i in start..end {
        if i > start {
            out.push_str(", ");
        }
        push_nested(out, map.keys().as_ref(), i);
        out.push_str(" -> ");
        push_nested(out, map.values().as_ref(), i);
    }
    out.push('}');
}

/// Renders a dictionary-encoded value as the value it points to (Spark has no dictionary type).
fn render_dictionary(out: &mut String, array: &dyn Array, row: usize) -> bool {
    downcast_dictionary_array!(
        array => match array.key(row) {
            Some(key) => render_into(out, array.values().as_ref(), key),
            None => false,
        },
        _ => false,
    )
}

/// Last resort for Arrow types with no Spark counterpart in sluice (intervals, durations, times,
/// views, run-end encoding): Arrow's own display, so output degrades instead of failing.
fn push_arrow_display(out: &mut String, array: &dyn Array, row: usize) {
    let text =
        ArrayFormatter::try_new(array, &FormatOptions::default()).and_then(|formatter| formatter.value(row).try_to_string());
    match text {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str(&format!("<{}>", array.data_type())),
    }
}

#[cfg(test)]
#[path = "spark_string_tests.rs"]
mod tests;

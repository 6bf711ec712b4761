//! Expected strings below are Spark 3.5/4.0 `ToPrettyString` output written out by hand.

use std::sync::Arc;

use arrow::array::Int32Builder;
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float32Array, Float64Array, Int32Array,
    Int64Array, Int8Array, LargeStringArray, ListArray, MapBuilder, NullArray, StringArray, StringBuilder, StringViewArray,
    StructArray, TimestampMicrosecondArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{Field, Int32Type};

use super::*;

fn render(array: &dyn Array) -> Vec<Option<String>> {
    (0..array.len()).map(|row| value_to_spark_string(array, row)).collect()
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

#[test]
fn integers_print_plainly_and_nulls_are_none() {
    let ints = Int64Array::from(vec![Some(1), Some(-42), None, Some(i64::MAX)]);
    assert_eq!(render(&ints), vec![Some("1".into()), Some("-42".into()), None, Some("9223372036854775807".into())]);
    assert_eq!(render(&Int8Array::from(vec![-128])), some(&["-128"]));
    assert_eq!(render(&UInt64Array::from(vec![u64::MAX])), some(&["18446744073709551615"]));
    assert_eq!(render(&NullArray::new(2)), vec![None, None]);
    assert_eq!(value_to_spark_string(&Int32Array::from(vec![1]), 5), None);
}

#[test]
fn floats_follow_java_to_string() {
    let doubles = Float64Array::from(vec![1.0, 1.0e10, 0.1, f64::NAN, f64::INFINITY, -0.0, 1.0e-4]);
    assert_eq!(render(&doubles), some(&["1.0", "1.0E10", "0.1", "NaN", "Infinity", "-0.0", "1.0E-4"]));
    let floats = Float32Array::from(vec![1.5, 3.0e9, f32::NEG_INFINITY]);
    assert_eq!(render(&floats), some(&["1.5", "3.0E9", "-Infinity"]));
}

#[test]
fn decimals_keep_their_scale_in_plain_notation() {
    let dec = Decimal128Array::from(vec![1250, -5, 0, 123_456_789_012_345_678])
        .with_precision_and_scale(38, 2)
        .expect("valid decimal type");
    assert_eq!(render(&dec), some(&["12.50", "-0.05", "0.00", "1234567890123456.78"]));
    let whole = Decimal128Array::from(vec![7]).with_precision_and_scale(10, 0).expect("valid");
    assert_eq!(render(&whole), some(&["7"]));
    let big = Decimal128Array::from(vec![1]).with_precision_and_scale(38, 18).expect("valid");
    assert_eq!(render(&big), some(&["0.000000000000000001"]));
}

#[test]
fn booleans_and_strings() {
    assert_eq!(render(&BooleanArray::from(vec![true, false])), some(&["true", "false"]));
    assert_eq!(render(&StringArray::from(vec!["a b", ""])), some(&["a b", ""]));
    assert_eq!(render(&LargeStringArray::from(vec!["large"])), some(&["large"]));
    assert_eq!(render(&StringViewArray::from(vec!["a view longer than twelve"])), some(&["a view longer than twelve"]));
}

#[test]
fn dates_render_as_iso_days() {
    let dates = Date32Array::from(vec![0, 16_887, -1]);
    assert_eq!(render(&dates), some(&["1970-01-01", "2016-03-27", "1969-12-31"]));
}

#[test]
fn timestamps_show_fraction_only_when_non_zero() {
    let ts = TimestampMicrosecondArray::from(vec![
        1_459_107_574_000_000,
        1_459_107_574_500_000,
        1_459_107_574_123_456,
        -1,
        -86_400_000_000,
    ])
    .with_timezone("UTC");
    assert_eq!(
        render(&ts),
        some(&[
            "2016-03-27 19:39:34",
            "2016-03-27 19:39:34.5",
            "2016-03-27 19:39:34.123456",
            "1969-12-31 23:59:59.999999",
            "1969-12-31 00:00:00",
        ])
    );
}

#[test]
fn timestamps_in_other_zones_and_units_render_in_utc() {
    let tokyo = TimestampMicrosecondArray::from(vec![1_459_107_574_000_000]).with_timezone("Asia/Tokyo");
    assert_eq!(render(&tokyo), some(&["2016-03-27 19:39:34"]));
    let ntz_nanos = TimestampNanosecondArray::from(vec![1_459_107_574_120_000_999]);
    assert_eq!(render(&ntz_nanos), some(&["2016-03-27 19:39:34.12"]));
}

#[test]
fn binary_is_upper_case_hex_in_brackets() {
    let bin = BinaryArray::from(vec![b"AB\n".as_ref(), b"".as_ref(), &[0xff, 0x00]]);
    assert_eq!(render(&bin), some(&["[41 42 0A]", "[]", "[FF 00]"]));
}

#[test]
fn arrays_use_square_brackets_and_null_elements() {
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2), None]),
        Some(vec![]),
        None,
        Some(vec![None]),
    ]);
    assert_eq!(render(&list), vec![Some("[1, 2, NULL]".into()), Some("[]".into()), None, Some("[NULL]".into())]);
}

fn sample_struct() -> StructArray {
    let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(3)]));
    let strs: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some("b"), None]));
    StructArray::from(vec![
        (Arc::new(Field::new("i", DataType::Int32, true)), ints),
        (Arc::new(Field::new("s", DataType::Utf8, true)), strs),
    ])
}

#[test]
fn structs_print_values_only_in_braces() {
    assert_eq!(render(&sample_struct()), some(&["{1, a}", "{NULL, b}", "{3, NULL}"]));
}

#[test]
fn nested_struct_inside_struct_and_array() {
    let inner: ArrayRef = Arc::new(sample_struct());
    let label: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "z"]));
    let outer = StructArray::from(vec![
        (Arc::new(Field::new("label", DataType::Utf8, false)), label),
        (Arc::new(Field::new("inner", inner.data_type().clone(), true)), inner.clone()),
    ]);
    assert_eq!(render(&outer), some(&["{x, {1, a}}", "{y, {NULL, b}}", "{z, {3, NULL}}"]));

    let field = Arc::new(Field::new_list_field(inner.data_type().clone(), true));
    let offsets = arrow::buffer::OffsetBuffer::from_lengths([3]);
    let list = ListArray::new(field, offsets, inner, None);
    assert_eq!(render(&list), some(&["[{1, a}, {NULL, b}, {3, NULL}]"]));
}

#[test]
fn null_struct_inside_struct_prints_null() {
    let inner = sample_struct();
    let (fields, columns, _) = inner.into_parts();
    let nulls = arrow::buffer::NullBuffer::from(vec![true, false, true]);
    let inner: ArrayRef = Arc::new(StructArray::new(fields, columns, Some(nulls)));
    let outer = StructArray::from(vec![(Arc::new(Field::new("inner", inner.data_type().clone(), true)), inner)]);
    assert_eq!(render(&outer), some(&["{{1, a}}", "{NULL}", "{{3, NULL}}"]));
}

#[test]
fn maps_print_arrows_and_null_values() {
    let mut builder = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    builder.keys().append_value("a");
    builder.values().append_value(1);
    builder.keys().append_value("b");
    builder.values().append_null();
    builder.append(true).expect("map entry");
    builder.append(true).expect("empty map");
    builder.append(false).expect("null map");
    let map = builder.finish();
    assert_eq!(render(&map), vec![Some("{a -> 1, b -> NULL}".into()), Some("{}".into()), None]);
}

#[test]
fn map_of_arrays_nests_brackets() {
    let mut builder = MapBuilder::new(None, StringBuilder::new(), arrow::array::ListBuilder::new(Int32Builder::new()));
    builder.keys().append_value("k");
    builder.values().values().append_value(1);
    builder.values().values().append_value(2);
    builder.values().append(true);
    builder.append(true).expect("map entry");
    assert_eq!(render(&builder.finish()), some(&["{k -> [1, 2]}"]));
}

#[test]
fn dictionary_values_render_as_their_value_type() {
    let dict: DictionaryArray<Int32Type> = vec![Some("x"), None, Some("y"), Some("x")].into_iter().collect();
    assert_eq!(render(&dict), vec![Some("x".into()), None, Some("y".into()), Some("x".into())]);
}

//! Tests of the JSON writer against Spark's output.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array,
    ListArray, MapArray, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema};

use super::*;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect()).unwrap()
}

fn write(b: &RecordBatch, pairs: &[(&str, &str)]) -> String {
    let opts = JsonWriteOptions::from_options(&Options::from_pairs(pairs.iter().copied()), &[]).unwrap();
    let mut out = Vec::new();
    write_json_lines(b, &opts, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn writes_scalars_omitting_nulls() {
    let b = batch(vec![
        ("i", Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef),
        ("s", Arc::new(StringArray::from(vec![Some("a\"b\n"), None]))),
        ("ok", Arc::new(BooleanArray::from(vec![Some(true), None]))),
        ("l", Arc::new(Int64Array::from(vec![Some(-5), None]))),
    ]);
    assert_eq!(write(&b, &[]), "{\"i\":1,\"s\":\"a\\\"b\\n\",\"ok\":true,\"l\":-5}\n{}\n");
    assert_eq!(
        write(&b, &[("ignoreNullFields", "false")]).lines().nth(1),
        Some("{\"i\":null,\"s\":null,\"ok\":null,\"l\":null}")
    );
}

#[test]
fn writes_floats_decimals_binary_and_datetimes_like_spark() {
    let b = batch(vec![
        ("d", Arc::new(Float64Array::from(vec![1e10, f64::NAN])) as ArrayRef),
        ("f", Arc::new(Float32Array::from(vec![0.1f32, f32::INFINITY]))),
        ("m", Arc::new(Decimal128Array::from(vec![1250, 1]).with_precision_and_scale(10, 2).unwrap())),
        ("b", Arc::new(BinaryArray::from(vec![&b"hi"[..], &b""[..]]))),
        ("t", Arc::new(TimestampMicrosecondArray::from(vec![1_704_103_200_000_000, 1_704_103_200_123_456]).with_timezone("UTC"))),
        ("n", Arc::new(TimestampMicrosecondArray::from(vec![1_704_103_200_000_000, 0]))),
        ("dt", Arc::new(Date32Array::from(vec![19723, 0]))),
    ]);
    let out = write(&b, &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "{\"d\":1.0E10,\"f\":0.1,\"m\":12.50,\"b\":\"aGk=\",\"t\":\"2024-01-01T10:00:00.000Z\",\"n\":\"2024-01-01T10:00:00.000\",\"dt\":\"2024-01-01\"}"
    );
    assert_eq!(
        lines[1],
        "{\"d\":\"NaN\",\"f\":\"Infinity\",\"m\":0.01,\"b\":\"\",\"t\":\"2024-01-01T10:00:00.123Z\",\"n\":\"1970-01-01T00:00:00.000\",\"dt\":\"1970-01-01\"}"
    );
    let custom = write(&b, &[("timestampFormat", "yyyy/MM/dd HH:mm"), ("dateFormat", "dd.MM.yyyy")]);
    assert!(custom.contains("\"t\":\"2024/01/01 10:00\"") && custom.contains("\"dt\":\"01.01.2024\""), "{custom}");
}

#[test]
fn writes_nested_values() {
    let inner = StructArray::from(vec![
        (Arc::new(Field::new("x", DataType::Int32, true)), Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef),
        (Arc::new(Field::new("y", DataType::Utf8, true)), Arc::new(StringArray::from(vec![Some("a"), Some("b")])) as ArrayRef),
    ]);
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None, Some(3)]), None]);
    let entries = Fields::from(vec![Field::new("key", DataType::Int32, false), Field::new("value", DataType::Utf8, true)]);
    let map = MapArray::try_new(
        Arc::new(Field::new("entries", DataType::Struct(entries.clone()), false)),
        OffsetBuffer::new(vec![0, 2, 2].into()),
        StructArray::new(
            entries,
            vec![Arc::new(Int32Array::from(vec![7, 8])) as ArrayRef, Arc::new(StringArray::from(vec![Some("v"), None]))],
            None,
        ),
        None,
        false,
    )
    .unwrap();
    let b = batch(vec![("st", Arc::new(inner) as ArrayRef), ("l", Arc::new(list)), ("m", Arc::new(map))]);
    assert_eq!(
        write(&b, &[]),
        "{\"st\":{\"x\":1,\"y\":\"a\"},\"l\":[1,null,3],\"m\":{\"7\":\"v\",\"8\":null}}\n{\"st\":{\"y\":\"b\"},\"m\":{}}\n"
    );
}

#[test]
fn options_are_checked() {
    assert!(JsonWriteOptions::from_options(&Options::from_pairs([("pretty", "true")]), &[]).is_err());
    assert!(JsonWriteOptions::from_options(&Options::from_pairs([("compression", "gzip")]), &["compression"]).is_ok());
    assert!(JsonWriteOptions::from_options(&Options::from_pairs([("encoding", "UTF-16")]), &[]).is_err());
    assert!(JsonWriteOptions::from_options(&Options::from_pairs([("dateFormat", "yyyy-ww")]), &[]).is_err());
}

//! Tests of the CSV reader against Spark's documented behaviour.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int32Type, Schema, TimeUnit, TimestampMicrosecondType};

use super::*;

fn schema(fields: Vec<(&str, DataType)>) -> SchemaRef {
    Arc::new(Schema::new(fields.into_iter().map(|(n, t)| Field::new(n, t, true)).collect::<Vec<_>>()))
}

fn opts(pairs: &[(&str, &str)]) -> CsvReadOptions {
    CsvReadOptions::from_options(&Options::from_pairs(pairs.iter().copied()), &[]).unwrap()
}

fn read(data: &str, s: &SchemaRef, o: &CsvReadOptions) -> DecodeResult {
    decode_csv(data.as_bytes(), false, s, o).unwrap()
}

fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
}

fn ints(a: &ArrayRef) -> Vec<Option<i32>> {
    a.as_primitive::<Int32Type>().iter().collect()
}

fn int_str() -> SchemaRef {
    schema(vec![("i", DataType::Int32), ("s", DataType::Utf8)])
}

#[test]
fn reads_fields_by_position_skipping_header_blank_and_comment_lines() {
    let s = int_str();
    let o = opts(&[("header", "true"), ("comment", "#")]);
    assert!(o.header());
    let data = "\n# note\ni,s\n1,a\n  \n#2,b\n3,\"c,d\"\r\n";
    let r = decode_csv(data.as_bytes(), true, &s, &o).unwrap();
    assert_eq!(r.malformed_rows, 0);
    assert_eq!(ints(r.batch.column(0)), vec![Some(1), Some(3)]);
    assert_eq!(strings(r.batch.column(1)), vec![Some("a".into()), Some("c,d".into())]);
    // Without skip_first_line the header is data: `i` is not an int.
    let r = read("i,s\n", &s, &o);
    assert_eq!((r.malformed_rows, strings(r.batch.column(1))[0].clone()), (1, Some("s".into())));
}

#[test]
fn token_count_mismatch_is_malformed_with_partial_result() {
    let s = schema(vec![("i", DataType::Int32), ("s", DataType::Utf8), ("_corrupt_record", DataType::Utf8)]);
    let r = read("1,a,extra\n2\n3,c\n", &s, &opts(&[]));
    assert_eq!(r.malformed_rows, 2);
    assert_eq!(ints(r.batch.column(0)), vec![Some(1), Some(2), Some(3)]);
    assert_eq!(strings(r.batch.column(1)), vec![Some("a".into()), None, Some("c".into())]);
    assert_eq!(strings(r.batch.column(2)), vec![Some("1,a,extra".into()), Some("2".into()), None]);
}

#[test]
fn failed_conversions_null_the_field_and_keep_the_rest() {
    let s = schema(vec![("i", DataType::Int32), ("d", DataType::Float64), ("b", DataType::Boolean)]);
    let r = read("x,1.5,TRUE\n2, 2.5 ,maybe\n3,Inf,false\n", &s, &opts(&[]));
    assert_eq!(r.malformed_rows, 2);
    assert_eq!(ints(r.batch.column(0)), vec![None, Some(2), Some(3)]);
    let d = r.batch.column(1).as_primitive::<Float64Type>();
    // Java's parseDouble trims, so " 2.5 " is fine.
    assert_eq!((d.value(0), d.value(1), d.value(2)), (1.5, 2.5, f64::INFINITY));
    assert_eq!(r.batch.column(2).as_boolean().iter().collect::<Vec<_>>(), vec![Some(true), None, Some(false)]);
}

#[test]
fn null_value_empty_value_and_quoted_empty_strings() {
    let s = int_str();
    // Defaults: nullValue and emptyValue are both "", so empty fields are null whether quoted or not.
    let r = read("1,\n2,\"\"\n,x\n", &s, &opts(&[]));
    assert_eq!(strings(r.batch.column(1)), vec![None, None, Some("x".into())]);
    assert_eq!(ints(r.batch.column(0)), vec![Some(1), Some(2), None]);
    assert_eq!(r.malformed_rows, 0);
    // With nullValue=NA: NA (even quoted) is null, an empty unquoted field is null, `""` is "".
    let r = read("NA,NA\n2,\n3,\"\"\n\"NA\",\"\"\n,x", &s, &opts(&[("nullValue", "NA")]));
    assert_eq!(ints(r.batch.column(0)), vec![None, Some(2), Some(3), None, None]);
    assert_eq!(strings(r.batch.column(1)), vec![None, None, Some(String::new()), Some(String::new()), Some("x".into())]);
    // A quoted empty string is not null for an int column when nullValue is not "".
    let r = read("\"\",a", &s, &opts(&[("nullValue", "NA")]));
    assert_eq!(r.malformed_rows, 1);
}

#[test]
fn modes_drop_and_fail() {
    let s = int_str();
    let r = read("1,a\nx,b\n3,c,d\n4,d\n", &s, &opts(&[("mode", "DROPMALFORMED")]));
    assert_eq!(r.malformed_rows, 2);
    assert_eq!(ints(r.batch.column(0)), vec![Some(1), Some(4)]);
    let e = decode_csv(b"1,a\n\nx,b\n", false, &s, &opts(&[("mode", "FAILFAST")])).unwrap_err();
    assert_eq!(
        e.message,
        "Malformed records are detected in record parsing: line 3: x,b. Parse Mode: FAILFAST. \
         To process malformed records as null result, try setting the option 'mode' as 'PERMISSIVE'."
    );
}

#[test]
fn timestamps_and_dates_with_and_without_formats() {
    let s = schema(vec![("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))), ("d", DataType::Date32)]);
    let r = read("2024-01-01 10:00:00,2024-02-29\n2024-01-01T10:00:00+01:00,2023-02-30\n", &s, &opts(&[]));
    let t = r.batch.column(0).as_primitive::<TimestampMicrosecondType>();
    assert_eq!((t.value(0), t.value(1)), (1_704_103_200_000_000, 1_704_099_600_000_000));
    let d = r.batch.column(1).as_primitive::<Date32Type>();
    assert_eq!(d.value(0), 19782);
    assert!(d.is_null(1), "Feb 30 is rejected");
    assert_eq!(r.malformed_rows, 1);

    let o = opts(&[("timestampFormat", "MM/dd/yyyy HH:mm"), ("dateFormat", "dd/MM/yyyy")]);
    let r = read("01/01/2024 10:00,29/02/2024\n2024-01-01 10:00:00,2024-02-29\n", &s, &o);
    let t = r.batch.column(0).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(t.value(0), 1_704_103_200_000_000);
    assert!(t.is_null(1) && r.batch.column(1).is_null(1));
    assert_eq!(r.malformed_rows, 1);
}

#[test]
fn separators_quotes_and_special_values() {
    let s = schema(vec![("a", DataType::Utf8), ("b", DataType::Float64)]);
    let r = read("x y\tNaN\n'q\\'t'\t-Inf\n", &s, &opts(&[("sep", "\\t"), ("quote", "'")]));
    assert_eq!(strings(r.batch.column(0)), vec![Some("x y".into()), Some("q't".into())]);
    let b = r.batch.column(1).as_primitive::<Float64Type>();
    assert!(b.value(0).is_nan());
    assert_eq!(b.value(1), f64::NEG_INFINITY);
    let r = read("1;nan\n", &s, &opts(&[("delimiter", ";"), ("nanValue", "nan")]));
    assert!(r.batch.column(1).as_primitive::<Float64Type>().value(0).is_nan());
    let r = read("\"a,1\n", &s, &opts(&[("quote", "")]));
    assert_eq!(strings(r.batch.column(0)), vec![Some("\"a".into())]);
    let r = read(" a , 1 \n", &s, &opts(&[("ignoreLeadingWhiteSpace", "true"), ("ignoreTrailingWhiteSpace", "true")]));
    assert_eq!(strings(r.batch.column(0)), vec![Some("a".into())]);
}

#[test]
fn options_and_schema_are_checked() {
    let bad = |pairs: &[(&str, &str)]| {
        CsvReadOptions::from_options(&Options::from_pairs(pairs.iter().copied()), &[]).unwrap_err().message
    };
    assert!(bad(&[("sep", "::")]).contains("more than one character"));
    assert!(bad(&[("sep", "\\")]).contains("Single backslash"));
    assert!(bad(&[("sep", "")]).contains("empty"));
    assert!(bad(&[("quote", "ab")]).contains("quote cannot be more than one character"));
    assert!(bad(&[("enforceSchema", "false")]).contains("enforceSchema"));
    assert!(bad(&[("multiLine", "true")]).contains("multiLine=true"));
    assert!(bad(&[("inferSchema", "true")]).contains("unknown option 'inferSchema'"));
    assert!(CsvReadOptions::from_options(&Options::from_pairs([("charset", "UTF-8"), ("x", "1")]), &["x"]).is_ok());
    let nested = schema(vec![("l", DataType::List(Arc::new(Field::new("element", DataType::Int32, true))))]);
    let e = decode_csv(b"1", false, &nested, &opts(&[])).unwrap_err();
    assert_eq!(e.message, "CSV data source does not support array<int> data type (column 'l').");
}

//! Tests of the JSON reader against Spark's documented behaviour.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Fields, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};

use super::*;

const UTC_TS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

fn ts_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn schema(fields: Vec<(&str, DataType)>) -> SchemaRef {
    Arc::new(Schema::new(fields.into_iter().map(|(n, t)| Field::new(n, t, true)).collect::<Vec<_>>()))
}

fn opts(pairs: &[(&str, &str)]) -> JsonReadOptions {
    JsonReadOptions::from_options(&Options::from_pairs(pairs.iter().copied()), &[]).unwrap()
}

fn read(data: &str, s: &SchemaRef, o: &JsonReadOptions) -> DecodeResult {
    decode_json_lines(data.as_bytes(), s, o).unwrap()
}

fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
}

fn ints(a: &ArrayRef) -> Vec<Option<i32>> {
    a.as_primitive::<Int32Type>().iter().collect()
}

#[test]
fn reads_objects_with_missing_unknown_and_null_fields() {
    let s = schema(vec![("a", DataType::Int32), ("b", DataType::Utf8), ("c", DataType::Boolean)]);
    let data = "{\"a\":1,\"b\":\"x\",\"c\":true}\n{\"b\":null,\"zz\":{\"deep\":[1,{\"x\":2}]},\"a\":2}\r\n{}\n";
    let r = read(data, &s, &opts(&[]));
    assert_eq!(r.malformed_rows, 0);
    assert_eq!(ints(r.batch.column(0)), vec![Some(1), Some(2), None]);
    assert_eq!(strings(r.batch.column(1)), vec![Some("x".into()), None, None]);
    assert_eq!(r.batch.column(2).as_boolean().iter().collect::<Vec<_>>(), vec![Some(true), None, None]);
}

#[test]
fn blank_lines_are_neither_rows_nor_malformed() {
    let s = schema(vec![("a", DataType::Int32)]);
    let r = read("\n  \n{\"a\":1}\n\t\r\n", &s, &opts(&[]));
    assert_eq!((r.batch.num_rows(), r.malformed_rows), (1, 0));
}

#[test]
fn partial_results_keep_good_fields_and_the_raw_line() {
    let s = schema(vec![("a", DataType::Int32), ("b", DataType::Int32), ("_corrupt_record", DataType::Utf8)]);
    let data = "{\"a\":\"x\",\"b\":2}\n{\"a\":1,\"b\":2}\n{\"a\":1.5, \"b\": [1}\n";
    let r = read(data, &s, &opts(&[]));
    assert_eq!(r.malformed_rows, 2);
    assert_eq!(ints(r.batch.column(0)), vec![None, Some(1), None]);
    // A syntax error loses the whole row, not just the field.
    assert_eq!(ints(r.batch.column(1)), vec![Some(2), Some(2), None]);
    assert_eq!(
        strings(r.batch.column(2)),
        vec![Some("{\"a\":\"x\",\"b\":2}".into()), None, Some("{\"a\":1.5, \"b\": [1}".into())]
    );
}

#[test]
fn custom_corrupt_column_and_its_type_check() {
    let s = schema(vec![("a", DataType::Int32), ("bad", DataType::Utf8)]);
    let r = read("nope\n", &s, &opts(&[("columnNameOfCorruptRecord", "bad")]));
    assert_eq!(strings(r.batch.column(1)), vec![Some("nope".into())]);
    let wrong = schema(vec![("_corrupt_record", DataType::Int32)]);
    let e = decode_json_lines(b"{}", &wrong, &opts(&[])).unwrap_err();
    assert!(e.message.contains("must be string type and nullable"), "{}", e.message);
}

#[test]
fn dropmalformed_drops_and_counts() {
    let s = schema(vec![("a", DataType::Int32), ("_corrupt_record", DataType::Utf8)]);
    let r = read("{\"a\":1}\n{\"a\":\"x\"}\nnot json\n{\"a\":3}\n", &s, &opts(&[("mode", "DROPMALFORMED")]));
    assert_eq!(r.malformed_rows, 2);
    assert_eq!(ints(r.batch.column(0)), vec![Some(1), Some(3)]);
    assert_eq!(strings(r.batch.column(1)), vec![None, None]);
}

#[test]
fn failfast_reports_line_and_record() {
    let s = schema(vec![("a", DataType::Int32)]);
    let e = decode_json_lines(b"{\"a\":1}\n\n{\"a\":true}\n", &s, &opts(&[("mode", "failfast")])).unwrap_err();
    assert_eq!(
        e.message,
        "Malformed records are detected in record parsing: line 3: {\"a\":true}. Parse Mode: FAILFAST. \
         To process malformed records as null result, try setting the option 'mode' as 'PERMISSIVE'."
    );
    let long = format!("{{\"a\":\"{}\"}}", "x".repeat(300));
    let e = decode_json_lines(long.as_bytes(), &s, &opts(&[("mode", "FAILFAST")])).unwrap_err();
    assert!(e.message.contains(&format!(": {}. Parse Mode", &long[..200])));
}

#[test]
fn top_level_arrays_and_scalars() {
    let s = schema(vec![("a", DataType::Int32), ("_corrupt_record", DataType::Utf8)]);
    let r = read("[{\"a\":1},{\"a\":2}]\n[]\n[{\"a\":3},4]\n12\nnull\n\"s\"\n", &s, &opts(&[]));
    assert_eq!(r.malformed_rows, 4);
    assert_eq!(ints(r.batch.column(0)), vec![Some(1), Some(2), None, None, None, None]);
    assert_eq!(strings(r.batch.column(1))[2], Some("[{\"a\":3},4]".into()));

    // A failing field inside an element keeps the partial rows (Spark 3.4+), each carrying the record.
    let record = "[{\"a\":1},{\"a\":\"x\"}]";
    let r = read(record, &s, &opts(&[]));
    assert_eq!((r.malformed_rows, ints(r.batch.column(0))), (1, vec![Some(1), None]));
    assert_eq!(strings(r.batch.column(1)), vec![Some(record.into()), Some(record.into())]);
    let r = read(record, &s, &opts(&[]).with_nested_partial_results(false));
    assert_eq!((r.malformed_rows, ints(r.batch.column(0))), (1, vec![None]));
    let r = read(record, &s, &opts(&[("mode", "DROPMALFORMED")]));
    assert_eq!((r.malformed_rows, r.batch.num_rows()), (1, 0));
}

#[test]
fn strings_take_any_value_as_regenerated_json() {
    let s = schema(vec![("s", DataType::Utf8)]);
    let data = "{\"s\":{\"a\": 1, \"b\": [true, null, 2.50]}}\n{\"s\":12}\n{\"s\":true}\n{\"s\":'q\\u0041'}\n{\"s\":1E3}";
    let r = read(data, &s, &opts(&[]));
    assert_eq!(
        strings(r.batch.column(0)),
        vec![
            Some("{\"a\":1,\"b\":[true,null,2.5]}".into()),
            Some("12".into()),
            Some("true".into()),
            Some("qA".into()),
            Some("1000.0".into())
        ]
    );
}

#[test]
fn integers_are_strict_and_bytes_wrap_like_jackson() {
    let s = schema(vec![("b", DataType::Int8), ("s", DataType::Int16), ("i", DataType::Int32), ("l", DataType::Int64)]);
    let r = read(
        "{\"b\":200,\"s\":-32768,\"i\":2147483647,\"l\":-9223372036854775808}\n{\"i\":1.5}\n{\"i\":\"12\"}\n{\"b\":256}\n{\"l\":9223372036854775808}\n{\"i\":1e2}",
        &s,
        &opts(&[]),
    );
    assert_eq!(r.malformed_rows, 5);
    assert_eq!(r.batch.column(0).as_primitive::<Int8Type>().value(0), -56);
    assert_eq!(r.batch.column(1).as_primitive::<Int16Type>().value(0), -32768);
    assert_eq!(ints(r.batch.column(2)), vec![Some(i32::MAX), None, None, None, None, None]);
    assert_eq!(r.batch.column(3).as_primitive::<Int64Type>().value(0), i64::MIN);
}

#[test]
fn floats_accept_numbers_and_spark_special_strings() {
    let s = schema(vec![("f", DataType::Float32), ("d", DataType::Float64)]);
    let data = "{\"f\":1,\"d\":0.1}\n{\"f\":\"NaN\",\"d\":\"-INF\"}\n{\"f\":\"+Infinity\",\"d\":Infinity}\n{\"d\":-Infinity}\n{\"d\":\"INF\"}\n{\"d\":\"1.5\"}";
    let r = read(data, &s, &opts(&[]));
    let f = r.batch.column(0).as_primitive::<Float32Type>();
    let d = r.batch.column(1).as_primitive::<Float64Type>();
    assert_eq!((f.value(0), d.value(0)), (1.0, 0.1));
    assert!(f.value(1).is_nan());
    assert_eq!(d.value(1), f64::NEG_INFINITY);
    assert_eq!((f.value(2), d.value(2)), (f32::INFINITY, f64::INFINITY));
    assert_eq!(d.value(3), f64::NEG_INFINITY);
    assert!(d.is_null(4) && d.is_null(5));
    assert_eq!(r.malformed_rows, 2);

    let strict = opts(&[("allowNonNumericNumbers", "false")]);
    let r = read("{\"d\":\"NaN\"}\n{\"d\":NaN}\n", &s, &strict);
    assert_eq!((r.malformed_rows, r.batch.column(1).null_count()), (2, 2));
}

#[test]
fn timestamps_from_strings_and_integer_seconds() {
    let s = schema(vec![("t", ts_utc()), ("n", UTC_TS)]);
    let data = "{\"t\":\"2024-01-01T10:00:00Z\",\"n\":\"2024-01-01 10:00:00\"}\n{\"t\":1700000000}\n{\"t\":\"\"}\n{\"t\":\"2024-02-30\"}\n{\"n\":\"2024-01-01T10:00:00Z\"}\n{\"t\":1.5}";
    let r = read(data, &s, &opts(&[]));
    let t = r.batch.column(0).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(t.value(0), 1_704_103_200_000_000);
    assert_eq!(t.value(1), 1_700_000_000_000_000);
    assert_eq!(t.timezone(), Some("UTC"));
    assert_eq!(r.batch.column(1).as_primitive::<TimestampMicrosecondType>().value(0), 1_704_103_200_000_000);
    assert_eq!(r.malformed_rows, 4);

    let custom = opts(&[("timestampFormat", "dd/MM/yyyy HH:mm")]);
    let r = read("{\"t\":\"01/01/2024 10:00\"}\n{\"t\":\"2024-01-01T10:00:00Z\"}", &s, &custom);
    assert_eq!(r.batch.column(0).as_primitive::<TimestampMicrosecondType>().value(0), 1_704_103_200_000_000);
    assert_eq!(r.malformed_rows, 1);
}

/// A timestamp string decodes to what the lenient parser makes of its unescaped text, whether
/// it is of the ISO shape read in place or not: fractions of every length, `Z` or not, a space
/// for the `T`, zones and text after the shape, escapes, whitespace, impossible dates and times.
#[test]
fn timestamp_strings_decode_as_their_text_parses() {
    let texts = [
        "2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00",
        "2024-01-01 10:00:00",
        "2024-02-29T23:59:59.9Z",
        "2023-02-29T00:00:00Z",
        "2024-01-01T10:00:00.",
        "2024-01-01T10:00:00.123456789Z",
        "2024-01-01T10:00:00.12345",
        "2024-01-01T10:00:00ZZ",
        "2024-01-01T10:00:00Z ",
        " 2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00+01:00",
        "2024-01-01T10:00:00.5-0130",
        "2024-01-01T10:00:00 UTC",
        "2024-01-01T10:00:00GMT+01:00",
        "2024-01-01T24:00:00Z",
        "2024-01-01T10:60:00Z",
        "2024-13-01T10:00:00Z",
        "2024-01-01T10:00",
        "2024-01-01",
        "2024",
        "",
    ];
    let s = schema(vec![("t", ts_utc())]);
    let o = opts(&[]);
    let formats = crate::datetime::ReadFormats::default();
    for text in texts {
        // As written, and with its last character escaped (which the in-place path must leave).
        let mut lines = vec![format!("{{\"t\":\"{text}\"}}")];
        if let Some(last) = text.chars().last() {
            lines.push(format!("{{\"t\": \"{}\\u{:04x}\"}}", &text[..text.len() - last.len_utf8()], u32::from(last)));
        }
        let expected = if text.is_empty() { None } else { formats.parse_timestamp(text) };
        for line in lines {
            let r = read(&line, &s, &o);
            let got = r.batch.column(0).as_primitive::<TimestampMicrosecondType>().iter().next().flatten();
            assert_eq!(got, expected, "{line}");
            assert_eq!(r.malformed_rows, u64::from(expected.is_none()), "{line}");
        }
    }
}

#[test]
fn dates_decimals_and_binary() {
    let s = schema(vec![("d", DataType::Date32), ("m", DataType::Decimal128(5, 2)), ("b", DataType::Binary)]);
    let data = "{\"d\":\"2024-02-29\",\"m\":12.345,\"b\":\"aGk=\"}\n{\"d\":\"123\",\"m\":\"1,2.5\"}\n{\"d\":\"2023-02-29\"}\n{\"m\":1000}\n{\"b\":\"***\"}\n{\"m\":\"NaN\"}";
    let r = read(data, &s, &opts(&[]));
    let d = r.batch.column(0).as_primitive::<Date32Type>();
    assert_eq!((d.value(0), d.value(1)), (19782, 123), "a 3-digit string is not a year, so it is a day number");
    let m = r.batch.column(1).as_primitive::<Decimal128Type>();
    assert_eq!((m.value(0), m.value(1)), (1235, 1250));
    assert_eq!(r.batch.column(2).as_binary::<i32>().value(0), b"hi");
    assert_eq!(r.malformed_rows, 4);
    // With a dateFormat the day-number fallback is off.
    let r = read("{\"d\":\"123\"}", &s, &opts(&[("dateFormat", "yyyy-MM-dd")]));
    assert_eq!(r.malformed_rows, 1);
}

#[test]
fn nested_types_and_nested_failures() {
    let inner = Fields::from(vec![Field::new("x", DataType::Int32, true), Field::new("y", DataType::Utf8, true)]);
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Int32, true),
        ])),
        false,
    );
    let s = schema(vec![
        ("st", DataType::Struct(inner)),
        ("l", DataType::List(Arc::new(Field::new("element", DataType::Int32, true)))),
        ("m", DataType::Map(Arc::new(entries), false)),
        ("k", DataType::Int32),
    ]);
    let data = "{\"st\":{\"x\":1,\"y\":\"a\",\"z\":0},\"l\":[1,null,3],\"m\":{\"p\":1,\"q\":null,\"p\":2},\"k\":7}\n\
                {\"st\":{\"x\":\"bad\"},\"l\":[1,\"bad\"],\"m\":{\"p\":[]},\"k\":8}";
    let r = read(data, &s, &opts(&[]));
    assert_eq!(r.malformed_rows, 1);
    let st = r.batch.column(0).as_struct();
    assert_eq!(st.column(0).as_primitive::<Int32Type>().value(0), 1);
    // Spark 3.4+: the nested struct keeps its good fields; the bad one is null.
    assert!(st.is_valid(1) && st.column(0).is_null(1));
    let l = r.batch.column(1).as_list::<i32>();
    assert_eq!(l.value(0).as_primitive::<Int32Type>().iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)]);
    assert!(l.is_null(1));
    let m = r.batch.column(2).as_map();
    assert_eq!(m.value(0).len(), 3, "duplicate map keys are kept");
    assert!(m.is_null(1));
    assert_eq!(ints(r.batch.column(3)), vec![Some(7), Some(8)]);

    // Spark 3.0-3.3: any nested failure nulls the whole top-level field.
    let r = read(data, &s, &opts(&[]).with_nested_partial_results(false));
    assert!(r.batch.column(0).as_struct().is_null(1));
    assert_eq!(ints(r.batch.column(3)), vec![Some(7), Some(8)]);
}

#[test]
fn duplicate_keys_last_wins_but_a_failing_repeat_keeps_the_first() {
    let s = schema(vec![("a", DataType::Int32), ("b", DataType::Int32)]);
    let r = read("{\"a\":1,\"a\":2}\n{\"a\":1,\"b\":5,\"a\":\"x\"}", &s, &opts(&[]));
    assert_eq!(ints(r.batch.column(0)), vec![Some(2), Some(1)]);
    assert_eq!(ints(r.batch.column(1)), vec![None, Some(5)]);
    assert_eq!(r.malformed_rows, 1);
}

#[test]
fn trailing_text_after_the_object_is_ignored_but_bad_utf8_is_not() {
    let s = schema(vec![("a", DataType::Int32), ("_corrupt_record", DataType::Utf8)]);
    let mut data = b"{\"a\":1} trailing\n{\"a\":\"".to_vec();
    data.extend_from_slice(&[0xff, b'"', b'}']);
    let r = decode_json_lines(&data, &s, &opts(&[])).unwrap();
    assert_eq!(ints(r.batch.column(0)), vec![Some(1), None]);
    assert_eq!(strings(r.batch.column(1))[1], Some("{\"a\":\"\u{fffd}\"}".into()));
}

#[test]
fn options_are_checked() {
    let e = JsonReadOptions::from_options(&Options::from_pairs([("multiLine", "true")]), &[]).unwrap_err();
    assert_eq!(e.message, "multiLine=true is not supported for streaming file sources");
    let e = JsonReadOptions::from_options(&Options::from_pairs([("primitivesAsString", "true")]), &[]).unwrap_err();
    assert!(e.message.contains("unknown option 'primitivesAsString'"));
    assert!(JsonReadOptions::from_options(
        &Options::from_pairs([("path", "/x"), ("maxFilesPerTrigger", "2")]),
        &["maxFilesPerTrigger"]
    )
    .is_ok());
    assert!(JsonReadOptions::from_options(&Options::from_pairs([("timestampFormat", "yyyy-ww")]), &[]).is_err());
}

#[test]
fn from_json_nulls_partials_and_modes() {
    let fields = Fields::from(vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Utf8, true)]);
    let input = StringArray::from(vec![
        Some("{\"a\":1,\"b\":\"x\"}"),
        None,
        Some("{\"a\":\"no\",\"b\":\"y\"}"),
        Some("garbage"),
        Some(" "),
        Some("[{\"a\":1}]"),
    ]);
    let (st, malformed) = json_to_struct(&input, &fields, &opts(&[])).unwrap();
    assert_eq!(malformed, 3);
    assert_eq!(st.len(), 6);
    assert!(st.is_valid(0) && st.is_null(1) && st.is_valid(2) && st.is_valid(3) && st.is_null(4) && st.is_valid(5));
    assert_eq!(ints(st.column(0)), vec![Some(1), None, None, None, None, None]);
    assert_eq!(strings(st.column(1))[2], Some("y".into()));

    let e = json_to_struct(&input, &fields, &opts(&[("mode", "FAILFAST")])).unwrap_err();
    assert!(e.message.contains("row 3: {\"a\":\"no\",\"b\":\"y\"}"), "{}", e.message);
    let e = json_to_struct(&input, &fields, &opts(&[("mode", "DROPMALFORMED")])).unwrap_err();
    assert!(e.message.contains("doesn't support the DROPMALFORMED mode"));
}

#[test]
fn corrupt_column_alone_and_non_nullable_fields() {
    let only = Arc::new(Schema::new(vec![Field::new("_corrupt_record", DataType::Utf8, true)]));
    let r = read("{\"a\":1}\nbad\n", &only, &opts(&[]));
    assert_eq!(strings(r.batch.column(0)), vec![None, Some("bad".into())]);
    let strict = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
    assert!(decode_json_lines(b"{\"a\":1}\n{}\n", &strict, &opts(&[])).is_err());
    assert!(decode_json_lines(b"{\"a\":1}\n", &strict, &opts(&[])).is_ok());
}

/// The reader decodes a range with one scanner that treats `\n` as the end of the text
/// (`Lexer::lines`); every line, however broken, must read exactly as it does as a range of its
/// own, where the scanner sees the whole text and no `\n` at all.
#[test]
fn lines_read_together_are_each_line_read_alone() {
    let lines = [
        r#"{"a":1,"s":"x","n":{"k":2},"l":[1,2]}"#,
        r#"{"a":1,"s":"x""#,
        r#"{"a":"str","s":{"x": [1, 2.50, null, true]}}"#,
        r#"{"s":"abc"#,
        r#"{"s":"a\u12"#,
        r#"{"s":"a\"#,
        "  ",
        "",
        "\r",
        "{\"a\":1}\r",
        "{\"a\":1,\r",
        r#"{"a":1} trailing {garbage"#,
        r#"[{"a":1},{"a":2}]"#,
        r#"[{"a":1},"#,
        "tru",
        "nul",
        r#"{"a":1, "s" : "x" ,	"n" : { "k" : 3 } }"#,
        r#"{"a":-0}"#,
        r#"{"a":12"#,
        r#"{"a":1.}"#,
        r#"{"a":1e}"#,
        r#"{"a":NaN}"#,
        r#"{"a":-INF"#,
        r#"{"s":'single'}"#,
        r#"{'a':7,'s':'q'}"#,
        r#"{"n":{"k":"bad"},"a":5}"#,
        r#""just a string""#,
        "123",
        r#"{"a":1,"a":2}"#,
        r#"{"s":"x\"y\n"}"#,
        r#"{"s":"x"}	"#,
        r#"{"a":1,}"#,
        r#"{"l":[1,2"#,
        r#"{"s":"ok"}{"s":"second"}"#,
        r#"{"s":{"deep":{"er":[{"x":"#,
        r#"{"s":["#,
        r#"{"zz":{"skipped":[1,{"y":"#,
        r#"{"zz":[1"#,
        r#"{"a":true"#,
        // Pairs that a scanner stepping over the `\n` would read as one valid record.
        r#"{"a":1,"#,
        r#""s":"joined"}"#,
        r#"[{"a":1},"#,
        r#"{"a":2}]"#,
        "  ",
        r#"{"a":"partial","s":"p"}"#,
    ];
    let s = schema(vec![
        ("a", DataType::Int32),
        ("s", DataType::Utf8),
        ("n", DataType::Struct(Fields::from(vec![Field::new("k", DataType::Int64, true)]))),
        ("l", DataType::List(Arc::new(Field::new("element", DataType::Int32, true)))),
        ("_corrupt_record", DataType::Utf8),
    ]);
    for mode in ["PERMISSIVE", "DROPMALFORMED"] {
        let o = opts(&[("mode", mode)]);
        // Ranges of one line each: bare, and ended by `\n` or `\r\n`.
        for end in ["", "\n", "\r\n"] {
            let ranges: Vec<String> = lines.iter().map(|l| format!("{l}{end}")).collect();
            let alone: Vec<DecodeResult> = ranges.iter().map(|r| read(r, &s, &o)).collect();
            let batches: Vec<_> = alone.iter().map(|r| r.batch.clone()).collect();
            let expected = arrow::compute::concat_batches(&s, &batches).unwrap();
            let together = read(&ranges.join(if end.is_empty() { "\n" } else { "" }), &s, &o);
            assert_eq!(together.batch, expected, "mode {mode}, line end {end:?}");
            let malformed: u64 = alone.iter().map(|r| r.malformed_rows).sum();
            assert_eq!(together.malformed_rows, malformed, "mode {mode}, line end {end:?}");
        }
    }
}

/// Past `SIZING_LINES` the reader sizes its columns from the lines so far; rows after that, here
/// longer than the early ones so the columns must still grow, keep every value.
#[test]
fn columns_sized_after_the_first_lines_hold_every_row() {
    let s = schema(vec![
        ("a", DataType::Int32),
        ("s", DataType::Utf8),
        ("n", DataType::Struct(Fields::from(vec![Field::new("k", DataType::Int64, true)]))),
        ("l", DataType::List(Arc::new(Field::new("element", DataType::Int32, true)))),
    ]);
    let rows = 3 * SIZING_LINES;
    let text_of = |i: usize| if i < SIZING_LINES { format!("s{i}") } else { format!("longer-{i}-{}", "y".repeat(i % 50)) };
    let data: String = (0..rows)
        .map(|i| format!("{{\"a\":{i},\"s\":\"{}\",\"n\":{{\"k\":{}}},\"l\":[{i},{}]}}\n", text_of(i), i * 7, i + 1))
        .collect();
    let r = read(&data, &s, &opts(&[]));
    assert_eq!((r.batch.num_rows(), r.malformed_rows), (rows, 0));
    assert_eq!(ints(r.batch.column(0)), (0..rows).map(|i| Some(i as i32)).collect::<Vec<_>>());
    assert_eq!(strings(r.batch.column(1)), (0..rows).map(|i| Some(text_of(i))).collect::<Vec<_>>());
    let k = r.batch.column(2).as_struct().column(0).as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(k, (0..rows).map(|i| i as i64 * 7).collect::<Vec<_>>());
    let lists = r.batch.column(3).as_list::<i32>();
    for i in [0, SIZING_LINES, rows - 1] {
        assert_eq!(lists.value(i).as_primitive::<Int32Type>().values(), &[i as i32, i as i32 + 1], "row {i}");
    }
}

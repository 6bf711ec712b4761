//! Expected tables below are written out by hand in Spark 3.5/4.0 `Dataset.show` format.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, Int32Array, Int32Builder, Int64Array, ListArray, MapBuilder, RecordBatchOptions,
    StringArray, StringBuilder, StructArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, SchemaRef};

use super::*;

/// One batch whose schema is derived from the named columns (all nullable).
fn batch(columns: Vec<(&str, ArrayRef)>) -> (RecordBatch, SchemaRef) {
    let batch = RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(name, array)| (name, array, true)))
        .expect("valid batch");
    let schema = batch.schema();
    (batch, schema)
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

#[test]
fn counts_table_is_right_aligned_when_truncating() {
    let (b, schema) = batch(vec![
        ("value", Arc::new(Int64Array::from(vec![1, 10])) as ArrayRef),
        ("count", Arc::new(Int64Array::from(vec![2, 1])) as ArrayRef),
    ]);
    let expected = "\
+-----+-----+
|value|count|
+-----+-----+
|    1|    2|
|   10|    1|
+-----+-----+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

#[test]
fn word_count_table_from_the_streaming_guide() {
    let (b, schema) = batch(vec![
        ("value", strings(&[Some("apache"), Some("spark")])),
        ("count", Arc::new(Int64Array::from(vec![1, 1])) as ArrayRef),
    ]);
    let expected = "\
+------+-----+
| value|count|
+------+-----+
|apache|    1|
| spark|    1|
+------+-----+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

fn long_text_batch() -> (RecordBatch, SchemaRef) {
    batch(vec![
        ("id", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
        ("text", strings(&[Some("abcdefghijklmnopqrstuvwxy"), Some("short")])),
    ])
}

#[test]
fn long_cells_are_cut_to_seventeen_chars_and_ellipsis() {
    let (b, schema) = long_text_batch();
    let expected = "\
+---+--------------------+
| id|                text|
+---+--------------------+
|  1|abcdefghijklmnopq...|
|  2|               short|
+---+--------------------+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

#[test]
fn truncate_zero_keeps_everything_left_aligned() {
    let (b, schema) = long_text_batch();
    let expected = "\
+---+-------------------------+
|id |text                     |
+---+-------------------------+
|1  |abcdefghijklmnopqrstuvwxy|
|2  |short                    |
+---+-------------------------+
";
    assert_eq!(show_string(&[b], &schema, 20, 0), expected);
}

#[test]
fn truncate_below_four_cuts_without_ellipsis() {
    let (b, schema) = batch(vec![("s", strings(&[Some("abcdef")]))]);
    let expected = "\
+---+
|  s|
+---+
|abc|
+---+
";
    assert_eq!(show_string(&[b], &schema, 20, 3), expected);
}

#[test]
fn headers_are_never_truncated() {
    let (b, schema) = batch(vec![("a_very_long_column_name_here", Arc::new(Int32Array::from(vec![1])) as ArrayRef)]);
    let expected = "\
+----------------------------+
|a_very_long_column_name_here|
+----------------------------+
|                           1|
+----------------------------+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

fn three_rows() -> (RecordBatch, SchemaRef) {
    batch(vec![("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef)])
}

#[test]
fn footer_says_row_for_one_and_rows_otherwise() {
    let (b, schema) = three_rows();
    let one = "\
+---+
|  n|
+---+
|  1|
+---+
only showing top 1 row
";
    assert_eq!(show_string(std::slice::from_ref(&b), &schema, 1, 20), one);
    let two = "\
+---+
|  n|
+---+
|  1|
|  2|
+---+
only showing top 2 rows
";
    assert_eq!(show_string(std::slice::from_ref(&b), &schema, 2, 20), two);
    let zero = "\
+---+
|  n|
+---+
+---+
only showing top 0 rows
";
    assert_eq!(show_string(std::slice::from_ref(&b), &schema, 0, 20), zero);
    let all = "\
+---+
|  n|
+---+
|  1|
|  2|
|  3|
+---+
";
    assert_eq!(show_string(&[b], &schema, 3, 20), all);
}

#[test]
fn rows_are_taken_across_batches() {
    let (first, schema) = batch(vec![("n", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)]);
    let (second, _) = batch(vec![("n", Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef)]);
    let expected = "\
+---+
|  n|
+---+
|  1|
|  2|
|  3|
+---+
only showing top 3 rows
";
    assert_eq!(show_string(&[first, second], &schema, 3, 20), expected);
}

#[test]
fn nulls_print_as_null() {
    let (b, schema) =
        batch(vec![("s", strings(&[None, Some("x")])), ("i", Arc::new(Int32Array::from(vec![Some(5), None])) as ArrayRef)]);
    let expected = "\
+----+----+
|   s|   i|
+----+----+
|NULL|   5|
|   x|NULL|
+----+----+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

#[test]
fn nested_array_struct_and_map_cells() {
    let arr: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), Some(2), None])]));
    let st: ArrayRef = Arc::new(StructArray::from(vec![
        (Arc::new(Field::new("i", DataType::Int32, true)), Arc::new(Int32Array::from(vec![1])) as ArrayRef),
        (Arc::new(Field::new("s", DataType::Utf8, true)), strings(&[Some("a")])),
    ]));
    let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    map.keys().append_value("a");
    map.values().append_value(1);
    map.keys().append_value("b");
    map.values().append_null();
    map.append(true).expect("map entry");
    let m: ArrayRef = Arc::new(map.finish());
    let (b, schema) = batch(vec![("arr", arr), ("st", st), ("m", m)]);
    let expected = "\
+------------+------+-------------------+
|         arr|    st|                  m|
+------------+------+-------------------+
|[1, 2, NULL]|{1, a}|{a -> 1, b -> NULL}|
+------------+------+-------------------+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

fn timestamps() -> (RecordBatch, SchemaRef) {
    let ts = TimestampMicrosecondArray::from(vec![1_459_107_574_000_000, 1_459_107_574_500_000, -1]).with_timezone("UTC");
    batch(vec![("ts", Arc::new(ts) as ArrayRef)])
}

#[test]
fn timestamps_with_fractions_are_truncated_at_twenty() {
    let (b, schema) = timestamps();
    let expected = "\
+--------------------+
|                  ts|
+--------------------+
| 2016-03-27 19:39:34|
|2016-03-27 19:39:...|
|1969-12-31 23:59:...|
+--------------------+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

#[test]
fn timestamps_untruncated_show_fractions_and_pre_epoch_values() {
    let (b, schema) = timestamps();
    let expected = "\
+--------------------------+
|ts                        |
+--------------------------+
|2016-03-27 19:39:34       |
|2016-03-27 19:39:34.5     |
|1969-12-31 23:59:59.999999|
+--------------------------+
";
    assert_eq!(show_string(&[b], &schema, 20, 0), expected);
}

#[test]
fn binary_and_double_cells() {
    let bin: ArrayRef = Arc::new(BinaryArray::from(vec![b"AB\n".as_ref(), b"".as_ref(), b"\xff".as_ref()]));
    let dbl: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 1.0e10, f64::NAN]));
    let (b, schema) = batch(vec![("b", bin), ("d", dbl)]);
    let expected = "\
+----------+------+
|         b|     d|
+----------+------+
|[41 42 0A]|   1.0|
|        []|1.0E10|
|      [FF]|   NaN|
+----------+------+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

#[test]
fn cjk_characters_take_two_columns() {
    let (b, schema) = batch(vec![("name", strings(&[Some("你好世界"), Some("abc")]))]);
    let expected = "\
+--------+
|    name|
+--------+
|你好世界|
|     abc|
+--------+
";
    assert_eq!(show_string(std::slice::from_ref(&b), &schema, 20, 20), expected);
    let left = "\
+--------+
|name    |
+--------+
|你好世界|
|abc     |
+--------+
";
    assert_eq!(show_string(&[b], &schema, 20, 0), left);
}

#[test]
fn cjk_truncation_counts_characters_not_columns() {
    let (b, schema) = batch(vec![("k", strings(&[Some("一二三四五六七八九十一二三四五六七八九十一")]))]);
    let expected = "\
+-------------------------------------+
|                                    k|
+-------------------------------------+
|一二三四五六七八九十一二三四五六七...|
+-------------------------------------+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

#[test]
fn truncation_through_a_surrogate_pair_prints_a_question_mark() {
    let (b, schema) = batch(vec![("e", strings(&[Some("a\u{1F600}bcdef")]))]);
    let expected = "\
+-----+
|    e|
+-----+
|a?...|
+-----+
";
    assert_eq!(show_string(&[b], &schema, 20, 5), expected);
}

#[test]
fn control_characters_are_escaped_in_cells_and_headers() {
    let (b, schema) = batch(vec![("x\ny", strings(&[Some("a\tb\nc")]))]);
    let expected = r"+-------+
|   x\ny|
+-------+
|a\tb\nc|
+-------+
";
    assert_eq!(show_string(&[b], &schema, 20, 20), expected);
}

#[test]
fn zero_rows_show_only_the_header() {
    let schema = Schema::new(vec![Field::new("a", DataType::Int32, true), Field::new("bb", DataType::Utf8, true)]);
    let expected = "\
+---+---+
|  a| bb|
+---+---+
+---+---+
";
    assert_eq!(show_string(&[], &schema, 20, 20), expected);
}

#[test]
fn zero_columns_print_empty_grid() {
    let schema = Schema::empty();
    assert_eq!(show_string(&[], &schema, 20, 20), "++\n||\n++\n++\n");
    let options = RecordBatchOptions::new().with_row_count(Some(2));
    let b = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &options).expect("valid batch");
    assert_eq!(show_string(&[b], &schema, 20, 20), "++\n||\n++\n||\n||\n++\n");
}

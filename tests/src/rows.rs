//! Rows as comparable strings.
//!
//! Spark's test checks compare answers as multisets of rows; here a row is rendered as
//! `(v1, v2, …)` with Spark's value-to-string rules and multisets are sorted vectors.

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use sluice_formats::spark_string::value_to_spark_string;
use std::sync::Arc;

/// Each row as `(a, b, …)`, nulls as `null`, in batch order.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> =
                b.columns().iter().map(|c| value_to_spark_string(c.as_ref(), r).unwrap_or_else(|| "null".into())).collect();
            out.push(format!("({})", cells.join(", ")));
        }
    }
    out
}

/// `rows`, sorted: a multiset.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut r = rows(batches);
    r.sort();
    r
}

/// Sorts expected rows given as strings.
pub fn multiset<S: AsRef<str>>(rows: &[S]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|s| s.as_ref().to_string()).collect();
    v.sort();
    v
}

/// A one-column BIGINT batch named `name`.
pub fn longs(name: &str, values: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).expect("batch")
}

/// A one-column STRING batch named `name`.
pub fn strings(name: &str, values: &[&str]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values.to_vec()))]).expect("batch")
}

/// Total rows.
pub fn count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// A batch from named columns (nullable, in order).
pub fn batch(columns: Vec<(&str, arrow::array::ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true))).expect("batch")
}

/// A BIGINT column.
pub fn long_col(values: impl IntoIterator<Item = i64>) -> arrow::array::ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

/// A STRING column.
pub fn str_col<'a>(values: impl IntoIterator<Item = &'a str>) -> arrow::array::ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// A (STRING, BIGINT) batch with the given column names.
pub fn str_long(a: &str, b: &str, rows: &[(&str, i64)]) -> RecordBatch {
    batch(vec![(a, str_col(rows.iter().map(|r| r.0))), (b, long_col(rows.iter().map(|r| r.1)))])
}

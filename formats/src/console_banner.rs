//! The text Spark's console sink prints for one micro-batch.
//!
//! `ConsoleWrite.printRows` `println`s a three-line banner naming the batch and then calls
//! `Dataset.show(numRows, truncate)`, which `println`s the already newline-terminated table —
//! so each batch ends with one blank line. Reproducing that exactly keeps sluice's console
//! output diffable against Spark's.

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;

use super::show::show_string;

/// The rule above and below the batch label (43 dashes, as in Spark).
const BANNER_RULE: &str = "-------------------------------------------";

/// The truncation width `Dataset.show(numRows, truncate = true)` uses.
const DEFAULT_TRUNCATE: usize = 20;

/// Everything the console sink writes for batch `batch_id`: the banner, the `show` table of at
/// most `num_rows` rows (cells cut at 20 characters when `truncate`), and the trailing blank line.
pub fn console_batch_output(batch_id: u64, batches: &[RecordBatch], schema: &Schema, num_rows: usize, truncate: bool) -> String {
    let table = show_string(batches, schema, num_rows, if truncate { DEFAULT_TRUNCATE } else { 0 });
    format!("{BANNER_RULE}\nBatch: {batch_id}\n{BANNER_RULE}\n{table}\n")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn banner_then_table_then_blank_line() {
        let schema =
            Arc::new(Schema::new(vec![Field::new("value", DataType::Int64, false), Field::new("count", DataType::Int64, false)]));
        let values: ArrayRef = Arc::new(Int64Array::from(vec![1, 10]));
        let counts: ArrayRef = Arc::new(Int64Array::from(vec![2, 1]));
        let batch = RecordBatch::try_new(schema.clone(), vec![values, counts]).expect("valid batch");
        let expected = "-------------------------------------------\n\
                        Batch: 0\n\
                        -------------------------------------------\n\
                        +-----+-----+\n\
                        |value|count|\n\
                        +-----+-----+\n\
                        |    1|    2|\n\
                        |   10|    1|\n\
                        +-----+-----+\n\
                        \n";
        assert_eq!(console_batch_output(0, &[batch], &schema, 20, true), expected);
    }

    #[test]
    fn untruncated_console_output_left_aligns_and_keeps_long_values() {
        let schema = Arc::new(Schema::new(vec![Field::new("word", DataType::Utf8, true)]));
        let words: ArrayRef = Arc::new(StringArray::from(vec![Some("abcdefghijklmnopqrstuvwxy"), None]));
        let batch = RecordBatch::try_new(schema.clone(), vec![words]).expect("valid batch");
        let expected = "-------------------------------------------\n\
                        Batch: 7\n\
                        -------------------------------------------\n\
                        +-------------------------+\n\
                        |word                     |\n\
                        +-------------------------+\n\
                        |abcdefghijklmnopqrstuvwxy|\n\
                        +-------------------------+\n\
                        only showing top 1 row\n\
                        \n";
        assert_eq!(console_batch_output(7, &[batch], &schema, 1, false), expected);
    }
}

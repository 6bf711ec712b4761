//! Spark's `FailureSafeParser`: what happens to rows once a record is known good or malformed.
//!
//! Both readers decode data columns into one struct builder and report each record's outcome
//! here; this module applies the parse mode (keep with nulls, drop, or fail), fills the
//! corrupt-record column, counts malformed records and assembles the requested schema.

use std::sync::Arc;

use arrow::array::{ArrayRef, StructArray};
use arrow::datatypes::{DataType, Fields, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::builder::{ColumnBuilder, StructCol, Utf8Col};
use super::ParseMode;
use sluice_common::error::{Result, SluiceError};
use sluice_common::types::spark_type_name as catalog_string;

/// Collects decoded rows and applies the parse mode to malformed records.
pub(crate) struct RowSink {
    /// Builders for the data columns (every field except the corrupt-record column).
    pub(crate) root: StructCol,
    /// The corrupt-record column's position in the output and its values.
    corrupt: Option<(usize, Utf8Col)>,
    mode: ParseMode,
    malformed: u64,
}

impl RowSink {
    /// Splits `fields` into data columns and the optional corrupt-record column `corrupt_name`,
    /// which (as in Spark) must be a nullable string if present. `format` names the data source
    /// in errors about unsupported column types.
    pub(crate) fn new(fields: &Fields, corrupt_name: &str, mode: ParseMode, format: &str) -> Result<Self> {
        let corrupt_index = fields.iter().position(|f| f.name() == corrupt_name);
        if let Some(i) = corrupt_index {
            if fields[i].data_type() != &DataType::Utf8 || !fields[i].is_nullable() {
                return Err(SluiceError::user(format!(
                    "The field for corrupt records must be string type and nullable: '{corrupt_name}'"
                )));
            }
        }
        let data: Fields = fields.iter().enumerate().filter(|(i, _)| Some(*i) != corrupt_index).map(|(_, f)| f.clone()).collect();
        let root = StructCol::new(data.clone()).map_err(|dt| {
            let column = data.iter().find(|f| ColumnBuilder::new(f.data_type()).is_err());
            SluiceError::user(format!(
                "{format} data source does not support {} data type (column '{}').",
                catalog_string(&dt),
                column.map_or("?", |f| f.name().as_str())
            ))
        })?;
        Ok(Self { root, corrupt: corrupt_index.map(|i| (i, Utf8Col::new())), mode, malformed: 0 })
    }

    /// Number of rows so far; remember it before decoding a record to roll back to.
    pub(crate) fn len(&self) -> usize {
        self.root.len()
    }

    /// Marks the rows appended since `base` as good.
    pub(crate) fn accept(&mut self, base: usize) {
        if let Some((_, c)) = &mut self.corrupt {
            for _ in base..self.root.len() {
                c.push_null();
            }
        }
    }

    /// Appends a null struct (a null `from_json` input).
    pub(crate) fn push_null(&mut self) {
        self.root.push_null();
        if let Some((_, c)) = &mut self.corrupt {
            c.push_null();
        }
    }

    /// Handles a malformed record. With `partial`, the rows appended since `base` hold the
    /// fields that did convert (each gets the record in the corrupt column); otherwise nothing
    /// was kept and one all-null row stands in.
    /// `location` (e.g. `line 3`) and `record` go into the FAILFAST message.
    pub(crate) fn reject(&mut self, base: usize, partial: bool, record: &str, location: &str) -> Result<()> {
        self.malformed += 1;
        match self.mode {
            ParseMode::FailFast => {
                let shown: String = record.chars().take(200).collect();
                Err(SluiceError::user(format!(
                    "Malformed records are detected in record parsing: {location}: {shown}. Parse Mode: \
                     FAILFAST. To process malformed records as null result, try setting the option \
                     'mode' as 'PERMISSIVE'."
                )))
            }
            ParseMode::DropMalformed => {
                self.root.truncate(base);
                Ok(())
            }
            ParseMode::Permissive => {
                if !partial {
                    self.root.truncate(base);
                    self.root.push_null_fields();
                }
                if let Some((_, c)) = &mut self.corrupt {
                    for _ in base..self.root.len() {
                        c.push(record);
                    }
                }
                Ok(())
            }
        }
    }

    /// The malformed records seen so far.
    pub(crate) fn malformed(&self) -> u64 {
        self.malformed
    }

    fn finish_columns(&mut self) -> Result<(Vec<ArrayRef>, Option<arrow::buffer::NullBuffer>)> {
        let (mut columns, nulls) = self.root.finish_parts()?;
        if let Some((i, c)) = &mut self.corrupt {
            columns.insert(*i, Arc::new(c.finish()?));
        }
        Ok((columns, nulls))
    }

    /// The rows as a batch of `schema` (which must be the fields this sink was built from).
    pub(crate) fn finish_batch(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let rows = self.len();
        let (columns, _) = self.finish_columns()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
    }

    /// The rows as a struct array of `fields` (which must be the fields this sink was built from).
    pub(crate) fn finish_struct(mut self, fields: &Fields) -> Result<StructArray> {
        let rows = self.len();
        let (columns, nulls) = self.finish_columns()?;
        Ok(StructArray::try_new_with_length(fields.clone(), columns, nulls, rows)?)
    }
}

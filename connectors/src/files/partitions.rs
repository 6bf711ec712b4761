//! Hive-style partition directories (`col=value/`), as Spark's `PartitioningUtils` and
//! `ExternalCatalogUtils` name and read them.
//!
//! The file sink's `partitionBy` moves the partition columns out of the part files and into the
//! directory names; a reader puts them back from the path. Both directions live here so that the
//! escaping the sink writes is exactly the escaping the source undoes. Everything in this module
//! is pure: the sink and the readers do the I/O.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use sluice_common::error::{Result, SluiceError};
use sluice_common::types::spark_type_name;

/// The directory value Spark writes for a NULL or empty partition value.
pub const DEFAULT_PARTITION_NAME: &str = "__HIVE_DEFAULT_PARTITION__";

/// Spark's `ExternalCatalogUtils.escapePathName`: characters a path or Hive cannot hold as `%XX`.
pub fn escape_path_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    (c as u32) < 0x20 || "\"#%'*/:=?\\\u{7f}{[]^".contains(c)
}

/// Spark's `ExternalCatalogUtils.unescapePathName`: `%XX` back to the character; anything that is
/// not a valid escape stays as written.
pub fn unescape_path_name(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(char::from((hi * 16 + lo) as u8));
                i += 3;
                continue;
            }
        }
        // Copy one whole character (the input is UTF-8; only `%XX` is ASCII-decoded).
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// The `col=value` directory of one partition value; NULL and "" become the Hive default partition.
pub fn directory_name(column: &str, value: Option<&str>) -> String {
    let value = match value {
        None | Some("") => DEFAULT_PARTITION_NAME.to_string(),
        Some(v) => escape_path_name(v),
    };
    format!("{}={value}", escape_path_name(column))
}

/// One `col=value` directory on a file's path, unescaped; `None` is the Hive default partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathValue {
    /// Column name as the directory spells it.
    pub column: String,
    /// The value's text, or `None` for NULL.
    pub value: Option<String>,
}

/// The `col=value` directories between `root` and the file `file` (both absolute URLs), outermost
/// first. Directories that are not `col=value` are skipped, as Spark's partition discovery skips
/// them; a file outside `root` has none.
pub fn path_values(root: &str, file: &str) -> Vec<PathValue> {
    let (Ok(root), Ok(file)) = (url::Url::parse(root), url::Url::parse(file)) else {
        return Vec::new();
    };
    let segments = |u: &url::Url| -> Vec<String> {
        u.path_segments()
            .map(|s| {
                s.filter(|p| !p.is_empty())
                    .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (root_segments, file_segments) = (segments(&root), segments(&file));
    if root.scheme() != file.scheme()
        || root.host_str() != file.host_str()
        || file_segments.len() <= root_segments.len()
        || file_segments[..root_segments.len()] != root_segments[..]
    {
        return Vec::new();
    }
    let directories = &file_segments[root_segments.len()..file_segments.len() - 1];
    directories
        .iter()
        .filter_map(|d| {
            let (column, value) = d.split_once('=')?;
            if column.is_empty() {
                return None;
            }
            let value = (value != DEFAULT_PARTITION_NAME).then(|| unescape_path_name(value));
            Some(PathValue { column: unescape_path_name(column), value })
        })
        .collect()
}

/// How one file's rows are assembled: which declared columns its bytes hold and which its path holds.
#[derive(Debug, Clone)]
pub struct PathColumns {
    /// The declared columns the file itself holds, in declared order.
    pub data_schema: SchemaRef,
    /// For each declared column: its value from the path, or `None` when it comes from the file.
    from_path: Vec<Option<Option<String>>>,
}

impl PathColumns {
    /// Splits `schema` for a file with these path values; `None` when no declared column is a
    /// partition column of this file, so the file is read as it is. Names match case-insensitively,
    /// as Spark's default `spark.sql.caseSensitive=false` does.
    pub fn plan(schema: &SchemaRef, values: &[PathValue]) -> Option<Self> {
        let from_path: Vec<Option<Option<String>>> = schema
            .fields()
            .iter()
            .map(|f| values.iter().rev().find(|v| v.column.eq_ignore_ascii_case(f.name())).map(|v| v.value.clone()))
            .collect();
        if from_path.iter().all(Option::is_none) {
            return None;
        }
        let data_fields: Vec<Arc<Field>> =
            schema.fields().iter().zip(&from_path).filter(|(_, p)| p.is_none()).map(|(f, _)| Arc::clone(f)).collect();
        Some(Self { data_schema: Arc::new(Schema::new(data_fields)), from_path })
    }

    /// The declared rows: the file's columns (`data`, in [`Self::data_schema`]) with the path's
    /// values, cast to their declared types, filled in. A value the type cannot hold is an error,
    /// as in Spark, rather than a silent NULL.
    pub fn assemble(&self, schema: &SchemaRef, data: &RecordBatch) -> Result<RecordBatch> {
        let rows = data.num_rows();
        let mut next_data = 0;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (field, from_path) in schema.fields().iter().zip(&self.from_path) {
            match from_path {
                None => {
                    columns.push(Arc::clone(data.column(next_data)));
                    next_data += 1;
                }
                Some(value) => columns.push(constant_column(field, value.as_deref(), rows)?),
            }
        }
        Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &RecordBatchOptions::new().with_row_count(Some(rows)))?)
    }
}

fn constant_column(field: &Field, value: Option<&str>, rows: usize) -> Result<ArrayRef> {
    let Some(text) = value else {
        return Ok(new_null_array(field.data_type(), rows));
    };
    let one: ArrayRef = Arc::new(StringArray::from(vec![text]));
    let options = CastOptions { safe: false, ..Default::default() };
    let typed = cast_with_options(&one, field.data_type(), &options).map_err(|_| {
        SluiceError::user(format!(
            "partition value '{text}' of column `{}` cannot be read as {}",
            field.name(),
            spark_type_name(field.data_type())
        ))
    })?;
    let indices = arrow::array::UInt32Array::from(vec![0u32; rows]);
    Ok(arrow::compute::take(typed.as_ref(), &indices, None)?)
}

/// The partition columns Spark's discovery finds under a directory, with the types it infers
/// (`spark.sql.sources.partitionColumnTypeInference.enabled`): INT, BIGINT, DOUBLE, DATE or
/// STRING, widened over every file's value. Used when a table takes its schema from its files.
pub fn infer_partition_fields<'a>(root: &str, files: impl IntoIterator<Item = &'a str>) -> Vec<Field> {
    let mut columns: Vec<(String, Option<InferredType>)> = Vec::new();
    for file in files {
        for v in path_values(root, file) {
            let i = match columns.iter().position(|(c, _)| c.eq_ignore_ascii_case(&v.column)) {
                Some(i) => i,
                None => {
                    columns.push((v.column.clone(), None));
                    columns.len() - 1
                }
            };
            if let Some(text) = &v.value {
                let t = InferredType::of(text);
                columns[i].1 = Some(columns[i].1.map_or(t, |seen| seen.wider(t)));
            }
        }
    }
    columns.into_iter().map(|(name, t)| Field::new(name, t.unwrap_or(InferredType::String).data_type(), true)).collect()
}

/// Spark's partition value types, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum InferredType {
    Int,
    Long,
    Double,
    Date,
    String,
}

impl InferredType {
    fn of(text: &str) -> Self {
        if text.parse::<i32>().is_ok() {
            Self::Int
        } else if text.parse::<i64>().is_ok() {
            Self::Long
        } else if text.parse::<f64>().is_ok() && text.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) {
            Self::Double
        } else if chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok_and(|d| d.format("%Y-%m-%d").to_string() == text) {
            Self::Date
        } else {
            Self::String
        }
    }

    /// The type both values fit: numbers widen among themselves; a date with a number, or
    /// anything with a string, is a string.
    fn wider(self, other: Self) -> Self {
        let numeric = |t: Self| matches!(t, Self::Int | Self::Long | Self::Double);
        if self == other {
            self
        } else if numeric(self) && numeric(other) {
            self.max(other)
        } else {
            Self::String
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Int => DataType::Int32,
            Self::Long => DataType::Int64,
            Self::Double => DataType::Float64,
            Self::Date => DataType::Date32,
            Self::String => DataType::Utf8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};

    #[test]
    fn escaping_round_trips_spark_names() {
        // Spark's escapePathName escapes these characters and nothing else.
        assert_eq!(escape_path_name("a:b/c=d e%"), "a%3Ab%2Fc%3Dd e%25");
        assert_eq!(escape_path_name("2024-01-01 10:00:00"), "2024-01-01 10%3A00%3A00");
        for s in ["plain", "a:b/c=d e%", "x\u{1}y", "ünï{cödé}", "%zz", "%4"] {
            assert_eq!(unescape_path_name(&escape_path_name(s)), s);
        }
        assert_eq!(unescape_path_name("%zz"), "%zz", "an invalid escape stays as written");
        assert_eq!(directory_name("k", None), "k=__HIVE_DEFAULT_PARTITION__");
        assert_eq!(directory_name("k", Some("")), "k=__HIVE_DEFAULT_PARTITION__");
        assert_eq!(directory_name("a=b", Some("1")), "a%3Db=1");
    }

    #[test]
    fn path_values_are_the_col_value_directories_below_the_root() {
        let root = "file:///data/out";
        let v = path_values(root, "file:///data/out/year=2024/tmp/k=a%253Ab/k2=__HIVE_DEFAULT_PARTITION__/part-0.json");
        assert_eq!(
            v,
            vec![
                PathValue { column: "year".into(), value: Some("2024".into()) },
                PathValue { column: "k".into(), value: Some("a:b".into()) },
                PathValue { column: "k2".into(), value: None },
            ]
        );
        assert!(path_values(root, "file:///data/other/k=1/part-0.json").is_empty());
        assert!(path_values("file:///data/out/", "file:///data/out/part-0.json").is_empty());
        assert!(path_values(root, "s3://b/data/out/k=1/f").is_empty());
    }

    #[test]
    fn declared_partition_columns_come_from_the_path_cast_to_their_types() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("V", DataType::Int64, true),
            Field::new("day", DataType::Date32, true),
            Field::new("n", DataType::Int32, true),
            Field::new("missing", DataType::Utf8, true),
        ]));
        let values = vec![
            PathValue { column: "DAY".into(), value: Some("2024-02-29".into()) },
            PathValue { column: "n".into(), value: None },
        ];
        let cols = PathColumns::plan(&schema, &values).unwrap();
        assert_eq!(cols.data_schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["V", "missing"]);
        let data = RecordBatch::try_new(
            Arc::clone(&cols.data_schema),
            vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(StringArray::from(vec![Some("x"), None]))],
        )
        .unwrap();
        let out = cols.assemble(&schema, &data).unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(out.column(1).as_primitive::<arrow::datatypes::Date32Type>().value(1), 19782);
        assert_eq!(out.column(2).null_count(), 2);
        assert_eq!(out.column(2).data_type(), &DataType::Int32);
        assert_eq!(out.column(3).as_string::<i32>().value(0), "x");
        assert!(PathColumns::plan(&schema, &[PathValue { column: "other".into(), value: None }]).is_none());

        let bad = vec![PathValue { column: "n".into(), value: Some("seven".into()) }];
        let e = PathColumns::plan(&schema, &bad).unwrap().assemble(&schema, &data_of(&schema, &bad)).unwrap_err();
        assert!(e.to_string().contains("partition value 'seven' of column `n` cannot be read as int"), "{e}");
    }

    fn data_of(schema: &SchemaRef, values: &[PathValue]) -> RecordBatch {
        let cols = PathColumns::plan(schema, values).unwrap();
        RecordBatch::new_empty(cols.data_schema)
    }

    #[test]
    fn inferred_partition_types_widen_as_spark_does() {
        let root = "file:///t";
        let files = [
            "file:///t/a=1/b=2024-01-01/c=x/d=1/f",
            "file:///t/a=3000000000/b=2024-01-02/c=1/d=1.5/f",
            "file:///t/a=__HIVE_DEFAULT_PARTITION__/b=2024-01-03/c=2/d=2/e=__HIVE_DEFAULT_PARTITION__/f",
        ];
        let fields = infer_partition_fields(root, files);
        let got: Vec<(&str, &DataType)> = fields.iter().map(|f| (f.name().as_str(), f.data_type())).collect();
        assert_eq!(
            got,
            vec![
                ("a", &DataType::Int64),
                ("b", &DataType::Date32),
                ("c", &DataType::Utf8),
                ("d", &DataType::Float64),
                ("e", &DataType::Utf8),
            ]
        );
    }
}

//! Spark's names for data types, for error messages users can match against Spark's.

use arrow::datatypes::{DataType, TimeUnit};

/// Spark's `catalogString` of the Spark type an Arrow type stands for (`int`,
/// `struct<a:int,b:string>`, `map<string,bigint>`); Arrow types without a Spark counterpart
/// are shown as Arrow names them.
pub(crate) fn catalog_string(dt: &DataType) -> String {
    match dt {
        DataType::Null => "void".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 => "string".into(),
        DataType::Binary => "binary".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp".into(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp_ntz".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::List(f) => format!("array<{}>", catalog_string(f.data_type())),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!(
                    "map<{},{}>",
                    catalog_string(kv[0].data_type()),
                    catalog_string(kv[1].data_type())
                )
            }
            other => other.to_string(),
        },
        DataType::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), catalog_string(f.data_type())))
                .collect();
            format!("struct<{}>", parts.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Fields};
    use std::sync::Arc;

    #[test]
    fn names_nested_types_like_spark() {
        let st = DataType::Struct(Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new(
                "b",
                DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                true,
            ),
        ]));
        assert_eq!(catalog_string(&st), "struct<a:int,b:array<string>>");
        assert_eq!(catalog_string(&DataType::Decimal128(10, 2)), "decimal(10,2)");
    }
}

//! Spark SQL type names and their Arrow representation.
//!
//! Job files and `from_json` schemas are written in Spark's DDL (`STRING`, `LONG`, `TIMESTAMP`,
//! `STRUCT<a: INT>`…). This module is the single place that decides how each Spark type is held in
//! Arrow, so that sources, functions and sinks agree:
//!
//! * `TIMESTAMP` is an instant: `Timestamp(Microsecond, "UTC")` — Spark's own precision, and the
//!   form Parquet readers (Spark included) treat as `TIMESTAMP`, not `TIMESTAMP_NTZ`.
//! * `STRING` is `Utf8`.
//! * `DECIMAL` without precision is `DECIMAL(10,0)`, as in Spark.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, TimeUnit};
use datafusion::sql::sqlparser::ast::{ArrayElemTypeDef, DataType as SqlType, ExactNumberInfo, StructField, TimezoneInfo};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Result, SluiceError};

/// Spark's field metadata key marking an event-time column, with its watermark delay (ms) as the
/// value: the stream's watermark column carries it, and `window()`/`session_window()` copy it to
/// their result, so stateful operators can tell which of their keys the watermark evicts by.
pub const WATERMARK_DELAY_KEY: &str = "spark.watermarkDelayMs";

/// The time zone attached to every `TIMESTAMP` value (Spark's session time zone in tests).
pub const UTC: &str = "UTC";

/// Arrow type of Spark's `TIMESTAMP`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// Maps a parsed Spark SQL type to Arrow.
pub fn arrow_type(sql: &SqlType) -> Result<DataType> {
    use SqlType as S;
    Ok(match sql {
        S::Boolean | S::Bool => DataType::Boolean,
        S::TinyInt(_) => DataType::Int8,
        S::SmallInt(_) | S::Int2(_) => DataType::Int16,
        S::Int(_) | S::Integer(_) | S::Int4(_) => DataType::Int32,
        S::BigInt(_) | S::Int8(_) => DataType::Int64,
        S::Float(ExactNumberInfo::None) | S::Real | S::Float4 => DataType::Float32,
        S::Float(_) => DataType::Float64,
        S::Double(_) | S::DoublePrecision | S::Float8 => DataType::Float64,
        S::Decimal(info) | S::Numeric(info) | S::Dec(info) => match info {
            ExactNumberInfo::None => DataType::Decimal128(10, 0),
            ExactNumberInfo::Precision(p) => DataType::Decimal128(narrow(*p, "precision")?, 0),
            ExactNumberInfo::PrecisionAndScale(p, s) => DataType::Decimal128(narrow(*p, "precision")?, narrow_scale(*s)?),
        },
        S::String(_)
        | S::Text
        | S::Varchar(_)
        | S::Char(_)
        | S::Character(_)
        | S::CharacterVarying(_)
        | S::CharVarying(_)
        | S::Nvarchar(_) => DataType::Utf8,
        S::Binary(_) | S::Varbinary(_) | S::Bytea | S::Blob(_) => DataType::Binary,
        S::Date => DataType::Date32,
        S::Timestamp(_, TimezoneInfo::WithoutTimeZone) | S::TimestampNtz(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
        S::Timestamp(_, _) => timestamp_type(),
        S::Array(ArrayElemTypeDef::AngleBracket(inner))
        | S::Array(ArrayElemTypeDef::SquareBracket(inner, None))
        | S::Array(ArrayElemTypeDef::Parenthesis(inner)) => {
            DataType::List(Arc::new(Field::new("element", arrow_type(inner)?, true)))
        }
        S::Map(k, v) => map_type(arrow_type(k)?, arrow_type(v)?),
        S::Struct(fields, _) => DataType::Struct(struct_fields(fields)?),
        S::Custom(name, modifiers) if modifiers.is_empty() => match name.to_string().to_ascii_uppercase().as_str() {
            "BYTE" => DataType::Int8,
            "SHORT" => DataType::Int16,
            "LONG" => DataType::Int64,
            "TIMESTAMP_LTZ" => timestamp_type(),
            "TIMESTAMP_NTZ" => DataType::Timestamp(TimeUnit::Microsecond, None),
            other => {
                return Err(SluiceError::user(format!("unsupported data type '{other}'")));
            }
        },
        other => return Err(SluiceError::user(format!("unsupported data type '{other}'"))),
    })
}

/// Arrow's canonical map layout for Spark `MAP<K, V>`.
pub fn map_type(key: DataType, value: DataType) -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![Field::new("key", key, false), Field::new("value", value, true)])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn struct_fields(fields: &[StructField]) -> Result<Fields> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = f.field_name.as_ref().map(|n| n.value.clone()).unwrap_or_else(|| format!("col{}", i + 1));
            Ok(Field::new(name, arrow_type(&f.field_type)?, true))
        })
        .collect()
}

fn narrow(v: u64, what: &str) -> Result<u8> {
    u8::try_from(v)
        .ok()
        .filter(|p| (1..=38).contains(p))
        .ok_or_else(|| SluiceError::user(format!("decimal {what} {v} is out of range 1..38")))
}

fn narrow_scale(v: i64) -> Result<i8> {
    i8::try_from(v)
        .ok()
        .filter(|s| (0..=38).contains(s))
        .ok_or_else(|| SluiceError::user(format!("decimal scale {v} is out of range 0..38")))
}

/// Parses one Spark type name such as `STRUCT<a: INT, b: ARRAY<STRING>>`.
pub fn parse_type(text: &str) -> Result<DataType> {
    let (sql, trailing) =
        crate::dialect::parse(text, |parser| Ok((parser.parse_data_type()?, parser.peek_token().token != Token::EOF)))
            .map_err(|e| SluiceError::user(format!("invalid type '{text}': {e}")))?;
    if trailing {
        return Err(SluiceError::user(format!("invalid type '{text}': unexpected trailing text")));
    }
    arrow_type(&sql)
}

/// Parses a Spark DDL schema string (`a INT, b STRING NOT NULL`), as `from_json` and
/// `StructType.fromDDL` accept it; a leading `STRUCT<…>` form is accepted too.
pub fn parse_ddl_schema(ddl: &str) -> Result<Schema> {
    let trimmed = ddl.trim();
    // `get` rather than slicing: the sixth byte may fall inside a multibyte character.
    if trimmed.len() > 6 && trimmed.get(..6).is_some_and(|head| head.eq_ignore_ascii_case("struct")) {
        if let DataType::Struct(fields) = parse_type(trimmed)? {
            return Ok(Schema::new(fields));
        }
    }
    let err = |e: &dyn std::fmt::Display| SluiceError::user(format!("invalid schema '{ddl}': {e}"));
    // (name, type, nullable) per field, and whether text follows the last one.
    let (fields, trailing) = crate::dialect::parse(ddl, |parser| {
        let mut fields = Vec::new();
        loop {
            let name = parser.parse_identifier()?;
            // Spark's DDL allows an optional colon between a field name and its type.
            let _ = parser.consume_token(&Token::Colon);
            let ty = parser.parse_data_type()?;
            let mut nullable = true;
            if parser.parse_keywords(&[
                datafusion::sql::sqlparser::keywords::Keyword::NOT,
                datafusion::sql::sqlparser::keywords::Keyword::NULL,
            ]) {
                nullable = false;
            }
            if parser.parse_keyword(datafusion::sql::sqlparser::keywords::Keyword::COMMENT) {
                parser.parse_literal_string()?;
            }
            fields.push((name.value, ty, nullable));
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        Ok((fields, parser.peek_token().token != Token::EOF))
    })
    .map_err(|e| err(&e))?;
    if trailing {
        return Err(err(&"unexpected text after the last field"));
    }
    let fields = fields
        .into_iter()
        .map(|(name, ty, nullable)| Ok(Field::new(name, arrow_type(&ty)?, nullable)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Schema::new(fields))
}

/// Spark's name for an Arrow type, for messages and `DESCRIBE`-like output.
pub fn spark_type_name(dt: &DataType) -> String {
    match dt {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("array<{}>", spark_type_name(f.data_type())),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields.iter().map(|f| format!("{}:{}", f.name(), spark_type_name(f.data_type()))).collect::<Vec<_>>().join(",")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("map<{},{}>", spark_type_name(kv[0].data_type()), spark_type_name(kv[1].data_type()))
            }
            other => other.to_string(),
        },
        DataType::Null => "void".into(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// DataFusion hook that makes `CAST(x AS STRING)`, `CAST(x AS TIMESTAMP)` etc. inside queries use
/// the same Arrow types as the job file's column declarations.
#[derive(Debug, Default)]
pub struct SparkTypePlanner;

impl datafusion::logical_expr::planner::TypePlanner for SparkTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlType) -> datafusion::error::Result<Option<FieldRef>> {
        match arrow_type(sql_type) {
            Ok(dt) => Ok(Some(Arc::new(Field::new("", dt, true)))),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_names_map_to_arrow() {
        assert_eq!(parse_type("STRING").unwrap(), DataType::Utf8);
        assert_eq!(parse_type("long").unwrap(), DataType::Int64);
        assert_eq!(parse_type("TIMESTAMP").unwrap(), timestamp_type());
        assert_eq!(parse_type("decimal").unwrap(), DataType::Decimal128(10, 0));
        assert_eq!(parse_type("DECIMAL(12,2)").unwrap(), DataType::Decimal128(12, 2));
        let DataType::Struct(f) = parse_type("STRUCT<a: INT, b: ARRAY<STRING>>").unwrap() else { panic!("not a struct") };
        assert_eq!(f[1].data_type(), &DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))));
    }

    #[test]
    fn names_nested_types_like_spark() {
        let st = DataType::Struct(Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))), true),
        ]));
        assert_eq!(spark_type_name(&st), "struct<a:int,b:array<string>>");
        assert_eq!(spark_type_name(&DataType::Decimal128(10, 2)), "decimal(10,2)");
    }

    #[test]
    fn ddl_schema_parses_like_struct_type_from_ddl() {
        let s = parse_ddl_schema("a INT, b STRING NOT NULL, c MAP<STRING, BIGINT>").unwrap();
        assert_eq!(s.fields().len(), 3);
        assert!(!s.field(1).is_nullable());
        assert_eq!(parse_ddl_schema("struct<x: double>").unwrap().field(0).data_type(), &DataType::Float64);
        assert!(parse_ddl_schema("a INT,").is_err());
    }

    #[test]
    fn multibyte_and_deeply_nested_schemas_are_errors_not_panics() {
        // The sixth byte falls inside `é`.
        assert!(parse_ddl_schema("strucé<a: INT>").is_err());
        let deep = format!("a {}INT{}", "ARRAY<".repeat(10_000), ">".repeat(10_000));
        assert!(parse_ddl_schema(&deep).unwrap_err().message.contains("nested more than"));
    }
}

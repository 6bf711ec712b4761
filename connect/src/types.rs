//! Spark's data types as a Spark Connect client sends and expects them, and their sluice forms:
//! the Arrow types sluice's engine holds values in, and the SQL type names its job-file SQL reads.
//!
//! - [`arrow_to_proto`] / [`schema_to_proto`]: what a client shows for `df.schema`,
//!   `printSchema()` and `df.columns` (the server answers `AnalyzePlan` with a proto type).
//! - [`proto_to_arrow`]: the Arrow type of a proto type (`createDataFrame`'s schema, literals).
//! - [`proto_to_sql`]: the SQL name of a proto type (`cast(...)` becomes `CAST(x AS …)`).
//! - [`schema_text_to_ddl`] / [`spark_json_type_to_sql`]: `readStream.schema(...)`, which arrives
//!   as a `StructType` JSON or a DDL string, as the column list of a job's stream declaration.
//!
//! The Arrow layout of each Spark type is sluice's own ([`sluice_common::types`]): `TIMESTAMP` is
//! `Timestamp(Microsecond, "UTC")`, an array's item field is named `element`, a map's entries are
//! `entries: struct<key, value>`; this module never invents a second layout.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, IntervalUnit, Schema, TimeUnit};
use serde_json::Value;
use sluice_common::types::{parse_ddl_schema, parse_type, timestamp_type};

use crate::error::{ConnectError, Result};
use crate::proto;
use crate::proto::data_type::{self as dt, Kind};

/// Spark's default string collation: the only one sluice compares strings by (byte order).
const UTF8_BINARY: &str = "UTF8_BINARY";

/// The name of an array's item field, as sluice's SQL types (and Spark's Arrow conversion) use.
const LIST_ITEM: &str = "element";

/// Spark's widest decimal (`DECIMAL(38, s)`), which is also `Decimal128`'s.
const MAX_DECIMAL_PRECISION: i32 = 38;

/// `DayTimeIntervalType`'s `DAY` and `SECOND` fields: Arrow's `Duration` is a `DAY TO SECOND`
/// interval, Spark's default `DayTimeIntervalType()`.
const DAY: i32 = 0;
const SECOND: i32 = 3;

/// `YearMonthIntervalType`'s `YEAR` and `MONTH` fields (`YEAR TO MONTH`, Spark's default).
const YEAR: i32 = 0;
const MONTH: i32 = 1;

/// Backtick-quotes `name` for Spark SQL (doubling backticks inside it), so any column name — with
/// spaces, dots, keywords or backticks — reads back as exactly that name.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A proto type of `kind`.
fn of(kind: Kind) -> proto::DataType {
    proto::DataType { kind: Some(kind) }
}

/// The Spark Connect type of an Arrow type: what a client shows for a column of sluice's results
/// (`df.schema`, `printSchema()`, `df.columns`), so it must name the Spark type whose Arrow form
/// sluice holds (`Timestamp` with a zone is `timestamp`, without one `timestamp_ntz`, …).
///
/// Every kind carries `type_variation_reference: 0` (the default; Spark defines no variations).
/// A `Dictionary` is typed by its values, as the client decodes it.
pub fn arrow_to_proto(dt: &DataType) -> Result<proto::DataType> {
    let unsupported = || ConnectError::unsupported(format!("the Arrow type {dt}"));
    Ok(of(match dt {
        DataType::Null => Kind::Null(dt::Null::default()),
        DataType::Boolean => Kind::Boolean(dt::Boolean::default()),
        DataType::Int8 => Kind::Byte(dt::Byte::default()),
        DataType::Int16 => Kind::Short(dt::Short::default()),
        DataType::Int32 => Kind::Integer(dt::Integer::default()),
        DataType::Int64 => Kind::Long(dt::Long::default()),
        DataType::Float32 => Kind::Float(dt::Float::default()),
        DataType::Float64 => Kind::Double(dt::Double::default()),
        DataType::Decimal128(p, s) => {
            Kind::Decimal(dt::Decimal { precision: Some(i32::from(*p)), scale: Some(i32::from(*s)), type_variation_reference: 0 })
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Kind::String(dt::String { type_variation_reference: 0, collation: UTF8_BINARY.into() })
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Kind::Binary(dt::Binary::default()),
        DataType::Date32 => Kind::Date(dt::Date::default()),
        DataType::Timestamp(_, Some(_)) => Kind::Timestamp(dt::Timestamp::default()),
        DataType::Timestamp(_, None) => Kind::TimestampNtz(dt::TimestampNtz::default()),
        DataType::Interval(IntervalUnit::MonthDayNano) => Kind::CalendarInterval(dt::CalendarInterval::default()),
        DataType::Interval(IntervalUnit::YearMonth) => Kind::YearMonthInterval(dt::YearMonthInterval {
            start_field: Some(YEAR),
            end_field: Some(MONTH),
            type_variation_reference: 0,
        }),
        DataType::Duration(TimeUnit::Microsecond) => Kind::DayTimeInterval(dt::DayTimeInterval {
            start_field: Some(DAY),
            end_field: Some(SECOND),
            type_variation_reference: 0,
        }),
        DataType::List(item) | DataType::LargeList(item) => Kind::Array(Box::new(dt::Array {
            element_type: Some(Box::new(arrow_to_proto(item.data_type())?)),
            contains_null: item.is_nullable(),
            type_variation_reference: 0,
        })),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Kind::Map(Box::new(dt::Map {
                key_type: Some(Box::new(arrow_to_proto(kv[0].data_type())?)),
                value_type: Some(Box::new(arrow_to_proto(kv[1].data_type())?)),
                value_contains_null: kv[1].is_nullable(),
                type_variation_reference: 0,
            })),
            _ => return Err(unsupported()),
        },
        DataType::Struct(fields) => Kind::Struct(struct_of(fields)?),
        DataType::Dictionary(_, values) => return arrow_to_proto(values),
        _ => return Err(unsupported()),
    }))
}

/// A proto struct of Arrow fields: each field's name, type and nullability (no metadata).
fn struct_of(fields: &Fields) -> Result<dt::Struct> {
    let fields = fields
        .iter()
        .map(|f| {
            Ok(dt::StructField {
                name: f.name().clone(),
                data_type: Some(arrow_to_proto(f.data_type())?),
                nullable: f.is_nullable(),
                metadata: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(dt::Struct { fields, type_variation_reference: 0 })
}

/// The Spark Connect type of a result's schema: a struct of its columns, as `AnalyzePlan`'s
/// `schema` answers it (a client reads `df.schema` and `df.columns` from it).
pub fn schema_to_proto(schema: &Schema) -> Result<proto::DataType> {
    Ok(of(Kind::Struct(struct_of(schema.fields())?)))
}

/// The kind of a proto type, which every type a client sends must have.
fn kind(dt: &proto::DataType) -> Result<&Kind> {
    dt.kind.as_ref().ok_or_else(|| ConnectError::invalid_plan("a data type has no kind"))
}

/// The type inside an optional boxed field of a proto type (`element_type`, `key_type`, …).
fn required<'a>(dt: &'a Option<Box<proto::DataType>>, what: &str) -> Result<&'a proto::DataType> {
    dt.as_deref().ok_or_else(|| ConnectError::invalid_plan(format!("{what} has no type")))
}

/// A struct field's type, which must be set.
fn field_type(f: &dt::StructField) -> Result<&proto::DataType> {
    f.data_type.as_ref().ok_or_else(|| ConnectError::invalid_plan(format!("the struct field '{}' has no type", f.name)))
}

/// Refuses a string collation other than Spark's default byte order: sluice compares, groups
/// and joins strings by their bytes, so `UTF8_LCASE`, `UNICODE_CI`… would give wrong answers.
fn check_collation(s: &dt::String) -> Result<()> {
    if s.collation.is_empty() || s.collation.eq_ignore_ascii_case(UTF8_BINARY) {
        Ok(())
    } else {
        Err(ConnectError::unsupported(format!("the string collation {}", s.collation)))
    }
}

/// A proto decimal's precision and scale, defaulting as Spark does (`DECIMAL(10,0)`), checked
/// against Spark's limits (precision 1..38, scale 0..precision).
fn decimal(d: &dt::Decimal) -> Result<(u8, i8)> {
    checked_decimal(d.precision.unwrap_or(10), d.scale.unwrap_or(0))
}

/// `DECIMAL(p,s)` within Spark's limits, as `Decimal128`'s precision and scale.
fn checked_decimal(p: i32, s: i32) -> Result<(u8, i8)> {
    if !(1..=MAX_DECIMAL_PRECISION).contains(&p) || !(0..=p).contains(&s) {
        return Err(ConnectError::analysis(format!(
            "invalid decimal type DECIMAL({p},{s}): the precision must be 1 to {MAX_DECIMAL_PRECISION} and the scale 0 to the precision"
        )));
    }
    // In range by the check above.
    Ok((p as u8, s as i8))
}

/// Arrow's map layout for `MAP<key, value>`, sluice's ([`sluice_common::types::map_type`]) with
/// the value's nullability as the client declared it.
fn map_of(key: DataType, value: DataType, value_nullable: bool) -> DataType {
    let kv = Fields::from(vec![Field::new("key", key, false), Field::new("value", value, value_nullable)]);
    DataType::Map(Arc::new(Field::new("entries", DataType::Struct(kv), false)), false)
}

/// The type a client's schema string (a `DataType.unparsed`) names: a type (`int`,
/// `array<string>`) or, as Spark falls back to, a column list (`a INT, b STRING`) as a struct.
fn parse_unparsed(text: &str) -> Result<DataType> {
    match parse_type(text) {
        Ok(dt) => Ok(dt),
        Err(type_err) => match parse_ddl_schema(text) {
            Ok(schema) => Ok(DataType::Struct(schema.fields().clone())),
            Err(_) => Err(type_err.into()),
        },
    }
}

/// The Arrow type of a Spark Connect type, in sluice's layout: for `cast(...)`,
/// `createDataFrame`'s schema and literals' types. `char(n)`/`varchar(n)` are strings (sluice
/// neither pads nor truncates them); nullability of array items, map values and struct fields is
/// kept as the client declared it.
pub fn proto_to_arrow(dt: &proto::DataType) -> Result<DataType> {
    Ok(match kind(dt)? {
        Kind::Null(_) => DataType::Null,
        Kind::Boolean(_) => DataType::Boolean,
        Kind::Byte(_) => DataType::Int8,
        Kind::Short(_) => DataType::Int16,
        Kind::Integer(_) => DataType::Int32,
        Kind::Long(_) => DataType::Int64,
        Kind::Float(_) => DataType::Float32,
        Kind::Double(_) => DataType::Float64,
        Kind::Decimal(d) => {
            let (p, s) = decimal(d)?;
            DataType::Decimal128(p, s)
        }
        Kind::String(s) => {
            check_collation(s)?;
            DataType::Utf8
        }
        Kind::Char(_) | Kind::VarChar(_) => DataType::Utf8,
        Kind::Binary(_) => DataType::Binary,
        Kind::Date(_) => DataType::Date32,
        Kind::Timestamp(_) => timestamp_type(),
        Kind::TimestampNtz(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
        Kind::CalendarInterval(_) => DataType::Interval(IntervalUnit::MonthDayNano),
        Kind::YearMonthInterval(_) => DataType::Interval(IntervalUnit::YearMonth),
        Kind::DayTimeInterval(_) => DataType::Duration(TimeUnit::Microsecond),
        Kind::Array(a) => {
            let item = proto_to_arrow(required(&a.element_type, "an array type")?)?;
            DataType::List(Arc::new(Field::new(LIST_ITEM, item, a.contains_null)))
        }
        Kind::Map(m) => map_of(
            proto_to_arrow(required(&m.key_type, "a map type's key")?)?,
            proto_to_arrow(required(&m.value_type, "a map type's value")?)?,
            m.value_contains_null,
        ),
        Kind::Struct(s) => DataType::Struct(
            s.fields
                .iter()
                .map(|f| Ok(Field::new(f.name.clone(), proto_to_arrow(field_type(f)?)?, f.nullable)))
                .collect::<Result<Fields>>()?,
        ),
        Kind::Unparsed(u) => parse_unparsed(&u.data_type_string)?,
        Kind::Variant(_) => return Err(ConnectError::unsupported("the VARIANT type")),
        Kind::Udt(u) => return Err(unsupported_udt(u)),
    })
}

/// The error for a user-defined type: sluice has no UDT classes to give its values.
fn unsupported_udt(u: &dt::Udt) -> ConnectError {
    let class = u.python_class.as_deref().or(u.jvm_class.as_deref()).unwrap_or("?");
    ConnectError::unsupported(format!("the user-defined type {class}"))
}

/// The Spark SQL name of a Spark Connect type as sluice's job-file SQL reads it, in
/// `CAST(x AS …)` and column declarations: `BIGINT`, `DECIMAL(12,2)`, `ARRAY<STRING>`,
/// `MAP<STRING, BIGINT>`, ``STRUCT<`a`: INT>`` (names backtick-quoted). The void and interval
/// types have no such name in sluice's SQL and are refused.
pub fn proto_to_sql(dt: &proto::DataType) -> Result<String> {
    Ok(match kind(dt)? {
        Kind::Boolean(_) => "BOOLEAN".into(),
        Kind::Byte(_) => "TINYINT".into(),
        Kind::Short(_) => "SMALLINT".into(),
        Kind::Integer(_) => "INT".into(),
        Kind::Long(_) => "BIGINT".into(),
        Kind::Float(_) => "FLOAT".into(),
        Kind::Double(_) => "DOUBLE".into(),
        Kind::Decimal(d) => {
            let (p, s) = decimal(d)?;
            format!("DECIMAL({p},{s})")
        }
        Kind::String(s) => {
            check_collation(s)?;
            "STRING".into()
        }
        Kind::Char(_) | Kind::VarChar(_) => "STRING".into(),
        Kind::Binary(_) => "BINARY".into(),
        Kind::Date(_) => "DATE".into(),
        Kind::Timestamp(_) => "TIMESTAMP".into(),
        Kind::TimestampNtz(_) => "TIMESTAMP_NTZ".into(),
        Kind::Array(a) => format!("ARRAY<{}>", proto_to_sql(required(&a.element_type, "an array type")?)?),
        Kind::Map(m) => format!(
            "MAP<{}, {}>",
            proto_to_sql(required(&m.key_type, "a map type's key")?)?,
            proto_to_sql(required(&m.value_type, "a map type's value")?)?
        ),
        Kind::Struct(s) => format!(
            "STRUCT<{}>",
            s.fields
                .iter()
                .map(|f| Ok(format!("{}: {}", quote_ident(&f.name), proto_to_sql(field_type(f)?)?)))
                .collect::<Result<Vec<_>>>()?
                .join(", ")
        ),
        // Normalised through Arrow: the text may be a column list, which `CAST` does not take.
        Kind::Unparsed(u) => proto_to_sql(&arrow_to_proto(&parse_unparsed(&u.data_type_string)?)?)?,
        Kind::Null(_) => return Err(ConnectError::unsupported("the VOID (null) type in a cast or schema")),
        Kind::CalendarInterval(_) | Kind::YearMonthInterval(_) | Kind::DayTimeInterval(_) => {
            return Err(ConnectError::unsupported("an interval type in a cast or schema"));
        }
        Kind::Variant(_) => return Err(ConnectError::unsupported("the VARIANT type")),
        Kind::Udt(u) => return Err(unsupported_udt(u)),
    })
}

/// The column list of a stream declaration for the schema a client sends with
/// `readStream.schema(...)`. PySpark sends a `StructType` as its JSON (`StructType.json()`,
/// starting with `{`), which becomes ``"`a` INT, `s` STRUCT<`x`: BIGINT> NOT NULL"``
/// (backtick-quoted names, `NOT NULL` for a column that is not nullable); a DDL string
/// (`"a INT, b STRING"`) is already one and is returned trimmed.
///
/// Malformed JSON and unknown type names are analysis errors naming the offending part.
pub fn schema_text_to_ddl(text: &str) -> Result<String> {
    let text = text.trim();
    if !text.starts_with('{') {
        return Ok(text.to_string());
    }
    let json: Value = serde_json::from_str(text).map_err(|e| invalid(format!("{e}")))?;
    if json.get("type").and_then(Value::as_str) != Some("struct") {
        return Err(invalid("expected a struct type (\"type\": \"struct\") at the top level".into()));
    }
    struct_fields(&json, None)?
        .into_iter()
        .map(|(name, sql, nullable)| Ok(format!("{} {sql}{}", quote_ident(&name), if nullable { "" } else { " NOT NULL" })))
        .collect::<Result<Vec<_>>>()
        .map(|columns| columns.join(", "))
}

/// The Spark SQL name (as [`proto_to_sql`] spells it) of a type in Spark's JSON form: a
/// primitive's name (`"long"`, `"decimal(10,2)"`) or a complex type's object (`{"type":
/// "array", "elementType": …}`, `"map"`, `"struct"`).
pub fn spark_json_type_to_sql(v: &Value) -> Result<String> {
    json_type_sql(v, None)
}

/// An invalid schema, as an analysis error.
fn invalid(detail: String) -> ConnectError {
    ConnectError::analysis(format!("invalid schema: {detail}"))
}

/// ` for field 'a.b'`, when the type belongs to a field.
fn for_field(path: Option<&str>) -> String {
    path.map(|p| format!(" for field '{p}'")).unwrap_or_default()
}

/// The fields of a JSON struct type: each field's name, SQL type and nullability (`nullable`
/// defaults to true). `path` is the struct's own field path, for messages.
fn struct_fields(json: &Value, path: Option<&str>) -> Result<Vec<(String, String, bool)>> {
    let fields = json
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("a struct type without a \"fields\" array{}", for_field(path))))?;
    fields
        .iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("a struct field without a \"name\"{}", for_field(path))))?;
            let field_path = match path {
                Some(p) => format!("{p}.{name}"),
                None => name.to_string(),
            };
            let ty = f.get("type").ok_or_else(|| invalid(format!("no \"type\" for field '{field_path}'")))?;
            let nullable = match f.get("nullable") {
                None => true,
                Some(n) => {
                    n.as_bool().ok_or_else(|| invalid(format!("\"nullable\" is not true or false for field '{field_path}'")))?
                }
            };
            Ok((name.to_string(), json_type_sql(ty, Some(&field_path))?, nullable))
        })
        .collect()
}

/// [`spark_json_type_to_sql`], with the path of the field the type belongs to for messages.
fn json_type_sql(v: &Value, path: Option<&str>) -> Result<String> {
    match v {
        Value::String(name) => primitive_sql(name, path),
        Value::Object(o) => {
            let member = |key: &str, what: &str| {
                o.get(key).ok_or_else(|| invalid(format!("{what} type without \"{key}\"{}", for_field(path))))
            };
            match o.get("type").and_then(Value::as_str) {
                Some("array") => Ok(format!("ARRAY<{}>", json_type_sql(member("elementType", "an array")?, path)?)),
                Some("map") => Ok(format!(
                    "MAP<{}, {}>",
                    json_type_sql(member("keyType", "a map")?, path)?,
                    json_type_sql(member("valueType", "a map")?, path)?
                )),
                Some("struct") => Ok(format!(
                    "STRUCT<{}>",
                    struct_fields(v, path)?
                        .into_iter()
                        .map(|(name, sql, _)| format!("{}: {sql}", quote_ident(&name)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Some("udt") => Err(ConnectError::unsupported(format!("a user-defined type{}", for_field(path)))),
                Some(other) => Err(invalid(format!("unknown data type '{other}'{}", for_field(path)))),
                None => Err(invalid(format!("a complex type without a \"type\"{}", for_field(path)))),
            }
        }
        other => Err(invalid(format!("a data type must be a name or an object, not {other}{}", for_field(path)))),
    }
}

/// The SQL name of a primitive type's JSON name (`long` → `BIGINT`, `decimal(10,2)`).
fn primitive_sql(name: &str, path: Option<&str>) -> Result<String> {
    let lower = name.trim().to_ascii_lowercase();
    let sql = match lower.as_str() {
        "string" => "STRING",
        "long" | "bigint" => "BIGINT",
        "integer" | "int" => "INT",
        "short" | "smallint" => "SMALLINT",
        "byte" | "tinyint" => "TINYINT",
        "double" => "DOUBLE",
        "float" | "real" => "FLOAT",
        "boolean" => "BOOLEAN",
        "binary" => "BINARY",
        "date" => "DATE",
        "timestamp" | "timestamp_ltz" => "TIMESTAMP",
        "timestamp_ntz" => "TIMESTAMP_NTZ",
        "decimal" => "DECIMAL(10,0)",
        "null" | "void" => {
            return Err(ConnectError::unsupported(format!("the void (null) type{}", for_field(path))));
        }
        "variant" => return Err(ConnectError::unsupported(format!("the VARIANT type{}", for_field(path)))),
        _ if lower.starts_with("interval") || lower == "calendarinterval" => {
            return Err(ConnectError::unsupported(format!("the type '{name}'{}", for_field(path))));
        }
        _ if lower.starts_with("string collate") => {
            return Err(ConnectError::unsupported(format!("the type '{name}'{}", for_field(path))));
        }
        _ => {
            if let Some(args) = parenthesised(&lower, "decimal") {
                let parsed = match args.split(',').map(|a| a.trim().parse::<i32>()).collect::<Vec<_>>().as_slice() {
                    [Ok(p), Ok(s)] => Some((*p, *s)),
                    [Ok(p)] => Some((*p, 0)),
                    _ => None,
                };
                let (p, s) = parsed.ok_or_else(|| invalid(format!("unknown data type '{name}'{}", for_field(path))))?;
                let (p, s) = checked_decimal(p, s)?;
                return Ok(format!("DECIMAL({p},{s})"));
            }
            let sized = |t| parenthesised(&lower, t).is_some_and(|n| n.trim().parse::<u32>().is_ok());
            if sized("char") || sized("varchar") {
                // sluice holds both as plain strings.
                return Ok("STRING".into());
            }
            return Err(invalid(format!("unknown data type '{name}'{}", for_field(path))));
        }
    };
    Ok(sql.to_string())
}

/// The text between the brackets of `name(…)`, if `text` is that.
fn parenthesised<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.strip_prefix(name)?.trim_start().strip_prefix('(')?.strip_suffix(')')
}

/// The schema as `printSchema()` prints it (Spark's `StructType.treeString`).
pub fn tree_string(schema: &Schema) -> String {
    let mut out = String::from("root\n");
    for f in schema.fields() {
        tree_field(&mut out, 1, f.name(), f.data_type(), "nullable", f.is_nullable());
    }
    out
}

fn tree_field(out: &mut String, depth: usize, name: &str, dt: &DataType, null_word: &str, nullable: bool) {
    let indent = " |   ".repeat(depth - 1);
    out.push_str(&format!("{indent} |-- {name}: {} ({null_word} = {nullable})\n", tree_type_name(dt)));
    match dt {
        DataType::Struct(fields) => {
            for f in fields.iter() {
                tree_field(out, depth + 1, f.name(), f.data_type(), "nullable", f.is_nullable());
            }
        }
        DataType::List(item) | DataType::LargeList(item) => {
            tree_field(out, depth + 1, "element", item.data_type(), "containsNull", item.is_nullable());
        }
        DataType::Map(entries, _) => {
            if let DataType::Struct(kv) = entries.data_type() {
                if let [k, v] = kv.iter().as_slice() {
                    tree_field(out, depth + 1, "key", k.data_type(), "nullable", false);
                    tree_field(out, depth + 1, "value", v.data_type(), "valueContainsNull", v.is_nullable());
                }
            }
        }
        _ => {}
    }
}

/// Spark's simple type name (`long`, `struct`, `decimal(10,2)`), as `printSchema` shows it.
fn tree_type_name(dt: &DataType) -> String {
    match arrow_to_proto(dt).ok().and_then(|p| p.kind) {
        Some(Kind::Decimal(d)) => format!("decimal({},{})", d.precision.unwrap_or(10), d.scale.unwrap_or(0)),
        Some(k) => match k {
            Kind::String(_) => "string",
            Kind::Long(_) => "long",
            Kind::Integer(_) => "integer",
            Kind::Short(_) => "short",
            Kind::Byte(_) => "byte",
            Kind::Double(_) => "double",
            Kind::Float(_) => "float",
            Kind::Boolean(_) => "boolean",
            Kind::Binary(_) => "binary",
            Kind::Date(_) => "date",
            Kind::Timestamp(_) => "timestamp",
            Kind::TimestampNtz(_) => "timestamp_ntz",
            Kind::Struct(_) => "struct",
            Kind::Array(_) => "array",
            Kind::Map(_) => "map",
            Kind::Null(_) => "void",
            Kind::CalendarInterval(_) => "interval",
            Kind::DayTimeInterval(_) => "interval day to second",
            _ => "unknown",
        }
        .to_string(),
        None => dt.to_string(),
    }
}

/// A DDL column list (`a INT, b STRING`) as an Arrow schema (`DataType.fromDDL`, a
/// `createDataFrame` schema string), read as a `CREATE STREAM` reads its columns.
pub fn ddl_to_schema(ddl: &str) -> Result<arrow::datatypes::SchemaRef> {
    parse_ddl_schema(ddl).map(Arc::new).map_err(|e| ConnectError::analysis(format!("[PARSE_SYNTAX_ERROR] {}", e.one_line())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExceptionClass;
    use serde_json::json;

    fn list(item: DataType, nullable: bool) -> DataType {
        DataType::List(Arc::new(Field::new(LIST_ITEM, item, nullable)))
    }

    fn sample_struct() -> DataType {
        DataType::Struct(Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b c", DataType::Utf8, false),
            Field::new("d`e", list(DataType::Decimal128(12, 2), true), true),
            Field::new("m", sluice_common::types::map_type(DataType::Utf8, DataType::Int64), true),
            Field::new("ts", timestamp_type(), true),
        ]))
    }

    #[test]
    fn arrow_types_map_to_the_spark_types_a_client_shows() {
        let cases = [
            (DataType::Utf8, "string"),
            (DataType::LargeUtf8, "string"),
            (DataType::Utf8View, "string"),
            (DataType::Int64, "long"),
            (DataType::Int32, "integer"),
            (DataType::Int16, "short"),
            (DataType::Int8, "byte"),
            (DataType::Float64, "double"),
            (DataType::Float32, "float"),
            (DataType::Boolean, "boolean"),
            (DataType::Binary, "binary"),
            (DataType::LargeBinary, "binary"),
            (DataType::Date32, "date"),
            (timestamp_type(), "timestamp"),
            (DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())), "timestamp"),
            (DataType::Timestamp(TimeUnit::Microsecond, None), "timestamp_ntz"),
            (DataType::Null, "null"),
            (DataType::Interval(IntervalUnit::MonthDayNano), "calendar_interval"),
            (DataType::Duration(TimeUnit::Microsecond), "day_time_interval"),
            (DataType::Decimal128(12, 2), "decimal"),
        ];
        for (arrow, spark) in cases {
            let kind = arrow_to_proto(&arrow).unwrap().kind.unwrap();
            let name = match kind {
                Kind::String(s) => {
                    assert_eq!(s.collation, UTF8_BINARY);
                    "string"
                }
                Kind::Long(_) => "long",
                Kind::Integer(_) => "integer",
                Kind::Short(_) => "short",
                Kind::Byte(_) => "byte",
                Kind::Double(_) => "double",
                Kind::Float(_) => "float",
                Kind::Boolean(_) => "boolean",
                Kind::Binary(_) => "binary",
                Kind::Date(_) => "date",
                Kind::Timestamp(_) => "timestamp",
                Kind::TimestampNtz(_) => "timestamp_ntz",
                Kind::Null(_) => "null",
                Kind::CalendarInterval(_) => "calendar_interval",
                Kind::DayTimeInterval(d) => {
                    assert_eq!((d.start_field, d.end_field), (Some(DAY), Some(SECOND)));
                    "day_time_interval"
                }
                Kind::Decimal(d) => {
                    assert_eq!((d.precision, d.scale), (Some(12), Some(2)));
                    "decimal"
                }
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(name, spark, "{arrow}");
        }
    }

    #[test]
    fn nested_arrow_types_keep_their_nullability() {
        let Kind::Array(a) = arrow_to_proto(&list(DataType::Utf8, false)).unwrap().kind.unwrap() else { panic!("not an array") };
        assert!(!a.contains_null);
        assert!(matches!(a.element_type.unwrap().kind, Some(Kind::String(_))));
        let large = DataType::LargeList(Arc::new(Field::new("item", DataType::Int64, true)));
        let Kind::Array(a) = arrow_to_proto(&large).unwrap().kind.unwrap() else { panic!("not an array") };
        assert!(a.contains_null);

        let Kind::Map(m) = arrow_to_proto(&map_of(DataType::Utf8, DataType::Int64, false)).unwrap().kind.unwrap() else {
            panic!("not a map")
        };
        assert!(!m.value_contains_null);
        assert!(matches!(m.key_type.unwrap().kind, Some(Kind::String(_))));
        assert!(matches!(m.value_type.unwrap().kind, Some(Kind::Long(_))));

        let Kind::Struct(s) = arrow_to_proto(&sample_struct()).unwrap().kind.unwrap() else { panic!("not a struct") };
        let names: Vec<_> = s.fields.iter().map(|f| (f.name.as_str(), f.nullable)).collect();
        assert_eq!(names, [("a", true), ("b c", false), ("d`e", true), ("m", true), ("ts", true)]);
        assert!(s.fields.iter().all(|f| f.metadata.is_none()));
    }

    #[test]
    fn a_schema_is_a_struct_of_its_columns() {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]);
        let Kind::Struct(s) = schema_to_proto(&schema).unwrap().kind.unwrap() else { panic!("not a struct") };
        assert_eq!(s.type_variation_reference, 0);
        assert_eq!(s.fields.len(), 2);
        assert_eq!((s.fields[0].name.as_str(), s.fields[0].nullable), ("id", false));
        assert!(matches!(s.fields[0].data_type.as_ref().unwrap().kind, Some(Kind::Long(_))));
        assert_eq!((s.fields[1].name.as_str(), s.fields[1].nullable), ("name", true));
        assert_eq!(s.fields[1].metadata, None);
    }

    #[test]
    fn unsupported_arrow_types_name_the_type() {
        for dt in [DataType::UInt32, DataType::Float16, DataType::Duration(TimeUnit::Second), DataType::Date64] {
            let e = arrow_to_proto(&dt).unwrap_err();
            assert_eq!(e.class, ExceptionClass::UnsupportedOperation);
            assert!(e.message.contains(&format!("the Arrow type {dt}")), "{}", e.message);
        }
        let bad_in_struct = DataType::Struct(Fields::from(vec![Field::new("u", DataType::UInt64, true)]));
        assert!(arrow_to_proto(&bad_in_struct).unwrap_err().message.contains("UInt64"));
    }

    #[test]
    fn proto_types_round_trip_through_arrow() {
        let types = [
            DataType::Null,
            DataType::Boolean,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(38, 10),
            DataType::Utf8,
            DataType::Binary,
            DataType::Date32,
            timestamp_type(),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Interval(IntervalUnit::MonthDayNano),
            DataType::Interval(IntervalUnit::YearMonth),
            DataType::Duration(TimeUnit::Microsecond),
            list(list(DataType::Int32, false), true),
            map_of(DataType::Utf8, DataType::Float64, false),
            sluice_common::types::map_type(DataType::Int32, DataType::Utf8),
            sample_struct(),
        ];
        for dt in types {
            assert_eq!(proto_to_arrow(&arrow_to_proto(&dt).unwrap()).unwrap(), dt);
        }
    }

    #[test]
    fn proto_types_use_sluices_arrow_layout() {
        // The same Arrow types sluice's SQL gives `CAST(x AS …)` and column declarations.
        let cases = [
            ("ARRAY<STRING>", list(DataType::Utf8, true)),
            ("MAP<STRING, BIGINT>", sluice_common::types::map_type(DataType::Utf8, DataType::Int64)),
            ("TIMESTAMP", timestamp_type()),
        ];
        for (sql, arrow) in cases {
            assert_eq!(sluice_common::types::parse_type(sql).unwrap(), arrow, "{sql}");
            assert_eq!(proto_to_arrow(&arrow_to_proto(&arrow).unwrap()).unwrap(), arrow, "{sql}");
        }
    }

    #[test]
    fn proto_only_types_map_to_arrow() {
        let char_ = of(Kind::Char(dt::Char { length: 3, type_variation_reference: 0 }));
        let varchar = of(Kind::VarChar(dt::VarChar { length: 3, type_variation_reference: 0 }));
        assert_eq!(proto_to_arrow(&char_).unwrap(), DataType::Utf8);
        assert_eq!(proto_to_arrow(&varchar).unwrap(), DataType::Utf8);
        // Spark's defaults: DECIMAL(10,0).
        let bare = of(Kind::Decimal(dt::Decimal::default()));
        assert_eq!(proto_to_arrow(&bare).unwrap(), DataType::Decimal128(10, 0));
        let default_string = of(Kind::String(dt::String::default()));
        assert_eq!(proto_to_arrow(&default_string).unwrap(), DataType::Utf8);
        let unparsed = |s: &str| of(Kind::Unparsed(dt::Unparsed { data_type_string: s.into() }));
        assert_eq!(proto_to_arrow(&unparsed("int")).unwrap(), DataType::Int32);
        assert_eq!(proto_to_arrow(&unparsed("array<string>")).unwrap(), list(DataType::Utf8, true));
        let DataType::Struct(f) = proto_to_arrow(&unparsed("a INT, b STRING NOT NULL")).unwrap() else { panic!("not a struct") };
        assert_eq!((f[1].name().as_str(), f[1].is_nullable()), ("b", false));
        assert_eq!(proto_to_arrow(&unparsed("nonsense type")).unwrap_err().class, ExceptionClass::Analysis);
    }

    #[test]
    fn unreadable_or_unsupported_proto_types_are_errors() {
        let no_kind = proto::DataType { kind: None };
        assert_eq!(proto_to_arrow(&no_kind).unwrap_err().class, ExceptionClass::InvalidPlanInput);
        let no_element = of(Kind::Array(Box::default()));
        assert_eq!(proto_to_arrow(&no_element).unwrap_err().class, ExceptionClass::InvalidPlanInput);
        assert_eq!(proto_to_sql(&no_element).unwrap_err().class, ExceptionClass::InvalidPlanInput);
        let untyped_field = of(Kind::Struct(dt::Struct {
            fields: vec![dt::StructField { name: "x".into(), ..Default::default() }],
            type_variation_reference: 0,
        }));
        assert!(proto_to_arrow(&untyped_field).unwrap_err().message.contains("'x'"));
        let lcase = of(Kind::String(dt::String { collation: "UTF8_LCASE".into(), type_variation_reference: 0 }));
        assert!(proto_to_arrow(&lcase).unwrap_err().message.contains("UTF8_LCASE"));
        assert!(proto_to_sql(&lcase).unwrap_err().message.contains("UTF8_LCASE"));
        let variant = of(Kind::Variant(dt::Variant::default()));
        assert_eq!(proto_to_arrow(&variant).unwrap_err().class, ExceptionClass::UnsupportedOperation);
        let udt =
            of(Kind::Udt(Box::new(dt::Udt { python_class: Some("pyspark.ml.linalg.VectorUDT".into()), ..Default::default() })));
        assert!(proto_to_arrow(&udt).unwrap_err().message.contains("VectorUDT"));
        for (p, s) in [(0, 0), (39, 0), (10, 11), (10, -1)] {
            let d = of(Kind::Decimal(dt::Decimal { precision: Some(p), scale: Some(s), type_variation_reference: 0 }));
            assert_eq!(proto_to_arrow(&d).unwrap_err().class, ExceptionClass::Analysis, "({p},{s})");
            assert_eq!(proto_to_sql(&d).unwrap_err().class, ExceptionClass::Analysis, "({p},{s})");
        }
    }

    #[test]
    fn proto_types_have_the_sql_names_sluice_reads() {
        let sql = |dt: &DataType| proto_to_sql(&arrow_to_proto(dt).unwrap()).unwrap();
        assert_eq!(sql(&DataType::Int64), "BIGINT");
        assert_eq!(sql(&DataType::Int8), "TINYINT");
        assert_eq!(sql(&DataType::Decimal128(12, 2)), "DECIMAL(12,2)");
        assert_eq!(sql(&DataType::Timestamp(TimeUnit::Microsecond, None)), "TIMESTAMP_NTZ");
        assert_eq!(
            sql(&sample_struct()),
            "STRUCT<`a`: INT, `b c`: STRING, `d``e`: ARRAY<DECIMAL(12,2)>, `m`: MAP<STRING, BIGINT>, `ts`: TIMESTAMP>"
        );
        let varchar = of(Kind::VarChar(dt::VarChar { length: 3, type_variation_reference: 0 }));
        assert_eq!(proto_to_sql(&varchar).unwrap(), "STRING");
        let unparsed = |s: &str| of(Kind::Unparsed(dt::Unparsed { data_type_string: s.into() }));
        assert_eq!(proto_to_sql(&unparsed("long")).unwrap(), "BIGINT");
        assert_eq!(proto_to_sql(&unparsed("a int, b varchar(3)")).unwrap(), "STRUCT<`a`: INT, `b`: STRING>");
        for dt in [DataType::Null, DataType::Interval(IntervalUnit::MonthDayNano), DataType::Duration(TimeUnit::Microsecond)] {
            assert_eq!(proto_to_sql(&arrow_to_proto(&dt).unwrap()).unwrap_err().class, ExceptionClass::UnsupportedOperation);
        }
    }

    #[test]
    fn sql_names_parse_back_to_the_same_arrow_types() {
        // Everything nullable: SQL types carry no nullability inside arrays, maps and structs.
        let types = [
            DataType::Boolean,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(38, 10),
            DataType::Utf8,
            DataType::Binary,
            DataType::Date32,
            timestamp_type(),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            list(list(DataType::Int32, true), true),
            sample_struct_all_nullable(),
        ];
        for dt in types {
            let text = proto_to_sql(&arrow_to_proto(&dt).unwrap()).unwrap();
            assert_eq!(sluice_common::types::parse_type(&text).unwrap(), dt, "{text}");
        }
    }

    fn sample_struct_all_nullable() -> DataType {
        let DataType::Struct(fields) = sample_struct() else { unreachable!() };
        DataType::Struct(fields.iter().map(|f| f.as_ref().clone().with_nullable(true)).collect())
    }

    #[test]
    fn identifiers_are_backtick_quoted() {
        assert_eq!(quote_ident("a"), "`a`");
        assert_eq!(quote_ident("a b.c"), "`a b.c`");
        assert_eq!(quote_ident("x`y"), "`x``y`");
        assert_eq!(quote_ident(""), "``");
    }

    #[test]
    fn struct_type_json_becomes_a_column_list() {
        let json = json!({"type": "struct", "fields": [
            {"name": "a", "type": "integer", "nullable": true, "metadata": {}},
            {"name": "id", "type": "long", "nullable": false, "metadata": {}},
            {"name": "s", "type": {"type": "struct", "fields": [
                {"name": "x", "type": "long", "nullable": true, "metadata": {}},
                {"name": "y z", "type": "decimal(10,2)", "nullable": false, "metadata": {}}
            ]}, "nullable": true, "metadata": {}},
            {"name": "arr", "type": {"type": "array", "elementType": "string", "containsNull": true}, "nullable": true, "metadata": {}},
            {"name": "m", "type": {"type": "map", "keyType": "string", "valueType": "long", "valueContainsNull": true}, "nullable": true, "metadata": {}},
            {"name": "t", "type": "timestamp", "nullable": true, "metadata": {}},
            {"name": "n`tz", "type": "timestamp_ntz", "nullable": true, "metadata": {}},
            {"name": "misc", "type": {"type": "array", "elementType": {"type": "array", "elementType": "short", "containsNull": false}, "containsNull": true}}
        ]});
        let ddl = schema_text_to_ddl(&format!("  {json}\n")).unwrap();
        assert_eq!(
            ddl,
            "`a` INT, `id` BIGINT NOT NULL, `s` STRUCT<`x`: BIGINT, `y z`: DECIMAL(10,2)>, `arr` ARRAY<STRING>, \
             `m` MAP<STRING, BIGINT>, `t` TIMESTAMP, `n``tz` TIMESTAMP_NTZ, `misc` ARRAY<ARRAY<SMALLINT>>"
        );
        // sluice reads it back as the schema the client declared.
        let schema = sluice_common::types::parse_ddl_schema(&ddl).unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["a", "id", "s", "arr", "m", "t", "n`tz", "misc"]);
        assert!(!schema.field(1).is_nullable());
        let DataType::Struct(s) = schema.field(2).data_type() else { panic!("not a struct") };
        assert_eq!(s[1].name(), "y z");
        assert_eq!(s[1].data_type(), &DataType::Decimal128(10, 2));
        assert_eq!(schema.field(6).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, None));
    }

    #[test]
    fn every_primitive_json_name_is_known() {
        let cases = [
            ("string", "STRING"),
            ("long", "BIGINT"),
            ("integer", "INT"),
            ("short", "SMALLINT"),
            ("byte", "TINYINT"),
            ("double", "DOUBLE"),
            ("float", "FLOAT"),
            ("boolean", "BOOLEAN"),
            ("binary", "BINARY"),
            ("date", "DATE"),
            ("timestamp", "TIMESTAMP"),
            ("timestamp_ntz", "TIMESTAMP_NTZ"),
            ("decimal(10,2)", "DECIMAL(10,2)"),
            ("decimal(38, 0)", "DECIMAL(38,0)"),
            ("decimal", "DECIMAL(10,0)"),
            ("char(3)", "STRING"),
            ("varchar(10)", "STRING"),
        ];
        for (name, sql) in cases {
            assert_eq!(spark_json_type_to_sql(&json!(name)).unwrap(), sql, "{name}");
            sluice_common::types::parse_type(sql).unwrap();
        }
        for unsupported in ["null", "void", "variant", "interval day to second", "string collate UTF8_LCASE"] {
            let e = spark_json_type_to_sql(&json!(unsupported)).unwrap_err();
            assert_eq!(e.class, ExceptionClass::UnsupportedOperation, "{unsupported}");
        }
    }

    #[test]
    fn a_ddl_string_is_returned_trimmed() {
        assert_eq!(schema_text_to_ddl("  a INT, b STRING \n").unwrap(), "a INT, b STRING");
        assert_eq!(schema_text_to_ddl("struct<a: int>").unwrap(), "struct<a: int>");
    }

    #[test]
    fn bad_schemas_name_the_offending_part() {
        let err = |text: &str| {
            let e = schema_text_to_ddl(text).unwrap_err();
            assert_eq!(e.class, ExceptionClass::Analysis, "{text}: {}", e.message);
            e.message
        };
        assert_eq!(
            err(r#"{"type":"struct","fields":[{"name":"a","type":"foo","nullable":true}]}"#),
            "invalid schema: unknown data type 'foo' for field 'a'"
        );
        assert!(err(
            r#"{"type":"struct","fields":[{"name":"s","type":{"type":"struct","fields":[{"name":"x","type":"int4"}]}}]}"#
        )
        .contains("'int4' for field 's.x'"));
        assert!(err(r#"{"type":"struct","fields":[{"name":"arr","type":{"type":"array"}}]}"#).contains("\"elementType\""));
        assert!(err(r#"{"type":"struct","fields":[{"name":"m","type":{"type":"map","keyType":"string"}}]}"#)
            .contains("\"valueType\" for field 'm'"));
        assert!(err(r#"{"type":"struct","fields":[{"name":"a"}]}"#).contains("no \"type\" for field 'a'"));
        assert!(err(r#"{"type":"struct","fields":[{"type":"long"}]}"#).contains("without a \"name\""));
        assert!(err(r#"{"type":"struct","fields":[{"name":"a","type":"long","nullable":"yes"}]}"#).contains("\"nullable\""));
        assert!(err(r#"{"type":"struct"}"#).contains("\"fields\""));
        assert!(err(r#"{"type":"array","elementType":"long"}"#).contains("top level"));
        assert!(err(r#"{"type":"struct","fields":[{"name":"a","type":"decimal(40,2)"}]}"#).contains("DECIMAL(40,2)"));
        assert!(err(r#"{"type":"struct","fields":[{"name":"a","type":"decimal(x)"}]}"#).contains("'decimal(x)'"));
        assert!(err(r#"{"type":"struct","fields":[{"name":"a","type":42}]}"#).contains("42"));
        assert!(err(r#"{"type":"struct","fields":[{"name":"a","type":{"type":"tuple"}}]}"#).contains("'tuple' for field 'a'"));
        assert!(err(r#"{"type":"struct","fields":[ oops"#).starts_with("invalid schema: "));
    }
}

//! Spark's parsing and formatting functions: `to_timestamp`, `to_date`, `date_format`,
//! `unix_seconds/millis/micros`, `unix_timestamp` and `from_json`, with Java datetime patterns
//! (`yyyy-MM-dd HH:mm:ss`) and Spark's JSON rules rather than chrono's and Arrow's.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_err, plan_err, Result as DFResult, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use sluice_common::options::Options;
use sluice_common::time::to_micros;
use sluice_common::types::{parse_ddl_schema, timestamp_type, UTC};
use sluice_formats::datetime::{string_to_date, string_to_timestamp, ReadFormats, WriteFormats};
use sluice_formats::json_read::{json_to_struct, JsonReadOptions};

fn literal_string(arg: Option<&ColumnarValue>, what: &str) -> DFResult<Option<String>> {
    match arg {
        None => Ok(None),
        Some(ColumnarValue::Scalar(ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s))) => Ok(s.clone()),
        Some(_) => exec_err!("the {what} must be a constant string"),
    }
}

/// An option map holding one datetime pattern, as the format readers and writers take them.
fn patterns(key: &str, fmt: &str) -> DFResult<Options> {
    Ok(Options::from_pairs([(key, fmt)]))
}

fn strings(arr: &ArrayRef) -> DFResult<ArrayRef> {
    Ok(cast(arr, &DataType::Utf8)?)
}

/// Which conversion a parsing function performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Parse {
    Timestamp,
    Date,
}

/// `to_timestamp(str[, fmt])` and `to_date(str[, fmt])` with Spark's lenient default parser or a
/// Java pattern; unparsable input is NULL (Spark's non-ANSI behaviour).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTemporal {
    kind: Parse,
    signature: Signature,
}

impl ToTemporal {
    /// `to_timestamp`.
    pub fn timestamp() -> Self {
        Self { kind: Parse::Timestamp, signature: Signature::user_defined(Volatility::Immutable) }
    }
    /// `to_date`.
    pub fn date() -> Self {
        Self { kind: Parse::Date, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ToTemporal {
    fn name(&self) -> &str {
        match self.kind {
            Parse::Timestamp => "to_timestamp",
            Parse::Date => "to_date",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        match arg_types {
            [t] | [t, _] if matches!(t, DataType::Timestamp(..) | DataType::Date32) => Ok(arg_types.to_vec()),
            [_] => Ok(vec![DataType::Utf8]),
            [_, _] => Ok(vec![DataType::Utf8, DataType::Utf8]),
            _ => plan_err!("{}() takes (string[, format])", self.name()),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(match self.kind {
            Parse::Timestamp => timestamp_type(),
            Parse::Date => DataType::Date32,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let target = self.return_type(&[])?;
        if matches!(input.data_type(), DataType::Timestamp(..) | DataType::Date32) {
            let arr: ArrayRef = match input.data_type() {
                DataType::Timestamp(..) => Arc::new(to_micros(&input)?.with_timezone(UTC)),
                _ => input,
            };
            return Ok(ColumnarValue::Array(cast(&arr, &target)?));
        }
        let fmt = literal_string(args.args.get(1), "format")?;
        let s = strings(&input)?;
        let s = s.as_string::<i32>();
        let out: ArrayRef = match (self.kind, fmt) {
            (Parse::Timestamp, None) => Arc::new(
                s.iter().map(|v| v.and_then(string_to_timestamp)).collect::<TimestampMicrosecondArray>().with_timezone(UTC),
            ),
            (Parse::Date, None) => Arc::new(s.iter().map(|v| v.and_then(string_to_date)).collect::<Date32Array>()),
            (Parse::Timestamp, Some(f)) => {
                let formats = ReadFormats::from_options(&patterns("timestampFormat", &f)?)?;
                Arc::new(
                    s.iter()
                        .map(|v| v.and_then(|v| formats.parse_timestamp(v)))
                        .collect::<TimestampMicrosecondArray>()
                        .with_timezone(UTC),
                )
            }
            (Parse::Date, Some(f)) => {
                let formats = ReadFormats::from_options(&patterns("dateFormat", &f)?)?;
                Arc::new(s.iter().map(|v| v.and_then(|v| formats.parse_date(v))).collect::<Date32Array>())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `date_format(ts, 'yyyy-MM-dd HH:mm')`: a timestamp as text with a Java pattern.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormat {
    signature: Signature,
}

impl Default for DateFormat {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        match arg_types {
            [DataType::Timestamp(..), _] => Ok(vec![arg_types[0].clone(), DataType::Utf8]),
            [DataType::Date32, _] => Ok(vec![timestamp_type(), DataType::Utf8]),
            [_, _] => Ok(vec![timestamp_type(), DataType::Utf8]),
            _ => plan_err!("date_format() takes (timestamp, format)"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let Some(fmt) = literal_string(args.args.get(1), "format")? else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        };
        let formats = WriteFormats::from_options(&patterns("timestampFormat", &fmt)?)?;
        let micros = to_micros(&input)?;
        let mut out = Vec::with_capacity(micros.len());
        for v in micros.iter() {
            out.push(match v {
                Some(m) => {
                    let mut s = String::new();
                    formats.format_timestamp(m, &mut s)?;
                    Some(s)
                }
                None => None,
            });
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `unix_seconds`, `unix_millis`, `unix_micros` (timestamp → BIGINT, flooring) and
/// `unix_timestamp(ts | string[, fmt])` (seconds).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UnixTime {
    name: &'static str,
    micros_per_unit: i64,
    signature: Signature,
}

impl UnixTime {
    /// A function named `name` returning units of `micros_per_unit` µs.
    pub fn new(name: &'static str, micros_per_unit: i64) -> Self {
        Self { name, micros_per_unit, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for UnixTime {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        match arg_types {
            [DataType::Timestamp(..)] => Ok(arg_types.to_vec()),
            [DataType::Date32] => Ok(vec![timestamp_type()]),
            [_] | [_, _] if self.name == "unix_timestamp" => Ok(arg_types.iter().map(|_| DataType::Utf8).collect()),
            _ => plan_err!("{}() takes a timestamp", self.name),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let micros: Vec<Option<i64>> = match input.data_type() {
            DataType::Timestamp(..) => to_micros(&input)?.iter().collect(),
            _ => {
                let fmt = literal_string(args.args.get(1), "format")?.unwrap_or_else(|| "yyyy-MM-dd HH:mm:ss".into());
                let formats = ReadFormats::from_options(&patterns("timestampFormat", &fmt)?)?;
                input.as_string::<i32>().iter().map(|v| v.and_then(|v| formats.parse_timestamp(v))).collect()
            }
        };
        let out: Int64Array = micros.into_iter().map(|m| m.map(|m| m.div_euclid(self.micros_per_unit))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `from_json(jsonStr, 'a INT, b STRING')`: parses JSON text into a struct with Spark's JSON
/// rules (PERMISSIVE: malformed input gives a struct of NULLs, not a failure).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FromJson {
    signature: Signature,
}

impl Default for FromJson {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

fn schema_arg(args: &[Option<&ScalarValue>]) -> DFResult<Fields> {
    match args.get(1) {
        Some(Some(ScalarValue::Utf8(Some(ddl)) | ScalarValue::LargeUtf8(Some(ddl)) | ScalarValue::Utf8View(Some(ddl)))) => {
            let schema = parse_ddl_schema(ddl).map_err(|e| datafusion::error::DataFusionError::Plan(e.message))?;
            Ok(schema.fields().clone())
        }
        _ => plan_err!("from_json() needs a schema as a constant string, e.g. from_json(col, 'a INT, b STRING')"),
    }
}

impl ScalarUDFImpl for FromJson {
    fn name(&self) -> &str {
        "from_json"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        match arg_types {
            [_, _] => Ok(vec![DataType::Utf8, DataType::Utf8]),
            _ => plan_err!("from_json() takes (jsonString, schema)"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        plan_err!("from_json's type depends on its schema argument")
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), DataType::Struct(schema_arg(args.scalar_arguments)?), true)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let DataType::Struct(fields) = args.return_type().clone() else { return exec_err!("from_json() must return a struct") };
        let input = strings(&args.args[0].to_array(args.number_rows)?)?;
        let opts = JsonReadOptions::from_options(&Options::new(), &[])?;
        let (structs, _malformed) = json_to_struct(input.as_string::<i32>(), &fields, &opts)?;
        Ok(ColumnarValue::Array(Arc::new(structs)))
    }
}

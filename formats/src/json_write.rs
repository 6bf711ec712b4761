//! Spark's JSON writer (`JacksonGenerator`): one compact object per row, then `\n`.
//!
//! Keys follow the schema order; null fields are left out (Spark's `ignoreNullFields=true`);
//! numbers are JSON numbers with Java's float digits and `BigDecimal.toString` for decimals;
//! NaN and infinities are quoted strings; dates and timestamps use the write patterns; binary is
//! base64; maps are objects whose keys are the key values' `toString`.

use arrow::array::{Array, AsArray, ListArray, MapArray, StructArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use base64::Engine;

use super::datetime::WriteFormats;
use super::decimal::big_decimal_to_string;
use super::json_text::{write_double, write_float, write_string};
use super::read_options::check_utf8;
use super::scalar::Scalar;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::types::spark_type_name as catalog_string;

/// Options of the JSON writer.
#[derive(Debug, Clone)]
pub struct JsonWriteOptions {
    formats: WriteFormats,
    ignore_null_fields: bool,
}

impl JsonWriteOptions {
    /// Parses `timestampFormat`, `timestampNTZFormat`, `dateFormat`, `ignoreNullFields`
    /// (default true) and `encoding` (UTF-8 only); `extra_valid` are keys the caller consumes.
    pub fn from_options(opts: &Options, extra_valid: &[&str]) -> Result<Self> {
        let owner = "JSON sink";
        let own = ["timestampFormat", "timestampNTZFormat", "dateFormat", "ignoreNullFields", "encoding", "charset"];
        let base = ["format", "path", "connector"];
        let valid: Vec<&str> = own.iter().chain(&base).chain(extra_valid).copied().collect();
        opts.check_known(&valid, owner)?;
        check_utf8(opts, owner)?;
        Ok(Self {
            formats: WriteFormats::from_options(opts)?,
            ignore_null_fields: opts.bool_or("ignoreNullFields", true, owner)?,
        })
    }
}

/// A column downcast once per batch.
enum Writer<'a> {
    Scalar(Scalar<'a>),
    List(&'a ListArray, Box<Writer<'a>>),
    /// Map arrays with their key and value columns.
    Map(&'a MapArray, Scalar<'a>, Box<Writer<'a>>),
    Struct(&'a StructArray, Vec<(&'a str, Writer<'a>)>),
}

impl<'a> Writer<'a> {
    fn new(array: &'a dyn Array) -> Result<Self> {
        let unsupported =
            || SluiceError::user(format!("JSON data source does not support {} data type", catalog_string(array.data_type())));
        Ok(match array.data_type() {
            DataType::List(_) => {
                let list = array.as_list_opt::<i32>().ok_or_else(unsupported)?;
                Self::List(list, Box::new(Writer::new(list.values().as_ref())?))
            }
            DataType::Map(..) => {
                let map = array.as_map_opt().ok_or_else(unsupported)?;
                let keys = Scalar::new(map.keys().as_ref()).ok_or_else(unsupported)?;
                Self::Map(map, keys, Box::new(Writer::new(map.values().as_ref())?))
            }
            DataType::Struct(fields) => {
                let st = array.as_struct_opt().ok_or_else(unsupported)?;
                let children = fields
                    .iter()
                    .zip(st.columns())
                    .map(|(f, c)| Ok((f.name().as_str(), Writer::new(c.as_ref())?)))
                    .collect::<Result<Vec<_>>>()?;
                Self::Struct(st, children)
            }
            _ => Self::Scalar(Scalar::new(array).ok_or_else(unsupported)?),
        })
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Self::Scalar(s) => s.is_null(i),
            Self::List(a, _) => a.is_null(i),
            Self::Map(a, ..) => a.is_null(i),
            Self::Struct(a, _) => a.is_null(i),
        }
    }
}

/// Per-batch state: options plus a reusable text buffer.
struct Ctx<'o> {
    opts: &'o JsonWriteOptions,
    text: String,
}

impl Ctx<'_> {
    /// Writes `{"name":value,...}` for row `i` of the given fields.
    fn fields(&mut self, fields: &[(&str, Writer<'_>)], i: usize, out: &mut Vec<u8>) -> Result<()> {
        out.push(b'{');
        let mut first = true;
        for (name, w) in fields {
            let null = w.is_null(i);
            if null && self.opts.ignore_null_fields {
                continue;
            }
            if !std::mem::replace(&mut first, false) {
                out.push(b',');
            }
            write_string(out, name);
            out.push(b':');
            if null {
                out.extend_from_slice(b"null");
            } else {
                self.value(w, i, out)?;
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// Writes value `i` (non-null) of `w`.
    fn value(&mut self, w: &Writer<'_>, i: usize, out: &mut Vec<u8>) -> Result<()> {
        match w {
            Writer::Scalar(s) => self.scalar(s, i, out)?,
            Writer::Struct(_, children) => self.fields(children, i, out)?,
            Writer::List(list, elements) => {
                let offsets = list.value_offsets();
                out.push(b'[');
                for j in offsets[i] as usize..offsets[i + 1] as usize {
                    if j > offsets[i] as usize {
                        out.push(b',');
                    }
                    self.nullable(elements, j, out)?;
                }
                out.push(b']');
            }
            Writer::Map(map, keys, values) => {
                let offsets = map.value_offsets();
                out.push(b'{');
                for j in offsets[i] as usize..offsets[i + 1] as usize {
                    if j > offsets[i] as usize {
                        out.push(b',');
                    }
                    // Spark writes the key's internal value's `toString` (dates as day numbers).
                    self.text.clear();
                    keys.text(j, None, &mut self.text)?;
                    write_string(out, &self.text);
                    out.push(b':');
                    self.nullable(values, j, out)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }

    /// Array elements and map values are written as `null` when null.
    fn nullable(&mut self, w: &Writer<'_>, j: usize, out: &mut Vec<u8>) -> Result<()> {
        if w.is_null(j) {
            out.extend_from_slice(b"null");
            Ok(())
        } else {
            self.value(w, j, out)
        }
    }

    fn scalar(&mut self, s: &Scalar<'_>, i: usize, out: &mut Vec<u8>) -> Result<()> {
        match s {
            Scalar::Null => out.extend_from_slice(b"null"),
            Scalar::Bool(a) => out.extend_from_slice(if a.value(i) { b"true" } else { b"false" }),
            Scalar::F32(a) => write_float(out, a.value(i)),
            Scalar::F64(a) => write_double(out, a.value(i)),
            Scalar::Decimal(a, scale) => out.extend_from_slice(big_decimal_to_string(a.value(i), *scale).as_bytes()),
            Scalar::Str(a) => write_string(out, a.value(i)),
            Scalar::Binary(a) => write_string(out, &base64::engine::general_purpose::STANDARD.encode(a.value(i))),
            Scalar::I8(_) | Scalar::I16(_) | Scalar::I32(_) | Scalar::I64(_) => {
                self.text.clear();
                s.text(i, None, &mut self.text)?;
                out.extend_from_slice(self.text.as_bytes());
            }
            Scalar::Date(_) | Scalar::Timestamp(..) => {
                self.text.clear();
                s.text(i, Some(&self.opts.formats), &mut self.text)?;
                write_string(out, &self.text);
            }
        }
        Ok(())
    }
}

/// Appends each row of `batch` as a JSON object followed by `\n`.
pub fn write_json_lines(batch: &RecordBatch, opts: &JsonWriteOptions, out: &mut Vec<u8>) -> Result<()> {
    let schema = batch.schema();
    let fields = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            Writer::new(c.as_ref())
                .map(|w| (f.name().as_str(), w))
                .map_err(|e| SluiceError::user(format!("{} (column '{}').", e.message, f.name())))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut ctx = Ctx { opts, text: String::new() };
    for i in 0..batch.num_rows() {
        ctx.fields(&fields, i, out)?;
        out.push(b'\n');
    }
    Ok(())
}

#[cfg(test)]
#[path = "json_write_tests.rs"]
mod tests;

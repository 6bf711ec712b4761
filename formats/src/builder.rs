//! Arrow column builders that can roll back.
//!
//! Spark keeps the good fields of a malformed record and nulls the bad ones, and it drops whole
//! records in DROPMALFORMED mode; a record often turns out bad only after some of its values were
//! appended. Arrow's builders cannot shrink, so these Vec-backed builders add `truncate(len)` —
//! which also cleans up values half-appended by a failed nested conversion — and hand their
//! buffers to Arrow without copying when finished.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, BooleanBufferBuilder, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, Int8Array, ListArray, MapArray, NullArray, NullBufferBuilder, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, DataType, FieldRef, Fields, TimeUnit};

use sluice_common::error::{Result, SluiceError};

/// `ratio` times `len`, the room [`ColumnBuilder::reserve_scaled`] makes.
fn scaled(len: usize, ratio: f64) -> usize {
    (len as f64 * ratio) as usize
}

/// Finishes a validity bitmap, omitting it when every slot is valid (Arrow's convention).
///
/// Validity is kept by Arrow's [`NullBufferBuilder`], which only counts valid slots until the
/// first null: most decoded columns have none, so appending a value writes no bit.
fn finish_nulls(valid: &mut NullBufferBuilder) -> Option<NullBuffer> {
    valid.finish().filter(|nulls| nulls.null_count() > 0)
}

/// Fails if a column's data (`end` bytes or elements) outgrew 32-bit offsets.
fn fits_offsets(end: usize) -> Result<()> {
    match i32::try_from(end) {
        Ok(_) => Ok(()),
        Err(_) => Err(SluiceError::user("a decoded batch holds more than 2 GiB of string or list data in one column")),
    }
}

/// Converts offsets collected as `usize` lengths, failing if a batch outgrew 32-bit offsets.
fn finish_offsets(offsets: &mut Vec<i32>, end: usize) -> Result<OffsetBuffer<i32>> {
    fits_offsets(end)?;
    Ok(OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0]))))
}

/// A fixed-width column: values plus validity.
pub(crate) struct Prim<T: ArrowNativeType> {
    values: Vec<T>,
    valid: NullBufferBuilder,
}

impl<T: ArrowNativeType> Prim<T> {
    fn new() -> Self {
        Self { values: Vec::new(), valid: NullBufferBuilder::new(0) }
    }

    /// Appends a non-null value.
    #[inline]
    pub(crate) fn push(&mut self, v: T) {
        self.values.push(v);
        self.valid.append_non_null();
    }

    fn push_null(&mut self) {
        self.values.push(T::default());
        self.valid.append_null();
    }

    fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.valid.truncate(len);
    }

    fn reserve_scaled(&mut self, ratio: f64) {
        self.values.reserve(scaled(self.values.len(), ratio));
    }

    fn take(&mut self) -> (ScalarBuffer<T>, Option<NullBuffer>) {
        (ScalarBuffer::from(std::mem::take(&mut self.values)), finish_nulls(&mut self.valid))
    }
}

/// A boolean column.
pub(crate) struct BoolCol {
    values: BooleanBufferBuilder,
    valid: NullBufferBuilder,
}

impl BoolCol {
    /// Appends a non-null value.
    pub(crate) fn push(&mut self, v: bool) {
        self.values.append(v);
        self.valid.append_non_null();
    }
}

/// A variable-length column (STRING or BINARY): concatenated bytes plus offsets.
pub(crate) struct Bytes {
    offsets: Vec<i32>,
    data: Vec<u8>,
    valid: NullBufferBuilder,
}

impl Bytes {
    /// An empty column.
    pub(crate) fn new() -> Self {
        Self { offsets: vec![0], data: Vec::new(), valid: NullBufferBuilder::new(0) }
    }

    /// Appends a non-null value.
    #[inline]
    pub(crate) fn push(&mut self, v: &[u8]) {
        self.data.extend_from_slice(v);
        self.commit();
    }

    /// Ends the value whose bytes follow the last committed one in `data`.
    #[inline]
    fn commit(&mut self) {
        // Wraps past 2 GiB; `finish` detects that from the data length.
        self.offsets.push(self.data.len() as i32);
        self.valid.append_non_null();
    }

    /// Appends a null.
    pub(crate) fn push_null(&mut self) {
        self.offsets.push(self.data.len() as i32);
        self.valid.append_null();
    }

    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Drops every value from `len` on, and any uncommitted bytes.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.valid.truncate(len);
        let end = self.offsets.last().map_or(0, |&o| o as usize);
        self.data.truncate(end);
    }

    fn reserve_scaled(&mut self, ratio: f64) {
        self.offsets.reserve(scaled(self.len(), ratio));
        self.data.reserve(scaled(self.data.len(), ratio));
    }

    /// The buffers, leaving the column empty. The offsets are not checked again, as Arrow's
    /// checked constructor would in a pass over all of them (2.6% of a JSON decode's profile).
    fn take(&mut self) -> Result<(OffsetBuffer<i32>, Buffer, Option<NullBuffer>)> {
        fits_offsets(self.data.len())?;
        let offsets = ScalarBuffer::from(std::mem::replace(&mut self.offsets, vec![0]));
        // SAFETY: the offsets start at 0 (`new`, and here) and each is `data.len()` after a value
        // was appended, which only grows until `truncate` cuts offsets and data back together;
        // so they never decrease, and none is past `data.len()`, which fits an i32 (checked
        // above), so none wrapped.
        let offsets = unsafe { OffsetBuffer::new_unchecked(offsets) };
        let data = Buffer::from_vec(std::mem::take(&mut self.data));
        Ok((offsets, data, finish_nulls(&mut self.valid)))
    }
}

/// A STRING column: [`Bytes`] that only ever takes UTF-8 text, so finishing it need not
/// validate every byte again, as Arrow's checked constructor would: the readers' text was
/// validated once already, as a whole, when it was read.
pub(crate) struct Utf8Col(Bytes);

impl Utf8Col {
    /// An empty column.
    pub(crate) fn new() -> Self {
        Self(Bytes::new())
    }

    /// Appends a non-null value.
    #[inline]
    pub(crate) fn push(&mut self, v: &str) {
        self.0.push(v.as_bytes());
    }

    /// Appends the value `write` adds to the end of the column's bytes (text produced in place,
    /// such as Spark's JSON text of a non-string value). If `write` fails, or what it wrote is not
    /// UTF-8 (`not_text`), nothing is appended.
    pub(crate) fn push_written<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> std::result::Result<(), E>,
        not_text: E,
    ) -> std::result::Result<(), E> {
        let start = self.0.data.len();
        let written = write(&mut self.0.data).and_then(|()| match std::str::from_utf8(&self.0.data[start..]) {
            Ok(_) => Ok(()),
            Err(_) => Err(not_text),
        });
        match written {
            Ok(()) => self.0.commit(),
            Err(_) => self.0.data.truncate(start),
        }
        written
    }

    /// Appends a null.
    pub(crate) fn push_null(&mut self) {
        self.0.push_null();
    }

    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Drops every value from `len` on.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    fn reserve_scaled(&mut self, ratio: f64) {
        self.0.reserve_scaled(ratio);
    }

    /// Hands the buffers to a STRING array and leaves the column empty.
    pub(crate) fn finish(&mut self) -> Result<StringArray> {
        let (offsets, data, nulls) = self.0.take()?;
        // SAFETY: every value was appended from a `&str` or checked to be UTF-8 (`push_written`),
        // and the offsets are the ends of those values in `data` (pushed as `data.len()` after
        // each value, cut back only to such ends by `truncate`; `take` refuses lengths past i32),
        // so every slice between consecutive offsets is valid UTF-8.
        Ok(unsafe { StringArray::new_unchecked(offsets, data, nulls) })
    }
}

/// An ARRAY column: offsets into one child column.
pub(crate) struct ListCol {
    field: FieldRef,
    offsets: Vec<i32>,
    /// The element column.
    pub(crate) child: ColumnBuilder,
    valid: NullBufferBuilder,
}

impl ListCol {
    /// Ends the list whose elements were just appended to `child`.
    pub(crate) fn commit(&mut self) {
        self.offsets.push(self.child.len() as i32);
        self.valid.append_non_null();
    }
}

/// A MAP column with string keys: offsets into parallel key and value columns.
pub(crate) struct MapCol {
    entries: FieldRef,
    offsets: Vec<i32>,
    /// Entry keys (never null).
    pub(crate) keys: Utf8Col,
    /// Entry values.
    pub(crate) values: ColumnBuilder,
    valid: NullBufferBuilder,
}

impl MapCol {
    /// Ends the map whose entries were just appended.
    pub(crate) fn commit(&mut self) {
        self.offsets.push(self.keys.len() as i32);
        self.valid.append_non_null();
    }
}

/// A STRUCT column, also used for the top-level row.
pub(crate) struct StructCol {
    fields: Fields,
    /// One builder per field, in schema order.
    pub(crate) children: Vec<ColumnBuilder>,
    valid: NullBufferBuilder,
    /// Number of rows: `valid.len()`, kept here because Arrow's `len` is not inlined across
    /// crates and decoders ask for it once per row.
    rows: usize,
    index: HashMap<Box<str>, usize>,
    /// Per field, whether JSON decoding may match its name against a key's raw bytes
    /// ([`super::json_lexer::plain_key`]).
    plain: Vec<bool>,
    /// Scratch for decoders: which fields the object being decoded has set.
    pub(crate) seen: Vec<bool>,
}

impl StructCol {
    /// Builders for `fields`, or the first unsupported field type.
    pub(crate) fn new(fields: Fields) -> std::result::Result<Self, DataType> {
        let children = fields.iter().map(|f| ColumnBuilder::new(f.data_type())).collect::<std::result::Result<Vec<_>, _>>()?;
        let mut index = HashMap::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            // Like Spark's `getFieldIndex`, the first of two equally named fields wins.
            index.entry(f.name().as_str().into()).or_insert(i);
        }
        let seen = vec![false; fields.len()];
        let plain = fields.iter().map(|f| super::json_lexer::plain_key(f.name())).collect();
        Ok(Self { fields, children, valid: NullBufferBuilder::new(0), rows: 0, index, plain, seen })
    }

    /// The name of field `i` if keys can be matched against it in place (see `plain`).
    pub(crate) fn plain_name(&self, i: usize) -> Option<&str> {
        self.fields.get(i).filter(|_| self.plain.get(i) == Some(&true)).map(|f| f.name().as_str())
    }

    /// The index of field `name` (case-sensitive, as Spark's JSON reader); `hint` is tried first
    /// because JSON producers usually write keys in schema order.
    pub(crate) fn field_index(&self, name: &str, hint: usize) -> Option<usize> {
        match self.fields.get(hint) {
            Some(f) if f.name() == name => Some(hint),
            _ => self.index.get(name).copied(),
        }
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Ends a row whose fields were each appended to `children`.
    pub(crate) fn commit(&mut self) {
        self.valid.append_non_null();
        self.rows += 1;
    }

    /// Appends a valid row whose fields are all null (Spark's result for an unparsable record).
    pub(crate) fn push_null_fields(&mut self) {
        for c in &mut self.children {
            c.push_null();
        }
        self.commit();
    }

    /// Appends a null struct.
    pub(crate) fn push_null(&mut self) {
        for c in &mut self.children {
            c.push_null();
        }
        self.valid.append_null();
        self.rows += 1;
    }

    /// Drops every row from `len` on.
    pub(crate) fn truncate(&mut self, len: usize) {
        for c in &mut self.children {
            c.truncate(len);
        }
        self.valid.truncate(len);
        self.rows = self.rows.min(len);
    }

    /// [`ColumnBuilder::reserve_scaled`] for every field.
    pub(crate) fn reserve_scaled(&mut self, ratio: f64) {
        for c in &mut self.children {
            c.reserve_scaled(ratio);
        }
    }

    /// Finishes the children and the struct's own validity, for callers that reassemble them.
    pub(crate) fn finish_parts(&mut self) -> Result<(Vec<ArrayRef>, Option<NullBuffer>)> {
        let arrays = self.children.iter_mut().map(ColumnBuilder::finish).collect::<Result<Vec<_>>>()?;
        self.rows = 0;
        Ok((arrays, finish_nulls(&mut self.valid)))
    }

    fn finish(&mut self) -> Result<StructArray> {
        let len = self.len();
        let (arrays, nulls) = self.finish_parts()?;
        Ok(StructArray::try_new_with_length(self.fields.clone(), arrays, nulls, len)?)
    }
}

/// A builder for one column of any type the readers support; each variant is named after the
/// Arrow type it builds (the Arrow form of the Spark type, fixed by the rest of sluice).
pub(crate) enum ColumnBuilder {
    /// Spark's NullType: every value is null.
    Null(usize),
    Boolean(BoolCol),
    Int8(Prim<i8>),
    Int16(Prim<i16>),
    Int32(Prim<i32>),
    Int64(Prim<i64>),
    Float32(Prim<f32>),
    Float64(Prim<f64>),
    Date32(Prim<i32>),
    /// Microseconds; the time zone is `None` for TIMESTAMP_NTZ.
    Timestamp(Prim<i64>, Option<Arc<str>>),
    /// Unscaled values with precision and scale.
    Decimal(Prim<i128>, u8, i8),
    Utf8(Utf8Col),
    Binary(Bytes),
    List(Box<ListCol>),
    Map(Box<MapCol>),
    Struct(StructCol),
}

impl ColumnBuilder {
    /// A builder for `dt`, or the (possibly nested) type that is not supported.
    pub(crate) fn new(dt: &DataType) -> std::result::Result<Self, DataType> {
        let prim_valid = || NullBufferBuilder::new(0);
        Ok(match dt {
            DataType::Null => Self::Null(0),
            DataType::Boolean => Self::Boolean(BoolCol { values: BooleanBufferBuilder::new(0), valid: prim_valid() }),
            DataType::Int8 => Self::Int8(Prim::new()),
            DataType::Int16 => Self::Int16(Prim::new()),
            DataType::Int32 => Self::Int32(Prim::new()),
            DataType::Int64 => Self::Int64(Prim::new()),
            DataType::Float32 => Self::Float32(Prim::new()),
            DataType::Float64 => Self::Float64(Prim::new()),
            DataType::Date32 => Self::Date32(Prim::new()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => Self::Timestamp(Prim::new(), tz.clone()),
            DataType::Decimal128(p, s) => Self::Decimal(Prim::new(), *p, *s),
            DataType::Utf8 => Self::Utf8(Utf8Col::new()),
            DataType::Binary => Self::Binary(Bytes::new()),
            DataType::List(field) => Self::List(Box::new(ListCol {
                field: field.clone(),
                offsets: vec![0],
                child: Self::new(field.data_type())?,
                valid: prim_valid(),
            })),
            DataType::Map(entries, false) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 && kv[0].data_type() == &DataType::Utf8 => Self::Map(Box::new(MapCol {
                    entries: entries.clone(),
                    offsets: vec![0],
                    keys: Utf8Col::new(),
                    values: Self::new(kv[1].data_type())?,
                    valid: prim_valid(),
                })),
                _ => return Err(dt.clone()),
            },
            DataType::Struct(fields) => Self::Struct(StructCol::new(fields.clone())?),
            other => return Err(other.clone()),
        })
    }

    /// Number of values appended.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Null(n) => *n,
            Self::Boolean(c) => c.valid.len(),
            Self::Int8(c) => c.values.len(),
            Self::Int16(c) => c.values.len(),
            Self::Int32(c) | Self::Date32(c) => c.values.len(),
            Self::Int64(c) | Self::Timestamp(c, _) => c.values.len(),
            Self::Float32(c) => c.values.len(),
            Self::Float64(c) => c.values.len(),
            Self::Decimal(c, ..) => c.values.len(),
            Self::Utf8(c) => c.len(),
            Self::Binary(c) => c.len(),
            Self::List(c) => c.valid.len(),
            Self::Map(c) => c.valid.len(),
            Self::Struct(c) => c.len(),
        }
    }

    /// Appends a null.
    pub(crate) fn push_null(&mut self) {
        match self {
            Self::Null(n) => *n += 1,
            Self::Boolean(c) => {
                c.values.append(false);
                c.valid.append_null();
            }
            Self::Int8(c) => c.push_null(),
            Self::Int16(c) => c.push_null(),
            Self::Int32(c) | Self::Date32(c) => c.push_null(),
            Self::Int64(c) | Self::Timestamp(c, _) => c.push_null(),
            Self::Float32(c) => c.push_null(),
            Self::Float64(c) => c.push_null(),
            Self::Decimal(c, ..) => c.push_null(),
            Self::Utf8(c) => c.push_null(),
            Self::Binary(c) => c.push_null(),
            Self::List(c) => {
                c.offsets.push(c.child.len() as i32);
                c.valid.append_null();
            }
            Self::Map(c) => {
                c.offsets.push(c.keys.len() as i32);
                c.valid.append_null();
            }
            Self::Struct(c) => c.push_null(),
        }
    }

    /// Drops every value from `len` on, including half-appended nested values.
    pub(crate) fn truncate(&mut self, len: usize) {
        match self {
            Self::Null(n) => *n = (*n).min(len),
            Self::Boolean(c) => {
                c.values.truncate(len);
                c.valid.truncate(len);
            }
            Self::Int8(c) => c.truncate(len),
            Self::Int16(c) => c.truncate(len),
            Self::Int32(c) | Self::Date32(c) => c.truncate(len),
            Self::Int64(c) | Self::Timestamp(c, _) => c.truncate(len),
            Self::Float32(c) => c.truncate(len),
            Self::Float64(c) => c.truncate(len),
            Self::Decimal(c, ..) => c.truncate(len),
            Self::Utf8(c) => c.truncate(len),
            Self::Binary(c) => c.truncate(len),
            Self::List(c) => {
                c.offsets.truncate(len + 1);
                c.valid.truncate(len);
                c.child.truncate(c.offsets.last().map_or(0, |&o| o as usize));
            }
            Self::Map(c) => {
                c.offsets.truncate(len + 1);
                c.valid.truncate(len);
                let end = c.offsets.last().map_or(0, |&o| o as usize);
                c.keys.truncate(end);
                c.values.truncate(end);
            }
            Self::Struct(c) => c.truncate(len),
        }
    }

    /// Makes room, in one step, for `ratio` times the values the column holds now (nested
    /// values included). A decoder that has read part of its input sizes the columns for the
    /// rest so: grown by doubling instead, each growth copies the column into fresh memory,
    /// which was about 5% of JSON decoding in a profile (the copies and their page faults).
    pub(crate) fn reserve_scaled(&mut self, ratio: f64) {
        match self {
            Self::Null(_) => {}
            Self::Boolean(c) => c.values.reserve(scaled(c.values.len(), ratio)),
            Self::Int8(c) => c.reserve_scaled(ratio),
            Self::Int16(c) => c.reserve_scaled(ratio),
            Self::Int32(c) | Self::Date32(c) => c.reserve_scaled(ratio),
            Self::Int64(c) | Self::Timestamp(c, _) => c.reserve_scaled(ratio),
            Self::Float32(c) => c.reserve_scaled(ratio),
            Self::Float64(c) => c.reserve_scaled(ratio),
            Self::Decimal(c, ..) => c.reserve_scaled(ratio),
            Self::Utf8(c) => c.reserve_scaled(ratio),
            Self::Binary(c) => c.reserve_scaled(ratio),
            Self::List(c) => {
                c.offsets.reserve(scaled(c.offsets.len() - 1, ratio));
                c.child.reserve_scaled(ratio);
            }
            Self::Map(c) => {
                c.offsets.reserve(scaled(c.offsets.len() - 1, ratio));
                c.keys.reserve_scaled(ratio);
                c.values.reserve_scaled(ratio);
            }
            Self::Struct(c) => c.reserve_scaled(ratio),
        }
    }

    /// Hands the buffers to an Arrow array and leaves the builder empty.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match self {
            Self::Null(n) => Arc::new(NullArray::new(std::mem::take(n))),
            Self::Boolean(c) => Arc::new(BooleanArray::new(c.values.finish(), finish_nulls(&mut c.valid))),
            Self::Int8(c) => {
                let (v, n) = c.take();
                Arc::new(Int8Array::new(v, n))
            }
            Self::Int16(c) => {
                let (v, n) = c.take();
                Arc::new(Int16Array::new(v, n))
            }
            Self::Int32(c) => {
                let (v, n) = c.take();
                Arc::new(Int32Array::new(v, n))
            }
            Self::Int64(c) => {
                let (v, n) = c.take();
                Arc::new(Int64Array::new(v, n))
            }
            Self::Float32(c) => {
                let (v, n) = c.take();
                Arc::new(Float32Array::new(v, n))
            }
            Self::Float64(c) => {
                let (v, n) = c.take();
                Arc::new(Float64Array::new(v, n))
            }
            Self::Date32(c) => {
                let (v, n) = c.take();
                Arc::new(Date32Array::new(v, n))
            }
            Self::Timestamp(c, tz) => {
                let (v, n) = c.take();
                Arc::new(TimestampMicrosecondArray::new(v, n).with_timezone_opt(tz.clone()))
            }
            Self::Decimal(c, p, s) => {
                let (v, n) = c.take();
                Arc::new(Decimal128Array::new(v, n).with_precision_and_scale(*p, *s)?)
            }
            Self::Utf8(c) => Arc::new(c.finish()?),
            Self::Binary(c) => {
                let (offsets, data, nulls) = c.take()?;
                Arc::new(BinaryArray::try_new(offsets, data, nulls)?)
            }
            Self::List(c) => {
                let child = c.child.finish()?;
                let offsets = finish_offsets(&mut c.offsets, child.len())?;
                let nulls = finish_nulls(&mut c.valid);
                Arc::new(ListArray::try_new(c.field.clone(), offsets, child, nulls)?)
            }
            Self::Map(c) => {
                let keys: ArrayRef = Arc::new(c.keys.finish()?);
                let values = c.values.finish()?;
                let offsets = finish_offsets(&mut c.offsets, keys.len())?;
                let DataType::Struct(kv) = c.entries.data_type() else {
                    return Err(SluiceError::internal("map entries are not a struct"));
                };
                let entries = StructArray::try_new(kv.clone(), vec![keys, values], None)?;
                let nulls = finish_nulls(&mut c.valid);
                Arc::new(MapArray::try_new(c.entries.clone(), offsets, entries, nulls, false)?)
            }
            Self::Struct(c) => Arc::new(c.finish()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Int32Type};

    #[test]
    fn truncate_rolls_back_half_appended_nested_values() {
        let item = Arc::new(Field::new("element", DataType::Int32, true));
        let mut b = ColumnBuilder::new(&DataType::List(item)).unwrap();
        let ColumnBuilder::List(l) = &mut b else { panic!() };
        if let ColumnBuilder::Int32(c) = &mut l.child {
            c.push(1);
            c.push(2);
        }
        l.commit();
        // A second list that fails halfway: one element appended, never committed.
        if let ColumnBuilder::Int32(c) = &mut l.child {
            c.push(3);
        }
        b.truncate(1);
        b.push_null();
        let a = b.finish().unwrap();
        let list = a.as_list::<i32>();
        assert_eq!(list.len(), 2);
        assert_eq!(list.value(0).as_primitive::<Int32Type>().values(), &[1, 2]);
        assert!(list.is_null(1));
        assert_eq!(list.values().len(), 2);
    }

    #[test]
    fn strings_keep_only_whole_utf8_values() {
        let mut s = Utf8Col::new();
        s.push("ab");
        // A writer that fails halfway, and one that writes bytes that are not UTF-8, add nothing.
        let failed = s.push_written(
            |out| {
                out.extend_from_slice(b"garb");
                Err("failed")
            },
            "not text",
        );
        assert_eq!(failed, Err("failed"));
        let write = |bytes: &'static [u8]| {
            move |out: &mut Vec<u8>| {
                out.extend_from_slice(bytes);
                Ok(())
            }
        };
        assert_eq!(s.push_written(write(&[b'x', 0xff]), "not text"), Err("not text"));
        s.push_written(write("[1,\"é\"]".as_bytes()), "not text").unwrap();
        s.push("dropped");
        s.truncate(2);
        s.push("c");
        let a = s.finish().unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![Some("ab"), Some("[1,\"é\"]"), Some("c")]);
        // What the unchecked constructor was spared, the checked one confirms.
        assert!(StringArray::try_new(a.offsets().clone(), a.values().clone(), None).is_ok());
    }

    #[test]
    fn unsupported_types_are_reported() {
        assert_eq!(ColumnBuilder::new(&DataType::LargeUtf8).err(), Some(DataType::LargeUtf8));
    }
}

//! One state partition's contents in memory: key → value, with an eviction-time index and a
//! record of what changed since the last commit.
//!
//! Keys and values are held in Arrow's row format (`arrow-row`), compact and hashable, so any
//! combination of key columns — window structs, strings, numbers — works without per-type code.
//! Every entry may carry an *eviction time* (µs): the event time after which the watermark lets
//! it go (a window's end, a timestamp key, a dedup entry's expiry). The index over it makes
//! "remove everything at or below the watermark" a range scan instead of a full scan.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};

use crate::error::{Result, SluiceError};

/// Hash maps over row-format keys. The standard library's SipHash resists hash flooding by
/// hostile keys but was the top hot spot of stateful queries (14% of a dedup → window run, in
/// `put`); foldhash is much faster on short byte keys, and state keys come from the query.
type RowMap<V> = HashMap<OwnedRow, V, foldhash::fast::RandomState>;

/// Column holding an entry's eviction time in state files.
pub const EVICT_AT_COLUMN: &str = "__evict_at";
/// Column marking removals in delta files.
pub const DELETED_COLUMN: &str = "__deleted";

/// A stored value and when the watermark evicts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: OwnedRow,
    /// Event time (µs) at or below which the watermark removes this entry.
    pub evict_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Upsert,
    Remove,
}

/// Keyed state of one partition.
#[derive(Debug)]
pub struct KeyedState {
    key_schema: SchemaRef,
    value_schema: SchemaRef,
    keys: RowConverter,
    values: RowConverter,
    map: RowMap<Entry>,
    evict_index: BTreeSet<(i64, OwnedRow)>,
    changes: RowMap<Change>,
    bytes: usize,
}

fn converter(schema: &Schema) -> Result<RowConverter> {
    let fields = if schema.fields().is_empty() {
        // A value-less state (dedup) still needs a row per key; one boolean stands in.
        vec![SortField::new(DataType::Boolean)]
    } else {
        schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect()
    };
    Ok(RowConverter::new(fields)?)
}

impl KeyedState {
    /// Empty state for the given key and value columns.
    pub fn new(key_schema: SchemaRef, value_schema: SchemaRef) -> Result<Self> {
        Ok(Self {
            keys: converter(&key_schema)?,
            values: converter(&value_schema)?,
            key_schema,
            value_schema,
            map: RowMap::default(),
            evict_index: BTreeSet::new(),
            changes: RowMap::default(),
            bytes: 0,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Approximate memory held by keys and values.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// Encodes key columns to rows (`num_rows` is needed for key-less state: a global
    /// aggregation has one group with the empty key).
    pub fn encode_keys(&self, columns: &[ArrayRef], num_rows: usize) -> Result<Rows> {
        if self.key_schema.fields().is_empty() {
            let dummy: ArrayRef = Arc::new(BooleanArray::from(vec![true; num_rows]));
            return Ok(self.keys.convert_columns(&[dummy])?);
        }
        Ok(self.keys.convert_columns(columns)?)
    }

    /// Encodes value columns to rows (`num_rows` is needed for value-less state).
    pub fn encode_values(&self, columns: &[ArrayRef], num_rows: usize) -> Result<Rows> {
        if self.value_schema.fields().is_empty() {
            let dummy: ArrayRef = Arc::new(BooleanArray::from(vec![true; num_rows]));
            return Ok(self.values.convert_columns(&[dummy])?);
        }
        Ok(self.values.convert_columns(columns)?)
    }

    /// The entry for `key`.
    pub fn get(&self, key: &OwnedRow) -> Option<&Entry> {
        self.map.get(key)
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &OwnedRow) -> bool {
        self.map.contains_key(key)
    }

    /// Inserts or replaces `key`.
    pub fn put(&mut self, key: OwnedRow, value: OwnedRow, evict_at: Option<i64>) {
        let added = key.as_ref().len() + value.as_ref().len() + 48;
        if let Some(old) = self.map.insert(key.clone(), Entry { value, evict_at }) {
            self.bytes = self.bytes.saturating_sub(key.as_ref().len() + old.value.as_ref().len() + 48);
            if let Some(t) = old.evict_at {
                self.evict_index.remove(&(t, key.clone()));
            }
        }
        self.bytes += added;
        if let Some(t) = evict_at {
            self.evict_index.insert((t, key.clone()));
        }
        self.changes.insert(key, Change::Upsert);
    }

    /// Removes `key`, returning its entry.
    pub fn remove(&mut self, key: &OwnedRow) -> Option<Entry> {
        let old = self.map.remove(key)?;
        self.bytes = self.bytes.saturating_sub(key.as_ref().len() + old.value.as_ref().len() + 48);
        if let Some(t) = old.evict_at {
            self.evict_index.remove(&(t, key.clone()));
        }
        self.changes.insert(key.clone(), Change::Remove);
        Some(old)
    }

    /// Removes and returns every entry whose eviction time is at or below `watermark_micros`
    /// (inclusive, as Spark's eviction predicate), oldest first.
    pub fn evict_through(&mut self, watermark_micros: i64) -> Vec<(OwnedRow, Entry)> {
        let due: Vec<OwnedRow> = self
            .evict_index
            .iter()
            .take_while(|(t, _)| *t <= watermark_micros)
            .map(|(_, k)| k.clone())
            .collect();
        due.into_iter().filter_map(|k| self.remove(&k).map(|e| (k, e))).collect()
    }

    /// All entries (unspecified order).
    pub fn iter(&self) -> impl Iterator<Item = (&OwnedRow, &Entry)> {
        self.map.iter()
    }

    /// Decodes key rows back to columns.
    pub fn decode_keys<'a>(&self, keys: impl IntoIterator<Item = &'a OwnedRow>) -> Result<Vec<ArrayRef>> {
        let cols = self.keys.convert_rows(keys.into_iter().map(|k| k.row()))?;
        if self.key_schema.fields().is_empty() {
            return Ok(Vec::new());
        }
        Ok(cols)
    }

    /// Decodes value rows back to columns.
    pub fn decode_values<'a>(&self, values: impl IntoIterator<Item = &'a OwnedRow>) -> Result<Vec<ArrayRef>> {
        let cols = self.values.convert_rows(values.into_iter().map(|v| v.row()))?;
        if self.value_schema.fields().is_empty() {
            return Ok(Vec::new());
        }
        Ok(cols)
    }

    /// Layout of snapshot and delta files: key columns, value columns, eviction time, and (for
    /// deltas) the removal flag.
    pub fn file_schema(&self, with_deleted: bool) -> SchemaRef {
        let mut fields: Vec<Field> = self.key_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(self.value_schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)));
        fields.push(Field::new(EVICT_AT_COLUMN, DataType::Int64, true));
        if with_deleted {
            fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
        }
        Arc::new(Schema::new(fields))
    }

    /// Rows as a state-file batch; removed keys (no entry) get NULL values.
    fn to_batch(&self, rows: &[(&OwnedRow, Option<&Entry>)], with_deleted: bool) -> Result<RecordBatch> {
        let schema = self.file_schema(with_deleted);
        let mut columns = self.decode_keys(rows.iter().map(|(k, _)| *k))?;
        let values = self.decode_values(rows.iter().filter_map(|(_, e)| e.map(|e| &e.value)))?;
        if rows.iter().all(|(_, e)| e.is_some()) {
            columns.extend(values);
        } else {
            // Scatter the present values into full-length columns, NULL for removals.
            let mut next = 0u32;
            let indices: arrow::array::UInt32Array = rows
                .iter()
                .map(|(_, e)| {
                    e.map(|_| {
                        next += 1;
                        next - 1
                    })
                })
                .collect();
            for v in values {
                columns.push(arrow::compute::take(v.as_ref(), &indices, None)?);
            }
        }
        columns.push(Arc::new(rows.iter().map(|(_, e)| e.and_then(|e| e.evict_at)).collect::<Int64Array>()));
        if with_deleted {
            columns.push(Arc::new(rows.iter().map(|(_, e)| Some(e.is_none())).collect::<BooleanArray>()));
        }
        Ok(RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(rows.len())))?)
    }

    /// Everything, as a snapshot file's batch.
    pub fn snapshot_batch(&self) -> Result<RecordBatch> {
        let rows: Vec<(&OwnedRow, Option<&Entry>)> = self.map.iter().map(|(k, e)| (k, Some(e))).collect();
        self.to_batch(&rows, false)
    }

    /// The changes since the last call, as a delta file's batch; clears the change record.
    pub fn take_delta_batch(&mut self) -> Result<RecordBatch> {
        let changes = std::mem::take(&mut self.changes);
        let rows: Vec<(&OwnedRow, Option<&Entry>)> = changes
            .iter()
            .map(|(k, c)| match c {
                Change::Upsert => (k, self.map.get(k)),
                Change::Remove => (k, None),
            })
            .collect();
        self.to_batch(&rows, true)
    }

    /// Number of keys changed since the last delta.
    pub fn pending_changes(&self) -> usize {
        self.changes.len()
    }

    /// Applies a snapshot or delta batch read from a state file (loading a version).
    pub fn apply_file_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let nk = self.key_schema.fields().len();
        let nv = self.value_schema.fields().len();
        if batch.num_columns() < nk + nv + 1 {
            return Err(SluiceError::user("state file has fewer columns than the operator's state schema"));
        }
        let keys = self.encode_keys(&batch.columns()[..nk], batch.num_rows())?;
        let values = self.encode_values(&batch.columns()[nk..nk + nv], batch.num_rows())?;
        let evict = batch.column(nk + nv).as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
            SluiceError::user(format!("state file column {EVICT_AT_COLUMN} is not BIGINT"))
        })?;
        let deleted = batch.schema().index_of(DELETED_COLUMN).ok().and_then(|i| batch.column(i).as_any().downcast_ref::<BooleanArray>().cloned());
        for i in 0..batch.num_rows() {
            let key = keys.row(i).owned();
            if deleted.as_ref().is_some_and(|d| d.value(i)) {
                self.remove(&key);
            } else {
                let t = (!arrow::array::Array::is_null(evict, i)).then(|| evict.value(i));
                self.put(key, values.row(i).owned(), t);
            }
        }
        self.changes.clear();
        Ok(())
    }

    /// The schema of key columns.
    pub fn key_schema(&self) -> &SchemaRef {
        &self.key_schema
    }

    /// The schema of value columns.
    pub fn value_schema(&self) -> &SchemaRef {
        &self.value_schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn state() -> KeyedState {
        let k = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        let v = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        KeyedState::new(k, v).unwrap()
    }

    fn put(s: &mut KeyedState, k: &str, n: i64, t: Option<i64>) {
        let keys = s.encode_keys(&[Arc::new(StringArray::from(vec![k])) as ArrayRef], 1).unwrap();
        let vals = s.encode_values(&[Arc::new(Int64Array::from(vec![n])) as ArrayRef], 1).unwrap();
        s.put(keys.row(0).owned(), vals.row(0).owned(), t);
    }

    #[test]
    fn eviction_is_inclusive_and_ordered() {
        let mut s = state();
        put(&mut s, "a", 1, Some(10));
        put(&mut s, "b", 2, Some(20));
        put(&mut s, "c", 3, None);
        let gone = s.evict_through(10);
        assert_eq!(gone.len(), 1);
        assert_eq!(s.len(), 2);
        assert!(s.evict_through(19).is_empty());
        assert_eq!(s.evict_through(i64::MAX).len(), 1, "entries without an eviction time stay");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn deltas_replay_to_the_same_state() {
        let mut s = state();
        put(&mut s, "a", 1, Some(10));
        put(&mut s, "b", 2, None);
        let d1 = s.take_delta_batch().unwrap();
        put(&mut s, "a", 5, Some(10));
        let key_b = s.encode_keys(&[Arc::new(StringArray::from(vec!["b"])) as ArrayRef], 1).unwrap().row(0).owned();
        s.remove(&key_b);
        let d2 = s.take_delta_batch().unwrap();
        assert_eq!(d2.num_rows(), 2);

        let mut r = state();
        r.apply_file_batch(&d1).unwrap();
        r.apply_file_batch(&d2).unwrap();
        assert_eq!(r.len(), 1);
        let snap = r.snapshot_batch().unwrap();
        let mut r2 = state();
        r2.apply_file_batch(&snap).unwrap();
        let (k, e) = r2.iter().next().unwrap();
        assert_eq!(r2.decode_keys([k]).unwrap()[0].as_any().downcast_ref::<StringArray>().unwrap().value(0), "a");
        assert_eq!(r2.decode_values([&e.value]).unwrap()[0].as_any().downcast_ref::<Int64Array>().unwrap().value(0), 5);
        assert_eq!(e.evict_at, Some(10));
    }
}

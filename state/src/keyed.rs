//! One state partition's contents in memory: key → value, with an eviction-time index and a
//! record of what changed since the last commit.
//!
//! Keys and values are held in Arrow's row format (`arrow-row`), compact and hashable, so any
//! combination of key columns — window structs, strings, numbers — works without per-type code.
//! A key's bytes are allocated once and shared ([`StateRow`]) by the map and the change record;
//! lookups take the borrowed bytes of a freshly encoded row, so probing the state for a batch's
//! keys allocates nothing.
//!
//! Every entry may carry an *eviction time* (µs): the event time after which the watermark lets
//! it go (a window's end, a timestamp key, a dedup entry's expiry). The [`EvictionIndex`] over
//! it makes "remove everything at or below the watermark" one sequential pass over a compact
//! array (Spark iterates the whole state store for this) plus a sort of what is removed, and
//! storing an entry an append. It is maintained lazily: removing an entry or moving its eviction
//! time leaves the old item in place, and eviction skips items that no longer match an entry.
//!
//! An index item names its entry by the key's hash, not by a shared reference to the key:
//! taking a reference is an atomic increment, and an atomic instruction waits for every store
//! before it, here the cache-missing writes of a freshly allocated row, which then cannot overlap
//! the next row's work (most of the time of storing a windowed aggregation's rows went to
//! that wait). Entries with the same hash and eviction time are interchangeable for eviction, so
//! the invariant that makes eviction exact is about counts: for every (hash, time) above the
//! last evicted watermark there are at least as many index items as entries.

use std::sync::Arc;

use std::hash::BuildHasher;

use hashbrown::hash_table::Entry as TableEntry;
use hashbrown::{DefaultHashBuilder, HashTable};

use arrow::array::{new_null_array, ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions};
use arrow::buffer::BooleanBuffer;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, RowParser, Rows, SortField};

use sluice_common::error::{Result, SluiceError};

/// A key or value in Arrow's row format, produced by this state's converters. Shared, so a
/// clone is a reference-count increment rather than an allocation.
pub type StateRow = Arc<[u8]>;

/// One entry of the map with its key and the key's hash, which the eviction index names it by
/// and which spares a resize and most mismatched probes from touching the key's bytes.
#[derive(Debug)]
struct Slot {
    hash: u64,
    key: StateRow,
    entry: Entry,
}

/// Bytes counted per entry beyond its key and value (map slot, index item, change record).
const ENTRY_OVERHEAD: usize = 48;

/// Index items beyond twice the number of entries (plus this slack) trigger a rebuild of the
/// eviction index, bounding the stale items that moved eviction times leave behind.
const STALE_INDEX_SLACK: usize = 1024;

/// Column holding an entry's eviction time in state files.
pub const EVICT_AT_COLUMN: &str = "__evict_at";
/// Column marking removals in delta files.
pub const DELETED_COLUMN: &str = "__deleted";

/// A stored value and when the watermark evicts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value columns in row format (empty for dedup state, which stores keys only).
    pub value: StateRow,
    /// Event time (µs) at or below which the watermark removes this entry.
    pub evict_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Upsert,
    Remove,
}

/// A stretch of the change record. Replaying a delta's rows in order gives the current state
/// whatever each row's value is, as long as a key's last row says what became of it; so rows
/// an operator recorded with their columns keep the value they had then, and only keys recorded
/// alone are looked up (and decoded from the row format) when the delta is taken.
#[derive(Debug)]
enum ChangeRun {
    /// Keys whose rows are written with their state at the time the delta is taken.
    Keys(Vec<(StateRow, Change)>),
    /// Rows already in a delta file's layout ([`KeyedState::file_schema`] with the removal flag):
    /// the columns the operator had when it changed them, so that a delta does not decode what
    /// it was given as columns a moment before (half the CPU of a windowed aggregation's commit).
    Columns(RecordBatch),
}

/// (eviction time, key) items in no particular order, with a lower bound on their times so
/// that a watermark below every item costs nothing. May hold stale items (see the module docs).
#[derive(Debug)]
struct EvictionIndex {
    /// (eviction time, key hash).
    items: Vec<(i64, u64)>,
    /// No item evicts before this (`i64::MAX` when empty).
    earliest: i64,
}

impl Default for EvictionIndex {
    fn default() -> Self {
        Self { items: Vec::new(), earliest: i64::MAX }
    }
}

impl EvictionIndex {
    fn push(&mut self, t: i64, hash: u64) {
        self.earliest = self.earliest.min(t);
        self.items.push((t, hash));
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    /// Takes out every item at or below `watermark_micros`.
    fn take_through(&mut self, watermark_micros: i64) -> Vec<(i64, u64)> {
        if watermark_micros < self.earliest {
            return Vec::new();
        }
        let mut earliest = i64::MAX;
        let due: Vec<(i64, u64)> = self
            .items
            .extract_if(.., |(t, _)| {
                let take = *t <= watermark_micros;
                if !take {
                    earliest = earliest.min(*t);
                }
                take
            })
            .collect();
        self.earliest = earliest;
        due
    }
}

/// What [`KeyedState::evict_decoded`] removed: the entries, oldest first, and their keys and
/// values decoded to columns in the same order.
#[derive(Debug)]
pub struct Evicted {
    /// The removed entries with their keys.
    pub entries: Vec<(StateRow, Entry)>,
    /// The key columns.
    pub keys: Vec<ArrayRef>,
    /// The value columns (none for value-less state).
    pub values: Vec<ArrayRef>,
}

/// Keyed state of one partition.
#[derive(Debug)]
pub struct KeyedState {
    key_schema: SchemaRef,
    value_schema: SchemaRef,
    keys: RowConverter,
    values: RowConverter,
    key_parser: RowParser,
    value_parser: RowParser,
    /// The one value row of a value-less state (dedup), shared by all its entries.
    unit_value: Option<StateRow>,
    /// Entries by key, hashed with hashbrown's default hasher (foldhash). The standard library's
    /// SipHash resists hash flooding by hostile keys but was the top hot spot of stateful
    /// queries (14% of a dedup → window run); foldhash is much faster on byte keys, and state
    /// keys come from the query.
    map: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    /// Every key hashes alike: tests check that eviction stays exact when hashes collide.
    #[cfg(test)]
    colliding: bool,
    evict_index: EvictionIndex,
    /// What changed since the last delta, in order. A key may appear more than once (see
    /// [`ChangeRun`] and [`Self::take_delta_batch`]).
    changes: Vec<ChangeRun>,
    bytes: usize,
    /// Rows held, for state whose values are lists of rows (a join side): kept by the operator,
    /// which knows the lists; `None` until it has counted them after a load.
    pub list_rows: Option<u64>,
}

/// A converter for `schema`'s columns. A value-less state (dedup) still needs a row per key;
/// one boolean column stands in.
fn converter(schema: &Schema) -> Result<RowConverter> {
    let fields = if schema.fields().is_empty() {
        vec![SortField::new(DataType::Boolean)]
    } else {
        schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect()
    };
    Ok(RowConverter::new(fields)?)
}

/// Matches the slot of `key`, whose hash is `hash`.
fn holds(hash: u64, key: &[u8]) -> impl Fn(&Slot) -> bool + '_ {
    move |s| s.hash == hash && *s.key == *key
}

/// The stored form of a value: a value-less state's (dedup's) entries share its `unit` row.
fn value_row(unit: &Option<StateRow>, value: &[u8]) -> StateRow {
    match unit {
        Some(unit) => Arc::clone(unit),
        None => StateRow::from(value),
    }
}

/// Rows for a column-less schema: one `true` per row in the stand-in boolean column.
fn placeholder_rows(converter: &RowConverter, num_rows: usize) -> Result<Rows> {
    let column: ArrayRef = Arc::new(BooleanArray::from(vec![true; num_rows]));
    Ok(converter.convert_columns(&[column])?)
}

impl KeyedState {
    /// Empty state for the given key and value columns.
    pub fn new(key_schema: SchemaRef, value_schema: SchemaRef) -> Result<Self> {
        let keys = converter(&key_schema)?;
        let values = converter(&value_schema)?;
        let unit_value = if value_schema.fields().is_empty() {
            Some(StateRow::from(placeholder_rows(&values, 1)?.row(0).as_ref()))
        } else {
            None
        };
        Ok(Self {
            key_parser: keys.parser(),
            value_parser: values.parser(),
            keys,
            values,
            unit_value,
            key_schema,
            value_schema,
            map: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            #[cfg(test)]
            colliding: false,
            evict_index: EvictionIndex::default(),
            changes: Vec::new(),
            bytes: 0,
            list_rows: None,
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
            return placeholder_rows(&self.keys, num_rows);
        }
        Ok(self.keys.convert_columns(columns)?)
    }

    /// Encodes value columns to rows (`num_rows` is needed for value-less state).
    pub fn encode_values(&self, columns: &[ArrayRef], num_rows: usize) -> Result<Rows> {
        if self.value_schema.fields().is_empty() {
            return placeholder_rows(&self.values, num_rows);
        }
        Ok(self.values.convert_columns(columns)?)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        #[cfg(test)]
        if self.colliding {
            return 0;
        }
        self.hasher.hash_one(key)
    }

    fn slot(&self, key: &[u8]) -> Option<&Slot> {
        let hash = self.hash(key);
        self.map.find(hash, holds(hash, key))
    }

    /// The entry for `key` (row bytes from [`Self::encode_keys`]).
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.slot(key).map(|s| &s.entry)
    }

    /// The stored key and entry for `key`: the shared key avoids copying its bytes.
    pub fn get_key_value(&self, key: &[u8]) -> Option<(&StateRow, &Entry)> {
        self.slot(key).map(|s| (&s.key, &s.entry))
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.slot(key).is_some()
    }

    /// Inserts or replaces `key`. A value-less state ignores `value` and shares its one row.
    pub fn put(&mut self, key: &[u8], value: &[u8], evict_at: Option<i64>) {
        let key = self.store(key, value, evict_at, Arc::clone);
        self.record(key, Change::Upsert);
    }

    /// Inserts or replaces every row: `keys`, `values` and `evict_at` row by row, as [`Self::put`]
    /// would. `columns` are the same rows' key columns then value columns (the layout
    /// [`Self::encode_keys`] and [`Self::encode_values`] took them from): the next delta writes
    /// them as they are instead of decoding the rows again.
    pub fn put_rows(&mut self, keys: &Rows, values: &Rows, evict_at: &[Option<i64>], columns: &[ArrayRef]) -> Result<()> {
        let n = evict_at.len();
        if keys.num_rows() != n || values.num_rows() != n {
            return Err(SluiceError::internal("put_rows: keys, values and eviction times differ in length"));
        }
        for (i, t) in evict_at.iter().enumerate() {
            // The stored key is not needed: no reference to it is taken (see the module docs).
            self.store(keys.row(i).as_ref(), values.row(i).as_ref(), *t, |_| ());
        }
        self.record_columns(columns.to_vec(), Int64Array::from(evict_at.to_vec()), false)
    }

    /// Puts `key` in the map and the eviction index, without recording the change, and returns
    /// what `then` makes of the stored key.
    fn store<R>(&mut self, key: &[u8], value: &[u8], evict_at: Option<i64>, then: impl FnOnce(&StateRow) -> R) -> R {
        let value = value_row(&self.unit_value, value);
        let hash = self.hash(key);
        let (result, moved) = match self.map.entry(hash, holds(hash, key), |s| s.hash) {
            TableEntry::Occupied(mut slot) => {
                let slot = slot.get_mut();
                self.bytes = (self.bytes + value.len()).saturating_sub(slot.entry.value.len());
                // An aggregate's key (its window) fixes its eviction time: most updates keep
                // their index item as it is.
                let moved = slot.entry.evict_at != evict_at;
                slot.entry = Entry { value, evict_at };
                (then(&slot.key), moved)
            }
            TableEntry::Vacant(slot) => {
                self.bytes += key.len() + value.len() + ENTRY_OVERHEAD;
                let slot = slot.insert(Slot { hash, key: StateRow::from(key), entry: Entry { value, evict_at } });
                (then(&slot.get().key), true)
            }
        };
        if let Some(t) = evict_at.filter(|_| moved) {
            self.index(t, hash);
        }
        result
    }

    /// Inserts `key` unless it is present, and says whether it did: a deduplication's whole
    /// per-row work, in one hash lookup.
    pub fn insert_new(&mut self, key: &[u8], value: &[u8], evict_at: Option<i64>) -> bool {
        let hash = self.hash(key);
        let TableEntry::Vacant(slot) = self.map.entry(hash, holds(hash, key), |s| s.hash) else {
            return false;
        };
        // A value is allocated only for a key that is new.
        let value = value_row(&self.unit_value, value);
        self.bytes += key.len() + value.len() + ENTRY_OVERHEAD;
        let slot = slot.insert(Slot { hash, key: StateRow::from(key), entry: Entry { value, evict_at } });
        let key = Arc::clone(&slot.get().key);
        if let Some(t) = evict_at {
            self.index(t, hash);
        }
        self.record(key, Change::Upsert);
        true
    }

    /// Indexes a new eviction time of the key hashed to `hash`.
    fn index(&mut self, t: i64, hash: u64) {
        self.evict_index.push(t, hash);
        if self.evict_index.len() > 2 * self.map.len() + STALE_INDEX_SLACK {
            self.rebuild_evict_index();
        }
    }

    /// Records a change of one key, for the next delta.
    fn record(&mut self, key: StateRow, change: Change) {
        match self.changes.last_mut() {
            Some(ChangeRun::Keys(keys)) => keys.push((key, change)),
            _ => self.changes.push(ChangeRun::Keys(vec![(key, change)])),
        }
    }

    /// Records rows given as their key and value columns, with their eviction times, as upserts
    /// or as removals (see [`ChangeRun::Columns`]).
    fn record_columns(&mut self, mut columns: Vec<ArrayRef>, evict_at: Int64Array, removed: bool) -> Result<()> {
        let rows = evict_at.len();
        if rows == 0 {
            return Ok(());
        }
        let flags = if removed { BooleanBuffer::new_set(rows) } else { BooleanBuffer::new_unset(rows) };
        columns.push(Arc::new(evict_at));
        columns.push(Arc::new(BooleanArray::new(flags, None)));
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        self.changes.push(ChangeRun::Columns(RecordBatch::try_new_with_options(self.file_schema(true), columns, &options)?));
        Ok(())
    }

    /// Removes `key`, returning its entry. Its index item goes stale and is skipped later.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        let found = self.map.find_entry(hash, holds(hash, key)).ok()?;
        let (Slot { key, entry, .. }, _) = found.remove();
        self.bytes = self.bytes.saturating_sub(key.len() + entry.value.len() + ENTRY_OVERHEAD);
        self.record(key, Change::Remove);
        Some(entry)
    }

    /// Drops stale index items: one item per entry that has an eviction time.
    fn rebuild_evict_index(&mut self) {
        let mut index = EvictionIndex::default();
        for s in &self.map {
            if let Some(t) = s.entry.evict_at {
                index.push(t, s.hash);
            }
        }
        self.evict_index = index;
    }

    /// Removes and returns every entry whose eviction time is at or below `watermark_micros`
    /// (inclusive, as Spark's eviction predicate), in (eviction time, key) order.
    pub fn evict_through(&mut self, watermark_micros: i64) -> Vec<(StateRow, Entry)> {
        let due = self.take_due(watermark_micros, true);
        for (key, _) in &due {
            self.record(Arc::clone(key), Change::Remove);
        }
        due
    }

    /// [`Self::evict_through`] for callers that only count what leaves: the same entries leave,
    /// in no particular order (ordering them by time and key bytes was most of an eviction's
    /// time), and only their number is returned.
    pub fn evict_count_through(&mut self, watermark_micros: i64) -> u64 {
        let due = self.take_due(watermark_micros, false);
        let n = due.len() as u64;
        for (key, _) in due {
            self.record(key, Change::Remove);
        }
        n
    }

    /// [`Self::evict_through`] for callers that need what it removes as columns: the entries'
    /// keys and values are decoded once, for the caller and for the next delta, which writes
    /// the removals with these key columns instead of decoding the keys again.
    pub fn evict_decoded(&mut self, watermark_micros: i64) -> Result<Evicted> {
        let entries = self.take_due(watermark_micros, true);
        let keys = self.decode_keys(entries.iter().map(|(k, _)| &k[..]))?;
        let values = self.decode_values(entries.iter().map(|(_, e)| &e.value[..]))?;
        let n = entries.len();
        let mut removals = keys.clone();
        removals.extend(self.value_schema.fields().iter().map(|f| new_null_array(f.data_type(), n)));
        self.record_columns(removals, Int64Array::new_null(n), true)?;
        Ok(Evicted { entries, keys, values })
    }

    /// Takes every entry due at `watermark_micros` out of the map, oldest first when `ordered`,
    /// without recording the removals.
    fn take_due(&mut self, watermark_micros: i64, ordered: bool) -> Vec<(StateRow, Entry)> {
        let items = self.evict_index.take_through(watermark_micros);
        let mut due = Vec::with_capacity(items.len());
        for (t, hash) in items {
            // Any entry with this hash and time will do (see the module docs); none left means
            // the item is stale: its entry was removed, moved to another time or already taken.
            let Ok(found) = self.map.find_entry(hash, |s| s.hash == hash && s.entry.evict_at == Some(t)) else { continue };
            let (Slot { key, entry, .. }, _) = found.remove();
            self.bytes = self.bytes.saturating_sub(key.len() + entry.value.len() + ENTRY_OVERHEAD);
            due.push((key, entry));
        }
        if ordered {
            due.sort_unstable_by(|(ka, a), (kb, b)| (a.evict_at, ka).cmp(&(b.evict_at, kb)));
        }
        due
    }

    /// All entries (unspecified order).
    pub fn iter(&self) -> impl Iterator<Item = (&StateRow, &Entry)> {
        self.map.iter().map(|s| (&s.key, &s.entry))
    }

    /// Decodes key rows back to columns.
    pub fn decode_keys<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let cols = self.keys.convert_rows(keys.into_iter().map(|k| self.key_parser.parse(k)))?;
        if self.key_schema.fields().is_empty() {
            return Ok(Vec::new());
        }
        Ok(cols)
    }

    /// Decodes value rows back to columns.
    pub fn decode_values<'a>(&self, values: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let cols = self.values.convert_rows(values.into_iter().map(|v| self.value_parser.parse(v)))?;
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
    fn to_batch(&self, rows: &[(&[u8], Option<&Entry>)], with_deleted: bool) -> Result<RecordBatch> {
        let schema = self.file_schema(with_deleted);
        let mut columns = self.decode_keys(rows.iter().map(|(k, _)| *k))?;
        let values = self.decode_values(rows.iter().filter_map(|(_, e)| e.map(|e| &e.value[..])))?;
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
        let rows: Vec<(&[u8], Option<&Entry>)> = self.iter().map(|(k, e)| (&k[..], Some(e))).collect();
        self.to_batch(&rows, false)
    }

    /// The changes since the last call, as a delta file's batch (`None` when nothing changed);
    /// clears the change record.
    ///
    /// Rows follow the change record. A key recorded alone is written with its state now (an
    /// upsert of a key removed since is written as a removal); rows recorded with their columns
    /// are written as they were given. Either way a key's last row says what became of it, so
    /// replaying the rows in order (as [`Self::apply_file_batch`] does) gives the current state.
    pub fn take_delta_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.changes.is_empty() {
            // Most partitions of a small batch change nothing: no schema or empty columns to build.
            return Ok(None);
        }
        let runs = std::mem::take(&mut self.changes);
        let mut parts = Vec::with_capacity(runs.len());
        for run in runs {
            parts.push(match run {
                ChangeRun::Keys(keys) => {
                    let rows: Vec<(&[u8], Option<&Entry>)> = keys
                        .iter()
                        .map(|(k, c)| match c {
                            Change::Upsert => (&k[..], self.get(k)),
                            Change::Remove => (&k[..], None),
                        })
                        .collect();
                    self.to_batch(&rows, true)?
                }
                ChangeRun::Columns(rows) => rows,
            });
        }
        // One run (the usual case) is written as it is, without a copy.
        if parts.len() == 1 {
            return Ok(Some(parts.remove(0)));
        }
        Ok(Some(concat_batches(&self.file_schema(true), &parts)?))
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
        let evict = batch
            .column(nk + nv)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| SluiceError::user(format!("state file column {EVICT_AT_COLUMN} is not BIGINT")))?;
        let deleted = batch
            .schema()
            .index_of(DELETED_COLUMN)
            .ok()
            .and_then(|i| batch.column(i).as_any().downcast_ref::<BooleanArray>().cloned());
        for i in 0..batch.num_rows() {
            let key = keys.row(i);
            if deleted.as_ref().is_some_and(|d| d.value(i)) {
                self.remove(key.as_ref());
            } else {
                let t = (!arrow::array::Array::is_null(evict, i)).then(|| evict.value(i));
                self.put(key.as_ref(), values.row(i).as_ref(), t);
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

    fn key(s: &KeyedState, k: &str) -> StateRow {
        StateRow::from(s.encode_keys(&[Arc::new(StringArray::from(vec![k])) as ArrayRef], 1).unwrap().row(0).as_ref())
    }

    fn put(s: &mut KeyedState, k: &str, n: i64, t: Option<i64>) {
        let key = key(s, k);
        let vals = s.encode_values(&[Arc::new(Int64Array::from(vec![n])) as ArrayRef], 1).unwrap();
        s.put(&key, vals.row(0).as_ref(), t);
    }

    fn names(s: &KeyedState, rows: &[(StateRow, Entry)]) -> Vec<String> {
        let cols = s.decode_keys(rows.iter().map(|(k, _)| &k[..])).unwrap();
        let keys = cols[0].as_any().downcast_ref::<StringArray>().unwrap();
        keys.iter().map(|k| k.unwrap().to_string()).collect()
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
    fn eviction_follows_moved_and_removed_entries() {
        let mut s = state();
        put(&mut s, "moved-later", 1, Some(10));
        put(&mut s, "removed", 2, Some(10));
        put(&mut s, "kept-time", 3, Some(30));
        put(&mut s, "moved-earlier", 4, Some(40));
        put(&mut s, "moved-later", 5, Some(50));
        put(&mut s, "kept-time", 6, Some(30));
        put(&mut s, "moved-earlier", 7, Some(20));
        let removed = key(&s, "removed");
        s.remove(&removed);
        put(&mut s, "never", 8, None);

        assert!(s.evict_through(19).is_empty(), "items left by moves and removals are skipped");
        assert_eq!(s.len(), 4, "skipping a stale item keeps its entry");
        let gone = s.evict_through(49);
        assert_eq!(names(&s, &gone), ["moved-earlier", "kept-time"], "oldest first");
        assert_eq!(gone.iter().map(|(_, e)| e.evict_at).collect::<Vec<_>>(), [Some(20), Some(30)]);
        assert!(s.evict_through(49).is_empty(), "an entry is evicted once");
        let gone = s.evict_through(i64::MAX);
        assert_eq!(names(&s, &gone), ["moved-later"]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn equal_eviction_times_leave_in_key_order() {
        let mut s = state();
        for k in ["d", "b", "a", "c"] {
            put(&mut s, k, 0, Some(7));
        }
        let gone = s.evict_through(7);
        assert_eq!(names(&s, &gone), ["a", "b", "c", "d"]);
    }

    #[test]
    fn counting_eviction_removes_what_ordered_eviction_removes() {
        let (mut ordered, mut counted) = (state(), state());
        for s in [&mut ordered, &mut counted] {
            for (i, k) in ["d", "b", "a", "c", "e"].iter().enumerate() {
                put(s, k, i as i64, Some(10 * (i as i64 % 3)));
            }
            // A moved entry leaves a stale item behind; a removed one, a dangling item.
            put(s, "d", 9, Some(50));
            let e = key(s, "e");
            s.remove(&e);
        }
        let gone = ordered.evict_through(20);
        assert_eq!(names(&ordered, &gone), ["c", "b", "a"]);
        assert_eq!(counted.evict_count_through(20), 3);
        assert_eq!(contents(&ordered), contents(&counted));
        assert_eq!(ordered.memory_bytes(), counted.memory_bytes());
        let (mut replay_ordered, mut replay_counted) = (state(), state());
        for (from, to) in [(&mut ordered, &mut replay_ordered), (&mut counted, &mut replay_counted)] {
            let delta = from.take_delta_batch().unwrap().unwrap();
            to.apply_file_batch(&delta).unwrap();
        }
        assert_eq!(contents(&replay_ordered), contents(&replay_counted), "their deltas rebuild the same state");
        assert_eq!(contents(&replay_counted), contents(&counted));
        assert_eq!(counted.evict_count_through(i64::MAX), 1);
        assert!(counted.is_empty());
    }

    #[test]
    fn stale_index_items_are_bounded() {
        let mut s = state();
        for i in 0..10_000 {
            put(&mut s, "session", i, Some(i));
        }
        assert!(s.evict_index.len() <= 2 * s.len() + STALE_INDEX_SLACK, "{} index items", s.evict_index.len());
        assert!(s.evict_through(9_998).is_empty());
        assert_eq!(s.evict_through(9_999).len(), 1);
    }

    #[test]
    fn value_less_state_shares_one_value() {
        let k = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let mut s = KeyedState::new(k, Arc::new(Schema::empty())).unwrap();
        let keys = s.encode_keys(&[Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef], 2).unwrap();
        s.put(keys.row(0).as_ref(), &[], Some(1));
        s.put(keys.row(1).as_ref(), &[], Some(2));
        let (a, b) = (s.get(keys.row(0).as_ref()).unwrap(), s.get(keys.row(1).as_ref()).unwrap());
        assert!(Arc::ptr_eq(&a.value, &b.value));
        let snapshot = s.snapshot_batch().unwrap();
        assert_eq!(snapshot.num_columns(), 2, "key and eviction time");
    }

    #[test]
    fn deltas_replay_to_the_same_state() {
        let mut s = state();
        put(&mut s, "a", 1, Some(10));
        put(&mut s, "b", 2, None);
        let d1 = s.take_delta_batch().unwrap().unwrap();
        put(&mut s, "a", 5, Some(10));
        let key_b = key(&s, "b");
        s.remove(&key_b);
        let d2 = s.take_delta_batch().unwrap().unwrap();
        assert_eq!(d2.num_rows(), 2);

        let mut r = state();
        r.apply_file_batch(&d1).unwrap();
        r.apply_file_batch(&d2).unwrap();
        assert_eq!(r.len(), 1);
        let snap = r.snapshot_batch().unwrap();
        let mut r2 = state();
        r2.apply_file_batch(&snap).unwrap();
        let (k, e) = r2.iter().next().unwrap();
        assert_eq!(r2.decode_keys([&k[..]]).unwrap()[0].as_any().downcast_ref::<StringArray>().unwrap().value(0), "a");
        assert_eq!(r2.decode_values([&e.value[..]]).unwrap()[0].as_any().downcast_ref::<Int64Array>().unwrap().value(0), 5);
        assert_eq!(e.evict_at, Some(10));
    }

    #[test]
    fn a_delta_gives_each_key_its_final_state() {
        let mut s = state();
        put(&mut s, "gone", 1, Some(10));
        put(&mut s, "back", 2, None);
        put(&mut s, "gone", 3, Some(10));
        let (gone, back) = (key(&s, "gone"), key(&s, "back"));
        s.remove(&gone);
        s.remove(&back);
        put(&mut s, "back", 4, None);
        let delta = s.take_delta_batch().unwrap().unwrap();

        let mut r = state();
        put(&mut r, "gone", 9, None);
        r.apply_file_batch(&delta).unwrap();
        assert!(r.get(&gone).is_none(), "a key upserted then removed is removed");
        let value = r.decode_values([&r.get(&back).unwrap().value[..]]).unwrap();
        assert_eq!(value[0].as_any().downcast_ref::<Int64Array>().unwrap().value(0), 4);
        assert_eq!(r.len(), 1);
    }

    /// A repeatable pseudo-random source: `next(n)` is below `n`.
    fn xorshift(mut state: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        }
    }

    /// A random mix of every kind of change over a few keys, a delta taken every few steps: each
    /// delta replayed onto the version before it gives the state.
    #[test]
    fn deltas_of_random_changes_replay_exactly() {
        let names = ["a", "b", "c", "d", "e", "f"];
        let (mut s, mut replayed) = (state(), state());
        let mut next = xorshift(0x2545_f491_4f6c_dd1d_u64);
        for step in 0..4_000_i64 {
            let k = names[next(names.len() as u64) as usize];
            match next(6) {
                0 | 1 => put(&mut s, k, step, Some(step % 50)),
                2 => {
                    let keys: ArrayRef = Arc::new(StringArray::from(vec![k, names[next(6) as usize]]));
                    let values: ArrayRef = Arc::new(Int64Array::from(vec![step, -step]));
                    let (rk, rv) =
                        (s.encode_keys(&[Arc::clone(&keys)], 2).unwrap(), s.encode_values(&[Arc::clone(&values)], 2).unwrap());
                    // put_rows takes one row per key, as a merged aggregation gives it.
                    if rk.row(0) != rk.row(1) {
                        s.put_rows(&rk, &rv, &[Some(step % 50), None], &[keys, values]).unwrap();
                    }
                }
                3 => {
                    let kk = key(&s, k);
                    s.remove(&kk);
                }
                4 => {
                    if next(2) == 0 {
                        s.evict_through(step % 50);
                    } else {
                        s.evict_decoded(step % 50).unwrap();
                    }
                }
                _ => {
                    if let Some(delta) = s.take_delta_batch().unwrap() {
                        replayed.apply_file_batch(&delta).unwrap();
                    }
                    assert_eq!(contents(&replayed), contents(&s), "step {step}");
                }
            }
        }
    }

    /// Eviction names its entries by hash and time only (see the module docs): with every key
    /// hashing alike, random changes and evictions must leave exactly what they leave in a state
    /// whose keys do not collide, and evict the same entries in the same order.
    #[test]
    fn eviction_is_exact_when_every_key_collides() {
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        let (mut plain, mut colliding) = (state(), state());
        colliding.colliding = true;
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15_u64);
        let mut evicted = 0;
        for step in 0..3_000_i64 {
            let k = names[next(names.len() as u64) as usize];
            // Few distinct times, so that colliding keys often share one.
            let t = (step / 40) * 10 + 10 * next(3) as i64;
            match next(5) {
                0 | 1 => {
                    for s in [&mut plain, &mut colliding] {
                        put(s, k, step, Some(t));
                    }
                }
                2 => {
                    for s in [&mut plain, &mut colliding] {
                        let kk = key(s, k);
                        let value = s.encode_values(&[Arc::new(Int64Array::from(vec![step])) as ArrayRef], 1).unwrap();
                        s.insert_new(&kk, value.row(0).as_ref(), Some(t));
                    }
                }
                3 => {
                    for s in [&mut plain, &mut colliding] {
                        let kk = key(s, k);
                        s.remove(&kk);
                    }
                }
                _ => {
                    let wm = (step / 40) * 10;
                    let (a, b) = (plain.evict_through(wm), colliding.evict_through(wm));
                    assert_eq!(names_and_times(&plain, &a), names_and_times(&colliding, &b), "step {step}");
                    evicted += a.len();
                }
            }
            assert_eq!(contents(&plain), contents(&colliding), "step {step}");
            assert_eq!(plain.memory_bytes(), colliding.memory_bytes(), "step {step}");
        }
        assert!(evicted > 100, "the sequence evicts ({evicted} entries)");
    }

    fn names_and_times(s: &KeyedState, rows: &[(StateRow, Entry)]) -> Vec<(String, Option<i64>)> {
        names(s, rows).into_iter().zip(rows.iter().map(|(_, e)| e.evict_at)).collect()
    }

    /// Every entry as (key, value, eviction time), sorted.
    fn contents(s: &KeyedState) -> Vec<(String, i64, Option<i64>)> {
        let mut out: Vec<_> = s
            .iter()
            .map(|(k, e)| {
                let key = s.decode_keys([&k[..]]).unwrap();
                let value = s.decode_values([&e.value[..]]).unwrap();
                (
                    key[0].as_any().downcast_ref::<StringArray>().unwrap().value(0).to_string(),
                    value[0].as_any().downcast_ref::<Int64Array>().unwrap().value(0),
                    e.evict_at,
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn rows_recorded_with_their_columns_replay_like_rows_recorded_alone() {
        // The same changes made twice: once key by key, once with put_rows and evict_decoded
        // (interleaved with single changes of the same keys, which must win where they come
        // last). Both deltas must rebuild the same state as the changed state itself.
        let rows = |s: &KeyedState, keys: &[&str], values: &[i64]| {
            let k: ArrayRef = Arc::new(StringArray::from(keys.to_vec()));
            let v: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
            (
                s.encode_keys(&[Arc::clone(&k)], keys.len()).unwrap(),
                s.encode_values(&[Arc::clone(&v)], keys.len()).unwrap(),
                vec![k, v],
            )
        };
        let (mut alone, mut columns) = (state(), state());
        let mut replayed = (state(), state());
        for round in 0..3_i64 {
            let batch_keys = ["a", "b", "c", "d"];
            let values: Vec<i64> = (0..4).map(|i| 10 * round + i).collect();
            let times = [Some(round * 10 + 5), None, Some(round * 10 + 8), Some(100)];
            for (i, n) in batch_keys.iter().enumerate() {
                put(&mut alone, n, values[i], times[i]);
            }
            let (keys, vals, cols) = rows(&columns, &batch_keys, &values);
            columns.put_rows(&keys, &vals, &times, &cols).unwrap();
            // A later single change of a key put with columns: "b" removed, "d" put again.
            let b = key(&alone, "b");
            alone.remove(&b);
            columns.remove(&b);
            put(&mut alone, "d", -round, Some(100));
            put(&mut columns, "d", -round, Some(100));
            // Eviction: "a" (and "c" from the second round on) is due.
            let wm = round * 10 + 7;
            let gone_alone = alone.evict_through(wm);
            let gone = columns.evict_decoded(wm).unwrap();
            assert_eq!(names(&alone, &gone_alone), names(&columns, &gone.entries), "round {round}");
            assert_eq!(gone.keys, alone.decode_keys(gone_alone.iter().map(|(k, _)| &k[..])).unwrap());
            assert_eq!(gone.values, alone.decode_values(gone_alone.iter().map(|(_, e)| &e.value[..])).unwrap());
            // A key re-inserted after its eviction in the same batch.
            put(&mut alone, "a", 1000 + round, None);
            put(&mut columns, "a", 1000 + round, None);
            assert_eq!(contents(&alone), contents(&columns), "round {round}");
            assert_eq!(alone.memory_bytes(), columns.memory_bytes(), "round {round}");
            replayed.0.apply_file_batch(&alone.take_delta_batch().unwrap().unwrap()).unwrap();
            replayed.1.apply_file_batch(&columns.take_delta_batch().unwrap().unwrap()).unwrap();
            assert_eq!(contents(&replayed.0), contents(&alone), "round {round}, rows alone");
            assert_eq!(contents(&replayed.1), contents(&columns), "round {round}, with columns");
        }
        assert!(columns.take_delta_batch().unwrap().is_none(), "a delta clears the record");
    }

    #[test]
    fn insert_new_keeps_the_first_value() {
        let mut s = state();
        let k = key(&s, "k");
        let vals = s.encode_values(&[Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef], 2).unwrap();
        assert!(s.insert_new(&k, vals.row(0).as_ref(), Some(5)));
        assert!(!s.insert_new(&k, vals.row(1).as_ref(), Some(9)));
        let e = s.get(&k).unwrap();
        assert_eq!(s.decode_values([&e.value[..]]).unwrap()[0].as_any().downcast_ref::<Int64Array>().unwrap().value(0), 1);
        assert_eq!(e.evict_at, Some(5));
        assert_eq!(s.take_delta_batch().unwrap().unwrap().num_rows(), 1);
    }
}

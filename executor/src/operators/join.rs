//! Stream-stream joins on a state partition: Spark's `StreamingSymmetricHashJoinExec`
//! (docs/semantics.md §7), state format v2 (every stored row carries a `matched` flag).
//!
//! Both inputs arrive shuffled by the join keys with the same hash, so partition p of the left
//! input meets partition p of the right. Each side keeps its rows in its own state store, keyed
//! by the join keys; the value of a key is the list of that side's rows with the key, each with
//! its `matched` flag. A batch runs in Spark's order:
//!
//! 1. left input: late rows dropped; rows failing the left-only conditions are never stored (a
//!    left/full outer join emits them NULL-padded at once); the rest probe the right state, emit
//!    the pairs passing the condition, mark the right rows they matched, and are stored with their
//!    own flag (left semi: a matched row is emitted once and not stored);
//! 2. right input: the same against the left state, which now holds this batch's left rows, so
//!    every new×new pair comes out once. A right row already below its state watermark is not
//!    stored unless an outer join still owes it a NULL-padded row. Left semi emits a stored left
//!    row the first time it matches;
//! 3. eviction: rows at or below their side's state watermark leave the state; an outer join
//!    emits the unmatched ones of its preserved side(s) NULL-padded.
//!
//! A row that step 3 of its own batch evicts — its side's state watermark, from this batch's
//! watermark, already passes it — is not written to the state at all: it is kept beside it for
//! the batch ([`DueRows`]), where a left row still meets the right input of step 2, and leaves
//! in step 3 as a stored row would. The state and the output are those of Spark's order; the
//! encoding of the row into its key's list, and the two decodings after, are saved.
//!
//! A key's whole list is the stored value, so a changed key is rewritten as a whole and a delta
//! file says what each changed key holds now. The lists are multisets: an attempt that saw its
//! input in another order holds the same rows, so the first-copy-wins rule for state files
//! cannot leave an executor's memory and the checkpoint disagreeing about what a key holds.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, ListArray, RecordBatch, RecordBatchOptions, StructArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{concat_batches, filter_record_batch, interleave, prep_null_mask_filter, take, take_record_batch};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::DFSchema;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{ExprSchemable, JoinType};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::PhysicalExpr;
use hashbrown::HashMap;

use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchWatermarks;
use sluice_plan::join::{JoinSide, JoinSideSpec, StateEviction, StreamJoin};
use sluice_plan::streaming::EventTimeColumn;
use sluice_plan::StateOperatorMetrics;
use sluice_state::keyed::StateRow;
use sluice_state::KeyedState;

use super::event_time::{drop_late_rows, event_time_micros};
use super::key_runs::KeyRuns;

/// Name of the flag column inside a stored row.
const MATCHED_FIELD: &str = "__matched";

/// Values decoded per conversion when counting a loaded state's rows.
const COUNT_CHUNK: usize = 4096;

/// One input of the join, compiled.
#[derive(Debug, Clone)]
pub struct CompiledSide {
    /// Schema of the side's rows as its map side produces them.
    pub schema: SchemaRef,
    /// Equi-join key expressions over the side's rows.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Conditions over this side only.
    pub pre_filter: Option<Arc<dyn PhysicalExpr>>,
    /// The side's watermark column: late rows are dropped by it.
    pub event_time: Option<EventTimeColumn>,
    /// How the side's state is evicted.
    pub eviction: StateEviction,
    /// A stored row: the side's columns (positional names) and the `matched` flag.
    element_fields: Fields,
    /// The state's value: one column, the list of stored rows.
    pub value_schema: SchemaRef,
}

/// A compiled stream-stream join.
#[derive(Debug, Clone)]
pub struct JoinStages {
    /// Inner, left/right/full outer or left semi.
    pub join_type: JoinType,
    /// The left input.
    pub left: CompiledSide,
    /// The right input.
    pub right: CompiledSide,
    /// The join keys as state keys (`k0`, `k1`, …).
    pub key_schema: SchemaRef,
    /// Conditions over both sides.
    post_filter: Option<PairFilter>,
    /// `left ++ right`, every column nullable: pairs and NULL-padded rows.
    joined_schema: SchemaRef,
}

fn compile_side(state: &SessionState, spec: &JoinSideSpec) -> Result<CompiledSide> {
    let df: &DFSchema = spec.plan.schema();
    let keys = spec.keys.iter().map(|e| state.create_physical_expr(e.clone(), df)).collect::<Result<Vec<_>, _>>()?;
    let pre_filter = spec.pre_filter.as_ref().map(|e| state.create_physical_expr(e.clone(), df)).transpose()?;
    let schema = Arc::new(df.as_arrow().clone());
    let mut element: Vec<Field> =
        schema.fields().iter().enumerate().map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true)).collect();
    element.push(Field::new(MATCHED_FIELD, DataType::Boolean, true));
    let element_fields = Fields::from(element);
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Struct(element_fields.clone()), true)));
    let value_schema = Arc::new(Schema::new(vec![Field::new("rows", list, true)]));
    Ok(CompiledSide {
        schema,
        keys,
        pre_filter,
        event_time: spec.event_time,
        eviction: spec.eviction.clone(),
        element_fields,
        value_schema,
    })
}

impl JoinStages {
    /// Compiles a planned join's expressions against its inputs.
    pub fn compile(state: &SessionState, join: &StreamJoin) -> Result<Self> {
        let left = compile_side(state, &join.left)?;
        let right = compile_side(state, &join.right)?;
        let left_df: &DFSchema = join.left.plan.schema();
        let key_fields: Vec<Field> = join
            .left
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| Ok(Field::new(format!("k{i}"), k.get_type(left_df)?, true)))
            .collect::<Result<_>>()?;
        let both = left_df.join(join.right.plan.schema())?;
        let joined_fields: Vec<Field> = left
            .schema
            .fields()
            .iter()
            .chain(right.schema.fields().iter())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let joined_schema = Arc::new(Schema::new(joined_fields));
        let post_filter = join
            .post_filter
            .as_ref()
            .map(|e| PairFilter::new(state.create_physical_expr(e.clone(), &both)?, &joined_schema))
            .transpose()?;
        Ok(Self {
            join_type: join.join_type,
            left,
            right,
            key_schema: Arc::new(Schema::new(key_fields)),
            post_filter,
            joined_schema,
        })
    }

    /// The side.
    pub fn side(&self, side: JoinSide) -> &CompiledSide {
        match side {
            JoinSide::Left => &self.left,
            JoinSide::Right => &self.right,
        }
    }

    /// True when `side`'s unmatched rows are owed a NULL-padded output row.
    fn preserves(&self, side: JoinSide) -> bool {
        matches!(
            (self.join_type, side),
            (JoinType::Left, JoinSide::Left) | (JoinType::Right, JoinSide::Right) | (JoinType::Full, _)
        )
    }

    /// Evaluates a side's keys over its rows (for shuffling and for state keys).
    pub fn key_columns(&self, side: JoinSide, rows: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.side(side).keys.iter().map(|k| Ok(k.evaluate(rows)?.into_array(rows.num_rows())?)).collect()
    }

    /// `rows` of `side` with NULLs for the other side's columns.
    fn null_padded(&self, side: JoinSide, rows: &RecordBatch) -> Result<RecordBatch> {
        let n = rows.num_rows();
        let nulls =
            |schema: &SchemaRef| -> Vec<ArrayRef> { schema.fields().iter().map(|f| new_null_array(f.data_type(), n)).collect() };
        let columns = match side {
            JoinSide::Left => rows.columns().iter().cloned().chain(nulls(&self.right.schema)).collect(),
            JoinSide::Right => nulls(&self.left.schema).into_iter().chain(rows.columns().iter().cloned()).collect(),
        };
        joined_batch(&self.joined_schema, columns, n)
    }
}

fn joined_batch(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &RecordBatchOptions::new().with_row_count(Some(rows)))?)
}

/// The join's conditions over both sides, evaluated on the columns they read only.
///
/// Why: candidate pairs are many where the equi-keys are coarse — in Nexmark q5 every count of
/// a window meets the window's maximum, ~300,000 pairs a batch of which ~50 pass — and
/// building every column of every pair before filtering was most of the join's work. The
/// condition is evaluated on the pairs' columns it reads; whole pairs are built for those
/// that pass.
#[derive(Debug, Clone)]
struct PairFilter {
    /// The condition, its columns renumbered to positions in `columns`.
    expr: Arc<dyn PhysicalExpr>,
    /// The columns of `left ++ right` it reads, ascending.
    columns: Vec<usize>,
    /// Those columns' fields.
    schema: SchemaRef,
}

impl PairFilter {
    /// `expr` reads columns of `joined` (`left ++ right`).
    fn new(expr: Arc<dyn PhysicalExpr>, joined: &SchemaRef) -> Result<Self> {
        let mut columns: Vec<usize> = collect_columns(&expr).iter().map(Column::index).collect();
        columns.sort_unstable();
        columns.dedup();
        let expr = expr
            .transform(|e| match e.downcast_ref::<Column>() {
                Some(c) => {
                    let at = columns.binary_search(&c.index()).map_err(|_| {
                        datafusion::error::DataFusionError::Internal(format!("join condition column {c} not collected"))
                    })?;
                    Ok(Transformed::yes(Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>))
                }
                None => Ok(Transformed::no(e)),
            })?
            .data;
        let schema = Arc::new(joined.project(&columns)?);
        Ok(Self { expr, columns, schema })
    }
}

/// Candidate pairs of one side's rows with the other side's: this side's row `input_idx[p]`
/// and the other side's row `picks[p]` (see [`Picked`]).
#[derive(Clone, Copy)]
struct Pairs<'a> {
    side: JoinSide,
    these: &'a RecordBatch,
    those: &'a RecordBatch,
    due: Option<&'a RecordBatch>,
    input_idx: &'a UInt32Array,
    picks: &'a [(usize, usize)],
}

impl Pairs<'_> {
    /// Columns `which` of `left ++ right` for every pair.
    fn columns(&self, which: impl IntoIterator<Item = usize>) -> Result<Vec<ArrayRef>> {
        let picked = Picked::new(self.those, self.due, self.picks);
        which.into_iter().map(|i| self.column(i, &picked)).collect()
    }

    /// Column `i` of `left ++ right` for every pair, the other side's read through `picked`.
    fn column(&self, i: usize, picked: &Picked<'_>) -> Result<ArrayRef> {
        let left_width = match self.side {
            JoinSide::Left => self.these.num_columns(),
            JoinSide::Right => self.those.num_columns(),
        };
        let (of_left, j) = if i < left_width { (true, i) } else { (false, i - left_width) };
        match of_left == (self.side == JoinSide::Left) {
            true => Ok(take(self.these.column(j), self.input_idx, None)?),
            false => picked.column(j),
        }
    }
}

/// Rows picked as (source, row) — source 0 is `stored`, source 1 `due` (a side's [`DueRows`])
/// — read column by column: decided once for all columns, a take when every pick is from one
/// source (without interleave's per-row source lookup), else an interleave.
enum Picked<'a> {
    Take(&'a RecordBatch, UInt32Array),
    Interleave(&'a RecordBatch, &'a RecordBatch, &'a [(usize, usize)]),
}

impl<'a> Picked<'a> {
    fn new(stored: &'a RecordBatch, due: Option<&'a RecordBatch>, picks: &'a [(usize, usize)]) -> Self {
        let rows = || UInt32Array::from_iter_values(picks.iter().map(|(_, r)| *r as u32));
        let from = |source: usize| picks.iter().all(|(s, _)| *s == source);
        match due {
            Some(due) if from(1) => Self::Take(due, rows()),
            Some(due) if !from(0) => Self::Interleave(stored, due, picks),
            _ => Self::Take(stored, rows()),
        }
    }

    /// Column `j` of the picked rows.
    fn column(&self, j: usize) -> Result<ArrayRef> {
        Ok(match self {
            Self::Take(rows, at) => take(rows.column(j), at, None)?,
            Self::Interleave(stored, due, picks) => interleave(&[stored.column(j).as_ref(), due.column(j).as_ref()], picks)?,
        })
    }
}

/// A side's rows of this batch that its state watermark already passes — rows Spark stores and
/// then evicts in step 3 of the same batch (in Nexmark q5, every count joined to its window's
/// maximum). They are kept here for the batch instead, to meet the other side's rows of the
/// batch, and never encoded into their key's list in the state, which leaves the state as
/// storing and evicting them would.
struct DueRows {
    /// The rows, in input order.
    rows: RecordBatch,
    /// Each row's `matched` flag.
    matched: Vec<bool>,
    /// The rows of each key (state row format).
    by_key: HashMap<Vec<u8>, Vec<usize>>,
}

impl DueRows {
    /// Rows `picked` of `rows`, whose keys are `keys` and flags `matched`.
    fn new(rows: &RecordBatch, keys: &KeyRuns, matched: &[bool], picked: Vec<u32>) -> Result<Self> {
        // A key's bytes are copied once, not for every row.
        let by_key = keys
            .group(picked.iter().enumerate().map(|(j, i)| (*i as usize, j)))
            .into_iter()
            .map(|(first, rows)| (keys.key(first).as_ref().to_vec(), rows))
            .collect();
        let matched = picked.iter().map(|i| matched[*i as usize]).collect();
        // Often every row is due (a batch closing the windows its rows belong to): `picked`
        // ascends, so it is then every row in order, and no copy is needed.
        let rows =
            if picked.len() == rows.num_rows() { rows.clone() } else { take_record_batch(rows, &UInt32Array::from(picked))? };
        Ok(Self { rows, matched, by_key })
    }

    /// The rows whose key is `key`.
    fn rows_with_key(&self, key: &[u8]) -> &[usize] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }
}

/// Rows picked as (source, row): source 0 is `stored`, source 1 `due`'s rows.
fn pick_rows(stored: &RecordBatch, due: Option<&DueRows>, picks: &[(usize, usize)]) -> Result<RecordBatch> {
    let picked = Picked::new(stored, due.map(|d| &d.rows), picks);
    let columns = (0..stored.num_columns()).map(|j| picked.column(j)).collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(stored.schema(), columns, &RecordBatchOptions::new().with_row_count(Some(picks.len())))?)
}

/// A state entry as read for decoding: key, value (the list) and eviction time.
type StoredEntry = (StateRow, StateRow, Option<i64>);

/// Rows decoded from some of a side's state entries: every stored row, in entry order.
struct StoredRows {
    /// The entries' keys and their eviction times.
    keys: Vec<(StateRow, Option<i64>)>,
    /// Entry `g` holds rows `offsets[g]..offsets[g + 1]`.
    offsets: Vec<usize>,
    /// The stored rows as the side's columns.
    rows: RecordBatch,
    /// Each stored row's `matched` flag.
    matched: Vec<bool>,
}

impl StoredRows {
    fn decode(side: &CompiledSide, state: &KeyedState, entries: Vec<StoredEntry>) -> Result<Self> {
        let values = state.decode_values(entries.iter().map(|(_, v, _)| &v[..]))?;
        let keys: Vec<(StateRow, Option<i64>)> = entries.into_iter().map(|(k, _, t)| (k, t)).collect();
        let (offsets, elements) = match values.first() {
            Some(list) => {
                let list = list.as_list::<i32>();
                let o = list.value_offsets();
                let start = o.first().copied().unwrap_or(0) as usize;
                let end = o.last().copied().unwrap_or(0) as usize;
                let offsets: Vec<usize> = o.iter().map(|x| *x as usize - start).collect();
                (offsets, list.values().slice(start, end - start))
            }
            None => (vec![0], new_null_array(&DataType::Struct(side.element_fields.clone()), 0)),
        };
        let s = elements.as_struct();
        let n = side.schema.fields().len();
        let rows = joined_batch(&side.schema, s.columns()[..n].to_vec(), s.len())?;
        let flags = s.column(n).as_boolean();
        let matched = (0..s.len()).map(|i| flags.is_valid(i) && flags.value(i)).collect();
        Ok(Self { keys, offsets, rows, matched })
    }

    fn group_range(&self, g: usize) -> std::ops::Range<usize> {
        self.offsets[g]..self.offsets[g + 1]
    }
}

/// A side's rows (and flags) as the struct a list element is.
fn elements(side: &CompiledSide, rows: &RecordBatch, matched: &[bool]) -> Result<StructArray> {
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(BooleanArray::from(matched.to_vec())));
    Ok(StructArray::try_new(side.element_fields.clone(), columns, None)?)
}

/// One key's new list: its eviction time, and its rows as (source, row) pairs among the
/// sources given to [`put_lists`].
struct ListWrite {
    key: StateRow,
    evict_at: Option<i64>,
    picks: Vec<(usize, usize)>,
}

/// Writes whole lists, picking their rows out of `sources`.
fn put_lists(side: &CompiledSide, state: &mut KeyedState, sources: &[&StructArray], groups: Vec<ListWrite>) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let picks: Vec<(usize, usize)> = groups.iter().flat_map(|g| g.picks.iter().copied()).collect();
    let arrays: Vec<&dyn Array> = sources.iter().map(|s| *s as &dyn Array).collect();
    let values = interleave(&arrays, &picks)?;
    let offsets = OffsetBuffer::from_lengths(groups.iter().map(|g| g.picks.len()));
    let field = Arc::new(Field::new_list_field(DataType::Struct(side.element_fields.clone()), true));
    let list: ArrayRef = Arc::new(ListArray::try_new(field, offsets, values, None)?);
    let rows = state.encode_values(&[list], groups.len())?;
    for (i, g) in groups.iter().enumerate() {
        state.put(&g.key[..], rows.row(i).as_ref(), g.evict_at);
    }
    Ok(())
}

/// Counts a side's stored rows once after a load (the lists' lengths).
fn ensure_row_count(state: &mut KeyedState) -> Result<()> {
    if state.list_rows.is_some() {
        return Ok(());
    }
    let values: Vec<StateRow> = state.iter().map(|(_, e)| Arc::clone(&e.value)).collect();
    let mut rows = 0u64;
    for chunk in values.chunks(COUNT_CHUNK) {
        if let Some(list) = state.decode_values(chunk.iter().map(|v| &v[..]))?.first() {
            let o = list.as_list::<i32>().value_offsets();
            rows += (o.last().copied().unwrap_or(0) - o.first().copied().unwrap_or(0)) as u64;
        }
    }
    state.list_rows = Some(rows);
    Ok(())
}

fn bool_mask(e: &Arc<dyn PhysicalExpr>, rows: &RecordBatch) -> Result<BooleanArray> {
    let v = e.evaluate(rows)?.into_array(rows.num_rows())?;
    let b = v.as_boolean_opt().ok_or_else(|| SluiceError::internal("join condition is not boolean"))?;
    // NULL is not true: such rows fail the condition.
    Ok(match b.nulls() {
        Some(_) => prep_null_mask_filter(b),
        None => b.clone(),
    })
}

/// Per-row event times (µs) of the column a side's state watermark compares, for rows `rows`
/// with state keys `keys`.
fn state_times(side: &CompiledSide, rows: &RecordBatch, keys: &[ArrayRef]) -> Result<Vec<Option<i64>>> {
    match &side.eviction {
        StateEviction::Never => Ok(vec![None; rows.num_rows()]),
        StateEviction::Key { index, is_window } => event_time_micros(&keys[*index], *is_window),
        StateEviction::Value { column, .. } => event_time_micros(rows.column(column.index), column.is_window),
    }
}

/// Runs one partition of a stream-stream join for a batch: returns the emitted rows (`left ++
/// right`, or the left columns for a left semi join) and the metrics of both stores together.
pub fn reduce_join(
    stages: &JoinStages,
    left_state: &mut KeyedState,
    right_state: &mut KeyedState,
    left_input: &[RecordBatch],
    right_input: &[RecordBatch],
    watermarks: &BatchWatermarks,
) -> Result<(Vec<RecordBatch>, StateOperatorMetrics)> {
    let started = Instant::now();
    let mut metrics = StateOperatorMetrics::default();
    ensure_row_count(left_state)?;
    ensure_row_count(right_state)?;
    let mut out = Vec::new();
    let mut run = |side: JoinSide,
                   input: &[RecordBatch],
                   this: &mut KeyedState,
                   other: &mut KeyedState,
                   other_due: Option<&mut DueRows>|
     -> Result<Option<DueRows>> {
        let s = stages.side(side);
        let mut rows = concat_batches(&s.schema, input)?;
        if let Some(et) = s.event_time {
            let times = event_time_micros(rows.column(et.index), et.is_window)?;
            let on_time = drop_late_rows(&rows, times, watermarks)?;
            metrics.num_rows_dropped_by_watermark += on_time.dropped;
            rows = on_time.rows;
        }
        let (stored, due) =
            process_side(stages, side, rows, this, Counterpart { state: other, due: other_due }, watermarks, &mut out)?;
        metrics.num_rows_updated += stored;
        Ok(due)
    };
    let mut left_due = run(JoinSide::Left, left_input, left_state, right_state, None)?;
    let right_due = run(JoinSide::Right, right_input, right_state, left_state, left_due.as_mut())?;
    metrics.all_updates_time_ms = started.elapsed().as_millis() as u64;

    let removal_started = Instant::now();
    for (side, state, due) in [(JoinSide::Left, &mut *left_state, left_due), (JoinSide::Right, &mut *right_state, right_due)] {
        metrics.num_rows_removed += evict(stages, side, state, due, watermarks, &mut out)?;
    }
    metrics.all_removals_time_ms = removal_started.elapsed().as_millis() as u64;
    metrics.num_rows_total = left_state.list_rows.unwrap_or(0) + right_state.list_rows.unwrap_or(0);
    metrics.memory_used_bytes = (left_state.memory_bytes() + right_state.memory_bytes()) as u64;
    Ok((out, metrics))
}

/// What the rows of one side meet: the other side's state, and its rows of this batch that
/// were not stored (see [`DueRows`]).
struct Counterpart<'a> {
    state: &'a mut KeyedState,
    due: Option<&'a mut DueRows>,
}

/// Step 1 or 2 of the module docs for `side`'s (on-time) input rows. Returns the number of rows
/// stored as Spark counts them — those kept as this side's [`DueRows`] included — and those rows.
fn process_side(
    stages: &JoinStages,
    side: JoinSide,
    rows: RecordBatch,
    this_state: &mut KeyedState,
    counterpart: Counterpart<'_>,
    watermarks: &BatchWatermarks,
    out: &mut Vec<RecordBatch>,
) -> Result<(u64, Option<DueRows>)> {
    let Counterpart { state: other_state, due: mut other_due } = counterpart;
    let this = stages.side(side);
    let other_side = match side {
        JoinSide::Left => JoinSide::Right,
        JoinSide::Right => JoinSide::Left,
    };
    let other = stages.side(other_side);
    let semi = stages.join_type == JoinType::LeftSemi;
    if rows.num_rows() == 0 {
        return Ok((0, None));
    }

    // Rows failing this side's own conditions can never match: never stored, and an outer join
    // owes them a NULL-padded row now.
    let rows = match &this.pre_filter {
        Some(f) => {
            let pass = bool_mask(f, &rows)?;
            if stages.preserves(side) {
                let fail: BooleanArray = pass.iter().map(|p| p.map(|p| !p)).collect();
                let failed = filter_record_batch(&rows, &fail)?;
                if failed.num_rows() > 0 {
                    out.push(stages.null_padded(side, &failed)?);
                }
            }
            filter_record_batch(&rows, &pass)?
        }
        None => rows,
    };
    let n = rows.num_rows();
    if n == 0 {
        return Ok((0, None));
    }
    let key_columns = stages.key_columns(side, &rows)?;
    let keys = KeyRuns::new(this_state, &key_columns, n)?;

    // Probe the other side's state, once per distinct key (found once per run of equal keys).
    // NULL keys equal nothing.
    let mut group_of_key: HashMap<&[u8], Option<usize>> = HashMap::new();
    let mut found: Vec<StoredEntry> = Vec::new();
    let mut group_of_run: Vec<Option<usize>> = vec![None; keys.runs()];
    // Against an empty state (the other side has stored nothing, as when both sides of a
    // window arrive in the batch that closes it) no key is found: no lookups.
    if !other_state.is_empty() {
        for (r, group) in group_of_run.iter_mut().enumerate().filter(|(r, _)| !keys.run_is_null(*r)) {
            let k = keys.run_key(r);
            *group = *group_of_key.entry(k.data()).or_insert_with(|| {
                other_state.get_key_value(k.as_ref()).map(|(key, entry)| {
                    found.push((Arc::clone(key), Arc::clone(&entry.value), entry.evict_at));
                    found.len() - 1
                })
            });
        }
    }
    let mut stored = StoredRows::decode(other, other_state, found)?;

    // Candidate pairs with equal keys, among the other side's stored rows (source 0) and its
    // rows of this batch that were not stored (source 1); left semi's right side skips left
    // rows already matched.
    let skip_matched = semi && side == JoinSide::Right;
    let due_of_run: Vec<&[usize]> = match other_due.as_deref() {
        Some(due) => (0..keys.runs())
            .map(|r| if keys.run_is_null(r) { &[][..] } else { due.rows_with_key(keys.run_key(r).as_ref()) })
            .collect(),
        None => Vec::new(),
    };
    let (mut input_idx, mut picks) = (Vec::new(), Vec::new());
    for i in 0..n {
        let run = keys.run(i);
        if let Some(g) = group_of_run[run] {
            for j in stored.group_range(g) {
                if !(skip_matched && stored.matched[j]) {
                    input_idx.push(i as u32);
                    picks.push((0, j));
                }
            }
        }
        if let (Some(due), Some(rows)) = (other_due.as_deref(), due_of_run.get(run)) {
            for j in rows.iter().copied() {
                if !(skip_matched && due.matched[j]) {
                    input_idx.push(i as u32);
                    picks.push((1, j));
                }
            }
        }
    }
    let input_idx = UInt32Array::from(input_idx);
    let pair_count = input_idx.len();
    // The other side's unstored rows, apart from their flags (which the pairs that pass set).
    let due_rows = other_due.as_deref().map(|d| d.rows.clone());
    let pairs = Pairs { side, these: &rows, those: &stored.rows, due: due_rows.as_ref(), input_idx: &input_idx, picks: &picks };
    let pass = match &stages.post_filter {
        Some(f) => {
            let columns = pairs.columns(f.columns.iter().copied())?;
            bool_mask(&f.expr, &joined_batch(&f.schema, columns, pair_count)?)?
        }
        None => BooleanArray::from(vec![true; pair_count]),
    };

    let mut row_matched = vec![false; n];
    let mut changed_groups = vec![false; stored.keys.len()];
    let mut first_matches: Vec<(usize, usize)> = Vec::new();
    let group_of_stored: Vec<usize> =
        (0..stored.keys.len()).flat_map(|g| std::iter::repeat_n(g, stored.group_range(g).len())).collect();
    for p in pass.values().set_indices() {
        row_matched[input_idx.value(p) as usize] = true;
        let flag = match (picks[p], other_due.as_deref_mut()) {
            ((0, j), _) => {
                if !stored.matched[j] {
                    changed_groups[group_of_stored[j]] = true;
                }
                &mut stored.matched[j]
            }
            ((_, j), Some(due)) => &mut due.matched[j],
            ((_, _), None) => {
                return Err(SluiceError::internal("a join pair picked a row of a side's unstored rows, which it has none of"))
            }
        };
        if !*flag {
            *flag = true;
            first_matches.push(picks[p]);
        }
    }

    // Output.
    match (semi, side) {
        (false, _) => {
            let passed: Vec<usize> = pass.values().set_indices().collect();
            if !passed.is_empty() {
                let input_idx = UInt32Array::from_iter_values(passed.iter().map(|p| input_idx.value(*p)));
                let picks: Vec<(usize, usize)> = passed.iter().map(|p| picks[*p]).collect();
                let columns =
                    Pairs { input_idx: &input_idx, picks: &picks, ..pairs }.columns(0..stages.joined_schema.fields().len())?;
                out.push(joined_batch(&stages.joined_schema, columns, passed.len())?);
            }
        }
        (true, JoinSide::Left) => {
            let matched = filter_record_batch(&rows, &BooleanArray::from(row_matched.clone()))?;
            if matched.num_rows() > 0 {
                out.push(matched);
            }
        }
        (true, JoinSide::Right) => {
            // Each left row is emitted the first time it matches, once.
            if !first_matches.is_empty() {
                out.push(pick_rows(&stored.rows, other_due.as_deref(), &first_matches)?);
            }
        }
    }

    // The other side's rows that matched for the first time keep their new flag.
    let stored_elements = elements(other, &stored.rows, &stored.matched)?;
    let rewrites: Vec<ListWrite> = changed_groups
        .iter()
        .enumerate()
        .filter(|(_, c)| **c)
        .map(|(g, _)| ListWrite {
            key: Arc::clone(&stored.keys[g].0),
            evict_at: stored.keys[g].1,
            picks: stored.group_range(g).map(|j| (0, j)).collect(),
        })
        .collect();
    put_lists(other, other_state, &[&stored_elements], rewrites)?;

    // Store this side's rows (Spark's `shouldAddToState`) — except those the state watermark
    // already passes: step 3 would evict them at the end of this batch, so they are kept aside
    // for it instead (see [`DueRows`]).
    let times = state_times(this, &rows, &key_columns)?;
    let state_wm_us = this.eviction.state_watermark_ms(watermarks.eviction_ms).map(|ms| ms.saturating_mul(1000));
    let due_now: Vec<bool> = times.iter().map(|t| matches!((state_wm_us, t), (Some(wm), Some(t)) if *t <= wm)).collect();
    let kept: Vec<bool> = (0..n)
        .map(|i| match side {
            JoinSide::Left => !(semi && row_matched[i]),
            JoinSide::Right => !due_now[i] || (stages.preserves(side) && !row_matched[i]),
        })
        .collect();
    let due_rows: Vec<u32> = (0..n as u32).filter(|i| kept[*i as usize] && due_now[*i as usize]).collect();
    let due = (!due_rows.is_empty()).then(|| DueRows::new(&rows, &keys, &row_matched, due_rows)).transpose()?;
    let new_elements = elements(this, &rows, &row_matched)?;
    // The rows to store, by key in order of first appearance.
    let new_lists = keys.group((0..n).filter(|i| kept[*i] && !due_now[*i]).map(|i| (i, i)));
    let existing: Vec<StoredEntry> = new_lists
        .iter()
        .filter_map(|(first, _)| {
            this_state.get_key_value(keys.key(*first).as_ref()).map(|(k, e)| (Arc::clone(k), Arc::clone(&e.value), e.evict_at))
        })
        .collect();
    let mut existing_group: HashMap<StateRow, usize> = HashMap::new();
    for (g, (k, _, _)) in existing.iter().enumerate() {
        existing_group.insert(Arc::clone(k), g);
    }
    let before = StoredRows::decode(this, this_state, existing)?;
    let before_elements = elements(this, &before.rows, &before.matched)?;
    let mut writes = Vec::with_capacity(new_lists.len());
    let mut rows_stored = 0u64;
    for (first, new_rows) in &new_lists {
        let key = keys.key(*first);
        rows_stored += new_rows.len() as u64;
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut evict_at: Option<i64> = None;
        let (key_row, old_evict_at) = match existing_group.get(key.data()) {
            Some(g) => {
                picks.extend(before.group_range(*g).map(|j| (0, j)));
                (Arc::clone(&before.keys[*g].0), before.keys[*g].1)
            }
            None => (StateRow::from(key.data()), None),
        };
        picks.extend(new_rows.iter().map(|i| (1, *i)));
        if this.eviction != StateEviction::Never {
            evict_at = new_rows.iter().filter_map(|i| times[*i]).chain(old_evict_at).min();
        }
        writes.push(ListWrite { key: key_row, evict_at, picks });
    }
    put_lists(this, this_state, &[&before_elements, &new_elements], writes)?;
    this_state.list_rows = Some(this_state.list_rows.unwrap_or(0) + rows_stored);
    let due_count = due.as_ref().map_or(0, |d| d.rows.num_rows() as u64);
    Ok((rows_stored + due_count, due))
}

/// Step 3 of the module docs for one side: removes the rows at or below its state watermark,
/// emitting the unmatched ones NULL-padded when the join preserves the side — the stored ones,
/// then this batch's `due` rows, which were never stored. Returns the number of rows removed.
fn evict(
    stages: &JoinStages,
    side: JoinSide,
    state: &mut KeyedState,
    due: Option<DueRows>,
    watermarks: &BatchWatermarks,
    out: &mut Vec<RecordBatch>,
) -> Result<u64> {
    let stored = evict_stored(stages, side, state, watermarks, out)?;
    let Some(due) = due else { return Ok(stored) };
    if stages.preserves(side) {
        let unmatched = filter_record_batch(&due.rows, &due.matched.iter().map(|m| Some(!m)).collect::<BooleanArray>())?;
        if unmatched.num_rows() > 0 {
            out.push(stages.null_padded(side, &unmatched)?);
        }
    }
    Ok(stored + due.rows.num_rows() as u64)
}

/// [`evict`] of the side's stored rows.
fn evict_stored(
    stages: &JoinStages,
    side: JoinSide,
    state: &mut KeyedState,
    watermarks: &BatchWatermarks,
    out: &mut Vec<RecordBatch>,
) -> Result<u64> {
    let this = stages.side(side);
    let Some(state_wm_ms) = this.eviction.state_watermark_ms(watermarks.eviction_ms) else { return Ok(0) };
    let wm_us = state_wm_ms.saturating_mul(1000);
    let due: Vec<StoredEntry> = state.evict_through(wm_us).into_iter().map(|(k, e)| (k, e.value, e.evict_at)).collect();
    if due.is_empty() {
        return Ok(0);
    }
    let stored = StoredRows::decode(this, state, due)?;
    // A key-evicted entry leaves whole; a value-evicted one keeps its rows above the watermark.
    let times = match &this.eviction {
        StateEviction::Value { column, .. } => event_time_micros(stored.rows.column(column.index), column.is_window)?,
        _ => Vec::new(),
    };
    let removed: Vec<bool> = match &this.eviction {
        StateEviction::Value { .. } => times.iter().map(|t| t.is_some_and(|t| t <= wm_us)).collect(),
        _ => vec![true; stored.rows.num_rows()],
    };
    if stages.preserves(side) {
        let unmatched: BooleanArray = (0..removed.len()).map(|j| Some(removed[j] && !stored.matched[j])).collect();
        let rows = filter_record_batch(&stored.rows, &unmatched)?;
        if rows.num_rows() > 0 {
            out.push(stages.null_padded(side, &rows)?);
        }
    }
    let kept_elements = elements(this, &stored.rows, &stored.matched)?;
    let mut writes = Vec::new();
    for g in 0..stored.keys.len() {
        let kept: Vec<usize> = stored.group_range(g).filter(|j| !removed[*j]).collect();
        if kept.is_empty() {
            continue;
        }
        let evict_at = kept.iter().filter_map(|j| times.get(*j).copied().flatten()).min();
        writes.push(ListWrite {
            key: Arc::clone(&stored.keys[g].0),
            evict_at,
            picks: kept.into_iter().map(|j| (0, j)).collect(),
        });
    }
    put_lists(this, state, &[&kept_elements], writes)?;
    let removed_rows = removed.iter().filter(|r| **r).count() as u64;
    state.list_rows = Some(state.list_rows.unwrap_or(0).saturating_sub(removed_rows));
    Ok(removed_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::binary;

    /// A condition reading columns 1 (left) and 3 (right) of four is evaluated on those two
    /// alone, renumbered, and passes the pairs the whole pairs would; NULL fails it.
    #[test]
    fn a_pair_condition_reads_only_its_columns_and_keeps_its_meaning() {
        let joined = Arc::new(Schema::new(vec![
            Field::new("lk", DataType::Int64, true),
            Field::new("num", DataType::Int64, true),
            Field::new("rk", DataType::Int64, true),
            Field::new("maxn", DataType::Int64, true),
        ]));
        let expr = binary(Arc::new(Column::new("num", 1)), Operator::GtEq, Arc::new(Column::new("maxn", 3)), &joined).unwrap();
        let filter = PairFilter::new(Arc::clone(&expr), &joined).unwrap();
        assert_eq!(filter.columns, vec![1, 3]);
        let column = |v: Vec<Option<i64>>| Arc::new(Int64Array::from(v)) as ArrayRef;
        let num = column(vec![Some(5), Some(3), None, Some(7), Some(9)]);
        let maxn = column(vec![Some(5), Some(4), Some(1), None, Some(2)]);
        let whole =
            joined_batch(&joined, vec![column(vec![Some(0); 5]), Arc::clone(&num), column(vec![None; 5]), Arc::clone(&maxn)], 5)
                .unwrap();
        let narrow = joined_batch(&filter.schema, vec![num, maxn], 5).unwrap();
        let expected = bool_mask(&expr, &whole).unwrap();
        assert_eq!(bool_mask(&filter.expr, &narrow).unwrap(), expected);
        assert_eq!(expected, BooleanArray::from(vec![true, false, false, false, true]));
    }
}

//! A batch's keys as runs of equal keys, each encoded once.
//!
//! Why: the rows an operator receives often hold equal keys next to each other — a sliding
//! window's rows leave the pane operator window by window ([`super::panes`]), so Nexmark q5's
//! join gets ~300,000 rows a batch in runs over ~50 windows. Encoding every row's key into the
//! state's row format, then hashing each encoding again to group the rows, was most of that
//! join's work. Arrow's `partition` finds the runs (a vectorised comparison of each key column
//! with itself shifted by a row); only the first row of each run is then encoded, and callers
//! group rows by run.
//!
//! Runs may be split where keys are in fact equal (struct keys are compared field by field,
//! even inside a NULL struct): callers use runs as a shortcut to the encoded key, never as the
//! key itself. Where runs are short (keys in no order), every row is encoded, as without runs.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{is_null, partition, take};
use arrow::row::{Row, Rows};
use hashbrown::HashMap;

use sluice_common::error::Result;
use sluice_state::KeyedState;

/// Rows per run below which runs are not worth their bookkeeping: every row is encoded.
const MIN_ROWS_PER_RUN: usize = 2;

/// The keys of a batch's rows: one encoded key per run of equal keys.
pub struct KeyRuns {
    /// The encoded key of each run.
    keys: Rows,
    /// The run each row belongs to.
    run_of: Vec<u32>,
    /// Whether a run's key holds a NULL (which equals nothing in a join).
    null: Vec<bool>,
}

impl KeyRuns {
    /// Encodes the key columns `columns` of `n` rows with `state`'s key layout.
    pub fn new(state: &KeyedState, columns: &[ArrayRef], n: usize) -> Result<Self> {
        let (keys, run_of, key_columns) = match run_starts(columns, n)? {
            Some(starts) if starts.len().saturating_mul(MIN_ROWS_PER_RUN) <= n => {
                let mut run_of = Vec::with_capacity(n);
                for r in 0..starts.len() {
                    let end = starts.get(r + 1).map_or(n, |e| *e as usize);
                    run_of.resize(end, r as u32);
                }
                let at = UInt32Array::from(starts);
                let firsts = columns.iter().map(|c| Ok(take(c.as_ref(), &at, None)?)).collect::<Result<Vec<ArrayRef>>>()?;
                (state.encode_keys(&firsts, at.len())?, run_of, firsts)
            }
            _ => (state.encode_keys(columns, n)?, (0..n as u32).collect(), columns.to_vec()),
        };
        let null = (0..keys.num_rows()).map(|r| key_columns.iter().any(|c| c.is_null(r))).collect();
        Ok(Self { keys, run_of, null })
    }

    /// The number of runs.
    pub fn runs(&self) -> usize {
        self.keys.num_rows()
    }

    /// The run row `i` belongs to.
    pub fn run(&self, i: usize) -> usize {
        self.run_of[i] as usize
    }

    /// The encoded key of run `r`.
    pub fn run_key(&self, r: usize) -> Row<'_> {
        self.keys.row(r)
    }

    /// Whether run `r`'s key holds a NULL.
    pub fn run_is_null(&self, r: usize) -> bool {
        self.null[r]
    }

    /// The encoded key of row `i`.
    pub fn key(&self, i: usize) -> Row<'_> {
        self.keys.row(self.run(i))
    }

    /// `items`, (row, value) pairs, grouped by their row's key in order of first appearance:
    /// each group's first row and values, in the items' order. A key is looked up once per
    /// run of items from one run of rows, not once per item.
    pub fn group(&self, items: impl IntoIterator<Item = (usize, usize)>) -> Vec<(usize, Vec<usize>)> {
        let mut group_of_key: HashMap<&[u8], usize> = HashMap::new();
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut current: Option<(usize, usize)> = None;
        for (row, value) in items {
            let run = self.run(row);
            let g = match current {
                Some((r, g)) if r == run => g,
                _ => *group_of_key.entry(self.run_key(run).data()).or_insert_with(|| {
                    groups.push((row, Vec::new()));
                    groups.len() - 1
                }),
            };
            groups[g].1.push(value);
            current = Some((run, g));
        }
        groups
    }
}

/// The first row of every run of rows whose key columns are all equal, as Arrow's `partition`
/// finds them; `None` when it cannot compare a key's type (every row is then its own run).
fn run_starts(columns: &[ArrayRef], n: usize) -> Result<Option<Vec<u32>>> {
    if n == 0 {
        return Ok(Some(Vec::new()));
    }
    let mut flat = Vec::with_capacity(columns.len());
    for column in columns {
        flatten(column, &mut flat)?;
    }
    Ok(partition(&flat).ok().map(|p| p.ranges().iter().map(|r| r.start as u32).collect()))
}

/// A key column as `partition` compares it fastest: a struct as its validity and its fields
/// (each with a vectorised kernel, where a struct is compared row by row), anything else as is.
fn flatten(column: &ArrayRef, flat: &mut Vec<ArrayRef>) -> Result<()> {
    match column.as_struct_opt() {
        Some(fields) => {
            if column.null_count() > 0 {
                flat.push(Arc::new(is_null(column)?));
            }
            for field in fields.columns() {
                flatten(field, flat)?;
            }
        }
        None => flat.push(Arc::clone(column)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray, StructArray};
    use arrow::buffer::NullBuffer;
    use arrow::datatypes::{DataType, Field, Fields, Schema};

    use super::*;

    fn state(key: &ArrayRef) -> KeyedState {
        let keys = Arc::new(Schema::new(vec![Field::new("k0", key.data_type().clone(), true)]));
        KeyedState::new(keys, Arc::new(Schema::empty())).unwrap()
    }

    fn runs_of(runs: &KeyRuns, n: usize) -> Vec<usize> {
        (0..n).map(|i| runs.run(i)).collect()
    }

    /// Runs follow equal neighbours, NULL included; a row's key is the encoding of its own
    /// value, as encoding every row gives.
    #[test]
    fn rows_share_the_encoded_key_of_their_run() {
        let values =
            vec![Some(1), Some(1), Some(1), Some(1), None, None, None, None, Some(2), Some(2), Some(2), Some(2), Some(1)];
        let key: ArrayRef = Arc::new(Int64Array::from(values.clone()));
        let state = state(&key);
        let runs = KeyRuns::new(&state, std::slice::from_ref(&key), values.len()).unwrap();
        assert_eq!(runs_of(&runs, values.len()), vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3]);
        let every_row = state.encode_keys(std::slice::from_ref(&key), values.len()).unwrap();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(runs.key(i), every_row.row(i), "row {i}");
            assert_eq!(runs.run_is_null(runs.run(i)), v.is_none(), "row {i}");
        }
    }

    /// A struct key's runs end where a field or the struct's own NULL changes.
    #[test]
    fn struct_keys_split_on_any_field_and_on_null() {
        let fields = Fields::from(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Utf8, true)]);
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1, 1, 1, 1, 1, 1, 7, 7]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["x", "x", "x", "x", "y", "y", "y", "y", "y", "y"]));
        let nulls = NullBuffer::from(vec![true, true, true, true, true, true, false, false, true, true]);
        let key: ArrayRef = Arc::new(StructArray::new(fields, vec![a, b], Some(nulls)));
        let state = state(&key);
        let runs = KeyRuns::new(&state, std::slice::from_ref(&key), 10).unwrap();
        assert_eq!(runs_of(&runs, 10), vec![0, 0, 0, 0, 1, 1, 2, 2, 3, 3]);
        let every_row = state.encode_keys(std::slice::from_ref(&key), 10).unwrap();
        for i in 0..10 {
            assert_eq!(runs.key(i), every_row.row(i), "row {i}");
            assert_eq!(runs.run_is_null(runs.run(i)), (6..8).contains(&i), "row {i}");
        }
    }

    /// Items group by their rows' keys, equal keys in separate runs together, in order of
    /// first appearance.
    #[test]
    fn items_group_by_key_across_runs() {
        let key: ArrayRef = Arc::new(Int64Array::from(vec![5, 5, 5, 8, 8, 8, 5, 5, 5, 2]));
        let state = state(&key);
        let runs = KeyRuns::new(&state, std::slice::from_ref(&key), 10).unwrap();
        assert_eq!(runs.runs(), 4);
        let groups = runs.group([0, 2, 3, 6, 9, 8].map(|row| (row, 10 * row)));
        assert_eq!(groups, vec![(0, vec![0, 20, 60, 80]), (3, vec![30]), (9, vec![90])]);
    }

    /// Keys in no order are encoded row by row: a run per row.
    #[test]
    fn unordered_keys_are_encoded_row_by_row() {
        let key: ArrayRef = Arc::new(Int64Array::from(vec![3, 1, 4, 1, 5, 9, 2, 6]));
        let state = state(&key);
        let runs = KeyRuns::new(&state, std::slice::from_ref(&key), 8).unwrap();
        assert_eq!(runs_of(&runs, 8), (0..8).collect::<Vec<_>>());
        let every_row = state.encode_keys(std::slice::from_ref(&key), 8).unwrap();
        assert!((0..8).all(|i| runs.key(i) == every_row.row(i)));
    }
}

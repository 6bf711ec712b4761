//! Struct-valued `GROUP BY` keys grouped by their fields.
//!
//! A streaming aggregation over windows groups by the window, a `struct<start, end>`. DataFusion
//! groups a struct key through the Arrow row format: it encodes every row's struct into bytes
//! before it can compare it, which cost about a fifth of a windowed count's CPU (W1 in `bench/`).
//! Its primitive group columns compare values in place. So sluice's aggregations group by each
//! struct key's validity and its fields instead — the same groups, since two structs are equal
//! exactly when both are NULL or both are valid with equal fields — and rebuild the struct
//! column afterwards:
//!
//! * on the map side, the partial aggregation is planned over a projection that computes each
//!   struct key once and groups by its validity and fields ([`FlatGroupKeys::plan`]);
//! * on the reduce side, partial rows are flattened the same way before they are merged or
//!   finalised ([`FlatGroupKeys::flatten`]).
//!
//! Either way the rows that come out have the layout the shuffle, the state key and the output
//! expect; nothing else sees the change.

use std::sync::Arc;

use arrow::array::{make_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, StructArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::{col, Aggregate, Expr, LogicalPlan, Projection};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::PhysicalGroupBy;

use sluice_common::error::{Result, SluiceError};

/// An aggregation's struct keys grouped by their fields: the map side's plan, the reduce side's
/// grouping, and how to put the structs back together.
#[derive(Debug, Clone)]
pub struct FlatGroupKeys {
    /// The map side's `Aggregate`, grouping by fields (over a projection that computes each
    /// struct once).
    pub plan: LogicalPlan,
    /// The group columns of the partial rows (the structs among them rebuilt as these); which
    /// of them are grouped by their fields is [`key_fields`]'s to say.
    group_fields: Vec<FieldRef>,
    /// Partial rows with their struct keys flattened, and their grouping by those columns.
    flat_partial_schema: SchemaRef,
    flat_group_by: PhysicalGroupBy,
}

/// The number of fields of a struct of `ty` whose fields DataFusion groups with its column-wise
/// builders (no nested fields), so that grouping by the fields is worth it; `None` otherwise.
fn groups_by_fields(ty: &DataType) -> Option<usize> {
    match ty {
        DataType::Struct(fields) if !fields.is_empty() && fields.iter().all(|f| f.data_type().is_primitive()) => {
            Some(fields.len())
        }
        _ => None,
    }
}

/// The fields a group key of `field`'s type is grouped by, or `None` for a key grouped as it is.
fn key_fields(field: &Field) -> Option<&Fields> {
    match field.data_type() {
        DataType::Struct(fields) if groups_by_fields(field.data_type()).is_some() => Some(fields),
        _ => None,
    }
}

impl FlatGroupKeys {
    /// The flattened form of `aggregate` (an `Aggregate` node) whose partial rows are laid out
    /// as `partial_schema`, or `None` when it has no struct key to flatten or groups by
    /// grouping sets.
    pub fn of(aggregate: &LogicalPlan, partial_schema: &SchemaRef) -> Result<Option<Self>> {
        let LogicalPlan::Aggregate(agg) = aggregate else {
            return Ok(None);
        };
        if agg.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
            return Ok(None);
        }
        let group_fields: Vec<FieldRef> = partial_schema.fields().iter().take(agg.group_expr.len()).cloned().collect();
        if group_fields.iter().all(|f| key_fields(f).is_none()) {
            return Ok(None);
        }
        let input_schema: &DFSchema = agg.input.schema();
        // Each struct is computed once, as a column next to the input's, and its validity and
        // fields are read off that column.
        let mut projected: Vec<Expr> = input_schema.columns().into_iter().map(Expr::Column).collect();
        let mut group_expr = Vec::new();
        for (i, (e, field)) in agg.group_expr.iter().zip(&group_fields).enumerate() {
            match key_fields(field) {
                None => group_expr.push(e.clone()),
                Some(fields) => {
                    let name = format!("__sluice_struct_key_{i}");
                    projected.push(e.clone().alias(&name));
                    group_expr.push(col(name.as_str()).is_not_null());
                    group_expr.extend(fields.iter().map(|f| get_field(col(name.as_str()), f.name().as_str())));
                }
            }
        }
        let input = LogicalPlan::Projection(Projection::try_new(projected, Arc::clone(&agg.input))?);
        let plan = LogicalPlan::Aggregate(Aggregate::try_new(Arc::new(input), group_expr, agg.aggr_expr.clone())?);

        let mut flat_fields: Vec<FieldRef> = Vec::new();
        for field in &group_fields {
            match key_fields(field) {
                Some(children) => {
                    flat_fields.push(Arc::new(Field::new(format!("{}.valid", field.name()), DataType::Boolean, false)));
                    flat_fields.extend(children.iter().map(|c| {
                        Arc::new(c.as_ref().clone().with_name(format!("{}.{}", field.name(), c.name())).with_nullable(true))
                    }));
                }
                None => flat_fields.push(Arc::clone(field)),
            }
        }
        let flat_group_by = PhysicalGroupBy::new_single(
            flat_fields.iter().enumerate().map(|(i, f)| (Arc::new(Column::new(f.name(), i)) as _, f.name().clone())).collect(),
        );
        flat_fields.extend(partial_schema.fields().iter().skip(group_fields.len()).cloned());
        let flat_partial_schema = Arc::new(Schema::new(flat_fields));
        Ok(Some(Self { plan, group_fields, flat_partial_schema, flat_group_by }))
    }

    /// Partial rows with their struct keys flattened (laid out as [`Self::flat_partial_schema`]).
    pub fn flatten(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.flat_partial_schema.fields().len());
        for (i, field) in self.group_fields.iter().enumerate() {
            let column = rows.column(i);
            match key_fields(field) {
                None => columns.push(Arc::clone(column)),
                Some(_) => {
                    let s = column
                        .as_struct_opt()
                        .ok_or_else(|| SluiceError::internal("a struct group key is not a struct in the partial rows"))?;
                    let valid = match s.logical_nulls() {
                        Some(nulls) => BooleanArray::new(nulls.inner().clone(), None),
                        None => BooleanArray::from(vec![true; s.len()]),
                    };
                    columns.push(Arc::new(valid));
                    for child in s.columns() {
                        // A NULL struct's fields hold anything; as NULLs they group together.
                        columns.push(match s.nulls() {
                            Some(parent) => {
                                let nulls = NullBuffer::union(Some(parent), child.logical_nulls().as_ref());
                                make_array(child.to_data().into_builder().nulls(nulls).build()?)
                            }
                            None => Arc::clone(child),
                        });
                    }
                }
            }
        }
        columns.extend(rows.columns()[self.group_fields.len()..].iter().cloned());
        batch(&self.flat_partial_schema, columns, rows.num_rows())
    }

    /// Partial rows with their struct keys flattened: their layout.
    pub fn flat_partial_schema(&self) -> &SchemaRef {
        &self.flat_partial_schema
    }

    /// The reduce side's grouping of flattened partial rows: by their flattened key columns.
    pub fn flat_group_by(&self) -> &PhysicalGroupBy {
        &self.flat_group_by
    }

    /// Rows whose first columns are flattened keys (a flattened aggregation's output) with each
    /// struct key rebuilt from its validity and fields: the key columns of the partial rows,
    /// then the rest as they are. Laid out as `target` when given, or else under the partial
    /// rows' key fields and `rows`' own fields for the rest.
    pub fn restore(&self, rows: &RecordBatch, target: Option<&SchemaRef>) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(rows.num_columns());
        let mut next = 0;
        for field in &self.group_fields {
            match key_fields(field) {
                Some(children) => {
                    let valid = rows
                        .column(next)
                        .as_boolean_opt()
                        .ok_or_else(|| SluiceError::internal("a flattened group key's validity is not a BOOLEAN column"))?;
                    let values = rows.columns()[next + 1..next + 1 + children.len()].to_vec();
                    let nulls = (valid.false_count() > 0).then(|| NullBuffer::new(valid.values().clone()));
                    columns.push(Arc::new(StructArray::try_new(children.clone(), values, nulls)?));
                    next += 1 + children.len();
                }
                None => {
                    columns.push(Arc::clone(rows.column(next)));
                    next += 1;
                }
            }
        }
        columns.extend(rows.columns()[next..].iter().cloned());
        let schema = match target {
            Some(target) => Arc::clone(target),
            None => {
                let rest = rows.schema_ref().fields().iter().skip(next).cloned();
                Arc::new(Schema::new(self.group_fields.iter().cloned().chain(rest).collect::<Vec<_>>()))
            }
        };
        batch(&schema, columns, rows.num_rows())
    }
}

fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    if columns.len() != schema.fields().len() {
        return Err(SluiceError::internal(format!(
            "{} columns for a layout of {}: a flattened aggregation's rows do not line up",
            columns.len(),
            schema.fields().len()
        )));
    }
    Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &RecordBatchOptions::new().with_row_count(Some(rows)))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::TimeUnit;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::aggregates::AggregateExec;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    use crate::operators::aggregate::AggregateStages;
    use crate::operators::plan_partial;

    /// Each row as text, sorted: rows compared as a multiset, since grouping may order groups
    /// differently. A NULL struct prints as `∅`, a struct of NULLs as `{start: ∅, end: ∅}`.
    fn rows_as_text(batches: &[RecordBatch]) -> Vec<String> {
        let options = FormatOptions::default().with_null("∅");
        let mut lines = Vec::new();
        for b in batches {
            let formatters: Vec<_> = b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
            for row in 0..b.num_rows() {
                lines.push(formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join(" | "));
            }
        }
        lines.sort();
        lines
    }

    fn events() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("action", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
        ]));
        let minute = 60_000_000i64;
        let times = [Some(0), Some(minute), Some(6 * minute), None, Some(7 * minute), None, Some(11 * minute), Some(minute)];
        let actions = [Some("a"), Some("a"), Some("b"), Some("a"), None, Some("a"), Some("b"), None];
        let amounts = [Some(1), Some(2), Some(3), Some(4), Some(5), None, Some(2), Some(1)];
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC")),
                Arc::new(StringArray::from(actions.to_vec())),
                Arc::new(Int64Array::from(amounts.to_vec())),
            ],
        )
        .unwrap()
    }

    /// What `sql`'s aggregation gives with its struct keys grouped whole by DataFusion and
    /// grouped by their fields: (whole, by fields).
    struct BothWays {
        /// The map side's partial rows.
        partial: (Vec<RecordBatch>, Vec<RecordBatch>),
        /// The partial rows, twice over, merged into one row per key.
        merged: (Vec<RecordBatch>, Vec<RecordBatch>),
        /// The merged rows' final values.
        finished: (Vec<RecordBatch>, Vec<RecordBatch>),
    }

    async fn both_ways(sql: &str) -> BothWays {
        let ctx = SessionContext::new_with_state(sluice_plan::compile::base_session_state());
        let batch = events();
        ctx.register_table("events", Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap())).unwrap();
        let state = ctx.state();
        let mut plan = sluice_plan::compile::plan_sql(&state, sql).await.unwrap();
        while !matches!(plan, LogicalPlan::Aggregate(_)) {
            plan = plan.inputs()[0].clone();
        }
        let original = plan_partial(&state, &plan).await.unwrap();
        let whole = AggregateStages::from_partial(original.downcast_ref::<AggregateExec>().unwrap()).unwrap();
        let partial_schema = Arc::clone(&whole.partial_schema);
        let flat = FlatGroupKeys::of(&plan, &partial_schema).unwrap().expect("the aggregation has a struct key to flatten");
        let mut by_fields = whole.clone();
        by_fields.flat_keys = Some(flat.clone());

        let partial_whole = collect(original, ctx.task_ctx()).await.unwrap();
        let flat_plan = plan_partial(&state, &flat.plan).await.unwrap();
        let no_struct_key = flat_plan.schema().fields().iter().all(|f| !matches!(f.data_type(), DataType::Struct(_)));
        assert!(no_struct_key, "the flattened aggregation still groups by a struct: {:?}", flat_plan.schema());
        let partial_by_fields: Vec<RecordBatch> = collect(flat_plan, ctx.task_ctx())
            .await
            .unwrap()
            .iter()
            .map(|b| flat.restore(b, Some(&partial_schema)).unwrap())
            .collect();
        assert!(partial_by_fields.iter().all(|b| b.schema() == partial_schema));

        let twice = [partial_whole.clone(), partial_whole.clone()].concat();
        let merged_whole = whole.merge(twice.clone(), &ctx.task_ctx()).await.unwrap();
        let merged_by_fields = by_fields.merge(twice, &ctx.task_ctx()).await.unwrap();
        let finished_whole = whole.finish(vec![merged_whole.clone()], &ctx.task_ctx()).await.unwrap();
        let finished_by_fields = by_fields.finish(vec![merged_whole.clone()], &ctx.task_ctx()).await.unwrap();
        assert_eq!(finished_by_fields[0].schema(), finished_whole[0].schema());
        BothWays {
            partial: (partial_whole, partial_by_fields),
            merged: (vec![merged_whole], vec![merged_by_fields]),
            finished: (finished_whole, finished_by_fields),
        }
    }

    fn assert_same_rows(what: &str, (whole, by_fields): (&[RecordBatch], &[RecordBatch])) {
        assert_eq!(rows_as_text(by_fields), rows_as_text(whole), "{what}: grouped by fields, then grouped whole");
    }

    #[tokio::test]
    async fn windows_grouped_by_their_fields_give_the_rows_of_windows_grouped_whole() {
        let both = both_ways(
            "SELECT window(event_time, '5 minutes') AS w, action, count(*) AS n, sum(amount) AS total \
             FROM events GROUP BY window(event_time, '5 minutes'), action",
        )
        .await;
        // The 6 rows with a time (a NULL time has no window, as in Spark) in 5 groups: window,
        // action, then the partial count and sum.
        let minutes = |m: u32| format!("1970-01-01T00:{m:02}:00Z");
        let window = |from: u32| format!("{{start: {}, end: {}}}", minutes(from), minutes(from + 5));
        let expected: Vec<String> = [(0, "a", 2, 3), (0, "∅", 1, 1), (5, "b", 1, 3), (5, "∅", 1, 5), (10, "b", 1, 2)]
            .iter()
            .map(|(from, action, n, total)| format!("{} | {action} | {n} | {total}", window(*from)))
            .collect();
        assert_eq!(rows_as_text(&both.partial.0), expected);
        assert_same_rows("partial rows", (&both.partial.0, &both.partial.1));
        assert_same_rows("merged rows", (&both.merged.0, &both.merged.1));
        assert_eq!(both.merged.1[0].num_rows(), 5, "one merged row per key");
        assert_same_rows("final values", (&both.finished.0, &both.finished.1));
        // The merge doubled the counts: the partial rows went in twice.
        let counts: i64 = both
            .finished
            .1
            .iter()
            .map(|b| arrow::compute::sum(b.column(2).as_primitive::<arrow::datatypes::Int64Type>()).unwrap_or(0))
            .sum();
        assert_eq!(counts, 12);
    }

    #[tokio::test]
    async fn a_null_struct_and_a_struct_of_nulls_stay_apart() {
        // Amount 1 gives a NULL struct; amount 2 and a NULL amount a struct of NULLs; the rest
        // {a: amount % 2, b: NULL}.
        let both = both_ways(
            "SELECT k, count(*) AS n FROM (SELECT CASE WHEN amount = 1 THEN NULL \
             ELSE named_struct('a', CASE WHEN amount = 2 THEN NULL ELSE amount % 2 END, 'b', CAST(NULL AS BIGINT)) END AS k \
             FROM events) GROUP BY k",
        )
        .await;
        assert_same_rows("partial rows", (&both.partial.0, &both.partial.1));
        assert_same_rows("merged rows", (&both.merged.0, &both.merged.1));
        assert_same_rows("final values", (&both.finished.0, &both.finished.1));
        // Groups: NULL (amounts 1, 1), {NULL, NULL} (2, 2, NULL), {1, NULL} (3, 5), {0, NULL} (4).
        let finished = rows_as_text(&both.finished.1);
        assert_eq!(finished.len(), 4, "{finished:#?}");
        let null_structs: usize = both.finished.1.iter().map(|b| b.column(0).null_count()).sum();
        assert_eq!(null_structs, 1, "{finished:#?}");
    }

    #[tokio::test]
    async fn null_structs_group_together_whatever_their_fields_hold() {
        // Two NULL windows whose fields hold different values (Arrow leaves them undefined).
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let window = sluice_plan::functions::window::window_struct_type(&ts);
        let DataType::Struct(fields) = window.clone() else { unreachable!() };
        let structs = StructArray::new(
            fields,
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![1, 2, 3])),
                Arc::new(TimestampMicrosecondArray::from(vec![4, 5, 6])),
            ],
            Some(NullBuffer::from(vec![false, false, true])),
        );
        let partial_schema = Arc::new(Schema::new(vec![Field::new("w", window, true), Field::new("n", DataType::Int64, true)]));
        let rows =
            RecordBatch::try_new(Arc::clone(&partial_schema), vec![Arc::new(structs), Arc::new(Int64Array::from(vec![1, 1, 1]))])
                .unwrap();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(Arc::clone(&partial_schema), vec![vec![rows.clone()]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = ctx.sql("SELECT w, sum(n) FROM t GROUP BY w").await.unwrap().into_unoptimized_plan();
        let LogicalPlan::Projection(p) = plan else { panic!("{plan}") };
        let flat = FlatGroupKeys::of(&p.input, &partial_schema).unwrap().unwrap();
        let flat_rows = flat.flatten(&rows).unwrap();
        let valid = flat_rows.column(0).as_boolean();
        assert_eq!(valid.iter().collect::<Vec<_>>(), vec![Some(false), Some(false), Some(true)]);
        for field in 1..=2 {
            assert_eq!(flat_rows.column(field).null_count(), 2, "the NULL windows' fields are NULL");
        }
        let back = flat.restore(&flat_rows, Some(&partial_schema)).unwrap();
        assert_eq!(back.column(0).logical_nulls(), rows.column(0).logical_nulls());
        assert_eq!(back.column(0).as_struct().column(0).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(2), 3);
    }

    #[test]
    fn only_structs_of_flat_fields_are_grouped_by_field() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(groups_by_fields(&sluice_plan::functions::window::window_struct_type(&ts)), Some(2));
        let nested = DataType::Struct(vec![Field::new("s", DataType::Struct(Default::default()), true)].into());
        assert_eq!(groups_by_fields(&nested), None);
        assert_eq!(groups_by_fields(&DataType::Struct(Default::default())), None);
        assert_eq!(groups_by_fields(&DataType::Utf8), None);
    }
}

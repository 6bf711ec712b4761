//! The resolved definition of one streaming query, as the driver ships it to executors.

use arrow::datatypes::SchemaRef;
use sluice_common::error::Result;
use sluice_common::time::Interval;
use sluice_common::{OutputMode, QueryConf};
use sluice_connectors::{SinkSpec, SourceSpec, TableSpec};

/// One stream a query reads: its connector's spec, plus what the query adds on top of the
/// connector's columns — computed columns and the watermark.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StreamSpec {
    /// The connector side: name, index, options and the columns it produces.
    pub source: SourceSpec,
    /// Columns computed from each input row before the watermark.
    pub computed: Vec<ComputedColumn>,
    /// `WATERMARK FOR`, if declared.
    pub watermark: Option<WatermarkDef>,
}

impl StreamSpec {
    /// The columns the connector produces (before computed columns).
    pub fn declared_schema(&self) -> &SchemaRef {
        &self.source.schema
    }
}

/// `name AS expr` inside a `CREATE STREAM` column list: evaluated on every input row before the
/// watermark, which is how a watermark on a derived column (`timestamp_seconds(value)`) is written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComputedColumn {
    /// The column's name.
    pub name: String,
    /// The expression's SQL text, planned against the declared columns.
    pub expr: String,
}

/// `WATERMARK FOR column AS column - INTERVAL …` — Spark's `withWatermark(column, delay)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WatermarkDef {
    /// The event-time column.
    pub column: String,
    /// How late data may arrive.
    pub delay: Interval,
    /// `delay` in milliseconds with Spark's month = 31 days rule.
    pub delay_ms: i64,
}

/// A query as the driver resolved it: everything an executor needs to run its tasks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuerySpec {
    /// Persistent id from the checkpoint's `metadata`.
    pub query_id: uuid::Uuid,
    /// Id of this run (changes on every start).
    pub run_id: uuid::Uuid,
    /// `queryName`, if set.
    pub name: Option<String>,
    /// The SELECT, as written.
    pub select_sql: String,
    /// The streams the query reads, in source-index order.
    pub sources: Vec<StreamSpec>,
    /// Static tables the query may read.
    pub tables: Vec<TableSpec>,
    /// Views, in declaration order: (name, SELECT).
    pub views: Vec<(String, String)>,
    /// Where results go: the `CREATE SINK`'s connector and its validated options.
    pub sink: SinkSpec,
    /// What each batch emits to the sink (append, update or complete).
    pub output_mode: OutputMode,
    /// Execution settings, with the confs recorded in the checkpoint's `offsets/N` already applied over the job file's.
    pub conf: QueryConf,
    /// Absolute URL of the checkpoint (state files live under `state/`).
    pub checkpoint_url: String,
}

impl QuerySpec {
    /// The secret values in the spec's options (sources, tables, sink), to scrub from the
    /// errors and messages of this query ([`sluice_common::redact`]).
    pub fn redactor(&self) -> sluice_common::redact::Redactor {
        let mut r = sluice_common::redact::Redactor::new();
        for s in &self.sources {
            r.add_options(&s.source.options);
        }
        for t in &self.tables {
            r.add_options(&t.options);
        }
        r.add_options(&self.sink.options);
        r
    }

    /// A stable hash of the spec, so executors can cache its compiled form.
    pub fn fingerprint(&self) -> Result<u64> {
        use std::hash::{Hash, Hasher};
        let json = serde_json::to_string(self)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        json.hash(&mut h);
        Ok(h.finish())
    }
}

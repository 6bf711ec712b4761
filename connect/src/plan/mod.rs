//! A client's DataFrame plan → sluice's job language.
//!
//! Every DataFrame becomes a SELECT over the streams and tables its reads declare; writing it
//! (`writeStream…start()`) adds a sink and the query's settings, and the result is a job text
//! submitted exactly as `sluice submit` submits a job file — same parser, secrets, policy,
//! planner and engine. `explain()` shows that text, so a user can see what sluice runs.

pub mod expr;
pub mod relation;

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use sluice_driver::batch::MemoryRelation;

use crate::error::Result;
use crate::plan::expr::string_literal;
use crate::proto::Relation;
use crate::types::quote_ident;

/// A stream a DataFrame reads: one `CREATE STREAM`.
#[derive(Debug, Clone, Default)]
pub struct StreamDecl {
    /// Its name in the SQL (`_s0`, `_s1`, …).
    pub name: String,
    /// Declared columns as DDL (`a BIGINT, b STRING`); `None` for connectors with a fixed schema.
    pub columns: Option<String>,
    /// Computed columns (`name AS expr`), in order: projections applied before `withWatermark`.
    pub computed: Vec<(String, String)>,
    /// `withWatermark(column, delay)`.
    pub watermark: Option<(String, String)>,
    /// Connector and options, in the order given.
    pub options: Vec<(String, String)>,
}

/// A static table a DataFrame reads: one `CREATE TABLE`.
#[derive(Debug, Clone, Default)]
pub struct TableDecl {
    /// Its name in the SQL (`_t0`, …).
    pub name: String,
    /// Declared columns as DDL.
    pub columns: Option<String>,
    /// Connector and options.
    pub options: Vec<(String, String)>,
}

/// The streams and tables a plan reads, and the session state it refers to.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    /// `CREATE STREAM`s.
    pub streams: Vec<StreamDecl>,
    /// `CREATE TABLE`s.
    pub tables: Vec<TableDecl>,
    /// `CREATE VIEW`s: the temporary views a `spark.sql` text names.
    pub views: Vec<(String, String)>,
    /// Memory sinks (by query name) and foreachBatch batches (by id) the plan reads.
    pub memory: BTreeMap<String, MemoryRelation>,
}

impl Declarations {
    /// The `CREATE STREAM`/`CREATE TABLE` statements, one per line.
    pub fn to_job_text(&self) -> String {
        let mut out = String::new();
        for s in &self.streams {
            let mut parts: Vec<String> = s.columns.iter().cloned().collect();
            parts.extend(s.computed.iter().map(|(n, e)| format!("{} AS {e}", quote_ident(n))));
            if let Some((col, delay)) = &s.watermark {
                let c = quote_ident(col);
                parts.push(format!("WATERMARK FOR {c} AS {c} - INTERVAL {}", string_literal(delay)));
            }
            let columns = if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) };
            out.push_str(&format!("CREATE STREAM {}{columns} WITH ({});\n", s.name, options_text(&s.options)));
        }
        for t in &self.tables {
            let columns = t.columns.as_ref().map(|c| format!(" ({c})")).unwrap_or_default();
            out.push_str(&format!("CREATE TABLE {}{columns} WITH ({});\n", t.name, options_text(&t.options)));
        }
        for (name, select) in &self.views {
            out.push_str(&format!("CREATE VIEW {} AS {select};\n", quote_ident(name)));
        }
        out
    }

    /// Whether any stream is read.
    pub fn is_streaming(&self) -> bool {
        !self.streams.is_empty()
    }
}

/// `'key' = 'value', …` for a `WITH` clause.
pub fn options_text(options: &[(String, String)]) -> String {
    options.iter().map(|(k, v)| format!("{} = {}", string_literal(k), string_literal(v))).collect::<Vec<_>>().join(", ")
}

/// A planned DataFrame: its declarations and its SELECT.
#[derive(Debug, Clone)]
pub struct PlannedFrame {
    /// What it reads.
    pub decls: Declarations,
    /// The SELECT over them.
    pub select: String,
}

impl PlannedFrame {
    /// Whether it reads a stream (Spark's `isStreaming`).
    pub fn is_streaming(&self) -> bool {
        self.decls.is_streaming()
    }

    /// A job text planning just this SELECT (its rows go nowhere): for its schema, and for a
    /// batch query's run.
    pub fn probe_job_text(&self) -> String {
        format!(
            "{}CREATE SINK _result WITH ('connector' = 'noop');\nINSERT INTO _result\n{};\n",
            self.decls.to_job_text(),
            self.select
        )
    }
}

/// What planning needs from the client's session and the engine.
pub trait PlanEnv: Send + Sync {
    /// A temporary view created with `createOrReplaceTempView`.
    fn temp_view(&self, name: &str) -> Option<Relation>;
    /// A memory sink's table (by query name) or a foreachBatch batch (by its id).
    fn memory_relation(&self, name: &str) -> Option<MemoryRelation>;
    /// A table a query wrote with `toTable(name)`: its path (Parquet files) and schema.
    fn table(&self, name: &str) -> Option<(String, SchemaRef)>;
    /// The output schema of `frame`'s SELECT.
    fn schema<'a>(&'a self, frame: &'a PlannedFrame) -> BoxFuture<'a, Result<SchemaRef>>;
}

//! The statements of a job file, as the parser produces them: `CREATE STREAM`/`TABLE`/`VIEW`/
//! `SINK`, `SET` and `INSERT INTO`, each with the line it starts on.

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::ast::Query;
use sluice_common::options::Options;
use sluice_plan::{ComputedColumn, WatermarkDef};

/// A statement with the line it starts on and its original text.
///
/// `Debug` shows the text with the statement's secret option values redacted.
#[derive(Clone)]
pub struct ParsedStatement {
    /// 1-based line of the first token.
    pub line: u64,
    /// The statement as the user wrote it, without the trailing `;`.
    pub sql: String,
    /// What the statement does.
    pub kind: StatementKind,
}

impl std::fmt::Debug for ParsedStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut redactor = sluice_common::redact::Redactor::new();
        match &self.kind {
            StatementKind::CreateStream(r) | StatementKind::CreateTable(r) => redactor.add_options(&r.options),
            StatementKind::CreateSink(s) => redactor.add_options(&s.options),
            StatementKind::Set { key, value } => redactor.add_pairs([(key.as_str(), value.as_str())]),
            _ => {}
        }
        f.debug_struct("ParsedStatement")
            .field("line", &self.line)
            .field("sql", &redactor.scrub(&self.sql))
            .field("kind", &format_args!("{}", redactor.scrub(&format!("{:?}", self.kind))))
            .finish()
    }
}

/// The job-file statements sluice understands.
#[derive(Debug, Clone)]
pub enum StatementKind {
    /// `CREATE STREAM` — an unbounded input.
    CreateStream(RelationDef),
    /// `CREATE TABLE` — a static (batch) input, re-read every micro-batch as Spark does.
    CreateTable(RelationDef),
    /// `CREATE VIEW name AS SELECT …` — a named sub-query.
    CreateView {
        /// The view's name; shares one namespace with streams, tables and sinks.
        name: String,
        /// The view's SELECT; kept as SQL text in [`JobFile::views`] and planned inside each query that uses it.
        query: Box<Query>,
    },
    /// `CREATE SINK` — an output.
    CreateSink(SinkDef),
    /// `SET key = value` — a setting for the queries that follow.
    Set {
        /// Setting name as written, quoted or dotted (`spark.sql.shuffle.partitions`); matched case-insensitively.
        key: String,
        /// Setting value as text; checked only when a later `INSERT INTO` is resolved.
        value: String,
    },
    /// `INSERT INTO sink SELECT …` — one streaming query.
    Insert {
        /// Target sink; its `CREATE SINK` may appear anywhere in the file.
        sink: String,
        /// The SELECT whose rows go to the sink.
        query: Box<Query>,
    },
}

/// A declared column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColumnDef {
    /// Column name as declared; the Arrow field name in the source's schema.
    pub name: String,
    /// Arrow type mapped from the declared Spark SQL type (e.g. `TIMESTAMP` → µs timestamp in UTC).
    #[serde(with = "sluice_common::schema_serde::data_type")]
    pub data_type: DataType,
    /// False only when the column is declared `NOT NULL`.
    pub nullable: bool,
}

/// A stream or static table declaration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RelationDef {
    /// The name queries read it by; shares one namespace with views and sinks.
    pub name: String,
    /// Declared (physical) columns, in order: what the connector must produce.
    pub columns: Vec<ColumnDef>,
    /// `name AS expr` columns, computed from the declared ones after reading.
    pub computed: Vec<ComputedColumn>,
    /// `WATERMARK FOR col AS col - INTERVAL …` (Spark's `withWatermark`); streams only.
    pub watermark: Option<WatermarkDef>,
    /// The `WITH (...)` clause: the connector and its options, keys case-insensitive.
    pub options: Options,
}

impl RelationDef {
    /// The declared (physical) columns as an Arrow schema, before computed columns.
    pub fn declared_schema(&self) -> Schema {
        Schema::new(self.columns.iter().map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable)).collect::<Vec<_>>())
    }
}

/// A sink declaration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkDef {
    /// The name `INSERT INTO` targets.
    pub name: String,
    /// The `WITH (...)` clause: the connector and its options, keys case-insensitive.
    pub options: Options,
}

//! Static tables (`CREATE TABLE`): batch inputs a streaming query joins with, re-read every
//! micro-batch as Spark re-reads the static side of a stream-static join.

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use sluice_common::error::Result;
use sluice_common::options::Options;

use crate::access::Access;

/// A static table as resolved on the driver and shipped to executors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableSpec {
    /// The table's name in the job file.
    pub name: String,
    /// Lower-cased connector name.
    pub connector: String,
    /// Connector options, validated and normalised.
    pub options: Options,
    /// The table's columns.
    #[serde(with = "sluice_common::schema_serde::schema_ref")]
    pub schema: SchemaRef,
}

/// A connector that can back a static table, registered once in [`crate::Connectors`].
#[async_trait]
pub trait TableConnector: Send + Sync {
    /// The name `'connector' = '…'` selects (lower case).
    fn name(&self) -> &'static str;

    /// Validates and normalises `options` on the driver and returns the table's columns: the
    /// declared ones, or — when none are declared and the data carries a schema — the data's.
    async fn resolve(&self, options: &mut Options, declared: &Schema) -> Result<SchemaRef>;

    /// What a table with these options touches (see [`crate::SourceConnector::access`]). Unlike
    /// the sources' and sinks', it must also take unresolved options: resolving a table may
    /// already read it (a Parquet table's schema), so the driver checks before resolving.
    fn access(&self, options: &Options) -> Result<Vec<Access>>;

    /// Reads the whole table.
    async fn read(&self, spec: &TableSpec) -> Result<Vec<RecordBatch>>;
}

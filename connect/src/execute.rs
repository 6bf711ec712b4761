//! `ExecutePlan` for DataFrames and the non-streaming commands: a DataFrame's rows as Arrow
//! IPC batches, `show()`, `spark.sql`, temporary views and batch writes (what a foreachBatch
//! function does with its batch).

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_common::options::Options;
use sluice_connectors::files::sink::{write_batch_files, FileSinkOptions};

use crate::env::Env;
use crate::error::{ConnectError, Result};
use crate::plan::PlannedFrame;
use crate::proto::execute_plan_response::{ArrowBatch, ResponseType, SqlCommandResult};
use crate::proto::relation::RelType;
use crate::proto::{write_operation, Relation, ShowString, Sql, SqlCommand, WriteOperation};
use crate::types::schema_to_proto;

/// Rows per Arrow batch sent: keeps each message far below the gRPC size limit.
const ROWS_PER_MESSAGE: usize = 8192;

/// What one response carries, before the ids are stamped on.
pub struct Reply {
    /// The payload.
    pub response: ResponseType,
    /// The result's schema, on the first batch.
    pub schema: Option<crate::proto::DataType>,
}

impl Reply {
    /// A reply with no schema.
    pub fn of(response: ResponseType) -> Self {
        Self { response, schema: None }
    }
}

/// Relations only an action answers (`df.show()`), never planned inside another.
pub fn answered_at_root(rel: &Relation) -> bool {
    matches!(rel.rel_type, Some(RelType::ShowString(_)))
}

/// Runs a DataFrame (or `show()`) and returns its rows as Arrow batches.
pub async fn root(env: &Env<'_>, rel: &Relation) -> Result<Vec<Reply>> {
    if let Some(RelType::ShowString(show)) = &rel.rel_type {
        return show_string(env, show).await;
    }
    let frame = env.plan(rel).await?;
    let (schema, rows) = env.run_batch(&frame).await?;
    arrow_replies(&schema, &rows)
}

async fn show_string(env: &Env<'_>, show: &ShowString) -> Result<Vec<Reply>> {
    let input = show.input.as_deref().ok_or_else(|| ConnectError::invalid_plan("show without its input"))?;
    if show.vertical {
        return Err(ConnectError::unsupported("show(vertical=True)"));
    }
    let frame = env.plan(input).await?;
    let n = usize::try_from(show.num_rows.max(0)).unwrap_or(20);
    let limited =
        PlannedFrame { decls: frame.decls.clone(), select: format!("SELECT * FROM ({}) AS _show LIMIT {}", frame.select, n + 1) };
    let (schema, rows) = env.run_batch(&limited).await?;
    let truncate = usize::try_from(show.truncate.max(0)).unwrap_or(20);
    let text = sluice_formats::show::show_string(&rows, &schema, n, truncate);
    let out_schema = Arc::new(Schema::new(vec![Field::new("show_string", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(Arc::clone(&out_schema), vec![Arc::new(StringArray::from(vec![text]))])
        .map_err(|e| ConnectError::new(crate::error::ExceptionClass::Spark, e.to_string()))?;
    arrow_replies(&out_schema, &[batch])
}

/// Rows as Arrow IPC streams, `ROWS_PER_MESSAGE` rows each; at least one (possibly empty)
/// batch, so the client always learns the schema.
pub fn arrow_replies(schema: &SchemaRef, rows: &[RecordBatch]) -> Result<Vec<Reply>> {
    let proto_schema = schema_to_proto(schema)?;
    let mut out = Vec::new();
    let mut chunk: Vec<RecordBatch> = Vec::new();
    let mut chunk_rows = 0;
    let flush = |chunk: &mut Vec<RecordBatch>, chunk_rows: &mut usize, out: &mut Vec<Reply>| -> Result<()> {
        let data = sluice_common::ipc::encode(schema, chunk)?;
        out.push(Reply {
            response: ResponseType::ArrowBatch(ArrowBatch {
                row_count: *chunk_rows as i64,
                data: data.to_vec(),
                start_offset: None,
            }),
            schema: out.is_empty().then(|| proto_schema.clone()),
        });
        chunk.clear();
        *chunk_rows = 0;
        Ok(())
    };
    for batch in rows {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (ROWS_PER_MESSAGE - chunk_rows).min(batch.num_rows() - offset);
            chunk.push(batch.slice(offset, take));
            chunk_rows += take;
            offset += take;
            if chunk_rows == ROWS_PER_MESSAGE {
                flush(&mut chunk, &mut chunk_rows, &mut out)?;
            }
        }
    }
    if chunk_rows > 0 || out.is_empty() {
        if chunk.is_empty() {
            chunk.push(RecordBatch::new_empty(Arc::clone(schema)));
        }
        flush(&mut chunk, &mut chunk_rows, &mut out)?;
    }
    Ok(out)
}

#[allow(deprecated)] // clients before 3.5 send the text in `sql` (and positional args)
/// `spark.sql(text)`: a query comes back as a relation the client builds on (Spark analyses it
/// now, so errors show here); `SET key=value` sets a session setting.
pub async fn sql_command(env: &Env<'_>, cmd: &SqlCommand) -> Result<Vec<Reply>> {
    let rel = match &cmd.input {
        Some(r) => r.clone(),
        None => Relation {
            common: None,
            rel_type: Some(RelType::Sql(Sql {
                query: cmd.sql.clone(),
                args: cmd.args.clone(),
                pos_args: cmd.pos_args.clone(),
                named_arguments: cmd.named_arguments.clone(),
                pos_arguments: cmd.pos_arguments.clone(),
            })),
        },
    };
    if let Some(RelType::Sql(s)) = &rel.rel_type {
        let text = s.query.trim();
        let first = text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        match first.as_str() {
            "SELECT" | "WITH" | "VALUES" | "FROM" | "TABLE" | "(" => {}
            "SET" => {
                let rest = text[3..].trim();
                let Some((k, v)) = rest.split_once('=') else {
                    return Err(ConnectError::unsupported("SET without a value (listing settings)"));
                };
                env.client.set_conf(k.trim(), v.trim());
                let schema = Arc::new(Schema::new(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Utf8, false),
                ]));
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(StringArray::from(vec![k.trim()])), Arc::new(StringArray::from(vec![v.trim()]))],
                )
                .map_err(|e| ConnectError::new(crate::error::ExceptionClass::Spark, e.to_string()))?;
                let data = sluice_common::ipc::encode(&schema, &[batch])?;
                return Ok(vec![Reply::of(ResponseType::SqlCommandResult(SqlCommandResult {
                    relation: Some(Relation {
                        common: None,
                        rel_type: Some(RelType::LocalRelation(crate::proto::LocalRelation {
                            data: Some(data.to_vec()),
                            schema: None,
                        })),
                    }),
                }))]);
            }
            other => return Err(ConnectError::unsupported(format!("the SQL statement {other} (spark.sql runs queries)"))),
        }
    }
    // Analyse now, as Spark does, so a bad query fails at spark.sql().
    env.plan(&rel).await?;
    Ok(vec![Reply::of(ResponseType::SqlCommandResult(SqlCommandResult { relation: Some(rel) }))])
}

/// `df.createOrReplaceTempView(name)`: checked now, planned again wherever it is used.
pub async fn create_view(env: &Env<'_>, cmd: &crate::proto::CreateDataFrameViewCommand) -> Result<Vec<Reply>> {
    let input = cmd.input.as_ref().ok_or_else(|| ConnectError::invalid_plan("createTempView without its DataFrame"))?;
    env.plan(input).await?;
    if !cmd.replace && env.client.view(&cmd.name).is_some() {
        return Err(ConnectError::analysis(format!(
            "[TEMP_TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create the temporary view `{}` because it already exists.",
            cmd.name
        ))
        .with_error_class("TEMP_TABLE_OR_VIEW_ALREADY_EXISTS", "42P07"));
    }
    env.client.set_view(&cmd.name, input.clone());
    Ok(Vec::new())
}

/// `df.write…save(path)` of a batch DataFrame: parquet, json or csv part files under `path`
/// (in `col=value/` directories with `partitionBy`), written by the `files` sink's writer so a
/// batch write and a streaming one lay out and format their files alike.
pub async fn write(env: &Env<'_>, op: &WriteOperation) -> Result<Vec<Reply>> {
    let input = op.input.as_ref().ok_or_else(|| ConnectError::invalid_plan("write without its DataFrame"))?;
    let path = match &op.save_type {
        Some(write_operation::SaveType::Path(p)) => p.clone(),
        Some(write_operation::SaveType::Table(t)) => {
            return Err(ConnectError::unsupported(format!("saveAsTable/insertInto ('{}')", t.table_name)))
        }
        None => op.options.get("path").cloned().ok_or_else(|| ConnectError::illegal_argument("'path' is not specified"))?,
    };
    if op.bucket_by.is_some() || !op.sort_column_names.is_empty() {
        return Err(ConnectError::unsupported("bucketBy/sortBy in a batch write"));
    }
    let format = op.source.clone().unwrap_or_else(|| "parquet".into()).to_ascii_lowercase();
    if !matches!(format.as_str(), "parquet" | "json" | "csv") {
        return Err(ConnectError::unsupported(format!("batch writes in format '{format}'")));
    }
    let mut options = Options::from_pairs(op.options.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("path")));
    options.insert("path", path.clone());
    options.insert("format", format);
    if !op.partitioning_columns.is_empty() {
        options.insert("partitionBy", crate::streaming::partition_by_option(&op.partitioning_columns)?);
    }
    // Options are checked before the path is touched: a bad write must not delete anything.
    let sink = FileSinkOptions::parse(&options)?;
    let mode = write_operation::SaveMode::try_from(op.mode).unwrap_or(write_operation::SaveMode::Unspecified);
    let dir = std::path::Path::new(&path);
    let exists = dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    match mode {
        write_operation::SaveMode::Unspecified | write_operation::SaveMode::ErrorIfExists if exists => {
            return Err(ConnectError::analysis(format!(
                "[PATH_ALREADY_EXISTS] Path {path} already exists. Set mode as \"overwrite\" to overwrite the existing path."
            ))
            .with_error_class("PATH_ALREADY_EXISTS", "42K04"))
        }
        write_operation::SaveMode::Ignore if exists => return Ok(Vec::new()),
        _ => {}
    }
    let frame = env.plan(input).await?;
    let (schema, rows) = env.run_batch(&frame).await?;
    sink.check_schema(&schema)?;
    if mode == write_operation::SaveMode::Overwrite && exists {
        std::fs::remove_dir_all(dir).map_err(|e| ConnectError::illegal_argument(format!("cannot overwrite {path}: {e}")))?;
    }
    write_batch_files(&sink, &schema, &rows).await?;
    Ok(Vec::new())
}

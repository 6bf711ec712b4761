//! The Kafka connector: a replayable source whose offsets are Spark's per-partition JSON, and an
//! at-least-once (optionally transactional) sink (docs/semantics.md §9 "Kafka").
//!
//! The driver decides each batch's offset ranges (`source`, with the pure rules in `offsets`
//! and broker lookups in `offset_reader`); executors fetch their ranges directly from the brokers
//! (`reader`) and write sink rows straight to them (`sink`). Consumer-group offsets play no part
//! in correctness: the offset log in the checkpoint is the only record of what was read.

pub mod access;
pub mod offset_reader;
pub mod offsets;
pub mod options;
pub mod reader;
pub mod sink;
pub mod source;

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::{OutputMode, QueryConf};

use crate::access::Access;
use crate::sink::{SinkCommitter, SinkConnector, SinkSpec, SinkWriter};
use crate::source::{Source, SourceConnector, SourceSchema, SourceSpec, SplitData, SplitDescriptor, SplitReader};

use self::options::{KafkaSinkOptions, KafkaSourceOptions};

/// The `kafka` connector, as a source and as a sink.
#[derive(Debug, Default)]
pub struct KafkaConnector;

impl SourceConnector for KafkaConnector {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn resolve(&self, options: &mut Options, _declared: &Schema) -> Result<SourceSchema> {
        let o = KafkaSourceOptions::parse(options)?;
        Ok(SourceSchema::Fixed(reader::kafka_schema(o.include_headers)))
    }

    fn access(&self, options: &Options) -> Result<Vec<Access>> {
        access::client_access(&KafkaSourceOptions::parse(options)?.client)
    }

    fn create_source(&self, spec: &SourceSpec, _conf: &QueryConf) -> Result<Box<dyn Source>> {
        Ok(Box::new(source::KafkaSource::new(KafkaSourceOptions::parse(&spec.options)?)?))
    }

    fn split_reader(&self, spec: &SourceSpec) -> Result<Box<dyn SplitReader>> {
        let options = KafkaSourceOptions::parse(&spec.options)?;
        let group_id = options.group_id();
        Ok(Box::new(KafkaSplitReader { options: Arc::new(options), group_id: Arc::from(group_id) }))
    }
}

/// Executor side of the source: options parsed once per query.
#[derive(Debug)]
struct KafkaSplitReader {
    options: Arc<KafkaSourceOptions>,
    group_id: Arc<str>,
}

#[async_trait]
impl SplitReader for KafkaSplitReader {
    async fn read(&self, split: &SplitDescriptor, _inline_rows: &[u8]) -> Result<SplitData> {
        let range: reader::KafkaSplit = split.decode("kafka")?;
        let (options, group_id) = (Arc::clone(&self.options), Arc::clone(&self.group_id));
        let data = tokio::task::spawn_blocking(move || reader::read_split(&options, &group_id, &range))
            .await
            .map_err(|e| SluiceError::internal(format!("Kafka reader panicked: {e}")))??;
        Ok(SplitData { batches: vec![data.batch], malformed_rows: 0, lost_offsets: data.lost_offsets })
    }
}

impl SinkConnector for KafkaConnector {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn resolve(&self, options: &mut Options) -> Result<()> {
        KafkaSinkOptions::parse(options).map(|_| ())
    }

    fn access(&self, options: &Options) -> Result<Vec<Access>> {
        access::client_access(&KafkaSinkOptions::parse(options)?.client)
    }

    fn check_schema(&self, options: &Options, schema: &SchemaRef) -> Result<()> {
        let options = KafkaSinkOptions::parse(options)?;
        sink::check_schema(&options, schema)?;
        sink::check_delivery_guarantee(&options)
    }

    fn writer(&self, spec: &SinkSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(sink::KafkaWriter::new(KafkaSinkOptions::parse(&spec.options)?)))
    }

    fn committer(&self, spec: &SinkSpec, _mode: OutputMode) -> Result<Box<dyn SinkCommitter>> {
        Ok(Box::new(sink::KafkaCommitter::new(&KafkaSinkOptions::parse(&spec.options)?)))
    }
}

/// Appended to data-loss failures, as Spark words it.
pub const DATA_LOSS_FAIL_HINT: &str = "Some data may have been lost because they are not available in Kafka any more; \
either the data was aged out by Kafka or the topic may have been deleted before all the data in the topic was processed. \
If you don't want your streaming query to fail on such cases, set the source option \"failOnDataLoss\" to \"false\".";

/// Appended to data-loss warnings when `failOnDataLoss` is false.
pub const DATA_LOSS_CONTINUE_HINT: &str = "Some data may have been lost because they are not available in Kafka any more; \
either the data was aged out by Kafka or the topic may have been deleted before all the data in the topic was processed. \
If you want your streaming query to fail on such cases, set the source option \"failOnDataLoss\" to \"true\".";

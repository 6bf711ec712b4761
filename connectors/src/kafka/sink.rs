//! The Kafka sink: executors send a task's rows straight to the brokers and wait until every
//! record is acknowledged, so a task that reports success has delivered its rows. A batch that
//! is retried sends its rows again — at-least-once, as Spark's Kafka sink.
//!
//! Columns follow Spark's `KafkaWriter`: `value` (required), `key`, `topic`, `partition`,
//! `headers`; other columns are ignored. The `topic` option overrides a `topic` column.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, SchemaRef};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use crate::sink::{SinkCommitter, SinkTaskContext, SinkTaskOutput, SinkWriter, TaskSinkResult};
use sluice_common::error::{Result, SluiceError};
use sluice_common::BatchId;

use super::offset_reader::client_config_error;
use super::options::{DeliveryGuarantee, KafkaSinkOptions};

/// Checks the query's output columns against Spark's rules for the Kafka sink.
pub fn check_schema(options: &KafkaSinkOptions, schema: &SchemaRef) -> Result<()> {
    let field = |name: &str| schema.fields().iter().find(|f| f.name().eq_ignore_ascii_case(name)).map(|f| f.data_type().clone());
    let bytes_like = |t: &DataType| {
        matches!(
            t,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
        )
    };
    match (&options.topic, field("topic")) {
        (None, None) => {
            return Err(SluiceError::user(
                "topic option required when no 'topic' attribute is present. Use the topic option for setting a topic.",
            ))
        }
        (None, Some(t)) if !matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            return Err(SluiceError::user("topic attribute type must be a string"))
        }
        _ => {}
    }
    match field("value") {
        None => return Err(SluiceError::user("Required attribute 'value' not found")),
        Some(t) if !bytes_like(&t) => return Err(SluiceError::user("value attribute type must be a string or binary")),
        _ => {}
    }
    if let Some(t) = field("key") {
        if !bytes_like(&t) {
            return Err(SluiceError::user("key attribute type must be a string or binary"));
        }
    }
    if let Some(t) = field("partition") {
        if t != DataType::Int32 {
            return Err(SluiceError::user("partition attribute type must be an int"));
        }
    }
    if let Some(t) = field("headers") {
        if !is_headers_type(&t) {
            return Err(SluiceError::user("headers attribute type must be an array<struct<key:string,value:binary>>"));
        }
    }
    Ok(())
}

fn is_headers_type(t: &DataType) -> bool {
    let DataType::List(item) = t else { return false };
    let DataType::Struct(fields) = item.data_type() else { return false };
    fields.len() == 2
        && fields[0].name() == "key"
        && matches!(fields[0].data_type(), DataType::Utf8)
        && fields[1].name() == "value"
        && matches!(fields[1].data_type(), DataType::Binary | DataType::Utf8)
}

/// Refuses `deliveryGuarantee = 'exactly-once'` before anything runs. A Kafka transaction can
/// only be committed by the producer instance that opened it (librdkafka cannot resume one), so
/// transactions opened by sink tasks cannot be committed by the driver's batch commit and still
/// be completed after a driver failure; accepting the option would promise what a crash breaks.
pub fn check_delivery_guarantee(options: &KafkaSinkOptions) -> Result<()> {
    match options.delivery {
        DeliveryGuarantee::AtLeastOnce => Ok(()),
        DeliveryGuarantee::ExactlyOnce => Err(SluiceError::user(
            "deliveryGuarantee 'exactly-once' is not supported: a Kafka transaction can only be committed by the producer \
             that opened it, so it cannot be part of the driver's batch commit and survive a driver failure. \
             Use 'at-least-once' (the default, as Spark's Kafka sink), or a files sink for exactly-once output",
        )),
    }
}

/// Driver side: the rows were delivered by the tasks, so a batch commit only counts them.
pub struct KafkaCommitter {
    description: String,
}

impl KafkaCommitter {
    /// A committer for a sink with these options.
    pub fn new(options: &KafkaSinkOptions) -> Self {
        let topic = options.topic.clone().unwrap_or_else(|| "<topic column>".to_string());
        Self { description: format!("KafkaSink[topic={topic}, {}]", options.client.bootstrap_servers()) }
    }
}

#[async_trait::async_trait]
impl SinkCommitter for KafkaCommitter {
    fn description(&self) -> String {
        self.description.clone()
    }

    async fn commit(&mut self, _batch: BatchId, _schema: &SchemaRef, results: Vec<TaskSinkResult>) -> Result<u64> {
        Ok(results.iter().map(|r| r.output.num_rows).sum())
    }
}

/// Producers shared by the tasks of an executor, one per client configuration: connecting is
/// the expensive part of producing, as Spark's producer cache knows.
fn producer_for(options: &KafkaSinkOptions) -> Result<FutureProducer> {
    static CACHE: OnceLock<Mutex<HashMap<String, FutureProducer>>> = OnceLock::new();
    let key = format!("{:?}", options.client.properties);
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = cache.lock().map_err(|_| SluiceError::internal("Kafka producer cache poisoned"))?;
    if let Some(p) = guard.get(&key) {
        return Ok(p.clone());
    }
    let producer: FutureProducer =
        options.client.client_config(&[]).create().map_err(|e| client_config_error(&e, &options.client))?;
    guard.insert(key, producer.clone());
    Ok(producer)
}

/// The sink's columns in one batch, as bytes.
struct SinkColumns {
    value: ArrayRef,
    key: Option<ArrayRef>,
    topic: Option<ArrayRef>,
    partition: Option<ArrayRef>,
    headers: Option<ArrayRef>,
}

impl SinkColumns {
    fn of(batch: &RecordBatch) -> Result<Self> {
        let schema = batch.schema();
        let column = |name: &str, as_binary: bool| -> Result<Option<ArrayRef>> {
            let Some((i, _)) = schema.fields().iter().enumerate().find(|(_, f)| f.name().eq_ignore_ascii_case(name)) else {
                return Ok(None);
            };
            let c = Arc::clone(batch.column(i));
            Ok(Some(if as_binary { arrow::compute::cast(&c, &DataType::Binary)? } else { c }))
        };
        Ok(Self {
            value: column("value", true)?.ok_or_else(|| SluiceError::user("Required attribute 'value' not found"))?,
            key: column("key", true)?,
            topic: column("topic", false)?.map(|c| arrow::compute::cast(&c, &DataType::Utf8)).transpose()?,
            partition: column("partition", false)?,
            // Once per batch, so header values are bytes without a cast per row.
            headers: column("headers", false)?.map(|c| arrow::compute::cast(&c, &super::reader::headers_type())).transpose()?,
        })
    }
}

fn bytes_at(array: &ArrayRef, row: usize) -> Option<&[u8]> {
    let a = array.as_binary::<i32>();
    a.is_valid(row).then(|| a.value(row))
}

fn headers_at(array: &ArrayRef, row: usize) -> Option<OwnedHeaders> {
    let list = array.as_list::<i32>();
    if list.is_null(row) {
        return None;
    }
    let entries = list.value(row);
    let entries = entries.as_struct();
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_binary::<i32>();
    let mut headers = OwnedHeaders::new_with_capacity(entries.len());
    for i in 0..entries.len() {
        let value = values.is_valid(i).then(|| values.value(i));
        headers = headers.insert(Header { key: keys.value(i), value });
    }
    Some(headers)
}

/// Executor side: sends each task's rows to the brokers.
#[derive(Debug)]
pub struct KafkaWriter {
    options: KafkaSinkOptions,
}

impl KafkaWriter {
    /// A writer for a sink with these options.
    pub fn new(options: KafkaSinkOptions) -> Self {
        Self { options }
    }
}

#[async_trait::async_trait]
impl SinkWriter for KafkaWriter {
    async fn write(&self, _schema: &SchemaRef, batches: &[RecordBatch], _task: &SinkTaskContext) -> Result<SinkTaskOutput> {
        Ok(SinkTaskOutput { num_rows: write_rows(&self.options, batches).await?, ..Default::default() })
    }
}

/// Sends a task's rows and waits for every acknowledgement; returns the rows sent.
async fn write_rows(options: &KafkaSinkOptions, batches: &[RecordBatch]) -> Result<u64> {
    let producer = producer_for(options)?;
    let servers = options.client.bootstrap_servers();
    let mut pending = Vec::new();
    let mut sent = 0u64;
    for batch in batches {
        let cols = SinkColumns::of(batch)?;
        for row in 0..batch.num_rows() {
            let topic = match (&options.topic, &cols.topic) {
                (Some(t), _) => t.as_str(),
                (None, Some(c)) if c.is_valid(row) => c.as_string::<i32>().value(row),
                _ => return Err(SluiceError::user("Null topic present in the data. Use the topic option for setting a topic.")),
            };
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if let Some(v) = bytes_at(&cols.value, row) {
                record = record.payload(v);
            }
            if let Some(k) = cols.key.as_ref().and_then(|k| bytes_at(k, row)) {
                record = record.key(k);
            }
            if let Some(p) = cols.partition.as_ref().filter(|p| p.is_valid(row)) {
                record = record.partition(p.as_primitive::<Int32Type>().value(row));
            }
            if let Some(h) = cols.headers.as_ref().and_then(|h| headers_at(h, row)) {
                record = record.headers(h);
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // The client's queue is full: let deliveries drain, then retry.
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(produce_error(servers, topic, &e)),
                }
            }
            sent += 1;
        }
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(produce_error(servers, "", &e)),
            Err(_) => {
                return Err(SluiceError::external(format!(
                    "Kafka producer for {servers} shut down before acknowledging a record"
                )))
            }
        }
    }
    Ok(sent)
}

fn produce_error(servers: &str, topic: &str, e: &KafkaError) -> SluiceError {
    let unknown_topic = matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownPartition)
    );
    let target = if topic.is_empty() { String::new() } else { format!(" to topic '{topic}'") };
    let err = SluiceError::external(format!("writing to Kafka at {servers}{target} failed: {e}"));
    if unknown_topic {
        err.with_retryable(false)
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use sluice_common::options::Options;

    fn sink(pairs: &[(&str, &str)]) -> KafkaSinkOptions {
        let mut all = vec![("connector", "kafka"), ("kafka.bootstrap.servers", "127.0.0.1:1")];
        all.extend_from_slice(pairs);
        KafkaSinkOptions::parse(&Options::from_pairs(all)).unwrap()
    }

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(fields.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>()))
    }

    #[test]
    fn sink_columns_follow_spark_kafka_writer_rules() {
        let no_topic = check_schema(&sink(&[]), &schema(&[("value", DataType::Utf8)])).unwrap_err();
        assert_eq!(
            no_topic.message,
            "topic option required when no 'topic' attribute is present. Use the topic option for setting a topic."
        );
        assert!(check_schema(&sink(&[]), &schema(&[("value", DataType::Utf8), ("topic", DataType::Utf8)])).is_ok());
        let no_value = check_schema(&sink(&[("topic", "t")]), &schema(&[("v", DataType::Utf8)])).unwrap_err();
        assert_eq!(no_value.message, "Required attribute 'value' not found");
        let bad_value = check_schema(&sink(&[("topic", "t")]), &schema(&[("value", DataType::Int64)])).unwrap_err();
        assert_eq!(bad_value.message, "value attribute type must be a string or binary");
        let bad_key = check_schema(&sink(&[("topic", "t")]), &schema(&[("value", DataType::Binary), ("key", DataType::Int32)]))
            .unwrap_err();
        assert_eq!(bad_key.message, "key attribute type must be a string or binary");
        let bad_partition =
            check_schema(&sink(&[("topic", "t")]), &schema(&[("value", DataType::Binary), ("partition", DataType::Int64)]))
                .unwrap_err();
        assert_eq!(bad_partition.message, "partition attribute type must be an int");
    }
}

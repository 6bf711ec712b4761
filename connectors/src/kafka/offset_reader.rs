//! The driver's view of the brokers (Spark's `KafkaOffsetReader`): which partitions a
//! subscription covers right now, and their earliest, latest or by-timestamp offsets.
//!
//! librdkafka's metadata calls block, so each runs on tokio's blocking pool; each is retried
//! `fetchOffset.numRetries` times, `fetchOffset.retryIntervalMs` apart, as Spark retries them,
//! before the batch fails with the broker's last error.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use sluice_common::error::{Result, SluiceError};

use super::offsets::{PartitionOffsets, TopicPartition};
use super::options::{ClientProperties, Subscription};

/// Which offset of each partition to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    /// The log start offset: the oldest record retention has kept.
    Earliest,
    /// The log end offset: the offset the next record written will get.
    Latest,
}

/// A metadata client for one source.
#[derive(Clone)]
pub struct OffsetReader {
    consumer: Arc<BaseConsumer>,
    servers: String,
    timeout: Duration,
    retries: u32,
    retry_interval: Duration,
}

impl OffsetReader {
    /// A reader; creating it does not contact the brokers.
    pub fn new(client: &ClientProperties, group_id: &str, retries: u32, retry_interval: Duration) -> Result<Self> {
        let consumer: BaseConsumer = client
            .client_config(&[("group.id", group_id), ("enable.auto.commit", "false"), ("allow.auto.create.topics", "false")])
            .create()
            .map_err(|e| client_config_error(&e, client))?;
        Ok(Self {
            consumer: Arc::new(consumer),
            servers: client.bootstrap_servers().to_string(),
            timeout: client.api_timeout,
            retries,
            retry_interval,
        })
    }

    /// The partitions the subscription covers now (`assign` lists them itself).
    pub async fn partitions(&self, subscription: &Subscription) -> Result<BTreeSet<TopicPartition>> {
        if let Subscription::Assign(tps) = subscription {
            return Ok(tps.clone());
        }
        let subscription = subscription.clone();
        self.metadata_partitions(move |topic| subscription.includes_topic(topic)).await
    }

    /// The earliest or latest offset of each partition; partitions the brokers do not know
    /// (a deleted topic) are left out.
    pub async fn offsets(&self, partitions: &BTreeSet<TopicPartition>, which: OffsetQuery) -> Result<PartitionOffsets> {
        let what = match which {
            OffsetQuery::Earliest => "fetching earliest offsets",
            OffsetQuery::Latest => "fetching latest offsets",
        };
        let query = match which {
            OffsetQuery::Earliest => Offset::Beginning,
            OffsetQuery::Latest => Offset::End,
        };
        let requests: Vec<(TopicPartition, Offset)> = partitions.iter().map(|tp| (tp.clone(), query)).collect();
        self.list_offsets(what, requests).await.map(|found| found.into_iter().filter_map(|(tp, o)| o.map(|o| (tp, o))).collect())
    }

    /// For each partition, the first offset whose record timestamp is at or after the given
    /// time; `None` where no record is that recent.
    pub async fn offsets_for_times(&self, timestamps: &PartitionOffsets) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let requests = timestamps.iter().map(|(tp, ts)| (tp.clone(), Offset::Offset(*ts))).collect();
        self.list_offsets("fetching offsets by timestamp", requests).await
    }

    async fn list_offsets(
        &self,
        what: &str,
        requests: Vec<(TopicPartition, Offset)>,
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        // Partitions of topics that no longer exist would fail the whole request.
        let topics: BTreeSet<String> = requests.iter().map(|(tp, _)| tp.topic.clone()).collect();
        let known = self.metadata_partitions(move |t| topics.contains(t)).await?;
        let requests: Vec<(TopicPartition, Offset)> = requests.into_iter().filter(|(tp, _)| known.contains(tp)).collect();
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        self.with_retries(what, move |consumer, timeout| {
            let mut tpl = TopicPartitionList::with_capacity(requests.len());
            for (tp, q) in &requests {
                tpl.add_partition_offset(&tp.topic, tp.partition, *q)?;
            }
            let answered = consumer.offsets_for_times(tpl, timeout)?;
            let mut out = Vec::with_capacity(requests.len());
            for e in answered.elements() {
                e.error()?;
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                out.push((TopicPartition::new(e.topic(), e.partition()), offset));
            }
            Ok(out)
        })
        .await
    }

    /// The partitions of the topics the brokers know and `include` accepts.
    async fn metadata_partitions(
        &self,
        include: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Result<BTreeSet<TopicPartition>> {
        self.with_retries("fetching topic metadata", move |consumer, timeout| {
            let metadata = consumer.fetch_metadata(None, timeout)?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none() && include(t.name()))
                .flat_map(|t| t.partitions().iter().map(|p| TopicPartition::new(t.name(), p.id())))
                .collect())
        })
        .await
    }

    /// Runs a blocking librdkafka call, retrying failures; the last failure becomes a retryable
    /// external error naming the brokers.
    async fn with_retries<T, F>(&self, what: &str, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&BaseConsumer, Duration) -> std::result::Result<T, KafkaError> + Send + Sync + 'static,
    {
        let call = Arc::new(call);
        let mut attempt = 0;
        loop {
            let consumer = Arc::clone(&self.consumer);
            let timeout = self.timeout;
            let f = Arc::clone(&call);
            let outcome = tokio::task::spawn_blocking(move || f(&consumer, timeout))
                .await
                .map_err(|e| SluiceError::internal(format!("Kafka metadata call panicked: {e}")))?;
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) if attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(servers = %self.servers, attempt, error = %e, "{what} failed; retrying");
                    tokio::time::sleep(self.retry_interval).await;
                }
                Err(e) => {
                    return Err(SluiceError::external(format!(
                        "{what} from Kafka at {} failed after {} attempts of {} ms each: {e}",
                        self.servers,
                        attempt + 1,
                        self.timeout.as_millis()
                    )))
                }
            }
        }
    }
}

/// A librdkafka configuration error (unknown property, bad value) as a user error, with any
/// secret of `client` it quotes redacted.
pub fn client_config_error(e: &KafkaError, client: &ClientProperties) -> SluiceError {
    client.redactor().scrub_error(SluiceError::user(format!("invalid Kafka client option (kafka.*): {e}")))
}

//! A real Kafka-protocol broker (tansu, in memory) on 127.0.0.1, and a client that creates,
//! grows and deletes topics, produces records and reads topics back — the test's own view of
//! the broker, independent of sluice's connector.
//!
//! tansu answers ListOffsets "latest" with the base offset of the last record batch + 1, which
//! is only right when every batch holds one record; [`KafkaBroker::produce`] therefore sends
//! single-record batches, and [`KafkaBroker::read_topic`] reads until the log is exhausted
//! instead of trusting end offsets.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::binary::dies_with_test;
use crate::services::{find_binary, free_port};

/// One record as read back: partition, offset, key and value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadRecord {
    /// The topic partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// The key as UTF-8, if any.
    pub key: Option<String>,
    /// The value as UTF-8, if any.
    pub value: Option<String>,
}

/// A tansu broker with in-memory storage; stopped (and its data gone) on drop.
pub struct KafkaBroker {
    child: Option<Child>,
    /// The broker's port on 127.0.0.1.
    pub port: u16,
}

impl KafkaBroker {
    /// Starts `tansu broker` (installed by `tests/run.sh`).
    pub fn start() -> Self {
        let port = free_port();
        let mut broker = Self { child: None, port };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let bin = find_binary("tansu")
            .expect("tansu is not installed; tests/run.sh installs it (cargo install tansu@0.6.0 --locked --no-default-features --features dynostore)");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = dies_with_test(&mut Command::new(bin))
            .args(["broker", "--cluster-id", "sluice-tests", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let port = self.port;
        assert!(
            crate::binary::wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "tansu did not listen on 127.0.0.1:{port}"
        );
    }

    /// Kills the broker (SIGKILL); its in-memory topics are lost.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `host:port` for `kafka.bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        c
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.config().create().expect("admin client")
    }

    /// Creates `topic` with `partitions` partitions.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        let results = self
            .admin()
            .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
            .await
            .expect("create topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
        self.wait_for_partitions(topic, partitions).await;
    }

    /// Deletes `topic`.
    pub async fn delete_topic(&self, topic: &str) {
        let results = self.admin().delete_topics(&[topic], &AdminOptions::new()).await.expect("delete topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("deleting topic {t}: {e}"));
        }
        let gone = crate::binary::wait_until(Duration::from_secs(20), || self.partition_count(topic) == 0);
        assert!(gone, "topic {topic} still listed after deletion");
    }

    async fn wait_for_partitions(&self, topic: &str, n: i32) {
        let ok = crate::binary::wait_until(Duration::from_secs(20), || self.partition_count(topic) == n);
        assert!(ok, "topic {topic} never showed {n} partitions");
    }

    /// How many partitions the broker lists for `topic` (0 when it does not exist).
    pub fn partition_count(&self, topic: &str) -> i32 {
        let consumer: BaseConsumer = self.config().set("group.id", "sluice-tests-admin").create().expect("consumer");
        match consumer.fetch_metadata(None, Duration::from_secs(10)) {
            Ok(md) => md
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().len() as i32)
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Produces `(partition, key, value)` records in order, one record per batch, and waits for
    /// every acknowledgement.
    pub async fn produce(&self, topic: &str, records: &[(i32, Option<&str>, &str)]) {
        let producer: FutureProducer =
            self.config().set("batch.num.messages", "1").set("linger.ms", "0").create().expect("producer");
        for (partition, key, value) in records {
            let mut r: FutureRecord<'_, str, str> = FutureRecord::to(topic).partition(*partition).payload(*value);
            if let Some(k) = key {
                r = r.key(*k);
            }
            producer.send(r, Duration::from_secs(10)).await.unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
        }
    }

    /// Every record of `topic`, read from offset 0 of each partition until the log is exhausted.
    pub fn read_topic(&self, topic: &str) -> Vec<ReadRecord> {
        let partitions = self.partition_count(topic);
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", "sluice-tests-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let mut at_end = std::collections::BTreeSet::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while (at_end.len() as i32) < partitions && std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => out.push(ReadRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
                }),
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                _ => {}
            }
        }
        assert_eq!(at_end.len() as i32, partitions, "reading {topic} did not reach the end of every partition");
        out.sort();
        out
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

//! Kafka source and sink options, validated with Spark's names and messages, and the client
//! configuration handed to librdkafka.
//!
//! Spark passes every `kafka.`-prefixed option to the Kafka client with the prefix stripped; so
//! do we, except for the options Spark itself refuses (offset management and (de)serialisers
//! belong to the engine) and the Java-client settings librdkafka spells differently.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::redact::{self, Redactor};
use sluice_common::time::parse_interval;

use super::offsets::{assignment_from_json, offsets_from_json, KafkaReadLimits, PartitionOffsets, TopicPartition};

/// Which topic-partitions a source reads.
#[derive(Debug, Clone)]
pub enum Subscription {
    /// `subscribe`: these topics, all their partitions (also ones added later).
    Topics(Vec<String>),
    /// `subscribePattern`: every topic whose whole name matches.
    Pattern(regex::Regex),
    /// `assign`: exactly these partitions.
    Assign(std::collections::BTreeSet<TopicPartition>),
}

impl PartialEq for Subscription {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Subscription::Topics(a), Subscription::Topics(b)) => a == b,
            (Subscription::Pattern(a), Subscription::Pattern(b)) => a.as_str() == b.as_str(),
            (Subscription::Assign(a), Subscription::Assign(b)) => a == b,
            _ => false,
        }
    }
}

impl Subscription {
    /// Whether `topic` belongs to the subscription.
    pub fn includes_topic(&self, topic: &str) -> bool {
        match self {
            Subscription::Topics(ts) => ts.iter().any(|t| t == topic),
            Subscription::Pattern(re) => re.is_match(topic),
            Subscription::Assign(tps) => tps.iter().any(|tp| tp.topic == topic),
        }
    }

    /// Spark's description in progress, e.g. `Subscribe[events]`.
    pub fn describe(&self) -> String {
        match self {
            Subscription::Topics(ts) => format!("Subscribe[{}]", ts.join(",")),
            Subscription::Pattern(re) => {
                format!("SubscribePattern[{}]", re.as_str().trim_start_matches("^(?:").trim_end_matches(")$"))
            }
            Subscription::Assign(tps) => {
                format!("Assign[{}]", tps.iter().map(|tp| tp.to_string()).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// Where a new query starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StartingOffsets {
    /// `startingOffsets=earliest`: every partition's oldest retained record.
    Earliest,
    /// `startingOffsets=latest` (default): only records written after the query starts.
    Latest,
    /// Per-partition offsets; −2/−1 mean earliest/latest.
    Specific(PartitionOffsets),
    /// `startingTimestamp`: the first offset at or after this time, in every partition.
    Timestamp(i64),
    /// `startingOffsetsByTimestamp`: per-partition timestamps.
    ByTimestamp(PartitionOffsets),
}

/// What to do when no record is at or after a starting timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStrategy {
    /// Fail the query (Spark's default).
    Error,
    /// Start at the latest offset.
    Latest,
}

/// A Kafka source's options.
#[derive(Debug, Clone)]
pub struct KafkaSourceOptions {
    /// Which topic-partitions to read: exactly one of `subscribe`, `subscribePattern`, `assign`.
    pub subscription: Subscription,
    /// Where a query without a checkpoint starts; a restarted query resumes from its offset log instead.
    pub starting: StartingOffsets,
    /// `startingOffsetsByTimestampStrategy`: what to do when no record is at or after a starting time.
    pub timestamp_strategy: TimestampStrategy,
    /// `failOnDataLoss` (default true): fail when offsets vanished (retention, deleted topic) rather than skip.
    pub fail_on_data_loss: bool,
    /// Per-batch limits: `maxOffsetsPerTrigger`, `minOffsetsPerTrigger`, `maxTriggerDelay`.
    pub limits: KafkaReadLimits,
    /// `minPartitions`: desired minimum tasks per batch; large offset ranges are split to reach it.
    pub min_partitions: Option<usize>,
    /// `includeHeaders` (default false): add the `headers` column to the schema.
    pub include_headers: bool,
    /// `groupIdPrefix`: prefix of the generated consumer group id (Spark's default
    /// `spark-kafka-source`); `kafka.group.id` replaces the generated id.
    pub group_id_prefix: String,
    /// How long an executor waits for records it knows exist (`kafkaConsumer.pollTimeoutMs`).
    pub poll_timeout: Duration,
    /// Attempts and pause for offset lookups on the driver (`fetchOffset.*`).
    pub fetch_retries: u32,
    /// Pause before retrying a failed offset lookup (`fetchOffset.retryIntervalMs`, default 10 ms).
    pub fetch_retry_interval: Duration,
    /// Timeout of one metadata or offset request (`kafka.default.api.timeout.ms`).
    pub api_timeout: Duration,
    /// librdkafka properties from `kafka.*`.
    pub client: ClientProperties,
}

/// Options a Kafka source accepts besides `kafka.*`.
pub const SOURCE_OPTIONS: &[&str] = &[
    "subscribe",
    "subscribePattern",
    "assign",
    "startingOffsets",
    "startingTimestamp",
    "startingOffsetsByTimestamp",
    "startingOffsetsByTimestampStrategy",
    "failOnDataLoss",
    "maxOffsetsPerTrigger",
    "minOffsetsPerTrigger",
    "maxTriggerDelay",
    "minPartitions",
    "includeHeaders",
    "groupIdPrefix",
    "kafkaConsumer.pollTimeoutMs",
    "fetchOffset.numRetries",
    "fetchOffset.retryIntervalMs",
];

const OWNER: &str = "connector 'kafka'";

impl KafkaSourceOptions {
    /// Validates a source's options with Spark's messages.
    pub fn parse(options: &Options) -> Result<Self> {
        let client = ClientProperties::from_options(options, Role::Consumer)?;
        let plain = non_client_options(options);
        let mut valid: Vec<&str> = vec!["connector"];
        valid.extend_from_slice(SOURCE_OPTIONS);
        if plain.contains("endingOffsets") || plain.contains("endingTimestamp") || plain.contains("endingOffsetsByTimestamp") {
            return Err(SluiceError::user("ending offset not valid in streaming queries"));
        }
        plain.check_known(&valid, OWNER)?;

        let strategies: Vec<&str> =
            ["subscribe", "subscribePattern", "assign"].into_iter().filter(|k| plain.contains(k)).collect();
        let keys = "subscribe, subscribepattern, assign";
        let subscription = match strategies.as_slice() {
            [] => {
                return Err(SluiceError::user(format!(
                    "One of the following options must be specified for Kafka source: {keys}. See the docs for more details."
                )))
            }
            ["subscribe"] => {
                let value = plain.get("subscribe").unwrap_or_default();
                let topics: Vec<String> = value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
                if topics.is_empty() {
                    return Err(SluiceError::user(format!(
                        "No topics to subscribe to as specified value for option 'subscribe' is '{value}'"
                    )));
                }
                Subscription::Topics(topics)
            }
            ["subscribePattern"] => {
                let value = plain.get("subscribePattern").unwrap_or_default().trim();
                if value.is_empty() {
                    return Err(SluiceError::user(format!(
                        "Pattern to subscribe is empty as specified value for option 'subscribePattern' is '{value}'"
                    )));
                }
                // Java's Pattern.matcher(topic).matches() matches the whole name.
                let re = regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| SluiceError::user(format!("option 'subscribePattern': '{value}' is not a valid regex: {e}")))?;
                Subscription::Pattern(re)
            }
            ["assign"] => {
                let value = plain.get("assign").unwrap_or_default();
                if !value.trim().starts_with('{') {
                    return Err(SluiceError::user(format!(
                        "No topicpartitions to assign as specified value for option 'assign' is '{value}'"
                    )));
                }
                Subscription::Assign(assignment_from_json(value)?)
            }
            _ => {
                return Err(SluiceError::user(format!(
                    "Only one of the following options can be specified for Kafka source: {keys}. See the docs for more details."
                )))
            }
        };

        let starting = if let Some(ts) = plain.get("startingOffsetsByTimestamp") {
            StartingOffsets::ByTimestamp(offsets_from_json(ts)?)
        } else if let Some(ts) = plain.get("startingTimestamp") {
            StartingOffsets::Timestamp(ts.trim().parse::<i64>().map_err(|_| {
                SluiceError::user(format!("option 'startingTimestamp' must be milliseconds since the epoch, got '{ts}'"))
            })?)
        } else {
            match plain.get("startingOffsets").map(|s| s.trim()) {
                None => StartingOffsets::Latest,
                Some(s) if s.eq_ignore_ascii_case("latest") => StartingOffsets::Latest,
                Some(s) if s.eq_ignore_ascii_case("earliest") => StartingOffsets::Earliest,
                Some(s) if s.starts_with('{') => StartingOffsets::Specific(offsets_from_json(s)?),
                Some(s) => {
                    return Err(SluiceError::user(format!(
                        "option 'startingOffsets' must be 'earliest', 'latest' or per-partition JSON such as {{\"topic\":{{\"0\":-2}}}}, got '{s}'"
                    )))
                }
            }
        };
        let timestamp_strategy = match plain.get("startingOffsetsByTimestampStrategy").map(str::to_ascii_lowercase).as_deref() {
            None | Some("error") => TimestampStrategy::Error,
            Some("latest") => TimestampStrategy::Latest,
            Some(other) => {
                return Err(SluiceError::user(format!(
                    "option 'startingOffsetsByTimestampStrategy' must be 'error' or 'latest', got '{other}'"
                )))
            }
        };

        let positive = |key: &str| -> Result<Option<i64>> {
            match plain.parse_opt::<i64>(key, OWNER)? {
                Some(n) if n <= 0 => {
                    Err(SluiceError::user(format!("Invalid value '{n}' for option '{key}', must be a positive integer")))
                }
                other => Ok(other),
            }
        };
        let max_trigger_delay_ms = match plain.get("maxTriggerDelay") {
            Some(v) => time_string_ms(v).map_err(|e| e.context("option 'maxTriggerDelay'"))?,
            None => 15 * 60 * 1000,
        };
        let limits = KafkaReadLimits {
            max_offsets: positive("maxOffsetsPerTrigger")?,
            min_offsets: positive("minOffsetsPerTrigger")?,
            max_trigger_delay_ms,
        };
        let min_partitions = positive("minPartitions")?;
        crate::source::check_task_count(min_partitions.map(|n| n as u64), "minPartitions")?;
        let min_partitions = min_partitions.map(|n| n as usize);
        let poll_timeout = Duration::from_millis(positive("kafkaConsumer.pollTimeoutMs")?.unwrap_or(120_000) as u64);
        let fetch_retries = plain.parse_or::<u32>("fetchOffset.numRetries", 3, OWNER)?;
        let fetch_retry_interval = Duration::from_millis(plain.parse_or::<u64>("fetchOffset.retryIntervalMs", 10, OWNER)?);
        Ok(Self {
            subscription,
            starting,
            timestamp_strategy,
            fail_on_data_loss: plain.bool_or("failOnDataLoss", true, OWNER)?,
            limits,
            min_partitions,
            include_headers: plain.bool_or("includeHeaders", false, OWNER)?,
            group_id_prefix: plain.get("groupIdPrefix").unwrap_or("spark-kafka-source").to_string(),
            poll_timeout,
            fetch_retries,
            fetch_retry_interval,
            api_timeout: client.api_timeout,
            client,
        })
    }
}

impl KafkaSourceOptions {
    /// The consumer group id: `kafka.group.id`, or a fresh `<groupIdPrefix>-<uuid>`. Offsets are
    /// never committed to it; brokers only see it in their logs.
    pub fn group_id(&self) -> String {
        match self.client.properties.get("group.id") {
            Some(id) => id.clone(),
            None => format!("{}-{}", self.group_id_prefix, uuid::Uuid::new_v4()),
        }
    }
}

/// Whether a sink task's writes become visible on their own or with the batch commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Spark's behaviour: a retried batch re-sends its rows.
    AtLeastOnce,
    /// Requested, and refused with the reason (`sink::check_delivery_guarantee`).
    ExactlyOnce,
}

/// A Kafka sink's options.
#[derive(Debug, Clone)]
pub struct KafkaSinkOptions {
    /// `topic`: the default topic, overriding a `topic` column as in Spark.
    pub topic: Option<String>,
    /// `deliveryGuarantee`: `at-least-once` (default) or `exactly-once`, which is refused before the query runs.
    pub delivery: DeliveryGuarantee,
    /// librdkafka producer properties from `kafka.*`.
    pub client: ClientProperties,
}

/// Options a Kafka sink accepts besides `kafka.*`.
pub const SINK_OPTIONS: &[&str] = &["topic", "deliveryGuarantee"];

impl KafkaSinkOptions {
    /// Validates a sink's options.
    pub fn parse(options: &Options) -> Result<Self> {
        let client = ClientProperties::from_options(options, Role::Producer)?;
        let plain = non_client_options(options);
        let mut valid: Vec<&str> = vec!["connector"];
        valid.extend_from_slice(SINK_OPTIONS);
        plain.check_known(&valid, "connector 'kafka' (sink)")?;
        let delivery = match plain.get("deliveryGuarantee").map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("at-least-once") => DeliveryGuarantee::AtLeastOnce,
            Some("exactly-once") => DeliveryGuarantee::ExactlyOnce,
            Some(other) => {
                return Err(SluiceError::user(format!(
                    "option 'deliveryGuarantee' must be 'at-least-once' or 'exactly-once', got '{other}'"
                )))
            }
        };
        Ok(Self { topic: plain.get("topic").map(|t| t.trim().to_string()).filter(|t| !t.is_empty()), delivery, client })
    }
}

/// Which kind of client the properties configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A source: the driver's offset lookups and the executors' reads.
    Consumer,
    /// A sink's producer.
    Producer,
}

/// librdkafka properties from the `kafka.*` options, plus the settings sluice always needs.
///
/// `Debug` shows the properties redacted (`sasl.password` and the like), so the options types
/// holding them can derive `Debug` and be logged.
#[derive(Clone, PartialEq)]
pub struct ClientProperties {
    /// Property → value, prefix stripped.
    pub properties: BTreeMap<String, String>,
    /// `kafka.default.api.timeout.ms` (Java client name; not a librdkafka property).
    pub api_timeout: Duration,
}

impl std::fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&str, std::borrow::Cow<'_, str>> =
            self.properties.iter().map(|(k, v)| (k.as_str(), redact::redact_value(k, v))).collect();
        f.debug_struct("ClientProperties").field("properties", &shown).field("api_timeout", &self.api_timeout).finish()
    }
}

impl ClientProperties {
    /// The secret values among the properties, to scrub from librdkafka's messages.
    pub fn redactor(&self) -> Redactor {
        let mut r = Redactor::new();
        r.add_pairs(self.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        r
    }

    fn from_options(options: &Options, role: Role) -> Result<Self> {
        let mut properties = BTreeMap::new();
        let mut api_timeout = Duration::from_secs(60);
        for (key, value) in options.iter() {
            let Some(name) = key.strip_prefix("kafka.").or_else(|| key.strip_prefix("KAFKA.")) else { continue };
            let name = name.to_string();
            if let Some(refusal) = refused_client_option(&name, role) {
                return Err(SluiceError::user(refusal));
            }
            match name.to_ascii_lowercase().as_str() {
                "default.api.timeout.ms" => {
                    let ms: u64 = value.trim().parse().map_err(|_| {
                        SluiceError::user(format!("option 'kafka.default.api.timeout.ms' must be milliseconds, got '{value}'"))
                    })?;
                    api_timeout = Duration::from_millis(ms);
                }
                "sasl.jaas.config" => {
                    let (user, password) = jaas_credentials(value)?;
                    properties.insert("sasl.username".to_string(), user);
                    properties.insert("sasl.password".to_string(), password);
                }
                _ => {
                    properties.insert(name, value.to_string());
                }
            }
        }
        let servers = properties.get("bootstrap.servers").map(|s| s.trim()).unwrap_or_default();
        if servers.is_empty() {
            let client = if role == Role::Consumer { "consumer" } else { "producer" };
            return Err(SluiceError::user(format!(
                "Option 'kafka.bootstrap.servers' must be specified for configuring Kafka {client}"
            )));
        }
        Ok(Self { properties, api_timeout })
    }

    /// The configured bootstrap servers, for messages.
    pub fn bootstrap_servers(&self) -> &str {
        self.properties.get("bootstrap.servers").map(String::as_str).unwrap_or_default()
    }

    /// A librdkafka configuration with these properties and `extra` on top.
    pub fn client_config(&self, extra: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        for (k, v) in extra {
            config.set(*k, *v);
        }
        config
    }
}

/// A duration as Spark's `Utils.timeStringAsMs` reads it (`15m`, `30s`, `500ms`), or as an
/// interval (`5 minutes`).
fn time_string_ms(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    let (number, unit) = t.split_at(digits);
    let factor = match unit.trim() {
        "" | "ms" => Some(1),
        "s" => Some(1_000),
        "m" | "min" => Some(60_000),
        "h" => Some(3_600_000),
        "d" => Some(86_400_000),
        _ => None,
    };
    match (number.parse::<i64>(), factor) {
        (Ok(n), Some(f)) => Ok(n * f),
        _ => Ok(parse_interval(text)?.delay_ms()),
    }
}

/// Options other than the client's own.
fn non_client_options(options: &Options) -> Options {
    Options::from_pairs(options.iter().filter(|(k, _)| !k.to_ascii_lowercase().starts_with("kafka.")))
}

/// Spark's refusals of client options the engine must own, with Spark's wording.
fn refused_client_option(name: &str, role: Role) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let message = match (role, lower.as_str()) {
        (Role::Consumer, "auto.offset.reset") => "Kafka option 'auto.offset.reset' is not supported. Instead set the source option 'startingoffsets' to 'earliest' or 'latest' to specify where to start. Structured Streaming manages which offsets are consumed internally, rather than relying on the kafkaConsumer to do it.",
        (Role::Consumer, "key.deserializer") => "Kafka option 'key.deserializer' is not supported, as keys are deserialized as byte arrays with ByteArrayDeserializer. Use DataFrame operations to explicitly deserialize the keys.",
        (Role::Consumer, "value.deserializer") => "Kafka option 'value.deserializer' is not supported, as values are deserialized as byte arrays with ByteArrayDeserializer. Use DataFrame operations to explicitly deserialize the values.",
        (Role::Consumer, "enable.auto.commit") => "Kafka option 'enable.auto.commit' is not supported: the query tracks its offsets in its checkpoint, not in consumer-group commits.",
        (Role::Consumer, "interceptor.classes") | (Role::Producer, "interceptor.classes") => "Kafka option 'interceptor.classes' is not supported as user-specified consumer interceptors are not supported",
        (Role::Producer, "key.serializer") => "Kafka option 'key.serializer' is not supported, as keys are serialized with ByteArraySerializer. Use DataFrame operations to explicitly serialize the keys into either strings or byte arrays.",
        (Role::Producer, "value.serializer") => "Kafka option 'value.serializer' is not supported, as values are serialized with ByteArraySerializer. Use DataFrame operations to explicitly serialize the values into either strings or byte arrays.",
        (Role::Producer, "transactional.id") => "Kafka option 'transactional.id' is not supported: the Kafka sink is at-least-once and does not write in transactions.",
        _ => return None,
    };
    Some(message.to_string())
}

/// The username and password of a Java `sasl.jaas.config` (PLAIN or SCRAM login module), which
/// librdkafka takes as `sasl.username` / `sasl.password`.
fn jaas_credentials(jaas: &str) -> Result<(String, String)> {
    let re = regex::Regex::new(r#"(username|password)\s*=\s*"([^"]*)""#).map_err(|e| SluiceError::internal(e.to_string()))?;
    let mut user = None;
    let mut password = None;
    for c in re.captures_iter(jaas) {
        match &c[1] {
            "username" => user = Some(c[2].to_string()),
            _ => password = Some(c[2].to_string()),
        }
    }
    match (user, password) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err(SluiceError::user(
            "option 'kafka.sasl.jaas.config': only PlainLoginModule/ScramLoginModule with username=\"…\" password=\"…\" can be translated; set 'kafka.sasl.username' and 'kafka.sasl.password' instead",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<KafkaSourceOptions> {
        let mut all = vec![("connector", "kafka"), ("kafka.bootstrap.servers", "127.0.0.1:9092")];
        all.extend_from_slice(pairs);
        KafkaSourceOptions::parse(&Options::from_pairs(all))
    }

    #[test]
    fn exactly_one_subscription_strategy() {
        let none = parse(&[]).unwrap_err();
        assert!(none.message.starts_with("One of the following options must be specified for Kafka source"), "{}", none.message);
        let two = parse(&[("subscribe", "a"), ("assign", "{\"a\":[0]}")]).unwrap_err();
        assert!(two.message.starts_with("Only one of the following options can be specified"), "{}", two.message);
        let empty = parse(&[("subscribe", " , ")]).unwrap_err();
        assert_eq!(empty.message, "No topics to subscribe to as specified value for option 'subscribe' is ' , '");
        let o = parse(&[("subscribe", "a, b")]).unwrap();
        assert_eq!(o.subscription, Subscription::Topics(vec!["a".into(), "b".into()]));
        assert_eq!(o.starting, StartingOffsets::Latest);
        assert!(o.fail_on_data_loss);
    }

    #[test]
    fn subscribe_pattern_matches_whole_topic_names() {
        let o = parse(&[("subscribePattern", "events-.*")]).unwrap();
        assert!(o.subscription.includes_topic("events-1"));
        assert!(!o.subscription.includes_topic("old-events-1"));
        assert_eq!(o.subscription.describe(), "SubscribePattern[events-.*]");
    }

    #[test]
    fn missing_servers_and_refused_client_options_use_spark_messages() {
        let e = KafkaSourceOptions::parse(&Options::from_pairs([("subscribe", "a")])).unwrap_err();
        assert_eq!(e.message, "Option 'kafka.bootstrap.servers' must be specified for configuring Kafka consumer");
        let e = parse(&[("subscribe", "a"), ("kafka.auto.offset.reset", "earliest")]).unwrap_err();
        assert!(e.message.starts_with("Kafka option 'auto.offset.reset' is not supported"), "{}", e.message);
        let e = parse(&[("subscribe", "a"), ("endingOffsets", "latest")]).unwrap_err();
        assert_eq!(e.message, "ending offset not valid in streaming queries");
        let e = parse(&[("subscribe", "a"), ("maxOffsetPerTrigger", "5")]).unwrap_err();
        assert!(e.message.starts_with("unknown option 'maxOffsetPerTrigger'"), "{}", e.message);
        let e = parse(&[("subscribe", "a"), ("minPartitions", "0")]).unwrap_err();
        assert_eq!(e.message, "Invalid value '0' for option 'minPartitions', must be a positive integer");
    }

    #[test]
    fn client_properties_pass_through_without_prefix() {
        let o = parse(&[
            ("subscribe", "a"),
            ("kafka.security.protocol", "SASL_SSL"),
            (
                "kafka.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"p w\";",
            ),
            ("kafka.default.api.timeout.ms", "2500"),
        ])
        .unwrap();
        assert_eq!(o.client.properties["security.protocol"], "SASL_SSL");
        assert_eq!(o.client.properties["sasl.username"], "u");
        assert_eq!(o.client.properties["sasl.password"], "p w");
        assert!(!o.client.properties.contains_key("default.api.timeout.ms"));
        assert_eq!(o.api_timeout, Duration::from_millis(2500));
        // What a log or panic message would print of the options hides the password.
        let debug = format!("{o:?}");
        assert!(!debug.contains("p w") && debug.contains("*********(redacted)") && debug.contains("SASL_SSL"), "{debug}");
        // librdkafka's messages lose the password too (secrets of 4 characters or more).
        let o = parse(&[("subscribe", "a"), ("kafka.sasl.password", "hunter22")]).unwrap();
        assert_eq!(o.client.redactor().scrub("login with hunter22 failed"), "login with *********(redacted) failed");
    }

    #[test]
    fn starting_timestamps_take_precedence_over_starting_offsets() {
        let o = parse(&[("subscribe", "a"), ("startingOffsets", "earliest"), ("startingTimestamp", "1000")]).unwrap();
        assert_eq!(o.starting, StartingOffsets::Timestamp(1000));
        assert_eq!(o.limits.max_trigger_delay_ms, 15 * 60 * 1000);
        let o = parse(&[("subscribe", "a"), ("maxTriggerDelay", "30s")]).unwrap();
        assert_eq!(o.limits.max_trigger_delay_ms, 30_000);
        let o = parse(&[("subscribe", "a"), ("maxTriggerDelay", "2 minutes")]).unwrap();
        assert_eq!(o.limits.max_trigger_delay_ms, 120_000);
        let o = parse(&[("subscribe", "a"), ("startingOffsets", "{\"a\":{\"0\":-2}}")]).unwrap();
        assert_eq!(o.starting, StartingOffsets::Specific([(TopicPartition::new("a", 0), -2)].into_iter().collect()));
    }

    #[test]
    fn sink_options() {
        let o = KafkaSinkOptions::parse(&Options::from_pairs([
            ("connector", "kafka"),
            ("kafka.bootstrap.servers", "h:1"),
            ("topic", "out"),
        ]))
        .unwrap();
        assert_eq!(o.topic.as_deref(), Some("out"));
        assert_eq!(o.delivery, DeliveryGuarantee::AtLeastOnce);
        let e =
            KafkaSinkOptions::parse(&Options::from_pairs([("kafka.bootstrap.servers", "h:1"), ("kafka.value.serializer", "x")]))
                .unwrap_err();
        assert!(e.message.starts_with("Kafka option 'value.serializer' is not supported"), "{}", e.message);
    }
}

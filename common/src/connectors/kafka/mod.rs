//! The Kafka connector: a replayable source whose offsets are Spark's per-partition JSON, and an
//! at-least-once (optionally transactional) sink (spec §9 "Kafka").
//!
//! The driver decides each batch's offset ranges (`source`, with the pure rules in `offsets`
//! and broker lookups in `offset_reader`); executors fetch their ranges directly from the brokers
//! (`reader`) and write sink rows straight to them (`sink`). Consumer-group offsets play no part
//! in correctness: the offset log in the checkpoint is the only record of what was read.

pub mod offset_reader;
pub mod offsets;
pub mod options;
pub mod reader;
pub mod sink;
pub mod source;

/// Appended to data-loss failures, as Spark words it.
pub const DATA_LOSS_FAIL_HINT: &str = "Some data may have been lost because they are not available in Kafka any more; \
either the data was aged out by Kafka or the topic may have been deleted before all the data in the topic was processed. \
If you don't want your streaming query to fail on such cases, set the source option \"failOnDataLoss\" to \"false\".";

/// Appended to data-loss warnings when `failOnDataLoss` is false.
pub const DATA_LOSS_CONTINUE_HINT: &str = "Some data may have been lost because they are not available in Kafka any more; \
either the data was aged out by Kafka or the topic may have been deleted before all the data in the topic was processed. \
If you want your streaming query to fail on such cases, set the source option \"failOnDataLoss\" to \"true\".";

//! Triggers (docs/semantics.md §8): when the micro-batch loop runs its next batch, and when it stops.

use std::time::Duration;

use sluice_common::error::{Result, SluiceError};
use sluice_common::time::parse_interval;

/// Spark's triggers, minus continuous processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `ProcessingTime(interval)`; `Duration::ZERO` is Spark's default trigger.
    ProcessingTime(Duration),
    /// One batch over everything available, then stop (deprecated in Spark, still common).
    Once,
    /// Everything available when the query starts, in batches under the read limits, then stop.
    AvailableNow,
}

impl Trigger {
    /// Parses `default`, `processingTime=<interval>`, `once`, `availableNow`.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let (kind, arg) = match t.split_once('=') {
            Some((k, a)) => (k.trim().to_ascii_lowercase(), Some(a.trim().to_string())),
            None => (t.to_ascii_lowercase(), None),
        };
        match (kind.as_str(), arg) {
            ("default", None) => Ok(Self::ProcessingTime(Duration::ZERO)),
            ("once", None) => Ok(Self::Once),
            ("availablenow", None) => Ok(Self::AvailableNow),
            ("processingtime", Some(a)) => {
                let iv = parse_interval(&a).map_err(|e| e.context("trigger processingTime"))?;
                let micros = iv.fixed_micros("trigger interval").map_err(|e| e.context("trigger processingTime"))?;
                if micros < 0 {
                    return Err(SluiceError::user("interval cannot be negative"));
                }
                Ok(Self::ProcessingTime(Duration::from_micros(micros as u64)))
            }
            ("continuous", _) => Err(SluiceError::user(
                "continuous processing (trigger 'continuous=…') is not supported by sluice; use 'default', 'processingTime=<interval>', 'once' or 'availableNow'",
            )),
            _ => Err(SluiceError::user(format!(
                "unknown trigger '{text}'; use 'default', 'processingTime=<interval>', 'once' or 'availableNow'"
            ))),
        }
    }
}

/// Spark's `ProcessingTimeExecutor.nextBatchTime`: the next multiple of the interval strictly
/// after `now` — missed intervals are skipped, never queued.
pub fn next_batch_time(now_ms: i64, interval_ms: i64) -> i64 {
    if interval_ms <= 0 {
        now_ms
    } else {
        now_ms / interval_ms * interval_ms + interval_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_trigger_form() {
        assert_eq!(Trigger::parse("default").unwrap(), Trigger::ProcessingTime(Duration::ZERO));
        assert_eq!(Trigger::parse("processingTime=10 seconds").unwrap(), Trigger::ProcessingTime(Duration::from_secs(10)));
        assert_eq!(
            Trigger::parse("ProcessingTime = 500 milliseconds").unwrap(),
            Trigger::ProcessingTime(Duration::from_millis(500))
        );
        assert_eq!(Trigger::parse("Once").unwrap(), Trigger::Once);
        assert_eq!(Trigger::parse("availableNow").unwrap(), Trigger::AvailableNow);
        assert!(Trigger::parse("continuous=1 second").unwrap_err().message.contains("not supported"));
        assert!(Trigger::parse("sometimes").is_err());
    }

    #[test]
    fn next_batch_time_skips_missed_intervals() {
        // ProcessingTimeExecutorSuite "nextBatchTime"
        assert_eq!(next_batch_time(0, 100), 100);
        assert_eq!(next_batch_time(1, 100), 100);
        assert_eq!(next_batch_time(99, 100), 100);
        assert_eq!(next_batch_time(100, 100), 200);
        assert_eq!(next_batch_time(101, 100), 200);
        assert_eq!(next_batch_time(150, 100), 200);
        assert_eq!(next_batch_time(42, 0), 42);
    }
}

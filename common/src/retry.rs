//! The one retry policy for calls to services sluice depends on (object stores, etcd, brokers).
//!
//! A 2-second outage of a store or of etcd must cost a 2-second pause, not a failed query. Every
//! call that leaves the process is wrapped in [`retry`], and the error decides: a
//! [`SluiceError`] whose `retryable` flag is set (a timeout, a 5xx, a lost connection) is retried
//! with exponential backoff and jitter until the policy's budget is spent; anything else (a
//! malformed checkpoint, a refused option) fails at once. Retrying is only correct for calls that
//! are idempotent or made so by their caller (the metadata logs read back an ambiguous write
//! before they decide whether it happened), which is why the decision to retry sits with the
//! error and the idempotency with the call site, and no call site writes its own loop.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::error::{Result, SluiceError};

/// How long and how often a failing call is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubles per retry, with jitter.
    pub first_delay: Duration,
    /// Longest delay between two tries.
    pub max_delay: Duration,
    /// Retries after the first try (so `max_retries + 1` tries in all).
    pub max_retries: usize,
}

impl RetryPolicy {
    /// For calls on a batch's critical path (checkpoint logs, sink commits, offset lookups):
    /// rides out an outage of about half a minute (0.1 s, 0.2 s, … capped at 5 s; 10 retries).
    pub const STORE: RetryPolicy =
        RetryPolicy { first_delay: Duration::from_millis(100), max_delay: Duration::from_secs(5), max_retries: 10 };

    /// A single quick retry round, for tests and for calls whose caller retries anyway.
    pub const QUICK: RetryPolicy =
        RetryPolicy { first_delay: Duration::from_millis(10), max_delay: Duration::from_millis(100), max_retries: 3 };

    /// For reconnecting to a service that must come back (etcd, for a driver standing by): never
    /// gives up (0.2 s, 0.4 s, … capped at 5 s).
    pub const RECONNECT: RetryPolicy =
        RetryPolicy { first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5), max_retries: usize::MAX };

    /// The waits between tries, for a loop that cannot be phrased as one retried call.
    pub fn waits(&self) -> impl Iterator<Item = Duration> {
        use backon::BackoffBuilder;
        self.backoff().build()
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_retries)
    }
}

/// Runs `call` until it succeeds, fails with an error that is not retryable, or `policy`'s budget
/// is spent. `what` names the call in logs and in the final error ("writing offsets/7").
pub async fn retry<T, F, Fut>(policy: RetryPolicy, what: &str, call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 1usize;
    let outcome = retry_if(policy, what, call, |e: &SluiceError| e.retryable, || tries += 1).await;
    outcome.map_err(|e| if e.retryable && tries > 1 { e.context(format!("{what} failed after {tries} tries")) } else { e })
}

/// [`retry`] for calls with their own error type: `transient` says which errors are worth
/// another try, and `on_retry` is told of each retry.
pub async fn retry_if<T, E, F, Fut>(
    policy: RetryPolicy,
    what: &str,
    call: F,
    transient: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(),
) -> std::result::Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    call.retry(policy.backoff())
        .when(|e: &E| transient(e))
        .notify(|e: &E, delay: Duration| {
            on_retry();
            tracing::warn!(what, delay_ms = delay.as_millis() as u64, error = %e, "transient failure; retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn retryable_errors_are_retried_until_the_call_succeeds() {
        let tries = AtomicUsize::new(0);
        let got = retry(RetryPolicy::QUICK, "flaky call", || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(SluiceError::external("connection reset"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(got.unwrap(), 7);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn errors_that_are_not_retryable_fail_at_once() {
        let tries = AtomicUsize::new(0);
        let got: Result<()> = retry(RetryPolicy::QUICK, "bad call", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(SluiceError::user("malformed"))
        })
        .await;
        assert_eq!(got.unwrap_err().one_line(), "malformed");
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_spent_budget_says_how_often_it_tried() {
        let tries = AtomicUsize::new(0);
        let got: Result<()> = retry(RetryPolicy::QUICK, "writing offsets/3", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(SluiceError::external("store down"))
        })
        .await;
        assert_eq!(tries.load(Ordering::SeqCst), RetryPolicy::QUICK.max_retries + 1);
        let e = got.unwrap_err();
        assert!(e.retryable);
        assert_eq!(e.one_line(), "writing offsets/3 failed after 4 tries: store down");
    }
}

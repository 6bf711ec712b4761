//! Fencing: a deposed leader must not write to a checkpoint.
//!
//! Every write that moves a query forward — `offsets/N`, the sink commit, `commits/N` — is
//! preceded by a check that this driver still leads. With etcd the check is a transaction on
//! the leader key's create revision (the term), so a driver that was paused past its lease and
//! replaced cannot commit anything when it wakes; conditional creates of the log files settle
//! any race inside the remaining window. Without etcd there is one driver and nothing to fence.

use async_trait::async_trait;
use sluice_cluster::etcd::{still_leader, Leadership};
use sluice_common::error::{Result, SluiceError};
use sluice_common::retry::{retry, RetryPolicy};

/// A check that this driver may still write.
#[async_trait]
pub trait Fence: Send + Sync {
    /// Fails when the driver lost the right to write.
    async fn check(&self) -> Result<()>;

    /// The leadership term this driver writes under (0: a single driver, no terms); tasks carry
    /// it so executors refuse a deposed leader's.
    fn term(&self) -> u64;
}

/// No fencing: a single driver.
#[derive(Debug, Default)]
pub struct NoFence;

#[async_trait]
impl Fence for NoFence {
    async fn check(&self) -> Result<()> {
        Ok(())
    }

    fn term(&self) -> u64 {
        0
    }
}

/// Fencing by etcd leadership term.
pub struct LeaderFence {
    client: etcd_client::Client,
    leadership: Leadership,
}

impl LeaderFence {
    /// A fence for `leadership`.
    pub fn new(client: etcd_client::Client, leadership: Leadership) -> Self {
        Self { client, leadership }
    }
}

#[async_trait]
impl Fence for LeaderFence {
    async fn check(&self) -> Result<()> {
        let leads = retry(RetryPolicy::STORE, "checking leadership in etcd", || {
            let mut client = self.client.clone();
            async move { still_leader(&mut client, &self.leadership).await }
        })
        .await?;
        if leads {
            Ok(())
        } else {
            Err(SluiceError::external(format!(
                "this driver is no longer the leader (its term {} ended); another driver owns the queries now",
                self.leadership.term
            ))
            .with_retryable(false))
        }
    }

    fn term(&self) -> u64 {
        self.leadership.term.max(0) as u64
    }
}

//! One driver and N executors in one process, talking gRPC over 127.0.0.1 exactly as separate
//! processes do: what `sluice run` and the integration tests use. Only shuffle blocks take a
//! shortcut: an executor reads another's from its memory, as a process does not send itself
//! data over a socket (`sluice_executor::shuffle::Neighbours`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_common::error::Result;
use sluice_driver::{DriverServer, ExecutorRegistry};
use sluice_executor::metrics::ExecutorMetrics;
use sluice_executor::shuffle::Neighbours;
use sluice_executor::{ExecutorConfig, ExecutorHandle};

/// One driver and N executors in this process, talking gRPC over 127.0.0.1 as separate
/// processes do, but reading each other's shuffle blocks from memory.
pub struct EmbeddedCluster {
    /// The driver's gRPC server.
    pub driver: DriverServer,
    executors: Vec<ExecutorHandle>,
}

impl EmbeddedCluster {
    /// Starts the driver and `executors` executors with `slots` task slots each, and waits until
    /// all have registered.
    pub async fn start(executors: usize, slots: usize) -> Result<Self> {
        Self::start_with_metrics(executors, slots, ExecutorMetrics::default()).await
    }

    /// Like [`Self::start`], the executors counting into `metrics` (each under its id).
    pub async fn start_with_metrics(executors: usize, slots: usize, metrics: ExecutorMetrics) -> Result<Self> {
        let registry = ExecutorRegistry::default();
        let driver = DriverServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), registry.clone()).await?;
        let mut handles = Vec::with_capacity(executors);
        let neighbours = Arc::new(Neighbours::default());
        for i in 0..executors {
            let mut cfg = ExecutorConfig::local(driver.endpoint.clone());
            cfg.task_slots = slots;
            cfg.executor_id = Some(format!("executor-{i}"));
            cfg.metrics = metrics.clone();
            cfg.neighbours = Some(Arc::clone(&neighbours));
            handles.push(ExecutorHandle::start(cfg).await?);
        }
        registry.wait_for(executors, Duration::from_secs(30)).await?;
        Ok(Self { driver, executors: handles })
    }

    /// The membership view queries schedule on.
    pub fn registry(&self) -> ExecutorRegistry {
        self.driver.registry.clone()
    }

    /// Ids of the running executors.
    pub fn executor_ids(&self) -> Vec<String> {
        self.executors.iter().map(|e| e.id.clone()).collect()
    }

    /// Stops executor `id` and takes it out of the membership, as the driver would on noticing
    /// its loss; the state partitions it owned move to the others at the next batch.
    pub async fn stop_executor(&mut self, id: &str) {
        if let Some(i) = self.executors.iter().position(|e| e.id == id) {
            let e = self.executors.remove(i);
            e.shutdown().await;
            self.driver.registry.remove(id, "stopped").await;
        }
    }

    /// Stops executors, then the driver.
    pub async fn shutdown(self) {
        for e in self.executors {
            e.shutdown().await;
        }
        self.driver.shutdown().await;
    }
}

//! # sluice-cluster
//!
//! Cluster coordination shared by drivers and executors: membership, leader election and the
//! query store, backed by etcd. Without etcd (the embedded cluster, or a single driver with
//! executors pointed at it) executors register with the driver directly over gRPC instead.

pub mod etcd;

pub use etcd::{EtcdConfig, EtcdTls, EtcdUser, ExecutorRecord, Leadership, LeaseSession, MembershipEvent, QueryRecord};

/// Parses `--etcd URL[,URL…]` into a config for `cluster`.
pub fn etcd_config(endpoints: &str, cluster: &str, lease_ttl_secs: i64) -> EtcdConfig {
    EtcdConfig {
        endpoints: endpoints.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect(),
        cluster: cluster.to_string(),
        lease_ttl_secs,
        tls: None,
        user: None,
    }
}

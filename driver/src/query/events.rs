//! Spark's `StreamingQueryListener` events and the listeners that receive them.
//!
//! Every query posts its lifecycle here — started, a progress report per executed batch, idle
//! while no data arrives, terminated — and each listener of the session is called in order, on
//! the query's own task, as Spark's listener bus does. The CLI's status line and
//! `--progress-json`, the Prometheus metrics and the HTTP event stream are all listeners: they see
//! the same reports users see, never a second bookkeeping.
//!
//! The JSON of each event is Spark's `Event.json`, field for field, so tools written against
//! Spark's listener (a PySpark `StreamingQueryListener` forwarding `event.json`) read ours.

use std::sync::Arc;

use serde_json::json;

use crate::progress::StreamingQueryProgress;

/// One listener event.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryEvent {
    /// The query started (`QueryStartedEvent`): posted before `start` returns the handle.
    Started {
        /// Persistent query id.
        id: uuid::Uuid,
        /// This run's id.
        run_id: uuid::Uuid,
        /// `queryName`, if set.
        name: Option<String>,
        /// When the query started, ISO-8601 UTC with milliseconds.
        timestamp: String,
    },
    /// A batch ran (`QueryProgressEvent`); shared, because every listener gets the same report.
    Progress(Arc<StreamingQueryProgress>),
    /// A trigger found no data (`QueryIdleEvent`); posted at most once per
    /// `spark.sql.streaming.noDataProgressEventInterval` while idle.
    Idle {
        /// Persistent query id.
        id: uuid::Uuid,
        /// This run's id.
        run_id: uuid::Uuid,
        /// When the latest trigger without data started.
        timestamp: String,
    },
    /// The query stopped, with its error if it failed (`QueryTerminatedEvent`); posted before
    /// `awaitTermination` returns.
    Terminated {
        /// Persistent query id.
        id: uuid::Uuid,
        /// This run's id.
        run_id: uuid::Uuid,
        /// The error's one-line message, if the query failed.
        exception: Option<String>,
        /// Spark's error class of the failure; sluice errors carry none, so always `None` today.
        error_class_on_exception: Option<String>,
    },
}

impl QueryEvent {
    /// Spark's class name of the event (the SSE `event:` field).
    pub fn kind(&self) -> &'static str {
        match self {
            QueryEvent::Started { .. } => "QueryStartedEvent",
            QueryEvent::Progress(_) => "QueryProgressEvent",
            QueryEvent::Idle { .. } => "QueryIdleEvent",
            QueryEvent::Terminated { .. } => "QueryTerminatedEvent",
        }
    }

    /// The query the event is about.
    pub fn query_id(&self) -> uuid::Uuid {
        match self {
            QueryEvent::Started { id, .. } | QueryEvent::Idle { id, .. } | QueryEvent::Terminated { id, .. } => *id,
            QueryEvent::Progress(p) => p.id,
        }
    }

    /// The event as Spark's `json` (progress events nest the report under `progress`).
    pub fn json(&self) -> String {
        match self {
            // The progress report keeps its own field order and omission rules.
            QueryEvent::Progress(p) => format!("{{\"progress\":{}}}", p.json()),
            QueryEvent::Started { id, run_id, name, timestamp } => {
                json!({"id": id, "runId": run_id, "name": name, "timestamp": timestamp}).to_string()
            }
            QueryEvent::Idle { id, run_id, timestamp } => json!({"id": id, "runId": run_id, "timestamp": timestamp}).to_string(),
            QueryEvent::Terminated { id, run_id, exception, error_class_on_exception } => json!({
                "id": id, "runId": run_id, "exception": exception, "errorClassOnException": error_class_on_exception
            })
            .to_string(),
        }
    }
}

/// Receives every event of every query of a session (Spark's `StreamingQueryListener`). Called
/// on the query's task: a listener must not block.
pub type QueryListener = Arc<dyn Fn(&QueryEvent) + Send + Sync>;

/// A session's listeners, called in the order they were added.
#[derive(Clone, Default)]
pub struct Listeners(Vec<QueryListener>);

impl Listeners {
    /// Adds a listener after the existing ones.
    pub fn add(&mut self, listener: QueryListener) {
        self.0.push(listener);
    }

    /// Calls every listener with `event`.
    pub fn post(&self, event: &QueryEvent) {
        for l in &self.0 {
            l(event);
        }
    }
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Listeners({})", self.0.len())
    }
}

/// Fans every event out to whoever watches (the HTTP event stream, `sluice queries --watch`).
/// A watcher that falls more than [`EventHub::CAPACITY`] events behind misses the oldest ones
/// (it is told how many); queries never wait for watchers.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: tokio::sync::broadcast::Sender<QueryEvent>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self { tx: tokio::sync::broadcast::channel(Self::CAPACITY).0 }
    }
}

impl EventHub {
    /// Events a watcher may lag behind before it misses some.
    pub const CAPACITY: usize = 1024;

    /// The listener that feeds this hub.
    pub fn listener(&self) -> QueryListener {
        let tx = self.tx.clone();
        Arc::new(move |e: &QueryEvent| {
            // No watcher is not an error.
            let _ = tx.send(e.clone());
        })
    }

    /// The events posted from now on, as a stream that ends only with the hub.
    pub fn watch(&self) -> impl futures::Stream<Item = Watched> + Send + 'static {
        futures::stream::unfold(self.tx.subscribe(), |mut rx| async move {
            let next = match rx.recv().await {
                Ok(e) => Watched::Event(e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Watched::Missed(n),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            Some((next, rx))
        })
    }
}

/// What a watcher of an [`EventHub`] gets next.
#[derive(Debug, Clone)]
pub enum Watched {
    /// The next event.
    Event(QueryEvent),
    /// The watcher fell behind and missed this many events; it goes on with the newest.
    Missed(u64),
}

/// Spark's `StreamingQueryStatus`: what the query is doing right now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatus {
    /// Spark's status message ("Waiting for data to arrive", "Processing new data", …).
    pub message: String,
    /// Whether the current (or last) trigger found new data.
    pub is_data_available: bool,
    /// Whether a trigger is running.
    pub is_trigger_active: bool,
}

impl Default for QueryStatus {
    fn default() -> Self {
        Self { message: "Initializing sources".into(), is_data_available: false, is_trigger_active: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn events_serialize_as_sparks_json() {
        let id = uuid::Uuid::nil();
        let started = QueryEvent::Started { id, run_id: id, name: None, timestamp: "2026-01-01T00:00:00.000Z".into() };
        let v: Value = serde_json::from_str(&started.json()).unwrap();
        assert_eq!(v, json!({"id": id, "runId": id, "name": null, "timestamp": "2026-01-01T00:00:00.000Z"}));
        assert_eq!(started.kind(), "QueryStartedEvent");
        let ended = QueryEvent::Terminated { id, run_id: id, exception: Some("boom".into()), error_class_on_exception: None };
        let v: Value = serde_json::from_str(&ended.json()).unwrap();
        assert_eq!(v, json!({"id": id, "runId": id, "exception": "boom", "errorClassOnException": null}));
    }
}

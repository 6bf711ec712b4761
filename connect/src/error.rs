//! Errors as a Spark Connect client expects them: a gRPC status whose details carry Spark's
//! `ErrorInfo` (the JVM exception classes, error class, SQL state), from which PySpark raises
//! the matching Python exception (`AnalysisException`, `StreamingQueryException`, …).
//!
//! Every failure is `INTERNAL` (as Spark's server answers): the client retries `UNAVAILABLE`,
//! and a user's mistake must not be retried.

use std::collections::HashMap;

use sluice_common::error::{ErrorKind, SluiceError};
use tonic_types::{ErrorDetails, StatusExt};

/// The exception a client sees, by Spark's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionClass {
    /// A plan that cannot be analysed: unknown columns, unsupported streaming shapes, bad options.
    Analysis,
    /// SQL text that does not parse.
    Parse,
    /// A streaming query that failed (from `awaitTermination`, `exception()`).
    StreamingQuery,
    /// A well-formed request sluice does not implement (names the operation).
    UnsupportedOperation,
    /// A bad argument to a command (unknown query id, bad trigger).
    IllegalArgument,
    /// A plan the server cannot read (a field missing, an unknown relation kind).
    InvalidPlanInput,
    /// Anything else: sluice's own fault or a storage/network failure.
    Spark,
}

impl ExceptionClass {
    /// The JVM classes PySpark maps to its exceptions (errors/exceptions/connect.py).
    fn classes(self) -> &'static [&'static str] {
        match self {
            Self::Analysis => &["org.apache.spark.sql.AnalysisException", "org.apache.spark.SparkThrowable"],
            Self::Parse => &["org.apache.spark.sql.catalyst.parser.ParseException", "org.apache.spark.sql.AnalysisException"],
            Self::StreamingQuery => {
                &["org.apache.spark.sql.streaming.StreamingQueryException", "org.apache.spark.SparkThrowable"]
            }
            Self::UnsupportedOperation => &["java.lang.UnsupportedOperationException"],
            Self::IllegalArgument => &["java.lang.IllegalArgumentException"],
            Self::InvalidPlanInput => &["org.apache.spark.sql.connect.common.InvalidPlanInput"],
            Self::Spark => &["org.apache.spark.SparkException"],
        }
    }
}

/// A failure to report to a Spark Connect client.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// Which exception the client raises.
    pub class: ExceptionClass,
    /// Spark's error class, where Spark has one (`UNSUPPORTED_FEATURE…`, `STREAM_FAILED`).
    pub error_class: Option<&'static str>,
    /// Spark's SQL state for the error class.
    pub sql_state: Option<&'static str>,
    /// The message: one line with the cause and its context.
    pub message: String,
}

/// Results of the front end.
pub type Result<T, E = ConnectError> = std::result::Result<T, E>;

impl ConnectError {
    /// An error of `class` with `message`.
    pub fn new(class: ExceptionClass, message: impl Into<String>) -> Self {
        Self { class, error_class: None, sql_state: None, message: message.into() }
    }

    /// An analysis error (the user's plan is wrong for sluice or for Spark).
    pub fn analysis(message: impl Into<String>) -> Self {
        Self::new(ExceptionClass::Analysis, message)
    }

    /// A plan the server cannot read.
    pub fn invalid_plan(message: impl Into<String>) -> Self {
        Self::new(ExceptionClass::InvalidPlanInput, message)
    }

    /// A bad argument.
    pub fn illegal_argument(message: impl Into<String>) -> Self {
        Self::new(ExceptionClass::IllegalArgument, message)
    }

    /// An operation sluice does not support, named as the client wrote it (`df.rdd`,
    /// `foreach(writer)`, the relation or function name), with Spark's
    /// `UNSUPPORTED_FEATURE` error class.
    pub fn unsupported(operation: impl std::fmt::Display) -> Self {
        Self {
            class: ExceptionClass::UnsupportedOperation,
            error_class: Some("UNSUPPORTED_FEATURE"),
            sql_state: Some("0A000"),
            message: format!("[UNSUPPORTED_FEATURE] {operation} is not supported by sluice's Spark Connect server."),
        }
    }

    /// Sets Spark's error class and SQL state.
    pub fn with_error_class(mut self, error_class: &'static str, sql_state: &'static str) -> Self {
        self.error_class = Some(error_class);
        self.sql_state = Some(sql_state);
        self
    }

    /// The gRPC status the client turns into its exception.
    pub fn to_status(&self) -> tonic::Status {
        let classes = serde_json::to_string(self.class.classes()).unwrap_or_else(|_| "[]".into());
        let mut metadata = HashMap::from([("classes".to_string(), classes)]);
        if let Some(c) = self.error_class {
            metadata.insert("errorClass".into(), c.to_string());
            metadata.insert("messageParameters".into(), "{}".into());
        }
        if let Some(s) = self.sql_state {
            metadata.insert("sqlState".into(), s.to_string());
        }
        let reason = self.class.classes()[0];
        let details = ErrorDetails::with_error_info(reason, "org.apache.spark", metadata);
        tonic::Status::with_error_details(tonic::Code::Internal, self.message.clone(), details)
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

impl From<SluiceError> for ConnectError {
    /// A user's mistake is an analysis error (Spark reports bad options, unknown columns and
    /// unsupported streaming shapes as `AnalysisException`); anything else is a `SparkException`.
    ///
    /// A user error's context names lines of the job text the server generated, which the
    /// client never saw, so only its cause is reported.
    fn from(e: SluiceError) -> Self {
        match e.kind {
            ErrorKind::User => unresolved_column(&e.message).unwrap_or_else(|| Self::analysis(e.message.clone())),
            _ => Self::new(ExceptionClass::Spark, e.one_line()),
        }
    }
}

/// DataFusion's "No field named x. Valid fields are …" as Spark's `UNRESOLVED_COLUMN`.
fn unresolved_column(message: &str) -> Option<ConnectError> {
    let rest = &message[message.find("No field named ")? + "No field named ".len()..];
    // DataFusion puts the list on a line of its own.
    let (name, valid) = match rest.split_once("Valid fields are ") {
        Some((n, v)) => (n.trim().trim_end_matches('.'), v.trim().trim_end_matches('.')),
        None => (rest.trim_end_matches('.'), ""),
    };
    let bare = |s: &str| s.trim().trim_matches('"').rsplit('.').next().unwrap_or_default().trim_matches('"').to_string();
    let name = bare(name);
    let suggestions: Vec<String> = valid.split(", ").filter(|v| !v.is_empty()).map(|v| format!("`{}`", bare(v))).collect();
    let (class, text) = if suggestions.is_empty() {
        (
            "UNRESOLVED_COLUMN.WITHOUT_SUGGESTION",
            format!("A column, variable, or function parameter with name `{name}` cannot be resolved."),
        )
    } else {
        (
            "UNRESOLVED_COLUMN.WITH_SUGGESTION",
            format!(
                "A column, variable, or function parameter with name `{name}` cannot be resolved. Did you mean one of the following? [{}].",
                suggestions.join(", ")
            ),
        )
    };
    Some(ConnectError::analysis(format!("[{class}] {text}")).with_error_class(class, "42703"))
}

impl From<ConnectError> for tonic::Status {
    fn from(e: ConnectError) -> Self {
        e.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_sparks_error_info_for_the_client_to_pick_its_exception() {
        let status = ConnectError::unsupported("DataFrame.rdd").to_status();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(status.message().starts_with("[UNSUPPORTED_FEATURE] DataFrame.rdd"));
        let info = status.get_details_error_info().expect("ErrorInfo detail");
        assert_eq!(info.domain, "org.apache.spark");
        assert_eq!(info.metadata["classes"], r#"["java.lang.UnsupportedOperationException"]"#);
        assert_eq!(info.metadata["errorClass"], "UNSUPPORTED_FEATURE");
        assert_eq!(info.metadata["sqlState"], "0A000");
    }

    #[test]
    fn a_users_mistake_is_an_analysis_exception_and_a_fault_of_sluice_a_spark_exception() {
        assert_eq!(ConnectError::from(SluiceError::user("no column x")).class, ExceptionClass::Analysis);
        assert_eq!(ConnectError::from(SluiceError::internal("bug")).class, ExceptionClass::Spark);
    }

    #[test]
    fn unknown_columns_are_sparks_unresolved_column() {
        let e = ConnectError::from(SluiceError::user("No field named nope.\nValid fields are _s0.timestamp, _s0.value."));
        assert_eq!(e.error_class, Some("UNRESOLVED_COLUMN.WITH_SUGGESTION"));
        assert_eq!(
            e.message,
            "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with name `nope` cannot be resolved. Did you mean one of the following? [`timestamp`, `value`]."
        );
    }
}

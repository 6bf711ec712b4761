//! The one error type every sluice layer speaks.
//!
//! A streaming engine must decide, for every failure, two things: *whose* fault it is (so the
//! user gets an actionable message instead of a stack of internal frames) and *whether retrying
//! the batch can help* (an unreachable object store can recover; a malformed SQL statement never
//! will). [`SluiceError`] carries both explicitly so that the driver's retry logic and the CLI's
//! exit path never have to guess from message text — the failure mode Ballista hit when its errors
//! became strings on the wire.

use std::fmt;

/// Who is responsible for a failure; decides how the CLI words it and whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// The job file, an option, the input data or a checkpoint the user pointed us at.
    User,
    /// A service sluice depends on: object store, broker, etcd, a peer process.
    External,
    /// A bug or broken invariant inside sluice.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::User => "user error",
            ErrorKind::External => "external service error",
            ErrorKind::Internal => "internal error",
        })
    }
}

/// A failure with its responsibility, retry hint and a one-line, user-facing message.
///
/// `context` holds the chain of "while doing X" notes added on the way up, outermost first, so
/// the rendered line reads like `reading offsets/3 in file:///chk: unexpected end of JSON`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SluiceError {
    /// Whose fault the failure is.
    pub kind: ErrorKind,
    /// True when re-running the same batch attempt may succeed (transient I/O, lost executor).
    pub retryable: bool,
    /// The root cause, phrased for the user.
    pub message: String,
    /// "while …" notes, outermost first.
    pub context: Vec<String>,
}

/// Result alias used across sluice.
pub type Result<T, E = SluiceError> = std::result::Result<T, E>;

impl SluiceError {
    fn new(kind: ErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        Self { kind, retryable, message: message.into(), context: Vec::new() }
    }

    /// A mistake in what the user gave us; never retryable.
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, false, message)
    }

    /// A failing dependency; retryable by default because most such failures are transient.
    pub fn external(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::External, true, message)
    }

    /// A broken invariant inside sluice.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, false, message)
    }

    /// Overrides the retry hint (e.g. an external failure known to be permanent).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Adds an outer "while doing X" note.
    pub fn context(mut self, what: impl Into<String>) -> Self {
        self.context.insert(0, what.into());
        self
    }

    /// The one line shown to users: context chain, then the cause.
    pub fn one_line(&self) -> String {
        let mut line = String::new();
        for c in &self.context {
            line.push_str(c);
            line.push_str(": ");
        }
        line.push_str(&self.message);
        line.replace('\n', " ")
    }
}

impl fmt::Display for SluiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

impl std::error::Error for SluiceError {}

/// Adds context to any result whose error converts into [`SluiceError`].
pub trait ResultExt<T> {
    /// Prefixes the error with a "while …" note computed lazily.
    fn context_with(self, what: impl FnOnce() -> String) -> Result<T>;
    /// Prefixes the error with a fixed note.
    fn context(self, what: &str) -> Result<T>;
}

impl<T, E: Into<SluiceError>> ResultExt<T> for std::result::Result<T, E> {
    fn context_with(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
}

/// Whether trying a failed object store call again may help: a failed request, a timeout or a
/// dropped connection may; an answer (not found, already exists, a failed precondition) or a
/// refused request (an invalid path, an unsupported call) will not change.
pub fn is_transient_store_error(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    if matches!(e, E::Generic { .. }) && permanent_io_error(e) {
        return false;
    }
    !matches!(
        e,
        E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::NotModified { .. }
            | E::UnknownConfigurationKey { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
    )
}

/// Whether an error wraps an I/O error no retry will cure (a path through a file, a missing
/// directory, a refused permission): the local file system reports these as generic errors.
fn permanent_io_error(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as K;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                K::NotFound
                    | K::PermissionDenied
                    | K::AlreadyExists
                    | K::InvalidInput
                    | K::InvalidData
                    | K::NotADirectory
                    | K::IsADirectory
                    | K::ReadOnlyFilesystem
                    | K::InvalidFilename
            );
        }
        cause = c.source();
    }
    false
}

impl From<object_store::Error> for SluiceError {
    fn from(e: object_store::Error) -> Self {
        use object_store::Error as E;
        match &e {
            // What the store holds is not the user's doing: a missing object is the store's answer.
            E::NotFound { path, .. } => SluiceError::external(format!("not found: {path}")).with_retryable(false),
            E::InvalidPath { .. } | E::NotSupported { .. } | E::NotImplemented { .. } => SluiceError::user(e.to_string()),
            _ => SluiceError::external(e.to_string()).with_retryable(is_transient_store_error(&e)),
        }
    }
}

impl From<datafusion::error::DataFusionError> for SluiceError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e {
            D::External(inner) => match inner.downcast::<SluiceError>() {
                Ok(s) => *s,
                Err(other) => SluiceError::internal(other.to_string()),
            },
            D::Context(ctx, inner) => SluiceError::from(*inner).context(ctx),
            D::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
                Ok(owned) => SluiceError::from(owned),
                Err(shared) => SluiceError::internal(shared.to_string()),
            },
            D::ObjectStore(os) => SluiceError::from(*os),
            D::IoError(io) => SluiceError::external(io.to_string()),
            D::Plan(m) => SluiceError::user(m),
            D::SchemaError(err, _) => SluiceError::user(err.to_string()),
            D::SQL(err, _) => SluiceError::user(err.to_string()),
            D::NotImplemented(m) => SluiceError::user(format!("not supported: {m}")),
            D::Execution(m) => SluiceError::user(m),
            D::ArrowError(err, _) => SluiceError::from(*err),
            D::ParquetError(err) => SluiceError::from(*err),
            D::ResourcesExhausted(m) => SluiceError::external(m),
            D::Diagnostic(_, inner) => SluiceError::from(*inner),
            other => SluiceError::internal(other.to_string()),
        }
    }
}

impl From<SluiceError> for datafusion::error::DataFusionError {
    fn from(e: SluiceError) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

impl From<arrow::error::ArrowError> for SluiceError {
    fn from(e: arrow::error::ArrowError) -> Self {
        match e {
            arrow::error::ArrowError::ExternalError(inner) => match inner.downcast::<SluiceError>() {
                Ok(s) => *s,
                Err(other) => SluiceError::internal(other.to_string()),
            },
            arrow::error::ArrowError::IoError(m, _) => SluiceError::external(m),
            other => SluiceError::user(other.to_string()),
        }
    }
}

impl From<parquet::errors::ParquetError> for SluiceError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        SluiceError::user(format!("parquet: {e}"))
    }
}

impl From<serde_json::Error> for SluiceError {
    fn from(e: serde_json::Error) -> Self {
        SluiceError::user(format!("invalid JSON: {e}"))
    }
}

impl From<std::io::Error> for SluiceError {
    fn from(e: std::io::Error) -> Self {
        SluiceError::external(e.to_string())
    }
}

/// Returns early with a user error built from a format string.
#[macro_export]
macro_rules! user_err {
    ($($arg:tt)*) => { return Err($crate::error::SluiceError::user(format!($($arg)*))) };
}

/// Returns early with an internal error built from a format string.
#[macro_export]
macro_rules! internal_err {
    ($($arg:tt)*) => { return Err($crate::error::SluiceError::internal(format!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_context_outermost_first() {
        let e = SluiceError::user("bad").context("inner").context("outer");
        assert_eq!(e.one_line(), "outer: inner: bad");
    }

    #[test]
    fn local_file_errors_no_retry_can_cure_are_not_transient() {
        let io = std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory");
        let e = object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(io) };
        assert!(!is_transient_store_error(&e));
        let flaky = object_store::Error::Generic { store: "S3", source: "connection reset".into() };
        assert!(is_transient_store_error(&flaky));
    }

    #[test]
    fn sluice_error_survives_a_trip_through_datafusion() {
        let e = SluiceError::external("store down").context("reading x");
        let back = SluiceError::from(datafusion::error::DataFusionError::from(e.clone()));
        assert_eq!(back, e);
    }
}

//! Conversions between sluice's types and their gRPC form.
//!
//! Errors cross the wire as structured [`TaskError`]s (kind + retry hint + message + context),
//! never as bare strings, so the driver's retry decision survives the trip; batch contexts keep
//! their two watermarks apart.

use sluice_common::error::{ErrorKind, SluiceError};
use sluice_common::{BatchContext, BatchId, BatchWatermarks};

use crate::v1::task_error::Kind;
use crate::v1::{self, TaskError};

/// Encodes an error for the wire.
pub fn error_to_proto(e: &SluiceError) -> TaskError {
    TaskError {
        kind: match e.kind {
            ErrorKind::User => Kind::User,
            ErrorKind::External => Kind::External,
            ErrorKind::Internal => Kind::Internal,
        } as i32,
        retryable: e.retryable,
        message: e.message.clone(),
        context: e.context.clone(),
    }
}

/// Decodes an error from the wire.
pub fn error_from_proto(e: TaskError) -> SluiceError {
    let kind = match Kind::try_from(e.kind).unwrap_or(Kind::Internal) {
        Kind::User => ErrorKind::User,
        Kind::External => ErrorKind::External,
        Kind::Internal | Kind::Unspecified => ErrorKind::Internal,
    };
    SluiceError { kind, retryable: e.retryable, message: e.message, context: e.context }
}

impl From<&BatchContext> for v1::BatchContext {
    fn from(b: &BatchContext) -> Self {
        Self {
            batch_id: b.id.0,
            attempt: b.attempt,
            timestamp_ms: b.timestamp_ms,
            late_watermark_ms: b.watermarks.late_ms,
            eviction_watermark_ms: b.watermarks.eviction_ms,
        }
    }
}

impl From<&v1::BatchContext> for BatchContext {
    fn from(b: &v1::BatchContext) -> Self {
        Self {
            id: BatchId(b.batch_id),
            attempt: b.attempt,
            timestamp_ms: b.timestamp_ms,
            watermarks: BatchWatermarks { late_ms: b.late_watermark_ms, eviction_ms: b.eviction_watermark_ms },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip() {
        let e = SluiceError::external("s3 down").context("reading part-0").with_retryable(true);
        assert_eq!(error_from_proto(error_to_proto(&e)), e);
    }

    #[test]
    fn batch_contexts_round_trip() {
        let b = BatchContext {
            id: BatchId(4),
            attempt: 2,
            timestamp_ms: 1_700_000_000_000,
            watermarks: BatchWatermarks { late_ms: 5_000, eviction_ms: 9_000 },
        };
        assert_eq!(BatchContext::from(&v1::BatchContext::from(&b)), b);
    }
}

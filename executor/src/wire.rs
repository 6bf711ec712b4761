//! Conversions between sluice errors and their gRPC form.
//!
//! Errors cross the wire as structured [`TaskError`]s (kind + retry hint + message + context),
//! never as bare strings, so the driver's retry decision survives the trip.

use sluice_common::error::{ErrorKind, SluiceError};
use sluice_proto::v1::task_error::Kind;
use sluice_proto::v1::TaskError;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip() {
        let e = SluiceError::external("s3 down").context("reading part-0").with_retryable(true);
        assert_eq!(error_from_proto(error_to_proto(&e)), e);
    }
}

//! Domain errors onto the wire: a gRPC status with google.rpc details for a single call, or a
//! `RecordError` carrying the same code, message and violations inside a batch or stream.

use std::time::Duration;

use mekong_core::{Rejection, RejectionKind};
use mekong_kafka::ProduceError;
use mekong_proto::v1::{FieldViolation, RecordError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// How long a caller should wait before retrying after the producer queue was full.
pub(crate) const QUEUE_FULL_RETRY: Duration = Duration::from_millis(250);

/// Why one record was not published.
#[derive(Debug)]
pub(crate) enum PublishError {
    Rejected(Rejection),
    Produce(ProduceError),
    /// The caller's credentials stopped being valid (its client was removed).
    Unauthenticated(String),
}

impl PublishError {
    fn parts(&self) -> (Code, String, Vec<(String, String)>, Option<Duration>) {
        match self {
            PublishError::Rejected(r) => {
                let code = match r.kind {
                    RejectionKind::Unauthenticated => Code::Unauthenticated,
                    RejectionKind::PermissionDenied => Code::PermissionDenied,
                    RejectionKind::NotFound => Code::NotFound,
                    RejectionKind::InvalidArgument => Code::InvalidArgument,
                    RejectionKind::ResourceExhausted => Code::ResourceExhausted,
                    RejectionKind::FailedPrecondition => Code::FailedPrecondition,
                };
                let violations = r
                    .violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect();
                (code, r.message.clone(), violations, None)
            }
            PublishError::Produce(e @ ProduceError::QueueFull) => (
                Code::ResourceExhausted,
                e.to_string(),
                vec![],
                Some(QUEUE_FULL_RETRY),
            ),
            PublishError::Produce(e @ ProduceError::Unavailable(_)) => {
                (Code::Unavailable, e.to_string(), vec![], None)
            }
            PublishError::Produce(e @ ProduceError::TooLarge(_)) => {
                (Code::ResourceExhausted, e.to_string(), vec![], None)
            }
            PublishError::Produce(e @ ProduceError::Refused(_)) => {
                (Code::FailedPrecondition, e.to_string(), vec![], None)
            }
            PublishError::Unauthenticated(m) => (Code::Unauthenticated, m.clone(), vec![], None),
        }
    }

    /// The gRPC code this error answers with, as a metric label: `invalid_argument`, `unavailable`...
    pub(crate) fn reason(&self) -> String {
        let mut name = String::new();
        for (i, c) in format!("{:?}", self.parts().0).chars().enumerate() {
            if i > 0 && c.is_ascii_uppercase() {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        }
        name
    }

    /// The message and the violations (`field: description`), for the audit trail.
    pub(crate) fn explain(&self) -> (String, Vec<String>) {
        let (_, message, violations, _) = self.parts();
        let violations = violations
            .into_iter()
            .map(|(field, description)| format!("{field}: {description}"))
            .collect();
        (message, violations)
    }

    /// For Kafka failures, what kind (a metric label).
    pub(crate) fn produce_kind(&self) -> Option<&'static str> {
        match self {
            PublishError::Produce(ProduceError::QueueFull) => Some("queue_full"),
            PublishError::Produce(ProduceError::Unavailable(_)) => Some("unavailable"),
            PublishError::Produce(ProduceError::TooLarge(_)) => Some("too_large"),
            PublishError::Produce(ProduceError::Refused(_)) => Some("refused"),
            _ => None,
        }
    }

    pub(crate) fn into_status(self) -> Status {
        let (code, message, violations, retry) = self.parts();
        let mut details = ErrorDetails::new();
        if !violations.is_empty() {
            details.set_bad_request(
                violations
                    .into_iter()
                    .map(|(f, d)| tonic_types::FieldViolation::new(f, d))
                    .collect::<Vec<_>>(),
            );
        }
        if retry.is_some() {
            details.set_retry_info(retry);
        }
        Status::with_error_details(code, message, details)
    }

    pub(crate) fn into_record_error(self) -> RecordError {
        let (code, message, violations, retry) = self.parts();
        RecordError {
            code: code as i32,
            message,
            violations: violations
                .into_iter()
                .map(|(field, description)| FieldViolation { field, description })
                .collect(),
            retry_after_ms: retry.map_or(0, |d| d.as_millis() as u64),
        }
    }
}

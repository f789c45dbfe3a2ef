//! Domain errors onto the wire: a gRPC status with google.rpc details for a single call, or a
//! `RecordError` carrying the same code, message and violations inside a batch or stream. What a
//! library said (librdkafka, a join error) goes to the logs, never to the caller.

use std::time::Duration;

use mekong_core::{Rejection, RejectionKind};
use mekong_kafka::ProduceError;
use mekong_proto::v1::{FieldViolation, Placement, RecordError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// How long a caller should wait before retrying after the producer queue was full.
pub(crate) const QUEUE_FULL_RETRY: Duration = Duration::from_millis(250);
/// How long a caller should wait before retrying when every judging thread is busy.
pub(crate) const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The gRPC code of each kind of refusal: the one mapping, used by every transport.
pub fn code_of(kind: RejectionKind) -> Code {
    match kind {
        RejectionKind::Unauthenticated => Code::Unauthenticated,
        RejectionKind::PermissionDenied => Code::PermissionDenied,
        RejectionKind::NotFound => Code::NotFound,
        RejectionKind::InvalidArgument | RejectionKind::SchemaViolation => Code::InvalidArgument,
        RejectionKind::ResourceExhausted => Code::ResourceExhausted,
        RejectionKind::FailedPrecondition => Code::FailedPrecondition,
    }
}

/// Why a call or record was refused, as a machine reads it: the `reason` of the google.rpc
/// ErrorInfo a status carries, of a `RecordError`, and of an HTTP problem document. The HTTP
/// status of a refusal follows from its code and reason (`http::problem`).
pub mod reason {
    /// The ErrorInfo domain.
    pub const DOMAIN: &str = "mekong";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
    pub const UNKNOWN_RECORD_TYPE: &str = "UNKNOWN_RECORD_TYPE";
    /// Not JSON, bad attributes, an unreadable key, a schema version that does not exist.
    pub const INVALID_RECORD: &str = "INVALID_RECORD";
    pub const SCHEMA_VIOLATION: &str = "SCHEMA_VIOLATION";
    pub const RECORD_TOO_LARGE: &str = "RECORD_TOO_LARGE";
    pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";
    /// A copy (after routing) is larger than Kafka takes.
    pub const COPY_TOO_LARGE: &str = "COPY_TOO_LARGE";
    pub const NO_ROUTE: &str = "NO_ROUTE";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
    pub const RULE_TOO_SLOW: &str = "RULE_TOO_SLOW";
    pub const QUOTA_EXCEEDED: &str = "QUOTA_EXCEEDED";
    pub const HUB_BUSY: &str = "HUB_BUSY";
    /// The producer's queue is full: Kafka is slower than the records come.
    pub const KAFKA_BUSY: &str = "KAFKA_BUSY";
    pub const KAFKA_UNAVAILABLE: &str = "KAFKA_UNAVAILABLE";
    /// Kafka answered, and refused the write.
    pub const KAFKA_REFUSED: &str = "KAFKA_REFUSED";
    /// Any of the Kafka failures, after some of the record's copies did land (named in `landed`).
    pub const PARTIAL_WRITE: &str = "PARTIAL_WRITE";
    pub const INTERNAL: &str = "INTERNAL";
}

/// The reason of each kind of refusal.
fn reason_of(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::Unauthenticated => reason::UNAUTHENTICATED,
        RejectionKind::PermissionDenied => reason::PERMISSION_DENIED,
        RejectionKind::NotFound => reason::UNKNOWN_RECORD_TYPE,
        RejectionKind::InvalidArgument => reason::INVALID_RECORD,
        RejectionKind::SchemaViolation => reason::SCHEMA_VIOLATION,
        RejectionKind::ResourceExhausted => reason::RECORD_TOO_LARGE,
        RejectionKind::FailedPrecondition => reason::NO_ROUTE,
    }
}

/// A code's name as gRPC writes it in lower case, `invalid_argument`: a metric label, the audit
/// trail's reason.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Why one record was not published.
#[derive(Debug)]
pub(crate) enum PublishError {
    Rejected(Rejection),
    /// Kafka did not take every copy; `landed` are those it did acknowledge.
    Produce {
        error: ProduceError,
        landed: Vec<Placement>,
    },
    /// The caller's credentials or role stopped being valid.
    Caller(Status),
    /// The idempotency key was used for another record.
    KeyReused,
    /// Judging took longer than allowed, in the rule named.
    TooSlow {
        limit: Duration,
        rule: String,
    },
    /// Every judging thread stayed busy.
    Busy,
    /// A bug: the judging thread failed.
    Internal,
}

/// A refusal, ready for the wire.
struct Parts {
    code: Code,
    /// The refusal's [`Reason`], for machines (and the HTTP status).
    reason: &'static str,
    message: String,
    /// (field, description for the caller, description without values).
    violations: Vec<(String, String, String)>,
    retry: Option<Duration>,
    landed: Vec<Placement>,
}

impl PublishError {
    fn parts(&self) -> Parts {
        let plain = |code, reason, message: String| Parts {
            code,
            reason,
            message,
            violations: Vec::new(),
            retry: None,
            landed: Vec::new(),
        };
        match self {
            PublishError::Rejected(r) => Parts {
                violations: r
                    .violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone(), v.masked.clone()))
                    .collect(),
                ..plain(code_of(r.kind), reason_of(r.kind), r.message.clone())
            },
            PublishError::Produce { error, landed } => {
                let (code, reason, retry) = match error {
                    ProduceError::QueueFull => (
                        Code::ResourceExhausted,
                        reason::KAFKA_BUSY,
                        Some(QUEUE_FULL_RETRY),
                    ),
                    ProduceError::Unavailable(_) => {
                        (Code::Unavailable, reason::KAFKA_UNAVAILABLE, None)
                    }
                    ProduceError::TooLarge { .. } => {
                        (Code::ResourceExhausted, reason::COPY_TOO_LARGE, None)
                    }
                    ProduceError::Refused { .. } => {
                        (Code::FailedPrecondition, reason::KAFKA_REFUSED, None)
                    }
                };
                let mut message = error.to_string();
                let reason = if landed.is_empty() {
                    reason
                } else {
                    reason::PARTIAL_WRITE
                };
                if !landed.is_empty() {
                    message.push_str(&format!(
                        "; {} of the record's copies landed before (see `landed`), retrying with \
                         the same idempotency key writes them again with the same record id",
                        landed.len()
                    ));
                }
                Parts {
                    retry,
                    landed: landed.clone(),
                    ..plain(code, reason, message)
                }
            }
            PublishError::Caller(status) => plain(
                status.code(),
                if status.code() == Code::PermissionDenied {
                    reason::PERMISSION_DENIED
                } else {
                    reason::UNAUTHENTICATED
                },
                status.message().to_owned(),
            ),
            PublishError::KeyReused => plain(
                Code::FailedPrecondition,
                reason::IDEMPOTENCY_KEY_REUSED,
                "idempotency key already used for another record (a different type, key, \
                 attributes or payload); use a new key for a new record"
                    .into(),
            ),
            PublishError::TooSlow { limit, rule } => plain(
                Code::InvalidArgument,
                reason::RULE_TOO_SLOW,
                format!(
                    "judging this record took longer than {limit:?}, in {rule}; it was not accepted. \
                     Ask the hub's administrators to simplify that rule"
                ),
            ),
            PublishError::Busy => Parts {
                retry: Some(BUSY_RETRY),
                ..plain(
                    Code::ResourceExhausted,
                    reason::HUB_BUSY,
                    "the hub is busy judging other records; retry shortly".into(),
                )
            },
            PublishError::Internal => plain(
                Code::Internal,
                reason::INTERNAL,
                "the hub failed to judge this record; the administrators are told".into(),
            ),
        }
    }

    /// The gRPC code this error answers with, as a metric label: `invalid_argument`, `unavailable`...
    pub(crate) fn reason(&self) -> &'static str {
        code_name(self.parts().code)
    }

    /// Why, as a machine reads it: `SCHEMA_VIOLATION`, `NO_ROUTE` ... (see [`reason`]).
    pub(crate) fn why(&self) -> &'static str {
        self.parts().reason
    }

    /// The message and the violations (`field: description`, without payload values), for the
    /// audit trail.
    pub(crate) fn explain(&self) -> (String, Vec<String>) {
        let parts = self.parts();
        let violations = parts
            .violations
            .into_iter()
            .map(|(field, _, masked)| format!("{field}: {masked}"))
            .collect();
        (parts.message, violations)
    }

    /// For Kafka failures, what kind (a metric label).
    pub(crate) fn produce_kind(&self) -> Option<&'static str> {
        match self {
            PublishError::Produce { error, .. } => Some(match error {
                ProduceError::QueueFull => "queue_full",
                ProduceError::Unavailable(_) => "unavailable",
                ProduceError::TooLarge { .. } => "too_large",
                ProduceError::Refused { .. } => "refused",
            }),
            _ => None,
        }
    }

    /// The copies that landed before a write failed.
    pub(crate) fn landed(&self) -> &[Placement] {
        match self {
            PublishError::Produce { landed, .. } => landed,
            _ => &[],
        }
    }

    pub(crate) fn into_status(self) -> Status {
        let parts = self.parts();
        let mut details = ErrorDetails::new();
        if !parts.violations.is_empty() {
            details.set_bad_request(
                parts
                    .violations
                    .into_iter()
                    .map(|(f, d, _)| tonic_types::FieldViolation::new(f, d))
                    .collect::<Vec<_>>(),
            );
        }
        if parts.retry.is_some() {
            details.set_retry_info(parts.retry);
        }
        // The reason, and after a partial write the copies that landed (`topic/partition/offset`,
        // comma-separated).
        let mut metadata = std::collections::HashMap::new();
        if !parts.landed.is_empty() {
            let landed = parts
                .landed
                .iter()
                .map(|p| mekong_core::position_text(&p.topic, p.partition, p.offset))
                .collect::<Vec<_>>()
                .join(",");
            metadata.insert("landed".to_string(), landed);
        }
        details.set_error_info(parts.reason, reason::DOMAIN, metadata);
        Status::with_error_details(parts.code, parts.message, details)
    }

    pub(crate) fn into_record_error(self) -> RecordError {
        let parts = self.parts();
        RecordError {
            code: parts.code as i32,
            message: parts.message,
            violations: parts
                .violations
                .into_iter()
                .map(|(field, description, _)| FieldViolation { field, description })
                .collect(),
            retry_after_ms: parts.retry.map_or(0, |d| d.as_millis() as u64),
            landed: parts.landed,
            reason: parts.reason.to_owned(),
        }
    }
}

/// A status for a failure inside the hub: the caller gets `what` in plain words, the log gets the
/// cause.
pub(crate) fn unavailable(what: &str, cause: &dyn std::fmt::Display) -> Status {
    tracing::warn!(error = %cause, "{what}");
    Status::unavailable(format!("{what}; retry shortly"))
}

/// An operator's request that was not done, as a status; the cause of a failure goes to the log.
pub(crate) fn control_status(e: mekong_control::ControlError) -> Status {
    use mekong_control::ControlError as E;
    use mekong_kafka::StoreError;
    match e {
        E::InvalidArgument(m) => Status::invalid_argument(m),
        E::NotFound(m) => Status::not_found(m),
        E::FailedPrecondition(m) => Status::failed_precondition(m),
        E::Unavailable { what, cause } => unavailable(&what, &cause),
        E::Internal { what, cause } => internal(&what, &cause),
        E::Store(e @ StoreError::Concurrent) => Status::aborted(e.to_string()),
        E::Store(StoreError::Unavailable(cause)) => {
            unavailable("the resource store on Kafka cannot be reached", &cause)
        }
        E::Store(e @ StoreError::Stopped) => Status::unavailable(e.to_string()),
    }
}

/// As [`unavailable`], for failures that are the hub's own fault.
pub(crate) fn internal(what: &str, cause: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %cause, "{what}");
    Status::internal(format!("{what}; the administrators are told"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_what_grpc_calls_them() {
        assert_eq!(code_name(Code::InvalidArgument), "invalid_argument");
        assert_eq!(code_name(Code::Unauthenticated), "unauthenticated");
        assert_eq!(code_of(RejectionKind::NotFound), Code::NotFound);
    }

    #[test]
    fn kafka_failures_say_nothing_of_librdkafka_and_name_what_landed() {
        let error = PublishError::Produce {
            error: ProduceError::Unavailable(Some(rdkafka_error())),
            landed: vec![Placement {
                topic: "t".into(),
                partition: 1,
                offset: 9,
                routes: vec!["r".into()],
            }],
        };
        let record = PublishError::Produce {
            error: ProduceError::Unavailable(Some(rdkafka_error())),
            landed: error.landed().to_vec(),
        }
        .into_record_error();
        assert_eq!(record.landed.len(), 1);
        let status = error.into_status();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("Local"), "{}", status.message());
        assert!(status.message().contains("1 of the record's copies landed"));
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "PARTIAL_WRITE");
        assert_eq!(info.metadata["landed"], "t/1/9");
    }

    fn rdkafka_error() -> mekong_kafka::KafkaError {
        mekong_kafka::KafkaError::MessageProduction(rdkafka_code())
    }

    fn rdkafka_code() -> mekong_kafka::RDKafkaErrorCode {
        mekong_kafka::RDKafkaErrorCode::MessageTimedOut
    }
}

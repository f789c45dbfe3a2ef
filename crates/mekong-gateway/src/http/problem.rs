//! Refusals over HTTP as RFC 9457 problem documents (`application/problem+json`), made from the
//! very status (code, reason, message, details) the gRPC API answers with: one meaning, two
//! encodings. The HTTP status follows from the reason where it says more than the code (a schema
//! violation is 422 where a malformed record is 400), else from the code.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use mekong_proto::v1::RecordError;
use serde::Serialize;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::records::PlacementJson;
use crate::status::{code_name, reason};

pub(crate) const PROBLEM_JSON: &str = "application/problem+json";
/// What `Retry-After` says of a 503 or 429 whose cause gave no wait of its own.
pub(crate) const DEFAULT_RETRY: Duration = Duration::from_secs(2);

/// An RFC 9457 problem document (boxed: it travels in `Result`s).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Problem(Box<Document>);

/// The document's members: the standard ones and Mekong's beside them.
#[derive(Debug, Serialize)]
struct Document {
    /// `urn:mekong:problem:<reason>`, e.g. `urn:mekong:problem:schema-violation`.
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    #[serde(serialize_with = "as_u16")]
    status: StatusCode,
    detail: String,
    /// The gRPC code of the same refusal, `invalid_argument`.
    code: &'static str,
    /// The machine-readable reason, `SCHEMA_VIOLATION` (docs/integrator-guide.md lists them).
    reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    violations: Vec<FieldViolationJson>,
    /// Milliseconds to wait before retrying; also sent as `Retry-After` (seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
    /// After a partial write: the copies that landed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    landed: Vec<PlacementJson>,
}

#[derive(Debug, Serialize)]
struct FieldViolationJson {
    field: String,
    description: String,
}

fn as_u16<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    fn new(code: Code, reason: String, detail: String) -> Problem {
        let status = http_status(code, &reason);
        let reason = if reason.is_empty() {
            code_name(code).to_ascii_uppercase()
        } else {
            reason
        };
        Problem(Box::new(Document {
            kind: format!(
                "urn:mekong:problem:{}",
                reason.to_ascii_lowercase().replace('_', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error"),
            status,
            detail,
            code: code_name(code),
            reason,
            violations: Vec::new(),
            retry_after_ms: None,
            landed: Vec::new(),
        }))
    }

    /// A refusal of the HTTP layer itself (a header, the content type, the body), with its own
    /// status.
    pub(crate) fn http(status: StatusCode, reason: &str, detail: impl Into<String>) -> Problem {
        let mut problem = Problem::new(code_of_http(status), reason.to_owned(), detail.into());
        problem.0.status = status;
        problem.0.title = status.canonical_reason().unwrap_or("Error");
        problem
    }

    /// The problem a gRPC status describes, details included.
    pub(crate) fn from_status(status: &Status) -> Problem {
        let details = status.get_error_details();
        let info = details.error_info();
        let mut problem = Problem::new(
            status.code(),
            info.map(|i| i.reason.clone()).unwrap_or_default(),
            status.message().to_owned(),
        );
        if let Some(bad) = details.bad_request() {
            problem.0.violations = bad
                .field_violations
                .iter()
                .map(|v| FieldViolationJson {
                    field: v.field.clone(),
                    description: v.description.clone(),
                })
                .collect();
        }
        problem.0.retry_after_ms = details
            .retry_info()
            .and_then(|r| r.retry_delay)
            .map(|d| d.as_millis() as u64);
        if let Some(landed) = info.and_then(|i| i.metadata.get("landed")) {
            problem.0.landed = landed.split(',').filter_map(PlacementJson::parse).collect();
        }
        problem.with_default_retry()
    }

    /// The problem of one record of a batch.
    pub(crate) fn from_record_error(error: RecordError) -> Problem {
        let mut problem = Problem::new(Code::from(error.code), error.reason, error.message);
        problem.0.violations = error
            .violations
            .into_iter()
            .map(|v| FieldViolationJson {
                field: v.field,
                description: v.description,
            })
            .collect();
        problem.0.retry_after_ms = (error.retry_after_ms > 0).then_some(error.retry_after_ms);
        problem.0.landed = error.landed.into_iter().map(PlacementJson::from).collect();
        problem.with_default_retry()
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.0.status
    }

    /// A 503 or 429 always says when to come back.
    fn with_default_retry(mut self) -> Problem {
        let retryable = matches!(
            self.0.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        );
        if retryable && self.0.retry_after_ms.is_none() {
            self.0.retry_after_ms = Some(DEFAULT_RETRY.as_millis() as u64);
        }
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).expect("a problem serializes");
        let mut response = (self.0.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(ms) = self.0.retry_after_ms {
            // Whole seconds, rounded up: never sooner than the hub asked.
            headers.insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
        }
        response
    }
}

/// The HTTP status of a refusal.
pub(crate) fn http_status(code: Code, why: &str) -> StatusCode {
    match why {
        reason::SCHEMA_VIOLATION | reason::NO_ROUTE | reason::RULE_TOO_SLOW => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        reason::RECORD_TOO_LARGE | reason::BATCH_TOO_LARGE | reason::COPY_TOO_LARGE => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        reason::IDEMPOTENCY_KEY_REUSED => StatusCode::CONFLICT,
        reason::HUB_BUSY
        | reason::KAFKA_BUSY
        | reason::KAFKA_UNAVAILABLE
        | reason::PARTIAL_WRITE => StatusCode::SERVICE_UNAVAILABLE,
        reason::KAFKA_REFUSED => StatusCode::BAD_GATEWAY,
        _ => match code {
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound | Code::Unimplemented => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::FailedPrecondition => StatusCode::UNPROCESSABLE_ENTITY,
            Code::OutOfRange => StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable | Code::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// The gRPC code nearest an HTTP status, for problems the HTTP layer finds itself.
fn code_of_http(status: StatusCode) -> Code {
    match status {
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => Code::Unimplemented,
        StatusCode::PAYLOAD_TOO_LARGE => Code::OutOfRange,
        StatusCode::REQUEST_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        s if s.is_server_error() => Code::Internal,
        _ => Code::InvalidArgument,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PublishError;
    use mekong_core::{Rejection, RejectionKind, Violation};

    fn rejected(kind: RejectionKind, violations: Vec<Violation>) -> PublishError {
        PublishError::Rejected(Rejection {
            violations,
            ..Rejection::new(kind, "m")
        })
    }

    #[test]
    fn each_refusal_has_the_http_status_its_meaning_asks_for() {
        let cases = [
            (rejected(RejectionKind::InvalidArgument, vec![]), 400),
            (
                rejected(
                    RejectionKind::SchemaViolation,
                    vec![Violation::new("/A", "d")],
                ),
                422,
            ),
            (rejected(RejectionKind::NotFound, vec![]), 404),
            (rejected(RejectionKind::PermissionDenied, vec![]), 403),
            (rejected(RejectionKind::ResourceExhausted, vec![]), 413),
            (rejected(RejectionKind::FailedPrecondition, vec![]), 422),
            (PublishError::KeyReused, 409),
            (PublishError::Busy, 503),
        ];
        for (error, expected) in cases {
            let debug = format!("{error:?}");
            let record = Problem::from_record_error(
                match &error {
                    PublishError::Rejected(r) => PublishError::Rejected(r.clone()),
                    PublishError::KeyReused => PublishError::KeyReused,
                    _ => PublishError::Busy,
                }
                .into_record_error(),
            );
            let single = Problem::from_status(&error.into_status());
            assert_eq!(single.status().as_u16(), expected, "{debug}");
            // A batch's record and a single call say the same.
            assert_eq!(record.status(), single.status(), "{debug}");
            assert_eq!(record.0.reason, single.0.reason, "{debug}");
        }
    }

    #[test]
    fn violations_and_waits_travel_into_the_document() {
        let status = rejected(
            RejectionKind::SchemaViolation,
            vec![Violation::new("/ChuHoSo/SoDienThoai", "bad")],
        )
        .into_status();
        let problem = Problem::from_status(&status);
        assert_eq!(problem.0.kind, "urn:mekong:problem:schema-violation");
        assert_eq!(problem.0.violations[0].field, "/ChuHoSo/SoDienThoai");
        let busy = Problem::from_status(&PublishError::Busy.into_status());
        assert_eq!(busy.0.retry_after_ms, Some(1000));
        let response = busy.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        // A 503 without a wait of its own still says when to come back.
        let down = Problem::from_status(&Status::unavailable("x"));
        assert_eq!(down.0.retry_after_ms, Some(2000));
    }
}

//! Why a record is refused: the domain's error model. The gateway maps each kind onto a gRPC code;
//! the messages are written for the person who has to fix the record.

use std::fmt;

/// The class of a refusal; each maps onto one gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Bad credentials or none (UNAUTHENTICATED).
    Unauthenticated,
    /// The client may not do this (PERMISSION_DENIED).
    PermissionDenied,
    /// No such record type (NOT_FOUND).
    NotFound,
    /// The record itself is wrong: not JSON, schema violations, bad attributes (INVALID_ARGUMENT).
    InvalidArgument,
    /// Over a size limit (RESOURCE_EXHAUSTED).
    ResourceExhausted,
    /// The record is valid but the hub is not set up to take it, e.g. no route matches it
    /// (FAILED_PRECONDITION).
    FailedPrecondition,
}

/// One problem in a payload: where (a JSON pointer) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the payload, "" for the payload as a whole.
    pub field: String,
    pub description: String,
}

/// A refused record: kind, a plain-words message, and per-field violations where there are any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
    pub violations: Vec<Violation>,
}

impl Rejection {
    pub fn new(kind: RejectionKind, message: impl Into<String>) -> Self {
        Rejection {
            kind,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    pub fn invalid(message: impl Into<String>, violations: Vec<Violation>) -> Self {
        Rejection {
            kind: RejectionKind::InvalidArgument,
            message: message.into(),
            violations,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        for v in &self.violations {
            let field = if v.field.is_empty() {
                "(payload)"
            } else {
                &v.field
            };
            write!(f, "; {field}: {}", v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

//! Why a record is refused: the domain's error model. The gateway maps each kind onto a gRPC code;
//! the messages are written for the person who has to fix the record.

use std::borrow::Cow;
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
    /// The request is wrong: not JSON, bad attributes, an unreadable key (INVALID_ARGUMENT).
    InvalidArgument,
    /// The record is JSON but does not match its type's schema (INVALID_ARGUMENT too; over HTTP,
    /// 422 where a malformed one is 400).
    SchemaViolation,
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
    /// What is wrong, for the caller: it quotes at most a short excerpt of the offending value.
    pub description: String,
    /// The same without any part of the value, for the audit trail and the logs: the personal data
    /// of a refused record is kept nowhere.
    pub masked: String,
}

impl Violation {
    /// A violation whose description quotes nothing of the payload.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Violation {
        let description = description.into();
        Violation {
            field: field.into(),
            masked: description.clone(),
            description,
        }
    }
}

/// A refused record: kind, a plain-words message, and per-field violations where there are any.
/// Messages name no payload value; names the caller sent (a record type) are shortened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
    pub violations: Vec<Violation>,
    /// The record's partition key, when it was read before the refusal (and is not oversized): the
    /// audit trail keeps it so that a refused record can be traced by its dossier.
    pub key: Option<String>,
    /// Route conditions that could not be evaluated for the record (counted as no match), so that
    /// they are counted when no other route took it either.
    pub unevaluable: Vec<crate::record::UnevaluableCondition>,
}

impl Rejection {
    pub fn new(kind: RejectionKind, message: impl Into<String>) -> Self {
        Rejection {
            kind,
            message: message.into(),
            violations: Vec::new(),
            key: None,
            unevaluable: Vec::new(),
        }
    }

    pub fn invalid(message: impl Into<String>, violations: Vec<Violation>) -> Self {
        Rejection {
            violations,
            ..Rejection::new(RejectionKind::InvalidArgument, message)
        }
    }

    pub(crate) fn with_key(mut self, key: Option<&str>) -> Self {
        self.key = key.map(str::to_owned);
        self
    }
}

/// At most `max_chars` characters of a text the hub did not choose, for a message: longer ones are
/// cut, with `…` to say so.
pub fn excerpt(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
        None => Cow::Borrowed(text),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_long_texts_on_character_boundaries() {
        assert_eq!(excerpt("dossier.sync", 20), "dossier.sync");
        assert_eq!(excerpt("Hồ sơ trễ hạn", 5), "Hồ sơ…");
        assert_eq!(excerpt(&"x".repeat(10_000), 64).chars().count(), 65);
    }
}

//! Why an operator's request was not done, in terms every transport maps onto its own codes.

use mekong_kafka::StoreError;

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request itself is wrong.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// The hub is not set up for the request (e.g. no lineage index here).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Kafka (or an index) did not answer; `what` says what could not be done, in plain words.
    #[error("{what}")]
    Unavailable {
        what: String,
        #[source]
        cause: Cause,
    },
    /// A bug.
    #[error("{what}")]
    Internal {
        what: String,
        #[source]
        cause: Cause,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ControlError {
    pub fn unavailable(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        ControlError::Unavailable {
            what: what.into(),
            cause: cause.into(),
        }
    }

    pub fn internal(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        ControlError::Internal {
            what: what.into(),
            cause: cause.into(),
        }
    }
}

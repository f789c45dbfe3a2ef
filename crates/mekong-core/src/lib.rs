//! The domain of Mekong, free of I/O: resources and how they are read and checked, the immutable
//! [`Catalog`] they compile into, and the rules a record is judged by — who may publish it, whether
//! it matches its schema, where it goes and what is redacted on the way.
//!
//! Nothing here touches a network, a file or a clock: the gateway hands in bytes and the time, and
//! gets back either the exact Kafka records to write or a [`Rejection`] that says what to fix.
//! Everything expensive (schemas, CEL programs) is compiled once, when a catalog is built.

mod access;
mod catalog;
mod condition;
mod envelope;
mod pattern;
mod redact;
mod rejection;
mod resource;
mod schema;
mod topic;

pub use access::{ApiKeyHash, Role, hash_api_key};
pub use catalog::{Catalog, CatalogError, Client, RecordType, Route};
pub use envelope::{
    CloudEvent, Copy, Limits, Prepared, Submission, UnevaluableCondition, record_id_for,
};
pub use redact::{JsonPointer, PointerError};
pub use rejection::{Rejection, RejectionKind, Violation};
pub use resource::{
    ClientSpec, DestinationSpec, Document, MatchSpec, RecordTypeSpec, Resource, ResourceError,
    RouteSpec, parse_documents,
};
pub use topic::{INTERNAL_TOPIC_PREFIX, check_topic_name};

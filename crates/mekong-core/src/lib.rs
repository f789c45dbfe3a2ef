//! The domain of Mekong, free of I/O: resources and how they are read and checked, the immutable
//! [`Catalog`] they compile into, and the rules a record is judged by — who may publish it, whether
//! it matches its schema, where it goes and what is redacted on the way.
//!
//! Nothing here touches a network, a file or a clock: the gateway hands in bytes and the time, and
//! gets back either the exact Kafka records to write or a [`Rejection`] that says what to fix.
//! Everything expensive (schemas, CEL programs) is compiled once, when a catalog is built.

mod access;
mod adapter;
mod audit;
mod catalog;
pub mod cloudevents;
mod compat;
mod condition;
pub mod deadletter;
pub mod deadline;
pub mod evidence;
pub mod identity;
mod pattern;
mod payload;
mod record;
mod redact;
mod rejection;
mod resource;
mod schema;
mod state;
pub mod times;
mod topic;

pub use access::{ApiKeyHash, Role, hash_api_key};
pub use adapter::{Adapter, RetryPolicy, adapter_group, check_secret_ref};
pub use audit::{
    AUDIT_TOPIC, Actor, AuditEvent, DeliveryEvent, PlacedCopy, RecordEvent, ResourceEvent,
    SessionEvent, audit_headers,
};
pub use catalog::{Catalog, CatalogError, Client, RecordType, Route};
pub use cloudevents::{CloudEvent, is_traceparent};
pub use compat::incompatibilities;
pub use deadletter::{DeadLetterInfo, dead_letter_topic, replay_topic};
pub use record::{
    KafkaRecord, Limits, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES, MAX_KEY_BYTES, Prepared,
    Progress, RecordTest, RouteVerdict, Stage, Submission, UnevaluableCondition, record_id_for,
};
pub use redact::{JsonPointer, PointerError, Redacted};
pub use rejection::{Rejection, RejectionKind, Violation, excerpt};
pub use resource::{
    AdapterSpec, AdapterTlsSpec, AdapterType, AuthSpec, ClientLimits, ClientSpec, Compatibility,
    DestinationSpec, Document, Key, Kind, MatchSpec, RecordTypeSpec, Resource, ResourceError,
    RetrySpec, RouteSpec, parse_documents, yaml_text,
};
pub use state::{Change, Outcome, Plan, Proposal, ResourceState, Stored, Verdict};
pub use topic::{
    INTERNAL_TOPIC_PREFIX, check_group_name, check_topic_name, parse_position, position_text,
    subscription_group,
};

//! The operators' use cases, free of any transport: changing resources (apply, delete, seeding a
//! store from files), dead letters (list, replay), tracing a record, and reading what people did
//! on the audit trail (`audit_log`). The gRPC AdminService calls
//! them today, the console and the HTTP API later, so no rule is written twice.
//!
//! This room speaks no gRPC and no HTTP: it takes plain values and answers with plain values or a
//! [`ControlError`]; transports map those onto their own codes.

pub mod adapters;
pub mod audit_log;
mod changes;
pub mod deadletters;
pub mod deadlines;
mod error;
mod proof;
mod trace;

pub use changes::{Applied, Changes, SeedError, Seeded};
pub use deadletters::{Listed, Listing, Replay};
pub use error::ControlError;
pub use proof::proof;
pub use trace::{TraceQuery, Traced, trace};

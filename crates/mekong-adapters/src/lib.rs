//! Delivery to the systems outside the hub: the engine that reads an adapter's topics and delivers
//! each record over HTTP, in order per key, with retries and dead letters, and the adapters
//! themselves: `dvcqg` (the National Public Service Portal) and `webhook` (CloudEvents over HTTP).
//!
//! This room speaks HTTP and reads and writes Kafka through `mekong-kafka`; which adapters exist
//! and what makes one valid is decided in `mekong-core`.

mod attempt;
mod dvcqg;
mod engine;
mod metrics;
mod policy;
mod secret;
mod supervisor;
mod target;
mod webhook;

pub use attempt::Attempt;
pub use dvcqg::{portal_date, request_body};
pub use engine::{EngineError, EngineSettings, run};
pub use metrics::AdapterMetrics;
pub use policy::{AdapterPolicy, DEFAULT_SECRETS_ENV_PREFIX};
pub use supervisor::supervise;
pub use webhook::{SIGNATURE_HEADER, signature};

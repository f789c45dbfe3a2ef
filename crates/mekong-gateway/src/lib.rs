//! The gRPC face of Mekong: the ingest, subscribe and admin services, authentication, the mapping of domain errors onto
//! gRPC statuses, the idempotency window, health and reflection.
//!
//! This room translates; the rules live in `mekong-core` and the Kafka work in `mekong-kafka`.

mod admin;
mod auth;
mod deadletters;
mod idempotency;
mod ingest;
mod metrics;
mod server;
mod status;
mod subscribe;

use std::time::Duration;

pub use admin::{Admin, Applied, Changes};
pub use idempotency::WindowSettings;
pub use ingest::Ingest;
pub use metrics::GatewayMetrics;
pub use server::{Gateway, serve};
pub use subscribe::Subscribe;

/// How the gateway treats requests.
#[derive(Debug, Clone, Copy)]
pub struct GatewayConfig {
    pub limits: mekong_core::Limits,
    /// Records per PublishBatch call.
    pub max_batch_records: usize,
    /// Payload bytes per PublishBatch call.
    pub max_batch_bytes: usize,
    /// Records of one PublishStream being processed at once.
    pub stream_in_flight: usize,
    pub idempotency: WindowSettings,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            limits: mekong_core::Limits::default(),
            max_batch_records: 1000,
            max_batch_bytes: 16 * 1024 * 1024,
            stream_in_flight: 1024,
            idempotency: WindowSettings {
                max_entries: 100_000,
                max_age: Duration::from_secs(15 * 60),
            },
        }
    }
}

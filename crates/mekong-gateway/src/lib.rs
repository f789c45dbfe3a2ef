//! The gRPC face of Mekong (and the HTTP API beside it on the same listener): the ingest,
//! subscribe and admin services, the layer that authenticates
//! every call before its body is read, the bounds on connections, streams and messages, the
//! mapping of domain errors onto gRPC statuses, the idempotency window, health and reflection.
//!
//! This room translates; the rules live in `mekong-core` and the Kafka work in `mekong-kafka`.

mod admin;
mod auth;
mod http;
mod idempotency;
mod ingest;
mod judge;
mod limits;
mod listener;
mod metrics;
mod quota;
mod server;
mod status;
mod subscribe;
pub mod tls;

use std::time::Duration;

pub use admin::Admin;
pub use auth::{Caller, Reflection};
pub use http::HttpSettings;
pub use idempotency::WindowSettings;
pub use ingest::Ingest;
pub use judge::JudgeSettings;
pub use limits::{BATCH_HEADROOM, MessageLimits, RECORD_HEADROOM};
pub use listener::ConnectionInfo;
pub use mekong_control::{Applied, Changes};
pub use metrics::GatewayMetrics;
pub use quota::QuotaDefaults;
pub use server::{Gateway, serve};
pub use status::{code_name, code_of};
pub use subscribe::{PREFETCH_KBYTES, Subscribe};

/// The largest SubscribeService.Consume message: a subscription, or acknowledgements of up to
/// 4,096 cursors.
pub const SUBSCRIBE_MESSAGE_BYTES: usize = 1024 * 1024;

/// How the gateway treats requests. Every default is written here, once.
#[derive(Debug, Clone, Copy)]
pub struct GatewayConfig {
    pub limits: mekong_core::Limits,
    /// Records per PublishBatch call.
    pub max_batch_records: usize,
    /// Payload bytes per PublishBatch call.
    pub max_batch_bytes: usize,
    /// The largest AdminService message (an Apply of resources).
    pub max_admin_bytes: usize,
    /// Records of one PublishStream being processed at once.
    pub stream_in_flight: usize,
    pub idempotency: WindowSettings,
    pub judge: JudgeSettings,
    /// Subscription streams open on this instance, all clients together.
    pub max_subscriptions: usize,
    /// Each client's quotas on this instance, where its `limits` set none.
    pub quotas: QuotaDefaults,
    pub reflection: Reflection,
    pub connections: ConnectionSettings,
    /// The HTTP API beside gRPC on the same listener.
    pub http: HttpSettings,
    /// How long a shutdown waits for calls and streams to end before closing their connections.
    pub shutdown_grace: Duration,
    /// Whether each record is published in a span of its own, for exported traces. Off, a record
    /// has one only when debug logs are on: a span per record costs CPU (about a fifth of the
    /// gateway's own work per record, measured in the bench harness).
    pub record_spans: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            limits: mekong_core::Limits::default(),
            max_batch_records: 1000,
            max_batch_bytes: 16 * 1024 * 1024,
            max_admin_bytes: 4 * 1024 * 1024,
            stream_in_flight: 1024,
            idempotency: WindowSettings::default(),
            judge: JudgeSettings::default(),
            max_subscriptions: 1024,
            quotas: QuotaDefaults::default(),
            reflection: Reflection::default(),
            connections: ConnectionSettings::default(),
            http: HttpSettings::default(),
            shutdown_grace: Duration::from_secs(20),
            record_spans: false,
        }
    }
}

/// What each client connection may hold, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// HTTP/2 streams (calls) open at once on one connection.
    pub max_streams: u32,
    /// How long a new connection has to make its first authenticated call.
    pub handshake_timeout: Duration,
    /// HTTP/2 pings to an idle peer, and how long its answer may take before the connection is
    /// closed.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// A connection older than this is asked to go away (GOAWAY), so its calls reconnect and
    /// authenticate again; after the grace it is closed.
    pub max_age: Duration,
    pub max_age_grace: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            max_connections: 1024,
            max_streams: 100,
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            max_age: Duration::from_secs(3600),
            max_age_grace: Duration::from_secs(60),
        }
    }
}

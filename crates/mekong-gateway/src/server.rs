//! Wiring: the ingest, subscribe and admin services, standard health and (optionally) reflection,
//! and the HTTP API beside them, behind the authentication and message-size layers, on one listener with bounded connections
//! and streams; and a shutdown that ends within its grace period.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mekong_core::Catalog;
use mekong_kafka::{Backbone, Lineage, Producer, Store, TopicSettings};
use mekong_proto::v1::admin_service_server::AdminServiceServer;
use mekong_proto::v1::ingest_service_server::IngestServiceServer;
use mekong_proto::v1::subscribe_service_server::SubscribeServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::Server;
use tower::ServiceBuilder;
use tracing::{info, warn};

use crate::auth::{AuthLayer, Reflection};
use crate::limits::{MessageLimitLayer, MessageLimits};
use crate::listener::{ListenerSettings, incoming};
use crate::tls::TlsConfig;
use crate::{Admin, Changes, GatewayConfig, GatewayMetrics, Ingest, Subscribe};

/// Everything the gateway serves with.
pub struct Gateway {
    pub catalog: Arc<ArcSwap<Catalog>>,
    pub producer: Producer,
    pub backbone: Arc<Backbone>,
    /// The resource store the catalog follows.
    pub store: Arc<Store>,
    /// How destination topics of new routes are created.
    pub topics: TopicSettings,
    pub config: GatewayConfig,
    pub metrics: GatewayMetrics,
    /// The lineage index AdminService.Trace answers from, if this instance keeps one.
    pub lineage: Option<Arc<Lineage>>,
    /// TLS on the listener (read again when its files change), or plaintext.
    pub tls: Option<Arc<TlsConfig>>,
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains: health turns
/// NOT_SERVING, every connection is told to go away (GOAWAY), open streams end with UNAVAILABLE,
/// calls in flight finish. Connections still open after the shutdown grace are closed.
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let config = gateway.config;
    let limits = config.message_limits();
    // The tasks of open streams, waited for after the listener: they hold Kafka consumers.
    let streams = TaskTracker::new();
    // Streams never end on their own: at shutdown they are told to, so the drain can finish.
    let (stopping, stop_streams) = tokio::sync::watch::channel(false);
    let changes = gateway.store.changes();
    let admin = AdminServiceServer::new(Admin::new(
        Arc::clone(&gateway.catalog),
        Changes {
            store: gateway.store,
            backbone: Arc::clone(&gateway.backbone),
            topics: gateway.topics,
        },
        config.limits,
        gateway.producer.clone(),
        gateway.lineage,
    ))
    .max_decoding_message_size(limits.admin);
    let subscribe = Subscribe::new(
        Arc::clone(&gateway.catalog),
        changes.clone(),
        gateway.backbone,
        stop_streams.clone(),
        gateway.metrics.clone(),
        config.max_subscriptions,
        streams.clone(),
    );
    let ingest = Ingest::new(
        Arc::clone(&gateway.catalog),
        changes,
        stop_streams,
        gateway.producer,
        config,
        gateway.metrics.clone(),
        streams.clone(),
    );
    let api = crate::http::Api {
        ingest: ingest.clone(),
        subscribe: subscribe.clone(),
        readers: Arc::default(),
        catalog: Arc::clone(&gateway.catalog),
        config,
        http: config.http,
    };
    let subscribe =
        SubscribeServiceServer::new(subscribe).max_decoding_message_size(limits.subscribe);
    let ingest = IngestServiceServer::new(ingest)
        // The layer holds each method to its own limit; this is the largest of them.
        .max_decoding_message_size(limits.record.max(limits.batch));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<IngestServiceServer<Ingest>>().await;
    health
        .set_serving::<SubscribeServiceServer<Subscribe>>()
        .await;
    health.set_serving::<AdminServiceServer<Admin>>().await;
    let reflection = (config.reflection != Reflection::Off).then(|| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mekong_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error details, so grpcurl and others can decode BadRequest and RetryInfo.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("the compiled descriptor sets are valid")
    });
    // At shutdown: report NOT_SERVING (load balancers stop sending), then end the streams.
    let mut draining = stopping.subscribe();
    let shutdown = async move {
        shutdown.await;
        info!(grace = ?config.shutdown_grace, "shutting down: draining connections");
        health
            .set_not_serving::<IngestServiceServer<Ingest>>()
            .await;
        health
            .set_not_serving::<SubscribeServiceServer<Subscribe>>()
            .await;
        health.set_not_serving::<AdminServiceServer<Admin>>().await;
        let _ = stopping.send(true);
    };

    let connections = config.connections;
    let close = CancellationToken::new();
    // The TLS files are watched for as long as the listener serves.
    let watching = CancellationToken::new();
    if let Some(tls) = &gateway.tls {
        let stop = watching.clone();
        tokio::spawn(
            Arc::clone(tls).watch(gateway.metrics.tls_reload_failures.clone(), async move {
                stop.cancelled().await
            }),
        );
    }
    let _watching = watching.drop_guard();
    let incoming = incoming(
        listener,
        ListenerSettings {
            max_connections: connections.max_connections,
            handshake_timeout: connections.handshake_timeout,
        },
        gateway.tls,
        close.clone(),
        gateway.metrics.clone(),
    );
    let layers = ServiceBuilder::new()
        .layer(AuthLayer::new(gateway.catalog, config.reflection))
        .layer(MessageLimitLayer(limits))
        .into_inner();
    // gRPC services by path, and the HTTP API beside them.
    let mut grpc = RoutesBuilder::default();
    grpc.add_service(health_service)
        .add_service(ingest)
        .add_service(subscribe)
        .add_service(admin);
    if let Some(reflection) = reflection {
        grpc.add_service(reflection);
    }
    let routes = Routes::from(
        grpc.routes()
            .into_axum_router()
            .merge(crate::http::routes(api))
            .fallback(crate::http::not_found)
            .method_not_allowed_fallback(crate::http::method_not_allowed),
    );
    let server = Server::builder()
        // The HTTP API takes HTTP/1.1 as well; gRPC calls are HTTP/2 whatever this says.
        .accept_http1(true)
        .max_concurrent_streams(connections.max_streams)
        .http2_keepalive_interval(Some(connections.keepalive_interval))
        .http2_keepalive_timeout(Some(connections.keepalive_timeout))
        // Rapid-reset floods (CVE-2023-44487 and kin): tonic turns hyper's guard off unless told.
        .http2_max_pending_accept_reset_streams(Some(20))
        .http2_max_local_error_reset_streams(Some(1024))
        .http2_max_header_list_size(16 * 1024)
        .max_connection_age(connections.max_age)
        .max_connection_age_grace(connections.max_age_grace)
        .layer(layers)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown);
    let mut server = pin!(server);
    let grace = async {
        let _ = draining.wait_for(|s| *s).await;
        tokio::time::sleep(config.shutdown_grace).await;
    };
    let result = tokio::select! {
        result = &mut server => result,
        () = grace => {
            warn!(grace = ?config.shutdown_grace, "connections still open after the shutdown grace; closing them");
            close.cancel();
            server.await
        }
    };
    // The streams' tasks and the connections' own tasks end just after: wait for them, so that no
    // Kafka client of theirs outlives the call.
    streams.close();
    let _ = tokio::time::timeout(SETTLE, streams.wait()).await;
    let settled = tokio::time::Instant::now() + SETTLE;
    while gateway.metrics.connections_open.get() > 0 && tokio::time::Instant::now() < settled {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    result
}

/// How long a stopped gateway waits for the tasks of its streams and connections to end.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

impl GatewayConfig {
    /// The largest message of each kind of call.
    pub fn message_limits(&self) -> MessageLimits {
        MessageLimits {
            record: self.limits.max_record_bytes + crate::limits::RECORD_HEADROOM,
            batch: self.max_batch_bytes + crate::limits::BATCH_HEADROOM,
            admin: self.max_admin_bytes,
            subscribe: crate::SUBSCRIBE_MESSAGE_BYTES,
        }
    }
}

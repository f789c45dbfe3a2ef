//! Wiring: the ingest, subscribe and admin services, standard health and reflection, on one
//! listener.

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mekong_core::Catalog;
use mekong_kafka::{Backbone, Lineage, Producer, Store, TopicSettings};
use mekong_proto::v1::admin_service_server::AdminServiceServer;
use mekong_proto::v1::ingest_service_server::IngestServiceServer;
use mekong_proto::v1::subscribe_service_server::SubscribeServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

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
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains in-flight calls.
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let config = gateway.config;
    // Subscription streams never end on their own: at shutdown they are told to, so the server's
    // graceful drain can finish.
    let (stopping, stop_streams) = tokio::sync::watch::channel(false);
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
    .max_decoding_message_size(64 * 1024 * 1024);
    let subscribe = SubscribeServiceServer::new(Subscribe::new(
        Arc::clone(&gateway.catalog),
        gateway.backbone,
        stop_streams,
        gateway.metrics.clone(),
    ));
    let ingest = Ingest::new(gateway.catalog, gateway.producer, config, gateway.metrics);
    // A batch may carry up to `max_batch_bytes` of payloads; past this bound the transport refuses
    // the message itself (OUT_OF_RANGE) before it is buffered.
    let max_message = config.max_batch_bytes.max(config.limits.max_record_bytes) * 2 + 1024 * 1024;
    let ingest = IngestServiceServer::new(ingest).max_decoding_message_size(max_message);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<IngestServiceServer<Ingest>>().await;
    health
        .set_serving::<SubscribeServiceServer<Subscribe>>()
        .await;
    health.set_serving::<AdminServiceServer<Admin>>().await;
    // At shutdown: report NOT_SERVING (load balancers stop sending), then end the streams.
    let shutdown = async move {
        shutdown.await;
        health
            .set_not_serving::<IngestServiceServer<Ingest>>()
            .await;
        health
            .set_not_serving::<SubscribeServiceServer<Subscribe>>()
            .await;
        health.set_not_serving::<AdminServiceServer<Admin>>().await;
        let _ = stopping.send(true);
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mekong_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc error details, so grpcurl and others can decode BadRequest and RetryInfo.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the compiled descriptor sets are valid");

    Server::builder()
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ingest)
        .add_service(subscribe)
        .add_service(admin)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

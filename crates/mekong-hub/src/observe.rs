//! What operators and orchestrators look at over HTTP: `/metrics` (Prometheus text format),
//! `/healthz` (the process runs) and `/readyz` (it can serve: Kafka answers and the resource store is
//! read to its end).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use mekong_gateway::GatewayMetrics;
use mekong_kafka::{Producer, Store};
use prometheus_client::registry::Registry;

/// How long readiness waits for the resource store to answer.
const READY_WITHIN: Duration = Duration::from_secs(3);

/// What the endpoint reports on.
pub(crate) struct Observed {
    pub registry: Registry,
    pub gateway: Option<GatewayMetrics>,
    pub producer: Producer,
    pub store: Arc<Store>,
}

/// Serves until `shutdown` completes.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    observed: Observed,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Arc::new(observed));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(observed): State<Arc<Observed>>) -> impl IntoResponse {
    if let Some(gateway) = &observed.gateway {
        gateway.refresh(&observed.producer);
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &observed.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn ready(State(observed): State<Arc<Observed>>) -> impl IntoResponse {
    match tokio::time::timeout(READY_WITHIN, observed.store.sync()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n".to_string()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the resource store did not answer within {READY_WITHIN:?} (is Kafka reachable?)\n"
            ),
        ),
    }
}

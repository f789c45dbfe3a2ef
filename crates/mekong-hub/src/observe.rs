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
use mekong_gateway::tls::TlsConfig;
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

/// Serves until `shutdown` completes, over TLS when `tls` is given.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<TlsConfig>>,
    observed: Observed,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Arc::new(observed));
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            let listener = TlsListener {
                tcp: listener,
                tls,
                handshakes: futures::stream::FuturesUnordered::new(),
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Handshakes in progress at once on the metrics listener; more connections wait in the backlog.
const MAX_HANDSHAKES: usize = 64;
/// How long a connection to the metrics listener has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Handshake = std::pin::Pin<
    Box<
        dyn Future<
                Output = Option<(
                    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
                    std::net::SocketAddr,
                )>,
            > + Send,
    >,
>;

/// TCP connections with their TLS handshakes done, several at a time and each within
/// [`HANDSHAKE_TIMEOUT`], so that a slow client holds up nobody.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: Arc<TlsConfig>,
    handshakes: futures::stream::FuturesUnordered<Handshake>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use futures::StreamExt;
        loop {
            tokio::select! {
                accepted = self.tcp.accept(), if self.handshakes.len() < MAX_HANDSHAKES => {
                    let Ok((tcp, remote)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.current());
                    self.handshakes.push(Box::pin(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => Some((stream, remote)),
                            _ => None,
                        }
                    }));
                }
                Some(done) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(connection) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
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

//! What operators and orchestrators look at over HTTP: `/metrics` (Prometheus text format),
//! `/healthz` (the process runs) and `/readyz` (it can serve: Kafka answers and the resource store is
//! read to its end); and the administrators' console under `/console` (`mekong-console`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::IncomingStream;
use mekong_gateway::GatewayMetrics;
use mekong_gateway::tls::TlsConfig;
use mekong_kafka::{Notary, Producer, Store};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// How long readiness waits for the resource store to answer.
const READY_WITHIN: Duration = Duration::from_secs(3);

/// What the endpoint reports on.
pub(crate) struct Observed {
    pub registry: Registry,
    pub gateway: Option<GatewayMetrics>,
    pub producer: Producer,
    pub store: Arc<Store>,
    pub notary: Option<Notarised>,
}

/// A notary's gauges, set from its state when scraped, and its readiness bound.
pub(crate) struct Notarised {
    notary: Arc<Notary>,
    max_age: Duration,
    checkpoint_age: Gauge<f64, AtomicU64>,
    unsigned: Gauge<f64, AtomicU64>,
    forged: Gauge,
}

impl Notarised {
    pub(crate) fn new(notary: Arc<Notary>, max_age: Duration) -> Notarised {
        Notarised {
            notary,
            max_age,
            checkpoint_age: Gauge::default(),
            unsigned: Gauge::default(),
            forged: Gauge::default(),
        }
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "notary_checkpoint_age_seconds",
            "Seconds since this notary published its latest checkpoint (-1 before its first)",
            self.checkpoint_age.clone(),
        );
        registry.register(
            "notary_unsigned_seconds",
            "How long the oldest audit event this notary read has waited for a checkpoint (0 when every one is signed, or another notary signs)",
            self.unsigned.clone(),
        );
        registry.register(
            "notary_forged_events",
            "Audit events read that were not sealed by the hub, left out of the tree",
            self.forged.clone(),
        );
    }

    fn refresh(&self) -> mekong_kafka::NotaryState {
        let state = self.notary.state();
        let age = state.latest.map_or(-1.0, |(at, _)| {
            at.elapsed().unwrap_or_default().as_secs_f64()
        });
        self.checkpoint_age.set(age);
        self.unsigned.set(state.unsigned_for.as_secs_f64());
        self.forged.set(state.forged as i64);
        state
    }
}

/// Serves until `shutdown` completes, over TLS when `tls` is given.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<TlsConfig>>,
    observed: Observed,
    console: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Arc::new(observed));
    if let Some(console) = console {
        // The peer's address reaches the console's handlers: it slows addresses that guess keys.
        let console = console.layer(axum::middleware::map_request(
            |mut request: axum::extract::Request| async move {
                if let Some(ConnectInfo(PeerAddr(addr))) =
                    request.extensions().get::<ConnectInfo<PeerAddr>>().copied()
                {
                    request.extensions_mut().insert(mekong_console::Peer(addr));
                }
                request
            },
        ));
        app = app.nest(mekong_console::BASE, console).route(
            "/console/",
            get(|| async { axum::response::Redirect::permanent(mekong_console::BASE) }),
        );
    }
    let app = app.into_make_service_with_connect_info::<PeerAddr>();
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

/// The peer of a connection to the metrics listener, plain or TLS.
#[derive(Debug, Clone, Copy)]
struct PeerAddr(std::net::SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
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
    if let Some(notary) = &observed.notary {
        notary.refresh();
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
    if let Some(notary) = &observed.notary {
        let state = notary.refresh();
        if state.unsigned_for > notary.max_age {
            let why = state
                .problem
                .unwrap_or_else(|| "no checkpoint published".into());
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: the notary has not signed the audit trail for {}s (--checkpoint-max-age {}s): {why}\n",
                    state.unsigned_for.as_secs(),
                    notary.max_age.as_secs()
                ),
            );
        }
    }
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

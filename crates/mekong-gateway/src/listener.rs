//! Accepting connections within bounds: at most `max_connections` open at once (one more is closed
//! as soon as it is accepted), TLS handshakes (when the listener has TLS) done off the accept loop
//! within the handshake timeout, and a connection that has not made an authenticated call within
//! the handshake timeout is closed, so nobody can hold the hub's connections without credentials.
//! At the end of a shutdown every connection still open is closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use mekong_core::identity::PeerCertificate;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use crate::metrics::GatewayMetrics;
use crate::tls::TlsConfig;

/// What a connection is allowed.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    pub max_connections: usize,
    /// How long a new connection has to complete its TLS handshake and make its first
    /// authenticated call.
    pub handshake_timeout: Duration,
}

/// What services learn of the connection a call came on (tonic puts it in every request's
/// extensions): the peer, its verified client certificate, and a way to say the connection has
/// authenticated.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: Option<SocketAddr>,
    /// The client certificate the TLS handshake verified, if the client sent one.
    pub certificate: Option<Arc<PeerCertificate>>,
    authenticated: Arc<AtomicBool>,
}

impl ConnectionInfo {
    /// Marks the connection as used by an authenticated caller: it may stay open.
    pub(crate) fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }
}

/// A place among the `max_connections`, counted in `mekong_connections_open` while held.
struct Place {
    _permit: OwnedSemaphorePermit,
    metrics: GatewayMetrics,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
    }
}

/// The bytes of a connection: plaintext, or TLS over it.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection, holding its place among the `max_connections`.
pub struct Connection {
    io: Io,
    info: ConnectionInfo,
    /// Until the first authenticated call: when it fires, the connection is closed.
    handshake: Option<Pin<Box<Sleep>>>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Set once its client certificate was revoked: every read and write fails from then on.
    cut: bool,
    /// For a client certificate: fires when a revocation list revokes it.
    revoked: Option<(
        Pin<Box<WaitForCancellationFutureOwned>>,
        crate::tls::Registration,
    )>,
    metrics: GatewayMetrics,
    _place: Place,
}

impl Connection {
    /// Whether the connection must end now: the hub closed it, or it did not authenticate in time.
    fn must_end(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.closed.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the hub closed the connection",
            ));
        }
        if let Some((revoked, _)) = &mut self.revoked
            && revoked.as_mut().poll(cx).is_ready()
        {
            self.metrics.connection_closed("certificate_revoked");
            self.revoked = None;
            self.cut = true;
        }
        if self.cut {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client certificate was revoked",
            ));
        }
        if let Some(deadline) = &mut self.handshake {
            if self.info.authenticated.load(Ordering::Relaxed) {
                self.handshake = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                self.handshake = None;
                self.metrics.connection_closed("no_authenticated_call");
                debug!(remote = ?self.info.remote, "closing a connection that made no authenticated call in time");
                return Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no authenticated call within the handshake timeout",
                ));
            }
        }
        None
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.must_end(cx) {
            return Poll::Ready(Err(e));
        }
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.must_end(cx) {
            return Poll::Ready(Err(e));
        }
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Io::Tls(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_flush(cx),
            Io::Tls(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Io::Tls(io) => Pin::new(io).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.must_end(cx) {
            return Poll::Ready(Err(e));
        }
        match &mut self.io {
            Io::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Io::Tls(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }
}

/// The connections accepted on `listener`, within `settings`, over TLS when `tls` is given.
/// Cancelling `close` ends every connection handed out.
pub fn incoming(
    listener: TcpListener,
    settings: ListenerSettings,
    tls: Option<Arc<TlsConfig>>,
    close: CancellationToken,
    metrics: GatewayMetrics,
) -> impl Stream<Item = io::Result<Connection>> {
    let (ready, connections) = mpsc::channel(64);
    tokio::spawn(accept(listener, settings, tls, close, metrics, ready));
    tokio_stream::wrappers::ReceiverStream::new(connections)
}

/// Accepts connections until the server stops taking them (`ready` closed). A TLS handshake runs
/// on a task of its own, so a slow one holds only its own place.
async fn accept(
    listener: TcpListener,
    settings: ListenerSettings,
    tls: Option<Arc<TlsConfig>>,
    close: CancellationToken,
    metrics: GatewayMetrics,
    ready: mpsc::Sender<io::Result<Connection>>,
) {
    let places = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    loop {
        let (io, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = ready.closed() => return,
        };
        let Ok(permit) = Arc::clone(&places).try_acquire_owned() else {
            metrics.connection_closed("limit");
            debug!(%remote, max = settings.max_connections, "connection limit reached; closing a new connection");
            drop(io);
            continue;
        };
        let _ = io.set_nodelay(true);
        metrics.connections_open.inc();
        let place = Place {
            _permit: permit,
            metrics: metrics.clone(),
        };
        let pending = Pending {
            remote,
            deadline: Instant::now() + settings.handshake_timeout,
            close: close.clone(),
            metrics: metrics.clone(),
            place,
        };
        let Some(tls) = &tls else {
            if ready
                .send(Ok(pending.connection(Io::Plain(io), None)))
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
        let (ready, close, metrics, tls) = (
            ready.clone(),
            close.clone(),
            metrics.clone(),
            Arc::clone(tls),
        );
        tokio::spawn(async move {
            let handshake = tokio::select! {
                done = tokio::time::timeout_at(pending.deadline, acceptor.accept(io)) => done,
                () = close.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => {
                    let peer = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(crate::tls::peer_certificate);
                    let mut connection = pending.connection(Io::Tls(Box::new(stream)), None);
                    if let Some((certificate, id)) = peer {
                        // A revocation list read later closes this connection at once.
                        let revoke = CancellationToken::new();
                        connection.revoked = Some((
                            Box::pin(revoke.clone().cancelled_owned()),
                            tls.register(id, certificate.subject_text(), revoke),
                        ));
                        connection.info.certificate = Some(Arc::new(certificate));
                    }
                    let _ = ready.send(Ok(connection)).await;
                }
                Ok(Err(e)) => {
                    metrics.connection_closed("tls_handshake");
                    debug!(%remote, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.connection_closed("tls_handshake");
                    debug!(%remote, "no TLS handshake within the handshake timeout");
                }
            }
        });
    }
}

/// An accepted connection on its way to the server: its place taken, its deadline set.
struct Pending {
    remote: SocketAddr,
    /// When it must have authenticated (the TLS handshake included).
    deadline: Instant,
    close: CancellationToken,
    metrics: GatewayMetrics,
    place: Place,
}

impl Pending {
    fn connection(self, io: Io, certificate: Option<Arc<PeerCertificate>>) -> Connection {
        Connection {
            io,
            info: ConnectionInfo {
                remote: Some(self.remote),
                certificate,
                authenticated: Arc::new(AtomicBool::new(false)),
            },
            handshake: Some(Box::pin(tokio::time::sleep_until(self.deadline))),
            closed: Box::pin(self.close.cancelled_owned()),
            cut: false,
            revoked: None,
            metrics: self.metrics,
            _place: self.place,
        }
    }
}

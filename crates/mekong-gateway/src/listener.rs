//! Accepting connections within bounds: at most `max_connections` open at once (one more is closed
//! as soon as it is accepted), and a connection that has not made an authenticated call within the
//! handshake timeout is closed, so nobody can hold the hub's connections without credentials. At
//! the end of a shutdown every connection still open is closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use crate::metrics::GatewayMetrics;

/// What a connection is allowed.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    pub max_connections: usize,
    /// How long a new connection has to make its first authenticated call.
    pub handshake_timeout: Duration,
}

/// What services learn of the connection a call came on (tonic puts it in every request's
/// extensions): the peer, and a way to say the connection has authenticated.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: Option<SocketAddr>,
    authenticated: Arc<AtomicBool>,
}

impl ConnectionInfo {
    /// Marks the connection as used by an authenticated caller: it may stay open.
    pub(crate) fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }
}

/// An accepted connection, holding its place among the `max_connections`.
pub struct Connection {
    io: TcpStream,
    info: ConnectionInfo,
    /// Until the first authenticated call: when it fires, the connection is closed.
    handshake: Option<Pin<Box<Sleep>>>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    metrics: GatewayMetrics,
    _place: OwnedSemaphorePermit,
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

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
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
        Pin::new(&mut self.io).poll_read(cx, buf)
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
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.must_end(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The connections accepted on `listener`, within `settings`. Cancelling `close` ends every
/// connection handed out.
pub fn incoming(
    listener: TcpListener,
    settings: ListenerSettings,
    close: CancellationToken,
    metrics: GatewayMetrics,
) -> impl Stream<Item = io::Result<Connection>> {
    let places = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    futures::stream::unfold(listener, move |listener| {
        let (places, close, metrics) = (Arc::clone(&places), close.clone(), metrics.clone());
        async move {
            loop {
                let (io, remote) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
                    metrics.connection_closed("limit");
                    debug!(%remote, max = settings.max_connections, "connection limit reached; closing a new connection");
                    drop(io);
                    continue;
                };
                let _ = io.set_nodelay(true);
                metrics.connections_open.inc();
                let connection = Connection {
                    io,
                    info: ConnectionInfo {
                        remote: Some(remote),
                        authenticated: Arc::new(AtomicBool::new(false)),
                    },
                    handshake: Some(Box::pin(tokio::time::sleep(settings.handshake_timeout))),
                    closed: Box::pin(close.cancelled_owned()),
                    metrics,
                    _place: place,
                };
                return Some((Ok(connection), listener));
            }
        }
    })
}

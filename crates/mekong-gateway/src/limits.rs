//! How large one gRPC message may be, per method rather than one bound for all: a Publish carries
//! one record, a PublishBatch many, an Apply a few MiB of resources, a health check a few bytes.
//! The layer reads the 5-byte gRPC frame header of each message as it arrives and refuses a
//! message announced larger than its method takes (OUT_OF_RANGE), before it is buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// Room for a record's key, attributes, idempotency key and framing beside its payload.
pub const RECORD_HEADROOM: usize = 64 * 1024;
/// Room for the same beside the payloads of a batch.
pub const BATCH_HEADROOM: usize = 1024 * 1024;
/// Health checks, reflection requests and calls of unknown methods are small.
const SMALL: usize = 64 * 1024;

/// The largest message of each kind of call, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Publish and each PublishStream message.
    pub record: usize,
    /// PublishBatch.
    pub batch: usize,
    /// AdminService.
    pub admin: usize,
    /// SubscribeService.Consume messages (a subscription, acknowledgements).
    pub subscribe: usize,
}

impl MessageLimits {
    /// The largest message of the call to `path`.
    pub fn of(&self, path: &str) -> usize {
        match path {
            "/mekong.v1.IngestService/Publish" | "/mekong.v1.IngestService/PublishStream" => {
                self.record
            }
            "/mekong.v1.IngestService/PublishBatch" => self.batch,
            _ if path.starts_with("/mekong.v1.AdminService/") => self.admin,
            _ if path.starts_with("/mekong.v1.SubscribeService/") => self.subscribe,
            _ => SMALL,
        }
    }

    /// The most any call may send in one message: what tonic's own decoder is told.
    pub fn largest(&self) -> usize {
        [self.record, self.batch, self.admin, self.subscribe, SMALL]
            .into_iter()
            .max()
            .unwrap_or(SMALL)
    }
}

/// The layer that bounds each message by its method.
#[derive(Debug, Clone, Copy)]
pub struct MessageLimitLayer(pub MessageLimits);

impl<S> Layer<S> for MessageLimitLayer {
    type Service = MessageLimited<S>;

    fn layer(&self, inner: S) -> MessageLimited<S> {
        MessageLimited {
            inner,
            limits: self.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MessageLimited<S> {
    inner: S,
    limits: MessageLimits,
}

impl<S> Service<http::Request<Body>> for MessageLimited<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The HTTP API's bodies are not gRPC frames: its handlers bound them.
        if !crate::http::is_grpc(&request) {
            return self.inner.call(request);
        }
        let limit = self.limits.of(request.uri().path());
        self.inner
            .call(request.map(|body| Body::new(Framed::new(body, limit))))
    }
}

/// A request body whose gRPC messages are checked against a size limit as their headers arrive.
struct Framed {
    inner: Body,
    limit: usize,
    /// The bytes of the current message header seen so far.
    header: [u8; 5],
    seen: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl Framed {
    fn new(inner: Body, limit: usize) -> Framed {
        Framed {
            inner,
            limit,
            header: [0; 5],
            seen: 0,
            remaining: 0,
        }
    }

    /// Follows the message framing through one data frame.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data.advance(n);
                continue;
            }
            self.header[self.seen] = data[0];
            self.seen += 1;
            data.advance(1);
            if self.seen == self.header.len() {
                self.seen = 0;
                let length = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                if length > self.limit {
                    return Err(Status::out_of_range(format!(
                        "the message is {length} bytes; this method takes at most {} bytes",
                        self.limit
                    )));
                }
                self.remaining = length;
            }
        }
        Ok(())
    }
}

impl HttpBody for Framed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = this.scan(data)
                {
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(length: u32) -> Vec<u8> {
        let mut f = vec![0u8];
        f.extend_from_slice(&length.to_be_bytes());
        f
    }

    #[test]
    fn each_message_header_is_checked_however_the_frames_split_it() {
        let mut framed = Framed::new(Body::empty(), 10);
        let mut stream = frame(10);
        stream.extend_from_slice(&[7; 10]);
        stream.extend_from_slice(&frame(3));
        stream.extend_from_slice(&[7; 3]);
        stream.extend_from_slice(&frame(11));
        // Byte by byte: the first two messages pass, the third is refused from its header alone.
        let mut result = Ok(());
        for (i, b) in stream.iter().enumerate() {
            result = framed.scan(std::slice::from_ref(b));
            if result.is_err() {
                assert_eq!(i, stream.len() - 1);
                break;
            }
        }
        let status = result.unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert!(
            status.message().contains("11 bytes"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn limits_are_per_method() {
        let limits = MessageLimits {
            record: 100,
            batch: 1000,
            admin: 50,
            subscribe: 20,
        };
        assert_eq!(limits.of("/mekong.v1.IngestService/Publish"), 100);
        assert_eq!(limits.of("/mekong.v1.IngestService/PublishStream"), 100);
        assert_eq!(limits.of("/mekong.v1.IngestService/PublishBatch"), 1000);
        assert_eq!(limits.of("/mekong.v1.AdminService/Apply"), 50);
        assert_eq!(limits.of("/mekong.v1.SubscribeService/Consume"), 20);
        assert_eq!(limits.of("/grpc.health.v1.Health/Check"), SMALL);
        assert_eq!(limits.largest(), SMALL);
    }
}

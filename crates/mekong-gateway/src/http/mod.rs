//! The HTTP face of the gateway, on the gRPC listener: a request whose content type is not
//! `application/grpc*` is one of these routes. Same connections, TLS, authentication layer and
//! services as gRPC: the handlers turn HTTP into the services' requests and their answers (or
//! statuses) back into JSON (or problem documents).
//!
//! - `POST /v1/records/{record_type}`, `POST /v1/records`, `POST /v1/records:batch` (`records`)
//! - `GET /v1/topics/{topic}/events`, `POST /v1/topics/{topic}/acks` (`events`)
//! - `GET /v1/openapi.json` (`openapi`)

mod events;
mod openapi;
mod problem;
mod records;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mekong_core::Catalog;

use crate::auth::Caller;
use crate::{GatewayConfig, Ingest, Subscribe};
pub(crate) use problem::Problem;

/// How the HTTP API treats requests.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// How long a request body may take to arrive, from the end of its headers (slow senders and
    /// endless chunked bodies are cut off). Headers themselves have 30 s (hyper's own bound), and
    /// a connection that has made no authenticated call the handshake timeout.
    pub read_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) ingest: Ingest,
    pub(crate) subscribe: Subscribe,
    pub(crate) readers: Arc<events::Readers>,
    pub(crate) catalog: Arc<ArcSwap<Catalog>>,
    pub(crate) config: GatewayConfig,
    pub(crate) http: HttpSettings,
}

/// The HTTP routes, to merge beside the gRPC services'.
pub(crate) fn routes(api: Api) -> Router {
    Router::new()
        .route("/v1/records/{record_type}", post(records::publish_typed))
        .route("/v1/records", post(records::publish_event))
        .route("/v1/records:batch", post(records::publish_batch))
        .route("/v1/topics/{topic}/events", get(events::follow))
        .route("/v1/topics/{topic}/acks", post(events::acknowledge))
        .route("/v1/openapi.json", get(openapi::document))
        .with_state(api)
}

/// Whether a request is a gRPC call (and not one of the HTTP API's).
pub(crate) fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Where no route is: a gRPC call of an unknown method is UNIMPLEMENTED, anything else a 404
/// problem.
pub(crate) async fn not_found(request: Request) -> Response {
    if is_grpc(&request) {
        return tonic::Status::unimplemented("no such method")
            .into_http::<axum::body::Body>()
            .into_response();
    }
    Problem::http(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!(
            "there is nothing at `{}`; docs/integrator-guide.md lists the HTTP API",
            mekong_core::excerpt(request.uri().path(), 128)
        ),
    )
    .into_response()
}

pub(crate) async fn method_not_allowed(request: Request) -> Response {
    Problem::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!(
            "`{}` does not take {}",
            mekong_core::excerpt(request.uri().path(), 128),
            request.method()
        ),
    )
    .into_response()
}

/// A refusal of the authentication layer, for an HTTP request.
pub(crate) fn refusal(status: &tonic::Status) -> http::Response<tonic::body::Body> {
    Problem::from_status(status)
        .into_response()
        .map(tonic::body::Body::new)
}

/// The caller the layer put on the request.
fn caller_of(request: &Request) -> Result<Caller, Problem> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            Problem::http(
                StatusCode::UNAUTHORIZED,
                crate::status::reason::UNAUTHENTICATED,
                "missing credentials",
            )
        })
}

/// The whole body, refused as soon as it is known to be over `limit` (from `Content-Length`
/// before a byte is read, else while it arrives) or when it takes longer than `deadline`.
async fn read_body(
    body: axum::body::Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, Problem> {
    let too_large = |size: Option<u64>| {
        let size = size.map_or_else(|| "longer".to_owned(), |n| format!("{n} bytes"));
        Problem::http(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::status::reason::RECORD_TOO_LARGE,
            format!("the body is {size}; this request takes at most {limit} bytes"),
        )
    };
    let announced = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = announced
        && length > limit as u64
    {
        return Err(too_large(Some(length)));
    }
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large(None)),
        Ok(Err(_)) => Err(Problem::http(
            StatusCode::BAD_REQUEST,
            "BODY_UNREADABLE",
            "the request body could not be read to its end",
        )),
        Err(_) => Err(Problem::http(
            StatusCode::REQUEST_TIMEOUT,
            "BODY_TIMEOUT",
            format!("the request body did not arrive within {deadline:?}"),
        )),
    }
}

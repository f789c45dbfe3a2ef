//! Who is calling, decided once for every call, in one tower layer in front of every service: from
//! the `authorization: Bearer <api key>` header and the client certificate of the connection (see
//! `mekong_core::identity`), before a single byte of the message is read. A call without valid
//! credentials, or with a role that the service does not serve, is answered at once and its body
//! is never buffered. The authenticated [`Caller`] travels in the request's extensions, so a new
//! RPC cannot forget the check: it has no other way to learn who calls.
//!
//! `grpc.health.v1.Health` is public; server reflection is public, authenticated or off
//! ([`Reflection`]). Over HTTP, `/v1/openapi.json` is public (credentials, when sent, must be
//! valid: the document then lists what that caller may publish) and refusals are problem
//! documents.

use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use futures::future::{Either, Ready, ready};
use mekong_core::identity::{AuthenticatedBy, PeerCertificate, Presented, Unauthenticated};
use mekong_core::{ApiKeyHash, Catalog, Client, Role, hash_api_key};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::listener::ConnectionInfo;

/// Who may use gRPC server reflection (what grpcurl lists and describes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reflection {
    /// Anyone who can reach the port.
    Public,
    /// Any caller with valid credentials (the default).
    #[default]
    Authenticated,
    /// Not served.
    Off,
}

/// The authenticated caller of one call: the client, and the credentials it presented, so that
/// open streams can tell when that key is withdrawn or that certificate unbound.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client: String,
    /// The digest of the API key it presented, if it sent one.
    pub key: Option<ApiKeyHash>,
    /// The verified client certificate of its connection, if it has one.
    pub certificate: Option<Arc<PeerCertificate>>,
    /// How it authenticated, as the audit trail records it.
    pub authenticated: AuthenticatedBy,
    /// The caller's W3C trace context, passed on to Kafka.
    pub traceparent: Option<String>,
}

impl Caller {
    /// The caller of a request that passed the layer. A request without one never reached a
    /// service through the layer; refuse it rather than serve it anonymously.
    pub(crate) fn of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("missing credentials"))
    }

    /// The caller's client in `catalog`, if its credentials still identify it; else why not.
    pub(crate) fn client_in<'c>(&self, catalog: &'c Catalog) -> Result<&'c Client, Status> {
        let presented = Presented {
            key: self.key.as_ref(),
            certificate: self.certificate.as_deref(),
        };
        let refused = match catalog.identify(presented) {
            Ok((client, _)) if client.name() == self.client => return Ok(client),
            Ok((client, _)) => format!(
                "the credentials of client `{}` now identify client `{}`",
                self.client,
                client.name()
            ),
            Err(_) if catalog.client(&self.client).is_none() => {
                format!("client `{}` no longer exists", self.client)
            }
            Err(Unauthenticated::UnknownKey) => format!(
                "the API key of client `{}` was withdrawn; use a current key",
                self.client
            ),
            Err(Unauthenticated::UnboundCertificate { .. }) => format!(
                "the certificate of client `{}` is no longer bound to it",
                self.client
            ),
            Err(other) => other.to_string(),
        };
        Err(Status::unauthenticated(refused))
    }

    /// Checks the caller against `catalog` as the layer would now: the key still listed, the role
    /// still held. Open streams call it whenever the catalog changes.
    pub(crate) fn recheck<'c>(
        &self,
        catalog: &'c Catalog,
        need: Need,
    ) -> Result<&'c Client, Status> {
        let client = self.client_in(catalog)?;
        need.check(client)?;
        Ok(client)
    }
}

/// What a service asks of its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing: the call is public.
    Nothing,
    /// Valid credentials, any role.
    Credentials,
    /// Valid credentials of a client with this role.
    Role(Role),
    /// A subscriber, or an admin (who may read internal topics).
    Reader,
    /// Public, but credentials that are presented must be valid: the answer depends on the caller.
    Optional,
}

impl Need {
    /// What the call to `path` (`/package.Service/Method`, or a path of the HTTP API) needs.
    fn of(path: &str, reflection: Reflection) -> Need {
        if path == "/v1/openapi.json" {
            return Need::Optional;
        }
        if path.starts_with("/v1/records") {
            return Need::Role(Role::Publisher);
        }
        if path.starts_with("/v1/topics/") {
            return Need::Reader;
        }
        let service = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .map_or("", |(service, _)| service);
        match service {
            "grpc.health.v1.Health" => Need::Nothing,
            "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection"
                if reflection == Reflection::Public =>
            {
                Need::Nothing
            }
            "mekong.v1.IngestService" => Need::Role(Role::Publisher),
            "mekong.v1.SubscribeService" => Need::Reader,
            "mekong.v1.AdminService" => Need::Role(Role::Admin),
            _ => Need::Credentials,
        }
    }

    pub(crate) fn check(self, client: &Client) -> Result<(), Status> {
        let (held, what) = match self {
            Need::Nothing | Need::Credentials | Need::Optional => return Ok(()),
            Need::Role(Role::Publisher) => (client.has_role(Role::Publisher), "publisher"),
            Need::Role(Role::Subscriber) => (client.has_role(Role::Subscriber), "subscriber"),
            Need::Role(Role::Admin) => (client.has_role(Role::Admin), "admin"),
            Need::Role(Role::Auditor) => (client.has_role(Role::Auditor), "auditor"),
            Need::Reader => (
                client.has_role(Role::Subscriber) || client.has_role(Role::Admin),
                "subscriber",
            ),
        };
        if held {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "client `{}` lacks the {what} role this service needs",
                client.name()
            )))
        }
    }
}

/// The key presented in the headers: none, or one in the expected form.
fn presented_key(headers: &http::HeaderMap) -> Result<Option<&str>, Status> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(Some)
        .ok_or_else(|| {
            Status::unauthenticated("the authorization metadata must be `Bearer <api key>`")
        })
}

/// The layer that authenticates every call.
#[derive(Clone)]
pub struct AuthLayer {
    catalog: Arc<ArcSwap<Catalog>>,
    reflection: Reflection,
}

impl AuthLayer {
    pub fn new(catalog: Arc<ArcSwap<Catalog>>, reflection: Reflection) -> AuthLayer {
        AuthLayer {
            catalog,
            reflection,
        }
    }

    /// Admits a request or says why not; an admitted request carries its [`Caller`].
    fn admit(&self, request: &mut http::Request<Body>) -> Result<(), Status> {
        let need = Need::of(request.uri().path(), self.reflection);
        if need == Need::Nothing {
            return Ok(());
        }
        let key = presented_key(request.headers())?.map(hash_api_key);
        let connection = request.extensions().get::<ConnectionInfo>();
        let certificate = connection.and_then(|c| c.certificate.clone());
        if need == Need::Optional && key.is_none() && certificate.is_none() {
            return Ok(());
        }
        let catalog = self.catalog.load();
        let (client, authenticated) = catalog
            .authenticate_call(Presented {
                key: key.as_ref(),
                certificate: certificate.as_deref(),
            })
            .map_err(|refused| Status::unauthenticated(refused.to_string()))?;
        need.check(client)?;
        let caller = Caller {
            client: client.name().to_owned(),
            key,
            certificate,
            authenticated,
            traceparent: request
                .headers()
                .get(mekong_core::cloudevents::TRACEPARENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        if let Some(connection) = request.extensions().get::<ConnectionInfo>() {
            connection.authenticated();
        }
        request.extensions_mut().insert(caller);
        Ok(())
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Authenticated<S> {
        Authenticated {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service behind [`AuthLayer`].
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S> Service<http::Request<Body>> for Authenticated<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<http::Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.layer.admit(&mut request) {
            Ok(()) => Either::Left(self.inner.call(request)),
            // Answered from the headers: the body is dropped unread.
            Err(status) if crate::http::is_grpc(&request) => {
                Either::Right(ready(Ok(status.into_http())))
            }
            Err(status) => Either::Right(ready(Ok(crate::http::refusal(&status)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_but_health_needs_credentials_and_its_role() {
        let r = Reflection::Authenticated;
        assert_eq!(Need::of("/grpc.health.v1.Health/Check", r), Need::Nothing);
        assert_eq!(
            Need::of("/mekong.v1.IngestService/Publish", r),
            Need::Role(Role::Publisher)
        );
        assert_eq!(
            Need::of("/mekong.v1.SubscribeService/Consume", r),
            Need::Reader
        );
        assert_eq!(
            Need::of("/mekong.v1.AdminService/Apply", r),
            Need::Role(Role::Admin)
        );
        let reflect = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(Need::of(reflect, r), Need::Credentials);
        assert_eq!(Need::of(reflect, Reflection::Public), Need::Nothing);
        // Whatever a future RPC or a typo is called, it is not public.
        assert_eq!(Need::of("/mekong.v1.NewService/Do", r), Need::Credentials);
        assert_eq!(Need::of("/", r), Need::Credentials);
        assert_eq!(Need::of("", r), Need::Credentials);
        // The HTTP API: publishing needs the role, the contract is public (and fits its reader).
        assert_eq!(
            Need::of("/v1/records/dossier.sync", r),
            Need::Role(Role::Publisher)
        );
        assert_eq!(
            Need::of("/v1/records:batch", r),
            Need::Role(Role::Publisher)
        );
        assert_eq!(Need::of("/v1/openapi.json", r), Need::Optional);
        assert_eq!(Need::of("/v1/topics/t/events", r), Need::Reader);
        assert_eq!(Need::of("/v1/other", r), Need::Credentials);
    }

    #[test]
    fn the_key_is_read_from_a_bearer_authorization_header() {
        let mut headers = http::HeaderMap::new();
        // None: the connection's certificate may identify the caller.
        assert_eq!(presented_key(&headers).unwrap(), None);
        headers.insert("authorization", "Bearer  k-1 ".parse().unwrap());
        assert_eq!(presented_key(&headers).unwrap(), Some("k-1"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert!(presented_key(&headers).is_err());
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert!(presented_key(&headers).is_err());
    }
}

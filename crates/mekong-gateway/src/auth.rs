//! Who is calling: the API key from `authorization: Bearer <key>` metadata, matched against the
//! clients of the current catalog.

use mekong_core::Catalog;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The name of the authenticated client.
pub(crate) fn authenticate(catalog: &Catalog, metadata: &MetadataMap) -> Result<String, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Err(Status::unauthenticated(
            "missing credentials: send `authorization: Bearer <api key>` metadata",
        ));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated("the authorization metadata must be `Bearer <api key>`")
        })?;
    catalog
        .authenticate(key)
        .map(|client| client.name().to_owned())
        .ok_or_else(|| Status::unauthenticated("unknown API key"))
}

/// The caller's W3C trace context, passed on to Kafka.
pub(crate) fn traceparent(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

//! `POST /v1/records/{record_type}`, `POST /v1/records` (CloudEvents carrying their type) and
//! `POST /v1/records:batch`: each request turned into the `PublishRequest`s a gRPC caller would
//! send, then handed to the very `IngestService` methods gRPC calls reach (quota, idempotency,
//! judging, Kafka). Every header and content type of the HTTP API is named here, once.
//!
//! CloudEvents HTTP binding: binary mode (`ce-specversion` present: the body is the record, `ce-type`
//! its type, `ce-id` its idempotency key, other `ce-*` its extension attributes) and structured
//! mode (`application/cloudevents+json`, the event as JSON with the record in `data` or
//! `data_base64`). A sender's `source`, `time` and `dataschema` are not kept: every copy carries
//! the hub's own (the authenticated client, the time of acceptance, the schema that validated it).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use mekong_proto::v1::ingest_service_server::IngestService;
use mekong_proto::v1::{
    Placement, PublishBatchRequest, PublishRequest, PublishResponse, publish_result,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::problem::Problem;
use super::{Api, caller_of, read_body};
use crate::auth::Caller;

/// Headers of the HTTP API.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub(crate) const MEKONG_KEY: &str = "mekong-key";
pub(crate) const MEKONG_SCHEMA_VERSION: &str = "mekong-schema-version";
/// CloudEvents binary mode: `ce-<attribute>`.
const CE_PREFIX: &str = "ce-";

/// Content types it takes.
pub(crate) const JSON: &str = "application/json";
pub(crate) const CLOUDEVENT: &str = "application/cloudevents+json";
pub(crate) const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";

/// Core CloudEvents attributes a sender may set that do not become extension attributes: the hub
/// reads `specversion`, `type`, `id` and `datacontenttype`, and writes its own `source`, `time` and
/// `dataschema`.
const CE_CORE: [&str; 7] = [
    "specversion",
    "id",
    "type",
    "source",
    "time",
    "dataschema",
    "datacontenttype",
];

/// Where a copy landed, as JSON.
#[derive(Debug, Serialize)]
pub(crate) struct PlacementJson {
    topic: String,
    partition: i32,
    offset: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<String>,
}

impl From<Placement> for PlacementJson {
    fn from(p: Placement) -> PlacementJson {
        PlacementJson {
            topic: p.topic,
            partition: p.partition,
            offset: p.offset,
            routes: p.routes,
        }
    }
}

impl PlacementJson {
    /// `topic/partition/offset`, as ErrorInfo's `landed` lists them.
    pub(crate) fn parse(text: &str) -> Option<PlacementJson> {
        let (topic, partition, offset) = mekong_core::parse_position(text)?;
        Some(PlacementJson {
            topic: topic.to_owned(),
            partition,
            offset,
            routes: Vec::new(),
        })
    }
}

/// The answer to a published record.
#[derive(Debug, Serialize)]
struct Published {
    record_id: String,
    placements: Vec<PlacementJson>,
    duplicate: bool,
}

impl From<PublishResponse> for Published {
    fn from(r: PublishResponse) -> Published {
        Published {
            record_id: r.record_id,
            placements: r.placements.into_iter().map(PlacementJson::from).collect(),
            duplicate: r.duplicate,
        }
    }
}

/// `POST /v1/records/{record_type}`.
pub(crate) async fn publish_typed(
    State(api): State<Api>,
    Path(record_type): Path<String>,
    request: Request,
) -> Response {
    respond(publish(api, Some(record_type), request).await)
}

/// `POST /v1/records`: a CloudEvent names its own type.
pub(crate) async fn publish_event(State(api): State<Api>, request: Request) -> Response {
    respond(publish(api, None, request).await)
}

fn respond(result: Result<Response, Problem>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn publish(
    api: Api,
    record_type: Option<String>,
    request: Request,
) -> Result<Response, Problem> {
    let caller = caller_of(&request)?;
    let (parts, body) = request.into_parts();
    let media = media_type(&parts.headers)?;
    let structured = match media.as_str() {
        JSON => false,
        CLOUDEVENT => true,
        _ => {
            return Err(unsupported(
                &media,
                "application/json or application/cloudevents+json",
            ));
        }
    };
    let limits = api.config.message_limits();
    let limit = if structured {
        limits.record
    } else {
        api.config.limits.max_record_bytes
    };
    let body = read_body(body, &parts.headers, limit, api.http.read_timeout).await?;
    let mut record = if structured {
        let event: Event = serde_json::from_slice(&body).map_err(|e| {
            malformed(format!(
                "the body is not a CloudEvent in JSON (structured mode): {e}"
            ))
        })?;
        from_event(event)?
    } else {
        from_binary(&parts.headers, body)?
    };
    with_headers(&mut record, record_type, &parts.headers)?;
    let response = api
        .ingest
        .publish(tonic_request(caller, record))
        .await
        .map_err(|status| Problem::from_status(&status))?
        .into_inner();
    let status = if response.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(Published::from(response))).into_response())
}

/// A record of a JSON batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    record_type: String,
    payload: Box<RawValue>,
    #[serde(default)]
    key: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    attributes: HashMap<String, String>,
    #[serde(default)]
    schema_version: u32,
    #[serde(default)]
    request_id: String,
}

/// One record's result in a batch: its status and either what was published or why not.
#[derive(Debug, Serialize)]
struct BatchResult {
    #[serde(serialize_with = "as_u16")]
    status: StatusCode,
    #[serde(skip_serializing_if = "String::is_empty")]
    request_id: String,
    #[serde(flatten)]
    published: Option<Published>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<Problem>,
}

fn as_u16<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

/// `POST /v1/records:batch`: 207 with one result per record, in order; a batch refused whole (too
/// large, over quota, malformed) is one problem.
pub(crate) async fn publish_batch(State(api): State<Api>, request: Request) -> Response {
    respond(batch(api, request).await)
}

async fn batch(api: Api, request: Request) -> Result<Response, Problem> {
    let caller = caller_of(&request)?;
    let (parts, body) = request.into_parts();
    let media = media_type(&parts.headers)?;
    if media != JSON && media != CLOUDEVENTS_BATCH {
        return Err(unsupported(
            &media,
            "application/json or application/cloudevents-batch+json",
        ));
    }
    let limit = api.config.message_limits().batch;
    let body = read_body(body, &parts.headers, limit, api.http.read_timeout).await?;
    // Records that cannot even be made into a PublishRequest have their problem at their place;
    // the others go to PublishBatch together.
    let records: Vec<Result<PublishRequest, Problem>> = if media == JSON {
        let items: Vec<BatchItem> = serde_json::from_slice(&body).map_err(|e| {
            malformed(format!(
                "the body is not a JSON array of {{record_type, payload, ...}}: {e}"
            ))
        })?;
        items
            .into_iter()
            .map(|item| {
                Ok(PublishRequest {
                    record_type: item.record_type,
                    payload: Bytes::copy_from_slice(item.payload.get().as_bytes()),
                    key: item.key,
                    idempotency_key: item.idempotency_key,
                    attributes: item.attributes,
                    request_id: item.request_id,
                    schema_version: item.schema_version,
                })
            })
            .collect()
    } else {
        let events: Vec<Event> = serde_json::from_slice(&body).map_err(|e| {
            malformed(format!(
                "the body is not a JSON array of CloudEvents (batched mode): {e}"
            ))
        })?;
        events
            .into_iter()
            .map(|event| {
                let mut record = from_event(event)?;
                if record.record_type.is_empty() {
                    return Err(malformed("the event has no `type`"));
                }
                record.request_id = record.idempotency_key.clone();
                Ok(record)
            })
            .collect()
    };
    let mut good = Vec::new();
    let mut places = Vec::with_capacity(records.len());
    for record in records {
        match record {
            Ok(r) => {
                places.push(Ok(r.request_id.clone()));
                good.push(r);
            }
            Err(problem) => places.push(Err(problem)),
        }
    }
    let mut published = api
        .ingest
        .publish_batch(tonic_request(caller, PublishBatchRequest { records: good }))
        .await
        .map_err(|status| Problem::from_status(&status))?
        .into_inner()
        .results
        .into_iter();
    let results: Vec<BatchResult> = places
        .into_iter()
        .map(|place| match place {
            Err(problem) => BatchResult {
                status: problem.status(),
                request_id: String::new(),
                published: None,
                problem: Some(problem),
            },
            Ok(request_id) => {
                let outcome = published.next().and_then(|r| r.outcome);
                match outcome {
                    Some(publish_result::Outcome::Published(r)) => BatchResult {
                        status: if r.duplicate {
                            StatusCode::OK
                        } else {
                            StatusCode::CREATED
                        },
                        request_id,
                        published: Some(Published::from(r)),
                        problem: None,
                    },
                    Some(publish_result::Outcome::Error(e)) => {
                        let problem = Problem::from_record_error(e);
                        BatchResult {
                            status: problem.status(),
                            request_id,
                            published: None,
                            problem: Some(problem),
                        }
                    }
                    None => {
                        let problem = Problem::http(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            crate::status::reason::INTERNAL,
                            "no result for this record",
                        );
                        BatchResult {
                            status: problem.status(),
                            request_id,
                            published: None,
                            problem: Some(problem),
                        }
                    }
                }
            }
        })
        .collect();
    Ok((
        StatusCode::MULTI_STATUS,
        axum::Json(serde_json::json!({ "results": results })),
    )
        .into_response())
}

/// A CloudEvent in JSON: its members as they came, each read as the hub needs it.
type Event = BTreeMap<String, Box<RawValue>>;

/// The record a structured-mode event carries.
fn from_event(mut event: Event) -> Result<PublishRequest, Problem> {
    let text = |event: &Event, name: &str| -> Result<Option<String>, Problem> {
        event
            .get(name)
            .map(|raw| {
                serde_json::from_str::<String>(raw.get())
                    .map_err(|_| malformed(format!("the event's `{name}` must be a string")))
            })
            .transpose()
    };
    match text(&event, "specversion")?.as_deref() {
        Some("1.0") => {}
        Some(other) => {
            return Err(malformed(format!(
                "specversion `{}` is not supported; send CloudEvents 1.0",
                mekong_core::excerpt(other, 16)
            )));
        }
        None => return Err(malformed("the event has no `specversion`")),
    }
    if let Some(content) = text(&event, "datacontenttype")? {
        let media = content.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case(JSON) {
            return Err(unsupported(media, "data in application/json"));
        }
    }
    let payload = match (event.remove("data"), event.remove("data_base64")) {
        (Some(data), None) => Bytes::copy_from_slice(data.get().as_bytes()),
        (None, Some(encoded)) => {
            let encoded: String = serde_json::from_str(encoded.get())
                .map_err(|_| malformed("the event's `data_base64` must be a string"))?;
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(Bytes::from)
                .map_err(|_| malformed("the event's `data_base64` is not base64"))?
        }
        (Some(_), Some(_)) => {
            return Err(malformed(
                "the event has both `data` and `data_base64`; send one",
            ));
        }
        (None, None) => return Err(malformed("the event has no `data`")),
    };
    let mut attributes = HashMap::new();
    for (name, raw) in &event {
        if CE_CORE.contains(&name.as_str()) {
            continue;
        }
        // Extension values are strings, numbers or booleans; each travels as its text.
        let value = match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            _ => {
                return Err(malformed(format!(
                    "the event's extension attribute `{}` must be a string, number or boolean",
                    mekong_core::excerpt(name, 20)
                )));
            }
        };
        attributes.insert(name.clone(), value);
    }
    Ok(PublishRequest {
        record_type: text(&event, "type")?.unwrap_or_default(),
        payload,
        idempotency_key: text(&event, "id")?.unwrap_or_default(),
        attributes,
        ..PublishRequest::default()
    })
}

/// The record of a plain JSON body, or of a CloudEvent in binary mode.
fn from_binary(headers: &HeaderMap, body: Bytes) -> Result<PublishRequest, Problem> {
    let mut record = PublishRequest {
        payload: body,
        ..PublishRequest::default()
    };
    let binary = headers.contains_key("ce-specversion");
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix(CE_PREFIX) else {
            continue;
        };
        // The binding percent-encodes what is not printable ASCII.
        let value = value
            .to_str()
            .ok()
            .and_then(|v| percent_encoding::percent_decode_str(v).decode_utf8().ok())
            .ok_or_else(|| malformed(format!("header `{name}` is not percent-encoded UTF-8 text")))?
            .into_owned();
        match attribute {
            "specversion" if value != "1.0" => {
                return Err(malformed(format!(
                    "ce-specversion `{}` is not supported; send CloudEvents 1.0",
                    mekong_core::excerpt(&value, 16)
                )));
            }
            "type" => record.record_type = value,
            "id" => record.idempotency_key = value,
            _ if CE_CORE.contains(&attribute) => {}
            _ => {
                record.attributes.insert(attribute.to_owned(), value);
            }
        }
    }
    if binary && record.record_type.is_empty() {
        return Err(malformed("a CloudEvent in binary mode needs ce-type"));
    }
    Ok(record)
}

/// What the path and the Mekong headers add to a record, checked against what the event said.
fn with_headers(
    record: &mut PublishRequest,
    path_type: Option<String>,
    headers: &HeaderMap,
) -> Result<(), Problem> {
    match path_type {
        Some(t) if record.record_type.is_empty() || record.record_type == t => {
            record.record_type = t
        }
        Some(t) => {
            return Err(malformed(format!(
                "the path says record type `{}` and the event says `{}`",
                mekong_core::excerpt(&t, 64),
                mekong_core::excerpt(&record.record_type, 64)
            )));
        }
        None if record.record_type.is_empty() => {
            return Err(malformed(
                "no record type: POST to /v1/records/{record_type}, or send a CloudEvent with its type",
            ));
        }
        None => {}
    }
    if let Some(key) = header_text(headers, IDEMPOTENCY_KEY)? {
        if !record.idempotency_key.is_empty() && record.idempotency_key != key {
            return Err(malformed(
                "Idempotency-Key and the event's id differ; send one, or the same in both",
            ));
        }
        record.idempotency_key = key;
    }
    if let Some(key) = header_text(headers, MEKONG_KEY)? {
        record.key = key;
    }
    if let Some(version) = header_text(headers, MEKONG_SCHEMA_VERSION)? {
        record.schema_version = version.parse().map_err(|_| {
            malformed("Mekong-Schema-Version must be a whole number (0 means the latest)")
        })?;
    }
    Ok(())
}

fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, Problem> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| malformed(format!("header `{name}` is not visible ASCII text")))
        })
        .transpose()
}

/// The request's media type, lower case without parameters; a charset other than UTF-8 is
/// refused.
fn media_type(headers: &HeaderMap) -> Result<String, Problem> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return Err(unsupported("(none)", "a Content-Type"));
    };
    let value = value.to_str().unwrap_or("").to_ascii_lowercase();
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim().to_owned();
    for parameter in parts {
        if let Some((name, charset)) = parameter.split_once('=')
            && name.trim() == "charset"
            && !matches!(charset.trim().trim_matches('"'), "utf-8" | "utf8")
        {
            return Err(unsupported(&value, "UTF-8 text"));
        }
    }
    Ok(media)
}

fn unsupported(media: &str, wanted: &str) -> Problem {
    Problem::http(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        format!(
            "content type `{}` is not taken here; send {wanted}",
            mekong_core::excerpt(media, 64)
        ),
    )
}

fn malformed(detail: impl Into<String>) -> Problem {
    Problem::http(
        StatusCode::BAD_REQUEST,
        crate::status::reason::INVALID_RECORD,
        detail,
    )
}

/// A request for the gRPC service, carrying the caller the layer authenticated.
fn tonic_request<T>(caller: Caller, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(caller);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Result<PublishRequest, Problem> {
        from_event(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn a_structured_event_keeps_its_data_byte_for_byte() {
        let r = event(
            r#"{"specversion":"1.0","type":"dossier.sync","id":"e-1","source":"/q1",
                "time":"2026-12-02T00:00:00Z","subject":"H1","tenant":7,
                "data":{"MaHoSo": "H1",  "N": 1.50}}"#,
        )
        .unwrap();
        assert_eq!(r.record_type, "dossier.sync");
        assert_eq!(r.idempotency_key, "e-1");
        assert_eq!(&r.payload[..], br#"{"MaHoSo": "H1",  "N": 1.50}"#);
        // `source` and `time` are the hub's to write; the rest are extension attributes.
        let mut names: Vec<_> = r.attributes.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["subject", "tenant"]);
        assert_eq!(r.attributes["tenant"], "7");
        let b64 =
            event(r#"{"specversion":"1.0","type":"t","id":"1","data_base64":"eyJhIjoxfQ=="}"#)
                .unwrap();
        assert_eq!(&b64.payload[..], br#"{"a":1}"#);
    }

    #[test]
    fn a_structured_event_the_hub_cannot_take_is_refused_with_why() {
        for (json, says) in [
            (r#"{"type":"t","data":{}}"#, "specversion"),
            (r#"{"specversion":"0.3","type":"t","data":{}}"#, "0.3"),
            (r#"{"specversion":"1.0","type":"t"}"#, "no `data`"),
            (
                r#"{"specversion":"1.0","type":"t","data":{},"data_base64":"e30="}"#,
                "both",
            ),
            (
                r#"{"specversion":"1.0","type":"t","data":{},"x":{"o":1}}"#,
                "extension",
            ),
            (r#"{"specversion":"1.0","type":1,"data":{}}"#, "`type`"),
        ] {
            let problem = event(json).unwrap_err();
            assert_eq!(problem.status(), StatusCode::BAD_REQUEST, "{json}");
            let text = serde_json::to_string(&problem).unwrap();
            assert!(text.contains(says), "{json}: {text}");
        }
        let xml = event(
            r#"{"specversion":"1.0","type":"t","datacontenttype":"application/xml","data":"<a/>"}"#,
        )
        .unwrap_err();
        assert_eq!(xml.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn binary_mode_reads_the_ce_headers_and_the_path_must_agree() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", "1.0".parse().unwrap());
        headers.insert("ce-type", "dossier.sync".parse().unwrap());
        headers.insert("ce-id", "e-9".parse().unwrap());
        headers.insert("ce-source", "/q1".parse().unwrap());
        headers.insert("ce-donvi", "Qu%E1%BA%ADn%201".parse().unwrap());
        let mut r = from_binary(&headers, Bytes::from_static(b"{}")).unwrap();
        assert_eq!(r.attributes.len(), 1);
        assert_eq!(r.attributes["donvi"], "Quận 1");
        with_headers(&mut r, Some("dossier.sync".into()), &HeaderMap::new()).unwrap();
        assert_eq!(r.idempotency_key, "e-9");
        let other = with_headers(&mut r, Some("payment.completed".into()), &HeaderMap::new());
        assert_eq!(other.unwrap_err().status(), StatusCode::BAD_REQUEST);
        let mut reused = HeaderMap::new();
        reused.insert(IDEMPOTENCY_KEY, "another".parse().unwrap());
        assert!(with_headers(&mut r, None, &reused).is_err());
        headers.remove("ce-type");
        assert!(from_binary(&headers, Bytes::new()).is_err());
    }

    #[test]
    fn content_types_are_read_without_their_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            "Application/JSON; charset=UTF-8".parse().unwrap(),
        );
        assert_eq!(media_type(&headers).unwrap(), JSON);
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/json; charset=latin1".parse().unwrap(),
        );
        assert!(media_type(&headers).is_err());
        assert!(media_type(&HeaderMap::new()).is_err());
    }
}

//! `GET /v1/openapi.json`: the HTTP API as an OpenAPI 3.1 document, drawn from the live catalog on
//! each call, so it changes when a record type does. One operation per record type, its JSON
//! Schema (latest version) as the request body: 3.1 schemas are JSON Schema 2020-12, the dialect
//! record types are written in. With credentials, only the types that caller may publish.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use mekong_core::{Catalog, Client};
use serde_json::{Map, Value, json};

use super::problem::Problem;
use super::records::MEKONG_SCHEMA_VERSION;
use super::records::{CLOUDEVENT, CLOUDEVENTS_BATCH, IDEMPOTENCY_KEY, JSON, MEKONG_KEY};
use super::{Api, problem::PROBLEM_JSON};
use crate::GatewayConfig;
use crate::auth::Caller;

pub(crate) async fn document(State(api): State<Api>, request: Request) -> Response {
    let catalog = api.catalog.load();
    let client = match request.extensions().get::<Caller>() {
        Some(caller) => match caller.client_in(&catalog) {
            Ok(client) => Some(client),
            Err(status) => return Problem::from_status(&status).into_response(),
        },
        None => None,
    };
    axum::Json(build(&catalog, client, &api.config)).into_response()
}

/// The document, for `client` (or anyone).
pub(crate) fn build(catalog: &Catalog, client: Option<&Client>, config: &GatewayConfig) -> Value {
    let mut paths = Map::new();
    let mut schemas = shared_schemas(config);
    let mut names = Vec::new();
    for record_type in catalog.record_types() {
        let name = &record_type.spec.name;
        if client.is_some_and(|c| !c.may_publish(name)) {
            continue;
        }
        names.push(Value::String(name.clone()));
        let component = format!("#/components/schemas/{}", pointer_escape(name));
        schemas.insert(
            name.clone(),
            rebased(record_type.spec.schema.clone(), &component),
        );
        let summary = if record_type.spec.description.is_empty() {
            format!("Publish a `{name}` record")
        } else {
            record_type.spec.description.clone()
        };
        paths.insert(
            format!("/v1/records/{name}"),
            json!({ "post": {
                "operationId": format!("publish_{}", operation_name(name)),
                "summary": summary,
                "description": format!(
                    "Validated against version {} of the schema of `{name}` unless \
                     Mekong-Schema-Version says another; routed and written to Kafka before the \
                     answer. Also takes the record as a CloudEvent in binary mode (ce-* headers).",
                    record_type.latest_version()
                ),
                "tags": ["records"],
                "parameters": record_parameters(Some(record_type.latest_version())),
                "requestBody": {
                    "required": true,
                    "content": { JSON: { "schema": { "$ref": component } } },
                },
                "responses": publish_responses(),
            }}),
        );
    }
    paths.insert(
        "/v1/records".into(),
        json!({ "post": {
            "operationId": "publish_cloudevent",
            "summary": "Publish a record as a CloudEvent in structured mode; `type` names its record type",
            "tags": ["records"],
            "parameters": record_parameters(None),
            "requestBody": {
                "required": true,
                "content": { CLOUDEVENT: { "schema": { "$ref": "#/components/schemas/CloudEvent" } } },
            },
            "responses": publish_responses(),
        }}),
    );
    paths.insert(
        "/v1/records:batch".into(),
        json!({ "post": {
            "operationId": "publish_batch",
            "summary": "Publish many records; one result per record, in order",
            "tags": ["records"],
            "requestBody": {
                "required": true,
                "content": {
                    JSON: { "schema": {
                        "type": "array",
                        "maxItems": config.max_batch_records,
                        "items": { "$ref": "#/components/schemas/BatchRecord" },
                    }},
                    CLOUDEVENTS_BATCH: { "schema": {
                        "type": "array",
                        "maxItems": config.max_batch_records,
                        "items": { "$ref": "#/components/schemas/CloudEvent" },
                    }},
                },
            },
            "responses": batch_responses(),
        }}),
    );
    let topic =
        json!({ "name": "topic", "in": "path", "required": true, "schema": { "type": "string" } });
    let group = json!({ "name": "group", "in": "query", "required": false,
        "description": "The consumer group (per client); default `default`", "schema": { "type": "string" } });
    paths.insert(
        "/v1/topics/{topic}/events".into(),
        json!({ "get": {
            "operationId": "follow_topic",
            "summary": "A topic as Server-Sent Events, at least once: each event is a record as a CloudEvent in JSON; its id is the position reached",
            "tags": ["topics"],
            "parameters": [
                topic, group,
                { "name": "start", "in": "query", "required": false, "schema": { "enum": ["earliest", "latest"] } },
                { "name": "types", "in": "query", "required": false, "description": "Only these record types, comma-separated", "schema": { "type": "string" } },
                { "name": "max_in_flight", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": u32::MAX } },
                { "name": "ack", "in": "query", "required": false, "description": "`auto`: a record is done once handed to the connection", "schema": { "enum": ["auto"] } },
                { "name": "last-event-id", "in": "header", "required": false, "description": "Resume: every record up to this event id is done", "schema": { "type": "string" } },
            ],
            "responses": {
                "200": { "description": "The events", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                "400": { "$ref": "#/components/responses/Problem" },
                "401": { "$ref": "#/components/responses/Problem" },
                "403": { "$ref": "#/components/responses/Problem" },
                "404": { "$ref": "#/components/responses/Problem" },
                "429": { "$ref": "#/components/responses/Problem" },
                "503": { "$ref": "#/components/responses/Problem" },
            },
        }}),
    );
    paths.insert(
        "/v1/topics/{topic}/acks".into(),
        json!({ "post": {
            "operationId": "acknowledge_events",
            "summary": "Every record up to an event id is done, for the open event streams of the group on this instance",
            "tags": ["topics"],
            "parameters": [topic, group],
            "requestBody": { "required": true, "content": { JSON: { "schema": {
                "type": "object", "required": ["last_event_id"], "additionalProperties": false,
                "properties": { "last_event_id": { "type": "string" } },
            }}}},
            "responses": {
                "204": { "description": "Passed to the open streams" },
                "400": { "$ref": "#/components/responses/Problem" },
                "401": { "$ref": "#/components/responses/Problem" },
                "403": { "$ref": "#/components/responses/Problem" },
                "408": { "$ref": "#/components/responses/Problem" },
                "409": { "$ref": "#/components/responses/Problem" },
                "413": { "$ref": "#/components/responses/Problem" },
            },
        }}),
    );
    paths.insert(
        "/v1/openapi.json".into(),
        json!({ "get": {
            "operationId": "openapi",
            "summary": "This document; with credentials, only what the caller may publish",
            "tags": ["contract"],
            "security": [{}, { "bearer": [] }, { "mutualTLS": [] }],
            "responses": {
                "200": { "description": "The OpenAPI document", "content": { JSON: { "schema": { "type": "object" } } } },
                "401": { "$ref": "#/components/responses/Problem" },
            },
        }}),
    );
    if !names.is_empty()
        && let Some(Value::Object(batch)) = schemas.get_mut("BatchRecord")
        && let Some(Value::Object(properties)) = batch.get_mut("properties")
    {
        properties.insert("record_type".into(), json!({ "enum": names }));
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Mekong: records over HTTP",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Publish records to the city's integration hub. The same rules as the \
                gRPC IngestService: authentication, quotas, idempotency, validation, routing, \
                written to Kafka before the answer. Errors are RFC 9457 problem documents.",
        },
        "security": [{ "bearer": [] }, { "mutualTLS": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "The client's API key" },
                "mutualTLS": { "type": "mutualTLS", "description": "A client certificate bound to the client" },
            },
            "schemas": schemas,
            "responses": {
                "Problem": {
                    "description": "Refused; `reason` says why",
                    "headers": { "Retry-After": { "schema": { "type": "integer" }, "description": "Seconds to wait (429, 503)" } },
                    "content": { PROBLEM_JSON: { "schema": { "$ref": "#/components/schemas/Problem" } } },
                },
            },
        },
    })
}

/// The headers of a publish; `versions` is the record type's latest schema version, when the
/// operation is one type's.
fn record_parameters(versions: Option<u32>) -> Value {
    let version = match versions {
        Some(latest) => json!({ "type": "integer", "minimum": 0, "maximum": latest }),
        None => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
    };
    json!([
        { "name": IDEMPOTENCY_KEY, "in": "header", "required": false,
          "description": "A retry with the same key (per client) within the idempotency window answers 200 with the first result and writes nothing; the same key with another record is 409",
          "schema": { "type": "string" } },
        { "name": MEKONG_KEY, "in": "header", "required": false,
          "description": "The partition key; by default read from the payload where the record type says",
          "schema": { "type": "string", "maxLength": mekong_core::MAX_KEY_BYTES } },
        { "name": MEKONG_SCHEMA_VERSION, "in": "header", "required": false,
          "description": "The schema version to validate against; 0 or absent: the latest",
          "schema": version },
    ])
}

/// Every answer of a publish: the record placed, or why not.
fn publish_responses() -> Value {
    let published = json!({ JSON: { "schema": { "$ref": "#/components/schemas/Published" } } });
    let mut responses = json!({
        "201": { "description": "Written to every topic its routes name", "content": published },
        "200": { "description": "A retry with the same Idempotency-Key: the first result, nothing written again", "content": published },
    });
    problems(&mut responses);
    responses
}

fn batch_responses() -> Value {
    let mut responses = json!({
        "207": { "description": "One result per record, in order",
                 "content": { JSON: { "schema": { "$ref": "#/components/schemas/BatchResults" } } } },
    });
    problems(&mut responses);
    responses
}

/// The statuses a refusal can have (problem.rs `http_status`).
fn problems(responses: &mut Value) {
    for status in [
        "400", "401", "403", "404", "408", "409", "413", "415", "422", "429", "502", "503",
    ] {
        responses[status] = json!({ "$ref": "#/components/responses/Problem" });
    }
}

/// The document's own schemas: answers, problems, batch records, CloudEvents.
fn shared_schemas(config: &GatewayConfig) -> Map<String, Value> {
    let placement = json!({
        "type": "object",
        "required": ["topic", "partition", "offset"],
        "properties": {
            "topic": { "type": "string" },
            "partition": { "type": "integer" },
            "offset": { "type": "integer" },
            "routes": { "type": "array", "items": { "type": "string" } },
        },
    });
    let problem = json!({
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail", "code", "reason"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "code": { "type": "string", "description": "The gRPC code of the same refusal" },
            "reason": { "type": "string", "description": "SCHEMA_VIOLATION, UNKNOWN_RECORD_TYPE, QUOTA_EXCEEDED ..." },
            "violations": { "type": "array", "items": {
                "type": "object", "required": ["field", "description"],
                "properties": { "field": { "type": "string", "description": "A JSON pointer into the payload" }, "description": { "type": "string" } },
            }},
            "retry_after_ms": { "type": "integer" },
            "landed": { "type": "array", "items": { "$ref": "#/components/schemas/Placement" } },
        },
    });
    let published = json!({
        "type": "object",
        "required": ["record_id", "placements", "duplicate"],
        "properties": {
            "record_id": { "type": "string", "format": "uuid" },
            "placements": { "type": "array", "items": { "$ref": "#/components/schemas/Placement" } },
            "duplicate": { "type": "boolean" },
        },
    });
    let batch_record = json!({
        "type": "object",
        "required": ["record_type", "payload"],
        "additionalProperties": false,
        "properties": {
            "record_type": { "type": "string" },
            "payload": { "description": "The record: any JSON its record type's schema takes" },
            "key": { "type": "string" },
            "idempotency_key": { "type": "string" },
            "attributes": { "type": "object", "additionalProperties": { "type": "string" } },
            "schema_version": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
            "request_id": { "type": "string" },
        },
    });
    let batch_results = json!({
        "type": "object",
        "required": ["results"],
        "properties": { "results": { "type": "array", "items": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": { "type": "integer" },
                "request_id": { "type": "string" },
                "record_id": { "type": "string", "format": "uuid" },
                "placements": { "type": "array", "items": { "$ref": "#/components/schemas/Placement" } },
                "duplicate": { "type": "boolean" },
                "problem": { "$ref": "#/components/schemas/Problem" },
            },
        }}},
    });
    let cloudevent = json!({
        "type": "object",
        "description": format!(
            "A CloudEvent 1.0 in JSON; `data` (or `data_base64`) is the record, at most {} bytes",
            config.limits.max_record_bytes
        ),
        "required": ["specversion", "type", "id"],
        "properties": {
            "specversion": { "const": "1.0" },
            "type": { "type": "string", "description": "The record type" },
            "id": { "type": "string", "description": "Used as the idempotency key" },
            "source": { "type": "string" },
            "datacontenttype": { "const": JSON },
            "data": {},
            "data_base64": { "type": "string", "contentEncoding": "base64" },
        },
    });
    [
        ("Placement", placement),
        ("Problem", problem),
        ("Published", published),
        ("BatchRecord", batch_record),
        ("BatchResults", batch_results),
        ("CloudEvent", cloudevent),
    ]
    .into_iter()
    .map(|(name, schema)| (name.to_owned(), schema))
    .collect()
}

/// A record type's schema moved under `component`: its local references (`#/$defs/...`) point
/// into it there.
fn rebased(mut schema: Value, component: &str) -> Value {
    fn walk(value: &mut Value, component: &str) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    match v {
                        Value::String(reference) if key == "$ref" && reference.starts_with('#') => {
                            *reference = format!("{component}{}", &reference[1..]);
                        }
                        _ => walk(v, component),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, component)),
            _ => {}
        }
    }
    walk(&mut schema, component);
    if let Value::Object(map) = &mut schema {
        // The dialect is the document's; a component is not a schema resource of its own.
        map.remove("$schema");
        map.remove("$id");
    }
    schema
}

fn pointer_escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn operation_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_references_follow_the_schema_into_the_document() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": { "text": { "type": "string" } },
            "properties": {
                "A": { "$ref": "#/$defs/text" },
                "B": { "items": [{ "$ref": "#" }] },
                "C": { "$ref": "urn:elsewhere" },
            },
        });
        let moved = rebased(schema, "#/components/schemas/dossier.sync");
        assert_eq!(
            moved["properties"]["A"]["$ref"],
            "#/components/schemas/dossier.sync/$defs/text"
        );
        assert_eq!(
            moved["properties"]["B"]["items"][0]["$ref"],
            "#/components/schemas/dossier.sync"
        );
        assert_eq!(moved["properties"]["C"]["$ref"], "urn:elsewhere");
        assert!(moved.get("$schema").is_none());
    }
}

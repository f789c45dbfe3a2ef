//! Records over HTTP, on the gRPC listener, against the real broker: every status of the HTTP
//! API with a plain HTTP client, CloudEvents sent by the CloudEvents Python SDK in binary and
//! structured mode, the copies in Kafka the same as the gRPC path writes, batches answered per
//! record, the OpenAPI document following the catalog and the caller, and schemathesis run against
//! it. (A broker that does not acknowledge is 503: broker_down.rs.)

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use mekong_gateway::{GatewayConfig, HttpSettings, QuotaDefaults};
use mekong_kafka::ProducerSettings;
use mekong_proto::v1::{ApplyRequest, SourceText};
use mekong_tests::*;
use rdkafka::message::{Headers, Message, OwnedMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_RECORD: usize = 4096;
const JSON: &str = "application/json";

/// A request the hub refuses: what it is, path, key, content type, headers, body; the status and
/// reason it gets.
type Refusal<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a [(&'a str, &'a str)],
    Vec<u8>,
    u16,
    &'a str,
);

/// A hub with small limits, so the limits can be crossed cheaply.
async fn hub() -> (TestHub, String) {
    hub_with(GatewayConfig {
        limits: mekong_core::Limits {
            max_record_bytes: MAX_RECORD,
        },
        max_batch_records: 5,
        http: HttpSettings {
            read_timeout: Duration::from_secs(1),
        },
        ..GatewayConfig::default()
    })
    .await
}

/// A hub on the test broker with the standard resources, held to `config`.
async fn hub_with(config: GatewayConfig) -> (TestHub, String) {
    let s = unique();
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &standard_resources(&s),
        config,
        ProducerSettings::default(),
    )
    .await;
    (hub, s)
}

/// Posts `body` as `content_type` with `key`'s credentials (if any) and extra headers; the status,
/// the headers and the body as JSON.
async fn post(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = http
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("an answer");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, headers, body)
}

/// Asserts a problem document of `status` and `reason`; returns it.
fn problem(
    answer: (StatusCode, reqwest::header::HeaderMap, Value),
    status: u16,
    reason: &str,
) -> Value {
    let (got, headers, body) = answer;
    assert_eq!(got.as_u16(), status, "{body}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:mekong:problem:")
    );
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    body
}

#[tokio::test]
async fn every_refusal_over_http_is_a_problem_document_with_its_status() {
    let (hub, s) = hub().await;
    let http = reqwest::Client::new();
    let url = hub.url("/v1/records/dossier.sync");
    let dossier = citizen_dossier("H29-HTTP-0001");

    // 201: both routes' copies, where Kafka put them.
    let (status, _, body) = post(
        &http,
        &url,
        Some("q1-key"),
        "application/json",
        &[],
        dossier.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let topics: Vec<&str> = body["placements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics.len(), 2, "{body}");
    assert!(topics.contains(&format!("t-city-{s}").as_str()), "{body}");
    assert_eq!(body["duplicate"], false);

    // 200 for an idempotent retry, with the first answer; 409 for the key on another record.
    let key = [("idempotency-key", "k-1")];
    let (first, _, one) = post(
        &http,
        &url,
        Some("q1-key"),
        "application/json",
        &key,
        dossier.clone(),
    )
    .await;
    assert_eq!(first, StatusCode::CREATED);
    let (again, _, two) = post(
        &http,
        &url,
        Some("q1-key"),
        "application/json",
        &key,
        dossier.clone(),
    )
    .await;
    assert_eq!(again, StatusCode::OK, "{two}");
    assert_eq!(two["duplicate"], true);
    assert_eq!(two["record_id"], one["record_id"]);
    let other = citizen_dossier("H29-HTTP-0002");
    problem(
        post(&http, &url, Some("q1-key"), "application/json", &key, other).await,
        409,
        "IDEMPOTENCY_KEY_REUSED",
    );

    // Each refusal: (what, path, key, content type, headers, body) -> status and reason.
    let dossier_path = "/v1/records/dossier.sync";
    let schema_invalid = br#"{"MaHoSo":"H1","LoaiDoiTuong":7,"NgayTiepNhan":"20261128083000"}"#;
    #[rustfmt::skip]
    let refusals: [Refusal; 14] = [
        ("not JSON", dossier_path, Some("q1-key"), JSON, &[], b"{\"MaHoSo\": ".to_vec(), 400, "INVALID_RECORD"),
        ("a schema version that is no number", dossier_path, Some("q1-key"), JSON, &[("mekong-schema-version", "x")], dossier.clone(), 400, "INVALID_RECORD"),
        ("no credentials", dossier_path, None, JSON, &[], dossier.clone(), 401, "UNAUTHENTICATED"),
        ("a key nobody holds", dossier_path, Some("nobody"), JSON, &[], dossier.clone(), 401, "UNAUTHENTICATED"),
        ("a reader publishing", dossier_path, Some("reader-key"), JSON, &[], dossier.clone(), 403, "PERMISSION_DENIED"),
        ("a type q1 may not publish", "/v1/records/payment.completed", Some("q1-key"), JSON, &[], b"{}".to_vec(), 403, "PERMISSION_DENIED"),
        // q1 may publish dossier.*: it learns this one does not exist.
        ("an unknown type", "/v1/records/dossier.nope", Some("q1-key"), JSON, &[], b"{}".to_vec(), 404, "UNKNOWN_RECORD_TYPE"),
        ("an unknown path", "/v1/nothing", Some("q1-key"), JSON, &[], b"{}".to_vec(), 404, "NOT_FOUND"),
        // To a stranger every path but the contract needs credentials: it learns none exists.
        ("an unknown path, without credentials", "/v1/nothing", None, JSON, &[], b"{}".to_vec(), 401, "UNAUTHENTICATED"),
        // Refused from Content-Length, before the body is read.
        ("a record over the limit", dossier_path, Some("q1-key"), JSON, &[], vec![b' '; MAX_RECORD + 1], 413, "RECORD_TOO_LARGE"),
        ("plain text", dossier_path, Some("q1-key"), "text/plain", &[], dossier.clone(), 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("JSON in Latin-1", dossier_path, Some("q1-key"), "application/json; charset=latin1", &[], dossier.clone(), 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("a schema violation", dossier_path, Some("q1-key"), JSON, &[], schema_invalid.to_vec(), 422, "SCHEMA_VIOLATION"),
        ("a record no route takes", "/v1/records/tax.filed", Some("q1-key"), JSON, &[], b"{}".to_vec(), 422, "NO_ROUTE"),
    ];
    for (what, path, key, content_type, headers, body, status, reason) in refusals {
        let answer = post(&http, &hub.url(path), key, content_type, headers, body).await;
        assert_eq!(answer.0.as_u16(), status, "{what}: {}", answer.2);
        let document = problem(answer, status, reason);
        match what {
            // The violation of a payload that is not JSON is at the payload as a whole.
            "not JSON" => assert_eq!(document["violations"][0]["field"], ""),
            // The schema's, by JSON pointer, with the gRPC code of the same refusal.
            "a schema violation" => {
                assert_eq!(
                    document["violations"][0]["field"], "/LoaiDoiTuong",
                    "{document}"
                );
                assert_eq!(document["code"], "invalid_argument");
            }
            _ => {}
        }
    }
    let get = http.get(&url).bearer_auth("q1-key").send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers()["content-type"], "application/problem+json");

    // HTTP/2 too.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .post(&url)
        .bearer_auth("q1-key")
        .header("content-type", "application/json")
        .body(dossier.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::CREATED);

    hub.shutdown().await;
}

/// Sends `request` on a new connection and reads until the hub closes it (or `within` passes).
async fn raw(addr: std::net::SocketAddr, request: &[u8], within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, socket.read_to_end(&mut answer)).await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn request_head(path: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer q1-key\r\n\
         Content-Type: application/json\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn slow_endless_and_kept_alive_connections_over_http_1_1() {
    let (hub, _) = hub().await;
    let dossier = String::from_utf8(citizen_dossier("H29-HTTP-KA")).unwrap();
    let path = "/v1/records/dossier.sync";

    // Keep-alive: two requests on one connection, both answered (the second closes it).
    let two = format!(
        "{}{dossier}{}{dossier}",
        request_head(path, &format!("Content-Length: {}\r\n", dossier.len())),
        request_head(
            path,
            &format!("Content-Length: {}\r\nConnection: close\r\n", dossier.len())
        ),
    );
    let (answer, _) = raw(hub.addr, two.as_bytes(), Duration::from_secs(20)).await;
    assert_eq!(
        answer.matches("HTTP/1.1 201 Created").count(),
        2,
        "{answer}"
    );

    // A chunked body that goes on past the limit: 413 as soon as it crosses it.
    let mut endless = request_head(path, "Transfer-Encoding: chunked\r\n").into_bytes();
    let chunk = format!("400\r\n{}\r\n", " ".repeat(0x400));
    for _ in 0..(MAX_RECORD / 0x400 + 2) {
        endless.extend_from_slice(chunk.as_bytes());
    }
    let (answer, _) = raw(hub.addr, &endless, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // A slow sender: 100 bytes announced, 10 sent; 408 after the read timeout (1 s here).
    let slow = format!(
        "{}{{\"MaHoSo\":",
        request_head(path, "Content-Length: 100\r\n")
    );
    let (answer, took) = raw(hub.addr, slow.as_bytes(), Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );

    hub.shutdown().await;
}

#[tokio::test]
async fn a_client_over_its_quota_gets_429_with_retry_after() {
    let one = NonZeroU32::new(1);
    let (hub, _) = hub_with(GatewayConfig {
        quotas: QuotaDefaults {
            records_per_second: one,
            burst: one,
            ..QuotaDefaults::default()
        },
        ..GatewayConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = hub.url("/v1/records/dossier.sync");
    let mut throttled = None;
    for n in 0..5 {
        let answer = post(
            &http,
            &url,
            Some("q1-key"),
            "application/json",
            &[],
            citizen_dossier(&format!("H29-Q{n}")),
        )
        .await;
        if answer.0 == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(answer);
            break;
        }
        assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.2);
    }
    let answer = throttled.expect("the second record within a second is over 1 record/s");
    let retry: u64 = answer.1["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    problem(answer, 429, "QUOTA_EXCEEDED");
    hub.shutdown().await;
}

/// The copy at a placement of an answer.
async fn copy_at(hub: &TestHub, placements: &Value, topic: &str) -> OwnedMessage {
    let p = placements
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["topic"] == topic)
        .unwrap_or_else(|| panic!("no copy on {topic}: {placements}"));
    read_at(
        &hub.bootstrap,
        topic,
        p["partition"].as_i64().unwrap() as i32,
        p["offset"].as_i64().unwrap(),
    )
    .await
}

/// A record's headers without those that differ for every record (its id, time, trace).
fn lasting_headers(m: &OwnedMessage) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            if ["ce_id", "ce_time", "traceparent"].contains(&header.key) {
                continue;
            }
            let value = String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
            headers.insert(header.key.to_owned(), value);
        }
    }
    headers
}

#[tokio::test]
async fn http_writes_the_very_copies_grpc_writes() {
    let (hub, s) = hub().await;
    let payload = citizen_dossier("H29-SAME-0001");
    let mut request = record("dossier.sync", &payload);
    request.attributes.insert("district".into(), "q1".into());
    let grpc = hub
        .client()
        .await
        .publish(authed("q1-key", request))
        .await
        .expect("published over gRPC")
        .into_inner();
    let (status, _, over_http) = post(
        &reqwest::Client::new(),
        &hub.url("/v1/records/dossier.sync"),
        Some("q1-key"),
        "application/json",
        &[("ce-district", "q1")],
        payload.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{over_http}");
    let grpc_placements = json!(
        grpc.placements
            .iter()
            .map(|p| json!({"topic": p.topic, "partition": p.partition, "offset": p.offset}))
            .collect::<Vec<_>>()
    );
    for topic in [format!("t-city-{s}"), format!("t-national-{s}")] {
        let a = copy_at(&hub, &grpc_placements, &topic).await;
        let b = copy_at(&hub, &over_http["placements"], &topic).await;
        assert_eq!(
            a.payload(),
            b.payload(),
            "{topic}: the same bytes, redaction included"
        );
        assert_eq!(a.key(), b.key());
        assert_eq!(lasting_headers(&a), lasting_headers(&b), "{topic}");
        assert_eq!(lasting_headers(&b)["ce_district"], "q1");
        assert_eq!(lasting_headers(&b)["ce_source"], "q1");
    }
    hub.shutdown().await;
}

/// What send_cloudevent.py answered. (Run without blocking: the hub serves on this runtime.)
async fn send_with_sdk(url: &str, mode: &str, id: &str, data: &[u8]) -> Value {
    let script = repo_root().join("tests/python/send_cloudevent.py");
    let out = tokio::process::Command::new(test_python())
        .arg(&script)
        .args([url, "q1-key", mode, "dossier.sync", id])
        .arg(String::from_utf8(data.to_vec()).unwrap())
        .arg(r#"{"donvi": "Quận 1"}"#)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "send_cloudevent.py failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn the_cloudevents_sdk_publishes_in_binary_and_structured_mode() {
    let (hub, s) = hub().await;
    let url = hub.url("/v1/records");
    for mode in ["binary", "structured"] {
        let ma_ho_so = format!("H29-CE-{mode}");
        let data = citizen_dossier(&ma_ho_so);
        let id = format!("ev-{mode}-{s}");
        let answer = send_with_sdk(&url, mode, &id, &data).await;
        assert_eq!(answer["status"], 201, "{answer}");
        let sent_as = answer["sent"]["content-type"].as_str().unwrap().to_owned();
        if mode == "binary" {
            assert_eq!(answer["sent"]["ce-type"], "dossier.sync", "{answer}");
        } else {
            assert_eq!(sent_as, "application/cloudevents+json", "{answer}");
        }
        let copy = copy_at(&hub, &answer["body"]["placements"], &format!("t-city-{s}")).await;
        let got: Value = serde_json::from_slice(copy.payload().unwrap()).unwrap();
        assert_eq!(
            got,
            serde_json::from_slice::<Value>(&data).unwrap(),
            "{mode}"
        );
        let headers = lasting_headers(&copy);
        assert_eq!(headers["ce_type"], "dossier.sync");
        // The hub's source (the authenticated client), not the sender's claim.
        assert_eq!(headers["ce_source"], "q1");
        assert_eq!(headers["ce_subject"], ma_ho_so, "{mode}: {headers:?}");
        assert_eq!(headers["ce_donvi"], "Quận 1", "{mode}: {headers:?}");
        assert_eq!(copy.key(), Some(ma_ho_so.as_bytes()));
        // The event's id is its idempotency key: the SDK's retry writes nothing again.
        let retry = send_with_sdk(&url, mode, &id, &data).await;
        assert_eq!(retry["status"], 200, "{retry}");
        assert_eq!(retry["body"]["duplicate"], true);
        assert_eq!(retry["body"]["record_id"], answer["body"]["record_id"]);
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_batch_is_answered_record_by_record_in_order() {
    let (hub, _) = hub().await;
    let http = reqwest::Client::new();
    let url = hub.url("/v1/records:batch");
    let dossier: Value = serde_json::from_slice(&citizen_dossier("H29-B-1")).unwrap();
    let batch = json!([
        { "record_type": "dossier.sync", "payload": dossier, "request_id": "a" },
        { "record_type": "dossier.sync", "payload": {"MaHoSo": "H29-B-2"}, "request_id": "b" },
        { "record_type": "dossier.nope", "payload": {}, "request_id": "c" },
        { "record_type": "dossier.sync", "payload": dossier, "idempotency_key": "b-4", "request_id": "d" },
    ]);
    let (status, _, body) = post(
        &http,
        &url,
        Some("q1-key"),
        "application/json",
        &[],
        batch.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<_> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 404, 201], "{body}");
    let ids: Vec<_> = results
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert_eq!(results[1]["problem"]["reason"], "SCHEMA_VIOLATION");
    assert!(results[0]["record_id"].is_string());

    // CloudEvents batched mode: an event that cannot be a record keeps its place.
    let events = json!([
        { "specversion": "1.0", "type": "dossier.sync", "id": "e-1", "source": "/q1", "data": dossier },
        { "specversion": "1.0", "id": "e-2", "source": "/q1", "data": dossier },
    ]);
    let (status, _, body) = post(
        &http,
        &url,
        Some("q1-key"),
        "application/cloudevents-batch+json",
        &[],
        events.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let statuses: Vec<_> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 400], "{body}");

    // Refused whole: more records than a batch takes (5 here), or not an array.
    let six = json!(
        (0..6)
            .map(|_| json!({"record_type": "dossier.sync", "payload": dossier}))
            .collect::<Vec<_>>()
    );
    problem(
        post(
            &http,
            &url,
            Some("q1-key"),
            "application/json",
            &[],
            six.to_string().into_bytes(),
        )
        .await,
        413,
        "BATCH_TOO_LARGE",
    );
    problem(
        post(
            &http,
            &url,
            Some("q1-key"),
            "application/json",
            &[],
            b"{}".to_vec(),
        )
        .await,
        400,
        "INVALID_RECORD",
    );
    hub.shutdown().await;
}

async fn openapi(http: &reqwest::Client, hub: &TestHub, key: Option<&str>) -> (StatusCode, Value) {
    let mut request = http.get(hub.url("/v1/openapi.json"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

fn record_paths(document: &Value) -> Vec<String> {
    let mut paths: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|p| p.strip_prefix("/v1/records/").map(str::to_owned))
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn the_openapi_document_follows_the_catalog_and_the_caller() {
    let (hub, _) = hub().await;
    let http = reqwest::Client::new();
    let (status, anyone) = openapi(&http, &hub, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(anyone["openapi"], "3.1.0");
    assert_eq!(
        record_paths(&anyone),
        ["dossier.sync", "payment.completed", "tax.filed"]
    );
    // The request body is the record type's schema, in the document's components.
    let body = &anyone["paths"]["/v1/records/dossier.sync"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/dossier.sync");
    let schema = &anyone["components"]["schemas"]["dossier.sync"];
    assert_eq!(
        schema["required"],
        json!(["MaHoSo", "LoaiDoiTuong", "NgayTiepNhan"])
    );

    // With credentials: what that client may publish (q1: dossier.*, tax.*).
    let (_, q1) = openapi(&http, &hub, Some("q1-key")).await;
    assert_eq!(record_paths(&q1), ["dossier.sync", "tax.filed"]);
    let (status, _) = openapi(&http, &hub, Some("nobody")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A new record type is in the next document.
    let mut admin = hub.admin().await;
    admin
        .apply(authed(
            "admin-key",
            ApplyRequest {
                sources: vec![SourceText {
                    name: "new.yaml".into(),
                    text: "kind: RecordType\nname: dossier.extra\nschema: {type: object, required: [MaHoSo]}\n".into(),
                }],
                ..Default::default()
            },
        ))
        .await
        .expect("applied");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, q1) = openapi(&http, &hub, Some("q1-key")).await;
        if record_paths(&q1).contains(&"dossier.extra".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", record_paths(&q1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_describe() {
    let (hub, _) = hub().await;
    let python = test_python();
    let schemathesis = std::path::Path::new(&python).with_file_name("schemathesis");
    let url = hub.url("/v1/openapi.json");
    // Every check but two that cannot hold for a hub: a schema-valid record may still be refused
    // (no route takes it, its key was used, a quota), and a batch answers 207 with each record's
    // refusal inside.
    let out = tokio::process::Command::new(&schemathesis)
        .args(["run", &url, "--header", "Authorization: Bearer q1-key"])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance,negative_data_rejection",
        ])
        .args([
            "--max-examples",
            "40",
            "--seed",
            "20261202",
            "--workers",
            "2",
        ])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", schemathesis.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // It did test the record types' operations, not nothing.
    assert!(stdout.contains("passed"), "{stdout}");
    hub.shutdown().await;
}

/// An open event stream, read event by event.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// One server-sent event: its id, its name (`message` unless said) and its data.
#[derive(Debug)]
struct Sent {
    id: String,
    event: String,
    data: Value,
}

impl EventStream {
    async fn open(hub: &TestHub, path: &str, key: &str, last: Option<&str>) -> EventStream {
        let mut request = reqwest::Client::new().get(hub.url(path)).bearer_auth(key);
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = request.send().await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or None if none comes within `within`.
    async fn next(&mut self, within: Duration) -> Option<Sent> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), "message".to_owned(), None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).expect("JSON data"));
                    }
                }
                match data {
                    Some(data) => return Some(Sent { id, event, data }),
                    None => continue, // a keep-alive comment
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => panic!("the event stream broke: {e}"),
                Err(_) => return None,
            }
        }
    }

    /// The next `n` events' MaHoSo and the last one's id.
    async fn take(&mut self, n: usize) -> (Vec<String>, String) {
        let mut keys = Vec::new();
        let mut last = String::new();
        for _ in 0..n {
            let sent = self
                .next(Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("only {} of {n} events came: {keys:?}", keys.len()));
            assert_eq!(sent.event, "message", "{sent:?}");
            assert_eq!(sent.data["specversion"], "1.0");
            assert_eq!(sent.data["type"], "dossier.sync");
            keys.push(sent.data["data"]["MaHoSo"].as_str().unwrap().to_owned());
            last = sent.id;
        }
        (keys, last)
    }
}

#[tokio::test]
async fn a_topic_followed_over_server_sent_events_resumes_at_least_once() {
    let (hub, s) = hub().await;
    let http = reqwest::Client::new();
    let publish = |id: String| {
        let (http, url) = (http.clone(), hub.url("/v1/records/dossier.sync"));
        async move {
            let (status, _, body) = post(
                &http,
                &url,
                Some("q1-key"),
                "application/json",
                &[],
                citizen_dossier(&id),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    };
    // One partition's worth of order is enough to check: the keys all hash somewhere, and each
    // stream below sees every record once per delivery.
    let sent: Vec<String> = (0..5).map(|n| format!("H29-SSE-{n}")).collect();
    for id in &sent {
        publish(id.clone()).await;
    }
    let path = format!("/v1/topics/t-city-{s}/events?group=g1");

    // Every record; nothing acknowledged: after the connection drops they come again.
    let mut stream = EventStream::open(&hub, &path, "reader-key", None).await;
    let (mut first, _) = stream.take(5).await;
    first.sort();
    assert_eq!(first, sent);
    drop(stream);
    let mut stream = EventStream::open(&hub, &path, "reader-key", None).await;
    let (mut again, _) = stream.take(5).await;
    again.sort();
    assert_eq!(again, sent, "unacknowledged records are sent again");
    drop(stream);

    // Resuming from an event id: what came up to it is done, the rest comes.
    let mut stream = EventStream::open(&hub, &path, "reader-key", None).await;
    let (head, after_three) = stream.take(3).await;
    drop(stream);
    let mut stream = EventStream::open(&hub, &path, "reader-key", Some(&after_three)).await;
    let (tail, last) = stream.take(2).await;
    let mut all: Vec<String> = head.into_iter().chain(tail).collect();
    all.sort();
    assert_eq!(all, sent, "each record once across the resume");
    assert!(
        stream.next(Duration::from_secs(2)).await.is_none(),
        "nothing more"
    );

    // Acknowledged while open: done for the group, even when the reader comes back without an id.
    let ack = http
        .post(hub.url(&format!("/v1/topics/t-city-{s}/acks?group=g1")))
        .bearer_auth("reader-key")
        .header("content-type", "application/json")
        .body(json!({ "last_event_id": last }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), StatusCode::NO_CONTENT);
    drop(stream);
    let mut stream = EventStream::open(&hub, &path, "reader-key", None).await;
    assert!(
        stream.next(Duration::from_secs(3)).await.is_none(),
        "all were acknowledged"
    );
    publish("H29-SSE-new".into()).await;
    let (new, _) = stream.take(1).await;
    assert_eq!(new, ["H29-SSE-new"]);
    drop(stream);

    // ?ack=auto: what was sent counts as done, and is not sent again to the group.
    let auto = format!("/v1/topics/t-city-{s}/events?group=g2&ack=auto");
    let mut stream = EventStream::open(&hub, &auto, "reader-key", None).await;
    let (mut all, _) = stream.take(6).await;
    all.sort();
    assert_eq!(all.len(), 6);
    drop(stream);
    let mut stream = EventStream::open(&hub, &auto, "reader-key", None).await;
    assert!(
        stream.next(Duration::from_secs(3)).await.is_none(),
        "auto-acknowledged records come no more"
    );
    drop(stream);

    // An acknowledgement with no stream open here says so.
    let orphan = http
        .post(hub.url(&format!("/v1/topics/t-city-{s}/acks?group=nobody")))
        .bearer_auth("reader-key")
        .header("content-type", "application/json")
        .body(r#"{"last_event_id": "0-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(orphan.status(), StatusCode::CONFLICT);

    // The access rules of Consume: a publisher, a topic the reader may not read, one that is not.
    for (path, key, status) in [
        (format!("/v1/topics/t-city-{s}/events"), "q1-key", 403),
        (
            format!("/v1/topics/t-national-{s}/events"),
            "reader-key",
            403,
        ),
        (
            "/v1/topics/nothing-here/events".to_owned(),
            "reader-key",
            403,
        ),
    ] {
        let response = http
            .get(hub.url(&path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let response = http
        .get(hub.url(&format!("/v1/topics/t-city-{s}/events")))
        .bearer_auth("reader-key")
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    hub.shutdown().await;
}

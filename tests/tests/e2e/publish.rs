//! Publishing against a real Kafka broker: what lands, byte for byte, and every way a record is
//! refused. Run through ./deploy/test.sh, which starts the broker.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use mekong_proto::v1::{PublishBatchRequest, PublishRequest, publish_result::Outcome};
use mekong_tests::*;
use rdkafka::message::Message;
use tonic::Code;
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_valid_record_lands_on_every_routed_topic_with_key_headers_and_exact_bytes() {
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    let payload = citizen_dossier("H29-0001");

    let mut request = authed("q1-key", record("dossier.sync", &payload));
    request.metadata_mut().insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    let response = client
        .publish(request)
        .await
        .expect("published")
        .into_inner();
    assert!(!response.duplicate);
    let topics: HashSet<_> = response
        .placements
        .iter()
        .map(|p| p.topic.as_str())
        .collect();
    assert_eq!(
        topics,
        HashSet::from([
            format!("t-city-{s}").as_str(),
            format!("t-national-{s}").as_str()
        ])
    );

    let city = &read_records(&hub.bootstrap, &format!("t-city-{s}"), 1, WAIT).await[0];
    assert_eq!(
        city.payload(),
        Some(&payload[..]),
        "the unredacted copy is the payload byte for byte"
    );
    assert_eq!(
        city.key(),
        Some(&b"H29-0001"[..]),
        "keyed by the record type's key pointer"
    );
    let placement = response
        .placements
        .iter()
        .find(|p| p.topic == format!("t-city-{s}"))
        .unwrap();
    assert_eq!(
        (city.partition(), city.offset()),
        (placement.partition, placement.offset),
        "the placement is where it is"
    );
    for (name, want) in [
        ("ce_specversion", "1.0"),
        ("ce_id", response.record_id.as_str()),
        ("ce_source", "q1"),
        ("ce_type", "dossier.sync"),
        ("content-type", "application/json"),
        ("ce_dataschema", "urn:mekong:schema:dossier.sync:1"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("mekong_route", "city"),
    ] {
        assert_eq!(header(city, name).as_deref(), Some(want), "header {name}");
    }
    assert!(header(city, "ce_time").is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        uuid::Uuid::parse_str(&response.record_id)
            .unwrap()
            .get_version_num(),
        7
    );

    // The national copy lost exactly the redacted fields; everything else, numbers included, is intact.
    let national = &read_records(&hub.bootstrap, &format!("t-national-{s}"), 1, WAIT).await[0];
    let text = std::str::from_utf8(national.payload().unwrap()).unwrap();
    assert_eq!(
        text,
        r#"{"MaHoSo":"H29-0001","LoaiDoiTuong":1,"NgayTiepNhan":"20261128083000","ChuHoSo":"Nguyễn Văn An","NguoiNop":{"HoTen":"Trần Thị Bình"},"SoTien":12345678901234567890,"TyLe":1.0}"#
    );
    assert_eq!(
        header(national, "ce_id"),
        header(city, "ce_id"),
        "both copies are one record"
    );
    assert_eq!(
        header(national, "mekong_route").as_deref(),
        Some("national")
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn routes_follow_their_conditions_and_explicit_keys_win() {
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    // A business (LoaiDoiTuong 2): the national route's condition is false.
    let business = br#"{"MaHoSo":"H29-B","LoaiDoiTuong":2,"NgayTiepNhan":"20261128083000"}"#;
    let mut request = record("dossier.sync", business);
    request.key = "explicit-key".into();
    request.attributes = HashMap::from([("district".into(), "q1".into())]);
    let response = client
        .publish(authed("q1-key", request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.placements.len(), 1);
    assert_eq!(response.placements[0].topic, format!("t-city-{s}"));
    let m = &read_records(&hub.bootstrap, &format!("t-city-{s}"), 1, WAIT).await[0];
    assert_eq!(m.key(), Some(&b"explicit-key"[..]));
    assert_eq!(header(m, "ce_district").as_deref(), Some("q1"));
    assert_eq!(count_records(&hub.bootstrap, &format!("t-national-{s}")), 0);
    // No traceparent came with the record: a trace is started here, its id the record's id.
    let traceparent = header(m, "traceparent").expect("a trace started by the hub");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(
        parts[1],
        uuid::Uuid::parse_str(&response.record_id)
            .unwrap()
            .simple()
            .to_string()
    );
    assert!(
        parts[2].len() == 16 && parts[2] != "0000000000000000",
        "{traceparent}"
    );
}

#[tokio::test]
async fn two_routes_to_one_topic_write_one_copy_with_both_redactions() {
    let s = unique();
    // Two more routes to one topic, each hiding other fields; `shared-b` only for citizens.
    let routes = format!(
        r#"kind: Route
name: shared-a
match: {{types: [dossier.sync]}}
to: [{{topic: "t-shared-{s}", redact: [/SoDienThoai]}}]
---
kind: Route
name: shared-b
match: {{types: [dossier.sync], when: "data.LoaiDoiTuong == 1"}}
to: [{{topic: "t-shared-{s}", redact: [/Email, /NguoiNop/SoDienThoai]}}]
"#
    );
    let yaml = format!("{}\n---\n{routes}", standard_resources(&s));
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &yaml,
        mekong_gateway::GatewayConfig::default(),
        mekong_kafka::ProducerSettings::default(),
    )
    .await;
    let mut client = hub.client().await;
    let shared = format!("t-shared-{s}");

    // A citizen: both routes take it; one copy, hiding what either route hides.
    let response = client
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier("H29-2R")),
        ))
        .await
        .unwrap()
        .into_inner();
    let to_shared = response.placements.iter().filter(|p| p.topic == shared);
    assert_eq!(to_shared.count(), 1, "{:?}", response.placements);
    // A business: only `shared-a` takes it, so only its field is hidden.
    let business = br#"{"MaHoSo":"H29-2B","LoaiDoiTuong":2,"NgayTiepNhan":"20261128083000","SoDienThoai":"0901","Email":"b@example.vn"}"#;
    client
        .publish(authed("q1-key", record("dossier.sync", business)))
        .await
        .unwrap();

    let copies = read_records(&hub.bootstrap, &shared, 2, WAIT).await;
    let copy = |key: &[u8]| {
        copies
            .iter()
            .find(|m| m.key() == Some(key))
            .unwrap_or_else(|| panic!("no copy keyed {key:?}"))
    };
    let citizen = copy(b"H29-2R");
    assert_eq!(
        std::str::from_utf8(citizen.payload().unwrap()).unwrap(),
        r#"{"MaHoSo":"H29-2R","LoaiDoiTuong":1,"NgayTiepNhan":"20261128083000","ChuHoSo":"Nguyễn Văn An","NguoiNop":{"HoTen":"Trần Thị Bình"},"SoTien":12345678901234567890,"TyLe":1.0}"#
    );
    assert_eq!(
        header(citizen, "mekong_route").as_deref(),
        Some("shared-a,shared-b")
    );
    let company = copy(b"H29-2B");
    assert_eq!(
        std::str::from_utf8(company.payload().unwrap()).unwrap(),
        r#"{"MaHoSo":"H29-2B","LoaiDoiTuong":2,"NgayTiepNhan":"20261128083000","Email":"b@example.vn"}"#
    );
    assert_eq!(header(company, "mekong_route").as_deref(), Some("shared-a"));
    assert_eq!(count_records(&hub.bootstrap, &shared), 2, "one copy each");
    hub.shutdown().await;
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    let payload = citizen_dossier("H29-AUTH");

    let missing = client
        .publish(tonic::Request::new(record("dossier.sync", &payload)))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(
        missing.message().contains("authorization: Bearer"),
        "{}",
        missing.message()
    );

    let unknown = client
        .publish(authed("not-a-key", record("dossier.sync", &payload)))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);

    let mut malformed = tonic::Request::new(record("dossier.sync", &payload));
    malformed
        .metadata_mut()
        .insert("authorization", "Basic cTE6a2V5".parse().unwrap());
    assert_eq!(
        client.publish(malformed).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // A subscriber may not publish; a publisher may not publish a type outside its list.
    let reader = client
        .publish(authed("reader-key", record("dossier.sync", &payload)))
        .await
        .unwrap_err();
    assert_eq!(reader.code(), Code::PermissionDenied);
    let other_type = client
        .publish(authed("q1-key", record("payment.completed", b"{}")))
        .await
        .unwrap_err();
    assert_eq!(other_type.code(), Code::PermissionDenied);

    assert_eq!(
        count_records(&hub.bootstrap, &format!("t-city-{s}")),
        0,
        "nothing refused reaches a topic"
    );
    assert_eq!(count_records(&hub.bootstrap, &format!("t-pay-{s}")), 0);
}

#[tokio::test]
async fn bad_records_are_refused_with_precise_errors_and_never_written() {
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    let mut publish = async |request: PublishRequest| {
        client.publish(authed("q1-key", request)).await.unwrap_err()
    };

    // Unknown within the types q1 may publish (dossier.*): NOT_FOUND. Outside them, PERMISSION_DENIED
    // whether the type exists or not (tests/tests/hostile.rs).
    let unknown = publish(record("dossier.no-such-type", b"{}")).await;
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("dossier.no-such-type"));

    let not_json = publish(record("dossier.sync", b"{\"MaHoSo\": ")).await;
    assert_eq!(not_json.code(), Code::InvalidArgument);
    assert!(not_json.message().contains("not valid UTF-8 JSON"));

    let not_utf8 = publish(record("dossier.sync", b"{\"MaHoSo\": \"\xff\xfe\"}")).await;
    assert_eq!(not_utf8.code(), Code::InvalidArgument);

    // One field violation per schema violation, each at its JSON pointer.
    let invalid = publish(record(
        "dossier.sync",
        br#"{"LoaiDoiTuong":3,"NgayTiepNhan":"28/11/2026","Email":"not-an-email"}"#,
    ))
    .await;
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let details = invalid
        .get_details_bad_request()
        .expect("BadRequest details");
    let mut fields: Vec<_> = details
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["/Email", "/LoaiDoiTuong", "/MaHoSo", "/NgayTiepNhan"]
    );
    assert!(
        details
            .field_violations
            .iter()
            .all(|v| !v.description.is_empty())
    );

    let oversize = format!(
        r#"{{"MaHoSo":"H","LoaiDoiTuong":1,"NgayTiepNhan":"20261128083000","x":"{}"}}"#,
        "a".repeat(1024 * 1024)
    );
    let too_big = publish(record("dossier.sync", oversize.as_bytes())).await;
    assert_eq!(too_big.code(), Code::ResourceExhausted);
    assert!(too_big.message().contains("limit"), "{}", too_big.message());

    let unrouted = publish(record("tax.filed", b"{}")).await;
    assert_eq!(unrouted.code(), Code::FailedPrecondition);
    assert!(unrouted.message().contains("no route matches"));

    let mut bad_attribute = record("dossier.sync", &citizen_dossier("H29-ATTR"));
    bad_attribute.attributes = HashMap::from([("id".into(), "spoofed".into())]);
    assert_eq!(publish(bad_attribute).await.code(), Code::InvalidArgument);

    for topic in [format!("t-city-{s}"), format!("t-national-{s}")] {
        assert_eq!(
            count_records(&hub.bootstrap, &topic),
            0,
            "no refused record reaches {topic}"
        );
    }
}

#[tokio::test]
async fn a_batch_answers_each_record_and_one_bad_record_fails_only_itself() {
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    let mut records = Vec::new();
    for i in 0..10 {
        let mut r = if i % 3 == 0 {
            record("dossier.sync", b"{\"broken\": ")
        } else {
            record("dossier.sync", &citizen_dossier(&format!("H29-B{i}")))
        };
        r.request_id = format!("req-{i}");
        records.push(r);
    }
    records.push(PublishRequest {
        request_id: "req-unknown".into(),
        ..record("dossier.no-such-type", b"{}")
    });
    let results = client
        .publish_batch(authed("q1-key", PublishBatchRequest { records }))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 11, "a result per record, in order");
    let mut ok = 0;
    for (i, result) in results.iter().enumerate() {
        match (i, &result.outcome) {
            (10, Some(Outcome::Error(e))) => assert_eq!(
                (result.request_id.as_str(), e.code),
                ("req-unknown", Code::NotFound as i32)
            ),
            (i, Some(Outcome::Error(e))) if i % 3 == 0 => {
                assert_eq!(result.request_id, format!("req-{i}"));
                assert_eq!(e.code, Code::InvalidArgument as i32);
                assert_eq!(e.violations.len(), 1);
            }
            (i, Some(Outcome::Published(p))) if i % 3 != 0 => {
                assert_eq!(result.request_id, format!("req-{i}"));
                assert_eq!(p.placements.len(), 2);
                ok += 1;
            }
            other => panic!("unexpected result {other:?}"),
        }
    }
    assert_eq!(ok, 6);
    let city = read_records(&hub.bootstrap, &format!("t-city-{s}"), 6, WAIT).await;
    assert_eq!(city.len(), 6);
    assert_eq!(
        count_records(&hub.bootstrap, &format!("t-city-{s}")),
        6,
        "exactly the good records"
    );
}

#[tokio::test]
async fn a_batch_over_the_limits_is_refused_whole() {
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    let records = vec![record("dossier.sync", &citizen_dossier("H29-X")); 1001];
    let status = client
        .publish_batch(authed("q1-key", PublishBatchRequest { records }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("1001 records"),
        "{}",
        status.message()
    );

    // Payloads over the 16 MiB of a batch, in a message the transport still takes.
    let big = citizen_dossier(&"H".repeat(930 * 1024));
    let records = vec![record("dossier.sync", &big); 18];
    let status = client
        .publish_batch(authed("q1-key", PublishBatchRequest { records }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("payload bytes"),
        "{}",
        status.message()
    );
    // A message larger than a batch may be at all is refused from its frame header, unread.
    let records = vec![record("dossier.sync", &big); 20];
    let status = client
        .publish_batch(authed("q1-key", PublishBatchRequest { records }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(count_records(&hub.bootstrap, &format!("t-city-{s}")), 0);
}

#[tokio::test]
async fn an_idempotent_retry_writes_once_and_answers_the_first_result() {
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    let mut request = record("dossier.sync", &citizen_dossier("H29-IDEM"));
    request.idempotency_key = "q1-2026-11-28-0001".into();

    let first = client
        .publish(authed("q1-key", request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    // Retries, some concurrent, all answered from the first result.
    let retries = futures::future::join_all((0..5).map(|_| {
        let mut c = client.clone();
        let r = request.clone();
        async move { c.publish(authed("q1-key", r)).await.unwrap().into_inner() }
    }))
    .await;
    for retry in retries {
        assert!(retry.duplicate);
        assert_eq!(retry.record_id, first.record_id);
        assert_eq!(retry.placements, first.placements);
    }
    // Another idempotency key is another record.
    request.idempotency_key = "q1-2026-11-28-0002".into();
    let second = client
        .publish(authed("q1-key", request))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.record_id, first.record_id);

    read_records(&hub.bootstrap, &format!("t-city-{s}"), 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count_records(&hub.bootstrap, &format!("t-city-{s}")),
        2,
        "each idempotency key written once"
    );
    assert_eq!(count_records(&hub.bootstrap, &format!("t-national-{s}")), 2);
}

#[tokio::test]
async fn an_idempotency_key_is_forgotten_after_the_window_age_or_beyond_the_clients_share() {
    let s = unique();
    let config = mekong_gateway::GatewayConfig {
        idempotency: mekong_gateway::WindowSettings {
            max_entries: 100,
            max_entries_per_client: 2,
            max_age: Duration::from_secs(3),
        },
        ..Default::default()
    };
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &standard_resources(&s),
        config,
        mekong_kafka::ProducerSettings::default(),
    )
    .await;
    let mut client = hub.client().await;
    let mut publish = async |key: &str| {
        let mut request = record("dossier.sync", &citizen_dossier(&format!("H29-{key}")));
        request.idempotency_key = key.into();
        client
            .publish(authed("q1-key", request))
            .await
            .unwrap()
            .into_inner()
    };

    // Within the age, a retry is answered from the window.
    let first = publish("age").await;
    assert!(publish("age").await.duplicate);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Past it, the key is forgotten: written again, under the same record id.
    let again = publish("age").await;
    assert!(!again.duplicate, "remembered beyond the window's age");
    assert_eq!(again.record_id, first.record_id);

    // q1 may hold two keys: a third pushes out its oldest ("age", just written again).
    assert!(!publish("two").await.duplicate);
    assert!(!publish("three").await.duplicate);
    assert!(publish("three").await.duplicate);
    assert!(!publish("age").await.duplicate, "beyond the client's share");

    let city = format!("t-city-{s}");
    read_records(&hub.bootstrap, &city, 5, WAIT).await;
    assert_eq!(count_records(&hub.bootstrap, &city), 5);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_stream_of_thousands_answers_every_record_by_request_id() {
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    const N: usize = 5000;
    // Every 10th record is invalid, so results of both kinds interleave.
    let requests = futures::stream::iter((0..N).map(|i| {
        let payload = if i % 10 == 7 {
            b"[]".to_vec()
        } else {
            citizen_dossier(&format!("H29-S{i}"))
        };
        PublishRequest {
            request_id: format!("r{i}"),
            ..record("dossier.sync", &payload)
        }
    }));
    let mut results = client
        .publish_stream(authed("q1-key", requests))
        .await
        .unwrap()
        .into_inner();
    let mut seen = HashMap::new();
    while let Some(result) = results.next().await {
        let result = result.expect("stream item");
        let ok = matches!(result.outcome, Some(Outcome::Published(_)));
        assert!(
            seen.insert(result.request_id.clone(), ok).is_none(),
            "one result per request id"
        );
    }
    assert_eq!(seen.len(), N, "a result for every record");
    for (id, ok) in &seen {
        let i: usize = id[1..].parse().unwrap();
        assert_eq!(*ok, i % 10 != 7, "record {id}");
    }
    let good = N - N / 10;
    assert_eq!(
        count_records(&hub.bootstrap, &format!("t-city-{s}")),
        good as i64
    );
}

#[tokio::test]
async fn a_record_at_the_size_limit_is_written() {
    // The producer and the topics the hub creates are sized for the hub's own limit plus key and
    // headers, so a payload right at the limit is not refused further down.
    let (hub, s) = TestHub::start().await;
    let mut client = hub.client().await;
    let limit = mekong_gateway::GatewayConfig::default()
        .limits
        .max_record_bytes;
    let head = r#"{"MaHoSo":"H29-BIG","LoaiDoiTuong":2,"NgayTiepNhan":"20261128083000","GhiChu":""#;
    let payload = format!("{head}{}\"}}", "x".repeat(limit - head.len() - 2));
    assert_eq!(payload.len(), limit);
    let mut request = record("dossier.sync", payload.as_bytes());
    request.attributes = (0..mekong_core::MAX_ATTRIBUTES)
        .map(|i| {
            (
                format!("a{i}"),
                "v".repeat(mekong_core::MAX_ATTRIBUTE_VALUE_BYTES),
            )
        })
        .collect();
    client
        .publish(authed("q1-key", request))
        .await
        .expect("a record at the limit is written");
    let m = &read_records(&hub.bootstrap, &format!("t-city-{s}"), 1, WAIT).await[0];
    assert_eq!(m.payload().map(<[u8]>::len), Some(limit));
}

#[tokio::test]
async fn health_and_reflection_are_served_for_standard_tools() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let (hub, _) = TestHub::start().await;
    let channel = hub.channel().await;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "mekong.v1.IngestService".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);

    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = futures::stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "google.rpc.BadRequest".into(),
        )),
    ]);
    // Reflection is for callers with credentials (--reflection authenticated, the default).
    let anonymous = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(futures::stream::iter([ask(MessageRequest::ListServices(
            String::new(),
        ))]))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(authed("reader-key", requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("a service list")
    };
    let names: HashSet<_> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "mekong.v1.IngestService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(service), "{service} in {names:?}");
    }
    // Error details are decodable by reflection-driven tools such as grpcurl.
    let details = answers.next().await.unwrap().unwrap().message_response;
    assert!(
        matches!(details, Some(MessageResponse::FileDescriptorResponse(_))),
        "{details:?}"
    );
}

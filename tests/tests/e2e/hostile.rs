//! A hostile client's probes against a hub on a real broker, each answered as the hardening asks:
//! nothing learnt of forbidden types, calls refused from their headers, open streams ended when
//! their key or right is withdrawn, subscriptions bounded, groups that cannot collide, payloads that
//! mean one thing, redaction that covers the key, rules that cannot stall the hub, refusals that do
//! not echo what they refuse, idempotency keys that cannot lose a record, partial writes reported,
//! adapters held to the operator's secrets and networks, dead letters read a page at a time.
//! (Floods measured in memory and threads of a served binary: crates/mekong/tests/e2e/floods.rs.)

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mekong_gateway::{GatewayConfig, JudgeSettings, Reflection};
use mekong_kafka::ProducerSettings;
use mekong_proto::v1::admin_service_client::AdminServiceClient;
use mekong_proto::v1::{
    ApplyRequest, ListDeadLettersRequest, PublishBatchRequest, PublishRequest, SourceText,
    publish_result::Outcome,
};
use mekong_tests::subscriber::{Consumer, subscription};
use mekong_tests::targets::{Reply, Target};
use mekong_tests::*;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(30);

fn sha(key: &str) -> String {
    hex::encode(mekong_core::hash_api_key(key).0)
}

/// The standard resources and what the probes need: a fee record type (a minimum, a pattern), two
/// subscribers whose names and groups once made one Kafka group, a subscriber limited to two
/// streams, and a record type with a big payload routed to two topics.
fn resources(s: &str) -> String {
    format!(
        "{}\n---\n\
         kind: RecordType\nname: dossier.fee\nkey: /MaHoSo\nschema:\n  type: object\n  required: [MaHoSo, TongTien]\n  properties:\n    MaHoSo: {{type: string}}\n    TongTien: {{type: integer, minimum: 0}}\n    SoDienThoai: {{type: string, pattern: \"^[0-9]{{10}}$\"}}\n    L: {{type: array, items: {{type: integer}}}}\n---\n\
         kind: Route\nname: fees\nmatch: {{types: [dossier.fee]}}\nto: [{{topic: t-fee-{s}}}]\n---\n\
         kind: Client\nname: a\nroles: [subscriber]\napiKeys: [{{sha256: {}}}]\nsubscribe: [t-city-{s}]\n---\n\
         kind: Client\nname: a.b\nroles: [subscriber]\napiKeys: [{{sha256: {}}}]\nsubscribe: [t-city-{s}]\n---\n\
         kind: Client\nname: limited\nroles: [subscriber]\napiKeys: [{{sha256: {}}}]\nsubscribe: [t-city-{s}]\nlimits: {{maxSubscriptions: 2}}\n",
        standard_resources(s),
        sha("a-key"),
        sha("ab-key"),
        sha("limited-key"),
    )
}

async fn hub_with(config: GatewayConfig) -> (TestHub, String) {
    let s = unique();
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &resources(&s),
        config,
        ProducerSettings::default(),
    )
    .await;
    (hub, s)
}

async fn hub() -> (TestHub, String) {
    hub_with(GatewayConfig::default()).await
}

async fn apply(hub: &TestHub, text: &str) -> Result<(), tonic::Status> {
    AdminServiceClient::new(hub.channel().await)
        .max_encoding_message_size(64 << 20)
        .apply(authed(
            "admin-key",
            ApplyRequest {
                sources: vec![SourceText {
                    name: "probe.yaml".into(),
                    text: text.into(),
                }],
                ..Default::default()
            },
        ))
        .await
        .map(drop)
}

#[tokio::test]
async fn a_publisher_learns_nothing_of_the_types_it_may_not_publish() {
    let (hub, _) = hub().await;
    let mut client = hub.client().await;
    // q1 may publish dossier.* and tax.*: payment.completed exists, payment.nothing does not.
    let mut answers = Vec::new();
    for record_type in ["payment.completed", "payment.nothing"] {
        let status = client
            .publish(authed("q1-key", record(record_type, b"{}")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        answers.push(status.message().replace(record_type, "T"));
    }
    assert_eq!(
        answers[0], answers[1],
        "the same answer, whether the type exists or not"
    );
}

#[tokio::test]
async fn calls_are_refused_from_their_headers_with_limits_per_method() {
    let (hub, s) = hub().await;
    let channel = hub.channel().await;
    let big = "x".repeat(5 << 20);
    let apply = |key: Option<&'static str>| {
        let mut admin =
            AdminServiceClient::new(channel.clone()).max_encoding_message_size(64 << 20);
        let request = ApplyRequest {
            sources: vec![SourceText {
                name: "big.yaml".into(),
                text: big.clone(),
            }],
            ..Default::default()
        };
        async move {
            match key {
                Some(key) => admin.apply(authed(key, request)).await,
                None => admin.apply(request).await,
            }
            .unwrap_err()
        }
    };
    assert_eq!(apply(None).await.code(), Code::Unauthenticated);
    assert_eq!(
        apply(Some("nobody-key")).await.code(),
        Code::Unauthenticated
    );
    // A publisher's key does not open the admin service, whatever it sends.
    let wrong_role = apply(Some("q1-key")).await;
    assert_eq!(wrong_role.code(), Code::PermissionDenied, "{wrong_role:?}");
    // An admin's Apply is held to --max-admin-bytes (4 MiB).
    let too_big = apply(Some("admin-key")).await;
    assert_eq!(too_big.code(), Code::OutOfRange, "{too_big:?}");

    // Publish takes one record (1 MiB + 64 KiB of headroom); the same record in a batch reaches the
    // hub's own per-record check.
    let payload = format!(
        r#"{{"MaHoSo":"H-BIG","GhiChu":"{}"}}"#,
        "x".repeat(1100 * 1024)
    );
    let mut client = hub.client().await;
    let one = client
        .publish(authed("q1-key", record("dossier.sync", payload.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(one.code(), Code::OutOfRange, "{one:?}");
    let batch = client
        .publish_batch(authed(
            "q1-key",
            PublishBatchRequest {
                records: vec![record("dossier.sync", payload.as_bytes())],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    match &batch.results[0].outcome {
        Some(Outcome::Error(e)) => assert_eq!(e.code, Code::ResourceExhausted as i32, "{e:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count_records(&hub.bootstrap, &format!("t-city-{s}")), 0);
}

#[tokio::test]
async fn reflection_is_public_authenticated_or_off_as_the_operator_says() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let list = || {
        futures::stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };
    for (reflection, anonymous, with_key) in [
        (Reflection::Public, Ok(()), Ok(())),
        (
            Reflection::Authenticated,
            Err(Code::Unauthenticated),
            Ok(()),
        ),
        (
            Reflection::Off,
            Err(Code::Unauthenticated),
            Err(Code::Unimplemented),
        ),
    ] {
        let (hub, _) = hub_with(GatewayConfig {
            reflection,
            ..GatewayConfig::default()
        })
        .await;
        let mut client = ServerReflectionClient::new(hub.channel().await);
        let asked =
            |r: Result<tonic::Response<_>, tonic::Status>| r.map(drop).map_err(|s| s.code());
        assert_eq!(
            asked(client.server_reflection_info(list()).await),
            anonymous,
            "{reflection:?} without a key"
        );
        assert_eq!(
            asked(
                client
                    .server_reflection_info(authed("reader-key", list()))
                    .await
            ),
            with_key,
            "{reflection:?} with a key"
        );
        hub.shutdown().await;
    }
}

#[tokio::test]
async fn a_withdrawn_key_or_right_ends_open_streams_within_a_second() {
    let (hub, s) = hub().await;
    // A PublishStream and a Consume stream, both working.
    let (records, inbound) = tokio::sync::mpsc::channel::<PublishRequest>(16);
    let mut results = hub
        .client()
        .await
        .publish_stream(authed("q1-key", ReceiverStream::new(inbound)))
        .await
        .unwrap()
        .into_inner();
    records
        .send(record("dossier.sync", &citizen_dossier(&format!("R1-{s}"))))
        .await
        .unwrap();
    let first = results.next().await.unwrap().unwrap();
    assert!(
        matches!(first.outcome, Some(Outcome::Published(_))),
        "{first:?}"
    );
    let mut reader = Consumer::open(
        &hub,
        "reader-key",
        subscription(&format!("t-city-{s}"), &format!("g-{s}")),
    )
    .await
    .unwrap();
    assert!(reader.next(WAIT).await.is_some(), "the reader reads");

    // q1's key is rotated; the reader may no longer read the topic.
    apply(
        &hub,
        &format!(
            "kind: Client\nname: q1\nroles: [publisher]\napiKeys: [{{sha256: {}}}]\npublish: [\"dossier.*\", \"tax.*\"]\n---\n\
             kind: Client\nname: reader\nroles: [subscriber]\napiKeys: [{{sha256: {}}}]\nsubscribe: [t-fee-{s}]\n",
            sha("q1-key-2"),
            sha("reader-key"),
        ),
    )
    .await
    .unwrap();
    let applied = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(1), results.next())
        .await
        .expect("the publish stream ends within a second");
    let status = ended.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let ended = tokio::time::timeout(
        Duration::from_secs(1).saturating_sub(applied.elapsed()),
        reader.records.next(),
    )
    .await
    .expect("the subscription ends within a second");
    let status = ended.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // The old key opens nothing any more; the new one publishes.
    let mut client = hub.client().await;
    let old = client
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier("R2")),
        ))
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated);
    client
        .publish(authed(
            "q1-key-2",
            record("dossier.sync", &citizen_dossier("R3")),
        ))
        .await
        .unwrap();
    drop(records);
}

#[tokio::test]
async fn subscriptions_are_bounded_per_client_and_per_instance() {
    let (hub, s) = hub_with(GatewayConfig {
        max_subscriptions: 3,
        ..GatewayConfig::default()
    })
    .await;
    let topic = format!("t-city-{s}");
    let first = Consumer::open(
        &hub,
        "limited-key",
        subscription(&topic, &format!("g1-{s}")),
    )
    .await
    .unwrap();
    let _second = Consumer::open(
        &hub,
        "limited-key",
        subscription(&topic, &format!("g2-{s}")),
    )
    .await
    .unwrap();
    let third = Consumer::open(
        &hub,
        "limited-key",
        subscription(&topic, &format!("g3-{s}")),
    )
    .await
    .err()
    .expect("a third stream is over the client's limit of 2");
    assert_eq!(third.code(), Code::ResourceExhausted);
    let quota = third
        .get_details_quota_failure()
        .expect("a QuotaFailure detail");
    assert_eq!(quota.violations[0].subject, "client:limited");
    // A place given back is a place again.
    first.close().await;
    let _again = Consumer::open(
        &hub,
        "limited-key",
        subscription(&topic, &format!("g3-{s}")),
    )
    .await
    .unwrap();

    // The instance holds three in all: once they are open, another client's first is refused too.
    let _third = Consumer::open(&hub, "a-key", subscription(&topic, &format!("g-{s}")))
        .await
        .unwrap();
    let instance = Consumer::open(&hub, "ab-key", subscription(&topic, &format!("g-{s}")))
        .await
        .err()
        .expect("over the instance's limit of 3");
    assert_eq!(instance.code(), Code::ResourceExhausted);
    assert_eq!(
        instance.get_details_quota_failure().unwrap().violations[0].subject,
        "instance"
    );
}

#[tokio::test]
async fn the_groups_of_two_clients_never_collide() {
    let (hub, s) = hub().await;
    let topic = format!("t-city-{s}");
    // Client `a` with group `b.g` and client `a.b` with group `g` once shared one Kafka group and
    // split its records between them.
    let mut a = Consumer::open(&hub, "a-key", subscription(&topic, &format!("b.g-{s}")))
        .await
        .unwrap();
    let mut ab = Consumer::open(&hub, "ab-key", subscription(&topic, &format!("g-{s}")))
        .await
        .unwrap();
    let mut client = hub.client().await;
    let mut published = HashSet::new();
    for i in 0..12 {
        let answer = client
            .publish(authed(
                "q1-key",
                record("dossier.sync", &citizen_dossier(&format!("G{i}-{s}"))),
            ))
            .await
            .unwrap()
            .into_inner();
        published.insert(answer.record_id);
    }
    for (name, consumer) in [("a", &mut a), ("a.b", &mut ab)] {
        let mut seen = HashSet::new();
        let deadline = Instant::now() + WAIT;
        while seen.len() < published.len() && Instant::now() < deadline {
            if let Some(r) = consumer.next(Duration::from_secs(1)).await {
                consumer.ack(std::slice::from_ref(&r)).await;
                seen.insert(r.record_id);
            }
        }
        assert_eq!(
            seen, published,
            "client `{name}` reads every record in its own group"
        );
    }
}

#[tokio::test]
async fn a_payload_means_one_thing_and_attributes_are_printable() {
    let (hub, s) = hub().await;
    let mut client = hub.client().await;
    let mut refused = async |request: PublishRequest| {
        client.publish(authed("q1-key", request)).await.unwrap_err()
    };
    // The schema would judge the last TongTien (16000) while the copy carried the first (-999999).
    let twice = refused(record(
        "dossier.fee",
        br#"{"TongTien":-999999,"MaHoSo":"F1","TongTien":16000}"#,
    ))
    .await;
    assert_eq!(twice.code(), Code::InvalidArgument);
    let field = &twice.get_details_bad_request().unwrap().field_violations[0].field;
    assert_eq!(field, "/TongTien");
    let huge = refused(record(
        "dossier.fee",
        br#"{"MaHoSo":"F2","TongTien":1e400}"#,
    ))
    .await;
    assert_eq!(huge.code(), Code::InvalidArgument);
    let mut broken = record("dossier.fee", br#"{"MaHoSo":"F3","TongTien":1}"#);
    broken.attributes = [("note".to_string(), "line one\nline two".to_string())].into();
    assert_eq!(refused(broken).await.code(), Code::InvalidArgument);
    assert_eq!(count_records(&hub.bootstrap, &format!("t-fee-{s}")), 0);
}

#[tokio::test]
async fn a_route_may_not_redact_the_field_its_copies_are_keyed_by() {
    let (hub, s) = hub().await;
    let refused = apply(
        &hub,
        &format!(
            "kind: Route\nname: leaky\nmatch: {{types: [dossier.sync]}}\nto: [{{topic: t-leak-{s}, redact: [/MaHoSo]}}]\n"
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("to[0].redact[0]")
            && refused.message().contains("partition key"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn rules_that_could_stall_the_hub_are_refused_or_cut_short() {
    let (hub, s) = hub_with(GatewayConfig {
        judge: JudgeSettings {
            threads: 2,
            max_time: Duration::from_millis(2),
        },
        ..GatewayConfig::default()
    })
    .await;
    // A back-reference pattern (11.8 s for one 7 KB record on a backtracking engine) is refused.
    let pattern = apply(
        &hub,
        "kind: RecordType\nname: dossier.slow\nschema: {type: string, pattern: '^(a+)+\\1$'}\n",
    )
    .await
    .unwrap_err();
    assert_eq!(pattern.code(), Code::InvalidArgument);
    assert!(
        pattern.message().contains("back-references"),
        "{}",
        pattern.message()
    );
    // So is a condition whose cost grows with the square of the payload.
    let quadratic = apply(
        &hub,
        &format!(
            "kind: Route\nname: slow\nmatch: {{types: [dossier.fee], when: 'data.L.all(x, x in data.L)'}}\nto: [{{topic: t-slow-{s}}}]\n"
        ),
    )
    .await
    .unwrap_err();
    assert!(
        quadratic.message().contains("square"),
        "{}",
        quadratic.message()
    );

    // A record that takes longer to judge than allowed (2 ms here: 100,000 numbers, each checked)
    // is refused at the deadline, naming the rule, while the hub answers everything else.
    let numbers: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let payload = format!(
        r#"{{"MaHoSo":"SLOW","TongTien":1,"L":[{}]}}"#,
        numbers.join(",")
    );
    let mut client = hub.client().await;
    let slow = tokio::spawn(async move {
        client
            .publish(authed("q1-key", record("dossier.fee", payload.as_bytes())))
            .await
    });
    let health = tonic_health::pb::health_client::HealthClient::new(hub.channel().await)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "{health:?}");
    let status = slow.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("took longer than 2ms"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("dossier.fee") || status.message().contains("parsing"),
        "names the rule: {}",
        status.message()
    );
    assert_eq!(count_records(&hub.bootstrap, &format!("t-fee-{s}")), 0);
}

#[tokio::test]
async fn refusals_quote_little_and_the_audit_trail_keeps_no_value() {
    let (hub, s) = hub().await;
    let mut client = hub.client().await;
    let phone = format!("PHONE-{s}-{}", "9".repeat(100_000));
    let key = format!("ECHO-{s}");
    let wrong: Vec<String> = (0..5000).map(|i| format!("\"w{i}\"")).collect();
    let payload = format!(
        r#"{{"MaHoSo":"{key}","TongTien":1,"SoDienThoai":"{phone}","L":[{}]}}"#,
        wrong.join(",")
    );
    let status = client
        .publish(authed("q1-key", record("dossier.fee", payload.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.details();
    assert!(
        status.message().len() + details.len() < 8 * 1024,
        "message {} and details {} bytes: far below the 16 KiB gRPC clients accept",
        status.message().len(),
        details.len()
    );
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 10);
    assert!(
        status.message().contains("5001 violations"),
        "{}",
        status.message()
    );
    let about_phone = violations
        .iter()
        .find(|v| v.field == "/SoDienThoai")
        .expect("the phone's violation is among the first listed");
    assert!(
        about_phone.description.len() < 400,
        "{}",
        about_phone.description
    );

    // The audit trail records the refusal by key, without any part of the value.
    let events = audit_events(&hub.bootstrap, 1, |e| {
        e["event"] == "record.rejected" && e["key"] == key.as_str()
    })
    .await;
    let text = events[0].to_string();
    assert!(!text.contains(&format!("PHONE-{s}")), "{text}");
    assert!(!text.contains("\"w1\""), "{text}");
}

#[tokio::test]
async fn an_idempotency_key_used_for_another_record_is_refused() {
    let (hub, s) = hub().await;
    let mut client = hub.client().await;
    let publish = |payload: &str| {
        let mut request = record("dossier.fee", payload.as_bytes());
        request.idempotency_key = format!("fee-{s}");
        authed("q1-key", request)
    };
    let first = client
        .publish(publish(r#"{"MaHoSo":"K1","TongTien":5}"#))
        .await
        .unwrap()
        .into_inner();
    let other = client
        .publish(publish(r#"{"MaHoSo":"K2","TongTien":7}"#))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");
    assert!(other.message().contains("already used for another record"));
    let retry = client
        .publish(publish(r#"{"MaHoSo":"K1","TongTien":5}"#))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.duplicate);
    assert_eq!(retry.record_id, first.record_id);
    assert_eq!(count_records(&hub.bootstrap, &format!("t-fee-{s}")), 1);
}

#[tokio::test]
async fn a_partial_write_says_where_the_copies_landed() {
    let s = unique();
    let small = format!("t-small-{s}");
    // A destination that takes only small messages, made before the hub starts.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new(&small, 1, TopicReplication::Fixed(1))
                .set("max.message.bytes", "2000")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let yaml = format!(
        "{}\n---\nkind: Route\nname: small\nmatch: {{types: [dossier.fee]}}\nto: [{{topic: {small}}}]\n",
        resources(&s)
    );
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &yaml,
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await;
    let payload = format!(
        r#"{{"MaHoSo":"P-{s}","TongTien":1,"L":[{}]}}"#,
        vec!["1"; 2000].join(",")
    );
    let status = hub
        .client()
        .await
        .publish(authed("q1-key", record("dossier.fee", payload.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "PARTIAL_WRITE");
    assert!(
        info.metadata["landed"].starts_with(&format!("t-fee-{s}/")),
        "{info:?}"
    );
    assert_eq!(count_records(&hub.bootstrap, &format!("t-fee-{s}")), 1);
    // Lineage calls it what it is: a partial write, with the copy that landed.
    let events = audit_events(&hub.bootstrap, 1, |e| {
        e["key"] == format!("P-{s}").as_str() && e["event"] != "record.accepted"
    })
    .await;
    assert_eq!(events[0]["event"], "record.partial", "{:?}", events[0]);
    assert_eq!(
        events[0]["copies"][0]["topic"],
        format!("t-fee-{s}").as_str()
    );
}

/// A webhook adapter `hook` from t-fee to `target`, its bearer token read from `token`.
fn hook(s: &str, name: &str, target: &str, token: &str, retry: &str) -> String {
    format!(
        "kind: Adapter\nname: {name}-{s}\ntype: webhook\nfrom: [t-fee-{s}]\nendpoint: \"{target}\"\nauth: {{bearerToken: \"{token}\"}}\nretry: {retry}\n"
    )
}

fn token_file(s: &str) -> String {
    let dir = test_secrets_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("token-{s}"));
    std::fs::write(&path, "hook-token\n").unwrap();
    format!("file:{}", path.display())
}

#[tokio::test]
async fn adapters_read_only_the_secrets_and_reach_only_the_networks_the_operator_allows() {
    let s = unique();
    let (allowed, host_file, environment, redirected, elsewhere) = (
        Target::webhook().await,
        Target::webhook().await,
        Target::webhook().await,
        Target::webhook().await,
        Target::webhook().await,
    );
    redirected.script("", [Reply::Redirect(elsewhere.url("/hook"))]);
    let retry = "{maxAttempts: 1}";
    let yaml = [
        resources(&s),
        hook(&s, "allowed", &allowed.url("/hook"), &token_file(&s), retry),
        // Any file of the host, sent to any URL: what an admin key could once do.
        hook(
            &s,
            "host-file",
            &host_file.url("/hook"),
            "file:/etc/hostname",
            retry,
        ),
        hook(
            &s,
            "environment",
            &environment.url("/hook"),
            "env:PATH",
            retry,
        ),
        hook(
            &s,
            "redirected",
            &redirected.url("/hook"),
            &token_file(&s),
            retry,
        ),
    ]
    .join("\n---\n");
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &yaml,
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await;
    hub.client()
        .await
        .publish(authed(
            "q1-key",
            record("dossier.fee", br#"{"MaHoSo":"A1","TongTien":1}"#),
        ))
        .await
        .unwrap();
    allowed
        .wait_for("the allowed adapter delivers", WAIT, |r| !r.is_empty())
        .await;
    assert_eq!(
        allowed.received()[0].header("authorization").as_deref(),
        Some("Bearer hook-token")
    );
    // The redirect is not followed: the record is dead-lettered, and `elsewhere` hears nothing.
    redirected
        .wait_for("the redirect", WAIT, |r| !r.is_empty())
        .await;
    let mut admin = hub.admin().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let letters = admin
            .list_dead_letters(authed(
                "admin-key",
                ListDeadLettersRequest {
                    adapter: format!("redirected-{s}"),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if let Some(letter) = letters.first() {
            assert_eq!(letter.last_status, "302");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the redirected record is dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The adapters whose secrets the operator did not allow never started: nothing reached them.
    assert!(host_file.received().is_empty());
    assert!(environment.received().is_empty());
    assert!(elsewhere.received().is_empty());
    hub.shutdown().await;

    // On a hub that does not allow loopback, even a good adapter reaches nothing there.
    let s2 = unique();
    let strict_target = Target::webhook().await;
    let strict = TestHub::start_with_policy(
        &kafka_bootstrap(),
        &format!("_mekong.resources.test-{s2}"),
        Some(
            &[
                resources(&s2),
                hook(
                    &s2,
                    "loopback",
                    &strict_target.url("/hook"),
                    &token_file(&s2),
                    retry,
                ),
            ]
            .join("\n---\n"),
        ),
        GatewayConfig::default(),
        ProducerSettings::default(),
        mekong_adapters::AdapterPolicy {
            secrets_dirs: vec![test_secrets_dir()],
            ..Default::default()
        },
    )
    .await;
    strict
        .client()
        .await
        .publish(authed(
            "q1-key",
            record("dossier.fee", br#"{"MaHoSo":"A2","TongTien":1}"#),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        strict_target.received().is_empty(),
        "nothing reaches a loopback target"
    );
}

#[tokio::test]
async fn a_record_no_request_can_be_made_of_is_dead_lettered_at_once() {
    let s = unique();
    let target = Target::webhook().await;
    let yaml = [
        resources(&s),
        hook(
            &s,
            "strict",
            &target.url("/hook"),
            &token_file(&s),
            "{maxAttempts: 10, initialBackoff: 5s}",
        ),
    ]
    .join("\n---\n");
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &yaml,
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await;
    // A record written straight to Kafka (by an older hub, or another producer) with an attribute
    // that cannot be an HTTP header value.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .unwrap();
    let headers = rdkafka::message::OwnedHeaders::new()
        .insert(rdkafka::message::Header {
            key: "ce_id",
            value: Some("bad-1"),
        })
        .insert(rdkafka::message::Header {
            key: "ce_type",
            value: Some("dossier.fee"),
        })
        .insert(rdkafka::message::Header {
            key: "ce_note",
            value: Some("line\nbreak"),
        });
    producer
        .send(
            FutureRecord::to(&format!("t-fee-{s}"))
                .key("BAD")
                .payload(br#"{"MaHoSo":"BAD","TongTien":1}"#.as_slice())
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut admin = hub.admin().await;
    let letter = loop {
        let letters = admin
            .list_dead_letters(authed(
                "admin-key",
                ListDeadLettersRequest {
                    adapter: format!("strict-{s}"),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if let Some(letter) = letters.into_iter().next() {
            break letter;
        }
        assert!(started.elapsed() < WAIT, "dead-lettered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(letter.attempts, 1, "not retried: {letter:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not after a backoff"
    );
    assert!(target.received().is_empty());
}

#[tokio::test]
async fn dead_letters_are_listed_a_page_at_a_time() {
    let s = unique();
    let target = Target::webhook().await;
    target.script("", (0..5).map(|_| Reply::Status(422, None)));
    let yaml = [
        resources(&s),
        hook(
            &s,
            "paged",
            &target.url("/hook"),
            &token_file(&s),
            "{maxAttempts: 1}",
        ),
    ]
    .join("\n---\n");
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &yaml,
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await;
    let mut client = hub.client().await;
    for i in 0..5 {
        client
            .publish(authed(
                "q1-key",
                record(
                    "dossier.fee",
                    format!(r#"{{"MaHoSo":"D{i}","TongTien":1}}"#).as_bytes(),
                ),
            ))
            .await
            .unwrap();
    }
    target
        .wait_for("five refusals", WAIT, |r| r.len() >= 5)
        .await;
    let admin = hub.admin().await;
    let page = |token: String| {
        let mut admin = admin.clone();
        let adapter = format!("paged-{s}");
        async move {
            admin
                .list_dead_letters(authed(
                    "admin-key",
                    ListDeadLettersRequest {
                        adapter,
                        page_size: 2,
                        page_token: token,
                    },
                ))
                .await
        }
    };
    // Wait for all five, then walk the pages.
    let deadline = Instant::now() + WAIT;
    let mut sizes = Vec::new();
    while Instant::now() < deadline {
        sizes.clear();
        let mut token = String::new();
        loop {
            let answer = page(token).await.unwrap().into_inner();
            sizes.push(answer.dead_letters.len());
            if answer.next_page_token.is_empty() {
                break;
            }
            token = answer.next_page_token;
        }
        if sizes.iter().sum::<usize>() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sizes, [2, 2, 1]);
    let bad = page("not-a-token".into()).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn yaml_that_expands_without_bound_is_refused() {
    let (hub, _) = hub().await;
    let bomb = format!(
        "kind: RecordType\nname: bomb\nschema: {{type: object}}\na: &a [{}]\nb: [{}]\n",
        vec!["x"; 2000].join(","),
        vec!["*a"; 2000].join(",")
    );
    let refused = apply(&hub, &bomb).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("too many values"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn a_refused_change_with_many_problems_fits_its_trailers() {
    let (hub, _) = hub().await;
    let many: Vec<String> = (0..200)
        .map(|i| format!("kind: RecordType\nname: broken-{i}\nschema: {{type: strng}}\n"))
        .collect();
    let refused = apply(&hub, &many.join("---\n")).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("200 problems"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("and 190 more"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().len() + refused.details().len() < 8 * 1024,
        "{} + {} bytes",
        refused.message().len(),
        refused.details().len()
    );
}

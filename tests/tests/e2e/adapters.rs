//! Delivery adapters against the real broker and real local HTTP servers that act like the targets:
//! the exact body the national portal expects, retries (portal error codes, 5xx, 429 with
//! Retry-After, timeouts), session expiry, dead letters with their reasons and their replay, order
//! per key while another key fails, webhooks as CloudEvents with signatures, and refused adapters.

use std::time::Duration;

use mekong_gateway::GatewayConfig;
use mekong_kafka::ProducerSettings;
use mekong_proto::v1::{
    ApplyRequest, ListDeadLettersRequest, ReplayDeadLettersRequest, SourceText,
};
use mekong_tests::targets::{Reply, SESSION_EXPIRED, Target};
use mekong_tests::{
    TestHub, authed, citizen_dossier, header, kafka_bootstrap, read_records, record, secret_file,
    standard_resources, unique,
};
use serde_json::{Value, json};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

/// The standard resources, a dossier.progress type routed to its own topic, and a portal adapter
/// reading the national dossier topic and the progress topic.
fn portal_resources(s: &str, portal: &Target, retry: &str) -> String {
    format!(
        r#"{standard}
---
kind: RecordType
name: dossier.progress
key: /MaHoSo
schema: {{type: object, required: [MaHoSo]}}
---
kind: Route
name: progress
match: {{types: [dossier.progress]}}
to: [{{topic: "t-progress-{s}"}}]
---
kind: Adapter
name: portal-{s}
type: dvcqg
from: ["t-national-{s}", "t-progress-{s}"]
endpoint: "{api}"
timeout: 1s
concurrency: 4
retry: {retry}
unitCode: "000.00.01.H29"
retryableErrorCodes: ["99"]
sessionErrorCodes: ["{SESSION_EXPIRED}"]
auth:
  loginEndpoint: "{login}"
  username: "{user}"
  password: "{password}"
"#,
        standard = standard_resources(s),
        api = portal.url("/api"),
        login = portal.url("/login"),
        user = secret_file("portal-user", "mekong"),
        password = secret_file("portal-password", "portal-password"),
    )
}

const QUICK_RETRY: &str = "{maxAttempts: 5, initialBackoff: 100ms, maxBackoff: 400ms}";

async fn portal_hub(retry: &str) -> (TestHub, Target, String) {
    let portal = Target::portal().await;
    let s = unique();
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &portal_resources(&s, &portal, retry),
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await;
    (hub, portal, s)
}

async fn publish(hub: &TestHub, record_type: &str, payload: &[u8]) -> String {
    hub.client()
        .await
        .publish(authed("q1-key", record(record_type, payload)))
        .await
        .expect("published")
        .into_inner()
        .record_id
}

/// Calls that reached the portal with a valid session (not the ones it refused as expired).
fn accepted(received: &[mekong_tests::targets::Received]) -> Vec<Value> {
    received
        .iter()
        .filter(|r| r.reply != "session expired")
        .map(|r| r.json())
        .collect()
}

/// Audit events of one record, in order.
/// Audit events of one record's deliveries, in order (its `record.accepted` and `record.placed`
/// events, written by the gateway, are checked to be there and left out).
async fn audit_events(bootstrap: &str, record_id: &str, expected: usize) -> Vec<Value> {
    let events =
        mekong_tests::audit_events(bootstrap, expected + 2, |e| e["recordId"] == record_id).await;
    let gateway = |e: &Value| e["event"] == "record.accepted" || e["event"] == "record.placed";
    let written: Vec<&Value> = events.iter().filter(|e| gateway(e)).collect();
    assert_eq!(written.len(), 2, "the gateway's lineage events: {events:?}");
    events.into_iter().filter(|e| !gateway(e)).collect()
}

#[tokio::test]
async fn the_portal_gets_the_exact_calls_it_expects_after_one_login() {
    let (hub, portal, s) = portal_hub(QUICK_RETRY).await;
    let ma_ho_so = format!("H29-{s}");
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut request = authed(
        "q1-key",
        record("dossier.sync", &citizen_dossier(&ma_ho_so)),
    );
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    hub.client()
        .await
        .publish(request)
        .await
        .expect("published");
    let progress = format!(
        r#"{{"MaHoSo":"{ma_ho_so}","NguoiXuLy":"Trần Thị Bích","ThoiDiemXuLy":"2026-11-28T07:30:00Z","TrangThai":4,"NoiBo":"x"}}"#
    );
    publish(&hub, "dossier.progress", progress.as_bytes()).await;

    let received = portal
        .wait_for("two calls", WAIT, |r| accepted(r).len() >= 2)
        .await;
    let calls = accepted(&received);
    assert_eq!(portal.logins(), 1, "one session, reused");
    let traced = received
        .iter()
        .find(|r| r.json()["service"] == "DongBoHoSoMC")
        .unwrap();
    assert_eq!(
        traced.header("traceparent").as_deref(),
        Some(traceparent),
        "the publisher's trace continues into the portal call"
    );
    let sync = calls
        .iter()
        .find(|c| c["service"] == "DongBoHoSoMC")
        .expect("a sync call");
    assert_eq!(
        sync,
        &json!({
            "session": "session-1",
            "madonvi": "000.00.01.H29",
            "service": "DongBoHoSoMC",
            "isUpdating": false,
            "data": [{
                "MaHoSo": ma_ho_so,
                "ChuHoSo": "Nguyễn Văn An",
                "LoaiDoiTuong": "1",
                "NgayTiepNhan": "20261128083000"
            }]
        }),
        "the national route's redacted copy, mapped field by field"
    );
    let step = calls
        .iter()
        .find(|c| c["service"] == "CapNhatTienDoHoSoMC")
        .expect("a progress call");
    assert_eq!(
        step,
        &json!({
            "session": "session-1",
            "madonvi": "000.00.01.H29",
            "service": "CapNhatTienDoHoSoMC",
            "data": [{
                "MaHoSo": ma_ho_so,
                "NguoiXuLy": "Trần Thị Bích",
                "ThoiDiemXuLy": "20261128143000",
                "TrangThai": "4"
            }]
        }),
        "dates in Asia/Ho_Chi_Minh yyyyMMddHHmmss, codes as strings, unknown fields left out"
    );
}

#[tokio::test]
async fn retryable_codes_5xx_429_and_timeouts_are_retried_until_delivered() {
    let (hub, portal, s) = portal_hub(QUICK_RETRY).await;
    let ma_ho_so = format!("R-{s}");
    portal.script(
        &ma_ho_so,
        [
            Reply::ErrorCode("99", "hệ thống bận"),
            Reply::Status(503, None),
            Reply::Delay(Duration::from_secs(5)),
            Reply::Status(429, Some(2)),
        ],
    );
    let record_id = publish(&hub, "dossier.sync", &citizen_dossier(&ma_ho_so)).await;
    let received = portal
        .wait_for("delivered after four failures", WAIT, |r| {
            r.iter().any(|c| c.reply == "Ok")
        })
        .await;
    let replies: Vec<&str> = received.iter().map(|r| r.reply.as_str()).collect();
    assert_eq!(
        replies,
        [
            "ErrorCode(\"99\", \"hệ thống bận\")",
            "Status(503, None)",
            "Status(429, Some(2))",
            "Ok"
        ],
        "the 5 s answer timed out (timeout 1s) and is not recorded as answered"
    );
    // Arrival to arrival: the retry policy alone would wait at most 400 ms here, so only the
    // target's Retry-After can make the gap 2 s.
    let after_429 = received[3].at.duration_since(received[2].at);
    assert!(
        after_429 >= Duration::from_secs(2),
        "Retry-After: 2 was honoured, waited {after_429:?}"
    );
    let events = audit_events(&hub.bootstrap, &record_id, 5).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "delivery.retried",
            "delivery.retried",
            "delivery.retried",
            "delivery.retried",
            "delivery.delivered"
        ]
    );
    assert_eq!(events[4]["attempt"], 5);
    assert!(
        events[2]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        events[2]
    );
}

type Admin = mekong_proto::v1::admin_service_client::AdminServiceClient<tonic::transport::Channel>;

async fn dead_letters(admin: &mut Admin, adapter: &str) -> Vec<mekong_proto::v1::DeadLetter> {
    let request = ListDeadLettersRequest {
        adapter: adapter.into(),
        ..Default::default()
    };
    let listed = admin.list_dead_letters(authed("admin-key", request)).await;
    listed.unwrap().into_inner().dead_letters
}

async fn replay_all(
    admin: &mut Admin,
    adapter: &str,
) -> mekong_proto::v1::ReplayDeadLettersResponse {
    let request = ReplayDeadLettersRequest {
        adapter: adapter.into(),
        all: true,
        ..Default::default()
    };
    let replayed = admin
        .replay_dead_letters(authed("admin-key", request))
        .await;
    replayed.unwrap().into_inner()
}

#[tokio::test]
async fn a_final_error_dead_letters_with_its_reason_and_a_replay_delivers_it() {
    let (hub, portal, s) = portal_hub(QUICK_RETRY).await;
    let ma_ho_so = format!("D-{s}");
    portal.script(&ma_ho_so, [Reply::ErrorCode("7", "Mã TTHC không tồn tại")]);
    let payload = citizen_dossier(&ma_ho_so);
    let record_id = publish(&hub, "dossier.sync", &payload).await;

    let dlq = format!("_mekong.dlq.portal-{s}");
    let letters = read_records(&hub.bootstrap, &dlq, 1, WAIT).await;
    let letter = &letters[0];
    use rdkafka::message::Message;
    assert_eq!(letter.key(), Some(ma_ho_so.as_bytes()));
    assert_eq!(header(letter, "ce_id").as_deref(), Some(record_id.as_str()));
    assert_eq!(
        header(letter, "mekong_dlq_attempts").as_deref(),
        Some("1"),
        "not retried"
    );
    assert_eq!(header(letter, "mekong_dlq_status").as_deref(), Some("200"));
    assert_eq!(
        header(letter, "mekong_dlq_error").as_deref(),
        Some("error_code 7: Mã TTHC không tồn tại")
    );
    assert!(
        header(letter, "mekong_dlq_source")
            .unwrap()
            .starts_with(&format!("t-national-{s}/"))
    );

    let mut admin = hub.admin().await;
    let listed = dead_letters(&mut admin, &format!("portal-{s}")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].record_id, record_id);
    assert!(!listed[0].replayed);

    // The portal knows the procedure now: a replay delivers it.
    let replayed = replay_all(&mut admin, &format!("portal-{s}")).await;
    assert_eq!(replayed.replayed, std::slice::from_ref(&record_id));
    portal
        .wait_for("the replayed record", WAIT, |r| {
            r.iter().any(|c| c.reply == "Ok")
        })
        .await;
    let listed = dead_letters(&mut admin, &format!("portal-{s}")).await;
    assert!(listed[0].replayed, "shown as replayed");
    let again = replay_all(&mut admin, &format!("portal-{s}")).await;
    assert!(
        again.replayed.is_empty(),
        "--all does not send a replayed letter twice"
    );
    // Named by its record id, a replayed letter is sent again: the operator asked for it.
    let by_id = admin
        .replay_dead_letters(authed(
            "admin-key",
            ReplayDeadLettersRequest {
                adapter: format!("portal-{s}"),
                record_ids: vec![record_id.clone()],
                ..Default::default()
            },
        ))
        .await
        .expect("replay by id")
        .into_inner();
    assert_eq!(by_id.replayed, std::slice::from_ref(&record_id));
    portal
        .wait_for("delivered a second time", WAIT, |r| {
            r.iter().filter(|c| c.reply == "Ok").count() == 2
        })
        .await;

    let events = audit_events(&hub.bootstrap, &record_id, 5).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "delivery.dead_lettered",
            "delivery.replayed",
            "delivery.delivered",
            "delivery.replayed",
            "delivery.delivered"
        ]
    );
    assert_eq!(events[1]["actor"], "ops");
}

#[tokio::test]
async fn exhausted_retries_dead_letter_the_record() {
    let (hub, portal, s) =
        portal_hub("{maxAttempts: 3, initialBackoff: 50ms, maxBackoff: 100ms}").await;
    let ma_ho_so = format!("X-{s}");
    portal.script(&ma_ho_so, std::iter::repeat_n(Reply::Status(500, None), 10));
    publish(&hub, "dossier.sync", &citizen_dossier(&ma_ho_so)).await;
    let letters = read_records(&hub.bootstrap, &format!("_mekong.dlq.portal-{s}"), 1, WAIT).await;
    assert_eq!(
        header(&letters[0], "mekong_dlq_attempts").as_deref(),
        Some("3")
    );
    assert!(
        header(&letters[0], "mekong_dlq_error")
            .unwrap()
            .starts_with("gave up after 3 attempts: HTTP 500"),
    );
    assert_eq!(portal.received().len(), 3);
}

#[tokio::test]
async fn an_expired_session_is_renewed_and_the_record_delivered_once() {
    let (hub, portal, s) = portal_hub(QUICK_RETRY).await;
    let first = format!("S1-{s}");
    publish(&hub, "dossier.sync", &citizen_dossier(&first)).await;
    portal
        .wait_for("the first call", WAIT, |r| r.len() == 1)
        .await;
    portal.expire_sessions();
    let second = format!("S2-{s}");
    publish(&hub, "dossier.sync", &citizen_dossier(&second)).await;
    let received = portal
        .wait_for("the second call", WAIT, |r| accepted(r).len() == 2)
        .await;
    assert_eq!(portal.logins(), 2, "logged in again");
    let replies: Vec<&str> = received.iter().map(|r| r.reply.as_str()).collect();
    assert_eq!(replies, ["Ok", "session expired", "Ok"]);
    let delivered: Vec<Value> = accepted(&received)
        .iter()
        .map(|c| c["data"][0]["MaHoSo"].clone())
        .collect();
    assert_eq!(delivered, [json!(first), json!(second)], "each once");
    assert_eq!(accepted(&received)[1]["session"], "session-2");
}

#[tokio::test]
async fn a_401_renews_the_session_and_an_answer_that_is_not_json_is_retried() {
    let (hub, portal, s) = portal_hub(QUICK_RETRY).await;
    let ma_ho_so = format!("U-{s}");
    // 401 on the first call, then 200 with a body that is not JSON, then the normal answer.
    portal.script(&ma_ho_so, [Reply::Status(401, None), Reply::LongBody(10)]);
    let record_id = publish(&hub, "dossier.sync", &citizen_dossier(&ma_ho_so)).await;
    let received = portal
        .wait_for("delivered after a 401 and a non-JSON answer", WAIT, |r| {
            r.iter().any(|c| c.reply == "Ok")
        })
        .await;
    let replies: Vec<&str> = received.iter().map(|r| r.reply.as_str()).collect();
    assert_eq!(replies, ["Status(401, None)", "LongBody(10)", "Ok"]);
    assert_eq!(portal.logins(), 2, "a 401 means a new login");
    let sessions: Vec<Value> = received
        .iter()
        .map(|r| r.json()["session"].clone())
        .collect();
    assert_eq!(
        sessions,
        [json!("session-1"), json!("session-2"), json!("session-2")]
    );
    let events = audit_events(&hub.bootstrap, &record_id, 3).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"delivery.delivered"), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["error"].as_str().is_some_and(|m| m.contains("not JSON"))),
        "the non-JSON answer is a retry with its reason: {events:?}"
    );
}

#[tokio::test]
async fn a_refused_login_delivers_nothing_and_dead_letters_with_the_reason() {
    let portal = Target::portal().await;
    let s = unique();
    let resources = portal_resources(
        &s,
        &portal,
        "{maxAttempts: 2, initialBackoff: 50ms, maxBackoff: 100ms}",
    );
    // The same adapter with a password the portal refuses.
    let wrong = secret_file("portal-password", "not-the-password");
    let resources: String = resources
        .lines()
        .map(|l| {
            if l.starts_with("  password: ") {
                format!("  password: \"{wrong}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &resources,
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await;
    let ma_ho_so = format!("L-{s}");
    publish(&hub, "dossier.sync", &citizen_dossier(&ma_ho_so)).await;
    let letters = read_records(&hub.bootstrap, &format!("_mekong.dlq.portal-{s}"), 1, WAIT).await;
    let error = header(&letters[0], "mekong_dlq_error").unwrap();
    assert!(
        error.contains("login refused (error_code 1)"),
        "the portal's refusal is the reason: {error}"
    );
    assert!(portal.received().is_empty(), "no call without a session");
    assert_eq!(portal.logins(), 0, "no session was ever given");
}

#[tokio::test]
async fn a_failing_key_holds_back_only_its_own_lane() {
    let (hub, portal, s) =
        portal_hub("{maxAttempts: 1000, initialBackoff: 100ms, maxBackoff: 100ms}").await;
    let slow = format!("A-{s}");
    let fast = format!("B-{s}");
    // The failing key fails until the other key's three steps are delivered: if its lane held
    // the other back, nothing would be delivered at all.
    portal.script(
        &slow,
        [Reply::BusyUntil {
            key: fast.clone(),
            delivered: 3,
        }],
    );
    let progress = |key: &str, step: u32| {
        format!(
            r#"{{"MaHoSo":"{key}","NguoiXuLy":"x","ThoiDiemXuLy":"20261128143000","TrangThai":{step}}}"#
        )
    };
    // Three steps of each key on one topic (order is kept per key within a topic); the failing
    // key's first step fails until the other key is done.
    for step in 1..=3 {
        publish(&hub, "dossier.progress", progress(&slow, step).as_bytes()).await;
    }
    for step in 1..=3 {
        publish(&hub, "dossier.progress", progress(&fast, step).as_bytes()).await;
    }
    let received = portal
        .wait_for("all six delivered", WAIT, |r| {
            r.iter().filter(|c| c.reply == "Ok").count() == 6
        })
        .await;
    let delivered: Vec<(String, String)> = received
        .iter()
        .filter(|c| c.reply == "Ok")
        .map(|c| {
            let call = c.json();
            (
                call["data"][0]["MaHoSo"].as_str().unwrap().to_owned(),
                format!(
                    "{}{}",
                    call["service"].as_str().unwrap(),
                    call["data"][0]["TrangThai"].as_str().unwrap_or("")
                ),
            )
        })
        .collect();
    let of = |key: &str| -> Vec<String> {
        delivered
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, what)| what.clone())
            .collect()
    };
    assert_eq!(
        of(&slow),
        [
            "CapNhatTienDoHoSoMC1",
            "CapNhatTienDoHoSoMC2",
            "CapNhatTienDoHoSoMC3"
        ],
        "in order, after its failures"
    );
    assert_eq!(
        of(&fast),
        [
            "CapNhatTienDoHoSoMC1",
            "CapNhatTienDoHoSoMC2",
            "CapNhatTienDoHoSoMC3"
        ]
    );
    let position = |key: &str| delivered.iter().position(|(k, _)| k == key).unwrap();
    assert!(
        position(&fast) < position(&slow),
        "the other key was not held back: {delivered:?}"
    );
}

#[tokio::test]
async fn a_webhook_gets_cloudevents_with_idempotency_key_and_signature() {
    let hook = Target::webhook().await;
    let s = unique();
    let resources = format!(
        "{}\n---\nkind: Adapter\nname: hook-{s}\ntype: webhook\nfrom: [\"t-city-{s}\"]\nendpoint: \"{}\"\nauth: {{hmacSecret: \"{}\", bearerToken: \"{}\"}}\nretry: {QUICK_RETRY}\n",
        standard_resources(&s),
        hook.url("/hook"),
        secret_file("hook-secret", "shared-secret"),
        secret_file("hook-token", "hook-token"),
    );
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &resources,
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await;
    let payload = citizen_dossier(&format!("W-{s}"));
    hook.script(&format!("W-{s}"), [Reply::Status(502, None)]);
    // A trace begun by the publisher continues into the outbound request.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = authed("q1-key", record("dossier.sync", &payload));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let record_id = hub
        .client()
        .await
        .publish(request)
        .await
        .expect("published")
        .into_inner()
        .record_id;
    let received = hook
        .wait_for("delivered", WAIT, |r| r.iter().any(|c| c.reply == "Ok"))
        .await;
    assert_eq!(received.len(), 2, "one retry after the 502");
    for request in &received {
        assert_eq!(
            request.body.as_ref(),
            payload.as_slice(),
            "the body is the record, byte for byte"
        );
        assert_eq!(
            request.header("idempotency-key").as_deref(),
            Some(record_id.as_str())
        );
        assert_eq!(request.header("ce-id").as_deref(), Some(record_id.as_str()));
        assert_eq!(request.header("ce-type").as_deref(), Some("dossier.sync"));
        assert_eq!(request.header("ce-source").as_deref(), Some("q1"));
        assert_eq!(request.header("ce-specversion").as_deref(), Some("1.0"));
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            request.header("x-mekong-signature"),
            Some(mekong_adapters::signature("shared-secret", &payload))
        );
        assert_eq!(
            request.header("authorization").as_deref(),
            Some("Bearer hook-token")
        );
        assert_eq!(request.header("traceparent").as_deref(), Some(traceparent));
    }
}

#[tokio::test]
async fn bad_adapters_are_refused_with_the_field_and_the_reason() {
    let (hub, _suffix) = TestHub::start().await;
    let mut admin = hub.admin().await;
    let cases = [
        (
            "kind: Adapter\nname: a\ntype: dvcqg\nfrom: [t]\nendpoint: https://portal/api\nunitCode: u\nauth: {loginEndpoint: 'https://portal/login', username: mekong, password: 'env:P'}\n",
            "field `auth.username`: secrets are references",
        ),
        (
            "kind: Adapter\nname: a\ntype: soap\nfrom: [t]\nendpoint: https://x\n",
            "field `type`: unknown variant `soap`",
        ),
        (
            "kind: Adapter\nname: a\ntype: webhook\nfrom: []\nendpoint: 'localhost:80'\nauth: {bearerToken: 'env:T'}\nretry: {maxAttempts: 0}\n",
            "field `from`: list at least one topic",
        ),
        (
            "kind: Adapter\nname: a\ntype: webhook\nfrom: [t]\nendpoint: 'http://h/x'\n",
            "field `auth`: a webhook needs `hmacSecret`",
        ),
        (
            "kind: Adapter\nname: a\ntype: webhook\nfrom: [t]\nendpoint: 'https://h/x'\nauth: {bearerToken: 'env:T'}\ntls: {clientCert: 'env:C'}\n",
            "field `tls`: give `clientCert` and `clientKey` together",
        ),
        (
            "kind: Adapter\nname: a\ntype: webhook\nfrom: [t]\nendpoint: 'http://h/x'\nauth: {bearerToken: 'env:T'}\ntls: {ca: 'file:/etc/ca.pem'}\n",
            "field `tls`: is for an https:// endpoint",
        ),
    ];
    for (text, says) in cases {
        let status = admin
            .apply(authed(
                "admin-key",
                ApplyRequest {
                    sources: vec![SourceText {
                        name: "adapter.yaml".into(),
                        text: text.into(),
                    }],
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains(says),
            "`{says}` in {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn adapters_added_changed_and_removed_at_runtime_take_effect() {
    let (hub, s) = TestHub::start().await;
    let (first, second) = (Target::webhook().await, Target::webhook().await);
    let mut admin = hub.admin().await;
    let name = format!("hook-{s}");
    let token = secret_file("hook-token", "t0ken");
    let adapter = |target: &Target| ApplyRequest {
        sources: vec![SourceText {
            name: "adapter.yaml".into(),
            text: format!(
                "kind: Adapter\nname: {name}\ntype: webhook\nfrom: [\"t-city-{s}\"]\nendpoint: \"{}\"\nauth: {{bearerToken: \"{token}\"}}\n",
                target.url("/hook")
            ),
        }],
        ..Default::default()
    };
    let delivered_to = async |target: &Target, id: &str| {
        target
            .wait_for(&format!("{id} delivered"), WAIT, |r| {
                r.iter().any(|x| x.header("ce-id").as_deref() == Some(id))
            })
            .await
    };
    let dossier = |n: u32| citizen_dossier(&format!("RT{n}-{s}"));

    // Added: it starts and delivers.
    admin
        .apply(authed("admin-key", adapter(&first)))
        .await
        .unwrap();
    let one = publish(&hub, "dossier.sync", &dossier(1)).await;
    delivered_to(&first, &one).await;

    // Changed (another endpoint): restarted with it, going on from where it was. The old engine
    // may take a record or two before the change reaches it; from the first record the new
    // endpoint gets, the old one gets nothing more, and no record goes to both.
    admin
        .apply(authed("admin-key", adapter(&second)))
        .await
        .unwrap();
    let ids = |r: &[mekong_tests::targets::Received]| -> Vec<String> {
        r.iter().filter_map(|x| x.header("ce-id")).collect()
    };
    let mut before_change = vec![one.clone()];
    let two = loop {
        let id = publish(
            &hub,
            "dossier.sync",
            &dossier(2 + before_change.len() as u32),
        )
        .await;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if ids(&second.received()).contains(&id) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{id} delivered nowhere"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            if ids(&first.received()).contains(&id) {
                break;
            }
        }
        if ids(&second.received()).contains(&id) {
            break id;
        }
        before_change.push(id);
        assert!(before_change.len() < 10, "the change never took effect");
    };
    assert_eq!(
        ids(&second.received()),
        std::slice::from_ref(&two),
        "only what came after"
    );
    assert_eq!(ids(&first.received()), before_change);

    // Removed: it stops (its consumer group empties); what comes meanwhile waits in Kafka.
    admin
        .delete(authed(
            "admin-key",
            mekong_proto::v1::DeleteRequest {
                kind: "Adapter".into(),
                name: name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let group = mekong_core::adapter_group(&name);
    let deadline = std::time::Instant::now() + WAIT;
    while group_members(&hub.bootstrap, &group).await > 0 {
        assert!(std::time::Instant::now() < deadline, "{name} never stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let three = publish(&hub, "dossier.sync", &dossier(3)).await;
    // Added again: it delivers what waited, and nothing it had delivered before.
    admin
        .apply(authed("admin-key", adapter(&first)))
        .await
        .unwrap();
    let at_first = delivered_to(&first, &three).await;
    before_change.push(three);
    assert_eq!(ids(&at_first), before_change);
    assert_eq!(ids(&second.received()), [two]);
}

/// How many members the Kafka consumer group `group` has now.
async fn group_members(bootstrap: &str, group: &str) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (bootstrap, group) = (bootstrap.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        let list = consumer
            .fetch_group_list(Some(&group), Duration::from_secs(5))
            .expect("the group list");
        list.groups().first().map_or(0, |g| g.members().len())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_adapter_presents_its_client_certificate_to_a_target_that_requires_one() {
    use mekong_tests::pki::{ClientCert, Pki};
    let pki = Pki::new("adapter");
    let target = Target::webhook_tls(&pki, &pki.server("portal")).await;
    let hub_cert = pki.client(ClientCert {
        name: "mekong-hcmc",
        ..Default::default()
    });
    let (hub, s) = TestHub::start().await;
    let ca = secret_file("tls-ca", &pki.ca_pem());
    let token = secret_file("hook-token", "t0ken");
    let adapter = |name: &str, client_cert: &str| ApplyRequest {
        sources: vec![SourceText {
            name: "adapter.yaml".into(),
            text: format!(
                "kind: Adapter\nname: {name}-{s}\ntype: webhook\nfrom: [\"t-city-{s}\"]\nendpoint: \"{}\"\nretry: {QUICK_RETRY}\nauth: {{bearerToken: \"{token}\"}}\ntls: {{ca: \"{ca}\"{client_cert}}}\n",
                target.https_url("/hook"),
            ),
        }],
        ..Default::default()
    };
    let with_certificate = format!(
        ", clientCert: \"{}\", clientKey: \"{}\"",
        secret_file("tls-cert", &hub_cert.cert_pem()),
        secret_file("tls-key", &hub_cert.key_pem())
    );
    let mut admin = hub.admin().await;
    admin
        .apply(authed("admin-key", adapter("mtls", &with_certificate)))
        .await
        .expect("an adapter with a client certificate");
    // The same target without the certificate: its handshakes fail, it delivers nothing.
    admin
        .apply(authed("admin-key", adapter("plain", "")))
        .await
        .expect("an adapter without one");
    let id = publish(&hub, "dossier.sync", &citizen_dossier(&format!("TLS-{s}"))).await;
    target
        .wait_for("delivered over mutual TLS", WAIT, |r| {
            r.iter()
                .any(|x| x.header("ce-id").as_deref() == Some(id.as_str()))
        })
        .await;
    let plain = format!("plain-{s}");
    let retried = mekong_tests::audit_events(&hub.bootstrap, 1, |e| {
        e["event"] == "delivery.retried"
            && e["adapter"] == plain.as_str()
            && e["recordId"] == id.as_str()
    })
    .await;
    let reason = retried[0]["error"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("request failed") || reason.starts_with("cannot connect"),
        "{reason}"
    );
    assert_eq!(
        target.received().len(),
        1,
        "only the adapter with the certificate got through"
    );
}

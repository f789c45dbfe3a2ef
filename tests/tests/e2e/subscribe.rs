//! Subscriptions over gRPC against a real Kafka broker: at-least-once delivery, resumption,
//! start positions, groups, filters, access and flow control.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use mekong_gateway::GatewayConfig;
use mekong_kafka::ProducerSettings;
use mekong_proto::v1::{DeliveredRecord, StartFrom, Subscription};
use mekong_tests::subscriber::{Consumer, subscription, wait_for_assignment};
use mekong_tests::*;
use tonic::Code;

/// The standard resources plus a route that mixes two types, a cashier who publishes payments, and an
/// integrator who may read the city and mixed topics (and a topic that does not exist).
fn resources(s: &str) -> String {
    let sha = |key: &str| hex::encode(mekong_core::hash_api_key(key).0);
    format!(
        "{}\n---\nkind: Route\nname: mixed\nmatch: {{types: [dossier.sync, payment.completed]}}\nto: [{{topic: t-mixed-{s}}}]\n---\n\
         kind: Client\nname: cashier\nroles: [publisher]\napiKeys: [{{sha256: {}}}]\npublish: [\"payment.*\"]\n---\n\
         kind: Client\nname: integrator\nroles: [subscriber]\napiKeys: [{{sha256: {}}}]\nsubscribe: [t-city-{s}, t-mixed-{s}, t-ghost-{s}]\n",
        standard_resources(s),
        sha("cashier-key"),
        sha("integrator-key"),
    )
}

async fn hub() -> (TestHub, String) {
    let s = unique();
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &resources(&s),
        GatewayConfig::default(),
        ProducerSettings::default(),
    )
    .await;
    (hub, s)
}

/// Publishes dossiers numbered `range`, all with `key` when given (one partition, in order).
async fn publish(hub: &TestHub, range: std::ops::Range<usize>, key: Option<&str>) -> Vec<String> {
    let mut client = hub.client().await;
    let mut ids = Vec::new();
    for i in range {
        let mut request = record("dossier.sync", &citizen_dossier(&format!("H29-{i:04}")));
        request.key = key.unwrap_or_default().into();
        ids.push(
            client
                .publish(authed("q1-key", request))
                .await
                .unwrap()
                .into_inner()
                .record_id,
        );
    }
    ids
}

fn ids(records: &[DeliveredRecord]) -> Vec<String> {
    records.iter().map(|r| r.record_id.clone()).collect()
}

const QUIET: Duration = Duration::from_secs(3);
const FIRST: Duration = Duration::from_secs(20);

#[tokio::test]
async fn unacknowledged_records_are_delivered_again_and_acknowledged_ones_are_not() {
    let (hub, s) = hub().await;
    let published = publish(&hub, 0..5, Some("one-dossier")).await;
    let topic = format!("t-city-{s}");

    let mut a = Consumer::open(&hub, "integrator-key", subscription(&topic, "g1"))
        .await
        .unwrap();
    let mut first = vec![a.next(FIRST).await.expect("a first record")];
    first.extend(a.drain(QUIET).await);
    assert_eq!(ids(&first), published, "in order, every record, once");
    let record = &first[0];
    assert_eq!(record.record_type, "dossier.sync");
    assert_eq!(record.source, "q1");
    assert_eq!(record.key, b"one-dossier");
    assert_eq!(
        record.payload,
        citizen_dossier("H29-0000"),
        "the bytes as published"
    );
    assert_eq!(
        record.attributes.get("datacontenttype").map(String::as_str),
        Some("application/json")
    );
    assert!(record.time.ends_with('Z'));
    // Acknowledge the first three, then crash.
    a.ack(&first[..3]).await;
    a.close().await;

    let mut b = Consumer::open(&hub, "integrator-key", subscription(&topic, "g1"))
        .await
        .unwrap();
    let mut again = vec![b.next(FIRST).await.expect("redelivery")];
    again.extend(b.drain(QUIET).await);
    assert_eq!(
        ids(&again),
        published[3..],
        "exactly the unacknowledged records come again"
    );
    b.ack(&again).await;
    b.close().await;

    let mut c = Consumer::open(&hub, "integrator-key", subscription(&topic, "g1"))
        .await
        .unwrap();
    wait_for_assignment(&hub, "integrator", "g1", 1).await;
    assert!(
        c.next(Duration::from_secs(3)).await.is_none(),
        "everything was acknowledged"
    );
    // Another group starts from the beginning; a client of it that crashes without acknowledging
    // gets everything again.
    let mut other = Consumer::open(&hub, "integrator-key", subscription(&topic, "g2"))
        .await
        .unwrap();
    let mut got = vec![other.next(FIRST).await.expect("records")];
    got.extend(other.drain(QUIET).await);
    assert_eq!(ids(&got), published);
    other.crash();
    let mut after_crash = Consumer::open(&hub, "integrator-key", subscription(&topic, "g2"))
        .await
        .unwrap();
    let mut got = vec![
        after_crash
            .next(FIRST)
            .await
            .expect("redelivery after a crash"),
    ];
    got.extend(after_crash.drain(QUIET).await);
    assert_eq!(ids(&got), published);
}

#[tokio::test]
async fn start_positions_latest_and_time() {
    let (hub, s) = hub().await;
    let topic = format!("t-city-{s}");
    publish(&hub, 0..2, None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let later = publish(&hub, 2..4, None).await;

    let mut by_time = Consumer::open(
        &hub,
        "integrator-key",
        Subscription {
            start_from: StartFrom::Time as i32,
            start_time_ms: since,
            ..subscription(&topic, "by-time")
        },
    )
    .await
    .unwrap();
    let mut got = vec![by_time.next(FIRST).await.expect("records after the time")];
    got.extend(by_time.drain(QUIET).await);
    assert_eq!(
        ids(&got).into_iter().collect::<BTreeSet<_>>(),
        later.iter().cloned().collect(),
        "only records from that time on"
    );

    let mut latest = Consumer::open(
        &hub,
        "integrator-key",
        Subscription {
            start_from: StartFrom::Latest as i32,
            ..subscription(&topic, "latest")
        },
    )
    .await
    .unwrap();
    // Assigned first: "nothing old" must not pass because the consumer had not joined yet.
    wait_for_assignment(&hub, "integrator", "latest", 1).await;
    assert!(
        latest.next(Duration::from_secs(3)).await.is_none(),
        "nothing old"
    );
    let newest = publish(&hub, 4..5, None).await;
    assert_eq!(
        ids(&[latest.next(FIRST).await.expect("the new record")]),
        newest
    );
}

#[tokio::test]
async fn two_streams_in_one_group_share_the_partitions_and_see_every_record_once() {
    let (hub, s) = hub().await;
    let topic = format!("t-city-{s}");
    let mut a = Consumer::open(&hub, "integrator-key", subscription(&topic, "shared"))
        .await
        .unwrap();
    let mut b = Consumer::open(&hub, "integrator-key", subscription(&topic, "shared"))
        .await
        .unwrap();
    // Both joined and assigned before anything is there to read.
    wait_for_assignment(&hub, "integrator", "shared", 2).await;
    let published = publish(&hub, 0..30, None).await;

    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} records arrived",
            seen_a.len() + seen_b.len(),
            published.len()
        );
        let (ra, rb) = tokio::join!(
            a.next(Duration::from_millis(200)),
            b.next(Duration::from_millis(200))
        );
        for (r, c, seen) in [(ra, &a, &mut seen_a), (rb, &b, &mut seen_b)] {
            if let Some(r) = r {
                c.ack(std::slice::from_ref(&r)).await;
                seen.push(r.record_id);
            }
        }
        if seen_a.len() + seen_b.len() >= published.len() {
            seen_a.extend(ids(&a.drain(QUIET).await));
            seen_b.extend(ids(&b.drain(Duration::from_millis(100)).await));
            break;
        }
    }
    assert!(
        !seen_a.is_empty() && !seen_b.is_empty(),
        "both streams got partitions: {} and {}",
        seen_a.len(),
        seen_b.len()
    );
    let mut all: Vec<_> = seen_a.iter().chain(&seen_b).cloned().collect();
    all.sort();
    let mut want = published.clone();
    want.sort();
    assert_eq!(all, want, "every record exactly once");
}

#[tokio::test]
async fn a_rebalance_while_records_are_in_flight_loses_nothing() {
    let (hub, s) = hub().await;
    let topic = format!("t-city-{s}");
    let published: BTreeSet<String> = publish(&hub, 0..30, None).await.into_iter().collect();
    let mut a = Consumer::open(&hub, "integrator-key", subscription(&topic, "moving"))
        .await
        .unwrap();
    let mut held = vec![a.next(FIRST).await.expect("records")];
    held.extend(a.drain(QUIET).await);
    assert_eq!(held.len(), 30, "A holds every record, none acknowledged");

    // B joins: partitions move, and their unacknowledged records are delivered again, some to B.
    // Both acknowledge all they get until nothing more comes.
    let mut b = Consumer::open(&hub, "integrator-key", subscription(&topic, "moving"))
        .await
        .unwrap();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut b_got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        let (ra, rb) = tokio::join!(
            a.next(Duration::from_millis(200)),
            b.next(Duration::from_millis(200))
        );
        if ra.is_some() || rb.is_some() {
            last = tokio::time::Instant::now();
        } else if b_got > 0 && last.elapsed() > QUIET {
            break;
        }
        if let Some(r) = ra {
            a.ack(std::slice::from_ref(&r)).await;
            seen.insert(r.record_id);
        }
        if let Some(r) = rb {
            b.ack(std::slice::from_ref(&r)).await;
            b_got += 1;
            seen.insert(r.record_id);
        }
    }
    assert!(
        b_got > 0,
        "B received the unacknowledged records of the partitions it took over"
    );
    assert_eq!(
        seen, published,
        "every record held unacknowledged during the rebalance came again"
    );
    a.close().await;
    b.close().await;

    // Nothing is left unacknowledged for the group.
    let mut c = Consumer::open(&hub, "integrator-key", subscription(&topic, "moving"))
        .await
        .unwrap();
    wait_for_assignment(&hub, "integrator", "moving", 1).await;
    let rest = c.drain(Duration::from_secs(3)).await;
    assert!(
        rest.is_empty(),
        "{} records were left unacknowledged",
        rest.len()
    );
}

#[tokio::test]
async fn a_type_filter_passes_only_those_types() {
    let (hub, s) = hub().await;
    publish(&hub, 0..2, None).await;
    let mut cashier = hub.client().await;
    for _ in 0..2 {
        cashier
            .publish(authed(
                "cashier-key",
                record("payment.completed", br#"{"MaHoSo":"H29-P"}"#),
            ))
            .await
            .unwrap();
    }
    let topic = format!("t-mixed-{s}");
    let mut c = Consumer::open(
        &hub,
        "integrator-key",
        Subscription {
            record_types: vec!["payment.completed".into()],
            ..subscription(&topic, "f")
        },
    )
    .await
    .unwrap();
    let mut got = vec![c.next(FIRST).await.expect("payments")];
    got.extend(c.drain(QUIET).await);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.record_type == "payment.completed"));
}

#[tokio::test]
async fn access_is_checked_and_unknown_topics_are_not_found() {
    let (hub, s) = hub().await;
    let code = async |key: &str, topic: &str| {
        Consumer::open(&hub, key, subscription(topic, "x"))
            .await
            .err()
            .map(|e| e.code())
    };
    assert_eq!(
        code("integrator-key", &format!("t-national-{s}")).await,
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        code("q1-key", &format!("t-city-{s}")).await,
        Some(Code::PermissionDenied),
        "a publisher is no subscriber"
    );
    assert_eq!(
        code("integrator-key", "_mekong.audit").await,
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        code("integrator-key", &format!("t-ghost-{s}")).await,
        Some(Code::NotFound)
    );
    assert_eq!(
        code("nobody", &format!("t-city-{s}")).await,
        Some(Code::Unauthenticated)
    );
    assert_eq!(code("integrator-key", &format!("t-city-{s}")).await, None);
}

#[tokio::test]
async fn a_client_that_does_not_acknowledge_stops_receiving_at_max_in_flight() {
    let (hub, s) = hub().await;
    publish(&hub, 0..10, None).await;
    let topic = format!("t-city-{s}");
    let mut c = Consumer::open(
        &hub,
        "integrator-key",
        Subscription {
            max_in_flight: 3,
            ..subscription(&topic, "slow")
        },
    )
    .await
    .unwrap();
    let mut got = vec![c.next(FIRST).await.unwrap()];
    got.extend(c.drain(QUIET).await);
    assert_eq!(got.len(), 3, "at most max_in_flight unacknowledged");
    c.ack(&got[..1]).await;
    let more = c.drain(QUIET).await;
    assert_eq!(more.len(), 1, "one acknowledged, one more delivered");
}

#[tokio::test]
async fn server_shutdown_ends_streams_cleanly() {
    let (hub, s) = hub().await;
    publish(&hub, 0..1, None).await;
    let mut c = Consumer::open(
        &hub,
        "integrator-key",
        subscription(&format!("t-city-{s}"), "bye"),
    )
    .await
    .unwrap();
    let r = c.next(FIRST).await.unwrap();
    c.ack(&[r]).await;
    tokio::time::timeout(Duration::from_secs(30), hub.shutdown())
        .await
        .expect("the server drains and stops");
    match tokio::time::timeout(Duration::from_secs(10), c.records.next()).await {
        Ok(Some(Err(status))) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(None) => {}
        other => panic!("the stream should end, got {other:?}"),
    }
}

//! Per-client quotas against the real broker: a publisher over its rate is refused with when to
//! retry and which limit, a stream is slowed to the rate without an error, a batch larger than
//! the burst is refused for good, streams are bounded, and limits change live.

use std::time::{Duration, Instant};

use futures::StreamExt;
use mekong_proto::v1::{
    ApplyRequest, PublishBatchRequest, PublishRequest, SourceText, publish_result::Outcome,
};
use mekong_tests::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_types::StatusExt;

fn metered(limits: &str) -> String {
    format!(
        "kind: Client\nname: metered\nroles: [publisher]\napiKeys: [{{sha256: {}}}]\npublish: [\"dossier.*\"]\nlimits: {{{limits}}}\n",
        hex::encode(mekong_core::hash_api_key("metered-key").0)
    )
}

fn dossier(n: usize, s: &str) -> PublishRequest {
    PublishRequest {
        request_id: format!("r{n}"),
        ..record("dossier.sync", &citizen_dossier(&format!("Q{n}-{s}")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_held_to_its_quota_refused_when_unary_slowed_when_streaming() {
    let s = unique();
    let yaml = format!(
        "{}\n---\n{}",
        standard_resources(&s),
        metered("recordsPerSecond: 1, burst: 5, maxStreams: 1")
    );
    let hub = TestHub::start_with(
        &kafka_bootstrap(),
        &yaml,
        mekong_gateway::GatewayConfig::default(),
        mekong_kafka::ProducerSettings::default(),
    )
    .await;
    let mut client = hub.client().await;

    // Unary: the burst goes, the next is refused with when to retry and which limit.
    for n in 0..5 {
        client
            .publish(authed("metered-key", dossier(n, &s)))
            .await
            .expect("within the burst");
    }
    let refused = client
        .publish(authed("metered-key", dossier(5, &s)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let retry = refused.get_details_retry_info().expect("RetryInfo");
    let delay = retry.retry_delay.expect("a delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    let quota = refused.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, "client:metered");
    assert!(
        quota.violations[0]
            .description
            .contains("limits.recordsPerSecond"),
        "{quota:?}"
    );
    // Others are not held to it.
    client
        .publish(authed("q1-key", dossier(6, &s)))
        .await
        .expect("another client");

    // A batch larger than the burst can never go.
    let records = (10..20).map(|n| dossier(n, &s)).collect();
    let batch = client
        .publish_batch(authed("metered-key", PublishBatchRequest { records }))
        .await
        .unwrap_err();
    assert_eq!(batch.code(), Code::ResourceExhausted);
    assert!(batch.get_details_retry_info().is_none(), "{batch:?}");
    assert!(
        batch.message().contains("send less at a time"),
        "{}",
        batch.message()
    );

    // Limits change live: 20 a second from the change on.
    hub.admin()
        .await
        .apply(authed(
            "admin-key",
            ApplyRequest {
                sources: vec![SourceText {
                    name: "metered.yaml".into(),
                    text: metered("recordsPerSecond: 20, burst: 5, maxStreams: 1"),
                }],
                ..Default::default()
            },
        ))
        .await
        .expect("the new limits");

    // A stream of 60 is slowed to 20 a second: every record answered OK, none refused.
    let (records, inbound) = tokio::sync::mpsc::channel(64);
    let started = Instant::now();
    let mut results = client
        .publish_stream(authed("metered-key", ReceiverStream::new(inbound)))
        .await
        .unwrap()
        .into_inner();
    let suffix = s.clone();
    tokio::spawn(async move {
        for n in 100..160 {
            if records.send(dossier(n, &suffix)).await.is_err() {
                return;
            }
        }
    });
    // One stream at a time for this client.
    let (_more, second) = tokio::sync::mpsc::channel::<PublishRequest>(1);
    let second = client
        .publish_stream(authed("metered-key", ReceiverStream::new(second)))
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::ResourceExhausted, "{second:?}");
    assert!(
        second.message().contains("limits.maxStreams"),
        "{}",
        second.message()
    );
    let mut answered = 0;
    while answered < 60 {
        let result = results.next().await.expect("a result").expect("no error");
        assert!(
            matches!(result.outcome, Some(Outcome::Published(_))),
            "{result:?}"
        );
        answered += 1;
    }
    let took = started.elapsed();
    // 5 at once, then 55 at 20 a second: at least 2.75 s, however fast the machine.
    assert!(
        took >= Duration::from_millis(2600),
        "60 records in {took:?}"
    );
}

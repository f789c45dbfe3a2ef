//! Subscriptions through a served hub that is killed: what a subscriber acknowledged stays
//! acknowledged, whatever happens to the hub afterwards.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_tests::process::Process;
use mekong_tests::subscriber::{Consumer, subscription};
use mekong_tests::{authed, citizen_dossier, kafka_bootstrap, record, standard_resources, unique};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn serve(kafka: &str, suffix: &str) -> Process {
    let dir = std::env::temp_dir().join(format!("mekong-subscriptions-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("resources.yaml"), standard_resources(suffix)).unwrap();
    let store = format!("_mekong.resources.subscriptions-{suffix}");
    Process::serve(
        env!("CARGO_BIN_EXE_mekong"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--kafka",
            kafka,
            "--topic-partitions",
            "3",
            "--topic-replication",
            "1",
            "--resources-topic",
            &store,
            "--resources",
            dir.to_str().unwrap(),
            "--no-adapters",
            // A killed hub's group member holds its partitions until its session times out
            // (45 s by default), and a rebalance waits for it up to the rebalance timeout
            // (max.poll.interval.ms, 300 s): short ones make the next hub take over in seconds.
            "--kafka-option",
            "session.timeout.ms=6000",
            "--kafka-option",
            "heartbeat.interval.ms=1000",
            "--kafka-option",
            "max.poll.interval.ms=7000",
        ],
    )
}

/// The records of `group` committed on `topic` (3 partitions), summed over its partitions.
fn committed(kafka: &str, group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for p in 0..3 {
        partitions.add_partition(topic, p);
    }
    let offsets = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("committed offsets");
    offsets
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_are_not_delivered_again_after_the_hub_is_killed() {
    let kafka = kafka_bootstrap();
    let s = unique();
    let topic = format!("t-city-{s}");
    let hub = serve(&kafka, &s);
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", hub.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut publisher = IngestServiceClient::new(channel);
    let mut published = BTreeSet::new();
    for n in 0..10 {
        let response = publisher
            .publish(authed(
                "q1-key",
                record("dossier.sync", &citizen_dossier(&format!("K-{n}"))),
            ))
            .await
            .expect("published")
            .into_inner();
        published.insert(response.record_id);
    }

    let mut first = Consumer::open_at(&hub.grpc, "reader-key", subscription(&topic, "g"))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 10 {
        got.push(
            first
                .next(Duration::from_secs(30))
                .await
                .expect("all ten arrive"),
        );
    }
    // Acknowledge six; per partition, records arrive in order, so these are a prefix of each.
    first.ack(&got[..6]).await;
    let group = mekong_core::subscription_group("reader", "g");
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed(&kafka, &group, &topic) < 6 {
        assert!(
            Instant::now() < deadline,
            "the acknowledgements were never committed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        committed(&kafka, &group, &topic),
        6,
        "no more than acknowledged"
    );

    // SIGKILL: no shutdown, no last commit, the stream cut.
    drop(first);
    drop(hub);

    let again = serve(&kafka, &s);
    let mut second = Consumer::open_at(&again.grpc, "reader-key", subscription(&topic, "g"))
        .await
        .unwrap();
    let mut redelivered = BTreeSet::new();
    while redelivered.len() < 4 {
        let Some(record) = second.next(Duration::from_secs(30)).await else {
            panic!(
                "the unacknowledged records come again; got {redelivered:?}; hub log:\n{}",
                again.log()
            );
        };
        redelivered.insert(record.record_id);
    }
    let unacknowledged: BTreeSet<String> = got[6..].iter().map(|r| r.record_id.clone()).collect();
    assert_eq!(redelivered, unacknowledged);
    assert!(
        second.next(Duration::from_secs(3)).await.is_none(),
        "an acknowledged record came again"
    );
    assert!(unacknowledged.is_subset(&published));
}

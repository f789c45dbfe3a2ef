//! Subscriptions through a served hub: what a subscriber acknowledged stays acknowledged, whatever
//! happens to the hub afterwards, and `mekong tail` acknowledges exactly what it printed.

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
    // Group names are per test: Kafka groups outlive the hubs, and the broker is shared.
    let group_name = format!("g-{s}");
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

    let mut first = Consumer::open_at(&hub.grpc, "reader-key", subscription(&topic, &group_name))
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
    let group = mekong_core::subscription_group("reader", &group_name);
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
    let mut second =
        Consumer::open_at(&again.grpc, "reader-key", subscription(&topic, &group_name))
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

/// A running `mekong tail`: its lines, as they come, and the process (killed when dropped).
struct Tail {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Tail {
    fn start(server: &str, topic: &str, group: &str) -> Tail {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mekong"))
            .args(["tail", topic, "--group", group, "--token", "reader-key"])
            .args(["--server", server])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Tail { child, lines }
    }

    /// The record id of the next line printed within `timeout`.
    fn next(&self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        let printed: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        Some(
            printed["record_id"]
                .as_str()
                .expect("a record id")
                .to_owned(),
        )
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_acknowledges_what_it_printed_when_interrupted() {
    let kafka = kafka_bootstrap();
    let s = unique();
    let topic = format!("t-city-{s}");
    let group_name = format!("tg-{s}");
    let hub = serve(&kafka, &s);
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", hub.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut publisher = IngestServiceClient::new(channel);
    let mut publish = async |n: usize| {
        publisher
            .publish(authed(
                "q1-key",
                record("dossier.sync", &citizen_dossier(&format!("T-{n}"))),
            ))
            .await
            .expect("published")
            .into_inner()
            .record_id
    };
    let mut published = BTreeSet::new();
    for n in 0..3 {
        published.insert(publish(n).await);
    }

    let mut first = Tail::start(&hub.grpc, &topic, &group_name);
    let printed: BTreeSet<String> = (0..3)
        .map(|_| {
            first
                .next(Duration::from_secs(60))
                .expect("tail prints each record")
        })
        .collect();
    assert_eq!(printed, published);
    // Ctrl-C: what was printed is acknowledged, the stream closed, exit 0.
    let sent = std::process::Command::new("kill")
        .args(["-INT", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tail did not end on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let group = mekong_core::subscription_group("reader", &group_name);
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed(&kafka, &group, &topic) < 3 {
        assert!(
            Instant::now() < deadline,
            "what tail printed was never committed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The group goes on after them: the next tail prints only what came since.
    let newer = publish(3).await;
    let second = Tail::start(&hub.grpc, &topic, &group_name);
    assert_eq!(
        second.next(Duration::from_secs(60)).as_deref(),
        Some(newer.as_str())
    );
    assert_eq!(
        second.next(Duration::from_secs(3)),
        None,
        "an acknowledged record was printed again"
    );
}

//! Floods against a served hub (`mekong serve` on the real broker), measured from the outside:
//! its memory and threads from /proc, what its connections and streams do, how it stops. Each
//! flood is one a hostile caller can send today without a key, or with a publisher's.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mekong_proto::v1::admin_service_client::AdminServiceClient;
use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_proto::v1::{ApplyRequest, PublishRequest, SourceText};
use mekong_tests::process::Process;
use mekong_tests::subscriber::subscription;
use mekong_tests::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const MIB: u64 = 1024 * 1024;

/// Standard resources in a directory of their own, with a reader allowed many subscriptions.
fn resources(s: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mekong-floods-{s}"));
    std::fs::create_dir_all(&dir).unwrap();
    let reader = format!(
        "kind: Client\nname: many\nroles: [subscriber]\napiKeys: [{{sha256: {}}}]\nsubscribe: [t-city-{s}]\nlimits: {{maxSubscriptions: 64}}\n",
        hex::encode(mekong_core::hash_api_key("many-key").0)
    );
    std::fs::write(
        dir.join("resources.yaml"),
        format!("{}\n---\n{reader}", standard_resources(s)),
    )
    .unwrap();
    dir
}

fn serve(s: &str, extra: &[&str]) -> Process {
    let dir = resources(s);
    let store = format!("_mekong.resources.floods-{s}");
    let kafka = kafka_bootstrap();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--kafka",
        &kafka,
        "--topic-replication",
        "1",
        "--resources-topic",
        &store,
        "--resources",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Process::serve(env!("CARGO_BIN_EXE_mekong"), &args)
}

async fn publish_one(hub: &Process, s: &str) {
    IngestServiceClient::connect(format!("http://{}", hub.grpc))
        .await
        .unwrap()
        .publish(authed(
            "q1-key",
            record("dossier.sync", &citizen_dossier(&format!("W-{s}"))),
        ))
        .await
        .expect("a publish works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_without_credentials_are_not_buffered() {
    let s = unique();
    let hub = serve(&s, &[]);
    publish_one(&hub, &s).await;
    let before = hub.usage();
    // Ten anonymous 60 MiB Applies at once: measured once at +648 MB when the body was read first.
    let text = "x".repeat(60 << 20);
    let calls = (0..10).map(|_| {
        let (address, text) = (hub.grpc.clone(), text.clone());
        async move {
            let mut admin = AdminServiceClient::connect(format!("http://{address}"))
                .await
                .unwrap()
                .max_encoding_message_size(64 << 20);
            admin
                .apply(ApplyRequest {
                    sources: vec![SourceText {
                        name: "big".into(),
                        text,
                    }],
                    ..Default::default()
                })
                .await
                .unwrap_err()
        }
    });
    for status in futures::future::join_all(calls).await {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    // And a publisher's ten 60 MiB Publishes: refused from each message's frame header.
    let payload = bytes::Bytes::from(vec![b' '; 60 << 20]);
    let calls = (0..10).map(|_| {
        let (address, payload) = (hub.grpc.clone(), payload.clone());
        async move {
            let mut client = IngestServiceClient::connect(format!("http://{address}"))
                .await
                .unwrap()
                .max_encoding_message_size(64 << 20);
            client
                .publish(authed(
                    "q1-key",
                    PublishRequest {
                        record_type: "dossier.sync".into(),
                        payload,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err()
        }
    });
    for status in futures::future::join_all(calls).await {
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    }
    let after = hub.usage();
    assert!(
        after.peak < before.peak + 64 * MIB,
        "memory peaked at {} MiB, from {} MiB",
        after.peak / MIB,
        before.peak / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_is_bounded_and_closed() {
    let s = unique();
    let hub = serve(
        &s,
        &["--max-connections", "100", "--handshake-timeout", "1s"],
    );
    publish_one(&hub, &s).await;
    let before = hub.usage();
    // 500 connections that never say a word.
    let mut silent = Vec::new();
    for _ in 0..500 {
        silent.push(TcpStream::connect(&hub.grpc).unwrap());
    }
    let during = hub.usage();
    assert!(
        during.threads <= before.threads + 2,
        "threads {} -> {}",
        before.threads,
        during.threads
    );
    assert!(
        during.rss < before.rss + 32 * MIB,
        "{before:?} -> {during:?}"
    );
    // Beyond 100 they are closed at once; the others once the handshake timeout passes.
    let started = Instant::now();
    for stream in &mut silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf) {
                // The server's SETTINGS frame, before it gives up on the connection.
                Ok(n) if n > 0 => continue,
                Ok(_) => break,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!(
                        "a silent connection is still open after {:?}",
                        started.elapsed()
                    )
                }
                Err(_) => break,
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    // Each one counted by why the hub closed it: the limit, or no authenticated call in time. The
    // first 100 took the places (but one, perhaps, still held by the first publish's connection);
    // how many more did depends on how fast the timeouts freed places during the flood.
    let scrape = scrape(&hub).await;
    let closed = |reason: &str| {
        sample(
            &scrape,
            &format!(r#"mekong_connections_closed_by_hub_total{{reason="{reason}"}}"#),
        )
        .unwrap_or(0.0)
    };
    let (limit, silent) = (closed("limit"), closed("no_authenticated_call"));
    assert!(silent >= 99.0 && limit + silent == 500.0, "{scrape}");
    assert_eq!(
        sample(&scrape, "mekong_connections_open"),
        Some(0.0),
        "{scrape}"
    );
    // The hub still serves those who authenticate.
    publish_one(&hub, &s).await;
}

async fn scrape(hub: &Process) -> String {
    let url = format!("{}/metrics", hub.metrics.as_deref().expect("metrics"));
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The value of one sample line, `name{labels} value`, of a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_limits_are_announced_and_old_connections_are_recycled() {
    let s = unique();
    let hub = serve(
        &s,
        &[
            "--max-connection-age",
            "2s",
            "--max-connection-age-grace",
            "1s",
        ],
    );
    // The stream limit, as the server's SETTINGS announce it.
    let tcp = tokio::net::TcpStream::connect(&hub.grpc).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}/grpc.health.v1.Health/Check", hub.grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    response.await.unwrap();
    assert_eq!(client.current_max_send_streams(), 100);

    // A subscription on a connection older than --max-connection-age (+ grace) is ended, so the
    // client reconnects and authenticates again.
    let mut reader = mekong_tests::subscriber::Consumer::open_at(
        &hub.grpc,
        "reader-key",
        subscription(&format!("t-city-{s}"), &format!("g-{s}")),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match reader.records.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the aged connection's stream ends");
    assert!(
        ended.is_none() || ended.as_ref().is_some_and(|r| r.is_err()),
        "{ended:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_cost_a_bounded_number_of_threads() {
    let s = unique();
    let hub = serve(&s, &["--max-subscriptions", "20"]);
    publish_one(&hub, &s).await;
    let before = hub.usage();
    let topic = format!("t-city-{s}");
    let mut open = Vec::new();
    for i in 0..20 {
        open.push(
            mekong_tests::subscriber::Consumer::open_at(
                &hub.grpc,
                "many-key",
                subscription(&topic, &format!("g{i}-{s}")),
            )
            .await
            .unwrap(),
        );
    }
    let refused = mekong_tests::subscriber::Consumer::open_at(
        &hub.grpc,
        "many-key",
        subscription(&topic, &format!("g-extra-{s}")),
    )
    .await
    .err()
    .expect("the 21st stream is over --max-subscriptions");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let during = hub.usage();
    let per_stream = (during.threads.saturating_sub(before.threads)) as f64 / 20.0;
    eprintln!(
        "{per_stream} threads and {} KiB per subscription",
        during.rss.saturating_sub(before.rss) / 20 / 1024
    );
    assert!(
        per_stream <= 8.0,
        "{per_stream} threads per subscription ({before:?} -> {during:?})"
    );
    for consumer in open {
        consumer.close().await;
    }
    // Their consumers are gone with them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hub.usage().threads > before.threads + 4 {
        assert!(
            Instant::now() < deadline,
            "threads stay at {:?}",
            hub.usage()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_hub_with_idle_streams_within_its_grace() {
    let s = unique();
    let mut hub = serve(&s, &["--shutdown-grace", "2s"]);
    // An idle PublishStream and an idle subscription: once they kept the hub alive forever.
    let (_records, inbound) = tokio::sync::mpsc::channel::<PublishRequest>(1);
    let mut results = IngestServiceClient::connect(format!("http://{}", hub.grpc))
        .await
        .unwrap()
        .publish_stream(authed("q1-key", ReceiverStream::new(inbound)))
        .await
        .unwrap()
        .into_inner();
    let mut reader = mekong_tests::subscriber::Consumer::open_at(
        &hub.grpc,
        "reader-key",
        subscription(&format!("t-city-{s}"), &format!("g-{s}")),
    )
    .await
    .unwrap();
    let started = Instant::now();
    hub.terminate();
    let publish_end = tokio::time::timeout(Duration::from_secs(10), results.next())
        .await
        .expect("the publish stream is ended");
    assert_eq!(
        publish_end.and_then(Result::err).map(|s| s.code()),
        Some(Code::Unavailable)
    );
    let read_end = tokio::time::timeout(Duration::from_secs(10), reader.records.next())
        .await
        .expect("the subscription is ended");
    assert_eq!(
        read_end.and_then(Result::err).map(|s| s.code()),
        Some(Code::Unavailable)
    );
    let status = tokio::task::spawn_blocking(move || hub.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap()
        .expect("the hub exits");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_the_middle_of_a_stream_answers_what_it_took_and_loses_nothing() {
    use mekong_proto::v1::publish_result::Outcome;
    let s = unique();
    let mut hub = serve(&s, &["--shutdown-grace", "10s"]);
    // A publisher sending as fast as the hub takes records, far more than it can take in the time.
    const SENT: usize = 50_000;
    let (records, inbound) = tokio::sync::mpsc::channel::<PublishRequest>(256);
    let suffix = s.clone();
    tokio::spawn(async move {
        for i in 0..SENT {
            let request = PublishRequest {
                request_id: format!("r{i}"),
                ..record("dossier.sync", &citizen_dossier(&format!("G{i}-{suffix}")))
            };
            if records.send(request).await.is_err() {
                return; // the stream has ended
            }
        }
    });
    let mut results = IngestServiceClient::connect(format!("http://{}", hub.grpc))
        .await
        .unwrap()
        .publish_stream(authed("q1-key", ReceiverStream::new(inbound)))
        .await
        .unwrap()
        .into_inner();
    let mut accepted = std::collections::HashSet::new();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(30), results.next()).await {
            Ok(Some(Ok(result))) => {
                let Some(Outcome::Published(published)) = result.outcome else {
                    panic!("{} was refused: {result:?}", result.request_id);
                };
                assert!(accepted.insert(published.record_id), "answered twice");
                if accepted.len() == 200 {
                    hub.terminate(); // with hundreds of records in flight
                }
            }
            Ok(Some(Err(status))) => break Some(status),
            Ok(None) => break None,
            Err(_) => panic!("the stream neither answered nor ended within 30 s"),
        }
    };
    assert_eq!(end.map(|s| s.code()), Some(Code::Unavailable));
    assert!(
        accepted.len() < SENT,
        "the shutdown came after the stream had finished"
    );
    let status = tokio::task::spawn_blocking(move || hub.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the hub exits within its grace");
    assert!(status.success(), "{status:?}");

    // Every record answered OK is on the topic, and nothing else: no record taken and then
    // dropped unanswered, none written without its answer.
    let topic = format!("t-city-{s}");
    let kafka = kafka_bootstrap();
    let landed = read_records(&kafka, &topic, accepted.len(), Duration::from_secs(60)).await;
    let ids: std::collections::HashSet<String> = landed
        .iter()
        .map(|m| header(m, "ce_id").expect("a record id"))
        .collect();
    assert_eq!(ids, accepted);
    assert_eq!(count_records(&kafka, &topic), accepted.len() as i64);
}

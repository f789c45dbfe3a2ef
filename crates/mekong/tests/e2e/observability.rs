//! What operators watch: `/metrics` counts known traffic exactly (scraped and parsed): records,
//! copies, write failures, unevaluable conditions, a subscription's lag and its end; `/healthz`
//! answers, `/readyz` turns not-ready when the broker goes away and ready again when it is back,
//! and spans exported to an OpenTelemetry collector continue the publisher's trace.

use std::time::{Duration, Instant};

use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_tests::process::Process;
use mekong_tests::{
    PrivateBroker, authed, citizen_dossier, kafka_bootstrap, record, standard_resources, unique,
};

fn serve(kafka: &str, suffix: &str) -> Process {
    serve_with(kafka, suffix, &[])
}

fn serve_with(kafka: &str, suffix: &str, extra: &[&str]) -> Process {
    serve_resources(kafka, suffix, &standard_resources(suffix), extra)
}

fn serve_resources(kafka: &str, suffix: &str, yaml: &str, extra: &[&str]) -> Process {
    let dir = std::env::temp_dir().join(format!("mekong-observe-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("resources.yaml"), yaml).unwrap();
    let store = format!("_mekong.resources.observe-{suffix}");
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--kafka",
        kafka,
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

/// The metrics endpoint's base URL.
fn http(hub: &Process) -> String {
    hub.metrics
        .clone()
        .expect("serve printed its metrics address")
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// The value of one sample line, `name{labels} value`, of a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_known_traffic_exactly() {
    let s = unique();
    let hub = serve(&kafka_bootstrap(), &s);
    let (status, text) = get(&format!("{}/healthz", http(&hub))).await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));

    let mut client = IngestServiceClient::connect(format!("http://{}", hub.grpc))
        .await
        .unwrap();
    for i in 0..3 {
        client
            .publish(authed(
                "q1-key",
                record("dossier.sync", &citizen_dossier(&format!("M{i}-{s}"))),
            ))
            .await
            .unwrap();
    }
    let invalid = client
        .publish(authed(
            "q1-key",
            record("dossier.sync", br#"{"MaHoSo":""}"#),
        ))
        .await;
    assert!(invalid.is_err());
    let unknown = client
        .publish(authed(
            "q1-key",
            // Within q1's own patterns (dossier.*): a type it may publish, had it existed.
            record(&format!("dossier.no-such-type-{s}"), b"{}"),
        ))
        .await;
    assert!(unknown.is_err());

    let (status, scrape) = get(&format!("{}/metrics", http(&hub))).await;
    assert_eq!(status, 200);
    let expect = [
        (
            r#"mekong_records_accepted_total{record_type="dossier.sync",source="q1"}"#,
            3.0,
        ),
        (
            r#"mekong_records_rejected_total{record_type="dossier.sync",source="q1",reason="invalid_argument"}"#,
            1.0,
        ),
        // An unknown type is counted as `unknown`: callers cannot create new series.
        (
            r#"mekong_records_rejected_total{record_type="unknown",source="q1",reason="not_found"}"#,
            1.0,
        ),
        (
            &format!(r#"mekong_copies_written_total{{topic="t-city-{s}"}}"#),
            3.0,
        ),
        (
            &format!(r#"mekong_copies_written_total{{topic="t-national-{s}"}}"#),
            3.0,
        ),
        (
            r#"mekong_publish_duration_seconds_count{outcome="accepted"}"#,
            3.0,
        ),
        (
            r#"mekong_publish_duration_seconds_count{outcome="rejected"}"#,
            2.0,
        ),
        ("mekong_subscriptions_active", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(
            sample(&scrape, series),
            Some(value),
            "{series} in\n{scrape}"
        );
    }
    assert!(!scrape.contains(&format!("no.such.type.{s}")));
    // Lineage events may still be on their way to Kafka: the queue drains to 0 once they land.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, scrape) = get(&format!("{}/metrics", http(&hub))).await;
        let queued = sample(&scrape, "mekong_kafka_producer_queue_messages");
        if queued == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the producer queue never drained: {queued:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `series` has `want` (`None`: is gone) in the hub's scrape, or fails after `within`.
async fn wait_for_sample(hub: &Process, series: &str, want: Option<f64>, within: Duration) {
    let started = Instant::now();
    loop {
        let (_, scrape) = get(&format!("{}/metrics", http(hub))).await;
        let now = sample(&scrape, series);
        if now == want {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{series} is {now:?}, not {want:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_write_failures_conditions_and_subscriptions() {
    use mekong_tests::subscriber::{Consumer, subscription};
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let kafka = kafka_bootstrap();
    let s = unique();
    // A destination that takes only small messages, made before the hub starts, and a route to
    // it whose condition needs a field.
    let small = format!("t-small-{s}");
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&small, 1, TopicReplication::Fixed(1))
                .set("max.message.bytes", "2000")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let yaml = format!(
        "{}\n---\nkind: Route\nname: tax\nmatch: {{types: [tax.filed], when: \"data.Amount > 5\"}}\nto: [{{topic: {small}}}]\n",
        standard_resources(&s)
    );
    let hub = serve_resources(&kafka, &s, &yaml, &[]);
    let mut client = IngestServiceClient::connect(format!("http://{}", hub.grpc))
        .await
        .unwrap();

    // Kafka refuses the copy (too large for its topic): a produce error, a failed publish.
    let large = format!(r#"{{"Amount":10,"L":"{}"}}"#, "x".repeat(3000));
    let status = client
        .publish(authed("q1-key", record("tax.filed", large.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    // No Amount: the condition cannot be evaluated, no route takes it.
    let status = client
        .publish(authed("q1-key", record("tax.filed", b"{}")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let (_, scrape) = get(&format!("{}/metrics", http(&hub))).await;
    for (series, value) in [
        (
            r#"mekong_kafka_produce_errors_total{kind="too_large"}"#,
            1.0,
        ),
        ("mekong_route_conditions_unevaluable_total", 1.0),
        (
            r#"mekong_publish_duration_seconds_count{outcome="failed"}"#,
            1.0,
        ),
        (
            r#"mekong_publish_duration_seconds_count{outcome="rejected"}"#,
            1.0,
        ),
    ] {
        assert_eq!(
            sample(&scrape, series),
            Some(value),
            "{series} in\n{scrape}"
        );
    }

    // A subscription's lag per partition: four records of one key, one acknowledged.
    let key = format!("LAG-{s}");
    let mut partition = None;
    for _ in 0..4 {
        let published = client
            .publish(authed(
                "q1-key",
                record("dossier.sync", &citizen_dossier(&key)),
            ))
            .await
            .unwrap()
            .into_inner();
        partition = published
            .placements
            .iter()
            .find(|p| p.topic == format!("t-city-{s}"))
            .map(|p| p.partition);
    }
    let mut reader = Consumer::open_at(
        &hub.grpc,
        "reader-key",
        subscription(&format!("t-city-{s}"), &format!("g-{s}")),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(
            reader
                .next(Duration::from_secs(30))
                .await
                .expect("four records"),
        );
    }
    reader.ack(&got[..1]).await;
    let lag = format!(
        r#"mekong_subscription_lag_records{{group="mekong:reader:g-{s}",topic="t-city-{s}",partition="{}"}}"#,
        partition.expect("a city copy")
    );
    wait_for_sample(&hub, &lag, Some(3.0), Duration::from_secs(30)).await;
    wait_for_sample(
        &hub,
        "mekong_subscriptions_active",
        Some(1.0),
        Duration::ZERO,
    )
    .await;
    reader.ack(&got[1..]).await;
    wait_for_sample(&hub, &lag, Some(0.0), Duration::from_secs(30)).await;
    // The stream ends: its series go with it.
    reader.close().await;
    wait_for_sample(&hub, &lag, None, Duration::from_secs(10)).await;
    wait_for_sample(
        &hub,
        "mekong_subscriptions_active",
        Some(0.0),
        Duration::from_secs(10),
    )
    .await;
}

async fn wait_for_status(url: &str, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = get(url).await;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{url}: still {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_broker() {
    let broker = PrivateBroker::start();
    let s = unique();
    let hub = serve(&broker.bootstrap, &s);
    let ready = format!("{}/readyz", http(&hub));
    wait_for_status(&ready, 200, Duration::from_secs(30)).await;

    broker.kill();
    let took = wait_for_status(&ready, 503, Duration::from_secs(30)).await;
    eprintln!("not ready {took:?} after the broker was killed");
    let (_, body) = get(&ready).await;
    assert!(body.starts_with("not ready"), "{body}");
    let (status, _) = get(&format!("{}/healthz", http(&hub))).await;
    assert_eq!(status, 200, "alive, though not ready");

    broker.restart();
    let took = wait_for_status(&ready, 200, Duration::from_secs(90)).await;
    eprintln!("ready {took:?} after the broker came back");
}

/// Every span object (one with a `traceId`) anywhere in an OTLP/JSON export.
fn spans(value: &serde_json::Value, found: &mut Vec<serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.contains_key("traceId") {
                found.push(value.clone());
            }
            map.values().for_each(|v| spans(v, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| spans(v, found)),
        _ => {}
    }
}

#[tokio::test]
async fn exported_spans_continue_the_publishers_trace() {
    use std::sync::{Arc, Mutex};
    let exports: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let received = Arc::clone(&exports);
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let received = Arc::clone(&received);
            async move {
                if let Ok(export) = serde_json::from_slice(&body) {
                    received.lock().unwrap().push(export);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let s = unique();
    let hub = serve_with(&kafka_bootstrap(), &s, &["--otlp-endpoint", &endpoint]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let mut client = IngestServiceClient::connect(format!("http://{}", hub.grpc))
        .await
        .unwrap();
    let mut request = authed(
        "q1-key",
        record("dossier.sync", &citizen_dossier(&format!("OT-{s}"))),
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent}-01").parse().unwrap(),
    );
    client.publish(request).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut found = Vec::new();
        for export in exports.lock().unwrap().iter() {
            spans(export, &mut found);
        }
        if let Some(span) = found
            .iter()
            .find(|s| s["traceId"] == trace_id && s["name"] == "publish")
        {
            assert_eq!(
                span["parentSpanId"], parent,
                "a child of the publisher's span: {span}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no publish span of trace {trace_id}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

//! `mekong-bench-deliver`: the delivery engine's throughput against a fast local HTTP target, as a
//! ratio to a baseline measured in the same process: the same payloads POSTed by a plain HTTP client
//! with the same number of requests in flight. The engine does more for each record (reads it from
//! Kafka, keeps per-key order, signs it, and writes an audit event that Kafka must acknowledge before
//! the record counts as done); the ratio says what that costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use mekong_adapters::AdapterPolicy;
use mekong_hub::{BackboneConfig, HubConfig, Seed, TopicDefaults};
use mekong_kafka::{Backbone, StoreSettings, TopicSettings, ensure_topics};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[derive(Parser)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long)]
    kafka: String,
    /// Records to deliver.
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// Distinct partition keys among them (records of one key are delivered in order).
    #[arg(long, default_value_t = 2_000)]
    keys: usize,
    /// Requests in flight: the adapter's `concurrency`, and the baseline's.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Sample payload.
    #[arg(long, default_value = "examples/hcmc/samples/dossier-sync.json")]
    sample: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sample = std::fs::read(&args.sample).context("reading the sample")?;
    let delivered = Arc::new(AtomicUsize::new(0));
    let target = serve_target(Arc::clone(&delivered)).await?;
    let url = format!("http://{target}/hook");

    // Baseline: the same POSTs from a plain client, `concurrency` at a time.
    let client = reqwest::Client::new();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, url, next, body) = (
                client.clone(),
                url.clone(),
                Arc::clone(&next),
                sample.clone(),
            );
            let records = args.records;
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < records {
                    let response = client.post(&url).body(body.clone()).send().await;
                    assert!(response.is_ok_and(|r| r.status().is_success()));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let baseline = started.elapsed();

    // The records, on a topic of their own, with the headers the hub writes.
    let suffix = uuid::Uuid::now_v7().simple().to_string()[20..].to_string();
    let topic = format!("bench-deliver-{suffix}");
    let backbone = Arc::new(Backbone::external(args.kafka.clone(), Vec::new()));
    let settings = TopicSettings {
        partitions: 3,
        replication: 1,
        max_message_bytes: 2 << 20,
        configs: &[],
    };
    ensure_topics(
        &backbone,
        &[topic.as_str()],
        settings,
        Duration::from_secs(30),
    )
    .await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.kafka)
        .set("linger.ms", "5")
        .create()?;
    let mut deliveries = Vec::with_capacity(args.records);
    for i in 0..args.records {
        let key = format!("key-{}", i % args.keys);
        let id = uuid::Uuid::now_v7().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_id",
                value: Some(&id),
            })
            .insert(Header {
                key: "ce_type",
                value: Some("dossier.sync"),
            })
            .insert(Header {
                key: "ce_source",
                value: Some("bench"),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            });
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&sample)
            .headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for d in deliveries {
        d.await?.map_err(|(e, _)| e)?;
    }

    // The engine: a webhook adapter reading that topic.
    let secret = std::env::temp_dir().join(format!("mekong-bench-secret-{suffix}"));
    std::fs::write(&secret, "bench-secret")?;
    let yaml = format!(
        "kind: Adapter\nname: bench-{suffix}\ntype: webhook\nfrom: [{topic}]\nendpoint: \"{url}\"\nconcurrency: {}\nauth: {{hmacSecret: \"file:{}\"}}\n",
        args.concurrency,
        secret.display()
    );
    delivered.store(0, Ordering::SeqCst);
    let started = Instant::now();
    // The real assembly, as `mekong adapters run` starts it: a store of its own, seeded with the
    // adapter; the operator allows the local target and the secret's directory.
    let hub = HubConfig {
        backbone: BackboneConfig::External {
            bootstrap: args.kafka.clone(),
            options: Vec::new(),
        },
        store: StoreSettings {
            topic: format!("_mekong.resources.bench-{suffix}"),
            replication: 1,
            ..StoreSettings::default()
        },
        seed: Some(Seed {
            sources: vec![("bench.yaml".into(), yaml)],
            actor: "mekong-bench-deliver".into(),
        }),
        topics: TopicDefaults {
            partitions: 3,
            replication: 1,
        },
        adapters: Some(AdapterPolicy {
            secrets_dirs: vec![std::env::temp_dir()],
            allowed_networks: vec!["127.0.0.0/8".parse()?],
            ..AdapterPolicy::default()
        }),
        ..HubConfig::default()
    }
    .start()
    .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    // Starting (topics, the consumer group's first assignment) is timed apart from delivering.
    while delivered.load(Ordering::SeqCst) == 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the engine delivered nothing in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let first_after = started.elapsed();
    let started = Instant::now();
    while delivered.load(Ordering::SeqCst) < args.records {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the engine did not deliver everything in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let engine_took = started.elapsed();
    hub.shutdown().await?;
    let _ = std::fs::remove_file(&secret);

    let rate = |d: Duration| args.records as f64 / d.as_secs_f64();
    println!("## Delivery engine (webhook adapter) against a local HTTP target\n");
    println!(
        "{} records of {} B, {} keys, {} requests in flight, target answers 204 at once.\n",
        args.records,
        sample.len(),
        args.keys,
        args.concurrency
    );
    println!("| Path | records/s | ratio |");
    println!("|---|---:|---:|");
    println!(
        "| baseline: plain HTTP client, same POSTs | {:.0} | 1.00 |",
        rate(baseline)
    );
    println!(
        "| engine: Kafka → lanes per key → signed POST → audit event acked | {:.0} | {:.2} |",
        rate(engine_took),
        baseline.as_secs_f64() / engine_took.as_secs_f64()
    );
    println!(
        "\nThe engine's first delivery came {:.2} s after it was started (topics, joining its consumer group); its rate is timed from then.",
        first_after.as_secs_f64()
    );
    Ok(())
}

/// A target that answers 204 at once and counts.
async fn serve_target(count: Arc<AtomicUsize>) -> anyhow::Result<std::net::SocketAddr> {
    let app = Router::new().route(
        "/hook",
        post(move || {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

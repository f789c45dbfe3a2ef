//! The benchmark harness (`mekong-bench`): throughput and latency of the Mekong gateway against a real Kafka broker,
//! compared with a raw rdkafka producer doing the same Kafka writes. Run it through
//! `deploy/bench.sh`, which builds, starts a private broker and passes its address here.
//!
//! Scenarios, all against the same broker in one run:
//!   baseline       rdkafka FutureProducer with the gateway's settings, the same payloads, keys,
//!                  headers and number of Kafka writes per record (one per routed copy), every
//!                  delivery awaited;
//!   baseline-audit the same plus one write of an audit event the size of `record.accepted`,
//!                  awaited with the copies: what the gateway asks of Kafka for an OK;
//!   Publish        unary calls with N requests in flight over a few HTTP/2 connections;
//!   HTTP           POST /v1/records/{type} (the HTTP API), N in flight over HTTP/1.1 keep-alive
//!                  connections: the same Publish behind JSON and problem documents;
//!   PublishStream  bidirectional streams, results correlated by request_id, in flight bounded;
//!   Consume        after those, a raw rdkafka consumer (the consume baseline) and one
//!                  SubscribeService.Consume stream each read the same N records of a topic the
//!                  gateway wrote, from the earliest offset (see consume.rs).
//!
//! The report (Markdown) goes to stdout; progress to stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use serde_json::Value;

macro_rules! progress {
    ($($t:tt)*) => { eprintln!("mekong-bench: {}", format!($($t)*)) };
}

mod consume;
mod gateway;
mod measure;
pub use measure::cpu_ticks;
mod payload;
mod publish;
mod report;

use consume::consume_scenarios;
use gateway::{peak_rss_mb, start_bare, start_gateway, stop_gateway};
use measure::Watched;
use payload::{NEXT, Template};
use publish::{Workload, authed, baseline, connect, http, status_text, stream, unary};
use report::Row;

#[derive(Parser, Debug)]
#[command(
    name = "mekong-bench",
    about = "Benchmark the Mekong gateway against a raw Kafka producer"
)]
pub struct Args {
    /// Kafka bootstrap servers of the broker to use (the gateway gets the same).
    #[arg(long)]
    pub kafka: String,
    /// The gateway binary.
    #[arg(long, default_value = "target/release/mekong")]
    pub gateway: PathBuf,
    /// The bare tonic server (the transport floor: an IngestService that does nothing).
    #[arg(long, default_value = "target/release/mekong-bench-bare")]
    pub bare: PathBuf,
    /// Resource directory for the gateway.
    #[arg(long, default_value = "examples/hcmc")]
    pub resources: PathBuf,
    /// Where the `baseline-audit` scenario writes its events (the gateway writes `_mekong.audit`).
    #[arg(long, default_value = mekong_core::AUDIT_TOPIC)]
    pub baseline_audit_topic: String,
    /// Keys of `mekong notary keygen`: the gateway seals its audit events with DIR/audit.key and
    /// runs a notary with DIR/signing.key, as a city deployment does (deploy/bench.sh makes them).
    #[arg(long, value_name = "DIR")]
    pub evidence_dir: Option<PathBuf>,
    /// Sample payload (JSON); each record is this with a distinct key field.
    #[arg(long, default_value = "examples/hcmc/samples/dossier-sync.json")]
    pub sample: PathBuf,
    #[arg(long, default_value = "dossier.sync")]
    pub record_type: String,
    /// JSON pointer of the record type's partition key (varied per record).
    #[arg(long, default_value = "/MaHoSo")]
    pub key_pointer: String,
    /// API key of the publishing client.
    #[arg(long, default_value = "q1-demo-key")]
    pub api_key: String,
    /// Name of that client (the baseline's `ce_source` header).
    #[arg(long, default_value = "q1-one-stop")]
    pub client: String,
    /// Topics the record type is routed to (the baseline writes one copy to each).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "hcmc.dossier.v1,dvcqg.dossier-sync.v1"
    )]
    pub topics: Vec<String>,
    /// Topics whose copy is redacted (the baseline sends them the redacted bytes).
    #[arg(long, value_delimiter = ',', default_value = "dvcqg.dossier-sync.v1")]
    pub redacted_topics: Vec<String>,
    /// Fields those copies lack.
    #[arg(long, value_delimiter = ',', default_value = "/SoDienThoai,/Email")]
    pub redact: Vec<String>,
    /// Partitions of the destination topics (the gateway creates them).
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Warm-up of each scenario (not measured).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Measured time of each scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Records in flight in the baseline (each is `topics` Kafka writes).
    #[arg(long, default_value_t = 4096)]
    pub baseline_in_flight: usize,
    /// Unary Publish scenarios: requests in flight.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub unary_in_flight: Vec<usize>,
    /// HTTP API scenario: requests in flight (each on its own keep-alive connection).
    #[arg(long, default_value_t = 64)]
    pub http_in_flight: usize,
    /// HTTP/2 connections the unary calls are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Concurrent PublishStream calls (each on its own connection).
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Records in flight over all PublishStream calls.
    #[arg(long, default_value_t = 1024)]
    pub stream_in_flight: usize,
    /// Scenarios to run: bare, baseline, baseline-audit, unary, http, stream, consume (ratios
    /// need the baseline, and the unary ones the bare server too).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bare,baseline,baseline-audit,unary,http,stream,consume"
    )]
    pub scenarios: Vec<String>,
    /// Consume: the topic read (one of the `topics`, so the publish scenarios fill it).
    #[arg(long, default_value = "hcmc.dossier.v1")]
    pub consume_topic: String,
    /// Consume: records each consumer reads; the topic is topped up through the gateway first
    /// when it holds fewer.
    #[arg(long, default_value_t = 200_000)]
    pub consume_records: u64,
    /// Consume: max_in_flight of the Consume stream.
    #[arg(long, default_value_t = 1024)]
    pub consume_in_flight: u32,
    /// Consume: API key of the subscribing client.
    #[arg(long, default_value = "dw-demo-key")]
    pub consume_api_key: String,
    /// Consume: librdkafka property of the raw consumer, e.g. queued.max.messages.kbytes=4096
    /// (repeatable).
    #[arg(long = "raw-consumer-option", value_name = "KEY=VALUE")]
    pub raw_consumer_options: Vec<String>,
    /// Extra librdkafka property of the gateway (`serve --kafka-option`), e.g.
    /// fetch.queue.backoff.ms=10 (repeatable).
    #[arg(long = "gateway-kafka-option", value_name = "KEY=VALUE")]
    pub gateway_kafka_options: Vec<String>,
    /// Extra environment of the gateway process, e.g. MEKONG_LOG=warn (repeatable).
    #[arg(long = "gateway-env", value_name = "KEY=VALUE")]
    pub gateway_env: Vec<String>,
    /// Where the gateway's stderr (its log) goes; default: inherited.
    #[arg(long)]
    pub gateway_log: Option<PathBuf>,
    /// Pid of the Kafka broker, to report its CPU use.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Kafka version, for the report.
    #[arg(long, default_value = "4.4.0")]
    pub kafka_version: String,
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let args = Arc::new(args);
    let sample_text = std::fs::read(&args.sample)
        .with_context(|| format!("cannot read the sample {}", args.sample.display()))?;
    let sample: Value = serde_json::from_slice(&sample_text).context("the sample is not JSON")?;
    let full = Template::new(&sample, &args.key_pointer, &[])?;
    let redacted = Template::new(&sample, &args.key_pointer, &args.redact)?;
    progress!(
        "payload {} bytes (redacted copy {} bytes), {} Kafka writes per record",
        full.len(),
        redacted.len(),
        args.topics.len()
    );

    let work = Arc::new(Workload {
        args: Arc::clone(&args),
        full,
        redacted,
        schema_version: "1".into(),
    });
    // The transport floor first, alone on the machine: the same load against a server that does
    // nothing.
    let mut rows = Vec::new();
    if args.scenarios.iter().any(|s| s == "bare") {
        rows.extend(bare_scenarios(&work).await?);
    }

    let gateway = start_gateway(&args).await?;
    progress!("gateway pid {} listening on {}", gateway.pid, gateway.addr);
    let watched_gateway = Watched {
        gateway: Some(gateway.pid),
        broker: args.broker_pid,
    };

    // One record through the gateway first: it must be accepted and land on the expected topics.
    let probe_channel = connect(&gateway.addr).await?;
    let probe = authed(
        &args.api_key,
        work.request(NEXT.fetch_add(1, Ordering::Relaxed), String::new()),
    );
    let response = IngestServiceClient::new(probe_channel.clone())
        .publish(probe)
        .await
        .map_err(|s| anyhow::anyhow!("the gateway refused the probe record: {}", status_text(&s)))?
        .into_inner();
    let mut landed: Vec<&str> = response
        .placements
        .iter()
        .map(|p| p.topic.as_str())
        .collect();
    let mut expected: Vec<&str> = args.topics.iter().map(String::as_str).collect();
    landed.sort();
    expected.sort();
    if landed != expected {
        bail!(
            "the probe record landed on {landed:?}, the baseline would write to {expected:?}: fix --topics"
        );
    }
    progress!(
        "probe record {} landed on {:?}",
        response.record_id,
        response.placements
    );

    // The baseline first: the first row named `Baseline` is what ratios are taken against.
    for (scenario, with_event) in [("baseline", false), ("baseline-audit", true)] {
        if !args.scenarios.iter().any(|s| s == scenario) {
            continue;
        }
        progress!(
            "{scenario}: raw rdkafka producer, {} records in flight",
            args.baseline_in_flight
        );
        let stats = baseline(Arc::clone(&work), watched_gateway, with_event).await?;
        progress!(
            "{scenario}: {:.0} records/s, {} errors",
            stats.rate(),
            stats.error_count()
        );
        rows.push(Row {
            name: if with_event {
                format!(
                    "Baseline + awaited audit event: rdkafka FutureProducer, {} writes/record, all awaited",
                    args.topics.len() + 1
                )
            } else {
                format!(
                    "Baseline: rdkafka FutureProducer, {} writes/record, all awaited",
                    args.topics.len()
                )
            },
            in_flight: args.baseline_in_flight.to_string(),
            stats,
        });
    }

    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&gateway.addr).await?);
    }
    let channels = Arc::new(channels);
    let unary_in_flight = if args.scenarios.iter().any(|s| s == "unary") {
        args.unary_in_flight.clone()
    } else {
        vec![]
    };
    for &in_flight in &unary_in_flight {
        progress!(
            "Publish (unary): {in_flight} in flight over {} connections",
            channels.len()
        );
        let stats = unary(
            Arc::clone(&work),
            Arc::clone(&channels),
            in_flight,
            watched_gateway,
        )
        .await;
        progress!(
            "Publish@{in_flight}: {:.0} records/s, {} errors",
            stats.rate(),
            stats.error_count()
        );
        rows.push(Row {
            name: format!("Publish (unary), {} connections", channels.len()),
            in_flight: in_flight.to_string(),
            stats,
        });
    }

    if args.scenarios.iter().any(|s| s == "http") {
        let in_flight = args.http_in_flight;
        progress!("HTTP POST /v1/records: {in_flight} in flight");
        let stats = http(Arc::clone(&work), &gateway.addr, in_flight, watched_gateway).await;
        progress!(
            "HTTP@{in_flight}: {:.0} records/s, {} errors",
            stats.rate(),
            stats.error_count()
        );
        rows.push(Row {
            name: "HTTP POST /v1/records/{type}, HTTP/1.1 keep-alive".into(),
            in_flight: in_flight.to_string(),
            stats,
        });
    }

    let mut stream_channels = Vec::new();
    let streams_wanted = if args.scenarios.iter().any(|s| s == "stream") {
        args.streams.max(1)
    } else {
        0
    };
    for _ in 0..streams_wanted {
        stream_channels.push(connect(&gateway.addr).await?);
    }
    let streams = stream_channels.len();
    if streams > 0 {
        progress!(
            "PublishStream: {streams} stream(s), {} records in flight",
            args.stream_in_flight
        );
        let stats = stream(
            Arc::clone(&work),
            stream_channels,
            args.stream_in_flight,
            watched_gateway,
        )
        .await;
        progress!(
            "PublishStream: {:.0} records/s, {} errors",
            stats.rate(),
            stats.error_count()
        );
        rows.push(Row {
            name: format!(
                "PublishStream, {streams} stream{}",
                if streams == 1 { "" } else { "s" }
            ),
            in_flight: args.stream_in_flight.to_string(),
            stats,
        });
    }

    let consume_rows = if args.scenarios.iter().any(|s| s == "consume") {
        consume_scenarios(&args, &work, &gateway.addr, watched_gateway).await?
    } else {
        vec![]
    };

    let rss = peak_rss_mb(gateway.pid);
    stop_gateway(gateway).await;

    let (out, errors_total) = report::markdown(&args, &work, &mut rows, &consume_rows, rss);
    print!("{out}");

    for row in &rows {
        for (e, n) in &row.stats.errors {
            progress!("{}: {n} × {e}", row.name);
        }
    }
    for row in &consume_rows {
        for (e, n) in &row.stats.errors {
            progress!("{}: {n} × {e}", row.name);
        }
    }
    Ok(errors_total > 0)
}

/// Unary Publish at each `--unary-in-flight`, and one PublishStream, against the bare tonic server.
async fn bare_scenarios(work: &Arc<Workload>) -> anyhow::Result<Vec<Row>> {
    let args = &work.args;
    let bare = start_bare(args).await?;
    progress!(
        "bare tonic server pid {} listening on {}",
        bare.pid,
        bare.addr
    );
    let watched = Watched {
        gateway: Some(bare.pid),
        broker: args.broker_pid,
    };
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&bare.addr).await?);
    }
    let channels = Arc::new(channels);
    let mut rows = Vec::new();
    for &in_flight in &args.unary_in_flight {
        let stats = unary(Arc::clone(work), Arc::clone(&channels), in_flight, watched).await;
        progress!("bare Publish@{in_flight}: {:.0} records/s", stats.rate());
        rows.push(Row {
            name: format!(
                "Bare tonic (no work): Publish (unary), {} connections",
                channels.len()
            ),
            in_flight: in_flight.to_string(),
            stats,
        });
    }
    let stats = stream(
        Arc::clone(work),
        vec![connect(&bare.addr).await?],
        args.stream_in_flight,
        watched,
    )
    .await;
    progress!("bare PublishStream: {:.0} records/s", stats.rate());
    rows.push(Row {
        name: "Bare tonic (no work): PublishStream, 1 stream".into(),
        in_flight: args.stream_in_flight.to_string(),
        stats,
    });
    stop_gateway(bare).await;
    Ok(rows)
}

//! The Consume scenarios: reading N records of a topic the gateway wrote, from the earliest offset,
//! with a fresh consumer group each.
//!
//!   raw consumer   rdkafka `StreamConsumer` with librdkafka's defaults (but the gateway's group
//!                  settings), copying each record's key, payload and headers out (as the gateway
//!                  does) and committing positions asynchronously every `ACK_BATCH` records; no gRPC;
//!   Consume        one `SubscribeService.Consume` stream, `max_in_flight` records unacknowledged at
//!                  most, acknowledging in batches as records arrive.
//!
//! Throughput is measured from the first record received to the N-th, so the time a fresh group
//! takes to form is left out (it is reported separately as the time to the first record).

use crate::Args;
use crate::measure::{CpuUse, Watched, cpu_ticks};
use crate::payload::NEXT;
use crate::publish::connect;
use crate::publish::{Workload, authed, status_text};
use crate::report::fmt_cores;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::FutureExt;
use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_proto::v1::subscribe_service_client::SubscribeServiceClient;
use mekong_proto::v1::{
    Ack, ConsumeRequest, Cursor, PublishRequest, StartFrom, Subscription, consume_request,
    publish_result,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::Semaphore;
use tonic::transport::Channel;
use uuid::Uuid;

/// Records acknowledged (gateway) or committed (raw consumer) at once, at most.
pub const ACK_BATCH: usize = 256;
/// A scenario gives up when no record arrives for this long.
const STALL: Duration = Duration::from_secs(60);

/// What one Consume scenario measured.
#[derive(Default)]
pub struct ConsumeStats {
    /// Records received (at most the N asked for).
    pub records: u64,
    pub payload_bytes: u64,
    /// From subscribing to the first record.
    pub first_record: Option<Duration>,
    /// From the first record to the last.
    pub elapsed: Duration,
    /// Errors, by message (a record delivered out of order per partition is one).
    pub errors: BTreeMap<String, u64>,
    pub cpu: CpuUse,
}

impl ConsumeStats {
    pub fn rate(&self) -> f64 {
        if self.records < 2 || self.elapsed.is_zero() {
            return f64::NAN;
        }
        (self.records - 1) as f64 / self.elapsed.as_secs_f64()
    }
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
    fn error(&mut self, e: String) {
        *self.errors.entry(e).or_default() += 1;
    }
}

/// Counts records, times the window from the first to the last, samples CPU over it, and checks
/// that offsets grow within each partition.
struct Meter {
    watched: Watched,
    wanted: u64,
    subscribed: Instant,
    first: Option<(Instant, [Option<u64>; 3])>,
    last_offsets: HashMap<i32, i64>,
    stats: ConsumeStats,
}

impl Meter {
    fn new(watched: Watched, wanted: u64) -> Meter {
        Meter {
            watched,
            wanted,
            subscribed: Instant::now(),
            first: None,
            last_offsets: HashMap::new(),
            stats: ConsumeStats::default(),
        }
    }
    fn pids(&self) -> [Option<u32>; 3] {
        [
            self.watched.gateway,
            self.watched.broker,
            Some(std::process::id()),
        ]
    }
    /// Counts one record; true once N have arrived.
    fn record(&mut self, partition: i32, offset: i64, payload_len: usize) -> bool {
        if self.first.is_none() {
            let now = Instant::now();
            self.stats.first_record = Some(now - self.subscribed);
            self.first = Some((now, self.pids().map(|p| p.and_then(cpu_ticks))));
        }
        if let Some(previous) = self.last_offsets.insert(partition, offset)
            && previous >= offset
        {
            self.stats.error(format!(
                "offset not increasing within a partition ({previous} then {offset})"
            ));
        }
        self.stats.records += 1;
        self.stats.payload_bytes += payload_len as u64;
        self.stats.records >= self.wanted
    }
    fn done(mut self) -> ConsumeStats {
        if let Some((from, before)) = self.first {
            let secs = from.elapsed().as_secs_f64();
            self.stats.elapsed = from.elapsed();
            let used: Vec<Option<f64>> = self
                .pids()
                .iter()
                .zip(before)
                .map(|(p, b)| {
                    Some((p.and_then(cpu_ticks)?.saturating_sub(b?)) as f64 / 100.0 / secs)
                })
                .collect();
            self.stats.cpu = CpuUse {
                gateway: used[0],
                broker: used[1],
                bench: used[2],
            };
        }
        if self.stats.records < self.wanted {
            self.stats.error(format!(
                "read {} of {} records",
                self.stats.records, self.wanted
            ));
        }
        self.stats
    }
}

/// Records in a topic (sum over its partitions of high − low watermark).
pub fn records_in(kafka: &str, topic: &str) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .create()
        .context("cannot create a metadata client")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("cannot read the metadata of {topic}"))?;
    let mut total = 0;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .with_context(|| format!("cannot read the watermarks of {topic}/{}", p.id()))?;
            total += (high - low).max(0) as u64;
        }
    }
    Ok(total)
}

/// Publishes `count` records through one PublishStream, so the topic has enough to read.
pub async fn fill(work: Arc<Workload>, channel: Channel, count: u64) -> anyhow::Result<()> {
    let in_flight = 1024;
    let (mut tx, rx) = futures::channel::mpsc::channel::<PublishRequest>(in_flight);
    let request = authed(&work.args.api_key, rx);
    let mut inbound = IngestServiceClient::new(channel)
        .publish_stream(request)
        .await
        .map_err(|s| anyhow::anyhow!("PublishStream: {}", status_text(&s)))?
        .into_inner();
    let permits = Arc::new(Semaphore::new(in_flight));
    let sender = {
        let (permits, work) = (Arc::clone(&permits), Arc::clone(&work));
        tokio::spawn(async move {
            use futures::SinkExt;
            for _ in 0..count {
                let Ok(permit) = permits.acquire().await else {
                    break;
                };
                permit.forget();
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if tx.send(work.request(n, n.to_string())).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut published = 0;
    while let Some(result) = inbound
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("PublishStream: {}", status_text(&s)))?
    {
        permits.add_permits(1);
        match result.outcome {
            Some(publish_result::Outcome::Published(_)) => published += 1,
            Some(publish_result::Outcome::Error(e)) => {
                anyhow::bail!("filling: RecordError {}: {}", e.code, e.message)
            }
            None => anyhow::bail!("filling: a result without an outcome"),
        }
    }
    let _ = sender.await;
    anyhow::ensure!(
        published == count,
        "filling: {published} of {count} records published"
    );
    Ok(())
}

/// The baseline: a raw rdkafka consumer reading `wanted` records from the earliest offset.
pub async fn raw(
    kafka: &str,
    options: &[String],
    topic: &str,
    wanted: u64,
    watched: Watched,
) -> ConsumeStats {
    // librdkafka's defaults, as an integrator reading Kafka directly would have them, but for the
    // group settings the gateway's consumer has too (crates/mekong-kafka/src/subscription.rs).
    // Unlike the gateway's, its prefetch is not bounded (queued.max.messages.kbytes).
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka)
        .set("group.id", format!("mekong-bench-raw-{}", Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range");
    for (k, v) in options.iter().filter_map(|kv| kv.split_once('=')) {
        config.set(k, v);
    }
    let consumer: StreamConsumer = match config.create() {
        Ok(c) => c,
        Err(e) => {
            let mut stats = ConsumeStats::default();
            stats.error(format!("cannot create the consumer: {e}"));
            return stats;
        }
    };
    let mut meter = Meter::new(watched, wanted);
    if let Err(e) = consumer.subscribe(&[topic]) {
        meter.stats.error(format!("subscribe: {e}"));
        return meter.done();
    }
    let mut positions: HashMap<i32, i64> = HashMap::new();
    let mut uncommitted = 0;
    loop {
        let message = match tokio::time::timeout(STALL, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                meter.stats.error(format!("recv: {e}"));
                continue;
            }
            Err(_) => {
                meter.stats.error(format!("no record for {STALL:?}"));
                break;
            }
        };
        // What the gateway copies out of each message.
        let key = message.key().unwrap_or_default().to_vec();
        let payload = message.payload().unwrap_or_default().to_vec();
        let headers: Vec<(String, Vec<u8>)> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        std::hint::black_box((&key, &headers));
        let (partition, offset) = (message.partition(), message.offset());
        drop(message);
        positions.insert(partition, offset + 1);
        uncommitted += 1;
        if uncommitted >= ACK_BATCH {
            commit(&consumer, topic, &positions);
            uncommitted = 0;
        }
        if meter.record(partition, offset, payload.len()) {
            break;
        }
    }
    let stats = meter.done();
    commit(&consumer, topic, &positions);
    consumer.unsubscribe();
    stats
}

fn commit(consumer: &StreamConsumer, topic: &str, positions: &HashMap<i32, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (&partition, &position) in positions {
        let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(position));
    }
    let _ = consumer.commit(&tpl, CommitMode::Async);
}

/// The gateway: one Consume stream reading `wanted` records from the earliest offset.
pub async fn gateway(
    channel: Channel,
    api_key: &str,
    topic: &str,
    max_in_flight: u32,
    wanted: u64,
    watched: Watched,
) -> ConsumeStats {
    let mut meter = Meter::new(watched, wanted);
    let (requests, request_stream) = futures::channel::mpsc::unbounded();
    let send = |request| {
        let _ = requests.unbounded_send(ConsumeRequest {
            request: Some(request),
        });
    };
    send(consume_request::Request::Subscribe(Subscription {
        topic: topic.to_owned(),
        group: format!("bench-{}", Uuid::now_v7()),
        start_from: StartFrom::Earliest.into(),
        start_time_ms: 0,
        record_types: vec![],
        max_in_flight,
    }));
    let request = authed(api_key, request_stream);
    let mut client = SubscribeServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut inbound = match client.consume(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            meter
                .stats
                .error(format!("Consume: {}", status_text(&status)));
            return meter.done();
        }
    };
    let mut unacked: Vec<Cursor> = Vec::with_capacity(ACK_BATCH);
    let ack = |unacked: &mut Vec<Cursor>| {
        if !unacked.is_empty() {
            let cursors = std::mem::replace(unacked, Vec::with_capacity(ACK_BATCH));
            send(consume_request::Request::Ack(Ack { cursors }));
        }
    };
    loop {
        // Acknowledge what arrived as soon as nothing more is ready (or a batch is full).
        let next = match inbound.message().now_or_never() {
            Some(next) => next,
            None => {
                ack(&mut unacked);
                match tokio::time::timeout(STALL, inbound.message()).await {
                    Ok(next) => next,
                    Err(_) => {
                        meter.stats.error(format!("no record for {STALL:?}"));
                        break;
                    }
                }
            }
        };
        match next {
            Ok(Some(record)) => {
                let cursor = record.cursor.unwrap_or_default();
                let done = meter.record(cursor.partition, cursor.offset, record.payload.len());
                unacked.push(cursor);
                if done {
                    break;
                }
                if unacked.len() >= ACK_BATCH {
                    ack(&mut unacked);
                }
            }
            Ok(None) => {
                meter.stats.error("the server ended the stream".into());
                break;
            }
            Err(status) => {
                meter
                    .stats
                    .error(format!("Consume ended: {}", status_text(&status)));
                break;
            }
        }
    }
    let stats = meter.done();
    // Acknowledge the rest, end the request stream and let the server end its side.
    ack(&mut unacked);
    drop(requests);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = inbound.message().await {}
    })
    .await;
    stats
}

pub(crate) struct ConsumeRow {
    pub(crate) name: String,
    pub(crate) in_flight: String,
    pub(crate) stats: ConsumeStats,
}

/// The raw consumer, then one Consume stream, each reading the same number of records from the
/// earliest offset of `--consume-topic` with a group of its own.
pub(crate) async fn consume_scenarios(
    args: &Arc<Args>,
    work: &Arc<Workload>,
    addr: &str,
    watched: Watched,
) -> anyhow::Result<Vec<ConsumeRow>> {
    let topic = &args.consume_topic;
    let wanted = args.consume_records;
    let present = records_in(&args.kafka, topic)?;
    if present < wanted {
        progress!(
            "Consume: {topic} holds {present} records; publishing {} more through the gateway",
            wanted - present
        );
        fill(Arc::clone(work), connect(addr).await?, wanted - present).await?;
    }
    progress!("Consume baseline: raw rdkafka StreamConsumer reads {wanted} records of {topic}");
    let raw = raw(
        &args.kafka,
        &args.raw_consumer_options,
        topic,
        wanted,
        watched,
    )
    .await;
    progress!(
        "Consume baseline: {:.0} records/s, {} errors",
        raw.rate(),
        raw.error_count()
    );
    progress!(
        "Consume: one stream, max_in_flight {}, reads {wanted} records of {topic}",
        args.consume_in_flight
    );
    let gateway = gateway(
        connect(addr).await?,
        &args.consume_api_key,
        topic,
        args.consume_in_flight,
        wanted,
        watched,
    )
    .await;
    progress!(
        "Consume: {:.0} records/s, {} errors",
        gateway.rate(),
        gateway.error_count()
    );
    Ok(vec![
        ConsumeRow {
            name: "Baseline: rdkafka StreamConsumer".into(),
            in_flight: "–".into(),
            stats: raw,
        },
        ConsumeRow {
            name: "Consume, 1 stream".into(),
            in_flight: args.consume_in_flight.to_string(),
            stats: gateway,
        },
    ])
}

/// The Consume table; returns the ratio of the Consume stream to the raw consumer.
pub(crate) fn consume_report(
    args: &Args,
    rows: &[ConsumeRow],
    line: &mut impl FnMut(String),
) -> f64 {
    let Some(base) = rows.first().map(|r| r.stats.rate()) else {
        return f64::NAN;
    };
    line(format!(
        "Consume: each reads {} records of `{}` ({} partitions, written by the publish scenarios above, topped up through the gateway when short) from the \
         earliest offset with a fresh consumer group. Records/s from the first record to the last; the time \
         to the first record (group join, first fetch) is left out and shown apart. The baseline is a raw \
         rdkafka `StreamConsumer` with librdkafka's defaults{}, copying key, payload and headers out \
         of each message and committing asynchronously every {} records; the Consume stream acknowledges \
         in batches as records arrive (at most {} per `Ack`){}.",
        args.consume_records,
        args.consume_topic,
        args.partitions,
        if args.raw_consumer_options.is_empty() {
            String::new()
        } else {
            format!(" and {}", code_list(&args.raw_consumer_options))
        },
        ACK_BATCH,
        ACK_BATCH,
        if args.gateway_kafka_options.is_empty() {
            String::new()
        } else {
            format!(
                "; the gateway runs with `--kafka-option` {}",
                code_list(&args.gateway_kafka_options)
            )
        },
    ));
    line(String::new());
    line("| Scenario | In flight | Records | Records/s | Payload MB/s | First record after (s) | Errors | vs baseline | CPU gateway / broker / bench (cores) | Gateway CPU per record (µs) |".into());
    line("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|".into());
    for (i, row) in rows.iter().enumerate() {
        let stats = &row.stats;
        let rate = stats.rate();
        let baseline = i == 0;
        let cpu = stats.cpu;
        line(format!(
            "| {} | {} | {} | {:.0} | {:.1} | {} | {} | {:.2} | {} / {} / {} | {} |",
            row.name,
            row.in_flight,
            stats.records,
            rate,
            stats.payload_bytes as f64 / 1e6 / stats.elapsed.as_secs_f64(),
            stats
                .first_record
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .unwrap_or_else(|| "–".into()),
            stats.error_count(),
            rate / base,
            if baseline {
                "–".into()
            } else {
                fmt_cores(cpu.gateway)
            },
            fmt_cores(cpu.broker),
            fmt_cores(cpu.bench),
            match (baseline, cpu.gateway, cpu.bench) {
                (true, _, Some(b)) => format!("– (consumer process: {:.1})", b * 1e6 / rate),
                (false, Some(g), _) => format!("{:.1}", g * 1e6 / rate),
                _ => "–".into(),
            },
        ));
    }
    line(String::new());
    rows.get(1)
        .map(|r| r.stats.rate() / base)
        .unwrap_or(f64::NAN)
}

pub(crate) fn code_list(items: &[String]) -> String {
    items
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

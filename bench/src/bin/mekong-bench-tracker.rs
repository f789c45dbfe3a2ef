//! `mekong-bench-tracker`: records per second through a whole deadline tracker on a real broker
//! (read, the rules, the store, one transaction per partition per round with events, changelog and
//! offsets), against a plain read_committed consumer reading and parsing the same records in the
//! same process. N dossiers are written first (half open a deadline, half close it: `met`), then
//! the hub assembly starts with one Deadline and the group's committed offsets are watched until
//! they reach the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mekong_hub::{BackboneConfig, HubConfig, Seed, TopicDefaults};
use mekong_kafka::{Backbone, StoreSettings, TopicSettings, ensure_topics, group_lag};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

#[derive(Parser)]
struct Args {
    /// Bootstrap servers of the broker.
    #[arg(long, env = "MEKONG_KAFKA")]
    kafka: String,
    /// Records written (two per dossier).
    #[arg(long, default_value_t = 100_000)]
    records: usize,
}

const PARTITIONS: i32 = 3;

fn ticks() -> u64 {
    mekong_bench::cpu_ticks(std::process::id()).unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let id = uuid::Uuid::now_v7().simple().to_string();
    let topic = format!("bench-dl-{id}");
    let runtime = tokio::runtime::Runtime::new()?;
    let backbone = Arc::new(Backbone::external(args.kafka.clone(), Vec::new()));
    runtime.block_on(ensure_topics(
        &backbone,
        &[topic.as_str()],
        TopicSettings {
            partitions: PARTITIONS,
            replication: 1,
            max_message_bytes: 1 << 20,
            configs: &[],
        },
        Duration::from_secs(30),
    ))?;

    // The dossiers: each opened, then closed before its due time.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.kafka)
        .set("linger.ms", "5")
        .create()?;
    let sample: serde_json::Value =
        serde_json::from_slice(&std::fs::read("examples/hcmc/samples/dossier-sync.json")?)?;
    for n in 0..args.records {
        let key = format!("H29-{:08}", n / 2);
        let mut record = sample.clone();
        record["MaHoSo"] = key.clone().into();
        record["NgayHenTra"] = "20991231163000".into();
        if n % 2 == 1 {
            record["NgayKetThucXuLy"] = "20261201090000".into();
        }
        let payload = serde_json::to_vec(&record)?;
        let record_id = uuid::Uuid::now_v7().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_type",
                value: Some("dossier.sync"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(&record_id),
            })
            .insert(Header {
                key: "ce_source",
                value: Some("q1-one-stop"),
            });
        let mut pending = BaseRecord::to(&topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        while let Err((e, back)) = producer.send(pending) {
            if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                anyhow::bail!("writing the dossiers: {e}");
            }
            pending = back;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    producer.flush(Duration::from_secs(60))?;

    // The baseline: read and parse every record, read_committed, as the tracker does.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.kafka)
        .set("group.id", format!("bench-{id}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(&topic, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let (started, cpu) = (Instant::now(), ticks());
    let mut read = 0;
    while read < args.records {
        if let Some(m) = consumer.poll(Duration::from_secs(10)) {
            let m = m?;
            let _: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
            read += 1;
        }
    }
    let baseline = args.records as f64 / started.elapsed().as_secs_f64();
    let baseline_cpu = (ticks() - cpu) as f64 * 10_000.0 / args.records as f64;
    drop(consumer);

    // The tracker, in the hub assembly.
    let resources = format!(
        r#"
kind: RecordType
name: dossier.sync
key: /MaHoSo
schema: {{type: object}}
---
kind: Route
name: city
match: {{types: [dossier.sync]}}
to: [{{topic: "{topic}"}}]
---
kind: Deadline
name: bench-{id}
track: [dossier.sync]
from: "{topic}"
due: /NgayHenTra
done: 'has(data.NgayKetThucXuLy) || data.TrangThaiHoSo in [4, 5]'
unit: /DonViXuLy
to: "{topic}.deadlines"
"#
    );
    let hub = runtime.block_on(
        HubConfig {
            backbone: BackboneConfig::External {
                bootstrap: args.kafka.clone(),
                options: Vec::new(),
            },
            store: StoreSettings {
                topic: format!("_mekong.resources.bench-{id}"),
                replication: 1,
                ..StoreSettings::default()
            },
            seed: Some(Seed {
                sources: vec![("bench.yaml".into(), resources)],
                actor: "bench".into(),
            }),
            topics: TopicDefaults {
                partitions: PARTITIONS,
                replication: 1,
            },
            deadlines: Some(mekong_deadlines::TrackerSettings::default()),
            ..HubConfig::default()
        }
        .start(),
    )?;
    let group = mekong_core::deadline::tracker_group(&format!("bench-{id}"));
    let topics = [topic.clone()];
    // A sample that times out (the broker busy with the tracker's transactions) is taken again.
    let left = || -> anyhow::Result<i64> {
        for _ in 0..5 {
            if let Ok(lag) = group_lag(&backbone, &group, &topics, Duration::from_secs(10)) {
                return Ok(lag.iter().map(|(_, _, lag)| lag).sum());
            }
        }
        anyhow::bail!("cannot read the tracker group's offsets")
    };
    // From the first commit (the group joined, the partitions taken) to the last.
    let until = Instant::now() + Duration::from_secs(600);
    let (from, cpu, left_at_start) = loop {
        let n = left()?;
        if n < args.records as i64 {
            break (Instant::now(), ticks(), n);
        }
        anyhow::ensure!(Instant::now() < until, "the tracker committed nothing");
        std::thread::sleep(Duration::from_millis(20));
    };
    while left()? > 0 {
        anyhow::ensure!(Instant::now() < until, "the tracker did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let tracked = left_at_start as f64 / from.elapsed().as_secs_f64();
    let tracker_cpu = (ticks() - cpu) as f64 * 10_000.0 / left_at_start as f64;
    runtime.block_on(hub.shutdown())?;

    println!(
        "records: {} ({} dossiers opened and met)",
        args.records,
        args.records / 2
    );
    println!(
        "baseline (read_committed read + JSON parse): {baseline:.0} records/s, {baseline_cpu:.1} µs CPU per record"
    );
    println!(
        "tracker (read, rules, store, transactions): {tracked:.0} records/s, {tracker_cpu:.1} µs CPU per record (the whole process)"
    );
    println!("ratio: {:.2} ×", tracked / baseline);
    Ok(())
}

//! `mekong-bench`: throughput and latency of the Mekong gateway against a real Kafka broker,
//! compared with a raw rdkafka producer doing the same Kafka writes. Run it through
//! `deploy/bench.sh`, which builds, starts a private broker and passes its address here.
//!
//! Scenarios, all against the same broker in one run:
//!   baseline       rdkafka FutureProducer with the gateway's settings, the same payloads, keys,
//!                  headers and number of Kafka writes per record (one per routed copy), every
//!                  delivery awaited;
//!   Publish        unary calls with N requests in flight over a few HTTP/2 connections;
//!   PublishStream  bidirectional streams, results correlated by request_id, in flight bounded;
//!   Consume        after those, a raw rdkafka consumer (the consume baseline) and one
//!                  SubscribeService.Consume stream each read the same N records of a topic the
//!                  gateway wrote, from the earliest offset (see consume.rs).
//!
//! The report (Markdown) goes to stdout; progress to stderr.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Parser;
use futures::SinkExt;
use mekong_core::JsonPointer;
use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_proto::v1::{PublishRequest, PublishResponse, publish_result};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(
    name = "mekong-bench",
    about = "Benchmark the Mekong gateway against a raw Kafka producer"
)]
struct Args {
    /// Kafka bootstrap servers of the broker to use (the gateway gets the same).
    #[arg(long)]
    kafka: String,
    /// The gateway binary.
    #[arg(long, default_value = "target/release/mekong")]
    gateway: PathBuf,
    /// Resource directory for the gateway.
    #[arg(long, default_value = "examples/hcmc")]
    resources: PathBuf,
    /// Sample payload (JSON); each record is this with a distinct key field.
    #[arg(long, default_value = "examples/hcmc/samples/dossier-sync.json")]
    sample: PathBuf,
    #[arg(long, default_value = "dossier.sync")]
    record_type: String,
    /// JSON pointer of the record type's partition key (varied per record).
    #[arg(long, default_value = "/MaHoSo")]
    key_pointer: String,
    /// API key of the publishing client.
    #[arg(long, default_value = "q1-demo-key")]
    api_key: String,
    /// Name of that client (the baseline's `ce_source` header).
    #[arg(long, default_value = "q1-one-stop")]
    client: String,
    /// Topics the record type is routed to (the baseline writes one copy to each).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "hcmc.dossier.v1,dvcqg.dossier-sync.v1"
    )]
    topics: Vec<String>,
    /// Topics whose copy is redacted (the baseline sends them the redacted bytes).
    #[arg(long, value_delimiter = ',', default_value = "dvcqg.dossier-sync.v1")]
    redacted_topics: Vec<String>,
    /// Fields those copies lack.
    #[arg(long, value_delimiter = ',', default_value = "/SoDienThoai,/Email")]
    redact: Vec<String>,
    /// Partitions of the destination topics (the gateway creates them).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Warm-up of each scenario (not measured).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Measured time of each scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Records in flight in the baseline (each is `topics` Kafka writes).
    #[arg(long, default_value_t = 4096)]
    baseline_in_flight: usize,
    /// Unary Publish scenarios: requests in flight.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    unary_in_flight: Vec<usize>,
    /// HTTP/2 connections the unary calls are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Concurrent PublishStream calls (each on its own connection).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Records in flight over all PublishStream calls.
    #[arg(long, default_value_t = 1024)]
    stream_in_flight: usize,
    /// Scenarios to run: baseline, unary, stream, consume (ratios need the baseline).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "baseline,unary,stream,consume"
    )]
    scenarios: Vec<String>,
    /// Consume: the topic read (one of the `topics`, so the publish scenarios fill it).
    #[arg(long, default_value = "hcmc.dossier.v1")]
    consume_topic: String,
    /// Consume: records each consumer reads; the topic is topped up through the gateway first
    /// when it holds fewer.
    #[arg(long, default_value_t = 200_000)]
    consume_records: u64,
    /// Consume: max_in_flight of the Consume stream.
    #[arg(long, default_value_t = 1024)]
    consume_in_flight: u32,
    /// Consume: API key of the subscribing client.
    #[arg(long, default_value = "dw-demo-key")]
    consume_api_key: String,
    /// Consume: librdkafka property of the raw consumer, e.g. queued.max.messages.kbytes=4096
    /// (repeatable).
    #[arg(long = "raw-consumer-option", value_name = "KEY=VALUE")]
    raw_consumer_options: Vec<String>,
    /// Extra librdkafka property of the gateway (`serve --kafka-option`), e.g.
    /// fetch.queue.backoff.ms=10 (repeatable).
    #[arg(long = "gateway-kafka-option", value_name = "KEY=VALUE")]
    gateway_kafka_options: Vec<String>,
    /// Extra environment of the gateway process, e.g. MEKONG_LOG=warn (repeatable).
    #[arg(long = "gateway-env", value_name = "KEY=VALUE")]
    gateway_env: Vec<String>,
    /// Where the gateway's stderr (its log) goes; default: inherited.
    #[arg(long)]
    gateway_log: Option<PathBuf>,
    /// Pid of the Kafka broker, to report its CPU use.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Kafka version, for the report.
    #[arg(long, default_value = "4.4.0")]
    kafka_version: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let failed = runtime.block_on(run(args))?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

macro_rules! progress {
    ($($t:tt)*) => { eprintln!("mekong-bench: {}", format!($($t)*)) };
}

mod consume;

// ------------------------------------------------------------------------------------ payloads

/// A payload with a hole where the key goes: records differ only in their key.
struct Template {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    key_base: String,
}

const MARKER: &str = "@@MEKONG-BENCH-KEY@@";

impl Template {
    fn new(sample: &Value, key_pointer: &str, redact: &[String]) -> anyhow::Result<Template> {
        let mut value = sample.clone();
        for pointer in redact {
            JsonPointer::parse(pointer)?.remove(&mut value);
        }
        let slot = value
            .pointer_mut(key_pointer)
            .with_context(|| format!("the sample has no key field at {key_pointer}"))?;
        let key_base = slot
            .as_str()
            .with_context(|| format!("the sample's {key_pointer} is not a string"))?
            .to_owned();
        *slot = Value::String(MARKER.to_owned());
        let text = serde_json::to_vec(&value)?;
        let at = find(&text, MARKER.as_bytes()).context("marker not found")?;
        Ok(Template {
            prefix: text[..at].to_vec(),
            suffix: text[at + MARKER.len()..].to_vec(),
            key_base,
        })
    }

    fn key(&self, n: u64) -> String {
        format!("{}-{n:012}", self.key_base)
    }

    fn render(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len() + self.suffix.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&self.suffix);
        out
    }

    fn len(&self) -> usize {
        self.prefix.len() + self.key(0).len() + self.suffix.len()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every record of the run gets a distinct number, hence a distinct key.
static NEXT: AtomicU64 = AtomicU64::new(0);

// ------------------------------------------------------------------------------------ measuring

/// What one scenario measured.
#[derive(Default)]
struct Stats {
    /// Latencies (µs) of the records completed in the measured window.
    latencies: Vec<u32>,
    /// Errors over the whole scenario (warm-up and drain included), by message.
    errors: BTreeMap<String, u64>,
    window: Duration,
    cpu: CpuUse,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies.extend(other.latencies);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.window.as_secs_f64()
    }
    fn percentile(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }
}

#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

impl Window {
    fn starting_after(warmup: Duration, duration: Duration) -> Window {
        let from = Instant::now() + warmup;
        Window {
            from,
            to: from + duration,
        }
    }
    fn contains(&self, t: Instant) -> bool {
        t >= self.from && t <= self.to
    }
}

/// CPU time (in cores) used during the measured window by the processes watched.
#[derive(Default, Clone, Copy)]
struct CpuUse {
    gateway: Option<f64>,
    broker: Option<f64>,
    bench: Option<f64>,
}

#[derive(Clone, Copy)]
struct Watched {
    gateway: Option<u32>,
    broker: Option<u32>,
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Samples CPU time at the start and the end of the window.
fn watch_cpu(watched: Watched, window: Window) -> tokio::task::JoinHandle<CpuUse> {
    tokio::spawn(async move {
        let pids = [watched.gateway, watched.broker, Some(std::process::id())];
        tokio::time::sleep_until(window.from.into()).await;
        let before: Vec<Option<u64>> = pids.iter().map(|p| p.and_then(cpu_ticks)).collect();
        tokio::time::sleep_until(window.to.into()).await;
        let secs = (window.to - window.from).as_secs_f64();
        let used: Vec<Option<f64>> = pids
            .iter()
            .zip(before)
            .map(|(p, b)| Some((p.and_then(cpu_ticks)?.saturating_sub(b?)) as f64 / 100.0 / secs))
            .collect();
        CpuUse {
            gateway: used[0],
            broker: used[1],
            bench: used[2],
        }
    })
}

/// Runs `workers` closed loops, each issuing one operation after the other, for the warm-up plus
/// the measured window. Operations completed inside the window count.
async fn closed_loop<F, Fut>(
    workers: usize,
    warmup: Duration,
    duration: Duration,
    watched: Watched,
    op: F,
) -> Stats
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let window = Window::starting_after(warmup, duration);
    let cpu = watch_cpu(watched, window);
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            while Instant::now() < window.to {
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let result = op(n).await;
                let t1 = Instant::now();
                match result {
                    Ok(()) if window.contains(t1) => stats
                        .latencies
                        .push((t1 - t0).as_micros().min(u32::MAX as u128) as u32),
                    Ok(()) => {}
                    Err(e) => *stats.errors.entry(e).or_default() += 1,
                }
            }
            stats
        }));
    }
    let mut total = join_stats(tasks, "worker").await;
    total.window = duration;
    total.cpu = cpu.await.unwrap_or_default();
    total
}

// ------------------------------------------------------------------------------------ scenarios

struct Workload {
    args: Arc<Args>,
    full: Template,
    redacted: Template,
    schema_version: String,
}

impl Workload {
    fn request(&self, n: u64, request_id: String) -> PublishRequest {
        let key = self.full.key(n);
        PublishRequest {
            record_type: self.args.record_type.clone(),
            payload: self.full.render(&key).into(),
            request_id,
            ..Default::default()
        }
    }
}

/// The baseline: what the gateway asks of Kafka for one record, done directly.
async fn baseline(work: Arc<Workload>, watched: Watched) -> anyhow::Result<Stats> {
    let args = Arc::clone(&work.args);
    // The gateway's producer settings (crates/mekong-kafka/src/producer.rs, defaults of `serve`).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.kafka)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "10000")
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", (64 * 1024).to_string())
        .create()
        .context("cannot create the baseline producer")?;
    let op = move |n: u64| {
        let (producer, work) = (producer.clone(), Arc::clone(&work));
        async move {
            let args = &work.args;
            let key = work.full.key(n);
            let full = work.full.render(&key);
            let redacted = work.redacted.render(&key);
            let id = Uuid::now_v7().to_string();
            let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            let dataschema = format!(
                "urn:mekong:schema:{}:{}",
                args.record_type, work.schema_version
            );
            let mut deliveries = Vec::with_capacity(args.topics.len());
            for topic in &args.topics {
                let headers = [
                    ("ce_specversion", "1.0"),
                    ("ce_id", id.as_str()),
                    ("ce_source", args.client.as_str()),
                    ("ce_type", args.record_type.as_str()),
                    ("ce_time", time.as_str()),
                    ("content-type", "application/json"),
                    ("ce_dataschema", dataschema.as_str()),
                    ("mekong_schema_version", work.schema_version.as_str()),
                    ("mekong_route", "bench"),
                ]
                .into_iter()
                .fold(OwnedHeaders::new_with_capacity(9), |h, (k, v)| {
                    h.insert(Header {
                        key: k,
                        value: Some(v),
                    })
                });
                let value = if args.redacted_topics.contains(topic) {
                    &redacted
                } else {
                    &full
                };
                let record = FutureRecord::to(topic)
                    .key(key.as_bytes())
                    .payload(value)
                    .headers(headers);
                match producer.send_result(record) {
                    Ok(d) => deliveries.push(d),
                    Err((e, _)) => return Err(format!("send: {e}")),
                }
            }
            for result in futures::future::join_all(deliveries).await {
                match result {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(format!("delivery: {e}")),
                    Err(_) => return Err("delivery cancelled".into()),
                }
            }
            Ok(())
        }
    };
    Ok(closed_loop(
        args.baseline_in_flight,
        args.warmup,
        args.duration,
        watched,
        op,
    )
    .await)
}

/// The merged statistics of finished tasks; a task that panicked counts as an error.
async fn join_stats(tasks: Vec<tokio::task::JoinHandle<Stats>>, what: &str) -> Stats {
    let mut total = Stats::default();
    for task in tasks {
        match task.await {
            Ok(stats) => total.merge(stats),
            Err(e) => {
                *total
                    .errors
                    .entry(format!("{what} failed: {e}"))
                    .or_default() += 1
            }
        }
    }
    total
}

async fn connect(addr: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the gateway at {addr}"))
}

fn check_response(response: &PublishResponse, copies: usize) -> Result<(), String> {
    if response.placements.len() != copies {
        return Err(format!(
            "{} placements, expected {copies}",
            response.placements.len()
        ));
    }
    Ok(())
}

/// A request carrying `authorization: Bearer <api key>` metadata.
fn authed<T>(api_key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {api_key}")
        .parse()
        .expect("an ASCII api key");
    request.metadata_mut().insert("authorization", value);
    request
}

fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

async fn unary(
    work: Arc<Workload>,
    channels: Arc<Vec<Channel>>,
    in_flight: usize,
    watched: Watched,
) -> Stats {
    let auth: MetadataValue<_> = format!("Bearer {}", work.args.api_key)
        .parse()
        .expect("an ASCII api key");
    let copies = work.args.topics.len();
    let (warmup, duration) = (work.args.warmup, work.args.duration);
    let op = move |n: u64| {
        let (work, auth) = (Arc::clone(&work), auth.clone());
        let mut client = IngestServiceClient::new(channels[n as usize % channels.len()].clone());
        async move {
            let mut request = tonic::Request::new(work.request(n, String::new()));
            request.metadata_mut().insert("authorization", auth);
            match client.publish(request).await {
                Ok(response) => check_response(response.get_ref(), copies),
                Err(status) => Err(status_text(&status)),
            }
        }
    };
    closed_loop(in_flight, warmup, duration, watched, op).await
}

async fn stream(
    work: Arc<Workload>,
    channels: Vec<Channel>,
    in_flight: usize,
    watched: Watched,
) -> Stats {
    let window = Window::starting_after(work.args.warmup, work.args.duration);
    let cpu = watch_cpu(watched, window);
    let per_stream = (in_flight / channels.len()).max(1);
    let mut tasks = Vec::new();
    for channel in channels {
        tasks.push(tokio::spawn(one_stream(
            Arc::clone(&work),
            channel,
            per_stream,
            window,
        )));
    }
    let mut total = join_stats(tasks, "stream task").await;
    total.window = work.args.duration;
    total.cpu = cpu.await.unwrap_or_default();
    total
}

async fn one_stream(
    work: Arc<Workload>,
    channel: Channel,
    in_flight: usize,
    window: Window,
) -> Stats {
    let mut stats = Stats::default();
    let copies = work.args.topics.len();
    let (mut tx, rx) = futures::channel::mpsc::channel::<PublishRequest>(in_flight);
    let request = authed(&work.args.api_key, rx);
    let mut client = IngestServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut inbound = match client.publish_stream(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            stats
                .errors
                .insert(format!("PublishStream: {}", status_text(&status)), 1);
            return stats;
        }
    };
    let permits = Arc::new(Semaphore::new(in_flight));
    let pending: Arc<Mutex<HashMap<u64, Instant>>> =
        Arc::new(Mutex::new(HashMap::with_capacity(in_flight * 2)));

    let sender = {
        let (permits, pending, work) = (
            Arc::clone(&permits),
            Arc::clone(&pending),
            Arc::clone(&work),
        );
        tokio::spawn(async move {
            while Instant::now() < window.to {
                let Ok(permit) = permits.acquire().await else {
                    break;
                };
                permit.forget();
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let request = work.request(n, n.to_string());
                pending.lock().unwrap().insert(n, Instant::now());
                if tx.send(request).await.is_err() {
                    break;
                }
            }
            // Dropping `tx` ends the request stream; the gateway answers what is in flight, then ends.
        })
    };

    loop {
        match inbound.message().await {
            Ok(Some(result)) => {
                let t1 = Instant::now();
                let t0 = result
                    .request_id
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| pending.lock().unwrap().remove(&n));
                permits.add_permits(1);
                let outcome = match (&result.outcome, t0) {
                    (_, None) => Err(format!(
                        "result for an unknown request_id `{}`",
                        result.request_id
                    )),
                    (Some(publish_result::Outcome::Published(r)), Some(_)) => {
                        check_response(r, copies)
                    }
                    (Some(publish_result::Outcome::Error(e)), Some(_)) => {
                        Err(format!("RecordError {}: {}", e.code, e.message))
                    }
                    (None, Some(_)) => Err("result without an outcome".into()),
                };
                match outcome {
                    Ok(()) if window.contains(t1) => stats
                        .latencies
                        .push((t1 - t0.unwrap()).as_micros().min(u32::MAX as u128) as u32),
                    Ok(()) => {}
                    Err(e) => *stats.errors.entry(e).or_default() += 1,
                }
            }
            Ok(None) => break,
            Err(status) => {
                *stats
                    .errors
                    .entry(format!("stream ended: {}", status_text(&status)))
                    .or_default() += 1;
                break;
            }
        }
    }
    permits.close();
    let _ = sender.await;
    let unanswered = pending.lock().unwrap().len() as u64;
    if unanswered > 0 {
        *stats
            .errors
            .entry("no result for the request".into())
            .or_default() += unanswered;
    }
    stats
}

// ------------------------------------------------------------------------------------ gateway

struct GatewayProcess {
    child: tokio::process::Child,
    pid: u32,
    addr: String,
}

async fn start_gateway(args: &Args) -> anyhow::Result<GatewayProcess> {
    let mut command = tokio::process::Command::new(&args.gateway);
    command
        .args([
            "serve",
            "--kafka",
            &args.kafka,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--topic-replication",
            "1",
        ])
        .arg("--resources")
        .arg(&args.resources)
        .args(["--topic-partitions", &args.partitions.to_string()])
        .args(
            args.gateway_kafka_options
                .iter()
                .flat_map(|kv| ["--kafka-option", kv.as_str()]),
        )
        .envs(args.gateway_env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    match &args.gateway_log {
        Some(path) => command.stderr(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => command.stderr(Stdio::inherit()),
    };
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", args.gateway.display()))?;
    let pid = child.id().context("the gateway exited at once")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await? {
            progress!("gateway: {line}");
            if let Some(addr) = line.strip_prefix("listening on ") {
                return Ok(addr.trim().to_owned());
            }
        }
        bail!("the gateway exited before listening (see its log)")
    })
    .await
    .context("the gateway did not start listening within 90 s")??;
    // Keep draining its stdout.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(GatewayProcess { child, pid, addr })
}

/// Peak resident set size (VmHWM) of a process, in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn stop_gateway(mut gateway: GatewayProcess) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &gateway.pid.to_string()])
        .status();
    match tokio::time::timeout(Duration::from_secs(20), gateway.child.wait()).await {
        Ok(Ok(status)) => progress!("gateway exited: {status}"),
        _ => {
            progress!("gateway did not exit after SIGTERM within 20 s: killing it");
            let _ = gateway.child.kill().await;
        }
    }
}

// ------------------------------------------------------------------------------------ report

fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb: f64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let (_, rdkafka) = rdkafka::util::get_rdkafka_version();
    vec![
        ("CPU".into(), format!("{model}, nproc {nproc}")),
        ("RAM".into(), format!("{:.1} GiB", mem_kb / 1024.0 / 1024.0)),
        ("Kernel".into(), format!("Linux {kernel}")),
        ("Kafka".into(), "KAFKA".into()),
        ("librdkafka".into(), rdkafka),
        (
            "Load average at the end (1/5/15 min; other work on the machine skews results)".into(),
            load,
        ),
    ]
}

fn fmt_cores(v: Option<f64>) -> String {
    v.map(|c| format!("{c:.2}")).unwrap_or_else(|| "–".into())
}

struct Row {
    name: String,
    in_flight: String,
    stats: Stats,
}

async fn run(args: Args) -> anyhow::Result<bool> {
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

    let gateway = start_gateway(&args).await?;
    progress!("gateway pid {} listening on {}", gateway.pid, gateway.addr);
    let watched_gateway = Watched {
        gateway: Some(gateway.pid),
        broker: args.broker_pid,
    };

    // One record through the gateway first: it must be accepted and land on the expected topics.
    let probe_channel = connect(&gateway.addr).await?;
    let work = Arc::new(Workload {
        args: Arc::clone(&args),
        full,
        redacted,
        schema_version: "1".into(),
    });
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

    let mut rows = Vec::new();
    if args.scenarios.iter().any(|s| s == "baseline") {
        progress!(
            "baseline: raw rdkafka producer, {} records in flight",
            args.baseline_in_flight
        );
        let stats = baseline(Arc::clone(&work), watched_gateway).await?;
        progress!(
            "baseline: {:.0} records/s, {} errors",
            stats.rate(),
            stats.error_count()
        );
        rows.push(Row {
            name: format!(
                "Baseline: rdkafka FutureProducer, {} writes/record, all awaited",
                args.topics.len()
            ),
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

    // -------------------------------------------------------------------------------- report
    let base = rows
        .iter()
        .find(|r| r.name.starts_with("Baseline"))
        .map(|r| r.stats.rate())
        .unwrap_or(f64::NAN);
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let day = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    line(format!(
        "### Gateway throughput and latency ({})",
        &day[..10]
    ));
    line(String::new());
    line(format!(
        "Workload: `{}` records of {} bytes (sample `{}`, `{}` distinct per record), {} Kafka writes per record \
         ({}; the copy to {} without {}). Topics of {} partitions, replication 1; producer acks=all, \
         enable.idempotence=true, linger.ms=5. Each scenario: {} s warm-up, then {} s measured. Latency per record: \
         from sending to the answer (baseline: until every copy's delivery is acknowledged). CPU: cores used during \
         the measured window; broker, gateway and load generator share the machine.",
        args.record_type,
        work.full.len(),
        args.sample.display(),
        args.key_pointer,
        args.topics.len(),
        args.topics
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
        args.redacted_topics
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
        args.redact
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
        args.partitions,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64(),
    ));
    line(String::new());
    line(format!(
        "The baseline is a raw rdkafka `FutureProducer` with the gateway's settings sending the same payloads, keys and \
         CloudEvents headers: {} Kafka records per benchmark record (one per topic, the redacted bytes to the redacted \
         topic), every delivery awaited; no gRPC, no validation.",
        args.topics.len()
    ));
    line(String::new());
    line("| Scenario | In flight | Records/s | Kafka writes/s | p50 (ms) | p99 (ms) | Errors | vs baseline | CPU gateway / broker / bench (cores) | Gateway CPU per record (µs) |".into());
    line("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|".into());
    let mut errors_total = 0;
    let mut ratios = HashMap::new();
    for row in &mut rows {
        let rate = row.stats.rate();
        let ratio = rate / base;
        ratios.insert(
            (row.name.starts_with("PublishStream"), row.in_flight.clone()),
            ratio,
        );
        errors_total += row.stats.error_count();
        let cpu = row.stats.cpu;
        let (p50, p99) = (row.stats.percentile(50.0), row.stats.percentile(99.0));
        line(format!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {:.2} | {} / {} / {} | {} |",
            row.name,
            row.in_flight,
            rate,
            rate * args.topics.len() as f64,
            p50,
            p99,
            row.stats.error_count(),
            ratio,
            if row.name.starts_with("Baseline") {
                "–".into()
            } else {
                fmt_cores(cpu.gateway)
            },
            fmt_cores(cpu.broker),
            fmt_cores(cpu.bench),
            match (row.name.starts_with("Baseline"), cpu.gateway, cpu.bench) {
                (true, _, Some(b)) => format!("– (producer process: {:.0})", b * 1e6 / rate),
                (false, Some(g), _) => format!("{:.0}", g * 1e6 / rate),
                _ => "–".into(),
            },
        ));
    }
    line(String::new());
    let consume_ratio = consume_report(&args, &consume_rows, &mut line);
    errors_total += consume_rows
        .iter()
        .map(|r| r.stats.error_count())
        .sum::<u64>();
    let rss_text = rss
        .map(|r| format!("{r:.1} MB"))
        .unwrap_or_else(|| "unknown".into());
    line(format!(
        "Gateway peak RSS (VmHWM, whole run): **{rss_text}**"
    ));
    line(String::new());

    let stream_ratio = rows
        .iter()
        .find(|r| r.name.starts_with("PublishStream"))
        .map(|r| r.stats.rate() / base)
        .unwrap_or(f64::NAN);
    let unary_256 = rows
        .iter()
        .find(|r| r.name.starts_with("Publish (") && r.in_flight == "256")
        .map(|r| r.stats.rate() / base);
    let met = |ok: bool| if ok { "yes" } else { "**no**" };
    line("| Target | Measured | Met |".into());
    line("|---|--:|:-:|".into());
    if stream_ratio.is_finite() {
        line(format!(
            "| PublishStream ≥ 0.5 × baseline | {stream_ratio:.2} × | {} |",
            met(stream_ratio >= 0.5)
        ));
    }
    if consume_ratio.is_finite() {
        line(format!(
            "| Consume ≥ 0.5 × raw consumer | {consume_ratio:.2} × | {} |",
            met(consume_ratio >= 0.5)
        ));
    }
    if let Some(r) = unary_256 {
        line(format!(
            "| Publish @ 256 in flight ≥ 0.25 × baseline | {r:.2} × | {} |",
            met(r >= 0.25)
        ));
    }
    if let Some(r) = rss {
        line(format!(
            "| Gateway peak RSS < 200 MB | {r:.1} MB | {} |",
            met(r < 200.0)
        ));
    }
    line(format!(
        "| Errors = 0 | {errors_total} | {} |",
        met(errors_total == 0)
    ));
    line(String::new());
    line("Machine:".into());
    line(String::new());
    for (k, v) in machine() {
        let v = if v == "KAFKA" {
            format!(
                "Apache Kafka {} (single-node KRaft on loopback, 512 MB heap)",
                args.kafka_version
            )
        } else {
            v
        };
        line(format!("- {k}: {v}"));
    }
    line(String::new());
    line("Command: `deploy/bench.sh`".into());
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

// ------------------------------------------------------------------------------------ consume

struct ConsumeRow {
    name: String,
    in_flight: String,
    stats: consume::ConsumeStats,
}

/// The raw consumer, then one Consume stream, each reading the same number of records from the
/// earliest offset of `--consume-topic` with a group of its own.
async fn consume_scenarios(
    args: &Arc<Args>,
    work: &Arc<Workload>,
    addr: &str,
    watched: Watched,
) -> anyhow::Result<Vec<ConsumeRow>> {
    let topic = &args.consume_topic;
    let wanted = args.consume_records;
    let present = consume::records_in(&args.kafka, topic)?;
    if present < wanted {
        progress!(
            "Consume: {topic} holds {present} records; publishing {} more through the gateway",
            wanted - present
        );
        consume::fill(Arc::clone(work), connect(addr).await?, wanted - present).await?;
    }
    progress!("Consume baseline: raw rdkafka StreamConsumer reads {wanted} records of {topic}");
    let raw = consume::raw(
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
    let gateway = consume::gateway(
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
fn consume_report(args: &Args, rows: &[ConsumeRow], line: &mut impl FnMut(String)) -> f64 {
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
        consume::ACK_BATCH,
        consume::ACK_BATCH,
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

fn code_list(items: &[String]) -> String {
    items
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

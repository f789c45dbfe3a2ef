//! The publish scenarios: the raw producer baseline, unary Publish, HTTP POST, PublishStream.

use crate::Args;
use crate::measure::{Stats, Watched, Window, closed_loop, join_stats, watch_cpu};
use crate::payload::{NEXT, Template};

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use futures::SinkExt;
use mekong_proto::v1::ingest_service_client::IngestServiceClient;
use mekong_proto::v1::{PublishRequest, PublishResponse, publish_result};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Semaphore;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

pub(crate) struct Workload {
    pub(crate) args: Arc<Args>,
    pub(crate) full: Template,
    pub(crate) redacted: Template,
    pub(crate) schema_version: String,
}

impl Workload {
    pub(crate) fn request(&self, n: u64, request_id: String) -> PublishRequest {
        let key = self.full.key(n);
        PublishRequest {
            record_type: self.args.record_type.clone(),
            payload: self.full.render(&key).into(),
            request_id,
            ..Default::default()
        }
    }
}

/// The baseline: what the gateway asks of Kafka for one record, done directly; `with_event` adds
/// the write of an audit event of the size of `record.accepted`, awaited with the copies (what the
/// gateway awaits since every OK needs its evidence).
pub(crate) async fn baseline(
    work: Arc<Workload>,
    watched: Watched,
    with_event: bool,
) -> anyhow::Result<Stats> {
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
            if with_event {
                let event = accepted_event(&id, &key, &time, &args.topics);
                let record = FutureRecord::to(&args.baseline_audit_topic)
                    .key(id.as_bytes())
                    .payload(event.as_bytes());
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

/// An event of the size and shape of the gateway's `record.accepted` (ids, key, one digest per copy).
fn accepted_event(id: &str, key: &str, time: &str, topics: &[String]) -> String {
    let copies: Vec<String> = topics
        .iter()
        .map(|t| {
            format!(
                r#"{{"topic":"{t}","partition":-1,"offset":-1,"routes":["bench"],"sha256":"{}"}}"#,
                "0".repeat(64)
            )
        })
        .collect();
    format!(
        r#"{{"event":"record.accepted","time":"{time}","recordId":"{id}","recordType":"dossier.sync","source":"bench","authenticated":{{"by":"apiKey","keyId":"bench"}},"key":"{key}","schemaVersion":1,"copies":[{}]}}"#,
        copies.join(",")
    )
}

pub(crate) async fn connect(addr: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the gateway at {addr}"))
}

pub(crate) fn check_response(response: &PublishResponse, copies: usize) -> Result<(), String> {
    if response.placements.len() != copies {
        return Err(format!(
            "{} placements, expected {copies}",
            response.placements.len()
        ));
    }
    Ok(())
}

/// A request carrying `authorization: Bearer <api key>` metadata.
pub(crate) fn authed<T>(api_key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {api_key}")
        .parse()
        .expect("an ASCII api key");
    request.metadata_mut().insert("authorization", value);
    request
}

pub(crate) fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

pub(crate) async fn unary(
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

/// `POST /v1/records/{type}` on the gateway's listener: the HTTP API's path to the same Publish,
/// `in_flight` requests at once over a pool of HTTP/1.1 keep-alive connections (how a PHP or Java
/// system calls it).
pub(crate) async fn http(
    work: Arc<Workload>,
    addr: &str,
    in_flight: usize,
    watched: Watched,
) -> Stats {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .build()
        .expect("an HTTP client");
    let url = format!("http://{addr}/v1/records/{}", work.args.record_type);
    let auth = format!("Bearer {}", work.args.api_key);
    let copies = work.args.topics.len();
    let (warmup, duration) = (work.args.warmup, work.args.duration);
    let op = move |n: u64| {
        let (work, client, url, auth) =
            (Arc::clone(&work), client.clone(), url.clone(), auth.clone());
        async move {
            let payload = work.request(n, String::new()).payload;
            let response = client
                .post(url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(payload)
                .send()
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("HTTP body: {e}"))?;
            if status != reqwest::StatusCode::CREATED {
                return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
            }
            let published: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("HTTP answer: {e}"))?;
            let placed = published["placements"].as_array().map_or(0, Vec::len);
            if placed != copies {
                return Err(format!("{placed} placements, expected {copies}"));
            }
            Ok(())
        }
    };
    closed_loop(in_flight, warmup, duration, watched, op).await
}

pub(crate) async fn stream(
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

pub(crate) async fn one_stream(
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

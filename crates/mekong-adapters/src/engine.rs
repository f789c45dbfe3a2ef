//! The delivery engine of one adapter: reads its topics as the consumer group
//! `mekong-adapter-<name>`, delivers each record over HTTP, retries what may pass, and dead-letters
//! what cannot be delivered. Never loses a record: a source offset is committed only once its record
//! was delivered, or its dead letter was acknowledged by Kafka; a record interrupted mid-delivery
//! (shutdown, crash) is read and delivered again, with the same `Idempotency-Key`.
//!
//! Order per key: records with the same Kafka key form a lane and go one after another; a key whose
//! deliveries fail holds back only its own lane. Up to `concurrency` requests are in flight at once;
//! a lane waiting out its backoff holds none.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use mekong_core::cloudevents;
use mekong_core::{
    Adapter, AuditEvent, DeadLetterInfo, DeliveryEvent, KafkaRecord, adapter_group,
    dead_letter_topic, replay_topic,
};
use mekong_kafka::{
    Backbone, Producer, Received, StartPosition, Subscriber, SubscriptionSettings, TopicSettings,
    ensure_topics,
};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::attempt::Attempt;
use crate::metrics::AdapterMetrics;
use crate::policy::AdapterPolicy;
use crate::target::Target;

/// The longest a target may make us wait with `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How long the engine may hold a full buffer before it pauses its partitions.
const STALL_BEFORE_PAUSE: Duration = Duration::from_secs(10);
/// How often delivered positions are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// Why an engine could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("adapter `{adapter}`: {reason}")]
    Target { adapter: String, reason: String },
    #[error("adapter `{adapter}`: Kafka: {error}")]
    Kafka {
        adapter: String,
        error: mekong_kafka::KafkaError,
    },
}

/// Settings shared by every engine of a process.
#[derive(Clone, Default)]
pub struct EngineSettings {
    /// Replication of the dead-letter and replay topics the engine creates (-1: cluster default).
    pub replication: i32,
    pub metrics: AdapterMetrics,
    /// What adapters may read (secrets) and reach (endpoints).
    pub policy: Arc<AdapterPolicy>,
}

/// How a delivery ended for the lane.
enum Finish {
    /// Delivered or dead-lettered: the record may be acknowledged.
    Done,
    /// Stopping: left unacknowledged, delivered again after the restart.
    Abandoned,
}

struct Engine {
    adapter: Adapter,
    target: Target,
    producer: Producer,
    lanes: Mutex<HashMap<Vec<u8>, VecDeque<Received>>>,
    permits: Semaphore,
    stop: watch::Receiver<bool>,
    metrics: AdapterMetrics,
}

/// Runs one adapter until `stop` turns true. Records in the middle of a delivery when it stops
/// finish their current HTTP request (bounded by the adapter's timeout) or are left to be delivered
/// again.
pub async fn run(
    adapter: Adapter,
    backbone: Arc<Backbone>,
    producer: Producer,
    settings: EngineSettings,
    stop: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let name = adapter.spec.name.clone();
    let target =
        Target::build(&adapter, &settings.policy).map_err(|reason| EngineError::Target {
            adapter: name.clone(),
            reason,
        })?;
    let kafka = |error| EngineError::Kafka {
        adapter: name.clone(),
        error,
    };
    let own_topics = [dead_letter_topic(&name), replay_topic(&name)];
    let own: Vec<&str> = own_topics.iter().map(String::as_str).collect();
    ensure_topics(
        &backbone,
        &own,
        TopicSettings {
            partitions: 1,
            replication: settings.replication,
            max_message_bytes: 8 * 1024 * 1024,
            // Dead letters wait for an operator, however long that takes.
            configs: &[("retention.ms", "-1")],
        },
        Duration::from_secs(30),
    )
    .await
    .map_err(kafka)?;
    let mut topics = adapter.spec.from.clone();
    topics.push(replay_topic(&name));
    let subscriber = Subscriber::new(
        &backbone,
        SubscriptionSettings {
            topics,
            group_id: adapter_group(&name),
            start: StartPosition::Earliest,
            // A crashed adapter process's records go to the others (or its restart) soon.
            session_timeout: Some(Duration::from_secs(10)),
            lag: Some(settings.metrics.lag_of(&name)),
            prefetch_kbytes: SubscriptionSettings::DEFAULT_PREFETCH_KBYTES,
        },
    )
    .map_err(kafka)?;
    let concurrency = adapter.spec.concurrency as usize;
    let engine = Arc::new(Engine {
        permits: Semaphore::new(concurrency),
        adapter,
        target,
        producer,
        lanes: Mutex::new(HashMap::new()),
        stop: stop.clone(),
        metrics: settings.metrics.clone(),
    });
    info!(adapter = %name, from = ?engine.adapter.spec.from, concurrency, "adapter started");
    engine.metrics.set_paused(&name, false);

    // Records read and not yet finished, at most. Past it the engine stops taking records; if that
    // lasts (keys stuck in long backoffs), it pauses the partitions so it can keep polling Kafka
    // without taking more, and stays in its consumer group. Pausing drops librdkafka's prefetched
    // records, so it is not done for the short stalls of a busy engine.
    let high = (concurrency * 64).max(256);
    let mut buffered = 0usize;
    let mut full_since: Option<std::time::Instant> = None;
    let mut paused = false;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, i32, i64)>();
    let mut workers = JoinSet::new();
    let mut commit = tokio::time::interval(COMMIT_EVERY);
    let mut stop = stop;
    loop {
        let taking = buffered < high || paused;
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            received = subscriber.next(), if taking => match received {
                Ok(record) => {
                    buffered += 1;
                    if let Some(key) = engine.enqueue(record) {
                        workers.spawn(Arc::clone(&engine).lane(key, done_tx.clone()));
                    }
                    if buffered >= high && full_since.is_none() {
                        full_since = Some(std::time::Instant::now());
                    }
                }
                Err(e) => {
                    warn!(adapter = %name, error = %e, "reading the adapter's topics");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            Some(cursor) = done_rx.recv() => {
                subscriber.ack([cursor]);
                buffered = buffered.saturating_sub(1);
                if buffered < high {
                    full_since = None;
                }
                if paused && buffered <= high / 2 {
                    subscriber.resume();
                    paused = false;
                    engine.metrics.set_paused(&name, false);
                    info!(adapter = %name, buffered, "adapter resumed fetching");
                }
            }
            _ = commit.tick() => {
                subscriber.commit_acknowledged();
                if !paused && full_since.is_some_and(|t| t.elapsed() >= STALL_BEFORE_PAUSE) {
                    subscriber.pause();
                    paused = true;
                    engine.metrics.set_paused(&name, true);
                    info!(adapter = %name, buffered, "adapter paused fetching: its buffer stayed full for {STALL_BEFORE_PAUSE:?}");
                }
            }
            Some(_) = workers.join_next(), if !workers.is_empty() => {}
        }
    }

    // Stopping: lanes finish the request they are in (or give up at their next wait); what they
    // finished is acknowledged and committed; the rest is read again after the restart.
    let grace = engine.adapter.timeout + Duration::from_secs(5);
    let _ = tokio::time::timeout(grace, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    drop(done_tx);
    while let Ok(cursor) = done_rx.try_recv() {
        subscriber.ack([cursor]);
    }
    subscriber.close();
    engine.metrics.forget(&name);
    info!(adapter = %name, "adapter stopped");
    Ok(())
}

impl Engine {
    /// Puts a record in its key's lane. Returns the key when the lane is new and needs a worker.
    fn enqueue(&self, record: Received) -> Option<Vec<u8>> {
        let key = if record.key.is_empty() {
            // Without a key there is no order to keep: a lane of its own.
            mekong_core::position_text(&record.topic, record.partition, record.offset).into_bytes()
        } else {
            record.key.clone()
        };
        let mut lanes = self.lanes.lock().expect("lanes lock");
        match lanes.get_mut(&key) {
            Some(lane) => {
                lane.push_back(record);
                None
            }
            None => {
                lanes.insert(key.clone(), VecDeque::from([record]));
                Some(key)
            }
        }
    }

    /// Delivers the records of one key, one after another, until the lane is empty.
    async fn lane(self: Arc<Self>, key: Vec<u8>, done: mpsc::UnboundedSender<(String, i32, i64)>) {
        loop {
            let record = {
                let lanes = self.lanes.lock().expect("lanes lock");
                match lanes.get(&key).and_then(VecDeque::front) {
                    Some(record) => record.clone(),
                    None => return,
                }
            };
            match self.deliver(&record).await {
                Finish::Done => {
                    let _ = done.send((record.topic.clone(), record.partition, record.offset));
                }
                Finish::Abandoned => return,
            }
            let mut lanes = self.lanes.lock().expect("lanes lock");
            let lane = lanes
                .get_mut(&key)
                .expect("a lane lives while its worker does");
            lane.pop_front();
            if lane.is_empty() {
                lanes.remove(&key);
                return;
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps, unless the engine stops first. Returns false if it stopped.
    async fn wait(&self, duration: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(duration) => true,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => false,
        }
    }

    async fn deliver(&self, record: &Received) -> Finish {
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let record_id = header(cloudevents::ID).unwrap_or_else(|| {
            mekong_core::position_text(&record.topic, record.partition, record.offset)
        });
        let record_type = header(cloudevents::TYPE).unwrap_or_default();
        let retry = self.adapter.retry;
        let mut attempt = 0;
        loop {
            if self.stopping() {
                return Finish::Abandoned;
            }
            attempt += 1;
            // A slot is held for the request only: a key waiting out its backoff blocks no other.
            let outcome = {
                let Ok(_slot) = self.permits.acquire().await else {
                    return Finish::Abandoned;
                };
                let started = std::time::Instant::now();
                let outcome = self.target.deliver(record, &record_id, &record_type).await;
                self.metrics
                    .request(&self.adapter.spec.name, started.elapsed());
                outcome
            };
            let name = &self.adapter.spec.name;
            let event = |status: Option<u16>, error: Option<String>| DeliveryEvent {
                time: now(),
                adapter: self.adapter.spec.name.clone(),
                record_id: record_id.clone(),
                record_type: record_type.clone(),
                key: String::from_utf8_lossy(&record.key).into_owned(),
                topic: record.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                attempt,
                status,
                error,
                retry_in_ms: None,
                actor: None,
            };
            match outcome {
                Attempt::Delivered { status } => {
                    self.metrics.attempt(name, "delivered");
                    debug!(adapter = %self.adapter.spec.name, %record_id, attempt, "delivered");
                    return self
                        .audit(AuditEvent::Delivered(event(Some(status), None)))
                        .await;
                }
                Attempt::Retry {
                    status,
                    reason,
                    after,
                } if attempt < retry.max_attempts => {
                    self.metrics.attempt(name, "retried");
                    let wait = match after {
                        Some(after) => after.min(MAX_RETRY_AFTER),
                        None => retry.backoff(attempt, 0.5 + fastrand::f64() / 2.0),
                    };
                    warn!(adapter = %self.adapter.spec.name, %record_id, attempt, %reason, ?wait, "delivery failed; will retry");
                    let mut retried = event(status, Some(reason));
                    retried.retry_in_ms = Some(wait.as_millis() as u64);
                    if let Finish::Abandoned = self.audit(AuditEvent::Retried(retried)).await {
                        return Finish::Abandoned;
                    }
                    if !self.wait(wait).await {
                        return Finish::Abandoned;
                    }
                }
                Attempt::Retry { status, reason, .. } | Attempt::Reject { status, reason } => {
                    self.metrics.attempt(name, "dead_lettered");
                    let reason = if attempt >= retry.max_attempts && attempt > 1 {
                        format!("gave up after {attempt} attempts: {reason}")
                    } else {
                        reason
                    };
                    warn!(adapter = %self.adapter.spec.name, %record_id, attempt, %reason, "dead-lettering");
                    if let Finish::Abandoned =
                        self.dead_letter(record, attempt, status, &reason).await
                    {
                        return Finish::Abandoned;
                    }
                    return self
                        .audit(AuditEvent::DeadLettered(event(status, Some(reason))))
                        .await;
                }
            }
        }
    }

    /// Writes the record, with why, to the dead-letter topic, and waits until Kafka has it.
    async fn dead_letter(
        &self,
        record: &Received,
        attempts: u32,
        status: Option<u16>,
        reason: &str,
    ) -> Finish {
        let name = &self.adapter.spec.name;
        let mut headers: Vec<(String, String)> = record
            .headers
            .iter()
            .filter(|(k, _)| !DeadLetterInfo::is_own_header(k))
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        headers.extend(
            DeadLetterInfo {
                adapter: name.clone(),
                attempts,
                status,
                error: reason.to_owned(),
                source: mekong_core::position_text(&record.topic, record.partition, record.offset),
                time: now(),
            }
            .headers(),
        );
        let copy = KafkaRecord {
            topic: dead_letter_topic(name),
            key: String::from_utf8_lossy(&record.key).into_owned(),
            value: record.payload.clone(),
            headers,
            routes: Vec::new(),
        };
        self.write(copy).await
    }

    async fn audit(&self, event: AuditEvent) -> Finish {
        self.write(self.producer.audit_record(&event)).await
    }

    /// Writes one record, retrying until Kafka acknowledges it: the source record is not
    /// acknowledged before.
    async fn write(&self, copy: KafkaRecord) -> Finish {
        loop {
            match self.producer.write(std::slice::from_ref(&copy)).await {
                Ok(_) => return Finish::Done,
                Err(e) => {
                    warn!(adapter = %self.adapter.spec.name, topic = %copy.topic, error = %e, "cannot write to Kafka; retrying");
                    if !self.wait(Duration::from_secs(1)).await {
                        return Finish::Abandoned;
                    }
                }
            }
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

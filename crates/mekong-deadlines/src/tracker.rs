//! One deadline's tracker: a member of the consumer group `mekong.deadlines.<name>` over the
//! deadline's `from` topic, on a thread of its own. For each source partition it owns it keeps the
//! open deadlines in the local store and, every round, writes what the records read and the clock
//! make known (the events on `to`, the changed states on the changelog, the source offsets) in
//! **one Kafka transaction** of the producer `mekong.deadlines.<name>.<partition>`. Whoever takes a
//! partition first fences that producer (a tracker that lost the partition can commit nothing
//! more), then rebuilds the partition's store from the changelog and reads the source from the
//! committed offset: the state, the events and the position move together, so an event is written
//! once however the tracker stops.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use mekong_core::CloudEvent;
use mekong_core::deadline::{
    Deadline, DeadlineEvent, Open, Tracked, changelog_topic, tracker_group,
    tracker_transactional_id,
};
use mekong_kafka::{Backbone, KafkaError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::metrics::{DeadlineLabels, DeadlineMetrics, EventLabels};
use crate::store::{Change, DeadlineStore, DeadlineStoreError};
use crate::{Clock, TrackerSettings, changelog};

/// Records read per round at most: each round costs a transaction per partition (tens of ms on a
/// broker), so rounds are large when records wait.
const ROUND_RECORDS: usize = 5000;
/// Timers fired per partition per round at most.
const BATCH: usize = 1000;
/// How long a round waits for records when there are none (and so the clock's resolution).
const ROUND: Duration = Duration::from_millis(100);
/// How long before a partition that could not be taken is tried again.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Store(#[from] DeadlineStoreError),
}

/// A running tracker; dropping it stops it (and its consumer leaves the group).
pub(crate) struct Tracker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tracker {
    /// Joins the group and starts the thread. The store is made new in `dir`: every partition is
    /// rebuilt from the changelog as it is taken.
    pub(crate) fn start(
        deadline: Arc<Deadline>,
        backbone: Arc<Backbone>,
        settings: &TrackerSettings,
        dir: &Path,
    ) -> Result<Tracker, TrackerError> {
        let name = deadline.name().to_owned();
        let path = dir.join(format!("{name}.redb"));
        let _ = std::fs::remove_file(&path);
        let store = DeadlineStore::open(&path)?;
        let consumer: BaseConsumer = backbone
            .client_config()
            .set("group.id", tracker_group(&name))
            .set(
                "session.timeout.ms",
                settings.session_timeout.as_millis().to_string(),
            )
            .set("heartbeat.interval.ms", "1000")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("queued.max.messages.kbytes", "8192")
            .create()?;
        consumer.subscribe(&[deadline.spec.from.as_str()])?;
        let stop = Arc::new(AtomicBool::new(false));
        let context = Context {
            changelog: changelog_topic(&name),
            deadline,
            backbone,
            store,
            clock: settings.clock.clone(),
            metrics: settings.metrics.clone(),
        };
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("mekong-deadline-{name}"))
            .spawn(move || run(&context, &consumer, &stopping))
            .expect("spawning a thread");
        info!(deadline = %name, "deadline tracker started");
        Ok(Tracker {
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the thread ended by itself (it only does so by panicking).
    pub(crate) fn ended(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the thread and waits for it (its consumer has left the group when this returns).
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Context {
    deadline: Arc<Deadline>,
    changelog: String,
    backbone: Arc<Backbone>,
    store: DeadlineStore,
    clock: Clock,
    metrics: DeadlineMetrics,
}

impl Context {
    fn name(&self) -> &str {
        self.deadline.name()
    }

    fn from(&self) -> &str {
        &self.deadline.spec.from
    }
}

fn run(cx: &Context, consumer: &BaseConsumer, stop: &AtomicBool) {
    let mut parts: HashMap<i32, Part> = HashMap::new();
    let mut retry_at = Instant::now();
    let partitions = cx.metrics.partitions.get_or_create(&DeadlineLabels {
        deadline: cx.name().to_owned(),
    });
    while !stop.load(Ordering::Relaxed) {
        // The partitions first, then the records: a record fetched before its partition was
        // taken is not read (the partition's seek fetches it again).
        let assigned: Vec<i32> = consumer
            .assignment()
            .map(|list| {
                list.elements_for_topic(cx.from())
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        let gone: Vec<i32> = parts
            .keys()
            .filter(|p| !assigned.contains(p))
            .copied()
            .collect();
        for p in gone {
            info!(deadline = %cx.name(), partition = p, "partition moved away");
            parts.remove(&p).expect("listed").release(cx);
        }
        for &p in &assigned {
            if parts.contains_key(&p) || Instant::now() < retry_at {
                continue;
            }
            match Part::take(cx, consumer, p) {
                Ok(part) => {
                    parts.insert(p, part);
                }
                Err(e) => {
                    warn!(deadline = %cx.name(), partition = p, error = %e, "cannot take the partition; trying again in 5 s");
                    retry_at = Instant::now() + RETRY;
                }
            }
        }
        partitions.set(parts.len() as i64);

        let mut read: HashMap<i32, Vec<OwnedMessage>> = HashMap::new();
        let mut wait = ROUND;
        for _ in 0..ROUND_RECORDS {
            match consumer.poll(wait) {
                Some(Ok(m)) => read.entry(m.partition()).or_default().push(m.detach()),
                Some(Err(e)) => {
                    warn!(deadline = %cx.name(), error = %e, "reading the tracked topic");
                    break;
                }
                None => break,
            }
            wait = Duration::ZERO;
        }
        let now = (cx.clock)();
        let mut lost = Vec::new();
        for (p, part) in &mut parts {
            let records = read.remove(p).unwrap_or_default();
            if let Err(e) = part.round(cx, consumer, &records, now) {
                warn!(deadline = %cx.name(), partition = p, error = %e, "the round's transaction failed; taking the partition again from the changelog");
                lost.push(*p);
            }
        }
        for p in lost {
            parts.remove(&p).expect("listed").release(cx);
        }
    }
    for (_, part) in parts.drain() {
        part.release(cx);
    }
    partitions.set(0);
}

/// One source partition, owned.
struct Part {
    partition: i32,
    producer: ThreadedProducer<DefaultProducerContext>,
    /// The next source offset to read; committed with every round's transaction.
    next_offset: i64,
    committed: i64,
    /// The offset last sought back to, over a gap.
    sought: Option<i64>,
    /// Open and overdue by unit, as the gauges count them for this partition.
    counts: HashMap<String, (i64, i64)>,
}

impl Part {
    /// Takes a partition: fences its earlier producer, rebuilds its store from the changelog, and
    /// moves the consumer to the committed offset.
    fn take(cx: &Context, consumer: &BaseConsumer, partition: i32) -> Result<Part, TrackerError> {
        let producer: ThreadedProducer<DefaultProducerContext> = cx
            .backbone
            .client_config()
            .set(
                "transactional.id",
                tracker_transactional_id(cx.name(), partition),
            )
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()?;
        producer.init_transactions(Duration::from_secs(30))?;

        let p = partition as u32;
        cx.store.clear(p)?;
        let mut pending: Vec<(String, Option<Open>)> = Vec::new();
        let mut failed = None;
        let mut rebuilt = 0u64;
        changelog::read(
            &cx.backbone,
            &cx.changelog,
            &[partition],
            |_, key, state| {
                pending.push((key.to_owned(), state));
                rebuilt += 1;
                if pending.len() >= 10_000 && failed.is_none() {
                    failed = apply(cx, p, &pending).err();
                    pending.clear();
                }
            },
        )?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        apply(cx, p, &pending)?;
        let counts = cx.store.counts(p)?;
        for (unit, (open, overdue)) in &counts {
            cx.metrics.shift(cx.name(), unit, *open, *overdue);
        }

        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(cx.from(), partition);
        let committed = consumer.committed_offsets(wanted, Duration::from_secs(10))?;
        let next_offset = match committed
            .find_partition(cx.from(), partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => o,
            _ => {
                consumer
                    .fetch_watermarks(cx.from(), partition, Duration::from_secs(10))?
                    .0
            }
        };
        // Records fetched before the partition was taken were not read: go back to them. A
        // partition still waiting for its committed offset (the broker holds it while the last
        // owner's transaction is open) cannot seek yet; the first record after a gap seeks then.
        if let Err(e) = consumer.seek(
            cx.from(),
            partition,
            Offset::Offset(next_offset),
            Duration::from_secs(10),
        ) {
            debug!(deadline = %cx.name(), partition, error = %e, "no seek yet; the first record read after a gap will");
        }
        let open: i64 = counts.values().map(|c| c.0).sum();
        info!(deadline = %cx.name(), partition, next_offset, open, changelog_records = rebuilt, "tracking the partition");
        Ok(Part {
            partition,
            producer,
            next_offset,
            committed: next_offset,
            sought: None,
            counts,
        })
    }

    /// The clock's due timers, then the records read: their events, states and the offset after
    /// them in one transaction; the store and the gauges follow once it is committed.
    fn round(
        &mut self,
        cx: &Context,
        consumer: &BaseConsumer,
        records: &[OwnedMessage],
        now: i64,
    ) -> Result<(), TrackerError> {
        let p = self.partition as u32;
        // The state of each key touched, before the round and after it.
        let mut before: HashMap<String, Option<Open>> = HashMap::new();
        let mut after: HashMap<String, Option<Open>> = HashMap::new();
        let mut events: Vec<DeadlineEvent> = Vec::new();
        for (_, open) in cx.store.due(&[p], now, BATCH)? {
            let step = cx.deadline.on_time(&open, now);
            if step.events.is_empty() && step.open.as_ref() == Some(&open) {
                continue;
            }
            events.extend(step.events);
            before.insert(open.key.clone(), Some(open.clone()));
            after.insert(open.key, step.open);
        }
        for m in records {
            if m.offset() < self.next_offset {
                continue;
            }
            if m.offset() > self.next_offset && self.sought != Some(self.next_offset) {
                // Records between were fetched before the partition was taken, and dropped. (A
                // gap still there after the seek is the topic's own: transaction markers,
                // records deleted by retention.)
                self.sought = Some(self.next_offset);
                consumer.seek(
                    cx.from(),
                    self.partition,
                    Offset::Offset(self.next_offset),
                    Duration::from_secs(10),
                )?;
                break;
            }
            self.next_offset = m.offset() + 1;
            let ce = CloudEvent::from_headers(
                m.headers()
                    .into_iter()
                    .flat_map(|h| h.iter())
                    .filter_map(|h| Some((h.key, h.value?))),
            );
            if !cx.deadline.tracks(&ce.record_type) {
                continue;
            }
            let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
            let data = m
                .payload()
                .and_then(|json| serde_json::from_slice::<serde_json::Value>(json).ok());
            let (Some(key), Some(data)) = (key, data) else {
                warn!(deadline = %cx.name(), partition = self.partition, offset = m.offset(), "a record of a tracked type without a key or not JSON: skipped");
                cx.metrics
                    .unreadable
                    .get_or_create(&DeadlineLabels {
                        deadline: cx.name().to_owned(),
                    })
                    .inc();
                continue;
            };
            let current = match after.get(key) {
                Some(state) => state.clone(),
                None => {
                    let stored = cx.store.get(p, key)?;
                    before.insert(key.to_owned(), stored.clone());
                    stored
                }
            };
            let step = cx.deadline.on_record(
                current.as_ref(),
                &Tracked {
                    record_id: &ce.id,
                    record_type: &ce.record_type,
                    source: &ce.source,
                    key,
                    data: &data,
                },
                now,
            );
            events.extend(step.events);
            after.insert(key.to_owned(), step.open);
        }
        after.retain(|key, state| before.get(key) != Some(state));
        if after.is_empty() && events.is_empty() && self.next_offset == self.committed {
            return Ok(());
        }
        self.commit(cx, consumer, &events, &after)?;

        let changes: Vec<Change<'_>> = after
            .iter()
            .map(|(key, state)| {
                (
                    key.as_str(),
                    state.as_ref().map(|o| (o, cx.deadline.next_wake(o))),
                )
            })
            .collect();
        cx.store.apply(p, &changes)?;
        for (key, state) in &after {
            let was = before.get(key).cloned().flatten();
            self.count(cx, was.as_ref(), -1);
            self.count(cx, state.as_ref(), 1);
        }
        for event in &events {
            cx.metrics
                .events
                .get_or_create(&EventLabels {
                    deadline: cx.name().to_owned(),
                    event: event.kind.as_str(),
                })
                .inc();
        }
        Ok(())
    }

    fn commit(
        &mut self,
        cx: &Context,
        consumer: &BaseConsumer,
        events: &[DeadlineEvent],
        after: &HashMap<String, Option<Open>>,
    ) -> Result<(), TrackerError> {
        let time = SystemTime::now();
        mekong_kafka::transact(
            &self.producer,
            consumer,
            (cx.from(), self.partition, self.next_offset),
            || {
                for event in events {
                    let json = serde_json::to_vec(event).expect("events serialise");
                    let headers =
                        event
                            .headers(time)
                            .iter()
                            .fold(OwnedHeaders::new(), |h, (name, value)| {
                                h.insert(Header {
                                    key: name,
                                    value: Some(value),
                                })
                            });
                    self.producer
                        .send(
                            BaseRecord::to(&cx.deadline.spec.to)
                                .key(&event.key)
                                .payload(&json)
                                .headers(headers),
                        )
                        .map_err(|(e, _)| e)?;
                }
                for (key, state) in after {
                    let record = BaseRecord::to(&cx.changelog)
                        .partition(self.partition)
                        .key(key.as_str());
                    let json = state
                        .as_ref()
                        .map(|open| serde_json::to_vec(open).expect("states serialise"));
                    // No payload: a tombstone, the key's deadline closed.
                    match &json {
                        Some(json) => self.producer.send(record.payload(json.as_slice())),
                        None => self.producer.send::<str, [u8]>(record),
                    }
                    .map_err(|(e, _)| e)?;
                }
                Ok(())
            },
        )?;
        self.committed = self.next_offset;
        Ok(())
    }

    /// Counts (or uncounts) a state in the partition's and the gauges' numbers.
    fn count(&mut self, cx: &Context, state: Option<&Open>, sign: i64) {
        let Some(open) = state else { return };
        let unit = open.unit.clone().unwrap_or_default();
        let overdue = i64::from(open.overdue) * sign;
        let count = self.counts.entry(unit.clone()).or_default();
        count.0 += sign;
        count.1 += overdue;
        cx.metrics.shift(cx.name(), &unit, sign, overdue);
    }

    /// Gives the partition up: its gauges and its part of the store go.
    fn release(self, cx: &Context) {
        for (unit, (open, overdue)) in &self.counts {
            cx.metrics.shift(cx.name(), unit, -open, -overdue);
        }
        if let Err(e) = cx.store.clear(self.partition as u32) {
            warn!(deadline = %cx.name(), partition = self.partition, error = %e, "cannot clear the partition's store");
        }
    }
}

/// Writes rebuilt states to the store, with their timers.
fn apply(
    cx: &Context,
    p: u32,
    states: &[(String, Option<Open>)],
) -> Result<(), DeadlineStoreError> {
    let changes: Vec<Change<'_>> = states
        .iter()
        .map(|(key, state)| {
            (
                key.as_str(),
                state.as_ref().map(|o| (o, cx.deadline.next_wake(o))),
            )
        })
        .collect();
    cx.store.apply(p, &changes)
}

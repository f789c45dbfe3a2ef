//! The resource store: every resource as one record of the compacted topic `_mekong.resources`
//! (key `Kind/name`, value the stored resource as JSON, a tombstone for a delete). Every gateway
//! instance reads the topic from the start and keeps following it; each complete change swaps the
//! catalog atomically.
//!
//! A change is one Kafka transaction holding its resource records and its audit events, so readers
//! (read_committed) see all of it or none. Every instance writes with the same `transactional.id`:
//! starting a change fences any change another instance has in flight, so checks made against the
//! state read after that point cannot be overtaken (optimistic concurrency that holds across
//! instances, not only within one).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use mekong_core::evidence::CHECKPOINT_TOPIC;
use mekong_core::{AUDIT_TOPIC, AuditEvent, Catalog, Key, ResourceState, Stored};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{Mutex, watch};
use tracing::{error, info, warn};

use crate::follower::{EndRequest, Follower};
use crate::{Backbone, TopicSettings, ensure_topics};

/// The compacted topic that holds the resources.
pub const RESOURCES_TOPIC: &str = "_mekong.resources";
/// Headers that tie the records of one change together: its id, and `i/n` for each record.
const CHANGE_ID: &str = "mekong_change_id";
const CHANGE_PART: &str = "mekong_change_part";

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Kafka did not answer in time: {0}")]
    Unavailable(String),
    #[error(
        "another change to the resources was being made at the same moment (on this or another instance); nothing was changed, retry"
    )]
    Concurrent,
    #[error("the resource store has stopped")]
    Stopped,
}

impl From<KafkaError> for StoreError {
    fn from(e: KafkaError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// What the store has read: the state, and the position in the topic it reflects.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub state: ResourceState,
    /// The next offset of the topic to read: everything before it is in `state`.
    pub position: i64,
}

/// How the store behaves.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The topic ([`RESOURCES_TOPIC`] unless several hubs share one cluster, or in tests).
    pub topic: String,
    /// Replication of the internal topics when the store creates them (-1: the cluster's default).
    pub replication: i32,
    /// How long Kafka has for each step of reading or writing a change.
    pub timeout: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            topic: RESOURCES_TOPIC.into(),
            replication: -1,
            timeout: Duration::from_secs(15),
        }
    }
}

/// The resource store of one instance.
pub struct Store {
    backbone: Arc<Backbone>,
    view: watch::Receiver<Arc<View>>,
    follower: Follower,
    /// One change at a time from this instance.
    writing: Mutex<()>,
    settings: StoreSettings,
}

impl Store {
    /// Creates the internal topics if needed, reads the store to its end and keeps following it,
    /// swapping `catalog` whenever a change is complete.
    pub async fn open(
        backbone: Arc<Backbone>,
        catalog: Arc<ArcSwap<Catalog>>,
        settings: StoreSettings,
    ) -> Result<Store, StoreError> {
        let internal = |configs| TopicSettings {
            partitions: 1,
            replication: settings.replication,
            max_message_bytes: 8 * 1024 * 1024,
            configs,
        };
        ensure_topics(
            &backbone,
            &[settings.topic.as_str()],
            internal(&[("cleanup.policy", "compact")]),
            settings.timeout,
        )
        .await?;
        // The audit trail and its checkpoints are kept until an operator decides otherwise.
        ensure_topics(
            &backbone,
            &[AUDIT_TOPIC, CHECKPOINT_TOPIC],
            internal(&[("retention.ms", "-1")]),
            settings.timeout,
        )
        .await?;

        let consumer: BaseConsumer = backbone
            .client_config()
            .set("group.id", "mekong.resources.reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&settings.topic, 0, Offset::Beginning)?;
        consumer.assign(&assignment)?;

        let (view_tx, view) = watch::channel(Arc::new(View::default()));
        let (topic, timeout) = (settings.topic.clone(), settings.timeout);
        let follower = Follower::spawn("mekong-resource-store", move |ends| {
            follow(consumer, &topic, catalog, view_tx, ends, timeout)
        });
        let store = Store {
            backbone,
            view,
            follower,
            writing: Mutex::new(()),
            settings,
        };
        let view = store.sync().await?;
        info!(
            resources = view.state.len(),
            position = view.position,
            "resource store read"
        );
        Ok(store)
    }

    /// Stops following the store (its consumer is closed when this returns). Syncs fail after.
    pub fn close(&self) {
        self.follower.close();
    }

    /// What the store has read so far.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// Changes as they are read: the receiver wakes after each new view, and the catalog is
    /// swapped before the view that holds it is sent. Open streams re-check their callers on it.
    pub fn changes(&self) -> watch::Receiver<Arc<View>> {
        self.view.clone()
    }

    /// Waits until everything written to the store before this call has been read (and the catalog
    /// swapped), and returns that view.
    pub async fn sync(&self) -> Result<Arc<View>, StoreError> {
        let end = self.follower.end().await.ok_or(StoreError::Stopped)??;
        self.wait_for(end).await
    }

    async fn wait_for(&self, position: i64) -> Result<Arc<View>, StoreError> {
        let mut view = self.view.clone();
        let reached = view.wait_for(|v| v.position >= position);
        match tokio::time::timeout(self.settings.timeout, reached).await {
            Ok(Ok(v)) => Ok(v.clone()),
            Ok(Err(_)) => Err(StoreError::Stopped),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the resource store was not read up to offset {position} within {:?}",
                self.settings.timeout
            ))),
        }
    }

    /// Begins a change: fences changes in flight anywhere, then reads the store to its end. Judge
    /// the change against the returned transaction's view, then commit it (or drop it).
    pub async fn begin(&self) -> Result<Transaction<'_>, StoreError> {
        let guard = self.writing.lock().await;
        let producer: FutureProducer = self
            .backbone
            .client_config()
            // Shared by every instance on this topic, so that a change begun on one fences changes
            // in flight on the others.
            .set(
                "transactional.id",
                format!("mekong.writer.{}", self.settings.topic),
            )
            .set(
                "transaction.timeout.ms",
                (self.settings.timeout * 4).as_millis().to_string(),
            )
            .set("message.max.bytes", (8 * 1024 * 1024).to_string())
            .create()?;
        let timeout = self.settings.timeout;
        let producer = tokio::task::spawn_blocking(move || {
            producer.init_transactions(timeout).map(|_| producer)
        })
        .await
        .map_err(|_| StoreError::Stopped)??;
        let view = self.sync().await?;
        Ok(Transaction {
            store: self,
            producer,
            view,
            _guard: guard,
        })
    }
}

/// A change in the making; see [`Store::begin`].
pub struct Transaction<'a> {
    store: &'a Store,
    producer: FutureProducer,
    /// The state the change is judged against: everything committed before it began.
    pub view: Arc<View>,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Transaction<'_> {
    /// Writes the resource records and the audit events as one Kafka transaction, and returns when
    /// this instance's catalog includes the change (read-your-writes).
    pub async fn commit(
        self,
        writes: Vec<(Key, Option<Stored>)>,
        events: Vec<AuditEvent>,
    ) -> Result<Arc<View>, StoreError> {
        let timeout = self.store.settings.timeout;
        self.producer.begin_transaction().map_err(fenced)?;
        let change_id = uuid::Uuid::now_v7().to_string();
        let parts = writes.len();
        let mut deliveries = Vec::new();
        for (i, (key, value)) in writes.iter().enumerate() {
            let key = key.to_string();
            let value = value.as_ref().map(Stored::to_json);
            let part = format!("{}/{parts}", i + 1);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: CHANGE_ID,
                    value: Some(change_id.as_str()),
                })
                .insert(Header {
                    key: CHANGE_PART,
                    value: Some(part.as_str()),
                });
            let mut record = FutureRecord::<String, Vec<u8>>::to(&self.store.settings.topic)
                .key(&key)
                .headers(headers);
            if let Some(value) = &value {
                record = record.payload(value);
            }
            deliveries.push(
                self.producer
                    .send_result(record)
                    .map_err(|(e, _)| fenced(e))?,
            );
        }
        let audit: Vec<_> = events
            .iter()
            .map(|e| self.store.backbone.audit_record(e))
            .collect();
        for record in &audit {
            deliveries.push(
                self.producer
                    .send_result(crate::producer::record(record))
                    .map_err(|(e, _)| fenced(e))?,
            );
        }
        let mut last_resource_offset = None;
        let delivered = tokio::time::timeout(timeout, futures::future::join_all(deliveries))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!("no acknowledgement within {timeout:?}"))
            })?;
        for (i, delivery) in delivered.into_iter().enumerate() {
            match delivery {
                Ok(Ok(d)) if i < parts => last_resource_offset = Some(d.offset),
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(failure(&self.producer, e)),
                Err(_) => return Err(StoreError::Stopped),
            }
        }
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.commit_transaction(timeout))
            .await
            .map_err(|_| StoreError::Stopped)?
            .map_err(|e| failure(&self.producer, e))?;
        match last_resource_offset {
            Some(offset) => self.store.wait_for(offset + 1).await,
            None => Ok(self.view),
        }
    }
}

/// Why a write of a change failed. A producer fenced by another instance's change (its queued
/// records are then purged) lost a race; anything else is Kafka being unavailable.
fn failure(producer: &FutureProducer, e: KafkaError) -> StoreError {
    match producer.client().fatal_error() {
        Some((RDKafkaErrorCode::Fenced, _)) => StoreError::Concurrent,
        _ => fenced(e),
    }
}

fn fenced(e: KafkaError) -> StoreError {
    let text = e.to_string();
    if text.contains("fenced") || text.contains("Fenced") || text.contains("PRODUCER_FENCED") {
        StoreError::Concurrent
    } else {
        StoreError::Unavailable(text)
    }
}

/// The follower thread: applies each complete change to the state, swaps the catalog when no more
/// records are waiting, and answers sync requests with the topic's end offset.
fn follow(
    consumer: BaseConsumer,
    topic: &str,
    catalog: Arc<ArcSwap<Catalog>>,
    view_tx: watch::Sender<Arc<View>>,
    syncs: mpsc::Receiver<EndRequest>,
    timeout: Duration,
) {
    let mut state = ResourceState::default();
    let mut position = 0i64;
    let mut dirty = true;
    // Records of a change whose other parts have not arrived yet.
    let mut partial: BTreeMap<String, Vec<(Key, Option<Stored>)>> = BTreeMap::new();
    let mut last_error = Instant::now() - Duration::from_secs(60);
    loop {
        loop {
            match syncs.try_recv() {
                Ok(answer) => {
                    // Short: a sync that cannot be answered fails fast, and the follower goes on.
                    let end = consumer
                        .fetch_watermarks(topic, 0, timeout.min(Duration::from_secs(5)))
                        .map(|(_, high)| high);
                    let _ = answer.send(end);
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                position = message.offset() + 1;
                let Some(key) = message
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .and_then(Key::parse)
                else {
                    warn!(
                        offset = message.offset(),
                        "ignoring a record of the resource store without a valid key"
                    );
                    continue;
                };
                let value = match message.payload().map(Stored::from_json).transpose() {
                    Ok(value) => value,
                    Err(e) => {
                        error!(offset = message.offset(), %key, error = %e, "ignoring an unreadable record of the resource store");
                        continue;
                    }
                };
                let header = |name: &str| {
                    message.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == name)
                            .and_then(|h| h.value)
                            .and_then(|v| String::from_utf8(v.to_vec()).ok())
                    })
                };
                let complete = match (header(CHANGE_ID), header(CHANGE_PART)) {
                    (Some(id), Some(part)) => {
                        let parts = partial.entry(id.clone()).or_default();
                        parts.push((key, value));
                        let total = part
                            .split_once('/')
                            .and_then(|(_, n)| n.parse::<usize>().ok())
                            .unwrap_or(1);
                        if parts.len() >= total {
                            partial.remove(&id).unwrap_or_default()
                        } else {
                            Vec::new()
                        }
                    }
                    // Written by hand or by another tool: a change of one record.
                    _ => vec![(key, value)],
                };
                for (key, value) in complete {
                    state.set(key, value);
                    dirty = true;
                }
                // The catalog is rebuilt when the end is reached, not per record: a store read
                // from the start builds it once.
                continue;
            }
            None => {
                // Between polls the consumer may have moved past transaction markers.
                if let Ok(list) = consumer.position()
                    && let Some(p) = list.find_partition(topic, 0)
                    && let Offset::Offset(o) = p.offset()
                {
                    position = position.max(o);
                }
            }
            Some(Err(e)) => {
                if last_error.elapsed() > Duration::from_secs(10) {
                    warn!(error = %e, "reading the resource store");
                    last_error = Instant::now();
                }
                continue;
            }
        }
        if !partial.is_empty() {
            continue;
        }
        if dirty {
            match state.catalog() {
                Ok(built) => catalog.store(Arc::new(built)),
                // Every change was checked before it was written, so this means resources written
                // by another tool or another version of Mekong. Keep serving the last good catalog.
                Err(e) => {
                    error!(error = %e, "the stored resources do not build a catalog; serving the previous one")
                }
            }
        }
        if dirty || view_tx.borrow().position != position {
            view_tx.send_replace(Arc::new(View {
                state: state.clone(),
                position,
            }));
            dirty = false;
        }
    }
}

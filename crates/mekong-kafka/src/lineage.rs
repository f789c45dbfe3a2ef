//! The lineage index: every event of `_mekong.audit` about a record (received, accepted or rejected,
//! routed, delivered, retried, dead-lettered, replayed), kept in an embedded redb database by record
//! id, and record ids by partition key (a dossier's `MaHoSo`). It is only an index: deleted or
//! lost, it is read again from the topic, which is the record of truth.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use redb::{Database, MultimapTableDefinition, ReadableTable, TableDefinition};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Backbone;
use crate::follower::{EndRequest, Follower};

/// Events by (record id, audit offset): a range over one id gives its events in order.
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// Record ids by partition key.
const KEYS: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("keys");
/// The next audit offset to read.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT: &str = "next_offset";

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("the lineage index: {0}")]
    Store(String),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the lineage index has not read the audit trail up to now within {0:?}")]
    Behind(Duration),
}

fn store<E: std::fmt::Display>(e: E) -> LineageError {
    LineageError::Store(e.to_string())
}

/// The index of one process, kept up to date from the audit topic by a thread of its own.
pub struct Lineage {
    db: Arc<Database>,
    position: watch::Receiver<i64>,
    follower: Follower,
}

impl Lineage {
    /// Opens (or creates) the index in `dir` and follows `topic` from where it left off.
    pub fn open(backbone: &Backbone, dir: &Path, topic: &str) -> Result<Lineage, LineageError> {
        std::fs::create_dir_all(dir).map_err(store)?;
        let db = Arc::new(Database::create(dir.join("lineage.redb")).map_err(store)?);
        let next = {
            let txn = db.begin_write().map_err(store)?;
            let next = {
                txn.open_table(EVENTS).map_err(store)?;
                txn.open_multimap_table(KEYS).map_err(store)?;
                let meta = txn.open_table(META).map_err(store)?;
                meta.get(NEXT).map_err(store)?.map_or(0, |v| v.value())
            };
            txn.commit().map_err(store)?;
            next
        };
        if next == 0 {
            info!(dir = %dir.display(), "lineage index empty: reading the audit trail from its start");
        }
        let consumer: BaseConsumer = backbone
            .client_config()
            .set("group.id", "mekong.lineage.reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Offset(next as i64))?;
        consumer.assign(&assignment)?;
        let (position_tx, position) = watch::channel(next as i64);
        let (follower_db, topic) = (Arc::clone(&db), topic.to_owned());
        let follower = Follower::spawn("mekong-lineage", move |ends| {
            follow(consumer, &topic, follower_db, position_tx, ends)
        });
        Ok(Lineage {
            db,
            position,
            follower,
        })
    }

    /// Stops following the audit trail (its consumer is closed when this returns).
    pub fn close(&self) {
        self.follower.close();
    }

    /// Waits until the index holds everything written to the audit topic before this call.
    pub async fn sync(&self, within: Duration) -> Result<(), LineageError> {
        let wait = async {
            let end = self
                .follower
                .end()
                .await
                .ok_or_else(|| LineageError::Store("the index has stopped".into()))??;
            let mut position = self.position.clone();
            position
                .wait_for(|p| *p >= end)
                .await
                .map_err(|_| LineageError::Store("the index has stopped".into()))?;
            Ok(())
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| LineageError::Behind(within))?
    }

    /// The events of one record, in the order they were written.
    pub fn events(&self, record_id: &str) -> Result<Vec<Value>, LineageError> {
        let txn = self.db.begin_read().map_err(store)?;
        let events = txn.open_table(EVENTS).map_err(store)?;
        let mut found = Vec::new();
        for entry in events
            .range((record_id, 0)..=(record_id, u64::MAX))
            .map_err(store)?
        {
            let (_, value) = entry.map_err(store)?;
            found.push(serde_json::from_slice(value.value()).map_err(store)?);
        }
        Ok(found)
    }

    /// The ids of the records with this partition key, oldest first.
    pub fn records_with_key(&self, key: &str) -> Result<Vec<String>, LineageError> {
        let txn = self.db.begin_read().map_err(store)?;
        let keys = txn.open_multimap_table(KEYS).map_err(store)?;
        let mut ids = Vec::new();
        for id in keys.get(key).map_err(store)? {
            ids.push(id.map_err(store)?.value().to_owned());
        }
        // UUIDv7 ids sort by time; derived (v5) ids do not, so order by first event instead.
        let mut dated: Vec<(String, String)> = ids
            .into_iter()
            .map(|id| {
                let first = self
                    .events(&id)
                    .ok()
                    .and_then(|e| e.first()?["time"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (first, id)
            })
            .collect();
        dated.sort();
        Ok(dated.into_iter().map(|(_, id)| id).collect())
    }
}

/// Reads the audit topic into the index, a batch of records per write transaction.
fn follow(
    consumer: BaseConsumer,
    topic: &str,
    db: Arc<Database>,
    position_tx: watch::Sender<i64>,
    syncs: mpsc::Receiver<EndRequest>,
) {
    let mut position = *position_tx.borrow();
    loop {
        loop {
            match syncs.try_recv() {
                Ok(answer) => {
                    let end = consumer
                        .fetch_watermarks(topic, 0, Duration::from_secs(5))
                        .map(|(_, high)| high);
                    let _ = answer.send(end);
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        let mut batch: Vec<Indexed> = Vec::new();
        let mut last = None;
        while batch.len() < 1000 {
            match consumer.poll(Duration::from_millis(if batch.is_empty() {
                100
            } else {
                0
            })) {
                Some(Ok(m)) => {
                    last = Some(m.offset());
                    if let Some(indexed) = m.payload().and_then(|p| Indexed::read(m.offset(), p)) {
                        batch.push(indexed);
                    }
                }
                Some(Err(e)) => {
                    warn!(error = %e, "reading the audit trail for the lineage index");
                    break;
                }
                None => break,
            }
        }
        if let Some(offset) = last {
            position = position.max(offset + 1);
        } else if let Ok(list) = consumer.position()
            && let Some(p) = list.find_partition(topic, 0)
            && let Offset::Offset(o) = p.offset()
        {
            // Past transaction markers, which are no records.
            position = position.max(o);
        }
        if last.is_some()
            && let Err(e) = index(&db, &batch, position)
        {
            warn!(error = %e, "writing the lineage index");
            continue;
        }
        if *position_tx.borrow() != position {
            position_tx.send_replace(position);
        }
    }
}

/// An audit event about a record, as the index keeps it.
struct Indexed {
    offset: i64,
    record_id: String,
    key: Option<String>,
    json: Vec<u8>,
}

impl Indexed {
    /// Events without a record id (changes to resources) are not indexed; neither is what does not
    /// read as an audit event.
    fn read(offset: i64, payload: &[u8]) -> Option<Indexed> {
        let event = mekong_core::AuditEvent::from_json(payload).ok()?;
        Some(Indexed {
            offset,
            record_id: event.record_id()?.to_owned(),
            key: event.key().map(str::to_owned),
            json: payload.to_vec(),
        })
    }
}

fn index(db: &Database, batch: &[Indexed], next: i64) -> Result<(), LineageError> {
    let mut txn = db.begin_write().map_err(store)?;
    // An index read again from the topic when lost: no need to wait for the disk at each batch.
    txn.set_durability(redb::Durability::Eventual);
    {
        let mut events = txn.open_table(EVENTS).map_err(store)?;
        let mut keys = txn.open_multimap_table(KEYS).map_err(store)?;
        for e in batch {
            events
                .insert((e.record_id.as_str(), e.offset as u64), e.json.as_slice())
                .map_err(store)?;
            if let Some(key) = &e.key {
                keys.insert(key.as_str(), e.record_id.as_str())
                    .map_err(store)?;
            }
        }
        let mut meta = txn.open_table(META).map_err(store)?;
        meta.insert(NEXT, next as u64).map_err(store)?;
    }
    txn.commit().map_err(store)
}

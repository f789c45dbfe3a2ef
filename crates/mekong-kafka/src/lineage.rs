//! The lineage index: every event of `_mekong.audit` about a record (received, accepted or rejected,
//! routed, delivered, retried, dead-lettered, replayed), kept in an embedded redb database by record
//! id, and record ids by partition key (a dossier's `MaHoSo`). It is only an index: deleted or
//! lost, it is read again from the topic, which is the record of truth.
//!
//! With an audit key it also keeps the Merkle leaves of the trail (every event sealed by the hub,
//! in offset order, as the notary counts them), from which it proves a record's events against a
//! signed checkpoint.

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

use mekong_core::cloudevents;
use mekong_core::evidence::{
    AuditKey, Checkpoint, Hash, ProvenEvent, SEAL_HEADER, SealCheck, encode_hash, event_leaf,
    inclusion_proof,
};
use rdkafka::message::{BorrowedMessage, Headers};

use crate::Backbone;
use crate::follower::{EndRequest, Follower};

/// Events by (record id, audit offset): a range over one id gives its events in order.
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// Record ids by partition key.
const KEYS: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("keys");
/// The next audit offset to read; the leaves kept, and the offset the first was read at.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT: &str = "next_offset";
const LEAF_COUNT: &str = "leaves";
const FIRST: &str = "first_offset";
/// Leaf hashes by leaf index.
const LEAVES: TableDefinition<u64, &[u8]> = TableDefinition::new("leaves");
/// An indexed event's leaf: by audit offset, its leaf index and CloudEvents id.
const LEAF_OF: TableDefinition<u64, (u64, &str)> = TableDefinition::new("leaf_of");

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("the lineage index: {0}")]
    Store(String),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the lineage index has not read the audit trail up to now within {0:?}")]
    Behind(Duration),
    #[error("{0}")]
    Unprovable(String),
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
                txn.open_table(LEAVES).map_err(store)?;
                txn.open_table(LEAF_OF).map_err(store)?;
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
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Offset(next as i64))?;
        consumer.assign(&assignment)?;
        let (position_tx, position) = watch::channel(next as i64);
        let (follower_db, topic) = (Arc::clone(&db), topic.to_owned());
        let keys: Vec<AuditKey> = backbone.audit_key().into_iter().cloned().collect();
        let follower = Follower::spawn("mekong-lineage", move |ends| {
            follow(consumer, &topic, &keys, follower_db, position_tx, ends)
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

    /// The events of one record that the tree of `checkpoint` holds, each with its inclusion
    /// proof, and how many of its events came after it (or are not sealed).
    pub fn proven_events(
        &self,
        record_id: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(Vec<ProvenEvent>, usize), LineageError> {
        let txn = self.db.begin_read().map_err(store)?;
        let meta = txn.open_table(META).map_err(store)?;
        let count = meta
            .get(LEAF_COUNT)
            .map_err(store)?
            .map_or(0, |v| v.value());
        let first = meta.get(FIRST).map_err(store)?.map(|v| v.value() as i64);
        if count < checkpoint.size {
            return Err(LineageError::Unprovable(format!(
                "the lineage index holds {count} leaves, the checkpoint {}: is this instance given the audit key?",
                checkpoint.size
            )));
        }
        if checkpoint.size > 0 && first != Some(checkpoint.first_offset) {
            return Err(LineageError::Unprovable(format!(
                "the checkpoint's tree starts at audit offset {}, this index at {first:?}: rebuild the index (delete --lineage-dir)",
                checkpoint.first_offset
            )));
        }
        let events = txn.open_table(EVENTS).map_err(store)?;
        let leaf_of = txn.open_table(LEAF_OF).map_err(store)?;
        let mut found = Vec::new();
        let mut uncovered = 0;
        for entry in events
            .range((record_id, 0)..=(record_id, u64::MAX))
            .map_err(store)?
        {
            let (at, value) = entry.map_err(store)?;
            let offset = at.value().1;
            match leaf_of.get(offset).map_err(store)? {
                Some(leaf) if leaf.value().0 < checkpoint.size => {
                    let (index, id) = leaf.value();
                    found.push(ProvenEvent {
                        partition: 0,
                        offset: offset as i64,
                        leaf_index: index,
                        id: id.to_owned(),
                        event: String::from_utf8_lossy(value.value()).into_owned(),
                        inclusion: Vec::new(),
                    });
                }
                _ => uncovered += 1,
            }
        }
        if !found.is_empty() {
            let table = txn.open_table(LEAVES).map_err(store)?;
            let mut leaves: Vec<Hash> = Vec::with_capacity(checkpoint.size as usize);
            for entry in table.range(0..checkpoint.size).map_err(store)? {
                let (_, hash) = entry.map_err(store)?;
                leaves.push(hash.value().try_into().map_err(store)?);
            }
            for event in &mut found {
                event.inclusion = inclusion_proof(event.leaf_index as usize, &leaves)
                    .iter()
                    .map(encode_hash)
                    .collect();
            }
        }
        Ok((found, uncovered))
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
    keys: &[AuditKey],
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
                    batch.push(Indexed::read(&m, keys));
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

/// An audit event as the index keeps it: by record, when it is about one, and as a leaf, when
/// it is sealed by the hub.
struct Indexed {
    offset: i64,
    record: Option<(String, Option<String>)>,
    json: Vec<u8>,
    leaf: Option<(String, Hash)>,
}

impl Indexed {
    /// Changes to resources are leaves, not records; what does not read as an audit event is
    /// neither.
    fn read(m: &BorrowedMessage<'_>, keys: &[AuditKey]) -> Indexed {
        let payload = m.payload().unwrap_or_default();
        let header = |name: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == name)?.value)
        };
        let id = String::from_utf8_lossy(header(cloudevents::ID).unwrap_or_default()).into_owned();
        let leaf = match AuditKey::check(keys, &id, payload, header(SEAL_HEADER)) {
            SealCheck::Sealed(_) => Some((id.clone(), event_leaf(&id, payload))),
            _ => None,
        };
        let record = mekong_core::AuditEvent::from_json(payload)
            .ok()
            .and_then(|event| {
                Some((
                    event.record_id()?.to_owned(),
                    event.key().map(str::to_owned),
                ))
            });
        Indexed {
            offset: m.offset(),
            record,
            json: payload.to_vec(),
            leaf,
        }
    }
}

fn index(db: &Database, batch: &[Indexed], next: i64) -> Result<(), LineageError> {
    let mut txn = db.begin_write().map_err(store)?;
    // An index read again from the topic when lost: no need to wait for the disk at each batch.
    txn.set_durability(redb::Durability::Eventual);
    {
        let mut events = txn.open_table(EVENTS).map_err(store)?;
        let mut keys = txn.open_multimap_table(KEYS).map_err(store)?;
        let mut leaves = txn.open_table(LEAVES).map_err(store)?;
        let mut leaf_of = txn.open_table(LEAF_OF).map_err(store)?;
        let mut meta = txn.open_table(META).map_err(store)?;
        let mut count = meta
            .get(LEAF_COUNT)
            .map_err(store)?
            .map_or(0, |v| v.value());
        for e in batch {
            if let Some((id, hash)) = &e.leaf {
                if count == 0 {
                    meta.insert(FIRST, e.offset as u64).map_err(store)?;
                }
                leaves.insert(count, hash.as_slice()).map_err(store)?;
                leaf_of
                    .insert(e.offset as u64, (count, id.as_str()))
                    .map_err(store)?;
                count += 1;
            }
            let Some((record_id, key)) = &e.record else {
                continue;
            };
            events
                .insert((record_id.as_str(), e.offset as u64), e.json.as_slice())
                .map_err(store)?;
            if let Some(key) = key {
                keys.insert(key.as_str(), record_id.as_str())
                    .map_err(store)?;
            }
        }
        meta.insert(LEAF_COUNT, count).map_err(store)?;
        meta.insert(NEXT, next as u64).map_err(store)?;
    }
    txn.commit().map_err(store)
}

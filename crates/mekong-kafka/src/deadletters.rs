//! Dead letters: the records an adapter could not deliver, in its topic `_mekong.dlq.<adapter>`,
//! each with the original key, payload and headers and `mekong_dlq_*` headers saying why. Read
//! here for operators, a page at a time (a dead-letter topic can hold more than fits in memory),
//! who replay them through the adapter's replay topic.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::Backbone;
use crate::subscription::owned_headers;

/// One dead letter (or any record of a one-partition topic read by [`read_page`]).
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: Bytes,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    /// A header as UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Some records of a topic, and where the next ones start.
#[derive(Debug, Default)]
pub struct Page {
    pub letters: Vec<DeadLetter>,
    /// The offset to read from for the next page; `None` when the topic's end was reached.
    pub next: Option<i64>,
}

/// A consumer that reads committed records by offset, in no group's name (it never joins or
/// commits).
fn reader(backbone: &Backbone) -> Result<BaseConsumer, KafkaError> {
    backbone
        .client_config()
        .set("group.id", "mekong.deadletters.reader")
        .set("enable.auto.commit", "false")
        // The audit trail holds the resource store's transactions: aborted ones are no records.
        .set("isolation.level", "read_committed")
        .create()
}

/// Whether `topic` exists with partitions.
fn exists(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<bool, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}

/// The record at `offset` of `topic`'s `partition` (committed records only), if it is still
/// there (blocking).
pub fn read_at(
    backbone: &Backbone,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: Duration,
) -> Result<Option<DeadLetter>, KafkaError> {
    let consumer = reader(backbone)?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    if offset < low || offset >= high {
        return Ok(None);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.offset() == offset => {
                return Ok(Some(DeadLetter {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec().into(),
                    headers: owned_headers(&m),
                }));
            }
            // A later record: the one asked for is gone (compaction) or was no record.
            Some(Ok(_)) => return Ok(None),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Err(KafkaError::MessageConsumption(
        RDKafkaErrorCode::OperationTimedOut,
    ))
}

/// The first kept and the next offset of partition 0 of `topic` (a single-partition topic), or
/// `None` when it does not exist (blocking).
pub fn offsets(
    backbone: &Backbone,
    topic: &str,
    timeout: Duration,
) -> Result<Option<(i64, i64)>, KafkaError> {
    let consumer = reader(backbone)?;
    let exists = exists(&consumer, topic, timeout)?;
    if !exists {
        return Ok(None);
    }
    consumer.fetch_watermarks(topic, 0, timeout).map(Some)
}

/// At most `max` records of partition 0 of `topic` (dead-letter, replay, audit and checkpoint
/// topics have one), committed ones only,
/// from offset `from` (or the earliest kept), up to the topic's end when called (blocking).
pub fn read_page(
    backbone: &Backbone,
    topic: &str,
    from: i64,
    max: usize,
    timeout: Duration,
) -> Result<Page, KafkaError> {
    let consumer = reader(backbone)?;
    let exists = exists(&consumer, topic, timeout)?;
    if !exists || max == 0 {
        return Ok(Page::default());
    }
    let (low, high) = consumer.fetch_watermarks(topic, 0, timeout)?;
    let start = from.max(low);
    if start >= high {
        return Ok(Page::default());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    let mut letters = Vec::new();
    let mut next = start;
    while next < high && letters.len() < max {
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                next = m.offset() + 1;
                letters.push(DeadLetter {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec().into(),
                    headers: owned_headers(&m),
                });
            }
            Some(Err(e)) => return Err(e),
            None => {
                // Past offsets that hold no record (compaction, transaction markers).
                if let Ok(list) = consumer.position()
                    && let Some(p) = list.find_partition(topic, 0)
                    && let Offset::Offset(o) = p.offset()
                {
                    next = next.max(o);
                }
            }
        }
    }
    Ok(Page {
        letters,
        next: (next < high).then_some(next),
    })
}

//! A deadline's changelog (`_mekong.deadlines.<name>`, compacted) read from its beginning to its
//! end: what a tracker rebuilds a partition's store from, and what `mekong overdue` and the console
//! list. Only committed transactions are read, so a tracker's state is never ahead of its events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mekong_core::deadline::Open;
use mekong_kafka::{Backbone, KafkaError, RDKafkaErrorCode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// How long the reader may go without a record before it gives up on a partition's end.
const STALL: Duration = Duration::from_secs(30);

/// Calls `each(partition, key, state)` for every record of `partitions` of `topic`, in offset order
/// per partition (`None`: a tombstone, the key's deadline closed). Returns once each partition's
/// end (as it was when the read began) is reached.
pub(crate) fn read(
    backbone: &Backbone,
    topic: &str,
    partitions: &[i32],
    mut each: impl FnMut(i32, &str, Option<Open>),
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = backbone
        .client_config()
        // Assigned, not subscribed: the group is never joined nor committed to.
        .set("group.id", "mekong.deadlines.reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", "16384")
        .create()?;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            ends.insert(p, high);
            list.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&list)?;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let p = m.partition();
                let Some(&end) = ends.get(&p) else { continue };
                let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                let state = m
                    .payload()
                    .and_then(|json| serde_json::from_slice(json).ok());
                each(p, &key, state);
                if m.offset() + 1 >= end {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => return Err(e),
            None => {
                // The last records may be a transaction's markers: the position says it is past
                // them.
                let positions = consumer.position()?;
                ends.retain(|p, end| {
                    positions
                        .find_partition(topic, *p)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o < *end),
                            _ => None,
                        })
                        .unwrap_or(true)
                });
                if last_progress.elapsed() > STALL && !ends.is_empty() {
                    return Err(KafkaError::Global(RDKafkaErrorCode::RequestTimedOut));
                }
            }
        }
    }
    Ok(())
}

/// The number of partitions of a topic, or `None` when it does not exist.
pub(crate) fn partitions_of(backbone: &Backbone, topic: &str) -> Result<Option<i32>, KafkaError> {
    let consumer: BaseConsumer = backbone.client_config().create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as i32))
}

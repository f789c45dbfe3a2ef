//! The end of a consume-transform-produce transaction, as the notary and the deadline trackers
//! close theirs: the consumer group's next offset of the partition read, then the commit; on any
//! failure the transaction is aborted (and the caller, fenced or not, takes the partition again).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// Runs `send` in a transaction of `producer` and commits it with `consumer`'s group offset
/// `next_offset` of (`topic`, `partition`); aborts it when anything fails.
pub fn transact(
    producer: &ThreadedProducer<DefaultProducerContext>,
    consumer: &BaseConsumer,
    (topic, partition, next_offset): (&str, i32, i64),
    send: impl FnOnce() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let result = (|| {
        producer.begin_transaction()?;
        send()?;
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(topic, partition, Offset::Offset(next_offset))?;
        let group = consumer
            .group_metadata()
            .ok_or(KafkaError::Global(RDKafkaErrorCode::State))?;
        producer.send_offsets_to_transaction(&offsets, &group, Duration::from_secs(10))?;
        producer.commit_transaction(Duration::from_secs(30))
    })();
    if result.is_err() {
        let _ = producer.abort_transaction(Duration::from_secs(10));
    }
    result
}

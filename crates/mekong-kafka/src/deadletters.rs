//! Dead letters: the records an adapter could not deliver, in its topic `_mekong.dlq.<adapter>`,
//! each with the original key, payload and headers and `mekong_dlq_*` headers saying why. Read
//! here for operators, who replay them through the adapter's replay topic.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::Backbone;
use crate::subscription::owned_headers;

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
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

/// Every record of `topic`, from the start to its end when called (blocking).
pub fn read_all(
    backbone: &Backbone,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<DeadLetter>, KafkaError> {
    let consumer: BaseConsumer = backbone
        .client_config()
        .set("group.id", "mekong.deadletters.reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = Vec::new();
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, timeout)?;
        if high > low {
            ends.push((*p, high));
            assignment.add_partition_offset(topic, *p, Offset::Beginning)?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    let mut letters = Vec::new();
    // The next offset read, per partition.
    let mut reached: HashMap<i32, i64> = HashMap::new();
    while !ends
        .iter()
        .all(|(p, high)| reached.get(p).is_some_and(|next| next >= high))
    {
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(
                rdkafka::error::RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                reached.insert(m.partition(), m.offset() + 1);
                letters.push(DeadLetter {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers: owned_headers(&m),
                })
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    letters.sort_by_key(|l| (l.partition, l.offset));
    Ok(letters)
}

//! Writing a record's copies to Kafka. A write succeeds only when every copy is acknowledged by all
//! in-sync replicas (acks=all) within the deadline; the idempotent producer keeps librdkafka's own
//! retries from duplicating or reordering records.

use std::time::Duration;

use futures::future::join_all;
use mekong_core::evidence::AuditKey;
use mekong_core::{AuditEvent, KafkaRecord};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::Backbone;

/// How the producer behaves.
#[derive(Debug, Clone, Copy)]
pub struct ProducerSettings {
    /// How long a copy may take to be acknowledged before the write fails as unavailable.
    pub delivery_timeout: Duration,
    /// How long librdkafka waits to fill a batch.
    pub linger: Duration,
    /// Bound on what waits in the producer's queue; past it, writes are refused as exhausted.
    pub max_queued_messages: u32,
    pub max_queued_kbytes: u32,
    /// Largest Kafka message (payload, key and headers); see [`message_bytes_for`].
    pub max_message_bytes: usize,
}

/// Room for a record's key, headers and framing on top of its payload.
const MESSAGE_HEADROOM: usize = 64 * 1024;

/// The Kafka message size that fits a payload of `max_record_bytes` with its key and headers. The
/// producer and the topics the hub creates are set to it, so the hub's own limit is the one callers
/// meet, not a smaller one deeper down.
pub fn message_bytes_for(max_record_bytes: usize) -> usize {
    max_record_bytes + MESSAGE_HEADROOM
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            delivery_timeout: Duration::from_secs(10),
            linger: Duration::from_millis(5),
            max_queued_messages: 100_000,
            max_queued_kbytes: 64 * 1024,
            max_message_bytes: message_bytes_for(mekong_core::Limits::DEFAULT_MAX_RECORD_BYTES),
        }
    }
}

/// Where one copy landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenCopy {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl WrittenCopy {
    /// A copy that did not land.
    const NONE: WrittenCopy = WrittenCopy {
        topic: String::new(),
        partition: -1,
        offset: -1,
    };
}

/// Why a write failed. Messages say what happened in plain words; what librdkafka said stays in
/// the typed `source`, for the logs, never for the caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProduceError {
    /// The local queue is full: the backbone is slower than the callers. Retry after a short delay.
    #[error("the hub's producer queue is full; retry shortly")]
    QueueFull,
    /// Kafka did not acknowledge in time, or refused for a reason that may pass.
    #[error("Kafka did not acknowledge the record in time; retry")]
    Unavailable(#[source] Option<KafkaError>),
    /// Larger than Kafka accepts for the topic (its `max.message.bytes`).
    #[error("Kafka refused the record as too large for topic `{topic}`")]
    TooLarge {
        topic: String,
        #[source]
        source: KafkaError,
    },
    /// Kafka refused the record for good (e.g. not authorised for the topic).
    #[error("Kafka refused the record for topic `{topic}`")]
    Refused {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// A write that failed after some copies were acknowledged: those are reported, so the caller can
/// say where the record already is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct WriteError {
    pub error: ProduceError,
    /// The copies Kafka acknowledged, by their index in the write.
    pub landed: Vec<(usize, WrittenCopy)>,
}

impl From<ProduceError> for WriteError {
    fn from(error: ProduceError) -> Self {
        WriteError {
            error,
            landed: Vec::new(),
        }
    }
}

/// The hub's Kafka producer, shared by every request.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    settings: ProducerSettings,
    audit_key: Option<AuditKey>,
}

impl Producer {
    pub fn new(backbone: &Backbone, settings: ProducerSettings) -> Result<Producer, KafkaError> {
        let inner: FutureProducer = backbone
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", settings.linger.as_millis().to_string())
            .set(
                "message.timeout.ms",
                settings.delivery_timeout.as_millis().to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                settings.max_queued_messages.to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                settings.max_queued_kbytes.to_string(),
            )
            .set("message.max.bytes", settings.max_message_bytes.to_string())
            .create()?;
        Ok(Producer {
            inner,
            settings,
            audit_key: backbone.audit_key().cloned(),
        })
    }

    /// Writes every copy and waits until all are acknowledged, or the deadline passes. When some
    /// fail, the error lists those that landed.
    pub async fn write(&self, copies: &[KafkaRecord]) -> Result<Vec<WrittenCopy>, WriteError> {
        let mut deliveries = Vec::with_capacity(copies.len());
        for copy in copies {
            match self.inner.send_result(record(copy)) {
                Ok(delivery) => deliveries.push(delivery),
                // Refused before it was sent (a full queue): answered at once, so the caller backs
                // off now. Copies enqueued before it may still land, with the same record id.
                Err((e, _)) => return Err(classify(e, &copy.topic).into()),
            }
        }
        // librdkafka gives up at `message.timeout.ms`; the margin only guards against a lost callback.
        let deadline = self.settings.delivery_timeout + Duration::from_secs(2);
        let results = match tokio::time::timeout(deadline, join_all(deliveries)).await {
            Ok(results) => results,
            Err(_) => return Err(ProduceError::Unavailable(None).into()),
        };
        let mut written = Vec::with_capacity(copies.len());
        let mut failed = None;
        for (copy, result) in copies.iter().zip(results) {
            match result {
                Ok(Ok(delivery)) => written.push(WrittenCopy {
                    topic: copy.topic.clone(),
                    partition: delivery.partition,
                    offset: delivery.offset,
                }),
                Ok(Err((e, _))) => {
                    failed.get_or_insert(classify(e, &copy.topic));
                    written.push(WrittenCopy::NONE);
                }
                Err(_) => {
                    failed.get_or_insert(ProduceError::Unavailable(None));
                    written.push(WrittenCopy::NONE);
                }
            }
        }
        match failed {
            None => Ok(written),
            Some(error) => Err(WriteError {
                error,
                landed: written
                    .into_iter()
                    .enumerate()
                    .filter(|(_, w)| w.offset >= 0)
                    .collect(),
            }),
        }
    }

    /// An audit event as the record to write to the audit topic, sealed with the backbone's key.
    pub fn audit_record(&self, event: &AuditEvent) -> KafkaRecord {
        event.to_record(uuid::Uuid::now_v7(), self.audit_key.as_ref())
    }

    /// Hands one record to the producer without waiting for Kafka's acknowledgement: for records
    /// whose loss in a crash costs no data (lineage events), never for the data itself.
    pub fn enqueue(&self, copy: &KafkaRecord) -> Result<(), ProduceError> {
        self.inner
            .send_result(record(copy))
            .map(drop)
            .map_err(|(e, _)| classify(e, &copy.topic))
    }

    /// Messages queued or waiting for Kafka's acknowledgement.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// Waits for everything queued to be delivered (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }
}

/// A copy as a Kafka record: its topic, key, value and headers.
pub(crate) fn record(copy: &KafkaRecord) -> FutureRecord<'_, [u8], [u8]> {
    let mut headers = OwnedHeaders::new_with_capacity(copy.headers.len());
    for (name, value) in &copy.headers {
        headers = headers.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    FutureRecord::to(&copy.topic)
        .key(copy.key.as_bytes())
        .payload(&*copy.value)
        .headers(headers)
}

fn classify(error: KafkaError, topic: &str) -> ProduceError {
    let topic = topic.to_owned();
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => ProduceError::QueueFull,
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            ProduceError::TooLarge {
                topic,
                source: error,
            }
        }
        Some(
            RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::InvalidTopic,
        ) => ProduceError::Refused {
            topic,
            source: error,
        },
        _ => ProduceError::Unavailable(Some(error)),
    }
}

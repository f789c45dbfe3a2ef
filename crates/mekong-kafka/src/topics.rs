//! Destination topics are created when missing, so a new route works without a separate step.
//! Existing topics are left exactly as they are.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::Backbone;

/// Partitions of a topic on the embedded backbone when the cluster's default is asked for.
const EMBEDDED_DEFAULT_PARTITIONS: i32 = 3;

/// How new topics are created.
#[derive(Debug, Clone, Copy)]
pub struct TopicSettings {
    pub partitions: i32,
    pub replication: i32,
    /// The topic's `max.message.bytes`.
    pub max_message_bytes: usize,
    /// Further topic configs, e.g. `cleanup.policy=compact`.
    pub configs: &'static [(&'static str, &'static str)],
}

/// Creates the topics that do not exist yet. Returns the names it created.
pub async fn ensure_topics(
    backbone: &Backbone,
    topics: &[&str],
    settings: TopicSettings,
    timeout: Duration,
) -> Result<Vec<String>, KafkaError> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    if backbone.is_embedded() {
        // librdkafka's mock default when the cluster's default (-1) is asked for.
        let partitions = if settings.partitions > 0 {
            settings.partitions
        } else {
            EMBEDDED_DEFAULT_PARTITIONS
        };
        let mut created = Vec::new();
        for topic in topics {
            match backbone.create_embedded_topic(topic, partitions) {
                Some(Ok(())) => created.push(topic.to_string()),
                Some(Err(e))
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::TopicAlreadyExists) => {}
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        return Ok(created);
    }
    let admin: AdminClient<DefaultClientContext> = backbone.client_config().create()?;
    let max_message_bytes = settings.max_message_bytes.to_string();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                settings.partitions,
                TopicReplication::Fixed(settings.replication),
            )
            .set("max.message.bytes", &max_message_bytes)
        })
        .map(|topic| {
            settings
                .configs
                .iter()
                .fold(topic, |topic, (key, value)| topic.set(key, value))
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let mut created = Vec::new();
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code))
                    .inspect_err(|_| tracing::error!(%topic, ?code, "cannot create topic"));
            }
        }
    }
    Ok(created)
}

/// Whether the topic exists (blocking: a metadata request to the cluster).
pub fn topic_exists(
    backbone: &Backbone,
    topic: &str,
    timeout: Duration,
) -> Result<bool, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let client: BaseConsumer = backbone.client_config().create()?;
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}

/// How far a consumer group is behind, per partition of `topics`: (topic, partition, records not
/// yet committed). A partition the group never committed counts every record kept. Blocking.
pub fn group_lag(
    backbone: &Backbone,
    group: &str,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<(String, i32, i64)>, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    // A consumer of the group that never joins it: it only asks for the committed offsets.
    let client: BaseConsumer = backbone.client_config().set("group.id", group).create()?;
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = client.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                partitions.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = client.committed_offsets(partitions, timeout)?;
    let mut lag = Vec::new();
    for element in committed.elements() {
        let (low, high) = client.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let position = match element.offset() {
            Offset::Offset(o) => o.max(low),
            _ => low,
        };
        lag.push((
            element.topic().to_owned(),
            element.partition(),
            (high - position).max(0),
        ));
    }
    lag.sort();
    Ok(lag)
}

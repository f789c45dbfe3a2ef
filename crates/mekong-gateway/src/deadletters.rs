//! Dead letters for operators: listing what an adapter could not deliver, and replaying it through
//! the adapter's replay topic (`_mekong.replay.<adapter>`), which the adapter reads besides its own
//! topics. A replayed record carries `mekong_replay_of` = its dead letter's offset, so a dead letter
//! shows as replayed and `--all` does not send it twice.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mekong_core::{
    AUDIT_TOPIC, Copy, DeliveryEvent, audit_headers, dead_letter_topic, replay_topic,
};
use mekong_kafka::{Backbone, DeadLetter, Producer, read_all};
use mekong_proto::v1 as pb;
use tonic::Status;

const REPLAY_OF: &str = "mekong_replay_of";
const DLQ_PREFIX: &str = "mekong_dlq_";
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The adapter's dead letters, and the offsets of those replayed already.
async fn read(
    backbone: &Arc<Backbone>,
    adapter: &str,
) -> Result<(Vec<DeadLetter>, BTreeSet<i64>), Status> {
    let backbone = Arc::clone(backbone);
    let adapter = adapter.to_owned();
    tokio::task::spawn_blocking(move || {
        let letters = read_all(&backbone, &dead_letter_topic(&adapter), READ_TIMEOUT)?;
        let replayed = read_all(&backbone, &replay_topic(&adapter), READ_TIMEOUT)?
            .iter()
            .filter_map(|r| r.header(REPLAY_OF)?.parse().ok())
            .collect();
        Ok::<_, mekong_kafka::KafkaError>((letters, replayed))
    })
    .await
    .map_err(|_| Status::internal("reading dead letters stopped"))?
    .map_err(|e| Status::unavailable(format!("cannot read the dead letters from Kafka: {e}")))
}

pub(crate) async fn list(
    backbone: &Arc<Backbone>,
    adapter: &str,
) -> Result<pb::ListDeadLettersResponse, Status> {
    let (letters, replayed) = read(backbone, adapter).await?;
    Ok(pb::ListDeadLettersResponse {
        dead_letters: letters
            .iter()
            .map(|l| pb::DeadLetter {
                offset: l.offset,
                record_id: l.header("ce_id").unwrap_or_default(),
                record_type: l.header("ce_type").unwrap_or_default(),
                key: String::from_utf8_lossy(&l.key).into_owned(),
                source: l.header("mekong_dlq_source").unwrap_or_default(),
                attempts: l
                    .header("mekong_dlq_attempts")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0),
                last_status: l.header("mekong_dlq_status").unwrap_or_default(),
                error: l.header("mekong_dlq_error").unwrap_or_default(),
                time: l.header("mekong_dlq_time").unwrap_or_default(),
                replayed: replayed.contains(&l.offset),
            })
            .collect(),
    })
}

pub(crate) async fn replay(
    backbone: &Arc<Backbone>,
    producer: &Producer,
    adapter: &str,
    request: &pb::ReplayDeadLettersRequest,
    actor: &str,
) -> Result<pb::ReplayDeadLettersResponse, Status> {
    // Exactly one of: some record ids, or all.
    let has_ids = !request.record_ids.is_empty();
    if request.all == has_ids {
        return Err(Status::invalid_argument(
            "say which dead letters to replay: record ids, or all",
        ));
    }
    let (letters, replayed) = read(backbone, adapter).await?;
    let chosen: Vec<&DeadLetter> = if request.all {
        letters
            .iter()
            .filter(|l| !replayed.contains(&l.offset))
            .collect()
    } else {
        let mut chosen = Vec::new();
        for id in &request.record_ids {
            // The latest dead letter of that record.
            match letters
                .iter()
                .rev()
                .find(|l| l.header("ce_id").as_deref() == Some(id.as_str()))
            {
                Some(letter) => chosen.push(letter),
                None => {
                    return Err(Status::not_found(format!(
                        "adapter `{adapter}` has no dead letter of record `{id}`"
                    )));
                }
            }
        }
        chosen
    };
    let mut done = Vec::new();
    for letter in chosen {
        let record_id = letter.header("ce_id").unwrap_or_default();
        let mut headers: Vec<(String, String)> = letter
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with(DLQ_PREFIX) && k != REPLAY_OF)
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        headers.push((REPLAY_OF.into(), letter.offset.to_string()));
        let key = String::from_utf8_lossy(&letter.key).into_owned();
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let event = DeliveryEvent {
            event: "delivery.replayed",
            time: time.clone(),
            adapter: adapter.to_owned(),
            record_id: record_id.clone(),
            record_type: letter.header("ce_type").unwrap_or_default(),
            key: key.clone(),
            topic: dead_letter_topic(adapter),
            partition: letter.partition,
            offset: letter.offset,
            attempt: 0,
            status: None,
            error: None,
            retry_in_ms: None,
            actor: Some(actor.to_owned()),
        };
        let copies = [
            Copy {
                topic: replay_topic(adapter),
                key,
                value: Cow::Borrowed(&letter.payload),
                headers,
                routes: Vec::new(),
            },
            Copy {
                topic: AUDIT_TOPIC.into(),
                key: record_id.clone(),
                value: Cow::Owned(event.to_json()),
                headers: audit_headers(uuid::Uuid::now_v7(), event.event, &time),
                routes: Vec::new(),
            },
        ];
        producer.write(&copies).await.map_err(|e| {
            Status::unavailable(format!(
                "replayed {} of the dead letters; then Kafka failed: {e}",
                done.len()
            ))
        })?;
        done.push(record_id);
    }
    Ok(pb::ReplayDeadLettersResponse { replayed: done })
}

//! Dead letters for operators: listing what an adapter could not deliver, a page at a time, and
//! replaying it through the adapter's replay topic (`_mekong.replay.<adapter>`), which the adapter
//! reads besides its own topics. A replayed record carries `mekong_replay_of` = its dead letter's
//! offset, so a dead letter shows as replayed and `--all` does not send it twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mekong_core::{
    AUDIT_TOPIC, DeliveryEvent, KafkaRecord, audit_headers, dead_letter_topic, replay_topic,
};
use mekong_kafka::{Backbone, DeadLetter, Page, Producer, read_page};
use mekong_proto::v1 as pb;
use tonic::Status;

use crate::status::{internal, unavailable};

const REPLAY_OF: &str = "mekong_replay_of";
const DLQ_PREFIX: &str = "mekong_dlq_";
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Dead letters per page when the caller does not say, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Reads a page of a topic off the async workers.
async fn page(
    backbone: &Arc<Backbone>,
    topic: String,
    from: i64,
    max: usize,
) -> Result<Page, Status> {
    let backbone = Arc::clone(backbone);
    tokio::task::spawn_blocking(move || read_page(&backbone, &topic, from, max, READ_TIMEOUT))
        .await
        .map_err(|e| internal("reading dead letters stopped", &e))?
        .map_err(|e| unavailable("cannot read the dead letters from Kafka", &e))
}

/// The offsets of the dead letters replayed already, read page by page (only the offsets are kept).
async fn replayed(backbone: &Arc<Backbone>, adapter: &str) -> Result<BTreeSet<i64>, Status> {
    let mut offsets = BTreeSet::new();
    let mut from = 0;
    loop {
        let p = page(backbone, replay_topic(adapter), from, MAX_PAGE).await?;
        offsets.extend(
            p.letters
                .iter()
                .filter_map(|r| r.header(REPLAY_OF)?.parse::<i64>().ok()),
        );
        match p.next {
            Some(next) => from = next,
            None => return Ok(offsets),
        }
    }
}

fn listed(letter: &DeadLetter, replayed: &BTreeSet<i64>) -> pb::DeadLetter {
    pb::DeadLetter {
        offset: letter.offset,
        record_id: letter.header("ce_id").unwrap_or_default(),
        record_type: letter.header("ce_type").unwrap_or_default(),
        key: String::from_utf8_lossy(&letter.key).into_owned(),
        source: letter.header("mekong_dlq_source").unwrap_or_default(),
        attempts: letter
            .header("mekong_dlq_attempts")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
        last_status: letter.header("mekong_dlq_status").unwrap_or_default(),
        error: letter.header("mekong_dlq_error").unwrap_or_default(),
        time: letter.header("mekong_dlq_time").unwrap_or_default(),
        replayed: replayed.contains(&letter.offset),
    }
}

pub(crate) async fn list(
    backbone: &Arc<Backbone>,
    request: &pb::ListDeadLettersRequest,
) -> Result<pb::ListDeadLettersResponse, Status> {
    let size = match request.page_size as usize {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    let from = match request.page_token.as_str() {
        "" => 0,
        token => token
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| {
                Status::invalid_argument(
                    "page_token is not one this service gave out: send the last answer's next_page_token",
                )
            })?,
    };
    let adapter = &request.adapter;
    let p = page(backbone, dead_letter_topic(adapter), from, size).await?;
    let replayed = replayed(backbone, adapter).await?;
    Ok(pb::ListDeadLettersResponse {
        dead_letters: p.letters.iter().map(|l| listed(l, &replayed)).collect(),
        next_page_token: p.next.map(|n| n.to_string()).unwrap_or_default(),
    })
}

/// The latest dead letter of each record id asked for, page by page.
async fn by_record_id(
    backbone: &Arc<Backbone>,
    adapter: &str,
    ids: &[String],
) -> Result<Vec<DeadLetter>, Status> {
    let mut found: Vec<Option<DeadLetter>> = vec![None; ids.len()];
    let mut from = 0;
    loop {
        let p = page(backbone, dead_letter_topic(adapter), from, MAX_PAGE).await?;
        for letter in p.letters {
            let id = letter.header("ce_id");
            for (i, wanted) in ids.iter().enumerate() {
                if id.as_deref() == Some(wanted.as_str()) {
                    found[i] = Some(letter.clone());
                }
            }
        }
        match p.next {
            Some(next) => from = next,
            None => break,
        }
    }
    ids.iter()
        .zip(found)
        .map(|(id, letter)| {
            letter.ok_or_else(|| {
                Status::not_found(format!(
                    "adapter `{adapter}` has no dead letter of record `{}`",
                    mekong_core::excerpt(id, 64)
                ))
            })
        })
        .collect()
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
    let replayed = replayed(backbone, adapter).await?;
    let mut done = Vec::new();
    if !request.all {
        for letter in by_record_id(backbone, adapter, &request.record_ids).await? {
            replay_one(producer, adapter, &letter, actor, done.len()).await?;
            done.push(letter.header("ce_id").unwrap_or_default());
        }
        return Ok(pb::ReplayDeadLettersResponse { replayed: done });
    }
    // Every dead letter not replayed yet, a page at a time: the topic may not fit in memory.
    let mut from = 0;
    loop {
        let p = page(backbone, dead_letter_topic(adapter), from, MAX_PAGE).await?;
        for letter in p.letters.iter().filter(|l| !replayed.contains(&l.offset)) {
            replay_one(producer, adapter, letter, actor, done.len()).await?;
            done.push(letter.header("ce_id").unwrap_or_default());
        }
        match p.next {
            Some(next) => from = next,
            None => return Ok(pb::ReplayDeadLettersResponse { replayed: done }),
        }
    }
}

/// Writes one dead letter to the replay topic and its audit event, both acknowledged.
async fn replay_one(
    producer: &Producer,
    adapter: &str,
    letter: &DeadLetter,
    actor: &str,
    done: usize,
) -> Result<(), Status> {
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
        KafkaRecord {
            topic: replay_topic(adapter),
            key,
            value: letter.payload.clone(),
            headers,
            routes: Vec::new(),
        },
        KafkaRecord {
            topic: AUDIT_TOPIC.into(),
            key: record_id,
            value: event.to_json().into(),
            headers: audit_headers(uuid::Uuid::now_v7(), event.event, &time),
            routes: Vec::new(),
        },
    ];
    producer.write(&copies).await.map_err(|e| {
        unavailable(
            &format!("replayed {done} of the dead letters; then Kafka failed"),
            &e,
        )
    })?;
    Ok(())
}

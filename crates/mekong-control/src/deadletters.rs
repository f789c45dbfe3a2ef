//! Dead letters for operators: listing what an adapter could not deliver, a page at a time, and
//! replaying it through the adapter's replay topic (`_mekong.replay.<adapter>`), which the adapter
//! reads besides its own topics. A replayed record carries `mekong_replay_of` = its dead letter's
//! offset, so a dead letter shows as replayed and "all" does not send it twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mekong_core::deadletter::{self, REPLAY_OF};
use mekong_core::{AuditEvent, DeadLetterInfo, DeliveryEvent, KafkaRecord};
use mekong_kafka::{Backbone, DeadLetter, Page, Producer, read_page};

use crate::ControlError;

const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Dead letters per page when the caller does not say, and at most.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// One dead letter, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its position in the dead-letter topic.
    pub offset: i64,
    pub record_id: String,
    pub record_type: String,
    pub key: String,
    /// Why it is a dead letter.
    pub info: DeadLetterInfo,
    /// Whether it has been replayed since.
    pub replayed: bool,
}

/// A page of dead letters, and where the next begins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub letters: Vec<Listed>,
    pub next: Option<i64>,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The latest dead letter of each of these records.
    Records(Vec<String>),
    /// Every dead letter not replayed yet.
    All,
}

/// Reads a page of a topic off the async workers.
async fn page(
    backbone: &Arc<Backbone>,
    topic: String,
    from: i64,
    max: usize,
) -> Result<Page, ControlError> {
    let backbone = Arc::clone(backbone);
    tokio::task::spawn_blocking(move || read_page(&backbone, &topic, from, max, READ_TIMEOUT))
        .await
        .map_err(|e| ControlError::internal("reading dead letters stopped", e))?
        .map_err(|e| ControlError::unavailable("cannot read the dead letters from Kafka", e))
}

/// The offsets of the dead letters replayed already, read page by page (only the offsets are kept).
async fn replayed(backbone: &Arc<Backbone>, adapter: &str) -> Result<BTreeSet<i64>, ControlError> {
    let mut offsets = BTreeSet::new();
    let mut from = 0;
    loop {
        let p = page(backbone, deadletter::replay_topic(adapter), from, MAX_PAGE).await?;
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

fn headers(letter: &DeadLetter) -> impl Iterator<Item = (&str, &[u8])> {
    letter
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
}

fn listed(letter: &DeadLetter, replayed: &BTreeSet<i64>) -> Listed {
    let event = mekong_core::CloudEvent::from_headers(headers(letter));
    Listed {
        offset: letter.offset,
        record_id: event.id,
        record_type: event.record_type,
        key: String::from_utf8_lossy(&letter.key).into_owned(),
        info: DeadLetterInfo::from_headers(headers(letter)),
        replayed: replayed.contains(&letter.offset),
    }
}

/// A page of `adapter`'s dead letters from offset `from`, at most `size` (0: the default).
pub async fn list(
    backbone: &Arc<Backbone>,
    adapter: &str,
    from: i64,
    size: usize,
) -> Result<Listing, ControlError> {
    let size = match size {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    let p = page(
        backbone,
        deadletter::dead_letter_topic(adapter),
        from.max(0),
        size,
    )
    .await?;
    let replayed = replayed(backbone, adapter).await?;
    Ok(Listing {
        letters: p.letters.iter().map(|l| listed(l, &replayed)).collect(),
        next: p.next,
    })
}

/// The latest dead letter of each record id asked for, page by page.
async fn by_record_id(
    backbone: &Arc<Backbone>,
    adapter: &str,
    ids: &[String],
) -> Result<Vec<DeadLetter>, ControlError> {
    let mut found: Vec<Option<DeadLetter>> = vec![None; ids.len()];
    let mut from = 0;
    loop {
        let p = page(
            backbone,
            deadletter::dead_letter_topic(adapter),
            from,
            MAX_PAGE,
        )
        .await?;
        for letter in p.letters {
            let id = deadletter::record_id(headers(&letter));
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
                ControlError::NotFound(format!(
                    "adapter `{adapter}` has no dead letter of record `{}`",
                    mekong_core::excerpt(id, 64)
                ))
            })
        })
        .collect()
}

/// Replays dead letters of `adapter` as `actor`; the ids of the records replayed, in order.
pub async fn replay(
    backbone: &Arc<Backbone>,
    producer: &Producer,
    adapter: &str,
    which: &Replay,
    actor: &str,
) -> Result<Vec<String>, ControlError> {
    let replayed = replayed(backbone, adapter).await?;
    let mut done = Vec::new();
    if let Replay::Records(ids) = which {
        for letter in by_record_id(backbone, adapter, ids).await? {
            replay_one(producer, adapter, &letter, actor, done.len()).await?;
            done.push(deadletter::record_id(headers(&letter)).unwrap_or_default());
        }
        return Ok(done);
    }
    // Every dead letter not replayed yet, a page at a time: the topic may not fit in memory.
    let mut from = 0;
    loop {
        let p = page(
            backbone,
            deadletter::dead_letter_topic(adapter),
            from,
            MAX_PAGE,
        )
        .await?;
        for letter in p.letters.iter().filter(|l| !replayed.contains(&l.offset)) {
            replay_one(producer, adapter, letter, actor, done.len()).await?;
            done.push(deadletter::record_id(headers(letter)).unwrap_or_default());
        }
        match p.next {
            Some(next) => from = next,
            None => return Ok(done),
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
) -> Result<(), ControlError> {
    let event = mekong_core::CloudEvent::from_headers(headers(letter));
    let mut kept: Vec<(String, String)> = letter
        .headers
        .iter()
        .filter(|(k, _)| !DeadLetterInfo::is_own_header(k))
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    kept.push((REPLAY_OF.into(), letter.offset.to_string()));
    let key = String::from_utf8_lossy(&letter.key).into_owned();
    let audit = AuditEvent::Replayed(DeliveryEvent {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        adapter: adapter.to_owned(),
        record_id: event.id.clone(),
        record_type: event.record_type,
        key: key.clone(),
        topic: deadletter::dead_letter_topic(adapter),
        partition: letter.partition,
        offset: letter.offset,
        attempt: 0,
        status: None,
        error: None,
        retry_in_ms: None,
        actor: Some(actor.to_owned()),
    });
    let copies = [
        KafkaRecord {
            topic: deadletter::replay_topic(adapter),
            key,
            value: letter.payload.clone(),
            headers: kept,
            routes: Vec::new(),
        },
        producer.audit_record(&audit),
    ];
    producer.write(&copies).await.map_err(|e| {
        ControlError::unavailable(
            format!("replayed {done} of the dead letters; then Kafka failed"),
            e,
        )
    })?;
    Ok(())
}

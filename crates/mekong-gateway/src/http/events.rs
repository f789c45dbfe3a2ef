//! `GET /v1/topics/{topic}/events`: a topic as Server-Sent Events, for integrators without gRPC
//! (`curl -N` is enough). The stream is a subscription of the subscribe service, as Consume opens
//! it: the same access rules, consumer group, bounds and re-checks.
//!
//! At least once. Each event's `id:` is the position the reader has reached: per partition, the
//! offset of the last record sent on this stream (`0-41,2-17`), the earlier ones included since
//! events arrive in order. Records count as done (and their positions are committed) when the
//! reader says so: by coming back with that id as `Last-Event-ID`, or by `POST
//! /v1/topics/{topic}/acks` with it while the stream is open. Records sent and not yet done are
//! sent again after a reconnect; at most `max_in_flight` wait at once. `?ack=auto` counts each
//! record as done once handed to the connection (for following a topic by eye: one in the
//! connection's buffers when it drops is not sent again to that group).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::{Stream, StreamExt};
use http::StatusCode;
use mekong_proto::v1::{DeliveredRecord, StartFrom, Subscription};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::problem::Problem;
use super::{Api, caller_of, read_body};
use crate::subscribe::{Control, Reading};

/// The header a reconnecting EventSource sends.
const LAST_EVENT_ID: &str = "last-event-id";
/// The largest acknowledgement body.
const ACK_BYTES: usize = 64 * 1024;

/// The event streams open on this instance, by (client, group, topic): where an acknowledgement
/// posted for them goes.
#[derive(Default)]
pub(crate) struct Readers {
    open: Mutex<HashMap<ReaderKey, Vec<Reader>>>,
    next: std::sync::atomic::AtomicU64,
}

/// (client, group, topic).
type ReaderKey = (String, String, String);
/// An open stream: its number, and where its acknowledgements go.
type Reader = (u64, mpsc::Sender<Control>);

/// A stream's place among the readers, given back when its response ends.
struct Registered {
    readers: Arc<Readers>,
    key: ReaderKey,
    id: u64,
}

impl Readers {
    fn register(self: &Arc<Self>, key: ReaderKey, tx: mpsc::Sender<Control>) -> Registered {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut open = self.open.lock().expect("the readers");
        open.entry(key.clone()).or_default().push((id, tx));
        Registered {
            readers: Arc::clone(self),
            key,
            id,
        }
    }

    /// Passes `positions` to every open stream of the key; how many took it.
    fn acknowledge(&self, key: &ReaderKey, positions: &[(i32, i64)]) -> usize {
        let open = self.open.lock().expect("the readers");
        open.get(key).map_or(0, |streams| {
            streams
                .iter()
                .filter(|(_, tx)| tx.try_send(Control::Through(positions.to_vec())).is_ok())
                .count()
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut open = self.readers.open.lock().expect("the readers");
        if let Some(streams) = open.get_mut(&self.key) {
            streams.retain(|(id, _)| *id != self.id);
            if streams.is_empty() {
                open.remove(&self.key);
            }
        }
    }
}

/// The query of an event stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Follow {
    /// The consumer group (per client), as Consume's; default `default`.
    group: Option<String>,
    /// `earliest` (default) or `latest`, where a group without a position starts.
    start: Option<String>,
    /// Only these record types, comma-separated.
    types: Option<String>,
    max_in_flight: Option<u32>,
    /// `auto`: each record counts as done once handed to the connection.
    ack: Option<String>,
}

pub(crate) async fn follow(
    State(api): State<Api>,
    Path(topic): Path<String>,
    query: Result<Query<Follow>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    match open(api, topic, query, request).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn open(
    api: Api,
    topic: String,
    query: Result<Query<Follow>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, Problem> {
    let caller = caller_of(&request)?;
    let Query(follow) = query.map_err(|e| bad(format!("the query is not understood: {e}")))?;
    let start_from = match follow.start.as_deref() {
        None | Some("earliest") => StartFrom::Earliest,
        Some("latest") => StartFrom::Latest,
        Some(_) => return Err(bad("start is `earliest` or `latest`")),
    };
    let auto_ack = match follow.ack.as_deref() {
        None => false,
        Some("auto") => true,
        Some(_) => return Err(bad("ack is `auto`, or absent")),
    };
    let resumed: BTreeMap<i32, i64> = match request.headers().get(LAST_EVENT_ID) {
        Some(value) => parse_position(value.to_str().unwrap_or("-"))?,
        None => BTreeMap::new(),
    };
    let group = follow.group.unwrap_or_default();
    let subscription = Subscription {
        topic: topic.clone(),
        group: group.clone(),
        start_from: start_from as i32,
        start_time_ms: 0,
        record_types: follow
            .types
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        max_in_flight: follow.max_in_flight.unwrap_or(0),
    };
    let (control, inbound) = mpsc::channel(16);
    let registered = api
        .readers
        .register((caller.client.clone(), group, topic.clone()), control);
    let records = api
        .subscribe
        .open(
            caller,
            subscription,
            Box::pin(ReceiverStream::new(inbound).map(Ok)),
            Reading {
                skip: resumed.iter().map(|(p, o)| (*p, *o)).collect(),
                ack_on_send: auto_ack,
            },
        )
        .await
        .map_err(|status| Problem::from_status(&status))?;
    let events = Events {
        records,
        position: resumed,
        _registered: registered,
        done: false,
    };
    Ok(Sse::new(events.stream())
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One stream's state while it runs.
struct Events {
    records: ReceiverStream<Result<DeliveredRecord, tonic::Status>>,
    /// Per partition, the offset of the last record sent (or taken before a resume).
    position: BTreeMap<i32, i64>,
    /// Holds the stream's place among the readers; the session ends when it is dropped (its
    /// control channel closes).
    _registered: Registered,
    done: bool,
}

impl Events {
    fn stream(self) -> impl Stream<Item = Result<Event, Infallible>> + Send {
        futures::stream::unfold(self, |mut state| async move {
            if state.done {
                return None;
            }
            let event = match state.records.next().await? {
                Ok(record) => state.event(record),
                Err(status) => {
                    // Why the stream ends (the hub stopping, the caller's right to read gone).
                    state.done = true;
                    let problem = serde_json::to_string(&Problem::from_status(&status))
                        .expect("a problem serializes");
                    Event::default().event("error").data(problem)
                }
            };
            Some((Ok(event), state))
        })
    }

    fn event(&mut self, record: DeliveredRecord) -> Event {
        let cursor = record.cursor.clone().unwrap_or_default();
        self.position.insert(cursor.partition, cursor.offset);
        Event::default()
            .id(format_position(&self.position))
            .data(cloudevent(record))
    }
}

/// A delivered record as a CloudEvent in JSON (structured mode): its attributes, `partitionkey`
/// (the CloudEvents partitioning extension) and the payload as `data`, or `data_base64` when it
/// is not JSON (written to the topic by another Kafka client).
fn cloudevent(record: DeliveredRecord) -> String {
    let mut event: Map<String, Value> = record
        .attributes
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    for (name, value) in [
        ("specversion", "1.0".to_owned()),
        ("id", record.record_id),
        ("type", record.record_type),
        ("source", record.source),
        ("time", record.time),
    ] {
        event.insert(name.to_owned(), Value::String(value));
    }
    if !record.key.is_empty() {
        event.insert(
            "partitionkey".into(),
            Value::String(String::from_utf8_lossy(&record.key).into_owned()),
        );
    }
    match serde_json::from_slice::<Value>(&record.payload) {
        Ok(data) => event.insert("data".into(), data),
        Err(_) => event.insert(
            "data_base64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&record.payload)),
        ),
    };
    serde_json::to_string(&event).expect("JSON values serialize")
}

/// `0-41,2-17`: partition-offset pairs.
fn format_position(position: &BTreeMap<i32, i64>) -> String {
    position
        .iter()
        .map(|(p, o)| format!("{p}-{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_position(text: &str) -> Result<BTreeMap<i32, i64>, Problem> {
    let invalid = || {
        bad(format!(
            "`{}` is not an event id of this stream (partition-offset pairs, `0-41,2-17`)",
            mekong_core::excerpt(text, 64)
        ))
    };
    if text.is_empty() {
        return Ok(BTreeMap::new());
    }
    text.split(',')
        .map(|pair| {
            let (p, o) = pair.split_once('-').ok_or_else(invalid)?;
            match (p.parse::<i32>(), o.parse::<i64>()) {
                (Ok(p), Ok(o)) if p >= 0 && o >= 0 => Ok((p, o)),
                _ => Err(invalid()),
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ack {
    /// An event id of the stream: every record up to it is done.
    last_event_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckQuery {
    group: Option<String>,
}

/// `POST /v1/topics/{topic}/acks?group=G` with `{"last_event_id": "0-41,2-17"}`: every record up
/// to there is done, for the open streams of that group on this instance.
pub(crate) async fn acknowledge(
    State(api): State<Api>,
    Path(topic): Path<String>,
    query: Result<Query<AckQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    let result = async {
        let caller = caller_of(&request)?;
        let Query(query) = query.map_err(|e| bad(format!("the query is not understood: {e}")))?;
        let (parts, body) = request.into_parts();
        let body = read_body(body, &parts.headers, ACK_BYTES, api.http.read_timeout).await?;
        let ack: Ack = serde_json::from_slice(&body).map_err(|e| {
            bad(format!(
                "the body is not {{\"last_event_id\": \"...\"}}: {e}"
            ))
        })?;
        let positions: Vec<(i32, i64)> = parse_position(&ack.last_event_id)?.into_iter().collect();
        let key = (caller.client, query.group.unwrap_or_default(), topic);
        match api.readers.acknowledge(&key, &positions) {
            0 => Err(Problem::http(
                StatusCode::CONFLICT,
                "NO_OPEN_STREAM",
                "no event stream of this group on this topic is open on this instance; the \
                 position is taken when the stream resumes with Last-Event-ID",
            )),
            _ => Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn bad(detail: impl Into<String>) -> Problem {
    Problem::http(StatusCode::BAD_REQUEST, "INVALID_REQUEST", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_back_as_it_was_written() {
        let position = BTreeMap::from([(0, 41), (2, 17)]);
        assert_eq!(format_position(&position), "0-41,2-17");
        assert_eq!(parse_position("0-41,2-17").unwrap(), position);
        assert!(parse_position("").unwrap().is_empty());
        for wrong in ["x", "0-", "-1-4", "0-4,", "0:4"] {
            assert!(parse_position(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_record_becomes_a_structured_cloudevent() {
        let record = DeliveredRecord {
            record_id: "r-1".into(),
            record_type: "dossier.sync".into(),
            source: "q1".into(),
            time: "2026-12-02T00:00:00Z".into(),
            key: b"H1".to_vec(),
            payload: bytes::Bytes::from_static(br#"{"MaHoSo":"H1","N":1.0}"#),
            attributes: HashMap::from([("donvi".to_string(), "Quận 1".to_string())]),
            cursor: Some(mekong_proto::v1::Cursor::default()),
        };
        let event: Value = serde_json::from_str(&cloudevent(record)).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "dossier.sync");
        assert_eq!(event["partitionkey"], "H1");
        assert_eq!(event["donvi"], "Quận 1");
        assert_eq!(event["data"]["N"].to_string(), "1.0");
        let foreign = DeliveredRecord {
            payload: bytes::Bytes::from_static(b"not json"),
            ..Default::default()
        };
        let event: Value = serde_json::from_str(&cloudevent(foreign)).unwrap();
        assert_eq!(event["data_base64"], "bm90IGpzb24=");
    }
}

//! Records: found by record id or by dossier number (the partition key, `MaHoSo`), each with its
//! timeline from the lineage index (accepted, where each copy landed, deliveries, retries and
//! their reasons, dead letters, replays), times in Asia/Ho_Chi_Minh. An admin may open a copy:
//! its payload is shown with the fields the routes redact anywhere (personal data) masked and the
//! fields redacted from this copy named; revealing them is a POST, audited. Auditors see no
//! payloads.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use mekong_control::{TraceQuery, trace};
use mekong_core::{Catalog, SessionEvent};
use serde::Deserialize;
use serde_json::Value;

use super::signin::{audit, now};
use super::{Person, encode, local_time};
use crate::i18n::{L, Lang};
use crate::session::ConsoleRole;
use crate::{BASE, Console, address_of};

const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
pub(crate) struct Search {
    q: Option<String>,
}

pub(crate) async fn search(
    State(console): State<Arc<Console>>,
    person: Person,
    Query(search): Query<Search>,
) -> Response {
    let (session, lang) = (&person.session, person.lang);
    let q = search.q.unwrap_or_default().trim().to_owned();
    let found = match (&console.parts.lineage, q.is_empty()) {
        (_, true) => None,
        (None, false) => Some(Err(lang.t(L::NoLineage).to_owned())),
        (Some(lineage), false) => {
            let query = if uuid::Uuid::parse_str(&q).is_ok() {
                TraceQuery::RecordId(q.clone())
            } else {
                TraceQuery::Key(q.clone())
            };
            Some(match trace(lineage, &query).await {
                Ok(records) => Ok(records),
                Err(mekong_control::ControlError::NotFound(_)) => Ok(Vec::new()),
                Err(e) => Err(e.to_string()),
            })
        }
    };
    let admin = session.role == ConsoleRole::Admin;
    let body = html! {
        form.inline method="get" action={ (BASE) "/records" } {
            input #record-query type="search" name="q" value=(q) placeholder=(lang.t(L::SearchRecord));
            button type="submit" { (lang.t(L::Search)) }
        }
        @if lineage_missing(&console) { p.error { (lang.t(L::NoLineage)) } }
        @match &found {
            None => {}
            Some(Err(why)) => p.error { (why) },
            Some(Ok(records)) if records.is_empty() => p #no-records { (lang.t(L::Nothing)) },
            Some(Ok(records)) => {
                @for record in records {
                    div.record id={ "record-" (record.record_id) } {
                        h2 { (lang.t(L::RecordId)) " " (record.record_id) }
                        p { a.proof href={ (BASE) "/records/" (encode(&record.record_id)) "/proof" } { (lang.t(L::Proof)) } }
                        table.timeline {
                            tr { th { (lang.t(L::Time)) } th { (lang.t(L::Event)) } th { (lang.t(L::Details)) } }
                            @for event in &record.events {
                                tr { (timeline_row(lang, admin, &record.record_id, event)) }
                            }
                        }
                    }
                }
            }
        }
    };
    person.page(&format!("{BASE}/records"), lang.t(L::Records), body)
}

fn lineage_missing(console: &Console) -> bool {
    console.parts.lineage.is_none()
}

fn text(value: &Value, name: &str) -> String {
    match &value[name] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn timeline_row(lang: Lang, admin: bool, record_id: &str, e: &Value) -> Markup {
    let name = text(e, "event");
    let copies = e["copies"].as_array().cloned().unwrap_or_default();
    html! {
        td { (local_time(&text(e, "time"))) }
        td.event { (name) }
        td {
            @match name.as_str() {
                "record.accepted" | "record.rejected" | "record.partial" => {
                    (text(e, "recordType")) " · " (text(e, "source")) " · " (lang.t(L::Key)) " " (text(e, "key"))
                    @if !text(e, "reason").is_empty() { br; span.error { (text(e, "reason")) ": " (text(e, "message")) } }
                    @for v in e["violations"].as_array().into_iter().flatten() { br; span.error { (v.as_str().unwrap_or_default()) } }
                }
                "delivery.delivered" | "delivery.retried" | "delivery.dead_lettered" => {
                    (text(e, "adapter")) " · " (lang.t(L::Attempts)) " " (text(e, "attempt"))
                    @if !text(e, "status").is_empty() { " · HTTP " (text(e, "status")) }
                    @if !text(e, "error").is_empty() { br; span.error { (text(e, "error")) } }
                }
                "delivery.replayed" => { (text(e, "adapter")) " · " (text(e, "actor")) }
                _ => {}
            }
            @for copy in &copies {
                @let topic = text(copy, "topic");
                // Placed copies know their partition and offset; accepted ones not yet (-1).
                @let partition = copy["partition"].as_i64().filter(|p| *p >= 0);
                @let offset = copy["offset"].as_i64().filter(|o| *o >= 0);
                div.copy { (lang.t(L::Copy)) " " (topic)
                    @if let (Some(p), Some(o)) = (partition, offset) {
                        "/" (p) "/" (o)
                        @if admin && name == "record.placed" {
                            " · " a.show-copy href={ (BASE) "/records/" (encode(record_id)) "/copy?topic=" (encode(&topic)) "&partition=" (p) "&offset=" (o) } { (lang.t(L::ShowCopy)) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct At {
    topic: String,
    partition: i32,
    offset: i64,
}

pub(crate) async fn copy(
    State(console): State<Arc<Console>>,
    person: Person,
    Path(record_id): Path<String>,
    Query(at): Query<At>,
) -> Response {
    let (session, lang) = (&person.session, person.lang);
    if session.role != ConsoleRole::Admin {
        return person.refuse(StatusCode::FORBIDDEN, lang.t(L::PayloadsHidden));
    }
    show_copy(&console, &person, &record_id, &at, false).await
}

#[derive(Deserialize)]
pub(crate) struct RevealForm {
    csrf: String,
    topic: String,
    partition: i32,
    offset: i64,
}

pub(crate) async fn reveal(
    State(console): State<Arc<Console>>,
    person: Person,
    extensions: Extensions,
    Path(record_id): Path<String>,
    Form(form): Form<RevealForm>,
) -> Response {
    if let Some(refused) = person.may_not_change(&form.csrf) {
        return refused;
    }
    let (session, _lang) = (&person.session, person.lang);
    let at = At {
        topic: form.topic,
        partition: form.partition,
        offset: form.offset,
    };
    let address: IpAddr = address_of(extensions.get::<crate::Peer>());
    let event = SessionEvent {
        time: now(),
        client: session.client.clone(),
        outcome: "revealed".into(),
        role: Some(session.role.name().into()),
        address: address.to_string(),
        reason: None,
        subject: Some(format!(
            "{record_id} {}/{}/{}",
            at.topic, at.partition, at.offset
        )),
        authenticated: Some(session.by.clone()),
    };
    // Nothing is revealed that the audit trail does not hold.
    if !audit(&console, event).await {
        return person.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail cannot be written (Kafka); try again shortly",
        );
    }
    show_copy(&console, &person, &record_id, &at, true).await
}

async fn show_copy(
    console: &Console,
    person: &Person,
    record_id: &str,
    at: &At,
    revealed: bool,
) -> Response {
    let (session, lang) = (&person.session, person.lang);
    let backbone = Arc::clone(&console.parts.changes.backbone);
    let (topic, partition, offset) = (at.topic.clone(), at.partition, at.offset);
    let read = tokio::task::spawn_blocking(move || {
        mekong_kafka::read_at(&backbone, &topic, partition, offset, READ_TIMEOUT)
    })
    .await;
    let letter = match read {
        Ok(Ok(Some(letter))) => letter,
        Ok(Ok(None)) => {
            return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
        }
        Ok(Err(e)) => {
            return person.refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
        Err(e) => {
            return person.refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
        }
    };
    // The copy must be the record's: a link cannot be turned to another record's payload.
    let id = mekong_core::CloudEvent::from_headers(
        letter
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice())),
    )
    .id;
    if id != record_id {
        return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
    }
    let catalog = console.parts.catalog.load();
    let (personal, here) = redactions(&catalog, &at.topic);
    let shown = match serde_json::from_slice::<Value>(&letter.payload) {
        Ok(mut value) => {
            if !revealed {
                for pointer in &personal {
                    if let Some(v) = value.pointer_mut(pointer) {
                        *v = Value::String(format!("•••• ({})", lang.t(L::Masked)));
                    }
                }
            }
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        Err(_) => String::from_utf8_lossy(&letter.payload).into_owned(),
    };
    let body = html! {
        p { (lang.t(L::Copy)) " " (at.topic) "/" (at.partition) "/" (at.offset) }
        @if !here.is_empty() {
            p #redacted-here { (lang.t(L::RedactedHere)) " " (here.iter().cloned().collect::<Vec<_>>().join(", ")) }
        }
        pre #payload { code { (shown) } }
        @if !revealed && !personal.is_empty() {
            form method="post" action={ (BASE) "/records/" (encode(record_id)) "/copy/reveal" } {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="topic" value=(at.topic);
                input type="hidden" name="partition" value=(at.partition);
                input type="hidden" name="offset" value=(at.offset);
                button #reveal type="submit" { (lang.t(L::Reveal)) }
                " " small { (lang.t(L::RevealNote)) }
            }
        }
        p { a href={ (BASE) "/records?q=" (encode(record_id)) } { (lang.t(L::Back)) } }
    };
    person.page(&format!("{BASE}/records"), record_id, body)
}

/// The fields any route redacts (personal data, masked until revealed), and those redacted from
/// the copies written to `topic` (absent from this copy).
fn redactions(catalog: &Catalog, topic: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut personal = BTreeSet::new();
    let mut here = BTreeSet::new();
    for route in catalog.routes() {
        for destination in &route.spec.to {
            personal.extend(destination.redact.iter().cloned());
            if destination.topic == topic {
                here.extend(destination.redact.iter().cloned());
            }
        }
    }
    (personal, here)
}

/// `GET /records/{id}/proof`: the record's proof bundle against the latest checkpoint, as
/// `mekong proof` writes it, to download and check offline with `mekong verify`. Bundles hold
/// audit events, no payloads: auditors may take them too.
pub(crate) async fn proof(
    State(console): State<Arc<Console>>,
    person: Person,
    Path(record_id): Path<String>,
) -> Response {
    let (_session, lang) = (&person.session, person.lang);
    let Some(lineage) = &console.parts.lineage else {
        return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoLineage));
    };
    match mekong_control::proof(&console.parts.changes.backbone, lineage, &record_id).await {
        Ok((bundle, uncovered)) => {
            let body = serde_json::to_string_pretty(&bundle).expect("bundles serialise");
            let file = format!("attachment; filename=\"proof-{}.json\"", encode(&record_id));
            let mut response = (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            if let Ok(value) = axum::http::HeaderValue::from_str(&file) {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_DISPOSITION, value);
            }
            // Events newer than the latest checkpoint are not in it yet (`mekong proof --wait`).
            response.headers_mut().insert(
                "mekong-uncovered-events",
                axum::http::HeaderValue::from(uncovered),
            );
            response
        }
        Err(e) => person.refuse(StatusCode::CONFLICT, &e.to_string()),
    }
}

//! An adapter's dead letters: a page at a time, filtered by reason; what each one is (record,
//! key, attempts, the last error, when) and whether it was replayed; and, for admins, replaying
//! one, a selection, or all not yet replayed, through `mekong-control` (each replay audited as the
//! person's client, as `mekong dlq replay` does). Payloads are not shown here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use mekong_control::deadletters::{self, Replay};
use serde::Deserialize;
use tracing::info;

use super::{Person, encode, local_time};
use crate::i18n::L;
use crate::session::ConsoleRole;
use crate::{BASE, Console};

#[derive(Deserialize)]
pub(crate) struct Shown {
    from: Option<i64>,
    reason: Option<String>,
    /// RFC 3339 bounds on when they were dead-lettered, inclusive.
    since: Option<String>,
    until: Option<String>,
    replayed: Option<usize>,
}

pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    person: Person,
    Path(adapter): Path<String>,
    Query(shown): Query<Shown>,
) -> Response {
    let (session, lang) = (&person.session, person.lang);
    if console.parts.catalog.load().adapter(&adapter).is_none() {
        return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
    }
    let from = shown.from.unwrap_or(0).max(0);
    let listing = match deadletters::list(&console.parts.changes.backbone, &adapter, from, 0).await
    {
        Ok(listing) => listing,
        Err(e) => {
            return person.unavailable(&e);
        }
    };
    let reason = shown.reason.unwrap_or_default();
    let wanted = reason.to_lowercase();
    let since = shown.since.unwrap_or_default().trim().to_owned();
    let until = shown.until.unwrap_or_default().trim().to_owned();
    let letters: Vec<_> = listing
        .letters
        .iter()
        .filter(|l| wanted.is_empty() || l.info.error.to_lowercase().contains(&wanted))
        .filter(|l| since.is_empty() || l.info.time.as_str() >= since.as_str())
        .filter(|l| until.is_empty() || l.info.time.as_str() <= until.as_str())
        .collect();
    let admin = session.role == ConsoleRole::Admin;
    let base = format!("{BASE}/dead-letters/{}", encode(&adapter));
    let body = html! {
        @if let Some(n) = shown.replayed { p.ok #replayed-count { (lang.t(L::ReplayedCount)) " " (n) } }
        form.inline method="get" action=(base) {
            input #reason type="search" name="reason" value=(reason) placeholder=(lang.t(L::FilterReason));
            input #since type="search" name="since" value=(since) placeholder="2026-12-01T00:00:00Z";
            input #until type="search" name="until" value=(until) placeholder="2026-12-02T00:00:00Z";
            button type="submit" { (lang.t(L::Search)) }
        }
        @if letters.is_empty() { p #no-letters { (lang.t(L::Nothing)) } }
        @else {
            form method="post" action={ (base) "/replay" } {
                @if admin { input type="hidden" name="csrf" value=(session.csrf); }
                table #dead-letters {
                    tr {
                        @if admin { th {} }
                        th { (lang.t(L::Offset)) } th { (lang.t(L::RecordId)) } th { (lang.t(L::Key)) }
                        th { (lang.t(L::Attempts)) } th { (lang.t(L::Reason)) } th { (lang.t(L::Time)) }
                        th { (lang.t(L::State)) }
                    }
                    @for letter in &letters {
                        tr.letter id={ "letter-" (letter.offset) } {
                            @if admin {
                                td { @if !letter.replayed { input type="checkbox" name="record" value=(letter.record_id); } }
                            }
                            td { (letter.offset) }
                            td.record {
                                a href={ (BASE) "/records?q=" (encode(&letter.record_id)) } { (letter.record_id) }
                                // The copy the adapter read, masked as on the records page.
                                @if let Some((topic, partition, offset)) = mekong_core::parse_position(&letter.info.source) {
                                    @if admin {
                                        br;
                                        a.show-copy href={ (BASE) "/records/" (encode(&letter.record_id)) "/copy?topic=" (encode(topic)) "&partition=" (partition) "&offset=" (offset) } { (lang.t(L::ShowCopy)) }
                                    }
                                }
                            }
                            td { (letter.key) }
                            td { (letter.info.attempts) }
                            td.reason {
                                @if let Some(status) = letter.info.status { "HTTP " (status) ": " }
                                (mekong_core::excerpt(&letter.info.error, 300))
                            }
                            td { (local_time(&letter.info.time)) }
                            td.state { @if letter.replayed { span.ok { (lang.t(L::Replayed)) } } }
                        }
                    }
                }
                @if admin {
                    p {
                        label title=(lang.t(L::ConfirmReplay)) {
                            input type="checkbox" name="confirm" value="yes" required;
                            " " (lang.t(L::Confirm))
                        }
                        " "
                        button #replay-selected type="submit" name="which" value="selected" { (lang.t(L::ReplaySelected)) }
                        " "
                        button #replay-all type="submit" name="which" value="all" { (lang.t(L::ReplayAll)) }
                    }
                }
            }
        }
        @if let Some(next) = listing.next {
            p { a #next-page href={ (base) "?from=" (next) "&reason=" (encode(&reason)) "&since=" (encode(&since)) "&until=" (encode(&until)) } { (lang.t(L::NextPage)) } }
        }
    };
    let title = format!("{}: {adapter}", lang.t(L::DeadLetters));
    person.page(&base, &title, body)
}

pub(crate) async fn replay(
    State(console): State<Arc<Console>>,
    person: Person,
    Path(adapter): Path<String>,
    body: Bytes,
) -> Response {
    // Several `record` fields: the form is read by hand.
    let mut csrf = String::new();
    let (mut confirmed, mut all, mut records) = (false, false, Vec::new());
    for (name, value) in form_urlencoded::parse(&body) {
        match &*name {
            "csrf" => csrf = value.into_owned(),
            "confirm" => confirmed = value == "yes",
            "which" => all = value == "all",
            "record" => records.push(value.into_owned()),
            _ => {}
        }
    }
    if let Some(refused) = person.may_not_change(&csrf) {
        return refused;
    }
    let (session, lang) = (&person.session, person.lang);
    if !confirmed {
        return person.refuse(StatusCode::BAD_REQUEST, lang.t(L::Confirm));
    }
    if console.parts.catalog.load().adapter(&adapter).is_none() {
        return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
    }
    let which = if all {
        Replay::All
    } else if records.is_empty() {
        return person.refuse(StatusCode::BAD_REQUEST, lang.t(L::ReplaySelected));
    } else {
        Replay::Records(records)
    };
    let parts = &console.parts;
    match deadletters::replay(
        &parts.changes.backbone,
        &parts.producer,
        &adapter,
        &which,
        &session.client,
    )
    .await
    {
        Ok(done) => {
            info!(%adapter, replayed = done.len(), client = %session.client, "console: dead letters replayed");
            Redirect::to(&format!(
                "{BASE}/dead-letters/{}?replayed={}",
                encode(&adapter),
                done.len()
            ))
            .into_response()
        }
        Err(e) => person.unavailable(&e),
    }
}

//! Adapters: each one's state and what it reads, and, for admins, pausing and resuming it (for a
//! maintenance window at the national portal): stored as the adapter's `paused`, so every
//! instance obeys; records wait in Kafka. The change is made as the person's client and audited
//! as `pause` / `resume`, exactly as `mekong adapters pause` does.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use mekong_control::adapters::standing;
use mekong_core::{Actor, AdapterType};
use mekong_kafka::StoreError;
use serde::Deserialize;
use tracing::info;

use super::{Person, encode};
use crate::i18n::L;
use crate::session::ConsoleRole;
use crate::{BASE, Console};

#[derive(Deserialize)]
pub(crate) struct Shown {
    done: Option<String>,
}

pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    person: Person,
    Query(shown): Query<Shown>,
) -> Response {
    let (session, lang) = (&person.session, person.lang);
    let catalog = console.parts.catalog.load();
    let admin = session.role == ConsoleRole::Admin;
    // Each adapter's lag and dead letters, as Kafka holds them (every instance's work counts).
    let mut standings = std::collections::HashMap::new();
    for adapter in catalog.adapters() {
        let spec = &adapter.spec;
        let standing = standing(&console.parts.changes.backbone, &spec.name, &spec.from).await;
        standings.insert(spec.name.clone(), standing.ok());
    }
    let body = html! {
        @if let Some(done) = &shown.done { p.ok #done { (lang.t(L::Done)) " " (done) } }
        @if !admin { p #read-only { (lang.t(L::ReadOnly)) } }
        @if catalog.adapters().next().is_none() { p { (lang.t(L::Nothing)) } }
        @else {
            table #adapters {
                tr {
                    th { (lang.t(L::Name)) } th { (lang.t(L::AdapterType)) } th { (lang.t(L::Target)) }
                    th { (lang.t(L::State)) } th { (lang.t(L::Lag)) } th { (lang.t(L::DeadLetters)) }
                    @if admin { th {} }
                }
                @for adapter in catalog.adapters() {
                    @let spec = &adapter.spec;
                    @let (action, label, warning) = if spec.paused {
                        ("resume", L::Resume, L::ConfirmResume)
                    } else {
                        ("pause", L::Pause, L::ConfirmPause)
                    };
                    tr id={ "adapter-" (spec.name) } {
                        td {
                            (spec.name) br;
                            a.outcomes href={ (BASE) "/adapters/" (encode(&spec.name)) } { (lang.t(L::Outcomes)) }
                            " · "
                            a.dead-letters href={ (BASE) "/dead-letters/" (encode(&spec.name)) } { (lang.t(L::DeadLetters)) }
                        }
                        td { (match spec.target { AdapterType::Dvcqg => "dvcqg", AdapterType::Webhook => "webhook" }) }
                        td { (spec.from.join(", ")) }
                        @if spec.paused { td.paused.state { (lang.t(L::Paused)) } } @else { td.ok.state { (lang.t(L::Running)) } }
                        @match standings.get(&spec.name).cloned().flatten() {
                            Some(standing) => {
                                td.lag {
                                    span.total { (standing.total_lag()) }
                                    @for (topic, partition, n) in standing.lag.iter().filter(|(_, _, n)| *n > 0) {
                                        br; small { (topic) "/" (partition) ": " (n) }
                                    }
                                }
                                td.dead-letter-count { (standing.dead_letters) }
                            }
                            None => { td.lag { "?" } td { "?" } }
                        }
                        @if admin {
                            td {
                                form.inline method="post" action={ (BASE) "/adapters/" (encode(&spec.name)) "/" (action) } {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    label title=(lang.t(warning)) {
                                        input type="checkbox" name="confirm" value="yes" required;
                                        " " (lang.t(L::Confirm))
                                    }
                                    button.action type="submit" { (lang.t(label)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let here = format!("{BASE}/adapters");
    person.page(&here, lang.t(L::Adapters), body)
}

#[derive(Deserialize)]
pub(crate) struct Change {
    csrf: String,
    confirm: Option<String>,
}

pub(crate) async fn set_paused(
    State(console): State<Arc<Console>>,
    person: Person,
    Path((name, action)): Path<(String, String)>,
    Form(change): Form<Change>,
) -> Response {
    if let Some(refused) = person.may_not_change(&change.csrf) {
        return refused;
    }
    let (session, lang) = (&person.session, person.lang);
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => {
            return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
        }
    };
    if change.confirm.as_deref() != Some("yes") {
        return person.refuse(StatusCode::BAD_REQUEST, lang.t(L::Confirm));
    }
    let actor = Actor {
        name: session.client.clone(),
        authenticated: Some(session.by.clone()),
    };
    match console
        .parts
        .changes
        .set_adapter_paused(&name, paused, &actor)
        .await
    {
        Ok(Some(applied)) if applied.plan.problems.is_empty() => {
            info!(adapter = %name, %action, client = %session.client, "console: adapter changed");
            Redirect::to(&format!("{BASE}/adapters?done={}", encode(&name))).into_response()
        }
        Ok(Some(applied)) => {
            let problems: Vec<String> = applied
                .plan
                .problems
                .iter()
                .map(|p| p.to_string())
                .collect();
            person.refuse(StatusCode::CONFLICT, &problems.join("; "))
        }
        Ok(None) => person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource)),
        Err(e @ StoreError::Concurrent) => person.refuse(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => person.unavailable(&e),
    }
}

/// `GET /adapters/{name}`: the adapter's recent deliveries, their outcomes and errors, newest first.
pub(crate) async fn one(
    State(console): State<Arc<Console>>,
    person: Person,
    Path(name): Path<String>,
) -> Response {
    let lang = person.lang;
    if console.parts.catalog.load().adapter(&name).is_none() {
        return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
    }
    let recent =
        match mekong_control::audit_log::deliveries(&console.parts.changes.backbone, &name, 2000)
            .await
        {
            Ok(recent) => recent,
            Err(e) => return person.unavailable(&e),
        };
    let body = html! {
        p { small { (lang.t(L::RecentOutcomes)) } }
        @if recent.is_empty() { p { (lang.t(L::Nothing)) } }
        @else {
            table #outcomes {
                tr {
                    th { (lang.t(L::Time)) } th { (lang.t(L::Event)) } th { (lang.t(L::RecordId)) }
                    th { (lang.t(L::Key)) } th { (lang.t(L::Attempts)) } th { (lang.t(L::Reason)) }
                }
                @for entry in &recent {
                    @if let mekong_core::AuditEvent::Delivered(e) | mekong_core::AuditEvent::Retried(e)
                        | mekong_core::AuditEvent::DeadLettered(e) | mekong_core::AuditEvent::Replayed(e) = &entry.event {
                        tr {
                            td { (super::local_time(&e.time)) }
                            td.event { (entry.event.name()) }
                            td { a href={ (BASE) "/records?q=" (encode(&e.record_id)) } { (e.record_id) } }
                            td { (e.key) }
                            td { (e.attempt) }
                            td.reason {
                                @if let Some(status) = e.status { "HTTP " (status) }
                                @if let Some(error) = &e.error { " " span.error { (mekong_core::excerpt(error, 300)) } }
                            }
                        }
                    }
                }
            }
        }
        p { a href={ (BASE) "/adapters" } { (lang.t(L::Back)) } }
    };
    person.page(&format!("{BASE}/adapters/{}", encode(&name)), &name, body)
}

//! The audit log: every change to a resource (pauses and resumes too), every replay of dead
//! letters and every console session, newest first, filtered by actor, kind, resource and time;
//! each change linked to the resource it changed.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use mekong_control::audit_log::{AuditFilter, audit_window};
use mekong_core::AuditEvent;
use serde::Deserialize;

use super::{Person, encode, local_time};
use crate::i18n::L;
use crate::{BASE, Console};

#[derive(Deserialize)]
pub(crate) struct Shown {
    before: Option<i64>,
    actor: Option<String>,
    kind: Option<String>,
    resource: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    person: Person,
    Query(shown): Query<Shown>,
) -> Response {
    let (_session, lang) = (&person.session, person.lang);
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let filter = AuditFilter {
        actor: set(&shown.actor),
        kind: set(&shown.kind),
        resource: set(&shown.resource),
        since: set(&shown.since),
        until: set(&shown.until),
    };
    let window = match audit_window(&console.parts.changes.backbone, shown.before, 0, &filter).await
    {
        Ok(window) => window,
        Err(e) => {
            return person.unavailable(&e);
        }
    };
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let query = format!(
        "actor={}&kind={}&resource={}&since={}&until={}",
        encode(&value(&filter.actor)),
        encode(&value(&filter.kind)),
        encode(&value(&filter.resource)),
        encode(&value(&filter.since)),
        encode(&value(&filter.until)),
    );
    let body = html! {
        form.inline method="get" action={ (BASE) "/audit" } {
            input #actor type="search" name="actor" value=(value(&filter.actor)) placeholder=(lang.t(L::Actor));
            select name="kind" {
                option value="" { (lang.t(L::All)) }
                @for k in ["resource", "replay", "session"] {
                    option value=(k) selected[filter.kind.as_deref() == Some(k)] { (k) }
                }
            }
            input type="search" name="resource" value=(value(&filter.resource)) placeholder="Kind/name";
            input type="search" name="since" value=(value(&filter.since)) placeholder="2026-12-01T00:00:00Z";
            button type="submit" { (lang.t(L::Search)) }
        }
        p { small { (lang.t(L::AuditWindowNote)) } }
        @if window.entries.is_empty() { p { (lang.t(L::Nothing)) } }
        @else {
            table #audit {
                tr {
                    th { (lang.t(L::Time)) } th { (lang.t(L::Event)) } th { (lang.t(L::Actor)) }
                    th { (lang.t(L::Outcome)) } th { (lang.t(L::Details)) }
                }
                @for entry in &window.entries {
                    tr.entry { (row(&entry.event)) }
                }
            }
        }
        @if let Some(older) = window.older {
            p { a #older href={ (BASE) "/audit?before=" (older) "&" (query) } { (lang.t(L::Older)) } }
        }
    };
    person.page(&format!("{BASE}/audit"), lang.t(L::AuditLog), body)
}

fn row(event: &AuditEvent) -> Markup {
    match event {
        AuditEvent::ResourceChanged(e) | AuditEvent::ResourceRejected(e) => html! {
            td { (local_time(&e.time)) }
            td.event { (e.action) }
            td.actor { (e.actor) }
            td.outcome { (e.outcome) }
            td {
                a href={ (BASE) "/resources/" (e.kind) "/" (encode(&e.name)) } { (e.kind) "/" (e.name) }
                " v" (e.old_version.map_or("-".into(), |v| v.to_string())) " → v"
                (e.new_version.map_or("-".into(), |v| v.to_string()))
                @for problem in &e.problems { br; span.error { (problem) } }
            }
        },
        AuditEvent::Replayed(e) => html! {
            td { (local_time(&e.time)) }
            td.event { "replay" }
            td.actor { (e.actor.clone().unwrap_or_default()) }
            td.outcome { "replayed" }
            td { "Adapter/" (e.adapter) ": " (e.record_id) " (" (e.key) ")" }
        },
        AuditEvent::ConsoleSession(e) => html! {
            td { (local_time(&e.time)) }
            td.event { "console" }
            td.actor { (e.client) }
            td.outcome { (e.outcome) }
            td {
                (e.address)
                @if let Some(role) = &e.role { " · " (role) }
                @if let Some(reason) = &e.reason { " · " (reason) }
            }
        },
        _ => html! {},
    }
}

//! Resources: every one by kind, searched by name or description, and one resource's YAML as
//! stored, with its version and who changed it last. Everything the resources say is text here:
//! a description with markup in it is shown, never run.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use mekong_core::{Key, Kind, yaml_text};
use serde::Deserialize;

use super::{Person, encode};
use crate::i18n::L;
use crate::session::ConsoleRole;
use crate::{BASE, Console};

#[derive(Deserialize)]
pub(crate) struct Filter {
    kind: Option<String>,
    q: Option<String>,
    deleted: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Note {
    applied: Option<String>,
}

pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    person: Person,
    OriginalUri(uri): OriginalUri,
    Query(filter): Query<Filter>,
) -> Response {
    let (session, lang) = (&person.session, person.lang);
    let kind = filter.kind.as_deref().and_then(Kind::parse);
    let q = filter.q.clone().unwrap_or_default().to_lowercase();
    let view = match console.parts.changes.store.sync().await {
        Ok(view) => view,
        Err(e) => {
            return person.unavailable(&e);
        }
    };
    let rows: Vec<_> = view
        .state
        .list(kind)
        .map(|stored| {
            let value = stored.resource.to_value();
            let description = value
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_owned();
            (stored, description)
        })
        .filter(|(stored, description)| {
            q.is_empty()
                || stored.resource.name().to_lowercase().contains(&q)
                || description.to_lowercase().contains(&q)
        })
        .collect();
    let here = uri.path_and_query().map_or(BASE, |p| p.as_str()).to_owned();
    let admin = session.role == ConsoleRole::Admin;
    let body = html! {
        @if let Some(deleted) = &filter.deleted { p.ok #deleted { (lang.t(L::Deleted)) " " (deleted) } }
        @if admin {
            p {
                a #new-resource href={ (BASE) "/resources/new" } { (lang.t(L::NewResource)) }
                " · "
                a #test-record href={ (BASE) "/test-record" } { (lang.t(L::TestRecord)) }
            }
        }
        form.inline method="get" action={ (BASE) "/resources" } {
            select name="kind" {
                option value="" { (lang.t(L::All)) }
                @for k in Kind::ALL {
                    option value=(k.as_str()) selected[kind == Some(k)] { (k.as_str()) }
                }
            }
            input #search type="search" name="q" value=(q);
            button type="submit" { (lang.t(L::Search)) }
        }
        @if rows.is_empty() { p { (lang.t(L::Nothing)) } }
        @else {
            table #resources {
                tr {
                    th { (lang.t(L::Kind)) } th { (lang.t(L::Name)) } th { (lang.t(L::Description)) }
                    th { (lang.t(L::Version)) } th { (lang.t(L::ChangedBy)) } th { (lang.t(L::ChangedAt)) }
                }
                @for (stored, description) in &rows {
                    @let kind = stored.resource.kind().as_str();
                    @let name = stored.resource.name();
                    tr {
                        td { (kind) }
                        td { a href={ (BASE) "/resources/" (kind) "/" (encode(name)) } { (name) } }
                        td.description { (description) }
                        td { (stored.version) }
                        td { (stored.changed_by) }
                        td { (stored.changed_at) }
                    }
                }
            }
        }
    };
    person.page(&here, lang.t(L::Resources), body)
}

pub(crate) async fn one(
    State(console): State<Arc<Console>>,
    person: Person,
    OriginalUri(uri): OriginalUri,
    Path((kind, name)): Path<(String, String)>,
    Query(note): Query<Note>,
) -> Response {
    let applied = note.applied.is_some();
    let (session, lang) = (&person.session, person.lang);
    let view = match console.parts.changes.store.sync().await {
        Ok(view) => view,
        Err(e) => {
            return person.unavailable(&e);
        }
    };
    let Some(stored) = Kind::parse(&kind).and_then(|k| view.state.get(&Key::new(k, name.clone())))
    else {
        return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
    };
    let title = format!("{kind}/{name}");
    // Who changed it, when, from which version to which: the audit trail's recent window.
    let filter = mekong_control::audit_log::AuditFilter {
        kind: Some("resource".into()),
        resource: Some(title.clone()),
        ..Default::default()
    };
    let history = mekong_control::audit_log::audit_window(
        &console.parts.changes.backbone,
        None,
        mekong_control::audit_log::MAX_WINDOW,
        &filter,
    )
    .await
    .map(|w| w.entries)
    .unwrap_or_default();
    let body = html! {
        table {
            tr { th { (lang.t(L::Version)) } td #version { (stored.version) } }
            tr { th { (lang.t(L::ChangedBy)) } td { (stored.changed_by) } }
            tr { th { (lang.t(L::ChangedAt)) } td { (stored.changed_at) } }
        }
        @if applied { p.ok #applied { (lang.t(L::Applied)) } }
        pre #yaml { code { (yaml_text(&stored.resource.to_value())) } }
        @if session.role == ConsoleRole::Admin {
            p { a #edit href={ (BASE) "/resources/" (kind) "/" (encode(&name)) "/edit" } { (lang.t(L::Edit)) } }
            form.inline method="post" action={ (BASE) "/resources/" (kind) "/" (encode(&name)) "/delete" } {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="version" value=(stored.version);
                label title=(lang.t(L::ConfirmDelete)) {
                    input type="checkbox" name="confirm" value="yes" required;
                    " " (lang.t(L::Confirm))
                }
                button #delete type="submit" { (lang.t(L::Delete)) }
            }
        }
        h2 { (lang.t(L::History)) }
        p { small { (lang.t(L::HistoryNote)) } }
        table #history {
            tr { th { (lang.t(L::Time)) } th { (lang.t(L::Actor)) } th { (lang.t(L::Event)) } th { (lang.t(L::Outcome)) } th { (lang.t(L::Version)) } }
            @for entry in &history {
                @if let mekong_core::AuditEvent::ResourceChanged(e) | mekong_core::AuditEvent::ResourceRejected(e) = &entry.event {
                    @if format!("{}/{}", e.kind, e.name) == title {
                        tr {
                            td { (super::local_time(&e.time)) }
                            td { (e.actor) }
                            td { (e.action) }
                            td { (e.outcome) }
                            td { "v" (e.old_version.map_or("-".into(), |v| v.to_string())) " → v" (e.new_version.map_or("-".into(), |v| v.to_string())) }
                        }
                    }
                }
            }
        }
        p { a href={ (BASE) "/resources" } { (lang.t(L::Back)) } }
    };
    let here = uri.path().to_owned();
    person.page(&here, &title, body)
}

//! Late dossiers: the open deadlines past their due time, counted by unit (who holds them) and
//! listed longest overdue first, read from the deadlines' changelogs (every partition, whichever
//! instance tracks it).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use mekong_deadlines::OverdueQuery;
use serde::Deserialize;

use super::{Person, encode};
use crate::i18n::L;
use crate::{BASE, Console};

/// Dossiers listed at most (the counts by unit cover all).
const LISTED: usize = 500;

#[derive(Deserialize)]
pub(crate) struct Shown {
    deadline: Option<String>,
    unit: Option<String>,
}

pub(crate) async fn overdue(
    State(console): State<Arc<Console>>,
    person: Person,
    Query(shown): Query<Shown>,
) -> Response {
    let lang = person.lang;
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let catalog = console.parts.catalog.load_full();
    let names: Vec<String> = catalog.deadlines().map(|d| d.name().to_owned()).collect();
    let query = OverdueQuery {
        deadline: set(&shown.deadline),
        unit: set(&shown.unit),
        older_than: None,
    };
    let (found, now) = match mekong_control::deadlines::overdue(
        &console.parts.changes.backbone,
        catalog,
        query.clone(),
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return person.unavailable(&e),
    };
    let mut by_unit: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for o in &found {
        *by_unit
            .entry((o.deadline.as_str(), o.open.unit.as_deref().unwrap_or("")))
            .or_default() += 1;
    }
    let body = html! {
        form.inline method="get" action={ (BASE) "/deadlines" } {
            select name="deadline" {
                option value="" { (lang.t(L::All)) }
                @for name in &names {
                    option value=(name) selected[query.deadline.as_deref() == Some(name.as_str())] { (name) }
                }
            }
            input type="search" name="unit" value=(query.unit.clone().unwrap_or_default()) placeholder=(lang.t(L::Unit));
            button type="submit" { (lang.t(L::Search)) }
        }
        @if names.is_empty() { p { (lang.t(L::NoDeadlines)) } }
        @else if found.is_empty() { p #none { (lang.t(L::NothingOverdue)) } }
        @else {
            h2 { (lang.t(L::OverdueByUnit)) }
            table #by-unit {
                tr { th { (lang.t(L::Deadline)) } th { (lang.t(L::Unit)) } th { (lang.t(L::Overdue)) } }
                @for ((deadline, unit), n) in &by_unit {
                    tr.unit {
                        td { (deadline) }
                        td.name {
                            a href={ (BASE) "/deadlines?deadline=" (encode(deadline)) "&unit=" (encode(unit)) } {
                                @if unit.is_empty() { "-" } @else { (unit) }
                            }
                        }
                        td.count { (n) }
                    }
                }
            }
            h2 { (lang.t(L::LateDossiers)) }
            @if found.len() > LISTED { p { small { (lang.t(L::FirstShown)) " " (LISTED) " / " (found.len()) } } }
            table #overdue {
                tr {
                    th { (lang.t(L::Deadline)) } th { (lang.t(L::Key)) } th { (lang.t(L::Unit)) }
                    th { (lang.t(L::Due)) } th { (lang.t(L::LateBy)) } th { (lang.t(L::RecordId)) }
                }
                @for o in found.iter().take(LISTED) {
                    tr.dossier {
                        td { (o.deadline) }
                        td.key { a href={ (BASE) "/records?q=" (encode(&o.open.key)) } { (o.open.key) } }
                        td { (o.open.unit.as_deref().unwrap_or("-")) }
                        td { (mekong_core::times::display(o.open.due_ms).unwrap_or_default()) }
                        td.late { (late(now - o.open.due_ms)) }
                        td { small { (o.open.extended_by.as_deref().unwrap_or(&o.open.opened_by)) } }
                    }
                }
            }
        }
    };
    person.page(&format!("{BASE}/deadlines"), lang.t(L::LateDossiers), body)
}

/// How late, to the minute: `3d 4h 12m`.
fn late(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

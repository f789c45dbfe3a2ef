//! The overview: whether this instance can serve (Kafka answers, the resource store is read), the
//! records accepted and refused per minute over the last hour (sampled in memory from the
//! gateway's own counters), what the catalog holds, and each adapter's state.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::Person;
use crate::i18n::{L, Lang};
use crate::{BASE, Console, Counts};

/// How long the overview waits for the resource store to answer.
const READY_WITHIN: Duration = Duration::from_secs(3);

async fn render(console: &Console, person: &Person) -> Response {
    let (_session, lang) = (&person.session, person.lang);
    let ready = matches!(
        tokio::time::timeout(READY_WITHIN, console.parts.changes.store.sync()).await,
        Ok(Ok(_))
    );
    let catalog = console.parts.catalog.load();
    let (types, routes, clients) = catalog.counts();
    let adapters: Vec<(String, bool)> = catalog
        .adapters()
        .map(|a| (a.spec.name.clone(), a.spec.paused))
        .collect();
    let samples = console.sample();
    let refusals = console
        .parts
        .gateway
        .as_ref()
        .map(|g| g.top_refusals(10))
        .unwrap_or_default();
    let mut standings = Vec::new();
    for adapter in catalog.adapters() {
        let spec = &adapter.spec;
        let standing = mekong_control::adapters::standing(
            &console.parts.changes.backbone,
            &spec.name,
            &spec.from,
        )
        .await
        .ok();
        standings.push(standing);
    }
    let checkpoint = console.parts.notary.as_ref().map(|n| {
        n.state()
            .latest
            .map(|(at, _)| at.elapsed().unwrap_or_default().as_secs())
    });
    let body = html! {
        h2 { (lang.t(L::Instance)) }
        div.cards {
            div.card {
                div { (lang.t(L::State)) }
                @if ready { div.n.ok #ready { (lang.t(L::Ready)) } } @else { div.n.bad #ready { (lang.t(L::NotReady)) } }
            }
            div.card {
                div { (lang.t(L::Kafka)) }
                @if ready { div.n.ok #kafka { (lang.t(L::Reachable)) } } @else { div.n.bad #kafka { (lang.t(L::Unreachable)) } }
            }
            @if let Some(samples) = &samples {
                @let (first, last) = (samples.first().map(|s| s.1).unwrap_or_default(), samples.last().map(|s| s.1).unwrap_or_default());
                div.card {
                    div { (lang.t(L::RecordsAccepted)) }
                    div.n #accepted-total { (last.accepted) }
                    div { (last.accepted.saturating_sub(first.accepted)) " " (lang.t(L::LastHour)) }
                }
                div.card {
                    div { (lang.t(L::RecordsRejected)) }
                    div.n #rejected-total { (last.rejected) }
                    div { (last.rejected.saturating_sub(first.rejected)) " " (lang.t(L::LastHour)) }
                }
            }
        }
        @if let Some(checkpoint) = checkpoint {
            div.cards {
                div.card {
                    div { (lang.t(L::Checkpoint)) }
                    @match checkpoint {
                        Some(age) => { div.n #checkpoint-age { (age) } div { (lang.t(L::CheckpointAge)) } },
                        None => div.n.bad #checkpoint-age { (lang.t(L::NoCheckpoint)) },
                    }
                }
            }
        }
        @if let Some(samples) = &samples {
            h2 { (lang.t(L::RecordsAccepted)) " / " (lang.t(L::RecordsRejected)) ", " (lang.t(L::PerMinute)) }
            (chart(samples))
        }
        @if !refusals.is_empty() {
            h2 { (lang.t(L::TopRefusals)) }
            table #refusals {
                tr { th { (lang.t(L::RecordType)) } th { (lang.t(L::Clients)) } th { (lang.t(L::Reason)) } th { "#" } }
                @for (record_type, client, reason, n) in &refusals {
                    tr { td { (record_type) } td { (client) } td.reason { (reason) } td.count { (n) } }
                }
            }
        }
        h2 { (lang.t(L::Resources)) }
        div.cards {
            div.card { div { (lang.t(L::RecordTypes)) } div.n #record-types { (types) } }
            div.card { div { (lang.t(L::Routes)) } div.n #routes { (routes) } }
            div.card { div { (lang.t(L::Clients)) } div.n #clients { (clients) } }
            div.card { div { (lang.t(L::Adapters)) } div.n #adapter-count { (adapters.len()) } }
        }
        h2 { (lang.t(L::Adapters)) }
        (adapter_states(lang, &adapters, &standings))
    };
    person.page(BASE, lang.t(L::Overview), body)
}

pub(crate) async fn show(State(console): State<Arc<Console>>, person: Person) -> Response {
    render(&console, &person).await
}

fn adapter_states(
    lang: Lang,
    adapters: &[(String, bool)],
    standings: &[Option<mekong_control::adapters::AdapterStanding>],
) -> Markup {
    html! {
        @if adapters.is_empty() { p { (lang.t(L::Nothing)) } }
        @else {
            table {
                tr { th { (lang.t(L::Name)) } th { (lang.t(L::State)) } th { (lang.t(L::Lag)) } th { (lang.t(L::DeadLetters)) } }
                @for ((name, paused), standing) in adapters.iter().zip(standings) {
                    tr {
                        td { a href={ (BASE) "/adapters" } { (name) } }
                        @if *paused { td.paused { (lang.t(L::Paused)) } } @else { td.ok { (lang.t(L::Running)) } }
                        @match standing {
                            Some(s) => { td { (s.total_lag()) } td { (s.dead_letters) } }
                            None => { td { "?" } td { "?" } }
                        }
                    }
                }
            }
        }
    }
}

/// Records per minute as bars: accepted (below) and refused (above), one pair per minute.
fn chart(samples: &[(SystemTime, Counts)]) -> Markup {
    let minutes: Vec<Counts> = samples
        .windows(2)
        .map(|w| Counts {
            accepted: w[1].1.accepted.saturating_sub(w[0].1.accepted),
            rejected: w[1].1.rejected.saturating_sub(w[0].1.rejected),
        })
        .collect();
    let most = minutes
        .iter()
        .map(|m| m.accepted + m.rejected)
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, bar) = (600u64, 120u64, 10u64);
    html! {
        svg #chart width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } role="img" {
            @for (i, m) in minutes.iter().enumerate() {
                @let x = i as u64 * bar;
                @let a = m.accepted * height / most;
                @let r = m.rejected * height / most;
                rect.accepted x=(x) y=(height - a) width=(bar - 2) height=(a) { title { (m.accepted) } }
                rect.rejected x=(x) y=(height - a - r) width=(bar - 2) height=(r) { title { (m.rejected) } }
            }
        }
    }
}

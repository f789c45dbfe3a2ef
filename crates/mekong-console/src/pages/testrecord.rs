//! Testing a record: paste its JSON, pick its type and the client to publish it as, and see what
//! the hub would do: access, validation (violations by JSON pointer), each route's decision and
//! each copy that would be written, as `mekong test-record` shows. Nothing is written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Form;
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use mekong_core::{RecordTest, RouteVerdict, Submission};
use serde::Deserialize;

use super::Person;
use crate::i18n::{L, Lang};
use crate::session::Session;
use crate::{BASE, Console};

pub(crate) async fn form(State(console): State<Arc<Console>>, person: Person) -> Response {
    let (session, lang) = (&person.session, person.lang);
    let body = editor(&console, lang, session, &Tried::default());
    person.page(&format!("{BASE}/test-record"), lang.t(L::TestRecord), body)
}

#[derive(Deserialize, Default)]
pub(crate) struct Tried {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    record_type: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    payload: String,
}

fn editor(console: &Console, lang: Lang, session: &Session, tried: &Tried) -> Markup {
    let catalog = console.parts.catalog.load();
    let mut types: Vec<&str> = catalog
        .record_types()
        .map(|t| t.spec.name.as_str())
        .collect();
    types.sort_unstable();
    let mut clients: Vec<&str> = catalog.clients().map(|c| c.name()).collect();
    clients.sort_unstable();
    html! {
        p { (lang.t(L::TestNote)) }
        form method="post" action={ (BASE) "/test-record" } {
            input type="hidden" name="csrf" value=(session.csrf);
            p {
                label { (lang.t(L::RecordType)) " "
                    select #test-type name="record_type" {
                        @for t in &types { option value=(t) selected[*t == tried.record_type] { (t) } }
                    }
                }
                " "
                label { (lang.t(L::AsClient)) " "
                    select #test-client name="client" {
                        @for c in &clients { option value=(c) selected[*c == tried.client] { (c) } }
                    }
                }
            }
            label for="test-payload" { (lang.t(L::Payload)) }
            textarea #test-payload name="payload" rows="14" spellcheck="false" { (tried.payload) }
            p { button #test-run type="submit" { (lang.t(L::Run)) } }
        }
    }
}

pub(crate) async fn run(
    State(console): State<Arc<Console>>,
    person: Person,
    Form(tried): Form<Tried>,
) -> Response {
    if let Some(refused) = person.may_not_change(&tried.csrf) {
        return refused;
    }
    let (session, lang) = (&person.session, person.lang);
    let catalog = console.parts.catalog.load_full();
    let result = catalog.client(&tried.client).map(|client| {
        let attributes = HashMap::new();
        let payload = axum::body::Bytes::copy_from_slice(tried.payload.as_bytes());
        catalog.test_record(
            client,
            Submission {
                record_type: &tried.record_type,
                payload: &payload,
                key: None,
                attributes: &attributes,
                traceparent: None,
                schema_version: 0,
                record_id: uuid::Uuid::now_v7(),
                time: SystemTime::now(),
                progress: None,
            },
            &console.parts.limits,
        )
    });
    let body = html! {
        @match &result {
            None => p.error { (lang.t(L::NoSuchResource)) },
            Some(test) => (verdict(lang, test)),
        }
        (editor(&console, lang, session, &tried))
    };
    person.page(&format!("{BASE}/test-record"), lang.t(L::TestRecord), body)
}

fn verdict(lang: Lang, test: &RecordTest) -> Markup {
    html! {
        @match &test.outcome {
            Ok(prepared) => {
                p { strong #test-verdict.ok { (lang.t(L::WouldAccept)) } " · " (lang.t(L::Version)) " " (prepared.schema_version) }
                table #test-copies {
                    tr { th { "Topic" } th { (lang.t(L::Key)) } th { (lang.t(L::Routes)) } th { (lang.t(L::Payload)) } }
                    @for copy in &prepared.copies {
                        tr {
                            td.topic { (copy.topic) }
                            td { (copy.key) }
                            td { (copy.routes.join(", ")) }
                            td { pre { (String::from_utf8_lossy(&copy.value)) } }
                        }
                    }
                }
            }
            Err(rejection) => {
                p { strong #test-verdict.bad { (lang.t(L::WouldRefuse)) } }
                p #test-message { (rejection.message) }
                @if !rejection.violations.is_empty() {
                    ul #test-violations {
                        @for v in &rejection.violations { li { code { (v.field) } ": " (v.description) } }
                    }
                }
            }
        }
        @if !test.routes.is_empty() {
            table #test-routes {
                tr { th { (lang.t(L::Route)) } th { (lang.t(L::Details)) } }
                @for (route, decision) in &test.routes {
                    tr {
                        td { (route) }
                        td {
                            @match decision {
                                RouteVerdict::Matched => span.ok { (lang.t(L::Matched)) },
                                RouteVerdict::OtherType => "the record type is not in match.types",
                                RouteVerdict::OtherSource => "the client is not in match.sources",
                                RouteVerdict::ConditionFalse => "match.when is false for this record",
                                RouteVerdict::Unevaluable(e) => { "match.when could not be evaluated (no match): " (e) },
                            }
                        }
                    }
                }
            }
        }
    }
}

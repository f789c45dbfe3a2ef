//! Changing resources: YAML edited in the page, a dry run that shows the plan (`mekong diff` /
//! `apply --dry-run`: the verdict, each change, every problem, schema compatibility included, and
//! a diff against what is stored), then the apply; and deleting with confirmation. Each edit
//! carries the version it was made from: if someone changed the resource since, it is refused and
//! the diff shown is against the newer version. Made through `mekong-control` as the person's
//! client, audited as the CLI's changes are.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use mekong_control::Applied;
use mekong_core::{Actor, Key, Kind, Outcome, Plan, Verdict, yaml_text};
use serde::Deserialize;
use similar::{ChangeTag, TextDiff};
use tracing::info;

use super::{Person, encode};
use crate::i18n::{L, Lang};
use crate::session::{ConsoleRole, Session};
use crate::{BASE, Console};

/// `GET /resources/{kind}/{name}/edit`, and `GET /resources/new` (no kind, no name).
pub(crate) async fn form(
    State(console): State<Arc<Console>>,
    person: Person,
    OriginalUri(uri): OriginalUri,
    key: Option<Path<(String, String)>>,
) -> Response {
    let (session, lang) = (&person.session, person.lang);
    if session.role != ConsoleRole::Admin {
        return person.refuse(StatusCode::FORBIDDEN, lang.t(L::ReadOnly));
    }
    let (text, expect) = match key {
        None => (String::new(), None),
        Some(Path((kind, name))) => {
            let view = match console.parts.changes.store.sync().await {
                Ok(view) => view,
                Err(e) => {
                    return person.unavailable(&e);
                }
            };
            let Some(stored) =
                Kind::parse(&kind).and_then(|k| view.state.get(&Key::new(k, name.clone())))
            else {
                return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
            };
            (
                yaml_text(&stored.resource.to_value()),
                Some((stored.key().to_string(), stored.version)),
            )
        }
    };
    let title = match &expect {
        Some((key, _)) => format!("{}: {key}", lang.t(L::Edit)),
        None => lang.t(L::NewResource).to_owned(),
    };
    let body = editor(lang, session, &text, expect.as_ref(), false);
    person.page(uri.path(), &title, body)
}

/// The editor: the text, the version it was made from, and its buttons.
fn editor(
    lang: Lang,
    session: &Session,
    text: &str,
    expect: Option<&(String, u64)>,
    previewed: bool,
) -> Markup {
    html! {
        form method="post" action={ (BASE) "/resources/preview" } {
            input type="hidden" name="csrf" value=(session.csrf);
            @if let Some((key, version)) = expect {
                input type="hidden" name="expect_key" value=(key);
                input type="hidden" name="expect_version" value=(version);
            }
            textarea #yaml-text name="text" rows="24" cols="100" spellcheck="false" { (text) }
            p {
                button #preview type="submit" { (lang.t(L::Preview)) }
                @if previewed {
                    " "
                    button #apply type="submit" formaction={ (BASE) "/resources/apply" } { (lang.t(L::Apply)) }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Edited {
    csrf: String,
    text: String,
    expect_key: Option<String>,
    expect_version: Option<u64>,
}

impl Edited {
    fn expected(&self) -> BTreeMap<String, u64> {
        match (&self.expect_key, self.expect_version) {
            (Some(key), Some(version)) => BTreeMap::from([(key.clone(), version)]),
            _ => BTreeMap::new(),
        }
    }
}

pub(crate) async fn preview(
    State(console): State<Arc<Console>>,
    person: Person,
    Form(edited): Form<Edited>,
) -> Response {
    change(&console, &person, edited, true).await
}

pub(crate) async fn apply(
    State(console): State<Arc<Console>>,
    person: Person,
    Form(edited): Form<Edited>,
) -> Response {
    change(&console, &person, edited, false).await
}

async fn change(console: &Console, person: &Person, edited: Edited, dry_run: bool) -> Response {
    if let Some(refused) = person.may_not_change(&edited.csrf) {
        return refused;
    }
    let (session, lang) = (&person.session, person.lang);
    let actor = actor(session);
    let sources = [("console".to_owned(), edited.text.clone())];
    let applied = match console
        .parts
        .changes
        .apply(&sources, &edited.expected(), &actor, dry_run)
        .await
    {
        Ok(applied) => applied,
        Err(e) => {
            return person.unavailable(&e);
        }
    };
    if applied.applied {
        info!(client = %session.client, "console: resources applied");
        let first = applied
            .plan
            .changes
            .iter()
            .find(|c| c.outcome != Outcome::Unchanged);
        let to = match first {
            Some(c) => format!(
                "{BASE}/resources/{}/{}?applied=1",
                c.key.kind,
                encode(&c.key.name)
            ),
            None => format!("{BASE}/resources"),
        };
        return Redirect::to(&to).into_response();
    }
    let status = match (dry_run, applied.plan.verdict) {
        (_, Verdict::Accepted) => StatusCode::OK,
        (_, Verdict::Invalid) => StatusCode::UNPROCESSABLE_ENTITY,
        (_, Verdict::Conflict) => StatusCode::CONFLICT,
        (_, Verdict::NotFound) => StatusCode::NOT_FOUND,
    };
    // A stale edit is shown against the newer version, and may be made again from it.
    let expect = edited.expect_key.as_ref().and_then(|key| {
        let key = Key::parse(key)?;
        let stored = applied.view.state.get(&key)?;
        Some((key.to_string(), stored.version))
    });
    let body = html! {
        (plan_view(lang, &applied, Some(&edited.text)))
        @if dry_run && applied.plan.verdict == Verdict::Accepted { p #preview-note { (lang.t(L::PreviewNote)) } }
        (editor(lang, session, &edited.text, expect.as_ref(), applied.plan.verdict == Verdict::Accepted))
    };
    (
        status,
        person.page(&format!("{BASE}/resources"), lang.t(L::Changes), body),
    )
        .into_response()
}

/// A plan as people read it: the verdict, each change and its problems, and the diffs. A refused
/// change may have no judged new value (a version conflict): the `proposed` text stands for it.
fn plan_view(lang: Lang, applied: &Applied, proposed: Option<&str>) -> Markup {
    let plan: &Plan = &applied.plan;
    let verdict = match plan.verdict {
        Verdict::Accepted => L::Accepted,
        Verdict::Invalid => L::Invalid,
        Verdict::Conflict => L::Conflict,
        Verdict::NotFound => L::NoSuchResource,
    };
    html! {
        p { (lang.t(L::Verdict)) ": " strong #verdict class=(if plan.verdict == Verdict::Accepted { "ok" } else { "bad" }) { (lang.t(verdict)) } }
        @if !plan.problems.is_empty() {
            h2 { (lang.t(L::Problems)) }
            ul #problems { @for p in &plan.problems { li { (p.to_string()) } } }
        }
        h2 { (lang.t(L::Changes)) }
        @for c in &plan.changes {
            div.change {
                p {
                    strong { (c.key.to_string()) } " · " span.outcome { (c.outcome.as_str()) }
                    " · v" (c.old.as_ref().map_or("-".into(), |o| o.version.to_string()))
                    " → v" (c.new.as_ref().map_or("-".into(), |n| n.version.to_string()))
                }
                @for problem in &c.problems { p.error { (problem) } }
                @if c.outcome != Outcome::Unchanged {
                    @let new = match (&c.new, c.outcome, proposed) {
                        (Some(n), _, _) => yaml_text(&n.resource.to_value()),
                        (None, Outcome::Rejected, Some(text)) => text.to_owned(),
                        (None, _, _) => String::new(),
                    };
                    (diff(
                        &c.old.as_ref().map(|o| yaml_text(&o.resource.to_value())).unwrap_or_default(),
                        &new,
                    ))
                }
            }
        }
    }
}

/// A line diff, `-` and `+` lines marked.
fn diff(before: &str, after: &str) -> Markup {
    let lines = TextDiff::from_lines(before, after);
    html! {
        pre.diff {
            @for change in lines.iter_all_changes() {
                @let (class, sign) = match change.tag() {
                    ChangeTag::Delete => ("del", "-"),
                    ChangeTag::Insert => ("add", "+"),
                    ChangeTag::Equal => ("same", " "),
                };
                span class=(class) { (sign) " " (change.value()) }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Deletion {
    csrf: String,
    confirm: Option<String>,
    version: Option<u64>,
}

pub(crate) async fn delete(
    State(console): State<Arc<Console>>,
    person: Person,
    Path((kind, name)): Path<(String, String)>,
    Form(deletion): Form<Deletion>,
) -> Response {
    if let Some(refused) = person.may_not_change(&deletion.csrf) {
        return refused;
    }
    let (session, lang) = (&person.session, person.lang);
    if deletion.confirm.as_deref() != Some("yes") {
        return person.refuse(StatusCode::BAD_REQUEST, lang.t(L::Confirm));
    }
    let Some(kind) = Kind::parse(&kind) else {
        return person.refuse(StatusCode::NOT_FOUND, lang.t(L::NoSuchResource));
    };
    let key = Key::new(kind, name);
    let applied = match console
        .parts
        .changes
        .delete(&key, deletion.version, &actor(session), false)
        .await
    {
        Ok(applied) => applied,
        Err(e) => {
            return person.unavailable(&e);
        }
    };
    if applied.applied {
        info!(resource = %key, client = %session.client, "console: resource deleted");
        return Redirect::to(&format!(
            "{BASE}/resources?deleted={}",
            encode(&key.to_string())
        ))
        .into_response();
    }
    let status = match applied.plan.verdict {
        Verdict::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::CONFLICT,
    };
    let body = plan_view(lang, &applied, None);
    (
        status,
        person.page(&format!("{BASE}/resources"), lang.t(L::Delete), body),
    )
        .into_response()
}

fn actor(session: &Session) -> Actor {
    Actor {
        name: session.client.clone(),
        authenticated: Some(session.by.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_marks_each_line_and_escapes_it() {
        let html = diff("a: 1\nb: <x>\n", "a: 2\nb: <x>\n").into_string();
        assert!(html.contains(r#"<span class="del">- a: 1"#), "{html}");
        assert!(html.contains(r#"<span class="add">+ a: 2"#), "{html}");
        assert!(html.contains("b: &lt;x&gt;"), "{html}");
    }
}

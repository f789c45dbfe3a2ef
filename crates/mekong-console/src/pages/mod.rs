//! The pages, and what they share: the layout, the signed-in person (or the way to sign-in), the
//! language switch, the style sheet.

pub(crate) mod adapters;
pub(crate) mod audit;
pub(crate) mod deadletters;
pub(crate) mod deadlines;
pub(crate) mod edit;
pub(crate) mod overview;
pub(crate) mod records;
pub(crate) mod resources;
pub(crate) mod signin;
pub(crate) mod testrecord;

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::i18n::{L, Lang};
use crate::session::{Session, same_token};
use crate::{BASE, Console, LANG_COOKIE, SESSION_COOKIE, cookie, lang_of};

/// A page in the console's frame: navigation, who is signed in, the language switch.
pub(crate) fn page(
    lang: Lang,
    session: Option<&Session>,
    here: &str,
    title: &str,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t(L::Title)) }
                link rel="stylesheet" href={ (BASE) "/style.css" };
            }
            body {
                header {
                    strong.brand { (lang.t(L::Title)) }
                    @if session.is_some() {
                        nav {
                            a href=(BASE) { (lang.t(L::Overview)) }
                            a href={ (BASE) "/resources" } { (lang.t(L::Resources)) }
                            a href={ (BASE) "/records" } { (lang.t(L::Records)) }
                            a href={ (BASE) "/adapters" } { (lang.t(L::Adapters)) }
                            a href={ (BASE) "/deadlines" } { (lang.t(L::LateDossiers)) }
                            a href={ (BASE) "/audit" } { (lang.t(L::AuditLog)) }
                        }
                    }
                    div.who {
                        @if let Some(s) = session {
                            span { (lang.t(L::SignedInAs)) " " strong #who { (s.client) } " (" span #role { (s.role.name()) } ")" }
                            form method="post" action={ (BASE) "/sign-out" } {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button #sign-out type="submit" { (lang.t(L::SignOut)) }
                            }
                        }
                        a #lang href={ (BASE) "/lang/" (lang.other().code()) "?next=" (encode(here)) } { (lang.t(L::Language)) }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The signed-in person of a request, checked against the current catalog; otherwise the way to
/// sign in, back to this page afterwards.
fn signed_in(
    console: &Console,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(String, Session), Box<Response>> {
    let token = cookie(headers, SESSION_COOKIE);
    let session = token
        .and_then(|t| console.sessions.get(t))
        .and_then(|s| s.recheck(&console.parts.catalog.load()));
    match (token, session) {
        (Some(token), Some(session)) => Ok((token.to_owned(), session)),
        (token, _) => {
            if let Some(token) = token {
                console.sessions.end(token);
            }
            let next = uri.path_and_query().map_or(BASE, |p| p.as_str());
            let expired = if token.is_some() { "&expired=1" } else { "" };
            Err(Box::new(
                Redirect::to(&format!("{BASE}/sign-in?next={}{expired}", encode(next)))
                    .into_response(),
            ))
        }
    }
}

/// The signed-in person making a request, and the language of their pages. Every page but the
/// sign-in takes one: without a live session the handler is never reached, and the person is sent
/// to sign in, and back to the page afterwards.
pub(crate) struct Person {
    pub(crate) token: String,
    pub(crate) session: Session,
    pub(crate) lang: Lang,
}

impl FromRequestParts<Arc<Console>> for Person {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Person, Response> {
        // Nested under BASE, the handler's URI has lost the prefix; the original has it.
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let (token, session) = signed_in(console, &parts.headers, &uri).map_err(|r| *r)?;
        Ok(Person {
            token,
            session,
            lang: lang_of(&parts.headers),
        })
    }
}

impl Person {
    /// A page for this person, in their language.
    pub(crate) fn page(&self, here: &str, title: &str, body: Markup) -> Response {
        page(self.lang, Some(&self.session), here, title, body).into_response()
    }

    /// A page saying why something was not done.
    pub(crate) fn refuse(&self, status: StatusCode, why: &str) -> Response {
        refusal(self.lang, Some(&self.session), status, why)
    }

    /// What could not be read or written (Kafka, the store), as a 503 page.
    pub(crate) fn unavailable(&self, e: &dyn std::fmt::Display) -> Response {
        self.refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
    }

    /// Why this person may not make a change with this form, if they may not: the form's CSRF
    /// token is not their session's, or they are no admin.
    pub(crate) fn may_not_change(&self, csrf: &str) -> Option<Response> {
        let why = if !same_token(csrf, &self.session.csrf) {
            "the form is stale or forged (CSRF token); reload the page"
        } else if self.session.role != crate::ConsoleRole::Admin {
            self.lang.t(L::ReadOnly)
        } else {
            return None;
        };
        Some(refusal(
            self.lang,
            Some(&self.session),
            StatusCode::FORBIDDEN,
            why,
        ))
    }
}

/// A page that says why something was not done.
pub(crate) fn refusal(
    lang: Lang,
    session: Option<&Session>,
    status: StatusCode,
    why: &str,
) -> Response {
    let body = html! {
        p.error #refusal { (why) }
        p { a href=(BASE) { (lang.t(L::Back)) } }
    };
    (status, page(lang, session, BASE, lang.t(L::Refused), body)).into_response()
}

/// A path under [`BASE`] to come back to; anything else is the overview.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == BASE
                || n.starts_with(&format!("{BASE}/"))
                || n.starts_with(&format!("{BASE}?")))
                && !n.contains('\\') =>
        {
            n.to_owned()
        }
        _ => BASE.to_owned(),
    }
}

/// An RFC 3339 time as people in the city read it: Asia/Ho_Chi_Minh, UTC+7 all year.
pub(crate) fn local_time(rfc3339: &str) -> String {
    mekong_core::times::rfc3339_ms(rfc3339)
        .and_then(mekong_core::times::display)
        .unwrap_or_else(|| rfc3339.to_owned())
}

pub(crate) fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// `/lang/{vi|en}?next=...`: the language cookie, then back.
pub(crate) async fn language(
    State(console): State<Arc<Console>>,
    Path(code): Path<String>,
    Query(next): Query<Next>,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or_default();
    let secure = if console.parts.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{LANG_COOKIE}={}; Path={BASE}; Max-Age=31536000; SameSite=Strict; HttpOnly{secure}",
        lang.code()
    );
    let mut response = Redirect::to(&safe_next(next.next.as_deref())).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(crate) async fn not_found(headers: HeaderMap) -> Response {
    let lang = lang_of(&headers);
    refusal(lang, None, StatusCode::NOT_FOUND, lang.t(L::NoSuchResource))
}

pub(crate) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The whole style sheet: system fonts only (no font files to fetch).
const STYLE: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: #1b2430; background: #f5f7fa; }
header { display: flex; gap: 2em; align-items: center; padding: .6em 1.5em; background: #0b4f6c; color: #fff; flex-wrap: wrap; }
header a { color: #fff; }
header nav a { margin-right: 1.2em; text-decoration: none; font-weight: 600; }
header .who { margin-left: auto; display: flex; gap: 1em; align-items: center; }
header form { display: inline; margin: 0; }
main { padding: 1em 1.5em 3em; max-width: 72em; }
h1 { font-size: 1.4em; margin: .4em 0 .8em; }
h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .4em .7em; border-bottom: 1px solid #dde3ea; vertical-align: top; }
th { background: #e8eef4; }
pre { background: #fff; border: 1px solid #dde3ea; padding: 1em; overflow: auto; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid #dde3ea; padding: .8em 1.2em; min-width: 12em; }
.card .n { font-size: 1.8em; font-weight: 700; }
.ok { color: #1d7a3a; font-weight: 600; }
.bad, .error { color: #b3261e; font-weight: 600; }
.paused { color: #a05a00; font-weight: 600; }
button { font: inherit; padding: .3em .9em; cursor: pointer; }
input[type=password], input[type=search] { font: inherit; padding: .35em; min-width: 22em; }
form.inline { display: flex; gap: .6em; align-items: center; margin: 0; }
svg#chart { background: #fff; border: 1px solid #dde3ea; }
pre.diff span { display: block; } pre.diff .add { background: #e6f4ea; } pre.diff .del { background: #fdecea; }
textarea { font: 13px/1.4 ui-monospace, monospace; width: 100%; }
svg .accepted { fill: #2e8b57; } svg .rejected { fill: #c0392b; }
"#;

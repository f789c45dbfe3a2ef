//! Signing in with an admin's or auditor's API key, and out. Every sign-in, refused or not, and
//! every sign-out is a `console.session` event on the audit trail; a session begins only once its
//! event is acknowledged by Kafka.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use mekong_core::identity::Presented;
use mekong_core::{AuditEvent, SessionEvent, hash_api_key};
use serde::Deserialize;
use tracing::{info, warn};

use super::{Person, page, safe_next};
use crate::i18n::{L, Lang};
use crate::session::{ConsoleRole, same_token};
use crate::{BASE, Console, SESSION_COOKIE, address_of, lang_of};

#[derive(Deserialize)]
pub(crate) struct Shown {
    next: Option<String>,
    expired: Option<String>,
}

pub(crate) async fn form(headers: HeaderMap, Query(shown): Query<Shown>) -> Response {
    let lang = lang_of(&headers);
    let note = shown.expired.is_some().then(|| lang.t(L::SessionExpired));
    render(lang, StatusCode::OK, shown.next.as_deref(), note)
}

fn render(lang: Lang, status: StatusCode, next: Option<&str>, message: Option<&str>) -> Response {
    let next = safe_next(next);
    let here = format!("{BASE}/sign-in?next={}", super::encode(&next));
    let body = html! {
        @if let Some(message) = message {
            p.error #sign-in-message { (message) }
        }
        p { (lang.t(L::SignInHint)) }
        form method="post" action={ (BASE) "/sign-in" } {
            input type="hidden" name="next" value=(next);
            label for="key" { (lang.t(L::ApiKey)) " " }
            input #key type="password" name="key" autocomplete="off" required;
            " "
            button #sign-in type="submit" { (lang.t(L::SignIn)) }
        }
    };
    (status, page(lang, None, &here, lang.t(L::SignIn), body)).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Attempt {
    key: String,
    next: Option<String>,
}

pub(crate) async fn submit(
    State(console): State<Arc<Console>>,
    extensions: Extensions,
    headers: HeaderMap,
    Form(attempt): Form<Attempt>,
) -> Response {
    let lang = lang_of(&headers);
    let address = address_of(extensions.get::<crate::Peer>());
    let next = attempt.next.as_deref();
    if let Some(wait) = console.throttle.wait(address) {
        let message = format!(
            "{} {} s.",
            lang.t(L::TooManyFailures),
            wait.as_secs().max(1)
        );
        let mut response = render(lang, StatusCode::TOO_MANY_REQUESTS, next, Some(&message));
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return response;
    }
    let key = hash_api_key(attempt.key.trim());
    let catalog = console.parts.catalog.load();
    let event = |client: &str, outcome: &str, role: Option<ConsoleRole>, reason: Option<&str>| {
        SessionEvent {
            time: now(),
            client: client.to_owned(),
            outcome: outcome.to_owned(),
            role: role.map(|r| r.name().to_owned()),
            address: address.to_string(),
            reason: reason.map(str::to_owned),
            subject: None,
            authenticated: None,
        }
    };
    let presented = Presented {
        key: Some(&key),
        certificate: None,
    };
    let (client, authenticated) = match catalog.authenticate_call(presented) {
        Ok(found) => found,
        Err(refused) => {
            console.throttle.failed(address);
            audit(
                &console,
                event("", "refused", None, Some(&refused.to_string())),
            )
            .await;
            return render(
                lang,
                StatusCode::UNAUTHORIZED,
                next,
                Some(lang.t(L::WrongKey)),
            );
        }
    };
    let Some(role) = ConsoleRole::of(client) else {
        console.throttle.failed(address);
        audit(
            &console,
            event(
                client.name(),
                "refused",
                None,
                Some("no admin or auditor role"),
            ),
        )
        .await;
        return render(
            lang,
            StatusCode::FORBIDDEN,
            next,
            Some(lang.t(L::NoConsoleRole)),
        );
    };
    let signed = SessionEvent {
        authenticated: Some(authenticated.clone()),
        ..event(client.name(), "signed_in", Some(role), None)
    };
    if !audit(&console, signed).await {
        return render(
            lang,
            StatusCode::SERVICE_UNAVAILABLE,
            next,
            Some("the audit trail cannot be written (Kafka); try again shortly"),
        );
    }
    console.throttle.succeeded(address);
    let (token, _) = console
        .sessions
        .begin(client.name().to_owned(), role, key, authenticated);
    info!(client = %client.name(), role = role.name(), %address, "console: signed in");
    let mut response = Redirect::to(&safe_next(next)).into_response();
    // The cookie lasts as long as the browser runs; the session itself ends on the hub's clock
    // (and the person is then told so).
    set_session_cookie(&console, &mut response, &token, None);
    response
}

#[derive(Deserialize)]
pub(crate) struct SignOut {
    csrf: String,
}

pub(crate) async fn sign_out(
    State(console): State<Arc<Console>>,
    extensions: Extensions,
    person: Person,
    Form(form): Form<SignOut>,
) -> Response {
    let (token, session) = (&person.token, &person.session);
    if !same_token(&form.csrf, &session.csrf) {
        return super::refusal(
            person.lang,
            Some(session),
            StatusCode::FORBIDDEN,
            "the form is stale or forged (CSRF token); reload the page",
        );
    }
    console.sessions.end(token);
    audit(
        &console,
        SessionEvent {
            time: now(),
            client: session.client.clone(),
            outcome: "signed_out".into(),
            role: Some(session.role.name().into()),
            address: address_of(extensions.get::<crate::Peer>()).to_string(),
            reason: None,
            subject: None,
            authenticated: None,
        },
    )
    .await;
    let mut response = Redirect::to(&format!("{BASE}/sign-in")).into_response();
    set_session_cookie(&console, &mut response, "", Some(0));
    response
}

fn set_session_cookie(
    console: &Console,
    response: &mut Response,
    token: &str,
    max_age: Option<u64>,
) {
    let secure = if console.parts.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let max_age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path={BASE}{max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

/// Writes a session event and waits for Kafka; false (and a warning) when it could not.
pub(crate) async fn audit(console: &Console, event: SessionEvent) -> bool {
    let producer = &console.parts.producer;
    let record = producer.audit_record(&AuditEvent::ConsoleSession(event));
    match producer.write(&[record]).await {
        Ok(_) => true,
        Err(e) => {
            warn!(error = %e.error, "console: a session event was not written to the audit trail");
            false
        }
    }
}

pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

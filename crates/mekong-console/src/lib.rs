//! The administrators' console: server-rendered pages to see, change and repair the hub, in
//! Vietnamese first (English one click away), served at `/console` on the metrics and health
//! listener, behind its TLS. No JavaScript, fonts or anything else from elsewhere: the city
//! network is closed, and the Content-Security-Policy allows this origin only.
//!
//! A person signs in with the API key of a client holding the `admin` or the `auditor` role
//! (`session.rs`); every change is a POST carrying the session's CSRF token, made through
//! `mekong-control` as the person's client and audited exactly as the CLI's are. An auditor sees
//! what an admin sees and changes nothing: the buttons are not drawn and the POSTs are refused.
//!
//! Pages (`pages/`): sign-in, the overview, resources (list, search, one resource's YAML), adapters
//! (state, pause and resume), an adapter's dead letters (list, filter, replay), the audit log,
//! records (a record's timeline by id or dossier number; a copy's payload, masked).

mod i18n;
mod pages;
mod session;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use mekong_core::Catalog;

pub use i18n::Lang;
pub use session::ConsoleRole;
use session::{Sessions, Throttle};

/// Where the console is mounted: every link and redirect is under it.
pub const BASE: &str = "/console";
const SESSION_COOKIE: &str = "mekong_console";
const LANG_COOKIE: &str = "mekong_lang";

/// How the console treats people. Every default is written here, once.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleConfig {
    /// How long a session lasts from sign-in.
    pub session_ttl: Duration,
    /// Sessions open at once on this instance; the oldest end first.
    pub max_sessions: usize,
    /// Wrong keys from one address before it is slowed.
    pub free_failures: u32,
    /// The first wait after those, doubled with each further failure up to `max_wait`.
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// Cookies only over TLS (`Secure`): on when the listener serves TLS.
    pub secure_cookies: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_ttl: Duration::from_secs(30 * 60),
            max_sessions: 1000,
            free_failures: 5,
            first_wait: Duration::from_secs(2),
            max_wait: Duration::from_secs(5 * 60),
            secure_cookies: false,
        }
    }
}

/// The hub's records counted so far (the gateway's counters), for the overview's chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub rejected: u64,
}

/// What the gateway of this instance reports to the overview.
pub trait GatewayView: Send + Sync {
    fn counts(&self) -> Counts;
    /// The most frequent refusals: (record type, client, reason, count).
    fn top_refusals(&self, n: usize) -> Vec<(String, String, String, u64)>;
}

/// What the console works with.
pub struct ConsoleParts {
    pub catalog: Arc<ArcSwap<Catalog>>,
    pub changes: mekong_control::Changes,
    /// Writes the console's own audit events (sign-ins).
    pub producer: mekong_kafka::Producer,
    /// The lineage index record searches answer from, where this instance keeps one.
    pub lineage: Option<Arc<mekong_kafka::Lineage>>,
    /// The record limits a tested record is judged by (the gateway's).
    pub limits: mekong_core::Limits,
    /// The gateway's counters, where this instance runs a gateway.
    pub gateway: Option<Arc<dyn GatewayView>>,
    /// The notary, where this instance runs one: the overview shows its latest checkpoint's age.
    pub notary: Option<Arc<mekong_kafka::Notary>>,
    pub config: ConsoleConfig,
}

/// The console: its router, to nest at [`BASE`]. Call it within a tokio runtime.
pub fn router(parts: ConsoleParts) -> Router {
    let console = Arc::new(Console {
        sessions: Sessions::new(parts.config.session_ttl, parts.config.max_sessions),
        throttle: Throttle::new(
            parts.config.free_failures,
            parts.config.first_wait,
            parts.config.max_wait,
        ),
        history: Mutex::default(),
        parts,
    });
    // A sample of the gateway's counts every minute, whether anyone looks or not; the task ends
    // with the console. (Called from within the hub's runtime.)
    if console.parts.gateway.is_some() {
        let watched = Arc::downgrade(&console);
        tokio::spawn(async move {
            let mut minutes = tokio::time::interval(Duration::from_secs(60));
            loop {
                minutes.tick().await;
                match watched.upgrade() {
                    Some(console) => {
                        console.sample();
                    }
                    None => return,
                }
            }
        });
    }
    Router::new()
        .route("/", get(pages::overview::show))
        .route(
            "/sign-in",
            get(pages::signin::form).post(pages::signin::submit),
        )
        .route("/sign-out", post(pages::signin::sign_out))
        .route("/lang/{code}", get(pages::language))
        .route("/style.css", get(pages::style))
        .route("/resources", get(pages::resources::list))
        .route("/resources/new", get(pages::edit::form))
        .route("/resources/preview", post(pages::edit::preview))
        .route("/resources/apply", post(pages::edit::apply))
        .route("/resources/{kind}/{name}", get(pages::resources::one))
        .route("/resources/{kind}/{name}/edit", get(pages::edit::form))
        .route("/resources/{kind}/{name}/delete", post(pages::edit::delete))
        .route("/adapters", get(pages::adapters::list))
        .route("/adapters/{name}", get(pages::adapters::one))
        .route(
            "/adapters/{name}/{action}",
            post(pages::adapters::set_paused),
        )
        .route("/dead-letters/{adapter}", get(pages::deadletters::list))
        .route(
            "/dead-letters/{adapter}/replay",
            post(pages::deadletters::replay),
        )
        .route("/deadlines", get(pages::deadlines::overdue))
        .route("/audit", get(pages::audit::list))
        .route(
            "/test-record",
            get(pages::testrecord::form).post(pages::testrecord::run),
        )
        .route("/records", get(pages::records::search))
        .route("/records/{id}/copy", get(pages::records::copy))
        .route("/records/{id}/proof", get(pages::records::proof))
        .route("/records/{id}/copy/reveal", post(pages::records::reveal))
        .fallback(pages::not_found)
        .with_state(console)
        .layer(middleware::from_fn(security_headers))
}

/// Shared by the handlers.
pub(crate) struct Console {
    parts: ConsoleParts,
    sessions: Sessions,
    throttle: Throttle,
    /// The gateway's counts, one sample a minute for the last hour.
    history: Mutex<VecDeque<(SystemTime, Counts)>>,
}

impl Console {
    /// The counts now, kept as a sample when a minute has passed since the last; the samples of the
    /// last hour, oldest first.
    pub(crate) fn sample(&self) -> Option<Vec<(SystemTime, Counts)>> {
        let counts = self.parts.gateway.as_ref()?.counts();
        let now = SystemTime::now();
        let mut history = self.history.lock().expect("the history");
        let due = history.back().is_none_or(|(at, _)| {
            now.duration_since(*at).unwrap_or_default() >= Duration::from_secs(60)
        });
        if due {
            history.push_back((now, counts));
            while history.len() > 61 {
                history.pop_front();
            }
        }
        let mut samples: Vec<_> = history.iter().copied().collect();
        if !due {
            samples.push((now, counts));
        }
        Some(samples)
    }
}

/// Headers of every console answer: nothing from elsewhere, no framing, no caching, no sniffing.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A cookie's value from the request's headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The page's language: the cookie's, else Vietnamese.
pub(crate) fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_default()
}

/// The address of the peer a request came from, put in its extensions by the listener that
/// serves the console.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Where a request came from (for the throttle and the audit trail); unknown is 0.0.0.0.
pub(crate) fn address_of(peer: Option<&Peer>) -> IpAddr {
    peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; mekong_lang=en; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, "mekong_lang"), Some("en"));
        assert_eq!(lang_of(&headers), Lang::En);
        assert_eq!(cookie(&headers, "c"), None);
        assert_eq!(lang_of(&HeaderMap::new()), Lang::Vi);
    }
}

//! Real local HTTP servers that act like the systems adapters deliver to, failures included: a
//! national portal (login for a session, `error_code` in HTTP 200 bodies, sessions that expire)
//! and a webhook receiver. Each answers from a script, then succeeds, and records what it received.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Success: `error_code` 0 for the portal, 200 for a webhook.
    Ok,
    /// The portal answers HTTP 200 with this `error_code` and message.
    ErrorCode(&'static str, &'static str),
    /// An HTTP status, with a Retry-After in seconds if given.
    Status(u16, Option<u64>),
    /// Waits this long, then succeeds (for timeouts).
    Delay(Duration),
    /// A redirect (302) to this URL.
    Redirect(String),
    /// A failure (500) with a body this many bytes long.
    LongBody(usize),
    /// 503 (no Retry-After) to every request until `delivered` requests for `key` were answered
    /// OK: a failure that lasts exactly as long as another key takes, whatever the machine's speed.
    BusyUntil { key: String, delivered: usize },
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the request arrived (before any scripted delay).
    pub at: Instant,
    /// The record's key (MaHoSo).
    pub key: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What was answered.
    pub reply: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Default)]
struct Script {
    /// Answers for the next requests whose key (MaHoSo, or the webhook's ce-id prefix) matches;
    /// `""` for any request.
    by_key: HashMap<String, VecDeque<Reply>>,
    received: Vec<Received>,
    logins: usize,
    /// Sessions the portal accepts.
    sessions: Vec<String>,
    /// Per request, how long to wait before answering (a slow target).
    latency: Duration,
}

/// A scripted HTTP target, serving until dropped.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    state: Arc<Mutex<Script>>,
    _server: Arc<ServerTask>,
}

struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The error code the portal uses for an expired session, as the test adapters configure it.
pub const SESSION_EXPIRED: &str = "-2";

impl Target {
    /// A national portal: `POST /login` (`{"username","password"}` -> `{"error_code":0,"session"}`)
    /// and `POST /api` (calls with a `session`).
    pub async fn portal() -> Target {
        Target::serve(|state| {
            Router::new()
                .route("/login", post(login))
                .route("/api", post(portal_call))
                .with_state(state)
        })
        .await
    }

    /// A webhook receiver at `POST /hook`.
    pub async fn webhook() -> Target {
        Target::serve(|state| Router::new().route("/hook", post(hook)).with_state(state)).await
    }

    /// A webhook receiver at `POST /hook` over HTTPS with `certificate`, that admits only
    /// clients presenting a certificate of `pki`'s CA.
    pub async fn webhook_tls(pki: &crate::pki::Pki, certificate: &crate::pki::Issued) -> Target {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(pki.ca()).expect("the CA"))
            .expect("a root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .expect("a client verifier");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_file(&certificate.cert).expect("the certificate")],
                PrivateKeyDer::from_pem_file(&certificate.key).expect("the key"),
            )
            .expect("a server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Target::serve_on(
            |state| Router::new().route("/hook", post(hook)).with_state(state),
            Some(acceptor),
        )
        .await
    }

    async fn serve(router: impl FnOnce(Arc<Mutex<Script>>) -> Router) -> Target {
        Target::serve_on(router, None).await
    }

    async fn serve_on(
        router: impl FnOnce(Arc<Mutex<Script>>) -> Router,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Target {
        let state = Arc::new(Mutex::new(Script::default()));
        let app = router(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            match tls {
                None => axum::serve(listener, app).await.unwrap(),
                Some(acceptor) => axum::serve(TlsListener { listener, acceptor }, app)
                    .await
                    .unwrap(),
            }
        });
        Target {
            addr,
            state,
            _server: Arc::new(ServerTask(task)),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of `path` over HTTPS (its certificate names 127.0.0.1).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Scripts the next answers for requests about `key` (a MaHoSo; `""` for any).
    pub fn script(&self, key: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut state = self.state.lock().unwrap();
        state
            .by_key
            .entry(key.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Every request answers after this long.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// The portal forgets every session: the next call with one gets `SESSION_EXPIRED`.
    pub fn expire_sessions(&self) {
        self.state.lock().unwrap().sessions.clear();
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn logins(&self) -> usize {
        self.state.lock().unwrap().logins
    }

    /// Waits until `done` holds for what was received, or fails after `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            if Instant::now() > deadline {
                let replies: Vec<&str> = received.iter().map(|r| r.reply.as_str()).collect();
                panic!(
                    "{what}: not within {timeout:?}; {} requests: {replies:?}",
                    received.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The next scripted reply for a request about `key`.
    fn next_reply(state: &mut Script, key: &str) -> Reply {
        for k in [key, ""] {
            let Some(queue) = state.by_key.get_mut(k) else {
                continue;
            };
            if let Some(Reply::BusyUntil { key, delivered }) = queue.front() {
                let done = state
                    .received
                    .iter()
                    .filter(|r| r.key == *key && r.reply == "Ok")
                    .count();
                if done < *delivered {
                    return Reply::Status(503, None);
                }
                queue.pop_front();
            }
            if let Some(reply) = queue.pop_front() {
                return reply;
            }
        }
        Reply::Ok
    }
}

async fn login(State(state): State<Arc<Mutex<Script>>>, body: Bytes) -> Response {
    let credentials: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = state.lock().unwrap();
    if credentials["username"] != "mekong" || credentials["password"] != "portal-password" {
        return axum::Json(json!({"error_code": 1, "message": "sai tên đăng nhập hoặc mật khẩu"}))
            .into_response();
    }
    state.logins += 1;
    let session = format!("session-{}", state.logins);
    state.sessions.push(session.clone());
    axum::Json(json!({"error_code": 0, "session": session})).into_response()
}

async fn portal_call(
    State(state): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = call["data"][0]["MaHoSo"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let session = call["session"].as_str().unwrap_or_default().to_owned();
    let (reply, latency) = {
        let mut state = state.lock().unwrap();
        if !state.sessions.contains(&session) {
            state.received.push(Received {
                at: Instant::now(),
                key: key.clone(),
                headers,
                body,
                reply: "session expired".into(),
            });
            return axum::Json(
                json!({"error_code": SESSION_EXPIRED, "message": "phiên làm việc đã hết hạn"}),
            )
            .into_response();
        }
        (Target::next_reply(&mut state, &key), state.latency)
    };
    answer(
        state,
        reply,
        latency,
        (key, headers, body),
        |reply| match reply {
            Reply::Ok | Reply::Delay(_) => {
                axum::Json(json!({"error_code": 0, "message": "Thành công"})).into_response()
            }
            Reply::Redirect(to) => (StatusCode::FOUND, [("Location", to.clone())]).into_response(),
            Reply::LongBody(n) => (StatusCode::OK, "x".repeat(*n)).into_response(),
            Reply::ErrorCode(code, message) => {
                axum::Json(json!({"error_code": code, "message": message})).into_response()
            }
            Reply::Status(status, retry_after) => status_response(*status, *retry_after),
            // next_reply answers for it while it holds.
            Reply::BusyUntil { .. } => status_response(503, None),
        },
    )
    .await
}

async fn hook(
    State(state): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = payload["MaHoSo"].as_str().unwrap_or_default().to_owned();
    let (reply, latency) = {
        let mut state = state.lock().unwrap();
        (Target::next_reply(&mut state, &key), state.latency)
    };
    answer(
        state,
        reply,
        latency,
        (key, headers, body),
        |reply| match reply {
            Reply::Status(status, retry_after) => status_response(*status, *retry_after),
            Reply::Redirect(to) => (StatusCode::FOUND, [("Location", to.clone())]).into_response(),
            Reply::LongBody(n) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(*n)).into_response()
            }
            _ => StatusCode::NO_CONTENT.into_response(),
        },
    )
    .await
}

/// Waits as scripted, records the request with its reply, and answers.
async fn answer(
    state: Arc<Mutex<Script>>,
    reply: Reply,
    latency: Duration,
    (key, headers, body): (String, HeaderMap, Bytes),
    respond: impl Fn(&Reply) -> Response,
) -> Response {
    let arrived = Instant::now();
    let wait = match &reply {
        Reply::Delay(d) => *d + latency,
        _ => latency,
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    state.lock().unwrap().received.push(Received {
        at: arrived,
        key,
        headers,
        body,
        reply: format!("{reply:?}"),
    });
    respond(&reply)
}

fn status_response(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(seconds) => (status, [("Retry-After", seconds.to_string())], "busy").into_response(),
        None => (status, "failure").into_response(),
    }
}

/// Connections with their TLS handshake done; one that fails its handshake is dropped (what a
/// target that refuses a client certificate does).
struct TlsListener {
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, remote)) = self.listener.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, remote);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

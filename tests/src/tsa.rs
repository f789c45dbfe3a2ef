//! A local RFC 3161 time-stamping authority for the tests: OpenSSL's `ts -reply` behind a small
//! HTTP server (`POST /`, `application/timestamp-query` in, `application/timestamp-reply` out), with
//! a CA and a TSA certificate made by `openssl` at start. It can be told to fail (503), as an
//! authority that is down.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

use crate::tempdir::Dir;

pub struct Tsa {
    /// Where to send requests.
    pub url: String,
    /// The CA that issued the TSA's certificate (PEM), for `verify --tsa-ca`.
    pub ca: PathBuf,
    state: Arc<TsaState>,
    _dir: Dir,
}

struct TsaState {
    dir: PathBuf,
    down: AtomicBool,
    stamped: AtomicUsize,
}

const CONFIG: &str = "[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = .
serial = ./serial
crypto_device = builtin
signer_cert = ./tsa.crt
certs = ./tsa.crt
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
[ v3_tsa ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
";

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tsa {
    pub async fn start() -> Tsa {
        let dir = std::env::temp_dir().join(format!("mekong-tsa-{}", crate::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tsa.cnf"), CONFIG).unwrap();
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "30",
                "-subj",
                "/CN=Mekong test TSA CA",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "tsa.key",
                "-out",
                "tsa.csr",
                "-subj",
                "/CN=Mekong test TSA",
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "tsa.crt",
                "-days",
                "30",
                "-extfile",
                "tsa.cnf",
                "-extensions",
                "v3_tsa",
            ],
        );
        let state = Arc::new(TsaState {
            dir: dir.clone(),
            down: AtomicBool::new(false),
            stamped: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/", post(stamp))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Tsa {
            url,
            ca: dir.join("ca.crt"),
            state,
            _dir: Dir(dir),
        }
    }

    /// Makes it answer 503 (down) or stamp again.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Requests stamped so far.
    pub fn stamped(&self) -> usize {
        self.state.stamped.load(Ordering::SeqCst)
    }
}

async fn stamp(State(state): State<Arc<TsaState>>, body: Bytes) -> impl IntoResponse {
    if state.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Vec::new()).into_response();
    }
    let dir = state.dir.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let n = crate::unique();
        let (query, reply) = (format!("q-{n}.tsq"), format!("r-{n}.tsr"));
        std::fs::write(dir.join(&query), &body).unwrap();
        // One stamp at a time: `ts -reply` keeps its serial number in a file.
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE.lock().unwrap();
        openssl(
            &dir,
            &[
                "ts",
                "-reply",
                "-queryfile",
                &query,
                "-config",
                "tsa.cnf",
                "-section",
                "tsa_config",
                "-out",
                &reply,
            ],
        );
        std::fs::read(dir.join(&reply)).unwrap()
    })
    .await
    .unwrap();
    state.stamped.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "application/timestamp-reply")],
        reply,
    )
        .into_response()
}

//! TLS on the gRPC listener (rustls, TLS 1.2 and 1.3 only): the hub's certificate and key, and for
//! mutual TLS the CAs whose client certificates are trusted and their revocation lists, all read
//! from PEM files. The files are read again when they change (or when asked, on SIGHUP), so that
//! certificates rotated every 90 days need no restart: new handshakes use the new configuration,
//! open connections keep theirs, except those whose client certificate a new revocation list
//! revokes: they are closed at once. A reload that fails keeps the configuration that works.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use mekong_core::identity::PeerCertificate;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Whether a client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// A certificate, if sent, must chain to a trusted CA; callers without one use API keys.
    #[default]
    Optional,
    /// No handshake completes without a trusted client certificate.
    Required,
}

/// Where the listener's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The certificate chain (PEM), the hub's own first.
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// CA bundles (PEM) whose client certificates are trusted: mutual TLS when not empty.
    pub client_cas: Vec<PathBuf>,
    pub client_auth: ClientAuth,
    /// Certificate revocation lists (PEM) of those CAs.
    pub crls: Vec<PathBuf>,
    /// How often the files are checked for changes.
    pub reload_every: Duration,
}

impl TlsSettings {
    pub const DEFAULT_RELOAD_EVERY: Duration = Duration::from_secs(10);

    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.certificate, &self.key]
            .into_iter()
            .chain(&self.client_cas)
            .chain(&self.crls)
    }
}

/// Why TLS material cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {problem}", file.display())]
    File { file: PathBuf, problem: String },
    #[error("{}: {problem}", key.display())]
    Mismatch { key: PathBuf, problem: String },
    #[error("the client CAs: {0}")]
    Verifier(String),
}

fn file_error(file: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        file: file.to_owned(),
        problem: problem.to_string(),
    }
}

/// A certificate as revocation lists name it: its issuer (DER) and serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CertificateId {
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

/// The current server configuration, what it was built from, and the open connections that
/// presented client certificates (so that a revocation can close them).
pub struct TlsConfig {
    settings: TlsSettings,
    current: ArcSwap<ServerConfig>,
    /// The digest of the files' contents the current configuration was built from.
    built_from: std::sync::Mutex<[u8; 32]>,
    revoked: ArcSwap<HashSet<CertificateId>>,
    open: std::sync::Mutex<HashMap<u64, (CertificateId, String, CancellationToken)>>,
    next: AtomicU64,
    /// The application protocols offered (ALPN).
    alpn: &'static [&'static [u8]],
}

/// An open connection's entry among those a revocation can close; removed when dropped.
pub(crate) struct Registration {
    config: Arc<TlsConfig>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.config
            .open
            .lock()
            .expect("the open connections")
            .remove(&self.id);
    }
}

impl TlsConfig {
    /// Reads and checks every file for a listener (HTTP/2 for gRPC, HTTP/1.1 beside it for the
    /// HTTP API, probes and scrapers); the start fails naming the file and the problem.
    pub fn load(settings: TlsSettings) -> Result<Arc<TlsConfig>, TlsError> {
        TlsConfig::load_for(settings, &[b"h2", b"http/1.1"])
    }

    fn load_for(
        settings: TlsSettings,
        alpn: &'static [&'static [u8]],
    ) -> Result<Arc<TlsConfig>, TlsError> {
        let digest = digest(&settings)?;
        let (config, revoked) = build(&settings, alpn)?;
        Ok(Arc::new(TlsConfig {
            settings,
            current: ArcSwap::from_pointee(config),
            built_from: std::sync::Mutex::new(digest),
            revoked: ArcSwap::from_pointee(revoked),
            open: std::sync::Mutex::default(),
            next: AtomicU64::new(0),
            alpn,
        }))
    }

    /// Enters an open connection's client certificate (`subject` for the log), so that `close`
    /// is cancelled if a later revocation list revokes it.
    pub(crate) fn register(
        self: &Arc<Self>,
        certificate: CertificateId,
        subject: String,
        close: CancellationToken,
    ) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .expect("the open connections")
            .insert(id, (certificate, subject, close));
        Registration {
            config: Arc::clone(self),
            id,
        }
    }

    /// Closes the open connections whose certificates are now revoked.
    fn close_revoked(&self) {
        let revoked = self.revoked.load();
        for (certificate, subject, close) in
            self.open.lock().expect("the open connections").values()
        {
            if revoked.contains(certificate) && !close.is_cancelled() {
                warn!(%subject, "closing a connection: its client certificate was revoked");
                close.cancel();
            }
        }
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    pub fn mutual(&self) -> bool {
        !self.settings.client_cas.is_empty()
    }

    pub fn reload_every(&self) -> Duration {
        self.settings.reload_every
    }

    /// Reads the files again and, if they changed, builds a new configuration from them. Returns
    /// whether the configuration changed; on an error the current one stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let digest = digest(&self.settings)?;
        let mut built_from = self.built_from.lock().expect("the TLS digest");
        if *built_from == digest {
            return Ok(false);
        }
        let (config, revoked) = build(&self.settings, self.alpn)?;
        self.current.store(Arc::new(config));
        self.revoked.store(Arc::new(revoked));
        *built_from = digest;
        drop(built_from);
        self.close_revoked();
        Ok(true)
    }

    /// Checks the files every `reload_every` until `stop` resolves, counting failures.
    pub async fn watch(
        self: Arc<Self>,
        failures: prometheus_client::metrics::counter::Counter,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut stop = std::pin::pin!(stop);
        // An interval of zero would panic: check at most ten times a second.
        let every = self.settings.reload_every.max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            self.reload_logged(&failures);
        }
    }

    /// [`TlsConfig::reload`], with its outcome logged and a failure counted.
    pub fn reload_logged(&self, failures: &prometheus_client::metrics::counter::Counter) {
        match self.reload() {
            Ok(true) => info!(
                certificate = %self.settings.certificate.display(),
                "TLS files changed: new connections use the new certificate and CAs"
            ),
            Ok(false) => {}
            Err(e) => {
                failures.inc();
                warn!(error = %e, "cannot reload the TLS files; keeping the current certificate and CAs");
            }
        }
    }
}

/// A handle that reads the TLS files again on demand (on SIGHUP), counting failures.
#[derive(Clone)]
pub struct TlsReload {
    pub config: Arc<TlsConfig>,
    pub failures: prometheus_client::metrics::counter::Counter,
}

impl TlsReload {
    pub fn now(&self) {
        self.config.reload_logged(&self.failures);
    }
}

/// The digest of every file's contents, to tell when something changed.
fn digest(settings: &TlsSettings) -> Result<[u8; 32], TlsError> {
    let mut hash = Sha256::new();
    for file in settings.files() {
        let bytes = std::fs::read(file).map_err(|e| file_error(file, e))?;
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(&bytes);
    }
    Ok(hash.finalize().into())
}

fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(file)
        .map_err(|e| file_error(file, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(file, e))?;
    if certificates.is_empty() {
        return Err(file_error(file, "no certificate (PEM `CERTIFICATE`) in it"));
    }
    Ok(certificates)
}

/// The server configuration, and the certificates its revocation lists revoke.
fn build(
    settings: &TlsSettings,
    alpn: &[&[u8]],
) -> Result<(ServerConfig, HashSet<CertificateId>), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&settings.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| {
        file_error(
            &settings.key,
            format!("no private key (PEM `PRIVATE KEY`) could be read: {e}"),
        )
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3");
    let mut revoked = HashSet::new();
    let builder = if settings.client_cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for file in &settings.client_cas {
            for ca in certificates(file)? {
                roots
                    .add(ca)
                    .map_err(|e| file_error(file, format!("not a usable CA certificate: {e}")))?;
            }
        }
        let mut crls = Vec::new();
        for file in &settings.crls {
            let read = CertificateRevocationListDer::pem_file_iter(file)
                .map_err(|e| file_error(file, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error(file, e))?;
            if read.is_empty() {
                return Err(file_error(
                    file,
                    "no revocation list (PEM `X509 CRL`) in it",
                ));
            }
            crls.extend(read);
        }
        for crl in &crls {
            let Ok((_, parsed)) = x509_parser::parse_x509_crl(crl.as_ref()) else {
                continue; // rustls refuses it below, with the reason
            };
            let issuer = parsed.issuer().as_raw().to_vec();
            revoked.extend(parsed.iter_revoked_certificates().map(|r| CertificateId {
                issuer: issuer.clone(),
                serial: r.raw_serial().to_vec(),
            }));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .with_crls(crls)
            // A CA without a list here has revoked nothing we know of.
            .allow_unknown_revocation_status();
        let verifier = match settings.client_auth {
            ClientAuth::Optional => verifier.allow_unauthenticated(),
            ClientAuth::Required => verifier,
        };
        builder.with_client_cert_verifier(
            verifier
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?,
        )
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch {
            key: settings.key.clone(),
            problem: format!(
                "cannot serve with this key and the certificate in {}: {e}",
                settings.certificate.display()
            ),
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok((config, revoked))
}

/// What Mekong reads of a client certificate that TLS verified, and how revocation lists name it.
pub(crate) fn peer_certificate(
    der: &CertificateDer<'_>,
) -> Option<(PeerCertificate, CertificateId)> {
    use x509_parser::oid_registry as oid;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let id = CertificateId {
        issuer: parsed.issuer().as_raw().to_vec(),
        serial: parsed.raw_serial().to_vec(),
    };
    let names = [
        (oid::OID_X509_COMMON_NAME, "CN"),
        (oid::OID_X509_ORGANIZATION_NAME, "O"),
        (oid::OID_X509_ORGANIZATIONAL_UNIT, "OU"),
        (oid::OID_X509_COUNTRY_NAME, "C"),
        (oid::OID_X509_LOCALITY_NAME, "L"),
        (oid::OID_X509_STATE_OR_PROVINCE_NAME, "ST"),
    ];
    let subject = parsed
        .subject()
        .iter_attributes()
        .filter_map(|attribute| {
            let (_, name) = names.iter().find(|(o, _)| o == attribute.attr_type())?;
            Some(((*name).to_owned(), attribute.as_str().ok()?.to_owned()))
        })
        .collect();
    let (mut dns, mut uris) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::URI(u) => uris.push((*u).to_owned()),
                _ => {}
            }
        }
    }
    let certificate = PeerCertificate {
        sha256: Sha256::digest(der.as_ref()).into(),
        subject,
        dns,
        uris,
    };
    Some((certificate, id))
}

//! A throwaway PKI for the TLS tests (rcgen): a CA, the hub's certificate for 127.0.0.1 and
//! localhost, client certificates as each test wants them, and revocation lists, all written as
//! PEM files into a directory of the test's own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// A CA and the directory its files go to.
pub struct Pki {
    pub dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    serial: AtomicU64,
}

/// A certificate and its key, on disk.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the certificate (DER), hex: what a `sha256` binding pins.
    pub sha256: String,
    pub serial: u64,
}

impl Issued {
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("the certificate file")
    }

    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(&self.key).expect("the key file")
    }
}

/// What a client certificate says.
#[derive(Debug, Clone, Default)]
pub struct ClientCert<'a> {
    /// Its file names, and its CN.
    pub name: &'a str,
    pub organization: Option<&'a str>,
    pub dns: &'a [&'a str],
    pub uris: &'a [&'a str],
    /// Valid until yesterday.
    pub expired: bool,
    /// For server authentication only (a certificate used for the wrong purpose).
    pub server_only: bool,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("mekong-pki-{name}-{}", crate::unique()));
        std::fs::create_dir_all(&dir).expect("the PKI directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Mekong test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
            .expect("the CA certificate");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("ca.pem");
        Pki {
            dir,
            ca,
            serial: AtomicU64::new(100),
        }
    }

    /// The CA's certificate (PEM), for `--client-ca` and for clients that check the hub.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca()).expect("ca.pem")
    }

    /// A certificate for the hub, for `127.0.0.1` and `localhost`, as `name.pem` / `name.key`.
    pub fn server(&self, name: &str) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("an address")));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("mekong hub {name}"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(name, params)
    }

    /// A client certificate as `spec` says.
    pub fn client(&self, spec: ClientCert<'_>) -> Issued {
        let mut params =
            CertificateParams::new(spec.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .expect("client params");
        for uri in spec.uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().expect("an ASCII URI")));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, spec.name);
        if let Some(o) = spec.organization {
            params.distinguished_name.push(DnType::OrganizationName, o);
        }
        params.extended_key_usages = vec![if spec.server_only {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        if spec.expired {
            params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
            params.not_after = OffsetDateTime::now_utc() - Duration::days(1);
        }
        self.issue(spec.name, params)
    }

    /// Signs a leaf certificate with the CA.
    fn issue(&self, name: &str, mut params: CertificateParams) -> Issued {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.ca).expect("a certificate");
        let (cert_file, key_file) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).expect("the certificate file");
        std::fs::write(&key_file, key.serialize_pem()).expect("the key file");
        Issued {
            cert: cert_file,
            key: key_file,
            sha256: hex::encode(Sha256::digest(cert.der())),
            serial,
        }
    }

    /// Writes the CA's revocation list, revoking `revoked` (none: an empty list), as `crl.pem`.
    pub fn crl(&self, revoked: &[&Issued]) -> PathBuf {
        let now = OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + Duration::days(7),
            crl_number: SerialNumber::from(self.serial.fetch_add(1, Ordering::Relaxed)),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|issued| RevokedCertParams {
                    serial_number: SerialNumber::from(issued.serial),
                    revocation_time: now - Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca)
        .expect("a revocation list");
        let file = self.dir.join("crl.pem");
        // Written beside and renamed, as a CA's tooling does: a reader never sees half a file.
        let next = self.dir.join("crl.pem.next");
        std::fs::write(&next, crl.pem().expect("PEM")).expect("the list file");
        std::fs::rename(&next, &file).expect("the list in place");
        file
    }
}

/// The certificate a TLS server at `addr` presents to a new connection now, checked against the
/// PKI's CA as `localhost` (its SHA-256, hex), or why the handshake failed.
pub async fn served_certificate(addr: std::net::SocketAddr, pki: &Pki) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            rustls::pki_types::CertificateDer::from_pem_file(pki.ca())
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().expect("a name"), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no certificate")?;
    Ok(hex::encode(Sha256::digest(chain[0].as_ref())))
}

/// Replaces a file the way certificate tooling does (written beside, then renamed): a reader
/// never sees half of it.
pub fn replace(file: &std::path::Path, text: &str) {
    let next = file.with_extension("next");
    std::fs::write(&next, text).expect("the new file");
    std::fs::rename(&next, file).expect("the file in place");
}

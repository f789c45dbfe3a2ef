//! Who is calling: a client recognised by an API key, by its certificate, or by both. TLS has
//! already checked a certificate (it chains to a trusted CA, is within its validity, is not
//! revoked, is meant for client authentication) before anything here sees it; here the only
//! question is *whose* it is, by the bindings each Client lists, and whether the client's
//! `authentication` rule is met.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::access::ApiKeyHash;
use crate::catalog::{Catalog, Client};

/// The subject attributes a `subject` binding may name.
pub const SUBJECT_ATTRIBUTES: [&str; 6] = ["CN", "O", "OU", "C", "L", "ST"];

/// A verified client certificate, as far as Mekong reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerCertificate {
    /// SHA-256 of the certificate (DER).
    pub sha256: [u8; 32],
    /// Subject attributes by short name (`CN`, `O` ...), in the certificate's order.
    pub subject: Vec<(String, String)>,
    /// DNS names among its subject alternative names.
    pub dns: Vec<String>,
    /// URIs among its subject alternative names (a SPIFFE id is one).
    pub uris: Vec<String>,
}

impl PeerCertificate {
    pub fn fingerprint(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The subject as `CN=motcua-q1, O=UBND Quan 1`, for messages and the audit trail.
    pub fn subject_text(&self) -> String {
        let parts: Vec<String> = self
            .subject
            .iter()
            .map(|(name, value)| format!("{name}={}", crate::rejection::excerpt(value, 64)))
            .collect();
        if parts.is_empty() {
            "(empty subject)".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One way a Client recognises its certificate; any one of a client's bindings identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum CertificateBinding {
    /// A URI subject alternative name, e.g. `spiffe://hcmc.gov.vn/district/q1/one-stop`.
    Uri(String),
    /// A DNS subject alternative name (compared without regard to case; no wildcards).
    Dns(String),
    /// Subject attributes that must all be there with exactly these values.
    Subject(BTreeMap<String, String>),
    /// The certificate itself, by the SHA-256 of its DER form (hex): a pin.
    Sha256(String),
}

/// How a client must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authentication {
    /// An API key or a certificate.
    #[default]
    Any,
    Certificate,
    Key,
    /// An API key and a certificate, both the client's: for high-trust systems.
    Both,
}

impl Authentication {
    pub(crate) fn is_any(&self) -> bool {
        *self == Authentication::Any
    }
}

/// A binding, checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Binding {
    Uri(String),
    /// Lower case.
    Dns(String),
    Subject(BTreeMap<String, String>),
    Sha256([u8; 32]),
}

impl Binding {
    /// Checks a binding as written in a resource.
    pub(crate) fn compile(spec: &CertificateBinding) -> Result<Binding, String> {
        match spec {
            CertificateBinding::Uri(uri) => {
                let scheme = uri.split_once(':').map(|(s, _)| s);
                let valid_scheme = scheme.is_some_and(|s| {
                    !s.is_empty()
                        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                });
                if !valid_scheme || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(format!(
                        "`{}` is not a URI (e.g. spiffe://hcmc.gov.vn/district/q1/one-stop)",
                        crate::rejection::excerpt(uri, 100)
                    ));
                }
                Ok(Binding::Uri(uri.clone()))
            }
            CertificateBinding::Dns(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let label_ok = |l: &str| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                };
                if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
                    return Err(format!(
                        "`{}` is not a DNS name (letters, digits, `-` and `.`; no wildcards)",
                        crate::rejection::excerpt(&name, 100)
                    ));
                }
                Ok(Binding::Dns(name))
            }
            CertificateBinding::Subject(attributes) => {
                if attributes.is_empty() {
                    return Err("name at least one subject attribute, e.g. {CN: motcua-q1}".into());
                }
                for (name, value) in attributes {
                    if !SUBJECT_ATTRIBUTES.contains(&name.as_str()) {
                        return Err(format!(
                            "unknown subject attribute `{}`; use {}",
                            crate::rejection::excerpt(name, 40),
                            SUBJECT_ATTRIBUTES.join(", ")
                        ));
                    }
                    if value.is_empty() {
                        return Err(format!("subject attribute `{name}` is empty"));
                    }
                }
                Ok(Binding::Subject(attributes.clone()))
            }
            CertificateBinding::Sha256(text) => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(text.trim().replace(':', ""), &mut digest).map_err(|_| {
                    "expected the SHA-256 of the certificate (DER) as 64 hex digits".to_string()
                })?;
                Ok(Binding::Sha256(digest))
            }
        }
    }

    pub(crate) fn matches(&self, certificate: &PeerCertificate) -> bool {
        match self {
            Binding::Uri(uri) => certificate.uris.iter().any(|u| u == uri),
            Binding::Dns(name) => certificate
                .dns
                .iter()
                .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(name)),
            Binding::Subject(wanted) => wanted.iter().all(|(name, value)| {
                certificate
                    .subject
                    .iter()
                    .any(|(n, v)| n == name && v == value)
            }),
            Binding::Sha256(digest) => certificate.sha256 == *digest,
        }
    }

    /// Whether one certificate could match both bindings, judged from the bindings alone: the
    /// same URI, DNS name or pin, or subjects that agree on every attribute both name.
    pub(crate) fn overlaps(&self, other: &Binding) -> bool {
        match (self, other) {
            (Binding::Uri(a), Binding::Uri(b)) => a == b,
            (Binding::Dns(a), Binding::Dns(b)) => a == b,
            (Binding::Sha256(a), Binding::Sha256(b)) => a == b,
            (Binding::Subject(a), Binding::Subject(b)) => a
                .iter()
                .all(|(name, value)| b.get(name).is_none_or(|v| v == value)),
            _ => false,
        }
    }
}

/// What a caller presented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The digest of the API key in its `authorization` header.
    pub key: Option<&'a ApiKeyHash>,
    /// Its verified client certificate.
    pub certificate: Option<&'a PeerCertificate>,
}

/// How a call was authenticated, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatedBy {
    /// `key`, `certificate` or `both`.
    pub by: String,
    /// The first 16 hex digits of the key's SHA-256: names the key without revealing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_subject: Option<String>,
}

/// The id the audit trail and logs give an API key: the start of its digest.
pub fn key_id(key: &ApiKeyHash) -> String {
    hex::encode(&key.0[..8])
}

/// Why a call is not authenticated. Each says what to do, and nothing a caller should not learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unauthenticated {
    NoCredentials,
    UnknownKey,
    /// A trusted certificate that no client binds.
    UnboundCertificate {
        subject: String,
        sha256: String,
    },
    /// A certificate that the bindings of several clients match.
    AmbiguousCertificate {
        subject: String,
        clients: Vec<String>,
    },
    /// The key is one client's and the certificate another's.
    DifferentClients {
        key: String,
        certificate: String,
    },
    /// The client's `authentication` asks for what was not presented.
    Missing {
        client: String,
        rule: Authentication,
        missing: &'static str,
    },
}

impl fmt::Display for Unauthenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unauthenticated::NoCredentials => write!(
                f,
                "missing credentials: send `authorization: Bearer <api key>` metadata, or a client certificate"
            ),
            Unauthenticated::UnknownKey => write!(f, "unknown API key"),
            Unauthenticated::UnboundCertificate { subject, sha256 } => write!(
                f,
                "the client certificate `{subject}` (sha256 {sha256}) is trusted but no client binds it; ask the hub's administrators to add it to your Client's `certificates`"
            ),
            Unauthenticated::AmbiguousCertificate { subject, clients } => write!(
                f,
                "the client certificate `{subject}` matches the bindings of several clients ({}); it identifies none of them",
                clients.join(", ")
            ),
            Unauthenticated::DifferentClients { key, certificate } => write!(
                f,
                "the API key belongs to client `{key}` and the certificate to client `{certificate}`; present the credentials of one client"
            ),
            Unauthenticated::Missing {
                client,
                rule,
                missing,
            } => {
                let rule = match rule {
                    Authentication::Both => "both",
                    Authentication::Certificate => "certificate",
                    Authentication::Key => "key",
                    Authentication::Any => "any",
                };
                write!(
                    f,
                    "client `{client}` must also present its {missing} (authentication: {rule})"
                )
            }
        }
    }
}

impl Client {
    /// Whether one of this client's bindings matches the certificate.
    pub fn binds(&self, certificate: &PeerCertificate) -> bool {
        self.bindings.iter().any(|b| b.matches(certificate))
    }

    pub fn authentication(&self) -> Authentication {
        self.spec.authentication
    }
}

impl Catalog {
    /// The client a call's credentials identify, and how, or why they identify none. A key that
    /// is presented must be known; a certificate that binds no client is passed over when a key
    /// identifies the caller, and refused when it stands alone.
    pub fn authenticate_call(
        &self,
        presented: Presented<'_>,
    ) -> Result<(&Client, AuthenticatedBy), Unauthenticated> {
        let (client, by) = self.identify(presented)?;
        let certificate = presented.certificate.filter(|_| by != "key");
        let by = AuthenticatedBy {
            by: by.into(),
            key_id: presented.key.filter(|_| by != "certificate").map(key_id),
            certificate_sha256: certificate.map(PeerCertificate::fingerprint),
            certificate_subject: certificate.map(PeerCertificate::subject_text),
        };
        Ok((client, by))
    }

    /// As [`Catalog::authenticate_call`], with how only as `key`, `certificate` or `both`: what an
    /// open stream checks for every record, without building the audit trail's description.
    pub fn identify(
        &self,
        presented: Presented<'_>,
    ) -> Result<(&Client, &'static str), Unauthenticated> {
        let by_key = match presented.key {
            Some(key) => Some(
                self.authenticate_digest(key)
                    .ok_or(Unauthenticated::UnknownKey)?,
            ),
            None => None,
        };
        let (by_certificate, unbound) = match presented.certificate {
            Some(certificate) => {
                let owners: Vec<&Client> = self
                    .clients
                    .values()
                    .filter(|c| c.binds(certificate))
                    .collect();
                match owners[..] {
                    [] => (None, true),
                    [one] => (Some(one), false),
                    _ => {
                        return Err(Unauthenticated::AmbiguousCertificate {
                            subject: certificate.subject_text(),
                            clients: owners.iter().map(|c| c.name().to_owned()).collect(),
                        });
                    }
                }
            }
            None => (None, false),
        };
        let missing = |client: &Client, missing: &'static str| Unauthenticated::Missing {
            client: client.name().to_owned(),
            rule: client.authentication(),
            missing,
        };
        match (by_key, by_certificate) {
            (Some(k), Some(c)) if k.name() != c.name() => Err(Unauthenticated::DifferentClients {
                key: k.name().to_owned(),
                certificate: c.name().to_owned(),
            }),
            (Some(client), Some(_)) => Ok((client, "both")),
            (Some(client), None) => match client.authentication() {
                Authentication::Any | Authentication::Key => Ok((client, "key")),
                Authentication::Certificate | Authentication::Both => {
                    Err(missing(client, "certificate"))
                }
            },
            (None, Some(client)) => match client.authentication() {
                Authentication::Any | Authentication::Certificate => Ok((client, "certificate")),
                Authentication::Key | Authentication::Both => Err(missing(client, "API key")),
            },
            (None, None) => match (unbound, presented.certificate) {
                (true, Some(certificate)) => Err(Unauthenticated::UnboundCertificate {
                    subject: certificate.subject_text(),
                    sha256: certificate.fingerprint(),
                }),
                _ => Err(Unauthenticated::NoCredentials),
            },
        }
    }
}

#[cfg(test)]
mod tests;

//! The gateway's TLS flags (`mekong serve`), into [`TlsSettings`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mekong_gateway::tls::{ClientAuth, TlsSettings};

#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// The gateway's certificate chain (PEM, its own certificate first): serve TLS 1.2/1.3. Read
    /// again when the file changes, or on SIGHUP. Without it the gateway serves plaintext.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A CA bundle (PEM) whose client certificates are trusted: mutual TLS (repeatable).
    #[arg(long = "client-ca", value_name = "FILE", requires = "tls_cert")]
    client_cas: Vec<PathBuf>,
    /// Whether every connection must present a trusted client certificate [default: optional].
    #[arg(long, value_enum, requires = "client_cas")]
    client_auth: Option<ClientAuthArg>,
    /// A revocation list (PEM) of a --client-ca (repeatable): its revoked certificates fail the
    /// handshake.
    #[arg(long = "client-crl", value_name = "FILE", requires = "client_cas")]
    crls: Vec<PathBuf>,
    /// The certificate chain (PEM) of the /metrics, /healthz and /readyz listener: serve it over
    /// TLS too (may be the same files as --tls-cert; probes then need `scheme: HTTPS`).
    #[arg(long, value_name = "FILE", requires = "metrics_tls_key")]
    metrics_tls_cert: Option<PathBuf>,
    /// The private key of --metrics-tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "metrics_tls_cert")]
    metrics_tls_key: Option<PathBuf>,
    /// How often the TLS files are checked for changes.
    #[arg(long, value_name = "DURATION", default_value_t = TlsSettings::DEFAULT_RELOAD_EVERY.into())]
    tls_reload_interval: humantime::Duration,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum ClientAuthArg {
    /// A certificate, if sent, must be trusted; callers without one use API keys.
    Optional,
    /// No connection without a trusted client certificate.
    Required,
}

impl TlsArgs {
    /// The listener's TLS, if --tls-cert was given.
    pub fn settings(&self) -> Option<TlsSettings> {
        let (certificate, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(TlsSettings {
            certificate,
            key,
            client_cas: self.client_cas.clone(),
            client_auth: match self.client_auth {
                Some(ClientAuthArg::Required) => ClientAuth::Required,
                Some(ClientAuthArg::Optional) | None => ClientAuth::Optional,
            },
            crls: self.crls.clone(),
            reload_every: self.tls_reload_interval.into(),
        })
    }

    /// The metrics listener's TLS, if --metrics-tls-cert was given.
    pub fn metrics_settings(&self) -> Option<TlsSettings> {
        Some(TlsSettings {
            certificate: self.metrics_tls_cert.clone()?,
            key: self.metrics_tls_key.clone()?,
            client_cas: Vec::new(),
            client_auth: ClientAuth::Optional,
            crls: Vec::new(),
            reload_every: self.tls_reload_interval.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        tls: TlsArgs,
    }

    #[test]
    fn the_flags_describe_the_listeners_tls_and_refuse_halves() {
        assert_eq!(Flags::parse_from(["mekong"]).tls.settings(), None);
        let flags = Flags::parse_from([
            "mekong",
            "--tls-cert",
            "/etc/mekong/tls.crt",
            "--tls-key",
            "/etc/mekong/tls.key",
            "--client-ca",
            "/etc/mekong/city-ca.pem",
            "--client-ca",
            "/etc/mekong/national-ca.pem",
            "--client-crl",
            "/etc/mekong/city.crl",
            "--client-auth",
            "required",
            "--tls-reload-interval",
            "1m",
        ]);
        let settings = flags.tls.settings().unwrap();
        assert_eq!(flags.tls.metrics_settings(), None);
        assert_eq!(settings.client_cas.len(), 2);
        assert_eq!(settings.client_auth, ClientAuth::Required);
        assert_eq!(settings.reload_every, std::time::Duration::from_secs(60));
        for half in [
            &["mekong", "--tls-cert", "a"][..],
            &["mekong", "--tls-key", "a"],
            &["mekong", "--client-ca", "a"],
            &[
                "mekong",
                "--tls-cert",
                "a",
                "--tls-key",
                "b",
                "--client-auth",
                "required",
            ],
            &[
                "mekong",
                "--tls-cert",
                "a",
                "--tls-key",
                "b",
                "--client-crl",
                "c",
            ],
        ] {
            assert!(Flags::try_parse_from(half).is_err(), "{half:?}");
        }
    }
}

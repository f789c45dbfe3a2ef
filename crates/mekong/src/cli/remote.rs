//! Talking to a running hub: where it is (`--server`, `MEKONG_SERVER`), over TLS or not, with an
//! API key (`--token`, `MEKONG_TOKEN`), a client certificate (`--tls-cert`), or both, and how its
//! refusals become messages and exit codes.

use std::path::PathBuf;

use clap::Args;
use mekong_proto::v1::admin_service_client::AdminServiceClient;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::Failure;

/// The hub to talk to and the credentials to talk with.
#[derive(Args, Debug, Clone)]
pub struct Remote {
    /// The gateway: host:port, or an http:// or https:// URL (host:port is https when a --tls-*
    /// flag is given).
    #[arg(long, env = "MEKONG_SERVER", default_value = "127.0.0.1:50051")]
    pub server: String,
    /// API key of the calling client (for admin commands: a client with the `admin` role).
    #[arg(long, env = "MEKONG_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate(s) (PEM) the hub's certificate must chain to [default: the system's roots].
    #[arg(long, env = "MEKONG_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// The calling client's certificate (PEM), for mutual TLS.
    #[arg(
        long,
        env = "MEKONG_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "MEKONG_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}

/// A channel that sends `authorization: Bearer <token>` with every call, when there is a token.
pub type Authed = InterceptedService<Channel, Bearer>;

#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(bearer) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        Ok(request)
    }
}

impl Remote {
    fn tls(&self) -> bool {
        self.tls_ca.is_some() || self.tls_cert.is_some()
    }

    pub async fn connect(&self) -> Result<Authed, Failure> {
        if self.token.is_none() && self.tls_cert.is_none() {
            return Err(Failure::usage(
                "no credentials: give --token (or MEKONG_TOKEN), or a client certificate with --tls-cert and --tls-key".into(),
            ));
        }
        let mut endpoint = endpoint(&self.server, self.tls())?;
        if endpoint.uri().scheme_str() == Some("https") {
            endpoint = endpoint
                .tls_config(self.tls_config()?)
                .map_err(|e| Failure::usage(format!("--server {}: {e}", self.server)))?;
        }
        let bearer = match &self.token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| Failure::usage("--token: not a valid header value".into()))?,
            ),
            None => None,
        };
        let channel = endpoint.connect().await.map_err(|e| {
            Failure::unreachable(format!(
                "cannot connect to {}: {:#}",
                self.server,
                anyhow::Error::from(e)
            ))
        })?;
        Ok(InterceptedService::new(channel, Bearer(bearer)))
    }

    fn tls_config(&self) -> Result<ClientTlsConfig, Failure> {
        let read = |flag: &str, file: &PathBuf| {
            std::fs::read(file)
                .map_err(|e| Failure::usage(format!("{flag} {}: {e}", file.display())))
        };
        let mut tls = ClientTlsConfig::new();
        tls = match &self.tls_ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read("--tls-ca", ca)?)),
            None => tls.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls = tls.identity(Identity::from_pem(
                read("--tls-cert", cert)?,
                read("--tls-key", key)?,
            ));
        }
        Ok(tls)
    }
}

/// A client of the hub's AdminService, for messages as large as an Apply may be.
pub async fn admin_client(remote: &Remote) -> Result<AdminServiceClient<Authed>, Failure> {
    Ok(AdminServiceClient::new(remote.connect().await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// A refused call: the hub's message (which names every problem), and the exit code: 3 when the
/// hub or its Kafka cannot be reached, else 1.
pub fn refused(status: tonic::Status) -> Failure {
    let exit = match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown => Failure::UNREACHABLE,
        _ => Failure::REFUSED,
    };
    Failure {
        exit,
        message: format!("{}: {}", code_name(status.code()), status.message()),
    }
}

/// The canonical name of a gRPC code: `PermissionDenied` → `PERMISSION_DENIED`.
pub fn code_name(code: Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// The endpoint `--server` names: a URL as given, or host:port as http (https when `tls`).
pub fn endpoint(server: &str, tls: bool) -> Result<Endpoint, Failure> {
    let url = if server.contains("://") {
        server.to_owned()
    } else if tls {
        format!("https://{server}")
    } else {
        format!("http://{server}")
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Failure::usage(format!(
            "--server {server}: use host:port, http://host:port or https://host:port"
        )));
    }
    Endpoint::from_shared(url).map_err(|e| Failure::usage(format!("--server {server}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_https_when_a_url_or_a_tls_flag_says_so() {
        let scheme = |server: &str, tls: bool| {
            endpoint(server, tls)
                .unwrap()
                .uri()
                .scheme_str()
                .map(str::to_owned)
        };
        assert_eq!(scheme("hub:50051", false).as_deref(), Some("http"));
        assert_eq!(scheme("hub:50051", true).as_deref(), Some("https"));
        assert_eq!(scheme("https://hub:50051", false).as_deref(), Some("https"));
        assert_eq!(scheme("http://hub:50051", true).as_deref(), Some("http"));
        assert!(endpoint("ftp://hub", false).is_err());
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(Code::PermissionDenied), "PERMISSION_DENIED");
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
    }
}

//! Talking to a running hub: where it is (`--server`, `MEKONG_SERVER`), the API key
//! (`--token`, `MEKONG_TOKEN`), and how its refusals become messages and exit codes.

use clap::Args;
use mekong_proto::v1::admin_service_client::AdminServiceClient;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::Failure;

/// The hub to talk to and the key to talk with.
#[derive(Args, Debug, Clone)]
pub struct Remote {
    /// The gateway: host:port or an http:// URL.
    #[arg(long, env = "MEKONG_SERVER", default_value = "127.0.0.1:50051")]
    pub server: String,
    /// API key of the calling client (for admin commands: a client with the `admin` role).
    #[arg(long, env = "MEKONG_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// A channel that sends `authorization: Bearer <token>` with every call.
pub type Authed = InterceptedService<Channel, Bearer>;

#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

impl Remote {
    pub async fn connect(&self) -> Result<Authed, Failure> {
        let endpoint = endpoint(&self.server)?;
        let bearer = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| Failure::usage("--token: not a valid header value".into()))?;
        let channel = endpoint.connect().await.map_err(|e| {
            Failure::unreachable(format!(
                "cannot connect to {}: {:#}",
                self.server,
                anyhow::Error::from(e)
            ))
        })?;
        Ok(InterceptedService::new(channel, Bearer(bearer)))
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

pub fn endpoint(server: &str) -> Result<Endpoint, Failure> {
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    if !url.starts_with("http://") {
        return Err(Failure::usage(format!(
            "--server {server}: only plaintext http:// is supported"
        )));
    }
    Endpoint::from_shared(url).map_err(|e| Failure::usage(format!("--server {server}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names() {
        assert_eq!(code_name(Code::PermissionDenied), "PERMISSION_DENIED");
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
    }
}

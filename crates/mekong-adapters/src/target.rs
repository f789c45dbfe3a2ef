//! The system an adapter delivers to, built from its resource: secrets resolved and the endpoints
//! checked within the operator's [`AdapterPolicy`], an HTTP client with the adapter's timeout that
//! follows no redirect, uses no proxy from the environment and connects only where the policy
//! allows.

use std::sync::Arc;

use mekong_core::{Adapter, AdapterType};
use mekong_kafka::Received;
use tokio::sync::Mutex;

use crate::attempt::Attempt;
use crate::dvcqg::Portal;
use crate::policy::{AdapterPolicy, Resolver};
use crate::secret::resolve;
use crate::webhook::Webhook;

pub enum Target {
    Dvcqg(Portal),
    Webhook(Webhook),
}

impl Target {
    /// Resolves the adapter's secrets and builds its client. Fails with a plain reason when a secret
    /// cannot be read.
    pub fn build(adapter: &Adapter, policy: &Arc<AdapterPolicy>) -> Result<Target, String> {
        let spec = &adapter.spec;
        for (field, url) in [
            ("endpoint", Some(&spec.endpoint)),
            ("auth.loginEndpoint", spec.auth.login_endpoint.as_ref()),
        ] {
            if let Some(url) = url {
                let parsed =
                    reqwest::Url::parse(url).map_err(|e| format!("{field}: `{url}`: {e}"))?;
                policy
                    .check_url(&parsed)
                    .map_err(|e| format!("{field}: {e}"))?;
            }
        }
        let mut client = reqwest::Client::builder();
        if let Some(tls) = &spec.tls {
            let pem = |field: &str, reference: &Option<String>| {
                reference
                    .as_deref()
                    .map(|r| resolve(r, policy))
                    .transpose()
                    .map_err(|e| format!("tls.{field}: {e}"))
            };
            if let Some(ca) = pem("ca", &tls.ca)? {
                let roots = reqwest::Certificate::from_pem_bundle(ca.expose().as_bytes())
                    .map_err(|e| format!("tls.ca: not PEM certificates: {e}"))?;
                if roots.is_empty() {
                    return Err("tls.ca: no certificate in it".into());
                }
                // The target's CA alone: a private portal is not vouched for by public roots.
                client = client.tls_built_in_root_certs(false);
                for root in roots {
                    client = client.add_root_certificate(root);
                }
            }
            if let (Some(cert), Some(key)) = (
                pem("clientCert", &tls.client_cert)?,
                pem("clientKey", &tls.client_key)?,
            ) {
                let identity = reqwest::Identity::from_pem(
                    format!("{}\n{}", cert.expose(), key.expose()).as_bytes(),
                )
                .map_err(|e| format!("tls.clientCert/clientKey: {e}"))?;
                client = client.identity(identity);
            }
        }
        let client = client
            .timeout(adapter.timeout)
            .connect_timeout(adapter.timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("mekong/", env!("CARGO_PKG_VERSION")))
            // A redirect would send the record (and its credentials) somewhere not checked.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Resolver(Arc::clone(policy))))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let secret = |field: &str, reference: &Option<String>| {
            reference
                .as_deref()
                .map(|r| resolve(r, policy))
                .transpose()
                .map_err(|e| format!("auth.{field}: {e}"))
        };
        let auth = &spec.auth;
        Ok(match spec.target {
            AdapterType::Dvcqg => Target::Dvcqg(Portal {
                client,
                endpoint: spec.endpoint.clone(),
                login_endpoint: auth.login_endpoint.clone().unwrap_or_default(),
                username: secret("username", &auth.username)?.ok_or("auth.username is required")?,
                password: secret("password", &auth.password)?.ok_or("auth.password is required")?,
                unit_code: spec.unit_code.clone().unwrap_or_default(),
                retryable_codes: spec.retryable_error_codes.clone(),
                session_codes: spec.session_error_codes.clone(),
                session: Mutex::new(None),
            }),
            AdapterType::Webhook => Target::Webhook(Webhook {
                client,
                endpoint: spec.endpoint.clone(),
                hmac_secret: secret("hmacSecret", &auth.hmac_secret)?,
                bearer_token: secret("bearerToken", &auth.bearer_token)?,
            }),
        })
    }

    pub async fn deliver(&self, record: &Received, record_id: &str, record_type: &str) -> Attempt {
        match self {
            Target::Dvcqg(portal) => portal.deliver(record, record_type).await,
            Target::Webhook(webhook) => webhook.deliver(record, record_id).await,
        }
    }
}

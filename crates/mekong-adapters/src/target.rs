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
        let client = reqwest::Client::builder()
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

//! `webhook`: any other system. Each record is POSTed as a CloudEvent in HTTP binary mode (the
//! payload is the body, attributes are `ce-*` headers), with `Idempotency-Key` = the record id so a
//! redelivery is recognisable, and either an HMAC-SHA256 signature of the body or a bearer token.

use hmac::{Hmac, Mac};
use mekong_core::cloudevents;
use mekong_kafka::Received;
use sha2::Sha256;

use crate::attempt::{Attempt, classify_error, classify_status, read_answer};
use crate::secret::Secret;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Mekong-Signature";

pub struct Webhook {
    pub(crate) client: reqwest::Client,
    pub(crate) endpoint: String,
    pub(crate) hmac_secret: Option<Secret>,
    pub(crate) bearer_token: Option<Secret>,
}

impl Webhook {
    pub async fn deliver(&self, record: &Received, record_id: &str) -> Attempt {
        let mut request = self
            .client
            .post(&self.endpoint)
            .header("Idempotency-Key", record_id)
            .body(record.payload.clone());
        let mut content_type = cloudevents::JSON.to_string();
        for (name, value) in &record.headers {
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            if let Some(attribute) = name.strip_prefix(cloudevents::ATTRIBUTE_PREFIX) {
                request = request.header(format!("ce-{attribute}"), value);
            } else if name == cloudevents::CONTENT_TYPE {
                content_type = value.to_owned();
            } else if name == cloudevents::TRACEPARENT || name == "tracestate" {
                request = request.header(name.as_str(), value);
            }
        }
        request = request.header("Content-Type", content_type);
        if let Some(secret) = &self.hmac_secret {
            request = request.header(
                SIGNATURE_HEADER,
                signature(secret.expose(), &record.payload),
            );
        }
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token.expose());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return Attempt::Delivered {
                        status: status.as_u16(),
                    };
                }
                let headers = response.headers().clone();
                let (body, _) = read_answer(response).await;
                classify_status(status, &headers, &body)
            }
            Err(e) => classify_error(&e),
        }
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of the body under the shared secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_test_case_2() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

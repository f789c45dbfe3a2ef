//! What one delivery attempt came to, and how HTTP answers are classified: what is worth retrying
//! (connection errors, timeouts, 408, 429, 5xx) and what is final.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Failed for a reason that may pass; `after` is what the target asked for (Retry-After).
    Retry {
        status: Option<u16>,
        reason: String,
        after: Option<Duration>,
    },
    /// Failed for good: retrying cannot help; the record goes to the dead-letter topic.
    Reject {
        status: Option<u16>,
        reason: String,
    },
}

/// The classification of an answer that is not a success.
pub fn classify_status(status: StatusCode, headers: &HeaderMap, body: &str) -> Attempt {
    let code = status.as_u16();
    let reason = format!("HTTP {code}: {}", excerpt(body));
    if code == 408 || code == 429 || status.is_server_error() {
        Attempt::Retry {
            status: Some(code),
            reason,
            after: retry_after(headers),
        }
    } else {
        Attempt::Reject {
            status: Some(code),
            reason,
        }
    }
}

/// The most of an answer's body an adapter reads: enough for any portal answer and any error
/// excerpt, never a target's whole stream.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An answer's body, read up to [`MAX_ANSWER_BYTES`]; the flag says whether it was longer.
pub async fn read_answer(mut response: reqwest::Response) -> (String, bool) {
    let mut body = Vec::new();
    let mut cut = false;
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    (String::from_utf8_lossy(&body).into_owned(), cut)
}

/// A transport failure (no answer): connection refused or reset, timeout; worth a retry. A request
/// that cannot even be built for this record (a header value HTTP does not allow) is final: retrying
/// cannot help, and the record goes to the dead letters at once.
pub fn classify_error(error: &reqwest::Error) -> Attempt {
    if error.is_builder() {
        return Attempt::Reject {
            status: None,
            reason: format!("no HTTP request can be made of this record: {error}"),
        };
    }
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    Attempt::Retry {
        status: None,
        reason: format!("{what}: {error}"),
        after: None,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The start of a body, for error messages.
pub fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &body[..at]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retries_what_may_pass_and_honours_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, &headers, "slow down"),
            Attempt::Retry {
                status: Some(429),
                reason: "HTTP 429: slow down".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        for code in [408, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(
                classify_status(status, &HeaderMap::new(), ""),
                Attempt::Retry { after: None, .. }
            ));
        }
        for code in [400, 401, 403, 404, 409, 422] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(
                classify_status(status, &HeaderMap::new(), ""),
                Attempt::Reject { .. }
            ));
        }
        let mut dated = HeaderMap::new();
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        dated.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let Attempt::Retry {
            after: Some(after), ..
        } = classify_status(StatusCode::SERVICE_UNAVAILABLE, &dated, "")
        else {
            panic!()
        };
        assert!(after > Duration::from_secs(25) && after <= Duration::from_secs(30));
    }
}

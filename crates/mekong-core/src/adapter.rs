//! Adapters, checked and compiled: where records are delivered, how failures are retried, and the
//! references to the secrets they log in with. Resolving those references and speaking HTTP is the
//! delivery engine's work (`mekong-adapters`); this room only decides what is valid.

use std::time::Duration;

use crate::resource::{AdapterSpec, AdapterType};
use crate::topic::check_topic_name;

/// An adapter, compiled.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub spec: AdapterSpec,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// Exponential backoff with jitter, for at most `max_attempts` attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): `initial * 2^(attempt-1)`, capped at
    /// `max`, then scaled by `jitter` in [0.5, 1.0] so that many failing keys do not retry in step.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exponent.min(31))
            .min(self.max_backoff);
        base.mul_f64(jitter.clamp(0.5, 1.0))
    }
}

/// The Kafka consumer group of an adapter.
pub fn adapter_group(adapter: &str) -> String {
    format!("mekong-adapter-{adapter}")
}

type FieldProblem = (String, String);

pub(crate) fn compile_adapter(spec: &AdapterSpec) -> Result<Adapter, Vec<FieldProblem>> {
    let mut problems: Vec<FieldProblem> = Vec::new();
    let mut problem = |field: &str, text: String| problems.push((field.to_owned(), text));

    if spec.from.is_empty() {
        problem("from", "list at least one topic to deliver from".into());
    }
    for (i, topic) in spec.from.iter().enumerate() {
        if let Err(p) = check_topic_name(topic) {
            problem(&format!("from[{i}]"), p);
        }
    }
    if let Err(p) = check_url(&spec.endpoint) {
        problem("endpoint", p);
    }
    let timeout = duration("timeout", &spec.timeout, &mut problem);
    if !(1..=1024).contains(&spec.concurrency) {
        problem("concurrency", "must be between 1 and 1024".into());
    }
    if !(1..=1000).contains(&spec.retry.max_attempts) {
        problem("retry.maxAttempts", "must be between 1 and 1000".into());
    }
    let initial = duration(
        "retry.initialBackoff",
        &spec.retry.initial_backoff,
        &mut problem,
    );
    let max = duration("retry.maxBackoff", &spec.retry.max_backoff, &mut problem);
    if let (Some(initial), Some(max)) = (initial, max)
        && initial > max
    {
        problem(
            "retry.maxBackoff",
            "must not be shorter than retry.initialBackoff".into(),
        );
    }

    let auth = &spec.auth;
    let secrets = [
        ("auth.username", &auth.username),
        ("auth.password", &auth.password),
        ("auth.hmacSecret", &auth.hmac_secret),
        ("auth.bearerToken", &auth.bearer_token),
    ];
    let tls = spec.tls.clone().unwrap_or_default();
    let tls_secrets = [
        ("tls.ca", &tls.ca),
        ("tls.clientCert", &tls.client_cert),
        ("tls.clientKey", &tls.client_key),
    ];
    for (field, value) in secrets.into_iter().chain(tls_secrets) {
        if let Some(value) = value
            && let Err(p) = check_secret_ref(value)
        {
            problem(field, p);
        }
    }
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        problem(
            "tls",
            "give `clientCert` and `clientKey` together, or neither".into(),
        );
    }
    if spec.tls.is_some() && !spec.endpoint.starts_with("https://") {
        problem("tls", "is for an https:// endpoint".into());
    }
    match spec.target {
        AdapterType::Dvcqg => {
            for (field, value) in [
                ("auth.loginEndpoint", &auth.login_endpoint),
                ("auth.username", &auth.username),
                ("auth.password", &auth.password),
                ("unitCode", &spec.unit_code),
            ] {
                if value.as_deref().is_none_or(str::is_empty) {
                    problem(field, "required for a dvcqg adapter".into());
                }
            }
            if let Some(url) = &auth.login_endpoint
                && let Err(p) = check_url(url)
            {
                problem("auth.loginEndpoint", p);
            }
            for (field, value) in [
                ("auth.hmacSecret", &auth.hmac_secret),
                ("auth.bearerToken", &auth.bearer_token),
            ] {
                if value.is_some() {
                    problem(
                        field,
                        "a dvcqg adapter logs in with username and password; this is for webhooks"
                            .into(),
                    );
                }
            }
        }
        AdapterType::Webhook => {
            if auth.hmac_secret.is_none() && auth.bearer_token.is_none() {
                problem(
                    "auth",
                    "a webhook needs `hmacSecret` (a signature over each body) or `bearerToken`"
                        .into(),
                );
            }
            for (field, value) in [
                ("auth.loginEndpoint", &auth.login_endpoint),
                ("auth.username", &auth.username),
                ("auth.password", &auth.password),
                ("unitCode", &spec.unit_code),
            ] {
                if value.is_some() {
                    problem(field, "only for a dvcqg adapter".into());
                }
            }
            for (field, codes) in [
                ("retryableErrorCodes", &spec.retryable_error_codes),
                ("sessionErrorCodes", &spec.session_error_codes),
            ] {
                if !codes.is_empty() {
                    problem(field, "only for a dvcqg adapter".into());
                }
            }
        }
    }

    match (timeout, initial, max) {
        (Some(timeout), Some(initial_backoff), Some(max_backoff)) if problems.is_empty() => {
            Ok(Adapter {
                spec: spec.clone(),
                timeout,
                retry: RetryPolicy {
                    max_attempts: spec.retry.max_attempts,
                    initial_backoff,
                    max_backoff,
                },
            })
        }
        _ => Err(problems),
    }
}

fn duration(field: &str, text: &str, problem: &mut impl FnMut(&str, String)) -> Option<Duration> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            problem(field, "must be longer than zero".into());
            None
        }
        Err(e) => {
            problem(
                field,
                format!("`{text}` is not a duration like `500ms`, `10s` or `5m`: {e}"),
            );
            None
        }
    }
}

/// `http://host[:port][/path]` or `https://...`.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// A secret is named, never written: `env:NAME` (an environment variable of the process that
/// delivers) or `file:PATH` (an absolute path, e.g. a mounted Kubernetes secret).
pub fn check_secret_ref(value: &str) -> Result<(), String> {
    if let Some(name) = value.strip_prefix("env:") {
        if !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Ok(());
        }
        return Err(format!(
            "`env:{name}`: an environment variable name is A-Z, 0-9 and `_`"
        ));
    }
    if let Some(path) = value.strip_prefix("file:") {
        if path.starts_with('/') {
            return Ok(());
        }
        return Err(format!("`file:{path}`: give an absolute path"));
    }
    Err(
        "secrets are references, `env:NAME` or `file:/path`, never the secret itself: keep it out of resources and the audit trail"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{Resource, parse_documents};

    fn compile(yaml: &str) -> Result<Adapter, Vec<FieldProblem>> {
        let (docs, errors) = parse_documents("a.yaml", yaml);
        assert_eq!(errors, vec![]);
        match &docs[0].resource {
            Resource::Adapter(spec) => compile_adapter(spec),
            other => panic!("{other:?}"),
        }
    }

    const PORTAL: &str = "kind: Adapter\nname: dvcqg\ntype: dvcqg\nfrom: [dvcqg.dossier-sync.v1]\nendpoint: https://portal.example/api\nunitCode: 000.00.01.H29\nauth: {loginEndpoint: 'https://portal.example/login', username: 'env:DVCQG_USER', password: 'file:/run/secrets/dvcqg'}\n";

    #[test]
    fn a_portal_adapter_compiles_with_defaults() {
        let adapter = compile(PORTAL).unwrap();
        assert_eq!(adapter.timeout, Duration::from_secs(10));
        assert_eq!(adapter.spec.concurrency, 8);
        assert_eq!(
            adapter.retry,
            RetryPolicy {
                max_attempts: 10,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(300)
            }
        );
    }

    #[test]
    fn inline_secrets_missing_credentials_and_bad_values_are_refused() {
        let bad = PORTAL
            .replace("'env:DVCQG_USER'", "'s3cret'")
            .replace("https://portal.example/api", "ftp://x")
            .replace(
                "unitCode: 000.00.01.H29\n",
                "timeout: soon\nconcurrency: 0\n",
            );
        let problems = compile(&bad).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "endpoint",
                "timeout",
                "concurrency",
                "auth.username",
                "unitCode"
            ]
        );
        assert!(problems[3].1.starts_with("secrets are references"));

        let webhook =
            "kind: Adapter\nname: w\ntype: webhook\nfrom: [t]\nendpoint: http://localhost:9/hook\n";
        let problems = compile(webhook).unwrap_err();
        assert_eq!(problems[0].0, "auth");
        let ok = format!(
            "{webhook}auth: {{hmacSecret: 'env:HOOK_SECRET'}}\nretry: {{maxAttempts: 3, initialBackoff: 100ms, maxBackoff: 1s}}\n"
        );
        assert_eq!(compile(&ok).unwrap().retry.max_attempts, 3);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens_it() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let full: Vec<u128> = (1..=6)
            .map(|a| policy.backoff(a, 1.0).as_millis())
            .collect();
        assert_eq!(full, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.backoff(2, 0.5), Duration::from_millis(100));
        assert_eq!(
            policy.backoff(2, 0.0),
            Duration::from_millis(100),
            "jitter is clamped"
        );
        assert_eq!(policy.backoff(500, 1.0), Duration::from_secs(1));
    }
}

//! Resources as administrators write them: YAML or JSON documents, several per file, each with a
//! `kind` and a `name`. This room reads text into typed specs and reports every problem with the
//! file, the document, the field and what is wrong.

use std::fmt;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::access::Role;
use crate::deadline::DeadlineSpec;

/// A `RecordType`: a kind of record, its JSON Schema and its partition key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordTypeSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// JSON pointer to the partition key inside the payload, e.g. `/MaHoSo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub schema: Value,
    /// Which schema changes are allowed; see [`Compatibility`].
    #[serde(default)]
    pub compatibility: Compatibility,
}

/// How a record type's schema may change. A new schema that breaks the mode is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compatibility {
    /// Records valid under the previous schema stay valid under the new one: publishers that have
    /// not upgraded keep working (the default).
    #[default]
    Backward,
    /// Records valid under the new schema are valid under the previous one: consumers that have not
    /// upgraded can read what upgraded publishers write.
    Forward,
    /// Both.
    Full,
    /// No check.
    None,
}

/// A `Route`: which records go to which topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    pub to: Vec<DestinationSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchSpec {
    /// Record type names or trailing-`*` prefixes.
    pub types: Vec<String>,
    /// Client names; empty means any client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// A CEL condition over `data`, `type` and `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DestinationSpec {
    pub topic: String,
    /// JSON pointers removed from this copy only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
}

/// A `Client`: a department system, integrator or administrator, and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeySpec>,
    /// Client certificates that identify it: any one of them does (over mutual TLS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<crate::identity::CertificateBinding>,
    /// What it must present: a key or a certificate (`any`, the default), only one of them, or both.
    #[serde(
        default,
        skip_serializing_if = "crate::identity::Authentication::is_any"
    )]
    pub authentication: crate::identity::Authentication,
    /// Record types (names or trailing-`*` prefixes) it may publish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// Topics it may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
    /// What it may hold open at once on each hub instance.
    #[serde(default, skip_serializing_if = "ClientLimits::is_default")]
    pub limits: ClientLimits,
}

/// Per-client bounds, on each hub instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientLimits {
    /// Open subscription streams (SubscribeService.Consume).
    #[serde(default = "ClientLimits::default_max_subscriptions")]
    pub max_subscriptions: u32,
    /// Records it may publish per second (absent: the instance's `--default-records-per-second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_second: Option<u32>,
    /// Payload bytes it may publish per second (absent: `--default-bytes-per-second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u32>,
    /// Records it may send at once beyond its rate (absent: `--default-burst`, else one second's
    /// worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// PublishStream streams open at once (absent: `--default-max-streams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<u32>,
}

impl ClientLimits {
    pub const DEFAULT_MAX_SUBSCRIPTIONS: u32 = 16;

    fn default_max_subscriptions() -> u32 {
        ClientLimits::DEFAULT_MAX_SUBSCRIPTIONS
    }

    fn is_default(&self) -> bool {
        *self == ClientLimits::default()
    }
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_subscriptions: ClientLimits::DEFAULT_MAX_SUBSCRIPTIONS,
            records_per_second: None,
            bytes_per_second: None,
            burst: None,
            max_streams: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    /// The SHA-256 digest of the key, as hex. The key itself is never stored.
    pub sha256: String,
}

/// An `Adapter`: delivery of the records of some topics to an outside system over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdapterSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `dvcqg` (the National Public Service Portal) or `webhook` (CloudEvents over HTTP).
    #[serde(rename = "type")]
    pub target: AdapterType,
    /// The topics whose records are delivered.
    pub from: Vec<String>,
    /// The URL records are sent to.
    pub endpoint: String,
    /// How long one HTTP request may take, e.g. `10s`.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Keys delivered in parallel; records of one key always go one after another.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub auth: AuthSpec,
    /// TLS towards the target: its CA and this hub's client certificate, for portals that require
    /// one. Without it, the system's roots and no client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<AdapterTlsSpec>,
    /// dvcqg: the unit code (`madonvi`) the portal knows the city by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
    /// dvcqg: `error_code` values worth retrying (others are final).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retryable_error_codes: Vec<String>,
    /// dvcqg: `error_code` values meaning the session is no longer valid: log in again and retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_error_codes: Vec<String>,
    /// Paused by an administrator (`mekong adapters pause`): no instance delivers; records wait in
    /// Kafka until it is resumed. An `apply` of the adapter sets it as its text says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

fn default_timeout() -> String {
    "10s".into()
}

fn default_concurrency() -> u32 {
    8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterType {
    Dvcqg,
    Webhook,
}

/// How failed deliveries are retried: exponential backoff with jitter, up to `maxAttempts` in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetrySpec {
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: String,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: String,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

fn default_max_attempts() -> u32 {
    10
}

fn default_initial_backoff() -> String {
    "1s".into()
}

fn default_max_backoff() -> String {
    "5m".into()
}

/// Credentials, each a reference to a secret (`env:NAME` or `file:PATH`), never the secret itself.
/// An adapter's TLS towards its target; each a secret reference (`file:` or `env:`) to PEM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdapterTlsSpec {
    /// The CA(s) the target's certificate must chain to, instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// The certificate chain this hub presents to the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSpec {
    /// dvcqg: where to log in for a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// webhook: key of the HMAC-SHA256 signature over each body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    /// webhook: sent as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
}

/// The kinds of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    RecordType,
    Route,
    Client,
    Adapter,
    Deadline,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::RecordType,
        Kind::Route,
        Kind::Client,
        Kind::Adapter,
        Kind::Deadline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RecordType => "RecordType",
            Kind::Route => "Route",
            Kind::Client => "Client",
            Kind::Adapter => "Adapter",
            Kind::Deadline => "Deadline",
        }
    }

    /// A kind as people type it: `RecordType`, `recordtype`, `recordtypes`, `route`, `Routes` ...
    pub fn parse(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        let singular = lower.strip_suffix('s').unwrap_or(&lower);
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(singular))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a resource lives in the store: its kind and name, written `Kind/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, name: impl Into<String>) -> Key {
        Key {
            kind,
            name: name.into(),
        }
    }

    pub fn of(resource: &Resource) -> Key {
        Key::new(resource.kind(), resource.name())
    }

    /// Reads `Kind/name`.
    pub fn parse(text: &str) -> Option<Key> {
        let (kind, name) = text.split_once('/')?;
        Some(Key::new(Kind::parse(kind)?, name))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// One resource of any kind. Serialised as its spec with a `kind` field, as administrators write it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind")]
// Resources are few and long-lived: boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Resource {
    RecordType(RecordTypeSpec),
    Route(RouteSpec),
    Client(ClientSpec),
    Adapter(AdapterSpec),
    Deadline(DeadlineSpec),
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::RecordType(_) => Kind::RecordType,
            Resource::Route(_) => Kind::Route,
            Resource::Client(_) => Kind::Client,
            Resource::Adapter(_) => Kind::Adapter,
            Resource::Deadline(_) => Kind::Deadline,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Resource::RecordType(r) => &r.name,
            Resource::Route(r) => &r.name,
            Resource::Client(r) => &r.name,
            Resource::Adapter(r) => &r.name,
            Resource::Deadline(r) => &r.name,
        }
    }
}

impl Resource {
    /// The resource as one JSON value, `kind` first.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("resources serialise to JSON")
    }

    /// Reads a resource back from [`Resource::to_value`]'s form.
    pub fn from_value(value: Value) -> Result<Resource, String> {
        parse_resource(value).map_err(|(field, problem)| {
            if field.is_empty() {
                problem
            } else {
                format!("field `{field}`: {problem}")
            }
        })
    }
}

/// A resource and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file (or other source) it came from.
    pub source: String,
    /// 1-based position of the document in its source.
    pub index: usize,
    /// 1-based line where the document starts in its source; 0 when unknown.
    pub line: usize,
    pub resource: Resource,
}

/// A problem with one resource, placed precisely enough to fix it without searching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError {
    pub source: String,
    /// 1-based document number; 0 when the problem is with the source as a whole.
    pub index: usize,
    /// 1-based line in the source: where the document starts, or the syntax error is; 0 when unknown.
    pub line: usize,
    /// The resource, when known.
    pub resource: Option<Key>,
    /// The field, as a path like `match.when` or `to[0].topic`; empty for the document itself.
    pub field: String,
    pub problem: String,
}

impl ResourceError {
    pub(crate) fn at(doc: &Document, field: impl Into<String>, problem: impl Into<String>) -> Self {
        ResourceError {
            source: doc.source.clone(),
            index: doc.index,
            line: doc.line,
            resource: Some(Key::of(&doc.resource)),
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if self.index > 0 {
            write!(f, ": document {}", self.index)?;
        }
        if let Some(key) = &self.resource {
            write!(f, " ({} \"{}\")", key.kind, key.name)?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ResourceError {}

/// Values (mappings, lists, scalars) one text may hold: far more than any resource set needs, far
/// fewer than a YAML alias bomb expands to.
pub const MAX_VALUES: usize = 1_000_000;

/// Reads every document of a YAML (or JSON, which YAML reads too) text. Empty documents are skipped.
/// Each problem found is returned; documents without problems are returned too.
pub fn parse_documents(source: &str, text: &str) -> (Vec<Document>, Vec<ResourceError>) {
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    let starts = document_lines(text);
    let budget = std::cell::Cell::new(MAX_VALUES);
    for (i, yaml) in serde_norway::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let line = starts.get(i).copied().unwrap_or(0);
        let error = |line: usize, field: &str, problem: String| ResourceError {
            source: source.to_owned(),
            index,
            line,
            resource: None,
            field: field.to_owned(),
            problem,
        };
        let value = match crate::payload::read(yaml, &budget) {
            Ok(Value::Null) => continue,
            Ok(value) => value,
            Err(crate::payload::Unreadable::Syntax(e)) => {
                let at = e.location().map_or(line, |l| l.line());
                errors.push(error(at, "", format!("not valid YAML/JSON: {e}")));
                // The YAML stream cannot be trusted past a syntax error.
                break;
            }
            Err(crate::payload::Unreadable::Refused(e)) => {
                let field = e.field.trim_start_matches('/').replace('/', ".");
                errors.push(error(line, &field, e.problem));
                break;
            }
        };
        match parse_resource(value) {
            Ok(resource) => documents.push(Document {
                source: source.to_owned(),
                index,
                line,
                resource,
            }),
            Err((field, problem)) => errors.push(error(line, &field, problem)),
        }
    }
    (documents, errors)
}

/// The 1-based line where each YAML document of `text` starts (its first line that is not blank or
/// a comment; 0 for an empty document). Documents are split at `---` lines; a `---` before any
/// content opens the first document instead.
fn document_lines(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let mut opened = false;
    for (n, line) in text.lines().enumerate() {
        let is_separator =
            line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        let trimmed = line.trim();
        if is_separator {
            if opened {
                starts.push(0);
            }
            opened = true;
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            opened = true;
            if let Some(start @ 0) = starts.last_mut() {
                *start = n + 1;
            }
        }
    }
    starts
}

/// One document's value into a typed resource; errors as (field path, problem).
fn parse_resource(mut value: Value) -> Result<Resource, (String, String)> {
    let Some(map) = value.as_object_mut() else {
        return Err((
            String::new(),
            "a resource must be a mapping with `kind` and `name`".into(),
        ));
    };
    let kind = match map.shift_remove("kind") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(("kind".into(), "must be a string".into())),
        None => {
            return Err((
                "kind".into(),
                "missing; expected one of RecordType, Route, Client, Adapter, Deadline".into(),
            ));
        }
    };
    let resource = match kind.as_str() {
        "RecordType" => Resource::RecordType(typed(value)?),
        "Route" => Resource::Route(typed(value)?),
        "Client" => Resource::Client(typed(value)?),
        "Adapter" => Resource::Adapter(typed(value)?),
        "Deadline" => Resource::Deadline(typed(value)?),
        other => {
            return Err((
                "kind".into(),
                format!(
                    "unknown kind `{other}`; expected one of RecordType, Route, Client, Adapter, Deadline"
                ),
            ));
        }
    };
    Ok(resource)
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        (field, e.into_inner().to_string())
    })
}

/// A JSON value (a resource as stored) as YAML text, as people read resources: members keep their
/// order, numbers their exact text.
pub fn yaml_text(value: &Value) -> String {
    serde_norway::to_string(&to_yaml(value)).expect("YAML values serialize")
}

fn to_yaml(value: &Value) -> serde_norway::Value {
    use serde_norway::Value as Y;
    match value {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Number(n) => {
            let text = n.to_string();
            serde_norway::from_str(&text).unwrap_or(Y::String(text))
        }
        Value::String(s) => Y::String(s.clone()),
        Value::Array(items) => Y::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(map) => Y::Mapping(
            map.iter()
                .map(|(k, v)| (Y::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_several_documents_of_each_kind() {
        let text = r#"
kind: RecordType
name: dossier.sync
key: /MaHoSo
schema: {type: object}
---
kind: Route
name: r
match: {types: ["dossier.*"], when: "data.x == 1"}
to: [{topic: t, redact: [/Email]}]
---
---
kind: Client
name: q1
roles: [publisher]
apiKeys: [{sha256: abc}]
publish: [dossier.sync]
"#;
        let (docs, errors) = parse_documents("a.yaml", text);
        assert_eq!(errors, vec![]);
        let kinds: Vec<_> = docs
            .iter()
            .map(|d| {
                (
                    d.index,
                    d.line,
                    d.resource.kind().as_str(),
                    d.resource.name(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (1, 2, "RecordType", "dossier.sync"),
                (2, 7, "Route", "r"),
                (4, 13, "Client", "q1")
            ]
        );
    }

    #[test]
    fn errors_name_the_document_and_the_field() {
        let text = "kind: Route\nname: r\nmatch: {types: [a], whn: x}\nto: []\n---\nkind: Widget\nname: w\n";
        let (docs, errors) = parse_documents("routes.yaml", text);
        assert!(docs.is_empty());
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].index, 1);
        assert_eq!(errors[0].field, "match.whn");
        assert!(
            errors[0].problem.contains("unknown field `whn`"),
            "{}",
            errors[0]
        );
        assert_eq!(errors[1].index, 2);
        assert!(
            errors[1]
                .to_string()
                .starts_with("routes.yaml:6: document 2: field `kind`: unknown kind `Widget`"),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn wrong_types_name_the_nested_field() {
        let (_, errors) = parse_documents(
            "c.yaml",
            "kind: Client\nname: c\nroles: [publisher, overlord]\n",
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "roles[1]");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let (_, errors) = parse_documents("bad.yaml", "kind: [unclosed\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].problem.starts_with("not valid YAML/JSON"));
    }

    #[test]
    fn json_documents_are_read_too() {
        let (docs, errors) = parse_documents(
            "t.json",
            r#"{"kind": "RecordType", "name": "x", "schema": {"type": "object"}}"#,
        );
        assert_eq!(errors, vec![]);
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn yaml_aliases_cannot_expand_without_bound() {
        // One anchor of 2,000 values aliased 2,000 times: four million values from 14 KB. (Deep
        // alias chains are caught by the YAML reader itself; wide ones are not.)
        let bomb = format!(
            "kind: RecordType\nname: x\nschema: {{type: object}}\na: &a [{}]\nb: [{}]\n",
            vec!["x"; 2000].join(","),
            vec!["*a"; 2000].join(",")
        );
        let started = std::time::Instant::now();
        let (docs, errors) = parse_documents("bomb.yaml", &bomb);
        assert!(docs.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].problem.contains("too many values"), "{errors:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // Aliases within reason still work.
        let (docs, errors) = parse_documents(
            "ok.yaml",
            "kind: RecordType\nname: x\nschema: {type: object, properties: {a: &s {type: string}, b: *s}}\n",
        );
        assert_eq!((docs.len(), errors.len()), (1, 0));
    }

    #[test]
    fn yaml_output_keeps_order_and_exact_numbers() {
        let value: Value = serde_json::from_str(
            r#"{"kind":"RecordType","name":"x","schema":{"type":"object","maximum":12345678901234567890,"multipleOf":0.5}}"#,
        )
        .unwrap();
        assert_eq!(
            yaml_text(&value),
            "kind: RecordType\nname: x\nschema:\n  type: object\n  maximum: 12345678901234567890\n  multipleOf: 0.5\n"
        );
    }
}

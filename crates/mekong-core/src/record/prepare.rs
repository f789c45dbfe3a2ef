//! Judging a submitted record by one catalog: access, size, attributes, the payload (parsed once),
//! the schema, the partition key, the routes, and the copies with their headers and redactions.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use super::{KafkaRecord, Limits, Prepared, Progress, RouteVerdict, Stage, Submission};
use crate::catalog::{Catalog, Client};
use crate::cloudevents::{ROUTE, base_headers};
use crate::payload;
use crate::redact::{JsonPointer, Redacted};
use crate::rejection::{Rejection, RejectionKind, Violation, excerpt};

/// CloudEvents attributes a caller may not set through `attributes`.
const RESERVED_ATTRIBUTES: [&str; 9] = [
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];
pub const MAX_ATTRIBUTES: usize = 32;
/// Attribute values become HTTP headers at webhooks: short, printable text.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 256;
/// Partition keys; with the attributes this keeps a record's headers and key well inside the room
/// Kafka messages have beside the payload.
pub const MAX_KEY_BYTES: usize = 4096;
/// Violations described in one refusal; the count says how many there were.
const MAX_VIOLATIONS: usize = 10;
/// How much of a name the caller sent (a record type) a message repeats.
const MAX_NAME_CHARS: usize = 64;

impl Catalog {
    /// Judges a record by this catalog and, when every rule accepts it, returns the Kafka records
    /// to write. The payload is parsed once; schema, key, routing and redaction all use that value.
    ///
    /// Access is checked on the record type's *name* before its existence, so a client learns
    /// nothing of the types it may not publish.
    pub fn prepare(
        &self,
        client: &Client,
        submission: Submission<'_>,
        limits: &Limits,
    ) -> Result<Prepared, Rejection> {
        let s = submission;
        Progress::at(s.progress, Stage::Starting);
        let type_name = excerpt(s.record_type, MAX_NAME_CHARS);
        if !client.may_publish(s.record_type) {
            return Err(Rejection::new(
                RejectionKind::PermissionDenied,
                format!(
                    "client `{}` may not publish records of type `{type_name}`",
                    client.name(),
                ),
            ));
        }
        let Some(record_type) = self.record_type(s.record_type) else {
            return Err(Rejection::new(
                RejectionKind::NotFound,
                format!(
                    "unknown record type `{type_name}`; ask the hub administrators which types exist"
                ),
            ));
        };
        if s.payload.len() > limits.max_record_bytes {
            return Err(Rejection::new(
                RejectionKind::ResourceExhausted,
                format!(
                    "payload is {} bytes; the limit is {} bytes per record",
                    s.payload.len(),
                    limits.max_record_bytes
                ),
            ));
        }
        check_attributes(s.attributes)?;

        Progress::at(s.progress, Stage::Parsing);
        let data = payload::parse(s.payload).map_err(|e| {
            Rejection::invalid(
                "payload is not valid UTF-8 JSON with one meaning",
                vec![Violation::new(e.field, e.problem)],
            )
        })?;
        // Read before the schema is checked: a refused record is traced by its key too.
        let explicit = s.key.filter(|k| !k.is_empty());
        let key = match (explicit, &record_type.key) {
            (Some(key), _) => Ok(key.to_owned()),
            (None, Some(pointer)) => key_from_payload(&data, pointer),
            (None, None) => Ok(s.record_id.to_string()),
        };
        let known_key = key.as_deref().ok().filter(|k| k.len() <= MAX_KEY_BYTES);
        let schema_version = match s.schema_version {
            0 => record_type.latest_version(),
            v => v,
        };
        let Some(schema) = record_type.schema(schema_version) else {
            return Err(Rejection::invalid(
                format!(
                    "record type `{type_name}` has no schema version {schema_version}; versions 1 to {} exist (0 means the latest)",
                    record_type.latest_version()
                ),
                vec![Violation::new("schema_version", "no such version")],
            )
            .with_key(known_key));
        };
        Progress::at(s.progress, Stage::Schema);
        let (violations, n) = schema.violations(&data, MAX_VIOLATIONS);
        if n > 0 {
            let listed = if n > violations.len() {
                format!("; the first {} are listed", violations.len())
            } else {
                String::new()
            };
            return Err(Rejection {
                kind: RejectionKind::SchemaViolation,
                ..Rejection::invalid(
                    format!(
                        "record does not match the schema of `{type_name}`, version {schema_version} ({n} violation{}{listed})",
                        if n == 1 { "" } else { "s" }
                    ),
                    violations,
                )
                .with_key(known_key)
            });
        }
        let key = key?;
        let key_field = || match (explicit, &record_type.key) {
            (None, Some(pointer)) => pointer.to_string(),
            _ => "key".to_string(),
        };
        if key.len() > MAX_KEY_BYTES {
            return Err(Rejection::invalid(
                "the partition key is too long",
                vec![Violation::new(
                    key_field(),
                    format!("at most {MAX_KEY_BYTES} bytes"),
                )],
            ));
        }
        // Keys are shown to operators (dead letters, traces) and sent on as identifiers.
        if key.chars().any(char::is_control) {
            return Err(Rejection::invalid(
                "the partition key is not printable text",
                vec![Violation::new(
                    key_field(),
                    "no line breaks, tabs or other control characters",
                )],
            ));
        }

        let (targets, unevaluable) = self.targets(&data, s.record_type, client.name(), s.progress);
        if targets.is_empty() {
            let mut message = format!(
                "no route matches this record (type `{type_name}` from client `{}`)",
                client.name()
            );
            for u in &unevaluable {
                message.push_str(&format!(
                    "; route `{}` could not evaluate its condition: {}",
                    u.route, u.error
                ));
            }
            let mut rejection =
                Rejection::new(RejectionKind::FailedPrecondition, message).with_key(Some(&key));
            rejection.unevaluable = unevaluable;
            return Err(rejection);
        }

        Progress::at(s.progress, Stage::Copies);
        let headers = base_headers(
            s.record_id,
            client.name(),
            s.record_type,
            s.time,
            schema_version,
            s.traceparent,
            s.attributes,
        );
        let mut copies = Vec::with_capacity(targets.len());
        for target in targets {
            let value = if target.redact.is_empty() {
                s.payload.clone()
            } else {
                Bytes::from(Redacted::new(&data, &target.redact).to_vec())
            };
            let mut headers = headers.clone();
            headers.push((ROUTE.into(), target.routes.join(",")));
            copies.push(KafkaRecord {
                topic: target.topic.to_owned(),
                key: key.clone(),
                value,
                headers,
                routes: target.routes,
            });
        }
        Ok(Prepared {
            record_id: s.record_id,
            schema_version,
            key,
            copies,
            unevaluable,
        })
    }
}

/// What a record would become, for administrators trying a record out: the verdict of every rule
/// and how each route judged it.
#[derive(Debug)]
pub struct RecordTest {
    /// The copies that would be written, or why the record would be refused.
    pub outcome: Result<Prepared, Rejection>,
    /// Each route and its verdict; empty when the record type is unknown or the payload is not JSON.
    pub routes: Vec<(String, RouteVerdict)>,
}

impl Catalog {
    /// Runs a record through every rule without writing it anywhere.
    pub fn test_record(
        &self,
        client: &Client,
        submission: Submission<'_>,
        limits: &Limits,
    ) -> RecordTest {
        let routes = match payload::parse(submission.payload) {
            Ok(data) if self.record_type(submission.record_type).is_some() => self
                .routes
                .iter()
                .map(|r| {
                    let verdict = r.judge(&data, submission.record_type, client.name());
                    (r.spec.name.clone(), verdict)
                })
                .collect(),
            _ => Vec::new(),
        };
        RecordTest {
            outcome: self.prepare(client, submission, limits),
            routes,
        }
    }
}

fn key_from_payload(data: &Value, pointer: &JsonPointer) -> Result<String, Rejection> {
    let violation = |description: &str| {
        Rejection::invalid(
            "the record's partition key cannot be read",
            vec![Violation::new(pointer.to_string(), description)],
        )
    };
    match pointer.get(data) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(_)) => Err(violation(
            "the partition key is taken from here and must not be empty",
        )),
        Some(_) => Err(violation(
            "the partition key is taken from here and must be a string or a number",
        )),
        None => Err(violation(
            "the partition key is taken from here; the field is missing",
        )),
    }
}

fn check_attributes(attributes: &HashMap<String, String>) -> Result<(), Rejection> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(Rejection::invalid(
            format!(
                "at most {MAX_ATTRIBUTES} attributes per record; got {}",
                attributes.len()
            ),
            vec![],
        ));
    }
    let mut violations = Vec::new();
    for (name, value) in attributes {
        let field = format!("attributes.{}", excerpt(name, 20));
        let problem = if name.is_empty()
            || name.len() > 20
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            "attribute names are 1-20 characters of a-z and 0-9 (CloudEvents)".to_string()
        } else if RESERVED_ATTRIBUTES.contains(&name.as_str()) {
            "a CloudEvents core attribute, set by the hub".into()
        } else if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
            format!("values are at most {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
        } else if value.chars().any(char::is_control) {
            "values are printable text: no line breaks, tabs or other control characters".into()
        } else {
            continue;
        };
        violations.push(Violation::new(field, problem));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Rejection::invalid("invalid attributes", violations))
    }
}

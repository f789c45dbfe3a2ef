//! From a submitted record to the Kafka records to write: access, size, parse (once), schema,
//! partition key, routing, redaction, and the CloudEvents headers of each copy (binary content
//! mode: the payload is the value, attributes are `ce_*` headers).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde_json::Value;
use uuid::Uuid;

use crate::catalog::{Catalog, Client, Route};
use crate::pattern::any_matches;
use crate::redact::{JsonPointer, Redacted};
use crate::rejection::{Rejection, RejectionKind, Violation};

/// Limits on what one record may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 1024 * 1024,
        }
    }
}

/// A record as a client submitted it, with the id and time the gateway gave it.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub record_type: &'a str,
    pub payload: &'a [u8],
    /// Partition key chosen by the caller, if any.
    pub key: Option<&'a str>,
    /// Extra CloudEvents extension attributes.
    pub attributes: &'a HashMap<String, String>,
    /// W3C trace context of the caller, if it sent one.
    pub traceparent: Option<&'a str>,
    /// The schema version to validate against; 0 for the latest.
    pub schema_version: u32,
    pub record_id: Uuid,
    pub time: SystemTime,
}

/// One Kafka record to write.
#[derive(Debug, Clone)]
pub struct Copy<'a> {
    pub topic: String,
    pub key: String,
    /// The payload as received, or a redacted re-serialisation of it.
    pub value: Cow<'a, [u8]>,
    pub headers: Vec<(String, String)>,
    /// The routes that sent the record here.
    pub routes: Vec<String>,
}

/// A route whose condition could not be evaluated for a record: it did not match, and the
/// operator should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnevaluableCondition {
    pub route: String,
    pub error: String,
}

/// A record accepted by every rule, ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    pub record_id: Uuid,
    pub schema_version: u32,
    pub copies: Vec<Copy<'a>>,
    pub unevaluable: Vec<UnevaluableCondition>,
}

/// The namespace of record ids derived from idempotency keys.
const IDEMPOTENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d656b6f_6e67_4000_8000_6964656d706f);

/// The record id for a client's idempotency key: the same pair always gives the same id, so a retry
/// is recognisable, and two clients never collide.
pub fn record_id_for(client: &str, idempotency_key: &str) -> Uuid {
    let mut name = Vec::with_capacity(client.len() + idempotency_key.len() + 1);
    name.extend_from_slice(client.as_bytes());
    name.push(0);
    name.extend_from_slice(idempotency_key.as_bytes());
    Uuid::new_v5(&IDEMPOTENT_ID_NAMESPACE, &name)
}

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
const MAX_ATTRIBUTES: usize = 32;
const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;
/// Partition keys given by the caller; with the attributes this keeps a record's headers and key
/// well inside the room Kafka messages have beside the payload.
const MAX_KEY_BYTES: usize = 4096;

impl Catalog {
    /// Judges a record by this catalog and, when every rule accepts it, returns the Kafka records
    /// to write. The payload is parsed once; schema, routing and redaction all use that one value.
    pub fn prepare<'a>(
        &self,
        client: &Client,
        submission: Submission<'a>,
        limits: &Limits,
    ) -> Result<Prepared<'a>, Rejection> {
        let s = submission;
        let Some(record_type) = self.record_type(s.record_type) else {
            return Err(Rejection::new(
                RejectionKind::NotFound,
                format!(
                    "unknown record type `{}`; ask the hub administrators which types exist",
                    s.record_type
                ),
            ));
        };
        if !client.may_publish(s.record_type) {
            return Err(Rejection::new(
                RejectionKind::PermissionDenied,
                format!(
                    "client `{}` may not publish records of type `{}`",
                    client.name(),
                    s.record_type
                ),
            ));
        }
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

        let data: Value = serde_json::from_slice(s.payload).map_err(|e| {
            Rejection::invalid(
                "payload is not valid UTF-8 JSON",
                vec![Violation {
                    field: String::new(),
                    description: e.to_string(),
                }],
            )
        })?;
        let schema_version = match s.schema_version {
            0 => record_type.latest_version(),
            v => v,
        };
        let Some(schema) = record_type.schema(schema_version) else {
            return Err(Rejection::invalid(
                format!(
                    "record type `{}` has no schema version {schema_version}; versions 1 to {} exist (0 means the latest)",
                    s.record_type,
                    record_type.latest_version()
                ),
                vec![Violation {
                    field: "schema_version".into(),
                    description: "no such version".into(),
                }],
            ));
        };
        let violations = schema.violations(&data);
        if !violations.is_empty() {
            let n = violations.len();
            return Err(Rejection::invalid(
                format!(
                    "record does not match the schema of `{}`, version {schema_version} ({n} violation{})",
                    s.record_type,
                    if n == 1 { "" } else { "s" }
                ),
                violations,
            ));
        }
        let key = match (s.key.filter(|k| !k.is_empty()), &record_type.key) {
            (Some(key), _) => key.to_owned(),
            (None, Some(pointer)) => key_from_payload(&data, pointer)?,
            (None, None) => s.record_id.to_string(),
        };
        if key.len() > MAX_KEY_BYTES {
            let field = match (s.key.filter(|k| !k.is_empty()), &record_type.key) {
                (None, Some(pointer)) => pointer.to_string(),
                _ => "key".to_string(),
            };
            return Err(Rejection::invalid(
                "the partition key is too long",
                vec![Violation {
                    field,
                    description: format!("at most {MAX_KEY_BYTES} bytes"),
                }],
            ));
        }

        // Route. Copies to the same topic from several routes are written once, with the union of
        // their redactions: a field any route wants hidden stays hidden.
        let mut unevaluable = Vec::new();
        let mut targets: Vec<(&str, Vec<String>, Vec<&JsonPointer>)> = Vec::new();
        for route in &self.routes {
            match route.judge(&data, s.record_type, client.name()) {
                RouteVerdict::Matched => {}
                RouteVerdict::Unevaluable(error) => {
                    unevaluable.push(UnevaluableCondition {
                        route: route.spec.name.clone(),
                        error,
                    });
                    continue;
                }
                _ => continue,
            }
            for dest in &route.destinations {
                match targets
                    .iter_mut()
                    .find(|(topic, _, _)| *topic == dest.topic)
                {
                    Some((_, routes, redact)) => {
                        routes.push(route.spec.name.clone());
                        for pointer in &dest.redact {
                            if !redact.contains(&pointer) {
                                redact.push(pointer);
                            }
                        }
                    }
                    None => targets.push((
                        &dest.topic,
                        vec![route.spec.name.clone()],
                        dest.redact.iter().collect(),
                    )),
                }
            }
        }
        if targets.is_empty() {
            let mut message = format!(
                "no route matches this record (type `{}` from client `{}`)",
                s.record_type,
                client.name()
            );
            for u in &unevaluable {
                message.push_str(&format!(
                    "; route `{}` could not evaluate its condition: {}",
                    u.route, u.error
                ));
            }
            return Err(Rejection::new(RejectionKind::FailedPrecondition, message));
        }

        let headers = base_headers(&s, client.name(), schema_version);
        let mut copies = Vec::with_capacity(targets.len());
        for (topic, routes, redact) in targets {
            let value = if redact.is_empty() {
                Cow::Borrowed(s.payload)
            } else {
                Cow::Owned(Redacted::new(&data, &redact).to_vec())
            };
            let mut headers = headers.clone();
            headers.push(("mekong_route".into(), routes.join(",")));
            copies.push(Copy {
                topic: topic.to_owned(),
                key: key.clone(),
                value,
                headers,
                routes,
            });
        }
        Ok(Prepared {
            record_id: s.record_id,
            schema_version,
            copies,
            unevaluable,
        })
    }
}

/// Whether a route takes a record, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteVerdict {
    Matched,
    /// The record type is not among the route's `match.types`.
    OtherType,
    /// The publishing client is not among the route's `match.sources`.
    OtherSource,
    /// The condition evaluated to false.
    ConditionFalse,
    /// The condition could not be evaluated (a missing field, a type mismatch): no match.
    Unevaluable(String),
}

impl Route {
    /// Judges one record (already parsed) against this route.
    pub fn judge(&self, data: &Value, record_type: &str, source: &str) -> RouteVerdict {
        let spec = &self.spec.matcher;
        if !any_matches(&self.types, record_type) {
            return RouteVerdict::OtherType;
        }
        if !(spec.sources.is_empty() || spec.sources.iter().any(|c| c == source)) {
            return RouteVerdict::OtherSource;
        }
        match &self.condition {
            None => RouteVerdict::Matched,
            Some(condition) => match condition.evaluate(data, record_type, source) {
                Ok(true) => RouteVerdict::Matched,
                Ok(false) => RouteVerdict::ConditionFalse,
                Err(error) => RouteVerdict::Unevaluable(error),
            },
        }
    }
}

impl Catalog {
    /// The partition key a record of this type would get from its payload, if it can be read: for
    /// tracing records that were refused.
    pub fn key_of(&self, record_type: &str, payload: &[u8]) -> Option<String> {
        let pointer = self.record_type(record_type)?.key.as_ref()?;
        let data: Value = serde_json::from_slice(payload).ok()?;
        match pointer.get(&data)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// What a record would become, for administrators trying a record out: the verdict of every rule
/// and how each route judged it.
#[derive(Debug)]
pub struct RecordTest<'a> {
    /// The copies that would be written, or why the record would be refused.
    pub outcome: Result<Prepared<'a>, Rejection>,
    /// Each route and its verdict; empty when the record type is unknown or the payload is not JSON.
    pub routes: Vec<(String, RouteVerdict)>,
}

impl Catalog {
    /// Runs a record through every rule without writing it anywhere.
    pub fn test_record<'a>(
        &self,
        client: &Client,
        submission: Submission<'a>,
        limits: &Limits,
    ) -> RecordTest<'a> {
        let routes = match serde_json::from_slice::<Value>(submission.payload) {
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
            "the record's partition key is missing or unusable",
            vec![Violation {
                field: pointer.to_string(),
                description: description.into(),
            }],
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
        let field = format!("attributes.{name}");
        if name.is_empty()
            || name.len() > 20
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            violations.push(Violation {
                field,
                description: "attribute names are 1-20 characters of a-z and 0-9 (CloudEvents)"
                    .into(),
            });
        } else if RESERVED_ATTRIBUTES.contains(&name.as_str()) {
            violations.push(Violation {
                field,
                description: "a CloudEvents core attribute, set by the hub".into(),
            });
        } else if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
            violations.push(Violation {
                field,
                description: format!("values are at most {MAX_ATTRIBUTE_VALUE_BYTES} bytes"),
            });
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Rejection::invalid("invalid attributes", violations))
    }
}

/// The headers every copy of a record carries.
fn base_headers(s: &Submission<'_>, source: &str, schema_version: u32) -> Vec<(String, String)> {
    let mut headers = vec![
        ("ce_specversion".to_string(), "1.0".to_string()),
        ("ce_id".into(), s.record_id.to_string()),
        ("ce_source".into(), source.to_owned()),
        ("ce_type".into(), s.record_type.to_owned()),
        (
            "ce_time".into(),
            humantime::format_rfc3339_millis(s.time).to_string(),
        ),
        ("content-type".into(), "application/json".into()),
        (
            "ce_dataschema".into(),
            format!("urn:mekong:schema:{}:{schema_version}", s.record_type),
        ),
        ("mekong_schema_version".into(), schema_version.to_string()),
    ];
    if let Some(tp) = s.traceparent.filter(|tp| is_traceparent(tp)) {
        headers.push(("traceparent".into(), tp.to_owned()));
    }
    let mut extensions: Vec<_> = s.attributes.iter().collect();
    extensions.sort();
    headers.extend(
        extensions
            .into_iter()
            .map(|(k, v)| (format!("ce_{k}"), v.clone())),
    );
    headers
}

/// A record's CloudEvents attributes, read back from its Kafka headers (binary content mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudEvent {
    pub id: String,
    pub record_type: String,
    pub source: String,
    pub time: String,
    /// Every other attribute: `ce_<name>` as `<name>`, `content-type` as `datacontenttype`, and
    /// `traceparent`.
    pub attributes: BTreeMap<String, String>,
}

impl CloudEvent {
    /// Reads the attributes from Kafka headers; headers that are not CloudEvents are left out.
    pub fn from_headers<'h>(headers: impl IntoIterator<Item = (&'h str, &'h [u8])>) -> CloudEvent {
        let mut event = CloudEvent::default();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value).into_owned();
            match name {
                "ce_id" => event.id = value,
                "ce_type" => event.record_type = value,
                "ce_source" => event.source = value,
                "ce_time" => event.time = value,
                "content-type" => {
                    event.attributes.insert("datacontenttype".into(), value);
                }
                "traceparent" => {
                    event.attributes.insert("traceparent".into(), value);
                }
                _ => {
                    if let Some(attribute) = name.strip_prefix("ce_") {
                        event.attributes.insert(attribute.to_owned(), value);
                    }
                }
            }
        }
        event
    }
}

/// `<version>-<trace id>-<parent id>-<flags>` as W3C Trace Context writes it: lower-case hex of 2,
/// 32, 16 and 2 digits; version `ff` and all-zero ids are invalid.
pub fn is_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[0] != "ff"
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::city;

    fn submit<'a>(
        record_type: &'a str,
        payload: &'a [u8],
        attributes: &'a HashMap<String, String>,
    ) -> Submission<'a> {
        Submission {
            record_type,
            payload,
            key: None,
            attributes,
            traceparent: None,
            schema_version: 0,
            record_id: Uuid::from_u128(7),
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123),
        }
    }

    fn header<'c>(copy: &'c Copy<'_>, name: &str) -> Option<&'c str> {
        copy.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    const CITIZEN: &[u8] =
        br#"{"MaHoSo":"H29-0001", "LoaiDoiTuong":1, "SoDienThoai":"0901234567", "Email":"a@b.vn", "Big":12345678901234567890, "F":1.0}"#;

    #[test]
    fn a_valid_record_is_routed_keyed_and_redacted_per_copy() {
        let c = city();
        let none = HashMap::new();
        let p = c
            .prepare(
                c.client("q1").unwrap(),
                submit("dossier.sync", CITIZEN, &none),
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(p.unevaluable, vec![]);
        assert_eq!(p.copies.len(), 2);
        let (city_copy, national) = (&p.copies[0], &p.copies[1]);
        assert_eq!(
            (city_copy.topic.as_str(), national.topic.as_str()),
            ("city.records", "dvcqg.dossier")
        );
        assert_eq!(city_copy.key, "H29-0001");
        // Unredacted: the bytes as received. Redacted: exactly those fields gone, numbers untouched.
        assert_eq!(&*city_copy.value, CITIZEN);
        assert_eq!(
            std::str::from_utf8(&national.value).unwrap(),
            r#"{"MaHoSo":"H29-0001","LoaiDoiTuong":1,"Big":12345678901234567890,"F":1.0}"#
        );
        assert_eq!(
            header(national, "ce_id"),
            Some("00000000-0000-0000-0000-000000000007")
        );
        assert_eq!(header(national, "ce_source"), Some("q1"));
        assert_eq!(header(national, "ce_type"), Some("dossier.sync"));
        assert_eq!(header(national, "ce_specversion"), Some("1.0"));
        assert_eq!(
            header(national, "ce_time"),
            Some("2026-11-18T11:06:40.123Z")
        );
        assert_eq!(header(national, "content-type"), Some("application/json"));
        assert_eq!(
            header(national, "ce_dataschema"),
            Some("urn:mekong:schema:dossier.sync:1")
        );
        assert_eq!(header(national, "mekong_route"), Some("national"));
    }

    #[test]
    fn a_condition_that_cannot_be_evaluated_does_not_match_and_is_reported() {
        let c = city();
        let none = HashMap::new();
        // LoaiDoiTuong 2 (a business): only the city route.
        let business = br#"{"MaHoSo":"H29-2","LoaiDoiTuong":2}"#;
        let p = c
            .prepare(
                c.client("q1").unwrap(),
                submit("dossier.sync", business, &none),
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(
            p.copies
                .iter()
                .map(|c| c.topic.as_str())
                .collect::<Vec<_>>(),
            ["city.records"]
        );
        assert_eq!(p.unevaluable, vec![]);

        // The condition's field is missing: evaluation fails, the route is skipped, and it is reported.
        let mut c2 = city();
        c2.record_types.get_mut("dossier.sync").unwrap().schemas =
            vec![crate::schema::Schema::compile(&serde_json::json!({})).unwrap()];
        let odd = br#"{"MaHoSo":"H29-3"}"#;
        let p = c2
            .prepare(
                c2.client("q1").unwrap(),
                submit("dossier.sync", odd, &none),
                &Limits::default(),
            )
            .unwrap();
        assert_eq!(p.copies.len(), 1);
        assert_eq!(p.unevaluable.len(), 1);
        assert_eq!(p.unevaluable[0].route, "national");
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let c = city();
        let q1 = c.client("q1").unwrap();
        let none = HashMap::new();
        let kind = |rt: &str, payload: &[u8], limits: Limits| {
            c.prepare(q1, submit(rt, payload, &none), &limits)
                .unwrap_err()
        };

        assert_eq!(
            kind("tax.filed", b"{}", Limits::default()).kind,
            RejectionKind::NotFound
        );
        assert_eq!(
            kind("payment.completed", b"{}", Limits::default()).kind,
            RejectionKind::PermissionDenied
        );
        let big = kind(
            "dossier.sync",
            CITIZEN,
            Limits {
                max_record_bytes: 10,
            },
        );
        assert_eq!(big.kind, RejectionKind::ResourceExhausted);
        let not_json = kind("dossier.sync", b"{\"MaHoSo\": ", Limits::default());
        assert_eq!(not_json.kind, RejectionKind::InvalidArgument);
        assert_eq!(not_json.violations[0].field, "");

        let bad = kind(
            "dossier.sync",
            br#"{"LoaiDoiTuong":"x","Email":"nope"}"#,
            Limits::default(),
        );
        assert_eq!(bad.kind, RejectionKind::InvalidArgument);
        let mut fields: Vec<_> = bad.violations.iter().map(|v| v.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["/Email", "/LoaiDoiTuong", "/MaHoSo"]);
    }

    #[test]
    fn a_record_no_route_takes_is_refused_not_dropped() {
        let (docs, _) = crate::resource::parse_documents(
            "x",
            &crate::catalog::tests::CITY.replace(
                "types: [\"dossier.*\", \"payment.*\"]",
                "types: [\"payment.*\"]",
            ),
        );
        let c = Catalog::build(docs).unwrap();
        let none = HashMap::new();
        let mut s = submit("dossier.sync", br#"{"MaHoSo":"A","LoaiDoiTuong":2}"#, &none);
        s.key = Some("explicit");
        let r = c
            .prepare(c.client("q1").unwrap(), s, &Limits::default())
            .unwrap_err();
        assert_eq!(r.kind, RejectionKind::FailedPrecondition);
        assert!(r.message.contains("no route matches"), "{}", r.message);
    }

    #[test]
    fn explicit_keys_attributes_and_traceparent() {
        let c = city();
        let attrs = HashMap::from([("district".to_string(), "q1".to_string())]);
        let mut s = submit("dossier.sync", CITIZEN, &attrs);
        s.key = Some("my-key");
        s.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let p = c
            .prepare(c.client("q1").unwrap(), s, &Limits::default())
            .unwrap();
        assert_eq!(p.copies[0].key, "my-key");
        assert_eq!(header(&p.copies[0], "ce_district"), Some("q1"));
        assert_eq!(header(&p.copies[0], "traceparent"), s.traceparent);

        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        ] {
            s.traceparent = Some(bad);
            let p = c
                .prepare(c.client("q1").unwrap(), s, &Limits::default())
                .unwrap();
            assert_eq!(
                header(&p.copies[0], "traceparent"),
                None,
                "{bad} is not passed on"
            );
        }

        let bad = HashMap::from([
            ("id".to_string(), "x".to_string()),
            ("Bad-Name".to_string(), "y".to_string()),
        ]);
        let r = c
            .prepare(
                c.client("q1").unwrap(),
                submit("dossier.sync", CITIZEN, &bad),
                &Limits::default(),
            )
            .unwrap_err();
        assert_eq!(r.kind, RejectionKind::InvalidArgument);
        assert_eq!(r.violations.len(), 2);
    }

    #[test]
    fn headers_read_back_into_the_same_cloud_event() {
        let c = city();
        let attrs = HashMap::from([("district".to_string(), "q1".to_string())]);
        let p = c
            .prepare(
                c.client("q1").unwrap(),
                submit("dossier.sync", CITIZEN, &attrs),
                &Limits::default(),
            )
            .unwrap();
        let copy = &p.copies[0];
        let event =
            CloudEvent::from_headers(copy.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
        assert_eq!(event.id, "00000000-0000-0000-0000-000000000007");
        assert_eq!(
            (event.record_type.as_str(), event.source.as_str()),
            ("dossier.sync", "q1")
        );
        assert_eq!(event.time, "2026-11-18T11:06:40.123Z");
        assert_eq!(
            event.attributes.get("district").map(String::as_str),
            Some("q1")
        );
        assert_eq!(
            event.attributes.get("datacontenttype").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            event.attributes.get("specversion").map(String::as_str),
            Some("1.0")
        );
        assert!(
            !event.attributes.contains_key("mekong_route"),
            "Mekong's own headers are not attributes"
        );
    }

    #[test]
    fn a_missing_key_field_is_a_violation_at_its_pointer() {
        let mut c = city();
        c.record_types.get_mut("dossier.sync").unwrap().schemas =
            vec![crate::schema::Schema::compile(&serde_json::json!({})).unwrap()];
        let none = HashMap::new();
        let r = c
            .prepare(
                c.client("q1").unwrap(),
                submit("dossier.sync", br#"{"LoaiDoiTuong":2}"#, &none),
                &Limits::default(),
            )
            .unwrap_err();
        assert_eq!(r.violations[0].field, "/MaHoSo");
    }

    #[test]
    fn idempotent_record_ids_are_stable_and_per_client() {
        assert_eq!(record_id_for("q1", "k-1"), record_id_for("q1", "k-1"));
        assert_ne!(record_id_for("q1", "k-1"), record_id_for("q2", "k-1"));
        assert_ne!(record_id_for("q1", "k-1"), record_id_for("q1k", "-1"));
    }
}

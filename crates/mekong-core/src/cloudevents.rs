//! CloudEvents on Kafka, binary content mode, as Mekong writes and reads them: the payload is the
//! record's value and the attributes are `ce_*` headers. Every header name Mekong puts on a record
//! is written here, once; the gateway, the adapters and the tools read them through this module.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// The CloudEvents attributes every record carries, as Kafka header names.
pub const SPECVERSION: &str = "ce_specversion";
pub const ID: &str = "ce_id";
pub const SOURCE: &str = "ce_source";
pub const TYPE: &str = "ce_type";
pub const TIME: &str = "ce_time";
pub const DATASCHEMA: &str = "ce_dataschema";
/// `datacontenttype` travels as the Kafka binding's `content-type` header.
pub const CONTENT_TYPE: &str = "content-type";
/// The W3C trace context of the publisher (or one started by the hub).
pub const TRACEPARENT: &str = "traceparent";
/// Extension attributes: `ce_<name>`.
pub const ATTRIBUTE_PREFIX: &str = "ce_";
/// Mekong's own headers: the routes that sent a copy, and the schema version it was validated by.
pub const ROUTE: &str = "mekong_route";
pub const SCHEMA_VERSION: &str = "mekong_schema_version";

/// The content type of every payload.
pub const JSON: &str = "application/json";

/// The headers every copy of a record carries: the core attributes, the schema version, the trace
/// context, and the caller's extension attributes sorted by name.
pub(crate) fn base_headers(
    record_id: uuid::Uuid,
    source: &str,
    record_type: &str,
    time: SystemTime,
    schema_version: u32,
    traceparent: Option<&str>,
    attributes: &HashMap<String, String>,
) -> Vec<(String, String)> {
    let mut headers = vec![
        (SPECVERSION.to_string(), "1.0".to_string()),
        (ID.into(), record_id.to_string()),
        (SOURCE.into(), source.to_owned()),
        (TYPE.into(), record_type.to_owned()),
        (
            TIME.into(),
            humantime::format_rfc3339_millis(time).to_string(),
        ),
        (CONTENT_TYPE.into(), JSON.into()),
        (
            DATASCHEMA.into(),
            format!("urn:mekong:schema:{record_type}:{schema_version}"),
        ),
        (SCHEMA_VERSION.into(), schema_version.to_string()),
    ];
    if let Some(tp) = traceparent.filter(|tp| is_traceparent(tp)) {
        headers.push((TRACEPARENT.into(), tp.to_owned()));
    }
    let mut extensions: Vec<_> = attributes.iter().collect();
    extensions.sort();
    headers.extend(
        extensions
            .into_iter()
            .map(|(k, v)| (format!("{ATTRIBUTE_PREFIX}{k}"), v.clone())),
    );
    headers
}

/// The subject of an event: for a deadline event, the dossier's key.
pub const SUBJECT: &str = "ce_subject";

/// The headers of an event the hub makes itself (a deadline event): the core attributes and the
/// subject it is about, with no schema version or trace.
pub fn event_headers(
    id: &str,
    source: &str,
    event_type: &str,
    subject: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    vec![
        (SPECVERSION.to_string(), "1.0".to_string()),
        (ID.into(), id.to_owned()),
        (SOURCE.into(), source.to_owned()),
        (TYPE.into(), event_type.to_owned()),
        (SUBJECT.into(), subject.to_owned()),
        (
            TIME.into(),
            humantime::format_rfc3339_millis(time).to_string(),
        ),
        (CONTENT_TYPE.into(), JSON.into()),
    ]
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
                ID => event.id = value,
                TYPE => event.record_type = value,
                SOURCE => event.source = value,
                TIME => event.time = value,
                CONTENT_TYPE => {
                    event.attributes.insert("datacontenttype".into(), value);
                }
                TRACEPARENT => {
                    event.attributes.insert(TRACEPARENT.into(), value);
                }
                _ => {
                    if let Some(attribute) = name.strip_prefix(ATTRIBUTE_PREFIX) {
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

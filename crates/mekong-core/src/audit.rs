//! The audit trail's events, as written to `_mekong.audit` (JSON, one event per Kafka record, keyed
//! by what the event is about, CloudEvents headers with `ce_type` = `mekong.<event>`): who did what,
//! when, and what it changed. One type, [`AuditEvent`], is what every writer serialises and every
//! reader (the lineage index, `mekong trace`) deserialises.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::evidence::{AuditKey, SEAL_HEADER};
use crate::identity::AuthenticatedBy;
use crate::record::KafkaRecord;
use crate::state::{Plan, Verdict};

/// The audit topic.
pub const AUDIT_TOPIC: &str = "_mekong.audit";

/// Every event of the audit trail; `event` names it in the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum AuditEvent {
    /// An accepted change to a resource.
    #[serde(rename = "resource.changed")]
    ResourceChanged(ResourceEvent),
    /// A refused change to a resource.
    #[serde(rename = "resource.rejected")]
    ResourceRejected(ResourceEvent),
    /// A record accepted: written with its copies and acknowledged with them, before the caller
    /// is answered OK. Its copies carry their topic, routes and SHA-256, not yet where they landed.
    #[serde(rename = "record.accepted")]
    RecordAccepted(RecordEvent),
    /// Where the copies of an accepted record landed (partition and offset), written after Kafka
    /// acknowledged them, without waiting: a crash may lose it, never the `record.accepted` event.
    #[serde(rename = "record.placed")]
    RecordPlaced(RecordEvent),
    /// A record refused (nothing written).
    #[serde(rename = "record.rejected")]
    RecordRejected(RecordEvent),
    /// A record some of whose copies landed before another failed.
    #[serde(rename = "record.partial")]
    RecordPartial(RecordEvent),
    #[serde(rename = "delivery.delivered")]
    Delivered(DeliveryEvent),
    #[serde(rename = "delivery.retried")]
    Retried(DeliveryEvent),
    #[serde(rename = "delivery.dead_lettered")]
    DeadLettered(DeliveryEvent),
    #[serde(rename = "delivery.replayed")]
    Replayed(DeliveryEvent),
    /// A person signing in to the console (or refused), or out.
    #[serde(rename = "console.session")]
    ConsoleSession(SessionEvent),
}

impl AuditEvent {
    /// The event's name, as `event` in its JSON: `record.accepted`, `delivery.retried` ...
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::ResourceChanged(_) => "resource.changed",
            AuditEvent::ResourceRejected(_) => "resource.rejected",
            AuditEvent::RecordAccepted(_) => "record.accepted",
            AuditEvent::RecordPlaced(_) => "record.placed",
            AuditEvent::RecordRejected(_) => "record.rejected",
            AuditEvent::RecordPartial(_) => "record.partial",
            AuditEvent::Delivered(_) => "delivery.delivered",
            AuditEvent::Retried(_) => "delivery.retried",
            AuditEvent::DeadLettered(_) => "delivery.dead_lettered",
            AuditEvent::Replayed(_) => "delivery.replayed",
            AuditEvent::ConsoleSession(_) => "console.session",
        }
    }

    pub fn time(&self) -> &str {
        match self {
            AuditEvent::ResourceChanged(e) | AuditEvent::ResourceRejected(e) => &e.time,
            AuditEvent::RecordAccepted(e)
            | AuditEvent::RecordPlaced(e)
            | AuditEvent::RecordRejected(e)
            | AuditEvent::RecordPartial(e) => &e.time,
            AuditEvent::Delivered(e)
            | AuditEvent::Retried(e)
            | AuditEvent::DeadLettered(e)
            | AuditEvent::Replayed(e) => &e.time,
            AuditEvent::ConsoleSession(e) => &e.time,
        }
    }

    /// The record the event is about, for events about records.
    pub fn record_id(&self) -> Option<&str> {
        match self {
            AuditEvent::ResourceChanged(_)
            | AuditEvent::ResourceRejected(_)
            | AuditEvent::ConsoleSession(_) => None,
            AuditEvent::RecordAccepted(e)
            | AuditEvent::RecordPlaced(e)
            | AuditEvent::RecordRejected(e)
            | AuditEvent::RecordPartial(e) => Some(&e.record_id),
            AuditEvent::Delivered(e)
            | AuditEvent::Retried(e)
            | AuditEvent::DeadLettered(e)
            | AuditEvent::Replayed(e) => Some(&e.record_id),
        }
    }

    /// The partition key of the record the event is about, when known.
    pub fn key(&self) -> Option<&str> {
        let key = match self {
            AuditEvent::ResourceChanged(_)
            | AuditEvent::ResourceRejected(_)
            | AuditEvent::ConsoleSession(_) => return None,
            AuditEvent::RecordAccepted(e)
            | AuditEvent::RecordPlaced(e)
            | AuditEvent::RecordRejected(e)
            | AuditEvent::RecordPartial(e) => &e.key,
            AuditEvent::Delivered(e)
            | AuditEvent::Retried(e)
            | AuditEvent::DeadLettered(e)
            | AuditEvent::Replayed(e) => &e.key,
        };
        Some(key.as_str()).filter(|k| !k.is_empty())
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("audit events serialise to JSON")
    }

    pub fn from_json(json: &[u8]) -> Result<AuditEvent, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The event as the Kafka record to write to the audit topic, with `id` as its CloudEvents id,
    /// keyed by what it is about (a record id, or a resource's `Kind/name`), sealed with the
    /// instance's audit key when it has one.
    pub fn to_record(&self, id: uuid::Uuid, seal: Option<&AuditKey>) -> KafkaRecord {
        let key = match self {
            AuditEvent::ResourceChanged(e) | AuditEvent::ResourceRejected(e) => {
                format!("{}/{}", e.kind, e.name)
            }
            AuditEvent::ConsoleSession(e) => format!("console/{}", e.client),
            _ => self.record_id().unwrap_or_default().to_owned(),
        };
        let value = self.to_json();
        let mut headers = audit_headers(id, self.name(), self.time());
        if let Some(seal) = seal {
            headers.push((SEAL_HEADER.to_owned(), seal.seal(&id.to_string(), &value)));
        }
        KafkaRecord {
            topic: AUDIT_TOPIC.to_owned(),
            key,
            value: Bytes::from(value),
            headers,
            routes: Vec::new(),
        }
    }

    /// The events of a judged change: one per resource it changed (or would have, when rejected).
    /// Resources left unchanged are not events.
    pub fn from_plan(plan: &Plan, action: &str, actor: &Actor, time: &str) -> Vec<AuditEvent> {
        let rejected = plan.verdict != Verdict::Accepted;
        let all_problems: Vec<String> = plan.problems.iter().map(|p| p.to_string()).collect();
        plan.changes
            .iter()
            .filter(|c| rejected || c.outcome != crate::state::Outcome::Unchanged)
            .map(|c| {
                let event = ResourceEvent {
                    time: time.to_owned(),
                    actor: actor.name.clone(),
                    authenticated: actor.authenticated.clone(),
                    action: action.to_owned(),
                    outcome: if rejected {
                        "rejected".into()
                    } else {
                        c.outcome.as_str().into()
                    },
                    kind: c.key.kind.to_string(),
                    name: c.key.name.clone(),
                    old_version: c.old.as_ref().map(|o| o.version),
                    new_version: c.new.as_ref().map(|n| n.version),
                    old_sha256: c.old.as_ref().map(|o| o.digest()),
                    new_sha256: c.new.as_ref().map(|n| n.digest()),
                    problems: if !c.problems.is_empty() {
                        c.problems.clone()
                    } else if rejected {
                        all_problems.clone()
                    } else {
                        Vec::new()
                    },
                };
                if rejected {
                    AuditEvent::ResourceRejected(event)
                } else {
                    AuditEvent::ResourceChanged(event)
                }
            })
            .collect()
    }
}

/// Who asks for a change: a client, and how its call was authenticated (none for the hub's own
/// changes, such as seeding at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub authenticated: Option<AuthenticatedBy>,
}

impl Actor {
    /// The hub itself, or a tool, as `name`.
    pub fn named(name: &str) -> Actor {
        Actor {
            name: name.to_owned(),
            authenticated: None,
        }
    }
}

/// A change to a resource, accepted or rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceEvent {
    pub time: String,
    /// The client that asked for the change.
    pub actor: String,
    /// How its call was authenticated (key id, certificate fingerprint and subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<AuthenticatedBy>,
    /// `apply` or `delete`.
    pub action: String,
    /// created, updated, deleted or rejected.
    pub outcome: String,
    pub kind: String,
    pub name: String,
    pub old_version: Option<u64>,
    pub new_version: Option<u64>,
    /// SHA-256 of each side as stored (hex).
    pub old_sha256: Option<String>,
    pub new_sha256: Option<String>,
    /// Why a rejected change was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A console session begun, refused or ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEvent {
    pub time: String,
    /// The client whose key was presented; empty when the key identified none.
    pub client: String,
    /// `signed_in`, `refused`, `signed_out`, or `revealed` (a person saw a copy's personal data).
    pub outcome: String,
    /// The console role of the session (`admin`, `auditor`), when one began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The address the request came from.
    pub address: String,
    /// Why a sign-in was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was revealed: the record and its copy (`<record id> <topic>/<partition>/<offset>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<AuthenticatedBy>,
}

/// What happened to one delivery of a record by an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryEvent {
    pub time: String,
    pub adapter: String,
    /// The record's id (`ce_id`), its type, its partition key.
    pub record_id: String,
    pub record_type: String,
    pub key: String,
    /// Where the adapter read it.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Attempts made so far.
    pub attempt: u32,
    /// The target's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed, or was dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a retry: how long until the next attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// For a replay: the admin client that asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// The CloudEvents headers of an audit event (binary content mode, like every record the hub
/// writes): `ce_type` is `mekong.<event>`, `ce_source` `mekong`.
pub fn audit_headers(id: uuid::Uuid, event: &str, time: &str) -> Vec<(String, String)> {
    use crate::cloudevents as ce;
    vec![
        (ce::SPECVERSION.into(), "1.0".into()),
        (ce::ID.into(), id.to_string()),
        (ce::SOURCE.into(), "mekong".into()),
        (ce::TYPE.into(), format!("mekong.{event}")),
        (ce::TIME.into(), time.to_owned()),
        (ce::CONTENT_TYPE.into(), ce::JSON.into()),
    ]
}

/// A record the hub received: accepted (with where each copy landed) or rejected (with why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordEvent {
    pub time: String,
    pub record_id: String,
    pub record_type: String,
    /// The publishing client.
    pub source: String,
    /// How its call was authenticated (key id, certificate fingerprint and subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<AuthenticatedBy>,
    /// The partition key (for a rejected record: as far as it could be read).
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<PlacedCopy>,
    /// For a rejection: the gRPC code name, the message and the violations (without values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}

/// One routed copy of a record: its topic and routes, its digest, and where it landed (partition
/// and offset -1 until Kafka acknowledged it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacedCopy {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub routes: Vec<String>,
    /// SHA-256 (hex) of the copy's value as written: a copy found anywhere later can be shown to
    /// be this one. Absent in events of older hubs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl PlacedCopy {
    /// A copy about to be written: no partition or offset yet.
    pub fn unplaced(copy: &KafkaRecord) -> PlacedCopy {
        use sha2::Digest as _;
        PlacedCopy {
            topic: copy.topic.clone(),
            partition: -1,
            offset: -1,
            routes: copy.routes.clone(),
            sha256: Some(hex::encode(sha2::Sha256::digest(&copy.value))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_written_with_their_name_in_the_json() {
        let event = AuditEvent::RecordRejected(RecordEvent {
            time: "2026-12-01T00:00:00.000Z".into(),
            record_id: "r1".into(),
            record_type: "dossier.sync".into(),
            source: "q1".into(),
            authenticated: Some(AuthenticatedBy {
                by: "certificate".into(),
                key_id: None,
                certificate_sha256: Some("ab".repeat(32)),
                certificate_subject: Some("CN=motcua-q1".into()),
            }),
            key: "H29-1".into(),
            schema_version: None,
            copies: vec![],
            reason: Some("invalid_argument".into()),
            message: Some("no".into()),
            violations: vec!["/MaHoSo: value is not a string".into()],
        });
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(json["event"], "record.rejected");
        assert_eq!(json["recordId"], "r1");
        assert_eq!(AuditEvent::from_json(&event.to_json()).unwrap(), event);
        assert_eq!(
            (event.record_id(), event.key()),
            (Some("r1"), Some("H29-1"))
        );
        let record = event.to_record(uuid::Uuid::nil(), None);
        assert_eq!(record.key, "r1");
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("ce_type").as_deref(), Some("mekong.record.rejected"));
    }

    #[test]
    fn a_delivery_event_of_an_older_writer_without_optional_fields_reads() {
        let json = br#"{"event":"delivery.delivered","time":"t","adapter":"a","recordId":"r","recordType":"x","key":"k","topic":"t","partition":0,"offset":1,"attempt":1}"#;
        let event = AuditEvent::from_json(json).unwrap();
        assert_eq!(event.name(), "delivery.delivered");
        assert_eq!(event.record_id(), Some("r"));
    }
}

//! The audit trail's events, as written to `_mekong.audit` (JSON, one event per Kafka record, keyed
//! by what the event is about). Who did what, when, and what it changed.

use serde::Serialize;

use crate::state::{Plan, Verdict};

/// The audit topic.
pub const AUDIT_TOPIC: &str = "_mekong.audit";

/// A change to a resource, accepted or rejected.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceEvent {
    /// Always `resource.changed` or `resource.rejected`.
    pub event: &'static str,
    pub time: String,
    /// The client that asked for the change.
    pub actor: String,
    /// `apply` or `delete`.
    pub action: &'static str,
    /// created, updated, deleted or rejected.
    pub outcome: &'static str,
    pub kind: String,
    pub name: String,
    pub old_version: Option<u64>,
    pub new_version: Option<u64>,
    /// SHA-256 of each side as stored (hex).
    pub old_sha256: Option<String>,
    pub new_sha256: Option<String>,
    /// Why a rejected change was refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl ResourceEvent {
    /// The events of a judged change: one per resource it changed (or would have, when rejected).
    /// Resources left unchanged are not events.
    pub fn from_plan(
        plan: &Plan,
        action: &'static str,
        actor: &str,
        time: &str,
    ) -> Vec<ResourceEvent> {
        let rejected = plan.verdict != Verdict::Accepted;
        let all_problems: Vec<String> = plan.problems.iter().map(|p| p.to_string()).collect();
        plan.changes
            .iter()
            .filter(|c| rejected || c.outcome != crate::state::Outcome::Unchanged)
            .map(|c| ResourceEvent {
                event: if rejected {
                    "resource.rejected"
                } else {
                    "resource.changed"
                },
                time: time.to_owned(),
                actor: actor.to_owned(),
                action,
                outcome: if rejected {
                    "rejected"
                } else {
                    c.outcome.as_str()
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
            })
            .collect()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("audit events serialise to JSON")
    }
}

/// What happened to one delivery of a record by an adapter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryEvent {
    /// `delivery.delivered`, `delivery.retried`, `delivery.dead_lettered` or `delivery.replayed`.
    pub event: &'static str,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed, or was dead-lettered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a retry: how long until the next attempt, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// For a replay: the admin client that asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl DeliveryEvent {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("audit events serialise to JSON")
    }
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordEvent {
    /// `record.accepted` or `record.rejected`.
    pub event: &'static str,
    pub time: String,
    pub record_id: String,
    pub record_type: String,
    /// The publishing client.
    pub source: String,
    /// The partition key (for a rejected record: as far as it could be read).
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<PlacedCopy>,
    /// For a rejection: the gRPC code name, the message and the violations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}

/// Where one routed copy of a record landed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedCopy {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub routes: Vec<String>,
}

impl RecordEvent {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("audit events serialise to JSON")
    }
}

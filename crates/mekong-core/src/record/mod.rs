//! A record on its way through the hub: what a client submitted, how it is judged (access, size,
//! payload, schema, key, routes, redaction: [`Catalog::prepare`](crate::Catalog::prepare)), and
//! the Kafka records it becomes.

mod prepare;
mod routing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use uuid::Uuid;

pub use prepare::{MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES, MAX_KEY_BYTES, RecordTest};
pub use routing::RouteVerdict;

/// Limits on what one record may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_record_bytes: usize,
}

impl Limits {
    /// The largest payload when nobody says otherwise: 1 MiB.
    pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: Limits::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// A record as a client submitted it, with the id and time the gateway gave it.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub record_type: &'a str,
    /// The payload as received; copies that are not redacted share it.
    pub payload: &'a Bytes,
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
    /// Where judging reports how far it has come, if anyone watches.
    pub progress: Option<&'a Progress>,
}

/// One Kafka record to write: a routed copy of a record, an audit event, a dead letter.
#[derive(Debug, Clone)]
pub struct KafkaRecord {
    pub topic: String,
    pub key: String,
    /// The payload as received (shared, not copied), or a redacted re-serialisation of it.
    pub value: Bytes,
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
pub struct Prepared {
    pub record_id: Uuid,
    pub schema_version: u32,
    /// The partition key every copy carries.
    pub key: String,
    pub copies: Vec<KafkaRecord>,
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

/// Where the judging of one record is, readable from another thread: when judging takes too long,
/// the gateway answers without waiting and names the rule that was running.
#[derive(Debug, Default)]
pub struct Progress(AtomicU32);

/// A step of judging a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not started, or checking access and sizes.
    Starting,
    /// Parsing the payload.
    Parsing,
    /// Validating against the record type's schema.
    Schema,
    /// Evaluating the condition of the route at this position in the catalog.
    Condition(usize),
    /// Building the copies (headers, redaction).
    Copies,
}

const CONDITION_BASE: u32 = 16;

impl Progress {
    pub fn stage(&self) -> Stage {
        match self.0.load(Ordering::Relaxed) {
            1 => Stage::Parsing,
            2 => Stage::Schema,
            3 => Stage::Copies,
            n if n >= CONDITION_BASE => Stage::Condition((n - CONDITION_BASE) as usize),
            _ => Stage::Starting,
        }
    }

    /// Records that judging has reached `stage`.
    pub fn enter(&self, stage: Stage) {
        let n = match stage {
            Stage::Starting => 0,
            Stage::Parsing => 1,
            Stage::Schema => 2,
            Stage::Copies => 3,
            Stage::Condition(i) => CONDITION_BASE.saturating_add(i as u32),
        };
        self.0.store(n, Ordering::Relaxed);
    }

    /// [`Progress::enter`], when someone watches.
    pub(crate) fn at(progress: Option<&Progress>, stage: Stage) {
        if let Some(progress) = progress {
            progress.enter(stage);
        }
    }
}

impl Stage {
    /// The rule at work in this stage, in words, for a record of `record_type` judged by `catalog`.
    pub fn describe(self, catalog: &crate::Catalog, record_type: &str) -> String {
        match self {
            Stage::Starting => "checking access".into(),
            Stage::Parsing => "parsing the payload".into(),
            Stage::Schema => format!(
                "the schema of record type `{}`",
                crate::rejection::excerpt(record_type, 64)
            ),
            Stage::Condition(i) => match catalog.routes().get(i) {
                Some(route) => format!(
                    "the condition (`match.when`) of route `{}`",
                    route.spec.name
                ),
                None => "a route condition".into(),
            },
            Stage::Copies => "building the copies".into(),
        }
    }
}

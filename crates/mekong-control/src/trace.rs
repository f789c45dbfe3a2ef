//! Where a record is and what happened to it: every event of the audit trail about it, from the
//! lineage index, by record id or by partition key (a dossier's `MaHoSo`).

use std::time::Duration;

use mekong_kafka::Lineage;

use crate::ControlError;

/// How long a trace waits for the lineage index to catch up with the audit trail.
const SYNC: Duration = Duration::from_secs(10);

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceQuery {
    RecordId(String),
    /// Every record with this partition key, oldest first.
    Key(String),
}

/// One record's events, in the order of the audit trail (as JSON, as written).
#[derive(Debug, Clone, PartialEq)]
pub struct Traced {
    pub record_id: String,
    pub events: Vec<serde_json::Value>,
}

/// The records the query names, with their events. Everything written to the audit trail before
/// the question is in the answer.
pub async fn trace(lineage: &Lineage, query: &TraceQuery) -> Result<Vec<Traced>, ControlError> {
    let index = |e: mekong_kafka::LineageError| {
        ControlError::unavailable("the lineage index cannot answer", e)
    };
    lineage.sync(SYNC).await.map_err(index)?;
    let ids = match query {
        TraceQuery::RecordId(id) => vec![id.clone()],
        TraceQuery::Key(key) => lineage.records_with_key(key).map_err(index)?,
    };
    let mut records = Vec::new();
    for id in ids {
        let events = lineage.events(&id).map_err(index)?;
        if !events.is_empty() {
            records.push(Traced {
                record_id: id,
                events,
            });
        }
    }
    if records.is_empty() {
        return Err(ControlError::NotFound(
            "the audit trail has no record with that id or key".into(),
        ));
    }
    Ok(records)
}

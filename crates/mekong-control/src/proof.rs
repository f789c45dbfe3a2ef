//! The proof of a record: its events from the lineage index, each with its inclusion proof in the
//! audit trail's Merkle tree, against the latest signed checkpoint (see `mekong_core::evidence`).

use std::sync::Arc;
use std::time::Duration;

use mekong_core::evidence::{BUNDLE_FORMAT, Bundle};
use mekong_kafka::{Backbone, Lineage, LineageError, latest_checkpoint};

use crate::ControlError;

/// How long a proof waits for the lineage index to catch up with the audit trail.
const SYNC: Duration = Duration::from_secs(10);

/// The bundle of `record_id`, and how many of its events are not yet covered by a checkpoint.
pub async fn proof(
    backbone: &Arc<Backbone>,
    lineage: &Lineage,
    record_id: &str,
) -> Result<(Bundle, usize), ControlError> {
    // The checkpoint first: the index, synced after, holds every leaf it covers.
    let reader = Arc::clone(backbone);
    let latest = tokio::task::spawn_blocking(move || latest_checkpoint(&reader, 0, None))
        .await
        .map_err(|e| ControlError::internal("reading the checkpoints", e))?
        .map_err(|e| ControlError::unavailable("cannot read the latest checkpoint", e))?;
    let index = |e: LineageError| match e {
        LineageError::Unprovable(why) => ControlError::FailedPrecondition(why),
        e => ControlError::unavailable("the lineage index cannot answer", e),
    };
    lineage.sync(SYNC).await.map_err(index)?;
    let Some((checkpoint, _, record)) = latest else {
        if lineage.events(record_id).map_err(index)?.is_empty() {
            return Err(not_found());
        }
        return Err(not_yet());
    };
    let (events, uncovered) = lineage
        .proven_events(record_id, &checkpoint)
        .map_err(index)?;
    if events.is_empty() {
        return Err(if uncovered == 0 {
            not_found()
        } else {
            not_yet()
        });
    }
    let bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        record_id: record_id.to_owned(),
        checkpoint: record.note,
        timestamp: record.timestamp,
        events,
    };
    Ok((bundle, uncovered))
}

fn not_found() -> ControlError {
    ControlError::NotFound("the audit trail has no record with that id".into())
}

fn not_yet() -> ControlError {
    ControlError::unavailable(
        "the record's events are not yet covered by a signed checkpoint (is a notary running?)",
        "no checkpoint covers them",
    )
}

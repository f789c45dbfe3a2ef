//! Overdue deadlines for operators (`mekong overdue`, the console): the deadlines' changelogs read
//! off the runtime's threads, at the wall clock of this instance.

use std::sync::Arc;

use mekong_core::Catalog;
use mekong_deadlines::{Overdue, OverdueQuery};
use mekong_kafka::Backbone;

use crate::ControlError;

/// The open deadlines past their due time that `query` asks for, longest overdue first, and the
/// time (ms since the epoch) they were judged at.
pub async fn overdue(
    backbone: &Arc<Backbone>,
    catalog: Arc<Catalog>,
    query: OverdueQuery,
) -> Result<(Vec<Overdue>, i64), ControlError> {
    if let Some(name) = &query.deadline
        && catalog.deadline(name).is_none()
    {
        return Err(ControlError::NotFound(format!(
            "there is no deadline `{name}`"
        )));
    }
    let backbone = Arc::clone(backbone);
    let now = (mekong_deadlines::wall_clock())();
    tokio::task::spawn_blocking(move || mekong_deadlines::overdue(&backbone, &catalog, &query, now))
        .await
        .map_err(|e| ControlError::internal("reading the deadlines stopped", e))?
        .map(|found| (found, now))
        .map_err(|e| {
            ControlError::unavailable("cannot read the deadlines' changelogs from Kafka", e)
        })
}

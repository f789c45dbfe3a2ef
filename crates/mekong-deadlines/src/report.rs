//! Open overdue deadlines, as `mekong overdue` and the console list them: read from the deadlines'
//! changelogs on Kafka, so that one answer covers every partition, whichever instance tracks it.

use std::collections::HashMap;
use std::time::Duration;

use mekong_core::Catalog;
use mekong_core::deadline::{Open, changelog_topic};
use mekong_kafka::{Backbone, KafkaError};

use crate::changelog;

/// Which overdue deadlines to list.
#[derive(Debug, Clone, Default)]
pub struct OverdueQuery {
    /// One deadline; every deadline of the catalog when `None`.
    pub deadline: Option<String>,
    /// Held by this unit only.
    pub unit: Option<String>,
    /// Overdue for at least this long.
    pub older_than: Option<Duration>,
}

/// One open deadline past its due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub deadline: String,
    pub open: Open,
}

/// The open deadlines whose due time is past at `now_ms` (by `older_than` at least), longest
/// overdue first. Blocking: reads each changelog to its end. Memory holds the overdue ones only.
pub fn overdue(
    backbone: &Backbone,
    catalog: &Catalog,
    query: &OverdueQuery,
    now_ms: i64,
) -> Result<Vec<Overdue>, KafkaError> {
    let cutoff = now_ms - query.older_than.map_or(0, |d| d.as_millis() as i64);
    let mut found = Vec::new();
    for deadline in catalog.deadlines() {
        if query
            .deadline
            .as_deref()
            .is_some_and(|d| d != deadline.name())
        {
            continue;
        }
        let topic = changelog_topic(deadline.name());
        let Some(partitions) = changelog::partitions_of(backbone, &topic)? else {
            continue;
        };
        let all: Vec<i32> = (0..partitions).collect();
        let mut late: HashMap<(i32, String), Open> = HashMap::new();
        changelog::read(backbone, &topic, &all, |p, key, state| {
            match state.filter(|o| {
                o.due_ms <= cutoff
                    && query
                        .unit
                        .as_ref()
                        .is_none_or(|u| o.unit.as_ref() == Some(u))
            }) {
                Some(open) => late.insert((p, key.to_owned()), open),
                None => late.remove(&(p, key.to_owned())),
            };
        })?;
        found.extend(late.into_values().map(|open| Overdue {
            deadline: deadline.name().to_owned(),
            open,
        }));
    }
    found.sort_by(|a, b| {
        (a.open.due_ms, &a.deadline, &a.open.key).cmp(&(b.open.due_ms, &b.deadline, &b.open.key))
    });
    Ok(found)
}

//! The local state of a deadline tracker: each key's open deadline, per source partition, and an index of keys by when they next need the
//! clock, both on disk (redb), so that millions of open dossiers cost little memory and the due
//! ones are found by a range scan, not by looking at every key. The tracker rebuilds a partition's
//! part from its changelog topic when the store is lost or the partition moves here: `clear` it,
//! then `apply` what the changelog holds.

use std::path::Path;

use mekong_core::deadline::Open;
use redb::{Database, ReadableTableMetadata, TableDefinition};

/// (partition, key) → (wake time in ms, or `i64::MAX` for none; the open state as JSON).
const OPEN: TableDefinition<(u32, &str), (i64, &[u8])> = TableDefinition::new("open");
/// (wake time, partition, key): the timer index.
const WAKE: TableDefinition<(i64, u32, &str), ()> = TableDefinition::new("wake");

/// The page cache of the store.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// No wake time: the deadline needs no clock (it is overdue already).
const NEVER: i64 = i64::MAX;

#[derive(Debug, thiserror::Error)]
#[error("the deadline store: {0}")]
pub struct DeadlineStoreError(String);

fn failed(e: impl std::fmt::Display) -> DeadlineStoreError {
    DeadlineStoreError(e.to_string())
}

/// One key's new state: open with its next wake time, or closed (`None`).
pub type Change<'a> = (&'a str, Option<(&'a Open, Option<i64>)>);

pub struct DeadlineStore {
    db: Database,
}

impl DeadlineStore {
    pub fn open(path: &Path) -> Result<DeadlineStore, DeadlineStoreError> {
        // A bounded page cache (redb's default is 1 GiB): memory stays small however many are open.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(failed)?;
        let txn = db.begin_write().map_err(failed)?;
        txn.open_table(OPEN).map_err(failed)?;
        txn.open_table(WAKE).map_err(failed)?;
        txn.commit().map_err(failed)?;
        Ok(DeadlineStore { db })
    }

    pub fn get(&self, partition: u32, key: &str) -> Result<Option<Open>, DeadlineStoreError> {
        let txn = self.db.begin_read().map_err(failed)?;
        let table = txn.open_table(OPEN).map_err(failed)?;
        let Some(value) = table.get((partition, key)).map_err(failed)? else {
            return Ok(None);
        };
        let (_, json) = value.value();
        serde_json::from_slice(json).map(Some).map_err(failed)
    }

    /// Sets or removes the states of keys of `partition` in one write, moving their timers.
    pub fn apply(&self, partition: u32, changes: &[Change<'_>]) -> Result<(), DeadlineStoreError> {
        let txn = self.db.begin_write().map_err(failed)?;
        {
            let mut open = txn.open_table(OPEN).map_err(failed)?;
            let mut wake = txn.open_table(WAKE).map_err(failed)?;
            for (key, state) in changes {
                let before = open
                    .remove((partition, *key))
                    .map_err(failed)?
                    .map(|v| v.value().0);
                if let Some(at) = before.filter(|at| *at != NEVER) {
                    wake.remove((at, partition, *key)).map_err(failed)?;
                }
                if let Some((state, at)) = state {
                    let json = serde_json::to_vec(state).map_err(failed)?;
                    let at = at.unwrap_or(NEVER);
                    open.insert((partition, *key), (at, json.as_slice()))
                        .map_err(failed)?;
                    if at != NEVER {
                        wake.insert((at, partition, *key), ()).map_err(failed)?;
                    }
                }
            }
        }
        txn.commit().map_err(failed)
    }

    /// The open deadlines of `partitions` whose wake time is at or before `now_ms`, soonest
    /// first, at most `max`.
    pub fn due(
        &self,
        partitions: &[u32],
        now_ms: i64,
        max: usize,
    ) -> Result<Vec<(u32, Open)>, DeadlineStoreError> {
        let txn = self.db.begin_read().map_err(failed)?;
        let wake = txn.open_table(WAKE).map_err(failed)?;
        let open = txn.open_table(OPEN).map_err(failed)?;
        let mut due = Vec::new();
        for entry in wake
            .range((i64::MIN, 0, "")..=(now_ms, u32::MAX, "\u{10ffff}"))
            .map_err(failed)?
        {
            let (key, _) = entry.map_err(failed)?;
            let (_, partition, key) = key.value();
            if !partitions.contains(&partition) {
                continue;
            }
            if let Some(value) = open.get((partition, key)).map_err(failed)? {
                due.push((
                    partition,
                    serde_json::from_slice(value.value().1).map_err(failed)?,
                ));
                if due.len() >= max {
                    break;
                }
            }
        }
        Ok(due)
    }

    /// Forgets a partition's part (before it is rebuilt from the changelog, or when it moves away).
    pub fn clear(&self, partition: u32) -> Result<(), DeadlineStoreError> {
        let keys: Vec<String> = {
            let txn = self.db.begin_read().map_err(failed)?;
            let open = txn.open_table(OPEN).map_err(failed)?;
            open.range((partition, "")..(partition.saturating_add(1), ""))
                .map_err(failed)?
                .map(|e| e.map(|(k, _)| k.value().1.to_owned()).map_err(failed))
                .collect::<Result<_, _>>()?
        };
        let changes: Vec<Change<'_>> = keys.iter().map(|k| (k.as_str(), None)).collect();
        for chunk in changes.chunks(10_000) {
            self.apply(partition, chunk)?;
        }
        Ok(())
    }

    /// The open deadlines of a partition by unit: (open, of which overdue). One pass over the
    /// partition, once it is rebuilt.
    pub fn counts(
        &self,
        partition: u32,
    ) -> Result<std::collections::HashMap<String, (i64, i64)>, DeadlineStoreError> {
        let txn = self.db.begin_read().map_err(failed)?;
        let open = txn.open_table(OPEN).map_err(failed)?;
        let mut counts = std::collections::HashMap::new();
        for entry in open
            .range((partition, "")..(partition.saturating_add(1), ""))
            .map_err(failed)?
        {
            let (_, value) = entry.map_err(failed)?;
            let state: Open = serde_json::from_slice(value.value().1).map_err(failed)?;
            let count: &mut (i64, i64) = counts.entry(state.unit.unwrap_or_default()).or_default();
            count.0 += 1;
            count.1 += i64::from(state.overdue);
        }
        Ok(counts)
    }

    /// How many deadlines are open, all partitions together.
    pub fn len(&self) -> Result<u64, DeadlineStoreError> {
        let txn = self.db.begin_read().map_err(failed)?;
        txn.open_table(OPEN).map_err(failed)?.len().map_err(failed)
    }

    pub fn is_empty(&self) -> Result<bool, DeadlineStoreError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(key: &str, due_ms: i64) -> Open {
        Open {
            key: key.into(),
            due_ms,
            unit: Some("UBND Q1".into()),
            opened_by: format!("r-{key}"),
            extended_by: None,
            warned: false,
            overdue: false,
        }
    }

    fn store() -> (DeadlineStore, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("mekong-deadline-store-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("deadlines.redb");
        (DeadlineStore::open(&path).unwrap(), dir)
    }

    #[test]
    fn the_due_ones_come_soonest_first_and_a_moved_timer_moves() {
        let (store, dir) = store();
        let (a, b, c) = (open("A", 300), open("B", 100), open("C", 200));
        store
            .apply(
                0,
                &[
                    ("A", Some((&a, Some(300)))),
                    ("B", Some((&b, Some(100)))),
                    ("C", Some((&c, Some(200)))),
                ],
            )
            .unwrap();
        store.apply(1, &[("A", Some((&a, Some(50))))]).unwrap();
        let keys = |due: Vec<(u32, Open)>| {
            due.into_iter()
                .map(|(p, o)| format!("{p}{}", o.key))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(store.due(&[0], 250, 10).unwrap()), ["0B", "0C"]);
        assert_eq!(
            keys(store.due(&[0, 1], 250, 10).unwrap()),
            ["1A", "0B", "0C"],
            "per partition owned"
        );
        assert_eq!(
            keys(store.due(&[0], 250, 1).unwrap()),
            ["0B"],
            "at most max"
        );
        // B's timer moves later (an extension); C is closed; A is overdue (no wake).
        let b2 = open("B", 1000);
        store
            .apply(
                0,
                &[
                    ("B", Some((&b2, Some(1000)))),
                    ("C", None),
                    ("A", Some((&a, None))),
                ],
            )
            .unwrap();
        assert!(store.due(&[0], 500, 10).unwrap().is_empty());
        assert_eq!(store.get(0, "B").unwrap(), Some(b2));
        assert_eq!(store.get(0, "C").unwrap(), None);
        assert_eq!(store.get(0, "A").unwrap(), Some(a.clone()));
        assert_eq!(store.len().unwrap(), 3);
        assert_eq!(
            store.counts(0).unwrap(),
            [("UBND Q1".to_string(), (2, 0))].into()
        );
        store.clear(0).unwrap();
        assert_eq!(store.len().unwrap(), 1, "partition 1 kept");
        assert_eq!(keys(store.due(&[0, 1], 100, 10).unwrap()), ["1A"]);
        drop(store);
        // On disk: what was written is there after reopening.
        let again = DeadlineStore::open(&dir.join("deadlines.redb")).unwrap();
        assert_eq!(again.get(1, "A").unwrap(), Some(a));
        std::fs::remove_dir_all(dir).unwrap();
    }
}

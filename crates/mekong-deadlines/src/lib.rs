//! Deadlines tracked from the stream (docs/deadlines.md): for every `Deadline` of the catalog, a
//! tracker in the consumer group `mekong.deadlines.<name>` keeps each key's open deadline, writes
//! `deadline.*` CloudEvents when the records or the clock make one known, exactly once (a Kafka
//! transaction with the state's changelog and the source offsets), and counts open and overdue
//! deadlines by unit. The rules are `mekong_core::deadline`'s; this crate reads, keeps and writes.

mod changelog;
mod metrics;
mod report;
pub mod store;
mod supervisor;
mod tracker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use metrics::DeadlineMetrics;
pub use report::{Overdue, OverdueQuery, overdue};
pub use supervisor::supervise;
pub use tracker::TrackerError;

/// The tracker's clock: milliseconds since the Unix epoch. Due times are compared with it; tests
/// put one of their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock of this machine.
pub fn wall_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// How the trackers of a process run.
#[derive(Clone)]
pub struct TrackerSettings {
    /// Where the local stores are kept (one file per deadline, made new at start: every partition
    /// is rebuilt from its changelog as it is taken); `None`: a directory of their own in the
    /// system's temporary directory, removed when the trackers stop.
    pub dir: Option<PathBuf>,
    pub clock: Clock,
    /// How long a tracker that died holds its partitions before another takes them.
    pub session_timeout: Duration,
    /// Replication of the changelog and event topics (-1: the cluster's default).
    pub replication: i32,
    /// Partitions of event topics the trackers create (-1: the cluster's default).
    pub event_partitions: i32,
    pub metrics: DeadlineMetrics,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        TrackerSettings {
            dir: None,
            clock: wall_clock(),
            session_timeout: Duration::from_secs(10),
            replication: -1,
            event_partitions: -1,
            metrics: DeadlineMetrics::default(),
        }
    }
}

impl std::fmt::Debug for TrackerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerSettings")
            .field("dir", &self.dir)
            .field("session_timeout", &self.session_timeout)
            .finish_non_exhaustive()
    }
}

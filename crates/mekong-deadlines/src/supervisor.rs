//! Runs a tracker for every deadline in the catalog and follows the catalog: a deadline added is
//! started (its changelog and event topics created first), one removed is stopped, one changed is
//! restarted with its new rules. A tracker that cannot start (its `from` topic does not exist yet)
//! is tried again every little while, and says why.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use mekong_core::Catalog;
use mekong_core::deadline::{Deadline, DeadlineSpec, changelog_topic};
use mekong_kafka::{Backbone, TopicSettings, ensure_topics};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::TrackerSettings;
use crate::changelog::partitions_of;
use crate::tracker::Tracker;

/// How often the catalog is compared with what runs.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long a deadline that could not start waits before it is tried again.
const RESTART_AFTER: Duration = Duration::from_secs(10);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the catalog's deadlines until `stop` turns true, then stops them all.
pub async fn supervise(
    catalog: Arc<ArcSwap<Catalog>>,
    backbone: Arc<Backbone>,
    settings: TrackerSettings,
    mut stop: watch::Receiver<bool>,
) {
    let temporary = settings.dir.is_none();
    let dir = settings.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "mekong-deadlines-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ))
    });
    if let Err(e) = std::fs::create_dir_all(&dir) {
        warn!(dir = %dir.display(), error = %e, "cannot make the deadline store's directory: no deadline is tracked");
        return;
    }
    let mut running: HashMap<String, (DeadlineSpec, Tracker)> = HashMap::new();
    let mut failed: HashMap<String, Instant> = HashMap::new();
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            _ = check.tick() => {}
        }
        let catalog = catalog.load_full();
        let names: Vec<String> = running.keys().cloned().collect();
        for name in names {
            let (spec, tracker) = &running[&name];
            let ended = tracker.ended();
            if ended || catalog.deadline(&name).is_none_or(|d| d.spec != *spec) {
                let (_, tracker) = running.remove(&name).expect("listed");
                if ended {
                    error!(deadline = %name, "the deadline's tracker stopped by itself; starting it again in 10 s");
                    failed.insert(name.clone(), Instant::now());
                } else {
                    info!(deadline = %name, "deadline removed or changed: stopping its tracker");
                }
                let _ = tokio::task::spawn_blocking(move || tracker.stop()).await;
            }
        }
        for deadline in catalog.deadlines() {
            let name = deadline.name();
            if running.contains_key(name)
                || failed
                    .get(name)
                    .is_some_and(|at| at.elapsed() < RESTART_AFTER)
            {
                continue;
            }
            match start(Arc::clone(deadline), &backbone, &settings, &dir).await {
                Ok(tracker) => {
                    failed.remove(name);
                    running.insert(name.to_owned(), (deadline.spec.clone(), tracker));
                }
                Err(problem) => {
                    warn!(deadline = %name, %problem, "cannot track the deadline; trying again in 10 s");
                    failed.insert(name.to_owned(), Instant::now());
                }
            }
        }
    }
    for (_, (_, tracker)) in running.drain() {
        let _ = tokio::task::spawn_blocking(move || tracker.stop()).await;
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Creates the deadline's topics (the changelog with as many partitions as the source, compacted)
/// and starts its tracker.
async fn start(
    deadline: Arc<Deadline>,
    backbone: &Arc<Backbone>,
    settings: &TrackerSettings,
    dir: &Path,
) -> Result<Tracker, String> {
    let from = deadline.spec.from.clone();
    let source = {
        let backbone = Arc::clone(backbone);
        let topic = from.clone();
        tokio::task::spawn_blocking(move || partitions_of(&backbone, &topic))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reading the metadata of `{from}`: {e}"))?
    };
    let Some(partitions) = source else {
        return Err(format!(
            "its `from` topic `{from}` does not exist yet (it is made when a route first writes to it)"
        ));
    };
    let changelog = changelog_topic(deadline.name());
    let compacted = TopicSettings {
        partitions,
        replication: settings.replication,
        max_message_bytes: 1024 * 1024,
        configs: &[("cleanup.policy", "compact")],
    };
    ensure_topics(backbone, &[changelog.as_str()], compacted, KAFKA_TIMEOUT)
        .await
        .map_err(|e| format!("creating `{changelog}`: {e}"))?;
    let events = TopicSettings {
        partitions: settings.event_partitions,
        replication: settings.replication,
        max_message_bytes: 1024 * 1024,
        configs: &[],
    };
    ensure_topics(
        backbone,
        &[deadline.spec.to.as_str()],
        events,
        KAFKA_TIMEOUT,
    )
    .await
    .map_err(|e| format!("creating `{}`: {e}", deadline.spec.to))?;
    let changelog_partitions = {
        let backbone = Arc::clone(backbone);
        let changelog = changelog.clone();
        tokio::task::spawn_blocking(move || partitions_of(&backbone, &changelog))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    if changelog_partitions.is_some_and(|n| n < partitions) {
        return Err(format!(
            "`{from}` has {partitions} partitions and its changelog `{changelog}` fewer: add partitions to the changelog to match (docs/deadlines.md)"
        ));
    }
    let backbone = Arc::clone(backbone);
    let settings = settings.clone();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Tracker::start(deadline, backbone, &settings, &dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

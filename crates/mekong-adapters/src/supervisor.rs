//! Runs an engine for every adapter in the catalog, and follows the catalog: an adapter added is
//! started, one removed (or paused by an administrator) is stopped, one changed is restarted with
//! its new settings. A stopped engine leaves its consumer group: records wait in Kafka. An engine that
//! cannot start (a secret that cannot be read) is tried again every little while, and says why.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use mekong_core::{AdapterSpec, Catalog};
use mekong_kafka::{Backbone, Producer};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::engine::{self, EngineSettings};

/// How often the catalog is compared with what runs.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long a failed engine waits before it is started again.
const RESTART_AFTER: Duration = Duration::from_secs(10);

struct Running {
    spec: AdapterSpec,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), engine::EngineError>>,
    started: Instant,
}

/// Runs the catalog's adapters until `stop` turns true, then stops them all.
pub async fn supervise(
    catalog: Arc<ArcSwap<Catalog>>,
    backbone: Arc<Backbone>,
    producer: Producer,
    settings: EngineSettings,
    mut stop: watch::Receiver<bool>,
) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            _ = check.tick() => {}
        }
        let catalog = catalog.load();
        let wanted: HashMap<String, mekong_core::Adapter> = catalog
            .adapters()
            .filter(|a| !a.spec.paused)
            .map(|a| (a.spec.name.clone(), a.clone()))
            .collect();
        // Stop what was removed or changed, and forget engines that ended.
        let names: Vec<String> = running.keys().cloned().collect();
        for name in names {
            let current = &running[&name];
            let changed = wanted.get(&name).is_none_or(|a| a.spec != current.spec);
            let ended = current.task.is_finished();
            if changed || (ended && current.started.elapsed() >= RESTART_AFTER) {
                if catalog
                    .adapters()
                    .any(|a| a.spec.name == name && a.spec.paused)
                {
                    info!(adapter = %name, "adapter paused by an administrator: its records wait in Kafka");
                }
                let gone = running.remove(&name).expect("listed above");
                let _ = gone.stop.send(true);
                match gone.task.await {
                    Ok(Err(e)) if ended => error!(error = %e, "adapter failed; starting it again"),
                    _ => {}
                }
            }
        }
        for (name, adapter) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let (stop_tx, stop_rx) = watch::channel(false);
            let spec = adapter.spec.clone();
            let task = tokio::spawn(engine::run(
                adapter,
                Arc::clone(&backbone),
                producer.clone(),
                settings.clone(),
                stop_rx,
            ));
            running.insert(
                name,
                Running {
                    spec,
                    stop: stop_tx,
                    task,
                    started: Instant::now(),
                },
            );
        }
    }
    for (_, engine) in running.drain() {
        let _ = engine.stop.send(true);
        if let Ok(Err(e)) = engine.task.await {
            error!(error = %e, "adapter failed");
        }
    }
}

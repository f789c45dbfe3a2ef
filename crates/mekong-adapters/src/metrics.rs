//! The adapters' metrics: deliveries by adapter and outcome, dead letters, delivery latency.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub adapter: String,
    /// delivered, retried or dead_lettered.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AdapterLabels {
    pub adapter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LagLabels {
    pub adapter: String,
    pub topic: String,
    pub partition: i32,
}

/// Cheap to clone: the families are shared.
#[derive(Clone)]
pub struct AdapterMetrics {
    pub(crate) attempts: Family<OutcomeLabels, Counter>,
    pub(crate) dead_letters: Family<AdapterLabels, Counter>,
    pub(crate) request_seconds: Family<AdapterLabels, Histogram>,
    pub(crate) lag: Family<LagLabels, Gauge>,
    pub(crate) paused: Family<AdapterLabels, Gauge>,
    /// The lag series set, so that those of a stopped adapter can be removed.
    lag_series: Arc<Mutex<HashSet<LagLabels>>>,
}

impl Default for AdapterMetrics {
    fn default() -> Self {
        AdapterMetrics {
            attempts: Family::default(),
            dead_letters: Family::default(),
            // 1 ms to ~65 s.
            request_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            }),
            lag: Family::default(),
            paused: Family::default(),
            lag_series: Arc::default(),
        }
    }
}

impl AdapterMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "delivery_attempts",
            "Delivery attempts by adapter and outcome (delivered, retried, dead_lettered)",
            self.attempts.clone(),
        );
        registry.register(
            "dead_letters",
            "Records written to an adapter's dead-letter topic",
            self.dead_letters.clone(),
        );
        registry.register(
            "adapter_lag_records",
            "Records an adapter's consumer group has not yet read, per partition (every 5 s)",
            self.lag.clone(),
        );
        registry.register(
            "adapter_paused",
            "1 while an adapter has paused fetching: its buffer of records stayed full",
            self.paused.clone(),
        );
        registry.register(
            "delivery_request_duration_seconds",
            "Time of one HTTP request to an adapter's target",
            self.request_seconds.clone(),
        );
    }

    pub(crate) fn attempt(&self, adapter: &str, outcome: &'static str) {
        self.attempts
            .get_or_create(&OutcomeLabels {
                adapter: adapter.to_owned(),
                outcome,
            })
            .inc();
        if outcome == "dead_lettered" {
            self.dead_letters
                .get_or_create(&AdapterLabels {
                    adapter: adapter.to_owned(),
                })
                .inc();
        }
    }

    /// The lag report of one adapter's consumer.
    pub(crate) fn lag_of(&self, adapter: &str) -> mekong_kafka::LagReport {
        let (family, adapter) = (self.lag.clone(), adapter.to_owned());
        let series = Arc::clone(&self.lag_series);
        Arc::new(move |topic: &str, partition: i32, lag: i64| {
            let labels = LagLabels {
                adapter: adapter.clone(),
                topic: topic.to_owned(),
                partition,
            };
            family.get_or_create(&labels).set(lag);
            series.lock().expect("lag series").insert(labels);
        })
    }

    pub(crate) fn set_paused(&self, adapter: &str, paused: bool) {
        self.paused
            .get_or_create(&AdapterLabels {
                adapter: adapter.to_owned(),
            })
            .set(paused.into());
    }

    /// Forgets an adapter's lag and pause series (it stopped); its counters stay.
    pub(crate) fn forget(&self, adapter: &str) {
        self.paused.remove(&AdapterLabels {
            adapter: adapter.to_owned(),
        });
        self.lag_series
            .lock()
            .expect("lag series")
            .retain(|labels| {
                let keep = labels.adapter != adapter;
                if !keep {
                    self.lag.remove(labels);
                }
                keep
            });
    }

    pub(crate) fn request(&self, adapter: &str, took: Duration) {
        self.request_seconds
            .get_or_create(&AdapterLabels {
                adapter: adapter.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}

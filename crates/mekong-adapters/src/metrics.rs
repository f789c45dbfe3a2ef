//! The adapters' metrics: deliveries by adapter and outcome, dead letters, delivery latency.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

/// Cheap to clone: the families are shared.
#[derive(Clone)]
pub struct AdapterMetrics {
    pub(crate) attempts: Family<OutcomeLabels, Counter>,
    pub(crate) dead_letters: Family<AdapterLabels, Counter>,
    pub(crate) request_seconds: Family<AdapterLabels, Histogram>,
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

    pub(crate) fn request(&self, adapter: &str, took: Duration) {
        self.request_seconds
            .get_or_create(&AdapterLabels {
                adapter: adapter.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}

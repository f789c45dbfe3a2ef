//! The gateway's metrics, in Prometheus terms: records accepted and rejected (by type, source and
//! reason), publish latency, copies written by topic, Kafka producer errors and queue, open
//! subscriptions. Label values are bounded: record types the catalog does not know are `unknown`,
//! reasons are gRPC code names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RecordLabels {
    pub record_type: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RejectedLabels {
    pub record_type: String,
    pub source: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LagLabels {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub reason: &'static str,
}

/// (record type, client, reason) of a refusal.
type RefusalKey = (String, String, String);

/// Every metric of the gateway; cheap to clone (the families are shared).
#[derive(Clone)]
pub struct GatewayMetrics {
    pub(crate) accepted: Family<RecordLabels, Counter>,
    pub(crate) rejected: Family<RejectedLabels, Counter>,
    pub(crate) publish_seconds: Family<OutcomeLabels, Histogram>,
    pub(crate) copies: Family<TopicLabels, Counter>,
    pub(crate) produce_errors: Family<KindLabels, Counter>,
    pub(crate) producer_queue: Gauge,
    pub(crate) subscriptions: Gauge,
    pub(crate) unevaluable: Counter,
    pub(crate) subscription_lag: Family<LagLabels, Gauge>,
    pub(crate) connections_open: Gauge,
    pub(crate) connections_closed: Family<ReasonLabels, Counter>,
    pub(crate) judge_overruns: Counter,
    pub tls_reload_failures: Counter,
    pub(crate) quota_throttled: Family<QuotaLabels, Counter>,
    /// Records accepted and refused, all labels together (for the console's overview; not
    /// exported: the families above are).
    pub(crate) accepted_all: Counter,
    pub(crate) rejected_all: Counter,
    /// Refusals by (record type, client, reason): the same bounded labels as `rejected`, kept
    /// where the console can read them.
    pub(crate) refusals: Arc<Mutex<HashMap<RefusalKey, u64>>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QuotaLabels {
    pub client: String,
    /// recordsPerSecond, bytesPerSecond or maxStreams.
    pub limit: &'static str,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            accepted: Family::default(),
            rejected: Family::default(),
            // 0.5 ms to ~16 s.
            publish_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            copies: Family::default(),
            produce_errors: Family::default(),
            producer_queue: Gauge::default(),
            subscriptions: Gauge::default(),
            unevaluable: Counter::default(),
            subscription_lag: Family::default(),
            connections_open: Gauge::default(),
            connections_closed: Family::default(),
            judge_overruns: Counter::default(),
            tls_reload_failures: Counter::default(),
            quota_throttled: Family::default(),
            accepted_all: Counter::default(),
            rejected_all: Counter::default(),
            refusals: Default::default(),
        }
    }
}

impl GatewayMetrics {
    /// Adds the metrics to a registry (names get the `mekong_` prefix there).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "records_accepted",
            "Records accepted and written to every routed topic",
            self.accepted.clone(),
        );
        registry.register(
            "records_rejected",
            "Records refused, by reason (the gRPC status code)",
            self.rejected.clone(),
        );
        registry.register(
            "publish_duration_seconds",
            "Time from a record's arrival to its answer",
            self.publish_seconds.clone(),
        );
        registry.register(
            "copies_written",
            "Routed copies written, by destination topic",
            self.copies.clone(),
        );
        registry.register(
            "kafka_produce_errors",
            "Writes Kafka did not acknowledge, by kind",
            self.produce_errors.clone(),
        );
        registry.register(
            "kafka_producer_queue_messages",
            "Messages waiting in the producer for Kafka's acknowledgement",
            self.producer_queue.clone(),
        );
        registry.register(
            "route_conditions_unevaluable",
            "Route conditions that could not be evaluated for a record (counted as no match)",
            self.unevaluable.clone(),
        );
        registry.register(
            "subscription_lag_records",
            "Records not yet read by a subscription's consumer group, per partition (every 5 s)",
            self.subscription_lag.clone(),
        );
        registry.register(
            "subscriptions_active",
            "Open SubscribeService.Consume streams",
            self.subscriptions.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open on the gRPC listener",
            self.connections_open.clone(),
        );
        registry.register(
            "connections_closed_by_hub",
            "Connections the hub closed: over the connection limit, a failed TLS handshake, or no authenticated call in time",
            self.connections_closed.clone(),
        );
        registry.register(
            "judge_overruns",
            "Records whose judging (schema, route conditions) took longer than --max-judge-time",
            self.judge_overruns.clone(),
        );
        registry.register(
            "tls_reload_failures",
            "Reloads of the TLS files that failed (the previous certificate and CAs stay in use)",
            self.tls_reload_failures.clone(),
        );
        registry.register(
            "quota_throttled",
            "Calls refused and stream records held back by a client's quota, by client and limit",
            self.quota_throttled.clone(),
        );
    }

    pub(crate) fn throttled(&self, client: &str, limit: &'static str) {
        self.quota_throttled
            .get_or_create(&QuotaLabels {
                client: client.to_owned(),
                limit,
            })
            .inc();
    }

    pub(crate) fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Reads what is measured on demand (the producer's queue), before a scrape.
    pub fn refresh(&self, producer: &mekong_kafka::Producer) {
        self.producer_queue.set(producer.in_flight() as i64);
    }

    /// A lag report for one subscription stream, and what removes its series when it ends.
    pub(crate) fn lag_of(&self, group: &str) -> (mekong_kafka::LagReport, impl FnOnce() + use<>) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let (family, group) = (self.subscription_lag.clone(), group.to_owned());
        let report = {
            let (family, seen) = (family.clone(), std::sync::Arc::clone(&seen));
            std::sync::Arc::new(move |topic: &str, partition: i32, lag: i64| {
                let labels = LagLabels {
                    group: group.clone(),
                    topic: topic.to_owned(),
                    partition,
                };
                family.get_or_create(&labels).set(lag);
                seen.lock().expect("lag labels").insert(labels);
            })
        };
        let clear = move || {
            for labels in seen.lock().expect("lag labels").drain() {
                family.remove(&labels);
            }
        };
        (report, clear)
    }

    /// Records accepted and refused since the start.
    pub fn totals(&self) -> (u64, u64) {
        (self.accepted_all.get(), self.rejected_all.get())
    }

    /// The `n` most frequent refusals since the start: (record type, client, reason, count).
    pub fn top_refusals(&self, n: usize) -> Vec<(String, String, String, u64)> {
        let refusals = self.refusals.lock().expect("the refusals");
        let mut top: Vec<_> = refusals
            .iter()
            .map(|((t, c, r), n)| (t.clone(), c.clone(), r.clone(), *n))
            .collect();
        top.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| a.cmp(b)));
        top.truncate(n);
        top
    }

    pub(crate) fn published(&self, outcome: &'static str, took: Duration) {
        self.publish_seconds
            .get_or_create(&OutcomeLabels { outcome })
            .observe(took.as_secs_f64());
    }
}

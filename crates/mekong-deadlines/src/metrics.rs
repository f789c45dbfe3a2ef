//! The trackers' metrics: open and overdue deadlines by unit (of the partitions this instance owns:
//! sum them over instances), the events written, the partitions owned.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UnitLabels {
    pub deadline: String,
    /// Who holds the dossiers (the deadline's `unit`); empty when the records do not say.
    pub unit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EventLabels {
    pub deadline: String,
    /// The event's type: `deadline.overdue`, `deadline.met` ...
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DeadlineLabels {
    pub deadline: String,
}

/// Cheap to clone: the families are shared.
#[derive(Clone, Default)]
pub struct DeadlineMetrics {
    pub(crate) open: Family<UnitLabels, Gauge>,
    pub(crate) overdue: Family<UnitLabels, Gauge>,
    pub(crate) events: Family<EventLabels, Counter>,
    pub(crate) partitions: Family<DeadlineLabels, Gauge>,
    pub(crate) unreadable: Family<DeadlineLabels, Counter>,
}

impl DeadlineMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "deadlines_open",
            "Open deadlines by unit, of the source partitions this instance tracks (sum over instances)",
            self.open.clone(),
        );
        registry.register(
            "deadlines_overdue",
            "Open deadlines past their due time by unit, of the partitions this instance tracks",
            self.overdue.clone(),
        );
        registry.register(
            "deadline_events",
            "Deadline events written (committed) by type: due-soon, overdue, met, completed-late, extended, invalid",
            self.events.clone(),
        );
        registry.register(
            "deadline_partitions",
            "Source partitions whose deadlines this instance tracks",
            self.partitions.clone(),
        );
        registry.register(
            "deadline_unreadable_records",
            "Records of tracked types on a deadline's topic that are not JSON or have no key (skipped)",
            self.unreadable.clone(),
        );
    }

    /// Moves the gauges of a unit by (open, overdue).
    pub(crate) fn shift(&self, deadline: &str, unit: &str, open: i64, overdue: i64) {
        let labels = UnitLabels {
            deadline: deadline.to_owned(),
            unit: unit.to_owned(),
        };
        if open != 0 {
            self.open.get_or_create(&labels).inc_by(open);
        }
        if overdue != 0 {
            self.overdue.get_or_create(&labels).inc_by(overdue);
        }
    }
}

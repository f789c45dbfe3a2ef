//! Reading topics at least once, for one subscriber stream or one delivery adapter: a Kafka consumer
//! group member that commits a partition's position only up to the first record its reader has not
//! acknowledged.
//! When partitions move to another member, what was acknowledged is committed first, so nothing
//! unacknowledged is skipped and little acknowledged is read again.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::Backbone;

/// Where a group without a committed position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    Earliest,
    Latest,
    /// The first record at or after this time (milliseconds since the epoch).
    Time(i64),
}

/// A record as read from Kafka.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: bytes::Bytes,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A partition of one of the topics read.
type TopicPartition = (String, i32);

/// How far each assigned partition has been delivered and acknowledged.
#[derive(Default)]
struct Tracker {
    partitions: HashMap<TopicPartition, PartitionState>,
}

#[derive(Default)]
struct PartitionState {
    /// Delivered, not yet acknowledged.
    unacked: BTreeSet<i64>,
    /// The offset after the last delivered record.
    next: Option<i64>,
    /// The position last committed.
    committed: Option<i64>,
}

impl PartitionState {
    /// Acknowledges every record delivered up to and including `offset`; how many.
    fn ack_through(&mut self, offset: i64) -> usize {
        let later = self.unacked.split_off(&offset.saturating_add(1));
        std::mem::replace(&mut self.unacked, later).len()
    }

    /// The position that may be committed: the first unacknowledged record, or past everything.
    fn position(&self) -> Option<i64> {
        self.unacked.first().copied().or(self.next)
    }
}

impl Tracker {
    fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.unacked.len()).sum()
    }

    /// The positions of these partitions, whether committed already or not: for a synchronous commit
    /// that must not rely on an earlier asynchronous one having landed.
    fn positions(
        &mut self,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Vec<(TopicPartition, i64)> {
        let mut positions = Vec::new();
        for partition in partitions {
            if let Some(state) = self.partitions.get_mut(&partition)
                && let Some(position) = state.position()
            {
                state.committed = Some(position);
                positions.push((partition, position));
            }
        }
        positions
    }

    /// Positions to commit for these partitions (those that moved since the last commit).
    fn due(
        &mut self,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Vec<(TopicPartition, i64)> {
        let mut due = Vec::new();
        for partition in partitions {
            if let Some(state) = self.partitions.get_mut(&partition)
                && let Some(position) = state.position()
                && state.committed != Some(position)
            {
                state.committed = Some(position);
                due.push((partition, position));
            }
        }
        due
    }
}

/// Rebalances: commit what was acknowledged before partitions go; on assignment, find the start by
/// time where the group has no position yet.
struct TrackingContext {
    lag: Option<LagReport>,
    start: StartPosition,
    tracker: Arc<Mutex<Tracker>>,
}

impl ClientContext for TrackingContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each assigned partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(report) = &self.lag else {
            return;
        };
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1: unknown (not assigned, or no position yet); the internal -1 partition.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    report(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

/// Receives (topic, partition, lag in records) for each assigned partition, every few seconds.
pub type LagReport = std::sync::Arc<dyn Fn(&str, i32, i64) + Send + Sync>;

/// How often a subscriber with a lag report measures its lag.
const LAG_EVERY: Duration = Duration::from_secs(5);

impl ConsumerContext for TrackingContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let StartPosition::Time(ms) = self.start {
                    self.start_at_time(consumer, tpl, ms);
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "cannot take the assigned partitions");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<TopicPartition> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                let mut tracker = self.tracker.lock().expect("tracker lock");
                let due = tracker.positions(revoked.iter().cloned());
                for partition in &revoked {
                    tracker.partitions.remove(partition);
                }
                drop(tracker);
                commit(consumer, &due, CommitMode::Sync);
                let _ = consumer.unassign();
            }
            _ => {
                tracing::warn!(?err, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

impl TrackingContext {
    /// Sets the start offset of every partition the group has no committed position for.
    fn start_at_time(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList, ms: i64) {
        let timeout = Duration::from_secs(10);
        let Ok(committed) = consumer.committed_offsets(tpl.clone(), timeout) else {
            return;
        };
        let mut by_time = TopicPartitionList::new();
        for e in committed.elements() {
            if !matches!(e.offset(), Offset::Offset(_)) {
                let _ = by_time.add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms));
            }
        }
        if by_time.count() == 0 {
            return;
        }
        match consumer.offsets_for_times(by_time, timeout) {
            Ok(found) => {
                for e in found.elements() {
                    let _ = tpl.set_partition_offset(e.topic(), e.partition(), e.offset());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot find offsets by time; starting from the reset position")
            }
        }
    }
}

fn commit<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    due: &[(TopicPartition, i64)],
    mode: CommitMode,
) {
    if due.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), position) in due {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*position));
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        // A later commit covers the same positions; losing one only means reading again.
        tracing::debug!(error = %e, "commit failed");
    }
}

/// A message's headers, owned: (name, value) pairs, a missing value as empty.
pub(crate) fn owned_headers(message: &impl Message) -> Vec<(String, Vec<u8>)> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// Settings of one subscription.
#[derive(Clone)]
pub struct SubscriptionSettings {
    pub topics: Vec<String>,
    /// The Kafka consumer group id.
    pub group_id: String,
    pub start: StartPosition,
    /// How soon the group gives a vanished member's partitions to the others (librdkafka's
    /// `session.timeout.ms`; `None` for its default, 45 s).
    pub session_timeout: Option<Duration>,
    /// Where to report consumer lag, if anywhere.
    pub lag: Option<LagReport>,
    /// How much librdkafka may fetch ahead of the reader, in KiB: the memory one subscriber may
    /// hold beyond what it has handed out.
    pub prefetch_kbytes: u32,
}

impl SubscriptionSettings {
    /// Prefetch of one reader when nothing else is said: enough to keep a busy reader fed.
    pub const DEFAULT_PREFETCH_KBYTES: u32 = 8192;
}

/// One member of a consumer group, reading its topics for one reader.
pub struct Subscriber {
    consumer: StreamConsumer<TrackingContext>,
    tracker: Arc<Mutex<Tracker>>,
}

impl Subscriber {
    pub fn new(
        backbone: &Backbone,
        settings: SubscriptionSettings,
    ) -> Result<Subscriber, KafkaError> {
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let context = TrackingContext {
            lag: settings.lag.clone(),
            start: settings.start,
            tracker: Arc::clone(&tracker),
        };
        let reset = if settings.start == StartPosition::Latest {
            "latest"
        } else {
            "earliest"
        };
        let mut config = backbone.client_config();
        if settings.lag.is_some() {
            config.set("statistics.interval.ms", LAG_EVERY.as_millis().to_string());
        }
        if let Some(timeout) = settings.session_timeout {
            config
                .set("session.timeout.ms", timeout.as_millis().to_string())
                .set(
                    "heartbeat.interval.ms",
                    (timeout.as_millis() / 5).max(500).to_string(),
                );
        }
        let consumer: StreamConsumer<TrackingContext> = config
            .set("group.id", &settings.group_id)
            // A topic created just before (an adapter's replay topic, a new route's topic) may not
            // be in the first metadata; librdkafka looks again only every 5 minutes by default.
            .set("topic.metadata.refresh.interval.ms", "5000")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", reset)
            // Eager rebalancing: every revoke takes the whole assignment, which `rebalance` commits.
            .set("partition.assignment.strategy", "range")
            // Bound what is prefetched per stream, and fetch again soon once there is room (the
            // default waits a whole second, which starves a stream that drains its queue fast).
            .set(
                "queued.max.messages.kbytes",
                settings.prefetch_kbytes.max(1).to_string(),
            )
            .set("fetch.queue.backoff.ms", "10")
            .create_with_context(context)?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Subscriber { consumer, tracker })
    }

    /// The next record; it counts as in flight until acknowledged.
    pub async fn next(&self) -> Result<Received, KafkaError> {
        let message = self.consumer.recv().await?;
        let received = Received {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().unwrap_or_default().to_vec(),
            payload: message.payload().unwrap_or_default().to_vec().into(),
            headers: owned_headers(&message),
        };
        let mut tracker = self.tracker.lock().expect("tracker lock");
        let state = tracker
            .partitions
            .entry((received.topic.clone(), received.partition))
            .or_default();
        state.unacked.insert(received.offset);
        state.next = Some(received.offset + 1);
        Ok(received)
    }

    /// Records delivered and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.tracker.lock().expect("tracker lock").in_flight()
    }

    /// Acknowledges records by (topic, partition, offset). Returns how many were acknowledged; others
    /// (unknown, or their partition moved away) are ignored. Positions are committed by
    /// [`Subscriber::commit_acknowledged`], which the caller runs on a timer, not once per ack.
    pub fn ack(&self, cursors: impl IntoIterator<Item = (String, i32, i64)>) -> usize {
        let mut tracker = self.tracker.lock().expect("tracker lock");
        let mut acked = 0;
        for (topic, partition, offset) in cursors {
            if let Some(state) = tracker.partitions.get_mut(&(topic, partition))
                && state.unacked.remove(&offset)
            {
                acked += 1;
            }
        }
        acked
    }

    /// Acknowledges every record of `partition` delivered up to and including `offset`: a reader
    /// that takes records in order says how far it got (the HTTP API's `Last-Event-ID`). Returns
    /// how many were acknowledged.
    pub fn ack_through(&self, topic: &str, partition: i32, offset: i64) -> usize {
        let mut tracker = self.tracker.lock().expect("tracker lock");
        tracker
            .partitions
            .get_mut(&(topic.to_owned(), partition))
            .map_or(0, |state| state.ack_through(offset))
    }

    /// Commits, asynchronously, the positions that moved since the last commit.
    pub fn commit_acknowledged(&self) {
        let mut tracker = self.tracker.lock().expect("tracker lock");
        let partitions: Vec<TopicPartition> = tracker.partitions.keys().cloned().collect();
        let due = tracker.due(partitions);
        drop(tracker);
        commit(&self.consumer, &due, CommitMode::Async);
    }

    /// Stops fetching from the current assignment (the consumer keeps its group membership: keep
    /// calling [`Subscriber::next`]); for readers whose buffer is full.
    pub fn pause(&self) {
        if let Ok(assignment) = self.consumer.assignment()
            && let Err(e) = self.consumer.pause(&assignment)
        {
            tracing::warn!(error = %e, "cannot pause the assignment");
        }
    }

    /// Fetches again after [`Subscriber::pause`].
    pub fn resume(&self) {
        if let Ok(assignment) = self.consumer.assignment()
            && let Err(e) = self.consumer.resume(&assignment)
        {
            tracing::warn!(error = %e, "cannot resume the assignment");
        }
    }

    /// Commits what was acknowledged and leaves the group.
    pub fn close(self) {
        let mut tracker = self.tracker.lock().expect("tracker lock");
        let partitions: Vec<TopicPartition> = tracker.partitions.keys().cloned().collect();
        let due = tracker.positions(partitions);
        drop(tracker);
        commit(&self.consumer, &due, CommitMode::Sync);
        self.consumer.unsubscribe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_up_to_the_first_unacknowledged_record() {
        let mut tracker = Tracker::default();
        let p = || ("t".to_string(), 0);
        let state = tracker.partitions.entry(p()).or_default();
        state.unacked.extend([10, 11, 12]);
        state.next = Some(13);
        assert_eq!(tracker.due([p()]), vec![(p(), 10)]);
        assert_eq!(tracker.due([p()]), vec![], "nothing moved");
        tracker
            .partitions
            .get_mut(&p())
            .unwrap()
            .unacked
            .remove(&11);
        assert_eq!(tracker.due([p()]), vec![], "10 is still unacknowledged");
        tracker
            .partitions
            .get_mut(&p())
            .unwrap()
            .unacked
            .remove(&10);
        assert_eq!(tracker.due([p()]), vec![(p(), 12)]);
        tracker
            .partitions
            .get_mut(&p())
            .unwrap()
            .unacked
            .remove(&12);
        assert_eq!(
            tracker.due([p()]),
            vec![(p(), 13)],
            "all acknowledged: past the last"
        );
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn acknowledging_through_an_offset_takes_every_record_up_to_it() {
        let mut state = PartitionState::default();
        state.unacked.extend([3, 5, 8, 9]);
        state.next = Some(10);
        assert_eq!(state.ack_through(8), 3);
        assert_eq!(state.position(), Some(9));
        assert_eq!(state.ack_through(8), 0, "once only");
        assert_eq!(state.ack_through(i64::MAX), 1);
        assert_eq!(state.position(), Some(10));
    }
}

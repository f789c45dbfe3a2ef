//! The notary: reads `_mekong.audit` in offset order, makes each event sealed by the hub a leaf of
//! the partition's Merkle tree (events not sealed are left out and logged as forged), and writes a
//! signed checkpoint of the tree to `_mekong.checkpoints` every N leaves or T seconds.
//!
//! One notary is active per audit partition: the consumer group `mekong.notary` decides which. Each
//! checkpoint is a Kafka transaction of the producer `mekong.notary.<partition>` that also commits
//! the group's offset, so a notary that lost the partition is fenced and two notaries never publish
//! two checkpoints for one tree size. A notary taking a partition resumes from the last checkpoint,
//! which carries the tree's peaks: no gap and no duplicate leaf.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use mekong_core::AUDIT_TOPIC;
use mekong_core::cloudevents as ce;
use mekong_core::evidence::{
    AuditKey, CHECKPOINT_TOPIC, Checkpoint, CheckpointRecord, Frontier, PublicKey, SEAL_HEADER,
    SealCheck, SigningKey, event_leaf, origin,
};
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use tracing::{info, warn};

use crate::Backbone;
use crate::deadletters::read_page;
use crate::follower::{EndRequest, Follower};

/// How the notary signs.
#[derive(Debug, Clone)]
pub struct NotarySettings {
    /// A checkpoint once this many leaves wait for one...
    pub every: u64,
    /// ... or once the oldest waits this long.
    pub interval: Duration,
    /// The checkpoints' origin, before `/<partition>`.
    pub log: String,
    /// Keys of earlier notaries (rotation): their checkpoints are resumed from.
    pub previous_keys: Vec<PublicKey>,
    /// Time-stamps each checkpoint at an RFC 3161 authority.
    pub stamper: Option<Stamper>,
}

/// Time-stamps a checkpoint's signed note: the DER token of an RFC 3161 authority, or why not.
#[derive(Clone)]
pub struct Stamper(pub Arc<StampFn>);

/// A note in, a token (or why not) out.
pub type StampFn = dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync;

impl std::fmt::Debug for Stamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stamper")
    }
}

impl Default for NotarySettings {
    fn default() -> Self {
        NotarySettings {
            every: 1000,
            interval: Duration::from_secs(10),
            log: "mekong/_mekong.audit".into(),
            previous_keys: Vec::new(),
            stamper: None,
        }
    }
}

/// What the notary can say of itself, for metrics and readiness.
#[derive(Debug, Clone)]
pub struct NotaryState {
    /// Audit partitions this notary signs.
    pub partitions: Vec<i32>,
    /// How long the oldest event it read has waited for a checkpoint, or a partition it was given
    /// for its tree (zero when every event read is signed, or it signs no partition).
    pub unsigned_for: Duration,
    /// The latest checkpoint it published: when, and its tree size.
    pub latest: Option<(SystemTime, u64)>,
    /// Events read that were not sealed by the hub, left out of the tree.
    pub forged: u64,
    /// Why it cannot sign, when it cannot.
    pub problem: Option<String>,
}

struct Shared {
    partitions: Vec<i32>,
    /// Since when the oldest event read has waited for a checkpoint (or a partition for its tree).
    unsigned_since: Option<Instant>,
    latest: Option<(SystemTime, u64)>,
    forged: u64,
    problem: Option<String>,
}

/// A running notary (a thread of its own).
pub struct Notary {
    shared: Arc<Mutex<Shared>>,
    follower: Follower,
}

#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the last checkpoint of audit partition {partition} (offset {offset}): {problem}")]
    Checkpoint {
        partition: i32,
        offset: i64,
        problem: String,
    },
}

impl Notary {
    pub fn start(
        backbone: Arc<Backbone>,
        key: Arc<SigningKey>,
        settings: NotarySettings,
    ) -> Result<Notary, NotaryError> {
        let consumer: BaseConsumer = backbone
            .client_config()
            .set("group.id", "mekong.notary")
            // A notary that crashed holds its partitions until its session times out: keep that
            // short, checkpoints wait for it.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            // It reads as fast as it hashes: no need for librdkafka's 64 MB of prefetch.
            .set("queued.max.messages.kbytes", "8192")
            .create()?;
        consumer.subscribe(&[AUDIT_TOPIC])?;
        let shared = Arc::new(Mutex::new(Shared {
            partitions: Vec::new(),
            unsigned_since: None,
            latest: None,
            forged: 0,
            problem: None,
        }));
        let state = Arc::clone(&shared);
        info!(key = %key.name(), public = %key.public().fingerprint(), every = settings.every, interval = ?settings.interval, "notary started");
        let follower = Follower::spawn("mekong-notary", move |stop| {
            run(consumer, &backbone, &key, &settings, &state, stop)
        });
        Ok(Notary { shared, follower })
    }

    pub fn state(&self) -> NotaryState {
        let shared = self.shared.lock().expect("notary lock");
        NotaryState {
            partitions: shared.partitions.clone(),
            unsigned_for: shared
                .unsigned_since
                .map_or(Duration::ZERO, |t| t.elapsed()),
            latest: shared.latest,
            forged: shared.forged,
            problem: shared.problem.clone(),
        }
    }

    pub fn close(&self) {
        self.follower.close();
    }
}

fn run(
    consumer: BaseConsumer,
    backbone: &Backbone,
    key: &SigningKey,
    settings: &NotarySettings,
    shared: &Mutex<Shared>,
    stop: mpsc::Receiver<EndRequest>,
) {
    let keys: Vec<AuditKey> = backbone.audit_key().into_iter().cloned().collect();
    let mut trusted = vec![key.public()];
    trusted.extend(settings.previous_keys.iter().cloned());
    let mut trees: HashMap<i32, Tree> = HashMap::new();
    let mut retry_at = Instant::now();
    // Since when an assigned partition has had no tree (it could not be resumed).
    let mut stuck_since: Option<Instant> = None;
    loop {
        if let Err(mpsc::TryRecvError::Disconnected) = stop.try_recv() {
            return;
        }
        // The partitions first, then the next event: an event fetched before a tree was started
        // is not read into it (the tree's seek fetches it again).
        let assigned: Vec<i32> = consumer
            .assignment()
            .map(|list| {
                list.elements_for_topic(AUDIT_TOPIC)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        trees.retain(|p, _| assigned.contains(p));
        let mut problem = None;
        for &p in &assigned {
            if trees.contains_key(&p) || Instant::now() < retry_at {
                continue;
            }
            match Tree::resume(backbone, &consumer, &trusted, p) {
                Ok(tree) => {
                    info!(
                        partition = p,
                        size = tree.frontier.size(),
                        next_offset = tree.next_offset,
                        "notary signs audit partition"
                    );
                    trees.insert(p, tree);
                }
                Err(e) => {
                    warn!(partition = p, error = %e, "the notary cannot resume its tree; retrying in 5 s");
                    problem = Some(e.to_string());
                    retry_at = Instant::now() + Duration::from_secs(5);
                }
            }
        }
        // Up to a batch of events, waiting only for the first.
        let mut forged = 0;
        let mut wait = Duration::from_millis(100);
        for _ in 0..1000 {
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    if let Some(tree) = trees.get_mut(&m.partition())
                        && !tree.read(&m, &keys)
                    {
                        forged += 1;
                    }
                }
                Some(Err(e)) => {
                    warn!(error = %e, "the notary reading the audit trail");
                    break;
                }
                None => break,
            }
            wait = Duration::ZERO;
        }
        let mut signed = None;
        let mut lost = Vec::new();
        for (p, tree) in &mut trees {
            if !tree.due(settings) {
                continue;
            }
            match tree.sign(&consumer, key, settings) {
                Ok(size) => signed = Some((SystemTime::now(), size)),
                Err(e) => {
                    warn!(partition = p, error = %e, "the notary could not publish a checkpoint; resuming from the last one");
                    problem = Some(format!("publishing a checkpoint: {e}"));
                    lost.push(*p);
                }
            }
        }
        for p in lost {
            trees.remove(&p);
        }
        let mut shared = shared.lock().expect("notary lock");
        shared.forged += forged;
        shared.partitions = trees.keys().copied().collect();
        if signed.is_some() {
            shared.latest = signed;
        }
        let all_resumed = assigned.iter().all(|p| trees.contains_key(p));
        if all_resumed {
            stuck_since = None;
            shared.problem = None;
        } else {
            stuck_since.get_or_insert_with(Instant::now);
            if problem.is_some() {
                shared.problem = problem;
            }
        }
        let pending_since = trees
            .values()
            .filter(|t| t.pending > 0)
            .map(|t| t.oldest_pending)
            .min();
        shared.unsigned_since = pending_since.into_iter().chain(stuck_since).min();
    }
}

/// One audit partition's tree, as far as it was read.
struct Tree {
    partition: i32,
    producer: ThreadedProducer<DefaultProducerContext>,
    frontier: Frontier,
    first_offset: i64,
    next_offset: i64,
    /// Leaves not yet in a checkpoint, and since when the oldest waits.
    pending: u64,
    oldest_pending: Instant,
}

impl Tree {
    /// Takes the partition's producer (fencing any earlier holder), reads the last checkpoint and
    /// moves the consumer to the offset after it.
    fn resume(
        backbone: &Backbone,
        consumer: &BaseConsumer,
        trusted: &[PublicKey],
        partition: i32,
    ) -> Result<Tree, NotaryError> {
        let producer: ThreadedProducer<DefaultProducerContext> = backbone
            .client_config()
            .set("transactional.id", format!("mekong.notary.{partition}"))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()?;
        producer.init_transactions(Duration::from_secs(30))?;
        let (frontier, first_offset, next_offset) =
            match latest_checkpoint(backbone, partition, Some(trusted))? {
                Some((checkpoint, frontier, _)) => {
                    (frontier, checkpoint.first_offset, checkpoint.next_offset)
                }
                None => {
                    let (low, _) = consumer.fetch_watermarks(
                        AUDIT_TOPIC,
                        partition,
                        Duration::from_secs(10),
                    )?;
                    (Frontier::default(), low, low)
                }
            };
        consumer.seek(
            AUDIT_TOPIC,
            partition,
            Offset::Offset(next_offset),
            Duration::from_secs(10),
        )?;
        Ok(Tree {
            partition,
            producer,
            frontier,
            first_offset,
            next_offset,
            pending: 0,
            oldest_pending: Instant::now(),
        })
    }

    /// Reads one event; false when it is not sealed by the hub (left out of the tree).
    fn read(&mut self, m: &BorrowedMessage<'_>, keys: &[AuditKey]) -> bool {
        if m.offset() < self.next_offset {
            return true;
        }
        self.next_offset = m.offset() + 1;
        let id = header(m, ce::ID).unwrap_or_default();
        let payload = m.payload().unwrap_or_default();
        let check = AuditKey::check(
            keys,
            &String::from_utf8_lossy(id),
            payload,
            header(m, SEAL_HEADER),
        );
        if let SealCheck::Sealed(_) = check {
            if self.pending == 0 {
                self.oldest_pending = Instant::now();
            }
            self.frontier
                .push(event_leaf(&String::from_utf8_lossy(id), payload));
            self.pending += 1;
            true
        } else {
            warn!(partition = m.partition(), offset = m.offset(), seal = ?check, "an audit event not sealed by the hub: left out of the tree");
            false
        }
    }

    fn due(&self, settings: &NotarySettings) -> bool {
        self.pending >= settings.every
            || (self.pending > 0 && self.oldest_pending.elapsed() >= settings.interval)
    }

    /// Publishes the checkpoint of the tree as read, with the group's offset, in one transaction.
    fn sign(
        &mut self,
        consumer: &BaseConsumer,
        key: &SigningKey,
        settings: &NotarySettings,
    ) -> Result<u64, KafkaError> {
        let checkpoint = Checkpoint {
            origin: origin(&settings.log, self.partition),
            size: self.frontier.size(),
            root: self.frontier.root(),
            first_offset: self.first_offset,
            next_offset: self.next_offset,
        };
        let mut record =
            CheckpointRecord::new(self.partition, checkpoint.sign(key), &self.frontier);
        if let Some(stamper) = &settings.stamper {
            // A checkpoint the authority cannot stamp is still published: the trail's integrity
            // does not wait for the TSA; the gap is logged and `verify --tsa-ca` names it.
            match (stamper.0)(&record.note) {
                Ok(token) => record.timestamp = Some(mekong_core::evidence::encode_bytes(&token)),
                Err(e) => {
                    warn!(partition = self.partition, size = checkpoint.size, error = %e, "the time-stamping authority did not stamp the checkpoint")
                }
            }
        }
        let json = serde_json::to_vec(&record).expect("checkpoints serialise");
        let partition_key = self.partition.to_string();
        crate::transact(
            &self.producer,
            consumer,
            (AUDIT_TOPIC, self.partition, self.next_offset),
            || {
                self.producer
                    .send(
                        BaseRecord::to(CHECKPOINT_TOPIC)
                            .key(&partition_key)
                            .payload(&json),
                    )
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            },
        )?;
        info!(
            partition = self.partition,
            size = checkpoint.size,
            next_offset = checkpoint.next_offset,
            "checkpoint signed"
        );
        self.pending = 0;
        Ok(checkpoint.size)
    }
}

fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    m.headers()?.iter().find(|h| h.key == name)?.value
}

/// Every checkpoint record on `_mekong.checkpoints`, in order, with its offset (blocking).
pub fn read_checkpoints(backbone: &Backbone, from: i64) -> Result<Vec<(i64, Vec<u8>)>, KafkaError> {
    let mut found = Vec::new();
    let mut next = from;
    loop {
        let page = read_page(
            backbone,
            CHECKPOINT_TOPIC,
            next,
            10_000,
            Duration::from_secs(30),
        )?;
        found.extend(
            page.letters
                .into_iter()
                .map(|l| (l.offset, l.payload.to_vec())),
        );
        match page.next {
            Some(n) => next = n,
            None => return Ok(found),
        }
    }
}

/// The last checkpoint of an audit partition (signed by a trusted key, when keys are given), and
/// its tree ready to grow. Read from the end of `_mekong.checkpoints` backwards, a growing window
/// at a time.
pub fn latest_checkpoint(
    backbone: &Backbone,
    partition: i32,
    trusted: Option<&[PublicKey]>,
) -> Result<Option<(Checkpoint, Frontier, CheckpointRecord)>, NotaryError> {
    let consumer: BaseConsumer = backbone.client_config().create()?;
    let (low, high) = match consumer.fetch_watermarks(CHECKPOINT_TOPIC, 0, Duration::from_secs(10))
    {
        Ok(w) => w,
        Err(e)
            if e.rdkafka_error_code()
                == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let mut window = 16;
    loop {
        let from = (high - window).max(low);
        let records = read_page(
            backbone,
            CHECKPOINT_TOPIC,
            from,
            usize::MAX,
            Duration::from_secs(30),
        )?;
        let last = records.letters.iter().rev().find_map(|l| {
            let record: CheckpointRecord = serde_json::from_slice(&l.payload).ok()?;
            (record.partition == partition).then_some((l.offset, record))
        });
        if let Some((offset, record)) = last {
            let problem = |problem: String| NotaryError::Checkpoint {
                partition,
                offset,
                problem,
            };
            let checkpoint = match trusted {
                Some(trusted) => Checkpoint::open(&record.note, trusted).map(|(c, _)| c),
                None => Checkpoint::read_unverified(&record.note),
            }
            .map_err(|e| problem(e.to_string()))?;
            let frontier = record
                .frontier(&checkpoint)
                .ok_or_else(|| problem("its peaks do not make its tree head".into()))?;
            return Ok(Some((checkpoint, frontier, record)));
        }
        if from == low {
            return Ok(None);
        }
        window *= 4;
    }
}

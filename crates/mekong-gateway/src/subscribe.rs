//! `mekong.v1.SubscribeService`: integrators read a topic over one gRPC stream, at least once. Each
//! stream is one member of a Kafka consumer group; records flow out as long as fewer than
//! `max_in_flight` await acknowledgement, and positions are committed only up to the first record
//! not yet acknowledged.
//!
//! Open streams are bounded per client (`limits.maxSubscriptions`) and per instance; each re-checks
//! its caller whenever the catalog changes and ends (UNAUTHENTICATED, PERMISSION_DENIED) once its
//! key is withdrawn, its role gone or the topic no longer among those it may read.
//!
//! Each stream has a librdkafka consumer of its own (a few threads and up to
//! [`PREFETCH_KBYTES`] of prefetched records): the per-instance bound is what bounds them.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt};
use mekong_core::{Catalog, Client, CloudEvent, check_group_name, excerpt, subscription_group};
use mekong_kafka::{
    Backbone, Received, StartPosition, Subscriber, SubscriptionSettings, View, topic_exists,
};
use mekong_proto::v1::subscribe_service_server::SubscribeService;
use mekong_proto::v1::{
    ConsumeRequest, Cursor, DeliveredRecord, StartFrom, Subscription, consume_request,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::TaskTracker;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::{Caller, Need};
use crate::metrics::GatewayMetrics;
use crate::status::{internal, unavailable};

/// In flight per stream when the subscription does not say, and at most.
const DEFAULT_IN_FLIGHT: u32 = 256;
const MAX_IN_FLIGHT: u32 = 4096;
/// How often acknowledged positions are committed: often enough that little is read again after a
/// crash, seldom enough that commits cost Kafka little.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// What one stream's consumer may fetch ahead, in KiB.
pub const PREFETCH_KBYTES: u32 = 4096;

/// The subscribe service. Cheap to clone.
#[derive(Clone)]
pub struct Subscribe {
    catalog: Arc<ArcSwap<Catalog>>,
    /// Wakes when the catalog changes: open streams re-check their callers.
    changes: watch::Receiver<Arc<View>>,
    backbone: Arc<Backbone>,
    /// Flips to true at shutdown: streams commit what was acknowledged and end.
    shutdown: watch::Receiver<bool>,
    metrics: GatewayMetrics,
    open: Arc<OpenSubscriptions>,
    /// Where the streams' tasks run, so a shutdown can wait for them.
    tasks: TaskTracker,
}

impl Subscribe {
    pub(crate) fn new(
        catalog: Arc<ArcSwap<Catalog>>,
        changes: watch::Receiver<Arc<View>>,
        backbone: Arc<Backbone>,
        shutdown: watch::Receiver<bool>,
        metrics: GatewayMetrics,
        max_subscriptions: usize,
        tasks: TaskTracker,
    ) -> Subscribe {
        Subscribe {
            catalog,
            changes,
            backbone,
            shutdown,
            metrics,
            open: Arc::new(OpenSubscriptions {
                max: max_subscriptions,
                counts: Mutex::default(),
            }),
            tasks,
        }
    }
}

/// The subscription streams open on this instance, per client.
struct OpenSubscriptions {
    max: usize,
    counts: Mutex<(usize, HashMap<String, u32>)>,
}

/// One open stream's place; given back when dropped.
struct Place {
    open: Arc<OpenSubscriptions>,
    client: String,
}

impl OpenSubscriptions {
    /// A place for one more stream of `client`, or RESOURCE_EXHAUSTED with a QuotaFailure.
    fn take(self: &Arc<Self>, client: &Client) -> Result<Place, Status> {
        let mut counts = self.counts.lock().expect("subscription counts");
        let (total, per_client) = &mut *counts;
        let mine = per_client.get(client.name()).copied().unwrap_or(0);
        let refusal = if mine >= client.max_subscriptions() {
            Some((
                format!("client:{}", client.name()),
                format!(
                    "client `{}` has {mine} subscriptions open on this instance; its limit is {} \
                     (limits.maxSubscriptions)",
                    client.name(),
                    client.max_subscriptions()
                ),
            ))
        } else if *total >= self.max {
            Some((
                "instance".to_string(),
                format!(
                    "this instance has {} subscriptions open, its limit (--max-subscriptions); \
                     reconnect to go to another instance, or later",
                    *total
                ),
            ))
        } else {
            None
        };
        if let Some((subject, description)) = refusal {
            return Err(Status::with_error_details(
                Code::ResourceExhausted,
                description.clone(),
                ErrorDetails::with_quota_failure_violation(subject, description),
            ));
        }
        *total += 1;
        *per_client.entry(client.name().to_owned()).or_default() += 1;
        Ok(Place {
            open: Arc::clone(self),
            client: client.name().to_owned(),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().expect("subscription counts");
        let (total, per_client) = &mut *counts;
        *total -= 1;
        if let Some(n) = per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// What a stream's caller must still be allowed: read `topic`.
fn may_read(caller: &Caller, catalog: &Catalog, topic: &str) -> Result<(), Status> {
    let client = caller.recheck(catalog, Need::Reader)?;
    if client.may_subscribe(topic) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "client `{}` may not read topic `{}`",
            client.name(),
            excerpt(topic, 249)
        )))
    }
}

type RecordStream = Pin<Box<dyn Stream<Item = Result<DeliveredRecord, Status>> + Send>>;

/// What a reader says while its records flow, whichever API it reads through.
pub(crate) enum Control {
    /// These records are done.
    Ack(Vec<Cursor>),
    /// Every record of the topic delivered up to these (partition, offset) is done.
    Through(Vec<(i32, i64)>),
    /// Something that has no place after the subscription.
    Unexpected,
}

/// A reader's messages after its subscription.
pub(crate) type Inbound = Pin<Box<dyn Stream<Item = Result<Control, Status>> + Send>>;

/// How a reader takes its records, beyond what its Subscription says.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    /// Per partition, the last offset the reader took before (it resumes): records up to it are
    /// acknowledged, not delivered.
    pub(crate) skip: HashMap<i32, i64>,
    /// Each record counts as acknowledged once handed to the reader's stream.
    pub(crate) ack_on_send: bool,
}

#[tonic::async_trait]
impl SubscribeService for Subscribe {
    type ConsumeStream = RecordStream;

    async fn consume(
        &self,
        request: Request<Streaming<ConsumeRequest>>,
    ) -> Result<Response<RecordStream>, Status> {
        let caller = Caller::of(&request)?;
        let mut inbound = request.into_inner();
        let subscription = match inbound.message().await? {
            Some(ConsumeRequest {
                request: Some(consume_request::Request::Subscribe(s)),
            }) => s,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of Consume must be a Subscription",
                ));
            }
        };
        let inbound = inbound.map(|message| {
            message.map(|m| match m.request {
                Some(consume_request::Request::Ack(ack)) => Control::Ack(ack.cursors),
                _ => Control::Unexpected,
            })
        });
        let records = self
            .open(caller, subscription, Box::pin(inbound), Reading::default())
            .await?;
        Ok(Response::new(Box::pin(records)))
    }
}

impl Subscribe {
    /// Starts a subscription for `caller`: its records, until the reader goes, loses its right to
    /// read, or the hub stops (then a last error says why).
    pub(crate) async fn open(
        &self,
        caller: Caller,
        subscription: Subscription,
        inbound: Inbound,
        reading: Reading,
    ) -> Result<ReceiverStream<Result<DeliveredRecord, Status>>, Status> {
        let (mut settings, place) = self.admit(&caller, &subscription).await?;
        let (lag, clear_lag) = self.metrics.lag_of(&settings.group_id);
        settings.lag = Some(lag);
        let max_in_flight = match subscription.max_in_flight {
            0 => DEFAULT_IN_FLIGHT,
            n => n.min(MAX_IN_FLIGHT),
        } as usize;
        let subscriber = Subscriber::new(&self.backbone, settings.clone())
            .map_err(|e| unavailable("cannot join the consumer group on Kafka", &e))?;
        let client = caller.client.clone();
        info!(%client, topic = %settings.topics.join(","), group = %settings.group_id, max_in_flight, "subscription started");

        let (tx, rx) = mpsc::channel(64);
        let stream = Session {
            subscriber,
            inbound,
            out: tx,
            max_in_flight,
            types: subscription.record_types,
            reading,
            shutdown: self.shutdown.clone(),
            changes: self.changes.clone(),
            catalog: Arc::clone(&self.catalog),
            caller,
            topic: subscription.topic,
        };
        let span = info_span!("consume", %client, topic = %settings.topics.join(","), group = %settings.group_id);
        let open = self.metrics.subscriptions.clone();
        open.inc();
        self.tasks.spawn(
            async move {
                stream.run().await;
                open.dec();
                clear_lag();
                drop(place);
            }
            .instrument(span),
        );
        Ok(ReceiverStream::new(rx))
    }
}

impl Subscribe {
    /// Checks the caller may read the topic, that it exists and that the caller has room for one
    /// more stream; the Kafka settings of the stream, and its place.
    async fn admit(
        &self,
        caller: &Caller,
        s: &Subscription,
    ) -> Result<(SubscriptionSettings, Place), Status> {
        if s.topic.is_empty() {
            return Err(Status::invalid_argument("the subscription names no topic"));
        }
        let catalog = self.catalog.load_full();
        may_read(caller, &catalog, &s.topic)?;
        let start = match StartFrom::try_from(s.start_from) {
            Ok(StartFrom::Earliest) => StartPosition::Earliest,
            Ok(StartFrom::Latest) => StartPosition::Latest,
            Ok(StartFrom::Time) => StartPosition::Time(s.start_time_ms),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown start_from {}",
                    s.start_from
                )));
            }
        };
        let group = if s.group.is_empty() {
            "default"
        } else {
            s.group.as_str()
        };
        check_group_name(group).map_err(Status::invalid_argument)?;
        let client = caller.client_in(&catalog)?;
        let place = self.open.take(client)?;
        let (backbone, topic) = (Arc::clone(&self.backbone), s.topic.clone());
        let exists = tokio::task::spawn_blocking(move || {
            topic_exists(&backbone, &topic, Duration::from_secs(10))
        })
        .await
        .map_err(|e| internal("looking the topic up failed", &e))?
        .map_err(|e| unavailable("cannot reach Kafka", &e))?;
        if !exists {
            return Err(Status::not_found(format!("no topic `{}`", s.topic)));
        }
        // Groups are per client: no client can join, or commit for, another's group.
        let settings = SubscriptionSettings {
            topics: vec![s.topic.clone()],
            group_id: subscription_group(&caller.client, group),
            start,
            session_timeout: None,
            lag: None,
            prefetch_kbytes: PREFETCH_KBYTES,
        };
        Ok((settings, place))
    }
}

/// One running subscription stream.
struct Session {
    subscriber: Subscriber,
    inbound: Inbound,
    out: mpsc::Sender<Result<DeliveredRecord, Status>>,
    max_in_flight: usize,
    types: Vec<String>,
    reading: Reading,
    shutdown: watch::Receiver<bool>,
    changes: watch::Receiver<Arc<View>>,
    catalog: Arc<ArcSwap<Catalog>>,
    caller: Caller,
    topic: String,
}

impl Session {
    async fn run(mut self) {
        let mut commits = tokio::time::interval(COMMIT_INTERVAL);
        commits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = self.subscriber.in_flight() < self.max_in_flight;
            tokio::select! {
                request = self.inbound.next() => match request {
                    Some(Ok(Control::Ack(cursors))) => {
                        let cursors = cursors.into_iter().map(|c| (c.topic, c.partition, c.offset));
                        self.subscriber.ack(cursors);
                    }
                    Some(Ok(Control::Through(positions))) => {
                        for (partition, offset) in positions {
                            self.subscriber.ack_through(&self.topic, partition, offset);
                        }
                    }
                    Some(Ok(Control::Unexpected)) => {
                        let _ = self.out.send(Err(Status::invalid_argument("after the Subscription, send only Acks"))).await;
                        break;
                    }
                    // The client closed its side or went away.
                    None | Some(Err(_)) => break,
                },
                received = self.subscriber.next(), if room => match received {
                    Ok(record) => {
                        if !self.deliver(record).await {
                            break;
                        }
                    }
                    Err(e) => {
                        // Kafka errors (a broker away, say) repeat until it is back: do not spin.
                        warn!(error = %e, "consumer error");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
                _ = commits.tick() => self.subscriber.commit_acknowledged(),
                _ = self.shutdown.changed() => {
                    let _ = self.out.send(Err(Status::unavailable("the hub is shutting down; reconnect to resume"))).await;
                    break;
                }
                changed = self.changes.changed() => {
                    let still = match changed {
                        Ok(()) => may_read(&self.caller, &self.catalog.load(), &self.topic),
                        Err(_) => Err(Status::unavailable("the hub is shutting down; reconnect to resume")),
                    };
                    if let Err(status) = still {
                        info!(code = ?status.code(), "subscription ended: the caller may no longer read");
                        let _ = self.out.send(Err(status)).await;
                        break;
                    }
                }
            }
        }
        debug!("subscription ended");
        let subscriber = self.subscriber;
        // Committing is blocking; keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || subscriber.close()).await;
    }

    /// Sends one record to the client; records of unwanted types, and those the client took before
    /// it resumed, count as acknowledged. False when the client is gone.
    async fn deliver(&mut self, record: Received) -> bool {
        let event = CloudEvent::from_headers(
            record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice())),
        );
        let cursor = Cursor {
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
        };
        let taken = self
            .reading
            .skip
            .get(&cursor.partition)
            .is_some_and(|last| cursor.offset <= *last);
        if taken || (!self.types.is_empty() && !self.types.contains(&event.record_type)) {
            self.subscriber
                .ack([(cursor.topic, cursor.partition, cursor.offset)]);
            return true;
        }
        let delivered = DeliveredRecord {
            record_id: event.id,
            record_type: event.record_type,
            source: event.source,
            time: event.time,
            key: record.key,
            payload: record.payload,
            attributes: event.attributes.into_iter().collect(),
            cursor: Some(cursor),
        };
        let ack = self
            .reading
            .ack_on_send
            .then(|| delivered.cursor.clone())
            .flatten();
        if self.out.send(Ok(delivered)).await.is_err() {
            return false;
        }
        if let Some(c) = ack {
            self.subscriber.ack([(c.topic, c.partition, c.offset)]);
        }
        true
    }
}

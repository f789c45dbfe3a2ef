//! `mekong.v1.SubscribeService`: integrators read a topic over one gRPC stream, at least once. Each
//! stream is one member of a Kafka consumer group; records flow out as long as fewer than
//! `max_in_flight` await acknowledgement, and positions are committed only up to the first record
//! not yet acknowledged.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::Stream;
use mekong_core::{Catalog, CloudEvent};
use mekong_kafka::{
    Backbone, Received, StartPosition, Subscriber, SubscriptionSettings, topic_exists,
};
use mekong_proto::v1::subscribe_service_server::SubscribeService;
use mekong_proto::v1::{
    ConsumeRequest, Cursor, DeliveredRecord, StartFrom, Subscription, consume_request,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::authenticate;
use crate::metrics::GatewayMetrics;

/// In flight per stream when the subscription does not say, and at most.
const DEFAULT_IN_FLIGHT: u32 = 256;
const MAX_IN_FLIGHT: u32 = 4096;
/// How often acknowledged positions are committed: often enough that little is read again after a
/// crash, seldom enough that commits cost Kafka little.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// The subscribe service. Cheap to clone.
#[derive(Clone)]
pub struct Subscribe {
    catalog: Arc<ArcSwap<Catalog>>,
    backbone: Arc<Backbone>,
    /// Flips to true at shutdown: streams commit what was acknowledged and end.
    shutdown: watch::Receiver<bool>,
    metrics: GatewayMetrics,
}

impl Subscribe {
    pub fn new(
        catalog: Arc<ArcSwap<Catalog>>,
        backbone: Arc<Backbone>,
        shutdown: watch::Receiver<bool>,
        metrics: GatewayMetrics,
    ) -> Subscribe {
        Subscribe {
            catalog,
            backbone,
            shutdown,
            metrics,
        }
    }
}

type RecordStream = Pin<Box<dyn Stream<Item = Result<DeliveredRecord, Status>> + Send>>;

#[tonic::async_trait]
impl SubscribeService for Subscribe {
    type ConsumeStream = RecordStream;

    async fn consume(
        &self,
        request: Request<Streaming<ConsumeRequest>>,
    ) -> Result<Response<RecordStream>, Status> {
        let client = authenticate(&self.catalog.load(), request.metadata())?;
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
        let mut settings = self.admit(&client, &subscription).await?;
        let (lag, clear_lag) = self.metrics.lag_of(&settings.group_id);
        settings.lag = Some(lag);
        let max_in_flight = match subscription.max_in_flight {
            0 => DEFAULT_IN_FLIGHT,
            n => n.min(MAX_IN_FLIGHT),
        } as usize;
        let subscriber = Subscriber::new(&self.backbone, settings.clone()).map_err(|e| {
            Status::unavailable(format!("cannot join the consumer group on Kafka: {e}"))
        })?;
        info!(%client, topic = %settings.topics.join(","), group = %settings.group_id, max_in_flight, "subscription started");

        let (tx, rx) = mpsc::channel(64);
        let stream = Session {
            subscriber,
            inbound,
            out: tx,
            max_in_flight,
            types: subscription.record_types,
            shutdown: self.shutdown.clone(),
        };
        let span = info_span!("consume", %client, topic = %settings.topics.join(","), group = %settings.group_id);
        let open = self.metrics.subscriptions.clone();
        open.inc();
        tokio::spawn(
            async move {
                stream.run().await;
                open.dec();
                clear_lag();
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl Subscribe {
    /// Checks the caller may read the topic and that it exists; the Kafka settings of the stream.
    async fn admit(&self, client: &str, s: &Subscription) -> Result<SubscriptionSettings, Status> {
        let catalog = self.catalog.load_full();
        let Some(caller) = catalog.client(client) else {
            return Err(Status::unauthenticated(format!(
                "client `{client}` no longer exists"
            )));
        };
        if s.topic.is_empty() {
            return Err(Status::invalid_argument("the subscription names no topic"));
        }
        if !caller.may_subscribe(&s.topic) {
            return Err(Status::permission_denied(format!(
                "client `{client}` may not read topic `{}`",
                s.topic
            )));
        }
        let (backbone, topic) = (Arc::clone(&self.backbone), s.topic.clone());
        let exists = tokio::task::spawn_blocking(move || {
            topic_exists(&backbone, &topic, Duration::from_secs(10))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::unavailable(format!("cannot reach Kafka: {e}")))?;
        if !exists {
            return Err(Status::not_found(format!("no topic `{}`", s.topic)));
        }
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
        if group.len() > 200
            || !group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Status::invalid_argument(
                "a group name has at most 200 of a-z, A-Z, 0-9, `.`, `_`, `-`",
            ));
        }
        // Groups are per client: no client can join, or commit for, another's group.
        Ok(SubscriptionSettings {
            topics: vec![s.topic.clone()],
            group_id: format!("mekong.{client}.{group}"),
            start,
            session_timeout: None,
            lag: None,
        })
    }
}

/// One running subscription stream.
struct Session {
    subscriber: Subscriber,
    inbound: Streaming<ConsumeRequest>,
    out: mpsc::Sender<Result<DeliveredRecord, Status>>,
    max_in_flight: usize,
    types: Vec<String>,
    shutdown: watch::Receiver<bool>,
}

impl Session {
    async fn run(mut self) {
        let mut commits = tokio::time::interval(COMMIT_INTERVAL);
        commits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = self.subscriber.in_flight() < self.max_in_flight;
            tokio::select! {
                request = self.inbound.message() => match request {
                    Ok(Some(ConsumeRequest { request: Some(consume_request::Request::Ack(ack)) })) => {
                        let cursors = ack.cursors.into_iter().map(|c| (c.topic, c.partition, c.offset));
                        self.subscriber.ack(cursors);
                    }
                    Ok(Some(_)) => {
                        let _ = self.out.send(Err(Status::invalid_argument("after the Subscription, send only Acks"))).await;
                        break;
                    }
                    // The client closed its side or went away.
                    Ok(None) | Err(_) => break,
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
            }
        }
        debug!("subscription ended");
        let subscriber = self.subscriber;
        // Committing is blocking; keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || subscriber.close()).await;
    }

    /// Sends one record to the client; records of unwanted types count as acknowledged. False when
    /// the client is gone.
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
        if !self.types.is_empty() && !self.types.contains(&event.record_type) {
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
        self.out.send(Ok(delivered)).await.is_ok()
    }
}

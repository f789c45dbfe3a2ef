//! A subscriber over gRPC for the tests: an open Consume stream, its records and acknowledgements.

use std::time::{Duration, Instant};

use futures::StreamExt;
use mekong_proto::v1::subscribe_service_client::SubscribeServiceClient;
use mekong_proto::v1::{
    Ack, ConsumeRequest, Cursor, DeliveredRecord, Subscription, consume_request,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::{TestHub, authed};

/// An open Consume stream.
pub struct Consumer {
    pub acks: mpsc::Sender<ConsumeRequest>,
    pub records: Streaming<DeliveredRecord>,
}

impl Consumer {
    pub async fn open(
        hub: &TestHub,
        key: &str,
        subscription: Subscription,
    ) -> Result<Consumer, tonic::Status> {
        Consumer::open_on(hub.channel().await, key, subscription).await
    }

    /// A stream on a hub served at `address` (`host:port`).
    pub async fn open_at(
        address: &str,
        key: &str,
        subscription: Subscription,
    ) -> Result<Consumer, tonic::Status> {
        let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
            .expect("an address")
            .connect()
            .await
            .expect("connect to the hub");
        Consumer::open_on(channel, key, subscription).await
    }

    pub async fn open_on(
        channel: tonic::transport::Channel,
        key: &str,
        subscription: Subscription,
    ) -> Result<Consumer, tonic::Status> {
        let (acks, requests) = mpsc::channel(1024);
        acks.send(ConsumeRequest {
            request: Some(consume_request::Request::Subscribe(subscription)),
        })
        .await
        .unwrap();
        let records = SubscribeServiceClient::new(channel)
            .consume(authed(key, ReceiverStream::new(requests)))
            .await?
            .into_inner();
        Ok(Consumer { acks, records })
    }

    /// The next record within `wait`, or None.
    pub async fn next(&mut self, wait: Duration) -> Option<DeliveredRecord> {
        match tokio::time::timeout(wait, self.records.next()).await {
            Ok(Some(Ok(record))) => Some(record),
            Ok(Some(Err(status))) => panic!("stream failed: {status:?}"),
            Ok(None) | Err(_) => None,
        }
    }

    /// Records until none arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<DeliveredRecord> {
        let mut got = Vec::new();
        while let Some(r) = self.next(quiet).await {
            got.push(r);
        }
        got
    }

    pub async fn ack(&self, records: &[DeliveredRecord]) {
        let cursors: Vec<Cursor> = records.iter().map(|r| r.cursor.clone().unwrap()).collect();
        self.acks
            .send(ConsumeRequest {
                request: Some(consume_request::Request::Ack(Ack { cursors })),
            })
            .await
            .unwrap();
    }

    /// Ends the stream cleanly: closes the client's side (after the acks sent so far) and waits for
    /// the server to commit and end its side.
    pub async fn close(mut self) {
        drop(self.acks);
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            while self.records.next().await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "the server ends the stream after the client closed its side"
        );
    }

    /// Ends the stream abruptly, as a crashed client does.
    pub fn crash(self) {
        drop(self);
    }
}

/// Waits until the Kafka group of `client`'s subscription group `group` is stable with `members`
/// members, each assigned at least one partition: only then can "nothing arrives" mean nothing was
/// sent, rather than a consumer still joining.
pub async fn wait_for_assignment(hub: &TestHub, client: &str, group: &str, members: usize) {
    let group_id = mekong_core::subscription_group(client, group);
    let bootstrap = hub.bootstrap.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (bootstrap, id) = (bootstrap.clone(), group_id.clone());
        let (state, assigned) = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .create()
                .expect("a consumer");
            let list = consumer.fetch_group_list(Some(&id), Duration::from_secs(5));
            let Some(found) = list.ok().and_then(|l| {
                l.groups().first().map(|g| {
                    let assigned = g
                        .members()
                        .iter()
                        .filter(|m| m.assignment().is_some_and(|a| a.len() > 8))
                        .count();
                    (g.state().to_owned(), (g.members().len(), assigned))
                })
            }) else {
                return (String::new(), (0, 0));
            };
            found
        })
        .await
        .expect("the group lookup");
        if state == "Stable" && assigned == (members, members) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group_id} never became stable with {members} assigned members (state {state:?}, members/assigned {assigned:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn subscription(topic: &str, group: &str) -> Subscription {
    Subscription {
        topic: topic.into(),
        group: group.into(),
        ..Default::default()
    }
}

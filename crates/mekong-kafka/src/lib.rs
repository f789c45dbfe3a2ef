//! The backbone: the producer (acks=all, idempotent), consumer-group members that commit only
//! acknowledged positions (subscriptions, adapters), topic creation, the resource store on its
//! compacted topic, the lineage index of `_mekong.audit`, dead-letter pages, and the choice between
//! a real cluster and the embedded development backbone (librdkafka's mock cluster).
//!
//! This room knows Kafka and nothing of gRPC; the rules that decide what to write live in
//! `mekong-core`.

mod backbone;
mod deadletters;
mod follower;
mod lineage;
mod notary;
mod producer;
mod store;
mod subscription;
mod topics;
mod transaction;

pub use backbone::{Backbone, KafkaOptions};
pub use deadletters::{DeadLetter, Page, offsets, read_at, read_page};
pub use lineage::{Lineage, LineageError};
pub use notary::{
    Notary, NotaryError, NotarySettings, NotaryState, Stamper, latest_checkpoint, read_checkpoints,
};
pub use producer::{
    ProduceError, Producer, ProducerSettings, WriteError, WrittenCopy, message_bytes_for,
};
pub use rdkafka::error::{KafkaError, RDKafkaErrorCode};
pub use store::{RESOURCES_TOPIC, Store, StoreError, StoreSettings, Transaction, View};
pub use subscription::{LagReport, Received, StartPosition, Subscriber, SubscriptionSettings};
pub use topics::{TopicSettings, ensure_topics, group_lag, topic_exists};
pub use transaction::transact;

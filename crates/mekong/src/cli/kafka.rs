//! Where the hub's Kafka is and how its topics are made: the flags `mekong serve` and `mekong
//! adapters run` share.

use clap::Args;
use mekong_hub::BackboneConfig;
use mekong_kafka::{RESOURCES_TOPIC, StoreSettings};

#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...). Without it, `serve` starts an embedded development
    /// backbone; `adapters run` needs it.
    #[arg(long, env = "MEKONG_KAFKA")]
    pub kafka: Option<String>,
    /// Extra librdkafka client property, e.g. security.protocol=SASL_SSL (repeatable).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = key_value)]
    pub kafka_options: Vec<(String, String)>,
    /// The compacted topic that holds the resources. Hubs sharing one Kafka cluster share their
    /// resources when they share this topic.
    #[arg(long, default_value = RESOURCES_TOPIC)]
    pub resources_topic: String,
    /// Replication factor of the topics the hub creates, internal ones included (-1: the cluster's
    /// default).
    #[arg(long, default_value_t = StoreSettings::default().replication, allow_negative_numbers = true)]
    pub topic_replication: i32,
}

impl KafkaArgs {
    pub fn backbone(&self) -> BackboneConfig {
        match &self.kafka {
            Some(bootstrap) => BackboneConfig::External {
                bootstrap: bootstrap.clone(),
                options: self.kafka_options.clone(),
            },
            None => BackboneConfig::Embedded,
        }
    }

    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            topic: self.resources_topic.clone(),
            replication: self.topic_replication,
            ..StoreSettings::default()
        }
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

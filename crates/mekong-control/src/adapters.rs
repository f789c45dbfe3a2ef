//! How each adapter is doing, as Kafka sees it (so every instance's work counts): its consumer
//! group's lag per partition, and how many dead letters its topic holds.

use std::sync::Arc;
use std::time::Duration;

use mekong_core::{adapter_group, deadletter};
use mekong_kafka::{Backbone, group_lag, offsets};

use crate::ControlError;

const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One adapter's standing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterStanding {
    /// (topic, partition, records not yet delivered or dead-lettered).
    pub lag: Vec<(String, i32, i64)>,
    /// Records in its dead-letter topic (replayed ones included).
    pub dead_letters: i64,
}

impl AdapterStanding {
    pub fn total_lag(&self) -> i64 {
        self.lag.iter().map(|(_, _, n)| n).sum()
    }
}

/// The standing of `adapter`, which reads `from`.
pub async fn standing(
    backbone: &Arc<Backbone>,
    adapter: &str,
    from: &[String],
) -> Result<AdapterStanding, ControlError> {
    let (backbone, adapter, from) = (Arc::clone(backbone), adapter.to_owned(), from.to_vec());
    tokio::task::spawn_blocking(move || {
        let lag = group_lag(&backbone, &adapter_group(&adapter), &from, READ_TIMEOUT)?;
        let dead_letters = offsets(
            &backbone,
            &deadletter::dead_letter_topic(&adapter),
            READ_TIMEOUT,
        )?
        .map_or(0, |(low, high)| high - low);
        Ok::<_, mekong_kafka::KafkaError>(AdapterStanding { lag, dead_letters })
    })
    .await
    .map_err(|e| ControlError::internal("reading an adapter's standing stopped", e))?
    .map_err(|e| ControlError::unavailable("cannot read the adapter's standing from Kafka", e))
}
